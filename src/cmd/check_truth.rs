//! `adclick check-truth`: a loadgen run's ground truth against what Prometheus holds, per minute
//! and campaign, waiting until every minute of the run is final (the demo's last step). A run with
//! invalid traffic (`invalid.csv` in the folder) is checked per reason too, one with users or
//! prices (`user_clicks.csv`) its spend and unique users per partition and ad or `other`.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use adclick_click::minute::MINUTE_MS;
use adclick_loadgen::check::money::{MoneyComparison, compare_money, read_prometheus_money};
use adclick_loadgen::check::{
    CampaignId, Comparison, InvalidComparison, compare, compare_invalid, read_prometheus,
    read_prometheus_invalid,
};
use adclick_loadgen::{Money, read_invalid, read_summary, read_truth};
use anyhow::{Context, Result};
use clap::Args;

use crate::config::Config;

#[derive(Debug, Args)]
pub struct CheckTruthArgs {
    /// The folder loadgen wrote truth.csv, too_late.csv and summary.json (and with invalid
    /// traffic invalid.csv and floods.csv, with users or prices user_clicks.csv and the spend
    /// files) into.
    #[arg(long)]
    truth_dir: PathBuf,
    /// Prometheus' base URL.
    #[arg(long, default_value = "http://127.0.0.1:9090")]
    prometheus: String,
    /// Label matchers every selector gets, e.g. `env="demo"` (default: series without the
    /// `test_id` label tests put on theirs).
    #[arg(long, default_value = "test_id=\"\"")]
    matchers: String,
    /// How long to wait for the run's last minutes to become final and equal before reporting
    /// the difference, e.g. 3m.
    #[arg(long, default_value = "3m", value_parser = humantime::parse_duration)]
    wait: Duration,
}

/// Prints the comparison; Ok(true) when truth and Prometheus agree.
pub fn run(args: CheckTruthArgs, config: &Config) -> Result<bool> {
    let truth = read_truth(&args.truth_dir.join("truth.csv"))?;
    let too_late_path = args.truth_dir.join("too_late.csv");
    let too_late = if too_late_path.exists() {
        read_truth(&too_late_path)?
    } else {
        Default::default()
    };
    let summary = read_summary(&args.truth_dir.join("summary.json"))?;
    // With invalid traffic: its truth, and the minutes and campaigns it adds.
    let invalid_path = args.truth_dir.join("invalid.csv");
    let invalid = if invalid_path.exists() {
        let floods_path = args.truth_dir.join("floods.csv");
        let floods = if floods_path.exists() {
            read_truth(&floods_path)?
        } else {
            Default::default()
        };
        Some((read_invalid(&invalid_path)?, floods))
    } else {
        None
    };
    // With users or prices: spend and unique users.
    let money = Money::read(&args.truth_dir)?;
    let mut minutes: Vec<i64> = truth.keys().map(|k| k.minute_end_ms).collect();
    let mut campaigns: BTreeSet<CampaignId> = truth
        .keys()
        .map(|k| (k.ad.advertiser_id, k.ad.campaign_id))
        .collect();
    if let Some((invalid, floods)) = &invalid {
        minutes.extend(invalid.keys().map(|k| k.minute_end_ms));
        minutes.extend(floods.keys().map(|k| k.minute_end_ms));
        campaigns.extend(invalid.keys().map(|k| (k.advertiser_id, k.campaign_id)));
        campaigns.extend(
            floods
                .keys()
                .map(|k| (k.ad.advertiser_id, k.ad.campaign_id)),
        );
    }
    let (Some(first), Some(last)) = (minutes.iter().copied().min(), minutes.iter().copied().max())
    else {
        println!("the truth is empty: nothing to compare");
        return Ok(summary.errors == 0);
    };
    // Clicks that arrive after their minute is final are counted in the minute open then: at
    // most a minute plus the allowed lateness after theirs, plus the idle tick.
    let late_until = last + 3 * MINUTE_MS + config.exporter.allowed_lateness_ms;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let runtime = tokio::runtime::Runtime::new()?;
    let deadline = Instant::now() + args.wait;
    let flood_campaigns: BTreeSet<CampaignId> = invalid
        .iter()
        .flat_map(|(_, floods)| floods.keys())
        .map(|k| (k.ad.advertiser_id, k.ad.campaign_id))
        .collect();
    let (comparison, invalid_comparison, money_comparison): (
        Comparison,
        Option<InvalidComparison>,
        Option<MoneyComparison>,
    ) = loop {
        let (live, late) = runtime
            .block_on(read_prometheus(
                &client,
                &args.prometheus,
                &args.matchers,
                first,
                last,
                late_until,
            ))
            .with_context(|| format!("reading {}", args.prometheus))?;
        let comparison = compare(&truth, &too_late, &live, late);
        let invalid_comparison = match &invalid {
            Some((invalid, floods)) => {
                let live_invalid = runtime
                    .block_on(read_prometheus_invalid(
                        &client,
                        &args.prometheus,
                        &args.matchers,
                        first,
                        last,
                    ))
                    .with_context(|| format!("reading {}", args.prometheus))?;
                Some(compare_invalid(
                    invalid,
                    floods,
                    &campaigns,
                    first,
                    last,
                    &live,
                    &live_invalid,
                ))
            }
            None => None,
        };
        let money_comparison = match &money {
            Some(money) => {
                let live_money = runtime
                    .block_on(read_prometheus_money(
                        &client,
                        &args.prometheus,
                        &args.matchers,
                        first,
                        last,
                        late_until,
                    ))
                    .with_context(|| format!("reading {}", args.prometheus))?;
                Some(compare_money(
                    money,
                    &campaigns,
                    &flood_campaigns,
                    first,
                    last,
                    &live_money,
                ))
            }
            None => None,
        };
        let exact = comparison.is_exact()
            && invalid_comparison.as_ref().is_none_or(|c| c.is_exact())
            && money_comparison.as_ref().is_none_or(|c| c.is_exact());
        if exact || Instant::now() >= deadline {
            break (comparison, invalid_comparison, money_comparison);
        }
        std::thread::sleep(Duration::from_secs(2));
    };
    print!("{}", comparison.render());
    if let Some(c) = &invalid_comparison {
        print!("{}", c.render());
    }
    if let Some(c) = &money_comparison {
        print!("{}", c.render());
    }
    let invalid_exact = invalid_comparison.as_ref().is_none_or(|c| c.is_exact());
    let money_exact = money_comparison.as_ref().is_none_or(|c| c.is_exact());
    if summary.errors > 0 {
        println!(
            "loadgen saw {} sends go wrong (the truth is exact only without them): {:?}",
            summary.errors, summary.error_examples
        );
    }
    if !comparison.is_exact() {
        println!(
            "differences: a minute not final yet (the exporter writes a minute \
             allowed_lateness_ms = {} ms after its end, once a later record or an idle tick \
             passes it), or clicks lost or doubled — `adclick rollup` of the day names them",
            config.exporter.allowed_lateness_ms
        );
    }
    Ok(comparison.is_exact() && invalid_exact && money_exact && summary.errors == 0)
}
