//! `adclick ingest`: the click endpoint (`GET /click/{token}`) and its admin listener, until
//! SIGINT or SIGTERM, then a graceful drain. Everything it does is in the `adclick-ingest` crate;
//! this is its flags and process setup.

use std::net::SocketAddr;
use std::path::PathBuf;

use adclick_ingest::{Listeners, Settings};
use anyhow::{Context, Result};

use super::{init_logging, shutdown_signal};
use crate::config::Config;

/// Flags of `adclick ingest`; each overrides its `[ingest]` key.
#[derive(Debug, clap::Args)]
pub struct IngestArgs {
    /// Public click listener [default: [ingest] listen, 127.0.0.1:8080].
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Admin listener for /metrics, /healthz, /readyz [default: [ingest] admin_listen, 127.0.0.1:9101].
    #[arg(long)]
    admin_listen: Option<SocketAddr>,
    /// Folder of the spill log [default: [ingest] spill_dir].
    #[arg(long)]
    spill_dir: Option<PathBuf>,
}

pub fn run(args: IngestArgs, config: &Config) -> Result<()> {
    init_logging(&config.log);
    let mut ingest = config.ingest.clone();
    if let Some(listen) = args.listen {
        ingest.listen = listen;
    }
    if let Some(admin) = args.admin_listen {
        ingest.admin_listen = admin;
    }
    if let Some(dir) = args.spill_dir {
        ingest.spill_dir = dir;
    }
    let verifier = config.tokens.verifier()?;
    let kafka = config.kafka.settings();
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let public = tokio::net::TcpListener::bind(ingest.listen)
            .await
            .with_context(|| format!("listening on {}", ingest.listen))?;
        let admin = tokio::net::TcpListener::bind(ingest.admin_listen)
            .await
            .with_context(|| format!("listening on {}", ingest.admin_listen))?;
        let settings = Settings {
            config: ingest,
            verifier,
            kafka,
            invalid: config.invalid.clone(),
        };
        adclick_ingest::run(Listeners { public, admin }, settings, shutdown_signal()).await?;
        Ok(())
    })
}
