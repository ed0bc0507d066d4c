//! A scripted remote_write receiver (axum) for the sender's tests, and helpers shared by them.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use adclick_remote_write::proto;
use adclick_remote_write::{Config, Labels, Metrics, Request, Sample, Sender};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use tokio::sync::{Notify, watch};

/// Guards waits in tests so that a bug shows as a failure, not a hang. Never a speed limit.
pub const GUARD: Duration = Duration::from_secs(60);

/// What the receiver answers to one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// This status, with this body and optionally a Retry-After header.
    Status {
        status: u16,
        retry_after: Option<String>,
        body: String,
    },
    /// Never answers (the client must time out).
    Hang,
    /// Answers 204 once [`Receiver::open_gate`] has been called.
    Gated,
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply::Status {
            status,
            retry_after: None,
            body: format!("scripted {status}"),
        }
    }
    pub fn retry_after(status: u16, value: &str) -> Reply {
        Reply::Status {
            status,
            retry_after: Some(value.to_string()),
            body: format!("scripted {status}"),
        }
    }
    pub fn body(status: u16, body: &str) -> Reply {
        Reply::Status {
            status,
            retry_after: None,
            body: body.to_string(),
        }
    }
}

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Received {
    /// The client's address: the same one for requests on one reused connection.
    pub peer: SocketAddr,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
}

impl Received {
    pub fn decode(&self) -> proto::WriteRequest {
        adclick_remote_write::encode::decode(&self.body).expect("a snappy protobuf WriteRequest")
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

struct Shared {
    script: Mutex<VecDeque<Reply>>,
    received: Mutex<Vec<Received>>,
    arrived: Notify,
    gate: watch::Sender<bool>,
}

/// A receiver on 127.0.0.1 answering from a script, then 204 to everything.
pub struct Receiver {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Receiver {
    pub async fn start(script: Vec<Reply>) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Receiver::serve(listener, script)
    }

    /// Serves on `addr` (one a test reserved earlier).
    pub async fn start_on(addr: SocketAddr, script: Vec<Reply>) -> Receiver {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        Receiver::serve(listener, script)
    }

    fn serve(listener: tokio::net::TcpListener, script: Vec<Reply>) -> Receiver {
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            script: Mutex::new(script.into()),
            received: Mutex::new(Vec::new()),
            arrived: Notify::new(),
            gate: watch::channel(false).0,
        });
        let app = Router::new()
            .route("/api/v1/write", post(handle))
            .with_state(shared.clone());
        let service = app.into_make_service_with_connect_info::<SocketAddr>();
        tokio::spawn(async move { axum::serve(listener, service).await.unwrap() });
        Receiver { addr, shared }
    }

    pub fn url(&self) -> String {
        format!("http://{}/api/v1/write", self.addr)
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    /// Waits until at least `n` requests have arrived.
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        let deadline = Instant::now() + GUARD;
        loop {
            let notified = self.shared.arrived.notified();
            let received = self.received();
            if received.len() >= n {
                return received;
            }
            assert!(
                Instant::now() < deadline,
                "only {} of {n} requests arrived",
                received.len()
            );
            let _ = tokio::time::timeout(Duration::from_millis(100), notified).await;
        }
    }

    pub fn open_gate(&self) {
        self.shared.gate.send_replace(true);
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let received = Received {
        peer,
        headers,
        body,
        at: Instant::now(),
    };
    shared.received.lock().unwrap().push(received);
    shared.arrived.notify_waiters();
    let reply = shared.script.lock().unwrap().pop_front();
    match reply {
        None => StatusCode::NO_CONTENT.into_response(),
        Some(Reply::Status {
            status,
            retry_after,
            body,
        }) => {
            let mut response = (StatusCode::from_u16(status).unwrap(), body).into_response();
            if let Some(value) = retry_after {
                response
                    .headers_mut()
                    .insert("retry-after", HeaderValue::from_str(&value).unwrap());
            }
            response
        }
        Some(Reply::Hang) => std::future::pending().await,
        Some(Reply::Gated) => {
            let mut gate = shared.gate.subscribe();
            let _ = gate.wait_for(|open| *open).await;
            StatusCode::NO_CONTENT.into_response()
        }
    }
}

/// A config for `url` with short backoffs, so retry tests do not sleep for seconds.
pub fn test_config(url: &str) -> Config {
    let mut config = Config::for_url(url);
    config.queue.min_backoff_ms = 5;
    config.queue.max_backoff_ms = 50;
    config
}

pub fn sender(config: &Config) -> Sender {
    Sender::new(config, Metrics::new()).unwrap()
}

/// A series' identity and samples in a form that compares NaNs by their bits.
pub type Canonical = BTreeMap<Vec<(String, String)>, Vec<(i64, u64)>>;

/// Groups the samples of a request by series (in order), values as bits.
pub fn canonical(request: &proto::WriteRequest) -> Canonical {
    let mut out = Canonical::new();
    for ts in &request.timeseries {
        let labels = ts
            .labels
            .iter()
            .map(|l| (l.name.clone(), l.value.clone()))
            .collect();
        let samples: &mut Vec<(i64, u64)> = out.entry(labels).or_default();
        samples.extend(ts.samples.iter().map(|s| (s.timestamp, s.value.to_bits())));
    }
    out
}

/// The labels of an ad-click series in the test's own namespace.
pub fn ad_labels(metric: &str, test_id: &str, ad: usize) -> Labels {
    Labels::new([
        ("__name__", metric.to_string()),
        ("test_id", test_id.to_string()),
        ("advertiser_id", (ad % 7).to_string()),
        ("campaign_id", (ad % 13).to_string()),
        ("ad_id", ad.to_string()),
    ])
    .unwrap()
}

/// A request of `series` × `minutes` samples from `start_ms`, values distinct per sample.
pub fn grid(series: &[Labels], start_ms: i64, minutes: usize) -> Request {
    let mut builder = adclick_remote_write::RequestBuilder::new();
    for (i, labels) in series.iter().enumerate() {
        for m in 0..minutes {
            let sample = Sample::new(start_ms + m as i64 * 60_000, value(i, m));
            builder.push(labels, sample).unwrap();
        }
    }
    builder.build()
}

/// The value of series `i` at minute `m` in [`grid`]: distinct and not an integer.
pub fn value(i: usize, m: usize) -> f64 {
    (i * 1000 + m) as f64 + 0.25
}

/// The start of the minute `minutes_ago` minutes before now, in ms.
pub fn minute_ago(minutes_ago: i64) -> i64 {
    (adclick_click::now_ms() / 60_000 - minutes_ago) * 60_000
}
