//! The gateway's router: each request authenticated, let in by the caller's limits, answered
//! (`forward`), counted and written to the audit log.
//!
//! | path | methods | what is enforced |
//! |---|---|---|
//! | `/api/v1/query`, `/api/v1/query_range` | GET, POST form | `query` (exactly one) through [`crate::prepare_query`]; routed (`route`); `timeout` capped |
//! | `/api/v1/series`, `/api/v1/labels` | GET, POST form | each `match[]` through [`crate::prepare_match`]; none: [`crate::own_series`] |
//! | `/api/v1/label/{name}/values` | GET | as `series`; `name` must be a label name |
//! | `/api/v1/status/buildinfo` | GET | nothing (no series in it) |
//! | `/api/v1/query_exemplars` | GET, POST form | as `query_range` (no step) |
//! | `/api/v1/metadata` | GET | an advertiser gets the allowed metrics' entries only |
//! | `/api/v1/rules`, `/api/v1/alerts` | GET | an advertiser gets none (the platform's; alerts' labels may name anyone) |
//! | `/v1/clicks` | GET | the REST endpoint (`clicks`): its planned queries as `query` |
//! | anything else | | 404 (401 first without a valid credential) |
//!
//! The audit log is one line per request at INFO, target `adclick_query::audit`: caller,
//! endpoint, method, query (or `match[]`), outcome, status, upstream, duration.

use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::caller::Caller;
use crate::credentials::Rejected;
use crate::envelope::ApiError;
use crate::forward::forward;
use crate::params::Params;
use crate::state::AppState;

/// The largest request body read (a form of parameters); axum answers 413 beyond.
const MAX_BODY_BYTES: usize = 1 << 20;

/// The most of a query the audit log keeps (the rest is counted, not written).
const AUDIT_QUERY_BYTES: usize = 2048;

/// The gateway's API endpoints, as the request counter names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Query,
    QueryRange,
    Series,
    Labels,
    LabelValues,
    BuildInfo,
    Exemplars,
    Metadata,
    Rules,
    Alerts,
    Clicks,
    /// A path of the API asked with a method it is not served on.
    WrongMethod,
    Other,
}

impl Endpoint {
    fn as_str(self) -> &'static str {
        match self {
            Endpoint::Query => "query",
            Endpoint::QueryRange => "query_range",
            Endpoint::Series => "series",
            Endpoint::Labels => "labels",
            Endpoint::LabelValues => "label_values",
            Endpoint::BuildInfo => "buildinfo",
            Endpoint::Exemplars => "query_exemplars",
            Endpoint::Metadata => "metadata",
            Endpoint::Rules => "rules",
            Endpoint::Alerts => "alerts",
            Endpoint::Clicks => "clicks",
            Endpoint::WrongMethod | Endpoint::Other => "other",
        }
    }
}

/// The parts of a request every endpoint reads.
pub(crate) struct Incoming {
    pub(crate) method: Method,
    pub(crate) uri: Uri,
    pub(crate) headers: HeaderMap,
    /// Who is asking, decided from the headers before anything else is read.
    pub(crate) authenticated: Result<Caller, Rejected>,
    /// Why the body could not be read (413 over the body limit), answered instead.
    unread: Option<StatusCode>,
    /// The query string's and the form body's parameters, parsed once for the whole request.
    pub(crate) params: Params,
}

/// Every endpoint's one extractor: the caller from the headers, then, for an authenticated
/// request only, the body within the router's body limit (an unauthenticated one costs the
/// gateway no body read).
impl FromRequest<AppState> for Incoming {
    type Rejection = std::convert::Infallible;

    async fn from_request(request: Request, state: &AppState) -> Result<Incoming, Self::Rejection> {
        let (parts, body) = request.into_parts();
        let authenticated = state.credentials.current().authenticate(&parts.headers);
        let (method, uri, headers) = (
            parts.method.clone(),
            parts.uri.clone(),
            parts.headers.clone(),
        );
        let (body, unread) = if authenticated.is_ok() {
            match Bytes::from_request(Request::from_parts(parts, body), state).await {
                Ok(body) => (body, None),
                Err(rejection) => (Bytes::new(), Some(rejection.status())),
            }
        } else {
            (Bytes::new(), None)
        };
        let params = Params::from_request(&method, uri.query(), &headers, &body);
        Ok(Incoming {
            method,
            uri,
            headers,
            authenticated,
            unread,
            params,
        })
    }
}

/// The gateway's router, for `axum::serve` or, in tests, `tower::ServiceExt::oneshot`.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/query", get(query_handler).post(query_handler))
        .route(
            "/api/v1/query_range",
            get(query_range_handler).post(query_range_handler),
        )
        .route("/api/v1/series", get(series_handler).post(series_handler))
        .route("/api/v1/labels", get(labels_handler).post(labels_handler))
        .route("/api/v1/label/{name}/values", get(label_values_handler))
        .route("/api/v1/status/buildinfo", get(buildinfo_handler))
        .route(
            "/api/v1/query_exemplars",
            get(exemplars_handler).post(exemplars_handler),
        )
        .route("/api/v1/metadata", get(metadata_handler))
        .route("/api/v1/rules", get(rules_handler))
        .route("/api/v1/alerts", get(alerts_handler))
        .route("/v1/clicks", get(clicks_handler))
        .fallback(fallback)
        .method_not_allowed_fallback(wrong_method)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

async fn query_handler(State(state): State<AppState>, incoming: Incoming) -> Response {
    handle(&state, Endpoint::Query, &incoming, None).await
}

async fn query_range_handler(State(state): State<AppState>, incoming: Incoming) -> Response {
    handle(&state, Endpoint::QueryRange, &incoming, None).await
}

async fn series_handler(State(state): State<AppState>, incoming: Incoming) -> Response {
    handle(&state, Endpoint::Series, &incoming, None).await
}

async fn labels_handler(State(state): State<AppState>, incoming: Incoming) -> Response {
    handle(&state, Endpoint::Labels, &incoming, None).await
}

async fn label_values_handler(
    State(state): State<AppState>,
    Path(name): Path<String>,
    incoming: Incoming,
) -> Response {
    handle(&state, Endpoint::LabelValues, &incoming, Some(&name)).await
}

async fn buildinfo_handler(State(state): State<AppState>, incoming: Incoming) -> Response {
    handle(&state, Endpoint::BuildInfo, &incoming, None).await
}

async fn exemplars_handler(State(state): State<AppState>, incoming: Incoming) -> Response {
    handle(&state, Endpoint::Exemplars, &incoming, None).await
}

async fn metadata_handler(State(state): State<AppState>, incoming: Incoming) -> Response {
    handle(&state, Endpoint::Metadata, &incoming, None).await
}

async fn rules_handler(State(state): State<AppState>, incoming: Incoming) -> Response {
    handle(&state, Endpoint::Rules, &incoming, None).await
}

async fn alerts_handler(State(state): State<AppState>, incoming: Incoming) -> Response {
    handle(&state, Endpoint::Alerts, &incoming, None).await
}

async fn clicks_handler(State(state): State<AppState>, incoming: Incoming) -> Response {
    handle(&state, Endpoint::Clicks, &incoming, None).await
}

async fn fallback(State(state): State<AppState>, incoming: Incoming) -> Response {
    handle(&state, Endpoint::Other, &incoming, None).await
}

async fn wrong_method(State(state): State<AppState>, incoming: Incoming) -> Response {
    handle(&state, Endpoint::WrongMethod, &incoming, None).await
}

/// Answers one request: authenticated, admitted by the caller's limits, forwarded; counted,
/// timed and written to the audit log.
async fn handle(
    state: &AppState,
    endpoint: Endpoint,
    incoming: &Incoming,
    label: Option<&str>,
) -> Response {
    let started = Instant::now();
    let authenticated = &incoming.authenticated;
    let result = match authenticated {
        Err(_) => Err(ApiError::Unauthorized),
        Ok(_) if endpoint == Endpoint::WrongMethod => Err(ApiError::MethodNotAllowed),
        Ok(_) if incoming.unread.is_some() => Err(ApiError::Body(
            incoming.unread.unwrap_or(StatusCode::BAD_REQUEST),
        )),
        Ok(caller) => match state.limits.admit(*caller) {
            Err(e) => Err(ApiError::Limited(e)),
            // The permit is held until the answer is read from the upstream.
            Ok(_permit) => forward(state, endpoint, incoming, *caller, label).await,
        },
    };
    let (outcome, upstream) = match &result {
        Ok(answer) if answer.response.status().is_success() => ("ok", answer.upstream),
        Ok(answer) => ("upstream_error", answer.upstream),
        Err(e) => (e.outcome(), None),
    };
    let elapsed = started.elapsed();
    state
        .metrics
        .answered(endpoint.as_str(), outcome, elapsed.as_secs_f64());
    let response = match result {
        Ok(answer) => answer.response,
        Err(error) => {
            if let ApiError::Upstream(e) = &error {
                tracing::warn!(endpoint = endpoint.as_str(), error = %adclick_admin::ErrorChain(e), "upstream request failed");
            }
            error.into_response()
        }
    };
    let caller = match authenticated {
        Ok(Caller::Advertiser(id)) => format!("advertiser:{id}"),
        Ok(Caller::Operator) => "operator".to_string(),
        Err(rejected) => format!("unauthenticated ({rejected})"),
    };
    let params = &incoming.params;
    let asked: Vec<&str> = if endpoint == Endpoint::Clicks {
        incoming.uri.query().into_iter().collect()
    } else {
        params.all("query").chain(params.all("match[]")).collect()
    };
    let asked: Vec<&str> = asked
        .into_iter()
        .map(|q| truncate(q, AUDIT_QUERY_BYTES))
        .collect();
    tracing::info!(
        target: "adclick_query::audit",
        caller,
        endpoint = endpoint.as_str(),
        method = %incoming.method,
        query = ?asked,
        outcome,
        status = response.status().as_u16(),
        upstream = upstream.map_or("-", |t| t.as_str()),
        duration_ms = elapsed.as_secs_f64() * 1000.0,
        "request"
    );
    response
}

/// The first `max` bytes of `s` at most, cut at a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests;
