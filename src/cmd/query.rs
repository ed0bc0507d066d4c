//! `adclick query`: the query gateway (advertisers' PromQL, enforced, forwarded to Prometheus)
//! and its admin listener, until SIGINT or SIGTERM, then a graceful finish. Everything it does
//! is in the `adclick-query` crate; this is its flags and process setup.

use std::net::SocketAddr;

use adclick_query::Listeners;
use anyhow::{Context, Result};

use super::{init_logging, shutdown_signal};
use crate::config::Config;

/// Flags of `adclick query`; each overrides its `[query]` key.
#[derive(Debug, clap::Args)]
pub struct QueryArgs {
    /// The Prometheus HTTP API listener [default: [query] listen, 127.0.0.1:9200].
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Admin listener for /metrics, /healthz, /readyz [default: [query] admin_listen, 127.0.0.1:9103].
    #[arg(long)]
    admin_listen: Option<SocketAddr>,
    /// The Prometheus queries are forwarded to [default: [query] prometheus_url].
    #[arg(long)]
    prometheus_url: Option<String>,
    /// The history upstream, Thanos Query or a rollup-only Prometheus [default: [query] history_url].
    #[arg(long)]
    history_url: Option<String>,
    /// The API keys file [default: [query] api_keys_file].
    #[arg(long)]
    api_keys_file: Option<std::path::PathBuf>,
}

pub fn run(args: QueryArgs, config: &Config) -> Result<()> {
    init_logging(&config.log);
    let mut query = config.query.clone();
    if let Some(listen) = args.listen {
        query.listen = listen.to_string();
    }
    if let Some(admin) = args.admin_listen {
        query.admin_listen = admin.to_string();
    }
    if let Some(url) = args.prometheus_url {
        query.prometheus_url = url;
    }
    if let Some(url) = args.history_url {
        query.history_url = url;
    }
    if let Some(file) = args.api_keys_file {
        query.api_keys_file = file;
    }
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let api = tokio::net::TcpListener::bind(&query.listen)
            .await
            .with_context(|| format!("listening on {}", query.listen))?;
        let admin = tokio::net::TcpListener::bind(&query.admin_listen)
            .await
            .with_context(|| format!("listening on {}", query.admin_listen))?;
        adclick_query::run(Listeners { api, admin }, query, shutdown_signal()).await?;
        Ok(())
    })
}
