//! Shared by the exporter's integration tests: an exporter of the test's own on the stack, a
//! backfilled topic with its ground truth, and reading back what the exporter wrote.

use std::collections::{BTreeMap, HashMap};

use adclick_click::minute::MINUTE_MS;
use adclick_exporter::{Deps, ExporterConfig, KafkaSettings, Metrics};
use adclick_loadgen::kafka::KafkaTarget;
use adclick_loadgen::plan::Lateness;
use adclick_loadgen::population::PopulationConfig;
use adclick_loadgen::shape::TrafficShape;
use adclick_loadgen::{GroundTruth, Plan, PlanConfig, RunOptions, SendKind, Target, TruthKey};
use adclick_testsupport::{PromApi, Series, TestScope};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// An exporter running in this process against the stack.
pub struct RunningExporter {
    pub metrics: Metrics,
    pub remote_write: adclick_remote_write::Metrics,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), adclick_exporter::ExportError>>,
}

/// The exporter's logs on the test's output when `RUST_LOG` asks for them
/// (e.g. `RUST_LOG=adclick_exporter=info`).
pub fn logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// The configuration tests run with: the test's own group, archive prefix and `test_id` label,
/// quick ticks and commits.
pub fn test_config(scope: &TestScope) -> ExporterConfig {
    let mut c = ExporterConfig {
        group_id: format!("exporter-{}", scope.id),
        idle_tick_ms: 1_000,
        commit_interval_ms: 500,
        dead_letter_topic: format!("dlq-{}", scope.id),
        ..ExporterConfig::default()
    };
    c.remote_write.url = scope.stack.var("PROMETHEUS_REMOTE_WRITE_URL").to_string();
    c.archive.prefix = scope.s3_prefix();
    c.archive.max_records = 5_000;
    c.labels.insert("test_id".into(), scope.id.clone());
    c
}

impl RunningExporter {
    pub async fn start(scope: &TestScope, topic: &str, config: ExporterConfig) -> RunningExporter {
        logs();
        let metrics = Metrics::new();
        let deps = Deps {
            kafka: KafkaSettings {
                brokers: scope.stack.kafka_brokers().to_string(),
                topic: topic.to_string(),
                properties: vec![],
            },
            s3: scope.stack.s3_client().await,
            bucket: scope.stack.var("S3_BUCKET").to_string(),
            metrics: metrics.clone(),
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(adclick_exporter::run(config, deps, async move {
            let _ = stopped.await;
        }));
        RunningExporter {
            remote_write: metrics.remote_write.clone(),
            metrics,
            stop: Some(stop),
            task,
        }
    }

    /// Graceful stop: finish writes, commit what was acknowledged.
    pub async fn stop(mut self) {
        let _ = self.stop.take().expect("once").send(());
        self.task
            .await
            .expect("exporter task")
            .expect("exporter ended cleanly");
    }

    /// A crash: the loop stops where it is, nothing more is written or committed by it.
    pub async fn crash(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// A backfilled run: `minutes` of event time ending 3 minutes ago, written straight into Kafka.
pub struct Backfill {
    pub truth: GroundTruth,
    /// Clicks that arrive after their minute is final, per (ad, minute).
    pub too_late: BTreeMap<TruthKey, u64>,
    /// Every impression written.
    pub impressions: Vec<[u8; 16]>,
}

pub fn plan_config(seed: u64, minutes: i64, rate: f64) -> PlanConfig {
    let now = adclick_loadgen::run::now_ms();
    PlanConfig {
        seed,
        start_ms: now - (minutes + 3) * MINUTE_MS,
        duration_secs: (minutes * 60) as f64,
        shape: TrafficShape::Steady { rate },
        population: PopulationConfig {
            advertisers: 10,
            campaigns_per_advertiser: 5,
            ads_per_campaign: 20,
            zipf_exponent: 1.0,
            hot_ads: 2,
            hot_share: 0.1,
        },
        // The Kafka target stands for ingest's output, repeats already dropped.
        duplicate_share: 0.0,
        allowed_lateness_secs: 10.0,
        lateness_margin_secs: 3.0,
        late_share: 0.05,
        too_late_share: 0.005,
        too_late_extra_max_secs: 60.0,
        forged_share: 0.0,
        expired_share: 0.0,
        ..PlanConfig::default()
    }
}

pub async fn backfill(scope: &TestScope, topic: &str, config: PlanConfig) -> Backfill {
    let plan = Plan::new(config.clone()).expect("plan");
    let hot_salts: HashMap<u64, u32> = plan
        .population()
        .hot_ads()
        .iter()
        .map(|ad| (ad.ad_id, 4))
        .collect();
    let mut too_late = BTreeMap::new();
    let mut impressions = vec![];
    for send in Plan::new(config).expect("plan") {
        if send.kind == SendKind::Click {
            impressions.push(send.impression_id);
            if send.lateness == Lateness::TooLate {
                *too_late
                    .entry(TruthKey::of(send.ad, send.event_time_ms))
                    .or_insert(0) += 1;
            }
        }
    }
    let target = Target::Kafka(
        KafkaTarget::new(scope.stack.kafka_brokers(), topic, &[], hot_salts).expect("producer"),
    );
    let truth = adclick_loadgen::run(plan, &target, &RunOptions::default())
        .await
        .expect("loadgen run");
    Backfill {
        truth,
        too_late,
        impressions,
    }
}

/// Every raw sample of `selector` in the last `range`, by series.
pub async fn raw_samples(prom: &PromApi, selector: &str, range: &str) -> Vec<Series> {
    prom.query(&format!("{selector}[{range}]"), None)
        .await
        .unwrap_or_else(|e| panic!("querying {selector}: {e}"))
}

/// Sum of every sample of `selector` in the last hour (0 when there is none).
pub async fn total(prom: &PromApi, selector: &str) -> f64 {
    let r = prom
        .query(&format!("sum(sum_over_time({selector}[1h]))"), None)
        .await
        .unwrap_or_else(|e| panic!("querying {selector}: {e}"));
    r.first()
        .and_then(|s| s.samples.last())
        .map_or(0.0, |s| s.1)
}
