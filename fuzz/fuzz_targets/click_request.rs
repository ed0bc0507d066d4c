//! Fuzz target: ingest's request path, from the raw request target to the answer, through the same
//! functions the server runs (`adclick_ingest::request`): where the token is (path or query,
//! form-decoding), `Verifier::verify`, the event-time rule for `?t=`, and the 302's `Location`.
//!
//! Nothing may panic, and:
//! - a refusal is a 4xx without `Location`;
//! - the token and `t` found are the ones the request carries (checked against how the harness
//!   built the request: raw path segment, or the first form-encoded parameter of that name);
//! - a token the harness signed, inside its validity window, is accepted with its claims;
//! - the event time is `t` exactly when `t` is digits inside the bounds, else the receive time;
//! - an accepted click is a 302 whose `Location` is the signed URL's serialisation: visible ASCII
//!   only (no CR/LF can reach a header), `http`/`https`, no credentials, uncacheable.
//!
//! Input is structured (arbitrary) so the fuzzer reaches valid tokens: the harness holds the key,
//! signs claims, or seals arbitrary bytes with a valid tag (reaching the claims reader past the
//! signature); a raw request target covers everything else.

#![no_main]

use adclick_click::token::{Claims, Signer, TokenKey, Url, Verifier};
use adclick_ingest::event_time::{ClientTimeBounds, Verdict};
use adclick_ingest::request::{self, ClickRequest, Now};
use arbitrary::Arbitrary;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use http::uri::PathAndQuery;
use http::{StatusCode, header};
use libfuzzer_sys::fuzz_target;
use sha2::Sha256;

const SECRET: &[u8; 32] = b"adclick-fuzz-click-request-key!!";
const KEY_ID: &str = "k1";
/// The token clock skew of ingest's default configuration, seconds.
const SKEW_SECS: u64 = 30;
/// `[ingest]` defaults: 15 minutes of age, 5 s of future.
const BOUNDS: ClientTimeBounds = ClientTimeBounds {
    max_age_ms: 900_000,
    max_future_ms: 5_000,
    issue_skew_ms: SKEW_SECS as i64 * 1000,
};

#[derive(Debug, Arbitrary)]
enum Token {
    /// Any text.
    Raw(String),
    /// Claims signed by the harness's key, valid at the request's time unless `lifetime` is 0.
    Signed {
        impression_id: [u8; 16],
        ad_id: u64,
        campaign_id: u64,
        advertiser_id: u64,
        /// After `http://` or `https://`.
        url: String,
        https: bool,
        issued_ago_secs: u16,
        lifetime_secs: u32,
        /// Version 2's optional claims (a zero user hash is not signable: skipped).
        user_hash: Option<u64>,
        price_micros: Option<u64>,
    },
    /// Bytes after a valid version (1 or, with `v2`, 2) and key id, sealed with a valid tag.
    Sealed { v2: bool, body: Vec<u8> },
}

#[derive(Debug, Arbitrary)]
enum ClientTime {
    Absent,
    /// Receive time plus this many ms.
    Offset(i32),
    Raw(String),
}

#[derive(Debug, Arbitrary)]
struct Input {
    token: Token,
    /// `/click?token=` instead of `/click/{token}`.
    in_query: bool,
    t: ClientTime,
    /// Query parameters before and after the harness's own (they may repeat `token` or `t`).
    before: Vec<(String, String)>,
    after: Vec<(String, String)>,
    /// Used as the whole request target instead, when present.
    raw_target: Option<Vec<u8>>,
    now_secs: u32,
    now_sub_ms: u16,
}

fn key() -> TokenKey {
    TokenKey::new(KEY_ID, SECRET).expect("valid key")
}

/// `body` after a version 1 (or 2) header naming the harness's key, with its valid tag, as token
/// text.
fn seal(v2: bool, body: &[u8]) -> String {
    let mut binary = vec![if v2 { 2 } else { 1 }, KEY_ID.len() as u8];
    binary.extend_from_slice(KEY_ID.as_bytes());
    binary.extend_from_slice(body);
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET).expect("any key length");
    mac.update(&binary);
    binary.extend_from_slice(&mac.finalize().into_bytes());
    URL_SAFE_NO_PAD.encode(binary)
}

/// The token text, and the claims when the harness signed valid ones.
fn token_text(token: &Token, now_secs: u64) -> Option<(String, Option<Claims>)> {
    Some(match token {
        Token::Raw(text) => (text.clone(), None),
        Token::Sealed { v2, body } => (seal(*v2, body), None),
        Token::Signed {
            impression_id,
            ad_id,
            campaign_id,
            advertiser_id,
            url,
            https,
            issued_ago_secs,
            lifetime_secs,
            user_hash,
            price_micros,
        } => {
            let scheme = if *https { "https" } else { "http" };
            let issued_at_secs = now_secs.saturating_sub(u64::from(*issued_ago_secs));
            let claims = Claims {
                impression_id: *impression_id,
                ad_id: *ad_id,
                campaign_id: *campaign_id,
                advertiser_id: *advertiser_id,
                landing_url: Url::parse(&format!("{scheme}://{url}")).ok()?,
                issued_at_secs,
                expires_at_secs: issued_at_secs + u64::from(*lifetime_secs),
                user_hash: *user_hash,
                price_micros: *price_micros,
            };
            let text = Signer::new(key()).sign(&claims).ok()?;
            (text, Some(claims))
        }
    })
}

fn query(params: &[(String, String)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish()
}

/// The first value of `name` among `params`, as a form decoder reads the serialised query back.
fn first<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// What the event-time rule must give for `t` at `receive_ms` for a token issued at `issued_secs`.
fn expected_event_time(t: Option<&str>, receive_ms: i64, issued_secs: u64) -> Option<i64> {
    let t = t?;
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let t_ms: i64 = t.parse().ok()?;
    let (t, receive) = (i128::from(t_ms), i128::from(receive_ms));
    let issued = i128::from(issued_secs) * 1000;
    let believable = t <= receive + i128::from(BOUNDS.max_future_ms)
        && t >= receive - i128::from(BOUNDS.max_age_ms)
        && t >= issued - i128::from(BOUNDS.issue_skew_ms);
    believable.then_some(t_ms)
}

fuzz_target!(|input: Input| {
    let now_secs = u64::from(input.now_secs);
    let now = Now {
        unix_secs: now_secs,
        receive_ms: now_secs as i64 * 1000 + i64::from(input.now_sub_ms % 1000),
    };
    let Some((token, signed)) = token_text(&input.token, now_secs) else {
        return;
    };
    let t = match &input.t {
        ClientTime::Absent => None,
        ClientTime::Offset(ms) => Some((now.receive_ms + i64::from(*ms)).to_string()),
        ClientTime::Raw(text) => Some(text.clone()),
    };

    // The request target, and the token and t the handler must find in it.
    let (target, expected) = match &input.raw_target {
        Some(raw) => (raw.clone(), None),
        None => {
            let mut params = input.before.clone();
            if input.in_query {
                params.push(("token".into(), token.clone()));
            }
            if let Some(t) = &t {
                params.push(("t".into(), t.clone()));
            }
            params.extend(input.after.iter().cloned());
            let q = query(&params);
            let path = if input.in_query {
                "/click".to_string()
            } else {
                format!("/click/{token}")
            };
            let target = if q.is_empty() {
                path
            } else {
                format!("{path}?{q}")
            };
            let expected = if input.in_query {
                first(&params, "token").map(|tok| ClickRequest {
                    token: tok.to_string(),
                    t: first(&params, "t").map(str::to_string),
                })
            } else if token.contains(['?', '#']) || token.is_empty() {
                // Not a path segment (the request would say something else), or none: `/click/`
                // names no token and is no click path.
                None
            } else {
                Some(ClickRequest {
                    token: token.clone(),
                    t: first(&params, "t").map(str::to_string),
                })
            };
            (target.into_bytes(), expected)
        }
    };
    // What hyper refuses as a request target never reaches the handler.
    let Ok(pq) = PathAndQuery::try_from(target.as_slice()) else {
        return;
    };

    let click_request = match request::parse(pq.path(), pq.query()) {
        Ok(found) => found,
        Err(rejection) => {
            let response = axum_response(rejection);
            assert!(response.0.is_client_error(), "{:?}", response.0);
            assert!(!response.1);
            assert!(
                expected.is_none(),
                "a click request refused as {:?}: {:?}",
                response.0,
                pq.as_str()
            );
            return;
        }
    };
    if let Some(expected) = &expected {
        assert_eq!(&click_request, expected, "target {:?}", pq.as_str());
    }

    let decision = match request::decide(&verify(), &click_request, now, &BOUNDS) {
        Ok(decision) => decision,
        Err(rejection) => {
            let intact = expected.as_ref().is_some_and(|e| e.token == token);
            if let (Some(claims), true) = (&signed, intact) {
                let valid = claims.issued_at_secs <= now_secs + SKEW_SECS
                    && now_secs < claims.expires_at_secs + SKEW_SECS;
                assert!(!valid, "a valid signed token refused: {rejection:?}");
            }
            let response = axum_response(rejection);
            assert!(response.0.is_client_error(), "{:?}", response.0);
            assert!(!response.1, "a refusal with a Location");
            return;
        }
    };
    if let (Some(claims), Some(e)) = (&signed, &expected) {
        if e.token == token {
            assert_eq!(&decision.claims, claims);
        }
    }

    let wanted = expected_event_time(
        click_request.t.as_deref(),
        now.receive_ms,
        decision.claims.issued_at_secs,
    );
    assert_eq!(decision.event_time_ms, wanted.unwrap_or(now.receive_ms));
    assert_eq!(decision.client_time == Verdict::Accepted, wanted.is_some());
    if click_request.t.is_none() {
        assert_eq!(decision.client_time, Verdict::Absent);
    }

    let response = request::redirect(&decision.claims).expect("every verified URL is a header");
    assert_eq!(response.status(), StatusCode::FOUND);
    let headers = response.headers();
    let location = headers
        .get(header::LOCATION)
        .expect("a Location")
        .as_bytes();
    assert_eq!(location, decision.claims.landing_url.as_str().as_bytes());
    assert!(
        location.iter().all(|b| (0x21..=0x7e).contains(b)),
        "{location:?}"
    );
    let url = &decision.claims.landing_url;
    assert!(matches!(url.scheme(), "http" | "https"), "{url}");
    assert!(
        url.username().is_empty() && url.password().is_none(),
        "{url}"
    );
    assert_eq!(
        headers.get(header::CACHE_CONTROL).map(|v| v.as_bytes()),
        Some(&b"no-store, no-cache, must-revalidate, private"[..])
    );
});

fn verify() -> Verifier {
    Verifier::new([key()], SKEW_SECS).expect("one key")
}

/// The status of a refusal's page and whether it carries a `Location`.
fn axum_response(rejection: adclick_ingest::reject::Rejection) -> (StatusCode, bool) {
    use axum::response::IntoResponse as _;
    let response = rejection.into_response();
    (
        response.status(),
        response.headers().contains_key(header::LOCATION),
    )
}
