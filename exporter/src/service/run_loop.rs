//! Start-up, then the loop: read records, turn them into closed and open minutes, archive
//! objects and dead letters; run rebalances in order with the records; keep the gauges fresh.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use adclick_click::now_ms;
use adclick_remote_write::{Queue, Sample, stale};
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers};
use rdkafka::producer::FutureProducer;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use super::context::{Context, RebalanceEvent};
use super::{Deps, ExportError, Exporter, Owned, clients, side_writes};
use crate::archive::{ArchiveBuffer, ArchiveTarget};
use crate::checkpoint::CheckpointStore;
use crate::config::ExporterConfig;
use crate::metrics::{PartitionLabels, ReasonLabels};
use crate::partition::{Applied, PartitionState, Rules};
use crate::record::{self, EventTimeBounds, Record};
use crate::series::{self, OpenMinuteSeries};

impl Exporter {
    pub(super) async fn new(config: ExporterConfig, deps: Deps) -> Result<Exporter, ExportError> {
        let Deps {
            kafka,
            s3,
            bucket,
            metrics,
        } = deps;
        let context = Context {
            topic: kafka.topic.clone(),
            events: Mutex::new(vec![]),
            metrics: metrics.clone(),
        };
        let consumer: StreamConsumer<Context> =
            clients::consumer(&kafka, &config).create_with_context(context)?;
        let producer_config = clients::producer(&kafka);
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
        side_writes::ensure_topic(&producer_config, &config.dead_letter_topic, &consumer).await?;
        consumer.subscribe(&[&kafka.topic])?;

        let queue = Queue::from_config(&config.remote_write, metrics.remote_write.clone())
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
            measures: config.measures(),
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

    pub(super) async fn run_loop(
        &mut self,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), ExportError> {
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
                    let unsealed = self
                        .owned
                        .values()
                        .filter(|owned| !owned.at_end || owned.archive.is_open())
                        .count();
                    self.metrics.archive_unsealed_partitions.set(unsealed as i64);
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
                    let task = side_writes::dead_letter(
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
        let mut closed_labels = series::ClosedLabels::new(partition, &self.extra_labels);
        for minute in &closed {
            if minute.suppressed {
                continue;
            }
            self.metrics.minutes_closed.inc();
            self.metrics.late_clicks.inc_by(minute.late_clicks);
            self.metrics.invalid_clicks.inc_by(minute.invalid_clicks);
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
                let labels = closed_labels.of(*key);
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
}
