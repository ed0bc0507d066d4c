//! The admin listener every adclick service has (scraped by the stack's Prometheus):
//!
//! - `GET /metrics`: the registry, in OpenMetrics for clients that ask for it (Prometheus does),
//!   else in the classic text format (curl, `promtool check metrics`).
//! - `GET /healthz`: 200 while the process serves at all (liveness).
//! - `GET /readyz`: 200 while the service's own readiness check passes, else 503 with the reason.
//!
//! And, for the same operator's logs, [`ErrorChain`]: an error with all its causes on one line.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;

mod chain;
pub use chain::ErrorChain;

/// Content type of [`encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Content type of [`encode_text`]'s output.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A service's readiness: Ok, or why not. Called on every `/readyz` and `/metrics`.
pub type Readiness = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

#[derive(Clone)]
struct Admin {
    registry: Arc<Registry>,
    ready: Readiness,
}

/// The admin router.
pub fn app(registry: Arc<Registry>, ready: Readiness) -> Router {
    Router::new()
        .route("/metrics", get(metrics_page))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(Admin { registry, ready })
}

async fn readyz(State(admin): State<Admin>) -> Response {
    match (admin.ready)() {
        Ok(()) => "ready\n".into_response(),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}\n"),
        )
            .into_response(),
    }
}

async fn metrics_page(State(admin): State<Admin>, headers: HeaderMap) -> Response {
    // Refreshes whatever gauges the readiness check sets, so they never lag /readyz.
    let _ = (admin.ready)();
    let open_metrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/openmetrics-text"));
    let (body, content_type) = if open_metrics {
        (encode(&admin.registry), CONTENT_TYPE)
    } else {
        (encode_text(&admin.registry), TEXT_CONTENT_TYPE)
    };
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// The registry in the OpenMetrics text format.
pub fn encode(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, registry);
    out
}

/// The registry in the classic Prometheus text format (0.0.4), for clients that do not ask for
/// OpenMetrics (`promtool check metrics`, curl). The two differ only in the counter family name
/// (OpenMetrics names the family `x` and the sample `x_total`; the classic format names both
/// `x_total`) and in the `# UNIT` and `# EOF` lines, which the classic format does not have.
pub fn encode_text(registry: &Registry) -> String {
    let open_metrics = encode(registry);
    let counters: std::collections::HashSet<&str> = open_metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(open_metrics.len());
    for line in open_metrics.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        match renamed {
            Some(renamed) => out.push_str(&renamed),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use prometheus_client::metrics::counter::Counter;
    use tower::ServiceExt;

    #[tokio::test]
    async fn metrics_negotiate_and_readiness_explains() {
        let mut registry = Registry::default();
        let c: Counter = Counter::default();
        registry.register("x_things", "Things", c.clone());
        c.inc();
        let app = app(Arc::new(registry), Arc::new(|| Err("warming up".into())));
        let page = |accept: &'static str| {
            let app = app.clone();
            async move {
                let r = app
                    .oneshot(
                        Request::get("/metrics")
                            .header("accept", accept)
                            .body(Body::empty())
                            .unwrap(),
                    )
                    .await
                    .unwrap();
                let ct = r.headers()[header::CONTENT_TYPE]
                    .to_str()
                    .unwrap()
                    .to_string();
                let body = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
                (ct, String::from_utf8(body.to_vec()).unwrap())
            }
        };
        let (ct, om) = page("application/openmetrics-text").await;
        assert_eq!(ct, CONTENT_TYPE);
        assert!(
            om.contains("# TYPE x_things counter") && om.ends_with("# EOF\n"),
            "{om}"
        );
        let (ct, text) = page("text/plain").await;
        assert_eq!(ct, TEXT_CONTENT_TYPE);
        assert!(
            text.contains("# TYPE x_things_total counter\nx_things_total 1\n"),
            "{text}"
        );
        let r = app
            .oneshot(Request::get("/readyz").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
