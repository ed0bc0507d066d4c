//! The HTTP target: each send is `GET {base}/click/{token}?t={event_time_ms}` against ingest,
//! over a pool of keep-alive connections; a genuine click must answer 302 to its landing URL,
//! a forged or expired one a 4xx.
//!
//! The client is hyper-util's (the pool reqwest is built on) with `http::Uri`s: reqwest parses
//! every request's URL with the `url` crate, a third of the generator's CPU for these long
//! tokens (BENCHMARKS.md, "The generator's share of CPU 0"), and pinned beside the server under
//! test the generator's CPU is the server's loss. Ingest serves plain HTTP (TLS ends at its load
//! balancer), so the base URL is `http://`.
//!
//! `t` is the client-reported click time that ingest accepts within its bounds (as an app SDK
//! that batches clicks would send it); it is how late clicks reach the stream over HTTP, and what
//! makes the ground truth's minutes exact even when a request crosses a minute boundary.
//!
//! # Headers
//!
//! Every request carries
//!
//! - `User-Agent`: the send's browser (`client::BROWSERS`), a bot's (`client::BOTS`) for a bot
//!   send, or none at all for the bot that sends none (the client adds none of its own);
//! - `X-Forwarded-For: <client address>`: the send's address (`client`), which ingest believes
//!   because loadgen connects from a trusted proxy (`[ingest] trusted_proxies`, 127.0.0.1 in the
//!   local stack). Without that, every click comes from loadgen's own address, and more than
//!   10 a second are `ip_velocity`;
//! - for a prefetch, its signal (`invalid::PrefetchSignal`): `Sec-Purpose: prefetch`,
//!   `Purpose: prefetch` or `X-Moz: prefetch` on a `GET`, or the `HEAD` method. Ingest must answer
//!   it 503 (not a redirect: the prefetch does not claim the impression).

use std::time::Duration;

use adclick_admin::ErrorChain;
use bytes::Bytes;
use http::header::{HeaderValue, LOCATION, USER_AGENT};
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::plan::{Send, SendKind};
use crate::tokens::TokenMinter;
use crate::truth::Outcome;

/// How long an idle pooled connection is kept for reuse: below ingest's keep-alive (its
/// `header_timeout_ms`, 10 s by default: hyper closes a connection that has not sent the next
/// request head by then). With a longer one (reqwest's default is 90 s), a request can go out on
/// a connection ingest is closing at that moment and fail ("connection closed before message
/// completed") — as it does for a load balancer whose idle timeout is longer than its backend's.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(5);

/// A base URL the HTTP target cannot send to.
#[derive(Debug, thiserror::Error)]
#[error("the target's base URL {base:?}: {reason}")]
pub struct InvalidBase {
    base: String,
    reason: String,
}

/// Where and how to send over HTTP.
#[derive(Debug, Clone)]
pub struct HttpTarget {
    client: Client<HttpConnector, Empty<Bytes>>,
    base: String,
    minter: TokenMinter,
    /// A request's whole exchange, connecting included.
    timeout: Duration,
}

impl HttpTarget {
    /// `base` is ingest's public URL, e.g. `http://127.0.0.1:8080`.
    pub fn new(
        base: &str,
        minter: TokenMinter,
        timeout: Duration,
        connections: usize,
    ) -> Result<HttpTarget, InvalidBase> {
        let base = base.trim_end_matches('/').to_string();
        let invalid = |reason: String| InvalidBase {
            base: base.clone(),
            reason,
        };
        let uri: Uri = base.parse().map_err(|e| invalid(format!("{e}")))?;
        if uri.scheme_str() != Some("http") || uri.host().is_none() {
            return Err(invalid(
                "not http://host[:port] (ingest serves plain HTTP; TLS ends at its load balancer)"
                    .into(),
            ));
        }
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(timeout));
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(connections)
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_timer(TokioTimer::new())
            .build(connector);
        Ok(HttpTarget {
            client,
            base,
            minter,
            timeout,
        })
    }

    /// The URL a browser would request for this send.
    pub fn click_url(&self, send: &Send) -> Result<String, String> {
        let token = self
            .minter
            .mint(send)
            .map_err(|e| format!("cannot sign: {e}"))?;
        Ok(format!(
            "{}/click/{token}?t={}",
            self.base, send.event_time_ms
        ))
    }

    pub async fn send(&self, send: &Send) -> Outcome {
        let request = match self.click_url(send).and_then(|url| self.request(send, url)) {
            Ok(request) => request,
            Err(e) => return Outcome::Wrong(e),
        };
        let (status, location) = match self.exchange(request).await {
            Ok(answer) => answer,
            Err(e) => return Outcome::Failed(e),
        };
        if matches!(send.kind, SendKind::Prefetch(_)) {
            return if status == StatusCode::SERVICE_UNAVAILABLE {
                Outcome::Refused(status.as_u16())
            } else {
                Outcome::Wrong(format!(
                    "a prefetch answered {status}, expected 503 (it must not claim the impression)"
                ))
            };
        }
        if status == StatusCode::FOUND {
            let location = location
                .as_ref()
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            if location == send.landing_url() {
                Outcome::Accepted
            } else {
                Outcome::Wrong(format!(
                    "302 to {location:?}, expected {:?}",
                    send.landing_url()
                ))
            }
        } else if status.is_client_error() {
            Outcome::Refused(status.as_u16())
        } else {
            Outcome::Wrong(format!("unexpected status {status}"))
        }
    }

    /// The request of `send` to `url`, with the headers of the module doc.
    fn request(&self, send: &Send, url: String) -> Result<Request<Empty<Bytes>>, String> {
        let mut method = Method::GET;
        let mut prefetch_header = None;
        if let SendKind::Prefetch(signal) = send.kind {
            match signal.header() {
                Some(header) => prefetch_header = Some(header),
                None => method = Method::HEAD,
            }
        }
        let uri = Uri::try_from(url).map_err(|e| format!("not a URL: {e}"))?;
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header("x-forwarded-for", send.client_ip.to_string());
        if let Some(agent) = send.user_agent.header() {
            request = request.header(USER_AGENT, agent);
        }
        if let Some((name, value)) = prefetch_header {
            request = request.header(name, value);
        }
        request
            .body(Empty::new())
            .map_err(|e| format!("cannot make the request: {e}"))
    }

    /// Sends `request` and reads its whole answer (so that its connection goes back to the pool),
    /// within the timeout: the status and the `Location` header, or why there is none.
    async fn exchange(
        &self,
        request: Request<Empty<Bytes>>,
    ) -> Result<(StatusCode, Option<HeaderValue>), String> {
        // What a failure names; formatted only when there is one (the generator's CPU per click
        // is the server's loss when they share a core).
        let (method, uri) = (request.method().clone(), request.uri().clone());
        let started = std::time::Instant::now();
        let failed = |what: String| {
            format!(
                "{method} {uri}: {what} (after {} ms)",
                started.elapsed().as_millis()
            )
        };
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| failed(ErrorChain(&e).to_string()))?;
            let (head, body) = response.into_parts();
            body.collect()
                .await
                .map_err(|e| failed(format!("reading the answer's body: {}", ErrorChain(&e))))?;
            Ok((head.status, head.headers.get(LOCATION).cloned()))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "{method} {uri}: no answer within {} ms",
                    self.timeout.as_millis()
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Plan, PlanConfig};

    fn a_send() -> Send {
        Plan::new(PlanConfig::default())
            .expect("the default plan")
            .next()
            .expect("a send")
    }

    fn target(base: &str, timeout: Duration) -> HttpTarget {
        let key = adclick_click::token::TokenKey::from_hex("k1", &"ab".repeat(32)).unwrap();
        HttpTarget::new(base, TokenMinter::new(key), timeout, 4).unwrap()
    }

    #[tokio::test]
    async fn a_failed_request_says_why_and_after_how_long() {
        // A port nobody listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let target = target(&format!("http://127.0.0.1:{port}"), Duration::from_secs(5));
        let send = a_send();
        let Outcome::Failed(text) = target.send(&send).await else {
            panic!("nothing listens: the send must fail");
        };
        assert!(
            text.starts_with(&format!("GET http://127.0.0.1:{port}/click/")),
            "{text}"
        );
        assert!(text.contains("refused"), "{text}");
        assert!(text.ends_with(" ms)"), "{text}");
    }

    #[tokio::test]
    async fn a_target_that_does_not_answer_fails_at_the_timeout() {
        // Accepts connections (the kernel's backlog) but never reads or answers.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a listener");
        let port = listener.local_addr().unwrap().port();
        let target = target(
            &format!("http://127.0.0.1:{port}"),
            Duration::from_millis(200),
        );
        let Outcome::Failed(text) = target.send(&a_send()).await else {
            panic!("no answer: the send must fail");
        };
        assert!(text.ends_with("no answer within 200 ms"), "{text}");
        drop(listener);
    }

    #[test]
    fn a_base_that_is_not_plain_http_is_refused_with_its_reason() {
        let key = adclick_click::token::TokenKey::from_hex("k1", &"ab".repeat(32)).unwrap();
        for base in ["https://ingest.example", "127.0.0.1:8080", "not a url"] {
            let error = HttpTarget::new(base, TokenMinter::new(key.clone()), Duration::ZERO, 1)
                .expect_err(base)
                .to_string();
            assert!(error.contains(base), "{error}");
        }
    }
}
