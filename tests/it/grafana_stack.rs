//! Every query of both dashboards — each panel target and each variable — returns data from a
//! Prometheus that real traffic went through, with the template variables substituted by values
//! that traffic produced. No dead panel.
//!
//! Against the local stack (Kafka, Redis, S3 of `deploy/local/up`; fails when it is down):
//!
//! 1. loadgen writes yesterday's and today's clicks straight into a topic of the test's own
//!    (a backfill: one day and a few minutes ago, for "same time yesterday"), then sends live
//!    clicks over HTTP through an ingest of the test's own (duplicates, forged and expired tokens
//!    included) for as long as the checks run; every click priced and made by one of a population
//!    of users, so the stream's spend and unique users hold data (issue #19);
//! 2. an exporter of the test's own (small top K, so ads fold into "other") counts the topic into
//!    a scratch Prometheus of the stack's binary that scrapes ingest's and the exporter's
//!    /metrics and loads `deploy/prometheus/rules/*.yml` as they are;
//! 3. the rollup's output, which the stack cannot produce yet (no Thanos; the rollup's metrics
//!    are remote-written), is stood in for by what the rollup would write: the ground truth as
//!    `adclick_clicks{tier="rollup"}` minute samples and one run's `adclick_rollup_*` figures,
//!    written through the remote_write client;
//! 4. every variable query (`label_values(…)`) is run through the label-values API and must hold
//!    the values the traffic made; every panel target, with `$advertiser`, `$campaign`, `$ad`,
//!    `$topn`, `$__range`, `$__interval`, `$__rate_interval` substituted, is run as Grafana
//!    would (instant or range over the last hour) and must return at least one sample;
//! 5. once the exporter has caught up, every value the recording rules record equals the raw
//!    sum over its window at the evaluation's timestamp.
//!
//! The Thanos datasource is the scratch Prometheus here: the queries are the same on both.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use adclick_click::minute::MINUTE_MS;
use adclick_exporter::ExporterConfig;
use adclick_grafana::{
    VariableSource, builtin_values, dashboard_files, load, panel_queries, parse_variable_query,
    rules_dir, shipped_dashboard_files, substitute, variables,
};
use adclick_loadgen::http::HttpTarget;
use adclick_loadgen::population::PopulationConfig;
use adclick_loadgen::run::now_ms;
use adclick_loadgen::tokens::TokenMinter;
use adclick_loadgen::users::PriceRange;
use adclick_loadgen::{GroundTruth, Plan, PlanConfig, RunOptions, Target};
use adclick_remote_write::{RequestBuilder, Sample, Sender};
use adclick_testsupport::traffic::{backfill, kafka_backfill, live, population, token_key};
use adclick_testsupport::{PromApi, ScratchPrometheus, Stack, Stoppable, TestScope};

use crate::support::InProcessExporter;
use crate::through_gateway::{self, DashboardQuery, QueryKind};

const DAY_MS: i64 = 86_400_000;
/// The dashboard time range the checks use (Grafana's "last 1 hour").
const RANGE_MS: i64 = 3_600_000;

/// The traffic's ads: 3 advertisers × 2 campaigns × 8 ads, one of them hot.
fn ads() -> PopulationConfig {
    population(3, 2, 8, 1)
}

/// Clicks written straight into Kafka (ingest's output: repeats already dropped), with late and
/// more too-late clicks than usual, so the late series have data; priced and made by a population
/// of users, so the spend and people panels do (issue #19).
fn backfill_plan(seed: u64, start_ms: i64, minutes: i64, rate: f64) -> PlanConfig {
    PlanConfig {
        population: ads(),
        too_late_share: 0.02,
        users: USERS,
        prices: Some(PRICES),
        ..kafka_backfill(seed, start_ms, minutes, rate)
    }
}

/// The traffic's users: few enough that people click more than once a minute on an ad, enough
/// that none reaches ingest's velocity limit.
const USERS: u64 = 2_000;

/// Each click's price: 0.10 to 2.00 in the campaign's currency.
const PRICES: PriceRange = PriceRange {
    min_micros: 100_000,
    max_micros: 2_000_000,
};

/// An ingest of the test's own on free ports, in this process.
struct RunningIngest {
    base: String,
    admin: String,
    task: Stoppable<Result<(), adclick_ingest::Error>>,
}

async fn start_ingest(scope: &TestScope, topic: &str, spill: &std::path::Path) -> RunningIngest {
    let public = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", public.local_addr().unwrap());
    let admin_addr = admin.local_addr().unwrap().to_string();
    let settings = adclick_ingest::Settings {
        config: adclick_ingest::IngestConfig {
            redis_url: scope.stack.redis_url().into(),
            redis_key_prefix: scope.redis_prefix(),
            spill_dir: spill.to_path_buf(),
            replay_interval_ms: 200,
            shutdown_timeout_ms: 5_000,
            // loadgen sends each simulated client's address in X-Forwarded-For from this host.
            trusted_proxies: vec!["127.0.0.1/32".parse().unwrap()],
            velocity_key_prefix: format!("{}vel:", scope.redis_prefix()),
            ..adclick_ingest::IngestConfig::default()
        },
        verifier: adclick_click::Verifier::new([token_key()], 30).unwrap(),
        kafka: scope.stack.kafka_settings(topic),
        // The stack's demo deny list, holding the network loadgen's deny-listed clicks come from.
        invalid: adclick_invalid::Config {
            deny_list_file: Some(
                adclick_testsupport::workspace_root().join("deploy/local/deny.cidr"),
            ),
            ..adclick_invalid::Config::default()
        },
    };
    let listeners = adclick_ingest::Listeners { public, admin };
    RunningIngest {
        base,
        admin: admin_addr,
        task: Stoppable::spawn(|stop| adclick_ingest::run(listeners, settings, stop)),
    }
}

/// The configuration of the test's exporter: a group and archive prefix of its own, writing to
/// `remote_write_url`; a small top K, so ads fold into "other" every minute.
fn exporter_config(scope: &TestScope, remote_write_url: &str) -> ExporterConfig {
    let mut config = ExporterConfig {
        group_id: format!("grafana-{}", scope.id),
        idle_tick_ms: 1_000,
        commit_interval_ms: 1_000,
        dead_letter_topic: format!("dlq-{}", scope.id),
        top_k: 8,
        // Yesterday's minutes are written too (the scratch Prometheus takes them).
        max_age_ms: 2 * DAY_MS,
        ..ExporterConfig::default()
    };
    config.remote_write.url = remote_write_url.to_string();
    config.archive.prefix = scope.s3_prefix();
    config
}

fn prometheus_config(ingest_admin: &str, exporter_admin: &str) -> String {
    let rules = rules_dir().canonicalize().expect("deploy/prometheus/rules");
    format!(
        r#"global:
  scrape_interval: 2s
  evaluation_interval: 15s
storage:
  tsdb:
    # The exporter writes minutes in any order, and yesterday's backfill a day late.
    out_of_order_time_window: 3d
scrape_configs:
  - job_name: adclick-ingest
    static_configs:
      - targets: ["{ingest_admin}"]
  - job_name: adclick-exporter
    static_configs:
      - targets: ["{exporter_admin}"]
rule_files:
  - {}/*.yml
"#,
        rules.display()
    )
}

/// What the daily rollup writes, for the stack that cannot run it yet: the settled clicks as
/// `adclick_clicks{tier="rollup"}` minute samples (the truth: every impression once, late clicks
/// in their own minute) and the figures of one run.
async fn write_rollup_stand_in(remote_write_url: &str, truths: &[&GroundTruth]) {
    let sender = Sender::new(
        &adclick_remote_write::Config::for_url(remote_write_url),
        adclick_remote_write::Metrics::new(),
    )
    .expect("remote_write sender");
    let mut per_ad: BTreeMap<(u64, u64, u64), Vec<Sample>> = BTreeMap::new();
    let mut clicks = 0u64;
    for truth in truths {
        for (k, n) in truth.counts() {
            clicks += n;
            per_ad
                .entry((k.ad.advertiser_id, k.ad.campaign_id, k.ad.ad_id))
                .or_default()
                .push(Sample::new(k.minute_end_ms, *n as f64));
        }
    }
    let mut builder = RequestBuilder::new();
    for ((advertiser, campaign, ad), mut samples) in per_ad {
        samples.sort_by_key(|s| s.timestamp_ms);
        builder
            .series(
                [
                    ("__name__", "adclick_clicks".to_string()),
                    ("tier", "rollup".to_string()),
                    ("advertiser_id", advertiser.to_string()),
                    ("campaign_id", campaign.to_string()),
                    ("ad_id", ad.to_string()),
                ],
                samples,
            )
            .expect("rollup series");
    }
    let now = now_ms();
    let day_start = (now - DAY_MS).div_euclid(DAY_MS) * DAY_MS;
    for (name, value) in [
        (
            "adclick_rollup_last_success_timestamp_seconds",
            now as f64 / 1000.0,
        ),
        (
            "adclick_rollup_day_start_timestamp_seconds",
            (day_start / 1000) as f64,
        ),
        ("adclick_rollup_clicks", clicks as f64),
        ("adclick_rollup_duplicates_removed", 0.0),
        ("adclick_rollup_dedup_unchecked_clicks", 0.0),
        ("adclick_rollup_mismatched_campaigns", 0.0),
        ("adclick_rollup_mismatched_ads", 0.0),
        ("adclick_rollup_mismatch_clicks", 0.0),
        ("adclick_rollup_stream_late_clicks", 0.0),
        ("adclick_rollup_corrupt_objects", 0.0),
        ("adclick_rollup_last_run_exit_code", 0.0),
    ] {
        builder
            .series(
                [("__name__", name), ("job", "adclick-rollup")],
                [Sample::new(now, value)],
            )
            .expect("rollup figure");
    }
    sender
        .send(&builder.build())
        .await
        .expect("writing the rollup stand-in");
}

/// The advertiser, campaign and ad with the most clicks in `truth`.
fn busiest(truth: &GroundTruth) -> (String, String, String) {
    let mut advertisers: BTreeMap<u64, u64> = BTreeMap::new();
    for (k, n) in truth.counts() {
        *advertisers.entry(k.ad.advertiser_id).or_default() += n;
    }
    let top = |m: &BTreeMap<u64, u64>| {
        m.iter()
            .max_by_key(|(id, n)| (**n, u64::MAX - **id))
            .map(|(id, _)| *id)
            .unwrap()
    };
    let advertiser = top(&advertisers);
    let mut campaigns: BTreeMap<u64, u64> = BTreeMap::new();
    for (k, n) in truth.counts() {
        if k.ad.advertiser_id == advertiser {
            *campaigns.entry(k.ad.campaign_id).or_default() += n;
        }
    }
    let campaign = top(&campaigns);
    let mut ads: BTreeMap<u64, u64> = BTreeMap::new();
    for (k, n) in truth.counts() {
        if k.ad.campaign_id == campaign {
            *ads.entry(k.ad.ad_id).or_default() += n;
        }
    }
    let ad = top(&ads);
    (advertiser.to_string(), campaign.to_string(), ad.to_string())
}

/// An advertiser of `truth` other than `advertiser`.
fn other_advertiser(truth: &GroundTruth, advertiser: &str) -> String {
    truth
        .counts()
        .keys()
        .map(|k| k.ad.advertiser_id.to_string())
        .find(|a| a != advertiser)
        .expect("the traffic has more than one advertiser")
}

fn has_data(series: &[adclick_testsupport::Series]) -> bool {
    series.iter().any(|s| !s.samples.is_empty())
}

/// Runs every variable and panel query of every dashboard; the problems, empty when every query
/// returned data, a report, and the queries as they were run.
async fn check_dashboards(
    prom: &PromApi,
    chosen: &BTreeMap<String, String>,
    now: i64,
) -> (Vec<String>, Vec<String>, Vec<DashboardQuery>) {
    let mut problems = vec![];
    let mut report = vec![];
    let mut ran = vec![];
    let rate_interval = Duration::from_secs(60);
    let step = Duration::from_secs(60);
    for file in dashboard_files() {
        let d = load(&file).unwrap();
        let dash = file.file_name().unwrap().to_string_lossy().into_owned();
        let mut values = chosen.clone();
        values.extend(builtin_values(now - RANGE_MS, now, step, rate_interval));
        // Datasource variables resolve to their default (Prometheus); the fixed Thanos uid is the
        // same scratch Prometheus here.
        for v in variables(&d) {
            match v.kind.as_str() {
                "datasource" => {
                    values.insert(v.name.clone(), "adclick-prometheus".into());
                }
                "custom" => {
                    let first = v.query.split(',').next().unwrap_or("").trim().to_string();
                    values.entry(v.name.clone()).or_insert(first);
                }
                "query" => {
                    let query = match substitute(&v.query, &values) {
                        Ok(q) => q,
                        Err(e) => {
                            problems.push(format!("{dash} variable ${}: {e}", v.name));
                            continue;
                        }
                    };
                    let got = match parse_variable_query(&query) {
                        Ok(VariableSource::LabelValues { label, selector }) => {
                            let matchers: Vec<&str> = selector.iter().map(String::as_str).collect();
                            prom.label_values(&label, &matchers).await
                        }
                        Ok(VariableSource::QueryResult { expr }) => prom
                            .query(&expr, Some(now))
                            .await
                            .map(|s| s.iter().map(|s| format!("{:?}", s.labels)).collect()),
                        Ok(other) => Err(adclick_testsupport::PromError(format!(
                            "{other:?} not supported by this test"
                        ))),
                        Err(e) => Err(adclick_testsupport::PromError(e.to_string())),
                    };
                    match got {
                        Err(e) => problems.push(format!("{dash} variable ${}: {e}", v.name)),
                        Ok(vals) if vals.is_empty() => problems.push(format!(
                            "{dash} variable ${}: no values for {query}",
                            v.name
                        )),
                        Ok(vals) => {
                            ran.push(DashboardQuery {
                                dashboard: dash.clone(),
                                what: format!("variable ${}", v.name),
                                expr: query.clone(),
                                kind: QueryKind::Variable,
                            });
                            // The value the checks use must be one Grafana would offer.
                            if let Some(want) = chosen.get(&v.name) {
                                if !vals.contains(want) {
                                    problems.push(format!(
                                        "{dash} variable ${}: {want} not among {vals:?} ({query})",
                                        v.name
                                    ));
                                }
                            }
                            report.push(format!(
                                "{dash} variable ${}: {} values {vals:?}",
                                v.name,
                                vals.len()
                            ));
                            values.entry(v.name.clone()).or_insert(vals[0].clone());
                        }
                    }
                }
                _ => {}
            }
        }
        for q in panel_queries(&d) {
            let what = format!(
                "{dash} panel {} {:?} target {}",
                q.panel_id, q.panel_title, q.ref_id
            );
            // A panel's own relative time ("now/d": today so far) is its range; kept at least
            // the dashboard's hour so the checks do not depend on the time of day.
            let mut vals = values.clone();
            if q.time_from.as_deref() == Some("now/d") {
                let midnight = now.div_euclid(DAY_MS) * DAY_MS;
                let from = midnight.min(now - RANGE_MS);
                vals.extend(builtin_values(from, now, step, rate_interval));
            }
            let expr = match substitute(&q.expr, &vals) {
                Ok(e) => e,
                Err(e) => {
                    problems.push(format!("{what}: {e}"));
                    continue;
                }
            };
            ran.push(DashboardQuery {
                dashboard: dash.clone(),
                what: what.clone(),
                expr: expr.clone(),
                kind: if q.instant {
                    QueryKind::Instant
                } else {
                    QueryKind::Range
                },
            });
            let result = if q.instant {
                prom.query(&expr, Some(now)).await
            } else {
                prom.query_range(&expr, now - RANGE_MS, now, step.as_millis() as i64)
                    .await
            };
            match result {
                Err(e) => problems.push(format!("{what}: {expr}: {e}")),
                Ok(series) if !has_data(&series) => {
                    problems.push(format!("{what}: no data for {expr}"))
                }
                Ok(series) => {
                    let last: Vec<String> = series
                        .iter()
                        .take(3)
                        .filter_map(|s| s.samples.last().map(|(_, v)| format!("{v}")))
                        .collect();
                    report.push(format!(
                        "{what}: {} series, last values {}",
                        series.len(),
                        last.join(" ")
                    ));
                }
            }
        }
    }
    (problems, report, ran)
}

/// The recording rules on this real data: every value recorded after `since_ms` equals the raw
/// sum over its window, queried at the evaluation's timestamp (every minute of those windows was
/// written before it). Returns how many values were compared, and the rules that recorded none
/// after `since_ms` yet.
async fn check_recorded_values(
    prom: &PromApi,
    since_ms: i64,
    problems: &mut Vec<String>,
) -> (usize, Vec<&'static str>) {
    let raw = |range: &str, offset: &str, without: &str| {
        format!(
            "sum without ({without}) (sum_over_time(adclick_clicks{{tier!=\"rollup\"}}[{range}] offset {offset}))"
        )
    };
    let checks = [
        (
            "ad:adclick_clicks:sum_1h",
            raw("59m59s999ms", "2m", "partition"),
        ),
        (
            "campaign:adclick_clicks:sum_1h",
            raw("59m59s999ms", "2m", "partition, ad_id"),
        ),
        (
            "advertiser:adclick_clicks:sum_1h",
            raw("59m59s999ms", "2m", "partition, ad_id, campaign_id"),
        ),
        (
            "ad:adclick_clicks:sum_10m",
            raw("9m59s999ms", "2m", "partition"),
        ),
        (
            "campaign:adclick_clicks:sum_10m",
            raw("9m59s999ms", "2m", "partition, ad_id"),
        ),
    ];
    let key = |s: &adclick_testsupport::Series| {
        let mut l = s.labels.clone();
        l.remove("__name__");
        l
    };
    let mut compared = 0;
    let mut missing = vec![];
    for (record, expr) in checks {
        let recorded = match prom.query(&format!("{record}[5m]"), None).await {
            Ok(r) => r,
            Err(e) => {
                problems.push(format!("{record}: {e}"));
                continue;
            }
        };
        if !recorded
            .iter()
            .any(|s| s.samples.iter().any(|(t, _)| *t > since_ms))
        {
            missing.push(record);
            continue;
        }
        let mut at: BTreeMap<i64, BTreeMap<BTreeMap<String, String>, f64>> = BTreeMap::new();
        for series in &recorded {
            for (t, value) in series.samples.iter().filter(|(t, _)| *t > since_ms) {
                if !at.contains_key(t) {
                    let raw = prom.query(&expr, Some(*t)).await.unwrap_or_default();
                    let values = raw
                        .iter()
                        .filter_map(|s| s.samples.last().map(|(_, v)| (key(s), *v)))
                        .collect();
                    at.insert(*t, values);
                }
                let want = at[t].get(&key(series)).copied();
                compared += 1;
                if want != Some(*value) {
                    problems.push(format!(
                        "{record}{:?} recorded {value} at {t}, the raw sum there is {want:?}",
                        key(series)
                    ));
                }
            }
        }
    }
    (compared, missing)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_dashboard_query_returns_data_from_real_traffic() {
    // Both dashboards are found, or every check below would pass having checked nothing.
    if let Err(e) = shipped_dashboard_files() {
        panic!("{e}");
    }
    let stack = Stack::get();
    let scope = stack.isolated("grafana-dashboards");
    let topic = scope.kafka_topic(4).await;

    // 1. Backfill: yesterday (for "same time yesterday"), then today up to 4 minutes ago.
    let now = now_ms();
    let yesterday = backfill(
        &scope,
        &topic,
        backfill_plan(81, now - DAY_MS - 20 * MINUTE_MS, 15, 5.0),
    )
    .await
    .truth;
    let today = backfill(
        &scope,
        &topic,
        backfill_plan(82, now - 16 * MINUTE_MS, 12, 10.0),
    )
    .await
    .truth;

    // 2. ingest, the exporter, and a Prometheus that scrapes them and loads the rules.
    let spill = tempfile::tempdir().unwrap();
    let ingest = start_ingest(&scope, &topic, spill.path()).await;
    let exporter_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let exporter_admin = exporter_listener.local_addr().unwrap().to_string();
    let prometheus = {
        let config = prometheus_config(&ingest.admin, &exporter_admin);
        let stack = stack.clone();
        tokio::task::spawn_blocking(move || ScratchPrometheus::start(&stack, &config, |_| {}))
            .await
            .unwrap()
    };
    let exporter = InProcessExporter::start(
        &scope,
        &topic,
        exporter_config(&scope, &prometheus.remote_write_url()),
        Some(exporter_listener),
    )
    .await;
    assert_eq!(exporter.admin.as_deref(), Some(exporter_admin.as_str()));
    let prom = prometheus.api();

    // Live clicks through ingest for as long as the checks run: the open minute, ingest's
    // counters (duplicates, forged and expired tokens) and the current minutes.
    let live = {
        let plan = PlanConfig {
            population: ads(),
            allowed_lateness_secs: 10.0,
            lateness_margin_secs: 3.0,
            forged_share: 0.05,
            expired_share: 0.05,
            // Invalid traffic of every kind and the floods, so the Invalid traffic rows have data.
            invalid: adclick_loadgen::invalid::InvalidConfig {
                share: 0.15,
                ..Default::default()
            },
            users: USERS,
            prices: Some(PRICES),
            ..live(83, 20.0, 600.0)
        };
        let target = Target::Http(
            HttpTarget::new(
                &ingest.base,
                TokenMinter::new(token_key()),
                Duration::from_secs(10),
                16,
            )
            .unwrap(),
        );
        tokio::spawn(async move {
            adclick_loadgen::run(Plan::new(plan).unwrap(), &target, &RunOptions::default()).await
        })
    };

    // 3. The rollup's output, stood in for.
    write_rollup_stand_in(&prometheus.remote_write_url(), &[&yesterday, &today]).await;

    // 4. Every query, until all return data (the exporter must have written the minutes, the
    // rules evaluated once, Prometheus scraped a few times).
    let (advertiser, campaign, ad) = busiest(&today);
    let chosen: BTreeMap<String, String> = [
        ("advertiser", advertiser),
        ("campaign", campaign),
        ("ad", ad),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let started = Instant::now();
    let timeout = Duration::from_secs(300);
    let (mut problems, mut report, mut ran);
    loop {
        (problems, report, ran) = check_dashboards(&prom, &chosen, now_ms()).await;
        if problems.is_empty() || started.elapsed() > timeout {
            break;
        }
        if live.is_finished() {
            break;
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    let took = started.elapsed();
    let mut rules_checked = 0;
    if problems.is_empty() {
        // Recorded values are compared once the exporter has caught up with the backfill
        // (every partition wrote a live minute): a rule evaluated earlier recorded what
        // Prometheus held then, which is by design less than the raw sum now.
        let caught_up = loop {
            let fresh = prom
                .query("max(adclick_exporter_freshness_seconds) < 90", None)
                .await
                .unwrap_or_default();
            if has_data(&fresh) {
                break now_ms();
            }
            if started.elapsed() > timeout {
                problems.push("the exporter never caught up (freshness < 90 s)".into());
                break i64::MAX;
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        };
        while problems.is_empty() {
            let (compared, missing) = check_recorded_values(&prom, caught_up, &mut problems).await;
            rules_checked = compared;
            if missing.is_empty() {
                break;
            }
            if started.elapsed() > timeout + Duration::from_secs(120) {
                problems.push(format!("no value recorded after catching up: {missing:?}"));
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    }

    // 6. The advertiser dashboard through the query gateway: what direct Prometheus answers for
    // the advertiser, and nothing of another's.
    let mut gateway_report = String::new();
    if problems.is_empty() {
        let other = other_advertiser(&today, &chosen["advertiser"]);
        gateway_report = through_gateway::compare(
            &prometheus,
            &ran,
            &chosen["advertiser"],
            &other,
            &mut problems,
        )
        .await;
    }

    // The Invalid traffic rows read real invalid traffic, not only their zero fallbacks.
    if problems.is_empty() {
        let reasons = prom
            .query(
                "(sum by (reason) (adclick_invalid_clicks) > 0)[30m:1m]",
                None,
            )
            .await
            .unwrap_or_default();
        if reasons.is_empty() {
            problems.push("adclick_invalid_clicks: no invalid traffic written".into());
        }
    }

    // The Spend and people row reads real prices and people, not zeros.
    if problems.is_empty() {
        for (series, query) in [
            (
                "adclick_spend_micros",
                "(sum(adclick_spend_micros{tier!=\"rollup\"}) > 0)[30m:1m]",
            ),
            (
                "adclick_unique_users",
                "(max(adclick_unique_users{tier!=\"rollup\"}) > 0)[30m:1m]",
            ),
        ] {
            if prom.query(query, None).await.unwrap_or_default().is_empty() {
                problems.push(format!("{series}: no priced clicks or users written"));
            }
        }
    }

    live.abort();
    exporter.stop_within(Duration::from_secs(30)).await;
    ingest.task.stop_within(Duration::from_secs(30)).await;
    let log = std::fs::read_to_string(prometheus.log_path()).unwrap_or_default();
    drop(prometheus);

    assert!(
        problems.is_empty(),
        "after {took:?}, with {chosen:?}, {} queries returned no data:\n  {}\nscratch Prometheus log tail:\n{}",
        problems.len(),
        problems.join("\n  "),
        log.lines().rev().take(20).collect::<Vec<_>>().join("\n")
    );
    eprintln!(
        "every dashboard query returned data after {took:?} with {chosen:?}:\n  {}\n\
         {rules_checked} recorded values equal the raw sums over their windows\n{gateway_report}",
        report.join("\n  ")
    );
}
