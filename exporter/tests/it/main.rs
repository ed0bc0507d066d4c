//! The exporter against the local stack (tansu, Prometheus, garage): exact counts, replays after
//! a crash, poison, the archive, and what a 1-minute graph shows between clicks. (The archive
//! settled by the rollup is a whole-system test: `tests/it/exporter_rollup.rs` at the root.)

#![allow(clippy::unwrap_used)] // A test: a panic with the failed call is how it stops.

mod support;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use adclick_click::archive;
use adclick_testsupport::traffic::{Backfill, backfill};
use adclick_testsupport::wait::{eventually, until};
use adclick_testsupport::{PromApi, Stack};
use support::{RunningExporter, plan_config, raw_samples, test_config};

/// What the exporter wrote, summed over partitions: per (ad id or "other" per campaign, minute end).
type Written = BTreeMap<(String, String, i64), f64>;

async fn written(prom: &PromApi, test_id: &str) -> Written {
    let mut out = Written::new();
    for s in raw_samples(
        prom,
        &format!("adclick_clicks{{test_id=\"{test_id}\"}}"),
        "2h",
    )
    .await
    {
        for (t, v) in &s.samples {
            *out.entry((
                s.labels["campaign_id"].clone(),
                s.labels["ad_id"].clone(),
                *t,
            ))
            .or_insert(0.0) += v;
        }
    }
    out
}

/// Checks every written (ad, minute) and (campaign "other", minute) against the ground truth.
fn check_exact(w: &Written, fill: &Backfill) -> Result<(), String> {
    // Expected per ad and minute: the truth minus what arrives after its minute is final.
    let mut expected: BTreeMap<(String, String, i64), u64> = BTreeMap::new();
    let mut campaign: BTreeMap<(String, i64), u64> = BTreeMap::new();
    for (key, n) in fill.truth.counts() {
        let n = n - fill.too_late.get(key).copied().unwrap_or(0);
        let c = key.ad.campaign_id.to_string();
        expected.insert((c.clone(), key.ad.ad_id.to_string(), key.minute_end_ms), n);
        *campaign.entry((c, key.minute_end_ms)).or_insert(0) += n;
    }
    // Up to ten differences, so that a failure shows its pattern (one partition, one minute…).
    let mut differ: Vec<String> = vec![];
    let mut written_campaign: BTreeMap<(String, i64), f64> = BTreeMap::new();
    for ((c, ad, t), v) in w {
        *written_campaign.entry((c.clone(), *t)).or_insert(0.0) += v;
        // An ad folded into "other" in a minute reads 0 there (its clicks are in "other");
        // an ad with its own series reads its exact count.
        if ad != "other" && *v != 0.0 {
            let want = expected
                .get(&(c.clone(), ad.clone(), *t))
                .copied()
                .unwrap_or(0);
            if *v != want as f64 {
                differ.push(format!(
                    "ad {ad} (campaign {c}) minute ending {t}: wrote {v}, truth {want}"
                ));
            }
        }
    }
    for ((c, t), want) in &campaign {
        let got = written_campaign
            .get(&(c.clone(), *t))
            .copied()
            .unwrap_or(0.0);
        if got != *want as f64 {
            differ.push(format!(
                "campaign {c} minute ending {t}: wrote {got}, truth {want}"
            ));
        }
    }
    for ((c, t), got) in &written_campaign {
        if *got != 0.0 && !campaign.contains_key(&(c.clone(), *t)) {
            differ.push(format!(
                "campaign {c} minute ending {t}: wrote {got}, truth has none"
            ));
        }
    }
    if differ.is_empty() {
        Ok(())
    } else {
        let n = differ.len();
        differ.truncate(10);
        Err(format!("{n} differences, the first: {}", differ.join("; ")))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_minute_counts_equal_the_ground_truth_exactly() {
    let stack = Stack::get();
    let scope = stack.isolated("exporter-exact");
    let topic = scope.kafka_topic(4).await;
    let fill = backfill(&scope, &topic, plan_config(11, 4, 200.0)).await;
    let clicks = fill.truth.summary.clicks as f64;
    let too_late: u64 = fill.too_late.values().sum();
    assert!(
        too_late > 0 && fill.truth.summary.late_clicks > 0,
        "the plan has late clicks of both kinds"
    );

    let mut config = test_config(&scope);
    // 1,000 ads, 4 partitions: 40 own series per partition-minute, the rest folded.
    config.top_k = 160;
    let exporter = RunningExporter::start(&scope, &topic, config).await;
    let prom = PromApi::new(stack.prometheus_url());
    let id = scope.id.clone();
    let sel = format!("{{test_id=\"{id}\"}}");
    eventually(Duration::from_secs(120), "every click written", || async {
        let counted = prom.sum_last_hour(&format!("adclick_clicks{sel}")).await;
        let late = prom
            .sum_last_hour(&format!("adclick_late_clicks{sel}"))
            .await;
        if counted + late == clicks {
            Ok(())
        } else {
            Err(format!("{counted} + {late} late of {clicks}"))
        }
    })
    .await;
    assert_eq!(
        prom.sum_last_hour(&format!("adclick_late_clicks{sel}"))
            .await,
        too_late as f64
    );
    check_exact(&written(&prom, &id).await, &fill).unwrap();
    let folded = exporter.metrics.ads_folded.get();
    assert!(folded > 0, "top K folded some ads into other");
    let rw = &exporter.remote_write;
    assert_eq!(rw.requests("400"), 0, "no remote-write request refused");

    // The archive holds every click once.
    exporter.stop().await;
    let s3 = stack.s3_client().await;
    let mut ids = HashSet::new();
    let mut records = 0usize;
    let mut pages = s3
        .list_objects_v2()
        .bucket(stack.var("S3_BUCKET"))
        .prefix(format!("{}raw/", scope.s3_prefix()))
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        for o in page.unwrap().contents() {
            let body = s3
                .get_object()
                .bucket(stack.var("S3_BUCKET"))
                .key(o.key().unwrap())
                .send()
                .await
                .unwrap()
                .body
                .collect()
                .await
                .unwrap()
                .into_bytes();
            let object = archive::decode(&body).unwrap_or_else(|e| panic!("{:?}: {e}", o.key()));
            for r in object.records {
                let click = adclick_click::Click::decode_valid(&r.value).unwrap();
                ids.insert(click.impression_key().unwrap());
                records += 1;
            }
        }
    }
    assert_eq!(records, fill.impressions.len(), "archived records");
    let want: HashSet<[u8; 16]> = fill.impressions.iter().copied().collect();
    assert_eq!(ids, want, "archived impressions");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minute_graph_reads_zero_between_clicks_never_the_previous_count() {
    let stack = Stack::get();
    let scope = stack.isolated("exporter-zeros");
    let topic = scope.kafka_topic(2).await;
    // Few clicks over many ads: most ads have clicks in some minutes and none in others.
    let fill = backfill(&scope, &topic, plan_config(12, 6, 5.0)).await;
    let exporter = RunningExporter::start(&scope, &topic, test_config(&scope)).await;
    let prom = PromApi::new(stack.prometheus_url());
    let id = scope.id.clone();
    let clicks = fill.truth.summary.clicks as f64;
    eventually(Duration::from_secs(120), "every click written", || async {
        let counted = prom
            .sum_last_hour(&format!("adclick_clicks{{test_id=\"{id}\"}}"))
            .await;
        let late = prom
            .sum_last_hour(&format!("adclick_late_clicks{{test_id=\"{id}\"}}"))
            .await;
        if counted + late == clicks {
            Ok(())
        } else {
            Err(format!("{counted} + {late} of {clicks}"))
        }
    })
    .await;
    exporter.stop().await;
    let w = written(&prom, &id).await;
    let start = fill.truth.summary.start_ms - fill.truth.summary.start_ms % 60_000;
    let end = start + 12 * 60_000;
    let graph = prom
        .query_range(
            &format!("sum by (campaign_id, ad_id) (adclick_clicks{{test_id=\"{id}\"}})"),
            start,
            end,
            60_000,
        )
        .await
        .unwrap();
    let mut checked_gaps = 0;
    for s in &graph {
        let (c, ad) = (&s.labels["campaign_id"], &s.labels["ad_id"]);
        let points: BTreeMap<i64, f64> = s.samples.iter().copied().collect();
        for t in (start..=end).step_by(60_000) {
            let shown = points.get(&t).copied().unwrap_or(0.0);
            let truth = w.get(&(c.clone(), ad.clone(), t)).copied().unwrap_or(0.0);
            assert_eq!(
                shown, truth,
                "ad {ad} at {t}: the graph shows {shown}, the minute had {truth}"
            );
            if !w.contains_key(&(c.clone(), ad.clone(), t)) && points.contains_key(&(t - 60_000)) {
                checked_gaps += 1;
            }
        }
    }
    assert!(
        checked_gaps > 10,
        "the run had minutes without clicks after minutes with ({checked_gaps})"
    );
}

/// Waits for every click of `fill` in Prometheus, then checks every minute exactly. When the
/// written counts stop moving short of the truth, the failure names the minutes that differ.
async fn assert_exact(prom: &PromApi, id: &str, fill: &Backfill) {
    let clicks = fill.truth.summary.clicks as f64;
    let written_all = until(Duration::from_secs(120), "every click written", || async {
        let counted = prom
            .sum_last_hour(&format!("adclick_clicks{{test_id=\"{id}\"}}"))
            .await;
        let late = prom
            .sum_last_hour(&format!("adclick_late_clicks{{test_id=\"{id}\"}}"))
            .await;
        if counted + late == clicks {
            Ok(())
        } else {
            Err(format!("{counted} + {late} late of {clicks}"))
        }
    })
    .await;
    if let Err(stalled) = written_all {
        let differ = check_exact(&written(prom, id).await, fill).err();
        panic!("{stalled}; {}", differ.unwrap_or_default());
    }
    check_exact(&written(prom, id).await, fill).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashes_mid_run_replay_to_the_same_exact_counts() {
    let stack = Stack::get();
    let scope = stack.isolated("exporter-crash");
    let topic = scope.kafka_topic(4).await;
    let fill = backfill(&scope, &topic, plan_config(13, 4, 250.0)).await;
    let prom = PromApi::new(stack.prometheus_url());
    let mut config = test_config(&scope);
    config.top_k = 160;
    // One instance restarted again and again, as deployed: with a stable `instance_id` (static
    // membership), so the restarted member takes its crashed predecessor's partitions. Without
    // it, a member that crashed mid-rebalance stayed in tansu's group holding its partitions
    // (about one run in ten: half the partitions never read again), as README describes.
    config.instance_id = format!("{}-0", scope.id);
    let mut refused = 0;
    // Crash at several moments while it works through the topic, restarting each time.
    for after_ms in [700u64, 1_500, 900, 2_500, 1_200] {
        let exporter = RunningExporter::start(&scope, &topic, config.clone()).await;
        tokio::time::sleep(Duration::from_millis(after_ms)).await;
        refused += exporter.remote_write.requests("400");
        exporter.crash().await;
    }
    let exporter = RunningExporter::start(&scope, &topic, config).await;
    assert_exact(&prom, &scope.id, &fill).await;
    refused += exporter.remote_write.requests("400");
    assert_eq!(refused, 0, "no remote-write request refused with 400");
    exporter.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_is_dead_lettered_with_its_reason_and_the_rest_stays_exact() {
    use prost::Message;
    use rdkafka::ClientConfig;
    use rdkafka::consumer::{Consumer, StreamConsumer};
    use rdkafka::message::Headers;
    use rdkafka::producer::{FutureProducer, FutureRecord};

    let stack = Stack::get();
    let scope = stack.isolated("exporter-poison");
    let topic = scope.kafka_topic(2).await;
    let fill = backfill(&scope, &topic, plan_config(14, 3, 100.0)).await;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", stack.kafka_brokers())
        .create()
        .unwrap();
    let now = adclick_loadgen::run::now_ms();
    let valid = adclick_click::Click {
        impression_id: vec![9; 16],
        ad_id: 1,
        campaign_id: 1,
        advertiser_id: 1,
        event_time_ms: now - 120_000,
        ..Default::default()
    };
    let mut no_ids = valid.clone();
    no_ids.ad_id = 0;
    let mut future = valid.clone();
    future.event_time_ms = now + 3_600_000;
    let mut short_id = valid.clone();
    short_id.impression_id = vec![1, 2];
    let poison: Vec<(&str, Vec<u8>)> = vec![
        ("undecodable", vec![0xff, 0xfe, 0xfd, 0x00]),
        ("missing_id", no_ids.encode_to_vec()),
        ("future_event_time", future.encode_to_vec()),
        ("bad_impression_id", short_id.encode_to_vec()),
    ];
    for (_, value) in &poison {
        producer
            .send(
                FutureRecord::<str, [u8]>::to(&topic)
                    .key("1")
                    .payload(value),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
    }
    let exporter = RunningExporter::start(&scope, &topic, test_config(&scope)).await;
    assert_exact(&PromApi::new(stack.prometheus_url()), &scope.id, &fill).await;
    for (reason, _) in &poison {
        let n = exporter
            .metrics
            .dead_letters
            .get_or_create(&adclick_exporter::metrics::ReasonLabels { reason })
            .get();
        assert_eq!(n, 1, "{reason}");
    }
    exporter.stop().await;
    // The dead-letter topic holds them, each with its reason.
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", stack.kafka_brokers())
        .set("group.id", format!("dlq-reader-{}", scope.id))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[&format!("dlq-{}", scope.id)]).unwrap();
    let mut reasons = vec![];
    while reasons.len() < poison.len() {
        let m = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .expect("dead letters arrive")
            .unwrap();
        let h = rdkafka::message::Message::headers(&m).expect("headers");
        let reason = h
            .iter()
            .find(|h| h.key == "adclick-dead-letter-reason")
            .and_then(|h| h.value)
            .map(|v| String::from_utf8_lossy(v).to_string())
            .expect("reason header");
        reasons.push(reason);
    }
    reasons.sort();
    let mut want: Vec<String> = poison.iter().map(|p| p.0.to_string()).collect();
    want.sort();
    assert_eq!(reasons, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_the_group_and_one_crashing_loses_nothing() {
    let stack = Stack::get();
    let scope = stack.isolated("exporter-pair");
    let topic = scope.kafka_topic(4).await;
    let fill = backfill(&scope, &topic, plan_config(15, 4, 200.0)).await;
    let mut config = test_config(&scope);
    config.top_k = 160;
    let survivor = RunningExporter::start(&scope, &topic, config.clone()).await;
    let doomed = RunningExporter::start(&scope, &topic, config).await;
    // Both members own partitions (the group rebalanced), then one dies mid-run.
    eventually(
        Duration::from_secs(60),
        "both instances own partitions",
        || async {
            let (a, b) = (
                survivor.metrics.partitions_owned.get(),
                doomed.metrics.partitions_owned.get(),
            );
            if a > 0 && b > 0 && a + b == 4 {
                Ok(())
            } else {
                Err(format!("{a} and {b}"))
            }
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let refused = doomed.remote_write.requests("400");
    doomed.crash().await;
    assert_exact(&PromApi::new(stack.prometheus_url()), &scope.id, &fill).await;
    assert_eq!(refused + survivor.remote_write.requests("400"), 0);
    survivor.stop().await;
}

/// Prometheus stopped in the middle of the run (`ADCLICK_TEST_SCALE=full`: 2 minutes; CI: 20 s):
/// the exporter retries, holds its commits, and everything is exact once Prometheus is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_down_mid_run_then_back_is_still_exact() {
    let stack = Stack::get();
    let scope = stack.isolated("exporter-prom-down");
    let topic = scope.kafka_topic(4).await;
    let fill = backfill(&scope, &topic, plan_config(16, 4, 200.0)).await;
    let config_yaml = "global: {}\nstorage:\n  tsdb:\n    out_of_order_time_window: 2h\n";
    let mut scratch = tokio::task::block_in_place(|| {
        adclick_testsupport::ScratchPrometheus::start(&stack, config_yaml, |_| {})
    });
    let mut config = test_config(&scope);
    config.top_k = 160;
    config.remote_write.url = scratch.remote_write_url();
    let exporter = RunningExporter::start(&scope, &topic, config).await;
    let prom = scratch.api();
    let id = scope.id.clone();
    // Down once the exporter has written something, so the outage falls mid-run.
    eventually(Duration::from_secs(60), "first samples written", || async {
        let n = prom
            .sum_last_hour(&format!("adclick_clicks{{test_id=\"{id}\"}}"))
            .await;
        if n > 0.0 {
            Ok(())
        } else {
            Err("nothing yet".into())
        }
    })
    .await;
    let outage = if std::env::var("ADCLICK_TEST_SCALE").as_deref() == Ok("full") {
        120
    } else {
        20
    };
    tokio::task::block_in_place(|| scratch.stop());
    // Nothing is committed while samples wait for Prometheus: between two moments at which
    // samples were pending, at most the one commit cycle already past its flush when Prometheus
    // went may finish. (With nothing pending, a commit waits for nothing and may go ahead.)
    let (mut first_pending, mut last_pending) = (None, None);
    let until = std::time::Instant::now() + Duration::from_secs(outage);
    while std::time::Instant::now() < until {
        if exporter.remote_write.pending_samples() > 0 {
            let commits = exporter.metrics.commits.get();
            first_pending.get_or_insert(commits);
            last_pending = Some(commits);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    if let (Some(first), Some(last)) = (first_pending, last_pending) {
        assert!(
            last - first <= 1,
            "{} commits while samples waited for Prometheus",
            last - first
        );
    }
    let retried = exporter.remote_write.samples_retried();
    let failed_attempts = exporter.remote_write.requests("connect");
    tokio::task::block_in_place(|| scratch.restart());
    assert_exact(&prom, &id, &fill).await;
    exporter.stop().await;
    assert!(
        failed_attempts > 0 && retried > 0,
        "the outage was seen: {failed_attempts} failed attempts, {retried} samples retried"
    );
    tokio::task::block_in_place(|| drop(scratch));
}
