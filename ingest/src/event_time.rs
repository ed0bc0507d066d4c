//! Which time a click is counted at: ingest's receive time, or the client-reported click time
//! `t` (ms since the epoch, `?t=` on the click URL) when it is believable.
//!
//! An app SDK that batches clicks reports when the user clicked; counting by that time keeps the
//! click in the right minute. But `t` is unsigned client input, so it is only accepted when
//!
//! - it is not in the future by more than `client_time_max_future_ms` (clocks drift a little),
//! - it is not older than `client_time_max_age_secs` before receipt (a batch is flushed within
//!   minutes; anything older is replayed or fabricated, and would rewrite closed minutes),
//! - it is not before the token's issue time minus the token clock skew (nobody clicks an ad
//!   before it was served).
//!
//! Otherwise the receive time is used and the verdict counted in
//! `adclick_ingest_client_time_total{reason}`. A refused `t` never refuses the click: the user
//! still gets the redirect and the click still counts, at its receive time. A client can at most
//! move its own click within those bounds.

/// Bounds on client-reported click times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientTimeBounds {
    pub max_age_ms: i64,
    pub max_future_ms: i64,
    /// The token clock-skew allowance, ms.
    pub issue_skew_ms: i64,
}

/// What happened to `t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Accepted,
    Absent,
    Unparsable,
    Future,
    TooOld,
    BeforeIssue,
}

impl Verdict {
    pub fn reason(self) -> &'static str {
        match self {
            Verdict::Accepted => "accepted",
            Verdict::Absent => "absent",
            Verdict::Unparsable => "unparsable",
            Verdict::Future => "future",
            Verdict::TooOld => "too_old",
            Verdict::BeforeIssue => "before_issue",
        }
    }
}

/// The event time of a click received at `receive_ms` with client time `t` and a token issued at
/// `issued_at_secs`.
pub fn event_time_ms(
    t: Option<&str>,
    receive_ms: i64,
    issued_at_secs: u64,
    bounds: &ClientTimeBounds,
) -> (i64, Verdict) {
    let Some(t) = t else {
        return (receive_ms, Verdict::Absent);
    };
    // Digits only: no sign, no spaces, no exponent; i64 parsing bounds the length.
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return (receive_ms, Verdict::Unparsable);
    }
    let Ok(t_ms) = t.parse::<i64>() else {
        return (receive_ms, Verdict::Unparsable);
    };
    let issued_ms = i64::try_from(issued_at_secs)
        .unwrap_or(i64::MAX)
        .saturating_mul(1000);
    let verdict = if t_ms > receive_ms.saturating_add(bounds.max_future_ms) {
        Verdict::Future
    } else if t_ms < receive_ms.saturating_sub(bounds.max_age_ms) {
        Verdict::TooOld
    } else if t_ms < issued_ms.saturating_sub(bounds.issue_skew_ms) {
        Verdict::BeforeIssue
    } else {
        Verdict::Accepted
    };
    match verdict {
        Verdict::Accepted => (t_ms, verdict),
        _ => (receive_ms, verdict),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000;
    const B: ClientTimeBounds = ClientTimeBounds {
        max_age_ms: 900_000,
        max_future_ms: 5_000,
        issue_skew_ms: 30_000,
    };
    const ISSUED: u64 = 1_799_999_000;

    fn at(t: &str) -> (i64, Verdict) {
        event_time_ms(Some(t), NOW, ISSUED, &B)
    }

    #[test]
    fn believable_times_are_used() {
        assert_eq!(
            at(&(NOW - 60_000).to_string()),
            (NOW - 60_000, Verdict::Accepted)
        );
        assert_eq!(
            at(&(NOW + 5_000).to_string()),
            (NOW + 5_000, Verdict::Accepted)
        );
        assert_eq!(
            at(&(NOW - 900_000).to_string()),
            (NOW - 900_000, Verdict::Accepted)
        );
    }

    #[test]
    fn unbelievable_times_fall_back_to_receipt() {
        assert_eq!(at(&(NOW + 5_001).to_string()), (NOW, Verdict::Future));
        assert_eq!(at(&(NOW - 900_001).to_string()), (NOW, Verdict::TooOld));
        let before_issue = ISSUED as i64 * 1000 - 30_001;
        let b = ClientTimeBounds {
            max_age_ms: i64::MAX / 2,
            ..B
        };
        assert_eq!(
            event_time_ms(Some(&before_issue.to_string()), NOW, ISSUED, &b),
            (NOW, Verdict::BeforeIssue)
        );
        for junk in [
            "",
            "-5",
            "+5",
            "1e12",
            " 1",
            "99999999999999999999999",
            "12a",
        ] {
            assert_eq!(at(junk), (NOW, Verdict::Unparsable), "{junk:?}");
        }
        assert_eq!(event_time_ms(None, NOW, ISSUED, &B), (NOW, Verdict::Absent));
        assert_eq!(
            event_time_ms(Some("5"), NOW, u64::MAX, &B),
            (NOW, Verdict::TooOld)
        );
    }
}
