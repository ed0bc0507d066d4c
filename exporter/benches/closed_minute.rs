//! What the exporter spends per sample of a closed minute before the remote-write queue: fold
//! the minute into its series (`Window::series`) and label each one (`series::ClosedLabels`),
//! with spend and unique users off and on. The workload is the exporter bench's (issue #19):
//! ~2.5 clicks per ad-minute, priced, by many users, 2,000 ads in the minute, top K 10,000.
//!
//! `cargo bench -p adclick-exporter --bench closed_minute`; throughput is in samples written.

#![allow(clippy::unwrap_used)] // A benchmark: a panic with the failed call is how it stops.

use adclick_exporter::series::ClosedLabels;
use adclick_exporter::window::{AdKey, Measures, Window};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

const ADS: u64 = 2_000;
const TOP_K: usize = 10_000;

/// 2,000 ads of 100 campaigns of 10 advertisers, 5,000 priced clicks by distinct-ish users.
fn minute() -> Window {
    let mut w = Window::new(0, None);
    for click in 0..5_000u64 {
        let i = click * 7_919 % ADS;
        let ad = AdKey {
            advertiser_id: 10_000 + i / 200,
            campaign_id: 3_000_000 + i / 20,
            ad_id: 4_100_000_000 + i * 7_919,
        };
        w.count(
            ad,
            false,
            100_000 + click % 1_900_000,
            click * 2_654_435_761 + 1,
        );
    }
    w
}

fn bench(c: &mut Criterion) {
    let window = minute();
    let extra = vec![("env".to_string(), "prod".to_string())];
    for (name, measures) in [("off", Measures::CLICKS_ONLY), ("on", Measures::ALL)] {
        let samples = window.series(TOP_K, measures).samples.len();
        let mut group = c.benchmark_group(format!("closed_minute_{name}"));
        group.throughput(Throughput::Elements(samples as u64));
        group.bench_function("fold", |b| {
            b.iter(|| black_box(window.series(TOP_K, measures)))
        });
        group.bench_function("fold+label", |b| {
            b.iter(|| {
                let folded = window.series(TOP_K, measures);
                let mut labels = ClosedLabels::new(7, &extra);
                let mut bytes = 0;
                for (key, _) in &folded.samples {
                    bytes += labels.of(*key).hash_value() & 1;
                }
                black_box(bytes)
            })
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
