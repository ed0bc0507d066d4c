//! The HTTP/1.1 accept loop of the public listener: hyper with the connection-level limits (head
//! size, head timeout, connection count) that `axum::serve` does not expose, the peer address for
//! the per-IP limit, and a graceful stop that lets open requests finish.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::Request;
use axum::response::Response;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Connection-level limits.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    pub max_connections: usize,
    /// Read buffer, and so the largest request head (hyper's minimum is 8192).
    pub max_header_bytes: usize,
    pub header_timeout: Duration,
}

/// Serves `service_for(peer)` on each connection `listener` accepts until `stop` completes, then
/// stops accepting and waits up to `drain` for open connections to finish their requests.
pub async fn serve<S>(
    listener: TcpListener,
    service_for: impl Fn(SocketAddr) -> S,
    limits: ConnLimits,
    stop: impl Future<Output = ()>,
    drain: Duration,
) where
    S: tower::Service<Request<Incoming>, Response = Response, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192))
        // No `max_headers`: hyper's default of 100 header fields (a 431 past it; browsers send
        // about twenty) keeps its parse buffers on the stack, while any cap set here builds them
        // anew for every request — 1,400 instructions a click, 1.4 % of ingest's (BENCHMARKS.md,
        // "instructions and allocations per click").
        .keep_alive(true);
    tokio::pin!(stop);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut stop => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let _ = stream.set_nodelay(true);
        let connection = builder.serve_connection(
            TokioIo::new(stream),
            TowerToHyperService::new(service_for(peer)),
        );
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, %peer, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            ?drain,
            "connections still open after the drain timeout; closing them"
        );
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A server on 127.0.0.1:0 answering `GET /` with "ok", with `limits`; its address and
    /// what stops it.
    async fn ok_server(
        limits: ConnLimits,
    ) -> (
        SocketAddr,
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(
            listener,
            move |_| app.clone(),
            limits,
            async {
                let _ = stopped.await;
            },
            Duration::from_secs(1),
        ));
        (addr, stop, server)
    }

    /// The status line of the answer to `head` on a new connection.
    async fn status_of(addr: SocketAddr, head: &str) -> String {
        let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
        conn.write_all(head.as_bytes()).await.unwrap();
        let mut buf = vec![0u8; 4096];
        let n = conn.read(&mut buf).await.unwrap();
        String::from_utf8_lossy(&buf[..n])
            .lines()
            .next()
            .unwrap_or_default()
            .to_string()
    }

    /// hyper's own limit on the number of header fields (100) stands: past it, a 431.
    #[tokio::test]
    async fn a_head_of_more_than_a_hundred_fields_is_refused_with_431() {
        let limits = ConnLimits {
            max_connections: 4,
            max_header_bytes: 64 * 1024,
            header_timeout: Duration::from_secs(5),
        };
        let (addr, stop, server) = ok_server(limits).await;
        let head = |fields: usize| {
            let extra: String = (0..fields).map(|i| format!("x-{i}: 1\r\n")).collect();
            format!("GET / HTTP/1.1\r\nhost: ingest\r\n{extra}\r\n")
        };
        // The host line and 99 more: 100 fields.
        assert_eq!(status_of(addr, &head(99)).await, "HTTP/1.1 200 OK");
        assert_eq!(
            status_of(addr, &head(100)).await,
            "HTTP/1.1 431 Request Header Fields Too Large"
        );
        stop.send(()).unwrap();
        server.await.unwrap();
    }

    /// The head timeout is also the keep-alive: hyper starts it as soon as a connection waits for
    /// its next request head, so a connection idle that long after its response is closed. What
    /// `header_timeout_ms` tells load balancers and pooling clients to stay below.
    #[tokio::test]
    async fn an_idle_keep_alive_connection_is_closed_after_the_head_timeout() {
        let limits = ConnLimits {
            max_connections: 4,
            max_header_bytes: 8192,
            header_timeout: Duration::from_millis(300),
        };
        let (addr, stop, server) = ok_server(limits).await;

        let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
        conn.write_all(b"GET / HTTP/1.1\r\nhost: ingest\r\n\r\n")
            .await
            .unwrap();
        let mut buf = vec![0u8; 4096];
        let n = conn.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &buf[..n]);
        let idle_since = Instant::now();
        // Then nothing: the server ends the connection (whatever it writes first) once the
        // timeout has passed, not before.
        tokio::time::timeout(Duration::from_secs(5), async {
            while conn.read(&mut buf).await.is_ok_and(|n| n > 0) {}
        })
        .await
        .expect("an idle connection is closed, well within 5 s");
        assert!(
            idle_since.elapsed() >= Duration::from_millis(250),
            "closed after {:?}",
            idle_since.elapsed()
        );
        stop.send(()).unwrap();
        server.await.unwrap();
    }
}
