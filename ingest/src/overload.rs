//! Overload: how long work that became ready waits before ingest's runtime runs it, and whether
//! that wait says ingest cannot keep up — then `/readyz` answers 503, so that a load balancer
//! shifts traffic to other instances. Nothing is shed: every click that arrives is still
//! redirected and made durable; the signal only asks for fewer of them.
//!
//! A click is worked on when the Tokio task serving its connection is polled. When the runtime
//! is saturated, the tasks of connections whose bytes arrived wait in its run queues — a worker's
//! own queue holds 256, the rest overflow into the runtime's shared (injection) queue, where the
//! backlog grows without bound under overload. The probe measures that wait the way a click's
//! task meets it: a thread of its own, outside the runtime, spawns a task — a task spawned from
//! outside goes to the back of the injection queue — and the task notes when it ran. Every
//! `overload_window_ms / 10` the thread takes one sample: the wait of the probe that ran since
//! the last sample, or, while it has not run yet, its wait so far (so a runtime too busy to run
//! the probe at all still turns the verdict), and spawns the next probe once one has run. On an
//! idle runtime a probe waits a few microseconds.
//!
//! (A task inside the runtime that yields does not measure this: Tokio runs a yielded task right
//! after its next look at the I/O driver, ahead of the injection queue. An earlier probe did that
//! and saw 25 ms on average while clicks waited seconds: BENCHMARKS.md, "the overload signal".)
//!
//! - `adclick_ingest_queueing_delay_seconds` (histogram): each probe's wait, once it ran.
//! - `adclick_ingest_overloaded` (gauge): 1 while overloaded.
//! - Overloaded means: **more than half of the last window's ten samples waited longer than
//!   `overload_delay_ms`** — a backlog that lasts, not one slow poll; and not "every sample"
//!   either, because a saturated runtime still runs some probes at once (one that lands just as a
//!   worker frees up, or as a CPU quota's next period begins). `/readyz` turns 503 about half a
//!   window after the backlog starts and back about half a window after it ends.
//!   `overload_delay_ms = 0` turns the readiness part off (the delay is still measured).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError, sync_channel};
use std::time::{Duration, Instant};

use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use tokio::runtime::Handle;

/// Samples per window.
const PROBES_PER_WINDOW: u32 = 10;

/// When ingest counts as overloaded (`[ingest] overload_delay_ms`, `overload_window_ms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverloadRule {
    /// A sample that waited longer than this is late; `Duration::ZERO`: never overloaded.
    pub delay: Duration,
    /// Overloaded while most of the samples of this last stretch were late.
    pub window: Duration,
}

impl OverloadRule {
    /// How often the probe samples: a tenth of the window, at least a millisecond.
    pub fn period(&self) -> Duration {
        (self.window / PROBES_PER_WINDOW).max(Duration::from_millis(1))
    }
}

/// The last window's samples, late or not: the probe thread's own state.
#[derive(Debug, Default)]
struct Samples {
    /// Bit i: whether the i-th most recent sample was late.
    late: u32,
}

impl Samples {
    /// Takes a sample; whether most of the last window's were late.
    fn push(&mut self, late: bool) -> bool {
        let window = (1u32 << PROBES_PER_WINDOW) - 1;
        self.late = ((self.late << 1) | u32::from(late)) & window;
        self.late.count_ones() > PROBES_PER_WINDOW / 2
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

/// The running probe (`Overload::spawn_probe`); stops its thread when stopped or dropped.
#[derive(Debug)]
pub struct Probe {
    stop: Arc<AtomicBool>,
}

impl Probe {
    /// Stops the probe: its thread ends within a probe period.
    pub fn stop(self) {}
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
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

    /// Starts the probe's thread for the current runtime (the one serving clicks). It stops when
    /// the [`Probe`] is stopped or dropped, or when the runtime is gone.
    ///
    /// # Panics
    /// Outside a Tokio runtime.
    pub fn spawn_probe(&self) -> Probe {
        let runtime = Handle::current();
        let stop = Arc::new(AtomicBool::new(false));
        let (this, stopped) = (self.clone(), stop.clone());
        let spawned = std::thread::Builder::new()
            .name("adclick-overload-probe".into())
            .spawn(move || this.probe(&runtime, &stopped));
        if let Err(error) = spawned {
            // Readiness then never turns for overload; everything else works.
            tracing::error!(%error, "cannot start the overload probe's thread");
        }
        Probe { stop }
    }

    fn probe(&self, runtime: &Handle, stop: &AtomicBool) {
        let period = self.inner.rule.period();
        let mut samples = Samples::default();
        // The probe spawned and not yet sampled as run: when, and where it says when it ran.
        let mut pending: Option<(Instant, Receiver<Instant>)> = None;
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(period);
            if let Some((spawned, ran)) = &pending {
                match ran.try_recv() {
                    Ok(ran) => {
                        self.sample(&mut samples, *spawned, ran, true);
                        pending = None;
                    }
                    Err(TryRecvError::Empty) => {
                        self.sample(&mut samples, *spawned, Instant::now(), false);
                    }
                    // The runtime is shut down: it dropped the probe unrun.
                    Err(TryRecvError::Disconnected) => return,
                }
            }
            if pending.is_none() {
                let (tell, ran) = sync_channel(1);
                pending = Some((Instant::now(), ran));
                drop(runtime.spawn(async move {
                    let _ = tell.send(Instant::now());
                }));
            }
        }
    }

    /// Takes the sample of a probe spawned at `spawned` that ran at `until` (`ran`), or is still
    /// waiting then.
    fn sample(&self, samples: &mut Samples, spawned: Instant, until: Instant, ran: bool) {
        let inner = &self.inner;
        let waited = until.saturating_duration_since(spawned);
        if ran {
            inner
                .metrics
                .queueing_delay_seconds
                .observe(waited.as_secs_f64());
        }
        inner.last_wait_ns.store(
            u64::try_from(waited.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        let late = !inner.rule.delay.is_zero() && waited > inner.rule.delay;
        let overloaded = samples.push(late);
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
            "overloaded: over the last {} ms clicks have mostly waited more than \
             overload_delay_ms = {} ms before ingest worked on them (the last probe: {} ms)",
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

    /// How many probes the histogram holds.
    fn probes_run(o: &Overload) -> u64 {
        let mut registry = prometheus_client::registry::Registry::default();
        let histogram = o.inner.metrics.queueing_delay_seconds.clone();
        registry.register("probe", "", histogram);
        adclick_admin::encode(&registry)
            .lines()
            .find_map(|line| line.strip_prefix("probe_count "))
            .and_then(|n| n.parse().ok())
            .unwrap()
    }

    /// Samples of a 1 s window, each having waited `waits[i]` ms (`ran`: the probe ran, else it
    /// is still waiting); whether each left ingest overloaded.
    fn verdicts(o: &Overload, samples: &mut Samples, waits: &[u64], ran: bool) -> Vec<bool> {
        let spawned = Instant::now();
        waits
            .iter()
            .map(|&wait| {
                o.sample(samples, spawned, spawned + Duration::from_millis(wait), ran);
                o.check().is_err()
            })
            .collect()
    }

    #[test]
    fn most_of_a_window_late_is_overload() {
        let o = overload(50, 1_000);
        let mut samples = Samples::default();
        // Five late samples of ten are not yet most of the window; the sixth is.
        let got = verdicts(&o, &mut samples, &[80, 80, 2, 80, 80, 2, 80, 2, 80], true);
        assert_eq!(
            got,
            [false, false, false, false, false, false, false, false, true]
        );
        let reason = o.check().unwrap_err();
        assert!(reason.contains("the last probe: 80 ms"), "{reason}");
        assert_eq!(o.inner.metrics.overloaded.get(), 1);
        // One sample on time does not end it (a saturated runtime still runs some probes at
        // once); a run of them does, once most of the window is on time.
        let got = verdicts(&o, &mut samples, &[2, 2, 2, 2], true);
        assert_eq!(got, [true, false, false, false]);
        assert_eq!(o.inner.metrics.overloaded.get(), 0);
        assert_eq!(probes_run(&o), 13);
    }

    #[test]
    fn the_window_forgets_older_samples() {
        let o = overload(50, 1_000);
        let mut samples = Samples::default();
        verdicts(&o, &mut samples, &[80; 5], true);
        // Ten on time push the five late ones out of the window: five late again is not most.
        verdicts(&o, &mut samples, &[2; 10], true);
        let got = verdicts(&o, &mut samples, &[80; 6], true);
        assert_eq!(got, [false, false, false, false, false, true]);
    }

    #[test]
    fn a_zero_delay_never_turns_readiness() {
        let o = overload(0, 100);
        let mut samples = Samples::default();
        assert!(
            verdicts(&o, &mut samples, &[1_000; 20], true)
                .iter()
                .all(|&v| !v)
        );
    }

    #[test]
    fn a_probe_that_has_not_run_turns_the_verdict_while_it_waits() {
        let o = overload(50, 1_000);
        let mut samples = Samples::default();
        // One probe stuck: sampled each period with its wait so far, late from the second.
        let got = verdicts(&o, &mut samples, &[40, 140, 240, 340, 440, 540, 640], false);
        assert_eq!(got, [false, false, false, false, false, false, true]);
        let reason = o.check().unwrap_err();
        assert!(reason.contains("the last probe: 640 ms"), "{reason}");
        // The wait so far is not a probe's wait: only a probe that ran is in the histogram.
        assert_eq!(probes_run(&o), 0);
    }

    /// An overload rule of 30 ms over 200 ms with its probe on `runtime`, idle for 300 ms and not
    /// overloaded.
    fn probed_while_idle(runtime: &tokio::runtime::Runtime) -> (Overload, Probe) {
        let o = overload(30, 200);
        let probe = runtime.block_on(async { o.spawn_probe() });
        runtime.block_on(async { tokio::time::sleep(Duration::from_millis(300)).await });
        assert!(o.check().is_ok(), "idle: {:?}", o.check());
        (o, probe)
    }

    /// A thread that gives how long after its start `o` turned overloaded, if it did within `limit`.
    fn watch_for_overload(
        o: &Overload,
        limit: Duration,
    ) -> std::thread::JoinHandle<Option<Duration>> {
        let o = o.clone();
        std::thread::spawn(move || {
            let started = Instant::now();
            while started.elapsed() < limit {
                if o.check().is_err() {
                    return Some(started.elapsed());
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            None
        })
    }

    /// A runtime whose only worker is stuck in one poll cannot run the probe at all: the verdict
    /// turns while the probe still waits, and back once the worker is free.
    #[test]
    fn a_runtime_stuck_in_one_poll_is_overloaded_before_the_probe_runs() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (o, probe) = probed_while_idle(&runtime);
        let watcher = watch_for_overload(&o, Duration::from_secs(1));
        runtime.block_on(async { std::thread::sleep(Duration::from_millis(800)) });
        let turned = watcher
            .join()
            .unwrap()
            .expect("a stuck runtime was never overloaded");
        assert!(
            turned < Duration::from_millis(600),
            "turned after {turned:?}"
        );
        runtime.block_on(async { tokio::time::sleep(Duration::from_millis(150)).await });
        assert!(o.check().is_ok(), "still overloaded: {:?}", o.check());
        probe.stop();
    }

    /// A task that is ready again at once after each poll, which takes `slice`, for `total`: a
    /// connection whose next bytes are already in, woken to the back of the runtime's run queue
    /// as the I/O driver wakes it (not deferred, as a yield is).
    async fn ready_again(total: Duration, slice: Duration) {
        let until = Instant::now() + total;
        std::future::poll_fn(|cx| {
            if Instant::now() >= until {
                return std::task::Poll::Ready(());
            }
            std::thread::sleep(slice);
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        })
        .await
    }

    /// The backlog of a saturated ingest: many short polls of many ready tasks, each of which
    /// waits for all the others (1,000 tasks of 0.1 ms per worker: 100 ms; more than the 256 a
    /// worker's own queue holds, as under overload, module doc), on the multi-thread
    /// runtime `adclick ingest` runs, with one worker (one CPU) and with two. The probe must wait
    /// as they do. (Why ingest does not run on a current-thread runtime on one CPU: there a task
    /// spawned from outside runs ahead of such a queue, every 31st turn, and the probe missed the
    /// backlog: BENCHMARKS.md, "a current-thread runtime measured and not kept".)
    #[test]
    fn a_backlog_of_many_ready_tasks_is_overloaded() {
        for worker_threads in [1, 2] {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(worker_threads)
                .enable_all()
                .build()
                .unwrap();
            let (o, probe) = probed_while_idle(&runtime);
            let watcher = watch_for_overload(&o, Duration::from_millis(1_500));
            runtime.block_on(async {
                let tasks: Vec<_> = (0..1_000 * worker_threads)
                    .map(|_| {
                        tokio::spawn(ready_again(
                            Duration::from_millis(1_500),
                            Duration::from_micros(100),
                        ))
                    })
                    .collect();
                for task in tasks {
                    task.await.unwrap();
                }
            });
            let turned = watcher.join().unwrap();
            assert!(
                turned.is_some_and(|t| t < Duration::from_millis(1_000)),
                "{worker_threads} worker(s): a backlog of ~100 ms per task turned the verdict \
                 after {turned:?}; last probe {:?}",
                Duration::from_nanos(o.inner.last_wait_ns.load(Ordering::Relaxed))
            );
            runtime.block_on(async { tokio::time::sleep(Duration::from_millis(300)).await });
            assert!(o.check().is_ok(), "still overloaded: {:?}", o.check());
            probe.stop();
        }
    }

    /// A backlog on a current-thread runtime: a task that holds its only worker for `slice` at a
    /// time, for `total`, as a saturated ingest's queued clicks would. A probe spawned a period
    /// after the last one ran waits the rest of a slice: with `slice` longer than the delay plus
    /// a probe period, every probe is late.
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
            Duration::from_millis(100),
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
        probe.stop();
    }
}
