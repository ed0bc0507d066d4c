//! Invalid traffic on purpose (`--invalid-share`): sends ingest must classify as invalid
//! (click.proto's `invalid_reason`, the adclick-invalid crate) and count in
//! `adclick_invalid_clicks`, never in `adclick_clicks`; each kind with the outcome the ground
//! truth predicts exactly.
//!
//! | kind | what is sent | ingest's answer | the truth |
//! |---|---|---|---|
//! | [`SendKind::Bot`] | a browser-less `User-Agent` ([`crate::client::BOTS`]) or none at all | 302 | one `bot_user_agent` |
//! | [`SendKind::Prefetch`] | a speculative fetch ([`PrefetchSignal`]), then the same token's normal click 0.2–3 s later | 503 to the prefetch, 302 to the click | one `prefetch` and one valid click |
//! | [`SendKind::DenyListed`] | `X-Forwarded-For` from the deny-listed network (`--deny-network`) | 302 | one `deny_listed_network` |
//! | [`SendKind::TooFast`] | a token issued [`TOO_FAST_LEAD_SECS`] after the send instant | 302 | one `too_fast` |
//! | floods ([`crate::floods`]) | one user or one address far over its velocity limit | 302 | totals only |
//!
//! A share `F` of the scheduled sends (first clicks, not repeats) is one of the four kinds above,
//! each a quarter of it, to an ad of the population, on time, never repeated. The sends are
//! otherwise honest (a browser and an honest address unless the kind says otherwise), so that
//! each breaks exactly one rule: the reason it must be counted under. Which sends, which kind,
//! which bot and which address follow from the seed, from a random stream of their own: with
//! `F = 0` nothing is drawn and a plan is exactly what it was without invalid traffic.
//!
//! # too_fast, exactly
//!
//! The token carries its issue time in whole seconds and ingest calls a click too fast when
//! `receive_ms - issued_at_secs * 1000 < too_fast_ms` (1000 by default). A token issued at
//! `floor(at / 1000) + TOO_FAST_LEAD_SECS` makes that difference negative for any receive time
//! before `floor(at / 1000) + TOO_FAST_LEAD_SECS` seconds: too fast for every `too_fast_ms >= 0`
//! as long as the request reaches ingest within about `TOO_FAST_LEAD_SECS - 1` seconds of its
//! planned instant (an open-loop run; the summary's `start_lag` says). Ingest accepts a token
//! issued up to `[tokens] clock_skew_secs` (30 by default) in the future, so the lead must stay
//! below it; the click time `t` it accepts down to the issue time minus the same skew.
//!
//! The honest sends' tokens are issued at least 2 s before their event time (`plan`), so no honest
//! click is ever too fast (`floor` of the issue second costs up to 999 ms of the margin, leaving
//! at least 1 s more than `too_fast_ms`'s default above a receive clock that runs as fast as
//! loadgen's).

use std::net::Ipv4Addr;

use adclick_invalid::Reason;
pub use ipnet::Ipv4Net;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::client::{self, HONEST_NETWORK, UserAgent};
use crate::floods::FLOOD_NETWORK;
use crate::plan::{Lateness, PlanConfig, Send, SendKind};
use crate::population::Population;
use crate::users::Extras;

/// The stream of the plan's seed that invalid sends are drawn from.
const STREAM: u64 = 3;

/// How far after the send instant a too_fast token is issued, seconds (module doc).
pub const TOO_FAST_LEAD_SECS: i64 = 5;

/// The follow-up click of a prefetch comes this long after it, ms (uniform): a browser's
/// prefetch precedes the person's click by a moment.
const PREFETCH_TO_CLICK_MS: std::ops::Range<i64> = 200..3_000;

/// The deny-listed network's default: TEST-NET-3 (RFC 5737), never a real client.
pub const DEFAULT_DENY_NETWORK: Ipv4Net = Ipv4Net::new_assert(Ipv4Addr::new(203, 0, 113, 0), 24);

/// How much invalid traffic a plan has.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InvalidConfig {
    /// Share of the scheduled sends that are invalid (bot, prefetch, deny-listed, too fast, a
    /// quarter each). Above 0, the plan floods too ([`crate::floods`]).
    pub share: f64,
    /// The deny-listed network the deny-listed sends come from: ingest's `[invalid]
    /// deny_list_file` must hold it. It must not overlap the honest clients' 10.0.0.0/8 or the
    /// floods' 100.64.0.0/10.
    pub deny_network: Ipv4Net,
}

impl Default for InvalidConfig {
    fn default() -> Self {
        InvalidConfig {
            share: 0.0,
            deny_network: DEFAULT_DENY_NETWORK,
        }
    }
}

impl InvalidConfig {
    /// Whether the plan has any invalid traffic (and so writes `invalid.csv` and `floods.csv`).
    pub fn enabled(&self) -> bool {
        self.share > 0.0
    }

    /// Why this configuration cannot be planned, if it cannot.
    pub fn check(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.share) {
            return Err(format!(
                "the invalid share must be in [0, 1], got {}",
                self.share
            ));
        }
        for (what, net) in [("honest", HONEST_NETWORK), ("flood", FLOOD_NETWORK)] {
            if net.contains(&self.deny_network.network()) || self.deny_network.contains(&net) {
                return Err(format!(
                    "the deny-listed network {} overlaps the {what} clients' {net}",
                    self.deny_network
                ));
            }
        }
        Ok(())
    }
}

/// How a prefetch says it is one (adclick-invalid's `RequestFacts::is_prefetch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PrefetchSignal {
    /// `Sec-Purpose: prefetch` (Chromium, Safari: speculation rules, `<link rel=prefetch>`).
    SecPurpose,
    /// `Purpose: prefetch` (Chromium before `Sec-Purpose`).
    Purpose,
    /// `X-Moz: prefetch` (Firefox).
    XMoz,
    /// The `HEAD` method.
    Head,
}

impl PrefetchSignal {
    const ALL: [PrefetchSignal; 4] = [
        PrefetchSignal::SecPurpose,
        PrefetchSignal::Purpose,
        PrefetchSignal::XMoz,
        PrefetchSignal::Head,
    ];

    /// The header that marks it, `None` for `HEAD`.
    pub fn header(self) -> Option<(&'static str, &'static str)> {
        match self {
            PrefetchSignal::SecPurpose => Some(("sec-purpose", "prefetch")),
            PrefetchSignal::Purpose => Some(("purpose", "prefetch")),
            PrefetchSignal::XMoz => Some(("x-moz", "prefetch")),
            PrefetchSignal::Head => None,
        }
    }
}

impl SendKind {
    /// The reason ingest must count this send under, for the deterministic kinds (a flood's is
    /// decided by ingest's receive clock; the other kinds are valid or refused).
    pub fn invalid_reason(self) -> Option<Reason> {
        match self {
            SendKind::Bot => Some(Reason::BotUserAgent),
            SendKind::Prefetch(_) => Some(Reason::Prefetch),
            SendKind::DenyListed => Some(Reason::DenyListedNetwork),
            SendKind::TooFast => Some(Reason::TooFast),
            _ => None,
        }
    }
}

/// Draws which scheduled sends are invalid and makes them.
#[derive(Debug, Clone)]
pub(crate) struct Invalids {
    rng: ChaCha8Rng,
    config: InvalidConfig,
}

impl Invalids {
    pub(crate) fn new(seed: u64, config: InvalidConfig) -> Invalids {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(STREAM);
        Invalids { rng, config }
    }

    /// The invalid send of the slot at `at_ms`, or `None` for an honest one; with a prefetch, its
    /// follow-up click (due after it) too. Nothing is drawn when the share is 0.
    pub(crate) fn next(
        &mut self,
        at_ms: i64,
        c: &PlanConfig,
        population: &Population,
        extras: &mut Extras,
    ) -> Option<(Send, Option<Send>)> {
        if !self.config.enabled() || self.rng.random::<f64>() >= self.config.share {
            return None;
        }
        let rng = &mut self.rng;
        let kind = match rng.random_range(0..4u8) {
            0 => SendKind::Bot,
            1 => SendKind::Prefetch(PrefetchSignal::ALL[rng.random_range(0..4)]),
            2 => SendKind::DenyListed,
            _ => SendKind::TooFast,
        };
        let ad = population.sample(rng);
        let impression_id: [u8; 16] = rng.random();
        let at_secs = at_ms.div_euclid(1000);
        let issued_at_secs = if kind == SendKind::TooFast {
            at_secs + TOO_FAST_LEAD_SECS
        } else {
            at_secs - honest_issue_lag_secs(rng)
        };
        let user_agent = if kind == SendKind::Bot {
            UserAgent::random_bot(rng)
        } else {
            UserAgent::random_browser(rng)
        };
        let network = if kind == SendKind::DenyListed {
            self.config.deny_network
        } else {
            HONEST_NETWORK
        };
        let client_ip = client::random_address(network, rng);
        let random_user: u64 = rng.random();
        let follow_ms = rng.random_range(PREFETCH_TO_CLICK_MS);
        let (user, price_micros) = extras.draw();
        let send = Send {
            seq: 0,
            at_ms,
            kind,
            lateness: Lateness::OnTime,
            ad,
            impression_id,
            event_time_ms: at_ms,
            issued_at_secs,
            ttl_secs: c.token_ttl_secs,
            user_hash: user.unwrap_or(random_user),
            user_in_token: user.is_some(),
            price_micros,
            duplicated_later: false,
            user_agent,
            client_ip,
        };
        let follow_up = matches!(kind, SendKind::Prefetch(_)).then(|| Send {
            at_ms: at_ms + follow_ms,
            event_time_ms: at_ms + follow_ms,
            kind: SendKind::Click,
            ..send.clone()
        });
        Some((send, follow_up))
    }
}

/// How many whole seconds before its click an honest token is issued: 2 to 30 (module doc).
pub(crate) fn honest_issue_lag_secs(rng: &mut impl Rng) -> i64 {
    // As the plan's own stream draws it: 1..30, plus the second that floor() may eat.
    1 + rng.random_range(1..30)
}

#[cfg(test)]
mod tests;
