//! The replay task: moves spilled clicks into Kafka once the broker answers again, oldest segment
//! first, and tells the click path to produce directly again.
//!
//! Every `replay_interval_ms` it
//! 1. checks the broker (a metadata request) if the click path marked it down — and sooner
//!    than the interval right after the click path marked it down (see [`FIRST_RECHECK`]);
//! 2. seals the active spill segment and takes the sealed ones;
//! 3. hands each segment's records to librdkafka, in order (no per-click bound: no user waits);
//! 4. seals again what the click path spilled meanwhile and hands it over too; then, in a last
//!    pass, seals once more and *holds* the clicks that would be spilled behind it (at most
//!    `HOLD_MAX`) until it has handed that over: the spill's writer then marks the broker up and
//!    hands the held clicks back to be produced directly — so that clicks produced directly queue
//!    in librdkafka behind every click the spill held (`crate::spill`, "the order of an
//!    impression's records"). Without the hold, at thousands of clicks a second, a pass would
//!    never find the spill empty and the broker would never be marked up. A pass that finds nothing
//!    new goes to the last pass at once (whose hold then lasts one message to the spill's writer);
//! 5. deletes each segment once librdkafka acknowledged every record of it.
//!
//! A segment whose replay fails or times out is kept and replayed whole next time; records that
//! had been acknowledged reach Kafka twice, flagged `Replayed` (see `spill`). On start, whatever
//! the previous process left in the spill is replayed the same way.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::delivery::Pending;
use crate::metrics::Metrics;
use crate::produce::Producer;
use crate::spill::{MarkUp, Segment, Spill, read_segment};

/// Passes over the spill before the last one, which holds the clicks that would be spilled
/// behind it: most of what the spill holds goes in the first, the clicks spilled meanwhile in the
/// second.
const FREE_PASSES: usize = 2;
/// The most the last pass holds clicks for; past it they are written to the spill after all and
/// the broker stays marked down until the next round.
const HOLD_MAX: Duration = Duration::from_millis(500);
/// How long handing a record to librdkafka waits for room in its queue.
const ROOM_WAIT: Duration = Duration::from_secs(5);
/// How long a metadata probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// How soon after the click path marked the broker down the replay first looks again. One
/// acknowledgement later than the bound (a broker's hiccup, its first write to a partition) is
/// not an outage: looking again only after a whole interval would send a second of clicks to the
/// spill for it. While the broker stays down, the looks back off, doubling up to the interval,
/// so a broker that keeps missing the bound is not tried on live clicks ten times a second.
pub const FIRST_RECHECK: Duration = Duration::from_millis(100);

/// How the replay runs.
#[derive(Debug, Clone, Copy)]
pub struct ReplayOptions {
    pub interval: Duration,
    /// Most time for one segment before it is given up on until the next round.
    pub segment_timeout: Duration,
}

/// Runs until `stop` is cancelled.
pub async fn run(
    spill: Spill,
    producer: Producer,
    metrics: Metrics,
    options: ReplayOptions,
    stop: CancellationToken,
) {
    let first_recheck = FIRST_RECHECK.min(options.interval);
    let mut recheck = first_recheck;
    loop {
        // The first round runs at once: a restart replays what the last process left.
        replay_round(&spill, &producer, &metrics, &options, &stop).await;
        let wait = if producer.broker_up() {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(options.interval) => {
                    // Up for a whole interval: the next miss is looked at quickly again.
                    recheck = first_recheck;
                    continue;
                }
                () = producer.marked_down() => recheck,
            }
        } else {
            recheck
        };
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        recheck = recheck.saturating_mul(2).min(options.interval);
    }
}

/// One round: probe; then hand every sealed segment's records to librdkafka, sealing again what
/// the click path spilled meanwhile, until the spill's writer finds nothing new and marks the
/// broker up; then wait for the acknowledgements and delete each segment acknowledged whole.
pub async fn replay_round(
    spill: &Spill,
    producer: &Producer,
    metrics: &Metrics,
    options: &ReplayOptions,
    stop: &CancellationToken,
) {
    if spill.records() == 0 && producer.broker_up() {
        return;
    }
    if !producer.broker_up() && !producer.probe(PROBE_TIMEOUT).await {
        return;
    }
    let mut handed: Vec<(Segment, Vec<Pending>)> = Vec::new();
    // The highest segment id handed to librdkafka this round.
    let mut taken = 0;
    // Passes that let clicks keep being spilled meanwhile: the bulk of what the spill holds.
    let mut failed = false;
    for _ in 0..FREE_PASSES {
        let segments = match spill.seal().await {
            Ok(segments) => segments,
            Err(error) => {
                tracing::warn!(%error, "cannot seal the spill for replay");
                return;
            }
        };
        if segments.iter().all(|s| s.id <= taken) {
            break;
        }
        let pass = tokio::select! {
            () = stop.cancelled() => return,
            result = tokio::time::timeout(
                options.segment_timeout,
                hand_over(producer, segments, &mut taken, &mut handed),
            ) => result,
        };
        if !handed_over(pass) {
            failed = true;
            break;
        }
    }
    if !failed {
        // The last pass: clicks that would be spilled behind it wait until what it took is
        // handed over (at most HOLD_MAX), then go to Kafka directly, behind it.
        match spill.seal_and_hold().await {
            Ok(segments) => {
                let pass = tokio::time::timeout(
                    HOLD_MAX,
                    hand_over(producer, segments, &mut taken, &mut handed),
                )
                .await;
                let up = producer.clone();
                let mark_up: Option<MarkUp> = if handed_over(pass) {
                    Some(Box::new(move || up.mark_up()))
                } else {
                    None
                };
                if let Err(error) = spill.release(mark_up).await {
                    tracing::warn!(%error, "cannot release the clicks held by the spill's replay");
                }
            }
            Err(error) => tracing::warn!(%error, "cannot seal the spill for replay"),
        }
    }
    // What was handed over is acknowledged (or not) whatever happened after.
    for (segment, deliveries) in handed {
        let acknowledged = tokio::select! {
            () = stop.cancelled() => return,
            result = tokio::time::timeout(options.segment_timeout, acknowledged(deliveries)) => result,
        };
        match acknowledged {
            Ok(Ok(records)) => {
                metrics.replayed.inc_by(records);
                if let Err(error) = spill.remove(segment.id).await {
                    tracing::error!(%error, segment = %segment.path.display(), "replayed segment not removed; it will be replayed again");
                    return;
                }
                tracing::info!(records, segment = %segment.path.display(), "replayed spill segment into Kafka");
            }
            Ok(Err(error)) => {
                tracing::warn!(%error, segment = %segment.path.display(), "spill replay failed; retrying later");
                return;
            }
            Err(_) => {
                tracing::warn!(segment = %segment.path.display(), "spill replay timed out; retrying later");
                return;
            }
        }
    }
}

/// Hands the segments of `segments` newer than `taken` to librdkafka, oldest first, into `handed`.
async fn hand_over(
    producer: &Producer,
    segments: Vec<Segment>,
    taken: &mut u64,
    handed: &mut Vec<(Segment, Vec<Pending>)>,
) -> Result<(), String> {
    let after = *taken;
    for segment in segments.into_iter().filter(|s| s.id > after) {
        let deliveries = hand_segment(producer, &segment, ROOM_WAIT).await?;
        *taken = segment.id;
        handed.push((segment, deliveries));
    }
    Ok(())
}

/// Whether a pass handed everything over; says why not otherwise.
fn handed_over(pass: Result<Result<(), String>, tokio::time::error::Elapsed>) -> bool {
    match pass {
        Ok(Ok(())) => true,
        Ok(Err(error)) => {
            tracing::warn!(%error, "spill replay failed; retrying later");
            false
        }
        Err(_) => {
            tracing::warn!("spill replay timed out handing records to librdkafka; retrying later");
            false
        }
    }
}

/// Hands every record of `segment` to librdkafka, in order; their delivery reports.
async fn hand_segment(
    producer: &Producer,
    segment: &Segment,
    room_wait: Duration,
) -> Result<Vec<Pending>, String> {
    let path = segment.path.clone();
    let records = tokio::task::spawn_blocking(move || read_segment(&path))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("reading {}: {e}", segment.path.display()))?;
    let mut deliveries = Vec::with_capacity(records.len());
    for record in &records {
        let delivery = producer
            .enqueue(&record.key, &record.value, room_wait)
            .await
            .map_err(|e| format!("{}: {e}", segment.path.display()))?;
        deliveries.push(delivery);
    }
    Ok(deliveries)
}

/// Waits for every delivery report; the number acknowledged, or the first error.
async fn acknowledged(deliveries: Vec<Pending>) -> Result<u64, String> {
    let count = deliveries.len() as u64;
    for delivery in deliveries {
        delivery.await.map_err(|e| e.to_string())?;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Instant;

    use prometheus_client::registry::Registry;
    use rdkafka::mocking::MockCluster;

    use super::*;
    use crate::KafkaSettings;
    use crate::produce::NotAcked;
    use crate::spill::Appended;

    /// librdkafka's mock cluster with a topic `clicks` of `partitions`, and a producer to it with
    /// `bound`, connected.
    async fn mock_producer(
        partitions: i32,
        bound: Duration,
    ) -> (
        MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
        Producer,
        Metrics,
    ) {
        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic("clicks", partitions, 1).unwrap();
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

    /// Clicks keep coming while the replay empties the spill and the broker is marked up: every
    /// click reaches Kafka in the order it came, spilled ones included. A replay that marked the
    /// broker up before the clicks spilled during its last pass were handed to librdkafka would
    /// put them behind the clicks produced directly after (the exporter then takes a repeat for
    /// an impression's first click: click.proto's rule (c)).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn clicks_reach_kafka_in_their_order_across_the_switch_from_spill_to_direct() {
        use rdkafka::Message as _;
        use rdkafka::consumer::{BaseConsumer, Consumer as _};
        use rdkafka::{Offset, TopicPartitionList};

        let (cluster, producer, metrics) = mock_producer(1, Duration::from_millis(500)).await;
        let dir = tempfile::tempdir().unwrap();
        // Small segments: the replay hands several over, and more are sealed while it does.
        let (spill, _) = Spill::open(dir.path(), 1 << 20, 64, metrics.clone()).unwrap();
        producer.hold_for_spill();
        // Eight visitors click one after another as fast as the spill answers, each with a
        // sequence of its own (its id in the top byte): Kafka must hold each one's in order.
        const VISITORS: u64 = 8;
        let value = |visitor: u64, seq: u64| ((visitor << 56) | seq).to_be_bytes();
        for seq in 0..100 {
            let appended = spill
                .append_while_down(b"1", &value(0, seq), producer.up_flag())
                .await
                .unwrap();
            assert_eq!(appended, Appended::Written);
        }
        // Acknowledgements take a while, so clicks keep being spilled while the replay runs.
        cluster
            .broker_round_trip_time(1, Duration::from_millis(30))
            .unwrap();
        let visitors: Vec<_> = (0..VISITORS)
            .map(|visitor| {
                let (spill, producer) = (spill.clone(), producer.clone());
                tokio::spawn(async move {
                    let mut seq = if visitor == 0 { 100 } else { 0 };
                    let mut spilled_meanwhile = 0;
                    loop {
                        let appended = spill
                            .append_while_down(b"1", &value(visitor, seq), producer.up_flag())
                            .await
                            .unwrap();
                        if appended == Appended::BrokerUp {
                            break;
                        }
                        spilled_meanwhile += 1;
                        seq += 1;
                    }
                    // The click handed back and those after it go to Kafka directly.
                    for _ in 0..20 {
                        producer
                            .produce_within_bound("1", &value(visitor, seq))
                            .await
                            .unwrap();
                        seq += 1;
                    }
                    (spilled_meanwhile, seq)
                })
            })
            .collect();
        let options = ReplayOptions {
            interval: Duration::from_secs(1),
            segment_timeout: Duration::from_secs(30),
        };
        let stop = CancellationToken::new();
        tokio::time::sleep(Duration::from_millis(20)).await;
        replay_round(&spill, &producer, &metrics, &options, &stop).await;
        assert!(producer.broker_up());
        let mut sent = Vec::new();
        let mut spilled_meanwhile = 0;
        for visitor in visitors {
            let (spilled, seqs) = visitor.await.unwrap();
            spilled_meanwhile += spilled;
            sent.push(seqs);
        }
        assert!(
            spilled_meanwhile > 0,
            "no click was spilled while the replay ran: the test shows nothing"
        );

        let consumer: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", cluster.bootstrap_servers())
            .set("group.id", "order")
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("clicks", 0, Offset::Beginning)
            .unwrap();
        consumer.assign(&tpl).unwrap();
        let total: u64 = sent.iter().sum();
        let mut seen = vec![Vec::new(); VISITORS as usize];
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut read = 0;
        while read < total && Instant::now() < deadline {
            if let Some(message) = consumer.poll(Duration::from_millis(100)) {
                let value = message.unwrap().payload().unwrap().to_vec();
                let value = u64::from_be_bytes(value.try_into().unwrap());
                seen[(value >> 56) as usize].push(value & ((1 << 56) - 1));
                read += 1;
            }
        }
        for (visitor, seqs) in seen.iter().enumerate() {
            let expected: Vec<u64> = (0..sent[visitor]).collect();
            assert_eq!(
                seqs, &expected,
                "visitor {visitor}'s clicks in Kafka, in order"
            );
        }
        assert_eq!(spill.records(), 0, "the spill is empty");
    }

    /// A broker that misses the bound once (librdkafka's mock cluster with a 300 ms round trip)
    /// and is fast again right after is produced to directly again long before the interval:
    /// a hiccup must not send an interval's worth of clicks to the spill.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_hiccup_is_not_an_outage_the_broker_is_used_again_long_before_the_interval() {
        let (cluster, producer, metrics) = mock_producer(2, Duration::from_millis(50)).await;
        let dir = tempfile::tempdir().unwrap();
        let (spill, _) = Spill::open(dir.path(), 1 << 20, 1 << 16, metrics.clone()).unwrap();
        let interval = Duration::from_secs(30);
        let options = ReplayOptions {
            interval,
            segment_timeout: Duration::from_secs(60),
        };
        let stop = CancellationToken::new();
        let replay = tokio::spawn(run(spill, producer.clone(), metrics, options, stop.clone()));
        // Let the first round (at once, nothing to do) pass, so the loop waits for the interval.
        tokio::time::sleep(Duration::from_millis(200)).await;

        cluster
            .broker_round_trip_time(1, Duration::from_millis(300))
            .unwrap();
        assert_eq!(
            producer.produce_within_bound("1", b"x").await,
            Err(NotAcked::Timeout)
        );
        assert!(!producer.broker_up());
        cluster.broker_round_trip_time(1, Duration::ZERO).unwrap();
        let marked_down = Instant::now();
        while !producer.broker_up() {
            assert!(
                marked_down.elapsed() < interval / 2,
                "the broker was not used again within half the replay interval"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop.cancel();
        replay.await.unwrap();
    }
}
