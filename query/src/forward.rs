//! One request of an authenticated caller, answered: its query or `match[]` selectors prepared
//! (restricted for an advertiser), its time range checked against the caller's limits, routed to
//! the live or the history upstream, made right for that upstream's tiers, and forwarded.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use axum::response::Response;

use crate::caller::Caller;
use crate::enforce::{Prepared, own_series, prepare_match, prepare_query};
use crate::envelope::ApiError;
use crate::gateway::{Endpoint, Incoming};
use crate::params::{ParamError, Params};
use crate::refusal::Refusal;
use crate::route::Target;
use crate::state::AppState;
use crate::tier::Tiers;

const MATCH: &str = "match[]";

/// The parameters forwarded with a query: Prometheus' own and Thanos' (`dedup`,
/// `partial_response`, `max_source_resolution`). Others are dropped: `lookback_delta`
/// (Prometheus 2.43+, Thanos) would read further back than the range limit checked, and a
/// parameter a later upstream learns must be looked at here before it is forwarded.
const QUERY_PARAMS: [&str; 9] = [
    "query",
    "time",
    "start",
    "end",
    "step",
    "timeout",
    "dedup",
    "partial_response",
    "max_source_resolution",
];

/// The parameters forwarded with `series`, `labels` and `label/<name>/values`.
const METADATA_PARAMS: [&str; 6] = [MATCH, "start", "end", "limit", "dedup", "partial_response"];

/// The upstream's answer and which upstream gave it.
pub(crate) struct Answer {
    pub(crate) response: Response,
    pub(crate) upstream: Option<Target>,
}

/// The request as `caller` may make it, sent upstream.
pub(crate) async fn forward(
    state: &AppState,
    endpoint: Endpoint,
    incoming: &Incoming,
    caller: Caller,
    label: Option<&str>,
) -> Result<Answer, ApiError> {
    let params = &incoming.params;
    let advertiser = match caller {
        Caller::Advertiser(id) => Some(id),
        Caller::Operator => None,
    };
    let now = now_ms();
    let (target, path, params, get_only) = match endpoint {
        Endpoint::Query | Endpoint::QueryRange | Endpoint::Exemplars => {
            let (target, params) = query(state, endpoint, params, advertiser, now)?;
            let path = match endpoint {
                Endpoint::Query => "query",
                Endpoint::QueryRange => "query_range",
                _ => "query_exemplars",
            };
            (target, path.to_string(), params, false)
        }
        Endpoint::Metadata => match advertiser {
            Some(_) => return metric_metadata(state, params).await,
            None => (Target::Live, "metadata".into(), params.clone(), true),
        },
        // Rules and alerts are the platform's, and an alert's labels may name any advertiser:
        // an advertiser is told there are none (what Grafana's datasource shows as "no rules").
        Endpoint::Rules | Endpoint::Alerts => match advertiser {
            Some(_) => {
                let empty = if endpoint == Endpoint::Rules {
                    r#"{"status":"success","data":{"groups":[]}}"#
                } else {
                    r#"{"status":"success","data":{"alerts":[]}}"#
                };
                return Ok(local_answer(empty.into()));
            }
            None => {
                let path = if endpoint == Endpoint::Rules {
                    "rules"
                } else {
                    "alerts"
                };
                (Target::Live, path.into(), params.clone(), true)
            }
        },
        Endpoint::Series | Endpoint::Labels | Endpoint::LabelValues => {
            let path = match (endpoint, label) {
                (Endpoint::Series, _) => "series".to_string(),
                (Endpoint::Labels, _) => "labels".to_string(),
                (_, Some(name)) if is_label_name(name) => format!("label/{name}/values"),
                (_, _) => return Err(ApiError::InvalidLabelName),
            };
            let (target, params) = metadata(state, params, advertiser, now)?;
            (target, path, params, endpoint == Endpoint::LabelValues)
        }
        Endpoint::BuildInfo => (
            Target::Live,
            "status/buildinfo".into(),
            params.clone(),
            true,
        ),
        Endpoint::Clicks => {
            return match advertiser {
                Some(id) => crate::clicks::clicks(state, incoming, id).await,
                None => Err(ApiError::AdvertiserOnly),
            };
        }
        Endpoint::WrongMethod => return Err(ApiError::MethodNotAllowed),
        Endpoint::Other => return Err(ApiError::NotFound),
    };
    let upstream = state.upstream(target);
    let response = if get_only {
        upstream.get(&path, &params).await
    } else {
        upstream.post_form(&path, &params).await
    };
    Ok(Answer {
        response: response.map_err(ApiError::Upstream)?,
        upstream: Some(target),
    })
}

/// `/api/v1/query` and `query_range`: the one `query` prepared, its range checked, routed,
/// rendered for the route; `timeout` capped by the caller's limit.
fn query(
    state: &AppState,
    endpoint: Endpoint,
    params: &Params,
    advertiser: Option<u64>,
    now: i64,
) -> Result<(Target, Params), ApiError> {
    let text = params.single("query").map_err(ApiError::BadParam)?;
    let prepared = prepare_query(text, advertiser, &state.policy).map_err(ApiError::Refused)?;
    let (start, end) = if endpoint == Endpoint::Query {
        let t = params.time_ms("time").map_err(ApiError::BadParam)?;
        (t.unwrap_or(now), t.unwrap_or(now))
    } else if endpoint == Endpoint::Exemplars {
        let start = required(params.time_ms("start"), "start")?;
        let end = required(params.time_ms("end"), "end")?;
        (start, end.max(start))
    } else {
        let start = required(params.time_ms("start"), "start")?;
        let end = required(params.time_ms("end"), "end")?;
        let step = required(params.duration("step"), "step")?;
        if end < start {
            return Err(ApiError::BadParam(ParamError::Invalid {
                name: "end",
                expected: "a time after start",
            }));
        }
        state
            .limits
            .check_points(start, end, step)
            .map_err(ApiError::Limited)?;
        (start, end)
    };
    let reads_from = prepared.reach.from_ms(start);
    state
        .limits
        .check_range(reads_from, end)
        .map_err(ApiError::Limited)?;
    let route = state
        .routing
        .route(prepared.tiers, reads_from, now)
        .map_err(ApiError::Refused)?;
    let rendered = prepared
        .render(&state.policy, Some((route.tier, route.holds)))
        .map_err(ApiError::Refused)?;
    let asked = params.duration("timeout").map_err(ApiError::BadParam)?;
    let timeout = state.limits.timeout(asked);
    let params = params
        .only(&QUERY_PARAMS)
        .replace("query", [rendered])
        .replace("timeout", [seconds(timeout)]);
    Ok((route.target, params))
}

/// `/api/v1/metadata` for an advertiser: the live Prometheus' answer with only the metrics the
/// policy allows (metadata is a metric's type and help, never a series' labels).
async fn metric_metadata(state: &AppState, params: &Params) -> Result<Answer, ApiError> {
    let metric = params.optional("metric").map_err(ApiError::BadParam)?;
    if metric.is_some_and(|m| !state.policy.allows(m)) {
        return Ok(local_answer(r#"{"status":"success","data":{}}"#.into()));
    }
    let forwarded = Params(
        params
            .0
            .iter()
            .filter(|(k, _)| k == "metric" || k == "limit")
            .cloned()
            .collect(),
    );
    let (status, body) = state
        .live
        .get_raw("metadata", &forwarded)
        .await
        .map_err(ApiError::Upstream)?;
    let mut answer: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) if status.is_success() => v,
        // An error (or something else): no metadata rather than an unfiltered body.
        _ => return Ok(local_answer(r#"{"status":"success","data":{}}"#.into())),
    };
    if let Some(data) = answer.get_mut("data").and_then(|d| d.as_object_mut()) {
        data.retain(|name, _| state.policy.allows(name));
    } else {
        answer = serde_json::json!({"status": "success", "data": {}});
    }
    Ok(local_answer(answer.to_string()))
}

/// A success the gateway answers itself, as JSON.
fn local_answer(body: String) -> Answer {
    Answer {
        response: json_response(StatusCode::OK, body.into_bytes()),
        upstream: None,
    }
}

/// A JSON body with `status`.
pub(crate) fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = Response::new(axum::body::Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    response
}

/// `series`, `labels`, `label/<name>/values`: every `match[]` prepared (an advertiser without
/// any gets its own series), routed by their tier and `start`, rendered for the route.
fn metadata(
    state: &AppState,
    params: &Params,
    advertiser: Option<u64>,
    now: i64,
) -> Result<(Target, Params), ApiError> {
    let given: Vec<String> = params.all(MATCH).map(str::to_string).collect();
    let selectors = match (given.is_empty(), advertiser) {
        (true, Some(id)) => own_series(id, &state.policy),
        (true, None) | (false, _) => given,
    };
    let prepared = selectors
        .iter()
        .map(|s| prepare_match(s, advertiser, &state.policy))
        .collect::<Result<Vec<Prepared>, Refusal>>()
        .map_err(ApiError::Refused)?;
    let tiers = prepared
        .iter()
        .try_fold(Tiers::Unnamed, |all, p| all.and(p.tiers))
        .map_err(ApiError::Refused)?;
    let start = params.time_ms("start").map_err(ApiError::BadParam)?;
    let route = state
        .routing
        .route(tiers, start.unwrap_or(now), now)
        .map_err(ApiError::Refused)?;
    let params = params.only(&METADATA_PARAMS);
    if prepared.is_empty() {
        // An operator's request without match[]: as it is.
        return Ok((route.target, params));
    }
    let rendered = prepared
        .into_iter()
        .map(|p| p.render(&state.policy, Some((route.tier, route.holds))))
        .collect::<Result<Vec<String>, Refusal>>()
        .map_err(ApiError::Refused)?;
    Ok((route.target, params.replace(MATCH, rendered)))
}

fn required<T>(value: Result<Option<T>, ParamError>, name: &'static str) -> Result<T, ApiError> {
    value
        .map_err(ApiError::BadParam)?
        .ok_or(ApiError::BadParam(ParamError::Missing(name)))
}

/// A duration as Prometheus' `timeout` parameter reads it: seconds.
fn seconds(d: Duration) -> String {
    format!("{}", d.as_secs_f64())
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A classic label name, `[a-zA-Z_][a-zA-Z0-9_]*`: safe to put in the upstream's path as it is.
fn is_label_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_names() {
        assert!(is_label_name("advertiser_id") && is_label_name("__name__"));
        assert!(!is_label_name("") && !is_label_name("1a") && !is_label_name("a/../b"));
    }

    #[test]
    fn timeouts_in_seconds() {
        assert_eq!(seconds(Duration::from_secs(20)), "20");
        assert_eq!(seconds(Duration::from_millis(1500)), "1.5");
    }
}
