//! The admin listener (default `127.0.0.1:9101`, scraped by the stack's Prometheus):
//!
//! - `GET /metrics`: the registry (OpenMetrics or classic text, see `adclick-admin`).
//! - `GET /healthz`: 200 while the process serves at all (liveness).
//! - `GET /readyz`: 200 while ingest can make a click durable — the broker is taking clicks, or
//!   the spill has room and works — else 503 with the reason. A load balancer that follows it
//!   sends users to instances that will count their clicks; an instance whose spill filled up
//!   during a broker outage drops out until the replay made room.

use std::sync::Arc;

use axum::Router;
use prometheus_client::registry::Registry;

use crate::handler::AppState;
use crate::metrics::Metrics;

/// The admin router: `adclick-admin`'s, with ingest's readiness. The readiness check runs at
/// every scrape too, so the readiness and spill gauges never lag what /readyz would say.
pub fn app(state: AppState, registry: Arc<Registry>) -> Router {
    adclick_admin::app(
        registry,
        Arc::new(move || {
            refresh_spill_gauges(&state.metrics, &state);
            readiness(&state).map_err(str::to_string)
        }),
    )
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

fn refresh_spill_gauges(metrics: &Metrics, state: &AppState) {
    metrics
        .spill_records
        .set(i64::try_from(state.spill.records()).unwrap_or(i64::MAX));
    metrics
        .spill_bytes
        .set(i64::try_from(state.spill.bytes()).unwrap_or(i64::MAX));
}
