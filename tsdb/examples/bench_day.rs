//! One day of `adclick_clicks` for 10,000 ads (1,440 minute samples each, 14.4 M samples),
//! written as a block by this crate and, from the same samples in OpenMetrics text, by
//! `promtool tsdb create-blocks-from openmetrics --max-block-duration=24h`, in the same run.
//! Prints both wall times, both total block sizes, and the ratios.
//!
//! ```text
//! cargo run --release -p adclick-tsdb --example bench_day [-- <ads>]
//! ```
//!
//! Our time covers the whole block write from series in memory (sort, encode, index, meta,
//! fsyncs, rename); promtool's covers its whole run, which includes parsing the text. The
//! samples are deterministic: the same ads and counts every run.

#![allow(clippy::unwrap_used)] // An example: a panic with the failed call is how it stops.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use adclick_tsdb::{BlockOptions, Label, Sample, Series, Ulid, write_block};

/// 2025-11-23T00:00:00Z.
const DAY_START_MS: i64 = 1_763_856_000_000;
const MINUTES_PER_DAY: i64 = 1440;
const MINUTE_MS: i64 = 60_000;

/// splitmix64: fast, deterministic, good enough for synthetic counts.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A Poisson count with mean `lambda` (Knuth's method; means here stay small).
    fn poisson(&mut self, lambda: f64) -> u32 {
        let limit = (-lambda).exp();
        let mut product = self.unit();
        let mut count = 0;
        while product > limit {
            count += 1;
            product *= self.unit();
        }
        count
    }
}

/// Each ad gets a mean rate between 0.01 and 20 clicks per minute (log-uniform: most ads are
/// quiet, a few are busy), shaped by a day curve; a sample at every minute end of the day,
/// zero when no click came.
fn generate(ads: u32) -> Vec<Series> {
    let mut rng = Rng(20251123);
    (0..ads)
        .map(|ad| {
            let rate = (0.01f64.ln() + rng.unit() * (20f64.ln() - 0.01f64.ln())).exp();
            let samples = (0..MINUTES_PER_DAY)
                .map(|minute| {
                    let phase = minute as f64 / MINUTES_PER_DAY as f64 * std::f64::consts::TAU;
                    let daily = 0.4 + 0.6 * (1.0 - phase.cos()) / 2.0;
                    let clicks = rng.poisson(rate * daily);
                    Sample::new(DAY_START_MS + minute * MINUTE_MS, f64::from(clicks))
                })
                .collect();
            Series {
                labels: vec![
                    Label::new("__name__", "adclick_clicks"),
                    Label::new("ad_id", format!("{}", 1_000_000 + ad)),
                    Label::new("advertiser_id", format!("{}", 10_000 + ad / 100)),
                    Label::new("campaign_id", format!("{}", 100_000 + ad / 10)),
                ],
                samples,
            }
        })
        .collect()
}

fn write_openmetrics(series: &[Series], path: &Path) -> std::io::Result<()> {
    let mut out = BufWriter::with_capacity(8 << 20, File::create(path)?);
    writeln!(out, "# HELP adclick_clicks Clicks per ad per minute.")?;
    writeln!(out, "# TYPE adclick_clicks gauge")?;
    for one in series {
        let labels: Vec<String> = one.labels[1..]
            .iter()
            .map(|l| format!("{}=\"{}\"", l.name, l.value))
            .collect();
        let labels = labels.join(",");
        for sample in &one.samples {
            // Timestamps are whole seconds here, which OpenMetrics writes in seconds.
            writeln!(
                out,
                "adclick_clicks{{{labels}}} {} {}",
                sample.value,
                sample.timestamp_ms / 1000
            )?;
        }
    }
    writeln!(out, "# EOF")?;
    out.flush()
}

/// Total bytes of the regular files under `dir`.
fn tree_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                tree_bytes(&entry.path())
            } else {
                entry.metadata().unwrap().len()
            }
        })
        .sum()
}

/// Sum of `stats.numSamples` over the blocks (directories with a meta.json) in `dir`.
fn samples_in_blocks(dir: &Path) -> (u64, usize) {
    let mut samples = 0;
    let mut blocks = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let meta = entry.unwrap().path().join("meta.json");
        if let Ok(text) = std::fs::read(&meta) {
            let json: serde_json::Value = serde_json::from_slice(&text).unwrap();
            samples += json["stats"]["numSamples"].as_u64().unwrap();
            blocks += 1;
        }
    }
    (samples, blocks)
}

fn main() {
    let ads: u32 = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("the argument is the number of ads"))
        .unwrap_or(10_000);
    let promtool = Path::new("/usr/bin/promtool");
    assert!(
        promtool.exists(),
        "/usr/bin/promtool is missing: apt-get install -y prometheus"
    );
    let work = tempfile::tempdir().unwrap();
    let ours_dir = work.path().join("ours");
    let theirs_dir = work.path().join("promtool");
    std::fs::create_dir(&ours_dir).unwrap();

    let started = Instant::now();
    let series = generate(ads);
    let sample_count: u64 = series.iter().map(|s| s.samples.len() as u64).sum();
    let click_count: f64 = series
        .iter()
        .flat_map(|s| &s.samples)
        .map(|s| s.value)
        .sum();
    let zero_count = series
        .iter()
        .flat_map(|s| &s.samples)
        .filter(|s| s.value == 0.0)
        .count();
    println!(
        "generated {ads} ads × {MINUTES_PER_DAY} minutes = {sample_count} samples \
         ({click_count} clicks, {:.1}% zero samples) in {:.1?}",
        100.0 * zero_count as f64 / sample_count as f64,
        started.elapsed()
    );

    let options = BlockOptions::new(
        DAY_START_MS,
        DAY_START_MS + MINUTES_PER_DAY * MINUTE_MS,
        BTreeMap::from([("producer".to_string(), "bench".to_string())]),
        "rollup",
    )
    .with_ulid(Ulid::new());
    // The copy handed to the writer is made before the clock starts.
    let to_write = series.clone();
    let started = Instant::now();
    let block = write_block(&ours_dir, options, to_write).expect("block written");
    let our_seconds = started.elapsed().as_secs_f64();
    let our_bytes = tree_bytes(&ours_dir);
    assert_eq!(block.meta.stats.num_samples, sample_count);

    let input = work.path().join("day.om");
    let started = Instant::now();
    write_openmetrics(&series, &input).unwrap();
    drop(series);
    println!(
        "wrote {} MB of OpenMetrics in {:.1?} (not timed against promtool)",
        std::fs::metadata(&input).unwrap().len() / 1_000_000,
        started.elapsed()
    );

    let started = Instant::now();
    let output = Command::new(promtool)
        .args([
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            "--max-block-duration=24h",
            "--quiet",
        ])
        .arg(&input)
        .arg(&theirs_dir)
        .output()
        .expect("run promtool");
    let their_seconds = started.elapsed().as_secs_f64();
    assert!(
        output.status.success(),
        "promtool failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let their_bytes = tree_bytes(&theirs_dir);
    let (their_samples, their_blocks) = samples_in_blocks(&theirs_dir);
    assert_eq!(their_samples, sample_count, "promtool stored every sample");

    println!();
    println!("| writer | wall time | blocks | total block bytes | chunks | index |");
    println!("|---|---|---|---|---|---|");
    // Per writer: bytes of chunk segments and of index files, over all its blocks.
    let part_bytes = |dir: &Path| -> (u64, u64) {
        let blocks: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|b| b.join("meta.json").exists())
            .collect();
        let chunks = blocks.iter().map(|b| tree_bytes(&b.join("chunks"))).sum();
        let index = blocks
            .iter()
            .map(|b| std::fs::metadata(b.join("index")).unwrap().len())
            .sum();
        (chunks, index)
    };
    let (our_chunks, our_index) = part_bytes(&ours_dir);
    let (their_chunks, their_index) = part_bytes(&theirs_dir);
    println!(
        "| adclick-tsdb | {our_seconds:.2} s | 1 | {our_bytes} | {our_chunks} | {our_index} |"
    );
    println!(
        "| promtool 2.42 | {their_seconds:.2} s | {their_blocks} | {their_bytes} | {their_chunks} | {their_index} |"
    );
    println!();
    println!(
        "speed: {:.1}× promtool ({:.1} M samples/s vs {:.2} M samples/s)",
        their_seconds / our_seconds,
        sample_count as f64 / our_seconds / 1e6,
        sample_count as f64 / their_seconds / 1e6
    );
    println!(
        "size: {:.3}× promtool's ({:.2} vs {:.2} bytes/sample)",
        our_bytes as f64 / their_bytes as f64,
        our_bytes as f64 / sample_count as f64,
        their_bytes as f64 / sample_count as f64
    );
}
