//! The `[s3]` section: the bucket the raw archive, the exporter's checkpoints and the rollup's
//! Thanos blocks live in, and the client that reaches it. Shared by `adclick export` and
//! `adclick rollup`.

use aws_sdk_s3::Client;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_http_client::tls;
use serde::Deserialize;

/// An S3-compatible bucket (AWS S3, garage, MinIO, ...).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Config {
    pub bucket: String,
    /// Region name; for garage, its `s3_region`.
    pub region: String,
    /// Endpoint of a non-AWS store (e.g. `http://127.0.0.1:3900`); empty for AWS.
    pub endpoint_url: String,
    /// Path-style addressing (`endpoint/bucket/key`), which most non-AWS stores need.
    pub force_path_style: bool,
    /// `[s3.tls]`: a private CA for an `https://` endpoint (`ca_file`). The SDK's HTTP client
    /// takes no client certificate, so `cert_file`/`key_file` are refused here.
    pub tls: adclick_tls::ClientTls,
}

impl Default for S3Config {
    fn default() -> Self {
        S3Config {
            bucket: "adclick".into(),
            region: "garage".into(),
            endpoint_url: "http://127.0.0.1:3900".into(),
            force_path_style: true,
            tls: adclick_tls::ClientTls::default(),
        }
    }
}

impl S3Config {
    /// A client with credentials from the standard AWS sources (`AWS_ACCESS_KEY_ID` and
    /// `AWS_SECRET_ACCESS_KEY`, profiles, instance roles), never from adclick's own file. With a
    /// `[s3.tls] ca_file`, the client trusts that CA beside the system roots.
    pub async fn client(&self) -> Result<aws_sdk_s3::Client, adclick_tls::TlsError> {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(self.region.clone()));
        if !self.endpoint_url.is_empty() {
            loader = loader.endpoint_url(&self.endpoint_url);
        }
        if self.tls.cert_file.is_some() || self.tls.key_file.is_some() {
            return Err(adclick_tls::TlsError::Unsupported {
                client: "S3",
                what: "a client certificate (cert_file, key_file)",
            });
        }
        if let Some(ca_pem) = self.tls.load()?.ca_pem {
            let trust = tls::TrustStore::default().with_pem_certificate(ca_pem);
            let context = tls::TlsContext::builder()
                .with_trust_store(trust)
                .build()
                .map_err(|e| adclick_tls::TlsError::Content {
                    path: self.tls.ca_file.clone().unwrap_or_default(),
                    what: format!("not usable as a trust store ({e})"),
                })?;
            let http = aws_smithy_http_client::Builder::new()
                .tls_provider(tls::Provider::Rustls(
                    tls::rustls_provider::CryptoMode::AwsLc,
                ))
                .tls_context(context)
                .build_https();
            loader = loader.http_client(http);
        }
        let shared = loader.load().await;
        let config = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(self.force_path_style)
            .build();
        Ok(aws_sdk_s3::Client::from_conf(config))
    }
}

/// An object-store call that failed, with the object (or prefix) it was about.
#[derive(Debug, thiserror::Error)]
#[error("{op} s3://{bucket}/{key}: {message}")]
pub struct StoreError {
    pub op: &'static str,
    pub bucket: String,
    pub key: String,
    pub message: String,
    /// The object does not exist (a 404 on get or head).
    pub not_found: bool,
}

fn store_error<E>(op: &'static str, bucket: &str, key: &str, e: SdkError<E>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let not_found = matches!(e.code(), Some("NoSuchKey" | "NotFound"))
        || e.raw_response().is_some_and(|r| r.status().as_u16() == 404);
    StoreError {
        op,
        bucket: bucket.to_string(),
        key: key.to_string(),
        message: DisplayErrorContext(&e).to_string(),
        not_found,
    }
}

/// Every object under `prefix`, with its size, in name order.
pub async fn list(
    client: &Client,
    bucket: &str,
    prefix: &str,
) -> Result<Vec<(String, u64)>, StoreError> {
    let mut pages = client
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .into_paginator()
        .send();
    let mut out = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| store_error("list", bucket, prefix, e))?;
        for o in page.contents() {
            if let Some(key) = o.key() {
                out.push((key.to_string(), o.size().unwrap_or(0).max(0) as u64));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The "directories" directly under `prefix` (common prefixes with delimiter `/`).
pub async fn list_dirs(
    client: &Client,
    bucket: &str,
    prefix: &str,
) -> Result<Vec<String>, StoreError> {
    let mut pages = client
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .delimiter("/")
        .into_paginator()
        .send();
    let mut out = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| store_error("list", bucket, prefix, e))?;
        out.extend(
            page.common_prefixes()
                .iter()
                .filter_map(|p| p.prefix().map(str::to_string)),
        );
    }
    out.sort();
    Ok(out)
}

/// The whole object; `Ok(None)` when it does not exist.
pub async fn get(client: &Client, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
    match client.get_object().bucket(bucket).key(key).send().await {
        Ok(out) => {
            let body = out.body.collect().await.map_err(|e| StoreError {
                op: "read",
                bucket: bucket.to_string(),
                key: key.to_string(),
                message: e.to_string(),
                not_found: false,
            })?;
            Ok(Some(body.into_bytes().to_vec()))
        }
        Err(e) => {
            let e = store_error("get", bucket, key, e);
            if e.not_found { Ok(None) } else { Err(e) }
        }
    }
}

/// Writes an object from memory.
pub async fn put(
    client: &Client,
    bucket: &str,
    key: &str,
    body: Vec<u8>,
) -> Result<(), StoreError> {
    put_typed(client, bucket, key, body, "application/octet-stream").await
}

/// Writes an object from memory with its `Content-Type` (what a browser of the bucket sees).
pub async fn put_typed(
    client: &Client,
    bucket: &str,
    key: &str,
    body: Vec<u8>,
    content_type: &str,
) -> Result<(), StoreError> {
    client
        .put_object()
        .bucket(bucket)
        .key(key)
        .content_type(content_type)
        .body(ByteStream::from(body))
        .send()
        .await
        .map_err(|e| store_error("put", bucket, key, e))?;
    Ok(())
}

/// Writes an object from a local file, streamed.
pub async fn put_file(
    client: &Client,
    bucket: &str,
    key: &str,
    path: &std::path::Path,
) -> Result<(), StoreError> {
    let body = ByteStream::from_path(path).await.map_err(|e| StoreError {
        op: "read local file for",
        bucket: bucket.to_string(),
        key: key.to_string(),
        message: format!("{}: {e}", path.display()),
        not_found: false,
    })?;
    client
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(body)
        .send()
        .await
        .map_err(|e| store_error("put", bucket, key, e))?;
    Ok(())
}

/// Deletes an object (deleting a missing one is not an error in S3).
pub async fn delete(client: &Client, bucket: &str, key: &str) -> Result<(), StoreError> {
    client
        .delete_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| store_error("delete", bucket, key, e))?;
    Ok(())
}
