//! Per-caller limits: requests per second (a token bucket per caller), queries in flight, the
//! longest time range a query may read, the most points of a range query, and the timeout sent
//! to the upstream. A caller is an advertiser (all its keys and tokens together) or the operators.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::caller::Caller;

/// The limits' settings (`[query]` keys of the same names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitSettings {
    /// Requests per second per caller; 0 turns the limit off.
    pub requests_per_second: u32,
    /// Requests a caller may make at once after a quiet spell (the bucket's size).
    pub burst: u32,
    /// Requests of one caller being answered at once; 0 turns the limit off.
    pub max_concurrent: usize,
    /// The longest time a query may read: from its earliest read (range start less its longest
    /// window) to its end.
    pub max_range: Duration,
    /// The most points a range query may ask for ((end − start) / step + 1).
    pub max_points: u64,
    /// The evaluation timeout sent to the upstream (`timeout`); a caller may ask for less.
    pub query_timeout: Duration,
}

/// A request over one of the limits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error("too many requests: at most {per_second} per second")]
    Rate {
        per_second: u32,
        retry_after: Duration,
    },
    #[error("too many queries at once: at most {max} in flight")]
    Concurrency { max: usize },
    #[error("the query reads {asked_s} s of data, more than the limit max_range of {max_s} s")]
    Range { asked_s: i64, max_s: u64 },
    #[error("the query asks for {asked} points, more than the limit max_points of {max}")]
    Points { asked: u64, max: u64 },
}

impl LimitError {
    /// How long to wait before retrying, for a `Retry-After` header (whole seconds, at least 1);
    /// None for the limits a retry does not help (422).
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            LimitError::Rate { retry_after, .. } => Some(retry_after.as_secs().max(1)),
            LimitError::Concurrency { .. } => Some(1),
            LimitError::Range { .. } | LimitError::Points { .. } => None,
        }
    }
}

/// The limits in force, shared by every request.
#[derive(Debug, Clone)]
pub struct Limits {
    settings: LimitSettings,
    rate: Option<Arc<DefaultKeyedRateLimiter<Caller>>>,
    in_flight: InFlight,
}

/// Requests in flight per caller; only callers with some are kept, so the map stays small.
type InFlight = Arc<Mutex<HashMap<Caller, usize>>>;

/// A request being answered; dropping it frees its place.
#[derive(Debug)]
pub struct Permit {
    in_flight: Option<(InFlight, Caller)>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some((map, caller)) = self.in_flight.take() {
            let mut map = map.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if let Some(n) = map.get_mut(&caller) {
                *n -= 1;
                if *n == 0 {
                    map.remove(&caller);
                }
            }
        }
    }
}

impl Limits {
    pub fn new(settings: LimitSettings) -> Limits {
        let rate = NonZeroU32::new(settings.requests_per_second).map(|per_second| {
            let burst = NonZeroU32::new(settings.burst).unwrap_or(per_second);
            Arc::new(RateLimiter::keyed(
                Quota::per_second(per_second).allow_burst(burst),
            ))
        });
        Limits {
            settings,
            rate,
            in_flight: Arc::default(),
        }
    }

    pub fn settings(&self) -> &LimitSettings {
        &self.settings
    }

    /// Lets `caller`'s request in, or says which limit it is over.
    pub fn admit(&self, caller: Caller) -> Result<Permit, LimitError> {
        if let Some(rate) = &self.rate {
            if let Err(not_until) = rate.check_key(&caller) {
                return Err(LimitError::Rate {
                    per_second: self.settings.requests_per_second,
                    retry_after: not_until.wait_time_from(DefaultClock::default().now()),
                });
            }
        }
        if self.settings.max_concurrent == 0 {
            return Ok(Permit { in_flight: None });
        }
        let mut map = self
            .in_flight
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let n = map.entry(caller).or_insert(0);
        if *n >= self.settings.max_concurrent {
            return Err(LimitError::Concurrency {
                max: self.settings.max_concurrent,
            });
        }
        *n += 1;
        Ok(Permit {
            in_flight: Some((Arc::clone(&self.in_flight), caller)),
        })
    }

    /// A query reading from `from_ms` to `to_ms`.
    pub fn check_range(&self, from_ms: i64, to_ms: i64) -> Result<(), LimitError> {
        let asked_ms = to_ms.saturating_sub(from_ms);
        let max_ms = i64::try_from(self.settings.max_range.as_millis()).unwrap_or(i64::MAX);
        if asked_ms > max_ms {
            return Err(LimitError::Range {
                asked_s: asked_ms / 1000,
                max_s: self.settings.max_range.as_secs(),
            });
        }
        Ok(())
    }

    /// A range query from `start_ms` to `end_ms` every `step`.
    pub fn check_points(
        &self,
        start_ms: i64,
        end_ms: i64,
        step: Duration,
    ) -> Result<(), LimitError> {
        let step_ms = u64::try_from(step.as_millis()).unwrap_or(u64::MAX).max(1);
        let span_ms = u64::try_from(end_ms.saturating_sub(start_ms)).unwrap_or(0);
        let asked = span_ms / step_ms + 1;
        if asked > self.settings.max_points {
            return Err(LimitError::Points {
                asked,
                max: self.settings.max_points,
            });
        }
        Ok(())
    }

    /// The `timeout` to send upstream: the caller's, when it asked for less than the limit.
    pub fn timeout(&self, asked: Option<Duration>) -> Duration {
        asked.map_or(self.settings.query_timeout, |a| {
            a.min(self.settings.query_timeout)
        })
    }

    /// Forgets the rate state of callers quiet long enough to have a full bucket again (called
    /// now and then, so that the map holds recent callers only).
    pub fn forget_quiet_callers(&self) {
        if let Some(rate) = &self.rate {
            rate.retain_recent();
            rate.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> LimitSettings {
        LimitSettings {
            requests_per_second: 1,
            burst: 2,
            max_concurrent: 2,
            max_range: Duration::from_secs(3600),
            max_points: 61,
            query_timeout: Duration::from_secs(20),
        }
    }

    #[test]
    fn the_bucket_is_per_caller() {
        let limits = Limits::new(LimitSettings {
            max_concurrent: 0,
            ..settings()
        });
        let a = Caller::Advertiser(1);
        assert!(limits.admit(a).is_ok() && limits.admit(a).is_ok());
        let err = limits.admit(a).unwrap_err();
        assert!(
            matches!(err, LimitError::Rate { per_second: 1, .. }),
            "{err:?}"
        );
        assert_eq!(err.retry_after(), Some(1));
        assert!(limits.admit(Caller::Advertiser(2)).is_ok());
        assert!(limits.admit(Caller::Operator).is_ok());
    }

    #[test]
    fn concurrency_is_per_caller_and_freed_on_drop() {
        let limits = Limits::new(LimitSettings {
            requests_per_second: 0,
            ..settings()
        });
        let a = Caller::Advertiser(1);
        let first = limits.admit(a).unwrap();
        let _second = limits.admit(a).unwrap();
        assert_eq!(
            limits.admit(a).unwrap_err(),
            LimitError::Concurrency { max: 2 }
        );
        let _other = limits.admit(Caller::Advertiser(2)).unwrap();
        drop(first);
        let _third = limits.admit(a).unwrap();
        drop(_third);
        drop(_second);
        drop(_other);
        assert!(limits.in_flight.lock().unwrap().is_empty());
    }

    #[test]
    fn range_points_and_timeout() {
        let limits = Limits::new(settings());
        assert!(limits.check_range(0, 3_600_000).is_ok());
        let err = limits.check_range(0, 3_600_001).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the query reads 3600 s of data, more than the limit max_range of 3600 s"
        );
        assert_eq!(err.retry_after(), None);
        let minute = Duration::from_secs(60);
        assert!(limits.check_points(0, 3_600_000, minute).is_ok());
        assert_eq!(
            limits.check_points(0, 3_660_000, minute),
            Err(LimitError::Points { asked: 62, max: 61 })
        );
        assert_eq!(limits.timeout(None), Duration::from_secs(20));
        assert_eq!(limits.timeout(Some(minute)), Duration::from_secs(20));
        assert_eq!(
            limits.timeout(Some(Duration::from_secs(5))),
            Duration::from_secs(5)
        );
    }
}
