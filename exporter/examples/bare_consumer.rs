//! The baseline of the exporter benchmark (`deploy/bench/exporter`): a bare rdkafka consumer
//! that joins a consumer group on a topic, reads every partition to its end, touches each
//! record's payload and discards it, then prints one JSON line and exits.
//!
//! ```sh
//! cargo run --release -p adclick-exporter --example bare_consumer -- BROKERS TOPIC GROUP [KEY=VALUE...]
//! ```
//!
//! The consumer is configured as `adclick export` configures its own (a `group.id`, no auto
//! commit or offset store, `auto.offset.reset=earliest`, `enable.partition.eof` to see each
//! partition's end); `KEY=VALUE` arguments are further librdkafka properties. It uses
//! `BaseConsumer::poll` on one thread: nothing is decoded, counted, written or committed.
//!
//! Printed: `messages`, `bytes` (payloads), `partitions`, `join_secs` (start to the first
//! record), `secs` (first record to the end of the last partition), `msgs_per_sec` over those
//! `secs`, and `cpu_secs` / `cpu_us_per_msg`: user + system CPU of the whole process (every
//! librdkafka thread) over the same interval, from `/proc/self/stat`.

#![allow(clippy::unwrap_used)] // An example: a panic with the failed call is how it stops.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;

/// `/proc/<pid>/stat` counts CPU in clock ticks of `USER_HZ`, which Linux fixes at 100 for
/// user space on every architecture it exports `/proc` times for.
const USER_HZ: f64 = 100.0;

/// User + system CPU seconds this process (all threads) has used so far.
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after "pid (comm) ": state is the 1st, utime the 12th, stime the 13th.
    let after = stat.rsplit_once(") ").map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    match (ticks(11), ticks(12)) {
        (Some(u), Some(s)) => (u + s) / USER_HZ,
        _ => 0.0,
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [brokers, topic, group, extra @ ..] = args.as_slice() else {
        return Err("usage: bare_consumer BROKERS TOPIC GROUP [KEY=VALUE...]".into());
    };
    let started = Instant::now();
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "true");
    for property in extra {
        let (k, v) = property
            .split_once('=')
            .ok_or_else(|| format!("{property:?}: not KEY=VALUE"))?;
        config.set(k, v);
    }
    let consumer: BaseConsumer = config.create()?;
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(30))?;
    let partitions = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .map_or(0, |t| t.partitions().len());
    if partitions == 0 {
        return Err(format!("topic {topic} has no partitions").into());
    }
    consumer.subscribe(&[topic])?;

    let mut at_end: HashSet<i32> = HashSet::new();
    let mut messages: u64 = 0;
    let mut bytes: u64 = 0;
    // Set at the first record: when reading starts, and the CPU used by then.
    let mut first: Option<(Instant, f64)> = None;
    while at_end.len() < partitions {
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(m)) => {
                if first.is_none() {
                    first = Some((Instant::now(), cpu_secs()));
                }
                messages += 1;
                bytes += m.payload().map_or(0, |p| p.len()) as u64;
                at_end.remove(&m.partition());
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            Some(Err(e)) => return Err(e.into()),
        }
    }
    let (first_at, first_cpu) = first.unwrap_or((Instant::now(), cpu_secs()));
    let secs = first_at.elapsed().as_secs_f64();
    let cpu = cpu_secs() - first_cpu;
    println!(
        "{}",
        serde_json::json!({
            "messages": messages,
            "bytes": bytes,
            "partitions": partitions,
            "join_secs": (first_at - started).as_secs_f64(),
            "secs": secs,
            "msgs_per_sec": messages as f64 / secs.max(f64::EPSILON),
            "cpu_secs": cpu,
            "cpu_us_per_msg": cpu * 1e6 / messages.max(1) as f64,
        })
    );
    Ok(())
}
