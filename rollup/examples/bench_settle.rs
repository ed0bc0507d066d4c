//! How fast the rollup settles a day and how much memory that takes: N clicks (default 5M) over
//! 10k ads, 5% repeats, 1M users, a price per ad, encoded as archive objects, then decoded,
//! settled and written as a block into a temporary directory — the rollup's work minus the
//! network.
//!
//! `cargo run --release -p adclick-rollup --example bench_settle -- [clicks]`
//! Prints wall times per stage and the peak RSS (VmHWM) before and after settling.

#![allow(clippy::unwrap_used)] // An example: a panic with the failed call is how it stops.

use std::time::Instant;

use adclick_click::archive;
use adclick_click::wire::Click;
use adclick_rollup::Day;
use adclick_rollup::scan::{ObjectRef, decode_object};
use adclick_rollup::settle::Settlement;

fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let clicks: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5_000_000);
    let day: Day = "2026-11-23".parse().unwrap();
    let (from, to) = day.event_window_ms();
    let mut state = 0x1234_5678u64;
    let mut next = || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let t = Instant::now();
    let mut objects: Vec<(ObjectRef, Vec<u8>)> = Vec::new();
    let mut batch: Vec<Vec<u8>> = Vec::new();
    let mut offset = 0i64;
    let mut last_impression = [0u8; 16];
    let flush = |batch: &mut Vec<Vec<u8>>, offset: i64, objects: &mut Vec<(ObjectRef, Vec<u8>)>| {
        let first = offset - batch.len() as i64;
        let records: Vec<(i64, &[u8])> = batch
            .iter()
            .enumerate()
            .map(|(i, v)| (first + i as i64, v.as_slice()))
            .collect();
        let body = archive::encode(0, &records);
        let name = archive::ObjectName {
            partition: 0,
            first_offset: first,
            last_offset: offset - 1,
        };
        let object = ObjectRef {
            key: format!("{first}"),
            size: body.len() as u64,
            name,
            read_after_offset: -1,
        };
        objects.push((object, body));
        batch.clear();
    };
    for _ in 0..clicks {
        let r = next();
        let impression = if r % 20 == 0 {
            last_impression // a repeat
        } else {
            let mut id = [0u8; 16];
            id[..8].copy_from_slice(&next().to_le_bytes());
            id[8..].copy_from_slice(&r.to_le_bytes());
            id
        };
        last_impression = impression;
        let ad = 1 + next() % 10_000;
        let event_time_ms = from + (next() % (to - from) as u64) as i64;
        let click = Click {
            impression_id: impression.to_vec(),
            ad_id: ad,
            campaign_id: 1 + ad / 10,
            advertiser_id: 1 + ad / 1000,
            event_time_ms,
            // Velocity is swept over receive time: a user and an IP pool small enough that
            // windows hold more than one click.
            receive_time_ms: event_time_ms + (next() % 2_000) as i64,
            user_hash: 1 + next() % 1_000_000,
            ip_hash: 1 + next() % 100_000,
            token_issued_at_secs: (event_time_ms / 1000 - 5) as u64,
            flags: 0,
            // A price per ad (no extra draw: the same clicks as before prices were read).
            price_micros: 10_000 + (ad % 100) * 1_000,
            ..Click::default()
        };
        batch.push(prost::Message::encode_to_vec(&click));
        offset += 1;
        if batch.len() == 100_000 {
            flush(&mut batch, offset, &mut objects);
        }
    }
    if !batch.is_empty() {
        flush(&mut batch, offset, &mut objects);
    }
    let bytes: usize = objects.iter().map(|(_, b)| b.len()).sum();
    println!(
        "generated {clicks} clicks in {} objects ({bytes} bytes) in {:.2?}",
        objects.len(),
        t.elapsed()
    );
    let before = vm_hwm_kib();

    let t = Instant::now();
    let mut settlement = Settlement::new(day, 0);
    for (object, body) in objects {
        let read = decode_object(object, &body);
        for c in &read.clicks {
            settlement.add(c);
        }
    }
    let read_settle = t.elapsed();
    let after_settle = vm_hwm_kib();
    let t = Instant::now();
    let rules = adclick_invalid::Rules::new(
        &adclick_invalid::Config::default(),
        adclick_invalid::DenyList::empty(),
    )
    .unwrap();
    let settled = settlement.finish(&rules);
    let after_finish = vm_hwm_kib();
    let finish = t.elapsed();
    let t = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let external = std::collections::BTreeMap::from([("tier".to_string(), "rollup".to_string())]);
    let block = adclick_rollup::block::write(
        dir.path(),
        day,
        &settled,
        &Default::default(),
        &external,
        adclick_tsdb::Ulid::new(),
        &[],
    )
    .unwrap();
    let write = t.elapsed();
    let st = settled.stats;
    let impressions = st.clicks + st.invalid_clicks;
    println!(
        "decode+settle {read_settle:.2?} ({:.0} clicks/s), finish (velocity sweep) {finish:.2?}, block write {write:.2?}: {} valid clicks, {} invalid, {} duplicates removed, {} series, {} samples",
        clicks as f64 / read_settle.as_secs_f64(),
        st.clicks,
        st.invalid_clicks,
        st.duplicates_removed,
        block.meta.stats.num_series,
        block.meta.stats.num_samples
    );
    println!(
        "peak RSS: {before} KiB before settling, {after_settle} KiB after reading ({:.1} bytes per distinct impression), {after_finish} KiB after finishing ({:.1}), {} KiB at the end",
        (after_settle.saturating_sub(before) as f64 * 1024.0) / impressions as f64,
        (after_finish.saturating_sub(before) as f64 * 1024.0) / impressions as f64,
        vm_hwm_kib()
    );
}
