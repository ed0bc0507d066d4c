//! The replay task: moves spilled clicks into Kafka once the broker answers again, oldest segment
//! first, and tells the click path to produce directly again.
//!
//! Every `replay_interval_ms` it
//! 1. checks the broker (a metadata request) if the click path marked it down;
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
    loop {
        // The first round runs at once: a restart replays what the last process left.
        replay_round(&spill, &producer, &metrics, &options, &stop).await;
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(options.interval) => {}
        }
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
