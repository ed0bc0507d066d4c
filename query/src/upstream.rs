//! A Prometheus-API upstream behind the gateway (Prometheus, Thanos Query): requests forwarded to
//! its HTTP API, its answers (status, content type, body) passed back, their error text and
//! warnings scrubbed of addresses (`scrub`).

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header::CONTENT_TYPE};
use axum::response::Response;

use crate::params::Params;

/// The upstream's base URL and the client that reaches it.
#[derive(Debug, Clone)]
pub struct Upstream {
    client: reqwest::Client,
    /// `http://host:port[/prefix]`, without a trailing slash.
    base: String,
}

/// The upstream cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamConfigError {
    #[error("prometheus_url {url:?} is not an http(s) URL")]
    Url {
        url: String,
        #[source]
        source: Option<url::ParseError>,
    },
    #[error("building the HTTP client")]
    Client(#[source] reqwest::Error),
}

/// A forwarded request that got no answer.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// No connection, or it broke before the answer was read.
    #[error("Prometheus did not answer")]
    Unreachable(#[source] reqwest::Error),
    /// Not answered within `upstream_timeout_ms`.
    #[error("Prometheus did not answer in time")]
    Timeout(#[source] reqwest::Error),
}

impl From<reqwest::Error> for UpstreamError {
    fn from(e: reqwest::Error) -> Self {
        if e.is_timeout() {
            UpstreamError::Timeout(e)
        } else {
            UpstreamError::Unreachable(e)
        }
    }
}

impl Upstream {
    /// An upstream at `url` (e.g. `http://127.0.0.1:9090`), each request bounded by `timeout`.
    pub fn new(url: &str, timeout: Duration) -> Result<Upstream, UpstreamConfigError> {
        let parsed = url::Url::parse(url).map_err(|e| UpstreamConfigError::Url {
            url: url.to_string(),
            source: Some(e),
        })?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.cannot_be_a_base() {
            return Err(UpstreamConfigError::Url {
                url: url.to_string(),
                source: None,
            });
        }
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(UpstreamConfigError::Client)?;
        Ok(Upstream {
            client,
            base: url.trim_end_matches('/').to_string(),
        })
    }

    /// POSTs `params` as a form to `/api/v1/<endpoint>`; its answer passed back.
    pub async fn post_form(
        &self,
        endpoint: &str,
        params: &Params,
    ) -> Result<Response, UpstreamError> {
        relay(self.post_request(endpoint, params).send().await?).await
    }

    /// POSTs `params` as a form to `/api/v1/<endpoint>`; the answer's status and body, for the
    /// gateway to read itself.
    pub async fn post_form_raw(
        &self,
        endpoint: &str,
        params: &Params,
    ) -> Result<(StatusCode, Bytes), UpstreamError> {
        raw(self.post_request(endpoint, params).send().await?).await
    }

    /// GETs `/api/v1/<endpoint>?<params>` (for endpoints Prometheus serves on GET only); its
    /// answer passed back.
    pub async fn get(&self, endpoint: &str, params: &Params) -> Result<Response, UpstreamError> {
        relay(self.get_request(endpoint, params).send().await?).await
    }

    /// GETs `/api/v1/<endpoint>?<params>`; the answer's status and body.
    pub async fn get_raw(
        &self,
        endpoint: &str,
        params: &Params,
    ) -> Result<(StatusCode, Bytes), UpstreamError> {
        raw(self.get_request(endpoint, params).send().await?).await
    }

    fn post_request(&self, endpoint: &str, params: &Params) -> reqwest::RequestBuilder {
        self.client
            .post(self.url(endpoint))
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(params.encode())
    }

    fn get_request(&self, endpoint: &str, params: &Params) -> reqwest::RequestBuilder {
        let mut url = self.url(endpoint);
        if !params.0.is_empty() {
            url.push('?');
            url.push_str(&params.encode());
        }
        self.client.get(url)
    }

    /// Whether the upstream answers its readiness check (`/-/ready`, which Prometheus and
    /// Thanos Query both serve) with 2xx.
    pub async fn ready(&self) -> bool {
        let url = format!("{}/-/ready", self.base);
        matches!(self.client.get(url).send().await, Ok(r) if r.status().is_success())
    }

    fn url(&self, endpoint: &str) -> String {
        format!("{}/api/v1/{endpoint}", self.base)
    }
}

/// The upstream's answer as the gateway's: its status, content type and (scrubbed) body.
async fn relay(answer: reqwest::Response) -> Result<Response, UpstreamError> {
    let content_type = answer
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| HeaderValue::from_bytes(v.as_bytes()).ok());
    let (status, body) = raw(answer).await?;
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    if let Some(ct) = content_type {
        response.headers_mut().insert(CONTENT_TYPE, ct);
    }
    Ok(response)
}

/// The upstream's status and body, scrubbed of addresses where it may hold them (`scrub`).
async fn raw(answer: reqwest::Response) -> Result<(StatusCode, Bytes), UpstreamError> {
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let body = answer.bytes().await?;
    Ok((status, crate::scrub::body(status, body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_base_urls() {
        let t = Duration::from_secs(1);
        assert!(Upstream::new("http://127.0.0.1:9090/", t).is_ok());
        assert!(Upstream::new("https://prom.example/prefix", t).is_ok());
        assert!(Upstream::new("127.0.0.1:9090", t).is_err());
        assert!(Upstream::new("mailto:a@b", t).is_err());
        let u = Upstream::new("http://h:1/p/", t).unwrap();
        assert_eq!(u.url("query"), "http://h:1/p/api/v1/query");
    }
}
