//! The click path: `GET /click/{token}` (and `GET /click?token=…` for ad markup that cannot put
//! the token in the path), optionally with `t=<click time, ms>`.
//!
//! 1. Find and verify the token (`request`, [`adclick_click::Verifier`]); refuse with a 4xx page
//!    otherwise (`reject`).
//! 2. Choose the event time (`event_time`).
//! 3. Invalid traffic decided from the request (`traffic`): a prefetch, a bot or a deny-listed
//!    network skips step 4 — it claims nothing, so the person's real click still counts — and is
//!    recorded with its reason.
//! 4. Claim the impression in Redis (`dedup`) and count its velocity in the same step: a
//!    duplicate is redirected and not produced; a failed or slow Redis fails open
//!    (`ClickFlag::DedupUnchecked`, and `ClickFlag::VelocityUnchecked` when velocity was to be
//!    counted). Then the activity rules (`too_fast`, velocity) give the click its verdict.
//! 5. Make the click durable: Kafka's acknowledgement within `produce_timeout_ms`, else an
//!    fsynced spill record (`ClickFlag::Replayed`).
//! 6. Answer `302 Found` to the token's landing URL, with the visitor cookie when the visitor is
//!    new (`visitor`); a prefetch gets an uncacheable 503 instead, and a reason listed in
//!    `[ingest] not_redirected` a 403 (`traffic`).
//!
//! Steps 4 and 5 run in a task of their own, tracked for shutdown: a browser that goes away
//! mid-click cancels its request but not the recording of a click whose impression was already
//! claimed, which would otherwise be lost (its repeat would be taken for a duplicate).
//!
//! Steps 1, 2 and 6 — where the token is, its verification, the event time, the `Location` — are
//! the pure functions of `request`, shared with the fuzz target.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use adclick_click::token::{Claims, unix_now_secs};
use adclick_click::wire::{Click, ClickFlag};
use adclick_click::{Verifier, now_ms};
use adclick_invalid::{ActivityFacts, Reason};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, Request};
use axum::response::{IntoResponse, Response};
use prost::Message as _;
use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;

use crate::config::SpillFullPolicy;
use crate::dedup::{Claim, Dedup};
use crate::event_time::ClientTimeBounds;
use crate::limits::Limits;
use crate::metrics::{DurablePath, Metrics};
use crate::produce::Producer;
use crate::reject::Rejection;
use crate::request::{self, ClickRequest, Now};
use crate::spill::{Spill, SpillError};
use crate::traffic::{self, Traffic};
use crate::unreplayed::impression_key;
use crate::visitor::Visitors;

/// Everything the click path needs; cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    pub verifier: Arc<Verifier>,
    pub dedup: Dedup,
    pub producer: Producer,
    pub spill: Spill,
    pub metrics: Metrics,
    pub limits: Limits,
    pub client_time: ClientTimeBounds,
    pub spill_full: SpillFullPolicy,
    /// Invalid-traffic rules, the client's address, the answers to invalid clicks.
    pub traffic: Traffic,
    /// The visitor cookie and the user hash of clicks whose token carries none.
    pub visitors: Visitors,
    /// The recording tasks, awaited on shutdown.
    pub tracker: TaskTracker,
    /// Whether clicks wait too long before they are worked on (`/readyz`).
    pub overload: crate::overload::Overload,
}

/// The public service: the click path behind the limits, and 404 pages for everything else; one
/// per connection ([`App::from_peer`]), sharing one state.
///
/// A plain `tower::Service`, not an axum `Router`: there is one handler for every path, which
/// tells a click from anything else by `request::parse` of the raw path, so a router has nothing
/// to route, and its layers (the route, the method router, the middleware and the handler, each
/// boxing or cloning per request) cost ingest about ten allocations a click; nor does any route
/// capture the token, which axum would percent-decode into the request's extensions for every
/// click and the click path never reads (`request`: the token is the raw path). Measured:
/// BENCHMARKS.md, "instructions and allocations per click". The state is behind an `Arc`
/// because the service is cloned for every request, and cloning an `AppState` itself costs about
/// a hundred atomic increments (every metric handle of every part).
#[derive(Clone)]
pub struct App {
    state: Arc<AppState>,
    /// The TCP peer of the connection this copy serves, when there is one.
    peer: Option<SocketAddr>,
}

/// The click service over `state`, for a connection whose peer is not known (tests).
pub fn app(state: AppState) -> App {
    App {
        state: Arc::new(state),
        peer: None,
    }
}

impl App {
    /// This service for a connection from `peer`.
    pub fn from_peer(mut self, peer: SocketAddr) -> App {
        self.peer = Some(peer);
        self
    }
}

impl<B> tower::Service<Request<B>> for App {
    type Response = Response;
    type Error = Infallible;
    type Future = Answer;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    /// One request, from its head: a body is never read (the limits refuse one). Everything up to
    /// the click's recording task — the limits, the token, the click's facts — is worked out at
    /// once; only the wait for that task, within `request_timeout_ms`, is left to the [`Answer`].
    /// As the recording task is spawned here, `call` runs within a Tokio runtime (hyper calls it
    /// from the connection's task).
    fn call(&mut self, request: Request<B>) -> Answer {
        // The body is dropped here: it is not read, and need not be `Send`.
        let (head, _body) = request.into_parts();
        let recording = start(&self.state, self.peer, &head);
        Answer {
            deadline: tokio::time::sleep(self.state.limits.request_timeout()),
            state: self.state.clone(),
            recording: Some(recording),
        }
    }
}

pin_project_lite::pin_project! {
    /// The answer to one request: the redirect once its click's recording task tells how it went,
    /// a 503 if that takes longer than `request_timeout_ms` (the click is still recorded), or the
    /// refusal `call` already decided. A named future, not a boxed `async` block: hyper keeps it
    /// in the connection's task, so a click allocates nothing for the wait (BENCHMARKS.md, "the
    /// request's answer a named future").
    pub struct Answer {
        #[pin]
        deadline: tokio::time::Sleep,
        state: Arc<AppState>,
        // The click handed to its recording task, or why not; `None` once answered.
        recording: Option<Result<Recording, Rejection>>,
    }
}

impl Future for Answer {
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        // The task first, then the deadline, as `tokio::time::timeout` does: an answer that is
        // ready when the deadline passes is given.
        let outcome = match this.recording.take() {
            Some(Ok(mut recording)) => match Pin::new(&mut recording.task).poll(cx) {
                Poll::Ready(joined) => recording.answer(joined, this.state),
                Poll::Pending if this.deadline.poll(cx).is_ready() => Err(Rejection::Timeout),
                Poll::Pending => {
                    *this.recording = Some(Ok(recording));
                    return Poll::Pending;
                }
            },
            Some(Err(rejection)) => Err(rejection),
            // Hyper never polls a finished future; an `async` block would panic too.
            None => panic!("handler::Answer polled after it answered"),
        };
        Poll::Ready(Ok(respond(this.state, outcome)))
    }
}

/// The limits, then both forms of a click: `request::parse` finds the token in the raw path or
/// the query; any other path is not found. A click is a `GET` (or its `HEAD`).
fn start(
    state: &Arc<AppState>,
    peer: Option<SocketAddr>,
    head: &Parts,
) -> Result<Recording, Rejection> {
    state.limits.check(peer, &head.headers)?;
    let uri = &head.uri;
    match request::parse(uri.path(), uri.query()) {
        Ok(_) if head.method != Method::GET && head.method != Method::HEAD => {
            Err(Rejection::MethodNotAllowed)
        }
        Ok(click_request) => click(state, &click_request, peer, head),
        Err(rejection) => Err(rejection),
    }
}

fn respond(state: &AppState, outcome: Result<Response, Rejection>) -> Response {
    match outcome {
        Ok(response) => response,
        Err(rejection) => {
            if rejection.is_refused_click() {
                Metrics::count(&state.metrics.invalid, rejection.reason());
            }
            rejection.into_response()
        }
    }
}

/// The click path for one request up to its recording task: the click handed to it, or why not.
fn click(
    state: &Arc<AppState>,
    click_request: &ClickRequest,
    peer: Option<SocketAddr>,
    request: &Parts,
) -> Result<Recording, Rejection> {
    let started = Instant::now();
    let now = Now {
        unix_secs: unix_now_secs(),
        receive_ms: now_ms(),
    };
    let decision = request::decide(&state.verifier, click_request, now, &state.client_time)?;
    Metrics::count(&state.metrics.client_time, decision.client_time.reason());
    let claims = &decision.claims;
    let client = state
        .traffic
        .client(peer.map(|peer| peer.ip()), &request.headers);
    let request_reason = state
        .traffic
        .request_reason(&request.method, &request.headers, &client);
    // The token's user hash, else the visitor cookie's (a new visitor gets one on the redirect).
    let visitor = match claims.user_hash {
        Some(_) => None,
        None => Some(state.visitors.identify(&request.headers)),
    };
    let click = Click {
        impression_id: claims.impression_id.to_vec(),
        ad_id: claims.ad_id,
        campaign_id: claims.campaign_id,
        advertiser_id: claims.advertiser_id,
        event_time_ms: decision.event_time_ms,
        receive_time_ms: now.receive_ms,
        // A version 2 token's user hash is already the placement side's salted hash (click.proto's
        // definition): copied as it is, never hashed again, so it still matches the placement
        // side's records. Without one, the visitor cookie's (`visitor.rs`).
        user_hash: claims
            .user_hash
            .or(visitor.as_ref().map(|v| v.user_hash))
            .unwrap_or(0),
        flags: 0,
        // Signed with the impression, so a click cannot name its own price.
        price_micros: claims.price_micros.unwrap_or(0),
        token_issued_at_secs: claims.issued_at_secs,
        invalid_reason: request_reason.map_or(0, |reason| i32::from(reason.code())),
        ip_hash: client.ip_hash,
    };
    Ok(Recording {
        task: state.tracker.spawn(record(state.clone(), click)),
        claims: decision.claims,
        set_cookie: visitor.and_then(|v| v.set_cookie),
        started,
    })
}

/// A click in its recording task, and what its answer needs once the task tells how it went.
struct Recording {
    task: JoinHandle<(Recorded, Option<Reason>)>,
    claims: Claims,
    /// The new visitor's cookie.
    set_cookie: Option<HeaderValue>,
    started: Instant,
}

impl Recording {
    /// The redirect, or why not, once the recording task ended (`joined`).
    fn answer(
        self,
        joined: Result<(Recorded, Option<Reason>), tokio::task::JoinError>,
        state: &AppState,
    ) -> Result<Response, Rejection> {
        let (recorded, reason) = joined.map_err(|_| Rejection::Internal)?;
        if recorded == Recorded::Lost && state.spill_full == SpillFullPolicy::Reject {
            return Err(Rejection::NotDurable);
        }
        if let Some(reason) = reason.filter(|&reason| !state.traffic.redirects(reason)) {
            // Recorded already, and counted as invalid traffic: not a refused request.
            return Ok(traffic::refusal(reason).into_response());
        }
        let mut response = request::redirect(&self.claims)?;
        if let Some(cookie) = self.set_cookie {
            response
                .headers_mut()
                .insert(axum::http::header::SET_COOKIE, cookie);
        }
        state
            .metrics
            .redirect_seconds
            .observe(self.started.elapsed().as_secs_f64());
        Ok(response)
    }
}

/// What became of a valid click.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// In Kafka or in the spill.
    Durable(DurablePath),
    /// A repeat of a counted impression: not produced.
    Duplicate,
    /// Neither Kafka nor the spill took it (counted in `clicks_lost`).
    Lost,
}

/// Dedup and velocity, the verdict, then durable produce. Runs in its own task: see the module
/// doc. A click that carries a request reason already claims nothing. Gives back what became of
/// the click and why it is invalid, if it is (not for a duplicate, which is not recorded).
pub async fn record(state: Arc<AppState>, mut click: Click) -> (Recorded, Option<Reason>) {
    let request_reason = Reason::from_code(click.invalid_reason.clamp(0, 255) as u8);
    let (claimed, reason) = match request_reason {
        Some(reason) => (false, Some(reason)),
        None => {
            let counters =
                state
                    .traffic
                    .counters(click.user_hash, click.ip_hash, click.receive_time_ms);
            let counts_velocity = !counters.is_empty();
            let claim = state.dedup.claim(&click.impression_id, counters).await;
            let claimed = matches!(claim, Claim::New(_));
            let velocity = match claim {
                Claim::Duplicate => {
                    state.metrics.duplicates.inc();
                    return (Recorded::Duplicate, None);
                }
                Claim::Unchecked(_) => {
                    click.set_flag(ClickFlag::DedupUnchecked);
                    if counts_velocity {
                        click.set_flag(ClickFlag::VelocityUnchecked);
                    }
                    adclick_invalid::Velocity::default()
                }
                Claim::New(velocity) => velocity,
            };
            let activity = ActivityFacts {
                token_issued_at_secs: click.token_issued_at_secs,
                received_at_ms: click.receive_time_ms,
                velocity,
            };
            let reason = state.traffic.activity_reason(&activity);
            if let Some(reason) = reason {
                click.invalid_reason = i32::from(reason.code());
            }
            (claimed, reason)
        }
    };
    if let Some(reason) = reason {
        Metrics::count(&state.metrics.invalid_traffic, reason.as_str());
    }
    (produce(&state, &mut click, claimed).await, reason)
}

/// Makes `click` durable: Kafka within the bound, else the spill. A click neither takes gives its
/// impression back when it had claimed it (`claimed`), so that a retry counts. Takes the click
/// and the claim's outcome by reference and as a flag, not by value: arguments a future owns are
/// stored in it beside their moves, and the recording task's size is what the allocator sees
/// (BENCHMARKS.md, "futures under 1 KiB").
async fn produce(state: &AppState, click: &mut Click, claimed: bool) -> Recorded {
    let key = state.producer.key(click);
    match make_durable(&state.producer, &state.spill, &key, click).await {
        Ok(path) => {
            state.metrics.accepted(path);
            Recorded::Durable(path)
        }
        // Boxed, as the spill below: a cold path's future would otherwise make every click's
        // recording task larger (BENCHMARKS.md, "futures under 1 KiB").
        Err(error) => Box::pin(lost(state, click, claimed, &error)).await,
    }
}

/// Kafka's acknowledgement within the bound, else an fsynced spill record (flagged
/// `ClickFlag::Replayed`). Straight to the spill, without a produce attempt, while the broker is
/// marked down, and whenever the spill holds a record of the click's impression that the replay
/// has not handed to librdkafka yet: the click must reach Kafka behind it (`crate::spill`, "the
/// order of an impression's records"). Kafka is tried whatever the broker's state when the spill
/// cannot take the click, as the broker may be back before the replay task noticed.
pub async fn make_durable(
    producer: &Producer,
    spill: &Spill,
    key: &str,
    click: &mut Click,
) -> Result<DurablePath, SpillError> {
    let behind_the_spill = spill.holds(impression_key(&click.impression_id));
    let try_kafka = (producer.broker_up() && !behind_the_spill) || !spill.can_accept();
    if try_kafka
        && producer
            .produce_within_bound(key, &click.encode_to_vec())
            .await
            .is_ok()
    {
        return Ok(DurablePath::Kafka);
    }
    click.set_flag(ClickFlag::Replayed);
    // Boxed: the spill's future (its group commit's wait) is a third of the recording task's
    // size, for a path a click takes only when Kafka did not answer in time.
    Box::pin(spill.append(key.as_bytes(), &click.encode_to_vec()))
        .await
        .map(|()| DurablePath::Spill)
}

/// Neither Kafka nor the spill took `click`, whose impression was `claimed` (a new claim).
async fn lost(state: &AppState, click: &Click, claimed: bool, error: &SpillError) -> Recorded {
    Metrics::count(&state.metrics.lost, error.reason());
    tracing::error!(%error, ad_id = click.ad_id, "click lost: Kafka did not acknowledge it and the spill refused it");
    if claimed {
        // Let a retry of this impression count instead of being taken for a duplicate.
        state.dedup.release(&click.impression_id).await;
    }
    Recorded::Lost
}

#[cfg(test)]
mod tests;
