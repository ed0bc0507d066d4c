//! librdkafka's threads made batch work for the kernel's scheduler (`SCHED_BATCH`): woken, they
//! wait for the core they share with Tokio's worker instead of preempting it.
//!
//! Why: librdkafka's broker thread wakes for the ProduceRequests it sends and the answers it
//! reads — 0.4 times per click at 10,000 clicks/s on 8 partitions, 0.74 on 32 (BENCHMARKS.md,
//! "librdkafka's threads as batch work") — and on a core shared with Tokio's worker nearly every
//! one of those wake-ups preempted the worker in the middle of a click: an involuntary context
//! switch each, and the click's work resumed on a cold cache. As batch threads they run when the
//! worker waits for I/O or its time slice ends: Linux's fair scheduler never lets a waking
//! `SCHED_BATCH` thread preempt the running one, and gives it the same share of the CPU as a
//! default thread of the same nice value. What that costs is a wait of at most the worker's time
//! slice before a ProduceRequest goes out or an answer is read while the worker is busy; measured,
//! the redirect's p99 came down, not up (the worker, not the broker thread, holds the click).
//!
//! How: a thread starts under its creator's policy, and every librdkafka thread is started by the
//! call that creates the client or by a thread that call started (its main thread starts the
//! broker threads it learns of later). So [`created_as_batch`] puts the calling thread under
//! `SCHED_BATCH` for that call and back afterwards. Only a thread under the default policy
//! (`SCHED_OTHER`) is changed: under another one (`chrt` by an operator), librdkafka's threads
//! inherit that one. Elsewhere than Linux nothing changes.

/// Runs `create` (the call that creates a librdkafka client) with the calling thread under
/// `SCHED_BATCH`, so that the threads it starts, and the threads those start, are batch work.
/// The calling thread is put back under its own policy afterwards, also when `create` panics. A
/// policy the kernel refuses is logged and changes nothing else: the client is created anyway.
pub fn created_as_batch<T>(create: impl FnOnce() -> T) -> T {
    let _restore = policy::batch_for_now();
    create()
}

#[cfg(target_os = "linux")]
mod policy {
    /// Puts the calling thread back under `SCHED_OTHER` when dropped.
    pub struct Restore;

    impl Drop for Restore {
        fn drop(&mut self) {
            if let Err(error) = set_policy(libc::SCHED_OTHER) {
                tracing::warn!(%error, "cannot put the thread that created the Kafka client back under SCHED_OTHER");
            }
        }
    }

    /// The calling thread under `SCHED_BATCH` until the guard drops, when it was under
    /// `SCHED_OTHER`; else (or when the kernel refuses) nothing, and no guard.
    pub fn batch_for_now() -> Option<Restore> {
        // SAFETY: pid 0 is the calling thread; the call only reads its policy.
        let policy = unsafe { libc::sched_getscheduler(0) };
        if policy != libc::SCHED_OTHER {
            return None;
        }
        match set_policy(libc::SCHED_BATCH) {
            Ok(()) => Some(Restore),
            Err(error) => {
                tracing::warn!(%error, "cannot start librdkafka's threads under SCHED_BATCH; they keep the default policy");
                None
            }
        }
    }

    /// `policy` (static priority 0) for the calling thread: Linux's `sched_setscheduler` applies to
    /// the thread whose id is given, 0 being the caller, not to the whole process.
    fn set_policy(policy: libc::c_int) -> std::io::Result<()> {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: pid 0 is the calling thread; `param` is a valid `sched_param` for the call.
        if unsafe { libc::sched_setscheduler(0, policy, &param) } == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod policy {
    pub fn batch_for_now() {}
}

#[cfg(all(test, target_os = "linux"))]
pub(crate) mod tests {
    use super::*;

    /// The scheduling policy of thread `tid` (0: the calling thread).
    pub(crate) fn policy_of(tid: libc::pid_t) -> libc::c_int {
        // SAFETY: reads a thread's policy; an unknown tid is an error return, not UB.
        unsafe { libc::sched_getscheduler(tid) }
    }

    #[test]
    fn threads_started_inside_and_their_own_threads_are_batch_the_caller_is_put_back() {
        assert_eq!(
            policy_of(0),
            libc::SCHED_OTHER,
            "the test runs under the default policy"
        );
        let (child, grandchild) = created_as_batch(|| {
            std::thread::spawn(|| {
                let grandchild = std::thread::spawn(|| policy_of(0));
                (policy_of(0), grandchild.join().unwrap())
            })
        })
        .join()
        .unwrap();
        assert_eq!(child, libc::SCHED_BATCH);
        assert_eq!(grandchild, libc::SCHED_BATCH);
        assert_eq!(policy_of(0), libc::SCHED_OTHER);
        // A thread started after the call is the caller's again.
        assert_eq!(
            std::thread::spawn(|| policy_of(0)).join().unwrap(),
            libc::SCHED_OTHER
        );
    }

    #[test]
    fn the_caller_is_put_back_when_the_call_panics() {
        let panicked = std::panic::catch_unwind(|| created_as_batch(|| panic!("creating failed")));
        assert!(panicked.is_err());
        assert_eq!(policy_of(0), libc::SCHED_OTHER);
    }
}
