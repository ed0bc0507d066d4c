//! Encode + compress throughput of 2000-sample requests of ad series, the default
//! `max_samples_per_send`: labels `__name__="adclick_clicks"`, `advertiser_id`, `campaign_id`,
//! `ad_id`, minute timestamps, small integer click counts.
//!
//! `cargo bench -p adclick-remote-write --bench encode`; throughput is in samples (elements).

#![allow(clippy::unwrap_used)] // A benchmark: a panic with the failed call is how it stops.

use adclick_remote_write::{Encoder, Labels, Request, RequestBuilder, Sample};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

const SAMPLES: usize = 2000;
/// 2026-11-23T00:00:00Z, a minute boundary.
const MINUTE0: i64 = 1_795_392_000_000;

/// Ad `i` of a realistic id space: 10-digit-ish ids, ads grouped into campaigns and advertisers.
fn ad_labels(i: usize) -> Labels {
    let ad = 4_100_000_000 + i as u64 * 7919;
    Labels::new([
        ("__name__", "adclick_clicks".to_string()),
        ("advertiser_id", (10_000 + i / 200).to_string()),
        ("campaign_id", (3_000_000 + i / 20).to_string()),
        ("ad_id", ad.to_string()),
    ])
    .unwrap()
}

/// `SAMPLES / per_series` series with `per_series` consecutive minutes each.
fn request(series: &[Labels], per_series: usize) -> Request {
    let mut b = RequestBuilder::new();
    for (i, labels) in series.iter().enumerate().take(SAMPLES / per_series) {
        for m in 0..per_series {
            let clicks = ((i * 31 + m * 17) % 23) as f64;
            b.push(labels, Sample::new(MINUTE0 + m as i64 * 60_000, clicks))
                .unwrap();
        }
    }
    b.build()
}

fn bench(c: &mut Criterion) {
    let series: Vec<Labels> = (0..SAMPLES).map(ad_labels).collect();
    let mut group = c.benchmark_group("encode_2000_samples");
    group.throughput(Throughput::Elements(SAMPLES as u64));
    for per_series in [1, 10] {
        let req = request(&series, per_series);
        let encoded = Encoder::new().encode(&req).unwrap();
        eprintln!(
            "{per_series} sample(s)/series: {} series, protobuf {} B, snappy {} B ({:.2}x)",
            req.series(),
            encoded.uncompressed_len(),
            encoded.compressed_len(),
            encoded.uncompressed_len() as f64 / encoded.compressed_len() as f64
        );
        let mut encoder = Encoder::new();
        group.bench_function(format!("encode+compress/{per_series}_per_series"), |b| {
            b.iter(|| encoder.encode(black_box(&req)).unwrap())
        });
    }
    // What a queue shard does per batch: group the samples by series, then encode.
    let mut encoder = Encoder::new();
    group.bench_function("build+encode+compress/1_per_series", |b| {
        b.iter_batched(
            RequestBuilder::new,
            |mut builder| {
                for (i, labels) in series.iter().enumerate() {
                    builder
                        .push(labels, Sample::new(MINUTE0, (i % 23) as f64))
                        .unwrap();
                }
                encoder.encode(&builder.build()).unwrap()
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
