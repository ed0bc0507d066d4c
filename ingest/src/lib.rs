//! adclick ingest: the click endpoint. A browser follows an ad link to `GET /click/{token}`;
//! ingest verifies the signed impression token, counts the click exactly once (Redis dedup, a
//! durable Kafka produce) and redirects the browser to the advertiser's page at once.
//!
//! | module | concept |
//! |---|---|
//! | [`config`] | the `[ingest]` configuration section and its defaults |
//! | [`handler`] | the click path: verify, event time, dedup, durable produce, 302 |
//! | [`event_time`] | when a click happened: the client's `t` within bounds, else receipt |
//! | [`reject`] | every non-redirect answer: status per reason, a short page, no `Location` |
//! | [`bound`] | a bound on Redis's or Kafka's time that does not count ingest's own backlog |
//! | [`dedup`] | Redis `SET NX EX` per impression, within a deadline; fail open |
//! | [`keys`] | Redis keys and the visitor cookie, built per click without `format!` |
//! | [`redis_link`] | reaching Redis: one server or a cluster, TLS, ACL login |
//! | [`produce`] | the idempotent Kafka producer, hot-ad key salting, broker health |
//! | [`delivery`] | Kafka's delivery reports served on a Tokio task, signalled by librdkafka through a socket |
//! | [`spill`] | the local append-only log with group fsync that makes clicks durable without Kafka |
//! | [`unreplayed`] | the impressions the spill holds a record of not yet handed to librdkafka: their clicks wait behind it |
//! | [`replay`] | the task that moves the spill into Kafka when the broker is back |
//! | [`limits`] | request, header, time and per-IP limits |
//! | [`server`] | the public HTTP accept loop with connection limits and graceful stop |
//! | [`admin`] | `/metrics`, `/healthz`, `/readyz` on the admin listener |
//! | [`overload`] | how long clicks wait before they are worked on; `/readyz` 503 while that wait is sustained |
//! | [`metrics`] | the Prometheus registry and every metric |
//! | [`request`] | the pure decision: token from path or query, verification, event time, `Location` |
//! | [`traffic`] | invalid traffic: request facts, the client IP through trusted proxies and its keyed hash, the answer an invalid click gets |
//! | [`velocity`] | the Redis counters of the velocity rules: keys, windows, lifetimes |
//! | [`visitor`] | who clicked when the token does not say: the first-party cookie and its user hash |
//!
//! [`run`] is the service: it serves until its `shutdown` future completes, then drains in-flight
//! clicks, stops the replay, flushes the producer and closes the spill, each within
//! `shutdown_timeout_ms`. [`Service::start`] builds the same state without listening, for tests.
//!
//! # Features
//!
//! `service` (on by default) is everything that talks to Kafka or Redis: [`handler`], [`dedup`],
//! [`produce`], [`replay`], [`admin`] and the service itself. Without it the crate is the pure
//! request path ([`request`], [`event_time`], [`reject`]) and its neighbours, which is what
//! `fuzz/` builds — under AddressSanitizer, where building librdkafka is not wanted.

#[cfg(feature = "service")]
pub mod admin;
#[cfg(feature = "service")]
pub mod bound;
pub mod config;
#[cfg(feature = "service")]
pub mod dedup;
#[cfg(feature = "service")]
pub mod delivery;
pub mod event_time;
#[cfg(feature = "service")]
pub mod handler;
pub mod keys;
pub mod limits;
pub mod metrics;
pub mod overload;
#[cfg(feature = "service")]
pub mod produce;
#[cfg(feature = "service")]
pub mod redis_link;
pub mod reject;
#[cfg(feature = "service")]
pub mod replay;
pub mod request;
pub mod server;
#[cfg(feature = "service")]
mod service;
pub mod spill;
pub mod traffic;
pub mod unreplayed;
pub mod velocity;
pub mod visitor;

pub use adclick_click::KafkaSettings;
pub use config::{IngestConfig, SpillFullPolicy};
#[cfg(feature = "service")]
pub use handler::{AppState, app};
#[cfg(feature = "service")]
pub use service::{Listeners, Service, Settings, run};

/// Why ingest could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid [ingest] configuration: {0}")]
    Config(String),
    #[error("opening the spill in {dir}")]
    Spill { dir: String, source: std::io::Error },
    #[error("the task opening the spill ended before it finished")]
    SpillTask(#[source] tokio::task::JoinError),
    /// `[ingest.redis_tls]`'s files could not be used.
    #[cfg(feature = "service")]
    #[error("[ingest.redis_tls]")]
    RedisTls(#[source] adclick_tls::TlsError),
    /// A Redis URL (`redis_url`, an entry of `redis_cluster_nodes`) the client cannot use.
    #[cfg(feature = "service")]
    #[error("[ingest] {setting} {url}")]
    RedisUrl {
        setting: &'static str,
        /// Shown without its password.
        url: String,
        #[source]
        source: redis::RedisError,
    },
    #[cfg(feature = "service")]
    #[error("creating the Kafka producer")]
    Kafka(#[source] rdkafka::error::KafkaError),
    #[cfg(feature = "service")]
    #[error("creating the socket pair that signals Kafka's delivery reports")]
    ProducerSignal(#[source] std::io::Error),
    /// The `[invalid]` rules do not compile (a bad pattern, an unreadable deny list).
    #[error("[invalid]")]
    Invalid(#[source] adclick_invalid::RulesError),
    /// Redis refused ingest for a reason retrying cannot fix (login, TLS certificate).
    #[error(
        "Redis refused the connection: {0} (see [ingest] redis_username, redis_password and \
         [ingest.redis_tls])"
    )]
    Redis(String),
}
