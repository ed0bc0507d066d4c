//! The commit cycle, every `commit_interval_ms`: take each owned partition's [`Checkpoint`]
//! (its replay start is the first record of any minute still open, or of the open archive
//! object), then wait until remote_write has flushed every sample pushed so far, every sealed
//! archive object is uploaded and every dead letter is acknowledged, then write the checkpoints,
//! then commit their offsets. Reading goes on meanwhile; a slow or absent Prometheus stops new
//! commits and, once the remote_write queue is full, reading itself (backpressure).

use std::time::Duration;

use adclick_admin::ErrorChain;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use tokio::task::{JoinError, JoinHandle};

use super::Exporter;
use crate::checkpoint::{Checkpoint, CheckpointError};

/// The checkpoints of one commit, with the ownership epoch each was taken in.
type Snapshot = Vec<(i32, u64, Checkpoint)>;

/// A commit between its start and its checkpoints being written.
pub(super) type PendingCommit = JoinHandle<Result<Snapshot, CommitError>>;

/// Why a commit did not happen (the next interval tries again).
#[derive(Debug, thiserror::Error)]
pub(super) enum CommitError {
    #[error("an archive upload or dead-letter task ended before its write was acknowledged")]
    Durability(#[source] JoinError),
    #[error("checkpoint of partition {partition} not written")]
    Checkpoint {
        partition: i32,
        #[source]
        source: CheckpointError,
    },
}

impl Exporter {
    fn snapshot(&self) -> Snapshot {
        self.owned
            .iter()
            .filter_map(|(p, o)| {
                let position = o.position?;
                tracing::debug!(
                    partition = p,
                    position,
                    windows = ?o.state.open_windows().map(|(m, w)| (m.end_ms(), w.first_offset, w.max_event_before)).collect::<Vec<_>>(),
                    state_start = ?o.state.replay_start(),
                    archive_start = ?o.archive.replay_start(),
                    max_event = ?o.state.max_event_ms(),
                    "snapshot"
                );
                Some((
                    *p,
                    o.epoch,
                    Checkpoint::take(
                        &self.topic,
                        *p,
                        &o.state,
                        &o.archive,
                        position,
                        o.dead_lettered_before,
                    ),
                ))
            })
            .collect()
    }

    /// Starts a commit of what was read so far (see the module documentation).
    pub(super) fn start_commit(&mut self) {
        let snapshot = self.snapshot();
        if snapshot.is_empty() {
            return;
        }
        let queue = self.queue.clone();
        let durability = std::mem::take(&mut self.durability);
        let store = self.store.clone();
        self.pending_commit = Some(tokio::spawn(async move {
            let report = queue.flush().await;
            if !report.is_ok() {
                // Only samples the receiver refused for good (a 4xx) fail; retrying cannot help.
                tracing::error!(failed = report.samples_failed, errors = ?report.errors, "remote_write refused samples");
            }
            for task in durability {
                task.await.map_err(CommitError::Durability)?;
            }
            for (partition, _, checkpoint) in &snapshot {
                store
                    .put(checkpoint)
                    .await
                    .map_err(|source| CommitError::Checkpoint {
                        partition: *partition,
                        source,
                    })?;
            }
            Ok(snapshot)
        }));
    }

    pub(super) fn finish_commit(&mut self, done: Result<Result<Snapshot, CommitError>, JoinError>) {
        let snapshot = match done {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                self.metrics.commit_errors.inc();
                tracing::warn!(error = %ErrorChain(&e), "commit not made; retried at the next interval");
                return;
            }
            Err(e) => {
                self.metrics.commit_errors.inc();
                tracing::error!(error = %e, "commit task failed");
                return;
            }
        };
        let mut tpl = TopicPartitionList::new();
        for (partition, epoch, checkpoint) in &snapshot {
            // A partition revoked (or revoked and assigned again) since: its new owner decides.
            if self.owned.get(partition).is_some_and(|o| o.epoch == *epoch) {
                let _ = tpl.add_partition_offset(
                    &self.topic,
                    *partition,
                    Offset::Offset(checkpoint.offset),
                );
            }
        }
        if tpl.count() == 0 {
            return;
        }
        match self.consumer.commit(&tpl, CommitMode::Async) {
            Ok(()) => {
                self.metrics.commits.inc();
            }
            Err(e) => {
                self.metrics.commit_errors.inc();
                tracing::warn!(error = %e, "offset commit failed; retried at the next interval");
            }
        }
        for (partition, epoch, checkpoint) in snapshot {
            if let Some(owned) = self.owned.get_mut(&partition).filter(|o| o.epoch == epoch) {
                owned.state.committed(checkpoint.count_from());
            }
            let store = self.store.clone();
            tokio::spawn(async move {
                if let Err(e) = store.prune(&checkpoint, 4).await {
                    tracing::debug!(error = %ErrorChain(&e), "pruning checkpoints");
                }
            });
        }
    }

    /// After the loop: finish in-flight writes and commit what they acknowledged, within the
    /// shutdown timeout; what does not make it is replayed by the next owner.
    pub(super) async fn finish(&mut self) {
        let timeout = Duration::from_millis(self.config.shutdown_timeout_ms);
        let finished = tokio::time::timeout(timeout, async {
            if let Some(pending) = self.pending_commit.take() {
                self.finish_commit(pending.await);
            }
            self.start_commit();
            if let Some(pending) = self.pending_commit.take() {
                let done = pending.await;
                self.finish_commit(done);
            }
        })
        .await;
        if finished.is_err() {
            tracing::warn!("shutdown timeout: uncommitted records will be replayed");
        }
        let _ = self.consumer.commit_consumer_state(CommitMode::Sync).ok();
        self.consumer.unsubscribe();
    }
}
