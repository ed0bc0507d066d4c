//! A service a test runs as a task of its own process, and stops: gracefully (its result
//! checked), within a bound, or as a crash.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The `shutdown` future a service's `run(…, shutdown)` takes: it completes when the test asks
/// the task to stop, or drops its [`Stoppable`].
pub struct StopSignal(oneshot::Receiver<()>);

impl Future for StopSignal {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.0).poll(cx).map(|_| ())
    }
}

/// A spawned service and the ways to stop it.
pub struct Stoppable<T> {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<T>,
}

impl<T: Send + 'static> Stoppable<T> {
    /// Spawns `service(signal)` on the test's runtime.
    pub fn spawn<Fut>(service: impl FnOnce(StopSignal) -> Fut) -> Stoppable<T>
    where
        Fut: Future<Output = T> + Send + 'static,
    {
        let (stop, stopped) = oneshot::channel();
        Stoppable {
            stop: Some(stop),
            task: tokio::spawn(service(StopSignal(stopped))),
        }
    }

    /// Graceful: signals it, waits until it returns and gives back what it returned.
    pub async fn stop(mut self) -> T {
        self.signal();
        self.task.await.expect("the service's task panicked")
    }

    /// Signals it and waits at most `within`, however it ends: for a test that has checked what
    /// it came for.
    pub async fn stop_within(mut self, within: Duration) {
        self.signal();
        let _ = tokio::time::timeout(within, self.task).await;
    }

    /// A crash: the task stops where it is; nothing after that point runs.
    pub async fn crash(self) {
        self.task.abort();
        let _ = self.task.await;
    }

    fn signal(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
