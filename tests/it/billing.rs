//! Spend, unique users and the billing statement end to end (issue #19): priced version-2 tokens
//! clicked by a known population of users go through `adclick ingest` (the two hot ads salted
//! over three keys) into `adclick export`; then the rollup settles each day into a block and the
//! billing store (a PostgreSQL database of the test's own).
//!
//! What must hold, against the ground truth loadgen wrote (`truth::money`):
//! - **live:** `adclick check-truth` finds the spend of every ad series and `other`, per
//!   partition and minute, the late spend, and the unique users per ad series and `other`, per
//!   partition and minute, equal to the truth;
//! - **the block:** spend and unique users per ad per minute equal the truth's (a hot ad's users
//!   counted over all its partitions at once);
//! - **the billing store:** per ad, campaign and advertiser and day: valid clicks, spend and
//!   unique users equal the truth's; a second rollup of the days leaves exactly one set of rows
//!   (the new block's);
//! - **`adclick billing`** for two advertisers prints the truth's figures per campaign and day,
//!   the advertiser's day, and the totals.
//!
//! Killing PostgreSQL in the middle of writing a day is `billing/tests/it`'s
//! (`crash.rs`: a private cluster SIGKILLed mid-COPY; `proxy.rs`: the connection cut).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::process::Command;
use std::time::Duration;

use adclick_billing::{BillingConfig, BillingStore};
use adclick_click::token::TokenKey;
use adclick_loadgen::http::HttpTarget;
use adclick_loadgen::tokens::TokenMinter;
use adclick_loadgen::truth::money::DayKey;
use adclick_loadgen::users::PriceRange;
use adclick_loadgen::{Money, Partitioning, Plan, RunOptions, Target};
use adclick_rollup::Day;
use adclick_testsupport::traffic::{live, population};
use adclick_testsupport::{ScratchPrometheus, Stack, TestDatabase, copy_dir, free_port, psql};

use crate::support::{
    DEMO_KEY_HEX, rollup_days, start_exporter, start_ingest, wait_archive_sealed, wait_ready,
};

/// (advertiser, campaign, ad, minute end) → (spend, users) of the block or the truth.
type PerMinute = BTreeMap<(u64, u64, u64, i64), (u64, u64)>;

const PARTITIONS: u32 = 4;
const HOT_SALTS: u32 = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spend_unique_users_and_the_billing_statement_equal_the_truth() {
    let stack = Stack::get();
    let scope = stack.isolated("billing");
    let topic = scope.kafka_topic(PARTITIONS as i32).await;
    let work = tempfile::tempdir().unwrap();
    let log = work.path().join("processes.log");
    let truth_dir = work.path().join("truth");

    // 3 advertisers × 3 campaigns × 20 ads, two hot ones; 150 users, so that people click
    // several ads, campaigns and minutes (80 s: two or three of them, one or two minute ends
    // crossed); prices 0.10–2.00.
    let mut config = live(19, 25.0, 80.0);
    config.population = population(3, 3, 20, 2);
    // Late clicks within the exporter's 10 s (on time live) and beyond it (late spend), kept 3 s
    // clear of the boundary.
    config.allowed_lateness_secs = 10.0;
    config.lateness_margin_secs = 3.0;
    config.late_share = 0.05;
    config.too_late_share = 0.01;
    config.users = 150;
    config.prices = Some(PriceRange {
        min_micros: 100_000,
        max_micros: 2_000_000,
    });
    // The hot ads are the population's (the seed's), whenever the plan starts.
    let hot: HashMap<u64, u32> = Plan::new(config.clone())
        .unwrap()
        .population()
        .hot_ads()
        .iter()
        .map(|ad| (ad.ad_id, HOT_SALTS))
        .collect();
    let hot_env: Vec<(String, String)> = hot
        .iter()
        .map(|(ad, n)| (format!("ADCLICK_INGEST__HOT_ADS__{ad}"), n.to_string()))
        .collect();
    let hot_env: Vec<(&str, &str)> = hot_env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let spill = tempfile::tempdir().unwrap();
    let (mut ingest, base, ingest_admin) = start_ingest(
        &scope,
        &topic,
        stack.redis_url(),
        spill.path(),
        &log,
        &hot_env,
    );
    let exporter_port = free_port();
    let exporter_admin = format!("127.0.0.1:{exporter_port}");
    // A small K: most ads are folded into `other`, whose users are a union.
    let mut exporter = start_exporter(
        &scope,
        &topic,
        exporter_port,
        &log,
        &[("ADCLICK_EXPORTER__TOP_K", "24")],
    );
    wait_ready(&ingest_admin).await;
    wait_ready(&exporter_admin).await;

    // The plan starts now, with both services ready: a plan started earlier would send its
    // first seconds at once, with click times already past (late, not the truth's on time).
    config.start_ms = adclick_click::now_ms() + 2_000;
    let plan = Plan::new(config).unwrap();
    let key = TokenKey::from_hex("k1", DEMO_KEY_HEX).unwrap();
    let target = Target::Http(
        HttpTarget::new(&base, TokenMinter::new(key), Duration::from_secs(10), 64).unwrap(),
    );
    let options = RunOptions {
        truth_dir: Some(truth_dir.clone()),
        partitioning: Some(Partitioning {
            partitions: PARTITIONS,
            hot_salts: hot.clone(),
        }),
        ..RunOptions::default()
    };
    let truth = adclick_loadgen::run(plan, &target, &options)
        .await
        .expect("loadgen over HTTP");
    assert_eq!(
        truth.summary.errors, 0,
        "{:?}",
        truth.summary.error_examples
    );
    let money = Money::read(&truth_dir)
        .unwrap()
        .expect("a priced run with users writes the spend truth");
    assert!(
        money.total_spend_micros() > 0 && money.user_clicks.len() > 100,
        "the run priced its clicks and had users"
    );

    // Live: the operator's own check, spend and users included.
    let check = tokio::task::spawn_blocking({
        let (truth_dir, prometheus, id) = (
            truth_dir.clone(),
            stack.prometheus_url().to_string(),
            scope.id.clone(),
        );
        move || {
            Command::new(env!("CARGO_BIN_EXE_adclick"))
                .arg("check-truth")
                .arg("--truth-dir")
                .arg(&truth_dir)
                .args(["--prometheus", &prometheus, "--wait", "4m"])
                .args(["--matchers", &format!("test_id=\"{id}\"")])
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let report = String::from_utf8_lossy(&check.stdout);
    println!("{report}");
    assert!(
        check.status.success(),
        "check-truth: live spend or users differ from the truth (log: {}):\n{report}\n{}",
        log.display(),
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(
        report.contains("spend"),
        "the check compared spend:\n{report}"
    );

    // The idle ticks seal the last archive objects; the rollup reads what was uploaded.
    wait_archive_sealed(&exporter_admin).await;
    ingest.kill().unwrap();
    exporter.kill().unwrap();
    let _ = (ingest.wait(), exporter.wait());

    // The rollup of every day, into the test's own billing database.
    let db = TestDatabase::create();
    let store = BillingStore::connect(&BillingConfig {
        database_url: db.url().to_string().into(),
        ..BillingConfig::default()
    })
    .await
    .unwrap();
    let days: BTreeSet<Day> = money.days.keys().map(|k| Day(k.day)).collect();
    let blocks = tempfile::tempdir().unwrap();
    let mut first_ulids = BTreeSet::new();
    for report in rollup_days(&scope, &topic, &days, blocks.path(), Some(store.clone())).await {
        assert_eq!(report.exit_code, 0, "{}", report.summary());
        let block = report.block.as_ref().unwrap();
        let billed = block.billing.as_ref().expect("billing rows committed");
        assert!(billed.ads > 0, "{}", report.summary());
        first_ulids.insert(block.ulid.clone());
    }

    // The block: spend and users per ad per minute.
    let want_minutes: PerMinute = money
        .spend
        .iter()
        .map(|(k, s)| {
            (
                (
                    k.ad.advertiser_id,
                    k.ad.campaign_id,
                    k.ad.ad_id,
                    k.minute_end_ms,
                ),
                (s.spend_micros, s.unique_users),
            )
        })
        .collect();
    let block_minutes = read_blocks(&stack, blocks.path(), &scope.id, &days).await;
    assert_eq!(
        differences(&block_minutes, &want_minutes),
        Vec::<String>::new(),
        "the block's spend and users per ad and minute against the truth"
    );

    // The billing store: every row of every level.
    let want_rows = truth_rows(&money);
    let stored = stored_rows(db.url());
    assert_eq!(
        differences(&stored, &want_rows),
        Vec::<String>::new(),
        "billing rows against the truth"
    );

    // A second rollup of the days: one set of rows, the new block's.
    let again = tempfile::tempdir().unwrap();
    let mut second_ulids = BTreeSet::new();
    for report in rollup_days(&scope, &topic, &days, again.path(), Some(store.clone())).await {
        assert_eq!(report.exit_code, 0, "{}", report.summary());
        second_ulids.insert(report.block.unwrap().ulid);
    }
    assert_eq!(
        stored_rows(db.url()),
        stored,
        "the rerun's rows are the same figures"
    );
    let settled_blocks: BTreeSet<String> =
        psql(db.url(), "SELECT block_ulid FROM billing.settled_day")
            .lines()
            .map(str::to_string)
            .collect();
    assert_eq!(
        settled_blocks, second_ulids,
        "each day names the rerun's block, once"
    );
    assert!(first_ulids.is_disjoint(&second_ulids));

    // `adclick billing` for two advertisers, as finance runs it.
    let (from, to) = (days.first().unwrap(), days.last().unwrap());
    let advertisers: BTreeSet<u64> = money.days.keys().map(|k| k.advertiser_id).collect();
    assert!(advertisers.len() >= 2, "{advertisers:?}");
    for advertiser in advertisers.iter().take(2) {
        let out = Command::new(env!("CARGO_BIN_EXE_adclick"))
            .args(["billing", "--advertiser", &advertiser.to_string()])
            .args(["--from", &from.to_string(), "--to", &to.to_string()])
            .args(["--format", "json"])
            .env("ADCLICK_BILLING__DATABASE_URL", db.url())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "adclick billing: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let statement: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        check_statement(&statement, *advertiser, &money);
    }
}

/// Up to 20 differences between what was found and what is wanted, one line each.
fn differences<K: Ord + std::fmt::Debug, V: PartialEq + std::fmt::Debug>(
    got: &BTreeMap<K, V>,
    want: &BTreeMap<K, V>,
) -> Vec<String> {
    let keys: BTreeSet<&K> = got.keys().chain(want.keys()).collect();
    keys.into_iter()
        .filter(|k| got.get(k) != want.get(k))
        .take(20)
        .map(|k| format!("{k:?}: found {:?}, truth {:?}", got.get(k), want.get(k)))
        .collect()
}

/// Spend and users per ad and minute in the published blocks, loaded into a stock Prometheus
/// (zeros left out, as the truth has no row for them).
async fn read_blocks(
    stack: &Stack,
    blocks: &std::path::Path,
    id: &str,
    days: &BTreeSet<Day>,
) -> PerMinute {
    let blocks = blocks.to_path_buf();
    let scratch = tokio::task::block_in_place(|| {
        ScratchPrometheus::start(stack, "global: {}\n", |dir| copy_dir(&blocks, dir))
    });
    let api = scratch.api();
    let last = days.iter().last().unwrap().end_ms() - 1;
    let mut out = PerMinute::new();
    for (metric, spend) in [
        ("adclick_spend_micros", true),
        ("adclick_unique_users", false),
    ] {
        let series = api
            .query(&format!("{metric}{{test_id=\"{id}\"}}[3d]"), Some(last))
            .await
            .unwrap();
        assert!(!series.is_empty(), "the blocks hold {metric}");
        for s in series {
            let id = |name: &str| s.labels[name].parse::<u64>().unwrap();
            for (t, v) in &s.samples {
                let cell = out
                    .entry((id("advertiser_id"), id("campaign_id"), id("ad_id"), *t))
                    .or_insert((0, 0));
                if spend {
                    cell.0 = *v as u64;
                } else {
                    cell.1 = *v as u64;
                }
            }
        }
    }
    out.retain(|_, v| *v != (0, 0));
    out
}

/// (day, advertiser, campaign or 0, ad or 0) → (valid clicks, spend, users), as `days.csv` keys
/// its rows.
type DayRows = BTreeMap<(i64, u64, u64, u64), (u64, u64, u64)>;

fn truth_rows(money: &Money) -> DayRows {
    money
        .days
        .iter()
        .map(|(k, t)| {
            (
                (k.day, k.advertiser_id, k.campaign_id, k.ad_id),
                (t.valid_clicks, t.spend_micros, t.unique_users),
            )
        })
        .collect()
}

/// Every row of the billing store, keyed like the truth's; only rows with valid clicks (the store
/// also keeps ads with invalid clicks alone, which the truth leaves out).
fn stored_rows(url: &str) -> DayRows {
    let sql = "SELECT day - DATE '1970-01-01', advertiser_id, 0, 0, valid_clicks, spend_micros, \
               unique_users FROM billing.advertiser_day \
               UNION ALL SELECT day - DATE '1970-01-01', advertiser_id, campaign_id, 0, \
               valid_clicks, spend_micros, unique_users FROM billing.campaign_day \
               UNION ALL SELECT day - DATE '1970-01-01', advertiser_id, campaign_id, ad_id, \
               valid_clicks, spend_micros, unique_users FROM billing.ad_day";
    let mut out = DayRows::new();
    for line in psql(url, sql).lines().filter(|l| !l.is_empty()) {
        let f: Vec<&str> = line.split('|').collect();
        let n = |i: usize| f[i].parse::<u64>().unwrap();
        if n(4) == 0 {
            continue;
        }
        let previous = out.insert(
            (f[0].parse().unwrap(), n(1), n(2), n(3)),
            (n(4), n(5), n(6)),
        );
        assert!(previous.is_none(), "one row per day and level: {line}");
    }
    out
}

/// `adclick billing --format json`'s statement of `advertiser` against the truth.
fn check_statement(statement: &serde_json::Value, advertiser: u64, money: &Money) {
    let num = |v: &serde_json::Value| -> u64 {
        v.as_u64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            .unwrap_or_else(|| panic!("not a number: {v}"))
    };
    assert_eq!(statement["complete"], true, "{statement}");
    let truth = |day: i64, campaign: u64| {
        money.days.get(&DayKey {
            day,
            advertiser_id: advertiser,
            campaign_id: campaign,
            ad_id: 0,
        })
    };
    let (mut clicks, mut spend) = (0, 0);
    for day in statement["days"].as_array().unwrap() {
        let text = day["day"].as_str().unwrap();
        let d: Day = text.parse().unwrap();
        let want = truth(d.0, 0).copied().unwrap_or_default();
        let got = (
            num(&day["valid_clicks"]),
            num(&day["spend_micros"]),
            num(&day["unique_users"]),
        );
        assert_eq!(
            got,
            (want.valid_clicks, want.spend_micros, want.unique_users),
            "advertiser {advertiser} on {text}"
        );
        for c in day["campaigns"].as_array().unwrap() {
            let campaign = num(&c["campaign_id"]);
            let want = truth(d.0, campaign).copied().unwrap_or_default();
            let got = (
                num(&c["valid_clicks"]),
                num(&c["spend_micros"]),
                num(&c["unique_users"]),
            );
            assert_eq!(
                got,
                (want.valid_clicks, want.spend_micros, want.unique_users),
                "advertiser {advertiser}, campaign {campaign} on {text}"
            );
        }
        clicks += want.valid_clicks;
        spend += want.spend_micros;
    }
    assert_eq!(
        (
            num(&statement["totals"]["valid_clicks"]),
            num(&statement["totals"]["spend_micros"])
        ),
        (clicks, spend),
        "advertiser {advertiser}'s totals"
    );
    assert!(clicks > 0, "advertiser {advertiser} clicked");
}
