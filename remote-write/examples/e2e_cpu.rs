//! End to end into the stack's Prometheus: this sender's CPU time per sample against
//! Prometheus' own CPU time per sample for the same writes (the issue's goal: the sender costs
//! at most a fifth of the receiver, so it is never the bottleneck).
//!
//! ```text
//! deploy/local/up
//! cargo run --release -p adclick-remote-write --example e2e_cpu -- [SERIES] [MINUTES] [ROUNDS]
//! ```
//!
//! Writes SERIES ad series (default 20000) × MINUTES minute samples per round (default 15),
//! ROUNDS rounds (default 3) of consecutive minutes ending 2 minutes ago, through a [`Queue`]
//! with the default configuration (2000 samples per request, 4 shards), minute by minute as the
//! exporter does. Round 1 creates the series in Prometheus; the later rounds append to them,
//! the steady state. CPU times come from `/proc/<pid>/stat` (utime + stime, all threads): ours
//! from `/proc/self/stat` around making the labels (round 1), pushing and flushing, Prometheus'
//! from the pid in `.local/pids/prometheus.pid` over the same interval, minus its idle rate
//! (scrapes, rule evaluation) measured for a few seconds before each round.
//! Series use the metric `adclick_rw_bench_clicks` and a `run` label of their own, so they never
//! mix with real click counts.

#![allow(clippy::unwrap_used)] // An example: a panic with the failed call is how it stops.

use std::time::{Duration, Instant};

use adclick_remote_write::{Config, Labels, Metrics, Queue, Sample};
use adclick_testsupport::Stack;

const METRIC: &str = "adclick_rw_bench_clicks";
const IDLE: Duration = Duration::from_secs(5);

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: &str) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .unwrap_or_else(|e| panic!("reading /proc/{pid}/stat: {e}"));
    // Fields after the command name, which is in parentheses and may hold spaces: the state is
    // field 3, utime field 14 and stime field 15 (proc(5)).
    let rest = &stat[stat.rfind(')').expect("a /proc stat line") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

fn minute_ago(minutes: i64) -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    (now / 60_000 - minutes) * 60_000
}

struct Round {
    samples: u64,
    wall: Duration,
    ours: f64,
    prometheus: f64,
    prometheus_idle: f64,
}

/// One round: minutes `first_minute..first_minute + minutes` after `start` for every series.
async fn round(
    stack: &Stack,
    prom_pid: &str,
    labels: &mut Vec<Labels>,
    make_labels: impl FnOnce() -> Vec<Labels>,
    start: i64,
    first_minute: usize,
    minutes: usize,
) -> Round {
    let tck = ticks_per_second();
    let idle_start = cpu_ticks(prom_pid);
    tokio::time::sleep(IDLE).await;
    let idle_rate = (cpu_ticks(prom_pid) - idle_start) as f64 / tck / IDLE.as_secs_f64();
    let config = Config::for_url(stack.remote_write_url());

    let (ours0, prom0, t0) = (cpu_ticks("self"), cpu_ticks(prom_pid), Instant::now());
    if labels.is_empty() {
        *labels = make_labels();
    }
    let queue = Queue::from_config(&config, Metrics::new()).unwrap();
    for m in first_minute..first_minute + minutes {
        let t = start + m as i64 * 60_000;
        for (i, l) in labels.iter().enumerate() {
            queue
                .push(l, Sample::new(t, ((i * 31 + m * 17) % 23) as f64))
                .await
                .unwrap();
        }
    }
    let report = queue.shutdown().await;
    let wall = t0.elapsed();
    let (ours1, prom1) = (cpu_ticks("self"), cpu_ticks(prom_pid));
    assert!(report.is_ok(), "{report:?}");

    // Outside the measured interval: Prometheus holds every series at the round's last minute.
    let last = start + (first_minute + minutes - 1) as i64 * 60_000;
    let run = labels[0].get("run").unwrap();
    let count = stack
        .prometheus()
        .query(&format!("count({METRIC}{{run=\"{run}\"}})"), Some(last))
        .await
        .unwrap();
    assert_eq!(
        count[0].samples[0].1,
        labels.len() as f64,
        "series read back"
    );

    Round {
        samples: report.samples_sent,
        wall,
        ours: (ours1 - ours0) as f64 / tck,
        prometheus: (prom1 - prom0) as f64 / tck,
        prometheus_idle: idle_rate * wall.as_secs_f64(),
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("a number"))
        .collect();
    let series = args.first().copied().unwrap_or(20_000);
    let minutes = args.get(1).copied().unwrap_or(15);
    let rounds = args.get(2).copied().unwrap_or(3);
    assert!(
        minutes * rounds <= 55,
        "samples older than ~1 h are outside Prometheus' in-order head"
    );
    let stack = Stack::get();
    let pid_file = stack.env_file.parent().unwrap().join("pids/prometheus.pid");
    let prom_pid = std::fs::read_to_string(&pid_file)
        .unwrap_or_else(|e| panic!("{}: {e}", pid_file.display()))
        .trim()
        .to_string();
    let run = stack.isolated("e2e-cpu").id;
    let start = minute_ago((minutes * rounds) as i64 + 2);
    println!("{series} series x {minutes} minutes per round, default queue, Prometheus {prom_pid}");
    println!(
        "round  samples   wall_s  ours_cpu_s  prom_cpu_s  prom_idle_s  ours_us/sample  \
         prom_us/sample(net)  ratio(ours/prom_net)"
    );
    let mut labels = Vec::new();
    for r in 0..rounds {
        let make_labels = || {
            (0..series)
                .map(|i| {
                    Labels::new([
                        ("__name__", METRIC.to_string()),
                        ("run", run.clone()),
                        ("advertiser_id", (10_000 + i / 200).to_string()),
                        ("campaign_id", (3_000_000 + i / 20).to_string()),
                        ("ad_id", (4_100_000_000u64 + i as u64 * 7919).to_string()),
                    ])
                    .unwrap()
                })
                .collect()
        };
        let x = round(
            &stack,
            &prom_pid,
            &mut labels,
            make_labels,
            start,
            r * minutes,
            minutes,
        )
        .await;
        let net = (x.prometheus - x.prometheus_idle).max(0.0);
        let per = |cpu: f64| cpu * 1e6 / x.samples as f64;
        println!(
            "{:>5}  {:>7}  {:>7.2}  {:>10.2}  {:>10.2}  {:>11.2}  {:>14.3}  {:>19.3}  {:>20.3}",
            r + 1,
            x.samples,
            x.wall.as_secs_f64(),
            x.ours,
            x.prometheus,
            x.prometheus_idle,
            per(x.ours),
            per(net),
            x.ours / net
        );
    }
}
