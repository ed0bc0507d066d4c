//! A TCP proxy between a client under test and one of the stack's servers that can play the
//! server's death: from a chosen moment on, every connection is cut and new ones are refused,
//! until the test heals it. It stands in for stopping a server the whole stack shares (other
//! tests use it at the same time) and lets a test stop it at an exact point of a protocol
//! exchange: when a request carrying a given byte string (e.g. an object name in an HTTP
//! request line) passes through. It can also play a slow server, holding every chunk a while.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Mutex, watch};

/// What every connection of a proxy shares: whether the server is "down", the signal that cuts
/// every connection, the byte string that takes it down, and how long each chunk is held.
struct Shared {
    down: AtomicBool,
    cut: watch::Sender<u64>,
    trigger: Mutex<Option<Vec<u8>>>,
    delay_ms: AtomicU64,
}

impl Shared {
    fn go_down(&self) {
        self.down.store(true, Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }
}

/// A running proxy; stops when dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on 127.0.0.1 (a free port) and forwards to `upstream` (`host:port`).
    pub async fn start(upstream: &str) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            down: AtomicBool::new(false),
            cut: watch::channel(0u64).0,
            trigger: Mutex::new(None),
            delay_ms: AtomicU64::new(0),
        });
        let upstream = upstream.to_string();
        let task = {
            let shared = shared.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((client, _)) = listener.accept().await else {
                        continue;
                    };
                    if shared.down.load(Ordering::SeqCst) {
                        drop(client); // refused: the server is "down"
                        continue;
                    }
                    let Ok(server) = TcpStream::connect(&upstream).await else {
                        continue;
                    };
                    tokio::spawn(pipe(client, server, shared.clone()));
                }
            })
        };
        FaultProxy { addr, shared, task }
    }

    /// Where clients connect: `127.0.0.1:port`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Goes down when a client sends `needle` (before forwarding it).
    pub async fn go_down_on(&self, needle: &[u8]) {
        *self.shared.trigger.lock().await = Some(needle.to_vec());
    }

    /// Goes down now: cuts every connection, refuses new ones.
    pub fn go_down(&self) {
        self.shared.go_down();
    }

    /// A slow server: holds every chunk, either way, for `delay` before forwarding it.
    pub fn slow_down(&self, delay: Duration) {
        self.shared
            .delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    /// Serves again, at full speed.
    pub async fn heal(&self) {
        *self.shared.trigger.lock().await = None;
        self.shared.delay_ms.store(0, Ordering::SeqCst);
        self.shared.down.store(false, Ordering::SeqCst);
    }

    pub fn is_down(&self) -> bool {
        self.shared.down.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
        self.go_down();
    }
}

/// Forwards one connection both ways until either side closes or the proxy cuts it.
async fn pipe(client: TcpStream, server: TcpStream, shared: Arc<Shared>) {
    let mut cut = shared.cut.subscribe();
    cut.mark_unchanged();
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    tokio::select! {
        _ = cut.changed() => {}
        () = forward(client_read, server_write, &shared, true) => {}
        () = forward(server_read, client_write, &shared, false) => {}
    }
}

/// One direction of a connection; `watched`: the client's requests, where the trigger is sought.
async fn forward(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    shared: &Shared,
    watched: bool,
) {
    let mut buf = [0u8; 16 * 1024];
    // The last bytes of the previous read, so a needle split across reads is still seen.
    let mut tail: Vec<u8> = Vec::new();
    loop {
        let Ok(n) = from.read(&mut buf).await else {
            return;
        };
        if n == 0 {
            let _ = to.shutdown().await;
            return;
        }
        if watched {
            let needle = shared.trigger.lock().await.clone();
            if let Some(needle) = needle {
                let mut window = std::mem::take(&mut tail);
                window.extend_from_slice(&buf[..n]);
                if window.windows(needle.len()).any(|w| w == needle.as_slice()) {
                    shared.go_down();
                    return;
                }
                let keep = needle.len().saturating_sub(1).min(window.len());
                tail = window[window.len() - keep..].to_vec();
            }
        }
        let delay = shared.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        // Down since this chunk was read (`go_down` races the pipe's own wake-up by the cut):
        // nothing sent after `go_down` returned may reach the other side.
        if shared.down.load(Ordering::SeqCst) {
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
