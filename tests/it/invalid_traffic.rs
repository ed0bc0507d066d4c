//! Invalid traffic end to end (issue #18): loadgen through `adclick ingest` with 15 % invalid
//! traffic of every kind (bots, prefetch-then-click, a deny-listed network, too-fast clicks) and a
//! user flood and an IP flood every minute, while Redis is down for part of the run.
//!
//! What must hold:
//! - **Live, exact where the truth is known in advance:** per ad and minute, the valid clicks of
//!   every ad but the floods' equal the truth, and per campaign and minute so do the invalid
//!   clicks of each request reason and `too_fast` (none needs Redis); a flood campaign's valid plus
//!   velocity-invalid clicks equal what it sent.
//! - **Settled, exact:** the rollup's block equals an independent settlement of the archive
//!   written here (the classifier over ingest's recorded receive times, counted by hand), and
//!   that settlement equals the truth wherever the truth is known.
//! - **The difference named:** flood clicks that failed open live (velocity unchecked) are valid
//!   live and settled as velocity-invalid; the rollup's report counts them, and only flood
//!   campaigns differ.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use adclick_click::Click;
use adclick_click::minute::Minute;
use adclick_invalid::{ActivityFacts, Reason, Rules, Velocity};
use adclick_loadgen::invalid::InvalidConfig;
use adclick_loadgen::{Plan, PlanConfig, SendKind};
use adclick_rollup::Day;
use adclick_testsupport::traffic::{live, population};
use adclick_testsupport::wait::Progress;
use adclick_testsupport::{PromApi, ScratchPrometheus, Stack, copy_dir};

use crate::support::{BehindFaultyRedis, metric_at, rollup_days, run_with_redis_outage};

/// (advertiser, campaign, minute end) → clicks.
type Valid = BTreeMap<(u64, u64, i64), u64>;
/// (advertiser, campaign, minute end, reason) → clicks.
type Invalid = BTreeMap<(u64, u64, i64, String), u64>;

const VELOCITY: [&str; 2] = ["user_velocity", "ip_velocity"];

/// Per campaign, minute and the value of `label` (`ad_id`, `reason`) of `metric{test_id=id}`,
/// zeros left out.
async fn read(prom: &PromApi, metric: &str, id: &str, label: &str) -> Invalid {
    let series = prom
        .query(&format!("{metric}{{test_id=\"{id}\"}}[3h]"), None)
        .await
        .unwrap_or_else(|e| panic!("querying {metric}: {e}"));
    let mut out = Invalid::new();
    for s in series {
        let id = |name: &str| s.labels[name].parse::<u64>().unwrap();
        let value = s.labels[label].clone();
        for (t, v) in s.samples {
            *out.entry((id("advertiser_id"), id("campaign_id"), t, value.clone()))
                .or_insert(0) += v as u64;
        }
    }
    out.retain(|_, v| *v != 0);
    out
}

/// The settlement of `records` (every record the archive holds) by hand: the contract of
/// click.proto and adclick-invalid's `facts.rs`, without the rollup's code.
fn settle_by_hand(records: &[Click], rules: &Rules) -> (Valid, Invalid) {
    let minute_end = |c: &Click| Minute::of(c.event_time_ms).end_ms();
    let mut valid = Valid::new();
    let mut invalid = Invalid::new();
    // Request reasons: once per impression and reason, at its first record by event time.
    let mut request: HashMap<(Vec<u8>, i32), &Click> = HashMap::new();
    // The impression's click: its first record by event time.
    let mut first: HashMap<Vec<u8>, &Click> = HashMap::new();
    for c in records {
        if c.invalid_reason().is_request_reason() {
            let slot = request
                .entry((c.impression_id.clone(), c.invalid_reason))
                .or_insert(c);
            if c.event_time_ms < slot.event_time_ms {
                *slot = c;
            }
        } else {
            let slot = first.entry(c.impression_id.clone()).or_insert(c);
            if c.event_time_ms < slot.event_time_ms {
                *slot = c;
            }
        }
    }
    for c in request.values() {
        let reason = c.invalid_reason().label().unwrap().to_string();
        *invalid
            .entry((c.advertiser_id, c.campaign_id, minute_end(c), reason))
            .or_insert(0) += 1;
    }
    // Velocity: running counts in UTC windows of receive time, in (receive time, impression)
    // order; the default rules count users per minute and IPs per second.
    let mut clicks: Vec<&Click> = first.into_values().collect();
    clicks.sort_by(|a, b| {
        (a.receive_time_ms, &a.impression_id).cmp(&(b.receive_time_ms, &b.impression_id))
    });
    let mut per_user_minute: HashMap<(u64, i64), u64> = HashMap::new();
    let mut per_ip_second: HashMap<(u64, i64), u64> = HashMap::new();
    for c in clicks {
        let count = |map: &mut HashMap<(u64, i64), u64>, who: u64, window: i64| {
            (who != 0).then(|| {
                let n = map.entry((who, window)).or_insert(0);
                *n += 1;
                *n
            })
        };
        let velocity = Velocity {
            user_clicks_in_minute: count(
                &mut per_user_minute,
                c.user_hash,
                c.receive_time_ms.div_euclid(60_000),
            ),
            ip_clicks_in_second: count(
                &mut per_ip_second,
                c.ip_hash,
                c.receive_time_ms.div_euclid(1000),
            ),
            ..Velocity::default()
        };
        let activity = ActivityFacts {
            token_issued_at_secs: c.token_issued_at_secs,
            received_at_ms: c.receive_time_ms,
            velocity,
        };
        let key = (c.advertiser_id, c.campaign_id, minute_end(c));
        match adclick_invalid::classify_activity(&activity, rules) {
            None => *valid.entry(key).or_insert(0) += 1,
            Some(reason) => {
                *invalid
                    .entry((key.0, key.1, key.2, reason.as_str().to_string()))
                    .or_insert(0) += 1;
            }
        }
    }
    (valid, invalid)
}

/// Every click record of the test's archive, each (partition, offset) once.
async fn archived_clicks(scope: &adclick_testsupport::TestScope) -> Vec<Click> {
    let s3 = scope.stack.s3_client().await;
    let bucket = scope.stack.s3_bucket();
    let prefix = format!("{}raw/", scope.s3_prefix());
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for (key, _) in adclick_objstore::list(&s3, bucket, &prefix).await.unwrap() {
        let bytes = adclick_objstore::get(&s3, bucket, &key)
            .await
            .unwrap()
            .unwrap();
        let object = adclick_click::archive::decode(&bytes).unwrap();
        for record in object.records {
            if seen.insert((object.partition, record.offset)) {
                out.push(Click::decode_valid(&record.value).unwrap());
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_traffic_is_counted_apart_live_and_settled_exactly() {
    let stack = Stack::get();
    let scope = stack.isolated("invalid-traffic");
    let id = scope.id.clone();
    let topic = scope.kafka_topic(4).await;
    let BehindFaultyRedis {
        redis,
        mut ingest,
        base,
        ingest_admin,
        mut exporter,
        exporter_admin_port: admin_port,
        log,
        spill: _spill,
    } = BehindFaultyRedis::start(
        &scope,
        &topic,
        &[("ADCLICK_EXPORTER__ARCHIVE__MAX_RECORDS", "500")],
    )
    .await;

    // 100 s at 40 clicks/s, 15 % of the scheduled clicks invalid, a user flood and an IP flood in
    // every minute with 17 s inside the run; Redis down from 25 s to 75 s.
    let run_secs = 100;
    let config = PlanConfig {
        start_ms: adclick_loadgen::run::now_ms() + 2_000,
        population: population(3, 4, 10, 0),
        duplicate_share: 0.0,
        late_share: 0.0,
        too_late_share: 0.0,
        forged_share: 0.0,
        expired_share: 0.0,
        invalid: InvalidConfig {
            share: 0.15,
            ..InvalidConfig::default()
        },
        ..live(18, 40.0, run_secs as f64)
    };
    let (outage_from, outage_to) = (config.start_ms + 25_000, config.start_ms + 75_000);
    let floods_in_outage = Plan::new(config.clone())
        .expect("plan")
        .filter(|s| matches!(s.kind, SendKind::Flood(_)))
        .filter(|s| (outage_from..outage_to).contains(&s.at_ms))
        .count();
    assert!(
        floods_in_outage > 0,
        "the outage must hold flood clicks for the live verdicts to differ"
    );
    let plan = Plan::new(config).expect("plan");
    let truth = run_with_redis_outage(&base, plan, &redis, (outage_from, outage_to)).await;
    let velocity_unchecked =
        metric_at(&ingest_admin, "adclick_ingest_dedup_fail_open_total", "").await;
    assert!(
        velocity_unchecked > 100.0,
        "{velocity_unchecked} failed open"
    );

    // The truth, per ad (valid clicks) or campaign (the rest) and minute.
    let mut want_valid = Valid::new();
    let mut want_ads = Invalid::new();
    for (k, n) in truth.counts() {
        let (a, c, t) = (k.ad.advertiser_id, k.ad.campaign_id, k.minute_end_ms);
        *want_valid.entry((a, c, t)).or_insert(0) += n;
        *want_ads
            .entry((a, c, t, k.ad.ad_id.to_string()))
            .or_insert(0) += n;
    }
    let mut want_invalid = Invalid::new();
    for (k, n) in truth.invalid() {
        let key = (
            k.advertiser_id,
            k.campaign_id,
            k.minute_end_ms,
            k.reason.as_str().into(),
        );
        *want_invalid.entry(key).or_insert(0) += n;
    }
    let mut want_floods = Valid::new();
    for (k, n) in truth.floods() {
        *want_floods
            .entry((k.ad.advertiser_id, k.ad.campaign_id, k.minute_end_ms))
            .or_insert(0) += n;
    }
    let flood_campaigns: BTreeSet<(u64, u64)> =
        want_floods.keys().map(|&(a, c, _)| (a, c)).collect();
    assert!(!flood_campaigns.is_empty() && !want_invalid.is_empty());
    for reason in [
        Reason::BotUserAgent,
        Reason::DenyListedNetwork,
        Reason::Prefetch,
        Reason::TooFast,
    ] {
        assert!(
            want_invalid.keys().any(|k| k.3 == reason.as_str()),
            "the run has no {reason}"
        );
    }

    // Live: what is known in advance, exactly: every ad's valid clicks per minute (the exporter's
    // top K, 400, holds every ad of the run), every campaign's invalid clicks per reason and
    // minute, and the floods' valid plus velocity-invalid clicks.
    let prom = PromApi::new(stack.prometheus_url());
    let mut progress = Progress::new("live counts exact", Duration::from_secs(120));
    loop {
        let written = read(&prom, "adclick_clicks", &id, "ad_id").await;
        let written_invalid = read(&prom, "adclick_invalid_clicks", &id, "reason").await;
        let (mut got_ads, mut got_floods) = (Invalid::new(), Valid::new());
        for ((a, c, t, ad), n) in written {
            if flood_campaigns.contains(&(a, c)) {
                *got_floods.entry((a, c, t)).or_insert(0) += n;
            } else {
                got_ads.insert((a, c, t, ad), n);
            }
        }
        let mut got_invalid = Invalid::new();
        for ((a, c, t, reason), n) in &written_invalid {
            if VELOCITY.contains(&reason.as_str()) && flood_campaigns.contains(&(*a, *c)) {
                *got_floods.entry((*a, *c, *t)).or_insert(0) += n;
            } else {
                got_invalid.insert((*a, *c, *t, reason.clone()), *n);
            }
        }
        if got_ads == want_ads && got_invalid == want_invalid && got_floods == want_floods {
            break;
        }
        for child in [&mut ingest, &mut exporter] {
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "a process under test exited ({status}); log: {}",
                    log.display()
                );
            }
        }
        let seen = format!(
            "{} valid, {} invalid, {} flood",
            got_ads.values().sum::<u64>(),
            got_invalid.values().sum::<u64>(),
            got_floods.values().sum::<u64>()
        );
        if let Err(stalled) = progress.observe(&seen) {
            let _ = (ingest.kill(), exporter.kill());
            panic!(
                "{stalled}: valid {}, invalid {}, floods {}; log: {}",
                got_ads == want_ads,
                got_invalid == want_invalid,
                got_floods == want_floods,
                log.display()
            );
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    // Every record ingest produced is in the archive before the exporter stops.
    let produced = metric_at(&ingest_admin, "adclick_ingest_clicks_accepted_total", "").await;
    let exporter_admin = format!("127.0.0.1:{admin_port}");
    adclick_testsupport::wait::eventually(
        Duration::from_secs(120),
        "everything archived",
        || async {
            let archived = metric_at(
                &exporter_admin,
                "adclick_exporter_archive_records_total",
                "",
            )
            .await;
            if archived >= produced {
                Ok(())
            } else {
                Err(format!("{archived} of {produced} records archived"))
            }
        },
    )
    .await;
    let _ = (ingest.kill(), exporter.kill());
    let _ = (ingest.wait(), exporter.wait());

    // The archive settled by hand, against the truth where the truth is known.
    let records = archived_clicks(&scope).await;
    let rules = Rules::from_config(&adclick_invalid::Config::default()).unwrap();
    let (hand_valid, hand_invalid) = settle_by_hand(&records, &rules);
    let non_flood = |rows: &Valid| -> Valid {
        rows.iter()
            .filter(|(k, _)| !flood_campaigns.contains(&(k.0, k.1)))
            .map(|(k, n)| (*k, *n))
            .collect()
    };
    assert_eq!(non_flood(&hand_valid), want_valid, "settled by hand: valid");
    let mut hand_floods = Valid::new();
    let mut hand_other_invalid = Invalid::new();
    for ((a, c, t, reason), n) in &hand_invalid {
        if VELOCITY.contains(&reason.as_str()) {
            assert!(
                flood_campaigns.contains(&(*a, *c)),
                "velocity outside a flood"
            );
            *hand_floods.entry((*a, *c, *t)).or_insert(0) += n;
        } else {
            hand_other_invalid.insert((*a, *c, *t, reason.clone()), *n);
        }
    }
    for (k, n) in &hand_valid {
        if flood_campaigns.contains(&(k.0, k.1)) {
            *hand_floods.entry(*k).or_insert(0) += n;
        }
    }
    assert_eq!(hand_other_invalid, want_invalid, "settled by hand: invalid");
    assert_eq!(hand_floods, want_floods, "settled by hand: floods");

    // The rollup of every day the clicks fall in.
    let days: BTreeSet<Day> = hand_valid
        .keys()
        .map(|k| Day::of(k.2))
        .chain(hand_invalid.keys().map(|k| Day::of(k.2)))
        .collect();
    let data = tempfile::tempdir().unwrap();
    let (mut changed, mut changed_unchecked) = (0, 0);
    for report in rollup_days(&scope, &topic, &days, data.path(), None).await {
        changed += report.verdict_changes.clicks;
        changed_unchecked += report.verdict_changes.velocity_unchecked;
        let r = report.reconciliation.as_ref().expect("reconciled");
        // Only flood campaigns may differ live from settled: their velocity failed open.
        for row in r.campaigns.iter().filter(|row| row.difference != 0) {
            assert!(
                flood_campaigns.contains(&(row.advertiser_id, row.campaign_id)),
                "{row:?}\n{}",
                report.summary()
            );
        }
    }
    assert!(
        changed_unchecked > 0 && changed >= changed_unchecked,
        "the report names the flood clicks that failed open live: {changed} changed, \
         {changed_unchecked} velocity-unchecked"
    );

    // The blocks in a stock Prometheus equal the settlement by hand, valid and invalid.
    let blocks = data.path().to_path_buf();
    let scratch = tokio::task::block_in_place(|| {
        ScratchPrometheus::start(&stack, "global: {}\n", |dir| copy_dir(&blocks, dir))
    });
    let api = scratch.api();
    let last = days.iter().last().unwrap().end_ms() - 1;
    let at = |metric: &str| format!("{metric}{{test_id=\"{id}\"}}[2d]");
    let mut block_valid = Valid::new();
    for s in api.query(&at("adclick_clicks"), Some(last)).await.unwrap() {
        let id = |name: &str| s.labels[name].parse::<u64>().unwrap();
        for (t, v) in &s.samples {
            if *v != 0.0 {
                *block_valid
                    .entry((id("advertiser_id"), id("campaign_id"), *t))
                    .or_insert(0) += *v as u64;
            }
        }
    }
    let mut block_invalid = Invalid::new();
    for s in api
        .query(&at("adclick_invalid_clicks"), Some(last))
        .await
        .unwrap()
    {
        let id = |name: &str| s.labels[name].parse::<u64>().unwrap();
        for (t, v) in &s.samples {
            if *v != 0.0 {
                let key = (
                    id("advertiser_id"),
                    id("campaign_id"),
                    *t,
                    s.labels["reason"].clone(),
                );
                *block_invalid.entry(key).or_insert(0) += *v as u64;
            }
        }
    }
    tokio::task::block_in_place(|| drop(scratch));
    assert_eq!(block_valid, hand_valid, "the rollup's valid clicks");
    assert_eq!(block_invalid, hand_invalid, "the rollup's invalid clicks");
    println!(
        "{} clicks sent ({} invalid by request or too fast, {} in floods; {floods_in_outage} flood \
         clicks in the Redis outage): live exact; rollup = settlement by hand; {changed} verdicts \
         changed ({changed_unchecked} velocity-unchecked)",
        truth.summary.clicks,
        want_invalid.values().sum::<u64>(),
        want_floods.values().sum::<u64>(),
    );
}
