//! librdkafka's callbacks for the exporter's consumer: rebalances, queued for the loop (which
//! runs them in order with the records), and statistics (consumer lag per partition).

use std::sync::Mutex;

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::TopicPartitionList;

use crate::metrics::{Metrics, PartitionLabels};

#[derive(Debug)]
pub(super) enum RebalanceEvent {
    Assigned(Vec<i32>),
    Revoked(Vec<i32>),
}

/// The consumer's context: what its callbacks need.
pub(super) struct Context {
    pub(super) topic: String,
    pub(super) events: Mutex<Vec<RebalanceEvent>>,
    pub(super) metrics: Metrics,
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
