//! What the whole-system tests share: `adclick export` and `adclick ingest` started as an
//! operator starts them (processes configured through `ADCLICK_*` variables), an exporter in this
//! process, reading back what the exporter wrote, and waiting until it equals the truth.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use adclick_exporter::{Deps, ExportError, ExporterConfig, Metrics};
use adclick_testsupport::wait::Progress;
use adclick_testsupport::{PromApi, Stoppable, TestScope, free_port, logs};

/// Starts `adclick export` for this test's topic, group, prefix and label, with `extra`
/// variables on top (later ones win).
pub fn start_exporter(
    scope: &TestScope,
    topic: &str,
    admin_port: u16,
    log: &std::path::Path,
    extra: &[(&str, &str)],
) -> Child {
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
        .envs(extra.iter().copied())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("starting adclick export")
}

/// The sum of the samples of `metric` whose labels contain `labels`, on the `/metrics` page of
/// the admin listener at `admin` (0 when it does not answer).
pub async fn metric_at(admin: &str, metric: &str, labels: &str) -> f64 {
    let Ok(r) = reqwest::get(format!("http://{admin}/metrics")).await else {
        return 0.0;
    };
    let text = r.text().await.unwrap_or_default();
    text.lines()
        .filter(|l| {
            l.split(['{', ' ']).next() == Some(metric) && (labels.is_empty() || l.contains(labels))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Waits until the exporter whose admin listener is at `admin` has sealed and uploaded every
/// record it archived: its idle ticks written (4 or more), no object uploading, and no owned
/// partition with records outside a sealed object — a tick counted as written may not be read
/// back yet, its partition's object being open until it is. What the rollup reads is then all
/// there.
pub async fn wait_archive_sealed(admin: &str) {
    adclick_testsupport::wait::eventually(
        Duration::from_secs(90),
        "the archive sealed",
        || async {
            let ticks = metric_at(admin, "adclick_exporter_ticks_written_total", "").await;
            let pending = metric_at(admin, "adclick_exporter_archive_pending_objects", "").await;
            let unsealed =
                metric_at(admin, "adclick_exporter_archive_unsealed_partitions", "").await;
            if ticks >= 4.0 && pending == 0.0 && unsealed == 0.0 {
                Ok(())
            } else {
                Err(format!(
                    "{ticks} ticks written, {pending} objects uploading, {unsealed} partitions \
                 with records not yet in a sealed object"
                ))
            }
        },
    )
    .await;
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

/// Waits until the test's `adclick_clicks` per (campaign, minute end) equals `expected` and its
/// `adclick_late_clicks` add up to `late`. Fails (with the first differences) when the written
/// counts stop moving for two minutes, six such spells pass, or one of `children` exits.
pub async fn wait_exact(
    prom: &PromApi,
    id: &str,
    expected: &BTreeMap<(u64, i64), u64>,
    late: u64,
    what: &str,
    children: &mut [&mut Child],
) -> Result<(), String> {
    let mut progress = Progress::new(what, Duration::from_secs(120));
    loop {
        let written = campaign_minutes(prom, id, "adclick_clicks").await;
        let written_late: u64 = campaign_minutes(prom, id, "adclick_late_clicks")
            .await
            .values()
            .sum();
        if written == *expected && written_late == late {
            return Ok(());
        }
        for child in children.iter_mut() {
            if let Some(status) = child.try_wait().unwrap() {
                return Err(format!("a process under test exited ({status})"));
            }
        }
        let total: u64 = written.values().sum();
        if let Err(stalled) = progress.observe(&format!("{total} + {written_late} late")) {
            let differ: Vec<_> = expected
                .iter()
                .filter(|(k, v)| written.get(k) != Some(v))
                .take(5)
                .map(|(k, v)| (k, v, written.get(k)))
                .collect();
            return Err(format!(
                "{stalled}; first differences (campaign, minute end) → truth, written: {differ:?}"
            ));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// The local stack's demo key (deploy/adclick.example.toml), which the ingest process verifies.
pub const DEMO_KEY_HEX: &str = "6164636c69636b2d6c6f63616c2d64656d6f2d6b65792d6f6e652d2d2d2d2d31";

/// Starts `adclick ingest` on free ports for this test's topic, with `redis_url` and `extra`
/// variables on top (later ones win); returns the process, its public base URL and its admin
/// address.
pub fn start_ingest(
    scope: &TestScope,
    topic: &str,
    redis_url: &str,
    spill: &std::path::Path,
    log: &std::path::Path,
    extra: &[(&str, &str)],
) -> (Child, String, String) {
    let (public, admin) = (free_port(), free_port());
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_adclick"))
        .arg("ingest")
        .env("ADCLICK_KAFKA__BROKERS", scope.stack.kafka_brokers())
        .env("ADCLICK_KAFKA__CLICKS_TOPIC", topic)
        .env("ADCLICK_INGEST__LISTEN", format!("127.0.0.1:{public}"))
        .env("ADCLICK_INGEST__ADMIN_LISTEN", format!("127.0.0.1:{admin}"))
        .env("ADCLICK_INGEST__REDIS_URL", redis_url)
        .env("ADCLICK_INGEST__REDIS_KEY_PREFIX", scope.redis_prefix())
        .env("ADCLICK_INGEST__SPILL_DIR", spill)
        // loadgen sends each simulated client's address in X-Forwarded-For from this host.
        .env("ADCLICK_INGEST__TRUSTED_PROXIES", "[\"127.0.0.1/32\"]")
        .env(
            "ADCLICK_INGEST__VELOCITY_KEY_PREFIX",
            format!("{}vel:", scope.redis_prefix()),
        )
        .env(
            "ADCLICK_INVALID__DENY_LIST_FILE",
            adclick_testsupport::workspace_root().join("deploy/local/deny.cidr"),
        )
        .env("ADCLICK_TOKENS__SIGNING_KEY_ID", "k1")
        .env("ADCLICK_TOKENS__KEYS__K1", DEMO_KEY_HEX)
        .env("ADCLICK_LOG", "info")
        .envs(extra.iter().copied())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("starting adclick ingest");
    (
        child,
        format!("http://127.0.0.1:{public}"),
        format!("127.0.0.1:{admin}"),
    )
}

/// Waits until the service whose admin listener is `admin` (`host:port`) answers `/readyz`.
pub async fn wait_ready(admin: &str) {
    adclick_testsupport::wait::eventually(Duration::from_secs(60), "ready", || async {
        match reqwest::get(format!("http://{admin}/readyz")).await {
            Ok(r) if r.status().is_success() => Ok(()),
            other => Err(format!("{:?}", other.map(|r| r.status()))),
        }
    })
    .await;
}

/// An exporter of the test's own, running in this process against the stack.
pub struct InProcessExporter {
    pub metrics: Metrics,
    /// Where its admin listener serves, when it has one.
    pub admin: Option<String>,
    task: Stoppable<Result<(), ExportError>>,
}

impl InProcessExporter {
    /// Starts the exporter on `topic` with `config`; with `admin`, its admin listener (`/metrics`)
    /// serves there. Its logs go to the test's output when `RUST_LOG` asks for them (e.g.
    /// `RUST_LOG=adclick_exporter=info`).
    pub async fn start(
        scope: &TestScope,
        topic: &str,
        config: ExporterConfig,
        admin: Option<tokio::net::TcpListener>,
    ) -> InProcessExporter {
        logs();
        let metrics = Metrics::new();
        let admin_addr = admin.as_ref().map(|a| a.local_addr().unwrap().to_string());
        let deps = Deps {
            kafka: scope.stack.kafka_settings(topic),
            s3: scope.stack.s3_client().await,
            bucket: scope.stack.s3_bucket().to_string(),
            metrics: metrics.clone(),
        };
        let task = match admin {
            Some(admin) => {
                Stoppable::spawn(|stop| adclick_exporter::serve(admin, config, deps, stop))
            }
            None => Stoppable::spawn(|stop| adclick_exporter::run(config, deps, stop)),
        };
        InProcessExporter {
            metrics,
            admin: admin_addr,
            task,
        }
    }

    /// Graceful stop: finish writes, commit what was acknowledged.
    pub async fn stop(self) {
        self.task.stop().await.expect("exporter ended cleanly");
    }

    /// Asks it to stop and waits for it at most `within`, however it ends: for a test that has
    /// checked what it came for.
    pub async fn stop_within(self, within: Duration) {
        self.task.stop_within(within).await;
    }
}

/// loadgen over HTTP to ingest at `base` with `plan`, while the Redis behind `redis` is down from
/// `outage_from` to `outage_to` (ms since the epoch); the ground truth, with no send in error.
pub async fn run_with_redis_outage(
    base: &str,
    plan: adclick_loadgen::Plan,
    redis: &adclick_testsupport::FaultProxy,
    (outage_from, outage_to): (i64, i64),
) -> adclick_loadgen::GroundTruth {
    use adclick_loadgen::http::HttpTarget;
    use adclick_loadgen::tokens::TokenMinter;
    let key = adclick_click::token::TokenKey::from_hex("k1", DEMO_KEY_HEX).unwrap();
    let target = adclick_loadgen::Target::Http(
        HttpTarget::new(base, TokenMinter::new(key), Duration::from_secs(10), 64).unwrap(),
    );
    let outage = async {
        let now = adclick_loadgen::run::now_ms();
        tokio::time::sleep(Duration::from_millis((outage_from - now).max(0) as u64)).await;
        redis.go_down();
        tokio::time::sleep(Duration::from_millis((outage_to - outage_from) as u64)).await;
        redis.heal().await;
    };
    let options = adclick_loadgen::RunOptions::default();
    let (truth, ()) = tokio::join!(adclick_loadgen::run(plan, &target, &options), outage);
    let truth = truth.expect("loadgen over HTTP");
    assert_eq!(
        truth.summary.errors, 0,
        "{:?}",
        truth.summary.error_examples
    );
    truth
}

/// Runs the rollup of each of `days` over the test's archive (series labelled `test_id`, the
/// stack's Prometheus reconciled), and downloads every block it published into `into`, one
/// folder per block as Prometheus' data directory holds them. The reports, day by day.
pub async fn rollup_days(
    scope: &TestScope,
    topic: &str,
    days: &std::collections::BTreeSet<adclick_rollup::Day>,
    into: &std::path::Path,
    billing: Option<adclick_billing::BillingStore>,
) -> Vec<adclick_rollup::report::Report> {
    let stack = &scope.stack;
    let reports = tempfile::tempdir().unwrap();
    let rollup = adclick_rollup::RollupConfig {
        archive_prefix: scope.s3_prefix(),
        blocks_prefix: format!("{}blocks/", scope.s3_prefix()),
        labels: BTreeMap::from([("test_id".to_string(), scope.id.clone())]),
        prometheus_url: stack.prometheus_url().to_string(),
        metrics_remote_write_url: stack.remote_write_url().to_string(),
        report_dir: reports.path().display().to_string(),
        ..adclick_rollup::RollupConfig::default()
    };
    let deps = adclick_rollup::Deps {
        s3: stack.s3_client().await,
        bucket: stack.s3_bucket().to_string(),
        topic: topic.to_string(),
        http: reqwest::Client::new(),
        billing,
    };
    let mut out = Vec::new();
    for day in days {
        let options = adclick_rollup::RunOptions::for_day(*day);
        let report = adclick_rollup::run(&rollup, &deps, &options).await.unwrap();
        println!("{}", report.summary());
        let block = report.block.as_ref().expect("a block published");
        let prefix = format!("{}{}/", rollup.blocks_prefix, block.ulid);
        for (key, _) in adclick_objstore::list(&deps.s3, &deps.bucket, &prefix)
            .await
            .unwrap()
        {
            let path = into.join(&block.ulid).join(&key[prefix.len()..]);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            let body = adclick_objstore::get(&deps.s3, &deps.bucket, &key)
                .await
                .unwrap()
                .unwrap();
            std::fs::write(path, body).unwrap();
        }
        out.push(report);
    }
    out
}

/// `adclick ingest`, whose Redis is behind a fault proxy the test can take down, and `adclick
/// export`, as processes for the test's topic, both ready; they log to `log`.
pub struct BehindFaultyRedis {
    pub redis: adclick_testsupport::FaultProxy,
    pub ingest: Child,
    /// Ingest's public base URL and admin address.
    pub base: String,
    pub ingest_admin: String,
    pub exporter: Child,
    pub exporter_admin_port: u16,
    pub log: std::path::PathBuf,
    pub spill: tempfile::TempDir,
}

impl BehindFaultyRedis {
    /// Starts both; `exporter_extra` variables go to the exporter on top of the usual ones.
    pub async fn start(
        scope: &TestScope,
        topic: &str,
        exporter_extra: &[(&str, &str)],
    ) -> BehindFaultyRedis {
        let redis_host = scope.stack.redis_url().trim_start_matches("redis://");
        let redis = adclick_testsupport::FaultProxy::start(redis_host).await;
        let redis_url = format!("redis://{}", redis.addr());
        let spill = tempfile::tempdir().unwrap();
        let log = std::env::temp_dir().join(format!("adclick-{}.log", scope.id));
        let (ingest, base, ingest_admin) =
            start_ingest(scope, topic, &redis_url, spill.path(), &log, &[]);
        wait_ready(&ingest_admin).await;
        let exporter_admin_port = free_port();
        let exporter = start_exporter(scope, topic, exporter_admin_port, &log, exporter_extra);
        BehindFaultyRedis {
            redis,
            ingest,
            base,
            ingest_admin,
            exporter,
            exporter_admin_port,
            log,
            spill,
        }
    }
}
