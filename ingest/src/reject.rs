//! Every answer that is not a redirect: why a click request is refused, and the short page the
//! browser shows. None of them carries a `Location` header or any link; none names internals.
//!
//! | reason | status | why this status |
//! |---|---|---|
//! | `too_long` | 414 | the token is longer than any token can be |
//! | `malformed` | 400 | not a token of this format |
//! | `unknown_key`, `bad_signature` | 403 | forged or altered: we know what was asked and refuse it |
//! | `not_yet_valid` | 403 | issued in the future beyond the clock skew: not a token we honour now |
//! | `bad_url_scheme`, `url_credentials` | 403 | signed, but the destination is one adclick never redirects to |
//! | `expired` | 410 | it was valid and is gone for good; retrying will not help |
//! | `missing_token` | 400 | `/click` without `?token=` |
//! | `body_not_allowed` | 413 | a click is a GET without a body |
//! | `rate_limited` | 429 | the client IP exceeded `rate_limit_per_ip` (with `Retry-After: 1`) |
//! | `not_durable` | 503 | `spill_full = "reject"` and neither Kafka nor the spill could take the click |
//! | `timeout` | 503 | the click took longer than `request_timeout_ms` (it is still recorded) |
//! | `prefetch` | 503 | a speculative fetch of the ad link: recorded as invalid traffic, not redirected, never stored (any non-2xx; 503 is what servers commonly answer a refused prefetch, draft-nottingham-httpbis-pre-denied), so the person's navigation comes back |
//! | `not_redirected` | 403 | invalid traffic of a reason `[ingest] not_redirected` lists (it is still recorded) |
//! | `method_not_allowed` | 405 | a click path asked with a method other than `GET` or `HEAD` (with `Allow: GET, HEAD`) |
//! | `not_found` | 404 | any other path (`/click/` with no token included) |
//!
//! Every reason but `not_found` and `method_not_allowed` is counted in
//! `adclick_ingest_invalid_total` ([`Rejection::is_refused_click`]).

use adclick_click::TokenError;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Why a request got no redirect.
#[derive(Debug, thiserror::Error)]
pub enum Rejection {
    #[error("invalid token: {0}")]
    Token(#[from] TokenError),
    #[error("no token given")]
    MissingToken,
    #[error("a click request has no body")]
    BodyNotAllowed,
    #[error("rate limited")]
    RateLimited,
    #[error("the click could not be made durable")]
    NotDurable,
    #[error("the click took too long")]
    Timeout,
    #[error("internal error")]
    Internal,
    #[error("not found")]
    NotFound,
    #[error("a click is a GET")]
    MethodNotAllowed,
    /// A prefetch of the ad link (`traffic.rs`).
    #[error("a prefetch is not a click")]
    Prefetch,
    /// Invalid traffic the operator chose not to redirect (`[ingest] not_redirected`).
    #[error("invalid traffic, not redirected")]
    NotRedirected,
}

impl Rejection {
    /// A short stable name for metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            Rejection::Token(e) => e.reason(),
            Rejection::MissingToken => "missing_token",
            Rejection::BodyNotAllowed => "body_not_allowed",
            Rejection::RateLimited => "rate_limited",
            Rejection::NotDurable => "not_durable",
            Rejection::Timeout => "timeout",
            Rejection::Internal => "internal",
            Rejection::NotFound => "not_found",
            Rejection::MethodNotAllowed => "method_not_allowed",
            Rejection::Prefetch => "prefetch",
            Rejection::NotRedirected => "not_redirected",
        }
    }

    /// Whether this is a click refused (counted in `adclick_ingest_invalid_total`): all but a
    /// request for no click path or with a method no click is asked with, which scanners and
    /// probes of the public port send and which would otherwise swell the count the
    /// invalid-token alert divides by.
    pub fn is_refused_click(&self) -> bool {
        !matches!(self, Rejection::NotFound | Rejection::MethodNotAllowed)
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Rejection::Token(e) => match e {
                TokenError::TooLong(_) => StatusCode::URI_TOO_LONG,
                TokenError::Malformed(_) => StatusCode::BAD_REQUEST,
                TokenError::Expired { .. } => StatusCode::GONE,
                TokenError::UnknownKey(_)
                | TokenError::BadSignature
                | TokenError::NotYetValid { .. }
                | TokenError::BadUrlScheme(_)
                | TokenError::UrlCredentials => StatusCode::FORBIDDEN,
            },
            Rejection::MissingToken => StatusCode::BAD_REQUEST,
            Rejection::BodyNotAllowed => StatusCode::PAYLOAD_TOO_LARGE,
            Rejection::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Rejection::NotDurable | Rejection::Timeout | Rejection::Prefetch => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Rejection::NotRedirected => StatusCode::FORBIDDEN,
            Rejection::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Rejection::NotFound => StatusCode::NOT_FOUND,
            Rejection::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        }
    }

    /// What the page says: fixed text per reason, never the error's details.
    fn message(&self) -> (&'static str, &'static str) {
        match self {
            Rejection::Token(TokenError::Expired { .. }) => (
                "This ad link has expired",
                "The ad you clicked is no longer available.",
            ),
            Rejection::Token(TokenError::BadSignature | TokenError::UnknownKey(_)) => (
                "This ad link is not valid",
                "The link was altered or did not come from an ad we served.",
            ),
            Rejection::Token(TokenError::NotYetValid { .. }) => (
                "This ad link is not valid yet",
                "Please try again in a moment.",
            ),
            Rejection::Token(TokenError::BadUrlScheme(_) | TokenError::UrlCredentials) => (
                "This ad link is not valid",
                "The ad points to an address we do not send visitors to.",
            ),
            Rejection::Token(TokenError::TooLong(_) | TokenError::Malformed(_))
            | Rejection::MissingToken => (
                "This ad link is not valid",
                "The link is incomplete or damaged.",
            ),
            Rejection::BodyNotAllowed => ("Bad request", "A click request carries no body."),
            Rejection::RateLimited => ("Too many requests", "Please slow down and try again."),
            Rejection::NotDurable | Rejection::Timeout | Rejection::Internal => (
                "Temporarily unavailable",
                "We could not process this click. Please try again.",
            ),
            Rejection::NotFound => ("Not found", "There is nothing here."),
            Rejection::MethodNotAllowed => {
                ("Method not allowed", "Ad links are followed with GET.")
            }
            Rejection::Prefetch => ("Not prefetched", "This link opens when it is clicked."),
            Rejection::NotRedirected => ("Click not accepted", "This click was not accepted."),
        }
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let (title, text) = self.message();
        let body = format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title></head>\
             <body><h1>{title}</h1><p>{text}</p></body></html>\n"
        );
        let mut response = (self.status(), body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        // The page is static text: no scripts, styles, frames or forms from anywhere.
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
        );
        match self {
            Rejection::RateLimited => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            Rejection::MethodNotAllowed => {
                headers.insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            }
            _ => {}
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use adclick_click::token::Malformed;

    #[test]
    fn statuses_follow_the_table_and_pages_hold_no_links() {
        let cases = [
            (
                Rejection::Token(TokenError::Malformed(Malformed::NotBase64)),
                400,
            ),
            (Rejection::Token(TokenError::TooLong(9999)), 414),
            (Rejection::Token(TokenError::BadSignature), 403),
            (Rejection::Token(TokenError::UnknownKey("x".into())), 403),
            (
                Rejection::Token(TokenError::Expired {
                    expires_at_secs: 1,
                    now_secs: 2,
                    skew_secs: 0,
                }),
                410,
            ),
            (
                Rejection::Token(TokenError::BadUrlScheme("javascript".into())),
                403,
            ),
            (Rejection::RateLimited, 429),
            (Rejection::NotDurable, 503),
            (Rejection::NotFound, 404),
            (Rejection::MethodNotAllowed, 405),
            (Rejection::Prefetch, 503),
            (Rejection::NotRedirected, 403),
        ];
        for (rejection, status) in cases {
            let reason = rejection.reason();
            let response = rejection.into_response();
            assert_eq!(response.status().as_u16(), status, "{reason}");
            assert!(response.headers().get(header::LOCATION).is_none());
            // Never stored: a stored prefetch answer would swallow the person's click.
            assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
        }
    }
}
