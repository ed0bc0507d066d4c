//! The settings of the exporter's Kafka clients: adclick's own, then `[kafka.properties]`
//! (TLS, SASL, tuning) over them.

use adclick_click::KafkaSettings;
use rdkafka::ClientConfig;

use crate::config::ExporterConfig;

/// The consumer: offsets committed by the commit cycle only, end of partition reported.
pub(super) fn consumer(kafka: &KafkaSettings, config: &ExporterConfig) -> ClientConfig {
    let mut settings = ClientConfig::new();
    settings
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
        settings.set("group.instance.id", &config.instance_id);
    }
    with_properties(settings, kafka)
}

/// The producer of dead letters and ticks: idempotent, acknowledged by all in-sync replicas.
pub(super) fn producer(kafka: &KafkaSettings) -> ClientConfig {
    let mut settings = ClientConfig::new();
    settings
        .set("bootstrap.servers", &kafka.brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5");
    with_properties(settings, kafka)
}

/// `[kafka.properties]` over a client's own settings: the operator's word wins.
fn with_properties(mut settings: ClientConfig, kafka: &KafkaSettings) -> ClientConfig {
    for (k, v) in &kafka.properties {
        settings.set(k, v);
    }
    settings
}
