//! Distinct users of one open minute: each ad's first user hash inline in its counts, every other
//! one in a single list for the minute, sorted and deduplicated only when the minute closes.
//!
//! `adclick_unique_users` is the number of distinct non-zero `user_hash` among an ad's valid
//! clicks of the minute (for `ad_id="other"`: among the campaign's folded ads' clicks together).
//! Most ads have one or two clicks a minute, so a set per ad would cost more than the ad's
//! counts: instead an ad keeps its first user in its 24-byte [`AdMinute`](crate::window::AdMinute)
//! and appends each click by another user to the minute's list as (the ad's slot, user hash), 16
//! bytes, repeats included. Closing the minute sorts the list once (`O(n log n)` in the clicks
//! by a second user) and counts each slot's distinct hashes.

use crate::window::{AdMinute, CampaignKey};

/// The clicks of users other than their ad's first, for one minute.
#[derive(Debug, Clone, Default)]
pub struct MoreUsers {
    /// (slot of the ad, user hash): never 0 and never the ad's first user; repeats allowed.
    entries: Vec<(u32, u64)>,
}

impl MoreUsers {
    /// Records a click on the ad of `counts` by `user_hash` (0: unknown, never counted).
    pub fn add(&mut self, counts: &mut AdMinute, user_hash: u64) {
        if user_hash == 0 || user_hash == counts.first_user {
            return;
        }
        if counts.first_user == 0 {
            counts.first_user = user_hash;
        } else {
            self.entries.push((counts.slot, user_hash));
        }
    }

    /// Entries held (repeats included): what this minute's list costs, 16 bytes each.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The minute's users, settled: the list sorted and deduplicated.
    pub fn distinct(&self) -> DistinctUsers {
        let mut entries = self.entries.clone();
        entries.sort_unstable();
        entries.dedup();
        DistinctUsers { entries }
    }
}

/// A closed minute's users beyond each ad's first: sorted by slot, then hash, no repeats.
#[derive(Debug, Clone, Default)]
pub struct DistinctUsers {
    entries: Vec<(u32, u64)>,
}

impl DistinctUsers {
    /// Every distinct user of one ad: its first user and the list's entries for its slot.
    pub fn of(&self, ad: &AdMinute) -> impl Iterator<Item = u64> + '_ {
        let start = self.entries.partition_point(|(slot, _)| *slot < ad.slot);
        let end = self.entries.partition_point(|(slot, _)| *slot <= ad.slot);
        let first = (ad.first_user != 0).then_some(ad.first_user);
        first
            .into_iter()
            .chain(self.entries[start..end].iter().map(|(_, user)| *user))
    }

    /// The number of distinct users of one ad.
    pub fn count(&self, ad: &AdMinute) -> u64 {
        let start = self.entries.partition_point(|(slot, _)| *slot < ad.slot);
        let end = self.entries.partition_point(|(slot, _)| *slot <= ad.slot);
        u64::from(ad.first_user != 0) + (end - start) as u64
    }
}

/// Distinct users per campaign over several ads (the ads folded into `other`): a user who clicked
/// two of them counts once.
#[derive(Debug, Default)]
pub struct CampaignUsers {
    entries: Vec<(CampaignKey, u64)>,
}

impl CampaignUsers {
    pub fn add(&mut self, campaign: CampaignKey, users: impl Iterator<Item = u64>) {
        self.entries.extend(users.map(|user| (campaign, user)));
    }

    /// Each campaign with its number of distinct users (campaigns without users left out).
    pub fn counts(mut self) -> Vec<(CampaignKey, u64)> {
        self.entries.sort_unstable();
        self.entries.dedup();
        let mut out: Vec<(CampaignKey, u64)> = vec![];
        for (campaign, _) in self.entries {
            match out.last_mut() {
                Some((c, n)) if *c == campaign => *n += 1,
                _ => out.push((campaign, 1)),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ad(slot: u32) -> AdMinute {
        AdMinute {
            slot,
            ..AdMinute::default()
        }
    }

    #[test]
    fn each_ad_counts_its_distinct_non_zero_users() {
        let mut more = MoreUsers::default();
        let (mut a, mut b) = (ad(0), ad(1));
        for user in [7, 0, 7, 8, 9, 8, 0] {
            more.add(&mut a, user);
        }
        more.add(&mut b, 8);
        // Only the clicks by a second, third... user of an ad are listed, with their repeats.
        assert_eq!(more.len(), 3);
        let users = more.distinct();
        assert_eq!((users.count(&a), users.count(&b)), (3, 1));
        let mut of_a: Vec<u64> = users.of(&a).collect();
        of_a.sort_unstable();
        assert_eq!(of_a, vec![7, 8, 9]);
        assert_eq!(users.count(&ad(2)), 0);
    }

    #[test]
    fn a_campaign_counts_a_user_of_two_ads_once() {
        let c = |id| CampaignKey {
            advertiser_id: 1,
            campaign_id: id,
        };
        let mut users = CampaignUsers::default();
        users.add(c(1), [5, 6].into_iter());
        users.add(c(1), [6, 7].into_iter());
        users.add(c(2), [5].into_iter());
        assert_eq!(users.counts(), vec![(c(1), 3), (c(2), 1)]);
    }
}
