//! The gateway's HTTP API against the stack's real Prometheus: two advertisers' samples of the
//! test's own (advertiser ids no other test uses, a `test_id` label), written by remote_write,
//! then read through `adclick_query::app` with `tower::ServiceExt::oneshot` — A's key sees
//! A's series only, through every endpoint; the operator's sees both; refusals, a missing key,
//! GET and POST.

use std::collections::BTreeSet;

use adclick_query::{ApiKeys, AppState, Credentials, Metrics, QueryConfig, app, key_digest_hex};
use adclick_testsupport::Stack;
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::Value;
use tower::ServiceExt;

use crate::support::{Written, url_encode, write_samples};

const KEY_A: &str = "gateway-test-key-a";
const KEY_B: &str = "gateway-test-key-b";
const KEY_OP: &str = "gateway-test-key-operator";

struct Fixture {
    app: Router,
    a: u64,
    b: u64,
    test_id: String,
    /// The evaluation time of instant queries, seconds: just after the last sample.
    time: String,
}

/// A's and B's samples (`support::write_samples`), and a gateway in front of the stack's
/// Prometheus.
async fn fixture(test: &str) -> Fixture {
    let stack = Stack::get();
    let Written {
        a,
        b,
        test_id,
        time,
    } = write_samples(test).await;
    let keys = ApiKeys::parse(&format!(
        "{} {a}\n{} {b}\n{} operator\n",
        key_digest_hex(KEY_A),
        key_digest_hex(KEY_B),
        key_digest_hex(KEY_OP)
    ))
    .unwrap();
    let config = QueryConfig {
        prometheus_url: stack.prometheus_url().to_string(),
        // Every request of the test at once: no rate limit to trip over.
        requests_per_second: 0,
        ..QueryConfig::default()
    };
    let state = AppState::new(&config, Credentials::from_keys(keys), Metrics::new()).unwrap();
    Fixture {
        app: app(state),
        a,
        b,
        test_id,
        time,
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Via {
    Get,
    Post,
}

/// One request through the gateway: parameters in the query string (GET) or a form body (POST).
async fn call(
    app: &Router,
    via: Via,
    path: &str,
    params: &[(&str, &str)],
    key: Option<&str>,
) -> (StatusCode, Value) {
    let encoded = url_encode(params);
    let mut builder = match via {
        Via::Get if encoded.is_empty() => Request::get(path.to_string()),
        Via::Get => Request::get(format!("{path}?{encoded}")),
        Via::Post => {
            Request::post(path).header("content-type", "application/x-www-form-urlencoded")
        }
    };
    if let Some(k) = key {
        builder = builder.header("authorization", format!("Bearer {k}"));
    }
    let body = match via {
        Via::Get => Body::empty(),
        Via::Post => Body::from(encoded),
    };
    let response = app
        .clone()
        .oneshot(builder.body(body).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 16 << 20)
        .await
        .unwrap();
    let json = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("{path}: {status}, not JSON ({e}): {bytes:?}"));
    (status, json)
}

/// The `advertiser_id` of every series of a query, series or label answer's `data`.
fn advertisers(data: &Value) -> BTreeSet<String> {
    let items = data
        .get("result")
        .and_then(Value::as_array)
        .or_else(|| data.as_array())
        .unwrap_or_else(|| panic!("no series list in {data}"));
    items
        .iter()
        .map(|item| {
            let labels = item.get("metric").unwrap_or(item);
            labels["advertiser_id"]
                .as_str()
                .unwrap_or_else(|| panic!("no advertiser_id in {item}"))
                .to_string()
        })
        .collect()
}

fn ok(status: StatusCode, body: &Value) -> &Value {
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "success", "{body}");
    &body["data"]
}

#[tokio::test]
async fn an_advertiser_sees_only_its_own_series_through_every_endpoint() {
    let f = fixture("gateway-own-series").await;
    let (a, b) = (f.a.to_string(), f.b.to_string());
    let only_a: BTreeSet<String> = [a.clone()].into();
    let selector = format!(r#"adclick_clicks{{test_id="{}"}}"#, f.test_id);
    let sum = format!("sum(sum_over_time({selector}[10m]))");
    let start = (f.time.parse::<i64>().unwrap() - 300).to_string();

    for via in [Via::Get, Via::Post] {
        // query: A's series only, A's sum only (1 + 2 + 3).
        let (s, body) = call(
            &f.app,
            via,
            "/api/v1/query",
            &[("query", selector.as_str()), ("time", f.time.as_str())],
            Some(KEY_A),
        )
        .await;
        assert_eq!(advertisers(ok(s, &body)), only_a, "{via:?} {body}");
        let (s, body) = call(
            &f.app,
            via,
            "/api/v1/query",
            &[("query", sum.as_str()), ("time", f.time.as_str())],
            Some(KEY_A),
        )
        .await;
        assert_eq!(ok(s, &body)["result"][0]["value"][1], "6", "{via:?} {body}");

        // query_range: the same over five minutes.
        let range = [
            ("query", selector.as_str()),
            ("start", start.as_str()),
            ("end", f.time.as_str()),
            ("step", "60"),
        ];
        let (s, body) = call(&f.app, via, "/api/v1/query_range", &range, Some(KEY_A)).await;
        assert_eq!(advertisers(ok(s, &body)), only_a, "{via:?} {body}");

        // series: with a match[], and without (the caller's own series instead).
        let (s, body) = call(
            &f.app,
            via,
            "/api/v1/series",
            &[("match[]", selector.as_str())],
            Some(KEY_A),
        )
        .await;
        assert_eq!(advertisers(ok(s, &body)), only_a, "{via:?} {body}");
        let (s, body) = call(
            &f.app,
            via,
            "/api/v1/series",
            &[("start", start.as_str())],
            Some(KEY_A),
        )
        .await;
        assert_eq!(advertisers(ok(s, &body)), only_a, "{via:?} {body}");

        // labels: A's series carry test_id; B's existence shows nowhere.
        let (s, body) = call(
            &f.app,
            via,
            "/api/v1/labels",
            &[("match[]", selector.as_str())],
            Some(KEY_A),
        )
        .await;
        let names = ok(s, &body).as_array().unwrap();
        assert!(names.iter().any(|n| n == "test_id"), "{via:?} {body}");
        let (s, body) = call(&f.app, via, "/api/v1/labels", &[], Some(KEY_A)).await;
        assert!(
            ok(s, &body)
                .as_array()
                .unwrap()
                .iter()
                .any(|n| n == "advertiser_id"),
            "{body}"
        );
    }

    // label values (GET only, as Prometheus): advertiser_id is A's id alone, with or without a
    // match[]; test_id holds this test's id.
    for params in [vec![], vec![("match[]", selector.as_str())]] {
        let (s, body) = call(
            &f.app,
            Via::Get,
            "/api/v1/label/advertiser_id/values",
            &params,
            Some(KEY_A),
        )
        .await;
        assert_eq!(ok(s, &body), &serde_json::json!([a]), "{body}");
    }
    let (s, body) = call(
        &f.app,
        Via::Get,
        "/api/v1/label/test_id/values",
        &[],
        Some(KEY_A),
    )
    .await;
    assert!(
        ok(s, &body)
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v == f.test_id.as_str()),
        "{body}"
    );

    // B's key sees B's only.
    let (s, body) = call(
        &f.app,
        Via::Post,
        "/api/v1/query",
        &[("query", selector.as_str()), ("time", f.time.as_str())],
        Some(KEY_B),
    )
    .await;
    assert_eq!(
        advertisers(ok(s, &body)),
        BTreeSet::from([b.clone()]),
        "{body}"
    );

    // The operator sees both, unrestricted (a selector an advertiser may not send).
    let both: BTreeSet<String> = [a.clone(), b.clone()].into();
    let (s, body) = call(
        &f.app,
        Via::Post,
        "/api/v1/query",
        &[("query", selector.as_str()), ("time", f.time.as_str())],
        Some(KEY_OP),
    )
    .await;
    assert_eq!(advertisers(ok(s, &body)), both, "{body}");
    let any = format!(r#"{{test_id="{}"}}"#, f.test_id);
    let (s, body) = call(
        &f.app,
        Via::Get,
        "/api/v1/series",
        &[("match[]", any.as_str())],
        Some(KEY_OP),
    )
    .await;
    assert_eq!(advertisers(ok(s, &body)), both, "{body}");

    // buildinfo is Prometheus' own.
    let (s, body) = call(
        &f.app,
        Via::Get,
        "/api/v1/status/buildinfo",
        &[],
        Some(KEY_A),
    )
    .await;
    assert!(ok(s, &body)["version"].is_string(), "{body}");
}

/// What Grafana's Prometheus datasource asks besides queries: metric metadata (only the allowed
/// metrics' entries; the stack's Prometheus has `up`'s and its own), rules and alerts (none for
/// an advertiser; the operator gets Prometheus' own), exemplars (enforced like a range query).
#[tokio::test]
async fn what_grafana_asks_besides_queries() {
    let f = fixture("gateway-grafana-extras").await;
    // The operator gets Prometheus' own metrics' entries too (what the advertiser must not) —
    // once Prometheus has scraped itself: a stack started seconds ago has no metadata yet, and
    // the advertiser's check below would pass on nothing.
    adclick_testsupport::wait::eventually(
        std::time::Duration::from_secs(60),
        "Prometheus' own metadata",
        || async {
            let (s, body) = call(&f.app, Via::Get, "/api/v1/metadata", &[], Some(KEY_OP)).await;
            let all = ok(s, &body).as_object().unwrap().clone();
            if all.contains_key("prometheus_build_info") {
                Ok(())
            } else {
                Err(format!("{:?}", all.keys().take(5).collect::<Vec<_>>()))
            }
        },
    )
    .await;
    let (s, body) = call(&f.app, Via::Get, "/api/v1/metadata", &[], Some(KEY_A)).await;
    let data = ok(s, &body).as_object().unwrap().clone();
    let policy = adclick_query::Policy::default();
    assert!(data.keys().all(|m| policy.allows(m)), "{:?}", data.keys());
    let (s, body) = call(
        &f.app,
        Via::Get,
        "/api/v1/metadata",
        &[("metric", "prometheus_build_info")],
        Some(KEY_A),
    )
    .await;
    assert_eq!(ok(s, &body), &serde_json::json!({}), "{body}");
    for (path, field) in [("/api/v1/rules", "groups"), ("/api/v1/alerts", "alerts")] {
        let (s, body) = call(&f.app, Via::Get, path, &[], Some(KEY_A)).await;
        assert_eq!(ok(s, &body)[field], serde_json::json!([]), "{path}: {body}");
        let (s, body) = call(&f.app, Via::Get, path, &[], Some(KEY_OP)).await;
        assert!(ok(s, &body)[field].is_array(), "{path}: {body}");
    }
    let end = f.time.clone();
    let start = format!("{}", end.parse::<i64>().unwrap() - 600);
    let (s, body) = call(
        &f.app,
        Via::Post,
        "/api/v1/query_exemplars",
        &[
            ("query", "adclick_clicks"),
            ("start", start.as_str()),
            ("end", end.as_str()),
        ],
        Some(KEY_A),
    )
    .await;
    assert!(ok(s, &body).is_array(), "{body}");
    let (s, body) = call(
        &f.app,
        Via::Post,
        "/api/v1/query_exemplars",
        &[
            ("query", "up"),
            ("start", start.as_str()),
            ("end", end.as_str()),
        ],
        Some(KEY_A),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
}

#[tokio::test]
async fn get_and_post_give_the_same_answer() {
    let f = fixture("gateway-get-post").await;
    let query = format!(
        r#"sum by (advertiser_id) (sum_over_time(adclick_clicks{{test_id="{}"}}[10m]))"#,
        f.test_id
    );
    let params = [("query", query.as_str()), ("time", f.time.as_str())];
    let get = call(&f.app, Via::Get, "/api/v1/query", &params, Some(KEY_A)).await;
    let post = call(&f.app, Via::Post, "/api/v1/query", &params, Some(KEY_A)).await;
    assert_eq!(get, post);
    assert_eq!(
        get.1["data"]["result"][0]["metric"]["advertiser_id"],
        f.a.to_string(),
        "{}",
        get.1
    );
    // A refusal is the same both ways too.
    let bad = [("query", "adclick_clicks{advertiser_id!=\"1\"}")];
    let get = call(&f.app, Via::Get, "/api/v1/query", &bad, Some(KEY_A)).await;
    let post = call(&f.app, Via::Post, "/api/v1/query", &bad, Some(KEY_A)).await;
    assert_eq!(get, post);
    assert_eq!(get.0, StatusCode::FORBIDDEN);
}

/// A request (path, parameters) and the status it must be answered with.
type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, StatusCode);

#[tokio::test]
async fn refusals_and_missing_keys_are_answered_in_prometheus_envelope() {
    let f = fixture("gateway-refusals").await;
    let other = format!(r#"adclick_clicks{{advertiser_id="{}"}}"#, f.b);
    let cases: Vec<Case> = vec![
        (
            "/api/v1/query",
            vec![("query", other.as_str())],
            StatusCode::FORBIDDEN,
        ),
        (
            "/api/v1/query",
            vec![("query", r#"{__name__=~".+"}"#)],
            StatusCode::FORBIDDEN,
        ),
        (
            "/api/v1/query",
            vec![("query", "up")],
            StatusCode::FORBIDDEN,
        ),
        (
            "/api/v1/query",
            vec![("query", "sum(")],
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/v1/query",
            vec![("query", "adclick_clicks"), ("query", "up")],
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/v1/query_range",
            vec![
                ("query", r#"adclick_clicks{advertiser_id=~".*"}"#),
                ("start", "1"),
                ("end", "2"),
                ("step", "1"),
            ],
            StatusCode::FORBIDDEN,
        ),
        (
            "/api/v1/series",
            vec![("match[]", other.as_str())],
            StatusCode::FORBIDDEN,
        ),
        (
            "/api/v1/series",
            vec![("match[]", r#"{test_id=~".+"}"#)],
            StatusCode::FORBIDDEN,
        ),
        (
            "/api/v1/labels",
            vec![("match[]", "up")],
            StatusCode::FORBIDDEN,
        ),
    ];
    for (path, params, status) in &cases {
        for via in [Via::Get, Via::Post] {
            let (s, body) = call(&f.app, via, path, params, Some(KEY_A)).await;
            assert_eq!(s, *status, "{path} {params:?} {via:?}: {body}");
            assert_eq!(body["status"], "error", "{body}");
            assert_eq!(body["errorType"], "bad_data", "{body}");
            assert!(
                body["error"].as_str().is_some_and(|e| !e.is_empty()),
                "{body}"
            );
        }
    }
    let (s, body) = call(
        &f.app,
        Via::Get,
        "/api/v1/label/advertiser_id/values",
        &[("match[]", other.as_str())],
        Some(KEY_A),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");

    // No key, an unknown key: 401 and nothing else, whatever was asked.
    let expected = serde_json::json!({"status": "error", "errorType": "unauthorized", "error": "authentication required"});
    for key in [None, Some("not-a-key")] {
        for path in [
            "/api/v1/query",
            "/api/v1/series",
            "/api/v1/label/advertiser_id/values",
            "/api/v1/status/buildinfo",
        ] {
            let (s, body) = call(&f.app, Via::Get, path, &[("query", "1+1")], key).await;
            assert_eq!(
                (s, &body),
                (StatusCode::UNAUTHORIZED, &expected),
                "{path} {key:?}"
            );
        }
    }

    // Grafana's health check passes; an unknown API path is a 404 envelope.
    let (s, body) = call(
        &f.app,
        Via::Post,
        "/api/v1/query",
        &[("query", "1+1"), ("time", f.time.as_str())],
        Some(KEY_A),
    )
    .await;
    assert_eq!(ok(s, &body)["result"][1], "2", "{body}");
    let (s, body) = call(&f.app, Via::Get, "/api/v1/status/config", &[], Some(KEY_A)).await;
    assert_eq!(
        (s, body["errorType"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
}

#[tokio::test]
async fn basic_auth_passwords_are_keys() {
    use base64::Engine as _;
    let f = fixture("gateway-basic-auth").await;
    let selector = format!(r#"adclick_clicks{{test_id="{}"}}"#, f.test_id);
    let credentials = base64::engine::general_purpose::STANDARD.encode(format!("grafana:{KEY_A}"));
    let request = Request::get(format!(
        "/api/v1/query?{}",
        url_encode(&[("query", selector.as_str()), ("time", f.time.as_str())])
    ))
    .header("authorization", format!("Basic {credentials}"))
    .body(Body::empty())
    .unwrap();
    let response = f.app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        advertisers(ok(status, &body)),
        BTreeSet::from([f.a.to_string()]),
        "{body}"
    );
}
