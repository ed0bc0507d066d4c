//! The settlement day: the rollup's block day ([`adclick_click::day`]), the clicks whose minute
//! ENDS in D, UTC — the minutes 23:59 of D−1 through 23:58 of D. The store keeps it as
//! PostgreSQL `date`; statements and flags write it `YYYY-MM-DD`.

pub use adclick_click::Day;
pub use adclick_click::day::BadDay;

/// Days since the epoch as PostgreSQL's `date - DATE '1970-01-01'` (an `int4`); `None` outside
/// what a `date` holds in an int4 of days.
pub(crate) fn pg_days(day: Day) -> Option<i32> {
    i32::try_from(day.0).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_beyond_an_int4_are_refused() {
        assert_eq!(pg_days(Day(20_794)), Some(20_794));
        assert_eq!(pg_days(Day(i64::from(i32::MAX) + 1)), None);
    }
}
