//! Drives a plan against a target: paces sends to their planned instants, keeps a bounded number
//! in flight, records every outcome in the ground truth, shows progress, and stops early when the
//! target fails beyond the error bound.
//!
//! Two ways to load a target, both by the plan's rate and `max_in_flight`:
//! - **open loop** (a fixed rate): plan the rate to test and allow more in flight than the target
//!   will ever hold; sends start at their planned instants whatever the answers do, as
//!   independent clients would. `start_lag` in the summary shows the generator kept up.
//! - **closed loop** (the maximum rate at a concurrency): plan a rate far above what the target
//!   answers, so `max_in_flight` requests are always outstanding and each answer starts the next
//!   send. The achieved rate is the target's throughput at that concurrency.

use std::path::PathBuf;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::time::Instant;

use crate::http::HttpTarget;
use crate::kafka::KafkaTarget;
use crate::latency::Histogram;
use crate::partition::Partitioning;
use crate::plan::{Plan, Send};
use crate::truth::{GroundTruth, Outcome};

/// Where the sends go. (One per run: the size difference of the variants costs nothing.)
#[allow(clippy::large_enum_variant)]
pub enum Target {
    Http(HttpTarget),
    Kafka(KafkaTarget),
}

impl Target {
    async fn send(&self, send: Send) -> (Send, Outcome) {
        let outcome = match self {
            Target::Http(t) => t.send(&send).await,
            Target::Kafka(t) => t.send(&send).await,
        };
        (send, outcome)
    }
}

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Sends in flight at most (HTTP: concurrent requests; Kafka: unacknowledged records).
    pub max_in_flight: usize,
    /// The run fails when more than this share of sends had an unexpected outcome.
    pub max_error_ratio: f64,
    /// Stop early once this many errors exceed the ratio (the target is down, don't spin).
    pub min_errors_to_abort: u64,
    pub progress: bool,
    /// Write `truth.csv`, `too_late.csv`, `summary.json` (and with invalid traffic `invalid.csv`
    /// and `floods.csv`, with users or prices the spend files of `truth::money`) here.
    pub truth_dir: Option<PathBuf>,
    /// The clicks topic's partitions and hot ads: which partition each counted click lands on.
    /// With it, a plan with users or prices gets the truth of its spend and unique users
    /// (`truth::money`); without it, only the clicks' truth.
    pub partitioning: Option<Partitioning>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            max_in_flight: 256,
            max_error_ratio: 0.001,
            min_errors_to_abort: 100,
            progress: false,
            truth_dir: None,
            partitioning: None,
        }
    }
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{errors} of {sends} sends failed (bound {bound}); first: {examples:?}")]
    TooManyErrors {
        errors: u64,
        sends: u64,
        bound: f64,
        examples: Vec<String>,
    },
    #[error("writing the ground truth to {path}: {source}")]
    WriteTruth {
        path: String,
        source: std::io::Error,
    },
    #[error("flushing the Kafka producer: {0}")]
    Flush(String),
    #[error(
        "forged and expired tokens never reach Kafka: send them over HTTP, or set their shares to 0"
    )]
    NoiseOverKafka,
    #[error(
        "invalid traffic is ingest's to classify: send it over HTTP (the Kafka target writes valid clicks only)"
    )]
    InvalidOverKafka,
}

/// Sends the whole plan. Returns the truth (also written to `truth_dir`), or an error when the
/// target failed beyond the bound — the truth is written in that case too, for diagnosis.
pub async fn run(plan: Plan, target: &Target, opts: &RunOptions) -> Result<GroundTruth, RunError> {
    let c = plan.config();
    if matches!(target, Target::Kafka(_)) && c.forged_share + c.expired_share > 0.0 {
        return Err(RunError::NoiseOverKafka);
    }
    if matches!(target, Target::Kafka(_)) && c.invalid.enabled() {
        return Err(RunError::InvalidOverKafka);
    }
    let start_ms = plan.config().start_ms;
    let mut truth = GroundTruth::new(plan.config().seed, start_ms);
    if c.invalid.enabled() {
        truth = truth.with_invalid_traffic();
    }
    if let Some(partitioning) = opts
        .partitioning
        .clone()
        .filter(|_| c.users > 0 || c.prices.is_some())
    {
        truth = truth.with_money(partitioning);
    }
    let bar = progress_bar(opts.progress);
    let started = Instant::now();
    // Planned instants are wall-clock ms; pace them on the monotonic clock, anchored now.
    let wall_at_start_ms = now_ms();
    let due = |send: &Send| {
        started + Duration::from_millis((send.at_ms - wall_at_start_ms).max(0) as u64)
    };

    let mut plan = plan.peekable();
    let mut in_flight = FuturesUnordered::new();
    let mut aborted = false;
    let mut latency = Histogram::default();
    let mut start_lag = Histogram::default();
    let mut from_schedule = Histogram::default();
    // A send's clocks start when it is first polled, i.e. when its request is actually made.
    let timed = |send: Send, due_at: Instant| async move {
        let began = Instant::now();
        let (send, outcome) = target.send(send).await;
        (
            send,
            outcome,
            began.elapsed(),
            began.saturating_duration_since(due_at),
        )
    };
    loop {
        let next_due = plan.peek().map(due);
        tokio::select! {
            biased;
            Some((send, outcome, took, lag)) = in_flight.next(), if !in_flight.is_empty() => {
                latency.record(took);
                start_lag.record(lag);
                from_schedule.record(took + lag);
                truth.record(&send, &outcome);
                if !matches!(outcome, Outcome::Accepted) {
                    bar.set_message(format!("errors {}", truth.summary.errors));
                }
                bar.inc(1);
                let s = &truth.summary;
                if s.errors >= opts.min_errors_to_abort && s.errors as f64 > opts.max_error_ratio * s.sends as f64 {
                    aborted = true;
                    break;
                }
            }
            _ = tokio::time::sleep_until(next_due.unwrap_or(started)),
                if next_due.is_some() && in_flight.len() < opts.max_in_flight => {
                let send = plan.next().expect("peeked");
                let due_at = due(&send);
                in_flight.push(timed(send, due_at));
            }
            else => break,
        }
    }
    // Whatever was in flight when aborting still gets its answer, so the truth stays exact.
    while let Some((send, outcome, took, lag)) = in_flight.next().await {
        latency.record(took);
        start_lag.record(lag);
        from_schedule.record(took + lag);
        truth.record(&send, &outcome);
    }
    if let Target::Kafka(k) = target {
        k.flush(Duration::from_secs(60))
            .map_err(|e| RunError::Flush(e.to_string()))?;
    }
    bar.finish_and_clear();
    let s = &mut truth.summary;
    s.elapsed_secs = started.elapsed().as_secs_f64();
    s.achieved_rate = s.sends as f64 / s.elapsed_secs.max(f64::EPSILON);
    s.latency = latency.summary();
    s.start_lag = start_lag.summary();
    s.from_schedule = from_schedule.summary();
    if let Some(dir) = &opts.truth_dir {
        truth.write(dir).map_err(|source| RunError::WriteTruth {
            path: dir.display().to_string(),
            source,
        })?;
    }
    let s = &truth.summary;
    if aborted || s.errors as f64 > opts.max_error_ratio * s.sends as f64 {
        return Err(RunError::TooManyErrors {
            errors: s.errors,
            sends: s.sends,
            bound: opts.max_error_ratio,
            examples: s.error_examples.clone(),
        });
    }
    Ok(truth)
}

fn progress_bar(visible: bool) -> ProgressBar {
    if !visible {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {elapsed_precise} {human_pos} sent, {per_sec} {msg}",
        )
        .expect("a valid template"),
    );
    bar.enable_steady_tick(Duration::from_millis(250));
    bar
}

/// Milliseconds since the epoch, now (the one clock of every adclick crate).
pub use adclick_click::now_ms;
