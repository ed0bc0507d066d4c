//! `adclick`: the one binary operators install. Each subcommand is one adclick service or tool;
//! they share one configuration file (see `config`).

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

mod cmd;
mod config;

use config::Config;

/// mimalloc instead of glibc's malloc: ingest's click path allocates a few dozen small, short-lived
/// objects per click across threads (hyper, the Redis and Kafka clients), where glibc's malloc
/// was 10-13 % of ingest's CPU (BENCHMARKS.md, ingest).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "adclick",
    version,
    about = "Exact per-ad, per-minute click counting for Prometheus and Thanos"
)]
struct Cli {
    /// Configuration file (TOML); ADCLICK_<SECTION>__<KEY> variables override it.
    #[arg(long, global = true, env = "ADCLICK_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the wire contract (click.proto) a third party needs to write the clicks topic.
    Proto,
    /// Count the clicks topic into per-minute series in Prometheus and archive it to S3.
    Export(cmd::export::ExportArgs),
    /// Serve the click endpoint: verify, dedup, durable produce, redirect.
    Ingest(cmd::ingest::IngestArgs),
    /// Serve the query gateway: advertisers' PromQL, restricted to their own clicks, forwarded to Prometheus.
    Query(cmd::query::QueryArgs),
    /// Settle one UTC day from the raw archive into a Thanos block and reconcile it with the stream.
    Rollup(cmd::rollup::RollupArgs),
    /// An advertiser's statement over settlement days from the billing store (table, CSV, JSON).
    Billing(cmd::billing::BillingArgs),
    /// Send planned click traffic (HTTP or Kafka) and write its ground truth.
    Loadgen(cmd::loadgen::LoadgenArgs),
    /// Compare a loadgen run's ground truth with Prometheus, minute by minute (exit 1 if apart).
    CheckTruth(cmd::check_truth::CheckTruthArgs),
    /// Issue an impression token signed with the configured key, or verify one.
    Token(cmd::token::TokenArgs),
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let config = Config::load(cli.config.as_deref())?;
    match cli.command {
        Command::Proto => {
            print!("{}", include_str!("../proto/adclick/v1/click.proto"));
            Ok(())
        }
        Command::Export(args) => cmd::export::run(args, &config),
        Command::Ingest(args) => cmd::ingest::run(args, &config),
        Command::Query(args) => cmd::query::run(args, &config),
        Command::Rollup(args) => {
            let code = cmd::rollup::run(args, &config)?;
            std::process::exit(code)
        }
        Command::Billing(args) => {
            let code = cmd::billing::run(args, &config)?;
            std::process::exit(code)
        }
        Command::Loadgen(args) => cmd::loadgen::run_loadgen(args, &config),
        Command::CheckTruth(args) => {
            let equal = cmd::check_truth::run(args, &config)?;
            std::process::exit(if equal { 0 } else { 1 })
        }
        Command::Token(args) => {
            cmd::token::run(&args, &config.tokens, &mut std::io::stdout().lock())
        }
    }
}
