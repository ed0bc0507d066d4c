//! The query gateway (issue #21): an advertiser's PromQL, parsed and rewritten so that it reads
//! only that advertiser's clicks — or refused, naming why — and the HTTP service `adclick query`
//! built on that core: API keys and JWTs (reloaded without a restart), the Prometheus HTTP API
//! and the REST `/v1/clicks` enforced, routed between the live Prometheus and the history
//! upstream (Thanos), limited per caller, audited, and an admin listener. The core (`policy` …
//! `rest`) is pure, text in, text out; the service modules (`config` … `service`) do the HTTP.
//!
//! | module | concept | items |
//! |---|---|---|
//! | `policy` | what an advertiser may reach: the series names (adclick's click series and the recording rules that keep `advertiser_id`), the label that is enforced, the size and nesting bounds | [`Policy`], [`Limits`], [`PolicyError`], [`ADVERTISER_LABEL`], [`RAW_SERIES`], [`RECORDED_SERIES`] |
//! | `refusal` | why a query is not forwarded, one variant per reason, each with the HTTP status a gateway answers | [`Refusal`] |
//! | `bounds` | the checks made on the raw text before parsing: its length, and its nesting (brackets plus operators), so the parser never sees input deep enough to exhaust the stack | (crate-internal) |
//! | `parse` | promql-parser behind a guard: its panics (a duration such as `[1e30]`) become a refusal | (crate-internal) |
//! | `rewrite` | the walk over every node of the AST, aggregation parameters included, that refuses what cannot be enforced and puts `advertiser_id="<id>"` on every vector and matrix selector | (crate-internal) |
//! | `verify` | defence in depth: the rewritten query printed, parsed again and checked selector by selector | (crate-internal) |
//! | `walk` | every vector selector of a query, by one exhaustive walk (read-only and mutable) | (crate-internal) |
//! | `tier` | which tier a query reads (`tier="rollup"`, `tier="stream"`, `tier!="rollup"`, none, or both), refusing matchers that could add both; its matchers made right for the upstream that answers | [`Tier`], [`Tiers`], [`Holds`], [`TIER_LABEL`] |
//! | `reach` | how far back a query reads: lookback, ranges, offsets, subqueries, `@` | [`Reach`], [`LOOKBACK_DELTA`] |
//! | `enforce` | the entry points: a query (`/api/v1/query`, `query_range`), a series selector (`match[]` of `series`, `labels`, `label/<name>/values`), the caller's own series when no `match[]` is given; `Prepared`, a checked query waiting for its route | [`enforce`], [`enforce_match`], [`own_series`], [`prepare_query`], [`prepare_match`], [`Prepared`] |
//! | `route` | live Prometheus or history upstream, by the query's tiers and reach | [`Routing`], [`Route`], [`Target`], [`HistoryKind`] |
//! | `rest` | `GET /v1/clicks`' pure core: its parameters checked, the exact per-bucket sums planned as `query_range` calls (final, late, invalid, billing), their matrices rendered as JSON or CSV rows | [`ClicksRequest`], [`PlannedQuery`], [`Figure`], [`render`], [`Rendered`], [`RestError`], [`Step`], [`By`], [`Format`], [`AdId`], [`PROMETHEUS_MAX_POINTS`] |
//! | `config` | the `[query]` section: listeners, upstreams, routing, limits, credentials files | [`QueryConfig`] |
//! | `keys` | the API keys file: `sha256(key)` hex → advertiser id or `operator`, looked up by digest | [`ApiKeys`], [`KeysError`], [`key_digest_hex`] |
//! | `jwt` | JSON Web Tokens: the `[query.jwt]` section (one algorithm, one key), a token verified (signature, `exp`, `nbf`, `aud`, `iss`) and the caller its claims name | [`JwtConfig`], [`JwtAlgorithm`], [`JwtVerifier`], [`JwtConfigError`], [`JwtRejection`], [`looks_like_jwt`] |
//! | `caller` | the credential of `Authorization: Bearer` or of basic auth's password, and the caller it names | [`Caller`], [`presented_key`], [`authenticate`] |
//! | `credentials` | keys and JWT verifier together, swapped whole by a reload (file change or SIGHUP) | [`Credentials`], [`SharedCredentials`], [`CredentialsError`], [`Rejected`], [`watch`] |
//! | `limits` | per caller: token bucket, queries in flight, longest range, most points, timeout | [`CallerLimits`], [`LimitSettings`], [`LimitError`], [`Permit`] |
//! | `params` | a request's parameters (query string, then a POST's form body), repeats kept; times and durations as Prometheus reads them | [`Params`], [`ParamError`] |
//! | `envelope` | the answers the gateway gives itself, as Prometheus' error JSON, leaking nothing internal | [`ApiError`] |
//! | `upstream` | a Prometheus-API upstream: requests forwarded, its answers passed back as they are, its readiness | [`Upstream`], [`UpstreamError`], [`UpstreamConfigError`] |
//! | `scrub` | upstream error text and warnings with addresses and URLs taken out | (crate-internal) |
//! | `metrics` | requests by endpoint and outcome, latency, credential reloads (no advertiser label) | [`Metrics`] |
//! | `state` | what every request needs: credentials, policy, upstreams, routing, limits, metrics | [`AppState`], [`StateError`] |
//! | `gateway` | the router: each request authenticated, admitted, answered, counted, audited | [`app`] |
//! | `forward` | one request of the Prometheus HTTP API: prepared, range-checked, routed, forwarded | (crate-internal) |
//! | `clicks` | `/v1/clicks`: planned, prepared, routed, asked, rendered | (crate-internal) |
//! | `service` | the listeners served until shutdown, with the reload and readiness tasks | [`run`], [`Listeners`], [`ServeError`] |
//!
//! ```
//! use adclick_query::{Policy, Refusal, enforce};
//!
//! let policy = Policy::default();
//! let q = enforce("sum by (ad_id) (sum_over_time(adclick_clicks[1h]))", 42, &policy).unwrap();
//! assert_eq!(q, r#"sum by (ad_id) (sum_over_time(adclick_clicks{advertiser_id="42"}[1h]))"#);
//!
//! let err = enforce(r#"adclick_clicks{advertiser_id=~".+"}"#, 42, &policy).unwrap_err();
//! assert!(matches!(err, Refusal::AdvertiserMatcher { .. }));
//! assert_eq!(err.status(), 403);
//! ```
//!
//! Two gaps of promql-parser 0.11 shape the design (read from its source): its walkers
//! (`util::visitor::walk_expr{,_mut}`) never visit an aggregation's parameter, so `rewrite` walks
//! the AST itself, matching every `Expr` variant (a new variant fails to compile); and it accepts
//! `{a="1" or b="2"}` (not Prometheus 2.x syntax) but prints only the `or` groups, so an injected
//! matcher would vanish — such selectors are refused.

mod bounds;
mod caller;
mod clicks;
mod config;
mod credentials;
mod enforce;
mod envelope;
mod forward;
mod gateway;
mod jwt;
mod keys;
mod limits;
mod metrics;
mod params;
mod parse;
mod policy;
mod reach;
mod refusal;
mod rest;
mod rewrite;
mod route;
mod scrub;
mod service;
mod state;
mod tier;
mod upstream;
mod verify;
mod walk;

pub use caller::{Caller, authenticate, presented_key};
pub use config::QueryConfig;
pub use credentials::{Credentials, CredentialsError, Rejected, SharedCredentials, watch};
pub use enforce::{Prepared, enforce, enforce_match, own_series, prepare_match, prepare_query};
pub use envelope::ApiError;
pub use gateway::app;
pub use jwt::{JwtAlgorithm, JwtConfig, JwtConfigError, JwtRejection, JwtVerifier, looks_like_jwt};
pub use keys::{ApiKeys, KeysError, key_digest_hex};
pub use limits::{LimitError, LimitSettings, Limits as CallerLimits, Permit};
pub use metrics::Metrics;
pub use params::{ParamError, Params};
pub use policy::{ADVERTISER_LABEL, Limits, Policy, PolicyError, RAW_SERIES, RECORDED_SERIES};
pub use reach::{LOOKBACK_DELTA, Reach};
pub use refusal::Refusal;
pub use rest::{
    AdId, By, ClicksRequest, Figure, Format, PROMETHEUS_MAX_POINTS, PlannedQuery, Rendered,
    RestError, Step, render,
};
pub use route::{HistoryKind, Route, Routing, Target};
pub use service::{Listeners, ServeError, run};
pub use state::{AppState, StateError};
pub use tier::{Holds, TIER_LABEL, Tier, Tiers};
pub use upstream::{Upstream, UpstreamConfigError, UpstreamError};
