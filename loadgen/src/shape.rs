//! How fast clicks come: a steady rate, a linear ramp, or a steady rate with a burst, and the
//! schedule of send offsets that follows from it.

use serde::{Deserialize, Serialize};

/// Clicks per second over the run, as a function of the time since its start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TrafficShape {
    /// `rate` clicks/s throughout.
    Steady { rate: f64 },
    /// From `from` to `to` clicks/s, linearly over the run.
    Ramp { from: f64, to: f64 },
    /// `rate` clicks/s, except `burst_rate` during `[at_secs, at_secs + for_secs)`.
    Burst {
        rate: f64,
        burst_rate: f64,
        at_secs: f64,
        for_secs: f64,
    },
}

impl TrafficShape {
    /// The rate at `t` seconds into a run of `duration` seconds.
    pub fn rate_at(&self, t: f64, duration: f64) -> f64 {
        match *self {
            TrafficShape::Steady { rate } => rate,
            TrafficShape::Ramp { from, to } => {
                from + (to - from) * (t / duration.max(f64::EPSILON)).clamp(0.0, 1.0)
            }
            TrafficShape::Burst {
                rate,
                burst_rate,
                at_secs,
                for_secs,
            } => {
                if t >= at_secs && t < at_secs + for_secs {
                    burst_rate
                } else {
                    rate
                }
            }
        }
    }

    /// Checks that every rate is positive and finite.
    pub fn validate(&self) -> Result<(), String> {
        let rates: &[f64] = match self {
            TrafficShape::Steady { rate } => &[*rate],
            TrafficShape::Ramp { from, to } => &[*from, *to],
            TrafficShape::Burst {
                rate, burst_rate, ..
            } => &[*rate, *burst_rate],
        };
        match rates.iter().find(|r| !r.is_finite() || **r <= 0.0) {
            Some(r) => Err(format!("traffic rates must be positive, got {r}")),
            None => Ok(()),
        }
    }
}

/// Send offsets (seconds from the start) of successive clicks: each click follows the previous
/// one by `1 / rate` at that moment, so the count sent by time t is the integral of the rate.
#[derive(Debug, Clone)]
pub struct Schedule {
    shape: TrafficShape,
    duration: f64,
    next: f64,
}

impl Schedule {
    pub fn new(shape: TrafficShape, duration_secs: f64) -> Schedule {
        Schedule {
            shape,
            duration: duration_secs,
            next: 0.0,
        }
    }
}

impl Iterator for Schedule {
    type Item = f64;
    fn next(&mut self) -> Option<f64> {
        // Offsets are sums of 1/rate; a nanosecond of slack absorbs their rounding so a steady
        // run of d seconds sends exactly d × rate clicks.
        if self.next >= self.duration - 1e-9 {
            return None;
        }
        let at = self.next;
        // The midpoint rate keeps a ramp's integral exact to second order.
        let first = self.shape.rate_at(at, self.duration);
        let mid = self.shape.rate_at(at + 0.5 / first, self.duration);
        self.next = at + 1.0 / mid;
        Some(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count_between(shape: TrafficShape, duration: f64, from: f64, to: f64) -> usize {
        Schedule::new(shape, duration)
            .filter(|t| *t >= from && *t < to)
            .count()
    }

    #[test]
    fn steady_rate_is_held() {
        let n = Schedule::new(TrafficShape::Steady { rate: 250.0 }, 10.0).count();
        assert_eq!(n, 2500);
    }

    #[test]
    fn ramp_integrates_to_the_mean_rate() {
        let n = Schedule::new(
            TrafficShape::Ramp {
                from: 100.0,
                to: 300.0,
            },
            10.0,
        )
        .count();
        assert!((1995..=2005).contains(&n), "{n}");
        let first = count_between(
            TrafficShape::Ramp {
                from: 100.0,
                to: 300.0,
            },
            10.0,
            0.0,
            1.0,
        );
        let last = count_between(
            TrafficShape::Ramp {
                from: 100.0,
                to: 300.0,
            },
            10.0,
            9.0,
            10.0,
        );
        assert!(
            (105..=115).contains(&first) && (285..=295).contains(&last),
            "{first} {last}"
        );
    }

    #[test]
    fn burst_multiplies_the_rate_for_its_window() {
        let shape = TrafficShape::Burst {
            rate: 100.0,
            burst_rate: 1000.0,
            at_secs: 2.0,
            for_secs: 1.0,
        };
        assert_eq!(count_between(shape.clone(), 5.0, 0.0, 1.0), 100);
        let burst = count_between(shape, 5.0, 2.0, 3.0);
        assert!((999..=1001).contains(&burst), "{burst}");
    }

    #[test]
    fn bad_rates_are_refused() {
        assert!(TrafficShape::Steady { rate: 0.0 }.validate().is_err());
        assert!(
            TrafficShape::Ramp {
                from: 1.0,
                to: f64::NAN
            }
            .validate()
            .is_err()
        );
        assert!(TrafficShape::Steady { rate: 5.0 }.validate().is_ok());
    }
}
