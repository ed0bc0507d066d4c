//! Where to send and how: the section a program embeds in its TOML configuration.
//!
//! ```toml
//! url = "http://127.0.0.1:9090/api/v1/write"
//! remote_timeout_ms = 30000
//! bearer_token = "…"                     # or: basic_auth = { username = "…", password = "…" }
//! headers = { "X-Team" = "ads" }         # custom headers; reserved ones are refused
//! tenant_id = "ads"                      # sent as tenant_header (Cortex, Mimir, Thanos Receive)
//! tenant_header = "X-Scope-OrgID"
//! [queue]
//! max_samples_per_send = 2000
//! ```
//!
//! Defaults follow Prometheus' `remote_write` and `queue_config` (`config/config.go`
//! `DefaultRemoteWriteConfig`, `DefaultQueueConfig`), except where a field's comment says why.
//! Every check happens in [`Config::validate`], before anything is sent.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use base64::Engine;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;

/// Headers the client sets itself or that belong to the connection: a custom header may not
/// replace them. The list is Prometheus' own (`config/config.go`, `reservedHeaders`), which
/// includes the four the specification requires. `Authorization` comes from `basic_auth` or
/// `bearer_token` only, as in Prometheus.
pub const RESERVED_HEADERS: &[&str] = &[
    "authorization",
    "host",
    "content-encoding",
    "content-length",
    "content-type",
    "user-agent",
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "www-authenticate",
    "accept-encoding",
    "x-prometheus-remote-write-version",
    "x-prometheus-remote-read-version",
    "x-amz-date",
    "x-amz-security-token",
    "x-amz-content-sha256",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
];

/// The remote_write target.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The receiver's endpoint. Default: the local stack's Prometheus.
    pub url: String,
    /// Time allowed for one HTTP attempt, connection and response included.
    pub remote_timeout_ms: u64,
    pub basic_auth: Option<BasicAuth>,
    /// Sent as `Authorization: Bearer <token>`.
    pub bearer_token: Option<String>,
    /// Extra headers on every request. Reserved headers are refused.
    pub headers: BTreeMap<String, String>,
    /// When set, sent in `tenant_header` (multi-tenant receivers: Cortex, Mimir, Thanos Receive).
    pub tenant_id: Option<String>,
    pub tenant_header: String,
    /// `[… .tls]`: a private CA for an `https://` receiver, a client certificate for mutual TLS.
    pub tls: adclick_tls::ClientTls,
    pub queue: QueueConfig,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            url: "http://127.0.0.1:9090/api/v1/write".to_string(),
            remote_timeout_ms: 30_000,
            basic_auth: None,
            bearer_token: None,
            headers: BTreeMap::new(),
            tenant_id: None,
            tenant_header: "X-Scope-OrgID".to_string(),
            tls: adclick_tls::ClientTls::default(),
            queue: QueueConfig::default(),
        }
    }
}

/// Secrets never reach logs.
impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("url", &self.url)
            .field("remote_timeout_ms", &self.remote_timeout_ms)
            .field("basic_auth", &self.basic_auth)
            .field(
                "bearer_token",
                &self.bearer_token.as_ref().map(|_| "<redacted>"),
            )
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("tenant_id", &self.tenant_id)
            .field("tenant_header", &self.tenant_header)
            .field("tls", &self.tls)
            .field("queue", &self.queue)
            .finish()
    }
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BasicAuth")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Batching, parallelism and retries.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueConfig {
    /// Parallel senders. A series always goes to the same one, so its samples stay in order.
    /// Prometheus reshards between 1 and 50 by measured throughput; this client keeps a fixed
    /// number, 4 by default: enough to overlap a slow request with others on a small host.
    pub shards: usize,
    /// Samples each shard buffers before `push` waits (backpressure). Prometheus: 10000.
    pub capacity: usize,
    /// Samples per request at most. Prometheus: 2000.
    pub max_samples_per_send: usize,
    /// A batch is sent this long after its first sample at the latest. Prometheus: 5 s.
    pub batch_send_deadline_ms: u64,
    /// First retry delay; doubles each retry. Prometheus: 30 ms.
    pub min_backoff_ms: u64,
    /// Longest retry delay. Prometheus: 5 s.
    pub max_backoff_ms: u64,
    /// Retry on 429 Too Many Requests (honouring Retry-After). Prometheus defaults to false;
    /// here true, so that a rate-limited write slows down instead of losing the batch.
    pub retry_on_http_429: bool,
    /// Retries of one request before giving up; unset retries for as long as it takes, as
    /// Prometheus does, so a receiver outage turns into backpressure, not loss.
    pub max_retries: Option<u32>,
    /// Longest wait a Retry-After header can impose; longer values are cut to this.
    pub max_retry_after_ms: u64,
}

impl Default for QueueConfig {
    fn default() -> QueueConfig {
        QueueConfig {
            shards: 4,
            capacity: 10_000,
            max_samples_per_send: 2_000,
            batch_send_deadline_ms: 5_000,
            min_backoff_ms: 30,
            max_backoff_ms: 5_000,
            retry_on_http_429: true,
            max_retries: None,
            max_retry_after_ms: 300_000,
        }
    }
}

impl QueueConfig {
    pub fn batch_send_deadline(&self) -> Duration {
        Duration::from_millis(self.batch_send_deadline_ms)
    }
    pub fn min_backoff(&self) -> Duration {
        Duration::from_millis(self.min_backoff_ms)
    }
    pub fn max_backoff(&self) -> Duration {
        Duration::from_millis(self.max_backoff_ms)
    }
    pub fn max_retry_after(&self) -> Duration {
        Duration::from_millis(self.max_retry_after_ms)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("queue.shards", self.shards as u64),
            ("queue.capacity", self.capacity as u64),
            (
                "queue.max_samples_per_send",
                self.max_samples_per_send as u64,
            ),
            ("queue.batch_send_deadline_ms", self.batch_send_deadline_ms),
            ("queue.min_backoff_ms", self.min_backoff_ms),
        ];
        for (field, value) in positive {
            if value == 0 {
                return Err(ConfigError::Invalid {
                    field,
                    reason: "must be positive".into(),
                });
            }
        }
        if self.max_backoff_ms < self.min_backoff_ms {
            return Err(ConfigError::Invalid {
                field: "queue.max_backoff_ms",
                reason: format!(
                    "{} is less than min_backoff_ms {}",
                    self.max_backoff_ms, self.min_backoff_ms
                ),
            });
        }
        Ok(())
    }
}

/// A configuration refused before anything was sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("url {url:?}: {reason}")]
    Url { url: String, reason: String },
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error(
        "header {name:?} is reserved: the client sets it itself or it belongs to the connection \
         (for Authorization use basic_auth or bearer_token)"
    )]
    ReservedHeader { name: String },
    #[error("header {name:?} is given twice (header names are case-insensitive)")]
    DuplicateHeader { name: String },
    #[error("header name {name:?} is not a valid HTTP header name")]
    InvalidHeaderName { name: String },
    #[error("the value of header {name:?} is not a valid HTTP header value")]
    InvalidHeaderValue { name: String },
    #[error("basic_auth and bearer_token are both set: choose one")]
    ConflictingAuth,
    #[error("the HTTP client cannot be built: {0}")]
    HttpClient(String),
    /// A `[… .tls]` file that cannot be used (the message names it).
    #[error("tls: {0}")]
    Tls(String),
    #[error("the queue must be started within a Tokio runtime")]
    NoRuntime,
}

impl Config {
    /// Config for `url` with every other field at its default.
    pub fn for_url(url: impl Into<String>) -> Config {
        Config {
            url: url.into(),
            ..Config::default()
        }
    }

    pub fn remote_timeout(&self) -> Duration {
        Duration::from_millis(self.remote_timeout_ms)
    }

    /// Every check, so that a bad configuration fails at startup, not at the first send.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.url()?;
        if self.remote_timeout_ms == 0 {
            return Err(ConfigError::Invalid {
                field: "remote_timeout_ms",
                reason: "must be positive".into(),
            });
        }
        self.queue.validate()?;
        self.user_headers()?;
        Ok(())
    }

    /// The URL, parsed: http or https, with a host.
    pub fn url(&self) -> Result<reqwest::Url, ConfigError> {
        let refuse = |reason: String| ConfigError::Url {
            url: self.url.clone(),
            reason,
        };
        let url = reqwest::Url::parse(&self.url).map_err(|e| refuse(e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(refuse(format!(
                "scheme {:?} is not http or https",
                url.scheme()
            )));
        }
        if url.host_str().is_none() {
            return Err(refuse("no host".into()));
        }
        Ok(url)
    }

    /// The headers that come from the configuration: authorization, custom headers, tenant.
    /// The protocol's own headers are added by the sender.
    pub fn user_headers(&self) -> Result<HeaderMap, ConfigError> {
        let mut headers = HeaderMap::new();
        let mut add = |name: &str, value: &str, sensitive: bool| -> Result<(), ConfigError> {
            let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                ConfigError::InvalidHeaderName {
                    name: name.to_string(),
                }
            })?;
            if RESERVED_HEADERS.contains(&header.as_str()) {
                return Err(ConfigError::ReservedHeader {
                    name: name.to_string(),
                });
            }
            add_header(&mut headers, header, value, sensitive)
        };
        for (name, value) in &self.headers {
            add(name, value, false)?;
        }
        if let Some(tenant) = &self.tenant_id {
            add(&self.tenant_header, tenant, false)?;
        }
        let authorization = match (&self.basic_auth, &self.bearer_token) {
            (Some(_), Some(_)) => return Err(ConfigError::ConflictingAuth),
            (Some(basic), None) => {
                let pair = format!("{}:{}", basic.username, basic.password);
                Some(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair)
                ))
            }
            (None, Some(token)) => Some(format!("Bearer {token}")),
            (None, None) => None,
        };
        if let Some(value) = authorization {
            add_header(&mut headers, AUTHORIZATION, &value, true)?;
        }
        Ok(headers)
    }
}

fn add_header(
    headers: &mut HeaderMap,
    name: HeaderName,
    value: &str,
    sensitive: bool,
) -> Result<(), ConfigError> {
    let mut value = HeaderValue::from_str(value).map_err(|_| ConfigError::InvalidHeaderValue {
        name: name.to_string(),
    })?;
    value.set_sensitive(sensitive);
    if headers.insert(name.clone(), value).is_some() {
        return Err(ConfigError::DuplicateHeader {
            name: name.to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, toml::de::Error> {
        toml::from_str(text)
    }

    #[test]
    fn defaults_follow_prometheus_queue_config() {
        let c = parse("").unwrap();
        assert_eq!(c.url, "http://127.0.0.1:9090/api/v1/write");
        assert_eq!(c.remote_timeout(), Duration::from_secs(30));
        assert_eq!(c.queue.max_samples_per_send, 2000);
        assert_eq!(c.queue.capacity, 10_000);
        assert_eq!(c.queue.batch_send_deadline(), Duration::from_secs(5));
        assert_eq!(c.queue.min_backoff(), Duration::from_millis(30));
        assert_eq!(c.queue.max_backoff(), Duration::from_secs(5));
        assert_eq!(c.queue.max_retries, None);
        c.validate().unwrap();
    }

    #[test]
    fn a_full_section_parses() {
        let c = parse(
            r#"
            url = "https://mimir.example/api/v1/push"
            remote_timeout_ms = 1000
            basic_auth = { username = "u", password = "p" }
            headers = { "X-Team" = "ads" }
            tenant_id = "t1"
            [queue]
            shards = 2
            max_retries = 3
            "#,
        )
        .unwrap();
        let h = c.user_headers().unwrap();
        assert_eq!(h["x-team"], "ads");
        assert_eq!(h["x-scope-orgid"], "t1");
        assert_eq!(h["authorization"], "Basic dTpw");
        assert!(h["authorization"].is_sensitive());
        assert_eq!(c.queue.shards, 2);
        assert_eq!(c.queue.max_retries, Some(3));
        assert_eq!(c.queue.max_samples_per_send, 2000);
        let debug = format!("{c:?}");
        assert!(!debug.contains("\"p\""), "{debug}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(parse("urll = \"x\"").is_err());
        assert!(parse("[queue]\nmax_samples = 1").is_err());
    }

    #[test]
    fn reserved_headers_cannot_be_overridden() {
        for name in [
            "Content-Encoding",
            "content-type",
            "User-Agent",
            "X-Prometheus-Remote-Write-Version",
            "Authorization",
            "Host",
        ] {
            let mut c = Config::default();
            c.headers.insert(name.to_string(), "x".to_string());
            assert_eq!(
                c.validate(),
                Err(ConfigError::ReservedHeader {
                    name: name.to_string()
                }),
                "{name}"
            );
        }
        let c = Config {
            tenant_id: Some("t".into()),
            tenant_header: "User-Agent".into(),
            ..Config::default()
        };
        assert_eq!(
            c.validate(),
            Err(ConfigError::ReservedHeader {
                name: "User-Agent".into()
            })
        );
    }

    #[test]
    fn bad_settings_are_refused_at_config_time() {
        let mut c = Config::default();
        c.headers.insert("X-A".into(), "1".into());
        c.headers.insert("x-a".into(), "2".into());
        assert_eq!(
            c.validate(),
            Err(ConfigError::DuplicateHeader { name: "x-a".into() })
        );

        let mut c = Config::default();
        c.headers.insert("X A".into(), "1".into());
        assert_eq!(
            c.validate(),
            Err(ConfigError::InvalidHeaderName { name: "X A".into() })
        );

        let mut c = Config::default();
        c.headers.insert("X-A".into(), "line\nbreak".into());
        assert_eq!(
            c.validate(),
            Err(ConfigError::InvalidHeaderValue { name: "x-a".into() })
        );

        let c = Config {
            basic_auth: Some(BasicAuth {
                username: "u".into(),
                password: "p".into(),
            }),
            bearer_token: Some("t".into()),
            ..Config::default()
        };
        assert_eq!(c.validate(), Err(ConfigError::ConflictingAuth));

        assert!(matches!(
            Config::for_url("ftp://x/").validate(),
            Err(ConfigError::Url { .. })
        ));
        assert!(matches!(
            Config::for_url("not a url").validate(),
            Err(ConfigError::Url { .. })
        ));

        let mut c = Config::default();
        c.queue.max_samples_per_send = 0;
        assert!(matches!(
            c.validate(),
            Err(ConfigError::Invalid {
                field: "queue.max_samples_per_send",
                ..
            })
        ));
        let mut c = Config::default();
        c.queue.max_backoff_ms = 1;
        assert!(matches!(
            c.validate(),
            Err(ConfigError::Invalid {
                field: "queue.max_backoff_ms",
                ..
            })
        ));
    }
}
