//! Why a click is invalid ([`Reason`], a contract: metric label, configuration key, click.proto
//! enum) and the verdict on one click ([`Verdict`]), with the precedence when several rules match.
//!
//! # The reasons (a contract)
//!
//! | name | code | rule | decided from |
//! |---|---|---|---|
//! | `bot_user_agent` | 1 | the user agent is a declared bot, crawler, link previewer or HTTP library (isbot's list and the operator's patterns), or missing | the request |
//! | `deny_listed_network` | 2 | the client IP is inside a range of the deny list (data centres, operator ranges) | the request |
//! | `prefetch` | 3 | a speculative fetch, not a person's navigation: `Sec-Purpose`, `Purpose: prefetch`, `X-Purpose: preview`, `X-Moz: prefetch`, or `HEAD` | the request |
//! | `too_fast` | 4 | the click came sooner after the token's issue time than a person can see and click an ad | token issue time, receive time |
//! | `user_velocity` | 5 | the user hash clicked more often than allowed in this second or minute | counts |
//! | `ip_velocity` | 6 | the client IP (an IPv6 client's /64) clicked more often than allowed in this second or minute | counts |
//!
//! The **names** are what `adclick_invalid_clicks{reason}` carries, what configuration says and
//! what logs print: they never change meaning and are never reused; a new rule gets a new name.
//! The **codes** are the numbers click.proto's invalid-reason enum gives them (0 there is "valid"):
//! append-only like every proto enum. Codes follow the list, not the precedence, so that a
//! reason added later does not renumber the others.
//!
//! # Precedence: one reason per click
//!
//! A click that breaks several rules is counted once, under the first that matches in this order:
//!
//! 1. **`prefetch`.** Its handling differs from every other reason: ingest answers a non-2xx,
//!    uncacheable status instead of the redirect and does not claim the impression, so the
//!    person's real navigation reaches ingest again and is counted. A bot's or a data centre's
//!    prefetch still gets that answer (a redirect would not help it either), and the MRC's
//!    guidelines count a prefetch only "when acted upon by a valid user", i.e. never by itself.
//! 2. **`bot_user_agent`.** The client said what it is; the most certain of the reasons. A
//!    declared crawler in a data centre is reported as a bot, the more specific explanation.
//! 3. **`deny_listed_network`.** Where it came from, by list.
//! 4. **`too_fast`.** Activity-based, but a fact of the click alone (token and clock): unlike
//!    velocity it never depends on counters that can fail open, so it goes first among the
//!    activity rules and the label of a fast click does not change with Redis' health.
//! 5. **`user_velocity`**, then 6. **`ip_velocity`**: a user hash names one user or device, an IP
//!    can be a whole carrier's NAT, so the narrower explanation wins.
//!
//! The three request reasons come first for a structural reason as well: the rollup cannot
//! re-decide them (the archive keeps neither the raw IP nor, by design, the request headers), so it
//! keeps them from the record ([`crate::settle`]) and re-decides only the activity reasons. Were an
//! activity reason allowed to win over a request reason, the rollup would need facts it does not
//! have.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Why a click is invalid. See the module doc for the names, codes and precedence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    BotUserAgent,
    DenyListedNetwork,
    Prefetch,
    TooFast,
    UserVelocity,
    IpVelocity,
}

/// A name that is not one of [`Reason::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error(
    "unknown invalid-traffic reason `{0}` (known: bot_user_agent, deny_listed_network, prefetch, too_fast, user_velocity, ip_velocity)"
)]
pub struct UnknownReason(pub String);

impl Reason {
    /// Every reason, in code order (1, 2, …).
    pub const ALL: [Reason; 6] = [
        Reason::BotUserAgent,
        Reason::DenyListedNetwork,
        Reason::Prefetch,
        Reason::TooFast,
        Reason::UserVelocity,
        Reason::IpVelocity,
    ];

    /// Every reason, first-winning first: the order [`crate::classify()`] applies the rules in.
    pub const PRECEDENCE: [Reason; 6] = [
        Reason::Prefetch,
        Reason::BotUserAgent,
        Reason::DenyListedNetwork,
        Reason::TooFast,
        Reason::UserVelocity,
        Reason::IpVelocity,
    ];

    /// The stable snake_case name: metric label value, configuration key, log field.
    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::BotUserAgent => "bot_user_agent",
            Reason::DenyListedNetwork => "deny_listed_network",
            Reason::Prefetch => "prefetch",
            Reason::TooFast => "too_fast",
            Reason::UserVelocity => "user_velocity",
            Reason::IpVelocity => "ip_velocity",
        }
    }

    /// The number click.proto's enum gives this reason (never 0: 0 is "valid" there).
    pub const fn code(self) -> u8 {
        match self {
            Reason::BotUserAgent => 1,
            Reason::DenyListedNetwork => 2,
            Reason::Prefetch => 3,
            Reason::TooFast => 4,
            Reason::UserVelocity => 5,
            Reason::IpVelocity => 6,
        }
    }

    /// The reason of a code; `None` for 0 (valid) and for codes this build does not know (a
    /// newer writer's): a reader then treats the click as valid for the rules it knows.
    pub const fn from_code(code: u8) -> Option<Reason> {
        match code {
            1 => Some(Reason::BotUserAgent),
            2 => Some(Reason::DenyListedNetwork),
            3 => Some(Reason::Prefetch),
            4 => Some(Reason::TooFast),
            5 => Some(Reason::UserVelocity),
            6 => Some(Reason::IpVelocity),
            _ => None,
        }
    }

    /// Whether the request alone decides it (`prefetch`, `bot_user_agent`,
    /// `deny_listed_network`): ingest decides these before it touches Redis, a click invalid for
    /// one of them is not counted towards velocity, and the rollup keeps it from the record.
    pub const fn is_per_request(self) -> bool {
        matches!(
            self,
            Reason::Prefetch | Reason::BotUserAgent | Reason::DenyListedNetwork
        )
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Reason {
    type Err = UnknownReason;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reason::ALL
            .into_iter()
            .find(|reason| reason.as_str() == s)
            .ok_or_else(|| UnknownReason(s.to_owned()))
    }
}

/// The classifier's answer for one click.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Verdict {
    /// Counted and billed.
    #[default]
    Valid,
    /// Archived with its reason, counted in `adclick_invalid_clicks`, never billed.
    Invalid(Reason),
}

impl Verdict {
    /// The reason, if invalid.
    pub const fn reason(self) -> Option<Reason> {
        match self {
            Verdict::Valid => None,
            Verdict::Invalid(reason) => Some(reason),
        }
    }

    pub const fn is_valid(self) -> bool {
        matches!(self, Verdict::Valid)
    }

    /// `valid`, or the reason's name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Verdict::Valid => "valid",
            Verdict::Invalid(reason) => reason.as_str(),
        }
    }

    /// The click.proto code: 0 for valid, else the reason's.
    pub const fn code(self) -> u8 {
        match self {
            Verdict::Valid => 0,
            Verdict::Invalid(reason) => reason.code(),
        }
    }
}

impl From<Option<Reason>> for Verdict {
    fn from(reason: Option<Reason>) -> Self {
        reason.map_or(Verdict::Valid, Verdict::Invalid)
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_codes_are_the_contract() {
        let table: Vec<(&str, u8)> = Reason::ALL.iter().map(|r| (r.as_str(), r.code())).collect();
        assert_eq!(
            table,
            [
                ("bot_user_agent", 1),
                ("deny_listed_network", 2),
                ("prefetch", 3),
                ("too_fast", 4),
                ("user_velocity", 5),
                ("ip_velocity", 6),
            ]
        );
        for reason in Reason::ALL {
            assert_eq!(reason.as_str().parse::<Reason>(), Ok(reason));
            assert_eq!(Reason::from_code(reason.code()), Some(reason));
            assert_eq!(reason.to_string(), reason.as_str());
            // Serde (configuration) spells them the same way.
            let toml = format!("r = \"{reason}\"");
            #[derive(Deserialize)]
            struct T {
                r: Reason,
            }
            assert_eq!(toml::from_str::<T>(&toml).unwrap().r, reason);
        }
        assert_eq!(Reason::from_code(0), None);
        assert_eq!(Reason::from_code(7), None);
        assert!("Bot_User_Agent".parse::<Reason>().is_err());
    }

    #[test]
    fn click_proto_enum_is_the_same_contract() {
        use adclick_click::wire::InvalidReason;
        assert_eq!(InvalidReason::Valid as i32, 0);
        assert_eq!(InvalidReason::Valid.label(), None);
        for reason in Reason::ALL {
            let proto = InvalidReason::try_from(i32::from(reason.code())).unwrap();
            assert_eq!(proto.label(), Some(reason.as_str()));
            assert_eq!(proto.is_request_reason(), reason.is_per_request());
        }
        assert!(InvalidReason::try_from(Reason::ALL.len() as i32 + 1).is_err());
    }

    #[test]
    fn precedence_lists_every_reason_once_request_reasons_first() {
        let mut sorted = Reason::PRECEDENCE.map(Reason::code);
        sorted.sort_unstable();
        assert_eq!(sorted, Reason::ALL.map(Reason::code));
        let first_activity = Reason::PRECEDENCE
            .iter()
            .position(|r| !r.is_per_request())
            .unwrap();
        assert!(
            Reason::PRECEDENCE[..first_activity]
                .iter()
                .all(|r| r.is_per_request())
        );
        assert!(
            Reason::PRECEDENCE[first_activity..]
                .iter()
                .all(|r| !r.is_per_request())
        );
    }

    #[test]
    fn verdicts() {
        assert_eq!(Verdict::from(None), Verdict::Valid);
        assert_eq!(Verdict::Valid.as_str(), "valid");
        assert_eq!(Verdict::Valid.code(), 0);
        let invalid = Verdict::from(Some(Reason::TooFast));
        assert_eq!(invalid.reason(), Some(Reason::TooFast));
        assert!(!invalid.is_valid());
        assert_eq!(invalid.to_string(), "too_fast");
        assert_eq!(invalid.code(), 4);
    }
}
