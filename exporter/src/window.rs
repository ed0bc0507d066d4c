//! One event-time minute of one partition while it is open: exact counts, spend and users of
//! valid clicks per ad (repeats were already dropped by [`crate::remembered`]), invalid traffic per
//! campaign and reason, and the late clicks that arrived while it was the partition's earliest
//! open minute; and, when it closes, the series it becomes (top K ads, the rest folded into one
//! `other` series per campaign; invalid traffic is never per ad, so it needs no folding).

use std::collections::{HashMap, HashSet};

pub use adclick_click::Day;
pub use adclick_click::wire::{AdKey, InvalidReason};

use crate::users::{CampaignUsers, MoreUsers};

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

/// Which figures besides the clicks a closed minute writes (`[exporter] spend`,
/// `[exporter] unique_users`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Measures {
    /// `adclick_spend_micros` beside every `adclick_clicks` series, `adclick_late_spend_micros`
    /// beside every `adclick_late_clicks`.
    pub spend: bool,
    /// `adclick_unique_users` beside every `adclick_clicks` series.
    pub unique_users: bool,
}

impl Measures {
    pub const ALL: Measures = Measures {
        spend: true,
        unique_users: true,
    };
    pub const CLICKS_ONLY: Measures = Measures {
        spend: false,
        unique_users: false,
    };
}

/// A series one closed minute writes a sample to (the partition label is added by the caller).
/// Ordered by what the series is about, then by what it measures ([`SeriesKey::order`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SeriesKey {
    /// `adclick_clicks{ad_id="<id>"}`: an ad among the minute's top K.
    Ad(AdKey),
    /// `adclick_clicks{ad_id="other"}`: the campaign's other ads, summed.
    Other(CampaignKey),
    /// `adclick_late_clicks{block_day}`: clicks of the campaign that arrived after their minute
    /// was final, by the day whose block their own minute is in.
    Late(CampaignKey, Day),
    /// `adclick_invalid_clicks{reason}`: the campaign's invalid traffic (never `Valid`).
    Invalid(CampaignKey, InvalidReason),
    /// `adclick_late_invalid_clicks{reason, block_day}`: invalid traffic that arrived after its
    /// minute was final.
    LateInvalid(CampaignKey, InvalidReason, Day),
    /// `adclick_spend_micros{ad_id="<id>"}`: the spend of an `Ad`'s clicks.
    AdSpend(AdKey),
    /// `adclick_spend_micros{ad_id="other"}`: the spend of the campaign's `Other` clicks.
    OtherSpend(CampaignKey),
    /// `adclick_late_spend_micros{block_day}`: the spend of the campaign's `Late` clicks.
    LateSpend(CampaignKey, Day),
    /// `adclick_unique_users{ad_id="<id>"}`: distinct users among an `Ad`'s clicks.
    AdUsers(AdKey),
    /// `adclick_unique_users{ad_id="other"}`: distinct users among the campaign's `Other` clicks.
    OtherUsers(CampaignKey),
}

impl SeriesKey {
    /// What series are sorted by: what they are about (an ad, a campaign's `other`, its late
    /// clicks, its invalid traffic for one reason), then what they measure — so that the series
    /// that share all labels but `__name__` (an ad's clicks, spend and unique users) are
    /// neighbours in a closed minute's sorted samples, and their labels are made once
    /// (`series::ClosedLabels`).
    fn order(&self) -> (u8, u64, u64, u64, i32, u8) {
        let ad =
            |kind, a: AdKey, measure| (kind, a.advertiser_id, a.campaign_id, a.ad_id, 0, measure);
        // Late series: by their block day where an ad has its id (never both), shifted so that
        // the days' order (before 1970 too) is the numbers'.
        let campaign = |kind, c: CampaignKey, reason: Option<InvalidReason>, day: i64, measure| {
            let reason = reason.map_or(0, |r| r as i32);
            let day = day.wrapping_sub(i64::MIN) as u64;
            (kind, c.advertiser_id, c.campaign_id, day, reason, measure)
        };
        match *self {
            SeriesKey::Ad(a) => ad(0, a, 0),
            SeriesKey::AdSpend(a) => ad(0, a, 1),
            SeriesKey::AdUsers(a) => ad(0, a, 2),
            SeriesKey::Other(c) => campaign(1, c, None, 0, 0),
            SeriesKey::OtherSpend(c) => campaign(1, c, None, 0, 1),
            SeriesKey::OtherUsers(c) => campaign(1, c, None, 0, 2),
            SeriesKey::Late(c, d) => campaign(2, c, None, d.0, 0),
            SeriesKey::LateSpend(c, d) => campaign(2, c, None, d.0, 1),
            SeriesKey::Invalid(c, r) => campaign(3, c, Some(r), 0, 0),
            SeriesKey::LateInvalid(c, r, d) => campaign(4, c, Some(r), d.0, 0),
        }
    }

    /// The series written beside this one under the same labels but `__name__`, as `measures`
    /// ask: an ad's or `other`'s spend and unique users, late clicks' spend. `Window::series`
    /// writes them exactly when it writes this one; none for the companions themselves.
    pub fn companions(self, measures: Measures) -> impl Iterator<Item = SeriesKey> {
        let (spend, users) = match self {
            SeriesKey::Ad(a) => (SeriesKey::AdSpend(a), Some(SeriesKey::AdUsers(a))),
            SeriesKey::Other(c) => (SeriesKey::OtherSpend(c), Some(SeriesKey::OtherUsers(c))),
            SeriesKey::Late(c, d) => (SeriesKey::LateSpend(c, d), None),
            _ => return None.into_iter().chain(None),
        };
        let spend = measures.spend.then_some(spend);
        let users = users.filter(|_| measures.unique_users);
        spend.into_iter().chain(users)
    }

    /// Whether the series is the companion of another ([`SeriesKey::companions`]).
    pub fn is_companion(self) -> bool {
        matches!(
            self,
            SeriesKey::AdSpend(_)
                | SeriesKey::AdUsers(_)
                | SeriesKey::OtherSpend(_)
                | SeriesKey::OtherUsers(_)
                | SeriesKey::LateSpend(..)
        )
    }

    /// Whether the series counts valid clicks of its minute (an ad's own series or `other`).
    pub fn is_valid_clicks(self) -> bool {
        matches!(self, SeriesKey::Ad(_) | SeriesKey::Other(_))
    }
}

impl Ord for SeriesKey {
    fn cmp(&self, other: &SeriesKey) -> std::cmp::Ordering {
        self.order().cmp(&other.order())
    }
}

impl PartialOrd for SeriesKey {
    fn partial_cmp(&self, other: &SeriesKey) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// A series' value for one minute.
pub type SeriesSample = (SeriesKey, u64);

/// One ad's valid clicks in one open minute: 24 bytes beside its 24-byte key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AdMinute {
    /// Valid clicks. 32 bits hold 4.29 billion: one partition's consumer reads well under a
    /// million records a second, 60 million a minute.
    pub clicks: u32,
    /// The ad's number in its window (the order it first clicked in): names it in the window's
    /// list of further users ([`crate::users`]).
    pub slot: u32,
    /// The sum of the clicks' `price_micros` (saturating: past 2^53 no float holds it anyway).
    pub spend_micros: u64,
    /// The first non-zero user hash among the clicks, 0 when none yet.
    pub first_user: u64,
}

/// The late valid clicks of a campaign, and their spend.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LateMinute {
    pub clicks: u64,
    pub spend_micros: u64,
}

/// The state of one open minute. `first_offset` and `max_event_before` say where a replay must
/// start, and with which watermark, to rebuild it exactly.
#[derive(Debug, Clone)]
pub struct Window {
    /// Offset of the first record that touched this window.
    pub first_offset: i64,
    /// The partition's highest event time before that record.
    pub max_event_before: Option<i64>,
    counts: FastMap<AdKey, AdMinute>,
    /// The users of each ad beyond its first.
    more_users: MoreUsers,
    /// Late clicks per campaign and the day whose block their own minute is in.
    late: FastMap<(CampaignKey, Day), LateMinute>,
    /// Invalid traffic per campaign and reason, on time and late (by block day).
    invalid: FastMap<(CampaignKey, InvalidReason), u64>,
    late_invalid: FastMap<(CampaignKey, InvalidReason, Day), u64>,
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
            more_users: MoreUsers::default(),
            late: FastMap::default(),
            invalid: FastMap::default(),
            late_invalid: FastMap::default(),
            hot: FastSet::default(),
        }
    }

    /// Counts an on-time valid click of `price_micros` by `user_hash` (0: unknown or not
    /// counted). `hot`: the record's key was salted (`ad:N`).
    pub fn count(&mut self, ad: AdKey, hot: bool, price_micros: u64, user_hash: u64) {
        if hot {
            self.hot.insert(ad);
        }
        let slot = self.counts.len() as u32;
        let counts = self.counts.entry(ad).or_insert(AdMinute {
            slot,
            ..AdMinute::default()
        });
        counts.clicks += 1;
        counts.spend_micros = counts.spend_micros.saturating_add(price_micros);
        self.more_users.add(counts, user_hash);
    }

    /// Records a valid click of `price_micros` of an already final minute of `campaign`, whose
    /// sample would have been in the block of `day`.
    pub fn count_late(&mut self, campaign: CampaignKey, day: Day, price_micros: u64) {
        let late = self.late.entry((campaign, day)).or_default();
        late.clicks += 1;
        late.spend_micros = late.spend_micros.saturating_add(price_micros);
    }

    /// Counts an on-time click that is invalid for `reason`.
    pub fn count_invalid(&mut self, campaign: CampaignKey, reason: InvalidReason) {
        *self.invalid.entry((campaign, reason)).or_insert(0) += 1;
    }

    /// Records invalid traffic of an already final minute of `campaign` in the block of `day`.
    pub fn count_late_invalid(&mut self, campaign: CampaignKey, reason: InvalidReason, day: Day) {
        *self
            .late_invalid
            .entry((campaign, reason, day))
            .or_insert(0) += 1;
    }

    /// Distinct ads with clicks so far.
    pub fn ads(&self) -> usize {
        self.counts.len()
    }

    /// Clicks counted so far.
    pub fn clicks(&self) -> u64 {
        self.counts.values().map(|c| u64::from(c.clicks)).sum()
    }

    /// Clicks listed for their users beyond each ad's first (16 bytes each).
    pub fn further_users(&self) -> usize {
        self.more_users.len()
    }

    /// The running clicks per ad, top K and `other`, for the open-minute series (sorted).
    pub fn open_clicks(&self, top_k: usize) -> Vec<SeriesSample> {
        let ranking = rank(&self.counts, top_k, &self.hot);
        let mut other: FastMap<CampaignKey, u64> = FastMap::default();
        for (ad, counts) in &ranking.folded {
            *other.entry(CampaignKey::from(**ad)).or_insert(0) += u64::from(counts.clicks);
        }
        let mut samples: Vec<SeriesSample> = ranking
            .own
            .iter()
            .map(|(ad, counts)| (SeriesKey::Ad(**ad), u64::from(counts.clicks)))
            .chain(other.into_iter().map(|(c, n)| (SeriesKey::Other(c), n)))
            .collect();
        samples.sort_unstable();
        samples
    }

    /// The series this minute writes: every hot ad, every ad among the `top_k` most clicked of
    /// the others (ties broken by the smaller ad id, so the choice is the same on every replay),
    /// each other ad summed into its campaign's `Other`, each with its spend and distinct users
    /// as `measures` ask; the late clicks per campaign (and their spend); and the invalid traffic
    /// per campaign and reason. Sorted by series key.
    pub fn series(&self, top_k: usize, measures: Measures) -> Folded {
        let mut ranking = rank(&self.counts, top_k, &self.hot);
        let users = measures.unique_users.then(|| self.more_users.distinct());
        let mut other: FastMap<CampaignKey, LateMinute> = FastMap::default();
        let mut other_users = CampaignUsers::default();
        for (ad, counts) in &ranking.folded {
            let campaign = CampaignKey::from(**ad);
            let sum = other.entry(campaign).or_default();
            sum.clicks += u64::from(counts.clicks);
            sum.spend_micros = sum.spend_micros.saturating_add(counts.spend_micros);
            if let Some(users) = &users {
                other_users.add(campaign, users.of(counts));
            }
        }
        let other_users: FastMap<CampaignKey, u64> = other_users.counts().into_iter().collect();
        // Exactly the samples written (the closing minute's largest allocation), pushed in
        // `SeriesKey` order group by group — ads, `other`s, late, invalid — each group sorted by
        // its own fields, so that no comparison of whole keys is needed.
        let per_ad = 1 + usize::from(measures.spend) + usize::from(measures.unique_users);
        let mut samples: Vec<SeriesSample> = Vec::with_capacity(
            per_ad * (ranking.own.len() + other.len())
                + (1 + usize::from(measures.spend)) * self.late.len()
                + self.invalid.len()
                + self.late_invalid.len(),
        );
        ranking.own.sort_unstable_by_key(|(ad, _)| **ad);
        for (ad, counts) in &ranking.own {
            samples.push((SeriesKey::Ad(**ad), u64::from(counts.clicks)));
            if measures.spend {
                samples.push((SeriesKey::AdSpend(**ad), counts.spend_micros));
            }
            if let Some(users) = &users {
                samples.push((SeriesKey::AdUsers(**ad), users.count(counts)));
            }
        }
        let mut other: Vec<(CampaignKey, LateMinute)> = other.into_iter().collect();
        other.sort_unstable_by_key(|(c, _)| *c);
        for (campaign, sum) in other {
            samples.push((SeriesKey::Other(campaign), sum.clicks));
            if measures.spend {
                samples.push((SeriesKey::OtherSpend(campaign), sum.spend_micros));
            }
            if users.is_some() {
                // Every `other` series has its users, 0 included (same series as its clicks).
                let n = other_users.get(&campaign).copied().unwrap_or(0);
                samples.push((SeriesKey::OtherUsers(campaign), n));
            }
        }
        let mut late: Vec<(&(CampaignKey, Day), &LateMinute)> = self.late.iter().collect();
        late.sort_unstable_by_key(|(k, _)| **k);
        for (&(campaign, day), late) in late {
            samples.push((SeriesKey::Late(campaign, day), late.clicks));
            if measures.spend {
                samples.push((SeriesKey::LateSpend(campaign, day), late.spend_micros));
            }
        }
        let invalid = self
            .invalid
            .iter()
            .map(|(&(c, r), &n)| (SeriesKey::Invalid(c, r), n));
        let late_invalid = self
            .late_invalid
            .iter()
            .map(|(&(c, r, d), &n)| (SeriesKey::LateInvalid(c, r, d), n));
        let start = samples.len();
        samples.extend(invalid.chain(late_invalid));
        samples[start..].sort_unstable();
        debug_assert!(samples.is_sorted_by(|a, b| a.0 < b.0));
        Folded {
            samples,
            ads_folded: ranking.folded.len() as u64,
        }
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

/// Which ads of a minute have a series of their own and which are folded into `other`.
#[derive(Debug, Default)]
pub struct Ranking<'a> {
    pub own: Vec<(&'a AdKey, &'a AdMinute)>,
    pub folded: Vec<(&'a AdKey, &'a AdMinute)>,
}

/// Keeps the `hot` ads and the `top_k` other ads with the most clicks as their own series; the
/// rest are folded into their campaign's `other`.
pub fn rank<'a>(
    counts: &'a FastMap<AdKey, AdMinute>,
    top_k: usize,
    hot: &FastSet<AdKey>,
) -> Ranking<'a> {
    let mut own = Vec::with_capacity(top_k.min(counts.len()) + hot.len());
    let mut ranked: Vec<(&AdKey, &AdMinute)> = Vec::with_capacity(counts.len());
    for (ad, n) in counts {
        if hot.contains(ad) {
            own.push((ad, n));
        } else {
            ranked.push((ad, n));
        }
    }
    let keep = top_k.min(ranked.len());
    if keep < ranked.len() && keep > 0 {
        // Most clicks first; equal counts by ad id (then campaign, advertiser) so that the cut
        // is a pure function of the counts.
        let by_rank = |a: &(&AdKey, &AdMinute), b: &(&AdKey, &AdMinute)| {
            b.1.clicks
                .cmp(&a.1.clicks)
                .then(a.0.ad_id.cmp(&b.0.ad_id))
                .then(a.0.cmp(b.0))
        };
        ranked.select_nth_unstable_by(keep - 1, by_rank);
    }
    let folded = ranked.split_off(keep);
    own.extend(ranked);
    Ranking { own, folded }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-07: the block day of the late clicks in these tests.
    const DAY: Day = Day(20_794);

    fn ad(campaign_id: u64, ad_id: u64) -> AdKey {
        AdKey {
            advertiser_id: 1,
            campaign_id,
            ad_id,
        }
    }

    /// A window with `clicks` clicks on each ad, at no price and by no known user.
    fn window(clicks: &[(AdKey, u64)], hot: &[AdKey]) -> Window {
        let mut w = Window::new(0, None);
        for (a, n) in clicks {
            for _ in 0..*n {
                w.count(*a, hot.contains(a), 0, 0);
            }
        }
        w
    }

    #[test]
    fn an_ads_figures_take_24_bytes() {
        // Memory per open ad-minute is what the exporter is sized by (BENCHMARKS.md).
        assert_eq!(std::mem::size_of::<AdMinute>(), 24);
    }

    #[test]
    fn a_window_counts_per_ad() {
        let mut w = Window::new(0, None);
        w.count(ad(1, 1), false, 0, 0);
        w.count(ad(1, 1), false, 0, 0);
        w.count(ad(1, 2), true, 0, 0);
        assert_eq!((w.clicks(), w.ads()), (3, 2));
        assert!(w.hot().contains(&ad(1, 2)));
    }

    #[test]
    fn spend_and_users_follow_the_clicks_into_their_series() {
        let mut w = Window::new(0, None);
        // Ad 10: 3 clicks by users 7, 7, 8 at 100 each; ad 11: one click by user 7, no price;
        // ad 12: one by an unknown user (0) at 50. Top 1: ad 10 keeps its series.
        w.count(ad(1, 10), false, 100, 7);
        w.count(ad(1, 10), false, 100, 7);
        w.count(ad(1, 10), false, 100, 8);
        w.count(ad(1, 11), false, 0, 7);
        w.count(ad(1, 12), false, 50, 0);
        w.count_late(ad(1, 10).into(), DAY, 30);
        let c = CampaignKey::from(ad(1, 0));
        assert_eq!(
            w.series(1, Measures::ALL).samples,
            vec![
                (SeriesKey::Ad(ad(1, 10)), 3),
                (SeriesKey::AdSpend(ad(1, 10)), 300),
                (SeriesKey::AdUsers(ad(1, 10)), 2),
                (SeriesKey::Other(c), 2),
                (SeriesKey::OtherSpend(c), 50),
                (SeriesKey::OtherUsers(c), 1),
                (SeriesKey::Late(c, DAY), 1),
                (SeriesKey::LateSpend(c, DAY), 30),
            ]
        );
        // Without the measures, the clicks alone, exactly as before them.
        assert_eq!(
            w.series(1, Measures::CLICKS_ONLY).samples,
            vec![
                (SeriesKey::Ad(ad(1, 10)), 3),
                (SeriesKey::Other(c), 2),
                (SeriesKey::Late(c, DAY), 1),
            ]
        );
    }

    #[test]
    fn other_counts_a_user_of_two_folded_ads_once_and_writes_zero_users() {
        let mut w = Window::new(0, None);
        w.count(ad(1, 10), false, 0, 5);
        w.count(ad(1, 11), false, 0, 5);
        w.count(ad(1, 12), false, 0, 6);
        w.count(ad(2, 20), false, 0, 0);
        let folded = w.series(0, Measures::ALL);
        let users: Vec<SeriesSample> = folded
            .samples
            .iter()
            .filter(|(k, _)| matches!(k, SeriesKey::OtherUsers(_)))
            .copied()
            .collect();
        assert_eq!(
            users,
            vec![
                (SeriesKey::OtherUsers(ad(1, 0).into()), 2),
                (SeriesKey::OtherUsers(ad(2, 0).into()), 0),
            ]
        );
    }

    #[test]
    fn invalid_traffic_counts_per_campaign_and_reason_apart_from_the_clicks() {
        let mut w = Window::new(0, None);
        w.count(ad(1, 1), false, 0, 0);
        w.count_invalid(ad(1, 1).into(), InvalidReason::BotUserAgent);
        w.count_invalid(ad(1, 2).into(), InvalidReason::BotUserAgent);
        w.count_invalid(ad(1, 2).into(), InvalidReason::Prefetch);
        w.count_late_invalid(ad(2, 5).into(), InvalidReason::TooFast, DAY);
        assert_eq!((w.clicks(), w.ads()), (1, 1));
        let folded = w.series(0, Measures::CLICKS_ONLY);
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
                    SeriesKey::LateInvalid(ad(2, 0).into(), InvalidReason::TooFast, DAY),
                    1
                ),
            ]
        );
    }

    #[test]
    fn top_k_keeps_the_most_clicked_and_folds_the_rest_per_campaign() {
        let w = window(
            &[
                (ad(1, 10), 5),
                (ad(1, 11), 1),
                (ad(1, 12), 3),
                (ad(2, 20), 3),
                (ad(2, 21), 2),
            ],
            &[],
        );
        let folded = w.series(2, Measures::CLICKS_ONLY);
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
        assert_eq!(w.open_clicks(2), folded.samples);
    }

    #[test]
    fn hot_ads_keep_their_series_beyond_k() {
        let w = window(&[(ad(1, 10), 5), (ad(1, 11), 1)], &[ad(1, 11)]);
        assert_eq!(
            w.series(0, Measures::CLICKS_ONLY).samples,
            vec![
                (SeriesKey::Ad(ad(1, 11)), 1),
                (SeriesKey::Other(ad(1, 0).into()), 5)
            ]
        );
    }

    #[test]
    fn top_k_zero_folds_everything_and_large_k_folds_nothing() {
        let w = window(&[(ad(1, 10), 5), (ad(1, 11), 1)], &[]);
        let none = w.series(0, Measures::CLICKS_ONLY);
        assert_eq!(none.samples, vec![(SeriesKey::Other(ad(1, 0).into()), 6)]);
        let all = w.series(100, Measures::CLICKS_ONLY);
        assert_eq!(all.ads_folded, 0);
        assert_eq!(all.samples.len(), 2);
    }

    proptest::proptest! {
        /// Folding never changes a campaign's total clicks, spend or (folded ads apart) users,
        /// and keeps exactly min(K, ads) ads.
        #[test]
        fn folding_preserves_campaign_totals(
            clicks in proptest::collection::vec((1u64..4, 1u64..30, 1u64..5, 0u64..6), 0..200),
            k in 0usize..40,
        ) {
            let mut w = Window::new(0, None);
            let mut want: HashMap<u64, (u64, u64)> = HashMap::new();
            let mut users: HashMap<AdKey, HashSet<u64>> = HashMap::new();
            for (c, a, n, user) in &clicks {
                let key = ad(*c, *a + *c * 100);
                for _ in 0..*n {
                    w.count(key, false, *a, *user);
                    let e = want.entry(*c).or_insert((0, 0));
                    e.0 += 1;
                    e.1 += *a;
                }
                if *user != 0 {
                    users.entry(key).or_default().insert(*user);
                }
            }
            let folded = w.series(k, Measures::ALL);
            let mut got: HashMap<u64, (u64, u64)> = HashMap::new();
            let mut own = 0;
            let mut other_users: HashMap<u64, HashSet<u64>> = HashMap::new();
            let kept: HashSet<AdKey> = folded.samples.iter().filter_map(|(key, _)| if let SeriesKey::Ad(a) = key { Some(*a) } else { None }).collect();
            for (a, set) in &users {
                if !kept.contains(a) {
                    other_users.entry(a.campaign_id).or_default().extend(set);
                }
            }
            for (key, n) in &folded.samples {
                match key {
                    SeriesKey::Ad(a) => { own += 1; got.entry(a.campaign_id).or_default().0 += n; }
                    SeriesKey::Other(c) => got.entry(c.campaign_id).or_default().0 += n,
                    SeriesKey::AdSpend(a) => got.entry(a.campaign_id).or_default().1 += n,
                    SeriesKey::OtherSpend(c) => got.entry(c.campaign_id).or_default().1 += n,
                    SeriesKey::AdUsers(a) => proptest::prop_assert_eq!(*n, users.get(a).map_or(0, |s| s.len() as u64)),
                    SeriesKey::OtherUsers(c) => proptest::prop_assert_eq!(*n, other_users.get(&c.campaign_id).map_or(0, |s| s.len() as u64)),
                    SeriesKey::Late(..) | SeriesKey::LateSpend(..) | SeriesKey::Invalid(..) | SeriesKey::LateInvalid(..) => unreachable!(),
                }
            }
            proptest::prop_assert_eq!(got, want);
            proptest::prop_assert_eq!(own, k.min(w.ads()));
            // Every kept ad has at least as many clicks as every folded one.
            let min_kept = folded.samples.iter().filter_map(|(key, n)| matches!(key, SeriesKey::Ad(_)).then_some(*n)).min();
            if let Some(min_kept) = min_kept {
                for (a, n) in w.counts.iter() {
                    if !kept.contains(a) { proptest::prop_assert!(u64::from(n.clicks) <= min_kept); }
                }
            }
        }
    }
}
