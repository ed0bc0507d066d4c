//! A click's two verdicts — the one ingest recorded in the archive and the one the rollup settles
//! over the day — and where they differ, the "live classification differed" report.
//!
//! The settled verdict is adclick-invalid's [`adclick_invalid::settle`]: a request reason
//! (`bot_user_agent`, `deny_listed_network`, `prefetch`) recorded stands, since the archive keeps
//! neither the headers nor the raw IP; the activity reasons (`too_fast`, `user_velocity`,
//! `ip_velocity`) are decided again from the record's token issue time, receive time and the
//! velocity counted over the settled day ([`crate::velocity`]).
//!
//! They differ when the live verdict was made on other facts: ingest's velocity counters failed
//! open (`CLICK_FLAG_VELOCITY_UNCHECKED`: counted unknown, so no velocity rule fired), a repeat
//! slipped through and was counted towards velocity live, clicks of one millisecond were counted
//! in another order, or the rules changed between the click and the rollup. Each difference is
//! counted per campaign and minute by recorded → settled pair ([`VerdictChange`]), and reported
//! per campaign ([`by_campaign`]).

use std::collections::{BTreeMap, HashMap};

use adclick_click::minute::Minute;
use adclick_click::wire::{Click, ClickFlag};
use adclick_invalid::{ActivityFacts, Reason, Velocity, Verdict};
use serde::Serialize;

/// The verdict ingest recorded: `invalid_reason`, a code this build does not know read as valid
/// (click.proto: "counts the click as valid for the reasons it knows").
pub fn recorded(click: &Click) -> Verdict {
    // prost's getter already maps an unknown number to VALID.
    let code = u8::try_from(click.invalid_reason() as i32).unwrap_or(0);
    Reason::from_code(code).into()
}

/// Whether ingest could not count this click's velocity (it failed open).
pub fn velocity_unchecked(click: &Click) -> bool {
    click.has_flag(ClickFlag::VelocityUnchecked)
}

/// The activity facts of an archived click. An issue or receive time of 0 is unknown
/// (click.proto); the classifier then never finds the click too fast.
pub fn activity_facts(
    token_issued_at_secs: u64,
    receive_time_ms: i64,
    velocity: Velocity,
) -> ActivityFacts {
    ActivityFacts {
        token_issued_at_secs,
        received_at_ms: receive_time_ms,
        velocity,
    }
}

/// Clicks of one campaign and minute whose settled verdict differs from the recorded one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerdictChange {
    pub advertiser_id: u64,
    pub campaign_id: u64,
    /// The minute of the clicks' event time (the minute they are counted in).
    pub minute: Minute,
    pub recorded: Verdict,
    pub settled: Verdict,
    pub clicks: u64,
    /// Of `clicks`, those ingest flagged velocity-unchecked.
    pub velocity_unchecked: u64,
}

/// (advertiser, campaign, minute, recorded code, settled code).
type ChangeKey = (u64, u64, i64, u8, u8);

/// Collects [`VerdictChange`]s click by click.
#[derive(Debug, Default)]
pub struct Changes {
    /// → (clicks, of them velocity-unchecked).
    counts: HashMap<ChangeKey, (u64, u64)>,
}

impl Changes {
    /// Counts one click, if its verdicts differ.
    pub fn add(
        &mut self,
        campaign: (u64, u64),
        minute: Minute,
        recorded: Verdict,
        settled: Verdict,
        velocity_unchecked: bool,
    ) {
        if recorded == settled {
            return;
        }
        let key = (
            campaign.0,
            campaign.1,
            minute.0,
            recorded.code(),
            settled.code(),
        );
        let (clicks, unchecked) = self.counts.entry(key).or_default();
        *clicks += 1;
        *unchecked += u64::from(velocity_unchecked);
    }

    /// The changes by campaign, minute, recorded and settled code.
    pub fn finish(self) -> Vec<VerdictChange> {
        let mut out: Vec<VerdictChange> = self
            .counts
            .into_iter()
            .map(
                |((advertiser_id, campaign_id, minute, recorded, settled), (clicks, unchecked))| {
                    VerdictChange {
                        advertiser_id,
                        campaign_id,
                        minute: Minute(minute),
                        recorded: Reason::from_code(recorded).into(),
                        settled: Reason::from_code(settled).into(),
                        clicks,
                        velocity_unchecked: unchecked,
                    }
                },
            )
            .collect();
        out.sort_by_key(|c| {
            (
                c.advertiser_id,
                c.campaign_id,
                c.minute.0,
                c.recorded.code(),
                c.settled.code(),
            )
        });
        out
    }
}

/// A campaign's clicks whose verdict changed one way over the day: a report row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChangeRow {
    pub advertiser_id: u64,
    pub campaign_id: u64,
    /// `valid`, or the reason ingest recorded.
    pub recorded: &'static str,
    /// `valid`, or the reason the rollup settled.
    pub settled: &'static str,
    pub clicks: u64,
    pub velocity_unchecked: u64,
}

/// The day's changes per campaign and recorded → settled pair, most clicks first.
pub fn by_campaign(changes: &[VerdictChange]) -> Vec<ChangeRow> {
    let mut sums: BTreeMap<(u64, u64, u8, u8), (u64, u64)> = BTreeMap::new();
    for c in changes {
        let key = (
            c.advertiser_id,
            c.campaign_id,
            c.recorded.code(),
            c.settled.code(),
        );
        let (clicks, unchecked) = sums.entry(key).or_default();
        *clicks += c.clicks;
        *unchecked += c.velocity_unchecked;
    }
    let mut rows: Vec<ChangeRow> = sums
        .into_iter()
        .map(
            |((advertiser_id, campaign_id, recorded, settled), (clicks, unchecked))| ChangeRow {
                advertiser_id,
                campaign_id,
                recorded: Verdict::from(Reason::from_code(recorded)).as_str(),
                settled: Verdict::from(Reason::from_code(settled)).as_str(),
                clicks,
                velocity_unchecked: unchecked,
            },
        )
        .collect();
    // Stable: equal counts keep campaign order.
    rows.sort_by_key(|r| std::cmp::Reverse(r.clicks));
    rows
}

/// One campaign's clicks of one minute whose verdict changed one way: a report row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MinuteRow {
    pub advertiser_id: u64,
    pub campaign_id: u64,
    /// The end of the clicks' minute (their samples' timestamp), Unix ms.
    pub minute_end_ms: i64,
    pub recorded: &'static str,
    pub settled: &'static str,
    pub clicks: u64,
    pub velocity_unchecked: u64,
}

/// The report's "live classification differed" section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ChangesReport {
    /// Clicks of the day whose settled verdict is not the recorded one.
    pub clicks: u64,
    /// Of them, those ingest flagged velocity-unchecked.
    pub velocity_unchecked: u64,
    /// Per campaign and recorded → settled pair, most clicks first (at most `report_max_rows`).
    pub campaigns: Vec<ChangeRow>,
    /// Per campaign, minute and pair, most clicks first (at most `report_max_rows`).
    pub minutes: Vec<MinuteRow>,
}

/// The report of the day's changes, `max_rows` rows of each kind.
pub fn report(changes: &[VerdictChange], max_rows: usize) -> ChangesReport {
    let mut campaigns = by_campaign(changes);
    campaigns.truncate(max_rows);
    let mut minutes: Vec<MinuteRow> = changes
        .iter()
        .map(|c| MinuteRow {
            advertiser_id: c.advertiser_id,
            campaign_id: c.campaign_id,
            minute_end_ms: c.minute.end_ms(),
            recorded: c.recorded.as_str(),
            settled: c.settled.as_str(),
            clicks: c.clicks,
            velocity_unchecked: c.velocity_unchecked,
        })
        .collect();
    minutes.sort_by_key(|r| std::cmp::Reverse(r.clicks));
    minutes.truncate(max_rows);
    ChangesReport {
        clicks: changes.iter().map(|c| c.clicks).sum(),
        velocity_unchecked: changes.iter().map(|c| c.velocity_unchecked).sum(),
        campaigns,
        minutes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use adclick_click::wire::InvalidReason;

    #[test]
    fn recorded_verdicts_read_the_code_and_unknown_codes_are_valid() {
        let mut click = Click::default();
        assert_eq!(recorded(&click), Verdict::Valid);
        click.invalid_reason = InvalidReason::UserVelocity as i32;
        assert_eq!(recorded(&click), Verdict::Invalid(Reason::UserVelocity));
        click.invalid_reason = 99;
        assert_eq!(recorded(&click), Verdict::Valid);
        assert!(!velocity_unchecked(&click));
        click.set_flag(ClickFlag::VelocityUnchecked);
        assert!(velocity_unchecked(&click));
    }

    #[test]
    fn too_fast_never_fires_on_an_unknown_issue_or_receive_time() {
        let rules = adclick_invalid::Rules::new(
            &adclick_invalid::Config::default(),
            adclick_invalid::DenyList::empty(),
        )
        .unwrap();
        let at = |issued: u64, received: i64| {
            adclick_invalid::settle(
                Verdict::Valid,
                &activity_facts(issued, received, Velocity::default()),
                &rules,
            )
        };
        // Without the guard the classifier calls these too fast (received within a second of
        // the epoch, or before the token).
        assert_eq!(at(0, 0), Verdict::Valid);
        assert_eq!(at(0, 999), Verdict::Valid);
        assert_eq!(at(1_795_000_000, 0), Verdict::Valid);
        assert_eq!(at(0, 1_795_000_000_000), Verdict::Valid);
        // Known: the rule as ingest applies it.
        assert_eq!(
            at(1_795_000_000, 1_795_000_000_999),
            Verdict::Invalid(Reason::TooFast)
        );
        assert_eq!(at(1_795_000_000, 1_795_000_001_000), Verdict::Valid);
    }

    #[test]
    fn changes_count_per_minute_and_sum_per_campaign() {
        let m = Minute(29_916_666);
        let uv = Verdict::Invalid(Reason::UserVelocity);
        let mut changes = Changes::default();
        changes.add((1, 7), m, uv, Verdict::Valid, true);
        changes.add((1, 7), m, uv, Verdict::Valid, false);
        changes.add((1, 7), m.next(), uv, Verdict::Valid, true);
        changes.add((1, 7), m, Verdict::Valid, uv, true);
        changes.add((1, 8), m, Verdict::Valid, Verdict::Valid, true); // the same: not a change
        let changes = changes.finish();
        assert_eq!(changes.len(), 3);
        assert_eq!(
            changes[0],
            VerdictChange {
                advertiser_id: 1,
                campaign_id: 7,
                minute: m,
                recorded: Verdict::Valid,
                settled: uv,
                clicks: 1,
                velocity_unchecked: 1,
            }
        );
        let rows = by_campaign(&changes);
        assert_eq!(
            rows,
            vec![
                ChangeRow {
                    advertiser_id: 1,
                    campaign_id: 7,
                    recorded: "user_velocity",
                    settled: "valid",
                    clicks: 3,
                    velocity_unchecked: 2,
                },
                ChangeRow {
                    advertiser_id: 1,
                    campaign_id: 7,
                    recorded: "valid",
                    settled: "user_velocity",
                    clicks: 1,
                    velocity_unchecked: 1,
                },
            ]
        );
        let report = report(&changes, 1);
        assert_eq!((report.clicks, report.velocity_unchecked), (4, 3));
        assert_eq!(report.campaigns, rows[..1]);
        assert_eq!(report.minutes.len(), 1);
        assert_eq!(report.minutes[0].clicks, 2);
        assert_eq!(report.minutes[0].minute_end_ms, m.end_ms());
    }
}
