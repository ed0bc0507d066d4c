//! The replay task: moves spilled clicks into Kafka once the broker answers again, oldest segment
//! first, and tells the click path to produce directly again.
//!
//! Every `replay_interval_ms` while the spill holds clicks (and sooner right after the click path
//! marked the broker down, see [`FIRST_RECHECK`]) it
//! 1. checks the broker (a metadata request) if the click path marked it down, and marks it up
//!    when it answers: clicks are produced directly again at once, but those of an impression the
//!    spill holds a record of, which wait behind it in the spill (`crate::unreplayed`);
//! 2. seals the active spill segment and takes the sealed ones;
//! 3. hands each segment's records to librdkafka, in order, [`REPLAY_WINDOW`] at a time: it waits
//!    for a window's acknowledgements (no per-click bound: no user waits) before it hands over the
//!    next, so clicks produced directly meanwhile, which wait for their own acknowledgement within
//!    the bound, never queue behind more than a window of replayed records, and the broker keeps
//!    room for live traffic. Once the last window of a segment is handed over it tells the spill
//!    ([`Spill::handed_over`]): librdkafka now keeps those records ahead of every later record of
//!    their partition, so their impressions' clicks may be produced directly;
//! 4. deletes each segment once librdkafka acknowledged every record of it.
//!
//! What the click path spills during a round waits for the next one. A segment whose replay fails
//! or times out is kept and replayed whole next time; records that had been acknowledged reach
//! Kafka twice, flagged `Replayed` (see `spill`). On start, whatever the previous process left in
//! the spill is replayed the same way.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::delivery::Pending;
use crate::metrics::Metrics;
use crate::produce::Producer;
use crate::spill::{Segment, Spill, read_segment};

/// Replayed records handed to librdkafka at most before the replay waits for their
/// acknowledgements. Handing a whole segment at once (16 MiB, ~150,000 clicks) put every click
/// produced directly after it behind that backlog in its partition's queue: they missed the bound,
/// the broker was marked down again and the clicks went back to the spill (BENCHMARKS.md, "the
/// spill's way back to Kafka").
pub const REPLAY_WINDOW: usize = 1_000;
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
    /// Most time to wait for one window's acknowledgements before the segment is given up on
    /// until the next round.
    pub ack_timeout: Duration,
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

/// One round: probe and mark the broker up; then hand every sealed segment's records to librdkafka,
/// wait for the acknowledgements and delete each segment acknowledged whole.
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
    if !producer.broker_up() {
        if !producer.probe(PROBE_TIMEOUT).await {
            return;
        }
        producer.mark_up();
    }
    let segments = match spill.seal().await {
        Ok(segments) => segments,
        Err(error) => {
            tracing::warn!(%error, "cannot seal the spill for replay");
            return;
        }
    };
    for segment in segments {
        let replayed = tokio::select! {
            () = stop.cancelled() => return,
            result = replay_segment(producer, spill, &segment, options.ack_timeout) => result,
        };
        match replayed {
            Ok(records) => {
                metrics.replayed.inc_by(records);
                if let Err(error) = spill.remove(segment.id).await {
                    tracing::error!(%error, segment = %segment.path.display(), "replayed segment not removed; it will be replayed again");
                    return;
                }
                tracing::info!(records, segment = %segment.path.display(), "replayed spill segment into Kafka");
            }
            Err(error) => {
                tracing::warn!(%error, segment = %segment.path.display(), "spill replay failed; retrying later");
                return;
            }
        }
    }
}

/// Hands every record of `segment` to librdkafka, in order, a window at a time, each window once
/// the one before was acknowledged (each within `ack_timeout`); tells the spill once the last
/// window is handed over. The number of records acknowledged, or why not all were.
async fn replay_segment(
    producer: &Producer,
    spill: &Spill,
    segment: &Segment,
    ack_timeout: Duration,
) -> Result<u64, String> {
    let path = segment.path.clone();
    let records = tokio::task::spawn_blocking(move || read_segment(&path))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("reading: {e}"))?;
    let windows = records.chunks(REPLAY_WINDOW);
    let last = windows.len().saturating_sub(1);
    for (i, window) in windows.enumerate() {
        let mut deliveries = Vec::with_capacity(window.len());
        for record in window {
            let delivery = producer
                .enqueue(&record.key, &record.value, ROOM_WAIT)
                .await
                .map_err(|e| e.to_string())?;
            deliveries.push(delivery);
        }
        if i == last {
            spill.handed_over(segment.id);
        }
        tokio::time::timeout(ack_timeout, acknowledged(deliveries))
            .await
            .map_err(|_| format!("no acknowledgement within {ack_timeout:?}"))??;
    }
    if records.is_empty() {
        spill.handed_over(segment.id);
    }
    Ok(records.len() as u64)
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
    use std::time::Instant;

    use super::*;
    use crate::produce::NotAcked;
    use crate::produce::tests::mock_producer;

    /// The switch from the spill back to direct produce keeps each impression's records in
    /// order in Kafka (click.proto's rule (c): the exporter keeps an impression's first record in
    /// its partition) without waiting for an empty spill: once the broker answers, a click of an
    /// impression the spill holds a record of is spilled behind it until the replay handed that
    /// record to librdkafka, and every other click is produced directly at once. Eight visitors
    /// each repeat one impression (dedup failing open), with a sequence number as event time.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_impressions_records_reach_kafka_in_order_across_the_switch_from_spill_to_direct() {
        use adclick_click::wire::Click;
        use prost::Message as _;
        use rdkafka::Message as _;
        use rdkafka::consumer::{BaseConsumer, Consumer as _};
        use rdkafka::{Offset, TopicPartitionList};

        use crate::handler::make_durable;
        use crate::metrics::DurablePath;
        use crate::unreplayed::impression_of_click;

        let (cluster, producer, metrics) = mock_producer(1, 1, Duration::from_millis(200)).await;
        let dir = tempfile::tempdir().unwrap();
        let (spill, _) = Spill::open(
            dir.path(),
            1 << 20,
            1 << 20,
            impression_of_click,
            metrics.clone(),
        )
        .unwrap();
        const VISITORS: u8 = 8;
        let click = |visitor: u8, seq: i64| Click {
            impression_id: vec![visitor; 16],
            ad_id: 1,
            event_time_ms: seq,
            ..Default::default()
        };
        let mut next = [0i64; VISITORS as usize + 1];
        let mut durable = |visitor: u8| {
            let (producer, spill) = (producer.clone(), spill.clone());
            let seq = next[usize::from(visitor)];
            next[usize::from(visitor)] += 1;
            async move {
                make_durable(&producer, &spill, "1", &mut click(visitor, seq))
                    .await
                    .unwrap()
            }
        };
        // The broker misses the bound: visitor 0's first click goes to the spill (its first
        // attempt stays queued in librdkafka) and the broker is marked down.
        cluster
            .broker_round_trip_time(1, Duration::from_millis(400))
            .unwrap();
        assert_eq!(durable(0).await, DurablePath::Spill);
        assert!(!producer.broker_up());
        cluster
            .broker_round_trip_time(1, Duration::from_millis(5))
            .unwrap();
        // While it is down every visitor's clicks go to the spill.
        for _ in 0..3 {
            for visitor in 0..VISITORS {
                assert_eq!(durable(visitor).await, DurablePath::Spill);
            }
        }
        // The replay finds the broker answering and marks it up (as its round does before it
        // hands the spill over): the visitors' next clicks still go to the spill, behind their
        // earlier ones; a new visitor's go to Kafka though the spill holds records.
        assert!(producer.probe(Duration::from_secs(5)).await);
        producer.mark_up();
        for visitor in 0..VISITORS {
            assert_eq!(
                durable(visitor).await,
                DurablePath::Spill,
                "visitor {visitor}'s click overtook its earlier ones in the spill"
            );
        }
        assert_eq!(durable(VISITORS).await, DurablePath::Kafka);
        assert!(spill.records() > 0);
        // Once the replay handed the spill to librdkafka, every visitor goes to Kafka directly,
        // before the replay's records are even acknowledged.
        let options = ReplayOptions {
            interval: Duration::from_secs(1),
            ack_timeout: Duration::from_secs(30),
        };
        let stop = CancellationToken::new();
        let mut hand_over = Box::pin(replay_round(&spill, &producer, &metrics, &options, &stop));
        let until_handed_over = async {
            while spill.unreplayed_impressions() > 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        };
        tokio::select! {
            () = &mut hand_over => {}
            () = until_handed_over => {}
        }
        for _ in 0..3 {
            for visitor in 0..=VISITORS {
                assert_eq!(durable(visitor).await, DurablePath::Kafka);
            }
        }
        hand_over.await;
        assert_eq!(spill.records(), 0, "the spill is empty");

        let consumer: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", cluster.bootstrap_servers())
            .set("group.id", "order")
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("clicks", 0, Offset::Beginning)
            .unwrap();
        consumer.assign(&tpl).unwrap();
        let total: i64 = next.iter().sum();
        // Each visitor's records in log order.
        let mut seen = vec![Vec::new(); usize::from(VISITORS) + 1];
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut read = 0;
        // One more than sent: visitor 0's first click is there twice (its attempt and its replay).
        while read < total + 1 && Instant::now() < deadline {
            if let Some(message) = consumer.poll(Duration::from_millis(100)) {
                let c = Click::decode(message.unwrap().payload().unwrap()).unwrap();
                seen[usize::from(c.impression_id[0])].push(c.event_time_ms);
                read += 1;
            }
        }
        for (visitor, seqs) in seen.iter().enumerate() {
            let mut firsts = seqs.clone();
            firsts.dedup();
            let expected: Vec<i64> = (0..next[visitor]).collect();
            assert_eq!(
                firsts, expected,
                "visitor {visitor}'s records in Kafka, in order ({seqs:?})"
            );
        }
    }

    /// A broker that misses the bound once (librdkafka's mock cluster with a 300 ms round trip)
    /// and is fast again right after is produced to directly again long before the interval:
    /// a hiccup must not send an interval's worth of clicks to the spill.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_hiccup_is_not_an_outage_the_broker_is_used_again_long_before_the_interval() {
        let (cluster, producer, metrics) = mock_producer(1, 2, Duration::from_millis(50)).await;
        let dir = tempfile::tempdir().unwrap();
        let (spill, _) = Spill::open(
            dir.path(),
            1 << 20,
            1 << 16,
            crate::unreplayed::impression_of_click,
            metrics.clone(),
        )
        .unwrap();
        let interval = Duration::from_secs(30);
        let options = ReplayOptions {
            interval,
            ack_timeout: Duration::from_secs(60),
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
