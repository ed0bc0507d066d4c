//! Blocks checked with `promtool tsdb analyze` and `promtool tsdb dump` (Prometheus 2.42), and
//! compared byte for byte with a block promtool made from the same samples.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use adclick_tsdb::{BlockOptions, Label, Sample, Series};

use crate::support::{
    Rng, ad_series, analyze, assert_dump_equals, db_dir, external_labels, promtool, run, write,
    write_with,
};

/// 2025-11-23T00:00:00Z, a UTC day start (and a multiple of 2 h).
const DAY_START_MS: i64 = 1_763_856_000_000;
const DAY_MS: i64 = 86_400_000;
const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

#[test]
fn one_series_with_one_sample() {
    let db = db_dir();
    let series = vec![ad_series(
        1,
        2,
        3,
        vec![Sample::new(DAY_START_MS + 60_000, 1.0)],
    )];
    let block = write(
        db.path(),
        DAY_START_MS,
        DAY_START_MS + DAY_MS,
        series.clone(),
    );
    let report = analyze(db.path(), &block);
    assert!(report.contains("Series: 1\n"), "{report}");
    assert_dump_equals(db.path(), &series);
}

#[test]
fn many_series_cut_into_many_chunks() {
    let mut rng = Rng(7);
    let series: Vec<Series> = (0..300)
        .map(|ad| {
            let count = rng.range(1, 700) as usize;
            let mut t = DAY_START_MS + rng.range(0, 3_600_000);
            let samples = (0..count)
                .map(|i| {
                    // Mostly minute steps, sometimes jittered by milliseconds or with gaps.
                    t += match rng.range(0, 10) {
                        0 => rng.range(1, 5_000),
                        1 => rng.range(60_000, 600_000),
                        _ => 60_000,
                    };
                    let value = match rng.range(0, 12) {
                        0 => f64::from_bits(STALE_NAN),
                        1 => rng.range(-1_000_000, 1_000_000) as f64 / 7.0,
                        2 => 0.1 * i as f64,
                        _ => rng.range(0, 20) as f64,
                    };
                    Sample::new(t, value)
                })
                .collect();
            ad_series(ad % 7, ad % 31, ad, samples)
        })
        .collect();
    let db = db_dir();
    let block = write(
        db.path(),
        DAY_START_MS,
        DAY_START_MS + 2 * DAY_MS,
        series.clone(),
    );
    let total: usize = series.iter().map(|s| s.samples.len()).sum();
    assert_eq!(block.meta.stats.num_samples, total as u64);
    let chunks: usize = series.iter().map(|s| s.samples.len().div_ceil(120)).sum();
    assert_eq!(block.meta.stats.num_chunks, chunks as u64);
    let report = analyze(db.path(), &block);
    assert!(report.contains("Series: 300\n"), "{report}");
    assert_dump_equals(db.path(), &series);
}

#[test]
fn label_values_needing_escapes_and_unicode() {
    let values = [
        "say \"hi\"",
        "back\\slash",
        "new\nline\ttab",
        "control\u{1}char",
        "nbsp\u{a0}here",
        "é",
        "日本語",
        "🎉 party",
        "}, x=\"y",
        " leading space",
    ];
    let series: Vec<Series> = values
        .iter()
        .enumerate()
        .map(|(i, value)| Series {
            labels: vec![
                Label::new("__name__", "adclick_clicks"),
                Label::new("ad_id", *value),
                Label::new("campaign_id", format!("ü{i}")),
            ],
            samples: vec![
                Sample::new(DAY_START_MS + 60_000, i as f64),
                Sample::new(DAY_START_MS + 120_000, 1e6),
            ],
        })
        .collect();
    let db = db_dir();
    let block = write(
        db.path(),
        DAY_START_MS,
        DAY_START_MS + DAY_MS,
        series.clone(),
    );
    analyze(db.path(), &block);
    assert_dump_equals(db.path(), &series);
}

#[test]
fn many_symbols_and_label_names() {
    // 3000 series × 8 labels with values unique to each series: ~24k symbols, far beyond the
    // reader's one-in-32 symbol sampling, and 3000 values per label name in the postings table.
    let series: Vec<Series> = (0..3000u32)
        .map(|s| {
            let mut labels = vec![Label::new("__name__", format!("metric_{}", s % 3))];
            labels.extend((0..7).map(|l| {
                Label::new(
                    format!("label_{l}"),
                    format!("v{l}-{s}-{}", s * 7919 % 1000),
                )
            }));
            Series {
                labels,
                samples: vec![Sample::new(DAY_START_MS + i64::from(s), f64::from(s))],
            }
        })
        .collect();
    let db = db_dir();
    let block = write(
        db.path(),
        DAY_START_MS,
        DAY_START_MS + DAY_MS,
        series.clone(),
    );
    let report = analyze(db.path(), &block);
    assert!(report.contains("Label names: 8\n"), "{report}");
    assert_dump_equals(db.path(), &series);
}

#[test]
fn chunks_spread_over_many_segment_files() {
    let series: Vec<Series> = (0..200u32)
        .map(|ad| {
            let samples = (1..=240)
                .map(|m| Sample::new(DAY_START_MS + m * 60_000, f64::from((ad + m as u32) % 9)))
                .collect();
            ad_series(ad, ad, ad, samples)
        })
        .collect();
    let db = db_dir();
    let options = BlockOptions::new(
        DAY_START_MS,
        DAY_START_MS + DAY_MS,
        external_labels(),
        "test",
    )
    .with_max_segment_bytes(4096);
    let block = write_with(db.path(), options, series.clone());
    let segments: Vec<_> = block
        .meta
        .thanos
        .files
        .iter()
        .filter(|f| f.rel_path.starts_with("chunks/"))
        .collect();
    assert!(segments.len() > 10, "{} segments", segments.len());
    assert!(segments.iter().all(|f| f.size_bytes.unwrap() <= 4096));
    analyze(db.path(), &block);
    assert_dump_equals(db.path(), &series);
}

/// The number of a block directory promtool created, and its path.
fn only_block(dir: &Path) -> PathBuf {
    let blocks: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("meta.json").exists())
        .collect();
    assert_eq!(blocks.len(), 1, "promtool made {blocks:?}");
    blocks.into_iter().next().unwrap()
}

/// The TOC's label-indices offset: where the symbol table and series sections end.
fn series_section_end(index: &[u8]) -> usize {
    let toc = &index[index.len() - 52..];
    u64::from_be_bytes(toc[16..24].try_into().unwrap()) as usize
}

fn openmetrics_value(value: f64) -> String {
    if value == f64::INFINITY {
        "+Inf".into()
    } else if value == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        // Rust prints the shortest decimal that parses back to the same f64, never an exponent.
        format!("{value}")
    }
}

#[test]
fn chunks_and_series_bytes_equal_promtools_block() {
    // Whole-second timestamps (OpenMetrics carries seconds) inside one 2 h block window, each
    // series at most 120 samples spread so that promtool's head cuts no chunk early: then
    // promtool's block has exactly our chunks, in the same order.
    let mut rng = Rng(42);
    let window_start_ms = DAY_START_MS + 4 * 3_600_000;
    let mut series: Vec<Series> = (0..60u32)
        .map(|ad| {
            let count = rng.range(1, 121);
            let mut t = window_start_ms + rng.range(0, 100) * 1000;
            let samples = (0..count)
                .map(|_| {
                    let sample_time = t;
                    t += rng.range(32, 59) * 1000;
                    let value = match rng.range(0, 10) {
                        0 => rng.range(-500, 500) as f64 / 8.0,
                        1 => 0.1,
                        2 => 1e6,
                        3 => f64::INFINITY,
                        _ => rng.range(0, 6) as f64,
                    };
                    Sample::new(sample_time, value)
                })
                .collect();
            ad_series(ad % 5, ad % 11, ad, samples)
        })
        .collect();
    // One series with gaps that need every delta-of-delta bucket (1 s steps, then 700 s, 1500 s).
    let gaps_s = [1, 1, 1, 9, 1, 70, 700, 1, 1500, 2, 2, 300];
    let mut t = window_start_ms;
    let mut samples = vec![Sample::new(t, 3.0)];
    for gap in gaps_s {
        t += gap * 1000;
        samples.push(Sample::new(t, gap as f64));
    }
    series.push(ad_series(99, 99, 999, samples));

    let mut openmetrics = String::from(
        "# HELP adclick_clicks Clicks per ad per minute.\n# TYPE adclick_clicks gauge\n",
    );
    for one in &series {
        let labels: Vec<String> = one.labels[1..]
            .iter()
            .map(|l| format!("{}=\"{}\"", l.name, l.value))
            .collect();
        for sample in &one.samples {
            writeln!(
                openmetrics,
                "adclick_clicks{{{}}} {} {}",
                labels.join(","),
                openmetrics_value(sample.value),
                sample.timestamp_ms / 1000
            )
            .unwrap();
        }
    }
    openmetrics.push_str("# EOF\n");
    let work = tempfile::tempdir().unwrap();
    let input = work.path().join("input.om");
    std::fs::write(&input, openmetrics).unwrap();
    let promtool_out = work.path().join("promtool");
    run(Command::new(promtool())
        .args(["tsdb", "create-blocks-from", "openmetrics", "--quiet"])
        .arg(&input)
        .arg(&promtool_out));
    let theirs = only_block(&promtool_out);

    let db = db_dir();
    let ours = write(
        db.path(),
        window_start_ms,
        window_start_ms + 7_200_000,
        series.clone(),
    );
    assert_dump_equals(db.path(), &series);

    let their_meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(theirs.join("meta.json")).unwrap()).unwrap();
    assert_eq!(
        their_meta["stats"]["numSamples"],
        ours.meta.stats.num_samples
    );
    assert_eq!(their_meta["stats"]["numSeries"], ours.meta.stats.num_series);
    assert_eq!(their_meta["stats"]["numChunks"], ours.meta.stats.num_chunks);

    let their_chunks = std::fs::read(theirs.join("chunks/000001")).unwrap();
    let our_chunks = std::fs::read(ours.dir.join("chunks/000001")).unwrap();
    assert!(
        their_chunks == our_chunks,
        "chunk segment differs from promtool's"
    );

    let their_index = std::fs::read(theirs.join("index")).unwrap();
    let our_index = std::fs::read(ours.dir.join("index")).unwrap();
    let end = series_section_end(&our_index);
    assert_eq!(series_section_end(&their_index), end);
    assert!(
        their_index[..end] == our_index[..end],
        "header, symbol table or series section differs from promtool's"
    );
}
