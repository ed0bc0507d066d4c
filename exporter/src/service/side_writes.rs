//! What must become durable besides samples, each retried until it is (the commit waits for
//! them): archive objects, dead letters (and the topic they go to); and the ticks that move a
//! quiet partition's watermark on.

use std::future::Future;
use std::time::{Duration, Instant};

use adclick_admin::ErrorChain;
use adclick_click::now_ms;
use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::task::JoinHandle;

use super::context::Context;
use super::{ExportError, Exporter};
use crate::archive::{self, SealedObject};
use crate::record::{self, Poison};

impl Exporter {
    pub(super) async fn spawn_upload(&mut self, object: SealedObject) {
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
                    tracing::warn!(key = %object.key, error = %ErrorChain(e), "archive upload failed; retrying");
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
    pub(super) fn tick_idle_partitions(&mut self) {
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
}

/// Creates the dead-letter topic (one partition) unless it exists: a poison record must never
/// wait for an operator to create it, and brokers that do not create topics on first write
/// would otherwise hold the partition's commits back forever.
pub(super) async fn ensure_topic(
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
pub(super) fn dead_letter(
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
