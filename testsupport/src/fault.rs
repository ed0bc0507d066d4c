//! A TCP proxy between a client under test and one of the stack's servers that can play the
//! server's death: from a chosen moment on, every connection is cut and new ones are refused,
//! until the test heals it. It stands in for stopping a server the whole stack shares (other
//! tests use it at the same time) and lets a test stop it at an exact point of a protocol
//! exchange: when a request carrying a given byte string (e.g. an object name in an HTTP
//! request line) passes through.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Mutex, watch};

/// A running proxy; stops when dropped.
pub struct FaultProxy {
    addr: std::net::SocketAddr,
    down: Arc<AtomicBool>,
    cut: watch::Sender<u64>,
    trigger: Arc<Mutex<Option<Vec<u8>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on 127.0.0.1 (a free port) and forwards to `upstream` (`host:port`).
    pub async fn start(upstream: &str) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().unwrap();
        let down = Arc::new(AtomicBool::new(false));
        let (cut, cut_rx) = watch::channel(0u64);
        let trigger: Arc<Mutex<Option<Vec<u8>>>> = Arc::new(Mutex::new(None));
        let upstream = upstream.to_string();
        let task = {
            let down = down.clone();
            let cut = cut.clone();
            let trigger = trigger.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((client, _)) = listener.accept().await else {
                        continue;
                    };
                    if down.load(Ordering::SeqCst) {
                        drop(client); // refused: the server is "down"
                        continue;
                    }
                    let Ok(server) = TcpStream::connect(&upstream).await else {
                        continue;
                    };
                    tokio::spawn(pipe(
                        client,
                        server,
                        down.clone(),
                        cut.clone(),
                        cut_rx.clone(),
                        trigger.clone(),
                    ));
                }
            })
        };
        FaultProxy {
            addr,
            down,
            cut,
            trigger,
            task,
        }
    }

    /// `http://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Goes down when a client sends `needle` (before forwarding it).
    pub async fn go_down_on(&self, needle: &[u8]) {
        *self.trigger.lock().await = Some(needle.to_vec());
    }

    /// Goes down now: cuts every connection, refuses new ones.
    pub fn go_down(&self) {
        self.down.store(true, Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }

    /// Serves again.
    pub async fn heal(&self) {
        *self.trigger.lock().await = None;
        self.down.store(false, Ordering::SeqCst);
    }

    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
        self.go_down();
    }
}

async fn pipe(
    mut client: TcpStream,
    mut server: TcpStream,
    down: Arc<AtomicBool>,
    cut: watch::Sender<u64>,
    mut cut_rx: watch::Receiver<u64>,
    trigger: Arc<Mutex<Option<Vec<u8>>>>,
) {
    let (mut cr, mut cw) = client.split();
    let (mut sr, mut sw) = server.split();
    let mut up = [0u8; 16 * 1024];
    let mut downbuf = [0u8; 16 * 1024];
    // The last bytes of the previous read, so a needle split across reads is still seen.
    let mut tail: Vec<u8> = Vec::new();
    cut_rx.mark_unchanged();
    loop {
        tokio::select! {
            _ = cut_rx.changed() => return,
            n = cr.read(&mut up) => {
                let Ok(n) = n else { return };
                if n == 0 { let _ = sw.shutdown().await; return; }
                let needle = trigger.lock().await.clone();
                if let Some(needle) = needle {
                    let mut window = std::mem::take(&mut tail);
                    window.extend_from_slice(&up[..n]);
                    if window.windows(needle.len()).any(|w| w == needle.as_slice()) {
                        down.store(true, Ordering::SeqCst);
                        cut.send_modify(|c| *c += 1);
                        return;
                    }
                    let keep = needle.len().saturating_sub(1).min(window.len());
                    tail = window[window.len() - keep..].to_vec();
                }
                if sw.write_all(&up[..n]).await.is_err() { return; }
            }
            n = sr.read(&mut downbuf) => {
                let Ok(n) = n else { return };
                if n == 0 { let _ = cw.shutdown().await; return; }
                if cw.write_all(&downbuf[..n]).await.is_err() { return; }
            }
        }
    }
}
