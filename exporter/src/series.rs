//! The series users query: names, labels, and the samples a closed minute or the running count
//! of an open minute becomes.
//!
//! | series | labels | sample |
//! |---|---|---|
//! | `adclick_clicks` | advertiser_id, campaign_id, ad_id (or `other`), partition | clicks of the minute ending at the timestamp; final |
//! | `adclick_late_clicks` | advertiser_id, campaign_id, partition | clicks that arrived, during the minute ending at the timestamp, for a minute already final |
//! | `adclick_clicks_open` | advertiser_id, campaign_id, ad_id (or `other`), partition | running count of the minute in progress at the timestamp; provisional |
//! | `adclick_invalid_clicks` | advertiser_id, campaign_id, reason, partition | invalid traffic (not billed) of the minute ending at the timestamp, by `adclick-invalid` reason; final |
//! | `adclick_late_invalid_clicks` | advertiser_id, campaign_id, reason, partition | invalid traffic that arrived, during the minute ending at the timestamp, for a minute already final |
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

use std::collections::BTreeMap;

use adclick_click::Minute;
use adclick_remote_write::{Labels, Sample, stale};

use crate::window::{FastMap, SeriesKey, Window};

pub const CLICKS: &str = "adclick_clicks";
pub const LATE_CLICKS: &str = "adclick_late_clicks";
pub const OPEN_CLICKS: &str = "adclick_clicks_open";
pub const INVALID_CLICKS: &str = "adclick_invalid_clicks";
pub const LATE_INVALID_CLICKS: &str = "adclick_late_invalid_clicks";
pub const SPEND: &str = "adclick_spend_micros";
pub const LATE_SPEND: &str = "adclick_late_spend_micros";
pub const UNIQUE_USERS: &str = "adclick_unique_users";

/// The labels of a closed minute's series.
pub fn closed_labels(key: SeriesKey, partition: i32, extra: &[(String, String)]) -> Labels {
    match key {
        SeriesKey::Late(_) => labels(LATE_CLICKS, key, partition, extra),
        SeriesKey::Invalid(..) => labels(INVALID_CLICKS, key, partition, extra),
        SeriesKey::LateInvalid(..) => labels(LATE_INVALID_CLICKS, key, partition, extra),
        SeriesKey::Ad(_) | SeriesKey::Other(_) => labels(CLICKS, key, partition, extra),
        SeriesKey::AdSpend(_) | SeriesKey::OtherSpend(_) => labels(SPEND, key, partition, extra),
        SeriesKey::LateSpend(_) => labels(LATE_SPEND, key, partition, extra),
        SeriesKey::AdUsers(_) | SeriesKey::OtherUsers(_) => {
            labels(UNIQUE_USERS, key, partition, extra)
        }
    }
}

/// The labels of `key` under `metric`, plus the configured `extra` labels (`[exporter] labels`).
pub fn labels(metric: &str, key: SeriesKey, partition: i32, extra: &[(String, String)]) -> Labels {
    let partition = partition.to_string();
    let own: Vec<(&str, String)> = match key {
        SeriesKey::Ad(ad) | SeriesKey::AdSpend(ad) | SeriesKey::AdUsers(ad) => vec![
            ("__name__", metric.to_string()),
            ("advertiser_id", ad.advertiser_id.to_string()),
            ("campaign_id", ad.campaign_id.to_string()),
            ("ad_id", ad.ad_id.to_string()),
            ("partition", partition),
        ],
        SeriesKey::Other(c) | SeriesKey::OtherSpend(c) | SeriesKey::OtherUsers(c) => vec![
            ("__name__", metric.to_string()),
            ("advertiser_id", c.advertiser_id.to_string()),
            ("campaign_id", c.campaign_id.to_string()),
            ("ad_id", "other".to_string()),
            ("partition", partition),
        ],
        SeriesKey::Late(c) | SeriesKey::LateSpend(c) => vec![
            ("__name__", metric.to_string()),
            ("advertiser_id", c.advertiser_id.to_string()),
            ("campaign_id", c.campaign_id.to_string()),
            ("partition", partition),
        ],
        SeriesKey::Invalid(c, reason) | SeriesKey::LateInvalid(c, reason) => vec![
            ("__name__", metric.to_string()),
            ("advertiser_id", c.advertiser_id.to_string()),
            ("campaign_id", c.campaign_id.to_string()),
            ("partition", partition),
            // Never `Valid` here (a valid click counts in `adclick_clicks`).
            ("reason", reason.label().unwrap_or("valid").to_string()),
        ],
    };
    let extra = extra.iter().map(|(k, v)| (k.as_str(), v.clone()));
    // Extra labels were checked at startup (`ExporterConfig::validate`).
    Labels::new(own.into_iter().chain(extra)).expect("valid names, non-empty values")
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
        let l = closed_labels(SeriesKey::Ad(ad(5)), 3, &[]);
        assert_eq!(l.metric_name(), CLICKS);
        assert_eq!(l.get("ad_id"), Some("5"));
        assert_eq!(l.get("partition"), Some("3"));
        let late = closed_labels(SeriesKey::Late(ad(5).into()), 3, &[]);
        assert_eq!(late.metric_name(), LATE_CLICKS);
        assert_eq!(late.get("ad_id"), None);
        let other = closed_labels(
            SeriesKey::Other(ad(5).into()),
            3,
            &[("env".into(), "prod".into())],
        );
        assert_eq!(other.get("ad_id"), Some("other"));
        assert_eq!(other.get("env"), Some("prod"));
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
