//! The UTC day adclick settles, bills and labels late clicks by, and what it covers.
//!
//! A sample of `adclick_clicks` is stamped with the END of its minute (the stream contract), and
//! a Thanos block covers the half-open `[day 00:00, next day 00:00)` — the block's `maxTime` is
//! exclusive, and a chunk that reaches it is one Thanos' compactor counts as outside its block.
//! So the block of day D holds the samples stamped in D: the minutes from 23:59 of D−1 through
//! 23:58 of D. The calendar day D (minutes 00:00–23:59) is stamped `(D 00:00, D+1 00:00]`: its
//! last minute lies in the block of D+1, which the billing query (README) reads through Thanos
//! like any other block. The rollup settles the block of D, the billing store keeps it as the
//! settlement day D, and the exporter labels a late click with the D of its own minute
//! ([`crate::Minute::block_day`]).

use std::fmt;
use std::str::FromStr;

use crate::archive::{day_name, parse_day};
use crate::minute::{MINUTE_MS, Minute};

pub const DAY_MS: i64 = 86_400_000;
pub const HOUR_MS: i64 = 3_600_000;

/// A UTC calendar day, as days since 1970-01-01.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Day(pub i64);

impl Day {
    /// The day that holds `ms`.
    pub fn of(ms: i64) -> Day {
        Day(ms.div_euclid(DAY_MS))
    }

    /// Yesterday, in UTC, from the system clock: what a daily job settles by default.
    pub fn yesterday() -> Day {
        Day(Day::of(crate::now_ms()).0 - 1)
    }

    /// The next day.
    pub fn next(self) -> Day {
        Day(self.0 + 1)
    }

    /// The days `from..=to`, in order (none when `to < from`).
    pub fn range(from: Day, to: Day) -> impl Iterator<Item = Day> {
        (from.0..=to.0).map(Day)
    }

    /// The block's first millisecond (inclusive).
    pub fn start_ms(self) -> i64 {
        self.0 * DAY_MS
    }

    /// The block's end (exclusive): the next day's start.
    pub fn end_ms(self) -> i64 {
        self.start_ms() + DAY_MS
    }

    /// The first minute whose sample is in the block: it ends at 00:00 of the day.
    pub fn first_minute(self) -> Minute {
        Minute::of(self.start_ms() - MINUTE_MS)
    }

    /// The minute after the last one in the block.
    pub fn end_minute(self) -> Minute {
        Minute::of(self.end_ms() - MINUTE_MS)
    }

    /// Whether a click at `event_time_ms` is counted in this day's block.
    pub fn counts(self, event_time_ms: i64) -> bool {
        (self.first_minute().start_ms()..self.end_minute().start_ms()).contains(&event_time_ms)
    }

    /// The day's event-time window `[start, end)`: its first and after-last minute's starts.
    pub fn event_window_ms(self) -> (i64, i64) {
        (self.first_minute().start_ms(), self.end_minute().start_ms())
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&day_name(self.0))
    }
}

/// A day that is not `YYYY-MM-DD`.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not a day (YYYY-MM-DD, UTC)")]
pub struct BadDay(String);

impl FromStr for Day {
    type Err = BadDay;

    fn from_str(s: &str) -> Result<Day, BadDay> {
        parse_day(s).map(Day).ok_or_else(|| BadDay(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_days() {
        let day: Day = "2026-11-23".parse().unwrap();
        assert_eq!(day.to_string(), "2026-11-23");
        assert_eq!(day.start_ms(), 1_795_392_000_000);
        assert_eq!(day.next().to_string(), "2026-11-24");
        assert_eq!(Day(0).to_string(), "1970-01-01");
        for bad in [
            "2026-02-30",
            "2026-13-01",
            "26-11-23",
            "2026-11-23x",
            "2026-1-23",
            "",
        ] {
            assert!(bad.parse::<Day>().is_err(), "{bad}");
        }
        let days: Vec<String> = Day::range(day, day.next().next())
            .map(|d| d.to_string())
            .collect();
        assert_eq!(days, ["2026-11-23", "2026-11-24", "2026-11-25"]);
        assert_eq!(Day::range(day.next(), day).count(), 0);
    }

    #[test]
    fn the_block_holds_the_minutes_that_end_in_the_day() {
        let day: Day = "2026-11-23".parse().unwrap();
        assert_eq!(day.first_minute().end_ms(), day.start_ms());
        assert_eq!(day.end_minute().end_ms(), day.end_ms());
        assert!(day.counts(day.start_ms() - 60_000));
        assert!(!day.counts(day.start_ms() - 60_001));
        assert!(day.counts(day.end_ms() - 60_001));
        assert!(!day.counts(day.end_ms() - 60_000));
        // A minute's block day is the day its end is in.
        assert_eq!(day.first_minute().block_day(), day);
        assert_eq!(day.end_minute().block_day(), day.next());
    }
}
