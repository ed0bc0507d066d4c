//! A bound on another server's time — Redis's for a claim, Kafka's for a delivery report — that
//! does not count the time ingest's own runtime kept the answer waiting.
//!
//! An answer reaches the click through tasks of ingest's runtime (redis-rs's connection driver,
//! the delivery-report task), and the wait for it is itself a task woken by a timer. While the
//! runtime is behind (a burst, a busy core), all of them wait their turn: the wait's timer fires
//! late, and an answer the server gave in a millisecond may still sit in a task that has not run.
//! A plain timeout then fails a click open (dedup) or sends it to the spill (produce) for ingest's
//! own backlog — each of which costs more than the click it replaces, so the backlog grows.
//!
//! So when the wait runs later than its deadline, the answer gets as long again as the wait was
//! late, and again while the runtime stays behind: each turn that runs late by L gives L more. The
//! wait ends with a miss when a turn runs on time (within [`ON_TIME`]: the runtime has caught up
//! and the answer has still not come, the server's miss), or once it has forgiven
//! [`MOST_FORGIVEN`] in all. The extensions follow ingest's backlog, which delays the click anyway;
//! the limit is for a silent server while ingest is overloaded (at the default
//! `overload_delay_ms` of 100, `overload.rs` has turned `/readyz` 503 by then): it must not hold
//! clicks long past the bound however far behind ingest is. (A limit of a second instead failed as
//! many clicks open at 10,000 clicks/s on one shared core: there the rounds that missed had mostly
//! run on time — BENCHMARKS.md, "one bound for Redis and Kafka".)

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// A turn of the wait that runs at most this late is on time: Tokio's timers fire on the next
/// millisecond's tick, and a turn of the driver takes a moment.
pub const ON_TIME: Duration = Duration::from_millis(2);

/// The most lateness a wait forgives in all, beyond its bound.
pub const MOST_FORGIVEN: Duration = Duration::from_millis(250);

/// `answer`, or `None` when it took longer than `bound` of the answering server's time (module
/// doc).
pub async fn within_bound<F: Future>(bound: Duration, answer: F) -> Option<F::Output> {
    tokio::pin!(answer);
    let mut deadline = Instant::now() + bound;
    let last_deadline = deadline + MOST_FORGIVEN;
    loop {
        if let Ok(answered) = tokio::time::timeout_at(deadline, &mut answer).await {
            return Some(answered);
        }
        let now = Instant::now();
        let late = now.saturating_duration_since(deadline);
        if late <= ON_TIME || deadline >= last_deadline {
            return None;
        }
        deadline = (now + late).min(last_deadline);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::oneshot;

    fn current_thread() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
    }

    /// Holds the runtime's only thread up for `how_long`, from a task of its own.
    fn hold_up(how_long: Duration) {
        tokio::spawn(async move { std::thread::sleep(how_long) });
    }

    /// A wait run late — the runtime was behind — gives the answer as long again as it was late,
    /// and again while the runtime stays behind. On time, past the bound is a miss.
    #[test]
    fn a_wait_run_late_gives_the_answer_as_long_again_as_it_was_late() {
        current_thread().block_on(async {
            let bound = Duration::from_millis(20);
            let (tell, answer) = oneshot::channel();
            let wait = tokio::spawn(within_bound(bound, answer));
            // The answer is given at 50 ms, one task later (as redis-rs's driver hands it on)...
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                tokio::spawn(async move { tell.send(7) });
            });
            // ...and the runtime is held up until 100 ms: the wait runs 80 ms after its bound,
            // before the answer's task has run.
            hold_up(Duration::from_millis(100));
            assert_eq!(wait.await.unwrap(), Some(Ok(7)));

            let (_tell, answer) = oneshot::channel::<i32>();
            let started = Instant::now();
            assert_eq!(within_bound(bound, answer).await, None);
            assert!(started.elapsed() < Duration::from_millis(100));
        });
    }

    /// A runtime that stays behind extends the wait again: the first extension's turn is held up
    /// too, and the answer that comes then is still in time.
    #[test]
    fn a_runtime_that_stays_behind_extends_the_wait_again() {
        current_thread().block_on(async {
            let bound = Duration::from_millis(20);
            let start = Instant::now();
            let (tell, answer) = oneshot::channel();
            let wait = tokio::spawn(within_bound(bound, answer));
            // Held up to 60 ms (the wait's turn 40 ms late: 40 more, to 100 ms), then held up
            // again from 61 ms to 161 ms, and the answer comes at 130 ms, one task later: the
            // extension's turn runs 61 ms late, before the answer's task has run.
            hold_up(Duration::from_millis(60));
            tokio::spawn(async move {
                tokio::time::sleep_until(start + Duration::from_millis(130)).await;
                tokio::spawn(async move { tell.send(7) });
            });
            tokio::spawn(async move {
                tokio::time::sleep_until(start + Duration::from_millis(61)).await;
                std::thread::sleep(Duration::from_millis(100));
            });
            assert_eq!(wait.await.unwrap(), Some(Ok(7)));
        });
    }

    /// However far behind the runtime is, a silent server costs a click its bound and at most
    /// MOST_FORGIVEN of lateness more: past that the wait ends at its next turn.
    #[test]
    fn the_lateness_forgiven_is_bounded() {
        current_thread().block_on(async {
            let bound = Duration::from_millis(20);
            let start = Instant::now();
            let (_tell, answer) = oneshot::channel::<i32>();
            let wait = tokio::spawn(within_bound(bound, answer));
            // Held up to 100 ms (the turn 80 ms late: 80 more, to 180 ms), then from 101 ms to
            // 200 ms past the limit: that turn is later than the limit again, which would extend
            // the wait as long again, but only MOST_FORGIVEN past the bound are forgiven.
            let second_turn = bound + MOST_FORGIVEN + Duration::from_millis(200);
            hold_up(Duration::from_millis(100));
            tokio::spawn(async move {
                tokio::time::sleep_until(start + Duration::from_millis(101)).await;
                std::thread::sleep(second_turn - Duration::from_millis(101));
            });
            assert_eq!(wait.await.unwrap(), None);
            let waited = start.elapsed();
            assert!(
                waited < second_turn + Duration::from_millis(400),
                "waited {waited:?}"
            );
        });
    }
}
