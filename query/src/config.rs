//! The `[query]` configuration section of `adclick query` and its defaults (documented key by key
//! in `deploy/adclick.example.toml`).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::policy::{Limits, Policy, PolicyError, RAW_SERIES, RECORDED_SERIES};

/// `adclick query`: the gateway between advertisers and Prometheus.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueryConfig {
    /// The Prometheus HTTP API listener advertisers (and their Grafana) talk to.
    pub listen: String,
    /// Admin listener: /metrics, /healthz, /readyz.
    pub admin_listen: String,
    /// The Prometheus every query is forwarded to (its base URL, without `/api/v1`).
    pub prometheus_url: String,
    /// Longest query or `match[]` selector, bytes, checked before parsing ([`Limits::max_bytes`]).
    pub max_query_bytes: usize,
    /// Deepest nesting of a query ([`Limits::max_nesting`]; at most
    /// [`Limits::MAX_NESTING_CEILING`]).
    pub max_nesting: usize,
    /// How long one forwarded request may take, connection included, ms.
    pub upstream_timeout_ms: u64,
    /// The API keys file (see [`crate::ApiKeys`]): `sha256(key)` in hex, then an advertiser id or
    /// `operator`, one key per line. Required: without keys nobody can be let in.
    pub api_keys_file: PathBuf,
}

impl Default for QueryConfig {
    fn default() -> Self {
        QueryConfig {
            listen: "127.0.0.1:9200".into(),
            admin_listen: "127.0.0.1:9103".into(),
            prometheus_url: "http://127.0.0.1:9090".into(),
            max_query_bytes: Limits::DEFAULT_MAX_BYTES,
            max_nesting: Limits::DEFAULT_MAX_NESTING,
            upstream_timeout_ms: 30_000,
            api_keys_file: PathBuf::new(),
        }
    }
}

impl QueryConfig {
    /// The bounds on a query's text.
    pub fn limits(&self) -> Limits {
        Limits {
            max_bytes: self.max_query_bytes,
            max_nesting: self.max_nesting,
        }
    }

    /// The series advertisers may reach (adclick's click series and recording rules) under this
    /// section's limits.
    pub fn policy(&self) -> Result<Policy, PolicyError> {
        Policy::new(
            RAW_SERIES.iter().chain(RECORDED_SERIES.iter()).copied(),
            self.limits(),
        )
    }

    pub fn upstream_timeout(&self) -> Duration {
        Duration::from_millis(self.upstream_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_make_the_default_policy() {
        let c = QueryConfig::default();
        assert_eq!(c.policy().unwrap(), Policy::default());
        let deep = QueryConfig {
            max_nesting: Limits::MAX_NESTING_CEILING + 1,
            ..QueryConfig::default()
        };
        assert!(deep.policy().is_err());
    }
}
