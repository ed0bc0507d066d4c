//! Delivery reports taken on the Tokio side: librdkafka signals a socket when its main queue holds
//! events, and a task polls the producer there, so each report completes its click's future on a
//! Tokio worker.
//!
//! rust-rdkafka's `FutureProducer` polls from a thread of its own: every batch of reports woke that
//! thread (a futex from librdkafka's broker thread), and every report woke the click's task on
//! another thread again (BENCHMARKS.md, "ingest": the two hand-offs were much of ingest's kernel
//! time). Here librdkafka writes one byte to a socket pair when its queue goes from served to
//! non-empty (`rd_kafka_queue_io_event_enable`: one write per serving, however many reports
//! queue up meanwhile), Tokio's reactor wakes the task, and the task serves every queued event.
//!
//! Drop order: the queue reference and the io event are released before the producer (librdkafka
//! waits for every queue reference at destroy), the socket after it.

use std::future::Future;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use rdkafka::bindings as rdsys;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, DeliveryResult, Producer as _, ProducerContext};
use rdkafka::{ClientConfig, ClientContext};
use tokio::sync::oneshot;

/// How often the task looks at the queue even without a signal: a safety net only (a report the
/// signal missed would otherwise leave its click waiting for its bound).
const LOOK_ANYWAY: Duration = Duration::from_millis(100);

/// What became of one record.
pub type Report = Result<(), KafkaError>;

/// The producer's context: hands each report to the future its record was sent with.
pub struct Reports;

impl ClientContext for Reports {}

impl ProducerContext for Reports {
    type DeliveryOpaque = Box<oneshot::Sender<Report>>;

    fn delivery(&self, result: &DeliveryResult<'_>, done: Self::DeliveryOpaque) {
        // The click may have stopped waiting (its bound passed): nobody to tell then.
        let _ = done.send(result.as_ref().map(|_| ()).map_err(|(e, _)| e.clone()));
    }
}

/// A delivery report to come.
pub struct Pending(oneshot::Receiver<Report>);

impl Pending {
    /// The future of a record sent with `done` as its delivery opaque.
    pub fn new() -> (Box<oneshot::Sender<Report>>, Pending) {
        let (done, report) = oneshot::channel();
        (Box::new(done), Pending(report))
    }
}

impl Future for Pending {
    type Output = Report;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Report> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|report| report.unwrap_or(Err(KafkaError::Canceled)))
    }
}

/// librdkafka's main queue (a reference of ours); librdkafka's queues are thread-safe.
struct MainQueue(*mut rdsys::rd_kafka_queue_t);

// SAFETY: the pointer is only passed to librdkafka's queue functions, which lock the queue.
unsafe impl Send for MainQueue {}
// SAFETY: as above.
unsafe impl Sync for MainQueue {}

/// The producer with its queue wired to a socket.
pub struct Kafka {
    queue: MainQueue,
    producer: BaseProducer<Reports>,
    /// The end librdkafka writes to; closed after the producer is destroyed.
    _signal: UnixStream,
}

impl Kafka {
    /// Creates the producer and the task that serves its reports; the task ends once the
    /// producer is dropped. Call within a Tokio runtime.
    pub fn create(config: &ClientConfig) -> Result<Arc<Kafka>, CreateError> {
        let producer: BaseProducer<Reports> = config
            .create_with_context(Reports)
            .map_err(CreateError::Kafka)?;
        let (watched, signal) = UnixStream::pair().map_err(CreateError::Signal)?;
        // librdkafka's write must never block its broker thread; ours never waits either.
        watched.set_nonblocking(true).map_err(CreateError::Signal)?;
        signal.set_nonblocking(true).map_err(CreateError::Signal)?;
        let watched = tokio::net::UnixStream::from_std(watched).map_err(CreateError::Signal)?;
        const WAKE: [u8; 1] = [1];
        // SAFETY: the client pointer is valid while `producer` lives; librdkafka copies the
        // payload; the queue reference is released in `Drop` before the producer is destroyed.
        let queue = unsafe {
            let queue = rdsys::rd_kafka_queue_get_main(producer.client().native_ptr());
            rdsys::rd_kafka_queue_io_event_enable(
                queue,
                signal.as_raw_fd(),
                WAKE.as_ptr().cast(),
                WAKE.len(),
            );
            MainQueue(queue)
        };
        let kafka = Arc::new(Kafka {
            queue,
            producer,
            _signal: signal,
        });
        tokio::spawn(serve_reports(Arc::downgrade(&kafka), watched));
        Ok(kafka)
    }

    pub fn producer(&self) -> &BaseProducer<Reports> {
        &self.producer
    }

    /// Serves every event queued now (each `poll` serves one).
    fn serve(&self) {
        // SAFETY: the queue reference lives as long as `self`.
        while unsafe { rdsys::rd_kafka_queue_length(self.queue.0) } > 0 {
            self.producer.poll(Duration::ZERO);
        }
    }
}

impl Drop for Kafka {
    fn drop(&mut self) {
        // SAFETY: our own reference, released once; -1 turns the io event off first.
        unsafe {
            rdsys::rd_kafka_queue_io_event_enable(self.queue.0, -1, std::ptr::null(), 0);
            rdsys::rd_kafka_queue_destroy(self.queue.0);
        }
    }
}

/// Why the producer could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("creating the Kafka producer")]
    Kafka(#[source] KafkaError),
    #[error("creating the socket pair that signals delivery reports")]
    Signal(#[source] io::Error),
}

/// Serves the producer's events whenever librdkafka signals, until the producer is gone.
async fn serve_reports(kafka: Weak<Kafka>, watched: tokio::net::UnixStream) {
    let mut bytes = [0u8; 64];
    let mut signalled = true;
    loop {
        if signalled {
            // A timeout is not an error: the queue is looked at anyway.
            let _ = tokio::time::timeout(LOOK_ANYWAY, watched.readable()).await;
        } else {
            tokio::time::sleep(LOOK_ANYWAY).await;
        }
        while signalled {
            match watched.try_read(&mut bytes) {
                // The producer was dropped: its end is closed.
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    tracing::error!(error = %e, "the delivery-report signal failed; reports are served every 100 ms");
                    signalled = false;
                }
            }
        }
        let Some(kafka) = kafka.upgrade() else {
            return;
        };
        kafka.serve();
    }
}
