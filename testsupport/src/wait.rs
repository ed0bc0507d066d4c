//! Waiting for a test's condition on a shared, noisy machine: a wait fails when the watched state
//! stops moving, not at a fixed time, so a slow run passes and a stuck one still fails loudly.

use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// The state of a wait: what was last seen and since when.
pub struct Progress {
    what: String,
    stall: Duration,
    cap: Duration,
    started: Instant,
    seen: Option<String>,
    changed: Instant,
}

impl Progress {
    /// `stall`: how long the state may stand still. The whole wait is bounded by six stalls,
    /// so a state that keeps changing without ever getting there fails too.
    pub fn new(what: &str, stall: Duration) -> Progress {
        let now = Instant::now();
        Progress {
            what: what.to_string(),
            stall,
            cap: stall * 6,
            started: now,
            seen: None,
            changed: now,
        }
    }

    /// Records the state now (`state` describes it, e.g. "58322 of 60000"); an error naming the
    /// wait and the state when it stood still for a stall or the wait went past its bound.
    pub fn observe(&mut self, state: &str) -> Result<(), String> {
        let now = Instant::now();
        if self.seen.as_deref() != Some(state) {
            self.seen = Some(state.to_string());
            self.changed = now;
        }
        if now - self.changed > self.stall {
            return Err(format!(
                "{}: no progress for {:?}, still {state}",
                self.what, self.stall
            ));
        }
        if now - self.started > self.cap {
            return Err(format!(
                "{}: not reached within {:?} (still moving), now {state}",
                self.what, self.cap
            ));
        }
        Ok(())
    }
}

/// Polls `done` until it holds; the error says why it gave up: what `done` reports (its `Err`)
/// stopped changing for `stall`, or six stalls passed in all. Polls every 10 ms at first, so a
/// condition that holds soon is seen soon, then less often, up to every 500 ms.
pub async fn until<F, Fut>(stall: Duration, what: &str, mut done: F) -> Result<(), String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let mut progress = Progress::new(what, stall);
    let mut pause = Duration::from_millis(10);
    loop {
        match done().await {
            Ok(()) => return Ok(()),
            Err(state) => progress.observe(&state)?,
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(500));
    }
}

/// [`until`], panicking when it gives up.
pub async fn eventually<F, Fut>(stall: Duration, what: &str, done: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    if let Err(failed) = until(stall, what, done).await {
        panic!("{failed}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_moving_state_may_take_longer_than_a_stall_but_a_still_one_fails() {
        let mut p = Progress::new("w", Duration::from_secs(10));
        for i in 0..5 {
            p.observe(&i.to_string()).unwrap();
            tokio::time::advance(Duration::from_secs(8)).await;
        }
        // "4" was seen 8 s ago: still within the stall; 3 s more and it is not.
        p.observe("4").unwrap();
        tokio::time::advance(Duration::from_secs(3)).await;
        p.observe("4").unwrap_err();
        let mut p = Progress::new("w", Duration::from_secs(10));
        for i in 0..10 {
            if p.observe(&i.to_string()).is_err() {
                assert!(i > 6, "the bound is six stalls, failed at {i}");
                return;
            }
            tokio::time::advance(Duration::from_secs(9)).await;
        }
        panic!("a wait that keeps moving is still bounded");
    }
}
