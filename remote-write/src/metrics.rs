//! The client's own metrics, for the process' `/metrics` through `prometheus-client`.
//!
//! Registered under the prefix `adclick_remote_write`:
//!
//! | metric | meaning |
//! |---|---|
//! | `samples_sent_total` | samples in requests the receiver accepted (2xx) |
//! | `samples_failed_total{reason}` | given up on: `rejected`, `retries_exhausted`, `encode` |
//! | `samples_retried_total` | samples in requests sent again after a retryable failure |
//! | `requests_total{code}` | HTTP attempts by status code, or `timeout`, `connect`, `transport` |
//! | `request_duration_seconds` | time of each attempt, until the response is read |
//! | `uncompressed_bytes_total` | protobuf bytes of the requests sent (retries not counted again) |
//! | `compressed_bytes_total` | snappy bytes of the same requests |
//! | `pending_samples` | samples pushed into the queue and not yet sent or given up on |

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// Why samples were given up on: the `reason` label of `samples_failed_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailReason {
    /// The receiver refused the request with a status that must not be retried.
    Rejected,
    /// The configured number of retries ran out.
    RetriesExhausted,
    /// The request could not be encoded.
    Encode,
}

impl FailReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FailReason::Rejected => "rejected",
            FailReason::RetriesExhausted => "retries_exhausted",
            FailReason::Encode => "encode",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CodeLabels {
    code: String,
}

/// Handles on the metrics; clones share the same values.
#[derive(Debug, Clone)]
pub struct Metrics {
    samples_sent: Counter,
    samples_failed: Family<ReasonLabels, Counter>,
    samples_retried: Counter,
    requests: Family<CodeLabels, Counter>,
    request_duration: Histogram,
    uncompressed_bytes: Counter,
    compressed_bytes: Counter,
    pending_samples: Gauge,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    /// Metrics not yet in any registry (see [`Metrics::register`]).
    pub fn new() -> Metrics {
        Metrics {
            samples_sent: Counter::default(),
            samples_failed: Family::default(),
            samples_retried: Counter::default(),
            requests: Family::default(),
            // 5 ms .. ~41 s: a local receiver answers in milliseconds, a slow one in seconds.
            request_duration: Histogram::new(exponential_buckets(0.005, 2.0, 14)),
            uncompressed_bytes: Counter::default(),
            compressed_bytes: Counter::default(),
            pending_samples: Gauge::default(),
        }
    }

    /// Adds every metric to `registry` under the prefix `adclick_remote_write`. To tell several
    /// remote_write targets apart, pass a sub-registry with a label of your own.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("adclick_remote_write");
        r.register(
            "samples_sent",
            "Samples in requests the receiver accepted",
            self.samples_sent.clone(),
        );
        r.register(
            "samples_failed",
            "Samples given up on, by reason",
            self.samples_failed.clone(),
        );
        r.register(
            "samples_retried",
            "Samples in requests sent again after a retryable failure",
            self.samples_retried.clone(),
        );
        r.register(
            "requests",
            "HTTP attempts by status code (or timeout, connect, transport)",
            self.requests.clone(),
        );
        r.register_with_unit(
            "request_duration",
            "Duration of each HTTP attempt",
            Unit::Seconds,
            self.request_duration.clone(),
        );
        r.register_with_unit(
            "uncompressed",
            "Protobuf size of the requests handed to the sender",
            Unit::Bytes,
            self.uncompressed_bytes.clone(),
        );
        r.register_with_unit(
            "compressed",
            "Snappy-compressed size of the requests handed to the sender",
            Unit::Bytes,
            self.compressed_bytes.clone(),
        );
        r.register(
            "pending_samples",
            "Samples in the queue, not yet sent or given up on",
            self.pending_samples.clone(),
        );
    }

    pub(crate) fn sent(&self, samples: usize) {
        self.samples_sent.inc_by(samples as u64);
    }

    pub(crate) fn failed(&self, reason: FailReason, samples: usize) {
        let labels = ReasonLabels {
            reason: reason.as_str(),
        };
        self.samples_failed
            .get_or_create(&labels)
            .inc_by(samples as u64);
    }

    pub(crate) fn retried(&self, samples: usize) {
        self.samples_retried.inc_by(samples as u64);
    }

    pub(crate) fn attempt(&self, code: &str, seconds: f64) {
        self.requests
            .get_or_create(&CodeLabels {
                code: code.to_string(),
            })
            .inc();
        self.request_duration.observe(seconds);
    }

    pub(crate) fn bytes(&self, uncompressed: usize, compressed: usize) {
        self.uncompressed_bytes.inc_by(uncompressed as u64);
        self.compressed_bytes.inc_by(compressed as u64);
    }

    pub(crate) fn pending(&self, delta: i64) {
        self.pending_samples.inc_by(delta);
    }

    /// Samples the receiver accepted so far.
    pub fn samples_sent(&self) -> u64 {
        self.samples_sent.get()
    }

    /// Samples given up on for `reason` so far.
    pub fn samples_failed(&self, reason: FailReason) -> u64 {
        self.samples_failed
            .get_or_create(&ReasonLabels {
                reason: reason.as_str(),
            })
            .get()
    }

    /// Samples sent again after retryable failures so far.
    pub fn samples_retried(&self) -> u64 {
        self.samples_retried.get()
    }

    /// HTTP attempts that ended with `code` (a status such as `"503"`, or `"timeout"`,
    /// `"connect"`, `"transport"`).
    pub fn requests(&self, code: &str) -> u64 {
        self.requests
            .get_or_create(&CodeLabels {
                code: code.to_string(),
            })
            .get()
    }

    /// Bytes before and after compression of the requests handed to the sender.
    pub fn bytes_total(&self) -> (u64, u64) {
        (self.uncompressed_bytes.get(), self.compressed_bytes.get())
    }

    /// Samples in the queue, not yet sent or given up on.
    pub fn pending_samples(&self) -> i64 {
        self.pending_samples.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_names() {
        let metrics = Metrics::new();
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        metrics.sent(3);
        metrics.failed(FailReason::Rejected, 2);
        metrics.retried(4);
        metrics.attempt("204", 0.01);
        metrics.bytes(100, 40);
        metrics.pending(5);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for line in [
            "adclick_remote_write_samples_sent_total 3",
            "adclick_remote_write_samples_failed_total{reason=\"rejected\"} 2",
            "adclick_remote_write_samples_retried_total 4",
            "adclick_remote_write_requests_total{code=\"204\"} 1",
            "adclick_remote_write_request_duration_seconds_count 1",
            "adclick_remote_write_uncompressed_bytes_total 100",
            "adclick_remote_write_compressed_bytes_total 40",
            "adclick_remote_write_pending_samples 5",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "no line {line:?} in:\n{text}"
            );
        }
        assert_eq!(metrics.samples_failed(FailReason::Rejected), 2);
        assert_eq!(metrics.requests("204"), 1);
        assert_eq!(metrics.bytes_total(), (100, 40));
    }
}
