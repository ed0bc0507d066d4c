//! Batching and parallel sending with each series' samples kept in order.
//!
//! A [`Queue`] has `shards` tasks. A series always goes to the same shard (by the hash of its
//! labels), and a shard sends one request at a time, waiting for it to succeed or be given up
//! before the next, so the samples of a series reach the receiver in the order they were pushed,
//! while different shards send in parallel, as the specification allows.
//!
//! A shard sends its batch when it holds `max_samples_per_send` samples, when
//! `batch_send_deadline` has passed since its first sample, on [`Queue::flush`], and when a
//! sample of a series is not after that series' last sample in the batch (a request may not
//! hold that; cutting the batch there keeps the caller's order, and the receiver decides).
//!
//! Memory is bounded: each shard holds at most `capacity` queued samples, plus the batch it is
//! sending and up to `max_samples_per_send` more it has taken from its queue. When a shard is
//! full, [`Queue::push`] waits ([`Queue::try_push`] says so) until the receiver has caught up:
//! backpressure instead of unbounded buffering or loss.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::config::{Config, ConfigError, QueueConfig};
use crate::encode::Encoder;
use crate::invalid::{InvalidSeries, Problem};
use crate::labels::Labels;
use crate::metrics::{FailReason, Metrics};
use crate::request::{RequestBuilder, Sample};
use crate::send::{SendError, Sender};
use crate::stale;

/// How many errors a [`Report`] keeps (their count is always complete).
pub const MAX_REPORTED_ERRORS: usize = 16;

/// What happened to the samples pushed since the previous report.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// Samples the receiver accepted.
    pub samples_sent: u64,
    /// Samples given up on (rejected, out of retries, unencodable).
    pub samples_failed: u64,
    /// The first [`MAX_REPORTED_ERRORS`] errors behind `samples_failed`.
    pub errors: Vec<SendError>,
}

impl Report {
    /// Whether every sample was accepted.
    pub fn is_ok(&self) -> bool {
        self.samples_failed == 0
    }

    fn merge(&mut self, other: Report) {
        self.samples_sent += other.samples_sent;
        self.samples_failed += other.samples_failed;
        let room = MAX_REPORTED_ERRORS.saturating_sub(self.errors.len());
        self.errors.extend(other.errors.into_iter().take(room));
    }
}

/// A sample the queue did not take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    #[error(transparent)]
    Invalid(#[from] InvalidSeries),
    #[error("the queue is shut down")]
    Closed,
}

/// A sample [`Queue::try_push`] did not take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TryPushError {
    #[error(transparent)]
    Invalid(#[from] InvalidSeries),
    /// The series' shard holds `capacity` samples: the receiver is behind.
    #[error("the queue is full")]
    Full,
    #[error("the queue is shut down")]
    Closed,
}

enum Message {
    Sample(Labels, Sample),
    Flush(oneshot::Sender<Report>),
}

/// Shards that batch and send samples; see the module documentation.
pub struct Queue {
    shards: Vec<mpsc::Sender<Message>>,
    tasks: Vec<JoinHandle<Report>>,
    metrics: Metrics,
}

impl Queue {
    /// Starts the shards. Must be called within a Tokio runtime.
    pub fn new(sender: Sender, config: &QueueConfig) -> Result<Queue, ConfigError> {
        config.validate()?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| ConfigError::NoRuntime)?;
        let metrics = sender.metrics().clone();
        let (shards, tasks) = (0..config.shards)
            .map(|_| {
                let (tx, rx) = mpsc::channel(config.capacity);
                let shard = Shard {
                    rx,
                    sender: sender.clone(),
                    metrics: metrics.clone(),
                    max_samples: config.max_samples_per_send,
                    deadline: config.batch_send_deadline(),
                    builder: RequestBuilder::new(),
                    encoder: Encoder::new(),
                    report: Report::default(),
                };
                (tx, runtime.spawn(shard.run()))
            })
            .unzip();
        Ok(Queue {
            shards,
            tasks,
            metrics,
        })
    }

    /// A sender for `config` and its queue.
    pub fn from_config(config: &Config, metrics: Metrics) -> Result<Queue, ConfigError> {
        Queue::new(Sender::new(config, metrics)?, &config.queue)
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    fn shard(&self, labels: &Labels) -> &mpsc::Sender<Message> {
        &self.shards[(labels.hash_value() % self.shards.len() as u64) as usize]
    }

    /// Queues a sample, waiting while the series' shard is full. Samples of a series are sent
    /// in the order they are pushed.
    pub async fn push(&self, labels: &Labels, sample: Sample) -> Result<(), PushError> {
        refuse_stale_value(labels, sample)?;
        self.send(labels, sample).await
    }

    /// Queues the stale marker that ends `labels`' series at `timestamp_ms`.
    pub async fn end_series(&self, labels: &Labels, timestamp_ms: i64) -> Result<(), PushError> {
        self.send(labels, stale::marker(timestamp_ms)).await
    }

    async fn send(&self, labels: &Labels, sample: Sample) -> Result<(), PushError> {
        self.metrics.pending(1);
        let message = Message::Sample(labels.clone(), sample);
        self.shard(labels).send(message).await.map_err(|_| {
            self.metrics.pending(-1);
            PushError::Closed
        })
    }

    /// Queues a sample if its shard has room, without waiting.
    pub fn try_push(&self, labels: &Labels, sample: Sample) -> Result<(), TryPushError> {
        refuse_stale_value(labels, sample)?;
        self.metrics.pending(1);
        let message = Message::Sample(labels.clone(), sample);
        self.shard(labels).try_send(message).map_err(|e| {
            self.metrics.pending(-1);
            match e {
                mpsc::error::TrySendError::Full(_) => TryPushError::Full,
                mpsc::error::TrySendError::Closed(_) => TryPushError::Closed,
            }
        })
    }

    /// Sends everything pushed before this call and reports what happened to the samples pushed
    /// since the previous report. Waits for retries: with unlimited retries it returns when the
    /// receiver has accepted everything (or refused some for good).
    pub async fn flush(&self) -> Report {
        let mut replies = Vec::with_capacity(self.shards.len());
        for shard in &self.shards {
            let (tx, rx) = oneshot::channel();
            if shard.send(Message::Flush(tx)).await.is_ok() {
                replies.push(rx);
            }
        }
        let mut report = Report::default();
        for reply in replies {
            if let Ok(r) = reply.await {
                report.merge(r);
            }
        }
        report
    }

    /// Sends what is queued, stops the shards, and reports on the samples not yet reported.
    pub async fn shutdown(mut self) -> Report {
        self.shards.clear();
        let mut report = Report::default();
        for task in self.tasks.drain(..) {
            match task.await {
                Ok(r) => report.merge(r),
                Err(e) => tracing::error!(error = %e, "remote write shard ended abnormally"),
            }
        }
        report
    }
}

fn refuse_stale_value(labels: &Labels, sample: Sample) -> Result<(), InvalidSeries> {
    if stale::is_stale_marker(sample.value) {
        return Err(labels.refuse(Problem::StaleMarkerValue {
            timestamp_ms: sample.timestamp_ms,
        }));
    }
    Ok(())
}

/// One shard: its inbox, its batch, its own encoder buffers, its report.
struct Shard {
    rx: mpsc::Receiver<Message>,
    sender: Sender,
    metrics: Metrics,
    max_samples: usize,
    deadline: Duration,
    builder: RequestBuilder,
    encoder: Encoder,
    report: Report,
}

impl Shard {
    async fn run(mut self) -> Report {
        // Messages are taken a batch's worth at a time: one wake-up and one timer check per
        // chunk instead of per sample.
        let mut inbox = Vec::with_capacity(self.max_samples);
        // One timer, re-armed when a batch starts, rather than a new one per message.
        let deadline = tokio::time::sleep(self.deadline);
        tokio::pin!(deadline);
        let mut armed = false;
        loop {
            let received = if armed {
                tokio::select! {
                    n = self.rx.recv_many(&mut inbox, self.max_samples) => n,
                    () = &mut deadline => {
                        self.send_batch().await;
                        armed = false;
                        continue;
                    }
                }
            } else {
                self.rx.recv_many(&mut inbox, self.max_samples).await
            };
            if received == 0 {
                // Every sender is gone: the queue was shut down or dropped.
                self.send_batch().await;
                return self.report;
            }
            for message in inbox.drain(..) {
                match message {
                    Message::Sample(labels, sample) => {
                        if self.builder.append(&labels, sample).is_err() {
                            // Not after the series' last sample in this batch: send the batch
                            // first, so this sample starts the next request and the caller's
                            // order holds.
                            self.send_batch().await;
                            // An empty batch takes any sample.
                            let _ = self.builder.append(&labels, sample);
                        }
                        if self.builder.samples() == 1 {
                            deadline.as_mut().reset(Instant::now() + self.deadline);
                            armed = true;
                        }
                        if self.builder.samples() >= self.max_samples {
                            self.send_batch().await;
                            armed = false;
                        }
                    }
                    Message::Flush(reply) => {
                        self.send_batch().await;
                        armed = false;
                        let _ = reply.send(std::mem::take(&mut self.report));
                    }
                }
            }
        }
    }

    /// Sends the batch, retrying as configured, and records the outcome.
    async fn send_batch(&mut self) {
        if self.builder.is_empty() {
            return;
        }
        let request = self.builder.take();
        let samples = request.samples();
        let result = match self.encoder.encode(&request) {
            Ok(encoded) => self.sender.send_encoded(&encoded).await,
            Err(e) => {
                self.metrics.failed(FailReason::Encode, samples);
                Err(SendError::from(e))
            }
        };
        self.metrics.pending(-(samples as i64));
        match result {
            Ok(_) => self.report.samples_sent += samples as u64,
            Err(e) => {
                self.report.samples_failed += samples as u64;
                if self.report.errors.len() < MAX_REPORTED_ERRORS {
                    self.report.errors.push(e);
                }
            }
        }
    }
}
