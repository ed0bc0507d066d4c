//! Latency percentiles of a run, in bounded memory: a log-linear histogram of microseconds
//! (exact below 128 µs, then 64 buckets per power of two, so any percentile is within 1.6 % of the
//! true value), summarised as p50 / p90 / p99 / p99.9 / max for `summary.json`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Buckets per power of two above the exact range; the relative error is at most 1 / SUB.
const SUB: u64 = 64;
/// Values below this have a bucket each.
const EXACT: u64 = 2 * SUB;
/// Enough buckets for any u64 (the last power of two is 2^63).
const BUCKETS: usize = ((64 - 7) * SUB + EXACT) as usize;

/// Counts of durations.
#[derive(Debug, Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max_us: u64,
    sum_us: u128,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
            max_us: 0,
            sum_us: 0,
        }
    }
}

fn bucket(us: u64) -> usize {
    if us < EXACT {
        return us as usize;
    }
    // us is in [2^e, 2^(e+1)), e >= 7; its top 7 bits select one of 64 sub-buckets.
    let e = 63 - u64::from(us.leading_zeros());
    let shift = e - 6;
    (shift * SUB + (us >> shift)) as usize
}

/// The largest value that lands in bucket `i`.
fn bucket_max(i: usize) -> u64 {
    let i = i as u64;
    if i < EXACT {
        return i;
    }
    let shift = i / SUB - 1;
    let low = (i % SUB + SUB) << shift;
    low + ((1u64 << shift) - 1)
}

impl Histogram {
    pub fn record(&mut self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.counts[bucket(us)] += 1;
        self.total += 1;
        self.max_us = self.max_us.max(us);
        self.sum_us += u128::from(us);
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    /// The smallest recorded-bucket bound at or below which a share `q` (0..=1) of the values lie;
    /// 0 when empty. Never more than the maximum recorded.
    pub fn quantile(&self, q: f64) -> Duration {
        if self.total == 0 {
            return Duration::ZERO;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Duration::from_micros(bucket_max(i).min(self.max_us));
            }
        }
        Duration::from_micros(self.max_us)
    }

    /// The percentiles written to `summary.json`.
    pub fn summary(&self) -> LatencySummary {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        LatencySummary {
            count: self.total,
            mean_ms: if self.total == 0 {
                0.0
            } else {
                self.sum_us as f64 / self.total as f64 / 1e3
            },
            p50_ms: ms(self.quantile(0.50)),
            p90_ms: ms(self.quantile(0.90)),
            p99_ms: ms(self.quantile(0.99)),
            p999_ms: ms(self.quantile(0.999)),
            max_ms: self.max_us as f64 / 1e3,
        }
    }
}

/// Percentiles of one kind of duration over a run, milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    pub count: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_bounded() {
        for us in (0..100_000u64).chain([u64::MAX / 3, u64::MAX]) {
            let b = bucket(us);
            assert!(b < BUCKETS, "{us}");
            assert!(bucket_max(b) >= us, "{us}");
            if b > 0 {
                assert!(bucket_max(b - 1) < us, "{us}");
            }
            // Within 1/SUB of the value.
            assert!(
                (bucket_max(b) - us) as f64 <= us as f64 / SUB as f64,
                "{us}"
            );
        }
    }

    #[test]
    fn quantiles_match_sorted_values_within_the_bucket_error() {
        let mut h = Histogram::default();
        // 1..=10_000 ms-ish in µs, uneven.
        let values: Vec<u64> = (1..=10_000u64).map(|i| i * i % 9_973 * 37 + 5).collect();
        for &v in &values {
            h.record(Duration::from_micros(v));
        }
        let mut sorted = values.clone();
        sorted.sort_unstable();
        for q in [0.5, 0.9, 0.99, 0.999, 1.0] {
            let exact = sorted[((q * sorted.len() as f64).ceil() as usize).max(1) - 1];
            let got = h.quantile(q).as_micros() as u64;
            assert!(got >= exact, "q {q}: {got} < {exact}");
            assert!(
                got as f64 <= exact as f64 * (1.0 + 1.0 / SUB as f64),
                "q {q}: {got} vs {exact}"
            );
        }
        let s = h.summary();
        assert_eq!(s.count, 10_000);
        assert_eq!(s.max_ms, *sorted.last().unwrap() as f64 / 1e3);
        let mean = values.iter().sum::<u64>() as f64 / values.len() as f64 / 1e3;
        assert!((s.mean_ms - mean).abs() < 1e-9);
    }

    #[test]
    fn an_empty_histogram_reports_zeros() {
        assert_eq!(Histogram::default().summary(), LatencySummary::default());
    }
}
