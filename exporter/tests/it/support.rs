//! Shared by the exporter's integration tests: an exporter of the test's own on the stack, the
//! plan of the topic they backfill (`adclick_testsupport::traffic::backfill` writes it), and
//! reading back what the exporter wrote.

use adclick_click::minute::MINUTE_MS;
use adclick_click::now_ms;
use adclick_exporter::{Deps, ExporterConfig, KafkaSettings, Metrics};
use adclick_loadgen::PlanConfig;
use adclick_testsupport::traffic::{kafka_backfill, population};
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

/// A backfill of `minutes` of event time ending 3 minutes ago: 1000 ads, 2 of them hot.
pub fn plan_config(seed: u64, minutes: i64, rate: f64) -> PlanConfig {
    let start_ms = now_ms() - (minutes + 3) * MINUTE_MS;
    PlanConfig {
        population: population(10, 5, 20, 2),
        ..kafka_backfill(seed, start_ms, minutes, rate)
    }
}

/// Every raw sample of `selector` in the last `range`, by series.
pub async fn raw_samples(prom: &PromApi, selector: &str, range: &str) -> Vec<Series> {
    prom.query(&format!("{selector}[{range}]"), None)
        .await
        .unwrap_or_else(|e| panic!("querying {selector}: {e}"))
}
