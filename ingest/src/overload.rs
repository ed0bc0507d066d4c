//! Overload: how long work that became ready waits before ingest's runtime runs it, and whether
//! that wait says ingest cannot keep up — then `/readyz` answers 503, so that a load balancer
//! shifts traffic to other instances. Nothing is shed: every click that arrives is still
//! redirected and made durable; the signal only asks for fewer of them.
//!
//! A click is worked on when the Tokio task serving its connection is polled. When the runtime
//! is saturated, a task that became ready (its request's bytes arrived) waits in a run queue
//! behind the others, and that wait is what grows without bound under overload. The probe
//! measures it the way a click meets it: every `overload_window_ms / 10` it wakes on a timer,
//! then yields once (which puts it at the back of its worker's run queue), and records how long
//! after its deadline it ran again — the timer's lateness plus one trip through the run queue.
//! On an idle runtime that is about a millisecond (the timer's resolution).
//!
//! - `adclick_ingest_queueing_delay_seconds` (histogram): each probe's wait.
//! - `adclick_ingest_overloaded` (gauge): 1 while overloaded.
//! - Overloaded means: **every probe for `overload_window_ms` waited longer than
//!   `overload_delay_ms`** — a sustained backlog, not one slow poll. It ends with the first probe
//!   that waits less, so `/readyz` turns 503 one window (and one probe's wait) after the backlog
//!   starts and back to 200 within a probe period and a wait of it ending.
//!   `overload_delay_ms = 0` turns the readiness part off (the delay is still measured).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

/// Probes per window.
const PROBES_PER_WINDOW: u32 = 10;

/// When ingest counts as overloaded (`[ingest] overload_delay_ms`, `overload_window_ms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverloadRule {
    /// A probe that waited longer than this is late; `Duration::ZERO`: never overloaded.
    pub delay: Duration,
    /// Overloaded while every probe of this last stretch was late.
    pub window: Duration,
}

impl OverloadRule {
    /// How often the probe runs: a tenth of the window, at least a millisecond.
    pub fn period(&self) -> Duration {
        (self.window / PROBES_PER_WINDOW).max(Duration::from_millis(1))
    }
}

/// Where the probe reports: the metrics it feeds.
#[derive(Debug, Clone)]
pub struct OverloadMetrics {
    pub queueing_delay_seconds: Histogram,
    pub overloaded: Gauge,
}

/// The probe's verdict, shared with `/readyz`. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Overload {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    rule: OverloadRule,
    overloaded: AtomicBool,
    /// The last probe's wait, ns: what `/readyz` reports.
    last_wait_ns: AtomicU64,
    metrics: OverloadMetrics,
}

impl Overload {
    pub fn new(rule: OverloadRule, metrics: OverloadMetrics) -> Overload {
        Overload {
            inner: Arc::new(Inner {
                rule,
                overloaded: AtomicBool::new(false),
                last_wait_ns: AtomicU64::new(0),
                metrics,
            }),
        }
    }

    /// Starts the probe on the current runtime (the one serving clicks). Abort it on shutdown.
    pub fn spawn_probe(&self) -> JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move { this.probe().await })
    }

    async fn probe(self) {
        let mut ticks = tokio::time::interval(self.inner.rule.period());
        // After a stall, probe again one period later rather than in a burst of catch-up ticks
        // (each of which would find the backlog it just waited through).
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut late_since = None;
        loop {
            let deadline = ticks.tick().await;
            tokio::task::yield_now().await;
            self.observe(&mut late_since, deadline, Instant::now());
        }
    }

    /// Takes the wait of a probe due at `deadline` that ran at `ran`. `late_since`: the deadline
    /// of the first of the late probes in a row, if the last one was late.
    fn observe(&self, late_since: &mut Option<Instant>, deadline: Instant, ran: Instant) {
        let inner = &self.inner;
        let waited = ran.saturating_duration_since(deadline);
        inner
            .metrics
            .queueing_delay_seconds
            .observe(waited.as_secs_f64());
        inner.last_wait_ns.store(
            u64::try_from(waited.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        let late = !inner.rule.delay.is_zero() && waited > inner.rule.delay;
        *late_since = if late {
            Some(late_since.unwrap_or(deadline))
        } else {
            None
        };
        let overloaded = late_since
            .is_some_and(|since| ran.saturating_duration_since(since) >= inner.rule.window);
        inner.overloaded.store(overloaded, Ordering::Relaxed);
        inner.metrics.overloaded.set(i64::from(overloaded));
    }

    /// `Err` with the reason while overloaded.
    pub fn check(&self) -> Result<(), String> {
        let inner = &self.inner;
        if !inner.overloaded.load(Ordering::Relaxed) {
            return Ok(());
        }
        let waited = Duration::from_nanos(inner.last_wait_ns.load(Ordering::Relaxed));
        Err(format!(
            "overloaded: for over {} ms clicks have waited more than overload_delay_ms = {} ms \
             before ingest worked on them (the last probe: {} ms)",
            inner.rule.window.as_millis(),
            inner.rule.delay.as_millis(),
            waited.as_millis(),
        ))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use prometheus_client::metrics::histogram::exponential_buckets;

    fn overload(delay_ms: u64, window_ms: u64) -> Overload {
        Overload::new(
            OverloadRule {
                delay: Duration::from_millis(delay_ms),
                window: Duration::from_millis(window_ms),
            },
            OverloadMetrics {
                queueing_delay_seconds: Histogram::new(exponential_buckets(0.000_25, 2.0, 15)),
                overloaded: Gauge::default(),
            },
        )
    }

    /// Probes every 100 ms of a 1 s window, each waiting `waits[i]` ms; whether each left
    /// ingest overloaded.
    fn verdicts(o: &Overload, waits: &[u64]) -> Vec<bool> {
        let start = Instant::now();
        let mut late_since = None;
        let ms = Duration::from_millis;
        waits
            .iter()
            .enumerate()
            .map(|(i, &wait)| {
                let deadline = start + ms(100 * i as u64);
                o.observe(&mut late_since, deadline, deadline + ms(wait));
                o.check().is_err()
            })
            .collect()
    }

    #[test]
    fn only_a_whole_window_of_late_probes_is_overload() {
        let o = overload(50, 1_000);
        // Late from the first probe (due at 0): overloaded once a probe ran 1 s after that.
        let mut waits = vec![80; 10];
        waits.extend([80, 2, 80, 80]);
        let got = verdicts(&o, &waits);
        // Due at 900 ms, ran at 980: not yet; due at 1,000 ms, ran at 1,080: yes. One probe on
        // time ends it, and the next late ones start a new stretch.
        let mut want = vec![false; 10];
        want.extend([true, false, false, false]);
        assert_eq!(got, want);
        let reason = {
            verdicts(&o, &[80; 11]);
            o.check().unwrap_err()
        };
        assert!(reason.contains("the last probe: 80 ms"), "{reason}");
        assert_eq!(o.inner.metrics.overloaded.get(), 1);
        verdicts(&o, &[2]);
        assert_eq!(o.inner.metrics.overloaded.get(), 0);
    }

    #[test]
    fn one_long_wait_is_overload_once_it_outlasts_the_window() {
        let o = overload(50, 1_000);
        assert_eq!(verdicts(&o, &[900]), [false]);
        assert_eq!(verdicts(&o, &[1_000]), [true]);
    }

    #[test]
    fn a_zero_delay_never_turns_readiness() {
        let o = overload(0, 100);
        assert!(verdicts(&o, &[1_000; 20]).iter().all(|&v| !v));
    }

    /// A backlog on a current-thread runtime: a task that holds its only worker for `slice` at a
    /// time, for `total`, as a saturated ingest's queued clicks would.
    pub(crate) async fn hold_the_worker(total: Duration, slice: Duration) {
        let until = std::time::Instant::now() + total;
        while std::time::Instant::now() < until {
            std::thread::sleep(slice);
            tokio::task::yield_now().await;
        }
    }

    /// The real probe on a runtime whose only worker is kept busy: the probe waits behind it,
    /// the verdict turns, and it turns back once the worker is free.
    #[tokio::test(flavor = "current_thread")]
    async fn a_blocked_runtime_is_overloaded_and_recovers() {
        let o = overload(30, 200);
        let probe = o.spawn_probe();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(o.check().is_ok(), "idle: {:?}", o.check());
        let busy = tokio::spawn(hold_the_worker(
            Duration::from_secs(1),
            Duration::from_millis(40),
        ));
        let started = std::time::Instant::now();
        let mut turned = None;
        while started.elapsed() < Duration::from_secs(1) {
            if o.check().is_err() {
                turned = Some(started.elapsed());
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let turned = turned.expect("a busy runtime was never overloaded");
        assert!(
            turned < Duration::from_millis(600),
            "turned after {turned:?}"
        );
        busy.await.unwrap();
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(
            o.check().is_ok(),
            "still overloaded after the backlog ended"
        );
        probe.abort();
    }
}
