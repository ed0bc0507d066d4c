//! End to end into the stack's Prometheus: this sender's CPU time per sample against
//! Prometheus' own CPU time per sample for the same writes (the issue's goal: the sender costs
//! at most a fifth of the receiver, so it is never the bottleneck).
//!
//! ```text
//! deploy/local/up
//! cargo run --release -p adclick-remote-write --example e2e_cpu -- [SERIES] [MINUTES] [ROUNDS]
//! ```
//!
//! Writes SERIES ad series (default 20000) × MINUTES minute samples (default 50, the last 50
//! minutes) through a [`Queue`] with the default configuration (2000 samples per request,
//! 4 shards), minute by minute as the exporter does, ROUNDS times (default 3) with fresh series
//! each round. CPU times come from `/proc/<pid>/stat` (utime + stime, all threads): ours from
//! `/proc/self/stat` around the pushing and flushing only, Prometheus' from the pid in
//! `.local/pids/prometheus.pid` over the same interval, minus its idle rate (scrapes, rule
//! evaluation) measured for a few seconds before each round.
//! Series use the metric `adclick_rw_bench_clicks` and a `run` label of their own, so they never
//! mix with real click counts.

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

async fn round(stack: &Stack, prom_pid: &str, series: usize, minutes: usize) -> Round {
    let tck = ticks_per_second();
    let idle_start = cpu_ticks(prom_pid);
    tokio::time::sleep(IDLE).await;
    let idle_rate = (cpu_ticks(prom_pid) - idle_start) as f64 / tck / IDLE.as_secs_f64();

    let run = stack.isolated("e2e-cpu").id;
    let start = minute_ago(minutes as i64 + 2);
    let config = Config::for_url(stack.remote_write_url());

    let (ours0, prom0, t0) = (cpu_ticks("self"), cpu_ticks(prom_pid), Instant::now());
    let labels: Vec<Labels> = (0..series)
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
        .collect();
    let queue = Queue::from_config(&config, Metrics::new()).unwrap();
    for m in 0..minutes {
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

    // Outside the measured interval: Prometheus holds every series at the last minute.
    let last = start + (minutes as i64 - 1) * 60_000;
    let count = stack
        .prometheus()
        .query(&format!("count({METRIC}{{run=\"{run}\"}})"), Some(last))
        .await
        .unwrap();
    assert_eq!(count[0].samples[0].1, series as f64, "series read back");

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
    let minutes = args.get(1).copied().unwrap_or(50);
    let rounds = args.get(2).copied().unwrap_or(3);
    assert!(
        minutes <= 55,
        "samples older than ~1 h are outside Prometheus' in-order head"
    );
    let stack = Stack::get();
    let pid_file = stack.env_file.parent().unwrap().join("pids/prometheus.pid");
    let prom_pid = std::fs::read_to_string(&pid_file)
        .unwrap_or_else(|e| panic!("{}: {e}", pid_file.display()))
        .trim()
        .to_string();
    println!("{series} series x {minutes} minutes per round, default queue, Prometheus {prom_pid}");
    println!(
        "round  samples   wall_s  ours_cpu_s  prom_cpu_s  prom_idle_s  ours_us/sample  \
         prom_us/sample(net)  ratio(ours/prom_net)"
    );
    for r in 1..=rounds {
        let x = round(&stack, &prom_pid, series, minutes).await;
        let net = (x.prometheus - x.prometheus_idle).max(0.0);
        let per = |cpu: f64| cpu * 1e6 / x.samples as f64;
        println!(
            "{r:>5}  {:>7}  {:>7.2}  {:>10.2}  {:>10.2}  {:>11.2}  {:>14.3}  {:>19.3}  {:>20.3}",
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
