//! Event-time minutes: the unit adclick counts in.
//!
//! A click belongs to the UTC minute `[start, start + 60 s)` containing its
//! event time. Its Prometheus sample carries the minute's END as timestamp, so
//! a graph point at 12:01:00 shows the clicks of 12:00:00–12:00:59.999.

use crate::day::Day;

/// Milliseconds in one minute.
pub const MINUTE_MS: i64 = 60_000;

/// Milliseconds since the epoch, now: the wall clock every adclick process compares event times
/// with (0 for a clock set before 1970).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// One UTC minute, identified by its index since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Minute(pub i64);

impl Minute {
    /// The minute containing `event_time_ms` (floor division, so times before 1970 work too).
    pub fn of(event_time_ms: i64) -> Minute {
        Minute(event_time_ms.div_euclid(MINUTE_MS))
    }

    /// First millisecond of the minute.
    pub fn start_ms(self) -> i64 {
        self.0 * MINUTE_MS
    }

    /// First millisecond after the minute: the timestamp of its sample.
    pub fn end_ms(self) -> i64 {
        self.start_ms() + MINUTE_MS
    }

    /// The minute whose sample carries timestamp `end_ms` (which must be a minute boundary).
    pub fn ending_at(end_ms: i64) -> Option<Minute> {
        (end_ms.rem_euclid(MINUTE_MS) == 0).then(|| Minute(end_ms / MINUTE_MS - 1))
    }

    /// The following minute.
    pub fn next(self) -> Minute {
        Minute(self.0 + 1)
    }

    /// The day whose block holds the minute's sample: the day of its END, so the minute that
    /// ends at 00:00 is the first of its day's block and 23:59–24:00 the first of the next.
    pub fn block_day(self) -> Day {
        Day::of(self.end_ms())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn boundaries() {
        assert_eq!(Minute::of(0), Minute(0));
        assert_eq!(Minute::of(59_999), Minute(0));
        assert_eq!(Minute::of(60_000), Minute(1));
        assert_eq!(Minute::of(-1), Minute(-1));
        assert_eq!(Minute(1).end_ms(), 120_000);
        // 2026-12-06 23:58–23:59 ends in the day; 23:59–24:00 is the next day's first.
        let midnight = 1_796_601_600_000;
        let day = |ms: i64| Minute::of(ms).block_day().to_string();
        assert_eq!(day(midnight - 61_000), "2026-12-06");
        assert_eq!(day(midnight - 1), "2026-12-07");
        assert_eq!(day(midnight), "2026-12-07");
        assert_eq!(Minute::ending_at(120_000), Some(Minute(1)));
        assert_eq!(Minute::ending_at(120_001), None);
    }

    proptest! {
        #[test]
        fn every_time_lies_in_its_minute(t in -10_000_000_000_000i64..10_000_000_000_000) {
            let m = Minute::of(t);
            prop_assert!(m.start_ms() <= t && t < m.end_ms());
            prop_assert_eq!(Minute::ending_at(m.end_ms()), Some(m));
        }
    }
}
