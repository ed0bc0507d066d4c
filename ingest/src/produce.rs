//! Producing clicks to Kafka: an idempotent librdkafka producer (`acks=all`), keyed by ad id with
//! salted keys for hot ads, and the broker's health as the click path sees it.
//!
//! A click waits for its delivery report at most `produce_timeout_ms` of Kafka's time — time its
//! report spent waiting in ingest's own backlog is not counted, up to a limit (`crate::bound`).
//! When the report does not come in time the click goes to the spill instead. When, besides, no
//! click has had its report in time for as long as the bound — the broker is silent, not one
//! click late — the broker is marked down: following clicks go straight to the spill, without a
//! produce attempt, until the replay task reaches the broker again and marks it up. This keeps
//! redirects fast during an outage and keeps librdkafka's queue from filling with clicks that the
//! spill holds anyway. The broker is marked up while the spill still holds clicks: a click of an
//! impression the spill holds a record of still goes to the spill, behind it (`crate::spill`,
//! "the order of an impression's records").
//!
//! One late click alone does not mark the broker down because ingest's own runtime makes clicks
//! late too: while it is behind (a burst, a busy core), a report that came in time waits in its
//! queue with the click's task, and a click here and there misses the bound while the others are
//! acknowledged in time. Marking the broker down for it sent every following click to the spill
//! until the replay's probe, which costs more CPU per click than producing, and more clicks then
//! missed: at 10,000 clicks/s on one shared core (1,000 in flight) 2 to 84 % of the clicks went
//! to the spill, with this rule at most 0.8 % (BENCHMARKS.md, "a late click is not an outage").
//! A partition whose leader is slow while the others answer is such a case too: its clicks each
//! wait the bound and are spilled, and the others are produced directly.
//!
//! A produce that missed the bound is NOT cancelled: librdkafka keeps retrying it and may deliver
//! it later ("possibly persisted"). Its spilled copy is then a second record of the same
//! impression. That is accepted because the spilled copy carries `ClickFlag::Replayed` and the
//! exporter and rollup keep one record per impression id.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use adclick_click::KafkaSettings;
use adclick_click::wire::{Click, kafka_key, salt};
use rdkafka::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, Producer as _};
use tokio::sync::Notify;

use crate::Error;
use crate::bound::within_bound;
use crate::delivery::{CreateError, Kafka, Pending};
use crate::metrics::Metrics;

/// Why a click was not acknowledged within the bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotAcked {
    /// No delivery report within the bound.
    Timeout,
    /// librdkafka refused or failed the record (queue full, broker error, …).
    Error,
}

impl NotAcked {
    pub fn reason(self) -> &'static str {
        match self {
            NotAcked::Timeout => "timeout",
            NotAcked::Error => "error",
        }
    }
}

/// The clicks producer; clones share one librdkafka client.
#[derive(Clone)]
pub struct Producer {
    inner: Arc<Kafka>,
    topic: Arc<str>,
    hot_ads: Arc<HashMap<u64, u32>>,
    timeout: Duration,
    broker_up: Arc<AtomicBool>,
    /// When a click last had its delivery report within the bound, µs after `epoch` (0: never).
    last_in_time_us: Arc<AtomicU64>,
    epoch: Instant,
    /// Signalled when the click path marks the broker down, for the replay task to look soon.
    marked_down: Arc<Notify>,
    metrics: Metrics,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("topic", &self.topic)
            .field("broker_up", &self.broker_up())
            .finish_non_exhaustive()
    }
}

impl Producer {
    /// A producer for `kafka`; connects lazily, so an unreachable broker is not an error here.
    pub fn new(
        kafka: &KafkaSettings,
        hot_ads: HashMap<u64, u32>,
        timeout: Duration,
        metrics: Metrics,
    ) -> Result<Producer, Error> {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &kafka.brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            // Java's partitioner (murmur2 of the key), as click.proto says: a third-party
            // producer's records of one key land where ours do. librdkafka's own default
            // (consistent_random, CRC32) would put the same key in another partition.
            .set("partitioner", "murmur2_random")
            // 3 ms, shorter than librdkafka's default (5 ms): every redirect waits for its
            // click's ack, so the linger is paid by each visitor; a shorter one means more,
            // smaller ProduceRequests (one per partition) and more CPU per click. The figures of
            // that trade-off are in ingest's README and BENCHMARKS.md.
            .set("linger.ms", "3")
            .set("client.id", "adclick-ingest");
        for (k, v) in &kafka.properties {
            config.set(k, v);
        }
        let inner = Kafka::create(&config).map_err(|e| match e {
            CreateError::Kafka(e) => Error::Kafka(e),
            CreateError::Signal(e) => Error::ProducerSignal(e),
        })?;
        metrics.broker_up.set(1);
        Ok(Producer {
            inner,
            topic: kafka.topic.as_str().into(),
            hot_ads: Arc::new(hot_ads),
            timeout,
            broker_up: Arc::new(AtomicBool::new(true)),
            last_in_time_us: Arc::new(AtomicU64::new(0)),
            epoch: Instant::now(),
            marked_down: Arc::new(Notify::new()),
            metrics,
        })
    }

    /// The record key of `click`: its ad id, salted from the impression id for a hot ad, so every
    /// record of one impression lands on one partition.
    pub fn key(&self, click: &Click) -> String {
        let shards = self.hot_ads.get(&click.ad_id).copied();
        kafka_key(click.ad_id, shards.map(|n| salt(&click.impression_id, n)))
    }

    /// Waits at most `timeout` until the broker answers a metadata request for the topic, so the
    /// first clicks do not pay for the connection and miss the bound (the broker's first write to
    /// a partition may still miss it: the replay task looks again soon, see `replay`). False when
    /// the broker did not answer: ingest serves anyway, spilling.
    pub async fn warm_up(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            if self.probe(left.min(Duration::from_millis(500))).await {
                return true;
            }
        }
    }

    /// Hands one record to librdkafka; its delivery report to come.
    fn send(&self, key: &[u8], value: &[u8]) -> Result<Pending, KafkaError> {
        let (done, report) = Pending::new();
        let record = BaseRecord::with_opaque_to(&self.topic, done)
            .key(key)
            .payload(value);
        self.inner
            .producer()
            .send(record)
            .map(|()| report)
            .map_err(|(e, _)| e)
    }

    /// Produces one record and waits for its delivery report at most the configured bound.
    pub async fn produce_within_bound(&self, key: &str, value: &[u8]) -> Result<(), NotAcked> {
        let started = Instant::now();
        let delivery = match self.send(key.as_bytes(), value) {
            Ok(delivery) => delivery,
            Err(e) => return Err(self.failed(NotAcked::Error, &e)),
        };
        // The bound is Kafka's time: a report that came in time but waited in ingest's own
        // backlog for the task that serves reports is in time (`crate::bound`).
        match within_bound(self.timeout, delivery).await {
            Some(Ok(())) => {
                let now = Instant::now();
                self.last_in_time_us
                    .store(self.micros_since_epoch(now), Ordering::Relaxed);
                self.metrics
                    .produce_seconds
                    .observe(now.duration_since(started).as_secs_f64());
                Ok(())
            }
            Some(Err(e)) => Err(self.failed(NotAcked::Error, &e)),
            None => Err(self.failed(
                NotAcked::Timeout,
                &KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut),
            )),
        }
    }

    /// Whether some click had its report within the bound during the last bound: a click that
    /// missed it then was late alone, the broker is not silent.
    fn others_in_time(&self) -> bool {
        let last = self.last_in_time_us.load(Ordering::Relaxed);
        let silent_for = self.micros_since_epoch(Instant::now()).saturating_sub(last);
        last != 0 && u128::from(silent_for) < self.timeout.as_micros()
    }

    /// `at` in µs after the producer was made, at least 1 (0 means never).
    fn micros_since_epoch(&self, at: Instant) -> u64 {
        u64::try_from(at.duration_since(self.epoch).as_micros())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    /// Hands one record to librdkafka, behind every record handed to it before (per partition),
    /// and returns its delivery report, which comes as long as librdkafka tries
    /// (`message.timeout.ms`); for the replay, which has no user waiting. Waits for room while
    /// librdkafka's queue is full, at most `room_wait`.
    pub async fn enqueue(
        &self,
        key: &[u8],
        value: &[u8],
        room_wait: Duration,
    ) -> Result<Pending, KafkaError> {
        let deadline = Instant::now() + room_wait;
        loop {
            match self.send(key, value) {
                Ok(delivery) => return Ok(delivery),
                Err(KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull))
                    if Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Counts a click Kafka did not take, and marks the broker down — unless the click was late
    /// alone (module doc): then only this click is spilled.
    fn failed(&self, kind: NotAcked, error: &KafkaError) -> NotAcked {
        Metrics::count(&self.metrics.produce_errors, kind.reason());
        if kind == NotAcked::Timeout && self.others_in_time() {
            return kind;
        }
        if self.broker_up.swap(false, Ordering::Relaxed) {
            tracing::warn!(%error, bound_ms = self.timeout.as_millis() as u64, "Kafka acknowledged no click within the bound; spilling clicks until it does");
            self.marked_down.notify_one();
        }
        self.metrics.broker_up.set(0);
        kind
    }

    /// Whether clicks are produced directly (else they go to the spill).
    pub fn broker_up(&self) -> bool {
        self.broker_up.load(Ordering::Relaxed)
    }

    /// Completes when the click path marks the broker down (at once if it did since the last
    /// call).
    pub async fn marked_down(&self) {
        self.marked_down.notified().await;
    }

    /// The replay reached the broker: produce directly again (but the clicks that must wait behind
    /// the spill's records: `crate::handler::make_durable`).
    pub fn mark_up(&self) {
        if !self.broker_up.swap(true, Ordering::SeqCst) {
            tracing::info!("Kafka acknowledges again; producing clicks directly");
        }
        self.metrics.broker_up.set(1);
    }

    /// Whether the broker answers a metadata request for the topic within `timeout`.
    pub async fn probe(&self, timeout: Duration) -> bool {
        let producer = self.inner.clone();
        let topic = self.topic.clone();
        tokio::task::spawn_blocking(move || {
            producer
                .producer()
                .client()
                .fetch_metadata(Some(&topic), timeout)
                .is_ok_and(|m| {
                    m.topics()
                        .iter()
                        .any(|t| t.error().is_none() && !t.partitions().is_empty())
                })
        })
        .await
        .unwrap_or(false)
    }

    /// Waits for every queued record's delivery, at most `timeout`.
    pub async fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        let producer = self.inner.clone();
        tokio::task::spawn_blocking(move || producer.producer().flush(timeout))
            .await
            .unwrap_or(Err(KafkaError::Canceled))
    }

    /// Records librdkafka still holds (queued or in flight).
    pub fn in_flight(&self) -> i32 {
        self.inner.producer().in_flight_count()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use prometheus_client::registry::Registry;
    use rdkafka::mocking::MockCluster;

    /// librdkafka's mock cluster of `brokers` with a topic `clicks` of `partitions` (partition
    /// p led by broker p % brokers + 1), and a producer to it with `bound`, connected.
    pub(crate) async fn mock_producer(
        brokers: i32,
        partitions: i32,
        bound: Duration,
    ) -> (
        MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
        Producer,
        Metrics,
    ) {
        let cluster = MockCluster::new(brokers).unwrap();
        cluster.create_topic("clicks", partitions, 1).unwrap();
        for partition in 0..partitions {
            cluster
                .partition_leader("clicks", partition, Some(partition % brokers + 1))
                .unwrap();
        }
        let metrics = Metrics::new(&mut Registry::default());
        let kafka = KafkaSettings {
            brokers: cluster.bootstrap_servers(),
            topic: "clicks".into(),
            properties: vec![],
        };
        let producer = Producer::new(&kafka, HashMap::new(), bound, metrics.clone()).unwrap();
        assert!(producer.warm_up(Duration::from_secs(10)).await);
        (cluster, producer, metrics)
    }

    /// Produces one record keyed `key` without a bound, so that the producer is connected to its
    /// partition's leader: a loaded machine's first connection is not what a bound test is about.
    async fn connect_to_leader_of(producer: &Producer, key: &str) {
        let report = producer.enqueue(key.as_bytes(), b"warm", Duration::from_secs(5));
        assert_eq!(report.await.unwrap().await, Ok(()));
    }

    fn producer(hot: HashMap<u64, u32>) -> Producer {
        let kafka = KafkaSettings {
            brokers: "127.0.0.1:1".into(),
            topic: "t".into(),
            properties: vec![],
        };
        Producer::new(
            &kafka,
            hot,
            Duration::from_millis(20),
            Metrics::new(&mut Registry::default()),
        )
        .unwrap()
    }

    fn click(ad_id: u64, first: u8) -> Click {
        Click {
            impression_id: vec![first; 16],
            ad_id,
            campaign_id: 1,
            advertiser_id: 1,
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn hot_ads_get_salted_keys_that_depend_on_the_impression_only() {
        let p = producer(HashMap::from([(7, 4)]));
        assert_eq!(p.key(&click(8, 1)), "8");
        let key = p.key(&click(7, 1));
        assert_eq!(key, format!("7:{}", salt(&[1; 16], 4)));
        assert_eq!(p.key(&click(7, 1)), key);
        let salts: std::collections::BTreeSet<String> =
            (0..=255).map(|b| p.key(&click(7, b))).collect();
        assert_eq!(salts.len(), 4);
    }

    #[tokio::test]
    async fn an_unreachable_broker_misses_the_bound_and_is_marked_down() {
        let p = producer(HashMap::new());
        assert!(p.broker_up());
        let started = Instant::now();
        assert_eq!(
            p.produce_within_bound("1", b"x").await,
            Err(NotAcked::Timeout)
        );
        assert!(started.elapsed() < Duration::from_secs(1));
        assert!(!p.broker_up());
        assert!(!p.probe(Duration::from_millis(200)).await);
        p.mark_up();
        assert!(p.broker_up());
    }

    /// A click late alone — its partition's leader slow while the other's acknowledges clicks in
    /// time — is not an outage: the broker stays up. Once no click has been acknowledged in time
    /// for the bound, a late click marks it down.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_click_late_alone_leaves_the_broker_up_a_silent_broker_is_marked_down() {
        use adclick_loadgen::partition::partition_of;
        let bound = Duration::from_millis(500);
        let slow = Duration::from_secs(3);
        let (cluster, producer, _metrics) = mock_producer(2, 2, bound).await;
        let key_led_by = |broker: u32| {
            (1..)
                .map(|ad: u64| ad.to_string())
                .find(|key| partition_of(key.as_bytes(), 2) + 1 == broker)
                .unwrap()
        };
        let (slow_key, fast_key) = (key_led_by(1), key_led_by(2));
        for key in [&slow_key, &fast_key] {
            connect_to_leader_of(&producer, key).await;
        }
        cluster.broker_round_trip_time(1, slow).unwrap();
        let late = tokio::spawn({
            let producer = producer.clone();
            async move { producer.produce_within_bound(&slow_key, b"late").await }
        });
        let until = Instant::now() + bound * 2;
        while Instant::now() < until {
            assert_eq!(producer.produce_within_bound(&fast_key, b"x").await, Ok(()));
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(late.await.unwrap(), Err(NotAcked::Timeout));
        assert!(
            producer.broker_up(),
            "one late click marked the broker down"
        );

        // Both leaders slow: nothing in time for the bound, and the next late click is an outage.
        cluster.broker_round_trip_time(2, slow).unwrap();
        assert_eq!(
            producer.produce_within_bound(&fast_key, b"y").await,
            Err(NotAcked::Timeout)
        );
        assert!(!producer.broker_up());
    }

    /// A click whose wait ingest's own runtime ran late is not failed for it: its report gets as
    /// long again as the wait was late (`crate::bound`), and is in time within that.
    #[tokio::test]
    async fn a_wait_ingest_ran_late_gives_the_report_as_long_again() {
        let bound = Duration::from_millis(20);
        let (cluster, producer, _metrics) = mock_producer(1, 1, bound).await;
        connect_to_leader_of(&producer, "1").await;
        // The report comes 120 ms after the send; the runtime (this test's one thread) is held
        // up until 100 ms, so the wait's turn runs 80 ms late and the report gets until 180.
        cluster
            .broker_round_trip_time(1, Duration::from_millis(120))
            .unwrap();
        let click = tokio::spawn({
            let producer = producer.clone();
            async move { producer.produce_within_bound("1", b"x").await }
        });
        tokio::task::yield_now().await;
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(click.await.unwrap(), Ok(()));
        assert!(producer.broker_up());
    }

    #[test]
    fn unknown_properties_are_a_config_error() {
        let kafka = KafkaSettings {
            brokers: "127.0.0.1:1".into(),
            topic: "t".into(),
            properties: vec![("no.such.property".into(), "1".into())],
        };
        let err = Producer::new(
            &kafka,
            HashMap::new(),
            Duration::from_millis(20),
            Metrics::new(&mut Registry::default()),
        )
        .unwrap_err();
        assert!(matches!(err, Error::Kafka(_)), "{err:?}");
        let cause = std::error::Error::source(&err).expect("librdkafka's error kept as the source");
        assert!(cause.to_string().contains("no.such.property"), "{cause}");
    }
}
