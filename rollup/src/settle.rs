//! The billing truth of one day: every impression counted once, in the minute of its first
//! click, on its ad's own series.
//!
//! Which click of an impression counts: the earliest by event time, wherever it is — in the
//! day, or in the look-back before it (then the impression belongs to an earlier day and none
//! of its clicks in this day count). Repeats share their impression's ad, campaign and
//! advertiser (all three are in the signed token), so only the minute of the first click
//! matters, and the result does not depend on the order records are read in.
//!
//! Memory: one entry per distinct impression read (16-byte id, 4-byte minute, 4-byte ad
//! number, 24 bytes; measured 51 bytes with the hash table's control bytes and growth slack,
//! `examples/bench_settle.rs`), plus one per distinct ad. A day of 100M clicks with a 24 h
//! look-back holds ~200M impressions, ~10 GB: a job for a large batch machine. The next step beyond that is sharding by impression id (every click of an
//! impression has the same Kafka key, so the same partition): settle partitions apart.

use std::collections::HashMap;

use adclick_click::minute::Minute;
use adclick_click::wire::{Click, ClickFlag};
use serde::Serialize;

use crate::day::Day;

pub use adclick_click::wire::AdKey;

/// Where the clicks read went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SettleStats {
    /// Click records read from the archive (after overlapping objects were trimmed).
    pub records: u64,
    /// Records of the day's minutes.
    pub in_day: u64,
    /// Records of the look-back, read to know which impressions were counted before the day.
    pub in_lookback: u64,
    /// Records before the look-back or after the day: not this run's business.
    pub outside: u64,
    /// Records of the day flagged dedup-unchecked (ingest failed open).
    pub dedup_unchecked: u64,
    /// Records of the day that repeat an impression clicked earlier (in the day or before it).
    pub duplicates_removed: u64,
    /// Unique clicks counted in the day.
    pub clicks: u64,
}

/// The settled day: each ad's per-minute counts, and how they came about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SettledDay {
    /// Ads in ascending order, each with its minutes in ascending order (non-zero counts).
    pub ads: Vec<(AdKey, Vec<(Minute, u64)>)>,
    pub stats: SettleStats,
}

impl SettledDay {
    /// Clicks per campaign (advertiser, campaign).
    pub fn campaign_totals(&self) -> HashMap<(u64, u64), u64> {
        let mut out = HashMap::new();
        for (ad, minutes) in &self.ads {
            *out.entry((ad.advertiser_id, ad.campaign_id)).or_default() +=
                minutes.iter().map(|(_, n)| n).sum::<u64>();
        }
        out
    }
}

/// Accumulates the records of a day; see the module docs.
#[derive(Debug)]
pub struct Settlement {
    day: Day,
    /// First minute read (look-back start); minutes are stored relative to it.
    base: Minute,
    day_first: u32,
    day_end: u32,
    ad_numbers: HashMap<AdKey, u32>,
    ads: Vec<AdKey>,
    /// Impression id → (minute of its first click, relative to `base`; ad number).
    first_click: HashMap<u128, (u32, u32)>,
    stats: SettleStats,
}

impl Settlement {
    /// A settlement of `day` that learns impressions from `lookback_ms` before it.
    pub fn new(day: Day, lookback_ms: i64) -> Settlement {
        let base = Minute::of(day.first_minute().start_ms() - lookback_ms.max(0));
        let rel = |m: Minute| (m.0 - base.0) as u32;
        Settlement {
            day,
            base,
            day_first: rel(day.first_minute()),
            day_end: rel(day.end_minute()),
            ad_numbers: HashMap::new(),
            ads: Vec::new(),
            first_click: HashMap::new(),
            stats: SettleStats::default(),
        }
    }

    pub fn day(&self) -> Day {
        self.day
    }

    /// Takes one click record (already decoded and valid).
    pub fn add(&mut self, click: &Click) {
        self.stats.records += 1;
        let minute = Minute::of(click.event_time_ms);
        if minute.0 < self.base.0 || minute.0 >= self.base.0 + i64::from(self.day_end) {
            self.stats.outside += 1;
            return;
        }
        let rel = (minute.0 - self.base.0) as u32;
        if rel >= self.day_first {
            self.stats.in_day += 1;
            if click.has_flag(ClickFlag::DedupUnchecked) {
                self.stats.dedup_unchecked += 1;
            }
        } else {
            self.stats.in_lookback += 1;
        }
        let Some(impression) = click.impression_key() else {
            // Records were validated when read; an invalid one never reaches here.
            return;
        };
        let ad = AdKey::of(click);
        let ad_number = match self.ad_numbers.get(&ad) {
            Some(&n) => n,
            None => {
                let n = self.ads.len() as u32;
                self.ads.push(ad);
                self.ad_numbers.insert(ad, n);
                n
            }
        };
        let entry = self
            .first_click
            .entry(u128::from_be_bytes(impression))
            .or_insert((rel, ad_number));
        // The earliest click wins; equal minutes count the same either way.
        if rel < entry.0 {
            *entry = (rel, ad_number);
        }
    }

    /// The day's counts, every ad on its own series.
    pub fn finish(self) -> SettledDay {
        let mut stats = self.stats;
        let mut counted: Vec<(u32, u32)> = Vec::new();
        for &(rel, ad) in self.first_click.values() {
            if rel >= self.day_first {
                counted.push((ad, rel));
            }
        }
        stats.clicks = counted.len() as u64;
        stats.duplicates_removed = stats.in_day - stats.clicks;
        // Sort by ad key (not by number, which is the order ads were met in) and minute.
        let ads = &self.ads;
        counted.sort_unstable_by(|a, b| {
            ads[a.0 as usize]
                .cmp(&ads[b.0 as usize])
                .then(a.1.cmp(&b.1))
        });
        let mut out: Vec<(AdKey, Vec<(Minute, u64)>)> = Vec::new();
        for (ad, rel) in counted {
            let key = self.ads[ad as usize];
            let minute = Minute(self.base.0 + i64::from(rel));
            match out.last_mut() {
                Some((k, minutes)) if *k == key => match minutes.last_mut() {
                    Some((m, n)) if *m == minute => *n += 1,
                    _ => minutes.push((minute, 1)),
                },
                _ => out.push((key, vec![(minute, 1)])),
            }
        }
        SettledDay { ads: out, stats }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn click(impression: u8, ad_id: u64, event_time_ms: i64) -> Click {
        Click {
            impression_id: vec![impression; 16],
            ad_id,
            campaign_id: ad_id / 10 + 1,
            advertiser_id: 1,
            event_time_ms,
            ..Default::default()
        }
    }

    #[test]
    fn first_click_counts_once_in_its_minute() {
        let day: Day = "2026-11-23".parse().unwrap();
        let t = day.start_ms() + 3_600_000;
        let mut s = Settlement::new(day, 3_600_000);
        s.add(&click(1, 5, t + 61_000)); // a repeat read before the first click
        s.add(&click(1, 5, t + 1_000));
        s.add(&click(2, 5, t + 2_000));
        s.add(&click(3, 7, day.start_ms() - 1_800_000)); // before the day: only an impression learnt ...
        s.add(&click(3, 7, t)); // ... so this repeat is removed
        s.add(&click(4, 7, day.end_ms())); // next day's
        let mut unchecked = click(5, 7, t);
        unchecked.set_flag(ClickFlag::DedupUnchecked);
        s.add(&unchecked);
        let settled = s.finish();
        let m = Minute::of(t);
        assert_eq!(
            settled.ads,
            vec![
                (
                    AdKey {
                        advertiser_id: 1,
                        campaign_id: 1,
                        ad_id: 5
                    },
                    vec![(m, 2)]
                ),
                (
                    AdKey {
                        advertiser_id: 1,
                        campaign_id: 1,
                        ad_id: 7
                    },
                    vec![(m, 1)]
                ),
            ]
        );
        let st = settled.stats;
        assert_eq!(
            (st.records, st.in_day, st.in_lookback, st.outside),
            (7, 5, 1, 1)
        );
        assert_eq!(
            (st.clicks, st.duplicates_removed, st.dedup_unchecked),
            (3, 2, 1)
        );
    }

    proptest! {
        /// Whatever order the archive is read in, and however often records repeat, the counts
        /// are those of a straightforward model: each impression once, at its earliest minute.
        #[test]
        fn order_and_repeats_do_not_change_the_truth(
            clicks in proptest::collection::vec((0u8..40, -200i64..1600), 1..200),
            seed in any::<u64>(),
        ) {
            let day: Day = "2026-11-23".parse().unwrap();
            let at = |minute: i64| day.start_ms() + minute * 60_000 + 17;
            // An impression's ad is fixed by its token.
            let records: Vec<Click> = clicks.iter()
                .map(|&(imp, minute)| click(imp, u64::from(imp % 5) + 1, at(minute)))
                .collect();
            let mut shuffled = records.clone();
            let mut r = seed;
            for i in (1..shuffled.len()).rev() {
                r = r.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                shuffled.swap(i, (r >> 33) as usize % (i + 1));
            }
            shuffled.extend(records.iter().take(3).cloned());
            let lookback = 60 * 60_000;
            let mut s = Settlement::new(day, lookback);
            shuffled.iter().for_each(|c| s.add(c));
            let got = s.finish();

            // The run sees the look-back and the day, nothing else.
            let (from, to) = day.event_window_ms();
            let mut first: std::collections::BTreeMap<u8, (i64, u64)> = Default::default();
            for c in records.iter().filter(|c| (from - lookback..to).contains(&c.event_time_ms)) {
                let e = first.entry(c.impression_id[0]).or_insert((c.event_time_ms, c.ad_id));
                if c.event_time_ms < e.0 { *e = (c.event_time_ms, c.ad_id); }
            }
            let mut want: std::collections::BTreeMap<(u64, i64), u64> = Default::default();
            for (t, ad) in first.values() {
                if *t >= from {
                    *want.entry((*ad, Minute::of(*t).0)).or_default() += 1;
                }
            }
            let got_flat: std::collections::BTreeMap<(u64, i64), u64> = got.ads.iter()
                .flat_map(|(ad, ms)| ms.iter().map(move |(m, n)| ((ad.ad_id, m.0), *n)))
                .collect();
            prop_assert_eq!(got_flat, want);
        }
    }
}
