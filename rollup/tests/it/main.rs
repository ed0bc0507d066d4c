//! The rollup against the stack: archive objects in garage, blocks read back by promtool and by
//! a stock Prometheus, reruns, corrupt objects, the object store dying mid-upload, the billing
//! store failing mid-write.
//! (The end-to-end run from Kafka through the exporter is a whole-system test:
//! `tests/it/exporter_rollup.rs` at the root.)

#![allow(clippy::unwrap_used)] // A test: a panic with the failed call is how it stops.

mod support;

use std::collections::BTreeMap;

use adclick_click::wire::Click;
use adclick_rollup::{Day, Outcome, RollupConfig, RunOptions};
use adclick_testsupport::promtool::{self, Point};
use adclick_testsupport::{FaultProxy, ScratchPrometheus, Stack, TestDatabase, copy_dir, psql};
use adclick_tsdb::{BlockMeta, Ulid};

use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_settles_exactly_into_a_block_promtool_and_prometheus_read() {
    let stack = Stack::get();
    let scope = stack.isolated("rollup-day");
    let day: Day = "2026-11-20".parse().unwrap();
    let traffic = Traffic::generate(day, 7, 4_000);
    let archive = ArchiveWriter::new(&scope).await;
    archive.write(&traffic.records, 300).await;
    // An operator's stray file among the objects is left alone.
    archive
        .put_raw(
            &format!("{}notes.txt", archive.hour_dir(day.start_ms() + 3_600_000)),
            b"hi".to_vec(),
        )
        .await;

    let config = rollup_config(&scope, false);
    let deps = deps(&scope).await;
    let report = run_clean(&config, &deps, day).await;
    assert_eq!(
        report.settle.clicks,
        traffic.truth_total(),
        "{}",
        report.summary()
    );
    assert_eq!(report.settle.duplicates_removed, traffic.duplicates_in_day);
    assert_eq!(report.settle.dedup_unchecked, traffic.unchecked_in_day);
    assert_eq!(
        report.settle.spend_micros,
        traffic.spend_per_campaign().values().sum::<u64>()
    );
    assert_eq!(report.daily.spend_micros, report.settle.spend_micros);
    assert!(
        report.summary().contains(&format!(
            "spend: {} micros; {} unique users of the day",
            report.settle.spend_micros, report.settle.unique_users
        )),
        "{}",
        report.summary()
    );
    assert_eq!(report.scan.foreign_objects.len(), 1);
    let block = report.block.as_ref().unwrap();

    // meta.json as Thanos reads it (pkg/block/metadata/meta.go).
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("data");
    std::fs::create_dir_all(db.join("wal")).unwrap();
    let meta = download_block(&scope, &config.blocks_prefix, &block.ulid, &db).await;
    check_thanos_meta(&meta, day, &block.ulid);

    // promtool: analyze succeeds, dump lists exactly the expected samples.
    let out = promtool::run(
        std::process::Command::new(promtool::promtool())
            .args(["tsdb", "analyze"])
            .arg(&db)
            .arg(&block.ulid),
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&block.ulid));
    let dumped = promtool::dump(&db);
    let want = traffic.expected_points(&scope.id);
    assert_eq!(dumped.len(), want.len(), "dumped vs expected sample count");
    assert!(dumped == want, "promtool dump differs from the truth");

    // A stock Prometheus started on the block answers the advertiser's queries exactly.
    // Its readiness wait blocks (and its drop kills a child): keep it off the async threads.
    let prom = tokio::task::block_in_place(|| {
        ScratchPrometheus::start(&stack, "global: {}\n", |data| copy_dir(&db, data))
    });
    let api = prom.api();
    let at = day.end_ms() - 1;
    let per_ad = api
        .query(
            &format!(
                "sum by (ad_id) (sum_over_time(adclick_clicks{{test_id=\"{}\"}}[1d]))",
                scope.id
            ),
            Some(at),
        )
        .await
        .unwrap();
    let got: BTreeMap<u64, u64> = per_ad
        .iter()
        .map(|s| (s.labels["ad_id"].parse().unwrap(), s.samples[0].1 as u64))
        .collect();
    assert_eq!(got, traffic.truth_per_ad());
    let one_ad = *traffic.truth_per_ad().keys().next().unwrap();
    let single = api
        .query(
            &format!("sum_over_time(adclick_clicks{{ad_id=\"{one_ad}\"}}[1d])"),
            Some(at),
        )
        .await
        .unwrap();
    assert_eq!(
        single[0].samples[0].1 as u64,
        traffic.truth_per_ad()[&one_ad]
    );
    let per_campaign = api
        .query(
            "sum by (campaign_id) (sum_over_time(adclick_clicks[1d]))",
            Some(at),
        )
        .await
        .unwrap();
    let got: BTreeMap<u64, u64> = per_campaign
        .iter()
        .map(|s| {
            (
                s.labels["campaign_id"].parse().unwrap(),
                s.samples[0].1 as u64,
            )
        })
        .collect();
    assert_eq!(got, traffic.truth_per_campaign());
    let spend = api
        .query(
            "sum by (campaign_id) (sum_over_time(adclick_spend_micros[1d]))",
            Some(at),
        )
        .await
        .unwrap();
    let got: BTreeMap<u64, u64> = spend
        .iter()
        .map(|s| {
            (
                s.labels["campaign_id"].parse().unwrap(),
                s.samples[0].1 as u64,
            )
        })
        .collect();
    assert_eq!(got, traffic.spend_per_campaign());

    // The report is on disk, and --out-dir writes the same block locally without uploading.
    let written = std::fs::read_to_string(
        std::path::Path::new(&config.report_dir).join("rollup-2026-11-20.json"),
    )
    .unwrap();
    assert!(written.contains("\"outcome\": \"clean\""));
    let local = tempfile::tempdir().unwrap();
    let mut options = RunOptions::for_day(day);
    options.out_dir = Some(local.path().to_path_buf());
    let again = adclick_rollup::run(&config, &deps, &options).await.unwrap();
    let again_block = again.block.unwrap();
    assert_eq!(again_block.samples, block.samples);
    assert!(
        local
            .path()
            .join(&again_block.ulid)
            .join("meta.json")
            .exists()
    );
    assert_eq!(
        blocks_in_bucket(&scope, &config.blocks_prefix).await.len(),
        1,
        "--out-dir uploads nothing"
    );
    tokio::task::block_in_place(|| drop(prom));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rerun_replaces_the_block_and_marks_the_old_one_for_deletion() {
    let stack = Stack::get();
    let scope = stack.isolated("rollup-rerun");
    let day: Day = "2026-11-19".parse().unwrap();
    let traffic = Traffic::generate(day, 8, 500);
    let archive = ArchiveWriter::new(&scope).await;
    archive.write(&traffic.records, 200).await;
    let config = rollup_config(&scope, false);
    let deps = deps(&scope).await;
    let first = adclick_rollup::run(&config, &deps, &RunOptions::for_day(day))
        .await
        .unwrap();
    let first_ulid: Ulid = first.block.unwrap().ulid.parse().unwrap();
    // A dry run publishes nothing and marks nothing.
    let mut dry = RunOptions::for_day(day);
    dry.dry_run = true;
    let dry = adclick_rollup::run(&config, &deps, &dry).await.unwrap();
    assert_eq!(dry.exit_code, 0);
    assert_eq!(
        blocks_in_bucket(&scope, &config.blocks_prefix).await.len(),
        1
    );

    let second = adclick_rollup::run(&config, &deps, &RunOptions::for_day(day))
        .await
        .unwrap();
    let second_block = second.block.unwrap();
    assert_eq!(second_block.replaced.len(), 1);
    assert_eq!(second_block.replaced[0].ulid, first_ulid);
    let s3 = scope.stack.s3_client().await;
    let mark = adclick_objstore::get(
        &s3,
        scope.stack.s3_bucket(),
        &format!("{}{first_ulid}/deletion-mark.json", config.blocks_prefix),
    )
    .await
    .unwrap()
    .expect("deletion mark on the old block");
    let mark: serde_json::Value = serde_json::from_slice(&mark).unwrap();
    assert_eq!(mark["id"], first_ulid.to_string());
    assert_eq!(mark["version"], 1);
    assert!(mark["deletion_time"].as_i64().unwrap() > 1_700_000_000);
    let meta = adclick_objstore::get(
        &s3,
        scope.stack.s3_bucket(),
        &format!("{}{}/meta.json", config.blocks_prefix, second_block.ulid),
    )
    .await
    .unwrap()
    .unwrap();
    let meta: BlockMeta = serde_json::from_slice(&meta).unwrap();
    assert!(
        meta.compaction.sources.contains(&first_ulid),
        "the new block names the old one's sources"
    );
    // A third run replaces the second only: the first is already marked.
    let third = adclick_rollup::run(&config, &deps, &RunOptions::for_day(day))
        .await
        .unwrap();
    let replaced: Vec<String> = third
        .block
        .unwrap()
        .replaced
        .iter()
        .map(|b| b.ulid.to_string())
        .collect();
    assert_eq!(replaced, vec![second_block.ulid]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_object_stops_the_day_and_is_named() {
    let stack = Stack::get();
    let scope = stack.isolated("rollup-corrupt");
    let day: Day = "2026-11-18".parse().unwrap();
    let traffic = Traffic::generate(day, 9, 600);
    let archive = ArchiveWriter::new(&scope).await;
    let keys = archive.write(&traffic.records, 100).await;
    // Truncate one object, as a broken copy would.
    let s3 = scope.stack.s3_client().await;
    let victim = &keys[keys.len() / 2];
    let bytes = adclick_objstore::get(&s3, scope.stack.s3_bucket(), victim)
        .await
        .unwrap()
        .unwrap();
    archive
        .put_raw(victim, bytes[..bytes.len() / 2].to_vec())
        .await;

    let config = rollup_config(&scope, false);
    let deps = deps(&scope).await;
    let report = adclick_rollup::run(&config, &deps, &RunOptions::for_day(day))
        .await
        .unwrap();
    assert_eq!(report.exit_code, Outcome::Corrupt.exit_code());
    assert_eq!(report.scan.corrupt_objects.len(), 1);
    assert_eq!(&report.scan.corrupt_objects[0].key, victim);
    assert!(
        report.summary().contains(victim.as_str()),
        "{}",
        report.summary()
    );
    assert!(report.block.is_none());
    assert!(
        blocks_in_bucket(&scope, &config.blocks_prefix)
            .await
            .is_empty()
    );

    let mut options = RunOptions::for_day(day);
    options.skip_corrupt = true;
    let report = adclick_rollup::run(&config, &deps, &options).await.unwrap();
    assert_eq!(
        report.exit_code,
        Outcome::CorruptSkipped.exit_code(),
        "{}",
        report.summary()
    );
    assert!(report.settle.clicks < traffic.truth_total());
    assert_eq!(
        blocks_in_bucket(&scope, &config.blocks_prefix).await.len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_object_store_dying_mid_upload_leaves_no_block_and_a_rerun_completes() {
    let stack = Stack::get();
    let scope = stack.isolated("rollup-s3-down");
    let day: Day = "2026-11-17".parse().unwrap();
    let traffic = Traffic::generate(day, 10, 1_500);
    let archive = ArchiveWriter::new(&scope).await;
    archive.write(&traffic.records, 300).await;
    let config = rollup_config(&scope, false);

    let proxy = FaultProxy::start(stack.s3_endpoint().trim_start_matches("http://")).await;
    let deps_via_proxy = deps_with_endpoint(&scope, &proxy.url()).await;
    let ulid = Ulid::new();
    // The store dies when the index is sent: the chunks are up, index and meta.json are not.
    proxy.go_down_on(format!("{ulid}/index").as_bytes()).await;
    let mut options = RunOptions::for_day(day);
    options.ulid = Some(ulid);
    let err = adclick_rollup::run(&config, &deps_via_proxy, &options)
        .await
        .unwrap_err();
    assert!(proxy.is_down());
    assert!(err.to_string().contains("publishing the block"), "{err}");
    let keys: Vec<String> = adclick_objstore::list(
        &scope.stack.s3_client().await,
        stack.s3_bucket(),
        &format!("{}{ulid}/", config.blocks_prefix),
    )
    .await
    .unwrap()
    .into_iter()
    .map(|(k, _)| k)
    .collect();
    assert!(
        !keys.iter().any(|k| k.ends_with("meta.json")),
        "no meta.json of the failed block: {keys:?}"
    );
    assert!(
        blocks_in_bucket(&scope, &config.blocks_prefix)
            .await
            .is_empty()
    );

    proxy.heal().await;
    let report = adclick_rollup::run(&config, &deps_via_proxy, &RunOptions::for_day(day))
        .await
        .unwrap();
    assert_eq!(report.exit_code, 0, "{}", report.summary());
    let blocks = blocks_in_bucket(&scope, &config.blocks_prefix).await;
    assert_eq!(blocks.len(), 1);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("data");
    std::fs::create_dir_all(db.join("wal")).unwrap();
    download_block(&scope, &config.blocks_prefix, &blocks[0], &db).await;
    let dumped: Vec<Point> = promtool::dump(&db);
    assert!(
        dumped == traffic.expected_points(&scope.id),
        "the rerun's block holds the expected samples"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_without_clicks_writes_nothing_and_says_so() {
    let stack = Stack::get();
    let scope = stack.isolated("rollup-empty");
    let config = rollup_config(&scope, false);
    let deps = deps(&scope).await;
    let report = adclick_rollup::run(
        &config,
        &deps,
        &RunOptions::for_day("2026-11-16".parse().unwrap()),
    )
    .await
    .unwrap();
    assert_eq!(report.exit_code, Outcome::Empty.exit_code());
    assert!(report.block.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_traffic_gets_series_of_its_own_and_changed_verdicts_are_reported() {
    use adclick_click::wire::{ClickFlag, InvalidReason};

    let stack = Stack::get();
    let scope = stack.isolated("rollup-invalid");
    let day: Day = "2026-11-15".parse().unwrap();
    let mut traffic = Traffic::generate(day, 12, 300);
    let minute = day.start_ms() + 5 * 3_600_000;
    // A bot fetched the first 20 impressions' links before the people clicked them: one
    // invalid bot_user_agent each, the people's clicks still count.
    let bots: Vec<Record> = traffic
        .records
        .iter()
        .filter(|(_, _, c)| !c.has_flag(ClickFlag::DedupUnchecked)) // first clicks, in the day
        .take(20)
        .map(|(p, ts, c)| {
            let mut bot = c.clone();
            bot.invalid_reason = InvalidReason::BotUserAgent as i32;
            (*p, *ts, bot)
        })
        .collect();
    let bot_clicks = 20;
    traffic.records.extend(bots);
    // One user clicks 105 times in a minute of ingest's receive time: the last five were
    // recorded valid while ingest's counters failed open.
    for i in 0..105u8 {
        let t = minute + i64::from(i) * 100;
        let mut flood = adclick_click::wire::Click {
            impression_id: [[0xF0, i].as_slice(), &[7; 14]].concat(),
            ad_id: 1,
            campaign_id: 1,
            advertiser_id: 1,
            event_time_ms: t,
            receive_time_ms: t,
            user_hash: 0xF100D,
            ..Default::default()
        };
        if i >= 100 {
            flood.set_flag(ClickFlag::VelocityUnchecked);
        }
        traffic.records.push((0, t + 10, flood));
    }
    let archive = ArchiveWriter::new(&scope).await;
    archive.write(&traffic.records, 200).await;

    let config = rollup_config(&scope, false);
    let deps = deps(&scope).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("data");
    std::fs::create_dir_all(db.join("wal")).unwrap();
    let mut options = RunOptions::for_day(day);
    options.out_dir = Some(db.clone());
    let report = adclick_rollup::run(&config, &deps, &options).await.unwrap();
    let summary = report.summary();
    assert_eq!(report.exit_code, 0, "{summary}");
    let st = &report.settle;
    assert_eq!(st.clicks, traffic.truth_total() + 100, "{summary}");
    assert_eq!(
        st.invalid_by_reason,
        BTreeMap::from([("bot_user_agent", bot_clicks), ("user_velocity", 5)]),
        "{summary}"
    );
    assert_eq!(st.velocity_unchecked, 5);
    assert_eq!(report.verdict_changes.clicks, 5);
    assert_eq!(report.verdict_changes.velocity_unchecked, 5);
    assert!(
        summary.contains(
            "campaign 1/1: 5 clicks live valid -> settled user_velocity (5 velocity-unchecked)"
        ),
        "{summary}"
    );

    // The block holds adclick_invalid_clicks{advertiser_id, campaign_id, reason} beside the
    // valid clicks, with the test's labels.
    let dumped = promtool::dump(&db);
    let mut invalid: BTreeMap<String, f64> = BTreeMap::new();
    for point in &dumped {
        let label = |name: &str| {
            point
                .labels
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        if label("__name__").as_deref() == Some("adclick_invalid_clicks") {
            assert_eq!(label("test_id").as_deref(), Some(scope.id.as_str()));
            assert!(label("ad_id").is_none() && label("partition").is_none());
            *invalid.entry(label("reason").unwrap()).or_default() +=
                f64::from_bits(point.value_bits);
        }
    }
    assert_eq!(
        invalid,
        BTreeMap::from([
            ("bot_user_agent".to_string(), bot_clicks as f64),
            ("user_velocity".to_string(), 5.0),
        ])
    );
}

/// Without the stack: a settled day with invalid traffic written as a block, which promtool reads
/// (the TSDB writer takes the `reason` label and the series of all metrics in its order): each
/// ad's clicks, spend and users, each campaign's invalid clicks per reason.
#[test]
fn a_block_with_invalid_series_is_read_by_promtool() {
    use adclick_click::wire::{Click, InvalidReason};
    use adclick_rollup::settle::Settlement;

    let day: Day = "2026-11-14".parse().unwrap();
    let t = day.start_ms() + 3_600_000;
    let click = |n: u8, reason: InvalidReason, campaign_id: u64| Click {
        impression_id: vec![n; 16],
        ad_id: 10 + campaign_id,
        campaign_id,
        advertiser_id: 1,
        event_time_ms: t + i64::from(n) * 1_000,
        receive_time_ms: t + i64::from(n) * 1_000,
        invalid_reason: reason as i32,
        // Invalid records carry them too, and bring neither.
        user_hash: 0xace + u64::from(n),
        price_micros: 250_000 * u64::from(n),
        ..Default::default()
    };
    let mut settlement = Settlement::new(day, 0);
    for c in [
        click(1, InvalidReason::Valid, 2),
        click(1, InvalidReason::Prefetch, 2),
        click(2, InvalidReason::BotUserAgent, 2),
        click(3, InvalidReason::DenyListedNetwork, 3),
        click(4, InvalidReason::Valid, 3),
    ] {
        settlement.add(&c);
    }
    let rules = adclick_invalid::Rules::new(
        &adclick_invalid::Config::default(),
        adclick_invalid::DenyList::empty(),
    )
    .unwrap();
    let settled = settlement.finish(&rules);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("data");
    std::fs::create_dir_all(db.join("wal")).unwrap();
    let labels = BTreeMap::from([("test_id".to_string(), "offline".to_string())]);
    let external = BTreeMap::from([("tier".to_string(), "rollup".to_string())]);
    let block =
        adclick_rollup::block::write(&db, day, &settled, &labels, &external, Ulid::new(), &[])
            .unwrap();
    assert_eq!(block.meta.stats.num_series, 2 * 3 + 3);
    promtool::run(
        std::process::Command::new(promtool::promtool())
            .args(["tsdb", "analyze"])
            .arg(&db)
            .arg(block.meta.ulid.to_string()),
    );
    let minute_end = t - t % 60_000 + 60_000;
    let point = |name: &str, key: &str, value: &str, campaign: u64, at: i64, v: f64| Point {
        labels: {
            let mut l = vec![
                ("__name__".to_string(), name.to_string()),
                ("advertiser_id".to_string(), "1".to_string()),
                ("campaign_id".to_string(), campaign.to_string()),
                (key.to_string(), value.to_string()),
                ("test_id".to_string(), "offline".to_string()),
            ];
            l.sort();
            l
        },
        timestamp_ms: at,
        value_bits: adclick_testsupport::promtool::value_bits(v),
    };
    let mut want = Vec::new();
    for (name, key, value, campaign, figure) in [
        ("adclick_clicks", "ad_id", "12", 2, 1.0),
        ("adclick_spend_micros", "ad_id", "12", 2, 250_000.0),
        ("adclick_unique_users", "ad_id", "12", 2, 1.0),
        ("adclick_clicks", "ad_id", "13", 3, 1.0),
        ("adclick_spend_micros", "ad_id", "13", 3, 1_000_000.0),
        ("adclick_unique_users", "ad_id", "13", 3, 1.0),
        ("adclick_invalid_clicks", "reason", "bot_user_agent", 2, 1.0),
        ("adclick_invalid_clicks", "reason", "prefetch", 2, 1.0),
        (
            "adclick_invalid_clicks",
            "reason",
            "deny_listed_network",
            3,
            1.0,
        ),
    ] {
        want.push(point(name, key, value, campaign, minute_end, figure));
        want.push(point(name, key, value, campaign, minute_end + 60_000, 0.0));
    }
    want.sort();
    assert_eq!(promtool::dump(&db), want);
}

/// Without the stack: the daily figures of generated traffic are its truth — spend per campaign,
/// and users distinct over the campaign's ads and minutes (fewer than the minutes' sum).
#[test]
fn the_daily_figures_are_the_truth_of_the_traffic() {
    use adclick_rollup::settle::Settlement;

    let day: Day = "2026-11-13".parse().unwrap();
    let traffic = Traffic::generate(day, 21, 3_000);
    let mut settlement = Settlement::new(day, 86_400_000);
    for (_, _, click) in &traffic.records {
        settlement.add(click);
    }
    let rules = adclick_invalid::Rules::new(
        &adclick_invalid::Config::default(),
        adclick_invalid::DenyList::empty(),
    )
    .unwrap();
    let settled = settlement.finish(&rules);
    let daily = &settled.daily;
    let of_campaigns = |figure: fn(&adclick_rollup::daily::CampaignDay) -> u64| {
        daily
            .campaigns
            .iter()
            .map(|c| (c.campaign_id, figure(c)))
            .collect::<BTreeMap<u64, u64>>()
    };
    assert_eq!(
        of_campaigns(|c| c.valid_clicks),
        traffic.truth_per_campaign()
    );
    assert_eq!(
        of_campaigns(|c| c.spend_micros),
        traffic.spend_per_campaign()
    );
    assert_eq!(
        of_campaigns(|c| c.unique_users),
        traffic.users_per_campaign()
    );
    let minute_users: u64 = settled
        .ads
        .iter()
        .flat_map(|(_, minutes)| minutes.iter().map(|(_, m)| m.unique_users))
        .sum();
    assert!(
        daily.campaigns.iter().map(|c| c.unique_users).sum::<u64>() < minute_users,
        "40 people over a day's minutes"
    );
    // 40 people at most, every one of them seen.
    assert_eq!(daily.unique_users, 40);
    assert!(daily.advertisers.iter().all(|a| a.unique_users <= 40));
}

/// The billing store failing while the day's rows are written (the connection cut in the middle
/// of their COPY): the run fails naming it, no block is published and the store keeps nothing;
/// once the store is back, a rerun publishes the block and commits the rows naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_billing_store_failing_mid_write_publishes_nothing_and_a_rerun_writes_both() {
    let stack = Stack::get();
    let scope = stack.isolated("rollup-billing-down");
    let day: Day = "2026-11-18".parse().unwrap();
    let traffic = Traffic::generate(day, 12, 1_500);
    ArchiveWriter::new(&scope)
        .await
        .write(&traffic.records, 300)
        .await;
    let config = rollup_config(&scope, false);

    let db = TestDatabase::create();
    let server = db
        .url()
        .split_once('@')
        .unwrap()
        .1
        .split_once('/')
        .unwrap()
        .0;
    let proxy = FaultProxy::start(server).await;
    // Plain: the proxy looks for the statement's text.
    let url = format!(
        "{}?sslmode=disable",
        db.url().replace(server, &proxy.addr().to_string())
    );
    let store = adclick_billing::BillingStore::connect(&adclick_billing::BillingConfig {
        database_url: url.into(),
        ..adclick_billing::BillingConfig::default()
    })
    .await
    .unwrap();
    let mut deps = deps(&scope).await;
    deps.billing = Some(store);

    proxy.go_down_on(b"COPY billing.ad_day").await;
    let err = adclick_rollup::run(&config, &deps, &RunOptions::for_day(day))
        .await
        .unwrap_err();
    assert!(proxy.is_down());
    assert!(
        err.to_string()
            .contains("billing rows (nothing was published)"),
        "{err}"
    );
    assert!(
        blocks_in_bucket(&scope, &config.blocks_prefix)
            .await
            .is_empty(),
        "no block published"
    );
    assert_eq!(psql(db.url(), "SELECT count(*) FROM billing.ad_day"), "0");

    proxy.heal().await;
    let report = adclick_rollup::run(&config, &deps, &RunOptions::for_day(day))
        .await
        .unwrap();
    assert_eq!(report.exit_code, 0, "{}", report.summary());
    let block = report.block.unwrap();
    assert_eq!(
        blocks_in_bucket(&scope, &config.blocks_prefix).await,
        vec![block.ulid.clone()]
    );
    assert_eq!(
        psql(db.url(), "SELECT block_ulid FROM billing.settled_day"),
        block.ulid
    );
    let billed = block.billing.expect("rows committed");
    assert_eq!(
        psql(db.url(), "SELECT count(*) FROM billing.ad_day"),
        billed.ads.to_string()
    );
    let clicks = psql(
        db.url(),
        "SELECT sum(valid_clicks) FROM billing.campaign_day",
    );
    assert_eq!(clicks, traffic.truth_total().to_string());
}

/// A late click of the day's last minute (23:58) arrives while the next day's first minute
/// (23:59–24:00) is open: the stream counts it in a sample stamped 00:00 of the next day,
/// labelled with its own day (`block_day`). The rollup of the day finds it there; read by when
/// it was stamped, the day would be short and the next one over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_clicks_stamped_after_midnight_reconcile_with_their_own_day() {
    use adclick_remote_write::{Metrics, RequestBuilder, Sample, Sender};

    let stack = Stack::get();
    let scope = stack.isolated("rollup-midnight");
    let day: Day = "2026-11-20".parse().unwrap();
    let next: Day = "2026-11-21".parse().unwrap();
    let midnight = day.end_ms();
    let impression = |i: u8| [i; 16];
    // Campaign 1 (ads 1–5): two clicks at 23:30 on time, three of 23:58 late; one of 23:59:30,
    // in the next day's block, late too.
    let on_time: Vec<_> = (1..=2)
        .map(|i| click(impression(i), 1, midnight - 1_800_000, false))
        .collect();
    let late: Vec<_> = (3..=5)
        .map(|i| click(impression(i), 2, midnight - 90_000, false))
        .collect();
    let next_days = click(impression(6), 3, midnight - 30_000, false);
    let records: Vec<Record> = on_time
        .iter()
        .chain(&late)
        .chain([&next_days])
        .map(|c| (0, c.event_time_ms + 1_000, c.clone()))
        .collect();
    ArchiveWriter::new(&scope).await.write(&records, 100).await;

    // What the exporter wrote of them, into a Prometheus of the test's own (a day in the past
    // is only accepted by an empty one).
    let prom =
        tokio::task::block_in_place(|| ScratchPrometheus::start(&stack, "global: {}\n", |_| {}));
    let spend = |clicks: &[Click]| clicks.iter().map(|c| c.price_micros).sum::<u64>() as f64;
    let series = |metric: &str, extra: Option<(&'static str, String)>| {
        [
            ("__name__", metric.to_string()),
            ("advertiser_id", "1".to_string()),
            ("campaign_id", "1".to_string()),
            ("partition", "0".to_string()),
            ("test_id", scope.id.clone()),
        ]
        .into_iter()
        .chain(extra)
        .collect::<Vec<_>>()
    };
    let ad1 = || Some(("ad_id", "1".to_string()));
    let of_day = |d: Day| Some(("block_day", d.to_string()));
    let at_2331 = midnight - 1_740_000;
    let mut request = RequestBuilder::new();
    for (labels, at, value) in [
        (series("adclick_clicks", ad1()), at_2331, 2.0),
        (
            series("adclick_spend_micros", ad1()),
            at_2331,
            spend(&on_time),
        ),
        (series("adclick_late_clicks", of_day(day)), midnight, 3.0),
        (
            series("adclick_late_spend_micros", of_day(day)),
            midnight,
            spend(&late),
        ),
        (
            series("adclick_late_clicks", of_day(next)),
            midnight + 60_000,
            1.0,
        ),
        (
            series("adclick_late_spend_micros", of_day(next)),
            midnight + 60_000,
            spend(std::slice::from_ref(&next_days)),
        ),
    ] {
        request.series(labels, [Sample::new(at, value)]).unwrap();
    }
    Sender::new(
        &adclick_remote_write::Config::for_url(prom.remote_write_url()),
        Metrics::new(),
    )
    .unwrap()
    .send(&request.build())
    .await
    .unwrap();

    let config = RollupConfig {
        prometheus_url: prom.url().to_string(),
        ..rollup_config(&scope, false)
    };
    let report = run_clean(&config, &deps(&scope).await, day).await;
    let r = report.reconciliation.as_ref().expect("reconciled");
    assert_eq!(
        (r.truth_clicks, r.stream_clicks, r.stream_late_clicks),
        (5, 2, 3),
        "{}",
        report.summary()
    );
    assert_eq!(
        (r.spend.truth_micros, r.spend.stream_late_micros),
        (
            spend(&on_time) as u64 + spend(&late) as u64,
            spend(&late) as u64
        )
    );
    assert_eq!(r.spend.stream_micros, spend(&on_time) as u64);
    assert_eq!(
        (r.campaigns_mismatched, r.spend.campaigns_mismatched),
        (0, 0)
    );
}
