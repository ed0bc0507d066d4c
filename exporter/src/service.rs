//! The exporter service: one consumer-group member reading the clicks topic, turning each owned
//! partition's records into closed minutes (remote_write), archive objects (S3) and dead
//! letters (Kafka), and committing an offset only once everything derived from the records
//! before it is acknowledged.
//!
//! The commit cycle, every `commit_interval_ms`: take each owned partition's [`Checkpoint`]
//! (its replay start is the first record of any minute still open, or of the open archive
//! object), then wait until remote_write has flushed every sample pushed so far, every sealed
//! archive object is uploaded and every dead letter is acknowledged, then write the checkpoints,
//! then commit their offsets. Reading goes on meanwhile; a slow or absent Prometheus stops new
//! commits and, once the remote_write queue is full, reading itself (backpressure).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use adclick_click::{KafkaSettings, now_ms};
use adclick_remote_write::{Queue, Sample, stale};
use prometheus_client::registry::Registry;
use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use tokio::task::JoinHandle;

use crate::archive::{self, ArchiveBuffer, ArchiveTarget, SealedObject};
use crate::checkpoint::{Checkpoint, CheckpointError, CheckpointStore};
use crate::config::{ExporterConfig, InvalidConfig};
use crate::metrics::{Metrics, PartitionLabels, ReasonLabels};
use crate::partition::{Applied, ClosedMinute, PartitionState, Rules};
use crate::record::{self, EventTimeBounds, Poison, Record};
use crate::series::{self, OpenMinuteSeries};

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
    pub metrics: Metrics,
    pub remote_write_metrics: adclick_remote_write::Metrics,
}

#[derive(Debug)]
enum RebalanceEvent {
    Assigned(Vec<i32>),
    Revoked(Vec<i32>),
}

/// librdkafka callbacks: rebalances (queued for the loop, which runs them in order with the
/// records) and statistics (consumer lag per partition).
struct Context {
    topic: String,
    events: Mutex<Vec<RebalanceEvent>>,
    metrics: Metrics,
}

impl ClientContext for Context {
    /// librdkafka's global errors, minus reaching the end of a partition: with
    /// `enable.partition.eof` (how idle partitions are noticed) that is news, not an error.
    fn error(&self, error: KafkaError, reason: &str) {
        if !matches!(error, KafkaError::PartitionEOF(_))
            && !reason.contains("reached end of partition")
        {
            tracing::error!(%error, reason, "librdkafka");
        }
    }

    fn stats(&self, statistics: Statistics) {
        if let Some(topic) = statistics.topics.get(&self.topic) {
            for (partition, p) in &topic.partitions {
                // From the read position, not librdkafka's `consumer_lag` (from the committed
                // offset): the committed offset trails by the dedup horizon on purpose.
                if *partition >= 0 && p.app_offset >= 0 && p.ls_offset >= 0 {
                    self.metrics
                        .lag
                        .get_or_create(&PartitionLabels {
                            partition: *partition,
                        })
                        .set((p.ls_offset - p.app_offset).max(0));
                }
            }
        }
    }
}

impl ConsumerContext for Context {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let partitions = partitions_of(tpl, &self.topic);
            self.events
                .lock()
                .expect("not poisoned")
                .push(RebalanceEvent::Revoked(partitions));
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            let partitions = partitions_of(tpl, &self.topic);
            self.events
                .lock()
                .expect("not poisoned")
                .push(RebalanceEvent::Assigned(partitions));
        }
    }
}

fn partitions_of(tpl: &TopicPartitionList, topic: &str) -> Vec<i32> {
    tpl.elements_for_topic(topic)
        .iter()
        .map(|e| e.partition())
        .collect()
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

type Snapshot = Vec<(i32, u64, Checkpoint)>;

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
    pending_commit: Option<JoinHandle<Result<Snapshot, String>>>,
    closed: Vec<ClosedMinute>,
    extra_labels: Vec<(String, String)>,
}

/// The registry behind the admin listener's /metrics: the exporter's metrics and the
/// remote_write client's.
pub fn registry(metrics: &Metrics, remote_write: &adclick_remote_write::Metrics) -> Registry {
    let mut registry = Registry::default();
    metrics.register(&mut registry);
    remote_write.register(&mut registry);
    registry
}

/// [`run`] with the admin listener (/metrics, /healthz, /readyz) served on `admin`.
pub async fn serve(
    admin: tokio::net::TcpListener,
    config: ExporterConfig,
    deps: Deps,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ExportError> {
    let registry = Arc::new(registry(&deps.metrics, &deps.remote_write_metrics));
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

impl Exporter {
    async fn new(config: ExporterConfig, deps: Deps) -> Result<Exporter, ExportError> {
        let Deps {
            kafka,
            s3,
            bucket,
            metrics,
            remote_write_metrics,
        } = deps;
        let context = Context {
            topic: kafka.topic.clone(),
            events: Mutex::new(vec![]),
            metrics: metrics.clone(),
        };
        let mut consumer_config = ClientConfig::new();
        consumer_config
            .set("bootstrap.servers", &kafka.brokers)
            .set("group.id", &config.group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "true")
            .set("statistics.interval.ms", "5000")
            // A Prometheus outage stops reading (backpressure) for as long as it lasts; the
            // group must not evict the member meanwhile.
            .set("max.poll.interval.ms", "1800000");
        if !config.instance_id.is_empty() {
            consumer_config.set("group.instance.id", &config.instance_id);
        }
        for (k, v) in &kafka.properties {
            consumer_config.set(k, v);
        }
        let consumer: StreamConsumer<Context> = consumer_config.create_with_context(context)?;
        let mut producer_config = ClientConfig::new();
        producer_config
            .set("bootstrap.servers", &kafka.brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5");
        for (k, v) in &kafka.properties {
            producer_config.set(k, v);
        }
        let producer: FutureProducer = producer_config.create()?;

        let metadata = consumer.fetch_metadata(Some(&kafka.topic), Duration::from_secs(30))?;
        let partitions = metadata
            .topics()
            .iter()
            .find(|t| t.name() == kafka.topic)
            .map_or(0, |t| t.partitions().len());
        if partitions == 0 {
            return Err(ExportError::NoTopic(kafka.topic));
        }
        ensure_topic(&producer_config, &config.dead_letter_topic, &consumer).await?;
        consumer.subscribe(&[&kafka.topic])?;

        let queue = Queue::from_config(&config.remote_write, remote_write_metrics)
            .map_err(ExportError::RemoteWriteConfig)?;
        let store = CheckpointStore::new(
            s3.clone(),
            &bucket,
            &config.archive.prefix,
            &config.group_id,
        );
        let archive_target = Arc::new(ArchiveTarget {
            bucket: bucket.clone(),
            prefix: config.archive.prefix.clone(),
            topic: kafka.topic.clone(),
            max_records: config.archive.max_records,
            max_bytes: config.archive.max_bytes,
        });
        let rules = Rules {
            allowed_lateness_ms: config.allowed_lateness_ms,
            top_k: config.top_k_per_partition(partitions),
            horizon: config.horizon(),
        };
        let bounds = EventTimeBounds {
            max_future_ms: config.max_future_ms,
            max_age_ms: config.max_age_ms,
        };
        tracing::info!(
            topic = %kafka.topic, partitions, top_k_per_partition = rules.top_k,
            group = %config.group_id, "exporter started"
        );
        Ok(Exporter {
            topic: kafka.topic,
            consumer: Arc::new(consumer),
            producer,
            queue: Arc::new(queue),
            store,
            s3,
            bucket,
            archive_target,
            metrics,
            rules,
            bounds,
            owned: HashMap::new(),
            next_epoch: 0,
            durability: vec![],
            pending_commit: None,
            closed: vec![],
            extra_labels: config.extra_labels(),
            config,
        })
    }

    async fn run_loop(&mut self, shutdown: impl Future<Output = ()>) -> Result<(), ExportError> {
        tokio::pin!(shutdown);
        let mut housekeeping = tokio::time::interval(Duration::from_millis(250));
        housekeeping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_commit = Instant::now();
        let mut last_open = Instant::now();
        let consumer = self.consumer.clone();
        loop {
            tokio::select! {
                biased;
                _ = &mut shutdown => return Ok(()),
                done = async { self.pending_commit.as_mut().expect("guarded").await },
                    if self.pending_commit.is_some() => {
                    self.pending_commit = None;
                    self.finish_commit(done);
                }
                // Before `recv`: while a backlog is read, `recv` is always ready, and commits,
                // checkpoints and open-minute writes must not wait for the backlog's end (a crash
                // during a long catch-up would replay all of it). The tick is ready at most every
                // 250 ms, so it cannot starve `recv` in turn.
                _ = housekeeping.tick() => {
                    self.apply_rebalances().await?;
                    self.tick_idle_partitions();
                    let open_every = self.config.open_minute_interval_ms;
                    if open_every > 0 && last_open.elapsed() >= Duration::from_millis(open_every) {
                        last_open = Instant::now();
                        self.write_open_minutes().await?;
                    }
                    if self.pending_commit.is_none()
                        && last_commit.elapsed() >= Duration::from_millis(self.config.commit_interval_ms)
                    {
                        last_commit = Instant::now();
                        self.start_commit();
                    }
                    self.update_gauges();
                }
                message = consumer.recv() => {
                    self.apply_rebalances().await?;
                    match message {
                        Ok(m) => self.handle(&m).await?,
                        Err(KafkaError::PartitionEOF(p)) => {
                            if let Some(owned) = self.owned.get_mut(&p) {
                                owned.at_end = true;
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "Kafka consumer error (librdkafka retries)"),
                    }
                }
            }
        }
    }

    /// Runs the rebalance callbacks' events: revoked partitions drop their state (the next owner
    /// replays from the committed offset); assigned ones load their checkpoint.
    async fn apply_rebalances(&mut self) -> Result<(), ExportError> {
        let events =
            std::mem::take(&mut *self.consumer.context().events.lock().expect("not poisoned"));
        for event in events {
            match event {
                RebalanceEvent::Revoked(partitions) => {
                    for p in partitions {
                        self.owned.remove(&p);
                        tracing::info!(partition = p, "partition revoked");
                    }
                }
                RebalanceEvent::Assigned(partitions) => {
                    for p in partitions {
                        self.assign(p).await?;
                    }
                }
            }
        }
        self.metrics.partitions_owned.set(self.owned.len() as i64);
        Ok(())
    }

    async fn assign(&mut self, partition: i32) -> Result<(), ExportError> {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&self.topic, partition);
        let consumer = self.consumer.clone();
        let committed = tokio::task::block_in_place(|| {
            consumer.committed_offsets(tpl, Duration::from_secs(30))
        })?;
        let committed = committed
            .find_partition(&self.topic, partition)
            .and_then(|e| match e.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            });
        let (state, archived_before, dead_lettered_before) = match committed {
            None => (PartitionState::new(self.rules), 0, 0),
            Some(offset) => match self.store.get(&self.topic, partition, offset).await {
                Ok(Some(cp)) => (
                    PartitionState::resume(self.rules, cp.resume()),
                    cp.archived_before,
                    cp.position,
                ),
                Ok(None) => {
                    self.metrics.checkpoints_missing.inc();
                    tracing::error!(
                        partition,
                        offset,
                        "committed offset without a checkpoint: replaying without the watermark; \
                         minutes may be written again with partial counts (Prometheus keeps the first)"
                    );
                    (PartitionState::new(self.rules), offset, offset)
                }
                Err(e) => {
                    return Err(ExportError::Checkpoint {
                        partition,
                        offset,
                        source: e,
                    });
                }
            },
        };
        self.next_epoch += 1;
        tracing::info!(partition, ?committed, "partition assigned");
        self.owned.insert(
            partition,
            Owned {
                epoch: self.next_epoch,
                state,
                archive: ArchiveBuffer::new(
                    self.archive_target.clone(),
                    partition,
                    archived_before,
                ),
                open: OpenMinuteSeries::default(),
                position: committed,
                dead_lettered_before,
                last_record_at: Instant::now(),
                last_tick_at: None,
                at_end: false,
                last_written_end_ms: None,
            },
        );
        Ok(())
    }

    async fn handle(&mut self, m: &BorrowedMessage<'_>) -> Result<(), ExportError> {
        let partition = m.partition();
        let offset = m.offset();
        let Some(owned) = self.owned.get_mut(&partition) else {
            tracing::warn!(
                partition,
                offset,
                "record of a partition not owned; ignored"
            );
            return Ok(());
        };
        if owned.position.is_some_and(|p| offset < p) {
            return Ok(());
        }
        owned.position = Some(offset + 1);
        owned.at_end = false;
        owned.last_record_at = Instant::now();
        let timestamp_ms = m.timestamp().to_millis();
        let control = m.headers().and_then(|h| {
            let kind = h.iter().find(|h| h.key == record::CONTROL_HEADER)?.value?;
            let time = h
                .iter()
                .find(|h| h.key == record::TICK_TIME_HEADER)
                .and_then(|h| h.value);
            Some((kind, time))
        });
        let classified = record::classify(control, m.payload(), timestamp_ms, &self.bounds);
        let mut sealed = None;
        match classified {
            Record::Click { click, impression } => {
                let max_before = owned.state.max_event_ms();
                sealed = owned.archive.push(
                    offset,
                    timestamp_ms.unwrap_or(click.event_time_ms),
                    m.payload().unwrap_or_default(),
                    max_before,
                );
                // A salted key (`ad:N`) marks a hot ad spread over partitions.
                let hot = m.key().is_some_and(|k| k.contains(&b':'));
                let applied =
                    owned
                        .state
                        .apply_click(offset, &click, impression, hot, &mut self.closed);
                self.metrics.record(match applied {
                    Applied::Counted => "counted",
                    Applied::Repeat => "repeat",
                    Applied::Late => "late",
                    Applied::WarmUp => "warm_up",
                });
                self.metrics.forgotten(owned.state.take_evictions());
            }
            Record::Tick { event_time_ms } => {
                sealed = owned.archive.tick();
                owned
                    .state
                    .apply_tick(offset, event_time_ms, &mut self.closed);
                self.metrics.record("tick");
                self.metrics.forgotten(owned.state.take_evictions());
            }
            Record::Poison { reason, detail } => {
                if reason.is_archived() {
                    let max_before = owned.state.max_event_ms();
                    sealed = owned.archive.push(
                        offset,
                        timestamp_ms.unwrap_or(0),
                        m.payload().unwrap_or_default(),
                        max_before,
                    );
                }
                if offset >= owned.dead_lettered_before {
                    self.metrics.record("dead_letter");
                    self.metrics
                        .dead_letters
                        .get_or_create(&ReasonLabels {
                            reason: reason.as_str(),
                        })
                        .inc();
                    tracing::warn!(partition, offset, reason = reason.as_str(), %detail, "dead-lettered");
                    let task = dead_letter(
                        self.producer.clone(),
                        &self.config.dead_letter_topic,
                        &self.topic,
                        m,
                        reason,
                        &detail,
                    );
                    self.durability.push(task);
                }
            }
        }
        if let Some(object) = sealed {
            self.spawn_upload(object).await;
        }
        self.write_closed(partition).await
    }

    /// Writes the minutes the last record closed.
    async fn write_closed(&mut self, partition: i32) -> Result<(), ExportError> {
        let now = now_ms();
        let closed = std::mem::take(&mut self.closed);
        for minute in &closed {
            if minute.suppressed {
                continue;
            }
            self.metrics.minutes_closed.inc();
            self.metrics.late_clicks.inc_by(minute.late_clicks);
            self.metrics.ads_folded.inc_by(minute.ads_folded);
            let end = minute.minute.end_ms();
            if end < now - self.config.max_age_ms {
                self.metrics
                    .minutes_skipped
                    .get_or_create(&ReasonLabels { reason: "too_old" })
                    .inc();
                continue;
            }
            self.metrics
                .series_last_minute
                .get_or_create(&PartitionLabels { partition })
                .set(minute.samples.len() as i64);
            for (key, value) in &minute.samples {
                let labels = series::closed_labels(*key, partition, &self.extra_labels);
                self.queue
                    .push(&labels, Sample::new(end, *value as f64))
                    .await
                    .map_err(ExportError::RemoteWrite)?;
            }
            self.metrics
                .samples_written
                .inc_by(minute.samples.len() as u64);
            if let Some(owned) = self.owned.get_mut(&partition) {
                owned.last_written_end_ms = Some(end);
            }
        }
        self.closed = closed;
        self.closed.clear();
        Ok(())
    }

    async fn spawn_upload(&mut self, object: SealedObject) {
        // Bound the memory held by objects waiting for the store.
        self.durability.retain(|t| !t.is_finished());
        while self.durability.len() >= self.config.archive.max_pending_uploads {
            let oldest = self.durability.remove(0);
            let _ = oldest.await;
        }
        let s3 = self.s3.clone();
        let bucket = self.bucket.clone();
        let metrics = self.metrics.clone();
        metrics.archive_pending.inc();
        self.durability.push(tokio::spawn(async move {
            retry_until_ok(
                || archive::upload(&s3, &bucket, &object),
                |e| {
                    metrics.archive_upload_errors.inc();
                    tracing::warn!(key = %object.key, error = %e, "archive upload failed; retrying");
                },
            )
            .await;
            metrics.archive_pending.dec();
            metrics.archive_objects.inc();
            metrics.archive_bytes.inc_by(object.body.len() as u64);
            metrics.archive_records.inc_by(object.records as u64);
        }));
    }

    /// Writes a tick into each owned partition that has been quiet, read to its end, for
    /// `idle_tick_ms` while holding an open minute or archive object.
    fn tick_idle_partitions(&mut self) {
        let idle = Duration::from_millis(self.config.idle_tick_ms);
        let now = now_ms();
        for (partition, owned) in &mut self.owned {
            let holds_open = owned.state.open_windows().next().is_some() || owned.archive.is_open();
            let quiet = owned.at_end && owned.last_record_at.elapsed() >= idle;
            let not_just_ticked = owned.last_tick_at.is_none_or(|t| t.elapsed() >= idle);
            if !(holds_open && quiet && not_just_ticked) {
                continue;
            }
            owned.last_tick_at = Some(Instant::now());
            self.metrics.ticks_written.inc();
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: record::CONTROL_HEADER,
                    value: Some(record::TICK),
                })
                .insert(Header {
                    key: record::TICK_TIME_HEADER,
                    value: Some(&now.to_string()),
                });
            let producer = self.producer.clone();
            let topic = self.topic.clone();
            let partition = *partition;
            tokio::spawn(async move {
                let record: FutureRecord<'_, str, [u8]> = FutureRecord::to(&topic)
                    .partition(partition)
                    .key("tick")
                    .headers(headers);
                if let Err((e, _)) = producer.send(record, Duration::from_secs(30)).await {
                    tracing::warn!(partition, error = %e, "tick not written; retried when still idle");
                }
            });
        }
    }

    /// Writes the running counts of the minutes in progress (`adclick_clicks_open`). Each
    /// sample's labels are made as it is pushed, so no more of them live than the queue holds.
    async fn write_open_minutes(&mut self) -> Result<(), ExportError> {
        let now = now_ms();
        let mut written = 0;
        for (partition, owned) in &mut self.owned {
            let updates = owned
                .open
                .update(owned.state.open_windows(), now, self.rules.top_k);
            for (key, sample) in updates {
                let labels =
                    series::labels(series::OPEN_CLICKS, key, *partition, &self.extra_labels);
                let pushed = if stale::is_stale_marker(sample.value) {
                    self.queue.end_series(&labels, sample.timestamp_ms).await
                } else {
                    self.queue.push(&labels, sample).await
                };
                pushed.map_err(ExportError::RemoteWrite)?;
                written += 1;
            }
        }
        self.metrics.samples_written.inc_by(written);
        Ok(())
    }

    fn snapshot(&self) -> Snapshot {
        self.owned
            .iter()
            .filter_map(|(p, o)| {
                let position = o.position?;
                tracing::debug!(
                    partition = p,
                    position,
                    windows = ?o.state.open_windows().map(|(m, w)| (m.end_ms(), w.first_offset, w.max_event_before)).collect::<Vec<_>>(),
                    state_start = ?o.state.replay_start(),
                    archive_start = ?o.archive.replay_start(),
                    max_event = ?o.state.max_event_ms(),
                    "snapshot"
                );
                Some((
                    *p,
                    o.epoch,
                    Checkpoint::take(
                        &self.topic,
                        *p,
                        &o.state,
                        &o.archive,
                        position,
                        o.dead_lettered_before,
                    ),
                ))
            })
            .collect()
    }

    /// Starts a commit of what was read so far (see the module documentation).
    fn start_commit(&mut self) {
        let snapshot = self.snapshot();
        if snapshot.is_empty() {
            return;
        }
        let queue = self.queue.clone();
        let durability = std::mem::take(&mut self.durability);
        let store = self.store.clone();
        self.pending_commit = Some(tokio::spawn(async move {
            let report = queue.flush().await;
            if !report.is_ok() {
                // Only samples the receiver refused for good (a 4xx) fail; retrying cannot help.
                tracing::error!(failed = report.samples_failed, errors = ?report.errors, "remote_write refused samples");
            }
            for task in durability {
                task.await
                    .map_err(|e| format!("an upload task failed: {e}"))?;
            }
            for (_, _, checkpoint) in &snapshot {
                store.put(checkpoint).await.map_err(|e| e.to_string())?;
            }
            Ok(snapshot)
        }));
    }

    fn finish_commit(&mut self, done: Result<Result<Snapshot, String>, tokio::task::JoinError>) {
        let snapshot = match done {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                self.metrics.commit_errors.inc();
                tracing::warn!(error = %e, "checkpoint not written; retried at the next interval");
                return;
            }
            Err(e) => {
                self.metrics.commit_errors.inc();
                tracing::error!(error = %e, "commit task failed");
                return;
            }
        };
        let mut tpl = TopicPartitionList::new();
        for (partition, epoch, checkpoint) in &snapshot {
            // A partition revoked (or revoked and assigned again) since: its new owner decides.
            if self.owned.get(partition).is_some_and(|o| o.epoch == *epoch) {
                let _ = tpl.add_partition_offset(
                    &self.topic,
                    *partition,
                    Offset::Offset(checkpoint.offset),
                );
            }
        }
        if tpl.count() == 0 {
            return;
        }
        match self.consumer.commit(&tpl, CommitMode::Async) {
            Ok(()) => {
                self.metrics.commits.inc();
            }
            Err(e) => {
                self.metrics.commit_errors.inc();
                tracing::warn!(error = %e, "offset commit failed; retried at the next interval");
            }
        }
        for (partition, epoch, checkpoint) in snapshot {
            if let Some(owned) = self.owned.get_mut(&partition).filter(|o| o.epoch == epoch) {
                owned.state.committed(checkpoint.count_from());
            }
            let store = self.store.clone();
            tokio::spawn(async move {
                if let Err(e) = store.prune(&checkpoint, 4).await {
                    tracing::debug!(error = %e, "pruning checkpoints");
                }
            });
        }
    }

    fn update_gauges(&self) {
        let now = now_ms();
        for (partition, owned) in &self.owned {
            let labels = PartitionLabels {
                partition: *partition,
            };
            if let Some(end) = owned.last_written_end_ms {
                self.metrics
                    .freshness_seconds
                    .get_or_create(&labels)
                    .set((now - end) as f64 / 1000.0);
            }
            if let Some(w) = owned.state.watermark() {
                self.metrics
                    .watermark_seconds
                    .get_or_create(&labels)
                    .set(w as f64 / 1000.0);
            }
            let ads: usize = owned.state.open_windows().map(|(_, w)| w.ads()).sum();
            self.metrics.open_ads.get_or_create(&labels).set(ads as i64);
            let remembered = owned.state.remembered();
            self.metrics
                .remembered_impressions
                .get_or_create(&labels)
                .set(remembered.len() as i64);
            self.metrics
                .remembered_bytes
                .get_or_create(&labels)
                .set(remembered.heap_bytes() as i64);
        }
    }

    /// After the loop: finish in-flight writes and commit what they acknowledged, within the
    /// shutdown timeout; what does not make it is replayed by the next owner.
    async fn finish(&mut self) {
        let timeout = Duration::from_millis(self.config.shutdown_timeout_ms);
        let finished = tokio::time::timeout(timeout, async {
            if let Some(pending) = self.pending_commit.take() {
                self.finish_commit(pending.await);
            }
            self.start_commit();
            if let Some(pending) = self.pending_commit.take() {
                let done = pending.await;
                self.finish_commit(done);
            }
        })
        .await;
        if finished.is_err() {
            tracing::warn!("shutdown timeout: uncommitted records will be replayed");
        }
        let _ = self.consumer.commit_consumer_state(CommitMode::Sync).ok();
        self.consumer.unsubscribe();
    }
}

/// Creates the dead-letter topic (one partition) unless it exists: a poison record must never
/// wait for an operator to create it, and brokers that do not create topics on first write
/// would otherwise hold the partition's commits back forever.
async fn ensure_topic(
    client_config: &ClientConfig,
    topic: &str,
    consumer: &StreamConsumer<Context>,
) -> Result<(), ExportError> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(30))?;
    let exists = metadata
        .topics()
        .iter()
        .any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty());
    if exists {
        return Ok(());
    }
    let admin: AdminClient<rdkafka::client::DefaultClientContext> = client_config.create()?;
    let new = NewTopic::new(topic, 1, TopicReplication::Fixed(-1));
    let results = admin.create_topics([&new], &AdminOptions::new()).await?;
    for result in results {
        match result {
            Ok(_) => tracing::info!(topic, "dead-letter topic created"),
            Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, code)) => {
                return Err(ExportError::Kafka(KafkaError::AdminOp(code))).inspect_err(|_| {
                    tracing::error!(topic = %t, %code, "cannot create the dead-letter topic");
                });
            }
        }
    }
    Ok(())
}

/// Writes a poison record to the dead-letter topic, retrying until the broker acknowledges it
/// (the offset after it is not committed before).
fn dead_letter(
    producer: FutureProducer,
    dead_letter_topic: &str,
    topic: &str,
    m: &BorrowedMessage<'_>,
    reason: Poison,
    detail: &str,
) -> JoinHandle<()> {
    let key = m.key().map(<[u8]>::to_vec);
    let value = m.payload().map(<[u8]>::to_vec);
    let mut headers = OwnedHeaders::new();
    if let Some(h) = m.headers() {
        for header in h.iter() {
            headers = headers.insert(Header {
                key: header.key,
                value: header.value,
            });
        }
    }
    let headers = headers
        .insert(Header {
            key: "adclick-dead-letter-reason",
            value: Some(reason.as_str()),
        })
        .insert(Header {
            key: "adclick-dead-letter-detail",
            value: Some(detail),
        })
        .insert(Header {
            key: "adclick-source-topic",
            value: Some(topic),
        })
        .insert(Header {
            key: "adclick-source-partition",
            value: Some(&m.partition().to_string()),
        })
        .insert(Header {
            key: "adclick-source-offset",
            value: Some(&m.offset().to_string()),
        });
    let dead_letter_topic = dead_letter_topic.to_string();
    tokio::spawn(async move {
        let send = || {
            let mut record: FutureRecord<'_, [u8], [u8]> =
                FutureRecord::to(&dead_letter_topic).headers(headers.clone());
            if let Some(k) = &key {
                record = record.key(k);
            }
            if let Some(v) = &value {
                record = record.payload(v);
            }
            let send = producer.send(record, Duration::from_secs(30));
            async move { send.await.map(|_| ()).map_err(|(e, _)| e) }
        };
        retry_until_ok(send, |e| {
            tracing::warn!(error = %e, "dead letter not acknowledged; retrying");
        })
        .await;
    })
}

/// Runs `attempt` until it succeeds, calling `on_error` after each failure and waiting
/// 100 ms, doubling up to 10 s: what must become durable (an archive object, a dead letter)
/// is retried for as long as it takes, and holds the commit back meanwhile.
async fn retry_until_ok<T, E, Fut>(mut attempt: impl FnMut() -> Fut, on_error: impl Fn(&E)) -> T
where
    Fut: Future<Output = Result<T, E>>,
{
    let mut delay = Duration::from_millis(100);
    loop {
        match attempt().await {
            Ok(t) => return t,
            Err(e) => {
                on_error(&e);
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    }
}
