//! `adclick export` as the operator runs it — a separate process, configured through
//! `ADCLICK_*` variables — killed with SIGKILL at random moments and restarted, while it works
//! through a backfilled topic: afterwards every campaign's every minute in Prometheus equals the
//! ground truth, and no remote_write request was refused with 400.
//!
//! Scale: `ADCLICK_TEST_SCALE=full` is the acceptance run (1M clicks over 20 minutes of
//! event time, 10k ads, 2 hot salted ads, 5% out of order, 0.5% beyond the lateness); the default
//! is a smaller run of the same shape that CI can afford.

use std::collections::{BTreeMap, HashMap};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use adclick_loadgen::kafka::KafkaTarget;
use adclick_loadgen::plan::Lateness;
use adclick_loadgen::population::PopulationConfig;
use adclick_loadgen::shape::TrafficShape;
use adclick_loadgen::{Plan, PlanConfig, RunOptions, SendKind, Target};
use adclick_testsupport::wait::Progress;
use adclick_testsupport::{PromApi, Stack, TestScope, free_port};

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

/// Starts `adclick export` for this test's topic, group, prefix and label.
fn start_exporter(scope: &TestScope, topic: &str, admin_port: u16, log: &std::path::Path) -> Child {
    let stack = &scope.stack;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Command::new(env!("CARGO_BIN_EXE_adclick"))
        .arg("export")
        .env("ADCLICK_KAFKA__BROKERS", stack.kafka_brokers())
        .env("ADCLICK_KAFKA__CLICKS_TOPIC", topic)
        .env(
            "ADCLICK_EXPORTER__GROUP_ID",
            format!("exporter-{}", scope.id),
        )
        .env(
            "ADCLICK_EXPORTER__ADMIN_LISTEN",
            format!("127.0.0.1:{admin_port}"),
        )
        .env(
            "ADCLICK_EXPORTER__DEAD_LETTER_TOPIC",
            format!("dlq-{}", scope.id),
        )
        .env("ADCLICK_EXPORTER__IDLE_TICK_MS", "1000")
        .env("ADCLICK_EXPORTER__COMMIT_INTERVAL_MS", "500")
        .env("ADCLICK_EXPORTER__TOP_K", "400")
        .env("ADCLICK_EXPORTER__LABELS__TEST_ID", &scope.id)
        .env(
            "ADCLICK_EXPORTER__REMOTE_WRITE__URL",
            stack.remote_write_url(),
        )
        .env("ADCLICK_EXPORTER__ARCHIVE__PREFIX", scope.s3_prefix())
        .env("ADCLICK_S3__ENDPOINT_URL", stack.s3_endpoint())
        .env("ADCLICK_S3__BUCKET", stack.s3_bucket())
        .env("ADCLICK_S3__REGION", stack.s3_region())
        .env("AWS_ACCESS_KEY_ID", stack.aws_access_key_id())
        .env("AWS_SECRET_ACCESS_KEY", stack.aws_secret_access_key())
        // Static group membership (KIP-345): a restarted exporter takes its killed predecessor's
        // place at once instead of waiting for the group to notice it is gone.
        .env("ADCLICK_EXPORTER__INSTANCE_ID", format!("{}-0", scope.id))
        .env("ADCLICK_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("starting adclick export")
}

/// `adclick_remote_write_requests_total{code="400"}` of the running exporter (0 before it serves).
async fn refused_400(admin_port: u16) -> u64 {
    let Ok(r) = reqwest::get(format!("http://127.0.0.1:{admin_port}/metrics")).await else {
        return 0;
    };
    let text = r.text().await.unwrap_or_default();
    text.lines()
        .filter(|l| {
            l.starts_with("adclick_remote_write_requests_total") && l.contains("code=\"400\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Per (campaign, minute end): `adclick_clicks` (own series and other) over the test's series.
async fn campaign_minutes(prom: &PromApi, id: &str, metric: &str) -> BTreeMap<(u64, i64), u64> {
    let series = prom
        .query(&format!("{metric}{{test_id=\"{id}\"}}[2h]"), None)
        .await
        .unwrap_or_else(|e| panic!("querying {metric}: {e}"));
    let mut out = BTreeMap::new();
    for s in series {
        let campaign: u64 = s.labels["campaign_id"].parse().unwrap();
        for (t, v) in s.samples {
            *out.entry((campaign, t)).or_insert(0) += v as u64;
        }
    }
    out.retain(|_, v| *v != 0);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exporter_process_killed_repeatedly_still_counts_exactly() {
    let scale = scale();
    let stack = Stack::get();
    let scope = stack.isolated("exporter-kill9");
    let topic = scope.kafka_topic(4).await;
    let now = adclick_loadgen::run::now_ms();
    let config = PlanConfig {
        seed: 21,
        start_ms: now - (scale.minutes + 3) * 60_000,
        duration_secs: (scale.minutes * 60) as f64,
        shape: TrafficShape::Steady {
            rate: scale.clicks / (scale.minutes * 60) as f64,
        },
        population: PopulationConfig {
            advertisers: scale.advertisers,
            campaigns_per_advertiser: 20,
            ads_per_campaign: 10,
            zipf_exponent: 1.0,
            hot_ads: 2,
            hot_share: 0.1,
        },
        duplicate_share: 0.0,
        allowed_lateness_secs: 10.0,
        lateness_margin_secs: 3.0,
        late_share: 0.05,
        too_late_share: 0.005,
        too_late_extra_max_secs: 60.0,
        forged_share: 0.0,
        expired_share: 0.0,
        ..PlanConfig::default()
    };
    let plan = Plan::new(config.clone()).expect("plan");
    let hot: HashMap<u64, u32> = plan
        .population()
        .hot_ads()
        .iter()
        .map(|ad| (ad.ad_id, 4))
        .collect();
    // Clicks beyond the lateness are written to adclick_late_clicks, not their own minute.
    let mut too_late: BTreeMap<(u64, i64), u64> = BTreeMap::new();
    let mut too_late_ad: BTreeMap<(u64, i64), u64> = BTreeMap::new();
    for send in Plan::new(config).expect("plan") {
        if send.kind == SendKind::Click && send.lateness == Lateness::TooLate {
            let end = adclick_click::Minute::of(send.event_time_ms).end_ms();
            *too_late.entry((send.ad.campaign_id, end)).or_insert(0) += 1;
            *too_late_ad.entry((send.ad.ad_id, end)).or_insert(0) += 1;
        }
    }
    let target =
        Target::Kafka(KafkaTarget::new(stack.kafka_brokers(), &topic, &[], hot).expect("producer"));
    let truth = adclick_loadgen::run(plan, &target, &RunOptions::default())
        .await
        .expect("backfill");
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
        let mut child = start_exporter(&scope, &topic, admin_port, &log);
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
        refused += refused_400(admin_port).await;
        child.kill().expect("SIGKILL"); // Child::kill is SIGKILL on Unix
        child.wait().unwrap();
    }
    let mut child = start_exporter(&scope, &topic, admin_port, &log);
    let prom = PromApi::new(stack.prometheus_url());
    // Fails when the written counts stop moving for two minutes (or after six such spells), not at
    // a fixed time: the machine is shared, and a slow run is not a wrong one.
    let mut progress = Progress::new("exact after the kills", Duration::from_secs(120));
    let id = scope.id.clone();
    loop {
        let written = campaign_minutes(&prom, &id, "adclick_clicks").await;
        let late: u64 = campaign_minutes(&prom, &id, "adclick_late_clicks")
            .await
            .values()
            .sum();
        if written == expected && late == late_total {
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "adclick export exited by itself ({status}); log: {}",
                log.display()
            );
        }
        let total: u64 = written.values().sum();
        if let Err(stalled) = progress.observe(&format!("{total} + {late} late")) {
            let differ: Vec<_> = expected
                .iter()
                .filter(|(k, v)| written.get(k) != Some(v))
                .take(5)
                .collect();
            let _ = child.kill();
            panic!(
                "{stalled}, of {clicks} clicks; \
                 first differences (campaign, minute end) → truth: {differ:?}; log: {}",
                log.display()
            );
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
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
    // Raw samples, partitions added up (a hot ad has a series per partition).
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
    refused += refused_400(admin_port).await;
    child.kill().unwrap();
    child.wait().unwrap();
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
