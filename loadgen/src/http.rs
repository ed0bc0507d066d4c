//! The HTTP target: each send is `GET {base}/click/{token}?t={event_time_ms}` against ingest,
//! over a pool of keep-alive connections; a genuine click must answer 302 to its landing URL,
//! a forged or expired one a 4xx.
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
//!   send, or none at all for the bot that sends none (reqwest adds none of its own);
//! - `X-Forwarded-For: <client address>`: the send's address (`client`), which ingest believes
//!   because loadgen connects from a trusted proxy (`[ingest] trusted_proxies`, 127.0.0.1 in the
//!   local stack). Without that, every click comes from loadgen's own address, and more than
//!   10 a second are `ip_velocity`;
//! - for a prefetch, its signal (`invalid::PrefetchSignal`): `Sec-Purpose: prefetch`,
//!   `Purpose: prefetch` or `X-Moz: prefetch` on a `GET`, or the `HEAD` method. Ingest must answer
//!   it 503 (not a redirect: the prefetch does not claim the impression).

use std::time::Duration;

use adclick_admin::ErrorChain;
use reqwest::header::{LOCATION, USER_AGENT};
use reqwest::{Method, StatusCode};

use crate::plan::{Send, SendKind};
use crate::tokens::TokenMinter;
use crate::truth::Outcome;

/// How long an idle pooled connection is kept for reuse: below ingest's keep-alive (its
/// `header_timeout_ms`, 10 s by default: hyper closes a connection that has not sent the next
/// request head by then). With reqwest's default, 90 s, a request can go out on a connection
/// ingest is closing at that moment and fail ("error sending request") — as it does for a load
/// balancer whose idle timeout is longer than its backend's.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(5);

/// Where and how to send over HTTP.
#[derive(Debug, Clone)]
pub struct HttpTarget {
    client: reqwest::Client,
    base: String,
    minter: TokenMinter,
}

impl HttpTarget {
    /// `base` is ingest's public URL, e.g. `http://127.0.0.1:8080`.
    pub fn new(
        base: &str,
        minter: TokenMinter,
        timeout: Duration,
        connections: usize,
    ) -> reqwest::Result<HttpTarget> {
        let client = reqwest::Client::builder()
            // The 302 is the answer under test: never follow it.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .pool_max_idle_per_host(connections)
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .tcp_nodelay(true)
            .build()?;
        Ok(HttpTarget {
            client,
            base: base.trim_end_matches('/').to_string(),
            minter,
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
        let url = match self.click_url(send) {
            Ok(url) => url,
            Err(e) => return Outcome::Wrong(e),
        };
        let started = std::time::Instant::now();
        let resp = match self.request(send, &url).send().await {
            Ok(r) => r,
            Err(e) => return Outcome::Failed(describe(&e, started.elapsed())),
        };
        let status = resp.status();
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
            let location = resp
                .headers()
                .get(LOCATION)
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
    fn request(&self, send: &Send, url: &str) -> reqwest::RequestBuilder {
        let mut method = Method::GET;
        let mut prefetch_header = None;
        if let SendKind::Prefetch(signal) = send.kind {
            match signal.header() {
                Some(header) => prefetch_header = Some(header),
                None => method = Method::HEAD,
            }
        }
        let mut request = self
            .client
            .request(method, url)
            .header("x-forwarded-for", send.client_ip.to_string());
        if let Some(agent) = send.user_agent.header() {
            request = request.header(USER_AGENT, agent);
        }
        if let Some((name, value)) = prefetch_header {
            request = request.header(name, value);
        }
        request
    }
}

/// A failed request as whoever reads the run's errors needs it: reqwest's own message names only
/// the URL ("error sending request for url ..."); its sources say whether it timed out, was
/// refused or was reset, and how long it took tells a stall from a refusal.
fn describe(error: &reqwest::Error, took: Duration) -> String {
    format!("{} (after {} ms)", ErrorChain(error), took.as_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failed_request_says_why_and_after_how_long() {
        // A port nobody listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let error = reqwest::get(format!("http://127.0.0.1:{port}/click/x"))
            .await
            .expect_err("nothing listens");
        let text = describe(&error, Duration::from_millis(3));
        assert!(text.starts_with("error sending request for url"), "{text}");
        assert!(text.contains("refused"), "{text}");
        assert!(text.ends_with("(after 3 ms)"), "{text}");
    }
}
