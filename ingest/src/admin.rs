//! The admin listener (default `127.0.0.1:9101`, scraped by the stack's Prometheus):
//!
//! - `GET /metrics`: the registry (OpenMetrics or classic text, see `adclick-admin`).
//! - `GET /healthz`: 200 while the process serves at all (liveness).
//! - `GET /readyz`: 200 while ingest can make a click durable — the broker is taking clicks, or
//!   the spill has room and works — else 503 with the reason. A load balancer that follows it
//!   sends users to instances that will count their clicks; an instance whose spill filled up
//!   during a broker outage drops out until the replay made room. Also 503 while ingest is
//!   overloaded (`overload.rs`): clicks wait longer than `overload_delay_ms` before they are
//!   worked on; still counted, but a load balancer should send the next ones elsewhere.

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
            readiness(&state)
        }),
    )
}

/// Whether a click can be made durable now and worked on without a backlog, and if not, why.
pub fn readiness(state: &AppState) -> Result<(), String> {
    let durable = if state.producer.broker_up() || state.spill.can_accept() {
        Ok(())
    } else {
        Err("Kafka is not acknowledging clicks and the spill cannot take them (full or broken)")
    };
    // `ready` says whether clicks can be made durable (the alert on it means clicks are lost);
    // overload has its own gauge.
    state.metrics.ready.set(i64::from(durable.is_ok()));
    durable.map_err(str::to_string)?;
    state.overload.check()
}

fn refresh_spill_gauges(metrics: &Metrics, state: &AppState) {
    metrics
        .spill_records
        .set(i64::try_from(state.spill.records()).unwrap_or(i64::MAX));
    metrics
        .spill_bytes
        .set(i64::try_from(state.spill.bytes()).unwrap_or(i64::MAX));
}
