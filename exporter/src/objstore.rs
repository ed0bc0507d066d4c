//! The `[s3]` section: the bucket the raw archive, the checkpoints and the rollup's blocks live
//! in, and the client that reaches it.

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
}

impl Default for S3Config {
    fn default() -> Self {
        S3Config {
            bucket: "adclick".into(),
            region: "garage".into(),
            endpoint_url: "http://127.0.0.1:3900".into(),
            force_path_style: true,
        }
    }
}

impl S3Config {
    /// A client with credentials from the standard AWS sources (`AWS_ACCESS_KEY_ID` and
    /// `AWS_SECRET_ACCESS_KEY`, profiles, instance roles), never from adclick's own file.
    pub async fn client(&self) -> aws_sdk_s3::Client {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(self.region.clone()));
        if !self.endpoint_url.is_empty() {
            loader = loader.endpoint_url(&self.endpoint_url);
        }
        let shared = loader.load().await;
        let config = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(self.force_path_style)
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }
}
