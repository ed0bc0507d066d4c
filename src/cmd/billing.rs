//! `adclick billing`: an advertiser's statement over settlement days, read from the billing
//! store (`adclick_billing`), printed as a table, CSV or JSON (formats: `adclick_billing::render`).
//! Exits 0 with the statement, 1 on any error; a statement with unsettled days is printed with
//! them listed as missing, and exits 3, so that a script never bills an incomplete range unaware.

use adclick_billing::{BillingStore, Day, Format, render};
use anyhow::{Context, Result, ensure};
use secrecy::SecretString;

use crate::config::Config;

/// Exit code of a statement printed with missing (unsettled) days.
pub const EXIT_INCOMPLETE: i32 = 3;

/// Flags of `adclick billing`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit codes: 0 the statement, every day settled; 1 error; 3 the \
statement printed, but some days of the range are not settled (listed as missing)."
)]
pub struct BillingArgs {
    /// The advertiser's id.
    #[arg(long)]
    advertiser: u64,
    /// First settlement day, YYYY-MM-DD (UTC; a day holds the clicks whose minute ends in it).
    #[arg(long)]
    from: Day,
    /// Last settlement day, YYYY-MM-DD, included.
    #[arg(long)]
    to: Day,
    /// table (for people), csv or json (stable formats, see billing/README.md).
    #[arg(long, default_value = "table")]
    format: Format,
    /// The billing database [default: [billing] database_url]. Holds a password only if you
    /// accept it in your shell history: prefer ADCLICK_BILLING__DATABASE_URL.
    #[arg(long)]
    database_url: Option<String>,
}

/// Prints the statement; returns the process exit code.
pub fn run(args: BillingArgs, config: &Config) -> Result<i32> {
    ensure!(
        args.from <= args.to,
        "--from {} is after --to {}",
        args.from,
        args.to
    );
    let mut billing = config.billing.clone();
    if let Some(url) = args.database_url {
        billing.database_url = SecretString::from(url);
    }
    let runtime = tokio::runtime::Runtime::new()?;
    let statement = runtime.block_on(async {
        let store = BillingStore::connect(&billing).await?;
        store
            .statement(args.advertiser, args.from, args.to)
            .await
            .with_context(|| {
                format!(
                    "the statement of advertiser {} from {} to {}",
                    args.advertiser, args.from, args.to
                )
            })
    })?;
    print!("{}", render::render(&statement, args.format));
    let missing = statement.missing_days();
    if missing.is_empty() {
        return Ok(0);
    }
    let days: Vec<String> = missing.iter().map(ToString::to_string).collect();
    eprintln!(
        "warning: {} day(s) of the range are not settled, their clicks are not in the statement: {}",
        missing.len(),
        days.join(", ")
    );
    Ok(EXIT_INCOMPLETE)
}
