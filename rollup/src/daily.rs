//! The settled day's billing figures per ad, campaign and advertiser: what the billing store
//! keeps of a day, computed once when the day is settled ([`crate::settle`]).
//!
//! The day is the block's (see [`crate::day`]): the minutes that END in it, 23:59 of D−1 through
//! 23:58 of D, UTC. Per ad, campaign and advertiser, ascending by ids:
//! - `valid_clicks`: the billed clicks, as `adclick_clicks{tier="rollup"}` sums them;
//! - `spend_micros`: the sum of `price_micros` of those clicks (each from the counted record of its
//!   impression's click), as `adclick_spend_micros{tier="rollup"}` sums them;
//! - `unique_users`: distinct NON-ZERO `user_hash` among those clicks over the whole day — for a
//!   campaign over all its ads, for an advertiser over all its campaigns. Not the sum of the
//!   minutes' `adclick_unique_users` (a person clicking in two minutes is one user of the day),
//!   nor of the ads' (one person clicking two ads is one user of the campaign);
//! - per ad also `invalid`: its invalid clicks of the day by reason label (`bot_user_agent`,
//!   `deny_listed_network`, `prefetch`, `too_fast`, `user_velocity`, `ip_velocity`), only the
//!   reasons it had. Never billed, no spend, no users.
//!
//! Every ad with a valid or invalid click in the day is listed (an ad of bots only, with zero
//! valid clicks), and so is its campaign and advertiser.
//!
//! Memory: the day's distinct users are counted from one vector of (ad, user) pairs of the valid
//! clicks with a user, 16 bytes a click: sorted and deduplicated for the ads, then mapped in
//! place to (campaign, user) and (advertiser, user), each sorted and deduplicated again — no
//! set per ad, and never more than that one vector (freed before the figures are assembled).

use std::collections::BTreeMap;

use adclick_click::minute::Minute;
use serde::Serialize;

use crate::settle::{AdKey, AdMinute};

/// One ad's day.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AdDay {
    pub advertiser_id: u64,
    pub campaign_id: u64,
    pub ad_id: u64,
    pub valid_clicks: u64,
    pub spend_micros: u64,
    pub unique_users: u64,
    /// Invalid clicks by reason label; reasons without clicks are absent.
    pub invalid: BTreeMap<&'static str, u64>,
}

/// One campaign's day: its ads' valid clicks and spend, and its distinct users.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CampaignDay {
    pub advertiser_id: u64,
    pub campaign_id: u64,
    pub valid_clicks: u64,
    pub spend_micros: u64,
    pub unique_users: u64,
}

/// One advertiser's day: its campaigns' valid clicks and spend, and its distinct users.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AdvertiserDay {
    pub advertiser_id: u64,
    pub valid_clicks: u64,
    pub spend_micros: u64,
    pub unique_users: u64,
}

/// The day's figures, each list ascending by ids (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DailyFigures {
    pub ads: Vec<AdDay>,
    pub campaigns: Vec<CampaignDay>,
    pub advertisers: Vec<AdvertiserDay>,
    /// Distinct non-zero users among all valid clicks of the day, whatever they clicked.
    pub unique_users: u64,
}

impl DailyFigures {
    /// The day's spend over all ads.
    pub fn spend_micros(&self) -> u64 {
        self.advertisers
            .iter()
            .fold(0u64, |sum, a| sum.saturating_add(a.spend_micros))
    }
}

/// The day's distinct users per ad, campaign and advertiser, and over everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct DayUsers {
    pub ads: BTreeMap<AdKey, u64>,
    pub campaigns: BTreeMap<(u64, u64), u64>,
    pub advertisers: BTreeMap<u64, u64>,
    pub all: u64,
}

/// Counts distinct users from `pairs`: (ad rank, user hash) of every valid click with a user
/// (`user_hash` ≠ 0), in any order, repeats allowed; `ads_by_rank[rank]` is the rank's ad, ranks
/// ascending with the ad keys. Consumes (and reuses) the vector; see the module docs.
pub(crate) fn unique_users(mut pairs: Vec<(u32, u64)>, ads_by_rank: &[AdKey]) -> DayUsers {
    let ad = |rank: u32| ads_by_rank[rank as usize];
    let mut users = DayUsers::default();
    sort_dedup(&mut pairs);
    for (rank, n) in count_runs(&pairs) {
        users.ads.insert(ad(rank), n);
    }
    // Ranks follow the keys, and keys order by (advertiser, campaign, ad): an ad's campaign and
    // advertiser are numbered by the rank of their first ad, which keeps them in key order too.
    let first_of = |same: &dyn Fn(AdKey, AdKey) -> bool| -> Vec<u32> {
        let mut first = Vec::with_capacity(ads_by_rank.len());
        for (rank, key) in ads_by_rank.iter().enumerate() {
            match rank.checked_sub(1) {
                Some(prev) if same(ads_by_rank[prev], *key) => {
                    let f = first[prev];
                    first.push(f);
                }
                _ => first.push(rank as u32),
            }
        }
        first
    };
    let campaign_of =
        first_of(&|a, b| (a.advertiser_id, a.campaign_id) == (b.advertiser_id, b.campaign_id));
    pairs
        .iter_mut()
        .for_each(|p| p.0 = campaign_of[p.0 as usize]);
    sort_dedup(&mut pairs);
    for (rank, n) in count_runs(&pairs) {
        let key = ad(rank);
        users
            .campaigns
            .insert((key.advertiser_id, key.campaign_id), n);
    }
    let advertiser_of = first_of(&|a, b| a.advertiser_id == b.advertiser_id);
    pairs
        .iter_mut()
        .for_each(|p| p.0 = advertiser_of[p.0 as usize]);
    sort_dedup(&mut pairs);
    for (rank, n) in count_runs(&pairs) {
        users.advertisers.insert(ad(rank).advertiser_id, n);
    }
    pairs.iter_mut().for_each(|p| p.0 = 0);
    sort_dedup(&mut pairs);
    users.all = pairs.len() as u64;
    users
}

fn sort_dedup(pairs: &mut Vec<(u32, u64)>) {
    pairs.sort_unstable();
    pairs.dedup();
}

/// (key, how many pairs have it) of pairs sorted by key.
fn count_runs(pairs: &[(u32, u64)]) -> impl Iterator<Item = (u32, u64)> + '_ {
    pairs
        .chunk_by(|a, b| a.0 == b.0)
        .map(|run| (run[0].0, run.len() as u64))
}

/// Assembles the figures from the day's per-minute ad figures (ascending by ad), each ad's
/// invalid clicks by reason label, and the distinct users.
pub(crate) fn figures(
    ads: &[(AdKey, Vec<(Minute, AdMinute)>)],
    invalid: &BTreeMap<AdKey, BTreeMap<&'static str, u64>>,
    users: DayUsers,
) -> DailyFigures {
    // Every ad of the day: with valid clicks (`ads`) or invalid ones only.
    let mut per_ad: BTreeMap<AdKey, AdDay> = BTreeMap::new();
    let blank = |key: AdKey| AdDay {
        advertiser_id: key.advertiser_id,
        campaign_id: key.campaign_id,
        ad_id: key.ad_id,
        unique_users: users.ads.get(&key).copied().unwrap_or(0),
        ..AdDay::default()
    };
    for (key, minutes) in ads {
        let day = per_ad.entry(*key).or_insert_with(|| blank(*key));
        for (_, m) in minutes {
            day.valid_clicks += m.clicks;
            day.spend_micros = day.spend_micros.saturating_add(m.spend_micros);
        }
    }
    for (key, reasons) in invalid {
        per_ad.entry(*key).or_insert_with(|| blank(*key)).invalid = reasons.clone();
    }

    let mut campaigns: BTreeMap<(u64, u64), CampaignDay> = BTreeMap::new();
    let mut advertisers: BTreeMap<u64, AdvertiserDay> = BTreeMap::new();
    for ad in per_ad.values() {
        let key = (ad.advertiser_id, ad.campaign_id);
        let c = campaigns.entry(key).or_insert_with(|| CampaignDay {
            advertiser_id: ad.advertiser_id,
            campaign_id: ad.campaign_id,
            unique_users: users.campaigns.get(&key).copied().unwrap_or(0),
            ..CampaignDay::default()
        });
        c.valid_clicks += ad.valid_clicks;
        c.spend_micros = c.spend_micros.saturating_add(ad.spend_micros);
        let a = advertisers
            .entry(ad.advertiser_id)
            .or_insert_with(|| AdvertiserDay {
                advertiser_id: ad.advertiser_id,
                unique_users: users
                    .advertisers
                    .get(&ad.advertiser_id)
                    .copied()
                    .unwrap_or(0),
                ..AdvertiserDay::default()
            });
        a.valid_clicks += ad.valid_clicks;
        a.spend_micros = a.spend_micros.saturating_add(ad.spend_micros);
    }
    DailyFigures {
        ads: per_ad.into_values().collect(),
        campaigns: campaigns.into_values().collect(),
        advertisers: advertisers.into_values().collect(),
        unique_users: users.all,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(advertiser_id: u64, campaign_id: u64, ad_id: u64) -> AdKey {
        AdKey {
            advertiser_id,
            campaign_id,
            ad_id,
        }
    }

    #[test]
    fn users_are_distinct_per_ad_campaign_advertiser_and_day() {
        let ads = [
            key(1, 1, 1), // rank 0
            key(1, 1, 2), // rank 1
            key(1, 2, 3), // rank 2
            key(2, 3, 4), // rank 3
        ];
        // User 7 clicks ads 1 (twice), 2 and 3; user 8 ads 1 and 4; user 9 ad 4 only.
        let pairs = vec![(0, 7), (3, 9), (1, 7), (0, 8), (2, 7), (0, 7), (3, 8)];
        let users = unique_users(pairs, &ads);
        assert_eq!(
            users.ads,
            BTreeMap::from([(ads[0], 2), (ads[1], 1), (ads[2], 1), (ads[3], 2)])
        );
        assert_eq!(
            users.campaigns,
            BTreeMap::from([((1, 1), 2), ((1, 2), 1), ((2, 3), 2)])
        );
        assert_eq!(users.advertisers, BTreeMap::from([(1, 2), (2, 2)]));
        assert_eq!(users.all, 3);
    }

    #[test]
    fn figures_add_up_clicks_and_spend_but_not_users() {
        let a = key(1, 1, 1);
        let b = key(1, 1, 2);
        let bots_only = key(1, 2, 3);
        let minute = |clicks, spend_micros, unique_users| AdMinute {
            clicks,
            spend_micros,
            unique_users,
        };
        let ads = vec![
            (
                a,
                vec![
                    (Minute(1), minute(2, 300, 2)),
                    (Minute(2), minute(1, 100, 1)),
                ],
            ),
            (b, vec![(Minute(1), minute(4, 1_000, 3))]),
        ];
        let invalid = BTreeMap::from([
            (a, BTreeMap::from([("prefetch", 1)])),
            (bots_only, BTreeMap::from([("bot_user_agent", 5)])),
        ]);
        let users = DayUsers {
            ads: BTreeMap::from([(a, 2), (b, 3)]),
            campaigns: BTreeMap::from([((1, 1), 4)]),
            advertisers: BTreeMap::from([(1, 4)]),
            all: 4,
        };
        let f = figures(&ads, &invalid, users);
        assert_eq!(
            f.ads,
            [
                AdDay {
                    advertiser_id: 1,
                    campaign_id: 1,
                    ad_id: 1,
                    valid_clicks: 3,
                    spend_micros: 400,
                    unique_users: 2,
                    invalid: BTreeMap::from([("prefetch", 1)]),
                },
                AdDay {
                    advertiser_id: 1,
                    campaign_id: 1,
                    ad_id: 2,
                    valid_clicks: 4,
                    spend_micros: 1_000,
                    unique_users: 3,
                    invalid: BTreeMap::new(),
                },
                AdDay {
                    advertiser_id: 1,
                    campaign_id: 2,
                    ad_id: 3,
                    invalid: BTreeMap::from([("bot_user_agent", 5)]),
                    ..AdDay::default()
                },
            ]
        );
        assert_eq!(
            f.campaigns,
            [
                CampaignDay {
                    advertiser_id: 1,
                    campaign_id: 1,
                    valid_clicks: 7,
                    spend_micros: 1_400,
                    unique_users: 4,
                },
                CampaignDay {
                    advertiser_id: 1,
                    campaign_id: 2,
                    ..CampaignDay::default()
                },
            ]
        );
        assert_eq!(
            f.advertisers,
            [AdvertiserDay {
                advertiser_id: 1,
                valid_clicks: 7,
                spend_micros: 1_400,
                unique_users: 4,
            }]
        );
        assert_eq!((f.spend_micros(), f.unique_users), (1_400, 4));
    }
}
