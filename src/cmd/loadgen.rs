//! `adclick loadgen`: sends planned click traffic to ingest (HTTP) or the clicks topic (Kafka)
//! and writes the ground truth.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use adclick_loadgen::http::HttpTarget;
use adclick_loadgen::invalid::{InvalidConfig, Ipv4Net};
use adclick_loadgen::kafka::KafkaTarget;
use adclick_loadgen::partition::Partitioning;
use adclick_loadgen::plan::{Plan, PlanConfig};
use adclick_loadgen::population::PopulationConfig;
use adclick_loadgen::run::{RunOptions, Target, now_ms, run};
use adclick_loadgen::shape::TrafficShape;
use adclick_loadgen::users::PriceRange;
use anyhow::{Context, Result};
use clap::{Args, ValueEnum};

use crate::config::Config;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum TargetKind {
    /// GET /click/{token} against ingest.
    Http,
    /// Click records straight into the clicks topic.
    Kafka,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ShapeKind {
    Steady,
    Ramp,
    Burst,
}

#[derive(Debug, Args)]
pub struct LoadgenArgs {
    /// Where clicks go.
    #[arg(long, value_enum)]
    target: TargetKind,
    /// Ingest's public base URL (http target).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Clicks per second (the starting rate of a ramp, the base rate of a burst).
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// How long to send, e.g. 90s, 5m.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// How the rate changes over the run: steady, a linear ramp to --ramp-to, or a burst of
    /// --burst-rate from --burst-at for --burst-for.
    #[arg(long, value_enum, default_value = "steady")]
    shape: ShapeKind,
    /// Final rate of a ramp.
    #[arg(long)]
    ramp_to: Option<f64>,
    /// Rate during a burst.
    #[arg(long)]
    burst_rate: Option<f64>,
    /// When a burst starts, from the beginning of the run.
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    burst_at: Duration,
    /// How long a burst lasts.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    burst_for: Duration,
    /// Seed of the plan: the same seed and start time send the same traffic.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Wall-clock ms of the first send (default: now).
    #[arg(long)]
    start_ms: Option<i64>,
    /// Advertisers in the population.
    #[arg(long, default_value_t = 50)]
    advertisers: u64,
    /// Campaigns of each advertiser.
    #[arg(long, default_value_t = 10)]
    campaigns_per_advertiser: u64,
    /// Ads of each campaign.
    #[arg(long, default_value_t = 20)]
    ads_per_campaign: u64,
    /// Exponent of the Zipf law that picks the ad of a click (0: uniform; 1: a few ads get most
    /// clicks).
    #[arg(long, default_value_t = 1.0)]
    zipf: f64,
    /// Hot ads: ads that get --hot-share of all clicks between them (salted keys on Kafka).
    #[arg(long, default_value_t = 2)]
    hot_ads: u64,
    /// Share of all clicks that go to the hot ads.
    #[arg(long, default_value_t = 0.05)]
    hot_share: f64,
    /// Salted keys per hot ad (kafka target; ingest does the same for its hot ads).
    #[arg(long, default_value_t = 4)]
    hot_salt_shards: u32,
    /// Share of clicks whose impression is sent again later (a repeat the truth counts once).
    #[arg(long, default_value_t = 0.02)]
    duplicate_share: f64,
    /// The longest a repeat comes after its first send (uniform up to this), e.g. 90s, 10m.
    #[arg(long, default_value = "90s", value_parser = humantime::parse_duration)]
    duplicate_delay_max: Duration,
    /// The exporter's allowed lateness, which "late" clicks stay within and "too late" ones
    /// exceed (default: the configuration's `[exporter] allowed_lateness_ms`).
    #[arg(long, value_parser = humantime::parse_duration)]
    lateness: Option<Duration>,
    /// Keeps late and too-late clicks this far clear of the lateness boundary, where a click
    /// could land on either side (the exporter's watermark follows the records, not the sends).
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    lateness_margin: Duration,
    /// Share of clicks whose event time lags their send, within the allowed lateness.
    #[arg(long, default_value_t = 0.05)]
    late_share: f64,
    /// Share of clicks that arrive after their minute is final (counted in
    /// `adclick_late_clicks` live, in their own minute by the rollup).
    #[arg(long, default_value_t = 0.002)]
    too_late_share: f64,
    /// Share of requests with a forged token (http target only; default 0.001, 0 for kafka).
    #[arg(long)]
    forged_share: Option<f64>,
    /// Share of requests with an expired token (http target only; default 0.001, 0 for kafka).
    #[arg(long)]
    expired_share: Option<f64>,
    /// Users who click, each click's drawn uniformly among them: their salted hashes go into the
    /// tokens (version 2) and records. 0: none (tokens stay version 1).
    #[arg(long, default_value_t = 0)]
    users: u64,
    /// Price of each click in micro-units of the campaign's currency, signed into its token
    /// (version 2) and record: one price (250000) or a uniform range (100000-2000000).
    #[arg(long, value_name = "MICROS[-MICROS]", value_parser = PriceRange::parse)]
    price_micros: Option<PriceRange>,
    /// The clicks topic's partition count, which the truth of a run with --users or
    /// --price-micros places each click by (the stream counts unique users per partition);
    /// default: read from Kafka's metadata of `[kafka] clicks_topic`.
    #[arg(long)]
    partitions: Option<u32>,
    /// Share of the sends that are invalid traffic (http target only): a quarter each declared
    /// bots (or no User-Agent), prefetches followed by the person's click, clicks from
    /// --deny-network and too-fast clicks; above 0, also one user flood (150 clicks in 15 s) and
    /// one IP flood (30 clicks in 0.6 s) a minute to ads of their own. Writes invalid.csv and
    /// floods.csv next to truth.csv. 0: none, and a seed's traffic is unchanged.
    #[arg(long, default_value_t = 0.0)]
    invalid_share: f64,
    /// The deny-listed network the deny-listed sends come from (X-Forwarded-For); ingest's
    /// `[invalid] deny_list_file` must hold it.
    #[arg(long, value_name = "CIDR", default_value = "203.0.113.0/24")]
    deny_network: Ipv4Net,
    /// Requests / unacknowledged records in flight at most.
    #[arg(long, default_value_t = 256)]
    max_in_flight: usize,
    /// Fail when more than this share of sends went wrong.
    #[arg(long, default_value_t = 0.001)]
    max_error_ratio: f64,
    /// Write truth.csv and summary.json into this folder.
    #[arg(long)]
    truth_dir: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

pub fn run_loadgen(args: LoadgenArgs, config: &Config) -> Result<()> {
    let shape = match args.shape {
        ShapeKind::Steady => TrafficShape::Steady { rate: args.rate },
        ShapeKind::Ramp => TrafficShape::Ramp {
            from: args.rate,
            to: args.ramp_to.context("--shape ramp needs --ramp-to")?,
        },
        ShapeKind::Burst => TrafficShape::Burst {
            rate: args.rate,
            burst_rate: args
                .burst_rate
                .context("--shape burst needs --burst-rate")?,
            at_secs: args.burst_at.as_secs_f64(),
            for_secs: args.burst_for.as_secs_f64(),
        },
    };
    let over_http = matches!(args.target, TargetKind::Http);
    let noise_default = if over_http { 0.001 } else { 0.0 };
    let plan_config = PlanConfig {
        seed: args.seed,
        start_ms: args.start_ms.unwrap_or_else(now_ms),
        duration_secs: args.duration.as_secs_f64(),
        shape,
        population: PopulationConfig {
            advertisers: args.advertisers,
            campaigns_per_advertiser: args.campaigns_per_advertiser,
            ads_per_campaign: args.ads_per_campaign,
            zipf_exponent: args.zipf,
            hot_ads: args.hot_ads,
            hot_share: args.hot_share,
        },
        duplicate_share: args.duplicate_share,
        duplicate_delay_max_secs: args.duplicate_delay_max.as_secs_f64(),
        allowed_lateness_secs: args
            .lateness
            .map_or(config.exporter.allowed_lateness_ms as f64 / 1000.0, |d| {
                d.as_secs_f64()
            }),
        lateness_margin_secs: args.lateness_margin.as_secs_f64(),
        late_share: args.late_share,
        too_late_share: args.too_late_share,
        forged_share: args.forged_share.unwrap_or(noise_default),
        expired_share: args.expired_share.unwrap_or(noise_default),
        users: args.users,
        prices: args.price_micros,
        invalid: InvalidConfig {
            share: args.invalid_share,
            deny_network: args.deny_network,
        },
        ..PlanConfig::default()
    };
    let plan = Plan::new(plan_config).context("invalid traffic plan")?;
    // The hot ads whose keys are salted: ingest's over HTTP, this run's over Kafka.
    let hot_salts: HashMap<u64, u32> = if over_http {
        config.ingest.hot_ads()?
    } else {
        plan.population()
            .hot_ads()
            .iter()
            .map(|ad| (ad.ad_id, args.hot_salt_shards))
            .collect()
    };
    let partitioning = if args.users > 0 || args.price_micros.is_some() {
        let partitions = match args.partitions {
            Some(n) => n,
            None => KafkaTarget::partition_count(
                &config.kafka.brokers,
                &config.kafka.clicks_topic,
                &config.kafka.settings().properties,
                Duration::from_secs(10),
            )
            .with_context(|| {
                format!(
                    "reading the partition count of {} for the truth of spend and users \
                     (or pass --partitions)",
                    config.kafka.clicks_topic
                )
            })?,
        };
        Some(Partitioning {
            partitions,
            hot_salts: hot_salts.clone(),
        })
    } else {
        None
    };
    let target = if over_http {
        let key = config.tokens.signing_key()?;
        let minter = adclick_loadgen::tokens::TokenMinter::new(key);
        Target::Http(HttpTarget::new(
            &args.url,
            minter,
            Duration::from_secs(10),
            args.max_in_flight,
        )?)
    } else {
        let props = config.kafka.settings().properties;
        Target::Kafka(
            KafkaTarget::new(
                &config.kafka.brokers,
                &config.kafka.clicks_topic,
                &props,
                hot_salts,
            )
            .context("creating the Kafka producer")?,
        )
    };
    let opts = RunOptions {
        max_in_flight: args.max_in_flight,
        max_error_ratio: args.max_error_ratio,
        progress: !args.quiet && std::io::IsTerminal::is_terminal(&std::io::stderr()),
        truth_dir: args.truth_dir.clone(),
        partitioning,
        ..RunOptions::default()
    };
    let runtime = tokio::runtime::Runtime::new()?;
    // The run is a task on the runtime's workers, not `block_on`'s own thread: the connections
    // its requests go over are tasks there too, so handing a request to its connection and its
    // answer back is a worker's local queue, not a wake-up of another thread (two context
    // switches a click when the generator has one core: `deploy/bench/ingest` with PIN=1).
    let result = runtime
        .block_on(runtime.spawn(async move { run(plan, &target, &opts).await }))
        .context("the load generator's run panicked")?;
    match result {
        Ok(truth) => {
            println!("{}", serde_json::to_string_pretty(&truth.summary)?);
            if let Some(dir) = &args.truth_dir {
                eprintln!(
                    "ground truth: {}/truth.csv, summary: {}/summary.json",
                    dir.display(),
                    dir.display()
                );
                if args.users > 0 || args.price_micros.is_some() {
                    eprintln!(
                        "spend and unique users: {}/spend.csv, per partition and user {}/user_clicks.csv, per day {}/days.csv",
                        dir.display(),
                        dir.display(),
                        dir.display()
                    );
                }
                if args.invalid_share > 0.0 {
                    eprintln!(
                        "invalid clicks: {}/invalid.csv, flood totals: {}/floods.csv",
                        dir.display(),
                        dir.display()
                    );
                }
            }
            Ok(())
        }
        Err(e) => Err(e).context("loadgen failed"),
    }
}
