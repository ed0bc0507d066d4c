//! adclick exporter (`adclick export`): a Kafka consumer-group member that turns the clicks
//! topic into exact per-ad, per-minute counts in Prometheus (remote_write), keeps the number of
//! series bounded, archives every raw click to the object store for the daily rollup, and
//! survives crashes and rebalances without losing or doubling a click.
//!
//! | module | concept |
//! |---|---|
//! | [`record`] | a record of the topic: a click, a tick (idle partition), or poison and why |
//! | [`window`] | one open minute: exact counts and spend, late clicks; top K and `other` |
//! | [`users`] | one open minute's distinct users per ad, cheaply: the first inline, the rest listed |
//! | [`remembered`] | impression ids remembered over the dedup horizon: repeats in any minute |
//! | [`partition`] | a partition's event time: watermark, closing minutes, zeros; replayable |
//! | [`series`] | the series users query: names, labels, the open minute's running counts |
//! | [`archive`] | the raw archive: objects cut where the log says, uploaded to S3 |
//! | [`checkpoint`] | what a replay from a committed offset needs, stored beside the archive |
//! | [`service`] | the consumer loop: rebalances, the commit cycle, dead letters, ticks |
//! | [`config`] | the `[exporter]` section |
//! | [`metrics`] | the exporter's own metrics |
//!
//! How exactness holds, in short: every decision (which minute a click counts in, when a minute
//! closes, which ads get their own series, when a series gets its zero) is a function of the
//! partition's records in offset order. An offset is committed only after everything derived
//! from the records before it was acknowledged, together with a checkpoint of the little state a
//! replay cannot rebuild (the watermark before it, and the last minute already written). A replay
//! therefore rebuilds the same minutes, writes the same samples for those not yet written, and
//! skips those that were.

pub mod archive;
pub mod checkpoint;
pub mod config;
pub mod metrics;
pub mod partition;
pub mod record;
pub mod remembered;
pub mod series;
pub mod service;
pub mod users;
pub mod window;

pub use adclick_click::KafkaSettings;
pub use config::ExporterConfig;
pub use metrics::Metrics;
pub use service::{Deps, ExportError, registry, run, serve};
