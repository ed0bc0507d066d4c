//! The admin listener (default `127.0.0.1:9101`, scraped by the stack's Prometheus):
//!
//! - `GET /metrics`: the registry, OpenMetrics text.
//! - `GET /healthz`: 200 while the process serves at all (liveness).
//! - `GET /readyz`: 200 while ingest can make a click durable — the broker is taking clicks, or
//!   the spill has room and works — else 503 with the reason. A load balancer that follows it
//!   sends users to instances that will count their clicks; an instance whose spill filled up
//!   during a broker outage drops out until the replay made room.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;

use crate::handler::AppState;
use crate::metrics::{self, Metrics};

#[derive(Clone)]
struct Admin {
    state: AppState,
    registry: Arc<Registry>,
}

/// The admin router.
pub fn app(state: AppState, registry: Arc<Registry>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_page))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(Admin { state, registry })
}

/// Whether a click can be made durable now, and if not, why.
pub fn readiness(state: &AppState) -> Result<(), &'static str> {
    let ready = if state.producer.broker_up() || state.spill.can_accept() {
        Ok(())
    } else {
        Err("Kafka is not acknowledging clicks and the spill cannot take them (full or broken)")
    };
    state.metrics.ready.set(i64::from(ready.is_ok()));
    ready
}

async fn readyz(State(admin): State<Admin>) -> Response {
    match readiness(&admin.state) {
        Ok(()) => "ready\n".into_response(),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}\n"),
        )
            .into_response(),
    }
}

/// OpenMetrics for clients that ask for it (Prometheus does), the classic text format otherwise.
async fn metrics_page(State(admin): State<Admin>, headers: HeaderMap) -> Response {
    // Refresh the readiness gauge at scrape time, so it never lags what /readyz would say.
    let _ = readiness(&admin.state);
    refresh_spill_gauges(&admin.state.metrics, &admin.state);
    let open_metrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/openmetrics-text"));
    let (body, content_type) = if open_metrics {
        (metrics::encode(&admin.registry), metrics::CONTENT_TYPE)
    } else {
        (
            metrics::encode_text(&admin.registry),
            metrics::TEXT_CONTENT_TYPE,
        )
    };
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn refresh_spill_gauges(metrics: &Metrics, state: &AppState) {
    metrics
        .spill_records
        .set(i64::try_from(state.spill.records()).unwrap_or(i64::MAX));
    metrics
        .spill_bytes
        .set(i64::try_from(state.spill.bytes()).unwrap_or(i64::MAX));
}
