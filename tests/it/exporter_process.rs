//! `adclick export` (and `adclick ingest`) as the operator runs it — a separate process,
//! configured through `ADCLICK_*` variables — killed with SIGKILL at random moments and restarted, while it works
//! through a backfilled topic: afterwards every campaign's every minute in Prometheus equals the
//! ground truth, and no remote_write request was refused with 400.
//!
//! Scale: `ADCLICK_TEST_SCALE=full` is the acceptance run (1M clicks over 20 minutes of
//! event time, 10k ads, 2 hot salted ads, 5% out of order, 0.5% beyond the lateness); the default
//! is a smaller run of the same shape that CI can afford.

use std::collections::{BTreeMap, HashMap};
use std::process::Child;
use std::time::Duration;

use adclick_loadgen::{Plan, PlanConfig, SendKind};
use adclick_testsupport::traffic::{backfill, kafka_backfill, live, population};
use adclick_testsupport::{PromApi, Stack, free_port};

use crate::support::{
    BehindFaultyRedis, metric_at, run_with_redis_outage, start_exporter, wait_archive_sealed,
    wait_exact,
};

struct Scale {
    clicks: f64,
    minutes: i64,
    advertisers: u64,
    kills: usize,
}

fn scale() -> Scale {
    match std::env::var("ADCLICK_TEST_SCALE").as_deref() {
        Ok("full") => Scale {
            clicks: 1_000_000.0,
            minutes: 20,
            advertisers: 50,
            kills: 6,
        },
        _ => Scale {
            clicks: 40_000.0,
            minutes: 5,
            advertisers: 5,
            kills: 5,
        },
    }
}

/// The sum of the running exporter's samples of `metric` whose labels contain `labels` (0
/// before it serves).
async fn exporter_metric(admin_port: u16, metric: &str, labels: &str) -> f64 {
    metric_at(&format!("127.0.0.1:{admin_port}"), metric, labels).await
}

/// `adclick_remote_write_requests_total{code="400"}` of the running exporter (0 before it serves).
async fn refused_400(admin_port: u16) -> u64 {
    exporter_metric(
        admin_port,
        "adclick_remote_write_requests_total",
        "code=\"400\"",
    )
    .await as u64
}

/// SIGKILLs the exporter process (`Child::kill` is SIGKILL on Unix) after reading how many of its
/// remote_write requests were refused with 400; returns that number.
async fn sigkill(child: &mut Child, admin_port: u16) -> u64 {
    let refused = refused_400(admin_port).await;
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    refused
}

/// Per (ad, minute end): the ads' own `adclick_clicks` series of the test, their partitions added
/// up (a hot ad has a series per partition).
async fn own_series_per_ad(prom: &PromApi, id: &str) -> BTreeMap<(u64, i64), u64> {
    let series = prom
        .query(
            &format!("adclick_clicks{{test_id=\"{id}\", ad_id!=\"other\"}}[2h]"),
            None,
        )
        .await
        .unwrap();
    let mut got_ad: BTreeMap<(u64, i64), u64> = BTreeMap::new();
    for one in &series {
        let ad: u64 = one.labels["ad_id"].parse().unwrap();
        for (t, v) in &one.samples {
            *got_ad.entry((ad, *t)).or_insert(0) += *v as u64;
        }
    }
    got_ad
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exporter_process_killed_repeatedly_still_counts_exactly() {
    let scale = scale();
    let stack = Stack::get();
    let scope = stack.isolated("exporter-kill9");
    let topic = scope.kafka_topic(4).await;
    let start_ms = adclick_loadgen::run::now_ms() - (scale.minutes + 3) * 60_000;
    let rate = scale.clicks / (scale.minutes * 60) as f64;
    let config = PlanConfig {
        population: population(scale.advertisers, 20, 10, 2),
        ..kafka_backfill(21, start_ms, scale.minutes, rate)
    };
    let fill = backfill(&scope, &topic, config).await;
    // Clicks beyond the lateness are written to adclick_late_clicks, not their own minute.
    let mut too_late: BTreeMap<(u64, i64), u64> = BTreeMap::new();
    let mut too_late_ad: BTreeMap<(u64, i64), u64> = BTreeMap::new();
    for (k, n) in &fill.too_late {
        *too_late
            .entry((k.ad.campaign_id, k.minute_end_ms))
            .or_insert(0) += n;
        *too_late_ad
            .entry((k.ad.ad_id, k.minute_end_ms))
            .or_insert(0) += n;
    }
    let truth = fill.truth;
    let clicks = truth.summary.clicks;
    let mut expected: BTreeMap<(u64, i64), u64> = BTreeMap::new();
    for (k, n) in truth.counts() {
        *expected
            .entry((k.ad.campaign_id, k.minute_end_ms))
            .or_insert(0) += n;
    }
    for (k, n) in &too_late {
        let e = expected.get_mut(k).unwrap();
        *e -= n;
    }
    expected.retain(|_, v| *v != 0);
    let late_total: u64 = too_late.values().sum();

    let log = std::env::temp_dir().join(format!("adclick-{}.log", scope.id));
    let admin_port = free_port();
    let mut refused = 0;
    // SIGKILL at moments spread over the run (xorshift from a fixed seed: reproducible).
    let mut r = 0x2545_f491_4f6c_dd1du64;
    for kill in 0..scale.kills {
        let mut child = start_exporter(&scope, &topic, admin_port, &log, &[]);
        r ^= r << 13;
        r ^= r >> 7;
        r ^= r << 17;
        let after = Duration::from_millis(800 + r % 2_500 + 500 * kill as u64);
        tokio::time::sleep(after).await;
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "adclick export exited by itself ({status}) before kill {kill}; log: {}",
                log.display()
            );
        }
        refused += sigkill(&mut child, admin_port).await;
    }
    let mut child = start_exporter(&scope, &topic, admin_port, &log, &[]);
    let prom = PromApi::new(stack.prometheus_url());
    // Fails when the written counts stop moving for two minutes (or after six such spells), not at
    // a fixed time: the machine is shared, and a slow run is not a wrong one.
    let id = scope.id.clone();
    if let Err(e) = wait_exact(
        &prom,
        &id,
        &expected,
        late_total,
        "exact after the kills",
        &mut [&mut child],
    )
    .await
    {
        let _ = child.kill();
        panic!("{e}; of {clicks} clicks; log: {}", log.display());
    }
    // Every ad with a series of its own in a minute has its exact count there (an ad folded
    // into "other" in a minute has none; the campaign sums above cover it).
    let mut want_ad: BTreeMap<(u64, i64), u64> = BTreeMap::new();
    for (k, n) in truth.counts() {
        let n = n - too_late_ad
            .get(&(k.ad.ad_id, k.minute_end_ms))
            .copied()
            .unwrap_or(0);
        want_ad.insert((k.ad.ad_id, k.minute_end_ms), n);
    }
    let got_ad = own_series_per_ad(&prom, &id).await;
    let mut own_minutes = 0;
    for (key, v) in got_ad.iter().filter(|(_, v)| **v != 0) {
        own_minutes += 1;
        assert_eq!(
            Some(v),
            want_ad.get(key),
            "ad {} minute ending {}",
            key.0,
            key.1
        );
    }
    refused += sigkill(&mut child, admin_port).await;
    assert_eq!(
        refused,
        0,
        "remote_write requests refused with 400 (log: {})",
        log.display()
    );
    println!(
        "exact after {} SIGKILLs: {clicks} clicks ({late_total} beyond the lateness), \
         {} campaign-minutes, {own_minutes} ad-minutes on own series, 0 requests refused",
        scale.kills,
        expected.len()
    );
}

/// A third-party producer's click, as click.proto describes it.
#[derive(Clone)]
struct ThirdPartyClick {
    impression_id: [u8; 16],
    ad_id: u64,
    campaign_id: u64,
    advertiser_id: u64,
    event_time_ms: i64,
}

/// Protobuf encoding of `Click` by hand, from click.proto's field numbers alone (no adclick code):
/// 1 bytes, 2-4 uint64 varints, 5-6 int64 varints, 7 fixed64, 8 uint32.
fn encode_by_hand(c: &ThirdPartyClick) -> Vec<u8> {
    fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    let mut out = vec![0x0a, 16];
    out.extend_from_slice(&c.impression_id);
    for (tag, v) in [
        (0x10, c.ad_id),
        (0x18, c.campaign_id),
        (0x20, c.advertiser_id),
        (0x28, c.event_time_ms as u64),
        (0x30, c.event_time_ms as u64),
    ] {
        out.push(tag);
        varint(&mut out, v);
    }
    out
}

/// Writes `clicks` with `producer` (key: the ad id, the hot ad's salted by the contract's rule)
/// and waits for every delivery report.
async fn produce(
    producer: &rdkafka::producer::FutureProducer,
    topic: &str,
    clicks: &[ThirdPartyClick],
) {
    let sends = clicks.iter().map(|c| {
        let value = encode_by_hand(c);
        let key = if c.ad_id == HOT_AD {
            format!("{}:{}", c.ad_id, contract_salt(&c.impression_id, 4))
        } else {
            c.ad_id.to_string()
        };
        async move {
            producer
                .send(
                    rdkafka::producer::FutureRecord::to(topic)
                        .key(&key)
                        .payload(&value),
                    Duration::from_secs(30),
                )
                .await
                .map(|_| ())
                .map_err(|(e, _)| e)
        }
    });
    for sent in futures::future::join_all(sends).await {
        sent.expect("a delivery report");
    }
}

/// The third-party test's hot ad (salted over 4 keys).
const HOT_AD: u64 = 9_001;

/// click.proto's salt rule, written from its text: u32 little-endian of the first four bytes of
/// the impression id, mod N.
fn contract_salt(impression_id: &[u8; 16], n: u32) -> u32 {
    u32::from_le_bytes([
        impression_id[0],
        impression_id[1],
        impression_id[2],
        impression_id[3],
    ]) % n
}

/// A producer that knows only click.proto — hand-encoded records from an idempotent librdkafka
/// producer (acks=all), 15 % repeats up to 4.5 minutes (the exporter's horizon here: 5) after
/// their impression's first click and across minute boundaries, one hot ad salted by the contract's rule over 4 keys — while the
/// exporter process is SIGKILLed three times: every campaign's and every own-series ad's every
/// minute equals the truth (each impression once, at its first click), and the rollup of the
/// archive agrees with the stream (exit 0).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_third_party_producer_with_repeats_across_minutes_is_counted_exactly() {
    use rdkafka::producer::FutureProducer;
    let full = std::env::var("ADCLICK_TEST_SCALE").as_deref() == Ok("full");
    let (clicks, minutes) = if full { (120_000, 40) } else { (12_000, 18) };
    let stack = Stack::get();
    let scope = stack.isolated("third-party");
    let topic = scope.kafka_topic(4).await;
    let mut rng = adclick_testsupport::Rng(0x3b1d_0e5f);
    let start = adclick_loadgen::run::now_ms() - (minutes + 2) * 60_000;
    let span = minutes * 60_000;
    // (event time, click): first clicks spread over the span, repeats up to 14 min later.
    let mut records: Vec<ThirdPartyClick> = vec![];
    let mut truth: BTreeMap<(u64, u64, i64), u64> = BTreeMap::new();
    for i in 0..clicks {
        let mut impression_id = [0u8; 16];
        impression_id[..8].copy_from_slice(&rng.next_u64().to_le_bytes());
        impression_id[8..].copy_from_slice(&rng.next_u64().to_le_bytes());
        let ad_id = if i % 10 == 0 {
            HOT_AD
        } else {
            1 + rng.next_u64() % 300
        };
        let campaign_id = 100 + ad_id % 7;
        let event_time_ms = start + span * i / clicks;
        let end = adclick_click::Minute::of(event_time_ms).end_ms();
        *truth.entry((campaign_id, ad_id, end)).or_insert(0) += 1;
        let click = |event_time_ms| ThirdPartyClick {
            impression_id,
            ad_id,
            campaign_id,
            advertiser_id: 77,
            event_time_ms,
        };
        records.push(click(event_time_ms));
        if rng.next_u64() % 100 < 15 {
            // One or two repeats, a second to 4.5 minutes later: within the test's horizon.
            for _ in 0..1 + rng.next_u64() % 2 {
                let later = event_time_ms + rng.range(1_000, 270_000);
                records.push(click(later.min(start + span + 60_000)));
            }
        }
    }
    let repeats = records.len() - clicks as usize;
    // Written in event-time order, as a live producer writes them.
    records.sort_by_key(|r| r.event_time_ms);
    let crossing = {
        let mut first: HashMap<[u8; 16], i64> = HashMap::new();
        let mut n = 0;
        for r in &records {
            let t0 = *first.entry(r.impression_id).or_insert(r.event_time_ms);
            n += (r.event_time_ms / 60_000 != t0 / 60_000) as usize;
        }
        n
    };
    assert!(
        crossing > repeats / 2,
        "{crossing} of {repeats} repeats cross a minute"
    );

    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", stack.kafka_brokers())
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    let log = std::env::temp_dir().join(format!("adclick-{}.log", scope.id));
    let admin_port = free_port();
    // The producer writes old event times while the exporter restarts: no idle tick may move
    // event time to the clock in between (it would make the rest late); one closes the last
    // minutes, and seals the archive, once the producer is done.
    // A 5-minute horizon in generations of one: the committed offset moves on with the
    // generations forgotten, and every restart rebuilds from the middle of the log.
    let quiet = [
        ("ADCLICK_EXPORTER__IDLE_TICK_MS", "20000"),
        ("ADCLICK_EXPORTER__DEDUP_HORIZON_MS", "300000"),
        ("ADCLICK_EXPORTER__DEDUP_GENERATION_MS", "60000"),
        // Small archive objects: an object being filled holds the counting point back.
        ("ADCLICK_EXPORTER__ARCHIVE__MAX_RECORDS", "500"),
    ];
    // A third of the log is there before the exporter starts, the rest comes over about 15 s.
    let (before, during) = records.split_at(records.len() / 3);
    produce(&producer, &topic, before).await;
    let during: Vec<Vec<ThirdPartyClick>> = during
        .chunks(during.len().div_ceil(30))
        .map(|c| c.to_vec())
        .collect();
    let producing = tokio::spawn({
        let (producer, topic) = (producer.clone(), topic.clone());
        async move {
            for chunk in during {
                produce(&producer, &topic, &chunk).await;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    });
    let mut refused = 0;
    let mut kills = 0;
    let mut child = start_exporter(&scope, &topic, admin_port, &log, &quiet);
    while kills < 3 {
        // Killed once it counts again (past its re-read of the horizon) and has committed, at a
        // moment of the replay or the live tail.
        adclick_testsupport::wait::eventually(
            Duration::from_secs(90),
            "the restarted exporter counts and commits",
            || async {
                let counted = exporter_metric(
                    admin_port,
                    "adclick_exporter_records_total",
                    "outcome=\"counted\"",
                )
                .await;
                let commits =
                    exporter_metric(admin_port, "adclick_exporter_commits_total", "").await;
                if counted > 0.0 && commits > 0.0 {
                    Ok(())
                } else {
                    Err(format!("counted {counted} records, {commits} commits"))
                }
            },
        )
        .await;
        tokio::time::sleep(Duration::from_millis(rng.range(200, 2_500) as u64)).await;
        refused += sigkill(&mut child, admin_port).await;
        kills += 1;
        child = start_exporter(&scope, &topic, admin_port, &log, &quiet);
    }
    producing.await.expect("producer task");

    let mut expected: BTreeMap<(u64, i64), u64> = BTreeMap::new();
    for ((campaign, _, end), n) in &truth {
        *expected.entry((*campaign, *end)).or_insert(0) += n;
    }
    let prom = PromApi::new(stack.prometheus_url());
    let id = scope.id.clone();
    if let Err(e) = wait_exact(
        &prom,
        &id,
        &expected,
        0,
        "exact after the kills",
        &mut [&mut child],
    )
    .await
    {
        let _ = child.kill();
        panic!(
            "{e}; truth {clicks} clicks ({repeats} repeats, {crossing} across minutes); log: {}",
            log.display()
        );
    }
    // Own series (the hot ad's four partitions added up) hold their ad's exact count.
    let got_ad = own_series_per_ad(&prom, &id).await;
    let want_ad: BTreeMap<(u64, i64), u64> = truth
        .iter()
        .map(|((_, ad, end), n)| ((*ad, *end), *n))
        .collect();
    for (key, v) in got_ad.iter().filter(|(_, v)| **v != 0) {
        assert_eq!(Some(v), want_ad.get(key), "ad {} minute {}", key.0, key.1);
    }
    assert!(
        got_ad.keys().any(|(ad, _)| *ad == HOT_AD),
        "the hot ad keeps its own series"
    );
    // The idle ticks seal the last archive objects; the rollup reads what was uploaded.
    wait_archive_sealed(&format!("127.0.0.1:{admin_port}")).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    refused += sigkill(&mut child, admin_port).await;
    assert_eq!(
        refused,
        0,
        "remote_write refused requests (log: {})",
        log.display()
    );

    // The rollup of the archive settles the same truth and finds the stream equal to it.
    let days: std::collections::BTreeSet<adclick_rollup::Day> = truth
        .keys()
        .map(|(_, _, end)| adclick_rollup::Day::of(*end))
        .collect();
    let blocks = tempfile::tempdir().unwrap();
    let mut settled = 0;
    for report in crate::support::rollup_days(&scope, &topic, &days, blocks.path(), None).await {
        settled += report.settle.clicks;
        assert_eq!(report.exit_code, 0, "{}", report.summary());
    }
    assert_eq!(settled, clicks as u64);
    println!(
        "third-party producer: {clicks} clicks, {repeats} repeats ({crossing} across minutes), \
         {kills} SIGKILLs: stream exact, rollup agrees"
    );
}

/// Redis fails for most of a run through ingest (ingest fails open and flags the clicks), while
/// users click impressions again up to 50 s later, across minute boundaries: the exporter drops
/// those repeats whichever minute they fall in, and every campaign's every minute of
/// `adclick_clicks` equals the ground truth (each impression once, at its first click).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_failing_open_while_repeats_cross_minutes_stays_exact() {
    let stack = Stack::get();
    let scope = stack.isolated("redis-fail-open");
    let topic = scope.kafka_topic(4).await;
    let BehindFaultyRedis {
        redis,
        mut ingest,
        base,
        ingest_admin,
        mut exporter,
        log,
        spill: _spill,
        ..
    } = BehindFaultyRedis::start(&scope, &topic, &[]).await;

    // 90 s with Redis down from 5 s to 80 s: the outage holds a minute boundary wherever the run
    // starts in its minute (at least 322 repeats cross one during it, over every start second).
    let run_secs = 90;
    let config = PlanConfig {
        start_ms: adclick_loadgen::run::now_ms() + 2_000,
        population: population(3, 4, 10, 0),
        duplicate_share: 0.15,
        duplicate_delay_max_secs: 50.0,
        late_share: 0.0,
        too_late_share: 0.0,
        forged_share: 0.0,
        expired_share: 0.0,
        ..live(33, 150.0, run_secs as f64)
    };
    // Redis is down from 5 s into the run to 10 s before its end.
    let (outage_from, outage_to) = (
        config.start_ms + 5_000,
        config.start_ms + (run_secs - 10) * 1000,
    );
    let mut first: HashMap<[u8; 16], i64> = HashMap::new();
    let mut crossing_in_outage = 0;
    for send in Plan::new(config.clone()).expect("plan") {
        match send.kind {
            SendKind::Click => {
                first.insert(send.impression_id, send.event_time_ms);
            }
            SendKind::Duplicate => {
                let t0 = first
                    .get(&send.impression_id)
                    .copied()
                    .unwrap_or(send.event_time_ms);
                let in_outage = (outage_from..outage_to).contains(&send.at_ms);
                crossing_in_outage +=
                    (in_outage && t0 / 60_000 != send.event_time_ms / 60_000) as u32;
            }
            _ => {}
        }
    }
    assert!(
        crossing_in_outage > 50,
        "{crossing_in_outage} repeats cross a minute in the outage"
    );
    let plan = Plan::new(config).expect("plan");
    let truth = run_with_redis_outage(&base, plan, &redis, (outage_from, outage_to)).await;
    let fail_open = metric_at(&ingest_admin, "adclick_ingest_dedup_fail_open_total", "").await;
    assert!(fail_open > 100.0, "{fail_open} clicks failed open on dedup");

    let mut expected: BTreeMap<(u64, i64), u64> = BTreeMap::new();
    for (k, n) in truth.counts() {
        *expected
            .entry((k.ad.campaign_id, k.minute_end_ms))
            .or_insert(0) += n;
    }
    let prom = PromApi::new(stack.prometheus_url());
    let id = scope.id.clone();
    let exact = wait_exact(
        &prom,
        &id,
        &expected,
        0,
        "exact through the Redis outage",
        &mut [&mut ingest, &mut exporter],
    )
    .await;
    if let Err(e) = exact {
        let _ = (ingest.kill(), exporter.kill());
        panic!(
            "{e}; truth {} clicks; log: {}",
            truth.summary.clicks,
            log.display()
        );
    }
    let _ = (ingest.kill(), exporter.kill());
    let _ = (ingest.wait(), exporter.wait());
    println!(
        "Redis down {} s of a {run_secs} s run: {} clicks, {} repeats sent ({crossing_in_outage} \
         across minutes during the outage), {fail_open} failed open: adclick_clicks exact",
        (outage_to - outage_from) / 1000,
        truth.summary.clicks,
        truth.summary.duplicates_sent,
    );
}
