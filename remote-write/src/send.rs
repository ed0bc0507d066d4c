//! Sending one request: the POST, the decision to retry, and the one retry loop.
//!
//! - [`Sender::attempt`] is one HTTP POST with the four headers the specification requires
//!   (`Content-Encoding: snappy`, `Content-Type: application/x-protobuf`, `User-Agent`,
//!   `X-Prometheus-Remote-Write-Version: 0.1.0`) plus the configured ones, on a pooled
//!   connection, bounded by the remote timeout. Success is a 2xx and nothing else; the response
//!   body is ignored on success, and its first part kept on failure.
//! - [`decide`] is the specification's retry rule: retry 5xx, retry 429 when configured (both
//!   honouring Retry-After), retry connection errors and timeouts; never retry another 4xx (or
//!   any other status).
//! - [`Sender::send_encoded`] loops over attempts with exponential backoff and jitter
//!   ([`backoff_delay`]: from `min_backoff` doubling up to `max_backoff`).

use std::error::Error as _;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER};

use crate::config::{Config, ConfigError};
use crate::encode::{EncodeError, Encoded, Encoder};
use crate::metrics::{FailReason, Metrics};
use crate::request::Request;

/// The `User-Agent`: name and version of the sender, as the specification asks.
pub const USER_AGENT: &str = concat!("adclick-remote-write/", env!("CARGO_PKG_VERSION"));
/// The protocol version header and its 1.0 value.
pub const VERSION_HEADER: &str = "x-prometheus-remote-write-version";
pub const VERSION: &str = "0.1.0";
/// How much of an error response's body is kept (Prometheus keeps 1 KiB too).
pub const MAX_ERROR_BODY: usize = 1024;
/// How much of a success response's body is read (the spec says to ignore it; reading a little
/// lets the connection be reused when a receiver sends one anyway).
const MAX_SUCCESS_BODY: usize = 64 << 10;

/// How one attempt failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttemptError {
    /// The receiver answered with a status other than 2xx.
    #[error("HTTP {status}: {body}")]
    Status {
        status: u16,
        /// The first [`MAX_ERROR_BODY`] bytes of the response, as text.
        body: String,
        /// The Retry-After header, when present and in the future.
        retry_after: Option<Duration>,
    },
    #[error("no complete response within {0:?}")]
    Timeout(Duration),
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("transport error: {0}")]
    Transport(String),
}

impl AttemptError {
    /// The `code` label of the `requests_total` metric.
    fn code(&self) -> String {
        match self {
            AttemptError::Status { status, .. } => status.to_string(),
            AttemptError::Timeout(_) => "timeout".to_string(),
            AttemptError::Connect(_) => "connect".to_string(),
            AttemptError::Transport(_) => "transport".to_string(),
        }
    }
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Try again: after the receiver's Retry-After when it gave one, else after the backoff.
    Retry { retry_after: Option<Duration> },
    /// Give up: the request will never succeed.
    Fail,
}

/// The specification's rule: MUST retry 5xx, MAY retry 429, MUST NOT retry other 4xx. Errors
/// below HTTP (refused connection, reset, timeout) say nothing about the request, so they are
/// retried, as Prometheus does.
pub fn decide(error: &AttemptError, retry_on_http_429: bool) -> Decision {
    match error {
        AttemptError::Status {
            status,
            retry_after,
            ..
        } => {
            if (500..600).contains(status) || (*status == 429 && retry_on_http_429) {
                Decision::Retry {
                    retry_after: *retry_after,
                }
            } else {
                Decision::Fail
            }
        }
        AttemptError::Timeout(_) | AttemptError::Connect(_) | AttemptError::Transport(_) => {
            Decision::Retry { retry_after: None }
        }
    }
}

/// The delay before retry number `retry` (0 for the first): `min · 2^retry`, at most `max`, of
/// which the upper half is randomised by `jitter` ∈ [0, 1] so that shards and processes that
/// failed together do not retry together. Never below `min` nor above `max`.
pub fn backoff_delay(retry: u32, min: Duration, max: Duration, jitter: f64) -> Duration {
    let ceiling = min
        .saturating_mul(1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX))
        .min(max);
    let half = ceiling / 2;
    let delay = half + half.mul_f64(jitter.clamp(0.0, 1.0));
    delay.clamp(min, max.max(min))
}

/// A Retry-After value: seconds, or an HTTP date. `None` when unparsable or not in the future,
/// in which case the backoff applies (as in Prometheus' `retryAfterDuration`).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return (seconds > 0).then(|| Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    at.duration_since(now).ok().filter(|d| !d.is_zero())
}

/// A request the sender gave up on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// A status that must not be retried (4xx other than 429, or 429 when not retrying it; also
    /// 1xx/3xx, which are not success either).
    #[error("rejected by the receiver with HTTP {status} (not retried): {body}")]
    Rejected {
        status: u16,
        /// The first [`MAX_ERROR_BODY`] bytes of the response.
        body: String,
    },
    /// `max_retries` retries failed too.
    #[error("gave up after {attempts} attempts; the last: {last}")]
    RetriesExhausted { attempts: u32, last: AttemptError },
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

impl SendError {
    /// The HTTP status of the last response, if there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            SendError::Rejected { status, .. } => Some(*status),
            SendError::RetriesExhausted {
                last: AttemptError::Status { status, .. },
                ..
            } => Some(*status),
            _ => None,
        }
    }

    pub fn reason(&self) -> FailReason {
        match self {
            SendError::Rejected { .. } => FailReason::Rejected,
            SendError::RetriesExhausted { .. } => FailReason::RetriesExhausted,
            SendError::Encode(_) => FailReason::Encode,
        }
    }
}

/// A request the receiver accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    /// HTTP attempts it took (1 when the first succeeded).
    pub attempts: u32,
}

/// The retry settings of [`QueueConfig`](crate::QueueConfig), as durations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RetryPolicy {
    min_backoff: Duration,
    max_backoff: Duration,
    retry_on_http_429: bool,
    max_retries: Option<u32>,
    max_retry_after: Duration,
}

/// Sends requests to one receiver. Clones share the connection pool and metrics.
#[derive(Clone)]
pub struct Sender {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    url: reqwest::Url,
    timeout: Duration,
    retry: RetryPolicy,
    metrics: Metrics,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("url", &self.inner.url.as_str())
            .finish_non_exhaustive()
    }
}

impl Sender {
    /// Checks `config` (see [`Config::validate`]) and prepares the HTTP client.
    pub fn new(config: &Config, metrics: Metrics) -> Result<Sender, ConfigError> {
        config.validate()?;
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static("snappy"));
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-protobuf"),
        );
        headers.insert(VERSION_HEADER, HeaderValue::from_static(VERSION));
        // Reserved names were refused by validate(), so nothing here replaces the above.
        headers.extend(config.user_headers()?);
        let timeout = config.remote_timeout();
        let tls = config
            .tls
            .load()
            .map_err(|e| ConfigError::Tls(format!("{e}")))?;
        let builder = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .default_headers(headers)
            .connect_timeout(timeout)
            // A redirected POST may turn into a GET and lose the body: only a 2xx is success.
            .redirect(reqwest::redirect::Policy::none());
        let http = tls
            .apply_to_reqwest(builder)
            .and_then(reqwest::ClientBuilder::build)
            .map_err(|e| ConfigError::HttpClient(error_chain(&e)))?;
        let q = &config.queue;
        let retry = RetryPolicy {
            min_backoff: q.min_backoff(),
            max_backoff: q.max_backoff(),
            retry_on_http_429: q.retry_on_http_429,
            max_retries: q.max_retries,
            max_retry_after: q.max_retry_after(),
        };
        let url = config.url()?;
        Ok(Sender {
            inner: Arc::new(Inner {
                http,
                url,
                timeout,
                retry,
                metrics,
            }),
        })
    }

    pub fn url(&self) -> &str {
        self.inner.url.as_str()
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Encodes and sends `request`, retrying as the specification says.
    pub async fn send(&self, request: &Request) -> Result<Delivery, SendError> {
        let encoded = Encoder::new().encode(request).inspect_err(|_| {
            self.inner
                .metrics
                .failed(FailReason::Encode, request.samples());
        })?;
        self.send_encoded(&encoded).await
    }

    /// Sends an encoded request until it is accepted, refused for good, or out of retries.
    /// Dropping the future stops the retries.
    pub async fn send_encoded(&self, encoded: &Encoded) -> Result<Delivery, SendError> {
        let Inner { metrics, retry, .. } = &*self.inner;
        metrics.bytes(encoded.uncompressed_len(), encoded.compressed_len());
        let samples = encoded.samples();
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let error = match self.attempt(encoded).await {
                Ok(()) => {
                    metrics.sent(samples);
                    return Ok(Delivery { attempts });
                }
                Err(error) => error,
            };
            let retry_after = match decide(&error, retry.retry_on_http_429) {
                Decision::Retry { retry_after } => retry_after,
                Decision::Fail => {
                    metrics.failed(FailReason::Rejected, samples);
                    let (status, body) = match error {
                        AttemptError::Status { status, body, .. } => (status, body),
                        // decide() fails only on statuses.
                        other => (0, other.to_string()),
                    };
                    tracing::error!(
                        url = %self.url(), status, body, samples,
                        "remote write rejected, not retrying"
                    );
                    return Err(SendError::Rejected { status, body });
                }
            };
            let retries = attempts - 1;
            if retry.max_retries.is_some_and(|max| retries >= max) {
                metrics.failed(FailReason::RetriesExhausted, samples);
                tracing::error!(
                    url = %self.url(), %error, attempts, samples,
                    "remote write failed, out of retries"
                );
                return Err(SendError::RetriesExhausted {
                    attempts,
                    last: error,
                });
            }
            let delay = match retry_after {
                Some(after) => after.min(retry.max_retry_after),
                None => {
                    let jitter = rand::random::<f64>();
                    backoff_delay(retries, retry.min_backoff, retry.max_backoff, jitter)
                }
            };
            tracing::warn!(
                url = %self.url(), %error, attempts, ?delay,
                "remote write failed, retrying"
            );
            tokio::time::sleep(delay).await;
            metrics.retried(samples);
        }
    }

    /// One POST of `encoded`, within the remote timeout. Ok only on 2xx.
    pub async fn attempt(&self, encoded: &Encoded) -> Result<(), AttemptError> {
        let Inner {
            http,
            url,
            timeout,
            metrics,
            ..
        } = &*self.inner;
        let started = Instant::now();
        let post = async {
            let response = http
                .post(url.clone())
                .body(encoded.body().clone())
                .send()
                .await
                .map_err(|e| classify(&e, *timeout))?;
            let status = response.status();
            let retry_after = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, SystemTime::now()));
            if status.is_success() {
                // Ignored, as the spec says; a read error after a 2xx does not undo the write.
                let _ = read_prefix(response, MAX_SUCCESS_BODY, *timeout).await;
                return Ok(status);
            }
            let body = read_prefix(response, MAX_ERROR_BODY, *timeout)
                .await
                .unwrap_or_default();
            Err(AttemptError::Status {
                status: status.as_u16(),
                body,
                retry_after,
            })
        };
        let result = match tokio::time::timeout(*timeout, post).await {
            Ok(result) => result,
            Err(_) => Err(AttemptError::Timeout(*timeout)),
        };
        let code = match &result {
            Ok(status) => status.as_str().to_string(),
            Err(e) => e.code(),
        };
        metrics.attempt(&code, started.elapsed().as_secs_f64());
        result.map(|_| ())
    }
}

/// Reads up to `limit` bytes of the body, as text (invalid UTF-8 replaced, cut at a char).
async fn read_prefix(
    mut response: reqwest::Response,
    limit: usize,
    timeout: Duration,
) -> Result<String, AttemptError> {
    let mut bytes = Vec::new();
    while bytes.len() < limit {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            Ok(None) => break,
            Err(e) => return Err(classify(&e, timeout)),
        }
    }
    bytes.truncate(limit);
    let mut text = String::from_utf8_lossy(&bytes).into_owned();
    while text.len() > limit {
        text.pop();
    }
    Ok(text)
}

fn classify(error: &reqwest::Error, timeout: Duration) -> AttemptError {
    if error.is_timeout() {
        AttemptError::Timeout(timeout)
    } else if error.is_connect() {
        AttemptError::Connect(error_chain(error))
    } else {
        AttemptError::Transport(error_chain(error))
    }
}

/// `error: cause: cause`, since reqwest's Display shows only the outermost layer.
fn error_chain(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_millis(30);
    const MAX: Duration = Duration::from_secs(5);

    #[test]
    fn backoff_doubles_within_bounds_with_jitter() {
        for retry in 0..100 {
            for jitter in [0.0, 0.3, 1.0] {
                let d = backoff_delay(retry, MIN, MAX, jitter);
                assert!(d >= MIN && d <= MAX, "retry {retry} jitter {jitter}: {d:?}");
            }
        }
        // The ceiling doubles: 30, 60, 120 ms ... and the delay lies in its upper half.
        assert_eq!(backoff_delay(0, MIN, MAX, 1.0), MIN);
        assert_eq!(backoff_delay(2, MIN, MAX, 1.0), Duration::from_millis(120));
        assert_eq!(backoff_delay(2, MIN, MAX, 0.0), Duration::from_millis(60));
        assert_eq!(backoff_delay(30, MIN, MAX, 1.0), MAX);
        assert_eq!(backoff_delay(30, MIN, MAX, 0.0), MAX / 2);
        assert_eq!(backoff_delay(u32::MAX, MIN, MAX, 0.5), MAX.mul_f64(0.75));
    }

    #[test]
    fn the_retry_rule_of_the_spec() {
        let status = |status| AttemptError::Status {
            status,
            body: String::new(),
            retry_after: None,
        };
        for code in [500, 502, 503, 504, 599] {
            assert_eq!(
                decide(&status(code), false),
                Decision::Retry { retry_after: None },
                "{code}"
            );
        }
        assert_eq!(
            decide(&status(429), true),
            Decision::Retry { retry_after: None }
        );
        assert_eq!(decide(&status(429), false), Decision::Fail);
        for code in [400, 401, 403, 404, 409, 413, 422, 100, 301, 304] {
            assert_eq!(decide(&status(code), true), Decision::Fail, "{code}");
        }
        let after = AttemptError::Status {
            status: 503,
            body: String::new(),
            retry_after: Some(Duration::from_secs(2)),
        };
        assert_eq!(
            decide(&after, true),
            Decision::Retry {
                retry_after: Some(Duration::from_secs(2))
            }
        );
        for e in [
            AttemptError::Timeout(MIN),
            AttemptError::Connect("refused".into()),
            AttemptError::Transport("reset".into()),
        ] {
            assert_eq!(decide(&e, false), Decision::Retry { retry_after: None });
        }
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:30 GMT", now),
            None
        );
        assert_eq!(parse_retry_after("0", now), None);
        assert_eq!(parse_retry_after("-1", now), None);
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("", now), None);
    }
}
