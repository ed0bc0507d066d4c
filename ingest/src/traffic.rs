//! Invalid traffic at ingest: the facts of one request for the `adclick-invalid` classifier, the
//! client's address through trusted proxies and its keyed hash, the rules (whose deny list is
//! reloaded when its file changes), and what an invalid click is answered.
//!
//! # The order of a click (handler.rs)
//!
//! 1. After the token verified: [`Traffic::request_reason`] — `prefetch`, `bot_user_agent`,
//!    `deny_listed_network`, decided from the request alone. Such a click claims nothing in Redis
//!    and counts towards no velocity, so the person's real click on the same impression still
//!    counts; it is produced with its reason (click.proto's dedup identity keeps it apart).
//! 2. Otherwise the claim and the velocity counters in one Redis script (`dedup.rs`,
//!    `velocity.rs`), then [`adclick_invalid::classify_activity`] on the counts: `too_fast`,
//!    `user_velocity`, `ip_velocity`. The record carries the verdict either way.
//!
//! # The answers
//!
//! - `prefetch`: `503 Service Unavailable` with `Cache-Control: no-store` and no `Location`. A
//!   browser keeps no non-2xx answer to a prefetch (WICG speculative loading), so the person's
//!   navigation reaches ingest again and is counted; a stored `302` or `204` would swallow it. 503
//!   is what servers commonly answer a refused prefetch (draft-nottingham-httpbis-pre-denied).
//! - every other reason: the redirect, as for a valid click (a person misjudged still reaches the
//!   advertiser), unless `[ingest] not_redirected` lists the reason: then `403` with a short page.
//!
//! # The client's address and what is kept of it
//!
//! The socket's peer, or the address a trusted proxy wrote (`[ingest] trusted_proxies`,
//! `client_ip_header`; `adclick_invalid::client_ip`). It is used in memory for the deny list and
//! never written anywhere: the record, the Redis keys and the logs carry only `ip_hash`, the first
//! 8 bytes of HMAC-SHA256(`ip_hash_key`, IP key) (click.proto), where the IP key is an IPv4
//! address's 4 bytes or an IPv6 address's /64 prefix (8 bytes), so that one IPv6 host cycling its
//! addresses is one key. Without `ip_hash_key` each process draws a random key: `ip_velocity`
//! then counts per ingest process (and restarts its counts when it restarts), and the rollup,
//! counting by the same hashes, agrees.

use std::net::IpAddr;
use std::sync::{Arc, RwLock};

use adclick_invalid::{ActivityFacts, IpNet, ProxyHeader, Reason, RequestFacts, Rules, ip_key};
use axum::http::{HeaderMap, Method, header};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::reject::Rejection;
use crate::velocity::{self, Counter};

/// What ingest needs to classify requests; cheap to clone (shared parts behind `Arc`s).
#[derive(Clone)]
pub struct Traffic {
    rules: Arc<RwLock<Rules>>,
    trusted_proxies: Arc<[IpNet]>,
    header: ProxyHeader,
    ip_hasher: Hmac<Sha256>,
    not_redirected: Arc<[Reason]>,
    velocity_key_prefix: Arc<str>,
}

impl std::fmt::Debug for Traffic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Traffic")
            .field("trusted_proxies", &self.trusted_proxies)
            .field("header", &self.header)
            .field("not_redirected", &self.not_redirected)
            .finish_non_exhaustive()
    }
}

/// The request facts of one click and the address they were resolved to.
#[derive(Debug, Clone, Copy)]
pub struct Client {
    /// The client's address; `None` when the request came without a peer address (only tests
    /// calling the service directly): no deny list, no IP velocity.
    pub ip: Option<IpAddr>,
    /// click.proto's `ip_hash` of `ip` (0 when unknown).
    pub ip_hash: u64,
}

impl Traffic {
    /// `ip_hash_key`: the HMAC key of `ip_hash` (any length; `None` draws a random one).
    pub fn new(
        rules: Rules,
        trusted_proxies: Vec<IpNet>,
        header: ProxyHeader,
        ip_hash_key: Option<&[u8]>,
        not_redirected: Vec<Reason>,
        velocity_key_prefix: &str,
    ) -> Traffic {
        let random;
        let key = match ip_hash_key {
            Some(key) => key,
            None => {
                random = rand::random::<[u8; 32]>();
                &random
            }
        };
        Traffic {
            rules: Arc::new(RwLock::new(rules)),
            trusted_proxies: trusted_proxies.into(),
            header,
            ip_hasher: Hmac::new_from_slice(key).expect("HMAC takes keys of any length"),
            not_redirected: not_redirected.into(),
            velocity_key_prefix: velocity_key_prefix.into(),
        }
    }

    /// The velocity counters a new click of `user_hash` from `ip_hash` increments (`velocity.rs`).
    pub fn counters(&self, user_hash: u64, ip_hash: u64, receive_time_ms: i64) -> Vec<Counter> {
        let windows = self.rules.read().expect("not poisoned").velocity_windows();
        velocity::counters(
            &self.velocity_key_prefix,
            windows,
            user_hash,
            ip_hash,
            receive_time_ms,
        )
    }

    /// The activity reason of a click (`too_fast`, `user_velocity`, `ip_velocity`), or `None`.
    pub fn activity_reason(&self, activity: &ActivityFacts) -> Option<Reason> {
        adclick_invalid::classify_activity(activity, &self.rules.read().expect("not poisoned"))
    }

    /// The rules now in force (a clone: cheap, the compiled parts are shared).
    pub fn rules(&self) -> Rules {
        self.rules.read().expect("not poisoned").clone()
    }

    /// Puts `rules` in force (a reloaded deny list).
    pub fn replace_rules(&self, rules: Rules) {
        *self.rules.write().expect("not poisoned") = rules;
    }

    /// Who sent the request: the socket's `peer` resolved through the trusted proxies' header.
    pub fn client(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Client {
        let ip = peer.map(|peer| {
            let lines = headers.get_all(self.header.name());
            adclick_invalid::client_ip(peer, self.header, lines, &self.trusted_proxies)
        });
        Client {
            ip,
            ip_hash: ip.map_or(0, |ip| self.ip_hash(ip)),
        }
    }

    /// click.proto's `ip_hash` of `ip` (never 0: 0 is "unknown").
    pub fn ip_hash(&self, ip: IpAddr) -> u64 {
        let mut mac = self.ip_hasher.clone();
        match ip_key(ip) {
            IpNet::V4(net) => mac.update(&net.addr().octets()),
            IpNet::V6(net) => mac.update(&net.addr().octets()[..8]),
        }
        let digest = mac.finalize().into_bytes();
        let hash = u64::from_be_bytes(digest[..8].try_into().expect("32-byte digest"));
        hash.max(1)
    }

    /// The request reason of a click (`prefetch`, `bot_user_agent`, `deny_listed_network`), or
    /// `None`. A client whose address is unknown is on no deny list.
    pub fn request_reason(
        &self,
        method: &Method,
        headers: &HeaderMap,
        client: &Client,
    ) -> Option<Reason> {
        let first = |name: header::HeaderName| {
            headers
                .get(name)
                .and_then(|value| value.to_str().ok())
                .filter(|value| !value.is_empty())
        };
        let purpose = |name: &'static str| headers.get(name).and_then(|v| v.to_str().ok());
        let facts = RequestFacts {
            user_agent: first(header::USER_AGENT),
            head: method == Method::HEAD,
            sec_purpose: purpose("sec-purpose"),
            purpose: purpose("purpose"),
            x_purpose: purpose("x-purpose"),
            x_moz: purpose("x-moz"),
            // The unspecified address is in no deny list anyone writes.
            client_ip: client.ip.unwrap_or(IpAddr::from([0, 0, 0, 0])),
        };
        let rules = self.rules.read().expect("not poisoned");
        let reason = adclick_invalid::classify_request(&facts, &rules)?;
        if reason == Reason::DenyListedNetwork && client.ip.is_none() {
            return None;
        }
        Some(reason)
    }

    /// Whether a click invalid for `reason` is still redirected (module doc).
    pub fn redirects(&self, reason: Reason) -> bool {
        reason != Reason::Prefetch && !self.not_redirected.contains(&reason)
    }
}

/// Reloads the deny list from `path` whenever its modification time or length changes, looking
/// every `interval`, until aborted. A file that cannot be read or parsed keeps the list in force
/// (logged): a half-written file must not empty the list.
pub fn watch_deny_list(
    traffic: Traffic,
    path: std::path::PathBuf,
    interval: std::time::Duration,
) -> tokio::task::JoinHandle<()> {
    // The file's modification time and length. A `stat` can block (a network file system), so it
    // runs on the blocking pool, not on a worker that serves clicks; a stat that failed reads as
    // no file.
    let stamp = |path: std::path::PathBuf| async move {
        tokio::task::spawn_blocking(move || {
            std::fs::metadata(path)
                .ok()
                .map(|m| (m.modified().ok(), m.len()))
        })
        .await
        .ok()
        .flatten()
    };
    tokio::spawn(async move {
        let mut seen = stamp(path.clone()).await;
        loop {
            tokio::time::sleep(interval).await;
            let now = stamp(path.clone()).await;
            if now == seen {
                continue;
            }
            seen = now;
            let loaded = {
                let path = path.clone();
                tokio::task::spawn_blocking(move || adclick_invalid::DenyList::load(&path)).await
            };
            match loaded {
                Ok(Ok(list)) => {
                    tracing::info!(path = %path.display(), entries = list.entries(), "deny list reloaded");
                    traffic.replace_rules(traffic.rules().with_deny_list(list));
                }
                Ok(Err(error)) => {
                    tracing::warn!(%error, "deny list not reloaded; the previous one stays in force");
                }
                Err(error) => tracing::warn!(%error, "deny list reload task failed"),
            }
        }
    })
}

/// The answer to a click invalid for `reason` that is not redirected: a refused prefetch (503) or
/// a reason the operator chose not to redirect (403); `reject.rs` writes both pages.
pub fn refusal(reason: Reason) -> Rejection {
    if reason == Reason::Prefetch {
        Rejection::Prefetch
    } else {
        Rejection::NotRedirected
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use adclick_invalid::Config;

    const CHROME: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

    fn traffic(deny: &[&str], not_redirected: Vec<Reason>) -> Traffic {
        let rules = Rules::new(
            &Config::default(),
            adclick_invalid::DenyList::from_nets(deny.iter().map(|n| n.parse().unwrap())),
        )
        .unwrap();
        Traffic::new(
            rules,
            vec!["127.0.0.1/32".parse().unwrap()],
            ProxyHeader::XForwardedFor,
            Some(b"test key"),
            not_redirected,
            "v:",
        )
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(*name, value.parse().unwrap());
        }
        h
    }

    #[test]
    fn the_client_is_the_proxys_entry_only_behind_a_trusted_proxy() {
        let t = traffic(&[], vec![]);
        let h = headers(&[("x-forwarded-for", "198.51.100.7")]);
        let proxied = t.client(Some("127.0.0.1".parse().unwrap()), &h);
        assert_eq!(proxied.ip, Some("198.51.100.7".parse().unwrap()));
        let direct = t.client(Some("192.0.2.1".parse().unwrap()), &h);
        assert_eq!(direct.ip, Some("192.0.2.1".parse().unwrap()));
        assert_ne!(proxied.ip_hash, direct.ip_hash);
        assert_eq!(t.client(None, &h).ip_hash, 0);
    }

    #[test]
    fn ip_hashes_are_keyed_and_an_ipv6_64_is_one_key() {
        let t = traffic(&[], vec![]);
        let a = t.ip_hash("2001:db8:1:2::1".parse().unwrap());
        assert_eq!(a, t.ip_hash("2001:db8:1:2:ffff::9".parse().unwrap()));
        assert_ne!(a, t.ip_hash("2001:db8:1:3::1".parse().unwrap()));
        let v4 = t.ip_hash("192.0.2.1".parse().unwrap());
        assert_eq!(v4, t.ip_hash("::ffff:192.0.2.1".parse().unwrap()));
        // Another key, other hashes: the raw address cannot be looked up from a hash table.
        let other = Traffic::new(
            t.rules(),
            vec![],
            ProxyHeader::XForwardedFor,
            Some(b"other key"),
            vec![],
            "v:",
        );
        assert_ne!(v4, other.ip_hash("192.0.2.1".parse().unwrap()));
        // The worked value: HMAC-SHA256("test key", C0 00 02 01), first 8 bytes.
        let mut mac = Hmac::<Sha256>::new_from_slice(b"test key").unwrap();
        mac.update(&[192, 0, 2, 1]);
        let digest = mac.finalize().into_bytes();
        assert_eq!(v4, u64::from_be_bytes(digest[..8].try_into().unwrap()));
    }

    #[test]
    fn request_reasons() {
        let t = traffic(&["203.0.113.0/24"], vec![]);
        let proxy = Some("127.0.0.1".parse().unwrap());
        let reason = |method: Method, pairs: &[(&'static str, &str)]| {
            let h = headers(pairs);
            t.request_reason(&method, &h, &t.client(proxy, &h))
        };
        assert_eq!(reason(Method::GET, &[("user-agent", CHROME)]), None);
        assert_eq!(reason(Method::GET, &[]), Some(Reason::BotUserAgent));
        assert_eq!(
            reason(Method::GET, &[("user-agent", "")]),
            Some(Reason::BotUserAgent)
        );
        assert_eq!(
            reason(Method::GET, &[("user-agent", "Googlebot/2.1")]),
            Some(Reason::BotUserAgent)
        );
        assert_eq!(
            reason(
                Method::GET,
                &[("user-agent", CHROME), ("sec-purpose", "prefetch")]
            ),
            Some(Reason::Prefetch)
        );
        assert_eq!(
            reason(Method::HEAD, &[("user-agent", CHROME)]),
            Some(Reason::Prefetch)
        );
        assert_eq!(
            reason(
                Method::GET,
                &[("user-agent", CHROME), ("x-forwarded-for", "203.0.113.9")]
            ),
            Some(Reason::DenyListedNetwork)
        );
        // A client cannot put itself on (or off) the list through the header: not trusted.
        let h = headers(&[("user-agent", CHROME), ("x-forwarded-for", "203.0.113.9")]);
        let direct = t.client(Some("192.0.2.1".parse().unwrap()), &h);
        assert_eq!(t.request_reason(&Method::GET, &h, &direct), None);
    }

    #[test]
    fn prefetches_are_refused_uncacheable_others_redirected_unless_configured() {
        let t = traffic(&[], vec![Reason::BotUserAgent]);
        assert!(!t.redirects(Reason::Prefetch));
        assert!(!t.redirects(Reason::BotUserAgent));
        assert!(t.redirects(Reason::TooFast));
        assert!(matches!(refusal(Reason::Prefetch), Rejection::Prefetch));
        assert!(matches!(
            refusal(Reason::BotUserAgent),
            Rejection::NotRedirected
        ));
    }
}
