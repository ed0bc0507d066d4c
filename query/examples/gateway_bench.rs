//! Benchmark of the query gateway (issue #21, BENCHMARKS.md "query gateway"): the advertiser
//! dashboard's queries through `adclick query` against the same queries sent directly to the
//! Prometheus behind it, with the same load tool, in the same run, interleaved.
//!
//! ```text
//! deploy/bench/query-gateway [--quick]        (builds this and `adclick`, then runs it)
//! gateway_bench --adclick <adclick binary> [--prometheus <binary>] [--ads 100000]
//!     [--minutes 1440] [--rounds 40] [--concurrency 50] [--pairs 100] [--range 6h]
//!     [--max-data-points 1000] [--quick]
//! ```
//!
//! 1. **A day in a scratch Prometheus.** `--ads` ads (2,000 advertisers × 5 campaigns × 10 ads
//!    at 100,000), `--minutes` minute samples each ending at `END` (the last 12:00 UTC before the
//!    run, so that every run reads the same shape of day), written with `adclick-tsdb` as one
//!    block holding what the dashboard reads: the stream's `adclick_clicks` (with `partition`, as
//!    the exporter writes it), the same counts as the rollup's `adclick_clicks{tier="rollup"}`
//!    (as Thanos shows the rollup's external label), the recording rules'
//!    `ad:adclick_clicks:sum_1h` and `campaign:adclick_clicks:sum_1h` (per minute), the
//!    campaigns' `adclick_late_clicks` (sparse) and each ad's `adclick_clicks_open` for the
//!    minute in progress at `END`. A stock Prometheus (the stack's binary, retention 100y, its
//!    default `--query.max-concurrency` of 20) serves it.
//! 2. **The gateway**, the release `adclick query` binary (mimalloc, its audit log on stderr at
//!    INFO, as deployed), with one API key per advertiser, no rate or concurrency limit, a
//!    `max_range_ms` of 3 days, the scratch Prometheus as its live and as its history (`thanos`)
//!    upstream (every panel is answered, the "settled minus live" one included).
//! 3. **The dashboard's queries**: every variable (`label_values`) and panel target of
//!    `grafana/dashboards/advertiser.json`, substituted per advertiser as Grafana does with
//!    "All" chosen for `$campaign` and `$ad` (their `allValue`, `.*`), `$topn` at its default
//!    (10), the dashboard's default range (`--range`, 6 h; "today so far" from 00:00 UTC) ending
//!    at `END`, and a range panel's step as Grafana picks it (`--max-data-points` points, rounded
//!    as Grafana rounds, at least the panel's `interval` or the 15 s scrape interval). Direct
//!    requests carry the text with the advertiser's matcher as the dashboard has it (the
//!    `$advertiser` variable's own query, which has none, gets it); the gateway gets the
//!    dashboard's text with the advertiser's key. Queries are POSTed forms as Grafana sends
//!    them; variables are `GET /api/v1/label/<label>/values?match[]=…&start=…&end=…`.
//! 4. **Checked**: one pass over the first `--concurrency` advertisers compares every answer
//!    through the gateway with the direct one (their `data`), and warms the page cache.
//! 5. **Loaded**: `--concurrency` tasks, each an advertiser (a different one each round, `--rounds`
//!    rounds), run the dashboard's queries one after another without pause; each query goes to
//!    both sides back to back, in a random order per pair. Latency is from sending to the last
//!    byte of the answer. CPU of the gateway and of Prometheus over the phase (utime + stime from
//!    `/proc/<pid>/stat`, and the sum of the threads' `schedstat` run time, in ns).
//! 6. **One at a time**: each query `--pairs` times (other advertisers), again in pairs in a
//!    random order, nothing else in flight: the gateway's added latency unloaded, and its CPU per
//!    query (schedstat of its threads around the batch), with Prometheus' beside it.
//! 7. **Against a stub upstream**: Prometheus and the gateway stopped, a second gateway in front
//!    of an in-process stub answering every request at once with the first advertiser's recorded
//!    direct answer of the query: the gateway's CPU per query (`--pairs` requests each) without
//!    Prometheus working on the same cores; then the first panel's query with the stub answering
//!    after 5, 15 and 40 ms (the same work costs more CPU time after a wait on this machine).
//!
//! Prints the tables of BENCHMARKS.md (Markdown) on stdout, progress on stderr.

#![allow(clippy::unwrap_used)] // An example: a panic with the failed call is how it stops.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use adclick_grafana::{
    VariableSource, builtin_values, load, panel_queries, parse_variable_query, substitute,
    variables,
};
use adclick_query::key_digest_hex;
use adclick_testsupport::{Rng, free_port};
use adclick_tsdb::series::compare_label_sets;
use adclick_tsdb::{BlockOptions, BlockWriter, Label, Sample};

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;
const DAY_MS: i64 = 24 * HOUR_MS;
const ADS_PER_CAMPAIGN: u32 = 10;
const CAMPAIGNS_PER_ADVERTISER: u32 = 5;
const ADS_PER_ADVERTISER: u32 = ADS_PER_CAMPAIGN * CAMPAIGNS_PER_ADVERTISER;
/// Prometheus' default scrape interval as Grafana's datasource assumes it (the lower bound of
/// `$__interval`).
const SCRAPE_INTERVAL_MS: i64 = 15_000;
/// The exporter's partitions (the `partition` label of the stream's series).
const PARTITIONS: u32 = 8;
/// How often the exporter writes the running count of the open minute.
const OPEN_EVERY_MS: i64 = 2_000;

// ---- options ------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Options {
    adclick: PathBuf,
    prometheus: Option<String>,
    ads: u32,
    minutes: u32,
    rounds: usize,
    concurrency: usize,
    pairs: usize,
    range_ms: i64,
    max_data_points: i64,
    quick: bool,
}

fn options() -> Options {
    let mut o = Options {
        adclick: PathBuf::new(),
        prometheus: None,
        ads: 100_000,
        minutes: 1440,
        rounds: 40,
        concurrency: 50,
        pairs: 100,
        range_ms: 6 * HOUR_MS,
        max_data_points: 1000,
        quick: false,
    };
    let mut given = BTreeMap::new();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--quick" {
            o.quick = true;
            continue;
        }
        let value = args
            .next()
            .unwrap_or_else(|| panic!("{flag} needs a value"));
        given.insert(flag, value);
    }
    if o.quick {
        // For CI and the documentation: a tenth of the ads, a few rounds.
        o.ads = 10_000;
        o.rounds = 4;
        o.pairs = 20;
    }
    for (flag, value) in given {
        let number = || -> u64 {
            value
                .parse()
                .unwrap_or_else(|_| panic!("{flag}: {value} is not a number"))
        };
        match flag.as_str() {
            "--adclick" => o.adclick = PathBuf::from(&value),
            "--prometheus" => o.prometheus = Some(value),
            "--ads" => o.ads = number() as u32,
            "--minutes" => o.minutes = number() as u32,
            "--rounds" => o.rounds = number() as usize,
            "--concurrency" => o.concurrency = number() as usize,
            "--pairs" => o.pairs = number() as usize,
            "--max-data-points" => o.max_data_points = number() as i64,
            "--range" => {
                o.range_ms = humantime::parse_duration(&value)
                    .unwrap_or_else(|e| panic!("--range {value}: {e}"))
                    .as_millis() as i64
            }
            _ => panic!("unknown flag {flag}"),
        }
    }
    assert!(
        o.adclick.is_file(),
        "--adclick <the release adclick binary> is required (deploy/bench/query-gateway builds it)"
    );
    assert!(
        o.ads >= ADS_PER_ADVERTISER && o.ads % ADS_PER_ADVERTISER == 0,
        "--ads must be a multiple of {ADS_PER_ADVERTISER}"
    );
    assert!((2..=1440 * 7).contains(&o.minutes), "--minutes 2 ..= 10080");
    o
}

// ---- the population and its samples --------------------------------------------------------

fn advertiser_id(advertiser: u32) -> u64 {
    10_000 + u64::from(advertiser)
}

fn ids(ad: u32) -> (String, String, String) {
    (
        advertiser_id(ad / ADS_PER_ADVERTISER).to_string(),
        (100_000 + ad / ADS_PER_CAMPAIGN).to_string(),
        (1_000_000 + ad).to_string(),
    )
}

/// The key of advertiser number `advertiser` (0-based).
fn key_of(advertiser: u32) -> String {
    format!("bench-gateway-key-{advertiser}")
}

/// Uniform in [0, 1).
fn unit(rng: &mut Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// A Poisson count with mean `lambda` (Knuth's method; the means here stay small).
fn poisson(rng: &mut Rng, lambda: f64) -> u32 {
    let limit = (-lambda).exp();
    let mut product = unit(rng);
    let mut count = 0;
    while product > limit {
        count += 1;
        product *= unit(rng);
    }
    count
}

/// The minute-end timestamps of the day: `minutes` of them, the last at `end`.
fn stamps(end: i64, minutes: u32) -> impl Iterator<Item = i64> {
    (0..i64::from(minutes)).map(move |k| end - (i64::from(minutes) - 1 - k) * MINUTE_MS)
}

/// One ad's clicks per minute: a mean rate between 0.01 and 20 clicks a minute (log-uniform:
/// most ads are quiet, a few busy), shaped by a day curve peaking at 12:00 UTC; zero minutes
/// included, as the exporter writes them. The same counts every run.
fn ad_counts(ad: u32, end: i64, minutes: u32) -> Vec<u32> {
    let mut rng = Rng(0x0ad5_eed0 ^ (u64::from(ad) << 20));
    let rate = (0.01f64.ln() + unit(&mut rng) * (20f64.ln() - 0.01f64.ln())).exp();
    stamps(end, minutes)
        .map(|t| {
            let phase = t.rem_euclid(DAY_MS) as f64 / DAY_MS as f64 * std::f64::consts::TAU;
            poisson(&mut rng, rate * (0.4 + 0.6 * (1.0 - phase.cos()) / 2.0))
        })
        .collect()
}

/// `ad:adclick_clicks:sum_1h` from an ad's counts: at each minute end `t`, the clicks of the 60
/// minutes ending 2 minutes before `t` (the rule's `[59m59s999ms] offset 2m`); from the third
/// minute of the day on (no earlier input, no sample).
fn sum_1h(counts: &[u32]) -> Vec<Option<u64>> {
    let mut out = Vec::with_capacity(counts.len());
    let mut window = 0u64;
    for k in 0..counts.len() {
        // The window at k holds counts[k-61 ..= k-2].
        if k >= 2 {
            window += u64::from(counts[k - 2]);
        }
        if k >= 62 {
            window -= u64::from(counts[k - 62]);
        }
        out.push((k >= 2).then_some(window));
    }
    out
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    /// `adclick_clicks{…, partition}`: the stream's minutes.
    Clicks(u32),
    /// `adclick_clicks{…, tier="rollup"}`: the rollup's, as Thanos presents them.
    Rollup(u32),
    /// `adclick_clicks_open{…, partition}`: the minute in progress at the end.
    Open(u32),
    /// `ad:adclick_clicks:sum_1h{ad_id, advertiser_id, campaign_id}`.
    AdSum1h(u32),
    /// `campaign:adclick_clicks:sum_1h{advertiser_id, campaign_id}`.
    CampaignSum1h(u32),
    /// `adclick_late_clicks{advertiser_id, campaign_id, partition}`.
    Late(u32),
}

fn labels(kind: Kind) -> Vec<Label> {
    let ad_labels = |name: &str, ad: u32, last: Option<Label>| {
        let (advertiser, campaign, ad_id) = ids(ad);
        let mut l = vec![
            Label::new("__name__", name),
            Label::new("ad_id", ad_id),
            Label::new("advertiser_id", advertiser),
            Label::new("campaign_id", campaign),
        ];
        l.extend(last);
        l
    };
    let campaign_labels = |name: &str, campaign: u32, last: Option<Label>| {
        let (advertiser, campaign_id, _) = ids(campaign * ADS_PER_CAMPAIGN);
        let mut l = vec![
            Label::new("__name__", name),
            Label::new("advertiser_id", advertiser),
            Label::new("campaign_id", campaign_id),
        ];
        l.extend(last);
        l
    };
    let partition = |n: u32| Some(Label::new("partition", (n % PARTITIONS).to_string()));
    match kind {
        Kind::Clicks(ad) => ad_labels("adclick_clicks", ad, partition(ad)),
        Kind::Rollup(ad) => ad_labels("adclick_clicks", ad, Some(Label::new("tier", "rollup"))),
        Kind::Open(ad) => ad_labels("adclick_clicks_open", ad, partition(ad)),
        Kind::AdSum1h(ad) => ad_labels("ad:adclick_clicks:sum_1h", ad, None),
        Kind::CampaignSum1h(c) => campaign_labels("campaign:adclick_clicks:sum_1h", c, None),
        Kind::Late(c) => campaign_labels("adclick_late_clicks", c, partition(c)),
    }
}

fn samples(kind: Kind, end: i64, minutes: u32) -> Vec<Sample> {
    let to_samples = |values: Vec<Option<u64>>| -> Vec<Sample> {
        stamps(end, minutes)
            .zip(values)
            .filter_map(|(t, v)| v.map(|v| Sample::new(t, v as f64)))
            .collect()
    };
    match kind {
        Kind::Clicks(ad) | Kind::Rollup(ad) => to_samples(
            ad_counts(ad, end, minutes)
                .into_iter()
                .map(|c| Some(u64::from(c)))
                .collect(),
        ),
        Kind::AdSum1h(ad) => to_samples(sum_1h(&ad_counts(ad, end, minutes))),
        Kind::CampaignSum1h(c) => {
            let mut total = vec![None; minutes as usize];
            for ad in c * ADS_PER_CAMPAIGN..(c + 1) * ADS_PER_CAMPAIGN {
                for (t, v) in total.iter_mut().zip(sum_1h(&ad_counts(ad, end, minutes))) {
                    if let Some(v) = v {
                        *t = Some(t.unwrap_or(0) + v);
                    }
                }
            }
            to_samples(total)
        }
        Kind::Late(c) => {
            // About one minute in twenty has late clicks (1 to 3), written in the minute they came.
            let mut rng = Rng(0x1a7e ^ (u64::from(c) << 24));
            to_samples(
                (0..minutes)
                    .map(|_| (rng.range(0, 20) == 0).then(|| rng.range(1, 4) as u64))
                    .collect(),
            )
        }
        Kind::Open(ad) => {
            // The running count of the minute ending just after `end`, every 2 s up to `end`.
            let mut rng = Rng(0x09e4 ^ (u64::from(ad) << 20));
            let rate = 1.0 + rng.range(0, 10) as f64;
            let mut count = 0;
            (0..MINUTE_MS / OPEN_EVERY_MS)
                .rev()
                .map(|i| {
                    count += poisson(&mut rng, rate * OPEN_EVERY_MS as f64 / MINUTE_MS as f64);
                    Sample::new(end - i * OPEN_EVERY_MS, f64::from(count))
                })
                .collect()
        }
    }
}

struct Loaded {
    series: u64,
    samples: u64,
    chunks: u64,
    bytes: u64,
    seconds: f64,
}

/// Writes the whole data set as one block into `data` (one block: overlapping blocks would be
/// compacted by Prometheus during the run).
fn write_day(data: &Path, ads: u32, end: i64, minutes: u32) -> Loaded {
    let started = Instant::now();
    let campaigns = ads / ADS_PER_CAMPAIGN;
    let mut all: Vec<(Vec<Label>, Kind)> = (0..ads)
        .flat_map(|ad| {
            [
                Kind::Clicks(ad),
                Kind::Rollup(ad),
                Kind::Open(ad),
                Kind::AdSum1h(ad),
            ]
        })
        .chain((0..campaigns).flat_map(|c| [Kind::CampaignSum1h(c), Kind::Late(c)]))
        .map(|k| (labels(k), k))
        .collect();
    all.sort_by(|a, b| compare_label_sets(&a.0, &b.0));
    let from = end - i64::from(minutes) * MINUTE_MS;
    let external = BTreeMap::from([("bench".to_string(), "query-gateway".to_string())]);
    let mut writer =
        BlockWriter::create(data, BlockOptions::new(from, end + 1, external, "bench")).unwrap();
    for (labels, kind) in &all {
        let samples = samples(*kind, end, minutes);
        if !samples.is_empty() {
            writer.add_series(labels, &samples).unwrap();
        }
    }
    let block = writer.finish().unwrap();
    Loaded {
        series: block.meta.stats.num_series,
        samples: block.meta.stats.num_samples,
        chunks: block.meta.stats.num_chunks,
        bytes: tree_bytes(&block.dir),
        seconds: started.elapsed().as_secs_f64(),
    }
}

/// Total bytes of the regular files under `dir`.
fn tree_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                tree_bytes(&entry.path())
            } else {
                entry.metadata().unwrap().len()
            }
        })
        .sum()
}

// ---- processes ---------------------------------------------------------------------------------

/// A child process killed when dropped.
struct Server {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Server {
    fn start(
        name: &'static str,
        dir: &Path,
        program: &Path,
        args: &[String],
        env: &[(&str, String)],
    ) -> Server {
        let log = dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(program)
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name} ({}): {e}", program.display()));
        Server { name, child, log }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    async fn wait_ok(&mut self, url: &str, timeout: Duration) {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "{} exited ({status}); its log: {}",
                    self.name,
                    self.log.display()
                );
            }
            if matches!(http.get(url).send().await, Ok(r) if r.status().is_success()) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} not ready at {url} after {timeout:?}; its log: {}",
                self.name,
                self.log.display()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU a process has used: utime + stime (clock ticks, every thread that ever ran) and the run
/// time of its live threads (`schedstat`, ns: precise, for short batches).
#[derive(Debug, Clone, Copy, Default)]
struct Cpu {
    stat_s: f64,
    sched_ns: u64,
}

fn cpu(pid: u32) -> Cpu {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(") ")
        .map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let stat_s = (ticks(11) + ticks(12)) as f64 / clock_ticks() as f64;
    let mut sched_ns = 0;
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            let text = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
            sched_ns += text
                .split_whitespace()
                .next()
                .and_then(|f| f.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    Cpu { stat_s, sched_ns }
}

/// USER_HZ, from `getconf CLK_TCK` (100 on Linux).
fn clock_ticks() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100)
    })
}

impl std::ops::Sub for Cpu {
    type Output = Cpu;
    fn sub(self, rhs: Cpu) -> Cpu {
        Cpu {
            stat_s: self.stat_s - rhs.stat_s,
            sched_ns: self.sched_ns.saturating_sub(rhs.sched_ns),
        }
    }
}

/// VmRSS and VmHWM of a process, MiB.
fn rss_mib(pid: u32) -> (f64, f64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

// ---- the dashboard's queries ------------------------------------------------------------

#[derive(Debug, Clone)]
enum Call {
    Instant {
        query: String,
        time: i64,
    },
    Range {
        query: String,
        start: i64,
        end: i64,
        step: i64,
    },
    LabelValues {
        label: String,
        selector: String,
        start: i64,
        end: i64,
    },
}

/// One query of the dashboard for one advertiser: what goes directly, what through the gateway.
#[derive(Debug, Clone)]
struct Pair {
    direct: Call,
    gateway: Call,
}

/// A query of the dashboard: its name and how it is made for an advertiser.
struct Template {
    name: String,
    kind: &'static str,
    /// The text with the dashboard's variables; `$advertiser` still in it.
    text: String,
    /// A variable's label; None for a panel.
    label: Option<String>,
    instant: bool,
    start: i64,
    end: i64,
    step: i64,
    /// Builtin values for this query's range.
    builtins: BTreeMap<String, String>,
}

/// Grafana's `roundInterval` (kbn): an interval of `ms` rounded to a readable one.
fn round_interval(ms: i64) -> i64 {
    const TABLE: &[(i64, i64)] = &[
        (10, 1),
        (15, 10),
        (35, 20),
        (75, 50),
        (150, 100),
        (350, 200),
        (750, 500),
        (1_500, 1_000),
        (3_500, 2_000),
        (7_500, 5_000),
        (12_500, 10_000),
        (17_500, 15_000),
        (25_000, 20_000),
        (45_000, 30_000),
        (90_000, 60_000),
        (210_000, 120_000),
        (450_000, 300_000),
        (1_050_000, 600_000),
        (2_100_000, 900_000),
        (3_900_000, 1_800_000),
        (7_200_000, 3_600_000),
        (10_800_000, 7_200_000),
        (21_600_000, 10_800_000),
        (43_200_000, 21_600_000),
        (86_400_000, 43_200_000),
    ];
    TABLE
        .iter()
        .find(|(below, _)| ms < *below)
        .map_or(86_400_000, |(_, r)| *r)
}

fn templates(o: &Options, end: i64) -> Vec<Template> {
    let path = adclick_grafana::dashboards_dir().join("advertiser.json");
    let d = load(&path).unwrap_or_else(|e| panic!("{}: {e:?}", path.display()));
    let from = end - o.range_ms;
    let interval = |min: Option<&str>, from: i64| {
        let min_ms = min
            .map(|m| humantime::parse_duration(m).unwrap().as_millis() as i64)
            .unwrap_or(SCRAPE_INTERVAL_MS);
        round_interval((end - from) / o.max_data_points).max(min_ms)
    };
    let builtins = |from: i64, step: i64| {
        let rate = (step + SCRAPE_INTERVAL_MS).max(4 * SCRAPE_INTERVAL_MS);
        builtin_values(
            from,
            end,
            Duration::from_millis(step as u64),
            Duration::from_millis(rate as u64),
        )
    };
    let mut out = vec![];
    for v in variables(&d).iter().filter(|v| v.kind == "query") {
        let step = interval(None, from);
        let Ok(VariableSource::LabelValues {
            label,
            selector: Some(selector),
        }) = parse_variable_query(&v.query)
        else {
            panic!(
                "${}: {} is not label_values(selector, label)",
                v.name, v.query
            );
        };
        out.push(Template {
            name: format!("${}", v.name),
            kind: "label values",
            text: selector,
            label: Some(label),
            instant: false,
            start: from,
            end,
            step,
            builtins: builtins(from, step),
        });
    }
    for q in panel_queries(&d) {
        // A panel's own relative time: "now/d" is today so far, from 00:00 UTC.
        let from = match q.time_from.as_deref() {
            Some("now/d") => end.div_euclid(DAY_MS) * DAY_MS,
            Some(other) => panic!("panel {}: timeFrom {other} not handled", q.panel_id),
            None => from,
        };
        let step = interval(q.interval.as_deref(), from);
        out.push(Template {
            name: format!("{}{} {}", q.panel_id, q.ref_id, q.panel_title),
            kind: if q.instant { "instant" } else { "range" },
            text: q.expr.clone(),
            label: None,
            instant: q.instant,
            // Grafana aligns a range query's ends to its step.
            start: from.div_euclid(step) * step,
            end: end.div_euclid(step) * step,
            step,
            builtins: builtins(from, step),
        });
    }
    out
}

/// The dashboard's values for `advertiser` (a number, 0-based): "All" for campaign and ad.
fn values(advertiser: u32, t: &Template) -> BTreeMap<String, String> {
    let mut v = t.builtins.clone();
    v.insert("advertiser".into(), advertiser_id(advertiser).to_string());
    v.insert("campaign".into(), ".*".into());
    v.insert("ad".into(), ".*".into());
    v.insert("topn".into(), "10".into());
    v.insert("datasource".into(), "adclick-prometheus".into());
    v
}

fn pair(t: &Template, advertiser: u32) -> Pair {
    let text = substitute(&t.text, &values(advertiser, t)).unwrap();
    if let Some(label) = &t.label {
        // Directly, the advertiser's matcher as the dashboard would need it: the `$advertiser`
        // variable's own selector has none.
        let ours = format!("advertiser_id=\"{}\"", advertiser_id(advertiser));
        let restricted = if text.contains(&ours) {
            text.clone()
        } else {
            text.replacen('{', &format!("{{{ours}, "), 1)
        };
        let call = |selector: String| Call::LabelValues {
            label: label.clone(),
            selector,
            start: t.start,
            end: t.end,
        };
        return Pair {
            direct: call(restricted),
            gateway: call(text),
        };
    }
    let call = if t.instant {
        Call::Instant {
            query: text,
            time: t.end,
        }
    } else {
        Call::Range {
            query: text,
            start: t.start,
            end: t.end,
            step: t.step,
        }
    };
    Pair {
        direct: call.clone(),
        gateway: call,
    }
}

// ---- sending ------------------------------------------------------------------------------

/// Unix ms as Prometheus' time parameters: seconds, milliseconds as a fraction.
fn seconds(ms: i64) -> String {
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

/// Sends `call` to `base` (with `key` as a bearer token when given); the status and the body.
async fn send(
    http: &reqwest::Client,
    base: &str,
    call: &Call,
    key: Option<&str>,
) -> Result<(u16, axum::body::Bytes), String> {
    let request = match call {
        Call::Instant { query, time } => http
            .post(format!("{base}/api/v1/query"))
            .form(&[("query", query.as_str()), ("time", &seconds(*time))]),
        Call::Range {
            query,
            start,
            end,
            step,
        } => http.post(format!("{base}/api/v1/query_range")).form(&[
            ("query", query.as_str()),
            ("start", &seconds(*start)),
            ("end", &seconds(*end)),
            ("step", &seconds(*step)),
        ]),
        Call::LabelValues {
            label,
            selector,
            start,
            end,
        } => http
            .get(format!("{base}/api/v1/label/{label}/values"))
            .query(&[
                ("match[]", selector.as_str()),
                ("start", &seconds(*start)),
                ("end", &seconds(*end)),
            ]),
    };
    let request = match key {
        Some(k) => request.bearer_auth(k),
        None => request,
    };
    let response = request.send().await.map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let body = response.bytes().await.map_err(|e| e.to_string())?;
    Ok((status, body))
}

/// Both sides of the benchmark.
#[derive(Clone)]
struct Sides {
    http: reqwest::Client,
    prometheus: String,
    gateway: String,
}

const DIRECT: usize = 0;
const GATEWAY: usize = 1;

impl Sides {
    /// One query of `advertiser` on `side`: its latency, µs (None when it failed).
    async fn timed(&self, side: usize, p: &Pair, advertiser: u32) -> Result<u32, String> {
        let started = Instant::now();
        let key = key_of(advertiser);
        let (status, body) = if side == DIRECT {
            send(&self.http, &self.prometheus, &p.direct, None).await?
        } else {
            send(&self.http, &self.gateway, &p.gateway, Some(&key)).await?
        };
        let us = started.elapsed().as_micros() as u32;
        if status != 200 {
            return Err(format!("{status}: {}", String::from_utf8_lossy(&body)));
        }
        Ok(us)
    }

    /// Both sides of `p` for `advertiser`, in a random order.
    async fn both(&self, rng: &mut Rng, p: &Pair, advertiser: u32) -> [Result<u32, String>; 2] {
        let mut out = [Ok(0), Ok(0)];
        let order = if rng.range(0, 2) == 0 {
            [DIRECT, GATEWAY]
        } else {
            [GATEWAY, DIRECT]
        };
        for side in order {
            out[side] = self.timed(side, p, advertiser).await;
        }
        out
    }
}

/// A Prometheus answer's `data`, label-value lists sorted.
fn data_of(body: &[u8]) -> serde_json::Value {
    let json: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let mut data = json["data"].clone();
    if let Some(list) = data.as_array_mut() {
        list.sort_by_key(|v| v.to_string());
    }
    data
}

/// Per query (template), per side: latencies in µs.
type Latencies = Vec<[Vec<u32>; 2]>;

fn percentile(sorted: &[u32], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    f64::from(sorted[rank - 1]) / 1000.0
}

fn pct(values: &mut [u32]) -> (f64, f64) {
    values.sort_unstable();
    (percentile(values, 0.5), percentile(values, 0.99))
}

/// An upstream answering every request with one answer after a delay, both set by the run.
#[derive(Clone, Default)]
struct Stub {
    answer: std::sync::Arc<std::sync::Mutex<(axum::body::Bytes, Duration)>>,
}

impl Stub {
    fn answer(&self, body: axum::body::Bytes, delay: Duration) {
        *self.answer.lock().unwrap() = (body, delay);
    }

    /// Serves on a port of its own; its base URL.
    async fn start(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let stub = self.clone();
        // The request's body is read (a form), so that the connection is kept alive.
        let app = axum::Router::new().fallback(move |_form: axum::body::Bytes| {
            let (body, delay) = stub.answer.lock().unwrap().clone();
            async move {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    body,
                )
            }
        });
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        url
    }
}

// ---- the run ----------------------------------------------------------------------------------

#[tokio::main]
async fn main() {
    let o = options();
    let advertisers = o.ads / ADS_PER_ADVERTISER;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    // The last 12:00 UTC before now: every run reads the same shape of day.
    let noon = now.div_euclid(DAY_MS) * DAY_MS + 12 * HOUR_MS;
    let end = if noon <= now { noon } else { noon - DAY_MS };
    let dir = tempfile::Builder::new()
        .prefix("bench-query-gateway-")
        .tempdir()
        .unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    eprintln!(
        "writing {} ads x {} minutes ending {} into {}",
        o.ads,
        o.minutes,
        humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(end as u64)),
        data.display()
    );
    let loaded = write_day(&data, o.ads, end, o.minutes);
    eprintln!(
        "block: {} series, {} samples, {} bytes, {:.1} s",
        loaded.series, loaded.samples, loaded.bytes, loaded.seconds
    );

    // ---- Prometheus
    let prometheus_bin = o.prometheus.clone().unwrap_or_else(|| {
        adclick_testsupport::Stack::get()
            .prometheus_bin()
            .to_string()
    });
    std::fs::write(dir.path().join("prometheus.yml"), "global: {}\n").unwrap();
    let prom_port = free_port();
    let prom_url = format!("http://127.0.0.1:{prom_port}");
    let prom_started = Instant::now();
    let mut prometheus = Server::start(
        "prometheus",
        dir.path(),
        Path::new(&prometheus_bin),
        &[
            format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ),
            format!("--storage.tsdb.path={}", data.display()),
            "--storage.tsdb.retention.time=100y".into(),
            format!("--web.listen-address=127.0.0.1:{prom_port}"),
        ],
        &[],
    );
    prometheus
        .wait_ok(&format!("{prom_url}/-/ready"), Duration::from_secs(300))
        .await;
    let prom_ready_s = prom_started.elapsed().as_secs_f64();
    let (prom_rss_start, _) = rss_mib(prometheus.pid());
    eprintln!("prometheus ready in {prom_ready_s:.1} s, RSS {prom_rss_start:.0} MiB");

    // ---- the gateway
    let keys_file = dir.path().join("keys");
    let keys: String = (0..advertisers)
        .map(|a| format!("{} {}\n", key_digest_hex(&key_of(a)), advertiser_id(a)))
        .collect();
    std::fs::write(&keys_file, keys).unwrap();
    let (api_port, admin_port) = (free_port(), free_port());
    let config = format!(
        "[query]\nlisten = \"127.0.0.1:{api_port}\"\nadmin_listen = \"127.0.0.1:{admin_port}\"\n\
         prometheus_url = \"{prom_url}\"\nhistory_url = \"{prom_url}\"\nhistory_kind = \"thanos\"\n\
         requests_per_second = 0\nmax_concurrent_queries = 0\nmax_range_ms = {}\n\
         api_keys_file = \"{}\"\n",
        3 * DAY_MS,
        keys_file.display()
    );
    let config_file = dir.path().join("adclick.toml");
    std::fs::write(&config_file, &config).unwrap();
    let mut gateway = Server::start(
        "gateway",
        dir.path(),
        &o.adclick,
        &["query".to_string()],
        &[("ADCLICK_CONFIG", config_file.display().to_string())],
    );
    gateway
        .wait_ok(
            &format!("http://127.0.0.1:{admin_port}/readyz"),
            Duration::from_secs(60),
        )
        .await;
    eprintln!("gateway ready (pid {})", gateway.pid());

    let sides = Sides {
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(4 * o.concurrency)
            .timeout(Duration::from_secs(120))
            .build()
            .unwrap(),
        prometheus: prom_url.clone(),
        gateway: format!("http://127.0.0.1:{api_port}"),
    };
    let templates = templates(&o, end);
    let n = templates.len();

    // ---- checked, and the page cache warmed
    let mut rng = Rng(21);
    let mut mismatches = vec![];
    let mut answer_bytes = vec![0u64; n];
    let mut answer_items = vec![0u64; n];
    // The first advertiser's direct answers: what the stub upstream answers later.
    let mut recorded = vec![axum::body::Bytes::new(); n];
    let checked = o.concurrency.min(advertisers as usize) as u32;
    for a in 0..checked {
        for (i, t) in templates.iter().enumerate() {
            let p = pair(t, a);
            let key = key_of(a);
            let direct = send(&sides.http, &sides.prometheus, &p.direct, None).await;
            let through = send(&sides.http, &sides.gateway, &p.gateway, Some(&key)).await;
            match (direct, through) {
                (Ok((200, d)), Ok((200, g))) => {
                    let (dd, gd) = (data_of(&d), data_of(&g));
                    answer_bytes[i] += d.len() as u64;
                    if a == 0 {
                        recorded[i] = d.clone();
                    }
                    answer_items[i] += match &dd {
                        serde_json::Value::Array(list) => list.len() as u64,
                        other => other["result"].as_array().map_or(0, |r| r.len() as u64),
                    };
                    if dd != gd {
                        mismatches.push(format!("{} for {a}: {} vs {}", t.name, dd, gd));
                    }
                }
                other => mismatches.push(format!("{} for {a}: {other:?}", t.name)),
            }
        }
    }
    eprintln!(
        "checked: {} queries x {checked} advertisers, {} differences",
        n,
        mismatches.len()
    );
    for m in mismatches.iter().take(5) {
        eprintln!("  {m}");
    }

    // ---- loaded: `concurrency` advertisers at once, `rounds` rounds
    eprintln!(
        "loaded phase: {} advertisers at once, {} rounds, {} queries x 2 sides each",
        o.concurrency, o.rounds, n
    );
    let before = (
        cpu(gateway.pid()),
        cpu(prometheus.pid()),
        cpu(std::process::id()),
    );
    let started = Instant::now();
    let tasks: Vec<_> = (0..o.concurrency)
        .map(|task| {
            let sides = sides.clone();
            let pairs_of = |a: u32| templates.iter().map(|t| pair(t, a)).collect::<Vec<_>>();
            let plan: Vec<(u32, Vec<Pair>)> = (0..o.rounds)
                .map(|r| {
                    let a = ((r * o.concurrency + task) % advertisers as usize) as u32;
                    (a, pairs_of(a))
                })
                .collect();
            tokio::spawn(async move {
                let mut rng = Rng(1000 + task as u64);
                let mut lat: Latencies = vec![[vec![], vec![]]; n];
                let mut errors = vec![];
                for (a, pairs) in plan {
                    for (i, p) in pairs.iter().enumerate() {
                        for (side, r) in sides.both(&mut rng, p, a).await.into_iter().enumerate() {
                            match r {
                                Ok(us) => lat[i][side].push(us),
                                Err(e) => errors.push(format!("query {i} side {side}: {e}")),
                            }
                        }
                    }
                }
                (lat, errors)
            })
        })
        .collect();
    let mut loaded_lat: Latencies = vec![[vec![], vec![]]; n];
    let mut errors = vec![];
    for t in tasks {
        let (lat, errs) = t.await.unwrap();
        for (all, one) in loaded_lat.iter_mut().zip(lat) {
            let [d, g] = one;
            all[DIRECT].extend(d);
            all[GATEWAY].extend(g);
        }
        errors.extend(errs);
    }
    let wall = started.elapsed().as_secs_f64();
    let after = (
        cpu(gateway.pid()),
        cpu(prometheus.pid()),
        cpu(std::process::id()),
    );
    let (g_cpu, p_cpu, self_cpu) = (after.0 - before.0, after.1 - before.1, after.2 - before.2);
    let per_side = (o.rounds * o.concurrency * n) as f64;
    eprintln!("loaded phase: {wall:.1} s, {} errors", errors.len());
    for e in errors.iter().take(5) {
        eprintln!("  {e}");
    }

    // ---- one at a time
    eprintln!("one at a time: {} pairs per query", o.pairs);
    let mut seq_lat: Latencies = vec![[vec![], vec![]]; n];
    let mut seq_cpu = vec![(0f64, 0f64); n];
    let mut seq_errors = 0;
    for (i, t) in templates.iter().enumerate() {
        let (g0, p0) = (cpu(gateway.pid()), cpu(prometheus.pid()));
        for k in 0..o.pairs {
            let a = ((k * 7 + 3) % advertisers as usize) as u32;
            let p = pair(t, a);
            for (side, r) in sides.both(&mut rng, &p, a).await.into_iter().enumerate() {
                match r {
                    Ok(us) => seq_lat[i][side].push(us),
                    Err(_) => seq_errors += 1,
                }
            }
        }
        let (g1, p1) = (cpu(gateway.pid()), cpu(prometheus.pid()));
        seq_cpu[i] = (
            (g1 - g0).sched_ns as f64 / o.pairs as f64 / 1000.0,
            (p1 - p0).sched_ns as f64 / (2 * o.pairs) as f64 / 1000.0,
        );
    }
    let (prom_rss_end, prom_hwm) = rss_mib(prometheus.pid());
    let (gw_rss, gw_hwm) = rss_mib(gateway.pid());
    drop(gateway);
    drop(prometheus);

    // ---- against a stub upstream: the gateway's own work, without Prometheus' beside it
    let stub = Stub::default();
    let stub_url = stub.start().await;
    let (stub_api, stub_admin) = (free_port(), free_port());
    let stub_config = dir.path().join("adclick-stub.toml");
    std::fs::write(
        &stub_config,
        config
            .replace(&prom_url, &stub_url)
            .replace(&format!(":{api_port}\""), &format!(":{stub_api}\""))
            .replace(&format!(":{admin_port}\""), &format!(":{stub_admin}\"")),
    )
    .unwrap();
    let mut stub_gateway = Server::start(
        "gateway-stub",
        dir.path(),
        &o.adclick,
        &["query".to_string()],
        &[("ADCLICK_CONFIG", stub_config.display().to_string())],
    );
    stub_gateway
        .wait_ok(
            &format!("http://127.0.0.1:{stub_admin}/readyz"),
            Duration::from_secs(60),
        )
        .await;
    let through_stub = Sides {
        gateway: format!("http://127.0.0.1:{stub_api}"),
        ..sides.clone()
    };
    eprintln!(
        "against a stub upstream: {} requests per query, then at delays",
        o.pairs
    );
    // Per query: gateway CPU µs per request and the p50 latency, the stub answering at once.
    let mut stub_work = vec![(0f64, 0f64); n];
    let mut stub_errors = 0;
    let pairs = o.pairs;
    let gateway_only = |i: usize, delay: Duration| {
        let (stub, through_stub, pid) = (stub.clone(), through_stub.clone(), stub_gateway.pid());
        let (t, body) = (&templates[i], recorded[i].clone());
        async move {
            stub.answer(body, delay);
            let mut latencies = vec![];
            let mut errors = 0;
            let before = cpu(pid);
            for k in 0..pairs {
                let a = ((k * 7 + 3) % advertisers as usize) as u32;
                match through_stub.timed(GATEWAY, &pair(t, a), a).await {
                    Ok(us) => latencies.push(us),
                    Err(_) => errors += 1,
                }
            }
            let used = (cpu(pid) - before).sched_ns as f64 / pairs as f64 / 1000.0;
            (used, pct(&mut latencies).0, errors)
        }
    };
    // Warm the gateway's connections and allocator first.
    let _ = gateway_only(0, Duration::ZERO).await;
    for (i, work) in stub_work.iter_mut().enumerate() {
        let (used, p50, errors) = gateway_only(i, Duration::ZERO).await;
        *work = (used, p50);
        stub_errors += errors;
    }
    // The first panel's query with the stub answering later: CPU per request against the wait.
    let first_panel = templates.iter().position(|t| t.label.is_none()).unwrap();
    let mut by_delay = vec![];
    for delay_ms in [0, 5, 15, 40, 0] {
        let (used, _, errors) = gateway_only(first_panel, Duration::from_millis(delay_ms)).await;
        by_delay.push((delay_ms, used));
        stub_errors += errors;
    }
    drop(stub_gateway);

    // ---- report
    let fmt_ms = |v: f64| {
        if v < 10.0 {
            format!("{v:.2}")
        } else {
            format!("{v:.1}")
        }
    };
    println!(
        "Loaded: {} ads ({} advertisers x {CAMPAIGNS_PER_ADVERTISER} campaigns x {ADS_PER_CAMPAIGN} ads), {} minutes ending {} — one block of {} series, {} samples, {} chunks, {:.1} MiB on disk, written in {:.1} s; Prometheus ready {:.1} s after start, RSS {:.0} MiB then, {:.0} MiB at the end (peak {:.0} MiB). Gateway RSS {:.0} MiB (peak {:.0} MiB).",
        o.ads,
        advertisers,
        o.minutes,
        humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(end as u64)),
        loaded.series,
        loaded.samples,
        loaded.chunks,
        loaded.bytes as f64 / (1 << 20) as f64,
        loaded.seconds,
        prom_ready_s,
        prom_rss_start,
        prom_rss_end,
        prom_hwm,
        gw_rss,
        gw_hwm,
    );
    println!(
        "Checked: {n} queries x {checked} advertisers, gateway answer == direct answer: {} differences.",
        mismatches.len()
    );
    println!();
    println!(
        "Loaded phase: {} advertisers at once, {} rounds ({} requests per side), {wall:.1} s; {} failed requests.",
        o.concurrency,
        o.rounds,
        per_side as u64,
        errors.len()
    );
    println!();
    println!(
        "| query | kind | range / step | answer (items, bytes) | direct p50 / p99 ms | gateway p50 / p99 ms | **p99 ratio** | p50 ratio |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let mut all = [vec![], vec![]];
    let mut worst_p99 = 0f64;
    let mut log_ratios = 0f64;
    for (i, t) in templates.iter().enumerate() {
        let [d, g] = &mut loaded_lat[i];
        all[DIRECT].extend_from_slice(d);
        all[GATEWAY].extend_from_slice(g);
        let (d50, d99) = pct(d);
        let (g50, g99) = pct(g);
        worst_p99 = worst_p99.max(g99 / d99);
        log_ratios += (g99 / d99).ln();
        let range = if t.instant {
            format!("{}s", (t.end - t.start) / 1000)
        } else {
            format!("{}s / {}s", (t.end - t.start) / 1000, t.step / 1000)
        };
        println!(
            "| {} | {} | {} | {:.0}, {:.0} | {} / {} | {} / {} | **{:.3}** | {:.3} |",
            t.name,
            t.kind,
            range,
            answer_items[i] as f64 / f64::from(checked),
            answer_bytes[i] as f64 / f64::from(checked),
            fmt_ms(d50),
            fmt_ms(d99),
            fmt_ms(g50),
            fmt_ms(g99),
            g99 / d99,
            g50 / d50
        );
    }
    let [ad, ag] = &mut all;
    let (d50, d99) = pct(ad);
    let (g50, g99) = pct(ag);
    println!(
        "| **all queries** | | | | {} / {} | {} / {} | **{:.3}** | {:.3} |",
        fmt_ms(d50),
        fmt_ms(d99),
        fmt_ms(g50),
        fmt_ms(g99),
        g99 / d99,
        g50 / d50
    );
    println!(
        "| **geometric mean of the queries' ratios** | | | | | | **{:.3}** | |",
        (log_ratios / n as f64).exp()
    );
    println!();
    let gw_per_query = g_cpu.sched_ns as f64 / per_side / 1000.0;
    println!(
        "CPU over the loaded phase ({wall:.1} s): gateway {:.2} s ({:.2} s by /proc stat), {:.0} µs per gateway request; Prometheus {:.2} s ({:.2} s), {:.0} µs per request (both sides); load tool {:.2} s ({:.2} s), {:.0} µs per request.",
        g_cpu.sched_ns as f64 / 1e9,
        g_cpu.stat_s,
        gw_per_query,
        p_cpu.sched_ns as f64 / 1e9,
        p_cpu.stat_s,
        p_cpu.sched_ns as f64 / (2.0 * per_side) / 1000.0,
        self_cpu.sched_ns as f64 / 1e9,
        self_cpu.stat_s,
        self_cpu.sched_ns as f64 / (2.0 * per_side) / 1000.0,
    );
    println!();
    println!(
        "One at a time ({} pairs per query, {} failed):",
        o.pairs, seq_errors
    );
    println!();
    println!(
        "| query | direct p50 ms | gateway p50 ms | added p50 µs | gateway CPU µs / query | Prometheus CPU µs / query |"
    );
    println!("|---|---|---|---|---|---|");
    let mut cpu_sum = 0.0;
    let mut cpu_max = 0f64;
    for (i, t) in templates.iter().enumerate() {
        let [d, g] = &mut seq_lat[i];
        let (d50, _) = pct(d);
        let (g50, _) = pct(g);
        cpu_sum += seq_cpu[i].0;
        cpu_max = cpu_max.max(seq_cpu[i].0);
        println!(
            "| {} | {} | {} | {:.0} | {:.0} | {:.0} |",
            t.name,
            fmt_ms(d50),
            fmt_ms(g50),
            (g50 - d50) * 1000.0,
            seq_cpu[i].0,
            seq_cpu[i].1
        );
    }
    println!();
    println!(
        "Against a stub upstream (the first advertiser's recorded answer, at once; {} requests per query, {} failed), through the gateway only:",
        o.pairs, stub_errors
    );
    println!();
    println!("| query | gateway CPU µs / query | p50 ms (gateway + stub) |");
    println!("|---|---|---|");
    let mut stub_sum = 0.0;
    let mut stub_max = 0f64;
    for (t, (used, p50)) in templates.iter().zip(&stub_work) {
        stub_sum += used;
        stub_max = stub_max.max(*used);
        println!("| {} | {used:.0} | {} |", t.name, fmt_ms(*p50));
    }
    println!();
    println!(
        "Gateway CPU per request of {} with the stub answering after a delay: {}.",
        templates[first_panel].name,
        by_delay
            .iter()
            .map(|(d, used)| format!("{d} ms: {used:.0} µs"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!();
    println!(
        "Goals: p99 through the gateway <= 1.10 x direct at {} advertisers at once: all queries {:.3}, worst query {:.3} -> {}; gateway CPU <= 1 ms per query: {:.0} µs loaded, {:.0} µs mean / {:.0} µs worst one at a time, {:.0} µs mean / {:.0} µs worst against the stub -> {}.",
        o.concurrency,
        g99 / d99,
        worst_p99,
        if worst_p99 <= 1.10 { "met" } else { "not met" },
        gw_per_query,
        cpu_sum / n as f64,
        cpu_max,
        stub_sum / n as f64,
        stub_max,
        if gw_per_query.max(cpu_max).max(stub_max) <= 1000.0 {
            "met"
        } else {
            "not met"
        }
    );
}
