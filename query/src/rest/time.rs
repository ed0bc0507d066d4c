//! Instants as `/v1/clicks` reads and writes them: RFC 3339, a date, or unix seconds in; RFC 3339
//! UTC with `Z` out. By hand (days from the civil date and back) rather than a date crate: the
//! workspace has none, and UTC with whole-minute alignment needs nothing more.

use super::{RestError, echo};

const MS_PER_DAY: i64 = 86_400_000;

/// The latest instant taken, 9999-12-31T23:59:59.999Z: four-digit years in and out.
const MAX_MS: i64 = 253_402_300_799_999;

const EXPECTED: &str = "an RFC 3339 time (2026-12-01T00:00:00Z), a date (2026-12-01, meaning 00:00 UTC) or unix seconds, between 1970 and 9999";

/// `value` of the parameter `param` as unix milliseconds.
pub(super) fn parse_instant(param: &'static str, value: &str) -> Result<i64, RestError> {
    let invalid = || RestError::Invalid {
        param,
        value: echo(value),
        expected: EXPECTED,
    };
    let b = value.as_bytes();
    let ms = if !b.is_empty() && b.iter().all(|c| c.is_ascii_digit() || *c == b'.') {
        unix_seconds(value)
    } else if b.len() == 10 {
        date(b).map(|days| days * MS_PER_DAY)
    } else {
        rfc3339(b)
    };
    ms.filter(|ms| (0..=MAX_MS).contains(ms))
        .ok_or_else(invalid)
}

/// `ms` (unix milliseconds, 0 ..= 9999-12-31) as `2026-12-01T00:00:00Z`, with `.mmm` only when
/// not on a whole second.
pub(super) fn format_rfc3339(ms: i64) -> String {
    let (days, ms_of_day) = (ms.div_euclid(MS_PER_DAY), ms.rem_euclid(MS_PER_DAY));
    let (y, m, d) = civil_from_days(days);
    let secs = ms_of_day / 1000;
    let (hh, mm, ss) = (secs / 3600, secs / 60 % 60, secs % 60);
    let frac = ms_of_day % 1000;
    if frac == 0 {
        format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
    } else {
        format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{frac:03}Z")
    }
}

/// `1796083200` or `1796083200.000`: at most millisecond precision (Prometheus prints times so).
fn unix_seconds(s: &str) -> Option<i64> {
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if whole.is_empty() || whole.len() > 12 || (s.contains('.') && frac.is_empty()) {
        return None;
    }
    Some(whole.parse::<i64>().ok()? * 1000 + millis(frac.as_bytes())?)
}

/// A fraction's digits (after the dot) as milliseconds: any digits beyond the third must be 0.
fn millis(frac: &[u8]) -> Option<i64> {
    if !frac.iter().all(u8::is_ascii_digit) || frac.iter().skip(3).any(|&c| c != b'0') {
        return None;
    }
    Some(
        frac.iter()
            .chain(std::iter::repeat(&b'0'))
            .take(3)
            .fold(0, |acc, &c| acc * 10 + i64::from(c - b'0')),
    )
}

/// `2026-12-01`: days since 1970-01-01.
fn date(b: &[u8]) -> Option<i64> {
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, m, d) = (num(&b[0..4])?, num(&b[5..7])?, num(&b[8..10])?);
    if !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) {
        return None;
    }
    Some(days_from_civil(y, m, d))
}

/// `2026-12-01T00:00:00Z`, `…T00:00:00.000Z`, `…T01:00:00+01:00` (`t`, `z` as well).
fn rfc3339(b: &[u8]) -> Option<i64> {
    if b.len() < 20 || !matches!(b[10], b'T' | b't') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let days = date(&b[..10])?;
    let (hh, mm, ss) = (num(&b[11..13])?, num(&b[14..16])?, num(&b[17..19])?);
    // No leap seconds: unix time has none, and no minute boundary is one.
    if hh > 23 || mm > 59 || ss > 59 {
        return None;
    }
    let mut rest = &b[19..];
    let mut frac_ms = 0;
    if let Some(after_dot) = rest.strip_prefix(b".") {
        let digits = after_dot.iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        frac_ms = millis(&after_dot[..digits])?;
        rest = &after_dot[digits..];
    }
    let offset_minutes = match rest {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let (oh, om) = (num(&[*h1, *h2])?, num(&[*m1, *m2])?);
            if oh > 23 || om > 59 {
                return None;
            }
            let minutes = oh * 60 + om;
            if *sign == b'-' { -minutes } else { minutes }
        }
        _ => return None,
    };
    let local = days * MS_PER_DAY + ((hh * 60 + mm) * 60 + ss) * 1000 + frac_ms;
    Some(local - offset_minutes * 60_000)
}

/// ASCII digits as a number (at most four here).
fn num(digits: &[u8]) -> Option<i64> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        digits
            .iter()
            .fold(0, |acc, &c| acc * 10 + i64::from(c - b'0')),
    )
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if y % 4 == 0 && (y % 100 != 0 || y % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of the proleptic Gregorian date `y-m-d` (Howard Hinnant's algorithm:
/// years counted from March, so the leap day ends the year).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Result<i64, RestError> {
        parse_instant("from", s)
    }

    #[test]
    fn the_three_forms() {
        // Seconds from Python's datetime.fromisoformat(...).timestamp().
        let dec1 = 1_796_083_200_000;
        assert_eq!(at("2026-12-01T00:00:00Z"), Ok(dec1));
        assert_eq!(at("2026-12-01t00:00:00.000z"), Ok(dec1));
        assert_eq!(at("2026-12-01T01:30:00+01:30"), Ok(dec1));
        assert_eq!(at("2026-11-30T19:00:00-05:00"), Ok(dec1));
        assert_eq!(at("2026-12-01"), Ok(dec1));
        assert_eq!(at("1796083200"), Ok(dec1));
        assert_eq!(at("1796083200.5"), Ok(dec1 + 500));
        assert_eq!(at("2024-02-29T12:34:00Z"), Ok(1_709_210_040_000));
        assert_eq!(at("1970-01-01"), Ok(0));
        assert_eq!(at("9999-12-31T23:59:59Z"), Ok(253_402_300_799_000));
    }

    #[test]
    fn malformed_instants_are_refused() {
        for s in [
            "",
            "now",
            "-1",
            "1.",
            ".5",
            "1e9",
            "2026-13-01",
            "2026-02-29",
            "2025-04-31",
            "2026-12-1",
            "2026-12-01T24:00:00Z",
            "2026-12-01T00:60:00Z",
            "2026-12-01T00:00:60Z",
            "2026-12-01T00:00:00",
            "2026-12-01T00:00:00+0100",
            "2026-12-01T00:00:00.Z",
            "2026-12-01 00:00:00Z",
            "1969-12-31T23:59:59Z",
            "1970-01-01T00:00:00+00:01",
            "9999999999999",
            "2026-12-01T00:00:00.0001Z",
        ] {
            assert!(
                matches!(at(s), Err(RestError::Invalid { param: "from", .. })),
                "{s:?}"
            );
        }
    }

    #[test]
    fn formatting_round_trips_every_day_of_four_centuries() {
        for days in (0..146_097 * 2).step_by(7) {
            let ms = days * MS_PER_DAY + 3_723_000;
            let text = format_rfc3339(ms);
            assert_eq!(at(&text), Ok(ms), "{text}");
            assert_eq!(at(&text[..10]), Ok(days * MS_PER_DAY), "{text}");
        }
        assert_eq!(format_rfc3339(1_796_083_200_000), "2026-12-01T00:00:00Z");
        assert_eq!(
            format_rfc3339(1_709_210_040_250),
            "2024-02-29T12:34:00.250Z"
        );
        assert_eq!(format_rfc3339(MAX_MS), "9999-12-31T23:59:59.999Z");
    }
}
