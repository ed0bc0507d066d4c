//! What the gateway tells Prometheus on its admin listener: requests by endpoint and outcome.
//! No label carries an advertiser id (unbounded, and nobody's business on a shared dashboard).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RequestLabels {
    /// `query`, `query_range`, `series`, `labels`, `label_values`, `buildinfo`, `other`.
    pub endpoint: &'static str,
    /// `ok` (the upstream answered 2xx), `upstream_error` (it answered otherwise), or why the
    /// gateway answered itself (`unauthorized`, `refused`, `bad_request`, `not_found`,
    /// `upstream_unavailable`, `upstream_timeout`).
    pub outcome: &'static str,
}

/// The gateway's metrics; cheap to clone (atomics behind `Arc`s).
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    pub requests: Family<RequestLabels, Counter>,
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
    }

    pub fn count(&self, endpoint: &'static str, outcome: &'static str) {
        self.requests
            .get_or_create(&RequestLabels { endpoint, outcome })
            .inc();
    }

    /// Requests counted so far with these labels.
    pub fn requests(&self, endpoint: &'static str, outcome: &'static str) -> u64 {
        self.requests
            .get_or_create(&RequestLabels { endpoint, outcome })
            .get()
    }
}
