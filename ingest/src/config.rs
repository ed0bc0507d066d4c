//! The `[ingest]` section of adclick's configuration file, with its defaults, and its checked form.
//!
//! `deploy/adclick.example.toml` documents every key; the defaults suit the local stack.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use adclick_tls::ClientTls;
use secrecy::SecretString;
use serde::Deserialize;

use crate::Error;

/// What to do with a valid, new click that can be made durable neither in Kafka nor in the spill
/// (the broker is down or slow AND the spill is full or broken). See the crate README.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpillFullPolicy {
    /// Redirect the user anyway and count the click as lost (`adclick_ingest_clicks_lost_total`).
    Redirect,
    /// Answer 503 with a page that names no link: the user does not reach the advertiser.
    Reject,
}

/// `[ingest]` as written in the file. Every key has a default.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestConfig {
    /// Public click listener.
    pub listen: SocketAddr,
    /// Admin listener: `/metrics`, `/healthz`, `/readyz`.
    pub admin_listen: SocketAddr,
    /// The Redis server holding the dedup keys: `redis://host:port` or `rediss://host:port`
    /// (TLS). Not used when `redis_cluster_nodes` is set.
    pub redis_url: RedisUrl,
    /// Some nodes of a Redis Cluster holding the dedup keys (the rest are discovered).
    pub redis_cluster_nodes: Vec<RedisUrl>,
    /// ACL user (Redis 6+); empty: the URL's user, else `default`.
    pub redis_username: String,
    /// Password of `redis_username` (or of `requirepass`); replaces one in the URL. `Debug`
    /// never shows it.
    pub redis_password: Option<SecretString>,
    /// `[ingest.redis_tls]`: for `rediss://`, a private CA (which then replaces the system roots)
    /// and a client certificate for mutual TLS.
    pub redis_tls: ClientTls,
    /// Prefix of the dedup keys (`{prefix}{impression id hex}`).
    pub redis_key_prefix: String,
    /// Lifetime of a dedup key, seconds.
    pub dedup_ttl_secs: u64,
    /// How long Redis has to answer a round of claims before its clicks fail open, ms (from the
    /// round's send; `dedup.rs`, "Redis's time, not ingest's").
    pub dedup_timeout_ms: u64,
    /// How long a click waits for Kafka's acknowledgement before going to the spill, ms (of Kafka's
    /// time: `bound.rs`).
    pub produce_timeout_ms: u64,
    /// Ad id → number of salted keys (`ad:0..N`) its clicks spread over.
    pub hot_ads: BTreeMap<String, u32>,
    /// Folder of the spill log.
    pub spill_dir: PathBuf,
    /// Most bytes the spill holds on disk.
    pub spill_max_bytes: u64,
    /// Size at which a spill segment is sealed and a new one started.
    pub spill_segment_bytes: u64,
    pub spill_full: SpillFullPolicy,
    /// How often the replay task looks at the spill, ms.
    pub replay_interval_ms: u64,
    /// Client-reported click times (`?t=`) older than this are ignored, seconds.
    pub client_time_max_age_secs: u64,
    /// Client-reported click times more than this ahead of ingest's clock are ignored, ms.
    pub client_time_max_future_ms: u64,
    /// Largest request head (request line and headers) accepted, bytes (at least 8192).
    pub max_header_bytes: usize,
    /// Time allowed to send a request head, ms; also how long an idle keep-alive connection lives.
    pub header_timeout_ms: u64,
    /// Time allowed for one click from request to answer, ms.
    pub request_timeout_ms: u64,
    pub max_connections: usize,
    /// Requests per second per client IP; 0 turns the limit off.
    pub rate_limit_per_ip: u32,
    /// Burst above the per-IP rate.
    pub rate_limit_burst: u32,
    /// Time allowed to drain in-flight clicks and flush the producer on shutdown, ms.
    pub shutdown_timeout_ms: u64,
    /// Proxies whose client-address header is believed (CIDRs); empty: the socket's peer is the
    /// client (`traffic.rs`).
    pub trusted_proxies: Vec<adclick_invalid::IpNet>,
    /// The header the trusted proxies write: `x-forwarded-for` or `forwarded` (RFC 7239).
    pub client_ip_header: adclick_invalid::ProxyHeader,
    /// HMAC key of click.proto's `ip_hash`, hex (at least 16 bytes); `None`: random per process.
    pub ip_hash_key: Option<SecretString>,
    /// Velocity counters are `{velocity_key_prefix}u:…` and `…i:…` (`velocity.rs`).
    pub velocity_key_prefix: String,
    /// Invalid-traffic reasons whose clicks get a 403 instead of the redirect (prefetches never
    /// get the redirect).
    pub not_redirected: Vec<adclick_invalid::Reason>,
    /// How often the `[invalid] deny_list_file` is looked at for changes, ms.
    pub deny_list_reload_ms: u64,
    /// The first-party visitor cookie that gives clicks without a token user hash one
    /// (`visitor.rs`): its name, lifetime in seconds, and whether it is `Secure`.
    pub user_cookie_name: String,
    pub user_cookie_max_age_secs: u64,
    pub user_cookie_secure: bool,
    /// click.proto's salt of `user_hash` for visitor ids, hex (at least 16 bytes); `None`: random
    /// per process.
    pub user_hash_salt: Option<SecretString>,
    /// `/readyz` answers 503 while most of the last `overload_window_ms`'s probes waited longer
    /// than this before ingest ran them, as clicks wait before it works on them
    /// (`overload.rs`); 0: never.
    pub overload_delay_ms: u64,
    pub overload_window_ms: u64,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 9101)),
            redis_url: "redis://127.0.0.1:6379".into(),
            redis_cluster_nodes: vec![],
            redis_username: String::new(),
            redis_password: None,
            redis_tls: ClientTls::default(),
            redis_key_prefix: "adclick:imp:".into(),
            dedup_ttl_secs: 86_400,
            dedup_timeout_ms: 20,
            produce_timeout_ms: 50,
            hot_ads: BTreeMap::new(),
            spill_dir: PathBuf::from(".local/ingest-spill"),
            spill_max_bytes: 1 << 30,
            spill_segment_bytes: 16 << 20,
            spill_full: SpillFullPolicy::Redirect,
            replay_interval_ms: 1_000,
            client_time_max_age_secs: 900,
            client_time_max_future_ms: 5_000,
            max_header_bytes: 16 * 1024,
            header_timeout_ms: 10_000,
            request_timeout_ms: 5_000,
            max_connections: 10_000,
            rate_limit_per_ip: 0,
            rate_limit_burst: 20,
            shutdown_timeout_ms: 10_000,
            trusted_proxies: vec![],
            client_ip_header: adclick_invalid::ProxyHeader::XForwardedFor,
            ip_hash_key: None,
            velocity_key_prefix: "adclick:vel:".into(),
            not_redirected: vec![],
            deny_list_reload_ms: 5_000,
            user_cookie_name: "adclick_uid".into(),
            user_cookie_max_age_secs: 31_536_000,
            user_cookie_secure: true,
            user_hash_salt: None,
            overload_delay_ms: 100,
            overload_window_ms: 1_000,
        }
    }
}

/// A hex secret of at least 16 bytes, or `None` when not set.
fn secret_hex(secret: Option<&SecretString>, key: &str) -> Result<Option<Vec<u8>>, Error> {
    use secrecy::ExposeSecret as _;
    let Some(secret) = secret else {
        return Ok(None);
    };
    match hex::decode(secret.expose_secret().trim()) {
        Ok(bytes) if bytes.len() >= 16 => Ok(Some(bytes)),
        _ => Err(Error::Config(format!(
            "{key} must be hex, at least 16 bytes (32 hex digits)"
        ))),
    }
}

/// Hyper refuses smaller read buffers.
pub const MIN_HEADER_BYTES: usize = 8192;

impl IngestConfig {
    /// The hot ads as numbers; refuses ids that are not numbers and zero shard counts.
    pub fn hot_ads(&self) -> Result<HashMap<u64, u32>, Error> {
        self.hot_ads
            .iter()
            .map(|(ad, &shards)| match ad.parse::<u64>() {
                Ok(id) if id > 0 && shards > 0 => Ok((id, shards)),
                _ => Err(Error::Config(format!(
                    "hot_ads: `{ad}` = {shards}: the key must be a non-zero ad id and the value at least 1"
                ))),
            })
            .collect()
    }

    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<(), Error> {
        self.hot_ads()?;
        let bad = |what: &str| Err(Error::Config(what.to_string()));
        if self.max_header_bytes < MIN_HEADER_BYTES {
            return bad("max_header_bytes must be at least 8192");
        }
        if self.spill_segment_bytes == 0 || self.spill_segment_bytes > self.spill_max_bytes {
            return bad("spill_segment_bytes must be in 1..=spill_max_bytes");
        }
        if self.max_connections == 0 {
            return bad("max_connections must be at least 1");
        }
        if self.rate_limit_per_ip > 0 && self.rate_limit_burst == 0 {
            return bad("rate_limit_burst must be at least 1 when rate_limit_per_ip is set");
        }
        if self.dedup_timeout_ms == 0
            || self.produce_timeout_ms == 0
            || self.request_timeout_ms == 0
        {
            return bad(
                "dedup_timeout_ms, produce_timeout_ms and request_timeout_ms must be positive",
            );
        }
        if self.deny_list_reload_ms == 0 {
            return bad("deny_list_reload_ms must be positive");
        }
        if self.overload_window_ms < 10 {
            return bad("overload_window_ms must be at least 10 (it is probed ten times)");
        }
        self.ip_hash_key()?;
        self.user_hash_salt()?;
        if !crate::visitor::is_cookie_name(&self.user_cookie_name) {
            return bad("user_cookie_name must be a cookie name (visible ASCII, no separators)");
        }
        Ok(())
    }

    /// When ingest counts as overloaded.
    pub fn overload(&self) -> crate::overload::OverloadRule {
        crate::overload::OverloadRule {
            delay: Duration::from_millis(self.overload_delay_ms),
            window: Duration::from_millis(self.overload_window_ms),
        }
    }

    /// The `user_hash_salt` as bytes; `None` when not set.
    pub fn user_hash_salt(&self) -> Result<Option<Vec<u8>>, Error> {
        secret_hex(self.user_hash_salt.as_ref(), "user_hash_salt")
    }

    /// The `ip_hash_key` as bytes; `None` when not set.
    pub fn ip_hash_key(&self) -> Result<Option<Vec<u8>>, Error> {
        secret_hex(self.ip_hash_key.as_ref(), "ip_hash_key")
    }

    /// Where and how to reach Redis.
    pub fn redis(&self) -> RedisSettings {
        RedisSettings {
            url: self.redis_url.clone(),
            cluster_nodes: self.redis_cluster_nodes.clone(),
            username: self.redis_username.clone(),
            password: self.redis_password.clone(),
            tls: self.redis_tls.clone(),
        }
    }

    pub fn dedup_timeout(&self) -> Duration {
        Duration::from_millis(self.dedup_timeout_ms)
    }
    pub fn produce_timeout(&self) -> Duration {
        Duration::from_millis(self.produce_timeout_ms)
    }
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
    pub fn header_timeout(&self) -> Duration {
        Duration::from_millis(self.header_timeout_ms)
    }
    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_millis(self.shutdown_timeout_ms)
    }
    pub fn replay_interval(&self) -> Duration {
        Duration::from_millis(self.replay_interval_ms.max(10))
    }
}

/// A Redis URL from the configuration; `Debug` hides its password.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct RedisUrl(pub String);

impl RedisUrl {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for RedisUrl {
    fn from(url: &str) -> RedisUrl {
        RedisUrl(url.to_string())
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match url::Url::parse(&self.0) {
            Ok(mut url) if url.password().is_some() => {
                let _ = url.set_password(Some("redacted"));
                fmt::Debug::fmt(url.as_str(), f)
            }
            Ok(_) => fmt::Debug::fmt(&self.0, f),
            Err(_) => f.write_str("<not a URL>"),
        }
    }
}

/// Where and how to reach Redis: the `redis_*` keys of `[ingest]`.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// One server; not used when `cluster_nodes` is set.
    pub url: RedisUrl,
    /// Some nodes of a Redis Cluster (the rest are discovered); empty: one server.
    pub cluster_nodes: Vec<RedisUrl>,
    /// ACL user (Redis 6+); empty: the URL's, else the default user.
    pub username: String,
    /// Password of the user (or `requirepass`); replaces one in the URL.
    pub password: Option<SecretString>,
    /// TLS files for `rediss://` URLs.
    pub tls: ClientTls,
}

impl RedisSettings {
    /// One server at `url`, no login or TLS files beyond the URL's.
    pub fn for_url(url: &str) -> RedisSettings {
        IngestConfig {
            redis_url: url.into(),
            ..IngestConfig::default()
        }
        .redis()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_match_the_stack() {
        let c = IngestConfig::default();
        c.validate().unwrap();
        assert_eq!(c.admin_listen.to_string(), "127.0.0.1:9101");
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
    }

    #[test]
    fn hot_ads_must_be_ids_with_shards() {
        let mut c = IngestConfig::default();
        c.hot_ads.insert("981234".into(), 4);
        assert_eq!(c.hot_ads().unwrap()[&981234], 4);
        c.hot_ads.insert("ad-7".into(), 4);
        assert!(c.validate().is_err());
        let mut c = IngestConfig::default();
        c.hot_ads.insert("5".into(), 0);
        assert!(c.validate().is_err());
    }

    #[test]
    fn small_header_limits_and_segment_sizes_are_refused() {
        let c = IngestConfig {
            max_header_bytes: 100,
            ..IngestConfig::default()
        };
        assert!(c.validate().is_err());
        let c = IngestConfig {
            spill_segment_bytes: 10,
            spill_max_bytes: 5,
            ..IngestConfig::default()
        };
        assert!(c.validate().is_err());
    }
}
