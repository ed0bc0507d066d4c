//! Limits on what one request or one client may cost, applied before the click path runs.
//!
//! | limit | where | answer |
//! |---|---|---|
//! | request head size (`max_header_bytes`) | hyper, in `server` | 431 from hyper, connection closed |
//! | header fields in one head (100, hyper's default) | hyper, in `server` | 431 from hyper, connection closed |
//! | time to send the head, idle keep-alive (`header_timeout_ms`) | hyper, in `server` | connection closed |
//! | open connections (`max_connections`) | `server`'s accept loop | waits to accept |
//! | a body on a click | [`Limits::check`] | 413 |
//! | requests per second per client IP (`rate_limit_per_ip`, off by default) | [`Limits::check`] | 429 |
//! | time for one click (`request_timeout_ms`) | [`crate::handler::App`] | 503; the click is still recorded |
//!
//! The per-IP limit keys on the client's address as the invalid-traffic rules resolve it
//! (`traffic.rs`): the TCP peer, or, when the peer is one of `trusted_proxies`, the address those
//! proxies wrote in `client_ip_header`. Behind a proxy that is not listed, every client shares its
//! address: list it, or leave the limit off (the default) and limit at the proxy.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use adclick_invalid::{IpNet, ProxyHeader};
use axum::http::header;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::reject::Rejection;

/// The request-level limits.
#[derive(Clone)]
pub struct Limits {
    rate: Option<Arc<DefaultKeyedRateLimiter<IpAddr>>>,
    request_timeout: Duration,
    /// Whose client-address header is believed, and which header.
    trusted_proxies: Arc<[IpNet]>,
    header: ProxyHeader,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits")
            .field("rate_limited", &self.rate.is_some())
            .field("request_timeout", &self.request_timeout)
            .finish_non_exhaustive()
    }
}

impl Limits {
    /// `per_ip` requests per second with `burst` (0 = no per-IP limit).
    pub fn new(per_ip: u32, burst: u32, request_timeout: Duration) -> Limits {
        let rate = NonZeroU32::new(per_ip).map(|rate| {
            let burst = NonZeroU32::new(burst).unwrap_or(rate);
            Arc::new(RateLimiter::keyed(
                Quota::per_second(rate).allow_burst(burst),
            ))
        });
        Limits {
            rate,
            request_timeout,
            trusted_proxies: Arc::new([]),
            header: ProxyHeader::default(),
        }
    }

    /// The same limits, keying clients behind `trusted_proxies` on the address they wrote in
    /// `header` (`[ingest] trusted_proxies`, `client_ip_header`).
    pub fn behind(mut self, trusted_proxies: Vec<IpNet>, header: ProxyHeader) -> Limits {
        self.trusted_proxies = trusted_proxies.into();
        self.header = header;
        self
    }

    /// Forgets clients that are back at full allowance, so the table does not grow without bound.
    /// Runs until the runtime stops; only started when a limit is on.
    pub fn spawn_housekeeping(&self) {
        if let Some(rate) = &self.rate {
            let rate = Arc::downgrade(rate);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(10));
                loop {
                    tick.tick().await;
                    let Some(rate) = rate.upgrade() else { return };
                    rate.retain_recent();
                    rate.shrink_to_fit();
                }
            });
        }
    }

    /// How long one request may take (`request_timeout_ms`): past it, a 503
    /// ([`Rejection::Timeout`]), and the click is still recorded.
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// Refuses a request with a body, and one from a client over its rate (`peer` is the TCP
    /// peer; the client behind trusted proxies is found from it).
    pub fn check(
        &self,
        peer: Option<SocketAddr>,
        headers: &header::HeaderMap,
    ) -> Result<(), Rejection> {
        let has_body = headers.contains_key(header::TRANSFER_ENCODING)
            || headers
                .get(header::CONTENT_LENGTH)
                .is_some_and(|v| v.as_bytes() != b"0");
        if has_body {
            return Err(Rejection::BodyNotAllowed);
        }
        self.admit(peer, headers)
    }

    fn admit(
        &self,
        peer: Option<SocketAddr>,
        headers: &header::HeaderMap,
    ) -> Result<(), Rejection> {
        let (Some(rate), Some(peer)) = (&self.rate, peer) else {
            return Ok(());
        };
        let lines = headers.get_all(self.header.name());
        let client =
            adclick_invalid::client_ip(peer.ip(), self.header, lines, &self.trusted_proxies);
        match rate.check_key(&client) {
            Ok(()) => Ok(()),
            Err(_) => Err(Rejection::RateLimited),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_limit_is_per_ip_and_off_by_default() {
        let off = Limits::new(0, 0, Duration::from_secs(1));
        let a: SocketAddr = "10.0.0.1:5".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:5".parse().unwrap();
        let none = header::HeaderMap::new();
        for _ in 0..1000 {
            off.admit(Some(a), &none).unwrap();
        }
        let on = Limits::new(1, 3, Duration::from_secs(1));
        for _ in 0..3 {
            on.admit(Some(a), &none).unwrap();
        }
        assert!(matches!(
            on.admit(Some(a), &none),
            Err(Rejection::RateLimited)
        ));
        // Another port of the same IP is the same client; another IP is not.
        assert!(
            on.admit(Some("10.0.0.1:6".parse().unwrap()), &none)
                .is_err()
        );
        on.admit(Some(b), &none).unwrap();
    }

    #[test]
    fn behind_a_trusted_proxy_the_limit_keys_on_the_client_it_names() {
        let limits = Limits::new(1, 1, Duration::from_secs(1)).behind(
            vec!["10.9.0.0/16".parse().unwrap()],
            ProxyHeader::XForwardedFor,
        );
        let proxy: SocketAddr = "10.9.0.1:5".parse().unwrap();
        let from = |client: &str| {
            let mut h = header::HeaderMap::new();
            h.insert("x-forwarded-for", client.parse().unwrap());
            h
        };
        limits.admit(Some(proxy), &from("198.51.100.1")).unwrap();
        // The proxy's next client is another client...
        limits.admit(Some(proxy), &from("198.51.100.2")).unwrap();
        // ...and the first one again is over its limit.
        assert!(limits.admit(Some(proxy), &from("198.51.100.1")).is_err());
        // A client that is not a trusted proxy cannot move itself with the header.
        let direct: SocketAddr = "192.0.2.7:5".parse().unwrap();
        limits.admit(Some(direct), &from("198.51.100.3")).unwrap();
        assert!(limits.admit(Some(direct), &from("198.51.100.4")).is_err());
    }
}
