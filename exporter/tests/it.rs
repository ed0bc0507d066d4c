//! The exporter against the local stack (tansu, Prometheus, garage): exact counts, replays after
//! a crash, poison, the archive, and what a 1-minute graph shows between clicks.

mod util;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use adclick_click::archive;
use adclick_testsupport::{PromApi, Stack};
use util::{RunningExporter, backfill, eventually, plan_config, raw_samples, test_config, total};

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
fn check_exact(w: &Written, fill: &util::Backfill) -> Result<(), String> {
    // Expected per ad and minute: the truth minus what arrives after its minute is final.
    let mut expected: BTreeMap<(String, String, i64), u64> = BTreeMap::new();
    let mut campaign: BTreeMap<(String, i64), u64> = BTreeMap::new();
    for (key, n) in fill.truth.counts() {
        let n = n - fill.too_late.get(key).copied().unwrap_or(0);
        let c = key.ad.campaign_id.to_string();
        expected.insert((c.clone(), key.ad.ad_id.to_string(), key.minute_end_ms), n);
        *campaign.entry((c, key.minute_end_ms)).or_insert(0) += n;
    }
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
                return Err(format!(
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
            return Err(format!(
                "campaign {c} minute ending {t}: wrote {got}, truth {want}"
            ));
        }
    }
    for ((c, t), got) in &written_campaign {
        if *got != 0.0 && !campaign.contains_key(&(c.clone(), *t)) {
            return Err(format!(
                "campaign {c} minute ending {t}: wrote {got}, truth has none"
            ));
        }
    }
    Ok(())
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
        let counted = total(&prom, &format!("adclick_clicks{sel}")).await;
        let late = total(&prom, &format!("adclick_late_clicks{sel}")).await;
        if counted + late == clicks {
            Ok(())
        } else {
            Err(format!("{counted} + {late} late of {clicks}"))
        }
    })
    .await;
    assert_eq!(
        total(&prom, &format!("adclick_late_clicks{sel}")).await,
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
        let counted = total(&prom, &format!("adclick_clicks{{test_id=\"{id}\"}}")).await;
        let late = total(&prom, &format!("adclick_late_clicks{{test_id=\"{id}\"}}")).await;
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
