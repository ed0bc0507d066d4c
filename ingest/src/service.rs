//! The service as a whole: [`Service::start`] builds the click path's state (spill, producer,
//! Redis client, limits, metrics) and starts the replay; [`run`] serves it on the listeners until
//! shutdown and then drains it. Needs Kafka and Redis clients: only with the `service` feature.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use adclick_click::Verifier;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::KafkaSettings;
use crate::config::IngestConfig;
use crate::event_time::ClientTimeBounds;
use crate::handler::{self, AppState};
use crate::limits::Limits;
use crate::metrics::Metrics;
use crate::overload::Overload;
use crate::produce::Producer;
use crate::replay::{self, ReplayOptions};
use crate::server::{self, ConnLimits};
use crate::spill::Spill;
use crate::traffic::{self, Traffic};
use crate::unreplayed::impression_of_click;
use crate::visitor::Visitors;
use crate::{Error, admin, dedup};

/// How long ingest waits at start for Redis and for Kafka before serving clicks without them
/// (unchecked, spilled); for Redis longer while a login still awaits its answer, so that a
/// refused login stops the start (`Dedup::wait_connected`).
pub const STARTUP_WAIT: Duration = Duration::from_secs(2);

/// What ingest needs besides its listeners.
#[derive(Debug, Clone)]
pub struct Settings {
    pub config: IngestConfig,
    pub verifier: Verifier,
    pub kafka: KafkaSettings,
    /// The shared `[invalid]` rules (the rollup reads the same table).
    pub invalid: adclick_invalid::Config,
}

/// A started ingest, not yet listening: the click path's state, the metrics registry and the
/// replay task.
#[derive(Debug)]
pub struct Service {
    pub state: AppState,
    pub registry: Arc<Registry>,
    config: IngestConfig,
    replay: JoinHandle<()>,
    stop_replay: CancellationToken,
    /// Reloads `[invalid] deny_list_file` when it changes; aborted on shutdown.
    deny_watch: Option<JoinHandle<()>>,
    /// Measures how long clicks wait to be worked on; stopped on shutdown.
    overload_probe: crate::overload::Probe,
}

impl Service {
    /// Opens (and checks) the spill, creates the producer and the Redis client, and starts the
    /// replay task. Redis and Kafka may be down: ingest fails open and spills until they answer.
    pub async fn start(settings: Settings) -> Result<Service, Error> {
        let Settings {
            config,
            verifier,
            kafka,
            invalid,
        } = settings;
        config.validate()?;
        let rules = adclick_invalid::Rules::from_config(&invalid).map_err(Error::Invalid)?;
        let traffic = Traffic::new(
            rules,
            config.trusted_proxies.clone(),
            config.client_ip_header,
            config.ip_hash_key()?.as_deref(),
            config.not_redirected.clone(),
            &config.velocity_key_prefix,
        );
        if config.ip_hash_key.is_none() {
            tracing::info!(
                "[ingest] ip_hash_key not set: a random key for this process; ip_velocity counts \
                 per process until one key is shared by every ingest instance"
            );
        }
        let deny_watch = invalid.deny_list_file.clone().map(|path| {
            traffic::watch_deny_list(
                traffic.clone(),
                path,
                Duration::from_millis(config.deny_list_reload_ms),
            )
        });
        let mut registry = Registry::default();
        let metrics = Metrics::new(&mut registry);
        let spill_dir = config.spill_dir.clone();
        let (max, segment, m) = (
            config.spill_max_bytes,
            config.spill_segment_bytes,
            metrics.clone(),
        );
        let (spill, recovered) = tokio::task::spawn_blocking(move || {
            Spill::open(&spill_dir, max, segment, impression_of_click, m)
        })
        .await
        .map_err(Error::SpillTask)?
        .map_err(|source| Error::Spill {
            dir: config.spill_dir.display().to_string(),
            source,
        })?;
        if recovered.records > 0 {
            tracing::info!(
                records = recovered.records,
                bytes = recovered.bytes,
                "spill holds clicks from an earlier run; replaying"
            );
        }
        let producer = Producer::new(
            &kafka,
            config.hot_ads()?,
            config.produce_timeout(),
            metrics.clone(),
        )?;
        let dedup = dedup::Dedup::new(
            &config.redis(),
            &config.redis_key_prefix,
            config.dedup_ttl_secs,
            config.dedup_timeout(),
            metrics.clone(),
        )?;
        let (redis_connected, broker_answered) = tokio::join!(
            dedup.wait_connected(STARTUP_WAIT),
            producer.warm_up(STARTUP_WAIT),
        );
        if !redis_connected? {
            tracing::warn!("Redis not connected at start; serving clicks unchecked until it is");
        }
        if !broker_answered {
            tracing::warn!("Kafka did not answer at start; clicks go to the spill until it does");
        }
        let limits = Limits::new(
            config.rate_limit_per_ip,
            config.rate_limit_burst,
            config.request_timeout(),
        )
        .behind(config.trusted_proxies.clone(), config.client_ip_header);
        limits.spawn_housekeeping();
        let state = AppState {
            client_time: ClientTimeBounds {
                max_age_ms: millis(config.client_time_max_age_secs.saturating_mul(1000)),
                max_future_ms: millis(config.client_time_max_future_ms),
                issue_skew_ms: millis(verifier.clock_skew_secs().saturating_mul(1000)),
            },
            verifier: Arc::new(verifier),
            dedup,
            producer: producer.clone(),
            spill: spill.clone(),
            metrics: metrics.clone(),
            limits,
            spill_full: config.spill_full,
            traffic,
            visitors: Visitors::new(
                &config.user_cookie_name,
                config.user_hash_salt()?.as_deref(),
                config.user_cookie_max_age_secs,
                config.user_cookie_secure,
            ),
            tracker: TaskTracker::new(),
            overload: Overload::new(config.overload(), metrics.overload.clone()),
        };
        let overload_probe = state.overload.spawn_probe();
        let stop_replay = CancellationToken::new();
        let options = ReplayOptions {
            interval: config.replay_interval(),
            ack_timeout: Duration::from_secs(60),
        };
        let replay = tokio::spawn(replay::run(
            spill,
            producer,
            metrics,
            options,
            stop_replay.clone(),
        ));
        Ok(Service {
            state,
            registry: Arc::new(registry),
            config,
            replay,
            stop_replay,
            deny_watch,
            overload_probe,
        })
    }

    /// The public click service.
    pub fn app(&self) -> handler::App {
        handler::app(self.state.clone())
    }

    /// Stops in order, within the shutdown timeout: in-flight clicks, the replay, the producer's
    /// queue, the spill. A click acknowledged before this was durable already; this only keeps
    /// the spill small and the broker's copy complete.
    pub async fn shutdown(self) {
        let deadline = Instant::now() + self.config.shutdown_timeout();
        let left = || deadline.saturating_duration_since(Instant::now());
        if let Some(watch) = &self.deny_watch {
            watch.abort();
        }
        self.overload_probe.stop();
        self.state.tracker.close();
        if tokio::time::timeout(left(), self.state.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("clicks still being recorded at the shutdown timeout");
        }
        self.stop_replay.cancel();
        let _ = tokio::time::timeout(left(), self.replay).await;
        if let Err(error) = self.state.producer.flush(left()).await {
            tracing::warn!(%error, in_flight = self.state.producer.in_flight(), "producer not flushed at shutdown; those clicks are in the spill");
        }
        self.state.spill.close().await;
    }
}

/// The listeners of [`run`].
#[derive(Debug)]
pub struct Listeners {
    /// Where browsers send clicks.
    pub public: TcpListener,
    /// `/metrics`, `/healthz`, `/readyz`.
    pub admin: TcpListener,
}

/// Runs ingest on `listeners` until `shutdown` completes, then drains and stops cleanly.
pub async fn run(
    listeners: Listeners,
    settings: Settings,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    let service = Service::start(settings).await?;
    let conn_limits = ConnLimits {
        max_connections: service.config.max_connections,
        max_header_bytes: service.config.max_header_bytes,
        header_timeout: service.config.header_timeout(),
    };
    let stop = CancellationToken::new();
    let admin_app = admin::app(service.state.clone(), service.registry.clone());
    let admin_stop = stop.clone();
    let admin = tokio::spawn(async move {
        let served = axum::serve(listeners.admin, admin_app)
            .with_graceful_shutdown(async move { admin_stop.cancelled().await })
            .await;
        if let Err(error) = served {
            tracing::error!(%error, "admin listener failed");
        }
    });
    if let Ok(addr) = listeners.public.local_addr() {
        tracing::info!(%addr, "ingest listening for clicks");
    }
    let drain = service.config.shutdown_timeout();
    let app = service.app();
    server::serve(
        listeners.public,
        move |peer| app.clone().from_peer(peer),
        conn_limits,
        shutdown,
        drain,
    )
    .await;
    tracing::info!("shutting down: draining clicks, flushing the producer");
    service.shutdown().await;
    stop.cancel();
    let _ = admin.await;
    Ok(())
}

fn millis(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}
