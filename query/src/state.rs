//! What every request of the gateway needs: the credentials, the policy, the upstreams and how
//! to route between them, the limits, the metrics.

use std::sync::Arc;

use crate::config::QueryConfig;
use crate::credentials::{Credentials, SharedCredentials};
use crate::limits::Limits;
use crate::metrics::Metrics;
use crate::policy::{Policy, PolicyError};
use crate::route::{Routing, Target};
use crate::upstream::{Upstream, UpstreamConfigError};

/// The gateway's shared state; cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Swapped whole by a reload (`credentials::watch`); a request keeps the ones it began with.
    pub credentials: SharedCredentials,
    pub policy: Arc<Policy>,
    /// The live Prometheus (`prometheus_url`).
    pub live: Upstream,
    /// The history upstream (`history_url`), if any.
    pub history: Option<Upstream>,
    pub routing: Routing,
    pub limits: Limits,
    pub metrics: Metrics,
}

/// A configuration the gateway cannot serve with.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("[query] max_query_bytes / max_nesting")]
    Policy(#[source] PolicyError),
    #[error("[query] {key}")]
    Upstream {
        key: &'static str,
        #[source]
        source: UpstreamConfigError,
    },
    #[error(
        "[query] upstream_timeout_ms ({upstream_ms}) must be more than query_timeout_ms ({query_ms}): the upstream's own timeout answers first, with its reason"
    )]
    Timeouts { upstream_ms: u64, query_ms: u64 },
}

impl AppState {
    /// The state for `config` with these credentials and metrics.
    pub fn new(
        config: &QueryConfig,
        credentials: Credentials,
        metrics: Metrics,
    ) -> Result<AppState, StateError> {
        if config.upstream_timeout_ms <= config.query_timeout_ms {
            return Err(StateError::Timeouts {
                upstream_ms: config.upstream_timeout_ms,
                query_ms: config.query_timeout_ms,
            });
        }
        let upstream = |key, url: &str| {
            Upstream::new(url, config.upstream_timeout())
                .map_err(|source| StateError::Upstream { key, source })
        };
        let history = if config.history_url.is_empty() {
            None
        } else {
            Some(upstream("history_url", &config.history_url)?)
        };
        Ok(AppState {
            credentials: SharedCredentials::new(credentials),
            policy: Arc::new(config.policy().map_err(StateError::Policy)?),
            live: upstream("prometheus_url", &config.prometheus_url)?,
            history,
            routing: config.routing(),
            limits: Limits::new(config.limit_settings()),
            metrics,
        })
    }

    /// The upstream a route's target names (the live one when there is no history upstream:
    /// `Routing` never routes there then).
    pub fn upstream(&self, target: Target) -> &Upstream {
        match (target, &self.history) {
            (Target::History, Some(history)) => history,
            (Target::History, None) | (Target::Live, _) => &self.live,
        }
    }
}
