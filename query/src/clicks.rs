//! `GET /v1/clicks`, the REST endpoint for people who do not write PromQL: the request parsed and
//! planned by `rest`, each planned query restricted to the caller (`prepare_query`), routed like
//! any other (final and late figures to the stream's upstream, billing to the rollup's), asked
//! as a `query_range`, and the matrices rendered as JSON or CSV rows.
//!
//! Billing figures come from the history upstream only: without one they are `null`. Through
//! Thanos they are asked at raw resolution (`max_source_resolution=0s`: downsampled blocks do
//! not hold the minute samples) and without partial responses (`partial_response=false`: a
//! store that does not answer would otherwise drop its clicks silently).

use axum::body::Body;
use axum::http::HeaderValue;
use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::response::Response;

use crate::enforce::prepare_query;
use crate::envelope::ApiError;
use crate::forward::{Answer, json_response, now_ms};
use crate::gateway::Incoming;
use crate::rest::{ClicksRequest, Figure, PROMETHEUS_MAX_POINTS, render};
use crate::route::{HistoryKind, Target};
use crate::state::AppState;
use crate::tier::Holds;

/// Answers `/v1/clicks` for `advertiser_id`.
pub(crate) async fn clicks(
    state: &AppState,
    incoming: &Incoming,
    advertiser_id: u64,
) -> Result<Answer, ApiError> {
    let params = &incoming.params;
    let accept = incoming.headers.get(ACCEPT).and_then(|v| v.to_str().ok());
    let now = now_ms();
    let max_points = usize::try_from(state.limits.settings().max_points)
        .unwrap_or(usize::MAX)
        .min(PROMETHEUS_MAX_POINTS);
    let request = ClicksRequest::parse(params, accept, now, max_points).map_err(ApiError::Rest)?;
    state
        .limits
        .check_range(request.from_ms(), request.to_ms())
        .map_err(ApiError::Limited)?;
    let timeout = state.limits.timeout(None);
    let mut answers = Vec::new();
    let mut used = None;
    for planned in request.plan() {
        let prepared = prepare_query(&planned.query, Some(advertiser_id), &state.policy)
            .map_err(ApiError::Refused)?;
        let reads_from = prepared.reach.from_ms(planned.start_ms);
        let route = state
            .routing
            .route(prepared.tiers, reads_from, now)
            .map_err(ApiError::Refused)?;
        if planned.figure == Figure::Billing && route.target != Target::History {
            // No history upstream: no settled figures to give; rendered as null.
            continue;
        }
        let rendered = prepared
            .render(&state.policy, Some((route.tier, route.holds)))
            .map_err(ApiError::Refused)?;
        let mut form = planned.form(rendered);
        form.0
            .push(("timeout".into(), format!("{}", timeout.as_secs_f64())));
        if route.holds == Holds::BothTiers && state.routing.history == Some(HistoryKind::Thanos) {
            form.0.push(("max_source_resolution".into(), "0s".into()));
            form.0.push(("partial_response".into(), "false".into()));
        }
        let (status, body) = state
            .upstream(route.target)
            .post_form_raw("query_range", &form)
            .await
            .map_err(ApiError::Upstream)?;
        if !status.is_success() {
            // The upstream's own error envelope, passed back as for any query.
            return Ok(Answer {
                response: json_response(status, body.to_vec()),
                upstream: Some(route.target),
            });
        }
        let data = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|mut v| v.get_mut("data").map(serde_json::Value::take))
            .ok_or(ApiError::Rest(crate::rest::RestError::Upstream {
                figure: planned.figure.as_str(),
                detail: "the answer is not Prometheus' JSON".into(),
            }))?;
        answers.push((planned.figure, data));
        used = Some(route.target);
    }
    let rendered = render(&request, &answers).map_err(ApiError::Rest)?;
    let mut response = Response::new(Body::from(rendered.body));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static(rendered.content_type),
    );
    Ok(Answer {
        response,
        upstream: used,
    })
}
