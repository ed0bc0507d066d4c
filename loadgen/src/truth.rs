//! The ground truth of a run: how many unique valid clicks each ad got in each event-time
//! minute, as adclick defines it, and with invalid traffic (`invalid`, `floods`) how many invalid
//! ones each campaign got per reason; built from what the target acknowledged, written as CSV plus
//! a JSON summary, and read back by tests.
//!
//! Every file is UTF-8 text, one record a line ending in `\n` (no `\r`), fields separated by `,`
//! with no spaces and no quoting, numbers in decimal ASCII without sign or leading zeros; the
//! first line is the header shown. Each is written to a `.tmp` file first and renamed, so a
//! reader never sees half of one.
//!
//! `truth.csv`, one row per (ad, minute) with at least one valid click, sorted by minute then ids
//! (advertiser, campaign, ad):
//! ```text
//! advertiser_id,campaign_id,ad_id,minute_end_ms,clicks
//! 3,41,812,1795000020000,17
//! ```
//! `minute_end_ms` is the END of the minute (ms since the epoch): the timestamp of the
//! `adclick_clicks` sample that must hold `clicks`. An impression counts once, in the minute of
//! its first acknowledged click; forged and expired tokens never count, nor do invalid clicks, nor
//! the flood ads' clicks (`floods.csv`). `too_late.csv` has the same format: the part of
//! `truth.csv`'s rows that arrives after its minute is final.
//!
//! Written only when the plan has invalid traffic (`--invalid-share` above 0), so an honest run's
//! files are what they always were:
//!
//! `invalid.csv`, one row per (campaign, reason, minute) with at least one invalid click of a
//! reason the plan decides (`bot_user_agent`, `deny_listed_network`, `prefetch`, `too_fast`),
//! sorted by minute, then advertiser and campaign ids, then reason name (byte order):
//! ```text
//! advertiser_id,campaign_id,reason,minute_end_ms,clicks
//! 3,41,bot_user_agent,1795000020000,2
//! 3,41,prefetch,1795000020000,1
//! ```
//! `reason` is the label value of `adclick_invalid_clicks{reason}` (adclick-invalid's
//! `Reason::as_str`); `clicks` is what that series must hold for the campaign in the minute ending
//! at `minute_end_ms`. A request-invalid send (bot, deny-listed, prefetch) counts once per
//! impression and reason, separately from the impression's own click: a prefetch and then the
//! person's click count one `prefetch` here and one valid click in `truth.csv`.
//!
//! `floods.csv`, the flood ads' clicks (`floods`), in `truth.csv`'s format: per ad and minute,
//! valid plus `user_velocity` plus `ip_velocity`. Which part is which follows from ingest's receive
//! clock, so it is not predicted here: `adclick_clicks` plus the velocity reasons of
//! `adclick_invalid_clicks` must add up to it, and the rollup's settlement of the archive (the
//! same classifier over the receive times ingest recorded) checks the split.
//!
//! With users or prices in the plan (`--users`, `--price-micros`), also what the counted clicks
//! cost and who made them, per ad and minute, per partition and per settlement day: [`money`]
//! writes out those files (`user_clicks.csv`, `spend.csv`, `too_late_spend.csv`, `days.csv`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufWriter, Write};
use std::path::Path;

use adclick_click::{Click, Minute};
use adclick_invalid::Reason;
use serde::{Deserialize, Serialize};

pub mod money;

use crate::latency::LatencySummary;
use crate::partition::Partitioning;
use crate::plan::{Lateness, Send, SendKind};
use crate::population::AdRef;

/// What the target did with one send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted: a 302 to the right landing page, or a Kafka delivery report.
    Accepted,
    /// Refused with this HTTP status (forged and expired tokens must be).
    Refused(u16),
    /// Transport error or timeout: the target may or may not have counted it.
    Failed(String),
    /// Accepted but wrong (e.g. a 302 to another URL).
    Wrong(String),
}

/// One row of the truth: an ad in a minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TruthKey {
    pub minute_end_ms: i64,
    pub ad: AdRef,
}

impl TruthKey {
    /// The row a click on `ad` at `event_time_ms` is counted in.
    pub fn of(ad: AdRef, event_time_ms: i64) -> TruthKey {
        TruthKey {
            minute_end_ms: Minute::of(event_time_ms).end_ms(),
            ad,
        }
    }
}

/// One row of `invalid.csv`: a campaign's invalid clicks of one reason in a minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InvalidKey {
    pub minute_end_ms: i64,
    pub advertiser_id: u64,
    pub campaign_id: u64,
    pub reason: Reason,
}

impl InvalidKey {
    /// The row an invalid send on `ad` at `event_time_ms` is counted in.
    pub fn of(ad: AdRef, event_time_ms: i64, reason: Reason) -> InvalidKey {
        InvalidKey {
            minute_end_ms: Minute::of(event_time_ms).end_ms(),
            advertiser_id: ad.advertiser_id,
            campaign_id: ad.campaign_id,
            reason,
        }
    }

    fn sort_key(&self) -> (i64, u64, u64, &'static str) {
        (
            self.minute_end_ms,
            self.advertiser_id,
            self.campaign_id,
            self.reason.as_str(),
        )
    }
}

/// The file's order: minute, advertiser, campaign, reason name.
impl Ord for InvalidKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.sort_key().cmp(&other.sort_key())
    }
}

impl PartialOrd for InvalidKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// adclick's counting rule applied to click records, as they sit in a topic or an archive: an
/// impression counts once, in the minute of its earliest event time. The reference every
/// pipeline's output is checked against.
pub fn count_clicks<'a>(clicks: impl IntoIterator<Item = &'a Click>) -> BTreeMap<TruthKey, u64> {
    let mut first: HashMap<&[u8], (AdRef, i64)> = HashMap::new();
    for c in clicks {
        let ad = AdRef {
            advertiser_id: c.advertiser_id,
            campaign_id: c.campaign_id,
            ad_id: c.ad_id,
        };
        let earliest = first
            .entry(&c.impression_id)
            .or_insert((ad, c.event_time_ms));
        earliest.1 = earliest.1.min(c.event_time_ms);
    }
    let mut counts = BTreeMap::new();
    for (ad, t) in first.into_values() {
        *counts.entry(TruthKey::of(ad, t)).or_default() += 1;
    }
    counts
}

/// Totals of a run, written as `summary.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub seed: u64,
    pub start_ms: i64,
    pub sends: u64,
    /// Unique valid clicks counted: the sum of `truth.csv`.
    pub clicks: u64,
    pub duplicates_sent: u64,
    /// Counted clicks whose event time lagged, within the allowed lateness / beyond it.
    pub late_clicks: u64,
    pub too_late_clicks: u64,
    pub forged_sent: u64,
    pub expired_sent: u64,
    /// Forged and expired sends the target refused, as it must.
    pub refused_as_expected: u64,
    /// Sends whose outcome was not what adclick promises (refused genuine click, accepted forgery,
    /// wrong redirect, transport error). The truth is exact only when this is 0.
    pub errors: u64,
    /// The first few errors, for the operator.
    pub error_examples: Vec<String>,
    pub elapsed_secs: f64,
    pub achieved_rate: f64,
    /// Time from a send's start to its answer (HTTP response, Kafka delivery report), every send.
    #[serde(default)]
    pub latency: LatencySummary,
    /// How late sends started against their planned instant. Near 0 when the generator held the
    /// planned rate (an open-loop run: `latency` is then what a client arriving at that rate
    /// sees); in a run planned faster than the target answers, the time sends waited for a free
    /// `max_in_flight` slot (a closed-loop run at the target's maximum rate).
    #[serde(default)]
    pub start_lag: LatencySummary,
    /// Time from a send's planned instant to its answer: `start_lag` and `latency` of each send
    /// added, what a client arriving on schedule waited. In an open-loop run whose sends waited
    /// for a `max_in_flight` slot, the server's slowness that `latency` leaves out is here.
    #[serde(default)]
    pub from_schedule: LatencySummary,
    /// Invalid clicks counted per reason name: the sums of `invalid.csv` (absent without invalid
    /// traffic).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub invalid: BTreeMap<String, u64>,
    /// The flood ads' clicks, valid and velocity-invalid: the sum of `floods.csv`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub flood_clicks: u64,
    /// The counted clicks' prices: the sum of `spend.csv` (absent without users or prices).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spend_micros: Option<u64>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Accumulates the truth as outcomes come in.
#[derive(Debug, Default)]
pub struct GroundTruth {
    counts: BTreeMap<TruthKey, u64>,
    /// The part of `counts` that arrives after its minute is final (beyond the allowed
    /// lateness): the stream counts it in `adclick_late_clicks`, the rollup in its minute.
    too_late: BTreeMap<TruthKey, u64>,
    /// Impressions whose first click failed while a duplicate is still to come: that duplicate,
    /// if acknowledged, is the impression's first counted click.
    failed_originals: HashSet<[u8; 16]>,
    /// Invalid clicks of the deterministic reasons (`invalid.csv`).
    invalid: BTreeMap<InvalidKey, u64>,
    /// The flood ads' clicks (`floods.csv`).
    floods: BTreeMap<TruthKey, u64>,
    /// The plan has invalid traffic: write `invalid.csv` and `floods.csv`.
    invalid_traffic: bool,
    /// The plan has users or prices: their truth (`money`).
    money: Option<money::MoneyTruth>,
    pub summary: Summary,
}

const ERROR_EXAMPLES: usize = 10;

impl GroundTruth {
    pub fn new(seed: u64, start_ms: i64) -> GroundTruth {
        GroundTruth {
            summary: Summary {
                seed,
                start_ms,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    /// A truth that writes `invalid.csv` and `floods.csv` too (the plan has invalid traffic).
    pub fn with_invalid_traffic(mut self) -> GroundTruth {
        self.invalid_traffic = true;
        self
    }

    /// A truth that keeps spend and unique users too (the plan has users or prices), placing each
    /// counted click on the partition `partitioning` gives it.
    pub fn with_money(mut self, partitioning: Partitioning) -> GroundTruth {
        self.money = Some(money::MoneyTruth::new(partitioning));
        self.summary.spend_micros = Some(0);
        self
    }

    /// Takes the outcome of one send into account.
    pub fn record(&mut self, send: &Send, outcome: &Outcome) {
        let s = &mut self.summary;
        s.sends += 1;
        let accepted = *outcome == Outcome::Accepted;
        let expected = match send.kind {
            SendKind::Click => {
                if accepted {
                    self.count(send);
                } else if send.duplicated_later {
                    self.failed_originals.insert(send.impression_id);
                }
                accepted
            }
            SendKind::Duplicate => {
                s.duplicates_sent += 1;
                if accepted && self.failed_originals.remove(&send.impression_id) {
                    self.count(send);
                }
                accepted
            }
            SendKind::Forged(_) | SendKind::Expired => {
                if matches!(send.kind, SendKind::Expired) {
                    s.expired_sent += 1;
                } else {
                    s.forged_sent += 1;
                }
                let refused = matches!(outcome, Outcome::Refused(400..=499));
                s.refused_as_expected += refused as u64;
                refused
            }
            SendKind::Prefetch(_) => {
                // Its answer is checked by the target (503); anything else is `Wrong`.
                let refused = matches!(outcome, Outcome::Refused(503));
                if refused {
                    self.count_invalid(send, Reason::Prefetch);
                }
                refused
            }
            SendKind::Bot | SendKind::DenyListed | SendKind::TooFast => {
                match send.kind.invalid_reason() {
                    Some(reason) if accepted => self.count_invalid(send, reason),
                    _ => {}
                }
                accepted
            }
            SendKind::Flood(_) => {
                if accepted {
                    *self
                        .floods
                        .entry(TruthKey::of(send.ad, send.event_time_ms))
                        .or_default() += 1;
                    s.flood_clicks += 1;
                }
                accepted
            }
        };
        if !expected {
            let s = &mut self.summary;
            s.errors += 1;
            if s.error_examples.len() < ERROR_EXAMPLES {
                s.error_examples
                    .push(format!("send {} ({:?}): {outcome:?}", send.seq, send.kind));
            }
        }
    }

    fn count(&mut self, send: &Send) {
        let key = TruthKey::of(send.ad, send.event_time_ms);
        *self.counts.entry(key).or_default() += 1;
        self.summary.clicks += 1;
        if let Some(money) = &mut self.money {
            let price = money.count(send);
            *self.summary.spend_micros.get_or_insert(0) += price;
        }
        match send.lateness {
            Lateness::OnTime => {}
            Lateness::Late => self.summary.late_clicks += 1,
            Lateness::TooLate => {
                self.summary.too_late_clicks += 1;
                *self.too_late.entry(key).or_default() += 1;
            }
        }
    }

    fn count_invalid(&mut self, send: &Send, reason: Reason) {
        let key = InvalidKey::of(send.ad, send.event_time_ms, reason);
        *self.invalid.entry(key).or_default() += 1;
        *self
            .summary
            .invalid
            .entry(reason.as_str().to_string())
            .or_default() += 1;
    }

    /// The invalid clicks of the deterministic reasons so far.
    pub fn invalid(&self) -> &BTreeMap<InvalidKey, u64> {
        &self.invalid
    }

    /// The flood ads' clicks so far.
    pub fn floods(&self) -> &BTreeMap<TruthKey, u64> {
        &self.floods
    }

    /// Spend and unique users so far, when the plan has users or prices.
    pub fn money(&self) -> Option<money::Money> {
        self.money.as_ref().map(money::MoneyTruth::money)
    }

    /// The counts so far.
    pub fn counts(&self) -> &BTreeMap<TruthKey, u64> {
        &self.counts
    }

    /// The counts of clicks that arrive after their minute is final.
    pub fn too_late(&self) -> &BTreeMap<TruthKey, u64> {
        &self.too_late
    }

    /// Writes `truth.csv`, `too_late.csv` (the rows' part beyond the allowed lateness, same
    /// format), with invalid traffic `invalid.csv` and `floods.csv`, with users or prices the
    /// files of [`money`], and `summary.json` into `dir` (created if missing).
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        write_csv(&dir.join("truth.csv"), &self.counts)?;
        write_csv(&dir.join("too_late.csv"), &self.too_late)?;
        if self.invalid_traffic {
            write_invalid_csv(&dir.join("invalid.csv"), &self.invalid)?;
            write_csv(&dir.join("floods.csv"), &self.floods)?;
        }
        if let Some(money) = self.money() {
            money.write(dir)?;
        }
        let json = serde_json::to_vec_pretty(&self.summary).map_err(std::io::Error::other)?;
        std::fs::write(dir.join("summary.json"), json)
    }
}

const TRUTH_HEADER: &str = "advertiser_id,campaign_id,ad_id,minute_end_ms,clicks";
const INVALID_HEADER: &str = "advertiser_id,campaign_id,reason,minute_end_ms,clicks";

fn write_csv(path: &Path, counts: &BTreeMap<TruthKey, u64>) -> std::io::Result<()> {
    write_lines(
        path,
        TRUTH_HEADER,
        counts.iter().map(|(k, n)| {
            format!(
                "{},{},{},{},{n}",
                k.ad.advertiser_id, k.ad.campaign_id, k.ad.ad_id, k.minute_end_ms
            )
        }),
    )
}

fn write_invalid_csv(path: &Path, counts: &BTreeMap<InvalidKey, u64>) -> std::io::Result<()> {
    write_lines(
        path,
        INVALID_HEADER,
        counts.iter().map(|(k, n)| {
            format!(
                "{},{},{},{},{n}",
                k.advertiser_id,
                k.campaign_id,
                k.reason.as_str(),
                k.minute_end_ms
            )
        }),
    )
}

/// `header` and `lines`, each ending in `\n`, into `path` through a renamed `.tmp` file.
fn write_lines(
    path: &Path,
    header: &str,
    lines: impl Iterator<Item = String>,
) -> std::io::Result<()> {
    let tmp = path.with_extension("csv.tmp");
    let mut out = BufWriter::new(std::fs::File::create(&tmp)?);
    writeln!(out, "{header}")?;
    for line in lines {
        writeln!(out, "{line}")?;
    }
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    std::fs::rename(tmp, path)
}

/// Why a truth file cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {what}")]
    Format {
        path: String,
        line: usize,
        what: String,
    },
}

/// Reads a `truth.csv` (or `too_late.csv`, `floods.csv`) back.
pub fn read_truth(path: &Path) -> Result<BTreeMap<TruthKey, u64>, ReadError> {
    read_rows(path, TRUTH_HEADER, |[adv, camp, ad, minute], num| {
        Ok(TruthKey {
            minute_end_ms: num(minute)? as i64,
            ad: AdRef {
                advertiser_id: num(adv)?,
                campaign_id: num(camp)?,
                ad_id: num(ad)?,
            },
        })
    })
}

/// Reads an `invalid.csv` back.
pub fn read_invalid(path: &Path) -> Result<BTreeMap<InvalidKey, u64>, ReadError> {
    read_rows(path, INVALID_HEADER, |[adv, camp, reason, minute], num| {
        Ok(InvalidKey {
            minute_end_ms: num(minute)? as i64,
            advertiser_id: num(adv)?,
            campaign_id: num(camp)?,
            reason: reason.parse().map_err(|e| format!("{e}"))?,
        })
    })
}

/// The rows of a CSV file of the module doc: `header`, then four key fields and a count per
/// line, each key made by `key` from its fields and a parser of unsigned numbers.
fn read_rows<K: Ord>(
    path: &Path,
    header: &str,
    key: impl Fn([&str; 4], &dyn Fn(&str) -> Result<u64, String>) -> Result<K, String>,
) -> Result<BTreeMap<K, u64>, ReadError> {
    let num = |s: &str| {
        s.parse::<u64>()
            .ok()
            .filter(|n| *n <= i64::MAX as u64)
            .ok_or_else(|| format!("{s:?} is not a count or an id"))
    };
    read_csv(path, header, |f| {
        Ok((key([f[0], f[1], f[2], f[3]], &num)?, num(f[4])?))
    })
}

/// The rows of a CSV file of the module doc: `header`, then as many fields a line as it names,
/// each line made a (key, value) by `row`.
pub(crate) fn read_csv<K: Ord, V>(
    path: &Path,
    header: &str,
    row: impl Fn(&[&str]) -> Result<(K, V), String>,
) -> Result<BTreeMap<K, V>, ReadError> {
    let p = path.display().to_string();
    let io = |source| ReadError::Io {
        path: p.clone(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let width = header.split(',').count();
    let mut rows = BTreeMap::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(io)?;
        let bad = |what: String| ReadError::Format {
            path: p.clone(),
            line: i + 1,
            what,
        };
        if i == 0 {
            if line != header {
                return Err(bad(format!("unexpected header {line:?}")));
            }
            continue;
        }
        let fields: Vec<&str> = line.split(',').collect();
        if fields.len() != width {
            return Err(bad(format!(
                "expected {width} fields, got {}",
                fields.len()
            )));
        }
        let (k, v) = row(&fields).map_err(bad)?;
        if rows.insert(k, v).is_some() {
            return Err(bad("duplicate row".into()));
        }
    }
    Ok(rows)
}

/// Reads a `summary.json` back.
pub fn read_summary(path: &Path) -> Result<Summary, ReadError> {
    let p = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| ReadError::Io {
        path: p.clone(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|e| ReadError::Format {
        path: p,
        line: e.line(),
        what: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Forgery, Plan, PlanConfig};
    use crate::shape::TrafficShape;
    use std::collections::HashMap;

    fn plan() -> Vec<Send> {
        Plan::new(PlanConfig {
            seed: 9,
            start_ms: 1_800_000_030_000,
            duration_secs: 180.0,
            shape: TrafficShape::Steady { rate: 100.0 },
            duplicate_share: 0.1,
            late_share: 0.1,
            too_late_share: 0.05,
            forged_share: 0.02,
            expired_share: 0.02,
            ..Default::default()
        })
        .unwrap()
        .collect()
    }

    /// What a correct target answers.
    fn honest(send: &Send) -> Outcome {
        match send.kind {
            SendKind::Click | SendKind::Duplicate => Outcome::Accepted,
            SendKind::Forged(Forgery::UnknownKeyId) => Outcome::Refused(401),
            SendKind::Forged(Forgery::WrongKey) => Outcome::Refused(403),
            SendKind::Expired => Outcome::Refused(410),
            SendKind::Prefetch(_) => Outcome::Refused(503),
            SendKind::Bot | SendKind::DenyListed | SendKind::TooFast | SendKind::Flood(_) => {
                Outcome::Accepted
            }
        }
    }

    #[test]
    fn truth_counts_each_impression_once_in_its_event_minute() {
        let sends = plan();
        let mut truth = GroundTruth::new(9, 0);
        for s in &sends {
            truth.record(s, &honest(s));
        }
        // Independent recount: first click per impression, by event time, forged/expired excluded.
        let mut first: HashMap<[u8; 16], &Send> = HashMap::new();
        for s in sends
            .iter()
            .filter(|s| matches!(s.kind, SendKind::Click | SendKind::Duplicate))
        {
            let e = first.entry(s.impression_id).or_insert(s);
            if s.event_time_ms < e.event_time_ms {
                *e = s;
            }
        }
        let mut expected: BTreeMap<TruthKey, u64> = BTreeMap::new();
        for s in first.values() {
            let key = TruthKey::of(s.ad, s.event_time_ms);
            *expected.entry(key).or_default() += 1;
        }
        assert_eq!(truth.counts(), &expected);
        let sum = &truth.summary;
        assert_eq!(sum.errors, 0, "{:?}", sum.error_examples);
        assert_eq!(sum.clicks, first.len() as u64);
        assert_eq!(sum.refused_as_expected, sum.forged_sent + sum.expired_sent);
        assert!(sum.duplicates_sent > 100 && sum.late_clicks > 100 && sum.too_late_clicks > 50);
        // Late clicks sit in their event-time minute, not their send minute.
        let too_late = sends
            .iter()
            .find(|s| s.lateness == Lateness::TooLate && s.kind == SendKind::Click)
            .unwrap();
        let key = TruthKey::of(too_late.ad, too_late.event_time_ms);
        assert!(Minute::of(too_late.event_time_ms) < Minute::of(too_late.at_ms));
        assert!(truth.counts()[&key] >= 1);
    }

    #[test]
    fn a_failed_first_click_is_counted_by_its_duplicate() {
        let sends = plan();
        let orig = sends.iter().find(|s| s.duplicated_later).unwrap();
        let dup = sends
            .iter()
            .find(|s| s.kind == SendKind::Duplicate && s.impression_id == orig.impression_id)
            .unwrap();
        let mut truth = GroundTruth::new(0, 0);
        truth.record(orig, &Outcome::Failed("connection reset".into()));
        truth.record(dup, &Outcome::Accepted);
        let key = TruthKey::of(dup.ad, dup.event_time_ms);
        assert_eq!(truth.counts().get(&key), Some(&1));
        assert_eq!(truth.summary.clicks, 1);
        assert_eq!(truth.summary.errors, 1);
    }

    #[test]
    fn accepted_forgeries_are_errors_and_never_counted() {
        let sends = plan();
        let forged = sends
            .iter()
            .find(|s| matches!(s.kind, SendKind::Forged(_)))
            .unwrap();
        let mut truth = GroundTruth::new(0, 0);
        truth.record(forged, &Outcome::Accepted);
        assert_eq!(truth.summary.clicks, 0);
        assert_eq!(truth.summary.errors, 1);
    }

    #[test]
    fn files_round_trip() {
        let sends = plan();
        let mut truth = GroundTruth::new(9, 5);
        for s in &sends {
            truth.record(s, &honest(s));
        }
        let dir = tempfile::tempdir().unwrap();
        truth.write(dir.path()).unwrap();
        assert_eq!(
            &read_truth(&dir.path().join("truth.csv")).unwrap(),
            truth.counts()
        );
        assert_eq!(
            read_summary(&dir.path().join("summary.json")).unwrap(),
            truth.summary
        );
        std::fs::write(
            dir.path().join("bad.csv"),
            "advertiser_id,campaign_id,ad_id,minute_end_ms,clicks\n1,2,x,4,5\n",
        )
        .unwrap();
        let err = read_truth(&dir.path().join("bad.csv"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("bad.csv:2"), "{err}");
    }

    /// Without invalid traffic, a seed's plan and truth are what they were before invalid
    /// traffic existed: the digests were taken from the build before it (commit cb92f8b). Only
    /// the token's issue time moved, a second earlier (`invalid`), and the browser and address
    /// were added, none of which the truth depends on.
    #[test]
    fn an_honest_plan_and_its_truth_are_what_they_were() {
        use sha2::{Digest, Sha256};
        let sends = Plan::new(PlanConfig {
            seed: 77,
            start_ms: 1_800_000_010_000,
            duration_secs: 150.0,
            shape: TrafficShape::Steady { rate: 200.0 },
            duplicate_share: 0.1,
            late_share: 0.1,
            too_late_share: 0.05,
            forged_share: 0.02,
            expired_share: 0.02,
            users: 1_000,
            ..Default::default()
        })
        .unwrap();
        let mut truth = GroundTruth::new(77, 0);
        let mut plan_digest = Sha256::new();
        for s in sends {
            plan_digest.update(format!(
                "{} {} {:?} {:?} {:?} {:?} {} {} {}\n",
                s.seq,
                s.at_ms,
                s.kind,
                s.lateness,
                s.ad,
                s.impression_id,
                s.event_time_ms,
                s.user_hash,
                s.duplicated_later
            ));
            truth.record(&s, &honest(&s));
        }
        let dir = tempfile::tempdir().unwrap();
        truth.write(dir.path()).unwrap();
        let mut files = Sha256::new();
        files.update(std::fs::read(dir.path().join("truth.csv")).unwrap());
        files.update(std::fs::read(dir.path().join("too_late.csv")).unwrap());
        assert_eq!(
            format!("{:x}", files.finalize()),
            "08fb0df7a7d174fac78fe3b41a5a50ab6b3d28af5ad7edc5c678088d69f9a470"
        );
        assert_eq!(
            format!("{:x}", plan_digest.finalize()),
            "bf83469fa0765ef621611cdeefdf70cc44a4497d51c9c868db5b864a0701ec4d"
        );
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["summary.json", "too_late.csv", "truth.csv"]);
        let summary = std::fs::read_to_string(dir.path().join("summary.json")).unwrap();
        assert!(
            !summary.contains("invalid") && !summary.contains("flood"),
            "{summary}"
        );
    }
}
