//! Who clicks and what a click costs: an optional population of users and an optional range of
//! prices, which a plan signs into version 2 impression tokens (the token's user hash and price)
//! and the Kafka target writes into its records.
//!
//! Both are off by default: tokens stay version 1, and the plan is exactly the plan of a build
//! without them. They draw from a random stream of their own, so turning them on changes nothing
//! else of a plan either: the same seed sends the same ads, impressions and times, now with users
//! and prices.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The salt of the synthetic users' hashes: the placement side's salt, in click.proto's terms.
const SALT: &[u8] = b"adclick-loadgen";
/// The stream of the plan's seed that users and prices are drawn from (the plan's own is 0).
const STREAM: u64 = 1;

/// The price of each click, uniform over `min_micros..=max_micros` micro-units of the campaign's
/// currency (`min == max` for one fixed price).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceRange {
    pub min_micros: u64,
    pub max_micros: u64,
}

impl PriceRange {
    /// `250000` (one price) or `100000-2000000` (a range), as the command line gives it.
    pub fn parse(text: &str) -> Result<PriceRange, String> {
        let number = |part: &str| {
            part.trim()
                .parse::<u64>()
                .map_err(|e| format!("`{part}` is not a price in micro-units: {e}"))
        };
        let range = match text.split_once('-') {
            Some((min, max)) => PriceRange {
                min_micros: number(min)?,
                max_micros: number(max)?,
            },
            None => {
                let price = number(text)?;
                PriceRange {
                    min_micros: price,
                    max_micros: price,
                }
            }
        };
        if range.min_micros > range.max_micros {
            return Err(format!("`{text}`: the lowest price is above the highest"));
        }
        Ok(range)
    }
}

/// The hash of user `user` (1-based) as click.proto defines `user_hash`: the first 8 bytes of
/// SHA-256(salt || id), big-endian, with the user's number as its 8 big-endian bytes for id.
/// Never 0 (click.proto's "unknown", which a token cannot carry): the one-in-2^64 zero is 1.
pub fn user_hash(user: u64) -> u64 {
    let digest = Sha256::new()
        .chain_update(SALT)
        .chain_update(user.to_be_bytes())
        .finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first).max(1)
}

/// Draws each click's user and price.
#[derive(Debug, Clone)]
pub(crate) struct Extras {
    rng: ChaCha8Rng,
    users: u64,
    prices: Option<PriceRange>,
}

impl Extras {
    pub(crate) fn new(seed: u64, users: u64, prices: Option<PriceRange>) -> Extras {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(STREAM);
        Extras { rng, users, prices }
    }

    /// The next click's user hash (uniform over the population) and price, each `None` when the
    /// plan has no users or no prices.
    pub(crate) fn draw(&mut self) -> (Option<u64>, Option<u64>) {
        let user = (self.users > 0).then(|| user_hash(self.rng.random_range(1..=self.users)));
        let price = self
            .prices
            .map(|p| self.rng.random_range(p.min_micros..=p.max_micros));
        (user, price)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_hashes_follow_the_contract_and_differ() {
        // SHA-256("adclick-loadgen" || 00 00 00 00 00 00 00 01), first 8 bytes: computed once with
        // sha256sum and pinned.
        assert_eq!(user_hash(1), 0xf32f_c3a0_0d00_2dc2);
        let hashes: std::collections::HashSet<u64> = (1..=10_000).map(user_hash).collect();
        assert_eq!(hashes.len(), 10_000);
        assert!(!hashes.contains(&0));
    }

    #[test]
    fn prices_parse_as_one_price_or_a_range() {
        let range = |min_micros, max_micros| PriceRange {
            min_micros,
            max_micros,
        };
        assert_eq!(PriceRange::parse("250000"), Ok(range(250_000, 250_000)));
        assert_eq!(PriceRange::parse("0-2000000"), Ok(range(0, 2_000_000)));
        assert_eq!(PriceRange::parse("5 - 7"), Ok(range(5, 7)));
        for bad in ["", "-", "1-", "x", "3-2", "1.5", "-1"] {
            assert!(PriceRange::parse(bad).is_err(), "{bad}");
        }
        // A range built by hand is checked by the plan.
        let inverted = crate::plan::PlanConfig {
            prices: Some(range(3, 2)),
            ..Default::default()
        };
        assert_eq!(
            crate::plan::Plan::new(inverted).err(),
            Some(crate::plan::PlanError::PriceRange {
                min_micros: 3,
                max_micros: 2
            })
        );
    }

    #[test]
    fn draws_stay_in_the_population_and_the_range() {
        let prices = PriceRange {
            min_micros: 10,
            max_micros: 20,
        };
        let mut extras = Extras::new(7, 3, Some(prices));
        let population: Vec<u64> = (1..=3).map(user_hash).collect();
        let mut seen_users = std::collections::HashSet::new();
        let mut seen_prices = std::collections::HashSet::new();
        for _ in 0..1_000 {
            let (user, price) = extras.draw();
            let (user, price) = (user.unwrap(), price.unwrap());
            assert!(population.contains(&user));
            assert!((10..=20).contains(&price));
            seen_users.insert(user);
            seen_prices.insert(price);
        }
        assert_eq!((seen_users.len(), seen_prices.len()), (3, 11));
        assert_eq!(Extras::new(7, 0, None).draw(), (None, None));
    }

    #[test]
    fn users_and_prices_change_nothing_else_of_a_plan() {
        use crate::plan::{Plan, PlanConfig, Send};
        let config = PlanConfig {
            seed: 9,
            start_ms: 1_800_000_000_000,
            duration_secs: 20.0,
            duplicate_share: 0.2,
            forged_share: 0.05,
            ..PlanConfig::default()
        };
        let plain: Vec<Send> = Plan::new(config.clone()).unwrap().collect();
        let with_extras: Vec<Send> = Plan::new(PlanConfig {
            users: 1_000,
            prices: Some(PriceRange::parse("1-5000000").unwrap()),
            ..config
        })
        .unwrap()
        .collect();
        assert_eq!(plain.len(), with_extras.len());
        for (plain, extra) in plain.iter().zip(&with_extras) {
            assert!(!plain.user_in_token && plain.price_micros.is_none());
            assert!(extra.user_in_token && extra.price_micros.is_some());
            let stripped = Send {
                user_hash: plain.user_hash,
                user_in_token: false,
                price_micros: None,
                ..extra.clone()
            };
            assert_eq!(&stripped, plain);
        }
    }
}
