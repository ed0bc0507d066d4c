//! The replay task: moves spilled clicks into Kafka once the broker answers again, oldest segment
//! first, and tells the click path to produce directly again.
//!
//! Every `replay_interval_ms` it
//! 1. checks the broker (a metadata request) if the click path marked it down — and sooner
//!    than the interval right after the click path marked it down (see [`FIRST_RECHECK`]);
//! 2. seals the active spill segment and takes the sealed ones;
//! 3. produces each segment's records (as librdkafka allows, no per-click bound: no user waits)
//!    and deletes the segment once every record was acknowledged.
//!
//! A segment whose replay fails or times out is kept and replayed whole next time; records that
//! had been acknowledged reach Kafka twice, flagged `Replayed` (see `spill`). On start, whatever
//! the previous process left in the spill is replayed the same way.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt, stream};
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::produce::Producer;
use crate::spill::{Segment, Spill, read_segment};

/// Records of one segment in flight at once: well under librdkafka's default queue of 100k.
const IN_FLIGHT: usize = 10_000;
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

/// One round: probe, seal, replay every sealed segment.
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
    let segments = match spill.seal().await {
        Ok(segments) => segments,
        Err(error) => {
            tracing::warn!(%error, "cannot seal the spill for replay");
            return;
        }
    };
    if segments.is_empty() {
        producer.mark_up();
        return;
    }
    for segment in segments {
        let replayed = tokio::select! {
            () = stop.cancelled() => return,
            result = tokio::time::timeout(options.segment_timeout, replay_segment(producer, &segment)) => result,
        };
        match replayed {
            Ok(Ok(records)) => {
                metrics.replayed.inc_by(records);
                if let Err(error) = spill.remove(segment.id).await {
                    tracing::error!(%error, segment = %segment.path.display(), "replayed segment not removed; it will be replayed again");
                    return;
                }
                tracing::info!(records, segment = %segment.path.display(), "replayed spill segment into Kafka");
                producer.mark_up();
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

/// Produces every record of `segment`; the number acknowledged, or the first error.
async fn replay_segment(producer: &Producer, segment: &Segment) -> Result<u64, String> {
    let path = segment.path.clone();
    let records = tokio::task::spawn_blocking(move || read_segment(&path))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("reading {}: {e}", segment.path.display()))?;
    let count = records.len() as u64;
    stream::iter(records)
        .map(|record| async move { producer.produce(&record.key, &record.value).await })
        .buffer_unordered(IN_FLIGHT)
        .map_err(|e| e.to_string())
        .try_for_each(|()| async { Ok(()) })
        .await?;
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

    /// A broker that misses the bound once (librdkafka's mock cluster with a 300 ms round trip)
    /// and is fast again right after is produced to directly again long before the interval:
    /// a hiccup must not send an interval's worth of clicks to the spill.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_hiccup_is_not_an_outage_the_broker_is_used_again_long_before_the_interval() {
        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic("clicks", 2, 1).unwrap();
        let metrics = Metrics::new(&mut Registry::default());
        let kafka = KafkaSettings {
            brokers: cluster.bootstrap_servers(),
            topic: "clicks".into(),
            properties: vec![],
        };
        let producer = Producer::new(
            &kafka,
            HashMap::new(),
            Duration::from_millis(50),
            metrics.clone(),
        )
        .unwrap();
        assert!(producer.warm_up(Duration::from_secs(10)).await);
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
