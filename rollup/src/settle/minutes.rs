//! The day's valid clicks as per-ad, per-minute figures — clicks, spend, distinct users — the
//! samples of `adclick_clicks`, `adclick_spend_micros` and `adclick_unique_users`.

use adclick_click::minute::Minute;

use super::{AdKey, AdMinute};

/// A valid click of the day, as the tally keeps it until the sweep is over: 24 bytes. Ordered by
/// (ad, minute, user): what the per-minute figures are counted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct ValidClick {
    /// The ad's rank ([`AdRanks`]).
    pub ad: u32,
    /// Minutes since the day's first minute.
    pub minute: u32,
    /// 0: unknown, never a user.
    pub user_hash: u64,
    pub price_micros: u64,
}

const _: () = assert!(std::mem::size_of::<ValidClick>() == 24);

/// The ads met, ranked by key: sorting by rank sorts by (advertiser, campaign, ad), and a rank is
/// 4 bytes where a key is 24.
#[derive(Debug)]
pub(super) struct AdRanks {
    /// Ad number (the order ads were met in) → rank.
    rank_of: Vec<u32>,
    /// Rank → ad.
    pub by_rank: Vec<AdKey>,
}

impl AdRanks {
    /// Ranks `ads` (indexed by ad number).
    pub fn new(ads: &[AdKey]) -> AdRanks {
        let mut numbers: Vec<u32> = (0..ads.len() as u32).collect();
        numbers.sort_unstable_by_key(|&n| ads[n as usize]);
        let mut rank_of = vec![0u32; ads.len()];
        for (rank, &n) in numbers.iter().enumerate() {
            rank_of[n as usize] = rank as u32;
        }
        AdRanks {
            rank_of,
            by_rank: numbers.iter().map(|&n| ads[n as usize]).collect(),
        }
    }

    pub fn rank(&self, number: u32) -> u32 {
        self.rank_of[number as usize]
    }
}

/// Each ad's minutes with valid clicks (ads ascending, minutes ascending), from the day's valid
/// clicks (sorted here). `first` is the minute [`ValidClick::minute`] counts from.
pub(super) fn per_minute(
    valid: &mut [ValidClick],
    ranks: &AdRanks,
    first: Minute,
) -> Vec<(AdKey, Vec<(Minute, AdMinute)>)> {
    valid.sort_unstable();
    let mut out: Vec<(AdKey, Vec<(Minute, AdMinute)>)> = Vec::new();
    for run in valid.chunk_by(|a, b| (a.ad, a.minute) == (b.ad, b.minute)) {
        let mut figures = AdMinute::default();
        // Users are sorted within the run: a new non-zero hash is a new user.
        let mut last_user = 0;
        for click in run {
            figures.clicks += 1;
            figures.spend_micros = figures.spend_micros.saturating_add(click.price_micros);
            if click.user_hash != 0 && click.user_hash != last_user {
                figures.unique_users += 1;
            }
            last_user = click.user_hash;
        }
        let key = ranks.by_rank[run[0].ad as usize];
        let minute = Minute(first.0 + i64::from(run[0].minute));
        match out.last_mut() {
            Some((k, minutes)) if *k == key => minutes.push((minute, figures)),
            _ => out.push((key, vec![(minute, figures)])),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minute_counts_clicks_spend_and_distinct_known_users() {
        let ad = |ad_id| AdKey {
            advertiser_id: 1,
            campaign_id: 1,
            ad_id,
        };
        // Met in the order 9, 3: ranks follow the keys.
        let ranks = AdRanks::new(&[ad(9), ad(3)]);
        assert_eq!((ranks.rank(0), ranks.rank(1)), (1, 0));
        let click = |ad, minute, user_hash, price_micros| ValidClick {
            ad,
            minute,
            user_hash,
            price_micros,
        };
        let mut valid = vec![
            click(1, 0, 5, 10),
            click(0, 2, 0, 7), // an unknown user: a click and its spend, no user
            click(1, 0, 6, 20),
            click(1, 0, 5, 30), // user 5 again
            click(0, 2, 0, 7),
            click(1, 1, 5, 1),
        ];
        let got = per_minute(&mut valid, &ranks, Minute(100));
        let figures = |clicks, spend_micros, unique_users| AdMinute {
            clicks,
            spend_micros,
            unique_users,
        };
        assert_eq!(
            got,
            vec![
                (ad(3), vec![(Minute(102), figures(2, 14, 0))]),
                (
                    ad(9),
                    vec![
                        (Minute(100), figures(3, 60, 2)),
                        (Minute(101), figures(1, 1, 1))
                    ]
                ),
            ]
        );
    }
}
