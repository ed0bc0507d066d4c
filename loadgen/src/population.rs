//! Who gets clicked: advertisers → campaigns → ads, clicks skewed over ads by a Zipf law, plus a
//! few hot ads that take a fixed share of all clicks.
//!
//! Nothing is stored per ad: an ad's campaign and advertiser follow from its id, so 10M ads cost
//! no memory. Zipf rank r (1 = most clicked) maps to ad index `(r-1) * STRIDE mod ads`, a
//! bijection that scatters the popular ads over many campaigns instead of the first one.

use rand::Rng;
use rand_distr::{Distribution, Zipf};
use serde::{Deserialize, Serialize};

/// A prime larger than any supported population, so `STRIDE` and the ad count are coprime.
const STRIDE: u64 = 2_147_483_647;

/// The shape of the ad population.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PopulationConfig {
    pub advertisers: u64,
    pub campaigns_per_advertiser: u64,
    pub ads_per_campaign: u64,
    /// Zipf exponent of clicks over ads (0 = uniform; ~1 is typical of ad traffic).
    pub zipf_exponent: f64,
    /// How many ads are "hot": each takes `hot_share / hot_ads` of all clicks.
    pub hot_ads: u64,
    pub hot_share: f64,
}

impl Default for PopulationConfig {
    fn default() -> Self {
        PopulationConfig {
            advertisers: 50,
            campaigns_per_advertiser: 10,
            ads_per_campaign: 20,
            zipf_exponent: 1.0,
            hot_ads: 2,
            hot_share: 0.05,
        }
    }
}

/// One ad and who it belongs to. Ids start at 1 (0 is invalid on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AdRef {
    pub advertiser_id: u64,
    pub campaign_id: u64,
    pub ad_id: u64,
}

/// Why a population cannot be built.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PopulationError {
    #[error("advertisers, campaigns per advertiser and ads per campaign must all be at least 1")]
    Empty,
    #[error("the population has {0} ads; at most {max} are supported", max = STRIDE - 1)]
    TooLarge(u64),
    #[error("zipf exponent must be finite and >= 0, got {0}")]
    ZipfExponent(f64),
    #[error("hot share must be in [0, 1) and hot ads at most the ad count")]
    Hot,
}

/// A sampler of clicked ads.
#[derive(Debug, Clone)]
pub struct Population {
    config: PopulationConfig,
    ads: u64,
    zipf: Zipf<f64>,
}

impl Population {
    pub fn new(config: PopulationConfig) -> Result<Population, PopulationError> {
        let c = &config;
        if c.advertisers == 0 || c.campaigns_per_advertiser == 0 || c.ads_per_campaign == 0 {
            return Err(PopulationError::Empty);
        }
        let ads = c
            .advertisers
            .checked_mul(c.campaigns_per_advertiser)
            .and_then(|n| n.checked_mul(c.ads_per_campaign))
            .filter(|&n| n < STRIDE)
            .ok_or(PopulationError::TooLarge(u64::MAX))?;
        if !c.zipf_exponent.is_finite() || c.zipf_exponent < 0.0 {
            return Err(PopulationError::ZipfExponent(c.zipf_exponent));
        }
        if !(0.0..1.0).contains(&c.hot_share) || c.hot_ads > ads {
            return Err(PopulationError::Hot);
        }
        let zipf = Zipf::new(ads as f64, c.zipf_exponent)
            .map_err(|_| PopulationError::ZipfExponent(c.zipf_exponent))?;
        Ok(Population { config, ads, zipf })
    }

    /// Number of ads.
    pub fn ads(&self) -> u64 {
        self.ads
    }

    /// The ad at `index` (0-based) with its campaign and advertiser.
    pub fn ad(&self, index: u64) -> AdRef {
        let campaign_index = index / self.config.ads_per_campaign;
        let advertiser_index = campaign_index / self.config.campaigns_per_advertiser;
        AdRef {
            advertiser_id: advertiser_index + 1,
            campaign_id: campaign_index + 1,
            ad_id: index + 1,
        }
    }

    /// The hot ads: the ads of Zipf ranks 1..=hot_ads.
    pub fn hot_ads(&self) -> Vec<AdRef> {
        (1..=self.config.hot_ads)
            .map(|rank| self.ad(self.index_of_rank(rank)))
            .collect()
    }

    /// Samples the ad of one click.
    pub fn sample(&self, rng: &mut impl Rng) -> AdRef {
        let hot = self.config.hot_ads;
        let rank = if hot > 0 && rng.random::<f64>() < self.config.hot_share {
            rng.random_range(1..=hot)
        } else {
            (self.zipf.sample(rng) as u64).clamp(1, self.ads)
        };
        self.ad(self.index_of_rank(rank))
    }

    fn index_of_rank(&self, rank: u64) -> u64 {
        ((rank - 1) as u128 * STRIDE as u128 % self.ads as u128) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use std::collections::HashMap;

    #[test]
    fn ids_follow_the_hierarchy() {
        let p = Population::new(PopulationConfig {
            advertisers: 3,
            campaigns_per_advertiser: 2,
            ads_per_campaign: 5,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(p.ads(), 30);
        assert_eq!(
            p.ad(0),
            AdRef {
                advertiser_id: 1,
                campaign_id: 1,
                ad_id: 1
            }
        );
        assert_eq!(
            p.ad(9),
            AdRef {
                advertiser_id: 1,
                campaign_id: 2,
                ad_id: 10
            }
        );
        assert_eq!(
            p.ad(10),
            AdRef {
                advertiser_id: 2,
                campaign_id: 3,
                ad_id: 11
            }
        );
        assert_eq!(
            p.ad(29),
            AdRef {
                advertiser_id: 3,
                campaign_id: 6,
                ad_id: 30
            }
        );
    }

    #[test]
    fn ranks_are_a_permutation() {
        let p = Population::new(PopulationConfig {
            advertisers: 7,
            ..Default::default()
        })
        .unwrap();
        let mut seen: Vec<u64> = (1..=p.ads()).map(|r| p.index_of_rank(r)).collect();
        seen.sort();
        assert_eq!(seen, (0..p.ads()).collect::<Vec<_>>());
    }

    #[test]
    fn clicks_are_skewed_and_hot_ads_get_their_share() {
        let p = Population::new(PopulationConfig {
            hot_ads: 2,
            hot_share: 0.2,
            ..Default::default()
        })
        .unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut counts: HashMap<u64, u64> = HashMap::new();
        let n = 200_000;
        for _ in 0..n {
            *counts.entry(p.sample(&mut rng).ad_id).or_default() += 1;
        }
        let hot: u64 = p.hot_ads().iter().map(|a| counts[&a.ad_id]).sum();
        let zipf_top_two = 2.0 * 0.8 / (1.0 + 1.0 / 2.0) / harmonic(p.ads()); // rough lower bound
        let share = hot as f64 / n as f64;
        assert!(
            share > 0.2 && share < 0.2 + zipf_top_two + 0.1,
            "hot share {share}"
        );
        // Zipf: the most clicked ad gets far more than the median one.
        let mut sorted: Vec<u64> = counts.values().copied().collect();
        sorted.sort_unstable_by(|a, b| b.cmp(a));
        assert!(
            sorted[0] > 20 * sorted[sorted.len() / 2],
            "{} vs {}",
            sorted[0],
            sorted[sorted.len() / 2]
        );
    }

    fn harmonic(n: u64) -> f64 {
        (1..=n).map(|k| 1.0 / k as f64).sum()
    }

    #[test]
    fn bad_populations_are_refused() {
        assert_eq!(
            Population::new(PopulationConfig {
                advertisers: 0,
                ..Default::default()
            })
            .unwrap_err(),
            PopulationError::Empty
        );
        assert!(
            Population::new(PopulationConfig {
                hot_share: 1.0,
                ..Default::default()
            })
            .is_err()
        );
        assert!(
            Population::new(PopulationConfig {
                zipf_exponent: -1.0,
                ..Default::default()
            })
            .is_err()
        );
    }
}
