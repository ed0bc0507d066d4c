//! What the rules look at: the facts of one request ([`RequestFacts`]), of one click's timing and
//! counts ([`ActivityFacts`], [`Velocity`]), and what counts towards velocity (a contract both
//! callers keep).
//!
//! # Where the facts come from
//!
//! - **Ingest** has the request: it fills [`RequestFacts`] from the headers and the client IP
//!   ([`crate::client_ip()`]), [`ActivityFacts`] from the verified token, its own receive time and
//!   the counters it incremented in Redis.
//! - **The rollup** has the archived record: the per-request verdict ingest recorded, the token's
//!   issue time, the receive time, the user hash and the IP key; it counts velocity itself over the
//!   settled day and fills [`ActivityFacts`] alone ([`crate::settle`]).
//!
//! # Velocity: what is counted, in which window (the contract)
//!
//! Each count is the **running count** of clicks in a **fixed UTC window** of the receive time,
//! this click included: the first click of a window sees 1, and with a limit of 100 per minute the
//! 100th click of a minute is valid and the 101st invalid ("more than 100 clicks a minute"). Both
//! callers can compute exactly that: ingest with `INCR` on a key per window, the rollup by ordering
//! a window's clicks by receive time (then impression id: clicks of the same millisecond may have
//! been counted in another order live, which the reconciliation reports).
//!
//! - **Windows.** Second `floor(receive_time_ms / 1000)`, minute `floor(receive_time_ms / 60000)`,
//!   of ingest's receive time (click.proto's `receive_time_ms`), never the event time: a client may
//!   report its event time (`?t=`), so a flood could spread itself over the event-time bounds. Fixed
//!   windows let up to twice a limit through across a boundary; sliding ones would not, but they
//!   cost a sorted set per key in Redis and are no more exact in the rollup.
//! - **Keys.** The user: the click's non-zero user hash (0 is unknown: pass `None`, never a count
//!   of all unknown users). The IP: [`crate::ip_key`] of the client IP (an IPv4 address, an IPv6
//!   client's /64, since one IPv6 host rotates through its /64).
//! - **Which clicks count.** Clicks that reached the archive — the first record of an impression,
//!   not a repeat ingest dropped — and that are not invalid for a per-request reason (a prefetch,
//!   a bot, a deny-listed network: none of them is the user clicking). Clicks invalid for
//!   `too_fast` or velocity do count: a flood keeps counting while it floods.
//! - **Not counted is not zero.** `None` means the count is unknown (Redis failed or timed out
//!   and ingest failed open, or no user hash): the rule does not fire, and ingest flags the record
//!   so the rollup's exact count can say where the live verdict differed.

use std::net::IpAddr;

/// The facts of one HTTP request that only ingest sees. Every header is its first value, or `None`
/// when absent or not visible ASCII (`HeaderValue::to_str` failing); the classifier never parses
/// `X-Forwarded-For` or `Forwarded`: `client_ip` is already resolved ([`crate::client_ip()`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestFacts<'a> {
    /// `User-Agent`. Missing, empty or unreadable is an unknown browser ([`crate::Config`]'s
    /// `missing_user_agent_is_bot`).
    pub user_agent: Option<&'a str>,
    /// The method is `HEAD`: link checkers and previewers, never a person's navigation.
    pub head: bool,
    /// `Sec-Purpose` (WICG speculative loading: `prefetch`, `prefetch;prerender`,
    /// `prefetch;anonymous-client-ip`).
    pub sec_purpose: Option<&'a str>,
    /// `Purpose` (Chromium before `Sec-Purpose`: `prefetch`).
    pub purpose: Option<&'a str>,
    /// `X-Purpose` (WebKit: `preview`).
    pub x_purpose: Option<&'a str>,
    /// `X-Moz` (Firefox: `prefetch`).
    pub x_moz: Option<&'a str>,
    /// The client's address, resolved through trusted proxies only.
    pub client_ip: IpAddr,
}

impl<'a> RequestFacts<'a> {
    /// A plain `GET` from `client_ip` with `user_agent` and no prefetch header.
    pub const fn get(user_agent: Option<&'a str>, client_ip: IpAddr) -> Self {
        RequestFacts {
            user_agent,
            head: false,
            sec_purpose: None,
            purpose: None,
            x_purpose: None,
            x_moz: None,
            client_ip,
        }
    }

    /// Whether this is a speculative fetch rather than a person's navigation:
    ///
    /// - `HEAD`;
    /// - any non-empty `Sec-Purpose`: browsers send it only on speculative requests (it is a
    ///   forbidden header, which page scripts cannot set), and today every value of it begins
    ///   with `prefetch`; a value a later browser adds for another kind of speculation must not
    ///   claim the impression either;
    /// - `Purpose`, `X-Purpose` or `X-Moz` equal to `prefetch` or `preview` (ASCII
    ///   case-insensitive, surrounding spaces ignored): the older, unstandardised forms. Any client
    ///   can send these, but all it achieves is that its own click is not counted.
    pub fn is_prefetch(&self) -> bool {
        self.head
            || self.sec_purpose.is_some_and(|v| !v.trim().is_empty())
            || [self.purpose, self.x_purpose, self.x_moz]
                .into_iter()
                .flatten()
                .any(is_speculative_value)
    }
}

fn is_speculative_value(value: &str) -> bool {
    let value = value.trim();
    value.eq_ignore_ascii_case("prefetch") || value.eq_ignore_ascii_case("preview")
}

/// Running counts of the click's windows (module doc: the contract). `None`: not counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Velocity {
    /// Clicks of this user hash in this UTC second of receive time, this one included.
    pub user_clicks_in_second: Option<u64>,
    /// Clicks of this user hash in this UTC minute of receive time, this one included.
    pub user_clicks_in_minute: Option<u64>,
    /// Clicks of this IP key in this UTC second of receive time, this one included.
    pub ip_clicks_in_second: Option<u64>,
    /// Clicks of this IP key in this UTC minute of receive time, this one included.
    pub ip_clicks_in_minute: Option<u64>,
}

/// The fixed UTC windows of a receive time (ms), as the module doc's contract defines them: its
/// second `floor(ms / 1000)` and its minute `floor(ms / 60000)`. Ingest names its Redis counters
/// after them and the rollup counts in them: one definition for both.
pub const fn windows_of(receive_time_ms: i64) -> (i64, i64) {
    (
        receive_time_ms.div_euclid(1000),
        receive_time_ms.div_euclid(60_000),
    )
}

/// Which windows the rules read ([`crate::Rules::velocity_windows`]): a caller counts only these
/// (each is a Redis counter at ingest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VelocityWindows {
    pub user_second: bool,
    pub user_minute: bool,
    pub ip_second: bool,
    pub ip_minute: bool,
}

impl VelocityWindows {
    /// Every window counted (rules with all four limits on).
    pub const ALL: VelocityWindows = VelocityWindows {
        user_second: true,
        user_minute: true,
        ip_second: true,
        ip_minute: true,
    };
}

impl VelocityWindows {
    /// Whether any user window is read (ingest needs a user hash for it).
    pub const fn any_user(self) -> bool {
        self.user_second || self.user_minute
    }

    /// Whether any IP window is read.
    pub const fn any_ip(self) -> bool {
        self.ip_second || self.ip_minute
    }
}

/// The facts of one click that both ingest and the rollup have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ActivityFacts {
    /// The token's `issued_at`, Unix seconds (whole seconds: the token carries no more).
    pub token_issued_at_secs: u64,
    /// When ingest received the click, Unix milliseconds (click.proto's `receive_time_ms`).
    pub received_at_ms: i64,
    pub velocity: Velocity,
}

/// Everything ingest knows about one click: [`crate::classify()`]'s input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facts<'a> {
    pub request: RequestFacts<'a>,
    pub activity: ActivityFacts,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get() -> RequestFacts<'static> {
        RequestFacts::get(Some("Mozilla/5.0"), IpAddr::from([192, 0, 2, 1]))
    }

    #[test]
    fn a_plain_get_is_no_prefetch() {
        assert!(!get().is_prefetch());
        let empty = RequestFacts {
            sec_purpose: Some("  "),
            purpose: Some(""),
            x_moz: Some("something-else"),
            ..get()
        };
        assert!(!empty.is_prefetch());
    }

    #[test]
    fn each_prefetch_signal_alone() {
        let cases = [
            RequestFacts {
                head: true,
                ..get()
            },
            RequestFacts {
                sec_purpose: Some("prefetch"),
                ..get()
            },
            RequestFacts {
                sec_purpose: Some("prefetch;prerender"),
                ..get()
            },
            RequestFacts {
                sec_purpose: Some("prefetch;anonymous-client-ip"),
                ..get()
            },
            RequestFacts {
                sec_purpose: Some("some-later-kind"),
                ..get()
            },
            RequestFacts {
                purpose: Some("prefetch"),
                ..get()
            },
            RequestFacts {
                purpose: Some(" Prefetch "),
                ..get()
            },
            RequestFacts {
                x_purpose: Some("preview"),
                ..get()
            },
            RequestFacts {
                x_moz: Some("prefetch"),
                ..get()
            },
        ];
        for (i, case) in cases.iter().enumerate() {
            assert!(case.is_prefetch(), "case {i}: {case:?}");
        }
    }

    #[test]
    fn windows_of_a_receive_time_are_utc_seconds_and_minutes() {
        assert_eq!(windows_of(1_796_551_259_999), (1_796_551_259, 29_942_520));
        assert_eq!(windows_of(1_796_551_260_000), (1_796_551_260, 29_942_521));
        // Before 1970 the windows still hold their millisecond (floor, not truncation).
        assert_eq!(windows_of(-1), (-1, -1));
    }

    #[test]
    fn windows_say_what_they_need() {
        let none = VelocityWindows::default();
        assert!(!none.any_user() && !none.any_ip());
        let user = VelocityWindows {
            user_minute: true,
            ..none
        };
        assert!(user.any_user() && !user.any_ip());
        let ip = VelocityWindows {
            ip_second: true,
            ..none
        };
        assert!(!ip.any_user() && ip.any_ip());
    }
}
