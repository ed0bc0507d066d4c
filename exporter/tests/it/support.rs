//! Shared by the exporter's integration tests: an exporter of the test's own on the stack, the
//! plan of the topic they backfill (`adclick_testsupport::traffic::backfill` writes it), and
//! reading back what the exporter wrote.

use adclick_click::minute::MINUTE_MS;
use adclick_click::now_ms;
use adclick_exporter::{Deps, ExportError, ExporterConfig, Metrics};
use adclick_loadgen::PlanConfig;
use adclick_testsupport::traffic::{kafka_backfill, population};
use adclick_testsupport::{PromApi, Series, Stoppable, TestScope, logs};

/// An exporter running in this process against the stack.
pub struct RunningExporter {
    pub metrics: Metrics,
    pub remote_write: adclick_remote_write::Metrics,
    task: Stoppable<Result<(), ExportError>>,
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
            kafka: scope.stack.kafka_settings(topic),
            s3: scope.stack.s3_client().await,
            bucket: scope.stack.s3_bucket().to_string(),
            metrics: metrics.clone(),
        };
        RunningExporter {
            remote_write: metrics.remote_write.clone(),
            metrics,
            task: Stoppable::spawn(|stop| adclick_exporter::run(config, deps, stop)),
        }
    }

    /// Graceful stop: finish writes, commit what was acknowledged.
    pub async fn stop(self) {
        self.task.stop().await.expect("exporter ended cleanly");
    }

    /// A crash: the loop stops where it is, nothing more is written or committed by it.
    pub async fn crash(self) {
        self.task.crash().await;
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
