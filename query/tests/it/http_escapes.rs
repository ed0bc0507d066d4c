//! The escape catalogue of issue #21 at the HTTP level: the real service (`adclick_query::run`
//! on ports of its own, with API keys, HS256 JWTs and a keys file it reloads) in front of the
//! stack's Prometheus, which holds samples of two advertisers, A and B; each test one attempt by
//! A (or by someone without a valid credential) to get past the gateway over real HTTP. Each is
//! answered either with A's data only — every series that carries `advertiser_id` carries A's,
//! B's id nowhere in the body, B's values in no figure — or with a 4xx naming why, in
//! Prometheus' error envelope (the few answers hyper or axum give before the gateway's code runs
//! are said where they are tested).
//!
//! `escapes` is the catalogue of the expressions themselves; this one is about what the HTTP
//! layer could add or lose on the way: the answers as Prometheus really gives them, the other
//! endpoints and paths, repeated and mixed parameters (query string and form body), encodings,
//! sizes, headers, the credentials (schemes, forged and expired tokens, a revoked key) and the
//! rate limit. Encoding and path tricks go as raw request lines, which no client normalises.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use adclick_query::{JwtAlgorithm, JwtConfig, Listeners, QueryConfig, key_digest_hex, run};
use adclick_testsupport::Stack;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::support::{Answer, Written, encode_component, exchange, url_encode, write_samples};

const KEY_A: &str = "http-escapes-key-a";
const KEY_B: &str = "http-escapes-key-b";
const KEY_OP: &str = "http-escapes-key-operator";
/// The HS256 secret the gateway verifies JWTs with (at least 32 bytes).
const SECRET: &[u8] = b"http-escapes-test-secret-0123456789abcdef";
const FORM: &str = "application/x-www-form-urlencoded";
/// Every refused credential is answered with exactly this.
const UNAUTHORIZED: &str =
    r#"{"status":"error","errorType":"unauthorized","error":"authentication required"}"#;

// --- the gateway under test ---

/// `adclick query` serving on 127.0.0.1 ports of its own until the test ends, and A's and B's
/// samples in the stack's Prometheus.
struct Gateway {
    api: SocketAddr,
    admin: SocketAddr,
    w: Written,
    keys_file: PathBuf,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
    /// Dropped with the gateway: the service shuts down.
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn gateway(test: &str) -> Gateway {
    gateway_with(test, |_| {}).await
}

/// The gateway of [`gateway`], its configuration changed by `tweak` first.
async fn gateway_with(test: &str, tweak: impl FnOnce(&mut QueryConfig)) -> Gateway {
    let w = write_samples(test).await;
    let dir = tempfile::tempdir().unwrap();
    let keys_file = dir.path().join("keys");
    let [a, b, op] = [KEY_A, KEY_B, KEY_OP].map(key_digest_hex);
    let keys = format!("{a} {}\n{b} {}\n{op} operator\n", w.a, w.b);
    std::fs::write(&keys_file, keys).unwrap();
    let secret = dir.path().join("jwt-secret");
    std::fs::write(&secret, SECRET).unwrap();
    let mut config = QueryConfig {
        prometheus_url: Stack::get().prometheus_url().to_string(),
        api_keys_file: keys_file.clone(),
        jwt: JwtConfig {
            algorithm: Some(JwtAlgorithm::Hs256),
            key_file: secret,
            ..JwtConfig::default()
        },
        reload_interval_ms: 200,
        // Off but in the test of the limit itself: the tests of one binary run at once.
        requests_per_second: 0,
        ..QueryConfig::default()
    };
    tweak(&mut config);
    let api = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (api_addr, admin_addr) = (api.local_addr().unwrap(), admin.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let stopped = async {
            let _ = stopped.await;
        };
        if let Err(e) = run(Listeners { api, admin }, config, stopped).await {
            panic!("the gateway stopped: {}", adclick_admin::ErrorChain(&e));
        }
    });
    Gateway {
        api: api_addr,
        admin: admin_addr,
        w,
        keys_file,
        http: reqwest::Client::new(),
        _dir: dir,
        _stop: stop,
    }
}

impl Gateway {
    fn a(&self) -> String {
        self.w.a.to_string()
    }

    fn b(&self) -> String {
        self.w.b.to_string()
    }

    /// A selector of this test's series (both advertisers', before the gateway).
    fn clicks(&self) -> String {
        format!(r#"adclick_clicks{{test_id="{}"}}"#, self.w.test_id)
    }

    /// `/api/v1/query?…` of `query` at the test's time.
    fn query_target(&self, query: &str) -> String {
        let params = [("query", query), ("time", self.w.time.as_str())];
        format!("/api/v1/query?{}", url_encode(&params))
    }

    /// `GET /api/v1/query` of `query` at the test's time, with A's key.
    async fn query(&self, query: &str) -> Answer {
        self.get(&self.query_target(query)).await
    }

    /// `query`, which must be refused with `status` and `reason`.
    async fn refuses(&self, query: &str, status: u16, reason: &str) {
        self.query(query).await.refused(status, reason);
    }

    /// `GET <target>` with A's key.
    async fn get(&self, target: &str) -> Answer {
        self.get_as(target, Some(&bearer(KEY_A))).await
    }

    /// `GET <target>` with this `Authorization` header, or none.
    async fn get_as(&self, target: &str, authorization: Option<&str>) -> Answer {
        let mut request = self.http.get(format!("http://{}{target}", self.api));
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        Answer::read(request.send().await.unwrap()).await
    }

    /// The query of this test's series (A's and B's before the gateway), with this
    /// `Authorization` header.
    async fn own_as(&self, authorization: &str) -> Answer {
        self.get_as(&self.query_target(&self.clicks()), Some(authorization))
            .await
    }

    /// `POST <target>` of `body` as `content_type`, with A's key.
    async fn post(&self, target: &str, content_type: &str, body: impl Into<String>) -> Answer {
        let request = self
            .http
            .post(format!("http://{}{target}", self.api))
            .bearer_auth(KEY_A)
            .header("content-type", content_type)
            .body(body.into());
        Answer::read(request.send().await.unwrap()).await
    }

    /// A GET of `target` exactly as written (no client normalises it), with A's key.
    async fn raw_get(&self, target: &str) -> Answer {
        let request = format!(
            "GET {target} HTTP/1.1\r\nHost: g\r\nAuthorization: Bearer {KEY_A}\r\n\
             Connection: close\r\n\r\n"
        );
        let mut answers = exchange(self.api, request.as_bytes()).await;
        assert_eq!(answers.len(), 1, "{target}: {answers:?}");
        answers.remove(0)
    }

    /// The admin listener's `/healthz`: whether the process still serves.
    async fn healthy(&self) -> bool {
        let url = format!("http://{}/healthz", self.admin);
        matches!(self.http.get(url).send().await, Ok(r) if r.status().is_success())
    }
}

fn bearer(credential: &str) -> String {
    format!("Bearer {credential}")
}

/// What an answer must hold: nothing of B's.
trait Seen {
    /// A success holding nothing of B's: B's id nowhere in the body, every series carrying
    /// `advertiser_id` carrying A's. The series (a query's `result`, a metadata endpoint's list).
    fn only_a(&self, g: &Gateway) -> Vec<Value>;
    /// [`Seen::only_a`], with at least one series, and every one labelled A.
    fn all_a(&self, g: &Gateway) -> Vec<Value>;
    /// As [`Seen::only_a`], for advertiser `id`, `other` nowhere.
    fn only(&self, id: &str, other: &str) -> Vec<Value>;
    /// The 401 every refused credential gets: the same body, whatever was wrong.
    fn unauthorized(&self);
}

impl Seen for Answer {
    fn only_a(&self, g: &Gateway) -> Vec<Value> {
        self.only(&g.a(), &g.b())
    }

    fn all_a(&self, g: &Gateway) -> Vec<Value> {
        let series = self.only_a(g);
        assert!(!series.is_empty(), "no series: {}", self.body);
        for s in &series {
            assert_eq!(s.get("metric").unwrap_or(s)["advertiser_id"], g.a(), "{s}");
        }
        series
    }

    fn only(&self, id: &str, other: &str) -> Vec<Value> {
        assert_eq!(self.status, 200, "{}", self.body);
        assert!(!self.body.contains(other), "{other} in {}", self.body);
        let v = self.json();
        assert_eq!(v["status"], "success", "{v}");
        let series = match v["data"].get("result") {
            Some(Value::Array(items)) => items.clone(),
            Some(_) => Vec::new(), // a scalar or a string
            None => v["data"].as_array().cloned().unwrap_or_default(),
        };
        for s in &series {
            if let Some(found) = s.get("metric").unwrap_or(s).get("advertiser_id") {
                assert_eq!(found, id, "{v}");
            }
        }
        series
    }

    fn unauthorized(&self) {
        assert_eq!((self.status, self.body.as_str()), (401, UNAUTHORIZED));
    }
}

/// The value of an instant vector's only series, or of a scalar.
fn value_of(answer: &Answer) -> String {
    let data = &answer.json()["data"];
    let value = match data["resultType"].as_str() {
        Some("scalar") => &data["result"][1],
        _ => {
            assert_eq!(data["result"].as_array().map(Vec::len), Some(1), "{data}");
            &data["result"][0]["value"][1]
        }
    };
    value.as_str().unwrap().to_string()
}

// --- tokens ---

fn now_s() -> i64 {
    jsonwebtoken::get_current_timestamp() as i64
}

fn hs256(secret: &[u8], header: &Header, claims: &Value) -> String {
    // The gateway's first load installs it too; whichever comes first.
    let _ = jsonwebtoken::crypto::CryptoProvider::install_default(
        &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER,
    );
    jsonwebtoken::encode(header, claims, &EncodingKey::from_secret(secret)).unwrap()
}

/// `Bearer <a token of these claims signed with the gateway's secret>`.
fn jwt(claims: &Value) -> String {
    bearer(&hs256(SECRET, &Header::new(Algorithm::HS256), claims))
}

/// `Bearer <a token signed with a secret that is not the gateway's>`.
fn forged_jwt(header: &Header, claims: &Value) -> String {
    bearer(&hs256(
        b"an attacker's own secret, 32 bytes+",
        header,
        claims,
    ))
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

// --- matchers on advertiser_id and on the name; functions that write labels ---

const OWN_ID_ONLY: &str = "advertiser_id may only be matched with = and your own id";

#[tokio::test]
async fn regex_matcher_on_advertiser_id_is_forbidden() {
    let g = gateway("http-esc-regex").await;
    g.refuses(r#"adclick_clicks{advertiser_id=~".+"}"#, 403, OWN_ID_ONLY)
        .await;
}

#[tokio::test]
async fn negative_regex_on_advertiser_id_is_forbidden() {
    let g = gateway("http-esc-nregex").await;
    let q = format!(r#"adclick_clicks{{advertiser_id!~"{}"}}"#, g.a());
    g.refuses(&q, 403, OWN_ID_ONLY).await;
}

#[tokio::test]
async fn not_equal_on_advertiser_id_is_forbidden() {
    let g = gateway("http-esc-neq").await;
    let q = format!(r#"sum(adclick_clicks{{advertiser_id!="{}"}})"#, g.a());
    g.refuses(&q, 403, OWN_ID_ONLY).await;
}

#[tokio::test]
async fn as_key_naming_b_in_the_query_is_forbidden() {
    let g = gateway("http-esc-other-id").await;
    let matcher = format!(r#"advertiser_id="{}""#, g.b());
    let q = format!("adclick_clicks{{{matcher}}}");
    g.refuses(&q, 403, &format!("`{matcher}`: {OWN_ID_ONLY}"))
        .await;
}

#[tokio::test]
async fn any_name_regex_is_forbidden() {
    let g = gateway("http-esc-any-name").await;
    let why = "a metric name may only be matched with = and one exact name";
    g.refuses(r#"{__name__=~".+"}"#, 403, why).await;
}

#[tokio::test]
async fn a_name_other_than_nothing_is_forbidden() {
    let g = gateway("http-esc-name-neq").await;
    g.refuses(r#"{__name__!=""}"#, 403, r#"`__name__!=""`: a metric name"#)
        .await;
}

#[tokio::test]
async fn a_selector_of_only_the_callers_id_is_forbidden_without_a_name() {
    let g = gateway("http-esc-no-name-a").await;
    let q = format!(r#"{{advertiser_id="{}"}}"#, g.a());
    g.refuses(&q, 403, "has no metric name").await;
}

#[tokio::test]
async fn a_selector_of_another_label_is_forbidden_without_a_name() {
    let g = gateway("http-esc-no-name-ad").await;
    g.refuses(r#"{ad_id="1"}"#, 403, "has no metric name").await;
}

#[tokio::test]
async fn series_outside_the_allowlist_are_forbidden() {
    let g = gateway("http-esc-up").await;
    g.refuses("up", 403, "`up` is not one of the series you may query")
        .await;
    let why = "`prometheus_build_info` is not one of the series";
    g.refuses("sum(prometheus_build_info)", 403, why).await;
}

#[tokio::test]
async fn or_vector_adds_only_a_series_without_labels() {
    let g = gateway("http-esc-or-vector").await;
    let series = g
        .query(&format!("{} or vector(1)", g.clicks()))
        .await
        .only_a(&g);
    // A's series (its last value is 3; B's is 300) and vector(1)'s empty label set.
    assert_eq!(series.len(), 2, "{series:?}");
    let own = |s: &&Value| s["metric"]["advertiser_id"] == g.a() && s["value"][1] == "3";
    assert!(series.iter().any(|s| own(&s)));
    assert!(
        series
            .iter()
            .any(|s| s["metric"] == json!({}) && s["value"][1] == "1")
    );
}

#[tokio::test]
async fn or_on_nothing_brings_in_no_unrestricted_series() {
    let g = gateway("http-esc-or-on").await;
    // on() matches every right-hand series with vector(1): none is added.
    let series = g.query("vector(1) or on() adclick_clicks").await.only_a(&g);
    assert_eq!(series.len(), 1, "{series:?}");
    // The other way round, the selector's series are A's alone.
    g.query("adclick_clicks or on() vector(1)").await.all_a(&g);
}

#[tokio::test]
async fn label_replace_onto_advertiser_id_is_forbidden() {
    let g = gateway("http-esc-label-replace").await;
    let q = format!(
        r#"label_replace(adclick_clicks, "advertiser_id", "{}", "", "")"#,
        g.b()
    );
    let why = "label_replace(…) may not write the advertiser_id label";
    g.refuses(&q, 403, why).await;
}

#[tokio::test]
async fn label_join_onto_advertiser_id_is_forbidden() {
    let g = gateway("http-esc-label-join").await;
    let q = r#"label_join(adclick_clicks, "advertiser_id", "", "campaign_id")"#;
    g.refuses(
        q,
        403,
        "label_join(…) may not write the advertiser_id label",
    )
    .await;
}

#[tokio::test]
async fn count_values_into_advertiser_id_is_forbidden() {
    let g = gateway("http-esc-count-values").await;
    let q = r#"count_values("advertiser_id", adclick_clicks)"#;
    g.refuses(
        q,
        403,
        "count_values(…) may not write the advertiser_id label",
    )
    .await;
}

#[tokio::test]
async fn absent_of_bs_series_is_forbidden() {
    let g = gateway("http-esc-absent-b").await;
    let q = format!(r#"absent(adclick_clicks{{advertiser_id="{}"}})"#, g.b());
    g.refuses(&q, 403, OWN_ID_ONLY).await;
}

#[tokio::test]
async fn absent_answers_for_a_and_labels_its_answer_with_a() {
    let g = gateway("http-esc-absent").await;
    // Nobody has campaign 2: the answer's labels are the selector's, the injected A's among them.
    g.query(r#"absent(adclick_clicks{campaign_id="2"})"#)
        .await
        .all_a(&g);
    // A has campaign 1: nothing is absent.
    let series = g
        .query(r#"absent(adclick_clicks{campaign_id="1"})"#)
        .await
        .only_a(&g);
    assert!(series.is_empty(), "{series:?}");
}

#[tokio::test]
async fn a_subquery_reads_only_a() {
    let g = gateway("http-esc-subquery").await;
    let answer = g
        .query(&format!("max_over_time({}[10m:1m])", g.clicks()))
        .await;
    answer.all_a(&g);
    // The minute steps see A's 2 or 3, by where the last sample falls (B's: 200 or 300).
    assert!(
        ["2", "3"].contains(&value_of(&answer).as_str()),
        "{}",
        answer.body
    );
}

#[tokio::test]
async fn joins_on_nothing_and_group_left_of_advertiser_id_see_only_a() {
    let g = gateway("http-esc-join").await;
    let q = format!(
        "sum by (ad_id) ({c}) * on(ad_id) group_left(advertiser_id) {c} + on() group_left vector(0)",
        c = g.clicks()
    );
    let answer = g.query(&q).await;
    answer.all_a(&g);
    assert_eq!(value_of(&answer), "9"); // 3 × 3; with B's in either side, 90,000 or more
}

#[tokio::test]
async fn count_by_advertiser_id_counts_only_a() {
    let g = gateway("http-esc-count-by").await;
    // Over every adclick_clicks series in the stack: A's alone come back.
    let series = g
        .query("count by (advertiser_id) (adclick_clicks)")
        .await
        .all_a(&g);
    assert_eq!(series.len(), 1, "{series:?}");
}

#[tokio::test]
async fn topk_over_everything_returns_only_a() {
    let g = gateway("http-esc-topk").await;
    let series = g.query("topk(1000, adclick_clicks)").await.all_a(&g);
    assert_eq!(series.len(), 1, "{series:?}");
}

#[tokio::test]
async fn the_aggregation_parameter_is_restricted_too() {
    let g = gateway("http-esc-agg-param").await;
    let c = g.clicks();
    g.query(&format!("topk(scalar(sum({c})), {c})"))
        .await
        .all_a(&g);
    // The parameter alone: A's sum (3), not A's and B's (303).
    assert_eq!(value_of(&g.query(&format!("scalar(sum({c}))")).await), "3");
    // B named in the parameter is refused, not replaced.
    let b = format!(r#"adclick_clicks{{advertiser_id="{}"}}"#, g.b());
    let q = format!("quantile(scalar(sum({b})), adclick_clicks)");
    g.refuses(&q, 403, OWN_ID_ONLY).await;
}

#[tokio::test]
async fn or_between_matchers_is_refused() {
    let g = gateway("http-esc-or-matchers").await;
    let q = r#"adclick_clicks{ad_id="1" or campaign_id="1"}"#;
    g.refuses(q, 400, "`or` between label matchers is not supported")
        .await;
}

#[tokio::test]
async fn a_tier_matcher_selecting_everything_is_refused() {
    let g = gateway("http-esc-tier").await;
    let q = r#"sum(adclick_clicks{tier=~".*"})"#;
    g.refuses(q, 400, r#"`tier=~".*"`: tier may only be matched with"#)
        .await;
}

#[tokio::test]
async fn a_lookalike_advertiser_label_is_only_another_label() {
    let g = gateway("http-esc-homoglyph").await;
    // Cyrillic "і" (U+0456), sent as percent-encoded UTF-8: another label, which the gateway
    // lets through and Prometheus 2.x cannot parse (a quoted label name); either way, not B's.
    let q = format!("adclick_clicks{{\"advertiser_\u{456}d\"=\"{}\"}}", g.b());
    let answer = g.query(&q).await;
    if answer.status == 200 {
        assert!(answer.only_a(&g).is_empty(), "{}", answer.body);
    } else {
        answer.refused(400, "parse error");
    }
}

// --- the metadata endpoints ---

#[tokio::test]
async fn series_of_clicks_are_as() {
    let g = gateway("http-esc-series").await;
    let target = format!(
        "/api/v1/series?{}",
        url_encode(&[("match[]", "adclick_clicks")])
    );
    let series = g.get(&target).await.all_a(&g);
    assert_eq!(series.len(), 1, "{series:?}");
}

#[tokio::test]
async fn series_of_any_name_are_forbidden() {
    let g = gateway("http-esc-series-any").await;
    let target = format!(
        "/api/v1/series?{}",
        url_encode(&[("match[]", r#"{__name__=~".+"}"#)])
    );
    g.get(&target)
        .await
        .refused(403, "a metric name may only be matched");
}

#[tokio::test]
async fn series_without_match_are_the_callers_own() {
    let g = gateway("http-esc-series-none").await;
    // Prometheus itself refuses a series request without match[]; the gateway asks for A's.
    let series = g.get("/api/v1/series").await.all_a(&g);
    assert!(series.iter().any(|s| s["test_id"] == g.w.test_id.as_str()));
}

#[tokio::test]
async fn advertiser_id_values_are_as_alone() {
    let g = gateway("http-esc-label-values").await;
    let answer = g.get("/api/v1/label/advertiser_id/values").await;
    answer.only_a(&g);
    assert_eq!(answer.json()["data"], json!([g.a()]));
}

#[tokio::test]
async fn metric_names_are_those_of_as_series() {
    let g = gateway("http-esc-names").await;
    let answer = g.get("/api/v1/label/__name__/values").await;
    answer.only_a(&g);
    assert_eq!(answer.json()["data"], json!(["adclick_clicks"]));
}

#[tokio::test]
async fn label_names_are_those_of_as_series() {
    let g = gateway("http-esc-labels").await;
    let answer = g.get("/api/v1/labels").await;
    answer.only_a(&g);
    let names = [
        "__name__",
        "ad_id",
        "advertiser_id",
        "campaign_id",
        "test_id",
    ];
    assert_eq!(answer.json()["data"], json!(names));
}

#[tokio::test]
async fn a_widening_match_in_the_body_is_forbidden_beside_a_harmless_one_in_the_url() {
    let g = gateway("http-esc-series-mixed").await;
    let body = url_encode(&[("match[]", "adclick_clicks"), ("match[]", "up")]);
    g.post("/api/v1/series?match[]=adclick_clicks", FORM, body)
        .await
        .refused(403, "`up` is not one of the series");
}

#[tokio::test]
async fn an_expression_as_match_is_refused() {
    let g = gateway("http-esc-series-expr").await;
    let params = [("match[]", "adclick_clicks or on() up")];
    let target = format!("/api/v1/series?{}", url_encode(&params));
    g.get(&target)
        .await
        .refused(400, "is not a series selector");
}

#[tokio::test]
async fn an_empty_match_is_not_no_match() {
    let g = gateway("http-esc-series-empty").await;
    // Not read as "no match[]" (the caller's own series) nor as "everything".
    let answer = g.get("/api/v1/series?match[]=").await;
    answer.refused(400, "not valid PromQL");
}

#[tokio::test]
async fn a_range_query_over_every_advertiser_returns_only_a() {
    let g = gateway("http-esc-range").await;
    let end: i64 = g.w.time.parse().unwrap();
    let (start, end) = ((end - 300).to_string(), end.to_string());
    let params = [
        ("query", "count by (advertiser_id) (adclick_clicks)"),
        ("start", start.as_str()),
        ("end", end.as_str()),
        ("step", "60"),
    ];
    let target = format!("/api/v1/query_range?{}", url_encode(&params));
    let series = g.get(&target).await.all_a(&g);
    assert_eq!(series.len(), 1, "{series:?}");
}

// --- paths: Prometheus' other endpoints, traversal ---

#[tokio::test]
async fn an_encoded_traversal_in_a_label_name_is_no_label_name() {
    let g = gateway("http-esc-label-traversal").await;
    let answer = g
        .raw_get("/api/v1/label/..%2F..%2Fstatus%2Fconfig/values")
        .await;
    answer.refused(400, "invalid label name");
    let answer = g
        .raw_get("/api/v1/label/advertiser_id%2Fvalues%3F/values")
        .await;
    answer.refused(400, "invalid label name");
}

#[tokio::test]
async fn a_traversal_matches_no_route() {
    let g = gateway("http-esc-traversal").await;
    for target in [
        "/api/v1/label/../../status/config/values",
        "/api/v1/query/../status/config",
        "/api/v1/status/buildinfo/../config",
        "/api/v1/status/buildinfo/..%2Fconfig",
        "/api/v1//status/config",
        "/api/v1/query/?query=up",
        "/api/v1/%71uery?query=up",
        "/API/V1/QUERY?query=up",
    ] {
        let answer = g.raw_get(target).await;
        assert_eq!(answer.status, 404, "{target}: {}", answer.body);
        answer.refused(404, "not found");
    }
}

#[tokio::test]
async fn prometheus_config_is_not_served() {
    let g = gateway("http-esc-config").await;
    g.get("/api/v1/status/config")
        .await
        .refused(404, "not found");
}

#[tokio::test]
async fn deleting_series_is_not_served() {
    let g = gateway("http-esc-delete").await;
    let q = url_encode(&[("match[]", "adclick_clicks")]);
    for path in [
        "/api/v1/admin/tsdb/delete_series",
        "/api/v1/admin/tsdb/clean_tombstones",
    ] {
        let answer = g.post(&format!("{path}?{q}"), FORM, "").await;
        answer.refused(404, "not found");
    }
}

#[tokio::test]
async fn federation_is_not_served() {
    let g = gateway("http-esc-federate").await;
    let q = url_encode(&[("match[]", r#"{__name__=~".+"}"#)]);
    g.get(&format!("/federate?{q}"))
        .await
        .refused(404, "not found");
}

#[tokio::test]
async fn remote_write_is_not_served() {
    let g = gateway("http-esc-write").await;
    let answer = g
        .post("/api/v1/write", "application/x-protobuf", "\u{0}")
        .await;
    answer.refused(404, "not found");
}

#[tokio::test]
async fn the_rest_of_prometheus_api_is_not_served() {
    let g = gateway("http-esc-other-endpoints").await;
    let q = encode_component("adclick_clicks");
    // Each would show other advertisers' ids (tsdb's label value counts) or the server's
    // internals. (metadata, rules, alerts and query_exemplars are served, restricted:
    // `grafanas_other_calls_show_nothing_of_b`.)
    for target in [
        "/api/v1/status/tsdb".to_string(),
        "/api/v1/status/flags".into(),
        "/api/v1/status/runtimeinfo".into(),
        "/api/v1/targets".into(),
        format!("/api/v1/format_query?query={q}"),
        "/api/v1/admin/tsdb/snapshot".into(),
        "/metrics".into(),
        "/-/reload".into(),
    ] {
        let answer = g.raw_get(&target).await;
        assert_eq!(answer.status, 404, "{target}: {}", answer.body);
        answer.refused(404, "not found");
    }
}

/// What Grafana's datasource asks besides queries, by an advertiser: metadata of the allowed
/// metrics only, no rules, no alerts (an alert's labels may name anyone), exemplars enforced.
#[tokio::test]
async fn grafanas_other_calls_show_nothing_of_b() {
    let g = gateway("http-esc-grafana-calls").await;
    let q = encode_component("adclick_clicks");
    for (target, empty) in [
        ("/api/v1/metadata".to_string(), "{}"),
        ("/api/v1/metadata?metric=prometheus_build_info".into(), "{}"),
        ("/api/v1/rules".into(), r#"{"groups":[]}"#),
        ("/api/v1/alerts".into(), r#"{"alerts":[]}"#),
    ] {
        let answer = g.raw_get(&target).await;
        assert_eq!(answer.status, 200, "{target}: {}", answer.body);
        let body: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
        assert_eq!(body["data"].to_string(), empty, "{target}");
    }
    let up = encode_component("up");
    let answer = g
        .raw_get(&format!("/api/v1/query_exemplars?query={up}&start=0&end=1"))
        .await;
    answer.refused(403, "not one of the series");
    let answer = g
        .raw_get(&format!("/api/v1/query_exemplars?query={q}"))
        .await;
    answer.refused(400, "`start`");
}

#[tokio::test]
async fn an_absolute_target_naming_prometheus_is_no_proxy() {
    let g = gateway("http-esc-absolute").await;
    let prometheus = Stack::get()
        .prometheus_url()
        .trim_end_matches('/')
        .to_string();
    let answer = g
        .raw_get(&format!("{prometheus}/api/v1/status/config"))
        .await;
    answer.refused(404, "not found");
    // The path is what is answered, as any other: enforced.
    let answer = g
        .raw_get(&format!("{prometheus}/api/v1/query?query=up"))
        .await;
    answer.refused(403, "`up` is not one of the series");
}

#[tokio::test]
async fn connect_opens_no_tunnel_to_prometheus() {
    let g = gateway("http-esc-connect").await;
    let stack = Stack::get();
    let prometheus = stack.prometheus_url();
    let authority = prometheus
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let request = format!(
        "CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\nAuthorization: Bearer {KEY_A}\r\n\r\n\
         GET /api/v1/status/config HTTP/1.1\r\nHost: p\r\nAuthorization: Bearer {KEY_A}\r\n\
         Connection: close\r\n\r\n"
    );
    let answers = exchange(g.api, request.as_bytes()).await;
    // No answer is a tunnel's 2xx, nor Prometheus' config: each is the gateway's 404.
    assert_eq!(answers.len(), 2, "{answers:?}");
    for answer in &answers {
        answer.refused(404, "not found");
    }
}

// --- parameters: repeats, GET and POST mixed, content types, names, times ---

const REPEATED: &str = "the parameter `query` is given more than once";
const MISSING: &str = "the parameter `query` is missing";

#[tokio::test]
async fn a_query_given_twice_in_the_url_is_refused() {
    let g = gateway("http-esc-repeat-get").await;
    let params = [("query", "adclick_clicks"), ("query", "up")];
    let answer = g
        .get(&format!("/api/v1/query?{}", url_encode(&params)))
        .await;
    answer.refused(400, REPEATED);
}

#[tokio::test]
async fn a_query_in_the_url_and_another_in_the_body_is_refused() {
    let g = gateway("http-esc-repeat-mixed").await;
    let answer = g
        .post("/api/v1/query?query=adclick_clicks", FORM, "query=up")
        .await;
    answer.refused(400, REPEATED);
}

#[tokio::test]
async fn a_query_given_twice_in_the_body_is_refused() {
    let g = gateway("http-esc-repeat-post").await;
    let answer = g
        .post("/api/v1/query", FORM, "query=adclick_clicks&query=up")
        .await;
    answer.refused(400, REPEATED);
}

#[tokio::test]
async fn a_get_with_a_form_body_is_answered_from_its_url_alone() {
    let g = gateway("http-esc-get-body").await;
    let request = g
        .http
        .get(format!("http://{}{}", g.api, g.query_target(&g.clicks())))
        .bearer_auth(KEY_A)
        .header("content-type", FORM)
        .body("query=up");
    Answer::read(request.send().await.unwrap()).await.all_a(&g);
}

#[tokio::test]
async fn a_json_body_is_not_read() {
    let g = gateway("http-esc-json-body").await;
    let body = json!({"query": "up"}).to_string();
    let answer = g.post("/api/v1/query", "application/json", body).await;
    answer.refused(400, MISSING);
}

#[tokio::test]
async fn a_form_under_another_content_type_is_not_read() {
    let g = gateway("http-esc-content-type").await;
    for content_type in [
        "text/plain",
        "multipart/form-data; boundary=x",
        "application/x-www-form-urlencodedx",
    ] {
        let answer = g.post("/api/v1/query", content_type, "query=up").await;
        answer.refused(400, MISSING);
    }
}

#[tokio::test]
async fn parameter_names_are_exact() {
    let g = gateway("http-esc-param-names").await;
    for target in ["?Query=up", "?query[]=up", "?query%00=up", "?%20query=up"] {
        let answer = g.raw_get(&format!("/api/v1/query{target}")).await;
        answer.refused(400, MISSING);
    }
}

#[tokio::test]
async fn a_semicolon_is_no_parameter_separator() {
    let g = gateway("http-esc-semicolon").await;
    // One `query` of "adclick_clicks;query=up": not PromQL.
    let answer = g
        .raw_get("/api/v1/query?query=adclick_clicks;query=up")
        .await;
    answer.refused(400, "not valid PromQL");
}

#[tokio::test]
async fn a_time_only_go_would_read_is_refused() {
    // Go's ParseFloat reads hexadecimal floats, Inf and NaN; the gateway, which checks the range
    // on its own reading, refuses them rather than read them otherwise than Prometheus.
    let g = gateway("http-esc-hex-time").await;
    for time in ["0x1p31", "Inf", "NaN", "1e3_0"] {
        let answer = g
            .raw_get(&format!("/api/v1/query?query=adclick_clicks&time={time}"))
            .await;
        answer.refused(400, "the parameter `time` is not a time");
    }
}

#[tokio::test]
async fn lookback_delta_cannot_stretch_the_range_limit() {
    // Prometheus 2.43+ and Thanos read `lookback_delta`: an instant selector then reads that
    // far back, past max_range (here 1 h), unless the gateway drops the parameter (it forwards
    // only those it knows). Asked 2 h after A's last sample, nothing may come back. (The stack's
    // Prometheus 2.42 ignores the parameter: this guards an upgrade.)
    let g = gateway_with("http-esc-lookback", |c| c.max_range_ms = 3_600_000).await;
    let time = (g.w.time.parse::<i64>().unwrap() + 7200).to_string();
    let c = g.clicks();
    let params = [
        ("query", c.as_str()),
        ("time", time.as_str()),
        ("lookback_delta", "3650d"),
    ];
    let answer = g
        .get(&format!("/api/v1/query?{}", url_encode(&params)))
        .await;
    if answer.status == 200 {
        let series = answer.only_a(&g);
        assert!(series.is_empty(), "read past max_range: {}", answer.body);
    } else {
        answer.refused(answer.status, "lookback_delta");
    }
}

#[tokio::test]
async fn other_methods_are_405_without_data() {
    let g = gateway("http-esc-methods").await;
    // The envelope, as every answer of the gateway; 401 first without a key.
    for method in ["PUT", "DELETE", "PATCH"] {
        let url = format!("http://{}/api/v1/query?query=adclick_clicks", g.api);
        let request = g
            .http
            .request(method.parse().unwrap(), url.clone())
            .bearer_auth(KEY_A);
        let answer = Answer::read(request.send().await.unwrap()).await;
        answer.refused(405, "not allowed");
        let request = g.http.request(method.parse().unwrap(), url);
        let answer = Answer::read(request.send().await.unwrap()).await;
        assert_eq!(answer.status, 401, "{method}: {answer:?}");
    }
}

// --- encodings ---

#[tokio::test]
async fn a_percent_encoded_label_name_is_decoded_once_and_refused() {
    let g = gateway("http-esc-pct-name").await;
    let b = g.b();
    let q = format!("adclick_clicks%7B%61dvertiser_id%3D%22{b}%22%7D");
    let answer = g.raw_get(&format!("/api/v1/query?query={q}")).await;
    answer.refused(403, &format!(r#"`advertiser_id="{b}"`"#));
}

#[tokio::test]
async fn double_encoding_stays_encoded_once_decoded() {
    let g = gateway("http-esc-double").await;
    // %2522 decodes to the text %22, which PromQL reads as a modulo: no string, no matcher.
    let q = format!("adclick_clicks%7Badvertiser_id%3D%2522{}%2522%7D", g.b());
    let answer = g.raw_get(&format!("/api/v1/query?query={q}")).await;
    answer.refused(400, "not valid PromQL");
}

#[tokio::test]
async fn plus_is_a_space_and_percent_2b_a_plus() {
    let g = gateway("http-esc-plus").await;
    let (c, t) = (encode_component(&g.clicks()), &g.w.time);
    // `%2B`: A's series added to itself.
    let answer = g
        .raw_get(&format!("/api/v1/query?query={c}%2B{c}&time={t}"))
        .await;
    answer.all_a(&g);
    assert_eq!(value_of(&answer), "6");
    // `+` and `%20`: a space, two selectors side by side, not PromQL.
    for sep in ["+", "%20"] {
        let answer = g
            .raw_get(&format!("/api/v1/query?query={c}{sep}{c}&time={t}"))
            .await;
        answer.refused(400, "not valid PromQL");
    }
    let target = format!("/api/v1/query?query=sum+by+(advertiser_id)+({c})&time={t}");
    g.raw_get(&target).await.all_a(&g);
}

#[tokio::test]
async fn a_nul_byte_ends_nothing() {
    let g = gateway("http-esc-nul").await;
    let b = g.b();
    // A NUL outside a string is no PromQL (the lexer names it); inside one, it is part of the
    // value: B's id with a NUL after it is still another id than A's.
    let outside = "not valid PromQL: unexpected character: '\\0'";
    let id = format!("%7Badvertiser_id%3D%22{b}%00%22%7D");
    for (q, status, why) in [
        (
            format!("adclick_clicks%00%7Badvertiser_id%3D%22{b}%22%7D"),
            400,
            outside,
        ),
        (format!("adclick_clicks{id}"), 403, OWN_ID_ONLY),
        ("up%00adclick_clicks".to_string(), 400, outside),
        ("adclick_clicks%00or%00up".to_string(), 400, outside),
    ] {
        let answer = g.raw_get(&format!("/api/v1/query?query={q}")).await;
        assert_eq!(answer.status, status, "{q}: {}", answer.body);
        answer.refused(status, why);
    }
    // In a value, it stays in the value: a campaign no series has.
    let q = "adclick_clicks%7Bcampaign_id%3D%221%00%22%7D";
    let answer = g
        .raw_get(&format!("/api/v1/query?query={q}&time={}", g.w.time))
        .await;
    assert!(answer.only_a(&g).is_empty(), "{}", answer.body);
}

#[tokio::test]
async fn invalid_utf8_is_refused() {
    let g = gateway("http-esc-utf8").await;
    // An overlong "/" and a lone 0xFF: decoded to U+FFFD, then not PromQL.
    for q in ["adclick_clicks%C0%AF", "adclick_clicks%FF%7B%7D"] {
        let answer = g.raw_get(&format!("/api/v1/query?query={q}")).await;
        answer.refused(400, "not valid PromQL");
    }
}

// --- sizes and depth ---

#[tokio::test]
async fn a_megabyte_query_is_refused_fast() {
    let g = gateway("http-esc-megabyte").await;
    let query = format!("{}adclick_clicks", "adclick_clicks - ".repeat(60_000));
    let body = format!("query={}", query.replace(' ', "+"));
    // Under the body limit (1 MiB): the query's own bound must answer.
    assert!(body.len() > 1_000_000 && body.len() < 1 << 20);
    let started = Instant::now();
    let answer = g.post("/api/v1/query", FORM, body).await;
    answer.refused(400, "more than the 16384 bytes allowed");
    // The bound is checked on the text: neither the parser nor Prometheus spends the time.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_megabyte_url_is_refused_by_hyper() {
    let g = gateway("http-esc-megabyte-url").await;
    // Over hyper's buffer for a request's head: 431, empty, before the gateway's code.
    let answer = g
        .raw_get(&format!("/api/v1/query?query={}1", "1%2B".repeat(250_000)))
        .await;
    assert_eq!((answer.status, answer.body.as_str()), (431, ""));
    assert!(g.healthy().await);
}

#[tokio::test]
async fn ten_thousand_nested_parentheses_are_refused_and_the_process_lives() {
    let g = gateway("http-esc-nesting").await;
    let nest = |depth: usize| format!("{}adclick_clicks{}", "(".repeat(depth), ")".repeat(depth));
    let gw = &g;
    let post = |q: String| async move {
        gw.post("/api/v1/query", FORM, url_encode(&[("query", &q)]))
            .await
    };
    post(nest(10_000)).await.refused(400, "bytes allowed");
    // Within the size bound (16,014 bytes) the nesting bound refuses it.
    post(nest(8_000)).await.refused(400, "nests 8000 deep");
    // Unbalanced; unary minus (operators, no brackets); subqueries in subqueries.
    post("(".repeat(16_000)).await.refused(400, "deep");
    post(format!("{}1", "-".repeat(16_000)))
        .await
        .refused(400, "deep");
    let subqueries = format!(
        "{}adclick_clicks{}",
        "max_over_time(".repeat(700),
        "[1m:])".repeat(700)
    );
    post(subqueries).await.refused(400, "deep");
    assert!(g.healthy().await, "the gateway died");
    g.query(&g.clicks()).await.all_a(&g);
}

#[tokio::test]
async fn a_body_over_the_limit_is_413() {
    let g = gateway("http-esc-body-limit").await;
    let body = format!("query=adclick_clicks&pad={}", "x".repeat(2 << 20));
    let answer = g.post("/api/v1/query", FORM, body.clone()).await;
    answer.refused(413, "larger than 1 MiB");
    // Without a key the body is not read at all: 401, whatever its size.
    let url = format!("http://{}/api/v1/query", g.api);
    let request = g.http.post(url).header("content-type", FORM).body(body);
    let answer = Answer::read(request.send().await.unwrap()).await;
    assert_eq!(answer.status, 401, "{answer:?}");
    assert!(g.healthy().await);
}

// --- headers and connections ---

#[tokio::test]
async fn tenant_and_forwarding_headers_change_nothing() {
    let g = gateway("http-esc-headers").await;
    let request = g
        .http
        .get(format!("http://{}{}", g.api, g.query_target(&g.clicks())))
        .bearer_auth(KEY_A)
        .header("X-Scope-OrgID", g.b())
        .header("X-Advertiser-Id", g.b())
        .header("X-Forwarded-For", "127.0.0.1")
        .header("X-Original-URI", "/api/v1/status/config");
    Answer::read(request.send().await.unwrap()).await.all_a(&g);
}

#[tokio::test]
async fn a_second_authorization_header_is_not_read() {
    let g = gateway("http-esc-two-auth").await;
    let q = g.query_target(&g.clicks());
    let twice = |first: &str, second: &str| {
        format!(
            "GET {q} HTTP/1.1\r\nHost: g\r\nAuthorization: Bearer {first}\r\n\
             Authorization: Bearer {second}\r\nConnection: close\r\n\r\n"
        )
    };
    // A's key first: A's series; B's key after it changes nothing.
    exchange(g.api, twice(KEY_A, KEY_B).as_bytes()).await[0].all_a(&g);
    // A bad credential first: refused; A's after it is not tried.
    exchange(g.api, twice("nope", KEY_A).as_bytes()).await[0].unauthorized();
}

#[tokio::test]
async fn a_kept_alive_connection_does_not_keep_the_credential() {
    let g = gateway("http-esc-keep-alive").await;
    let q = g.query_target(&g.clicks());
    // Two requests pipelined on one connection, the second without a credential.
    let requests = format!(
        "GET {q} HTTP/1.1\r\nHost: g\r\nAuthorization: Bearer {KEY_A}\r\n\r\n\
         GET {q} HTTP/1.1\r\nHost: g\r\nConnection: close\r\n\r\n"
    );
    let answers = exchange(g.api, requests.as_bytes()).await;
    assert_eq!(answers.len(), 2, "{answers:?}");
    answers[0].all_a(&g);
    answers[1].unauthorized();
}

// --- /v1/clicks ---

#[tokio::test]
async fn the_rest_endpoint_refuses_an_advertiser_parameter() {
    let g = gateway("http-esc-rest-param").await;
    let answer = g
        .get(&format!("/v1/clicks?from=0&advertiser_id={}", g.b()))
        .await;
    answer.refused(400, "unknown parameter `advertiser_id`");
}

#[tokio::test]
async fn the_rest_endpoint_takes_no_promql_in_its_filters() {
    let g = gateway("http-esc-rest-inject").await;
    // A campaign id closing the matcher and opening another selector: only digits are ids.
    let id = encode_component(r#"1"} or adclick_clicks{campaign_id=~".*"#);
    let from = now_s() / 3600 * 3600 - 3600;
    let answer = g
        .get(&format!("/v1/clicks?from={from}&campaign_id={id}"))
        .await;
    answer.refused(400, "expected decimal campaign ids");
}

#[tokio::test]
async fn the_rest_endpoint_counts_only_as_clicks() {
    let g = gateway("http-esc-rest").await;
    let minute = now_s() / 60 * 60;
    let (from, to) = (minute - 600, minute + 60);
    let answer = g
        .get(&format!("/v1/clicks?from={from}&to={to}&step=1m"))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(!answer.body.contains(&g.b()), "{}", answer.body);
    let rows = answer.json()["rows"].as_array().unwrap().clone();
    let total: f64 = rows.iter().map(|r| r["final"].as_f64().unwrap()).sum();
    // A's 1 + 2 + 3; with B's, 606.
    assert_eq!(total, 6.0, "{rows:?}");
}

// --- credentials ---

#[tokio::test]
async fn no_credential_is_401() {
    let g = gateway("http-esc-no-auth").await;
    g.get_as(&g.query_target(&g.clicks()), None)
        .await
        .unauthorized();
}

#[tokio::test]
async fn a_key_under_another_scheme_is_401() {
    let g = gateway("http-esc-scheme").await;
    for value in [
        format!("Token {KEY_A}"),
        format!("Digest {KEY_A}"),
        KEY_A.to_string(),
        format!("Bearer{KEY_A}"),
        format!("Bearer {KEY_A} {KEY_A}"),
    ] {
        g.own_as(&value).await.unauthorized();
    }
}

#[tokio::test]
async fn an_unknown_key_is_401() {
    let g = gateway("http-esc-unknown-key").await;
    // A's key's digest (what the keys file holds) is no key, nor is A's key in other case.
    for key in [
        "nope".to_string(),
        key_digest_hex(KEY_A),
        KEY_A.to_uppercase(),
    ] {
        g.own_as(&bearer(&key)).await.unauthorized();
    }
}

#[tokio::test]
async fn basic_auth_with_as_key_as_password_sees_only_a() {
    let g = gateway("http-esc-basic").await;
    // The user name is not read: naming B there changes nothing.
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{}:{KEY_A}", g.b()));
    g.own_as(&format!("Basic {basic}")).await.all_a(&g);
}

#[tokio::test]
async fn an_expired_jwt_is_401() {
    let g = gateway("http-esc-jwt-expired").await;
    // Past the default leeway of 30 s.
    let t = jwt(&json!({"advertiser_id": g.w.a, "exp": now_s() - 120}));
    g.own_as(&t).await.unauthorized();
}

#[tokio::test]
async fn a_jwt_not_valid_yet_is_401() {
    let g = gateway("http-esc-jwt-nbf").await;
    let t = jwt(&json!({"advertiser_id": g.w.a, "exp": now_s() + 3600, "nbf": now_s() + 600}));
    g.own_as(&t).await.unauthorized();
}

#[tokio::test]
async fn a_jwt_signed_with_another_secret_is_401() {
    let g = gateway("http-esc-jwt-forged").await;
    let claims = json!({"advertiser_id": g.w.b, "exp": now_s() + 600});
    g.own_as(&forged_jwt(&Header::new(Algorithm::HS256), &claims))
        .await
        .unauthorized();
}

#[tokio::test]
async fn an_unsigned_jwt_is_401() {
    let g = gateway("http-esc-jwt-none").await;
    let claims = b64(json!({"advertiser_id": g.w.b, "exp": now_s() + 600})
        .to_string()
        .as_bytes());
    for alg in ["none", "None", "NONE", "HS512"] {
        let header = b64(json!({"alg": alg, "typ": "JWT"}).to_string().as_bytes());
        g.own_as(&bearer(&format!("{header}.{claims}.")))
            .await
            .unauthorized();
    }
}

#[tokio::test]
async fn a_jwt_pointing_at_another_key_is_401() {
    let g = gateway("http-esc-jwt-kid").await;
    let claims = json!({"advertiser_id": g.w.b, "exp": now_s() + 600});
    // kid and jku name the attacker's key; the gateway verifies with its one configured key.
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("../../../../dev/null".into());
    header.jku = Some("http://127.0.0.1:1/jwks.json".into());
    g.own_as(&forged_jwt(&header, &claims)).await.unauthorized();
    // Signed with the empty secret a kid of /dev/null would give.
    let t = bearer(&hs256(b"", &header, &claims));
    g.own_as(&t).await.unauthorized();
}

#[tokio::test]
async fn a_jwt_naming_b_sees_only_b() {
    let g = gateway("http-esc-jwt-b").await;
    let t = jwt(&json!({"advertiser_id": g.b(), "exp": now_s() + 600}));
    let answer = g.own_as(&t).await;
    assert_eq!(answer.only(&g.b(), &g.a()).len(), 1, "{}", answer.body);
    assert_eq!(value_of(&answer), "300");
    // And A's token A's; an operator claim is no operator when none is configured.
    let t = jwt(&json!({"advertiser_id": g.w.a, "operator": true, "exp": now_s() + 600}));
    let answer = g.own_as(&t).await;
    answer.all_a(&g);
    assert_eq!(value_of(&answer), "3");
}

#[tokio::test]
async fn a_jwt_with_a_malformed_advertiser_claim_is_401() {
    let g = gateway("http-esc-jwt-claim").await;
    let (a, b) = (g.w.a, g.w.b);
    for id in [
        json!(format!("{a}|{b}")),
        json!(format!("{b} ")),
        json!(format!("+{b}")),
        json!(-1),
        json!(1.5),
        json!([a, b]),
    ] {
        g.own_as(&jwt(&json!({"advertiser_id": id, "exp": now_s() + 600})))
            .await
            .unauthorized();
    }
}

#[tokio::test]
async fn a_revoked_key_is_refused_after_the_reload() {
    let g = gateway("http-esc-revoked").await;
    g.own_as(&bearer(KEY_A)).await.all_a(&g);
    // A's key removed: the file is shorter, so the change shows within one mtime tick.
    std::fs::write(
        &g.keys_file,
        format!("{} {}\n", key_digest_hex(KEY_B), g.w.b),
    )
    .unwrap();
    adclick_testsupport::wait::eventually(Duration::from_secs(5), "A's key revoked", || {
        let g = &g;
        async move {
            let status = g.own_as(&bearer(KEY_A)).await.status;
            (status == 401)
                .then_some(())
                .ok_or(format!("still {status}"))
        }
    })
    .await;
    g.own_as(&bearer(KEY_A)).await.unauthorized();
    // B's key, kept, still works, and sees B.
    g.own_as(&bearer(KEY_B)).await.only(&g.b(), &g.a());
}

#[tokio::test]
async fn every_401_is_the_same_answer() {
    let g = gateway("http-esc-401-alike").await;
    let (a, exp) = (g.w.a, now_s() + 600);
    let forged = forged_jwt(
        &Header::new(Algorithm::HS256),
        &json!({"advertiser_id": a, "exp": exp}),
    );
    let credentials = [
        ("none", None),
        ("wrong scheme", Some(format!("Token {KEY_A}"))),
        ("unknown key", Some(bearer("nope"))),
        (
            "empty basic password",
            Some(format!("Basic {}", b64(b"a:"))),
        ),
        ("expired", Some(jwt(&json!({"advertiser_id": a, "exp": 1})))),
        ("no exp", Some(jwt(&json!({"advertiser_id": a})))),
        ("no advertiser", Some(jwt(&json!({"exp": exp})))),
        ("forged", Some(forged)),
    ];
    let mut seen = Vec::new();
    for (what, value) in &credentials {
        // Over several endpoints: the path tells nothing either.
        for path in [
            "/api/v1/query?query=up",
            "/api/v1/status/config",
            "/v1/clicks",
        ] {
            let mut answer = g.get_as(path, value.as_deref()).await;
            answer.headers.retain(|(k, _)| k != "date");
            seen.push((what, path, answer));
        }
    }
    for (what, path, answer) in &seen {
        answer.unauthorized();
        assert_eq!(answer, &seen[0].2, "{what} {path}");
    }
}

// --- limits ---

#[tokio::test]
async fn a_second_request_within_the_second_is_429_with_retry_after() {
    let g = gateway_with("http-esc-rate", |c| {
        c.requests_per_second = 1;
        c.burst = 1;
    })
    .await;
    g.query(&g.clicks()).await.all_a(&g);
    let answer = g.query(&g.clicks()).await;
    answer.refused(429, "too many requests: at most 1 per second");
    assert_eq!(answer.json()["errorType"], "too_many_requests");
    let retry: u64 = answer.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    // Per caller: B's bucket is B's own.
    g.own_as(&bearer(KEY_B)).await.only(&g.b(), &g.a());
}
