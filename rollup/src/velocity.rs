//! Velocity over the settled day: the running count of each counted click in its fixed UTC
//! windows of receive time, as ingest counts it live with `INCR` (adclick-invalid's `facts`,
//! "Velocity: what is counted, in which window (the contract)").
//!
//! The caller hands [`Counter::count`] the counted clicks — each impression's click, never a
//! repeat, never a request-invalid record — in the contract's order, receive time then
//! impression id; each answer is that click's [`Velocity`], this click included. Because the
//! clicks come in window order, a window's counts are dropped as soon as the next window begins:
//! the counter holds only the keys of the current second and minute, whatever the day's size.
//!
//! Only the windows the rules read are counted ([`adclick_invalid::Rules::velocity_windows`]);
//! the others stay `None`, as they do at ingest. A zero user or IP hash is unknown and never
//! counted (`None`: no rule fires on it), nor is a click without a receive time (0 or less, a
//! record older than the field or a third party's that leaves it out): its windows would be the
//! first second of 1970, one window for all such clicks.

use std::collections::HashMap;

use adclick_invalid::{Velocity, VelocityWindows};

/// One kind of window (user or IP, second or minute): the counts of its current window.
#[derive(Debug, Default)]
struct Window {
    /// Which window (`receive_time_ms / length`) the counts are of.
    current: Option<i64>,
    counts: HashMap<u64, u64>,
}

impl Window {
    /// Counts one click of `key` in window `window`; the running count. Windows must come in
    /// ascending order: a new one forgets the last.
    fn increment(&mut self, window: i64, key: u64) -> u64 {
        if self.current != Some(window) {
            self.current = Some(window);
            self.counts.clear();
        }
        let count = self.counts.entry(key).or_default();
        *count += 1;
        *count
    }
}

/// Running counts of the windows the rules read, for clicks given in (receive time, impression
/// id) order.
#[derive(Debug)]
pub struct Counter {
    windows: VelocityWindows,
    user_second: Window,
    user_minute: Window,
    ip_second: Window,
    ip_minute: Window,
    /// The last click's (receive time, impression): the order is the contract, so it is checked.
    last: Option<(i64, u128)>,
}

/// A click handed to [`Counter::count`] out of (receive time, impression id) order: a bug of the
/// caller, whose counts would be wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("velocity: click ({receive_time_ms} ms, impression {impression:032x}) after a later one")]
pub struct OutOfOrder {
    pub receive_time_ms: i64,
    pub impression: u128,
}

impl Counter {
    pub fn new(windows: VelocityWindows) -> Counter {
        Counter {
            windows,
            user_second: Window::default(),
            user_minute: Window::default(),
            ip_second: Window::default(),
            ip_minute: Window::default(),
            last: None,
        }
    }

    /// Counts one click and returns its running counts (module doc).
    pub fn count(
        &mut self,
        receive_time_ms: i64,
        impression: u128,
        user_hash: u64,
        ip_hash: u64,
    ) -> Result<Velocity, OutOfOrder> {
        if receive_time_ms <= 0 {
            return Ok(Velocity::default());
        }
        let at = (receive_time_ms, impression);
        if self.last.is_some_and(|last| last > at) {
            return Err(OutOfOrder {
                receive_time_ms,
                impression,
            });
        }
        self.last = Some(at);
        let (second, minute) = adclick_invalid::windows_of(receive_time_ms);
        let w = self.windows;
        let user = user_hash != 0;
        let ip = ip_hash != 0;
        Ok(Velocity {
            user_clicks_in_second: (w.user_second && user)
                .then(|| self.user_second.increment(second, user_hash)),
            user_clicks_in_minute: (w.user_minute && user)
                .then(|| self.user_minute.increment(minute, user_hash)),
            ip_clicks_in_second: (w.ip_second && ip)
                .then(|| self.ip_second.increment(second, ip_hash)),
            ip_clicks_in_minute: (w.ip_minute && ip)
                .then(|| self.ip_minute.increment(minute, ip_hash)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: VelocityWindows = VelocityWindows::ALL;
    const T: i64 = 1_795_000_000_000; // a minute's start

    #[test]
    fn running_counts_per_key_in_fixed_windows() {
        let mut c = Counter::new(ALL);
        let v = c.count(T, 1, 7, 9).unwrap();
        assert_eq!(
            v,
            Velocity {
                user_clicks_in_second: Some(1),
                user_clicks_in_minute: Some(1),
                ip_clicks_in_second: Some(1),
                ip_clicks_in_minute: Some(1),
            }
        );
        // Same second, same user, another IP.
        let v = c.count(T + 999, 2, 7, 10).unwrap();
        assert_eq!(v.user_clicks_in_second, Some(2));
        assert_eq!(v.ip_clicks_in_second, Some(1));
        // Next second: the second starts again, the minute runs on.
        let v = c.count(T + 1000, 3, 7, 9).unwrap();
        assert_eq!(
            (v.user_clicks_in_second, v.user_clicks_in_minute),
            (Some(1), Some(3))
        );
        assert_eq!(v.ip_clicks_in_minute, Some(2));
        // Next minute.
        let v = c.count(T + 60_000, 4, 7, 9).unwrap();
        assert_eq!(
            (v.user_clicks_in_minute, v.ip_clicks_in_minute),
            (Some(1), Some(1))
        );
    }

    #[test]
    fn only_the_windows_read_and_known_keys_are_counted() {
        let windows = VelocityWindows {
            user_minute: true,
            ip_second: true,
            ..VelocityWindows::default()
        };
        let mut c = Counter::new(windows);
        let v = c.count(T, 1, 7, 0).unwrap();
        assert_eq!(
            v,
            Velocity {
                user_clicks_in_minute: Some(1),
                ..Velocity::default()
            }
        );
        let v = c.count(T, 2, 0, 9).unwrap();
        assert_eq!(
            v,
            Velocity {
                ip_clicks_in_second: Some(1),
                ..Velocity::default()
            }
        );
        // No receive time: nothing counted, and no window of 1970 opened.
        assert_eq!(c.count(0, 3, 7, 9).unwrap(), Velocity::default());
        assert_eq!(c.count(T, 4, 7, 9).unwrap().user_clicks_in_minute, Some(2));
    }

    #[test]
    fn the_order_is_checked() {
        let mut c = Counter::new(ALL);
        c.count(T + 5, 2, 7, 9).unwrap();
        c.count(T + 5, 3, 7, 9).unwrap();
        assert_eq!(
            c.count(T + 5, 1, 7, 9),
            Err(OutOfOrder {
                receive_time_ms: T + 5,
                impression: 1
            })
        );
        assert!(c.count(T + 4, 9, 7, 9).is_err());
    }
}
