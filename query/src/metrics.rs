//! What the gateway tells Prometheus on its admin listener: requests by endpoint and outcome,
//! their latency, and credential reloads. No label carries an advertiser id (unbounded, and
//! nobody's business on a shared dashboard).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RequestLabels {
    /// `query`, `query_range`, `series`, `labels`, `label_values`, `buildinfo`, `clicks`,
    /// `other`.
    pub endpoint: &'static str,
    /// `ok` (the upstream answered 2xx), `upstream_error` (it answered otherwise), or why the
    /// gateway answered itself (`unauthorized`, `refused`, `bad_request`, `not_found`,
    /// `rate_limited`, `over_limit`, `upstream_unavailable`, `upstream_timeout`).
    pub outcome: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct EndpointLabels {
    pub endpoint: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ReloadLabels {
    /// `ok` or `failed` (the previous credentials stay in force).
    pub outcome: &'static str,
}

/// Latency buckets, seconds: from the gateway's own sub-millisecond answers to slow queries.
const DURATION_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The gateway's metrics; cheap to clone (atomics behind `Arc`s).
#[derive(Debug, Clone)]
pub struct Metrics {
    pub requests: Family<RequestLabels, Counter>,
    pub durations: Family<EndpointLabels, Histogram>,
    pub reloads: Family<ReloadLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: Family::default(),
            durations: Family::new_with_constructor(|| {
                Histogram::new(DURATION_BUCKETS.iter().copied())
            }),
            reloads: Family::default(),
        }
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics::default()
    }

    /// Registers every metric under `adclick_query_`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "adclick_query_requests",
            "Requests to the query gateway, by endpoint and outcome",
            self.requests.clone(),
        );
        registry.register(
            "adclick_query_request_duration_seconds",
            "Time from a request's arrival to its answer, upstream included, by endpoint",
            self.durations.clone(),
        );
        registry.register(
            "adclick_query_credential_reloads",
            "Reloads of the API keys and JWT key, by outcome (failed: the previous ones stay)",
            self.reloads.clone(),
        );
    }

    /// Counts one answered request and its duration.
    pub fn answered(&self, endpoint: &'static str, outcome: &'static str, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels { endpoint, outcome })
            .inc();
        self.durations
            .get_or_create(&EndpointLabels { endpoint })
            .observe(seconds);
    }

    pub fn reloaded(&self, outcome: &'static str) {
        self.reloads.get_or_create(&ReloadLabels { outcome }).inc();
    }

    /// Requests counted so far with these labels.
    pub fn requests(&self, endpoint: &'static str, outcome: &'static str) -> u64 {
        self.requests
            .get_or_create(&RequestLabels { endpoint, outcome })
            .get()
    }

    /// Reloads counted so far with this outcome.
    pub fn reloads(&self, outcome: &'static str) -> u64 {
        self.reloads.get_or_create(&ReloadLabels { outcome }).get()
    }
}
