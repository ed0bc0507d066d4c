//! What every request of the gateway needs: the keys, the policy, the upstream, the metrics.

use std::sync::Arc;

use crate::config::QueryConfig;
use crate::keys::ApiKeys;
use crate::metrics::Metrics;
use crate::policy::{Policy, PolicyError};
use crate::upstream::{Upstream, UpstreamConfigError};

/// The gateway's shared state; cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Behind an `Arc` of its own so that a reload (a later slice) can swap it.
    pub keys: Arc<ApiKeys>,
    pub policy: Arc<Policy>,
    pub upstream: Upstream,
    pub metrics: Metrics,
}

/// A configuration the gateway cannot serve with.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("[query] max_query_bytes / max_nesting")]
    Policy(#[source] PolicyError),
    #[error("[query] prometheus_url")]
    Upstream(#[source] UpstreamConfigError),
}

impl AppState {
    /// The state for `config` with these keys and metrics.
    pub fn new(
        config: &QueryConfig,
        keys: ApiKeys,
        metrics: Metrics,
    ) -> Result<AppState, StateError> {
        Ok(AppState {
            keys: Arc::new(keys),
            policy: Arc::new(config.policy().map_err(StateError::Policy)?),
            upstream: Upstream::new(&config.prometheus_url, config.upstream_timeout())
                .map_err(StateError::Upstream)?,
            metrics,
        })
    }
}
