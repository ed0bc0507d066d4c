//! The Kafka target: each send is a `Click` record (click.proto) produced straight into the
//! clicks topic, as ingest would write it, to drive the exporter at rates HTTP cannot reach here.
//!
//! Ingest drops repeat impressions in Redis; what reaches Kafka twice is what slipped through
//! when Redis was unreachable. So every impression the plan repeats is written with the
//! DEDUP_UNCHECKED flag, both times, as fail-open ingest would. Forged and expired tokens never
//! reach Kafka, so this target refuses plans that contain them.
//!
//! Records are partitioned as ingest's are, by librdkafka's `murmur2_random` (Java Kafka's murmur2
//! of the key): the partition the truth gives a click (`partition`) is the one it lands on.

use std::collections::HashMap;
use std::time::Duration;

use adclick_click::wire::{Click, ClickFlag, kafka_key, salt};
use prost::Message;
use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::plan::{Send, SendKind};
use crate::truth::Outcome;

/// Why a topic's partition count is not known.
#[derive(Debug, thiserror::Error)]
pub enum PartitionCountError {
    #[error(transparent)]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("topic {0} does not exist or has no partitions")]
    NoTopic(String),
}

/// Where and how to produce.
pub struct KafkaTarget {
    producer: FutureProducer,
    topic: String,
    /// Hot ad → number of salted keys its clicks spread over.
    hot_salts: HashMap<u64, u32>,
    delivery_timeout: Duration,
}

impl KafkaTarget {
    /// An idempotent producer (acks=all) on `brokers`; `properties` are passed to librdkafka.
    pub fn new(
        brokers: &str,
        topic: &str,
        properties: &[(String, String)],
        hot_salts: HashMap<u64, u32>,
    ) -> Result<KafkaTarget, rdkafka::error::KafkaError> {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            // Java's partitioner (murmur2 of the key), as click.proto says: a third-party
            // producer's records of one key land where ours do. librdkafka's own default
            // (consistent_random, CRC32) would put the same key in another partition.
            .set("partitioner", "murmur2_random")
            .set("linger.ms", "5")
            .set("compression.type", "lz4")
            .set("partitioner", "murmur2_random");
        for (k, v) in properties {
            config.set(k, v);
        }
        Ok(KafkaTarget {
            producer: config.create()?,
            topic: topic.to_string(),
            hot_salts,
            delivery_timeout: Duration::from_secs(60),
        })
    }

    /// The record of a send.
    pub fn click(send: &Send, receive_time_ms: i64) -> Click {
        let mut click = Click {
            impression_id: send.impression_id.to_vec(),
            ad_id: send.ad.ad_id,
            campaign_id: send.ad.campaign_id,
            advertiser_id: send.ad.advertiser_id,
            event_time_ms: send.event_time_ms,
            receive_time_ms,
            user_hash: send.user_hash,
            flags: 0,
            price_micros: send.price_micros.unwrap_or(0),
            // A producer writing to the topic itself classifies nothing: every click is valid.
            ..Click::default()
        };
        click.set_flag(ClickFlag::Synthetic);
        if send.kind == SendKind::Duplicate || send.duplicated_later {
            click.set_flag(ClickFlag::DedupUnchecked);
        }
        click
    }

    pub async fn send(&self, send: &Send) -> Outcome {
        if !matches!(send.kind, SendKind::Click | SendKind::Duplicate) {
            return Outcome::Wrong(format!("{:?} cannot be written to Kafka", send.kind));
        }
        let click = Self::click(send, adclick_click::now_ms());
        let shards = self.hot_salts.get(&send.ad.ad_id).copied();
        let key = kafka_key(send.ad.ad_id, shards.map(|n| salt(&send.impression_id, n)));
        let payload = click.encode_to_vec();
        let record = FutureRecord::to(&self.topic).key(&key).payload(&payload);
        match self.producer.send(record, self.delivery_timeout).await {
            Ok(_) => Outcome::Accepted,
            Err((e, _)) => Outcome::Failed(e.to_string()),
        }
    }

    /// The partition count of `topic` on `brokers`, from the cluster's metadata (`properties` as
    /// for [`KafkaTarget::new`]): which partition a click lands on depends on it.
    pub fn partition_count(
        brokers: &str,
        topic: &str,
        properties: &[(String, String)],
        timeout: Duration,
    ) -> Result<u32, PartitionCountError> {
        use rdkafka::producer::{BaseProducer, Producer};
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", brokers);
        for (k, v) in properties {
            config.set(k, v);
        }
        let producer: BaseProducer = config.create()?;
        let metadata = producer.client().fetch_metadata(Some(topic), timeout)?;
        let partitions = metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic && t.error().is_none())
            .map_or(0, |t| t.partitions().len());
        match u32::try_from(partitions) {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(PartitionCountError::NoTopic(topic.to_string())),
        }
    }

    /// Waits until every produced record is acknowledged.
    pub fn flush(&self, timeout: Duration) -> Result<(), rdkafka::error::KafkaError> {
        use rdkafka::producer::Producer;
        self.producer.flush(timeout)
    }
}
