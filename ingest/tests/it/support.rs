//! Helpers of ingest's integration tests: ingest instances that can be stopped or killed, tokens
//! and configuration, and reading a topic back. (The proxy that slows or cuts Redis is
//! `adclick_testsupport::FaultProxy`.)

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use adclick_click::wire::Click;
use adclick_ingest::{IngestConfig, KafkaSettings, Listeners, Settings};
use adclick_testsupport::traffic::token_key;
use adclick_testsupport::wait::eventually;
use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use tokio::net::TcpListener;

/// A genuine token for `ad_id` (campaign 8, advertiser 9) landing on `url`, valid for an hour,
/// and its impression id.
pub fn signed_token(ad_id: u64, url: &str) -> (String, [u8; 16]) {
    use adclick_click::token::{Claims, Signer, Url, random_impression_id, unix_now_secs};
    let now = unix_now_secs();
    let claims = Claims {
        impression_id: random_impression_id(),
        ad_id,
        campaign_id: 8,
        advertiser_id: 9,
        landing_url: Url::parse(url).unwrap(),
        issued_at_secs: now - 5,
        expires_at_secs: now + 3600,
        user_hash: None,
        price_micros: None,
    };
    (
        Signer::new(token_key()).sign(&claims).unwrap(),
        claims.impression_id,
    )
}

/// An ingest configuration for tests: its own spill folder and Redis prefix.
pub fn config(redis_url: &str, redis_prefix: &str, spill_dir: &Path) -> IngestConfig {
    IngestConfig {
        redis_url: redis_url.into(),
        redis_key_prefix: redis_prefix.to_string(),
        spill_dir: spill_dir.to_path_buf(),
        replay_interval_ms: 200,
        shutdown_timeout_ms: 5_000,
        // Loadgen, on this host, sends each simulated client's address in X-Forwarded-For.
        trusted_proxies: vec!["127.0.0.1/32".parse().unwrap()],
        velocity_key_prefix: format!("{redis_prefix}vel:"),
        ..IngestConfig::default()
    }
}

pub fn kafka(brokers: &str, topic: &str) -> KafkaSettings {
    KafkaSettings {
        brokers: brokers.to_string(),
        topic: topic.to_string(),
        properties: vec![],
    }
}

/// One ingest "process": its own thread and runtime, so killing it drops every task at once,
/// without draining or flushing, as `kill -9` would.
pub struct Ingest {
    pub base: String,
    pub admin: String,
    graceful: Option<tokio::sync::oneshot::Sender<()>>,
    kill: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Ingest {
    /// Starts ingest and returns once it serves: its admin listener answers `/healthz`, as a
    /// load balancer would wait for (the start waits up to `STARTUP_WAIT` for Redis and Kafka).
    pub async fn start(config: IngestConfig, kafka: KafkaSettings) -> Ingest {
        let (addrs_tx, addrs_rx) = std::sync::mpsc::channel();
        let (graceful_tx, graceful_rx) = tokio::sync::oneshot::channel::<()>();
        let (kill_tx, kill_rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .unwrap();
            let (killed_tx, killed_rx) = tokio::sync::oneshot::channel::<()>();
            // Bridge the std channel (usable from a non-async test thread) to the runtime.
            std::thread::spawn(move || {
                if kill_rx.recv().is_ok() {
                    let _ = killed_tx.send(());
                }
            });
            runtime.block_on(async move {
                let public = TcpListener::bind("127.0.0.1:0").await.unwrap();
                let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
                addrs_tx
                    .send((public.local_addr().unwrap(), admin.local_addr().unwrap()))
                    .unwrap();
                let verifier = adclick_click::Verifier::new([token_key()], 30).unwrap();
                let settings = Settings {
                    config,
                    verifier,
                    kafka,
                    invalid: adclick_invalid::Config::default(),
                };
                let run = adclick_ingest::run(Listeners { public, admin }, settings, async move {
                    let _ = graceful_rx.await;
                });
                tokio::select! {
                    result = run => result.unwrap(),
                    _ = killed_rx => {}
                }
            });
            // Killed or stopped: whatever is still running is dropped, not drained.
            runtime.shutdown_background();
        });
        let (public, admin): (SocketAddr, SocketAddr) = addrs_rx.recv().unwrap();
        let ingest = Ingest {
            base: format!("http://{public}"),
            admin: format!("http://{admin}"),
            graceful: Some(graceful_tx),
            kill: Some(kill_tx),
            thread: Some(thread),
        };
        let healthz = format!("{}/healthz", ingest.admin);
        eventually(
            Duration::from_secs(30),
            "ingest serves /healthz",
            || async {
                match reqwest::get(&healthz).await {
                    Ok(r) if r.status().is_success() => Ok(()),
                    Ok(r) => Err(format!("status {}", r.status())),
                    Err(e) => Err(e.to_string()),
                }
            },
        )
        .await;
        ingest
    }

    /// SIGTERM: drain, flush, close.
    pub async fn stop(mut self) {
        let _ = self.graceful.take().unwrap().send(());
        let thread = self.thread.take().unwrap();
        tokio::task::spawn_blocking(move || thread.join().unwrap())
            .await
            .unwrap();
    }

    /// kill -9: nothing drained or flushed.
    pub async fn kill(mut self) {
        let _ = self.kill.take().unwrap().send(());
        let thread = self.thread.take().unwrap();
        tokio::task::spawn_blocking(move || thread.join().unwrap())
            .await
            .unwrap();
    }

    /// The classic-format metrics page.
    pub async fn metrics(&self) -> String {
        reqwest::get(format!("{}/metrics", self.admin))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The value of one sample line (`name{labels}`), 0 when absent.
    pub async fn metric(&self, series: &str) -> f64 {
        metric_value(&self.metrics().await, series)
    }
}

impl Drop for Ingest {
    fn drop(&mut self) {
        if let Some(kill) = self.kill.take() {
            let _ = kill.send(());
        }
    }
}

pub fn metric_value(page: &str, series: &str) -> f64 {
    page.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

/// A desktop Chrome's user agent.
pub const BROWSER: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

/// A client that does not follow redirects, with a browser's user agent (without one a click is
/// `bot_user_agent`).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(BROWSER)
        .build()
        .unwrap()
}

/// Every record of `topic`, read until at least `min_distinct` impressions arrived and then
/// nothing more for `quiet`; panics after `timeout`.
pub async fn read_topic(
    brokers: &str,
    topic: &str,
    min_distinct: usize,
    quiet: Duration,
    timeout: Duration,
) -> Vec<Click> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("it-{topic}-{}", std::process::id()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let started = Instant::now();
    let mut clicks = Vec::new();
    let mut distinct = std::collections::HashSet::new();
    loop {
        let wait = if distinct.len() >= min_distinct {
            quiet
        } else {
            Duration::from_secs(2)
        };
        match tokio::time::timeout(wait, consumer.recv()).await {
            Ok(Ok(msg)) => {
                let click = Click::decode_valid(msg.payload().unwrap()).expect("a valid Click");
                let key = std::str::from_utf8(msg.key().unwrap()).unwrap();
                assert!(
                    key.split(':').next() == Some(&click.ad_id.to_string()),
                    "key {key} for ad {}",
                    click.ad_id
                );
                distinct.insert(click.impression_id.clone());
                clicks.push(click);
            }
            Ok(Err(e)) => panic!("consuming {topic}: {e}"),
            Err(_) if distinct.len() >= min_distinct => return clicks,
            Err(_) => {}
        }
        assert!(
            started.elapsed() < timeout,
            "{topic}: only {} of {min_distinct} impressions after {timeout:?}",
            distinct.len()
        );
    }
}
