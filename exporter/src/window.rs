//! One event-time minute of one partition while it is open: exact counts of valid clicks per ad
//! (repeats were already dropped by [`crate::remembered`]), invalid traffic per campaign and
//! reason, and the late clicks that arrived while it was the partition's earliest open minute;
//! and, when it closes, the series it becomes (top K ads, the rest folded into one `other` series
//! per campaign; invalid traffic is never per ad, so it needs no folding).

use std::collections::{HashMap, HashSet};

pub use adclick_click::wire::{AdKey, InvalidReason};

/// The maps and sets a click touches: foldhash rather than std's SipHash, which was a tenth of
/// the per-record CPU. Their keys are ids the ad side signed, not chosen by whoever clicks, and
/// the seed is still random per process.
pub type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
pub type FastSet<K> = HashSet<K, foldhash::fast::RandomState>;

/// A campaign and its advertiser: the unit `other` and late clicks are summed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CampaignKey {
    pub advertiser_id: u64,
    pub campaign_id: u64,
}

impl From<AdKey> for CampaignKey {
    fn from(ad: AdKey) -> CampaignKey {
        CampaignKey {
            advertiser_id: ad.advertiser_id,
            campaign_id: ad.campaign_id,
        }
    }
}

/// A series one closed minute writes a sample to (the partition label is added by the caller).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SeriesKey {
    /// `adclick_clicks{ad_id="<id>"}`: an ad among the minute's top K.
    Ad(AdKey),
    /// `adclick_clicks{ad_id="other"}`: the campaign's other ads, summed.
    Other(CampaignKey),
    /// `adclick_late_clicks`: clicks of the campaign that arrived after their minute was final.
    Late(CampaignKey),
    /// `adclick_invalid_clicks{reason}`: the campaign's invalid traffic (never `Valid`).
    Invalid(CampaignKey, InvalidReason),
    /// `adclick_late_invalid_clicks{reason}`: invalid traffic that arrived after its minute was
    /// final.
    LateInvalid(CampaignKey, InvalidReason),
}

impl SeriesKey {
    /// Whether the series counts valid clicks of its minute (an ad's own series or `other`).
    pub fn is_valid_clicks(self) -> bool {
        matches!(self, SeriesKey::Ad(_) | SeriesKey::Other(_))
    }
}

/// A series' value for one minute.
pub type SeriesSample = (SeriesKey, u64);

/// The state of one open minute. `first_offset` and `max_event_before` say where a replay must
/// start, and with which watermark, to rebuild it exactly.
#[derive(Debug, Clone)]
pub struct Window {
    /// Offset of the first record that touched this window.
    pub first_offset: i64,
    /// The partition's highest event time before that record.
    pub max_event_before: Option<i64>,
    counts: FastMap<AdKey, u64>,
    late: FastMap<CampaignKey, u64>,
    /// Invalid traffic per campaign and reason, on time and late.
    invalid: FastMap<(CampaignKey, InvalidReason), u64>,
    late_invalid: FastMap<(CampaignKey, InvalidReason), u64>,
    /// Hot ads (salted keys, spread over partitions): always their own series, so that their
    /// per-partition parts add up to the ad's count whatever other partitions decide.
    hot: FastSet<AdKey>,
}

impl Window {
    pub fn new(first_offset: i64, max_event_before: Option<i64>) -> Window {
        Window {
            first_offset,
            max_event_before,
            counts: FastMap::default(),
            late: FastMap::default(),
            invalid: FastMap::default(),
            late_invalid: FastMap::default(),
            hot: FastSet::default(),
        }
    }

    /// Counts an on-time click. `hot`: the record's key was salted (`ad:N`).
    pub fn count(&mut self, ad: AdKey, hot: bool) {
        if hot {
            self.hot.insert(ad);
        }
        *self.counts.entry(ad).or_insert(0) += 1;
    }

    /// Records a click of an already final minute of `campaign`.
    pub fn count_late(&mut self, campaign: CampaignKey) {
        *self.late.entry(campaign).or_insert(0) += 1;
    }

    /// Counts an on-time click that is invalid for `reason`.
    pub fn count_invalid(&mut self, campaign: CampaignKey, reason: InvalidReason) {
        *self.invalid.entry((campaign, reason)).or_insert(0) += 1;
    }

    /// Records invalid traffic of an already final minute of `campaign`.
    pub fn count_late_invalid(&mut self, campaign: CampaignKey, reason: InvalidReason) {
        *self.late_invalid.entry((campaign, reason)).or_insert(0) += 1;
    }

    /// Distinct ads with clicks so far.
    pub fn ads(&self) -> usize {
        self.counts.len()
    }

    /// Clicks counted so far.
    pub fn clicks(&self) -> u64 {
        self.counts.values().sum()
    }

    /// The running counts per ad (for the open-minute series).
    pub fn counts(&self) -> &FastMap<AdKey, u64> {
        &self.counts
    }

    /// The series this minute writes: every hot ad, every ad among the `top_k` most clicked of
    /// the others (ties broken by the smaller ad id, so the choice is the same on every replay),
    /// each other ad summed into its campaign's `Other`, the late clicks per campaign, and the
    /// invalid traffic per campaign and reason. Sorted by series key.
    pub fn series(&self, top_k: usize) -> Folded {
        let mut folded = fold_top_k(&self.counts, top_k, &self.late, &self.hot);
        if !self.invalid.is_empty() || !self.late_invalid.is_empty() {
            let invalid = self
                .invalid
                .iter()
                .map(|(&(c, r), &n)| (SeriesKey::Invalid(c, r), n));
            let late = self
                .late_invalid
                .iter()
                .map(|(&(c, r), &n)| (SeriesKey::LateInvalid(c, r), n));
            folded.samples.extend(invalid.chain(late));
            folded.samples.sort_unstable();
        }
        folded
    }

    /// Hot ads seen in this minute.
    pub fn hot(&self) -> &FastSet<AdKey> {
        &self.hot
    }
}

/// A minute's series after folding, and how many ads went into `other`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Folded {
    pub samples: Vec<SeriesSample>,
    pub ads_folded: u64,
}

/// Keeps the `hot` ads and the `top_k` other ads with the most clicks as their own series and sums
/// the rest per campaign.
pub fn fold_top_k(
    counts: &FastMap<AdKey, u64>,
    top_k: usize,
    late: &FastMap<CampaignKey, u64>,
    hot: &FastSet<AdKey>,
) -> Folded {
    let mut samples: Vec<SeriesSample> =
        Vec::with_capacity(top_k.min(counts.len()) + late.len() + 8);
    let mut ranked: Vec<(&AdKey, &u64)> = Vec::with_capacity(counts.len());
    for (ad, n) in counts {
        if hot.contains(ad) {
            samples.push((SeriesKey::Ad(*ad), *n));
        } else {
            ranked.push((ad, n));
        }
    }
    let keep = top_k.min(ranked.len());
    if keep < ranked.len() {
        // Most clicks first; equal counts by ad id (then campaign, advertiser) so that the cut
        // is a pure function of the counts.
        let by_rank = |a: &(&AdKey, &u64), b: &(&AdKey, &u64)| {
            b.1.cmp(a.1)
                .then(a.0.ad_id.cmp(&b.0.ad_id))
                .then(a.0.cmp(b.0))
        };
        if keep > 0 {
            ranked.select_nth_unstable_by(keep - 1, by_rank);
        }
    }
    let mut other: FastMap<CampaignKey, u64> = FastMap::default();
    let ads_folded = (ranked.len() - keep) as u64;
    for (i, (ad, n)) in ranked.into_iter().enumerate() {
        if i < keep {
            samples.push((SeriesKey::Ad(*ad), *n));
        } else {
            *other.entry(CampaignKey::from(*ad)).or_insert(0) += *n;
        }
    }
    samples.extend(other.into_iter().map(|(c, n)| (SeriesKey::Other(c), n)));
    samples.extend(late.iter().map(|(c, n)| (SeriesKey::Late(*c), *n)));
    samples.sort_unstable();
    Folded {
        samples,
        ads_folded,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ad(campaign_id: u64, ad_id: u64) -> AdKey {
        AdKey {
            advertiser_id: 1,
            campaign_id,
            ad_id,
        }
    }

    #[test]
    fn a_window_counts_per_ad() {
        let mut w = Window::new(0, None);
        w.count(ad(1, 1), false);
        w.count(ad(1, 1), false);
        w.count(ad(1, 2), true);
        assert_eq!((w.clicks(), w.ads()), (3, 2));
        assert!(w.hot().contains(&ad(1, 2)));
    }

    #[test]
    fn invalid_traffic_counts_per_campaign_and_reason_apart_from_the_clicks() {
        let mut w = Window::new(0, None);
        w.count(ad(1, 1), false);
        w.count_invalid(ad(1, 1).into(), InvalidReason::BotUserAgent);
        w.count_invalid(ad(1, 2).into(), InvalidReason::BotUserAgent);
        w.count_invalid(ad(1, 2).into(), InvalidReason::Prefetch);
        w.count_late_invalid(ad(2, 5).into(), InvalidReason::TooFast);
        assert_eq!((w.clicks(), w.ads()), (1, 1));
        let folded = w.series(0);
        assert_eq!(
            folded.samples,
            vec![
                (SeriesKey::Other(ad(1, 0).into()), 1),
                (
                    SeriesKey::Invalid(ad(1, 0).into(), InvalidReason::BotUserAgent),
                    2
                ),
                (
                    SeriesKey::Invalid(ad(1, 0).into(), InvalidReason::Prefetch),
                    1
                ),
                (
                    SeriesKey::LateInvalid(ad(2, 0).into(), InvalidReason::TooFast),
                    1
                ),
            ]
        );
    }

    #[test]
    fn top_k_keeps_the_most_clicked_and_folds_the_rest_per_campaign() {
        let counts: FastMap<AdKey, u64> = [
            (ad(1, 10), 5),
            (ad(1, 11), 1),
            (ad(1, 12), 3),
            (ad(2, 20), 3),
            (ad(2, 21), 2),
        ]
        .into_iter()
        .collect();
        let folded = fold_top_k(&counts, 2, &FastMap::default(), &FastSet::default());
        // 5 (ad 10), then the tie at 3 goes to the smaller ad id (12 over 20).
        assert_eq!(
            folded.samples,
            vec![
                (SeriesKey::Ad(ad(1, 10)), 5),
                (SeriesKey::Ad(ad(1, 12)), 3),
                (SeriesKey::Other(ad(1, 0).into()), 1),
                (SeriesKey::Other(ad(2, 0).into()), 5),
            ]
        );
        assert_eq!(folded.ads_folded, 3);
        let total: u64 = folded.samples.iter().map(|s| s.1).sum();
        assert_eq!(total, 14);
    }

    #[test]
    fn hot_ads_keep_their_series_beyond_k() {
        let counts: FastMap<AdKey, u64> = [(ad(1, 10), 5), (ad(1, 11), 1)].into_iter().collect();
        let hot: FastSet<AdKey> = [ad(1, 11)].into_iter().collect();
        let folded = fold_top_k(&counts, 0, &FastMap::default(), &hot);
        assert_eq!(
            folded.samples,
            vec![
                (SeriesKey::Ad(ad(1, 11)), 1),
                (SeriesKey::Other(ad(1, 0).into()), 5)
            ]
        );
    }

    #[test]
    fn top_k_zero_folds_everything_and_large_k_folds_nothing() {
        let counts: FastMap<AdKey, u64> = [(ad(1, 10), 5), (ad(1, 11), 1)].into_iter().collect();
        let none = fold_top_k(&counts, 0, &FastMap::default(), &FastSet::default());
        assert_eq!(none.samples, vec![(SeriesKey::Other(ad(1, 0).into()), 6)]);
        let all = fold_top_k(&counts, 100, &FastMap::default(), &FastSet::default());
        assert_eq!(all.ads_folded, 0);
        assert_eq!(all.samples.len(), 2);
    }

    proptest::proptest! {
        /// Folding never changes a campaign's total and keeps exactly min(K, ads) ads.
        #[test]
        fn folding_preserves_campaign_totals(
            clicks in proptest::collection::vec((1u64..4, 1u64..30, 1u64..5), 0..200),
            k in 0usize..40,
        ) {
            let mut counts: FastMap<AdKey, u64> = FastMap::default();
            for (c, a, n) in &clicks {
                *counts.entry(ad(*c, *a + *c * 100)).or_insert(0) += n;
            }
            let folded = fold_top_k(&counts, k, &FastMap::default(), &FastSet::default());
            let mut want: HashMap<u64, u64> = HashMap::new();
            for (a, n) in &counts { *want.entry(a.campaign_id).or_insert(0) += n; }
            let mut got: HashMap<u64, u64> = HashMap::new();
            let mut own = 0;
            for (key, n) in &folded.samples {
                match key {
                    SeriesKey::Ad(a) => { own += 1; *got.entry(a.campaign_id).or_insert(0) += n; }
                    SeriesKey::Other(c) => *got.entry(c.campaign_id).or_insert(0) += n,
                    SeriesKey::Late(_) | SeriesKey::Invalid(..) | SeriesKey::LateInvalid(..) => unreachable!(),
                }
            }
            proptest::prop_assert_eq!(got, want);
            proptest::prop_assert_eq!(own, k.min(counts.len()));
            // Every kept ad has at least as many clicks as every folded one.
            let min_kept = folded.samples.iter().filter_map(|(key, n)| matches!(key, SeriesKey::Ad(_)).then_some(*n)).min();
            if let Some(min_kept) = min_kept {
                let kept: HashSet<AdKey> = folded.samples.iter().filter_map(|(key, _)| if let SeriesKey::Ad(a) = key { Some(*a) } else { None }).collect();
                for (a, n) in &counts {
                    if !kept.contains(a) { proptest::prop_assert!(*n <= min_kept); }
                }
            }
        }
    }
}
