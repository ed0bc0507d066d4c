//! A Prometheus remote_write 1.0 client: every request it sends is valid by construction, each
//! series' samples stay in order through batching and parallel shards, and failures are retried
//! exactly as the specification asks (5xx, 429, connection errors, timeouts) and no others.
//!
//! | module | concept |
//! |---|---|
//! | [`proto`] | the wire messages, generated from `proto/prometheus/` |
//! | [`labels`] | [`Labels`]: a label set the specification allows, encoded and hashed once |
//! | [`request`] | [`RequestBuilder`], [`Request`], [`Sample`]: valid, or refused by series |
//! | [`invalid`] | [`InvalidSeries`]: a refused series written out, and its [`Problem`] |
//! | [`encode`] | a request as an HTTP body: protobuf, then the snappy block format |
//! | [`stale`] | the stale marker that ends a series (NaN `0x7ff0000000000002`) |
//! | [`config`] | the TOML section: URL, timeout, auth, custom and tenant headers, queue |
//! | [`send`] | one POST and its headers; the retry decision; the retry loop (backoff, jitter) |
//! | [`queue`] | batches of ≤ N samples or a deadline, shards by series, backpressure |
//! | [`metrics`] | the client's own metrics through `prometheus-client` |
//!
//! The specification: prometheus/docs `content/docs/specs/prw/remote_write_spec.md`.

pub mod config;
pub mod encode;
pub mod invalid;
pub mod labels;
pub mod metrics;
pub mod proto;
pub mod queue;
pub mod request;
pub mod send;
pub mod stale;

pub use config::{BasicAuth, Config, ConfigError, QueueConfig};
pub use encode::{Encoded, Encoder};
pub use invalid::{InvalidSeries, Problem};
pub use labels::Labels;
pub use metrics::Metrics;
pub use queue::{PushError, Queue, Report, TryPushError};
pub use request::{Request, RequestBuilder, Sample};
pub use send::{AttemptError, Delivery, SendError, Sender};
