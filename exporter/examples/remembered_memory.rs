//! Benchmark of the dedup horizon's memory and CPU (`deploy/bench/remembered`): one partition's
//! remembered impression ids under a simulated click stream, against a baseline of the same
//! stream into a plain hash set of the same ids (what remembering them without generations
//! costs), in the same run.
//!
//! Usage: `remembered_memory [RATE] [MINUTES] [REPEAT_PERCENT]` (defaults 10000 clicks/s, 25
//! minutes of event time, 2 % repeats up to 10 minutes later), with the exporter's default
//! horizon (15 min, generations of 5 min). Prints, at the end of the run (the horizon full, a
//! generation being filled): ids remembered, heap bytes per id (the structure's own count and
//! the process RSS growth), ns per click for the horizon and for the baseline set.

#![allow(clippy::unwrap_used)] // An example: a panic with the failed call is how it stops.

use std::time::Instant;

use adclick_exporter::remembered::{Horizon, Remembered, Seen};

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// splitmix64: random-looking impression ids, reproducible.
struct Ids(u64);

impl Ids {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn id(&mut self) -> u128 {
        (u128::from(self.next()) << 64) | u128::from(self.next())
    }
}

/// The stream: (event time, impression id), `rate` per second over `minutes`, `repeat_pct` of
/// the clicks repeated up to 10 minutes later.
fn stream(rate: u64, minutes: u64, repeat_pct: u64) -> Vec<(i64, u128)> {
    let mut ids = Ids(7);
    let n = rate * minutes * 60;
    let mut out = Vec::with_capacity((n + n * repeat_pct / 100) as usize);
    for i in 0..n {
        let t = (i * 1000 / rate) as i64;
        let id = ids.id();
        out.push((t, id));
        let repeat_at = t + (ids.next() % 600_000) as i64;
        if ids.next() % 100 < repeat_pct && repeat_at < (n * 1000 / rate) as i64 {
            out.push((repeat_at, id));
        }
    }
    out.sort_by_key(|(t, _)| *t);
    out
}

fn main() {
    let arg = |i: usize, default: u64| {
        std::env::args()
            .nth(i)
            .and_then(|a| a.parse().ok())
            .unwrap_or(default)
    };
    let (rate, minutes, repeat_pct) = (arg(1, 10_000), arg(2, 25), arg(3, 2));
    let clicks = stream(rate, minutes, repeat_pct);
    let horizon = Horizon {
        horizon_ms: 15 * 60_000,
        generation_ms: 5 * 60_000,
        max_remembered: usize::MAX / 2,
    };

    let before = rss_kb();
    let mut remembered = Remembered::new(horizon);
    let started = Instant::now();
    let mut repeats = 0u64;
    let mut high = i64::MIN;
    for (offset, (t, id)) in clicks.iter().enumerate() {
        let before = (high != i64::MIN).then_some(high);
        high = high.max(*t);
        if remembered.check(offset as i64, before, high, *id) == Seen::Repeat {
            repeats += 1;
        }
    }
    let horizon_ns = started.elapsed().as_nanos() as f64 / clicks.len() as f64;
    let after = rss_kb();
    let len = remembered.len();
    let bytes = remembered.heap_bytes();
    println!(
        "horizon: {} clicks ({repeats} repeats dropped) at {rate}/s over {minutes} min: {len} ids \
         remembered, {bytes} heap bytes = {:.1} B per id (RSS growth {:.1} B per id), {horizon_ns:.0} ns per click",
        clicks.len(),
        bytes as f64 / len as f64,
        (after.saturating_sub(before) * 1024) as f64 / len as f64,
    );
    drop(remembered);

    // Baseline: the same ids, the last `len` of them, in one hash set (no generations).
    let keep = len;
    let before = rss_kb();
    let started = Instant::now();
    let mut set: std::collections::HashSet<u128, foldhash::fast::RandomState> = Default::default();
    let mut hits = 0u64;
    for (_, id) in clicks.iter().skip(clicks.len().saturating_sub(keep)) {
        if !set.insert(*id) {
            hits += 1;
        }
    }
    let set_ns = started.elapsed().as_nanos() as f64 / keep as f64;
    let after = rss_kb();
    println!(
        "baseline: {keep} ids into one HashSet<u128> ({hits} hits): RSS growth {:.1} B per id, \
         {set_ns:.0} ns per click; horizon/baseline CPU per click {:.2}",
        (after.saturating_sub(before) * 1024) as f64 / set.len() as f64,
        horizon_ns / set_ns
    );
}
