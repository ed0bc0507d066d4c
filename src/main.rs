//! `adclick`: the one binary operators install. Each subcommand is one adclick service or tool.

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "adclick", version, about = "Exact per-ad, per-minute click counting for Prometheus and Thanos")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the wire contract (click.proto) a third party needs to write the clicks topic.
    Proto,
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Proto => {
            print!("{}", include_str!("../proto/adclick/v1/click.proto"));
            Ok(())
        }
    }
}
