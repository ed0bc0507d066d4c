//! The `[query]` configuration section of `adclick query` and its defaults (documented key by key
//! in `deploy/adclick.example.toml`).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::jwt::JwtConfig;
use crate::limits::LimitSettings;
use crate::policy::{Limits, Policy, PolicyError, RAW_SERIES, RECORDED_SERIES};
use crate::route::{HistoryKind, Routing};

const DAY_MS: u64 = 86_400_000;

/// `adclick query`: the gateway between advertisers and Prometheus.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueryConfig {
    /// The Prometheus HTTP API listener advertisers (and their Grafana) talk to.
    pub listen: String,
    /// Admin listener: /metrics, /healthz, /readyz.
    pub admin_listen: String,
    /// The live Prometheus (the stream tier): its base URL, without `/api/v1`.
    pub prometheus_url: String,
    /// The history upstream: Thanos Query (or a Prometheus serving only rollup blocks, see
    /// `history_kind`), for `tier="rollup"` and for what is older than `live_retention_ms`.
    /// Empty: none; everything goes to `prometheus_url`.
    pub history_url: String,
    /// `thanos` (both tiers, told apart by their `tier` external label) or `prometheus` (rollup
    /// blocks only).
    pub history_kind: HistoryKind,
    /// How far back the live Prometheus holds data (its `--storage.tsdb.retention.time`): a
    /// query reading further back goes to the history upstream.
    pub live_retention_ms: u64,
    /// Longest query or `match[]` selector, bytes, checked before parsing ([`Limits::max_bytes`]).
    pub max_query_bytes: usize,
    /// Deepest nesting of a query ([`Limits::max_nesting`]; at most
    /// [`Limits::MAX_NESTING_CEILING`]).
    pub max_nesting: usize,
    /// How long one forwarded request may take, connection included, ms; more than
    /// `query_timeout_ms`, so that the upstream's own timeout answers first, with its reason.
    pub upstream_timeout_ms: u64,
    /// The evaluation timeout sent upstream with every query (`timeout`); a caller may ask for
    /// less, never more.
    pub query_timeout_ms: u64,
    /// Requests per second per caller (an advertiser, or the operators); 0: no limit. Over it:
    /// 429 with `Retry-After`.
    pub requests_per_second: u32,
    /// Requests a caller may make at once after a quiet spell.
    pub burst: u32,
    /// Requests of one caller being answered at once; 0: no limit. Over it: 429.
    pub max_concurrent_queries: usize,
    /// The longest time one query may read, ms: from the range's start less the query's longest
    /// window (`[1d]`, `offset`, subqueries) to its end. Over it: 422 naming the limit.
    pub max_range_ms: u64,
    /// The most points of a range query ((end − start) / step + 1). Over it: 422.
    pub max_points: u64,
    /// How often the keys file and the JWT key file are checked for changes, ms (SIGHUP reloads
    /// them at once).
    pub reload_interval_ms: u64,
    /// The API keys file (see [`crate::ApiKeys`]): `sha256(key)` in hex, then an advertiser id or
    /// `operator`, one key per line. Required: without keys nobody can be let in.
    pub api_keys_file: PathBuf,
    /// JSON Web Tokens as credentials (`[query.jwt]`); off without a `key_file`.
    pub jwt: JwtConfig,
}

impl Default for QueryConfig {
    fn default() -> Self {
        QueryConfig {
            listen: "127.0.0.1:9200".into(),
            admin_listen: "127.0.0.1:9103".into(),
            prometheus_url: "http://127.0.0.1:9090".into(),
            history_url: String::new(),
            history_kind: HistoryKind::Thanos,
            live_retention_ms: 15 * DAY_MS,
            max_query_bytes: Limits::DEFAULT_MAX_BYTES,
            max_nesting: Limits::DEFAULT_MAX_NESTING,
            upstream_timeout_ms: 30_000,
            query_timeout_ms: 20_000,
            requests_per_second: 20,
            burst: 40,
            max_concurrent_queries: 8,
            max_range_ms: 40 * DAY_MS,
            max_points: 11_000,
            reload_interval_ms: 5_000,
            api_keys_file: PathBuf::new(),
            jwt: JwtConfig::default(),
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

    /// The per-caller limits.
    pub fn limit_settings(&self) -> LimitSettings {
        LimitSettings {
            requests_per_second: self.requests_per_second,
            burst: self.burst,
            max_concurrent: self.max_concurrent_queries,
            max_range: Duration::from_millis(self.max_range_ms),
            max_points: self.max_points,
            query_timeout: Duration::from_millis(self.query_timeout_ms),
        }
    }

    /// The upstreams to route between.
    pub fn routing(&self) -> Routing {
        Routing {
            history: (!self.history_url.is_empty()).then_some(self.history_kind),
            live_retention: Duration::from_millis(self.live_retention_ms),
        }
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
