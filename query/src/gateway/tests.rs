//! The router with `oneshot`: what the gateway answers itself, before or without its upstream.

use super::*;
use crate::config::QueryConfig;
use crate::credentials::Credentials;
use crate::keys::{ApiKeys, key_digest_hex};
use crate::metrics::Metrics;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use tower::ServiceExt;

/// A gateway whose upstream refuses connections: whatever reaches it fails.
fn gateway() -> (Router, Metrics, u16) {
    gateway_with(|_| {})
}

/// As [`gateway`], with `change` made to the configuration first.
fn gateway_with(change: impl FnOnce(&mut QueryConfig)) -> (Router, Metrics, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut config = QueryConfig {
        prometheus_url: format!("http://127.0.0.1:{port}"),
        ..QueryConfig::default()
    };
    change(&mut config);
    let keys = ApiKeys::parse(&format!(
        "{} 42\n{} operator\n",
        key_digest_hex("key-42"),
        key_digest_hex("key-op")
    ))
    .unwrap();
    let metrics = Metrics::new();
    let state = AppState::new(&config, Credentials::from_keys(keys), metrics.clone()).unwrap();
    (app(state), metrics, port)
}

async fn call(app: &Router, request: Request<Body>) -> (StatusCode, String) {
    let r = app.clone().oneshot(request).await.unwrap();
    let status = r.status();
    let bytes = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

fn get(uri: &str, key: Option<&str>) -> Request<Body> {
    let mut b = Request::get(uri);
    if let Some(k) = key {
        b = b.header("authorization", format!("Bearer {k}"));
    }
    b.body(Body::empty()).unwrap()
}

#[tokio::test]
async fn no_key_or_an_unknown_one_is_401_everywhere() {
    let (app, metrics, _) = gateway();
    let expected =
        r#"{"status":"error","errorType":"unauthorized","error":"authentication required"}"#;
    for uri in [
        "/api/v1/query?query=1",
        "/api/v1/labels",
        "/api/v1/nope",
        "/",
    ] {
        for key in [None, Some("key-43")] {
            assert_eq!(
                call(&app, get(uri, key)).await,
                (StatusCode::UNAUTHORIZED, expected.to_string()),
                "{uri} {key:?}"
            );
        }
    }
    assert_eq!(metrics.requests("query", "unauthorized"), 2);
}

#[tokio::test]
async fn what_is_answered_before_the_upstream() {
    let (app, metrics, _) = gateway();
    let (status, body) = call(&app, get("/api/v1/query?query=up", Some("key-42"))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body.starts_with(r#"{"status":"error","errorType":"bad_data","error":"#),
        "{body}"
    );
    let (status, body) = call(
        &app,
        get(
            "/api/v1/query?query=adclick_clicks&query=up",
            Some("key-op"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("more than once"), "{body}");
    let (status, _) = call(&app, get("/api/v1/query_range?start=1", Some("key-42"))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = call(&app, get("/api/v1/series?match%5B%5D=up", Some("key-42"))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = call(&app, get("/api/v1/label/a-b/values", Some("key-42"))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = call(&app, get("/api/v1/status/config", Some("key-42"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body,
        r#"{"status":"error","errorType":"not_found","error":"not found"}"#
    );
    assert_eq!(metrics.requests("query", "refused"), 1);
    assert_eq!(metrics.requests("other", "not_found"), 1);
}

#[tokio::test]
async fn an_unreachable_upstream_is_502_without_its_address() {
    let (app, metrics, port) = gateway();
    for (uri, key) in [
        ("/api/v1/query?query=adclick_clicks", "key-42"),
        ("/api/v1/query?query=up", "key-op"),
        ("/api/v1/label/ad_id/values", "key-42"),
        ("/api/v1/status/buildinfo", "key-42"),
    ] {
        let (status, body) = call(&app, get(uri, Some(key))).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{uri}: {body}");
        assert!(body.contains(r#""errorType":"unavailable""#), "{body}");
        assert!(
            !body.contains(&port.to_string()) && !body.contains("127.0.0.1"),
            "{body}"
        );
    }
    assert_eq!(metrics.requests("query", "upstream_unavailable"), 2);
}

#[tokio::test]
async fn over_the_rate_a_caller_gets_429_with_retry_after_and_others_do_not() {
    let (app, metrics, _) = gateway_with(|c| {
        c.requests_per_second = 1;
        c.burst = 1;
    });
    // Refused (403) after admission: the bucket counts it.
    let (status, _) = call(&app, get("/api/v1/query?query=up", Some("key-42"))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let r = app
        .clone()
        .oneshot(get("/api/v1/query?query=up", Some("key-42")))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers()["retry-after"], "1");
    let bytes = axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap();
    let body = String::from_utf8(bytes.to_vec()).unwrap();
    assert!(
        body.contains(r#""errorType":"too_many_requests""#) && body.contains("1 per second"),
        "{body}"
    );
    assert_eq!(metrics.requests("query", "rate_limited"), 1);
    // The operator has a bucket of its own.
    let (status, _) = call(
        &app,
        get("/api/v1/query?query=up%7Bx%3D%22%22", Some("key-op")),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn ranges_and_points_over_the_limits_are_422_naming_them() {
    let (app, metrics, _) = gateway_with(|c| {
        c.max_range_ms = 86_400_000;
        c.max_points = 100;
    });
    for (uri, limit) in [
        // a day and a minute of window
        (
            "/api/v1/query?query=sum_over_time(adclick_clicks%5B1441m%5D)&time=1796515200",
            "max_range",
        ),
        // a day of range plus the 5-minute lookback of an instant selector
        (
            "/api/v1/query_range?query=adclick_clicks&start=1796428800&end=1796515200&step=3600",
            "max_range",
        ),
        (
            "/api/v1/query_range?query=adclick_clicks&start=1796511600&end=1796515200&step=30",
            "max_points",
        ),
    ] {
        let (status, body) = call(&app, get(uri, Some("key-42"))).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{uri}: {body}");
        assert!(body.contains(limit), "{uri}: {body}");
    }
    assert_eq!(metrics.requests("query_range", "over_limit"), 2);
    for (uri, why) in [
        (
            "/api/v1/query_range?query=adclick_clicks&start=2&end=1&step=1",
            "end",
        ),
        (
            "/api/v1/query_range?query=adclick_clicks&start=1&end=2",
            "step",
        ),
        (
            "/api/v1/query_range?query=adclick_clicks&start=x&end=2&step=1",
            "start",
        ),
        ("/api/v1/query?query=adclick_clicks&timeout=-1", "timeout"),
        ("/api/v1/query?query=adclick_clicks&time=1&time=2", "time"),
    ] {
        let (status, body) = call(&app, get(uri, Some("key-42"))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
        assert!(body.contains(&format!("`{why}`")), "{uri}: {body}");
    }
}

#[tokio::test]
async fn tiers_that_could_double_count_are_refused() {
    let (app, _, _) = gateway();
    for q in [
        "adclick_clicks%7Btier%3D~%22.%2B%22%7D",
        "adclick_clicks%7Btier%3D%22rollup%22%7D%20-%20adclick_clicks%7Btier%3D%22stream%22%7D",
    ] {
        let (status, body) = call(
            &app,
            get(&format!("/api/v1/query?query={q}"), Some("key-op")),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{q}: {body}");
        assert!(body.contains("tier"), "{body}");
    }
}

#[tokio::test]
async fn clicks_is_for_advertisers_and_checks_its_parameters_first() {
    let (app, metrics, _) = gateway();
    let (status, body) = call(&app, get("/v1/clicks?from=2026-12-01", Some("key-op"))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = call(
        &app,
        get("/v1/clicks?from=2026-12-01T00:00:30Z", Some("key-42")),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body.contains("from=") && body.contains("whole hour"),
        "{body}"
    );
    let (status, body) = call(
        &app,
        get("/v1/clicks?from=2026-12-01&campain_id=1", Some("key-42")),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _) = call(&app, get("/v1/clicks?from=2026-12-01", None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(metrics.requests("clicks", "bad_request"), 2);
}

#[tokio::test]
async fn a_wrong_method_is_405_in_the_envelope_with_allow() {
    let (app, metrics, _) = gateway();
    let request = Request::put("/api/v1/query?query=1")
        .header("authorization", "Bearer key-42")
        .body(Body::empty())
        .unwrap();
    let r = app.clone().oneshot(request).await.unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    let allow = r
        .headers()
        .get("allow")
        .map(|v| v.to_str().unwrap().to_string());
    let bytes = axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap();
    assert!(String::from_utf8_lossy(&bytes).contains("not allowed"));
    assert_eq!(allow.as_deref(), Some("GET,HEAD,POST"));
    assert_eq!(metrics.requests("other", "bad_request"), 1);
}

/// A writer into a shared buffer, for capturing log lines.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn one_audit_line_per_request_naming_caller_query_and_outcome() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let (app, _, _) = gateway();
    call(&app, get("/api/v1/query?query=up", Some("key-42"))).await;
    call(&app, get("/api/v1/labels", Some("no-such-key"))).await;
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let audit: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["target"] == "adclick_query::audit")
        .collect();
    assert_eq!(audit.len(), 2, "{text}");
    let f = &audit[0]["fields"];
    assert_eq!(f["caller"], "advertiser:42", "{f}");
    assert_eq!(f["endpoint"], "query");
    assert_eq!(f["query"], r#"["up"]"#);
    assert_eq!(
        (f["outcome"].as_str(), f["status"].as_u64()),
        (Some("refused"), Some(403))
    );
    assert!(f["duration_ms"].as_f64().is_some(), "{f}");
    let f = &audit[1]["fields"];
    assert_eq!(f["caller"], "unauthenticated (unknown key)", "{f}");
    assert_eq!(
        (f["outcome"].as_str(), f["status"].as_u64()),
        (Some("unauthorized"), Some(401))
    );
    // The key itself is never written.
    assert!(!text.contains("no-such-key"), "{text}");
}
