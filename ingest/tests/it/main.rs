//! ingest against the stack's real Redis and Kafka (and a private tansu broker where a test kills
//! one): every test has its own topic, Redis key prefix and spill folder.

#![allow(clippy::unwrap_used)] // A test: a panic with the failed call is how it stops.

mod browser;
mod redis_connections;
mod support;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use adclick_click::wire::ClickFlag;
use adclick_loadgen::count_clicks;
use adclick_loadgen::http::HttpTarget;
use adclick_loadgen::plan::{Plan, PlanConfig};
use adclick_loadgen::run::{RunOptions, Target, run};
use adclick_loadgen::tokens::TokenMinter;
use adclick_loadgen::truth::GroundTruth;
use adclick_testsupport::traffic::{live, token_key};
use adclick_testsupport::{FaultProxy, ScratchTansu, Stack, TansuSetup, TestScope, free_port};
use support::{Ingest, client, config, kafka, read_topic};

/// The ad of the tests' own tokens: far outside loadgen's population.
const MY_AD: u64 = 4_000_000_001;

/// Live clicks with more forged and expired tokens than loadgen's defaults.
fn plan(seed: u64, rate: f64, secs: f64) -> PlanConfig {
    PlanConfig {
        forged_share: 0.005,
        expired_share: 0.005,
        ..live(seed, rate, secs)
    }
}

/// Sends `plan` to ingest at `base` through loadgen's HTTP target.
async fn send(base: &str, plan: PlanConfig, in_flight: usize) -> GroundTruth {
    let target = Target::Http(
        HttpTarget::new(
            base,
            TokenMinter::new(token_key()),
            Duration::from_secs(10),
            in_flight,
        )
        .unwrap(),
    );
    let opts = RunOptions {
        max_in_flight: in_flight,
        ..RunOptions::default()
    };
    let truth = run(Plan::new(plan).unwrap(), &target, &opts)
        .await
        .expect("loadgen run");
    let s = &truth.summary;
    assert_eq!(s.errors, 0, "{:?}", s.error_examples);
    assert_eq!(s.refused_as_expected, s.forged_sent + s.expired_sent);
    truth
}

fn token(url: &str) -> (String, [u8; 16]) {
    support::signed_token(MY_AD, url)
}

/// GETs a click; the status and how long the answer took.
async fn click(http: &reqwest::Client, base: &str, token: &str) -> (u16, Duration) {
    let started = Instant::now();
    let response = http
        .get(format!("{base}/click/{token}"))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), started.elapsed())
}

fn clicks_per_impression(clicks: &[adclick_click::Click]) -> HashMap<Vec<u8>, usize> {
    let mut per = HashMap::new();
    for c in clicks {
        *per.entry(c.impression_id.clone()).or_default() += 1;
    }
    per
}

/// The loadgen's truth is exactly what the topic holds: every 302'd unique click once, every
/// duplicate, forged and expired one absent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loadgen_clicks_reach_the_topic_exactly_once() {
    let scope = Stack::get().isolated("ingest-exactly-once");
    let topic = scope.kafka_topic(4).await;
    let spill = tempfile::tempdir().unwrap();
    let mut cfg = config(scope.stack.redis_url(), &scope.redis_prefix(), spill.path());
    // Generous bounds: this test is about exactly-once on the healthy path, not about failing
    // open or spilling, which a busy two-core test machine would trigger at 20 and 50 ms.
    cfg.produce_timeout_ms = 5_000;
    cfg.dedup_timeout_ms = 2_000;
    let clicks: f64 = std::env::var("ADCLICK_IT_CLICKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000.0);
    let ingest = Ingest::start(cfg, kafka(scope.stack.kafka_brokers(), &topic)).await;

    let truth = send(&ingest.base, plan(11, 2_000.0, clicks / 2_000.0), 64).await;
    let s = &truth.summary;
    assert!(
        s.duplicates_sent > 0 && s.forged_sent > 0 && s.expired_sent > 0,
        "{s:?}"
    );
    let records = read_topic(
        scope.stack.kafka_brokers(),
        &topic,
        s.clicks as usize,
        Duration::from_secs(3),
        Duration::from_secs(120),
    )
    .await;

    assert_eq!(
        records.len() as u64,
        s.clicks,
        "one record per unique click, no more"
    );
    assert_eq!(
        &count_clicks(&records),
        truth.counts(),
        "every ad-minute count matches the truth"
    );
    assert!(
        records.iter().all(|c| c.flags == 0),
        "healthy path: no flags"
    );
    let m = ingest.metrics().await;
    assert_eq!(
        support::metric_value(&m, "adclick_ingest_duplicates_total"),
        s.duplicates_sent as f64
    );
    assert_eq!(
        support::metric_value(&m, "adclick_ingest_clicks_accepted_total{path=\"kafka\"}"),
        s.clicks as f64
    );
    // Every claim went to Redis in some round, and every round was answered in time.
    let rounds = support::metric_value(&m, "adclick_ingest_claim_round_duration_seconds_count");
    assert!(
        rounds >= 1.0 && rounds <= (s.clicks + s.duplicates_sent) as f64,
        "{rounds} rounds of claims for {} clicks and {} repeats",
        s.clicks,
        s.duplicates_sent
    );
    let invalid: f64 = ["bad_signature", "unknown_key", "expired"]
        .iter()
        .map(|r| {
            support::metric_value(
                &m,
                &format!("adclick_ingest_invalid_total{{reason=\"{r}\"}}"),
            )
        })
        .sum();
    assert_eq!(invalid, (s.forged_sent + s.expired_sent) as f64);
    ingest.stop().await;
}

/// A dedup store on the stack's Redis under the test's prefix, connected, with a generous bound
/// (these tests are about what Redis answers, not about failing open).
async fn connected_dedup(scope: &adclick_testsupport::TestScope) -> adclick_ingest::dedup::Dedup {
    let metrics = adclick_ingest::metrics::Metrics::new(&mut Default::default());
    let dedup = adclick_ingest::dedup::Dedup::new(
        &adclick_ingest::redis_link::RedisSettings::for_url(scope.stack.redis_url()),
        &scope.redis_prefix(),
        60,
        Duration::from_secs(5),
        metrics,
    )
    .unwrap();
    assert!(dedup.wait_connected(Duration::from_secs(5)).await.unwrap());
    dedup
}

/// A claim that counts velocity (the Redis script): only a new claim counts, each count is the
/// running count of its window, and the counters expire.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn velocity_counts_only_new_claims_one_running_count_each() {
    use adclick_ingest::dedup::Claim;
    use adclick_ingest::velocity::{Counter, Window};
    let scope = Stack::get().isolated("ingest-velocity");
    let dedup = connected_dedup(&scope).await;
    let counters = [
        Counter {
            key: format!("{}vel:u:m", scope.redis_prefix()),
            ttl_secs: 120,
            window: Window::UserMinute,
        },
        Counter {
            key: format!("{}vel:i:s", scope.redis_prefix()),
            ttl_secs: 10,
            window: Window::IpSecond,
        },
    ];
    // 200 impressions clicked twice each, all at once: 200 new claims, whose counts are exactly
    // 1..=200 in both windows (every new claim counted once, no repeat counted).
    let claims = (0..400u32).map(|i| {
        let dedup = dedup.clone();
        let counters = counters.to_vec();
        let impression = (i % 200).to_be_bytes().repeat(4);
        tokio::spawn(async move { dedup.claim(&impression, counters).await })
    });
    let mut user_counts = Vec::new();
    for claim in futures::future::join_all(claims).await {
        match claim.unwrap() {
            Claim::New(v) => {
                assert_eq!(v.user_clicks_in_minute, v.ip_clicks_in_second);
                assert_eq!(v.user_clicks_in_second, None);
                user_counts.push(v.user_clicks_in_minute.unwrap());
            }
            Claim::Duplicate => {}
            Claim::Unchecked(reason) => panic!("a claim failed open ({reason}) with a 5 s bound"),
        }
    }
    user_counts.sort_unstable();
    assert_eq!(user_counts, (1..=200).collect::<Vec<u64>>());
    let mut redis = redis::Client::open(scope.stack.redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let ttl: i64 = redis::cmd("TTL")
        .arg(&counters[1].key)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!((1..=10).contains(&ttl), "{ttl}");
}

/// Claims of one moment go out to Redis as one pipeline (`dedup`) and keep their meaning: of the
/// concurrent claims of one impression exactly one is new, and every impression gets one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_claims_are_one_new_per_impression() {
    let scope = Stack::get().isolated("ingest-dedup-batch");
    let dedup = connected_dedup(&scope).await;
    assert_one_new_per_impression(&dedup).await;
}

/// 2,000 concurrent claims over 500 impressions: exactly one new per impression, none failing
/// open (the dedup's bound must be generous).
async fn assert_one_new_per_impression(dedup: &adclick_ingest::dedup::Dedup) {
    use adclick_ingest::dedup::Claim;
    const IMPRESSIONS: u32 = 500;
    const CLICKS_EACH: u32 = 4;
    let claims = (0..IMPRESSIONS * CLICKS_EACH).map(|i| {
        let dedup = dedup.clone();
        let impression = (i % IMPRESSIONS).to_be_bytes().repeat(4);
        tokio::spawn(async move {
            (
                impression.clone(),
                dedup.claim(&impression, Vec::new()).await,
            )
        })
    });
    let mut new_per_impression: HashMap<Vec<u8>, u32> = HashMap::new();
    for claimed in futures::future::join_all(claims).await {
        let (impression, claim) = claimed.unwrap();
        let count = new_per_impression.entry(impression).or_default();
        match claim {
            Claim::New(_) => *count += 1,
            Claim::Duplicate => {}
            Claim::Unchecked(reason) => panic!("a claim failed open ({reason}) with a 5 s bound"),
        }
    }
    assert_eq!(new_per_impression.len(), IMPRESSIONS as usize);
    assert!(
        new_per_impression.values().all(|&n| n == 1),
        "impressions claimed new more or less than once: {:?}",
        new_per_impression.values().filter(|&&n| n != 1).count()
    );
}

#[tokio::test]
async fn repeats_of_one_impression_are_produced_once() {
    let scope = Stack::get().isolated("ingest-repeats");
    let topic = scope.kafka_topic(2).await;
    let spill = tempfile::tempdir().unwrap();
    let mut cfg = config(scope.stack.redis_url(), &scope.redis_prefix(), spill.path());
    cfg.produce_timeout_ms = 5_000;
    cfg.dedup_timeout_ms = 2_000;
    let ingest = Ingest::start(cfg, kafka(scope.stack.kafka_brokers(), &topic)).await;
    let http = client();
    let (a, a_id) = token("https://shop.example/a");
    let (b, b_id) = token("https://shop.example/b");
    for t in [&a, &a, &b, &a, &b] {
        assert_eq!(click(&http, &ingest.base, t).await.0, 302);
    }
    let records = read_topic(
        scope.stack.kafka_brokers(),
        &topic,
        2,
        Duration::from_secs(3),
        Duration::from_secs(60),
    )
    .await;
    let per = clicks_per_impression(&records);
    assert_eq!(per, HashMap::from([(a_id.to_vec(), 1), (b_id.to_vec(), 1)]));
    // The key exists in Redis under the test's own prefix, with the configured lifetime.
    let mut redis = redis::Client::open(scope.stack.redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let ttl: i64 = redis::cmd("TTL")
        .arg(format!("{}{}", scope.redis_prefix(), hex::encode(a_id)))
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!((86_000..=86_400).contains(&ttl), "ttl {ttl}");
    ingest.stop().await;
}

#[tokio::test]
async fn unreachable_redis_fails_open_with_the_flag() {
    let scope = Stack::get().isolated("ingest-redis-down");
    let topic = scope.kafka_topic(2).await;
    let spill = tempfile::tempdir().unwrap();
    let mut cfg = config(
        &format!("redis://127.0.0.1:{}", free_port()),
        &scope.redis_prefix(),
        spill.path(),
    );
    cfg.produce_timeout_ms = 5_000;
    let ingest = Ingest::start(cfg, kafka(scope.stack.kafka_brokers(), &topic)).await;
    let http = client();
    let (a, _) = token("https://shop.example/a");
    for _ in 0..3 {
        assert_eq!(click(&http, &ingest.base, &a).await.0, 302);
    }
    let records = read_topic(
        scope.stack.kafka_brokers(),
        &topic,
        1,
        Duration::from_secs(3),
        Duration::from_secs(60),
    )
    .await;
    // No dedup without Redis: all three produced, each flagged for the downstream dedup.
    assert_eq!(records.len(), 3);
    assert!(
        records
            .iter()
            .all(|c| c.has_flag(ClickFlag::DedupUnchecked))
    );
    assert_eq!(
        ingest
            .metric("adclick_ingest_dedup_fail_open_total{reason=\"unavailable\"}")
            .await,
        3.0
    );
    ingest.stop().await;
}

/// Redis answering after 2 s must not hold redirects: they fail open at the 20 ms bound. Once
/// Redis is fast again, dedup works again.
#[tokio::test]
async fn slow_redis_never_stalls_redirects_and_dedup_resumes() {
    let scope = Stack::get().isolated("ingest-redis-slow");
    let (topic, _spill, proxy, ingest, http) = ingest_behind_redis_proxy(&scope, 2).await;

    // Far slower than the bound a redirect is held to here: a redirect also waits for the
    // broker's acknowledgement, which took 300 ms once at the start of a loaded CI run (with a
    // 300 ms Redis that was indistinguishable from waiting on Redis).
    proxy.slow_down(Duration::from_secs(2));
    let (slow, slow_id) = token("https://shop.example/slow");
    for _ in 0..3 {
        let (status, took) = click(&http, &ingest.base, &slow).await;
        assert_eq!(status, 302);
        assert!(
            took < Duration::from_secs(1),
            "a redirect waited {took:?} on a slow Redis"
        );
    }
    assert!(
        ingest
            .metric("adclick_ingest_dedup_fail_open_total{reason=\"timeout\"}")
            .await
            >= 3.0
    );

    proxy.heal().await;
    // Replies held by the slow proxy drain first; once a repeat is recognised, dedup is back.
    let (fast, _) = token("https://shop.example/fast");
    wait_for_dedup(&http, &ingest, &fast).await;
    // Three clicks of a new impression: one record. On a loaded machine a claim can still miss
    // the 20 ms bound and fail open (flagged, as it should): then take another impression, until
    // all three clicks of one were checked in time.
    let fail_opens = || async {
        let mut n = 0.0;
        for reason in ["timeout", "unavailable"] {
            n += ingest
                .metric(&format!(
                    "adclick_ingest_dedup_fail_open_total{{reason=\"{reason}\"}}"
                ))
                .await;
        }
        n
    };
    let mut checked_in_time = None;
    for attempt in 0..5 {
        let before = fail_opens().await;
        let (fresh, fresh_id) = token(&format!("https://shop.example/fresh/{attempt}"));
        for _ in 0..3 {
            assert_eq!(click(&http, &ingest.base, &fresh).await.0, 302);
        }
        if fail_opens().await == before {
            checked_in_time = Some(fresh_id);
            break;
        }
    }
    let fresh_id = checked_in_time
        .expect("in five tries, no impression had its three clicks checked against Redis in time");
    let records = read_topic(
        scope.stack.kafka_brokers(),
        &topic,
        4,
        Duration::from_secs(3),
        Duration::from_secs(60),
    )
    .await;
    let per = clicks_per_impression(&records);
    assert_eq!(per[&slow_id.to_vec()], 3, "unchecked while slow");
    assert_eq!(per[&fresh_id.to_vec()], 1, "deduplicated again");
    assert!(
        records
            .iter()
            .filter(|c| c.impression_id == slow_id)
            .all(|c| c.has_flag(ClickFlag::DedupUnchecked))
    );
    ingest.stop().await;
}

/// Ingest on a topic of its own whose Redis sits behind a proxy the test controls, returned once
/// it is connected and deduplicating. The temp dir holds its spill: keep it alive as long as ingest.
async fn ingest_behind_redis_proxy(
    scope: &TestScope,
    partitions: i32,
) -> (
    String,
    tempfile::TempDir,
    FaultProxy,
    Ingest,
    reqwest::Client,
) {
    let topic = scope.kafka_topic(partitions).await;
    let spill = tempfile::tempdir().unwrap();
    let proxy = FaultProxy::start(scope.stack.redis_url().trim_start_matches("redis://")).await;
    let redis_url = format!("redis://{}", proxy.addr());
    let mut cfg = config(&redis_url, &scope.redis_prefix(), spill.path());
    // Generous: these tests are about Redis, and a busy CI must not spill to the broker path.
    cfg.produce_timeout_ms = 5_000;
    let ingest = Ingest::start(cfg, kafka(scope.stack.kafka_brokers(), &topic)).await;
    let http = client();
    let (warm, _) = token("https://shop.example/warm");
    wait_for_dedup(&http, &ingest, &warm).await;
    (topic, spill, proxy, ingest, http)
}

/// Clicks `token` until a repeat is recognised as a duplicate (dedup is working), at most 10 s.
async fn wait_for_dedup(http: &reqwest::Client, ingest: &Ingest, token: &str) {
    let started = Instant::now();
    let before = ingest.metric("adclick_ingest_duplicates_total").await;
    loop {
        assert_eq!(click(http, &ingest.base, token).await.0, 302);
        if ingest.metric("adclick_ingest_duplicates_total").await > before {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "dedup never worked"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Redis goes away in the middle of a loadgen run and comes back: redirects keep flowing, the
/// topic still holds every unique click, the ones during the outage flagged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_mid_run_keeps_redirects_flowing() {
    let scope = Stack::get().isolated("ingest-redis-outage");
    let (topic, _spill, proxy, ingest, http) = ingest_behind_redis_proxy(&scope, 4).await;

    let outage = async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        proxy.go_down();
        tokio::time::sleep(Duration::from_secs(3)).await;
        proxy.heal().await;
    };
    let (truth, ()) = tokio::join!(send(&ingest.base, plan(12, 500.0, 8.0), 32), outage);
    let s = &truth.summary;
    let records = read_topic(
        scope.stack.kafka_brokers(),
        &topic,
        s.clicks as usize + 1,
        Duration::from_secs(3),
        Duration::from_secs(60),
    )
    .await;
    let records: Vec<_> = records.into_iter().filter(|c| c.ad_id != MY_AD).collect();
    assert_eq!(&count_clicks(&records), truth.counts());
    let flagged = records
        .iter()
        .filter(|c| c.has_flag(ClickFlag::DedupUnchecked))
        .count();
    assert!(
        flagged > 100,
        "{flagged} clicks flagged during a 3 s outage at 500/s"
    );
    assert!(
        flagged < records.len(),
        "clicks before and after the outage were checked"
    );

    // Back: dedup works again.
    let (after, _) = token("https://shop.example/after");
    wait_for_dedup(&http, &ingest, &after).await;
    ingest.stop().await;
}

/// No broker at all: every click is redirected from the spill. Restarted with the broker, ingest
/// replays the spill: every click reaches the topic, flagged replayed.
#[tokio::test]
async fn without_a_broker_clicks_spill_and_a_restart_replays_them() {
    for kill in [false, true] {
        let scope = Stack::get().isolated(if kill {
            "ingest-spill-kill"
        } else {
            "ingest-spill-stop"
        });
        let topic = scope.kafka_topic(2).await;
        let spill = tempfile::tempdir().unwrap();
        let cfg = config(scope.stack.redis_url(), &scope.redis_prefix(), spill.path());
        let dead = Ingest::start(
            cfg.clone(),
            kafka(&format!("127.0.0.1:{}", free_port()), &topic),
        )
        .await;
        let http = client();
        let mut ids = HashSet::new();
        for i in 0..200 {
            let (t, id) = token(&format!("https://shop.example/{i}"));
            let (status, took) = click(&http, &dead.base, &t).await;
            assert_eq!(status, 302);
            assert!(took < Duration::from_secs(1), "{took:?}");
            ids.insert(id.to_vec());
        }
        assert_eq!(dead.metric("adclick_ingest_spill_records").await, 200.0);
        assert!(
            dead.metric("adclick_ingest_clicks_accepted_total{path=\"spill\"}")
                .await
                >= 199.0
        );
        assert_eq!(
            reqwest::get(format!("{}/readyz", dead.admin))
                .await
                .unwrap()
                .status(),
            200
        );
        if kill {
            dead.kill().await;
        } else {
            dead.stop().await;
        }

        let back = Ingest::start(cfg, kafka(scope.stack.kafka_brokers(), &topic)).await;
        let records = read_topic(
            scope.stack.kafka_brokers(),
            &topic,
            200,
            Duration::from_secs(3),
            Duration::from_secs(60),
        )
        .await;
        let got: HashSet<Vec<u8>> = records.iter().map(|c| c.impression_id.clone()).collect();
        assert_eq!(got, ids, "kill: {kill}");
        assert!(records.iter().all(|c| c.has_flag(ClickFlag::Replayed)));
        let started = Instant::now();
        while back.metric("adclick_ingest_spill_records").await > 0.0 {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the spill was not emptied"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(back.metric("adclick_ingest_spill_replayed_total").await >= 200.0);
        back.stop().await;
    }
}

/// The broker is killed (-9) in the middle of a loadgen run and restarted: every click that got
/// its 302 is in the topic afterwards, from the broker or from the spill replay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_killed_mid_run_loses_no_redirected_click() {
    let scope = Stack::get().isolated("ingest-broker-kill");
    let topic = format!("test-{}", scope.id);
    let mut broker = ScratchTansu::start_anywhere(&TansuSetup {
        advertised: None,
        topics: &[(&topic, 2)],
        scram_users: &[],
    });
    let spill = tempfile::tempdir().unwrap();
    let ingest = Ingest::start(
        config(scope.stack.redis_url(), &scope.redis_prefix(), spill.path()),
        kafka(&broker.brokers(), &topic),
    )
    .await;
    let brokers = broker.brokers();
    let outage = async {
        tokio::time::sleep(Duration::from_secs(3)).await;
        broker.kill();
        tokio::time::sleep(Duration::from_secs(3)).await;
        broker.restart();
    };
    let (truth, ()) = tokio::join!(send(&ingest.base, plan(13, 300.0, 10.0), 32), outage);
    let s = &truth.summary;
    assert!(
        ingest
            .metric("adclick_ingest_clicks_accepted_total{path=\"spill\"}")
            .await
            > 100.0,
        "the outage spilled clicks"
    );
    let records = read_topic(
        &brokers,
        &topic,
        s.clicks as usize,
        Duration::from_secs(5),
        Duration::from_secs(120),
    )
    .await;
    assert_eq!(
        &count_clicks(&records),
        truth.counts(),
        "log: {}",
        broker.log_path().display()
    );
    // Repeats of an impression are flagged, all but one at most: replayed copies (a produce that
    // timed out and was spilled, or a segment replayed twice) or unchecked clicks (Redis slower
    // than its bound). Those flags are what the downstream dedup relies on.
    let mut unflagged: HashMap<&[u8], usize> = HashMap::new();
    for c in &records {
        if c.flags & (ClickFlag::Replayed as u32 | ClickFlag::DedupUnchecked as u32) == 0 {
            *unflagged.entry(&c.impression_id).or_default() += 1;
        }
    }
    assert!(
        unflagged.values().all(|&n| n == 1),
        "an impression produced twice without a flag"
    );
    ingest.stop().await;
}
