//! `adclick export`: the exporter (Kafka → per-minute counts in Prometheus, raw archive in S3)
//! and its admin listener, until SIGINT or SIGTERM, then a graceful finish. Everything it does
//! is in the `adclick-exporter` crate; this is its flags and process setup.

use std::net::SocketAddr;

use adclick_exporter::{Deps, Metrics};
use anyhow::{Context, Result};

use super::{init_logging, shutdown_signal};
use crate::config::Config;

/// Flags of `adclick export`; each overrides its `[exporter]` key.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// Admin listener for /metrics, /healthz, /readyz [default: [exporter] admin_listen, 127.0.0.1:9102].
    #[arg(long)]
    admin_listen: Option<SocketAddr>,
    /// Consumer group [default: [exporter] group_id].
    #[arg(long)]
    group_id: Option<String>,
    /// remote_write endpoint [default: [exporter.remote_write] url].
    #[arg(long)]
    remote_write_url: Option<String>,
}

pub fn run(args: ExportArgs, config: &Config) -> Result<()> {
    init_logging(&config.log);
    let mut exporter = config.exporter.clone();
    if let Some(admin) = args.admin_listen {
        exporter.admin_listen = admin.to_string();
    }
    if let Some(group) = args.group_id {
        exporter.group_id = group;
    }
    if let Some(url) = args.remote_write_url {
        exporter.remote_write.url = url;
    }
    let kafka = config.kafka.settings();
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let admin = tokio::net::TcpListener::bind(&exporter.admin_listen)
            .await
            .with_context(|| format!("listening on {}", exporter.admin_listen))?;
        let deps = Deps {
            kafka,
            s3: config.s3.client().await.context("[s3.tls]")?,
            bucket: config.s3.bucket.clone(),
            metrics: Metrics::new(),
        };
        adclick_exporter::serve(admin, exporter, deps, shutdown_signal()).await?;
        Ok(())
    })
}
