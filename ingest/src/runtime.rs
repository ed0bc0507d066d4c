//! The Tokio runtime ingest serves clicks on: `[ingest] worker_threads` workers, and on one CPU a
//! current-thread runtime.
//!
//! A multi-thread runtime with a single worker runs every task on that worker, as a
//! current-thread runtime does, but through the machinery built for several: tasks are scheduled
//! through queues another worker could steal from (atomic operations on every spawn and wake), a
//! wake from the thread that `block_on` runs on (the accept loop) crosses to the worker, and the
//! worker parks and unparks through the shared driver. Per click — a connection's task, the
//! recording task it spawns, the Redis batcher's and the delivery reports' tasks — that is about
//! 3,300 instructions, 4 % of ingest's (BENCHMARKS.md, "a current-thread runtime on one CPU"). So where ingest may use one CPU (a container limited to one, a process
//! pinned to one) it runs on a current-thread runtime: the same tasks, in the same order of
//! readiness, on the thread that started it. On more CPUs it is Tokio's multi-thread runtime with
//! one worker per CPU, which spreads connections over them.
//!
//! Nothing ingest runs may block its thread either way: blocking work (opening the spill, reading
//! a segment to replay, flushing the producer on shutdown, looking at and loading the deny list)
//! goes to Tokio's blocking pool, and the spill's writes and fsyncs to the spill's own thread.
//!
//! The overload probe (`overload.rs`) meets the two runtimes' queues differently and measures
//! each the way a click's task waits in it.

use std::io;
use std::num::NonZeroUsize;

use tokio::runtime::{Builder, Runtime};

/// The workers `worker_threads` asks for: itself, or for 0 one per CPU this process may use (its
/// affinity mask and cgroup CPU quota, as `std::thread::available_parallelism` reads them).
pub fn workers(worker_threads: usize) -> usize {
    match worker_threads {
        0 => std::thread::available_parallelism().map_or(1, NonZeroUsize::get),
        n => n,
    }
}

/// The runtime for `worker_threads` (see [`workers`]): current-thread for one worker, else
/// multi-thread with that many. I/O and time drivers enabled.
pub fn build(worker_threads: usize) -> io::Result<Runtime> {
    match workers(worker_threads) {
        1 => Builder::new_current_thread().enable_all().build(),
        n => Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build(),
    }
}

#[cfg(test)]
mod tests {
    use tokio::runtime::RuntimeFlavor;

    use super::*;

    fn flavor(worker_threads: usize) -> RuntimeFlavor {
        build(worker_threads)
            .unwrap()
            .block_on(async { tokio::runtime::Handle::current().runtime_flavor() })
    }

    #[test]
    fn one_worker_is_a_current_thread_runtime_and_more_are_multi_thread() {
        assert_eq!(flavor(1), RuntimeFlavor::CurrentThread);
        assert_eq!(flavor(2), RuntimeFlavor::MultiThread);
        assert_eq!(workers(3), 3);
        let cpus = std::thread::available_parallelism().unwrap().get();
        assert_eq!(workers(0), cpus);
        let expected = if cpus == 1 {
            RuntimeFlavor::CurrentThread
        } else {
            RuntimeFlavor::MultiThread
        };
        assert_eq!(flavor(0), expected, "{cpus} CPUs");
    }
}
