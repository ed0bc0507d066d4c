//! Click floods: one user, or one client address, clicking far more often than ingest's velocity
//! limits allow (`user_clicks_per_minute` 100, `ip_clicks_per_second` 10 by default), planned
//! when a plan has invalid traffic (`--invalid-share` above 0).
//!
//! Which of a flood's clicks are valid and which `user_velocity` / `ip_velocity` is decided by
//! ingest's receive clock: the first `limit` clicks of each UTC window of receive time are valid,
//! the rest invalid, and where a window boundary falls among the flood's requests (a request
//! delayed by a few ms) moves clicks between the two. So the truth does not predict the split:
//! it records each flood ad's clicks per event-time minute (`floods.csv`), which must equal
//! `adclick_clicks` plus both velocity reasons of `adclick_invalid_clicks` of its campaign; the
//! split itself is checked against the rollup's settlement of the archive, which runs the same
//! classifier over the receive times ingest recorded.
//!
//! Floods go to ads of their own, outside the population (an advertiser after the population's
//! last, with one campaign and one ad per kind: [`flood_ads`]), from users and addresses no honest
//! send has, so that no other ad's truth depends on how a flood was split.
//!
//! # The schedule, per UTC minute of the run
//!
//! In each UTC minute `M` the run covers, in the part of it at least 1 s inside the run
//! (`[max(M, start) + 1 s, min(M + 60 s, end) - 1 s)`), when that part is at least 17 s long:
//!
//! - a **user flood**: [`USER_FLOOD_CLICKS`] clicks, one every 100 ms for 15 s from the part's
//!   start, of one user hash new to the run (signed into the tokens), each from its own honest
//!   address (no address floods);
//! - an **IP flood**: [`IP_FLOOD_CLICKS`] clicks, one every 20 ms from 100 ms into the first
//!   whole second after the user flood (all within one second of send time), each of an
//!   impression without a user, all from one address of [`FLOOD_NETWORK`] new to the run.
//!
//! A run of 60 s or more always has at least one minute with both. Flood sends come on top of the
//! planned rate, in time order among the scheduled ones.

use std::collections::VecDeque;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::client::{self, HONEST_NETWORK, UserAgent};
use crate::invalid::honest_issue_lag_secs;
use crate::plan::{Lateness, PlanConfig, Send, SendKind};
use crate::population::{AdRef, Population};
use crate::users::user_hash;

/// The stream of the plan's seed that floods are drawn from.
const STREAM: u64 = 4;

/// Where IP floods come from: 100.64.0.0/10 (RFC 6598 shared address space), apart from the
/// honest clients' 10.0.0.0/8.
pub const FLOOD_NETWORK: Ipv4Net = Ipv4Net::new_assert(Ipv4Addr::new(100, 64, 0, 0), 10);

/// Clicks of one user flood: 1.5 times the default limit of 100 a minute.
pub const USER_FLOOD_CLICKS: u64 = 150;
const USER_FLOOD_GAP_MS: i64 = 100;
/// Clicks of one IP flood: 3 times the default limit of 10 a second.
pub const IP_FLOOD_CLICKS: u64 = 30;
const IP_FLOOD_GAP_MS: i64 = 20;

/// Which limit a flood is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Flood {
    /// One user hash, `user_velocity`.
    User,
    /// One client address, `ip_velocity`.
    Ip,
}

/// The ads floods go to: `[user flood, IP flood]`, both of advertiser `advertisers + 1`, each in
/// a campaign of its own after the population's last (ids `campaigns + 1`, `campaigns + 2`) with
/// ad ids after the population's last (`ads + 1`, `ads + 2`).
pub fn flood_ads(population: &Population) -> [AdRef; 2] {
    let last = population.ad(population.ads() - 1);
    let ad = |k: u64| AdRef {
        advertiser_id: last.advertiser_id + 1,
        campaign_id: last.campaign_id + k,
        ad_id: last.ad_id + k,
    };
    [ad(1), ad(2)]
}

/// Every flood send of a plan, in time order (module doc); empty without invalid traffic.
pub(crate) fn plan_floods(config: &PlanConfig, population: &Population) -> VecDeque<Send> {
    let mut sends = VecDeque::new();
    if !config.invalid.enabled() {
        return sends;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    rng.set_stream(STREAM);
    let [user_ad, ip_ad] = flood_ads(population);
    let start = config.start_ms;
    let end = start + (config.duration_secs * 1000.0) as i64;
    let mut minute = start.div_euclid(60_000) * 60_000;
    let mut floods = 0u64;
    while minute < end {
        let lo = minute.max(start) + 1_000;
        let hi = (minute + 60_000).min(end) - 1_000;
        let user_end = lo + USER_FLOOD_CLICKS as i64 * USER_FLOOD_GAP_MS;
        let ip_second = (user_end + 999).div_euclid(1000) * 1000;
        if hi - lo >= 17_000 && ip_second + 1_000 <= hi {
            floods += 1;
            // A user no honest send has: the population's are user_hash(1..=users).
            let flood_user = user_hash(u64::MAX - floods);
            for i in 0..USER_FLOOD_CLICKS as i64 {
                let ip = client::random_address(HONEST_NETWORK, &mut rng);
                let at = lo + i * USER_FLOOD_GAP_MS;
                sends.push_back(flood_send(
                    &mut rng,
                    config,
                    Flood::User,
                    user_ad,
                    at,
                    Some(flood_user),
                    ip,
                ));
            }
            let flood_ip = client::random_address(FLOOD_NETWORK, &mut rng);
            for i in 0..IP_FLOOD_CLICKS as i64 {
                let at = ip_second + 100 + i * IP_FLOOD_GAP_MS;
                sends.push_back(flood_send(
                    &mut rng,
                    config,
                    Flood::Ip,
                    ip_ad,
                    at,
                    None,
                    flood_ip,
                ));
            }
        }
        minute += 60_000;
    }
    sends
}

fn flood_send(
    rng: &mut ChaCha8Rng,
    config: &PlanConfig,
    flood: Flood,
    ad: AdRef,
    at_ms: i64,
    user: Option<u64>,
    client_ip: Ipv4Addr,
) -> Send {
    let impression_id: [u8; 16] = rng.random();
    let random_user: u64 = rng.random();
    Send {
        seq: 0,
        at_ms,
        kind: SendKind::Flood(flood),
        lateness: Lateness::OnTime,
        ad,
        impression_id,
        event_time_ms: at_ms,
        issued_at_secs: at_ms.div_euclid(1000) - honest_issue_lag_secs(rng),
        ttl_secs: config.token_ttl_secs,
        user_hash: user.unwrap_or(random_user),
        user_in_token: user.is_some(),
        price_micros: None,
        duplicated_later: false,
        user_agent: UserAgent::random_browser(rng),
        client_ip,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::invalid::InvalidConfig;
    use crate::population::PopulationConfig;

    fn config(start_ms: i64, secs: f64) -> PlanConfig {
        PlanConfig {
            seed: 4,
            start_ms,
            duration_secs: secs,
            invalid: InvalidConfig {
                share: 0.01,
                ..InvalidConfig::default()
            },
            ..PlanConfig::default()
        }
    }

    #[test]
    fn flood_ads_are_outside_the_population() {
        let population = Population::new(PopulationConfig::default()).unwrap();
        let [user, ip] = flood_ads(&population);
        // 50 advertisers × 10 campaigns × 20 ads.
        assert_eq!(
            (user.advertiser_id, user.campaign_id, user.ad_id),
            (51, 501, 10_001)
        );
        assert_eq!(
            (ip.advertiser_id, ip.campaign_id, ip.ad_id),
            (51, 502, 10_002)
        );
    }

    #[test]
    fn floods_exceed_their_limits_within_one_window() {
        let c = config(1_800_000_030_500, 150.0);
        let population = Population::new(c.population.clone()).unwrap();
        let sends = plan_floods(&c, &population);
        assert!(
            sends
                .iter()
                .zip(sends.iter().skip(1))
                .all(|(a, b)| a.at_ms <= b.at_ms)
        );
        // Per flood: a user's clicks per minute, an address's per second (of send time).
        let mut user_minutes: HashMap<(u64, i64), u64> = HashMap::new();
        let mut ip_seconds: HashMap<(Ipv4Addr, i64), u64> = HashMap::new();
        let mut ips_of_user_floods = std::collections::HashSet::new();
        for s in &sends {
            assert_eq!(s.event_time_ms, s.at_ms);
            assert!(s.issued_at_secs * 1000 <= s.at_ms - 2_000);
            assert!(matches!(s.user_agent, UserAgent::Browser(_)));
            match s.kind {
                SendKind::Flood(Flood::User) => {
                    assert!(s.user_in_token);
                    assert!(HONEST_NETWORK.contains(&s.client_ip));
                    ips_of_user_floods.insert(s.client_ip);
                    *user_minutes
                        .entry((s.user_hash, s.at_ms / 60_000))
                        .or_default() += 1;
                }
                SendKind::Flood(Flood::Ip) => {
                    assert!(!s.user_in_token);
                    assert!(FLOOD_NETWORK.contains(&s.client_ip));
                    *ip_seconds.entry((s.client_ip, s.at_ms / 1000)).or_default() += 1;
                }
                other => panic!("{other:?}"),
            }
        }
        // The run covers the last 29.5 s of minute 0, minutes 1 and 2 and 0.5 s of minute 3: floods
        // in the first three.
        assert_eq!(user_minutes.len(), 3, "{user_minutes:?}");
        assert!(user_minutes.values().all(|&n| n == USER_FLOOD_CLICKS));
        assert_eq!(ip_seconds.len(), 3, "{ip_seconds:?}");
        assert!(ip_seconds.values().all(|&n| n == IP_FLOOD_CLICKS));
        assert_eq!(ips_of_user_floods.len() as u64, 3 * USER_FLOOD_CLICKS);
        assert_eq!(plan_floods(&c, &population), sends, "the seed decides");
    }

    #[test]
    fn short_runs_and_plans_without_invalid_traffic_have_no_floods() {
        let population = Population::new(PopulationConfig::default()).unwrap();
        assert!(plan_floods(&config(1_800_000_000_000, 15.0), &population).is_empty());
        let honest = PlanConfig {
            invalid: InvalidConfig::default(),
            ..config(1_800_000_000_000, 600.0)
        };
        assert!(plan_floods(&honest, &population).is_empty());
        // Any 60 s run floods at least once, wherever it starts in a minute.
        for offset in (0..60_000).step_by(2_500) {
            let c = config(1_800_000_000_000 + offset, 60.0);
            assert!(!plan_floods(&c, &population).is_empty(), "{offset}");
        }
    }
}
