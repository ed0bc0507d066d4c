//! The settled day as a TSDB block: the stream's metrics, labels and timestamps, every ad on its
//! own series.
//!
//! Series:
//! - `adclick_clicks{advertiser_id, campaign_id, ad_id, <[rollup] labels>}`: valid clicks, the
//!   stream's series without `partition` (one writer, no top K, so nothing to keep apart); the
//!   README's queries sum `partition` away, so they read both tiers alike.
//! - `adclick_spend_micros{advertiser_id, campaign_id, ad_id, <[rollup] labels>}`: the sum of
//!   `price_micros` of those clicks, and `adclick_unique_users{...the same labels}`: their distinct
//!   non-zero `user_hash` — beside `adclick_clicks` with exactly its samples' timestamps (a
//!   minute of free clicks has a spend sample of 0, a minute of unknown users a 0 of users). The
//!   block's users are exact per ad and minute; they do not add up across minutes or ads (the
//!   day's users are [`crate::daily`]'s).
//! - `adclick_invalid_clicks{advertiser_id, campaign_id, reason, <[rollup] labels>}`: invalid
//!   clicks per campaign and reason (the reason's stable name), as the stream writes them, again
//!   without `partition`.
//!
//! All carry the block's external labels (`tier="rollup"`) through Thanos. Samples: the figure of
//! each minute with clicks, stamped with the minute's end, and an explicit 0 at the end of the
//! minute after the last of a run of minutes — the same shape the stream writes, so a graph at a
//! 1-minute step never carries a count over the 5-minute look-back into minutes without clicks.

use std::collections::BTreeMap;
use std::path::Path;

use adclick_click::{Day, Minute};
use adclick_tsdb::{BlockError, BlockOptions, Label, Sample, Series, Ulid, WrittenBlock};

use crate::settle::{AdMinute, SettledDay};

pub const CLICKS: &str = "adclick_clicks";
pub const SPEND_MICROS: &str = "adclick_spend_micros";
pub const UNIQUE_USERS: &str = "adclick_unique_users";
pub const INVALID_CLICKS: &str = "adclick_invalid_clicks";
/// `thanos.source` of the rollup's blocks.
pub const SOURCE: &str = "adclick-rollup";

/// The series of a settled day, in no particular order (the writer sorts labels and series).
pub fn series(
    day: Day,
    settled: &SettledDay,
    extra_labels: &BTreeMap<String, String>,
) -> Vec<Series> {
    let block_end = day.end_ms();
    let extra = || {
        extra_labels
            .iter()
            .map(|(k, v)| Label::new(k.clone(), v.clone()))
    };
    /// A metric of an ad's minutes, and its figure of one minute.
    type AdFigure = (&'static str, fn(&AdMinute) -> u64);
    // Each ad's three series, with the same samples' timestamps (the minutes with clicks).
    const AD_SERIES: [AdFigure; 3] = [
        (CLICKS, |m| m.clicks),
        (SPEND_MICROS, |m| m.spend_micros),
        (UNIQUE_USERS, |m| m.unique_users),
    ];
    let valid = settled.ads.iter().flat_map(|(ad, minutes)| {
        AD_SERIES.iter().map(move |(name, figure)| {
            let mut labels = vec![
                Label::new("__name__", *name),
                Label::new("advertiser_id", ad.advertiser_id.to_string()),
                Label::new("campaign_id", ad.campaign_id.to_string()),
                Label::new("ad_id", ad.ad_id.to_string()),
            ];
            labels.extend(extra());
            Series {
                labels,
                samples: samples(minutes, figure, block_end),
            }
        })
    });
    let invalid = settled.invalid.iter().map(|(key, minutes)| {
        let mut labels = vec![
            Label::new("__name__", INVALID_CLICKS),
            Label::new("advertiser_id", key.advertiser_id.to_string()),
            Label::new("campaign_id", key.campaign_id.to_string()),
            Label::new("reason", key.reason.as_str()),
        ];
        labels.extend(extra());
        Series {
            labels,
            samples: samples(minutes, |n| *n, block_end),
        }
    });
    valid.chain(invalid).collect()
}

/// A series' samples: each minute's `figure` at its end (whatever its value: these are the
/// minutes with clicks), and a 0 closing each run of minutes inside the block.
fn samples<T>(minutes: &[(Minute, T)], figure: impl Fn(&T) -> u64, block_end: i64) -> Vec<Sample> {
    let mut samples = Vec::with_capacity(minutes.len() + 1);
    for (i, (minute, figures)) in minutes.iter().enumerate() {
        let minute = *minute;
        // Exact while a sample is at most 2^53 (9e9 currency units of spend in a minute).
        samples.push(Sample::new(minute.end_ms(), figure(figures) as f64));
        let next = minute.next();
        let next_has_clicks = minutes.get(i + 1).is_some_and(|(m, _)| *m == next);
        if !next_has_clicks && next.end_ms() < block_end {
            samples.push(Sample::new(next.end_ms(), 0.0));
        }
    }
    samples
}

/// Writes the block of `day` under `parent` (`<parent>/<ulid>`, via a temporary directory).
pub fn write(
    parent: &Path,
    day: Day,
    settled: &SettledDay,
    extra_labels: &BTreeMap<String, String>,
    external_labels: &BTreeMap<String, String>,
    ulid: Ulid,
    replaces: &[Ulid],
) -> Result<WrittenBlock, BlockError> {
    let options = BlockOptions::new(
        day.start_ms(),
        day.end_ms(),
        external_labels.clone(),
        SOURCE,
    )
    .with_ulid(ulid)
    .replacing(replaces.iter().copied());
    adclick_tsdb::write_block(parent, options, series(day, settled, extra_labels))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settle::{AdKey, InvalidKey};
    use adclick_invalid::Reason;

    #[test]
    fn zeros_close_each_run_of_minutes_inside_the_block() {
        let day: Day = "2026-11-23".parse().unwrap();
        let m0 = day.first_minute();
        let last = Minute(day.end_minute().0 - 1);
        let ad = AdKey {
            advertiser_id: 1,
            campaign_id: 2,
            ad_id: 3,
        };
        let figures = |clicks, spend_micros, unique_users| AdMinute {
            clicks,
            spend_micros,
            unique_users,
        };
        let settled = SettledDay {
            ads: vec![(
                ad,
                vec![
                    (m0, figures(4, 1_500_000, 3)),
                    // Free clicks of unknown users: samples of 0, not gaps.
                    (m0.next(), figures(1, 0, 0)),
                    (Minute(m0.0 + 5), figures(2, 20, 2)),
                    (last, figures(7, 9_007_199_254_740_992, 1)),
                ],
            )],
            ..Default::default()
        };
        let all = series(day, &settled, &BTreeMap::from([("env".into(), "t".into())]));
        let at = |m: i64| day.start_ms() + m * 60_000;
        let of = |name: &str| -> Vec<(i64, f64)> {
            let s = all
                .iter()
                .find(|s| {
                    s.labels
                        .iter()
                        .any(|l| l.name == "__name__" && l.value == name)
                })
                .unwrap();
            assert!(s.labels.iter().any(|l| l.name == "env" && l.value == "t"));
            assert!(s.labels.iter().any(|l| l.name == "ad_id" && l.value == "3"));
            s.samples
                .iter()
                .map(|x| (x.timestamp_ms, x.value))
                .collect()
        };
        assert_eq!(all.len(), 3);
        assert_eq!(
            of(CLICKS),
            vec![
                (at(0), 4.0),
                (at(1), 1.0),
                (at(2), 0.0),
                (at(5), 2.0),
                (at(6), 0.0),
                (at(1439), 7.0)
            ]
        );
        assert_eq!(
            of(SPEND_MICROS),
            vec![
                (at(0), 1_500_000.0),
                (at(1), 0.0),
                (at(2), 0.0),
                (at(5), 20.0),
                (at(6), 0.0),
                (at(1439), 9_007_199_254_740_992.0)
            ]
        );
        assert_eq!(
            of(UNIQUE_USERS),
            vec![
                (at(0), 3.0),
                (at(1), 0.0),
                (at(2), 0.0),
                (at(5), 2.0),
                (at(6), 0.0),
                (at(1439), 1.0)
            ]
        );
    }

    #[test]
    fn invalid_clicks_are_series_per_campaign_and_reason() {
        let day: Day = "2026-11-23".parse().unwrap();
        let m0 = day.first_minute();
        let key = InvalidKey {
            advertiser_id: 1,
            campaign_id: 2,
            reason: Reason::UserVelocity,
        };
        let settled = SettledDay {
            invalid: vec![(key, vec![(m0, 3)])],
            ..Default::default()
        };
        let all = series(day, &settled, &BTreeMap::from([("env".into(), "t".into())]));
        assert_eq!(all.len(), 1);
        let labels: Vec<(&str, &str)> = all[0]
            .labels
            .iter()
            .map(|l| (l.name.as_str(), l.value.as_str()))
            .collect();
        assert_eq!(
            labels,
            [
                ("__name__", "adclick_invalid_clicks"),
                ("advertiser_id", "1"),
                ("campaign_id", "2"),
                ("reason", "user_velocity"),
                ("env", "t"),
            ]
        );
        let got: Vec<(i64, f64)> = all[0]
            .samples
            .iter()
            .map(|x| (x.timestamp_ms, x.value))
            .collect();
        assert_eq!(got, [(m0.end_ms(), 3.0), (m0.next().end_ms(), 0.0)]);
    }
}
