//! The settlement day: a UTC calendar day, as days since 1970-01-01.
//!
//! Settlement day D is the rollup's block day (rollup/src/day.rs): the clicks whose minute ENDS
//! in D, UTC — the minutes 23:59 of D−1 through 23:58 of D. The store keeps it as PostgreSQL
//! `date`; statements and flags write it `YYYY-MM-DD`.

use std::fmt;
use std::str::FromStr;

use adclick_click::archive::{day_name, parse_day};

/// A UTC day, as days since 1970-01-01 (the rollup's `Day` holds the same number).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Day(pub i64);

impl Day {
    /// The next day.
    pub fn next(self) -> Day {
        Day(self.0 + 1)
    }

    /// The days `from..=to`, in order (none when `to < from`).
    pub fn range(from: Day, to: Day) -> impl Iterator<Item = Day> {
        (from.0..=to.0).map(Day)
    }

    /// Days since the epoch as PostgreSQL's `date - DATE '1970-01-01'` (an `int4`); `None`
    /// outside what a `date` holds in an int4 of days.
    pub(crate) fn pg_days(self) -> Option<i32> {
        i32::try_from(self.0).ok()
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
        assert_eq!(day, Day(1_795_392_000_000 / 86_400_000));
        assert_eq!(day.to_string(), "2026-11-23");
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
}
