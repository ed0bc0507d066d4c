//! The plan of a run: every send, in order, decided by the seed alone — which ad, which
//! impression, what event time, whether it is a repeat, late, forged or expired — so that a run is
//! reproducible and its ground truth is known before anything is sent.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use adclick_click::minute::MINUTE_MS;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use std::collections::VecDeque;
use std::iter::Peekable;
use std::net::Ipv4Addr;

use crate::client::{Clients, UserAgent};
use crate::floods::{Flood, plan_floods};
use crate::invalid::{InvalidConfig, Invalids, PrefetchSignal, honest_issue_lag_secs};
use crate::population::{AdRef, Population, PopulationConfig, PopulationError};
use crate::shape::{Schedule, TrafficShape};
use crate::users::{Extras, PriceRange};

/// What to send, and how much of it is noise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PlanConfig {
    pub seed: u64,
    /// Wall-clock time (ms since the epoch) of the run's first send.
    pub start_ms: i64,
    pub duration_secs: f64,
    pub shape: TrafficShape,
    pub population: PopulationConfig,
    /// Share of clicks whose impression is clicked again (a duplicate send) some seconds later.
    pub duplicate_share: f64,
    /// Duplicates follow their original by 1 s up to this many seconds (past minute boundaries).
    pub duplicate_delay_max_secs: f64,
    /// The exporter's allowed lateness; "late" clicks stay within it, "too late" ones exceed it.
    pub allowed_lateness_secs: f64,
    /// Share of clicks whose event time lags their send time, within the allowed lateness.
    pub late_share: f64,
    /// Share of clicks that arrive after their minute was finalised (lag > lateness + 1 minute).
    pub too_late_share: f64,
    /// The most a too-late click lags beyond `allowed_lateness + 60 s`.
    pub too_late_extra_max_secs: f64,
    /// Keeps "late" and "too late" clear of the lateness boundary by this much: a consumer's
    /// watermark runs ahead of the send order by as much as records are reordered in flight
    /// and lags it by the gaps between a partition's records, so a click right at the boundary
    /// could land on either side.
    pub lateness_margin_secs: f64,
    /// Share of sends carrying a forged token (wrong key or unknown key id): never counted.
    pub forged_share: f64,
    /// Share of sends carrying an expired token: never counted.
    pub expired_share: f64,
    /// Lifetime of genuine tokens.
    pub token_ttl_secs: u64,
    /// Users who click, each click's drawn uniformly among them and signed into its token
    /// (version 2) as their salted hash (`users::user_hash`). 0: no population; tokens carry no
    /// user, and the Kafka target's records a random hash per click, as before.
    pub users: u64,
    /// Each click's price, signed into its token (version 2) and written into the Kafka target's
    /// record. None: unpriced.
    pub prices: Option<PriceRange>,
    /// Invalid traffic on purpose (`invalid`, `floods`); none by default.
    pub invalid: InvalidConfig,
}

impl Default for PlanConfig {
    fn default() -> Self {
        PlanConfig {
            seed: 1,
            start_ms: 0,
            duration_secs: 60.0,
            shape: TrafficShape::Steady { rate: 100.0 },
            population: PopulationConfig::default(),
            duplicate_share: 0.02,
            duplicate_delay_max_secs: 90.0,
            allowed_lateness_secs: 60.0,
            late_share: 0.05,
            too_late_share: 0.002,
            too_late_extra_max_secs: 120.0,
            lateness_margin_secs: 0.0,
            forged_share: 0.001,
            expired_share: 0.001,
            token_ttl_secs: 3600,
            users: 0,
            prices: None,
            invalid: InvalidConfig::default(),
        }
    }
}

/// Why a plan cannot be made.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PlanError {
    #[error(transparent)]
    Population(#[from] PopulationError),
    #[error("{0}")]
    Shape(String),
    #[error("{name} must be in [0, 1], got {value}")]
    Share { name: &'static str, value: f64 },
    #[error("the shares of late, too late, forged and expired sends add up to more than 1")]
    SharesExceedOne,
    #[error("{0} must be positive and finite")]
    Duration(&'static str),
    #[error("the lowest price, {min_micros}, is above the highest, {max_micros}")]
    PriceRange { min_micros: u64, max_micros: u64 },
    #[error("{0}")]
    Invalid(String),
    #[error(
        "{users} users at up to {peak_rate} clicks/s make about {per_user_minute:.0} clicks per user \
         in a minute; ingest counts more than 100 as user_velocity: keep it at most \
         {MAX_USER_CLICKS_PER_MINUTE} (more users or a lower rate)"
    )]
    UserRate {
        users: u64,
        peak_rate: f64,
        per_user_minute: f64,
    },
}

/// The most clicks one population user may make in a minute on average: ingest's default
/// `user_clicks_per_minute` is 100, and a user's clicks in a minute are about Poisson-distributed
/// (uniform draws), so a mean of 50 leaves over 100 practically impossible (below 1e-9).
pub const MAX_USER_CLICKS_PER_MINUTE: f64 = 50.0;

/// How a send's token is forged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Forgery {
    /// Signed with a secret that is not the key's.
    WrongKey,
    /// Names a key id the verifier does not know.
    UnknownKeyId,
}

/// What a send is, for the ground truth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SendKind {
    /// A first click on an impression: counted.
    Click,
    /// A repeat click on an impression already sent: not counted again.
    Duplicate,
    /// A token that must be refused.
    Forged(Forgery),
    /// A genuine token past its expiry: refused.
    Expired,
    /// A speculative fetch: answered 503, counted once as invalid `prefetch`; the impression's
    /// own click (a [`SendKind::Click`]) follows it (`invalid`).
    Prefetch(PrefetchSignal),
    /// A declared bot's user agent, or none: redirected, counted as `bot_user_agent`.
    Bot,
    /// From the deny-listed network: redirected, counted as `deny_listed_network`.
    DenyListed,
    /// A token issued after the send: redirected, counted as `too_fast`.
    TooFast,
    /// One click of a flood: redirected; valid or velocity-invalid as ingest's receive clock
    /// decides (`floods`).
    Flood(Flood),
}

/// How far a click's event time lags its send time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Lateness {
    OnTime,
    /// Within the allowed lateness: the stream path counts it in its minute.
    Late,
    /// Beyond it: its minute was final before it arrived; the rollup settles it.
    TooLate,
}

/// One request of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Send {
    /// Position in the plan, from 0.
    pub seq: u64,
    /// When to send it (ms since the epoch).
    pub at_ms: i64,
    pub kind: SendKind,
    pub lateness: Lateness,
    pub ad: AdRef,
    pub impression_id: [u8; 16],
    /// When the user clicked (ms since the epoch): decides the minute.
    pub event_time_ms: i64,
    /// The token's issue time (s since the epoch) and lifetime.
    pub issued_at_secs: i64,
    pub ttl_secs: u64,
    /// Who clicked, as the click record carries it: one of the plan's `users` when it has any,
    /// else random per click (then only the Kafka target's records carry it).
    pub user_hash: u64,
    /// The token carries `user_hash` (the plan has `users`).
    pub user_in_token: bool,
    /// The click's price in micro-units (the plan has `prices`), in the token and the record.
    pub price_micros: Option<u64>,
    /// A duplicate of this impression is planned later in the run.
    pub duplicated_later: bool,
    /// The browser (or bot) that sends it over HTTP (`client`).
    pub user_agent: UserAgent,
    /// The client's address, sent as `X-Forwarded-For` (`client`).
    pub client_ip: Ipv4Addr,
}

impl Send {
    /// The landing URL the ad points to (what the 302 must name).
    pub fn landing_url(&self) -> String {
        landing_url(&self.ad)
    }
}

/// The advertiser landing page of an ad; deterministic so the HTTP target can check the 302.
pub fn landing_url(ad: &AdRef) -> String {
    format!(
        "https://advertiser-{}.example/landing?campaign={}&ad={}",
        ad.advertiser_id, ad.campaign_id, ad.ad_id
    )
}

/// The plan: an iterator of sends in send order.
pub struct Plan {
    config: PlanConfig,
    population: Population,
    rng: ChaCha8Rng,
    /// Users and prices, from a stream of their own: see `users`.
    extras: Extras,
    /// Browsers and addresses, from a stream of their own: see `client`.
    clients: Clients,
    /// Which slots are invalid, from a stream of their own: see `invalid`.
    invalids: Invalids,
    /// Flood sends not yet sent, in time order: see `floods`.
    floods: VecDeque<Send>,
    schedule: Peekable<Schedule>,
    /// Duplicates waiting for their time, earliest first.
    pending: BinaryHeap<Reverse<(i64, u64)>>,
    pending_sends: std::collections::HashMap<u64, Send>,
    /// Tie-breaker of duplicates due at the same millisecond, in the order they were planned.
    planned_duplicates: u64,
    seq: u64,
}

impl Plan {
    pub fn new(config: PlanConfig) -> Result<Plan, PlanError> {
        config.shape.validate().map_err(PlanError::Shape)?;
        for (name, value) in [
            ("duplicate_share", config.duplicate_share),
            ("late_share", config.late_share),
            ("too_late_share", config.too_late_share),
            ("forged_share", config.forged_share),
            ("expired_share", config.expired_share),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(PlanError::Share { name, value });
            }
        }
        if config.late_share + config.too_late_share > 1.0
            || config.forged_share + config.expired_share > 1.0
        {
            return Err(PlanError::SharesExceedOne);
        }
        for (name, v) in [
            ("duration_secs", config.duration_secs),
            ("duplicate_delay_max_secs", config.duplicate_delay_max_secs),
            ("allowed_lateness_secs", config.allowed_lateness_secs),
            ("too_late_extra_max_secs", config.too_late_extra_max_secs),
        ] {
            if !v.is_finite() || v <= 0.0 {
                return Err(PlanError::Duration(name));
            }
        }
        if let Some(p) = config.prices.filter(|p| p.min_micros > p.max_micros) {
            return Err(PlanError::PriceRange {
                min_micros: p.min_micros,
                max_micros: p.max_micros,
            });
        }
        config.invalid.check().map_err(PlanError::Invalid)?;
        check_user_rate(&config)?;
        let population = Population::new(config.population.clone())?;
        Ok(Plan {
            rng: ChaCha8Rng::seed_from_u64(config.seed),
            extras: Extras::new(config.seed, config.users, config.prices),
            clients: Clients::new(config.seed),
            invalids: Invalids::new(config.seed, config.invalid.clone()),
            floods: plan_floods(&config, &population),
            schedule: Schedule::new(config.shape.clone(), config.duration_secs).peekable(),
            population,
            pending: BinaryHeap::new(),
            pending_sends: Default::default(),
            planned_duplicates: 0,
            seq: 0,
            config,
        })
    }

    pub fn config(&self) -> &PlanConfig {
        &self.config
    }

    pub fn population(&self) -> &Population {
        &self.population
    }

    fn new_click(&mut self, at_ms: i64) -> Send {
        let c = &self.config;
        let rng = &mut self.rng;
        let ad = self.population.sample(rng);
        let impression_id: [u8; 16] = rng.random();
        let user_hash: u64 = rng.random();
        let noise: f64 = rng.random();
        let kind = if noise < c.forged_share {
            Send::forgery(rng.random_bool(0.5))
        } else if noise < c.forged_share + c.expired_share {
            SendKind::Expired
        } else {
            SendKind::Click
        };
        let lateness_draw: f64 = rng.random();
        let lateness_ms = (c.allowed_lateness_secs * 1000.0) as i64;
        let margin_ms = (c.lateness_margin_secs * 1000.0) as i64;
        let (lateness, lag_ms) = if lateness_draw < c.late_share {
            // Strictly inside the allowed lateness, so the stream path must count it.
            (
                Lateness::Late,
                rng.random_range(1_000..(lateness_ms - margin_ms).max(1_001)),
            )
        } else if lateness_draw < c.late_share + c.too_late_share {
            // Past lateness + one minute: its minute is final whatever its offset in the minute.
            let min = lateness_ms + MINUTE_MS + 1_000 + margin_ms;
            (
                Lateness::TooLate,
                rng.random_range(min..min + (c.too_late_extra_max_secs * 1000.0) as i64),
            )
        } else {
            (Lateness::OnTime, 0)
        };
        let event_time_ms = at_ms - lag_ms;
        // The impression was served (and its token signed) a little before the click: at least
        // 2 s, never too fast (`invalid`).
        let served_secs = event_time_ms.div_euclid(1000) - honest_issue_lag_secs(rng);
        let (issued_at_secs, ttl_secs) = if kind == SendKind::Expired {
            // Issued long enough ago that it expired well before this send.
            (
                at_ms.div_euclid(1000) - c.token_ttl_secs as i64 - rng.random_range(120..600),
                c.token_ttl_secs,
            )
        } else {
            (served_secs, c.token_ttl_secs)
        };
        let duplicated_later = kind == SendKind::Click && rng.random::<f64>() < c.duplicate_share;
        let (population_user, price_micros) = self.extras.draw();
        let (user_agent, client_ip) = self.clients.draw();
        let send = Send {
            seq: 0,
            at_ms,
            kind,
            lateness,
            ad,
            impression_id,
            event_time_ms,
            issued_at_secs,
            ttl_secs,
            // The random hash is drawn either way, so the main stream stays what it was.
            user_hash: population_user.unwrap_or(user_hash),
            user_in_token: population_user.is_some(),
            price_micros,
            duplicated_later,
            user_agent,
            client_ip,
        };
        if duplicated_later {
            let delay_ms =
                rng.random_range(1_000..=(c.duplicate_delay_max_secs * 1000.0).max(1_000.0) as i64);
            let due = at_ms + delay_ms;
            let mut dup = send.clone();
            dup.kind = SendKind::Duplicate;
            dup.duplicated_later = false;
            self.push_pending(due, dup);
        }
        send
    }

    /// Queues `send` for the first slot at or after `due` (a repeat, a prefetch's click).
    fn push_pending(&mut self, due: i64, send: Send) {
        let key = self.planned_duplicates;
        self.planned_duplicates += 1;
        self.pending.push(Reverse((due, key)));
        self.pending_sends.insert(key, send);
    }

    /// The send of a slot: invalid (`invalid`) or an honest new click.
    fn new_send(&mut self, at_ms: i64) -> Send {
        let drawn = self
            .invalids
            .next(at_ms, &self.config, &self.population, &mut self.extras);
        match drawn {
            Some((send, follow_up)) => {
                if let Some(click) = follow_up {
                    self.push_pending(click.at_ms, click);
                }
                send
            }
            None => self.new_click(at_ms),
        }
    }
}

/// Refuses a population of users so small for the rate that a user would click more than
/// [`MAX_USER_CLICKS_PER_MINUTE`] times a minute on average.
fn check_user_rate(c: &PlanConfig) -> Result<(), PlanError> {
    if c.users == 0 {
        return Ok(());
    }
    let peak_rate = match c.shape {
        TrafficShape::Steady { rate } => rate,
        TrafficShape::Ramp { from, to } => from.max(to),
        TrafficShape::Burst {
            rate, burst_rate, ..
        } => rate.max(burst_rate),
    };
    // Over a run shorter than a minute, a user's clicks in a minute are the run's.
    let per_user_minute = peak_rate * c.duration_secs.min(60.0) / c.users as f64;
    if per_user_minute > MAX_USER_CLICKS_PER_MINUTE {
        return Err(PlanError::UserRate {
            users: c.users,
            peak_rate,
            per_user_minute,
        });
    }
    Ok(())
}

impl Send {
    fn forgery(wrong_key: bool) -> SendKind {
        SendKind::Forged(if wrong_key {
            Forgery::WrongKey
        } else {
            Forgery::UnknownKeyId
        })
    }
}

impl Iterator for Plan {
    type Item = Send;

    fn next(&mut self) -> Option<Send> {
        // A flood's send comes before the next scheduled one when it is due first.
        let scheduled_at = self
            .schedule
            .peek()
            .map(|offset| self.config.start_ms + (offset * 1000.0) as i64);
        let flood_first = match (self.floods.front(), scheduled_at) {
            (Some(flood), Some(at)) => flood.at_ms < at,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if flood_first {
            let mut send = self.floods.pop_front()?;
            send.seq = self.seq;
            self.seq += 1;
            return Some(send);
        }
        let offset = self.schedule.next()?;
        let at_ms = self.config.start_ms + (offset * 1000.0) as i64;
        // A due duplicate takes this slot, so the requested rate is held exactly.
        let mut send = match self.pending.peek() {
            Some(Reverse((due, _))) if *due <= at_ms => {
                let Reverse((_, key)) = self.pending.pop().expect("peeked");
                let mut dup = self.pending_sends.remove(&key).expect("pending duplicate");
                // The user clicked again now: same impression, a later event time.
                dup.event_time_ms += at_ms - dup.at_ms;
                dup.at_ms = at_ms;
                dup
            }
            _ => self.new_send(at_ms),
        };
        send.seq = self.seq;
        self.seq += 1;
        Some(send)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config() -> PlanConfig {
        PlanConfig {
            seed: 42,
            start_ms: 1_800_000_000_000,
            duration_secs: 120.0,
            shape: TrafficShape::Steady { rate: 200.0 },
            duplicate_share: 0.1,
            late_share: 0.1,
            too_late_share: 0.05,
            forged_share: 0.02,
            expired_share: 0.02,
            ..Default::default()
        }
    }

    #[test]
    fn same_seed_same_plan_other_seed_other_plan() {
        let a: Vec<Send> = Plan::new(config()).unwrap().collect();
        let b: Vec<Send> = Plan::new(config()).unwrap().collect();
        let c: Vec<Send> = Plan::new(PlanConfig {
            seed: 43,
            ..config()
        })
        .unwrap()
        .collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.len(), 24_000);
    }

    #[test]
    fn duplicates_repeat_an_earlier_click_later() {
        let sends: Vec<Send> = Plan::new(config()).unwrap().collect();
        let first: HashMap<[u8; 16], &Send> = sends
            .iter()
            .filter(|s| s.kind == SendKind::Click)
            .map(|s| (s.impression_id, s))
            .collect();
        let dups: Vec<&Send> = sends
            .iter()
            .filter(|s| s.kind == SendKind::Duplicate)
            .collect();
        assert!(dups.len() > 1000, "{} duplicates", dups.len());
        let mut crossed_minutes = 0;
        for d in &dups {
            let orig = first[&d.impression_id];
            assert!(orig.duplicated_later);
            assert!(d.seq > orig.seq && d.at_ms >= orig.at_ms + 1_000);
            assert!(d.event_time_ms > orig.event_time_ms);
            assert_eq!((d.ad, d.issued_at_secs), (orig.ad, orig.issued_at_secs));
            if d.event_time_ms / MINUTE_MS != orig.event_time_ms / MINUTE_MS {
                crossed_minutes += 1;
            }
        }
        assert!(
            crossed_minutes > 100,
            "{crossed_minutes} duplicates crossed a minute"
        );
    }

    #[test]
    fn lateness_and_noise_follow_their_definitions() {
        let c = config();
        let lateness_ms = (c.allowed_lateness_secs * 1000.0) as i64;
        let sends: Vec<Send> = Plan::new(c.clone()).unwrap().collect();
        let mut counts: HashMap<&'static str, usize> = HashMap::new();
        for s in sends.iter().filter(|s| s.kind != SendKind::Duplicate) {
            let lag = s.at_ms - s.event_time_ms;
            match s.lateness {
                Lateness::OnTime => assert_eq!(lag, 0),
                Lateness::Late => assert!(lag > 0 && lag < lateness_ms, "{lag}"),
                Lateness::TooLate => assert!(lag > lateness_ms + MINUTE_MS, "{lag}"),
            }
            match s.kind {
                SendKind::Expired => {
                    assert!((s.issued_at_secs + s.ttl_secs as i64) * 1000 < s.at_ms - 60_000);
                    *counts.entry("expired").or_default() += 1;
                }
                SendKind::Forged(_) => *counts.entry("forged").or_default() += 1,
                _ => assert!(s.issued_at_secs * 1000 < s.event_time_ms),
            }
            *counts
                .entry(match s.lateness {
                    Lateness::OnTime => "on time",
                    Lateness::Late => "late",
                    Lateness::TooLate => "too late",
                })
                .or_default() += 1;
        }
        let n = sends.len() as f64;
        for (what, share) in [
            ("late", 0.1),
            ("too late", 0.05),
            ("forged", 0.02),
            ("expired", 0.02),
        ] {
            let got = counts[what] as f64 / n;
            assert!(
                (got - share).abs() < share * 0.25,
                "{what}: {got} vs {share}"
            );
        }
    }

    #[test]
    fn invalid_configs_are_refused() {
        assert!(matches!(
            Plan::new(PlanConfig {
                late_share: 1.5,
                ..config()
            })
            .err(),
            Some(PlanError::Share {
                name: "late_share",
                ..
            })
        ));
        assert_eq!(
            Plan::new(PlanConfig {
                forged_share: 0.6,
                expired_share: 0.6,
                ..config()
            })
            .err(),
            Some(PlanError::SharesExceedOne)
        );
        assert_eq!(
            Plan::new(PlanConfig {
                duration_secs: 0.0,
                ..config()
            })
            .err(),
            Some(PlanError::Duration("duration_secs"))
        );
    }
}
