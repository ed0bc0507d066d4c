//! `adclick query` as a service: the API listener and the admin listener (/metrics, /healthz,
//! /readyz), until the shutdown future completes; then in-flight requests finish.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use crate::config::QueryConfig;
use crate::credentials::{Credentials, CredentialsError, watch};
use crate::gateway::app;
use crate::metrics::Metrics;
use crate::state::{AppState, StateError};

/// The two listeners, bound by the caller (so a test can bind port 0 and know the address).
#[derive(Debug)]
pub struct Listeners {
    /// The Prometheus HTTP API advertisers call (`[query] listen`).
    pub api: TcpListener,
    /// /metrics, /healthz, /readyz (`[query] admin_listen`).
    pub admin: TcpListener,
}

/// Why the gateway did not start, or stopped on its own.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("loading the credentials")]
    Credentials(#[source] CredentialsError),
    #[error("invalid configuration")]
    State(#[source] StateError),
    #[error("serving the API")]
    Serve(#[source] std::io::Error),
}

/// How often the upstreams are asked whether they are ready (for `/readyz`).
const READINESS_INTERVAL: Duration = Duration::from_secs(5);

/// Serves the gateway for `config` on `listeners` until `shutdown` completes, then lets the
/// requests in flight finish (each is bounded by `upstream_timeout_ms`) and returns. Meanwhile
/// the credentials are reloaded when their files change or on SIGHUP, and `/readyz` says whether
/// the upstreams answer their own readiness checks.
pub async fn run(
    listeners: Listeners,
    config: QueryConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let credentials = Credentials::load(&config).map_err(ServeError::Credentials)?;
    let key_count = credentials.key_count();
    if key_count == 0 {
        tracing::warn!("the API keys file lists no key: only JWTs (if configured) are let in");
    }
    let metrics = Metrics::new();
    let state = AppState::new(&config, credentials, metrics.clone()).map_err(ServeError::State)?;
    let mut registry = Registry::default();
    metrics.register(&mut registry);

    let stop = tokio_util::sync::CancellationToken::new();
    let ready = Arc::new(Mutex::new(Err("not checked yet".to_string())));
    let background = [
        tokio::spawn(watch_readiness(
            state.clone(),
            Arc::clone(&ready),
            stop.clone().cancelled_owned(),
        )),
        tokio::spawn({
            let limits = state.limits.clone();
            watch(
                config.clone(),
                state.credentials.clone(),
                metrics,
                move || limits.forget_quiet_callers(),
                stop.clone().cancelled_owned(),
            )
        }),
    ];
    let readiness: adclick_admin::Readiness =
        Arc::new(move || ready.lock().unwrap_or_else(|p| p.into_inner()).clone());
    let admin_app = adclick_admin::app(Arc::new(registry), readiness);
    let admin = tokio::spawn(async move { axum::serve(listeners.admin, admin_app).await });
    tracing::info!(
        listen = %display_addr(&listeners.api),
        keys = key_count,
        history = !config.history_url.is_empty(),
        "query gateway serving"
    );
    let result = axum::serve(listeners.api, app(state))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(ServeError::Serve);
    stop.cancel();
    for task in background {
        let _ = task.await;
    }
    admin.abort();
    result
}

/// Asks every upstream whether it is ready, every [`READINESS_INTERVAL`], into `ready` (what
/// `/readyz` answers; the reason names which upstream, never its address).
async fn watch_readiness(
    state: AppState,
    ready: Arc<Mutex<Result<(), String>>>,
    stop: impl Future<Output = ()>,
) {
    tokio::pin!(stop);
    loop {
        let mut now = Ok(());
        if !state.live.ready().await {
            now = Err("the live Prometheus is not ready".to_string());
        } else if let Some(history) = &state.history {
            if !history.ready().await {
                now = Err("the history upstream is not ready".to_string());
            }
        }
        *ready.lock().unwrap_or_else(|p| p.into_inner()) = now;
        tokio::select! {
            () = &mut stop => return,
            () = tokio::time::sleep(READINESS_INTERVAL) => {}
        }
    }
}

fn display_addr(listener: &TcpListener) -> String {
    listener
        .local_addr()
        .map_or_else(|_| "?".to_string(), |a| a.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::key_digest_hex;

    #[tokio::test]
    async fn serves_until_shut_down_and_counts_on_the_admin_listener() {
        let dir = tempfile::tempdir().unwrap();
        let keys_file = dir.path().join("keys");
        std::fs::write(&keys_file, format!("{} 42\n", key_digest_hex("k"))).unwrap();
        let api = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (api_addr, admin_addr) = (api.local_addr().unwrap(), admin.local_addr().unwrap());
        let config = QueryConfig {
            api_keys_file: keys_file,
            ..QueryConfig::default()
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(run(Listeners { api, admin }, config, async {
            let _ = stopped.await;
        }));
        let http = reqwest::Client::new();
        let r = http
            .get(format!("http://{api_addr}/api/v1/query?query=1"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 401);
        let page = http
            .get(format!("http://{admin_addr}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            page.contains(
                r#"adclick_query_requests_total{endpoint="query",outcome="unauthorized"} 1"#
            ),
            "{page}"
        );
        stop.send(()).unwrap();
        server.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn no_keys_file_no_start() {
        let api = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let r = run(Listeners { api, admin }, QueryConfig::default(), async {}).await;
        assert!(
            matches!(
                r,
                Err(ServeError::Credentials(CredentialsError::NoKeysFile))
            ),
            "{r:?}"
        );
        let missing = QueryConfig {
            api_keys_file: "/nonexistent/adclick-keys".into(),
            ..QueryConfig::default()
        };
        let api = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let r = run(Listeners { api, admin }, missing, async {}).await;
        assert!(
            matches!(r, Err(ServeError::Credentials(CredentialsError::Keys(_)))),
            "{r:?}"
        );
    }
}
