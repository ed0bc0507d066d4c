//! The exporter service: one consumer-group member reading the clicks topic, turning each owned
//! partition's records into closed minutes (remote_write), archive objects (S3) and dead
//! letters (Kafka), and committing an offset only once everything derived from the records
//! before it is acknowledged.
//!
//! | module | its one job |
//! |---|---|
//! | this one | the entry points ([`run`], [`serve`]), why the service stops, the loop's state |
//! | `context` | librdkafka's callbacks: rebalances queued for the loop, consumer lag |
//! | `clients` | the consumer's and the producer's settings |
//! | `run_loop` | start-up, then the loop: records in, minutes out, rebalances, gauges |
//! | `commit` | the commit cycle: checkpoints, then offsets, once all before them is acknowledged |
//! | `side_writes` | what must become durable besides samples: archive objects, dead letters (and their topic), ticks |

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use adclick_click::KafkaSettings;
use adclick_remote_write::Queue;
use prometheus_client::registry::Registry;
use rdkafka::consumer::StreamConsumer;
use rdkafka::error::KafkaError;
use rdkafka::producer::FutureProducer;
use tokio::task::JoinHandle;

use crate::archive::{ArchiveBuffer, ArchiveTarget};
use crate::checkpoint::{CheckpointError, CheckpointStore};
use crate::config::{ExporterConfig, InvalidConfig};
use crate::metrics::Metrics;
use crate::partition::{ClosedMinute, PartitionState, Rules};
use crate::record::EventTimeBounds;
use crate::series::OpenMinuteSeries;

mod clients;
mod commit;
mod context;
mod run_loop;
mod side_writes;

use commit::PendingCommit;
use context::Context;

/// Why the exporter stopped on its own.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("invalid configuration")]
    Config(#[source] InvalidConfig),
    #[error("Kafka")]
    Kafka(#[from] KafkaError),
    #[error("topic {0} does not exist or has no partitions")]
    NoTopic(String),
    #[error("remote_write configuration")]
    RemoteWriteConfig(#[source] adclick_remote_write::ConfigError),
    #[error("remote_write")]
    RemoteWrite(#[source] adclick_remote_write::PushError),
    #[error("checkpoint of partition {partition} at offset {offset}")]
    Checkpoint {
        partition: i32,
        offset: i64,
        #[source]
        source: CheckpointError,
    },
}

/// Everything the service needs that is not configuration.
pub struct Deps {
    pub kafka: KafkaSettings,
    pub s3: aws_sdk_s3::Client,
    pub bucket: String,
    /// The exporter's metrics, its remote_write client's among them.
    pub metrics: Metrics,
}

/// One owned partition.
struct Owned {
    /// Tells this ownership from an earlier one of the same partition.
    epoch: u64,
    state: PartitionState,
    archive: ArchiveBuffer,
    open: OpenMinuteSeries,
    /// The next offset to read; None until the first record (no committed offset).
    position: Option<i64>,
    /// Records before this were dead-lettered by an earlier pass.
    dead_lettered_before: i64,
    last_record_at: Instant,
    last_tick_at: Option<Instant>,
    /// Read to the end of the partition since its last record.
    at_end: bool,
    /// End of the last minute written, for freshness.
    last_written_end_ms: Option<i64>,
}

/// The exporter's loop state.
struct Exporter {
    config: ExporterConfig,
    topic: String,
    consumer: Arc<StreamConsumer<Context>>,
    producer: FutureProducer,
    queue: Arc<Queue>,
    store: CheckpointStore,
    s3: aws_sdk_s3::Client,
    bucket: String,
    archive_target: Arc<ArchiveTarget>,
    metrics: Metrics,
    rules: Rules,
    bounds: EventTimeBounds,
    owned: HashMap<i32, Owned>,
    next_epoch: u64,
    /// Uploads and dead letters not yet known durable; each task retries until it is.
    durability: Vec<JoinHandle<()>>,
    pending_commit: Option<PendingCommit>,
    closed: Vec<ClosedMinute>,
    extra_labels: Vec<(String, String)>,
}

/// The registry behind the admin listener's /metrics: the exporter's metrics and the
/// remote_write client's.
pub fn registry(metrics: &Metrics) -> Registry {
    let mut registry = Registry::default();
    metrics.register(&mut registry);
    registry
}

/// [`run`] with the admin listener (/metrics, /healthz, /readyz) served on `admin`.
pub async fn serve(
    admin: tokio::net::TcpListener,
    config: ExporterConfig,
    deps: Deps,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ExportError> {
    let registry = Arc::new(registry(&deps.metrics));
    let owned = deps.metrics.partitions_owned.clone();
    // Ready once it owns partitions: until then it counts nothing (a group bigger than the
    // partition count leaves some members idle, which is fine but worth seeing).
    let ready: adclick_admin::Readiness = Arc::new(move || {
        if owned.get() > 0 {
            Ok(())
        } else {
            Err("no partition assigned".into())
        }
    });
    let app = adclick_admin::app(registry, ready);
    let server = tokio::spawn(async move { axum::serve(admin, app).await });
    let result = run(config, deps, shutdown).await;
    server.abort();
    result
}

/// Runs the exporter until `shutdown` completes, then finishes in-flight writes, commits what
/// was acknowledged (within `shutdown_timeout_ms`) and returns.
pub async fn run(
    config: ExporterConfig,
    deps: Deps,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ExportError> {
    config.validate().map_err(ExportError::Config)?;
    let mut exporter = Exporter::new(config, deps).await?;
    let result = exporter.run_loop(shutdown).await;
    exporter.finish().await;
    result
}
