//! The click path through `tower::ServiceExt::oneshot`, without the stack: Redis and Kafka are
//! closed ports, so valid clicks fail open and go to the spill — every answer is still exact.

use std::time::Duration;

use adclick_click::token::{Claims, TokenKey, Url, unix_now_secs};
use adclick_testsupport::free_port;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tower::ServiceExt as _;

use crate::spill::read_segment;
use crate::{IngestConfig, KafkaSettings, Service, Settings};

const SECRET: [u8; 32] = [0x42; 32];

async fn service(dir: &std::path::Path) -> Service {
    service_with(dir, |_| {}).await
}

/// [`service`] with `edit` applied to its configuration.
async fn service_with(dir: &std::path::Path, edit: impl FnOnce(&mut IngestConfig)) -> Service {
    let mut config = IngestConfig {
        redis_url: format!("redis://127.0.0.1:{}", free_port()).as_str().into(),
        spill_dir: dir.to_path_buf(),
        produce_timeout_ms: 20,
        ..IngestConfig::default()
    };
    edit(&mut config);
    let kafka = KafkaSettings {
        brokers: format!("127.0.0.1:{}", free_port()),
        topic: "clicks".into(),
        properties: vec![],
    };
    let verifier =
        adclick_click::Verifier::new([TokenKey::new("k1", &SECRET).unwrap()], 30).unwrap();
    Service::start(Settings {
        config,
        verifier,
        kafka,
        invalid: adclick_invalid::Config::default(),
    })
    .await
    .unwrap()
}

fn claims(url: &str) -> Claims {
    let now = unix_now_secs();
    Claims {
        impression_id: rand_id(),
        ad_id: 42,
        campaign_id: 7,
        advertiser_id: 3,
        landing_url: Url::parse(url).unwrap(),
        issued_at_secs: now - 10,
        expires_at_secs: now + 3600,
        user_hash: None,
        price_micros: None,
    }
}

fn rand_id() -> [u8; 16] {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&n.to_le_bytes());
    id[8..].copy_from_slice(&unix_now_secs().to_le_bytes());
    id
}

fn sign(claims: &Claims) -> String {
    adclick_click::Signer::new(TokenKey::new("k1", &SECRET).unwrap())
        .sign(claims)
        .unwrap()
}

/// A token signed with the real key over arbitrary landing-URL bytes, bypassing the signer's
/// checks: what a compromised or buggy signer could emit.
fn sign_raw_url(url: &[u8]) -> String {
    let now = unix_now_secs();
    let mut b = vec![1u8, 2, b'k', b'1'];
    b.extend_from_slice(&rand_id());
    for v in [42u64, 7, 3, now - 10, 3600, url.len() as u64] {
        let mut v = v;
        while v >= 0x80 {
            b.push((v as u8) | 0x80);
            v >>= 7;
        }
        b.push(v as u8);
    }
    b.extend_from_slice(url);
    let mut mac = Hmac::<Sha256>::new_from_slice(&SECRET).unwrap();
    mac.update(&b);
    b.extend_from_slice(&mac.finalize().into_bytes());
    URL_SAFE_NO_PAD.encode(&b)
}

/// A browser's user agent: without one a click is `bot_user_agent`.
const BROWSER: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

async fn get(service: &Service, uri: &str) -> axum::response::Response {
    get_with(service, uri, &[("user-agent", BROWSER)]).await
}

async fn get_with(
    service: &Service,
    uri: &str,
    headers: &[(&str, &str)],
) -> axum::response::Response {
    let mut request = Request::get(uri);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    service
        .app()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap()
}

async fn body_text(response: axum::response::Response) -> String {
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

fn assert_refused(response: &axum::response::Response, status: u16) {
    assert_eq!(response.status().as_u16(), status);
    assert!(
        response.headers().get(header::LOCATION).is_none(),
        "{:?}",
        response.headers()
    );
}

/// One handler serves every path (`app`): a click path asked with another method than `GET` or
/// `HEAD` is a 405 naming them, and records nothing; any other path is a 404, whatever the method.
/// Neither is counted as a refused click.
#[tokio::test]
async fn a_click_is_a_get_and_any_other_path_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let s = service(dir.path()).await;
    let token = sign(&claims("https://shop.example/a"));
    let ask = |method: &str, uri: String| {
        s.app().oneshot(
            Request::builder()
                .method(method)
                .uri(uri)
                .header("user-agent", BROWSER)
                .body(Body::empty())
                .unwrap(),
        )
    };
    for uri in [format!("/click/{token}"), format!("/click?token={token}")] {
        let response = ask("POST", uri.clone()).await.unwrap();
        assert_refused(&response, 405);
        assert_eq!(response.headers()[header::ALLOW], "GET, HEAD", "{uri}");
    }
    for (method, uri) in [("GET", "/"), ("POST", "/elsewhere"), ("GET", "/clicks/x")] {
        assert_refused(&ask(method, uri.to_string()).await.unwrap(), 404);
    }
    // `/click/` names no token: no click path either; `/click?token=` is an empty, malformed one.
    assert_refused(&get(&s, "/click/").await, 404);
    assert_refused(&get(&s, "/click?token=").await, 400);
    // A HEAD reaches the click path, which takes it for a prefetch (`traffic`), not a 405.
    assert_refused(&ask("HEAD", format!("/click/{token}")).await.unwrap(), 503);
    let recorded: Vec<_> = (s.state.spill.seal().await.unwrap().iter())
        .flat_map(|seg| read_segment(&seg.path).unwrap())
        .map(|record| adclick_click::Click::decode_valid(&record.value).unwrap())
        .collect();
    assert_eq!(recorded.len(), 1, "only the HEAD is recorded");
    // Only the malformed token is a refused click in `adclick_ingest_invalid_total`.
    let refused = |reason| {
        s.state
            .metrics
            .invalid
            .get_or_create(&crate::metrics::ReasonLabel { reason })
            .get()
    };
    assert_eq!(refused("malformed"), 1);
    assert_eq!(refused("not_found") + refused("method_not_allowed"), 0);
    assert_eq!(
        recorded[0].invalid_reason,
        i32::from(adclick_invalid::Reason::Prefetch.code())
    );
}

#[tokio::test]
async fn a_valid_click_redirects_with_no_cache_headers_and_is_spilled_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let s = service(dir.path()).await;
    let c = claims("https://shop.example/spring?x=1");
    let t = unix_now_secs() as i64 * 1000 - 2_000;
    let response = get(&s, &format!("/click/{}?t={t}", sign(&c))).await;
    assert_eq!(response.status(), StatusCode::FOUND);
    let h = response.headers();
    assert_eq!(h[header::LOCATION], "https://shop.example/spring?x=1");
    assert_eq!(
        h[header::CACHE_CONTROL],
        "no-store, no-cache, must-revalidate, private"
    );
    assert_eq!(h[header::PRAGMA], "no-cache");
    assert_eq!(h[header::EXPIRES], "0");
    assert_eq!(h[header::REFERRER_POLICY], "no-referrer");

    // Redis and Kafka are down: the click is in the spill, flagged unchecked and replayed.
    let segments = s.state.spill.seal().await.unwrap();
    let records: Vec<_> = segments
        .iter()
        .flat_map(|seg| read_segment(&seg.path).unwrap())
        .collect();
    assert_eq!(records.len(), 1);
    let click = adclick_click::Click::decode_valid(&records[0].value).unwrap();
    assert_eq!(click.impression_id, c.impression_id.to_vec());
    assert_eq!(
        (click.ad_id, click.campaign_id, click.advertiser_id),
        (42, 7, 3)
    );
    assert_eq!(click.event_time_ms, t);
    assert!(click.has_flag(adclick_click::ClickFlag::DedupUnchecked));
    assert!(click.has_flag(adclick_click::ClickFlag::Replayed));
    assert_eq!(records[0].key, b"42");
    // A version 1 token names no user and no price: the user is the new visitor whose cookie the
    // redirect set.
    assert_eq!(click.price_micros, 0);
    assert_ne!(click.user_hash, 0);
    let cookie = h[header::SET_COOKIE].to_str().unwrap();
    let id = cookie
        .strip_prefix("adclick_uid=")
        .and_then(|rest| rest.split(';').next())
        .unwrap();
    assert_eq!(
        click.user_hash,
        s.state
            .visitors
            .user_hash(&hex::decode(id).unwrap().try_into().unwrap())
    );
}

#[tokio::test]
async fn a_returning_visitor_is_the_same_user_and_gets_no_new_cookie() {
    let dir = tempfile::tempdir().unwrap();
    let s = service(dir.path()).await;
    let first = get(
        &s,
        &format!("/click/{}", sign(&claims("https://shop.example/a"))),
    )
    .await;
    let cookie = first.headers()[header::SET_COOKIE].to_str().unwrap();
    let pair = cookie.split(';').next().unwrap().to_string();
    let again = get_with(
        &s,
        &format!("/click/{}", sign(&claims("https://shop.example/b"))),
        &[("user-agent", BROWSER), ("cookie", &pair)],
    )
    .await;
    assert_eq!(again.status(), StatusCode::FOUND);
    assert!(again.headers().get(header::SET_COOKIE).is_none());
    let hashes: Vec<u64> = spilled(&s).await.iter().map(|c| c.user_hash).collect();
    assert_eq!(hashes.len(), 2);
    assert_eq!(hashes[0], hashes[1]);
}

#[tokio::test]
async fn a_version_2_tokens_user_hash_and_price_reach_the_record_as_signed() {
    let dir = tempfile::tempdir().unwrap();
    let s = service(dir.path()).await;
    let user_hash = 0x8000_0000_0000_0001;
    let priced_for = |user_hash, price_micros| Claims {
        user_hash,
        price_micros,
        ..claims("https://shop.example/v2")
    };
    for c in [
        priced_for(Some(user_hash), Some(1_250_000)),
        priced_for(None, Some(0)),
        priced_for(Some(user_hash), None),
    ] {
        let response = get(&s, &format!("/click/{}", sign(&c))).await;
        assert_eq!(response.status(), StatusCode::FOUND);
    }
    let segments = s.state.spill.seal().await.unwrap();
    let recorded: Vec<(u64, u64)> = segments
        .iter()
        .flat_map(|seg| read_segment(&seg.path).unwrap())
        .map(|r| {
            let click = adclick_click::Click::decode_valid(&r.value).unwrap();
            (click.user_hash, click.price_micros)
        })
        .collect();
    // The hash exactly as the placement side made it (not hashed again); without one, the new
    // visitor's (its cookie's).
    assert_eq!(recorded[0], (user_hash, 1_250_000));
    assert_eq!(recorded[2], (user_hash, 0));
    assert_eq!(recorded[1].1, 0);
    assert!(recorded[1].0 != 0 && recorded[1].0 != user_hash);
}

#[tokio::test]
async fn the_query_form_works_too() {
    let dir = tempfile::tempdir().unwrap();
    let s = service(dir.path()).await;
    let token = sign(&claims("https://shop.example/q"));
    let response = get(&s, &format!("/click?token={token}")).await;
    assert_eq!(response.status(), StatusCode::FOUND);
    assert_eq!(
        response.headers()[header::LOCATION],
        "https://shop.example/q"
    );
    assert_refused(&get(&s, "/click?t=5").await, 400);
}

#[tokio::test]
async fn invalid_tokens_get_a_short_page_and_no_location() {
    let dir = tempfile::tempdir().unwrap();
    let s = service(dir.path()).await;
    let good = sign(&claims("https://shop.example/a"));

    let response = get(&s, "/click/not-a-token").await;
    assert_refused(&response, 400);
    let page = body_text(response).await;
    assert!(page.contains("not valid") && page.len() < 400, "{page}");
    assert!(!page.contains("http"), "{page}");

    // Another key signed it.
    let forged = adclick_click::Signer::new(TokenKey::new("k1", &[1; 32]).unwrap())
        .sign(&claims("https://shop.example/a"))
        .unwrap();
    assert_refused(&get(&s, &format!("/click/{forged}")).await, 403);
    let unknown = adclick_click::Signer::new(TokenKey::new("k9", &SECRET).unwrap())
        .sign(&claims("https://shop.example/a"))
        .unwrap();
    assert_refused(&get(&s, &format!("/click/{unknown}")).await, 403);

    let mut old = claims("https://shop.example/a");
    old.issued_at_secs -= 10_000;
    old.expires_at_secs = old.issued_at_secs + 60;
    let response = get(&s, &format!("/click/{}", sign(&old))).await;
    assert_refused(&response, 410);
    assert!(body_text(response).await.contains("expired"));

    assert_refused(&get(&s, &format!("/click/{}", "A".repeat(5000))).await, 414);
    assert_refused(&get(&s, &format!("/click/{good}/extra")).await, 400);
    assert_refused(&get(&s, "/elsewhere").await, 404);

    let metrics = adclick_admin::encode(&s.registry);
    for line in [
        "adclick_ingest_invalid_total{reason=\"malformed\"} 2",
        "adclick_ingest_invalid_total{reason=\"bad_signature\"} 1",
        "adclick_ingest_invalid_total{reason=\"unknown_key\"} 1",
        "adclick_ingest_invalid_total{reason=\"expired\"} 1",
        "adclick_ingest_invalid_total{reason=\"too_long\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} missing in\n{metrics}");
    }
}

#[tokio::test]
async fn open_redirect_tries_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = service(dir.path()).await;
    let c = claims("https://shop.example/a");
    let good = sign(&c);

    // A tampered URL: flip one byte inside the signed landing URL.
    let mut bytes = URL_SAFE_NO_PAD.decode(&good).unwrap();
    let at = bytes.len() - 32 - 3;
    bytes[at] ^= 0x01;
    let tampered = URL_SAFE_NO_PAD.encode(&bytes);
    assert_refused(&get(&s, &format!("/click/{tampered}")).await, 403);

    // A valid token for another URL, with redirect parameters added: they are ignored.
    for extra in [
        "url=https://evil.example/",
        "redirect=https%3A%2F%2Fevil.example",
        "token=x",
        "next=//evil.example",
    ] {
        let response = get(&s, &format!("/click/{good}?{extra}")).await;
        assert_eq!(response.status(), StatusCode::FOUND, "{extra}");
        assert_eq!(
            response.headers()[header::LOCATION],
            "https://shop.example/a",
            "{extra}"
        );
    }
    // The query form takes the first token only.
    let other = sign(&claims("https://shop.example/b"));
    let response = get(&s, &format!("/click?token={other}&token={good}")).await;
    assert_eq!(
        response.headers()[header::LOCATION],
        "https://shop.example/b"
    );

    // Schemes other than http(s), even when signed with the real key.
    for url in [
        "javascript:alert(1)",
        "data:text/html,hi",
        "file:///etc/passwd",
        "//evil.example/",
    ] {
        let response = get(&s, &format!("/click/{}", sign_raw_url(url.as_bytes()))).await;
        assert!(
            response.status().is_client_error(),
            "{url}: {}",
            response.status()
        );
        assert!(response.headers().get(header::LOCATION).is_none(), "{url}");
    }
    // Credentials that make a URL read as another host.
    let response = get(
        &s,
        &format!(
            "/click/{}",
            sign_raw_url(b"https://bank.example@evil.example/")
        ),
    )
    .await;
    assert_refused(&response, 403);

    // A double-encoded URL stays exactly as signed: nothing is decoded into a new destination.
    let double = "https://shop.example/r?next=https%253A%252F%252Fevil.example";
    let response = get(&s, &format!("/click/{}", sign(&claims(double)))).await;
    assert_eq!(response.headers()[header::LOCATION], double);
    // Percent-encoding the token itself is not a token.
    let encoded: String = good
        .chars()
        .take(5)
        .chain("%41".chars())
        .chain(good.chars().skip(6))
        .collect();
    assert_refused(&get(&s, &format!("/click/{encoded}")).await, 400);

    // CR/LF in the signed URL never reach a header: the URL parser drops them.
    let response = get(
        &s,
        &format!(
            "/click/{}",
            sign_raw_url(b"https://shop.example/a\r\nSet-Cookie: x=1")
        ),
    )
    .await;
    assert_eq!(response.status(), StatusCode::FOUND);
    assert_only_the_visitor_cookie(&response);
    let location = response.headers()[header::LOCATION]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        !location.contains('\r') && !location.contains('\n'),
        "{location:?}"
    );
    assert!(location.starts_with("https://shop.example/"), "{location}");
    // And CR/LF sent in the request are never echoed.
    let response = get(&s, &format!("/click/{good}?t=%0d%0aSet-Cookie:%20x")).await;
    assert_eq!(
        response.headers()[header::LOCATION],
        "https://shop.example/a"
    );
    assert_only_the_visitor_cookie(&response);
}

/// The response sets ingest's own visitor cookie (a new visitor's) and no other.
fn assert_only_the_visitor_cookie(response: &axum::response::Response) {
    let cookies: Vec<&str> = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|c| c.to_str().unwrap())
        .collect();
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    assert!(cookies[0].starts_with("adclick_uid="), "{cookies:?}");
}

#[tokio::test]
async fn bodies_are_refused_and_the_rate_limit_applies_per_ip() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = service(dir.path()).await;
    let good = sign(&claims("https://shop.example/a"));
    let request = Request::post(format!("/click/{good}"))
        .header(header::CONTENT_LENGTH, "5")
        .body(Body::from("hello"))
        .unwrap();
    assert_refused(&s.app().oneshot(request).await.unwrap(), 413);

    s.state.limits = crate::limits::Limits::new(1, 2, Duration::from_secs(5));
    let peer: std::net::SocketAddr = "192.0.2.1:4000".parse().unwrap();
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let request = Request::get(format!("/click/{good}"))
            .header(header::USER_AGENT, BROWSER)
            .body(Body::empty())
            .unwrap();
        let app = s.app().from_peer(peer);
        statuses.push(app.oneshot(request).await.unwrap().status().as_u16());
    }
    assert_eq!(statuses, vec![302, 302, 429]);
}

#[tokio::test]
async fn client_times_outside_the_bounds_fall_back_to_receipt() {
    let dir = tempfile::tempdir().unwrap();
    let s = service(dir.path()).await;
    let now_ms = unix_now_secs() as i64 * 1000;
    for t in [now_ms + 3_600_000, now_ms - 3_600_000, 17] {
        let response = get(
            &s,
            &format!("/click/{}?t={t}", sign(&claims("https://shop.example/a"))),
        )
        .await;
        assert_eq!(response.status(), StatusCode::FOUND);
    }
    let segments = s.state.spill.seal().await.unwrap();
    let records: Vec<_> = segments
        .iter()
        .flat_map(|seg| read_segment(&seg.path).unwrap())
        .collect();
    assert_eq!(records.len(), 3);
    for r in records {
        let click = adclick_click::Click::decode_valid(&r.value).unwrap();
        assert_eq!(click.event_time_ms, click.receive_time_ms);
        assert!((click.receive_time_ms - now_ms).abs() < 60_000);
    }
    let metrics = adclick_admin::encode(&s.registry);
    for line in ["reason=\"future\"} 1", "reason=\"too_old\"} 2"] {
        assert!(
            metrics.contains(&format!("adclick_ingest_client_time_total{{{line}")),
            "{line}\n{metrics}"
        );
    }
}

#[tokio::test]
async fn the_readiness_follows_the_spill_and_the_broker() {
    let dir = tempfile::tempdir().unwrap();
    let s = service(dir.path()).await;
    assert!(crate::admin::readiness(&s.state).is_ok());
    s.state.spill.close().await;
    // Broker reachable as far as we know: still ready.
    assert!(crate::admin::readiness(&s.state).is_ok());
    // A click finds the broker down (closed port) and the spill closed: lost, redirected anyway.
    let response = get(
        &s,
        &format!("/click/{}", sign(&claims("https://shop.example/a"))),
    )
    .await;
    assert_eq!(response.status(), StatusCode::FOUND);
    assert!(crate::admin::readiness(&s.state).is_err());
    let metrics = adclick_admin::encode(&s.registry);
    assert!(
        metrics.contains("adclick_ingest_clicks_lost_total{reason=\"spill_closed\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("adclick_ingest_ready 0"), "{metrics}");
}

/// A runtime kept busy (as by more clicks than it can work on) turns readiness and the gauge
/// once clicks have mostly waited over `overload_delay_ms` (100 ms) for the last
/// `overload_window_ms` (1 s), and both turn back when the backlog is gone.
#[tokio::test]
async fn the_readiness_turns_while_clicks_wait_and_back() {
    let dir = tempfile::tempdir().unwrap();
    let s = service(dir.path()).await;
    let overloaded = |s: &Service| {
        let metrics = adclick_admin::encode(&s.registry);
        assert!(
            metrics.contains("adclick_ingest_queueing_delay_seconds_count"),
            "{metrics}"
        );
        metrics
            .lines()
            .any(|line| line == "adclick_ingest_overloaded 1")
    };
    assert!(crate::admin::readiness(&s.state).is_ok());
    let busy = tokio::spawn(crate::overload::tests::hold_the_worker(
        Duration::from_millis(2_500),
        Duration::from_millis(250),
    ));
    let started = std::time::Instant::now();
    let reason = loop {
        if let Err(reason) = crate::admin::readiness(&s.state) {
            break reason;
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "never overloaded"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(reason.contains("overload_delay_ms = 100"), "{reason}");
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "turned before most of a window was late"
    );
    assert!(overloaded(&s));
    busy.await.unwrap();
    // Back once most of a window's samples (six of ten, one per 100 ms) are on time again.
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert!(crate::admin::readiness(&s.state).is_ok());
    assert!(!overloaded(&s));
}

#[tokio::test]
async fn with_the_reject_policy_an_undurable_click_gets_503_without_location() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = service(dir.path()).await;
    s.state.spill_full = crate::SpillFullPolicy::Reject;
    s.state.spill.close().await;
    let response = get(
        &s,
        &format!("/click/{}", sign(&claims("https://shop.example/a"))),
    )
    .await;
    assert_refused(&response, 503);
}

/// A click whose recording takes longer than `request_timeout_ms` (here Kafka's bound, on a closed
/// port, is longer) is answered 503 at the deadline, without a `Location`, and counted as a
/// refused click of reason `timeout` — and its recording goes on: the click reaches the spill.
#[tokio::test]
async fn a_click_not_recorded_within_the_request_timeout_gets_503_and_is_still_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let s = service_with(dir.path(), |config| {
        config.request_timeout_ms = 100;
        config.produce_timeout_ms = 1_500;
    })
    .await;
    let c = claims("https://shop.example/a");
    let asked = std::time::Instant::now();
    let response = get(&s, &format!("/click/{}", sign(&c))).await;
    let waited = asked.elapsed();
    assert_refused(&response, 503);
    assert!(
        (Duration::from_millis(100)..Duration::from_millis(1_500)).contains(&waited),
        "answered after {waited:?}"
    );
    let timeouts = s
        .state
        .metrics
        .invalid
        .get_or_create(&crate::metrics::ReasonLabel { reason: "timeout" })
        .get();
    assert_eq!(timeouts, 1);
    s.state.tracker.close();
    s.state.tracker.wait().await;
    let spilled = spilled(&s).await;
    assert_eq!(spilled.len(), 1);
    assert_eq!(spilled[0].impression_id, c.impression_id.to_vec());
}

/// The spilled records of `s` (Kafka is a closed port in these tests: every click is spilled).
async fn spilled(s: &Service) -> Vec<adclick_click::Click> {
    let segments = s.state.spill.seal().await.unwrap();
    segments
        .iter()
        .flat_map(|seg| read_segment(&seg.path).unwrap())
        .map(|r| adclick_click::Click::decode_valid(&r.value).unwrap())
        .collect()
}

#[tokio::test]
async fn invalid_traffic_is_recorded_with_its_reason_and_a_prefetch_is_refused_uncacheable() {
    use adclick_click::wire::InvalidReason;
    let dir = tempfile::tempdir().unwrap();
    let s = service(dir.path()).await;
    let token = sign(&claims("https://shop.example/a"));
    let uri = format!("/click/{token}");
    // A prefetch: 503, no-store, no Location; recorded as an invalid prefetch.
    let prefetch = get_with(
        &s,
        &uri,
        &[("user-agent", BROWSER), ("sec-purpose", "prefetch")],
    )
    .await;
    assert_refused(&prefetch, 503);
    assert_eq!(prefetch.headers()[header::CACHE_CONTROL], "no-store");
    // A bot is still redirected, and so is the person's own click afterwards.
    let bot = get_with(&s, &uri, &[("user-agent", "Googlebot/2.1")]).await;
    assert_eq!(bot.status(), StatusCode::FOUND);
    assert_eq!(get(&s, &uri).await.status(), StatusCode::FOUND);
    // A token served a moment ago: clicked too fast for a person.
    let mut fresh = claims("https://shop.example/b");
    fresh.issued_at_secs = unix_now_secs();
    assert_eq!(
        get(&s, &format!("/click/{}", sign(&fresh))).await.status(),
        StatusCode::FOUND
    );
    let reasons: Vec<InvalidReason> = spilled(&s)
        .await
        .iter()
        .map(adclick_click::Click::invalid_reason)
        .collect();
    assert_eq!(
        reasons,
        [
            InvalidReason::Prefetch,
            InvalidReason::BotUserAgent,
            InvalidReason::Valid,
            InvalidReason::TooFast
        ]
    );
    let metrics = adclick_admin::encode(&s.registry);
    for reason in ["prefetch", "bot_user_agent", "too_fast"] {
        assert!(
            metrics.contains(&format!(
                "adclick_ingest_invalid_traffic_total{{reason=\"{reason}\"}} 1"
            )),
            "{reason}\n{metrics}"
        );
    }
}

#[tokio::test]
async fn a_reason_configured_not_redirected_gets_403_and_is_still_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = service(dir.path()).await;
    s.state.traffic = crate::traffic::Traffic::new(
        s.state.traffic.rules(),
        vec![],
        adclick_invalid::ProxyHeader::XForwardedFor,
        None,
        vec![adclick_invalid::Reason::BotUserAgent],
        "v:",
    );
    let uri = format!("/click/{}", sign(&claims("https://shop.example/a")));
    assert_refused(&get_with(&s, &uri, &[]).await, 403);
    let records = spilled(&s).await;
    assert_eq!(records.len(), 1);
    assert_eq!(
        records[0].invalid_reason(),
        adclick_click::wire::InvalidReason::BotUserAgent
    );
}

/// mimalloc serves a block of at most 1 KiB from its thread's free list; a larger one takes its
/// generic path. One block is allocated per click for a future: the recording task, Tokio's cell
/// around the tracked `record` future — its header (32 bytes), scheduler handle and id (16),
/// trailer (48) and the stage's tag, rounded up to the cell's alignment of 128 on x86_64. It was
/// just over the limit until the click path stopped holding the spill's future and copies of its
/// arguments in it (BENCHMARKS.md, "futures under 1 KiB"); this keeps it under. The request's own
/// future, once boxed per request, is [`super::Answer`], which hyper keeps in the box it allocates
/// once per connection: it holds no more than the wait for the task, its deadline and the state.
/// A future's layout does not depend on the profile: these sizes are the release build's too.
#[tokio::test]
async fn the_futures_allocated_per_click_stay_under_the_allocators_small_size() {
    const SMALL: usize = 1024;
    const TASK_CELL_OVERHEAD: usize = 128;
    const TASK_CELL_ALIGN: usize = 128;
    let dir = tempfile::tempdir().unwrap();
    let s = service(dir.path()).await;
    let recording = s.state.tracker.track_future(super::record(
        std::sync::Arc::new(s.state.clone()),
        adclick_click::Click::default(),
    ));
    let recording = std::mem::size_of_val(&recording);
    let cell = (recording + TASK_CELL_OVERHEAD).next_multiple_of(TASK_CELL_ALIGN);
    assert!(
        cell <= SMALL,
        "the recording task's future is {recording} bytes, its cell about {cell}"
    );
    let answer = std::mem::size_of::<super::Answer>();
    assert!(answer <= SMALL, "the request's future is {answer} bytes");
}
