//! The Redis counters of the velocity rules (`user_velocity`, `ip_velocity`): which a click
//! increments, their keys and lifetimes, and how their answers become the classifier's
//! [`Velocity`].
//!
//! # Keys (a contract with the operator's Redis, not with other programs)
//!
//! ```text
//! {velocity_key_prefix}u:{user_hash, 16 hex digits}:s:{receive second}   user, UTC second
//! {velocity_key_prefix}u:{user_hash, 16 hex digits}:m:{receive minute}   user, UTC minute
//! {velocity_key_prefix}i:{ip_hash, 16 hex digits}:s:{receive second}     IP key, UTC second
//! {velocity_key_prefix}i:{ip_hash, 16 hex digits}:m:{receive minute}     IP key, UTC minute
//! ```
//!
//! The second and the minute are `floor(receive_time_ms / 1000)` and `floor(receive_time_ms /
//! 60000)` of the click record's own `receive_time_ms`, the windows `adclick-invalid`'s contract
//! names (`facts.rs`), so the rollup counting the archive later finds the same windows. Only the
//! windows the rules use are counted ([`adclick_invalid::Rules::velocity_windows`]); a click
//! without a user hash (0) counts towards no user window, one whose IP is unknown towards no IP
//! window. The IP is never in a key: only its keyed hash (click.proto's `ip_hash`).
//!
//! # When they are incremented
//!
//! In the same Redis script as the impression's claim (`dedup.rs`), and only when the claim is
//! new: a repeat ingest drops is no click in the archive, so it must not count live either, or
//! the live verdicts would drift from the rollup's. A click that is invalid for a request reason
//! never gets here (it claims nothing). A counter expires a little after its window ends
//! ([`SECOND_TTL_SECS`], [`MINUTE_TTL_SECS`]): long enough for ingest instances whose clocks
//! differ by seconds to share it, short enough that Redis holds only the current windows.

use adclick_invalid::{Velocity, VelocityWindows};

use crate::keys;

/// Lifetime of a per-second counter, seconds.
pub const SECOND_TTL_SECS: u64 = 10;
/// Lifetime of a per-minute counter, seconds.
pub const MINUTE_TTL_SECS: u64 = 120;

/// Which window a counter counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    UserSecond,
    UserMinute,
    IpSecond,
    IpMinute,
}

/// One counter a click increments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counter {
    pub key: String,
    pub ttl_secs: u64,
    pub window: Window,
}

/// The counters of one click: `user_hash` and `ip_hash` as click.proto defines them (0 unknown).
pub fn counters(
    prefix: &str,
    windows: VelocityWindows,
    user_hash: u64,
    ip_hash: u64,
    receive_time_ms: i64,
) -> Vec<Counter> {
    let (second, minute) = adclick_invalid::windows_of(receive_time_ms);
    let mut out = Vec::new();
    let mut add = |on: bool, who: char, hash: u64, span: char, at: i64, ttl_secs, window| {
        if on && hash != 0 {
            // `{prefix}{who}:{hash:016x}:{span}:{at}`, built without `format!` (`crate::keys`).
            let mut key = String::with_capacity(prefix.len() + 44);
            key.push_str(prefix);
            key.push(who);
            key.push(':');
            keys::push_hex(&mut key, &hash.to_be_bytes());
            key.push(':');
            key.push(span);
            key.push(':');
            keys::push_decimal(&mut key, at);
            out.push(Counter {
                key,
                ttl_secs,
                window,
            });
        }
    };
    add(
        windows.user_second,
        'u',
        user_hash,
        's',
        second,
        SECOND_TTL_SECS,
        Window::UserSecond,
    );
    add(
        windows.user_minute,
        'u',
        user_hash,
        'm',
        minute,
        MINUTE_TTL_SECS,
        Window::UserMinute,
    );
    add(
        windows.ip_second,
        'i',
        ip_hash,
        's',
        second,
        SECOND_TTL_SECS,
        Window::IpSecond,
    );
    add(
        windows.ip_minute,
        'i',
        ip_hash,
        'm',
        minute,
        MINUTE_TTL_SECS,
        Window::IpMinute,
    );
    out
}

/// The classifier's counts from the counters' answers (one per counter, in order). A window not
/// counted stays `None`: its rule does not fire.
pub fn velocity(counters: &[Counter], counts: &[u64]) -> Velocity {
    let mut velocity = Velocity::default();
    for (counter, &count) in counters.iter().zip(counts) {
        let slot = match counter.window {
            Window::UserSecond => &mut velocity.user_clicks_in_second,
            Window::UserMinute => &mut velocity.user_clicks_in_minute,
            Window::IpSecond => &mut velocity.ip_clicks_in_second,
            Window::IpMinute => &mut velocity.ip_clicks_in_minute,
        };
        *slot = Some(count);
    }
    velocity
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: VelocityWindows = VelocityWindows::ALL;

    #[test]
    fn keys_name_the_windows_of_the_receive_time() {
        // 2026-12-06T10:00:59.999Z: second ...059, minute ...000.
        let t = 1_796_551_259_999;
        let c = counters("v:", ALL, 0xab, 0x1234, t);
        let keys: Vec<&str> = c.iter().map(|c| c.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "v:u:00000000000000ab:s:1796551259",
                "v:u:00000000000000ab:m:29942520",
                "v:i:0000000000001234:s:1796551259",
                "v:i:0000000000001234:m:29942520",
            ]
        );
        assert_eq!(c[0].ttl_secs, SECOND_TTL_SECS);
        assert_eq!(c[1].ttl_secs, MINUTE_TTL_SECS);
        // One millisecond later both windows have moved on.
        let next = counters("v:", ALL, 0xab, 0x1234, t + 1);
        assert!(next[0].key.ends_with(":s:1796551260"));
        assert!(next[1].key.ends_with(":m:29942521"));
    }

    #[test]
    fn only_the_windows_in_use_and_known_identities_count() {
        let defaults = VelocityWindows {
            user_minute: true,
            ip_second: true,
            ..VelocityWindows::default()
        };
        let c = counters("v:", defaults, 7, 9, 0);
        assert_eq!(
            c.iter().map(|c| c.window).collect::<Vec<_>>(),
            [Window::UserMinute, Window::IpSecond]
        );
        // No user hash: no user window; no IP: no IP window.
        assert_eq!(counters("v:", ALL, 0, 9, 0).len(), 2);
        assert!(counters("v:", ALL, 0, 0, 0).is_empty());
        assert!(counters("v:", VelocityWindows::default(), 7, 9, 0).is_empty());
    }

    #[test]
    fn answers_fill_their_windows_only() {
        let defaults = VelocityWindows {
            user_minute: true,
            ip_second: true,
            ..VelocityWindows::default()
        };
        let c = counters("v:", defaults, 7, 9, 0);
        let v = velocity(&c, &[101, 3]);
        assert_eq!(v.user_clicks_in_minute, Some(101));
        assert_eq!(v.ip_clicks_in_second, Some(3));
        assert_eq!(v.user_clicks_in_second, None);
        assert_eq!(v.ip_clicks_in_minute, None);
    }
}
