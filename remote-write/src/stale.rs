//! Stale markers: the one way to tell the receiver that a series has ended.
//!
//! The specification reserves one NaN, `0x7ff0000000000002`, for that purpose: a sender MUST send
//! it when a series will no longer be appended to, and MUST NOT use the value otherwise. Prometheus
//! then stops returning the series from queries at the marker's timestamp instead of repeating its
//! last value for the 5-minute lookback.
//!
//! A caller ends a series with [`RequestBuilder::push_stale`](crate::RequestBuilder::push_stale)
//! or [`Queue::end_series`](crate::Queue::end_series); a sample whose value carries these bits
//! given as an ordinary value is refused, so the marker never appears by accident.

use crate::request::Sample;

/// The bits of the stale-marker NaN.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// The stale-marker NaN. Other NaNs (e.g. `f64::NAN`) are ordinary values.
pub fn stale_nan() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

/// Whether `value` is the stale marker (bit for bit; no other NaN is).
pub fn is_stale_marker(value: f64) -> bool {
    value.to_bits() == STALE_NAN_BITS
}

/// The marker sample at `timestamp_ms`, for comparing with what was decoded or received.
pub fn marker(timestamp_ms: i64) -> Sample {
    Sample {
        timestamp_ms,
        value: stale_nan(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_reserved_bits_are_the_marker() {
        assert!(is_stale_marker(stale_nan()));
        assert!(stale_nan().is_nan());
        assert!(!is_stale_marker(f64::NAN));
        assert!(!is_stale_marker(-stale_nan()));
        assert!(!is_stale_marker(0.0));
        assert_eq!(marker(60_000).value.to_bits(), STALE_NAN_BITS);
    }
}
