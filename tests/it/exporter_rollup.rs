//! loadgen → Kafka → the exporter (stream and archive) → the daily rollup, against the local
//! stack: the blocks the rollup settles from the exporter's archive hold exactly the ground truth,
//! and the stream agrees with them.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use adclick_click::minute::MINUTE_MS;
use adclick_click::now_ms;
use adclick_exporter::ExporterConfig;
use adclick_loadgen::PlanConfig;
use adclick_rollup::Day;
use adclick_testsupport::traffic::{backfill, kafka_backfill, population};
use adclick_testsupport::wait::eventually;
use adclick_testsupport::{PromApi, ScratchPrometheus, Stack, copy_dir};

use crate::support::InProcessExporter;

/// loadgen → Kafka → exporter (stream + archive) → rollup: the rollup's blocks hold exactly the
/// ground truth, every (ad, minute) — including clicks beyond the allowed lateness and fail-open
/// repeats (flagged dedup-unchecked, as ingest writes them while Redis is down) up to 100 s
/// after their impression, across minutes — the stream agrees with it exactly (the exporter
/// drops repeats within its dedup horizon, whichever minute), and its figures are in Prometheus.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rollup_of_the_archive_settles_the_ground_truth_exactly() {
    let stack = Stack::get();
    let scope = stack.isolated("exporter-rollup");
    let topic = scope.kafka_topic(4).await;
    // 4 minutes of event time ending 3 minutes ago, 1000 ads, 2 of them hot.
    let start_ms = now_ms() - (4 + 3) * MINUTE_MS;
    let mut plan = PlanConfig {
        population: population(10, 5, 20, 2),
        ..kafka_backfill(15, start_ms, 4, 150.0)
    };
    // The Kafka target flags repeats dedup-unchecked, as ingest does when Redis is down.
    plan.duplicate_share = 0.05;
    plan.duplicate_delay_max_secs = 100.0;
    let fill = backfill(&scope, &topic, plan).await;
    let s = &fill.truth.summary;
    assert!(s.duplicates_sent > 0 && s.too_late_clicks > 0, "{s:?}");
    let truth_total = s.clicks;
    let sends = s.clicks + s.duplicates_sent;

    // The test's own group, archive prefix and `test_id` label; quick ticks and commits.
    let mut config = ExporterConfig {
        group_id: format!("exporter-{}", scope.id),
        idle_tick_ms: 1_000,
        commit_interval_ms: 500,
        dead_letter_topic: format!("dlq-{}", scope.id),
        top_k: 160,
        ..ExporterConfig::default()
    };
    config.remote_write.url = stack.remote_write_url().to_string();
    config.archive.prefix = scope.s3_prefix();
    config.archive.max_records = 5_000;
    config.labels.insert("test_id".into(), scope.id.clone());
    let exporter = InProcessExporter::start(&scope, &topic, config, None).await;
    let prom = PromApi::new(stack.prometheus_url());
    let id = scope.id.clone();
    let metrics = exporter.metrics.clone();
    eventually(Duration::from_secs(120), "every record archived and every minute written", || async {
        let archived = metrics.archive_records.get();
        let counted = prom.sum_last_hour(&format!("adclick_clicks{{test_id=\"{id}\"}}")).await;
        let late = prom.sum_last_hour(&format!("adclick_late_clicks{{test_id=\"{id}\"}}")).await;
        if archived == sends && counted + late >= truth_total as f64 {
            Ok(())
        } else {
            Err(format!("archived {archived} of {sends}; written {counted} + {late} late of {truth_total}"))
        }
    })
    .await;
    exporter.stop().await;

    // Every day the clicks' samples fall in (two around midnight UTC).
    let days: BTreeSet<Day> = fill
        .truth
        .counts()
        .keys()
        .map(|k| Day::of(k.minute_end_ms))
        .collect();
    let data = tempfile::tempdir().unwrap();
    let (mut settled, mut unchecked, mut removed) = (0, 0, 0);
    for report in crate::support::rollup_days(&scope, &topic, &days, data.path(), None).await {
        settled += report.settle.clicks;
        unchecked += report.settle.dedup_unchecked;
        removed += report.settle.duplicates_removed;
        let r = report.reconciliation.as_ref().expect("reconciled");
        assert_eq!(r.truth_clicks, report.settle.clicks);
        assert_eq!(
            r.stream_clicks + r.stream_late_clicks,
            r.truth_clicks,
            "{}",
            report.summary()
        );
        assert!(r.is_clean(), "{}", report.summary());
        assert_eq!(report.exit_code, 0, "{}", report.summary());
    }
    assert_eq!(settled, truth_total);
    assert!(
        unchecked >= s.duplicates_sent && removed >= s.duplicates_sent,
        "{unchecked} {removed}"
    );

    // The blocks, in a stock Prometheus: every (ad, minute) equals the truth.
    let blocks = data.path().to_path_buf();
    let scratch = tokio::task::block_in_place(|| {
        ScratchPrometheus::start(&stack, "global: {}\n", |dir| {
            copy_dir(&blocks, dir);
        })
    });
    let last = days.iter().last().unwrap().end_ms() - 1;
    let series = scratch
        .api()
        .query(
            &format!("adclick_clicks{{test_id=\"{id}\"}}[2d]"),
            Some(last),
        )
        .await
        .unwrap();
    let mut got: BTreeMap<(u64, i64), u64> = BTreeMap::new();
    for one in &series {
        let ad: u64 = one.labels["ad_id"].parse().unwrap();
        for (t, v) in &one.samples {
            if *v != 0.0 {
                got.insert((ad, *t), *v as u64);
            }
        }
    }
    let want: BTreeMap<(u64, i64), u64> = fill
        .truth
        .counts()
        .iter()
        .map(|(k, n)| ((k.ad.ad_id, k.minute_end_ms), *n))
        .collect();
    assert_eq!(got, want, "the rollup's samples are the ground truth");
    tokio::task::block_in_place(|| drop(scratch));

    // The figures an alert reads are in the stack's Prometheus.
    let written = prom
        .query(&format!("adclick_rollup_clicks{{test_id=\"{id}\"}}"), None)
        .await
        .unwrap();
    assert_eq!(written.len(), 1, "{written:?}");
}
