//! Checkpoints: what a replay from a committed offset needs to decide exactly what the first pass
//! decided, stored in the object store next to the archive, one immutable object per committed
//! offset.
//!
//! A committed offset alone is not enough: the watermark depends on every record before it, and
//! the replay must know which minutes were already written. Kafka can carry such state as commit
//! metadata, but not every broker keeps it (tansu drops it), so it lives here instead: written
//! *before* the offset is committed, named by that offset, and read back on assignment. Its
//! content is a function of the log up to the point it counts from, so two owners writing the
//! same checkpoint (during a rebalance) write the same bytes.
//!
//! The committed offset is where a replay *reads* from: the first record of the oldest
//! generation of impression ids still remembered for dropping repeats ([`crate::remembered`]).
//! `count_from` is where it starts counting again; the records in between rebuild the
//! remembered ids. Several checkpoints can therefore share a committed offset (while the oldest
//! generation stays the same, counting moves on): each is its own object,
//! `{offset:020}-{count_from:020}.json`, and the greatest one of an offset is the newest.
//! Version 1 checkpoints (`{offset:020}.json`, counting from `offset`, nothing remembered before
//! it) are still read.

use adclick_click::Minute;
use adclick_click::minute::MINUTE_MS;
use adclick_objstore::StoreError;
use aws_sdk_s3::Client;
use serde::{Deserialize, Serialize};

use crate::archive::ArchiveBuffer;
use crate::partition::{PartitionState, ReplayPoint, Resume};

/// One partition's checkpoint at a committed offset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub version: u32,
    pub topic: String,
    pub partition: i32,
    /// The offset committed with it: where a replay starts reading.
    pub offset: i64,
    /// The highest event time of the records before `offset`.
    pub max_event_ms: Option<i64>,
    /// Where the replay starts counting; records from `offset` up to here only rebuild the
    /// remembered impression ids. Version 1: absent, `offset`.
    #[serde(default)]
    pub count_from: Option<i64>,
    /// End (ms) of the last minute whose samples Prometheus acknowledged.
    pub written_through_end_ms: Option<i64>,
    /// Records before this offset are in archive objects.
    pub archived_before: i64,
    /// How far the first pass had read: records before it were already dead-lettered.
    pub position: i64,
}

impl Checkpoint {
    /// The checkpoint of a partition read up to `position` (the next offset), assuming every
    /// sample of every minute it closed has been acknowledged. `read_before`: how far an earlier
    /// pass had read (the checkpoint this owner resumed from), so that a checkpoint never
    /// forgets which records were already dead-lettered.
    pub fn take(
        topic: &str,
        partition: i32,
        state: &PartitionState,
        archive: &ArchiveBuffer,
        position: i64,
        read_before: i64,
    ) -> Checkpoint {
        let count_start = [state.replay_start(), archive.replay_start()]
            .into_iter()
            .flatten()
            .min_by_key(|(o, _)| *o)
            .unwrap_or((position, state.max_event_ms()));
        let point = state.replay_point(count_start);
        Checkpoint {
            version: 2,
            topic: topic.to_string(),
            partition,
            offset: point.read_from,
            max_event_ms: point.max_event_before,
            count_from: Some(point.count_from),
            written_through_end_ms: state.written_through().map(Minute::end_ms),
            archived_before: archive.archived_before(position),
            position: position.max(read_before),
        }
    }

    /// Where counting resumes.
    pub fn count_from(&self) -> i64 {
        self.count_from.unwrap_or(self.offset)
    }

    /// What the partition state resumes with.
    pub fn resume(&self) -> Resume {
        Resume {
            max_event_ms: self.max_event_ms,
            written_through: self
                .written_through_end_ms
                .map(|end| Minute(end.div_euclid(MINUTE_MS) - 1)),
            replay: Some(ReplayPoint {
                read_from: self.offset,
                max_event_before: self.max_event_ms,
                count_from: self.count_from(),
            }),
        }
    }
}

/// Why a checkpoint could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("checkpoint {key} is not valid JSON of version 1: {source}")]
    Corrupt {
        key: String,
        source: serde_json::Error,
    },
}

/// Checkpoint objects of one consumer group.
#[derive(Debug, Clone)]
pub struct CheckpointStore {
    pub s3: Client,
    pub bucket: String,
    /// `{archive prefix}checkpoints/{group}/`.
    pub prefix: String,
}

impl CheckpointStore {
    pub fn new(s3: Client, bucket: &str, archive_prefix: &str, group: &str) -> CheckpointStore {
        CheckpointStore {
            s3,
            bucket: bucket.to_string(),
            prefix: format!("{archive_prefix}checkpoints/{group}/"),
        }
    }

    /// The object of `checkpoint`.
    pub fn key(&self, checkpoint: &Checkpoint) -> String {
        format!(
            "{}{:020}-{:020}.json",
            self.partition_prefix(&checkpoint.topic, checkpoint.partition),
            checkpoint.offset,
            checkpoint.count_from()
        )
    }

    fn partition_prefix(&self, topic: &str, partition: i32) -> String {
        format!("{}{topic}/p={partition}/", self.prefix)
    }

    pub async fn put(&self, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
        let body = serde_json::to_vec_pretty(checkpoint).expect("serialisable");
        let key = self.key(checkpoint);
        adclick_objstore::put_typed(&self.s3, &self.bucket, &key, body, "application/json").await?;
        Ok(())
    }

    /// The newest checkpoint of a committed offset, None if there is none.
    pub async fn get(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> Result<Option<Checkpoint>, CheckpointError> {
        let of_offset = format!("{}{offset:020}", self.partition_prefix(topic, partition));
        // `{offset}-{count_from}.json` sorts by `count_from`; `{offset}.json` (version 1) after
        // them, and a partition has one or the other for an offset.
        let Some((key, _)) = adclick_objstore::list(&self.s3, &self.bucket, &of_offset)
            .await?
            .pop()
        else {
            return Ok(None);
        };
        let Some(bytes) = adclick_objstore::get(&self.s3, &self.bucket, &key).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| CheckpointError::Corrupt { key, source })
    }

    /// Deletes the partition's checkpoints older than `newest` but the `keep` newest of them
    /// (best effort: a leftover only costs bytes).
    pub async fn prune(&self, newest: &Checkpoint, keep: usize) -> Result<usize, CheckpointError> {
        let prefix = self.partition_prefix(&newest.topic, newest.partition);
        let newest_kept = self.key(newest);
        // In name order: oldest first.
        let older: Vec<String> = adclick_objstore::list(&self.s3, &self.bucket, &prefix)
            .await?
            .into_iter()
            .map(|(key, _)| key)
            .filter(|k| k.as_str() < newest_kept.as_str())
            .collect();
        let doomed = older.len().saturating_sub(keep);
        for key in &older[..doomed] {
            adclick_objstore::delete(&self.s3, &self.bucket, key).await?;
        }
        Ok(doomed)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use adclick_click::Click;

    use super::*;
    use crate::archive::ArchiveTarget;
    use crate::partition::Rules;

    const T0: i64 = 1_800_000_000_000 - 1_800_000_000_000 % MINUTE_MS;

    /// A log of clicks over ten minutes, a little out of order, some beyond the lateness, every
    /// seventh a repeat of an impression up to four minutes older.
    fn log() -> Vec<Click> {
        (0..1200i64)
            .map(|i| {
                let jitter = [0, -4_000, 2_000, -25_000, 700][(i % 5) as usize];
                let impression = if i % 7 == 6 { i - (i * 13) % 480 } else { i };
                Click {
                    impression_id: (impression as u128 + 1).to_be_bytes().to_vec(),
                    ad_id: 1 + (i % 7) as u64,
                    campaign_id: 10,
                    advertiser_id: 100,
                    event_time_ms: T0 + i * 500 + jitter,
                    ..Default::default()
                }
            })
            .collect()
    }

    fn archive(archived_before: i64) -> ArchiveBuffer {
        let target = ArchiveTarget {
            bucket: "b".into(),
            prefix: "".into(),
            topic: "clicks".into(),
            max_records: 64,
            max_bytes: 1 << 20,
        };
        ArchiveBuffer::new(Arc::new(target), 0, archived_before)
    }

    /// Reads `clicks[from..to]` into `state` and `archive` as the exporter does.
    fn read(
        state: &mut PartitionState,
        archive: &mut ArchiveBuffer,
        clicks: &[Click],
        from: usize,
        to: usize,
    ) {
        let mut closed = vec![];
        for (offset, click) in clicks.iter().enumerate().take(to).skip(from) {
            let offset = offset as i64;
            archive.push(offset, click.event_time_ms, b"x", state.max_event_ms());
            let impression = u128::from_be_bytes(click.impression_id.clone().try_into().unwrap());
            state.apply_click(offset, click, impression, false, &mut closed);
        }
    }

    /// An owner that resumes from a checkpoint and commits before reading anything writes that
    /// same checkpoint again (same key, same bytes) — it must not forget which minutes were
    /// written, which records were archived or how far the first pass had read. And one that
    /// replays to where the first pass was takes the first pass's checkpoint there.
    #[test]
    fn a_resumed_owner_takes_the_checkpoint_it_resumed_from() {
        let rules = Rules {
            allowed_lateness_ms: 10_000,
            top_k: 3,
            horizon: crate::remembered::Horizon {
                horizon_ms: 2 * MINUTE_MS,
                generation_ms: MINUTE_MS,
                max_remembered: 1_000,
            },
            measures: crate::window::Measures::ALL,
        };
        let clicks = log();
        let mut warmed_up = 0;
        for cut in (0..clicks.len()).step_by(37) {
            let mut state = PartitionState::new(rules);
            let mut buf = archive(0);
            read(&mut state, &mut buf, &clicks, 0, cut);
            let first = Checkpoint::take("clicks", 0, &state, &buf, cut as i64, 0);
            assert!(first.offset <= first.count_from());
            if first.offset < first.count_from() {
                warmed_up += 1;
            }

            let mut resumed = PartitionState::resume(rules, first.resume());
            let mut resumed_buf = archive(first.archived_before);
            let again = Checkpoint::take(
                "clicks",
                0,
                &resumed,
                &resumed_buf,
                first.offset,
                first.position,
            );
            assert_eq!(
                again, first,
                "resumed at {cut}, checkpoint taken before reading"
            );

            read(
                &mut resumed,
                &mut resumed_buf,
                &clicks,
                first.offset as usize,
                cut,
            );
            let replayed = Checkpoint::take(
                "clicks",
                0,
                &resumed,
                &resumed_buf,
                cut as i64,
                first.position,
            );
            assert_eq!(replayed, first, "resumed at {cut}, replayed to it");
        }
        assert!(
            warmed_up > 10,
            "most checkpoints re-read remembered impressions"
        );
    }
}
