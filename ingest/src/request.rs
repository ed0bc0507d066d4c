//! The pure part of the click path: from the raw request path and query string to the decision —
//! which token, whose claims, which event time, which `Location` — with no Redis, Kafka or clock
//! of its own. The handler runs exactly this for every click, and `fuzz/`'s `click_request`
//! target runs it on arbitrary input, which is why it lives apart from the stateful modules (and
//! builds without the `service` feature, so fuzzing never builds librdkafka).
//!
//! # Where the token is
//!
//! - `/click/{token}`: the raw path after `/click/`, never percent-decoded, so there is exactly one
//!   spelling of a token and decoding tricks have nothing to work on. `t` comes from the query.
//! - `/click?token=…&t=…`: for ad markup that cannot put the token in the path. Both values are
//!   form-decoded (`%XX` and `+`), the first of each name counts.
//!
//! # The redirect
//!
//! The `Location` is the landing URL inside the verified token, as the `url` crate serialises
//! it — nothing from the request reaches it, so the endpoint cannot be an open redirect, and the
//! serialisation percent-encodes or drops control characters, so CR/LF cannot reach a header.
//! `Cache-Control: no-store, no-cache, must-revalidate, private`, `Pragma: no-cache` and
//! `Expires: 0` stop browsers and proxies from answering a second click from cache (which would
//! hide it from adclick). `Referrer-Policy: no-referrer`: the advertiser learns nothing about
//! the page the ad was on from adclick's redirect; what it should know belongs in the signed URL.

use adclick_click::{Claims, Verifier};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::event_time::{ClientTimeBounds, Verdict, event_time_ms};
use crate::reject::Rejection;

/// The path of the click endpoint; tokens follow it after a `/` or come in `?token=`.
pub const CLICK_PATH: &str = "/click";

/// What a click request carries, as found in its path and query, not yet verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClickRequest {
    /// The token text: the raw path segment, or the form-decoded `token` parameter.
    pub token: String,
    /// The form-decoded `t` parameter (client click time, ms), when present.
    pub t: Option<String>,
}

/// The token and `t` of a request for `path` with `query` (both as on the wire, the query without
/// its `?`). `/click/` followed by anything is the path form; `/click` the query form; any other
/// path is not a click — `/click/` itself included, which names no token (where `/click?token=`
/// is a click with an empty, malformed token).
pub fn parse(path: &str, query: Option<&str>) -> Result<ClickRequest, Rejection> {
    let t = || query.and_then(|q| query_param(q, "t"));
    if let Some(token) = path
        .strip_prefix(CLICK_PATH)
        .and_then(|rest| rest.strip_prefix('/'))
        .filter(|token| !token.is_empty())
    {
        return Ok(ClickRequest {
            token: token.to_owned(),
            t: t(),
        });
    }
    if path != CLICK_PATH {
        return Err(Rejection::NotFound);
    }
    match query.and_then(|q| query_param(q, "token")) {
        Some(token) => Ok(ClickRequest { token, t: t() }),
        None => Err(Rejection::MissingToken),
    }
}

/// The first value of `name` in a query string, form-decoded.
fn query_param(query: &str, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The clocks a decision is made at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// For the token's validity window, seconds since the epoch.
    pub unix_secs: u64,
    /// When the request arrived, ms since the epoch: the event time unless `t` is believable.
    pub receive_ms: i64,
}

/// A click to count and redirect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub claims: Claims,
    /// The minute this click is counted in comes from this time.
    pub event_time_ms: i64,
    /// What became of `t`.
    pub client_time: Verdict,
}

/// Verifies the request's token and chooses its event time; the refusal otherwise.
pub fn decide(
    verifier: &Verifier,
    request: &ClickRequest,
    now: Now,
    bounds: &ClientTimeBounds,
) -> Result<Decision, Rejection> {
    let verified = verifier.verify(request.token.as_bytes(), now.unix_secs)?;
    let claims = verified.claims;
    let (event_time_ms, client_time) = event_time_ms(
        request.t.as_deref(),
        now.receive_ms,
        claims.issued_at_secs,
        bounds,
    );
    Ok(Decision {
        claims,
        event_time_ms,
        client_time,
    })
}

/// The 302 to the signed landing URL of `claims`.
pub fn redirect(claims: &Claims) -> Result<Response, Rejection> {
    // `Url` serialisations hold no control characters; should one ever, refuse rather than panic.
    let location =
        HeaderValue::from_str(claims.landing_url.as_str()).map_err(|_| Rejection::Internal)?;
    let mut response = StatusCode::FOUND.into_response();
    // Room for these five and the visitor cookie at once, instead of growing twice on the way.
    let headers = response.headers_mut();
    headers.reserve(6);
    headers.insert(header::LOCATION, location);
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, no-cache, must-revalidate, private"),
    );
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    headers.insert(header::EXPIRES, HeaderValue::from_static("0"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(token: &str, t: Option<&str>) -> ClickRequest {
        ClickRequest {
            token: token.into(),
            t: t.map(Into::into),
        }
    }

    #[test]
    fn the_path_form_takes_the_raw_segment_and_t_from_the_query() {
        assert_eq!(parse("/click/AbC", None).unwrap(), req("AbC", None));
        assert_eq!(
            parse("/click/A%42C", Some("t=12&t=13")).unwrap(),
            req("A%42C", Some("12")),
            "the path is never decoded; the first t counts"
        );
        assert_eq!(parse("/click/a/b", Some("x=1")).unwrap(), req("a/b", None));
    }

    #[test]
    fn the_query_form_is_form_decoded() {
        assert_eq!(
            parse("/click", Some("token=A%42C+D&t=%31%32")).unwrap(),
            req("ABC D", Some("12"))
        );
        assert!(matches!(
            parse("/click", Some("t=5")),
            Err(Rejection::MissingToken)
        ));
        assert!(matches!(
            parse("/click", None),
            Err(Rejection::MissingToken)
        ));
    }

    #[test]
    fn other_paths_are_not_clicks() {
        for path in ["/", "/clicks/x", "/clickx", "/other/click/x", "/click/"] {
            assert!(
                matches!(parse(path, Some("token=x")), Err(Rejection::NotFound)),
                "{path}"
            );
        }
    }
}
