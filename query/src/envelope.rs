//! Why the gateway answers a request itself, as Prometheus' error envelope
//! (`{"status":"error","errorType":…,"error":…}`) with a status, never naming anything internal
//! (the upstream's address, the keys file, another advertiser).

use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::limits::LimitError;
use crate::params::ParamError;
use crate::refusal::Refusal;
use crate::rest::RestError;
use crate::upstream::UpstreamError;

/// An answer the gateway gives instead of the upstream's.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No key, a key of a scheme it does not read, or a key it does not know: all alike, so the
    /// answer does not help guessing.
    #[error("authentication required")]
    Unauthorized,
    /// The query or a `match[]` cannot be enforced (see [`Refusal::status`]).
    #[error("refused")]
    Refused(#[source] Refusal),
    #[error("bad parameter")]
    BadParam(#[source] ParamError),
    /// `/api/v1/label/<name>/values` with a name that is no label name.
    #[error("invalid label name")]
    InvalidLabelName,
    #[error("not found")]
    NotFound,
    /// A path of the API asked with a method it is not served on (Grafana retries a POST
    /// answered 405 as a GET).
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The body could not be read: over the body limit (413) or broken (400).
    #[error("unreadable body")]
    Body(StatusCode),
    /// `/v1/clicks` asked by an operator: its answers are one advertiser's.
    #[error("advertisers only")]
    AdvertiserOnly,
    /// `/v1/clicks`' parameters, or an upstream answer it cannot read.
    #[error("clicks")]
    Rest(#[source] RestError),
    /// Over a per-caller limit: 429 with `Retry-After` (rate, concurrency) or 422 naming it.
    #[error("over a limit")]
    Limited(#[source] LimitError),
    /// The upstream did not answer (in time); what went wrong stays in the gateway's log.
    #[error("upstream")]
    Upstream(#[source] UpstreamError),
}

impl ApiError {
    /// The `outcome` label of the request counter.
    pub fn outcome(&self) -> &'static str {
        match self {
            ApiError::Unauthorized => "unauthorized",
            ApiError::Refused(_) => "refused",
            ApiError::BadParam(_) | ApiError::InvalidLabelName => "bad_request",
            ApiError::NotFound => "not_found",
            ApiError::MethodNotAllowed | ApiError::Body(_) => "bad_request",
            ApiError::AdvertiserOnly => "refused",
            ApiError::Rest(e) if e.status() == 422 => "over_limit",
            ApiError::Rest(e) if e.status() < 500 => "bad_request",
            ApiError::Rest(_) => "upstream_error",
            ApiError::Limited(e) if e.retry_after().is_some() => "rate_limited",
            ApiError::Limited(_) => "over_limit",
            ApiError::Upstream(UpstreamError::Timeout(_)) => "upstream_timeout",
            ApiError::Upstream(_) => "upstream_unavailable",
        }
    }

    fn parts(&self) -> (StatusCode, &'static str, String) {
        match self {
            ApiError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "authentication required".into(),
            ),
            ApiError::Refused(refusal) => {
                let status = StatusCode::from_u16(refusal.status())
                    .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                let kind = if status.is_server_error() {
                    "internal"
                } else {
                    "bad_data"
                };
                (status, kind, refusal.to_string())
            }
            ApiError::BadParam(e) => (StatusCode::BAD_REQUEST, "bad_data", e.to_string()),
            ApiError::InvalidLabelName => (
                StatusCode::BAD_REQUEST,
                "bad_data",
                "invalid label name".into(),
            ),
            ApiError::NotFound => (StatusCode::NOT_FOUND, "not_found", "not found".into()),
            ApiError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "bad_data",
                "this method is not allowed here".into(),
            ),
            ApiError::Body(status) if *status == StatusCode::PAYLOAD_TOO_LARGE => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "bad_data",
                "the request body is larger than 1 MiB".into(),
            ),
            ApiError::Body(_) => (
                StatusCode::BAD_REQUEST,
                "bad_data",
                "the request body could not be read".into(),
            ),
            ApiError::AdvertiserOnly => (
                StatusCode::FORBIDDEN,
                "bad_data",
                "/v1/clicks answers for an advertiser's key; operators query PromQL".into(),
            ),
            ApiError::Rest(e) => {
                let status =
                    StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                let kind = if status.is_server_error() {
                    "internal"
                } else {
                    "bad_data"
                };
                (status, kind, e.to_string())
            }
            ApiError::Limited(e) if e.retry_after().is_some() => (
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                e.to_string(),
            ),
            ApiError::Limited(e) => (StatusCode::UNPROCESSABLE_ENTITY, "bad_data", e.to_string()),
            ApiError::Upstream(UpstreamError::Timeout(_)) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                "the upstream did not answer in time".into(),
            ),
            ApiError::Upstream(_) => (
                StatusCode::BAD_GATEWAY,
                "unavailable",
                "the upstream is unavailable".into(),
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry_after = match &self {
            ApiError::Limited(e) => e.retry_after(),
            _ => None,
        };
        let (status, kind, error) = self.parts();
        let body = Envelope::error(kind, &error);
        let mut response = (status, axum::Json(body)).into_response();
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// Prometheus' error JSON, its fields in Prometheus' order.
#[derive(serde::Serialize)]
pub(crate) struct Envelope<'a> {
    status: &'static str,
    #[serde(rename = "errorType")]
    error_type: &'a str,
    error: &'a str,
}

impl<'a> Envelope<'a> {
    pub(crate) fn error(error_type: &'a str, error: &'a str) -> Envelope<'a> {
        Envelope {
            status: "error",
            error_type,
            error,
        }
    }

    /// The JSON text.
    pub(crate) fn to_json(&self) -> String {
        // A struct of strings always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(e: ApiError) -> (StatusCode, String) {
        let r = e.into_response();
        let status = r.status();
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn envelopes() {
        assert_eq!(
            body(ApiError::Unauthorized).await,
            (
                StatusCode::UNAUTHORIZED,
                r#"{"status":"error","errorType":"unauthorized","error":"authentication required"}"#
                    .to_string()
            )
        );
        let (status, text) = body(ApiError::Refused(Refusal::MetricNotAllowed {
            name: "up".into(),
        }))
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(
            text.contains(r#""errorType":"bad_data""#) && text.contains("`up`"),
            "{text}"
        );
        let (status, _) = body(ApiError::Refused(Refusal::Unverified {
            detail: "x".into(),
        }))
        .await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    }
}
