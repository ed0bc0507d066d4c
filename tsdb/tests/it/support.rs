//! What the integration tests share: the Prometheus tools, `promtool tsdb dump` parsing, and
//! blocks written from series held in the test.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

pub use adclick_testsupport::Rng;
pub use adclick_testsupport::promtool::{Point, db_dir, dump, promtool, run, tool, value_bits};
use adclick_tsdb::{BlockOptions, Label, Sample, Series, Ulid, WrittenBlock, write_block};

/// Every sample of `series`, as [`Point`]s, sorted.
pub fn points(series: &[Series]) -> Vec<Point> {
    let mut out: Vec<Point> = series
        .iter()
        .flat_map(|s| {
            let labels: Vec<(String, String)> = s
                .labels
                .iter()
                .map(|l| (l.name.clone(), l.value.clone()))
                .collect();
            s.samples.iter().map(move |sample| Point {
                labels: labels.clone(),
                timestamp_ms: sample.timestamp_ms,
                value_bits: value_bits(sample.value),
            })
        })
        .collect();
    out.sort();
    out
}

/// The external labels every test block carries.
pub fn external_labels() -> BTreeMap<String, String> {
    BTreeMap::from([("producer".to_string(), "adclick-tsdb-test".to_string())])
}

/// Writes `series` (any order) into a block in `db`.
pub fn write(db: &Path, min_time_ms: i64, max_time_ms: i64, series: Vec<Series>) -> WrittenBlock {
    write_with(
        db,
        BlockOptions::new(min_time_ms, max_time_ms, external_labels(), "test"),
        series,
    )
}

pub fn write_with(db: &Path, options: BlockOptions, series: Vec<Series>) -> WrittenBlock {
    write_block(db, options.with_ulid(Ulid::new()), series).expect("block written")
}

/// `promtool tsdb analyze` on the block must succeed; returns its report.
pub fn analyze(db: &Path, block: &WrittenBlock) -> String {
    let ulid = block.meta.ulid.to_string();
    let output = run(Command::new(promtool())
        .args(["tsdb", "analyze"])
        .arg(db)
        .arg(&ulid));
    let report = String::from_utf8(output.stdout).unwrap();
    assert!(report.contains(&format!("Block ID: {ulid}")), "{report}");
    report
}

/// The dump must hold exactly the samples of `series`; on mismatch, shows the first difference.
pub fn assert_dump_equals(db: &Path, series: &[Series]) {
    let got = dump(db);
    let want = points(series);
    if got != want {
        let first = got
            .iter()
            .zip(&want)
            .position(|(g, w)| g != w)
            .unwrap_or(got.len().min(want.len()));
        panic!(
            "promtool dump differs from what was written: {} points dumped, {} written; \
             first difference at {first}: dumped {:?}, written {:?}",
            got.len(),
            want.len(),
            got.get(first),
            want.get(first)
        );
    }
}

/// A series of `adclick_clicks` for one ad.
pub fn ad_series(advertiser: u32, campaign: u32, ad: u32, samples: Vec<Sample>) -> Series {
    Series {
        labels: vec![
            Label::new("__name__", "adclick_clicks"),
            Label::new("ad_id", format!("ad-{ad}")),
            Label::new("advertiser_id", format!("adv-{advertiser}")),
            Label::new("campaign_id", format!("camp-{campaign}")),
        ],
        samples,
    }
}
