//! The series users query: names, labels, and the samples a closed minute or the running count
//! of an open minute becomes.
//!
//! | series | labels | sample |
//! |---|---|---|
//! | `adclick_clicks` | advertiser_id, campaign_id, ad_id (or `other`), partition | clicks of the minute ending at the timestamp; final |
//! | `adclick_late_clicks` | advertiser_id, campaign_id, block_day, partition | clicks that arrived, during the minute ending at the timestamp, for a minute already final; `block_day` (`YYYY-MM-DD`) is the day whose block holds that minute's sample |
//! | `adclick_clicks_open` | advertiser_id, campaign_id, ad_id (or `other`), partition | running count of the minute in progress at the timestamp; provisional |
//! | `adclick_invalid_clicks` | advertiser_id, campaign_id, reason, partition | invalid traffic (not billed) of the minute ending at the timestamp, by `adclick-invalid` reason; final |
//! | `adclick_late_invalid_clicks` | advertiser_id, campaign_id, reason, block_day, partition | invalid traffic that arrived, during the minute ending at the timestamp, for a minute already final (`block_day` as above) |
//! | `adclick_spend_micros` | as `adclick_clicks` | the sum of `price_micros` of those clicks; final |
//! | `adclick_late_spend_micros` | as `adclick_late_clicks` | the sum of `price_micros` of those late clicks |
//! | `adclick_unique_users` | as `adclick_clicks` | distinct non-zero `user_hash` among those clicks (`other`: among all of the campaign's folded ads' clicks together); final |
//!
//! `adclick_clicks` and its late and open series count **valid** clicks only: what is billed.
//! Spend and unique users go with every `adclick_clicks` series of a closed minute, zeros
//! included, so that the three always name the same ads (`[exporter] spend`, `unique_users`
//! turn them off). Spend adds up across minutes, ads and partitions; unique users do not: a user
//! can click in two minutes, on two ads, or — a hot ad's impressions spread over partitions by
//! their id — in two partitions (each partition then counts them: summing a hot ad's
//! `adclick_unique_users` over `partition` can exceed the ad's users). The rollup's figures per
//! day are exact over everything (README, "Reading the numbers").
//! Float64 holds every integer up to 2^53: a spend sample, and any sum PromQL makes of them, is
//! exact up to 9,007,199,254 units of currency (2^53 micros).
//! Invalid traffic is kept per campaign, never per ad: its six reasons times every ad would
//! multiply the series for figures nobody bills by.
//!
//! `partition` keeps two exporters from ever writing the same series (a hot ad's clicks and a
//! campaign's `other` span partitions); queries sum it away.
//!
//! `block_day` says which day a late click belongs to when it is counted after midnight: the late
//! clicks of 23:58 arrive while 23:59–24:00, the next day's first minute, is open (its sample is
//! stamped 00:00), and the rollup reconciles each day with the late clicks of its own
//! (`rollup/src/reconcile.rs`). Queries of late clicks by when they arrived sum it away too.

use std::collections::BTreeMap;

use adclick_click::Minute;
use adclick_remote_write::{Labels, Sample, stale};

use crate::window::{AdKey, CampaignKey, Day, FastMap, InvalidReason, SeriesKey, Window};

pub const CLICKS: &str = "adclick_clicks";
pub const LATE_CLICKS: &str = "adclick_late_clicks";
pub const OPEN_CLICKS: &str = "adclick_clicks_open";
pub const INVALID_CLICKS: &str = "adclick_invalid_clicks";
pub const LATE_INVALID_CLICKS: &str = "adclick_late_invalid_clicks";
pub const SPEND: &str = "adclick_spend_micros";
pub const LATE_SPEND: &str = "adclick_late_spend_micros";
pub const UNIQUE_USERS: &str = "adclick_unique_users";

/// What a series is about, apart from what it measures: the series of one subject (an ad's
/// clicks, spend and unique users) differ only in `__name__`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Subject {
    /// advertiser_id, campaign_id, ad_id
    Ad(AdKey),
    /// advertiser_id, campaign_id, ad_id="other"
    Other(CampaignKey),
    /// advertiser_id, campaign_id, block_day
    Late(CampaignKey, Day),
    /// advertiser_id, campaign_id, reason
    Invalid(CampaignKey, InvalidReason),
    /// advertiser_id, campaign_id, reason, block_day
    LateInvalid(CampaignKey, InvalidReason, Day),
}

/// The metric a closed minute's series `key` is written under, and what it is about.
fn metric_and_subject(key: SeriesKey) -> (&'static str, Subject) {
    match key {
        SeriesKey::Ad(ad) => (CLICKS, Subject::Ad(ad)),
        SeriesKey::AdSpend(ad) => (SPEND, Subject::Ad(ad)),
        SeriesKey::AdUsers(ad) => (UNIQUE_USERS, Subject::Ad(ad)),
        SeriesKey::Other(c) => (CLICKS, Subject::Other(c)),
        SeriesKey::OtherSpend(c) => (SPEND, Subject::Other(c)),
        SeriesKey::OtherUsers(c) => (UNIQUE_USERS, Subject::Other(c)),
        SeriesKey::Late(c, day) => (LATE_CLICKS, Subject::Late(c, day)),
        SeriesKey::LateSpend(c, day) => (LATE_SPEND, Subject::Late(c, day)),
        SeriesKey::Invalid(c, reason) => (INVALID_CLICKS, Subject::Invalid(c, reason)),
        SeriesKey::LateInvalid(c, reason, day) => {
            (LATE_INVALID_CLICKS, Subject::LateInvalid(c, reason, day))
        }
    }
}

/// Labels the series of the minutes one partition closed. Making a label set (ids written out,
/// sorted, checked, encoded) was most of the exporter's CPU per sample (BENCHMARKS.md, "Spend
/// and unique users"), so the labels of the last subject are kept and only renamed for its other
/// series: a closed minute's samples are sorted with each subject's series side by side
/// ([`SeriesKey`]'s order), so each subject's labels are made once. Right in any order; one
/// label set held, however many series.
pub struct ClosedLabels<'a> {
    partition: i32,
    extra: &'a [(String, String)],
    last: Option<(Subject, Labels)>,
}

impl<'a> ClosedLabels<'a> {
    /// For partition `partition`, with the configured `extra` labels (`[exporter] labels`).
    pub fn new(partition: i32, extra: &'a [(String, String)]) -> Self {
        ClosedLabels {
            partition,
            extra,
            last: None,
        }
    }

    /// The labels of the closed minute's series `key`.
    pub fn of(&mut self, key: SeriesKey) -> Labels {
        let (metric, subject) = metric_and_subject(key);
        match &self.last {
            // The metric names are constants of this module: valid.
            Some((last, made)) if *last == subject => {
                made.with_metric_name(metric).expect("a valid metric name")
            }
            _ => {
                let made = subject_labels(metric, subject, self.partition, self.extra);
                self.last = Some((subject, made.clone()));
                made
            }
        }
    }
}

/// The labels of `key` under `metric`, plus the configured `extra` labels (`[exporter] labels`).
pub fn labels(metric: &str, key: SeriesKey, partition: i32, extra: &[(String, String)]) -> Labels {
    subject_labels(metric, metric_and_subject(key).1, partition, extra)
}

/// The labels of `subject` under `metric`, plus the configured `extra` labels.
fn subject_labels(
    metric: &str,
    subject: Subject,
    partition: i32,
    extra: &[(String, String)],
) -> Labels {
    let partition = partition.to_string();
    // Never `Valid` here (a valid click counts in `adclick_clicks`).
    let reason = |r: InvalidReason| Some(("reason", r.label().unwrap_or("valid").to_string()));
    let day = |d: Day| Some(("block_day", d.to_string()));
    let (campaign, own, day): (CampaignKey, Option<(&str, String)>, _) = match subject {
        Subject::Ad(ad) => (ad.into(), Some(("ad_id", ad.ad_id.to_string())), None),
        Subject::Other(c) => (c, Some(("ad_id", "other".to_string())), None),
        Subject::Late(c, d) => (c, None, day(d)),
        Subject::Invalid(c, r) => (c, reason(r), None),
        Subject::LateInvalid(c, r, d) => (c, reason(r), day(d)),
    };
    let common = [
        ("__name__", metric.to_string()),
        ("advertiser_id", campaign.advertiser_id.to_string()),
        ("campaign_id", campaign.campaign_id.to_string()),
        ("partition", partition),
    ];
    let extra = extra.iter().map(|(k, v)| (k.as_str(), v.clone()));
    // Extra labels were checked at startup (`ExporterConfig::validate`).
    Labels::new(common.into_iter().chain(own).chain(day).chain(extra))
        .expect("valid names, non-empty values")
}

/// The `adclick_clicks_open` series of one partition: what was written for each minute in
/// progress, so that only changes are written, and each minute's series end (stale marker at
/// the minute's end) once the clock has passed it — the final count then comes from
/// `adclick_clicks`.
#[derive(Debug, Default)]
pub struct OpenMinuteSeries {
    written: BTreeMap<Minute, FastMap<SeriesKey, u64>>,
    last_timestamp_ms: i64,
}

impl OpenMinuteSeries {
    /// The samples to write at `now_ms` for the partition's open `windows`.
    pub fn update<'a>(
        &mut self,
        windows: impl Iterator<Item = (&'a Minute, &'a Window)>,
        now_ms: i64,
        top_k: usize,
    ) -> Vec<(SeriesKey, Sample)> {
        let mut out = vec![];
        // Minutes the clock has left: end their series.
        while let Some(entry) = self.written.first_entry() {
            if entry.key().end_ms() > now_ms {
                break;
            }
            let minute = *entry.key();
            let mut keys: Vec<SeriesKey> = entry.remove().into_keys().collect();
            keys.sort_unstable();
            out.extend(
                keys.into_iter()
                    .map(|k| (k, stale::marker(minute.end_ms()))),
            );
        }
        for (minute, window) in windows {
            // Strictly inside the minute, after its previous sample and before the stale marker.
            let ts = now_ms
                .max(self.last_timestamp_ms + 1)
                .max(minute.start_ms() + 1);
            if minute.start_ms() > now_ms || ts >= minute.end_ms() - 1 {
                continue;
            }
            let samples = window.open_clicks(top_k);
            let written = self.written.entry(*minute).or_default();
            let before = out.len();
            // Updated in place (no second map of the open series: memory per open ad-minute is
            // what the exporter's size is measured in).
            for &(key, n) in &samples {
                if written.insert(key, n) != Some(n) {
                    out.push((key, Sample::new(ts, n as f64)));
                }
            }
            // Ads that left the top K since: their open series ends now. `samples` is sorted by
            // key, one sample per key.
            if written.len() > samples.len() {
                let in_folded = |k: &SeriesKey| samples.binary_search_by(|(f, _)| f.cmp(k)).is_ok();
                let mut gone: Vec<SeriesKey> =
                    written.keys().filter(|k| !in_folded(k)).copied().collect();
                gone.sort_unstable();
                for key in gone {
                    written.remove(&key);
                    out.push((key, stale::marker(ts)));
                }
            }
            let changed = out.len() > before;
            if changed {
                self.last_timestamp_ms = ts;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::AdKey;

    const T0: i64 = 1_800_000_000_000; // a minute boundary

    fn ad(id: u64) -> AdKey {
        AdKey {
            advertiser_id: 1,
            campaign_id: 2,
            ad_id: id,
        }
    }

    #[test]
    fn labels_name_the_series() {
        let env = [("env".to_string(), "prod".to_string())];
        let mut closed = ClosedLabels::new(3, &env);
        let l = closed.of(SeriesKey::Ad(ad(5)));
        assert_eq!(
            l.to_string(),
            r#"{__name__="adclick_clicks", ad_id="5", advertiser_id="1", campaign_id="2", env="prod", partition="3"}"#
        );
        let late = closed.of(SeriesKey::Late(ad(5).into(), Day(20_794)));
        assert_eq!(late.metric_name(), LATE_CLICKS);
        assert_eq!(late.get("ad_id"), None);
        assert_eq!(late.get("block_day"), Some("2026-12-07"));
        let other = closed.of(SeriesKey::Other(ad(5).into()));
        assert_eq!(other.get("ad_id"), Some("other"));
        let invalid = closed.of(SeriesKey::Invalid(
            ad(5).into(),
            InvalidReason::BotUserAgent,
        ));
        assert_eq!(invalid.metric_name(), INVALID_CLICKS);
        assert_eq!(invalid.get("reason"), Some("bot_user_agent"));
        assert_eq!(invalid.get("block_day"), None);
        let late_invalid = closed.of(SeriesKey::LateInvalid(
            ad(5).into(),
            InvalidReason::BotUserAgent,
            Day(20_793),
        ));
        assert_eq!(
            late_invalid.to_string(),
            r#"{__name__="adclick_late_invalid_clicks", advertiser_id="1", block_day="2026-12-06", campaign_id="2", env="prod", partition="3", reason="bot_user_agent"}"#
        );
    }

    /// Every series a closed minute writes, in an order where each subject's labels are made by
    /// one key and renamed for the others: the same labels as made from scratch.
    #[test]
    fn renamed_labels_are_the_labels_made_from_scratch() {
        let env = [("Env".to_string(), "prod".to_string())];
        let c = CampaignKey::from(ad(5));
        let keys = [
            SeriesKey::AdUsers(ad(5)),
            SeriesKey::Ad(ad(5)),
            SeriesKey::AdSpend(ad(5)),
            SeriesKey::Ad(ad(6)),
            SeriesKey::AdSpend(ad(6)),
            SeriesKey::Other(c),
            SeriesKey::OtherSpend(c),
            SeriesKey::OtherUsers(c),
            SeriesKey::LateSpend(c, Day(20_794)),
            SeriesKey::Late(c, Day(20_794)),
            SeriesKey::Late(c, Day(20_793)),
            SeriesKey::Invalid(c, InvalidReason::BotUserAgent),
            SeriesKey::LateInvalid(c, InvalidReason::BotUserAgent, Day(20_794)),
            SeriesKey::LateInvalid(c, InvalidReason::BotUserAgent, Day(20_793)),
            SeriesKey::LateInvalid(c, InvalidReason::IpVelocity, Day(20_793)),
            SeriesKey::Ad(ad(5)),
        ];
        let mut closed = ClosedLabels::new(3, &env);
        for key in keys {
            let (metric, _) = metric_and_subject(key);
            let fresh = labels(metric, key, 3, &env);
            assert_eq!(closed.of(key), fresh, "{key:?}");
            assert_eq!(closed.of(key).to_string(), fresh.to_string(), "{key:?}");
        }
    }

    #[test]
    fn open_minute_writes_changes_then_ends_at_the_minute_end() {
        let mut open = OpenMinuteSeries::default();
        let minute = Minute::of(T0);
        let mut w = Window::new(0, None);
        w.count(ad(1), false, 0, 0);
        let first = open.update([(&minute, &w)].into_iter(), T0 + 1_000, 10);
        assert_eq!(
            first,
            vec![(SeriesKey::Ad(ad(1)), Sample::new(T0 + 1_000, 1.0))]
        );
        // Nothing changed: nothing written.
        assert!(
            open.update([(&minute, &w)].into_iter(), T0 + 2_000, 10)
                .is_empty()
        );
        w.count(ad(1), false, 0, 0);
        let second = open.update([(&minute, &w)].into_iter(), T0 + 3_000, 10);
        assert_eq!(
            second,
            vec![(SeriesKey::Ad(ad(1)), Sample::new(T0 + 3_000, 2.0))]
        );
        // The clock passed the minute's end: the series ends there, whatever the window does.
        let after = open.update([(&minute, &w)].into_iter(), T0 + 60_500, 10);
        assert_eq!(after.len(), 1);
        assert!(stale::is_stale_marker(after[0].1.value));
        assert_eq!(after[0].1.timestamp_ms, T0 + 60_000);
    }
}
