//! `adclick rollup`: settle one UTC day from the raw archive into a Thanos block, reconcile it
//! with the stream, and exit with a code that says what happened (`adclick_rollup::run`).

use std::io::IsTerminal;
use std::path::PathBuf;

use adclick_rollup::{Day, Deps, RunOptions};
use anyhow::{Context, Result};

use super::init_logging;
use crate::config::Config;

/// Flags of `adclick rollup`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit codes: 0 clean, 1 error (nothing published), 3 corrupt archive objects \
(nothing published), 4 published but the stream disagrees, 5 no clicks for the day, 6 published but \
Prometheus could not be read to reconcile, 7 published without the corrupt objects' clicks (--skip-corrupt)."
)]
pub struct RollupArgs {
    /// The UTC day to settle, YYYY-MM-DD [default: yesterday].
    #[arg(long)]
    day: Option<Day>,
    /// Read, settle, write the block to a temporary directory and reconcile; publish nothing.
    #[arg(long)]
    dry_run: bool,
    /// Write the block into this directory instead of uploading it.
    #[arg(long, conflicts_with = "dry_run")]
    out_dir: Option<PathBuf>,
    /// Publish even when archive objects are corrupt (their clicks are missing; exit 7).
    #[arg(long)]
    skip_corrupt: bool,
    /// Where the JSON report goes [default: [rollup] report_dir].
    #[arg(long)]
    report_dir: Option<PathBuf>,
    /// Prometheus to reconcile with; "" for none [default: [rollup] prometheus_url].
    #[arg(long)]
    prometheus_url: Option<String>,
    /// Publish the block without writing the day's rows to the billing store [default: the
    /// rows are written when [rollup] billing is true].
    #[arg(long)]
    no_billing: bool,
}

/// Runs the rollup; returns the process exit code.
pub fn run(args: RollupArgs, config: &Config) -> Result<i32> {
    init_logging(&config.log);
    let mut rollup = config.rollup.clone();
    if let Some(dir) = args.report_dir {
        rollup.report_dir = dir.display().to_string();
    }
    if let Some(url) = args.prometheus_url {
        rollup.prometheus_url = url;
    }
    let options = RunOptions {
        day: args.day.unwrap_or_else(Day::yesterday),
        dry_run: args.dry_run,
        out_dir: args.out_dir,
        skip_corrupt: args.skip_corrupt,
        progress: std::io::stderr().is_terminal(),
        ulid: None,
        // The shared table; its deny list file is ingest's alone (RunOptions::invalid).
        invalid: config.invalid.clone(),
    };
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let tls = rollup
            .prometheus_tls
            .load()
            .context("[rollup.prometheus_tls]")?;
        let http = tls
            .apply_to_reqwest(reqwest::Client::builder())
            .and_then(reqwest::ClientBuilder::build)
            .context("the HTTP client for [rollup] prometheus_url")?;
        // Connected (and migrated) before anything is read: a store that is down fails the run
        // at once, with nothing published. Dry runs and --out-dir runs publish nothing to bill.
        let billing = if rollup.billing
            && !args.no_billing
            && !options.dry_run
            && options.out_dir.is_none()
        {
            Some(
                adclick_billing::BillingStore::connect(&config.billing)
                    .await
                    .context("the billing store ([billing] database_url; --no-billing skips it)")?,
            )
        } else {
            None
        };
        let deps = Deps {
            s3: config.s3.client().await.context("[s3.tls]")?,
            bucket: config.s3.bucket.clone(),
            topic: config.kafka.clicks_topic.clone(),
            http,
            billing,
        };
        let report = adclick_rollup::run(&rollup, &deps, &options)
            .await
            .with_context(|| format!("rollup of {}", options.day))?;
        print!("{}", report.summary());
        Ok(report.exit_code)
    })
}
