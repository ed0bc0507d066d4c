//! One rollup of one day, from listing the archive to the exit code: the steps in order — list
//! the archive, read and settle it, write the block, publish it, reconcile it with the stream,
//! report — and [`crate::outcome`] decides how the run ended from what they found.

use std::collections::BTreeMap;
use std::path::PathBuf;

use adclick_click::{Day, now_ms};
use adclick_invalid::{DenyList, Rules, RulesError};
use adclick_objstore::StoreError;
use adclick_tsdb::{BlockError, Ulid, WrittenBlock};
use aws_sdk_s3::Client;
use indicatif::{ProgressBar, ProgressStyle};
use tempfile::TempDir;

use crate::billing::{self, BillingReport};
use crate::block;
use crate::config::{InvalidConfig, RollupConfig};
use crate::outcome::{self, Findings, Outcome, Stream};
use crate::publish::{BlockBucket, ExistingBlock, PublishError};
use crate::reconcile::{self, ReconcileError, Reconciliation};
use crate::report::{BlockReport, DailyReport, Report, ScanReport};
use crate::scan::{self, ArchiveLocation, ScanPlan};
use crate::settle::{SettledDay, Settlement};
use crate::verdicts;

/// What a run was asked to do.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub day: Day,
    /// Read, settle, write the block to a temporary directory and reconcile; publish nothing,
    /// mark nothing, write no metrics.
    pub dry_run: bool,
    /// Write the block here instead of uploading it.
    pub out_dir: Option<PathBuf>,
    /// Publish even with corrupt objects (exit 7), see the module docs.
    pub skip_corrupt: bool,
    /// Show a progress bar (a terminal is watching).
    pub progress: bool,
    /// The block's ULID (tests); new when `None`.
    pub ulid: Option<Ulid>,
    /// The shared `[invalid]` table: the rules the day's activity verdicts are settled by.
    /// Its `deny_list_file` is never read: request reasons are kept from the records (the
    /// archive has no client IP to look up), and the file may exist on ingest hosts only.
    pub invalid: adclick_invalid::Config,
}

impl RunOptions {
    /// Whether the block goes to the bucket (not only to a temporary or `--out-dir` directory).
    fn uploads(&self) -> bool {
        !self.dry_run && self.out_dir.is_none()
    }

    pub fn for_day(day: Day) -> RunOptions {
        RunOptions {
            day,
            dry_run: false,
            out_dir: None,
            skip_corrupt: false,
            progress: false,
            ulid: None,
            invalid: adclick_invalid::Config::default(),
        }
    }
}

/// What a run talks to.
#[derive(Debug, Clone)]
pub struct Deps {
    pub s3: Client,
    pub bucket: String,
    /// The clicks topic (archive objects are named by it).
    pub topic: String,
    pub http: reqwest::Client,
    /// The billing store the settled day's rows go to, with the block (never for a dry run or
    /// an `--out-dir` run); `None`: the block alone.
    pub billing: Option<adclick_billing::BillingStore>,
}

/// Why a run stopped without a report (exit 1).
#[derive(Debug, thiserror::Error)]
pub enum RollupError {
    #[error(transparent)]
    Config(#[from] InvalidConfig),
    #[error("[invalid]: {0}")]
    Rules(#[from] RulesError),
    #[error("reading the archive")]
    Archive(#[from] StoreError),
    #[error("writing the block")]
    Block(#[from] BlockError),
    #[error("publishing the block")]
    Publish(#[from] PublishError),
    /// Nothing was published: the store keeps the day's previous rows, the bucket its block.
    #[error("writing the day's billing rows (nothing was published)")]
    Billing(#[source] adclick_billing::BillingError),
    /// The block is published but its rows are not committed: the store still holds the day's
    /// previous rows (or none: the day reads as missing on every statement). Rerun the day.
    #[error(
        "block {ulid} of {day} is published but its billing rows were not committed: rerun the \
         rollup of {day} (it replaces both)"
    )]
    BillingCommit {
        ulid: String,
        day: Day,
        #[source]
        source: adclick_billing::BillingError,
    },
    #[error("{what}")]
    Local {
        /// The local file or directory.
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("writing the rollup's metrics to {url}")]
    Metrics {
        url: String,
        #[source]
        source: MetricsError,
    },
}

/// Why the rollup's own metrics did not reach Prometheus.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error(transparent)]
    Config(#[from] adclick_remote_write::ConfigError),
    #[error(transparent)]
    Send(#[from] adclick_remote_write::SendError),
}

/// Runs the rollup of `options.day`; writes the JSON report to `[rollup] report_dir` and returns
/// it (its `exit_code` is the process's).
pub async fn run(
    config: &RollupConfig,
    deps: &Deps,
    options: &RunOptions,
) -> Result<Report, RollupError> {
    config.validate()?;
    let rules = rules(&options.invalid)?;
    let started_at_ms = now_ms();
    let rollup = Rollup {
        config,
        deps,
        options,
        rules: &rules,
        day: options.day,
    };
    let plan = rollup.list().await?;
    let (scan, settled) = rollup.read_and_settle(plan).await?;
    let mut found = Findings {
        corrupt_objects: scan.corrupt_objects.len(),
        skip_corrupt: options.skip_corrupt,
        clicks: settled.stats.clicks + settled.stats.invalid_clicks,
        stream: None,
    };
    let mut report = Report {
        day: rollup.day.to_string(),
        day_start_ms: rollup.day.start_ms(),
        outcome: "",
        exit_code: 0,
        started_at_ms,
        finished_at_ms: 0,
        dry_run: options.dry_run,
        scan,
        settle: settled.stats.clone(),
        daily: DailyReport::of(&settled.daily, config.report_max_rows),
        verdict_changes: verdicts::report(&settled.verdict_changes, config.report_max_rows),
        block: None,
        reconciliation: None,
        reconcile_error: None,
    };
    // What the archive holds decides whether the block is written; what the stream says can
    // only change what the outcome says about it.
    if outcome::decide(&found).publishes() {
        report.block = Some(rollup.write_and_publish(&settled).await?);
        match rollup.reconcile(&settled).await {
            Ok(None) => {}
            Ok(Some(reconciliation)) => {
                found.stream = Some(if reconciliation.is_clean() {
                    Stream::Agrees
                } else {
                    Stream::Disagrees
                });
                report.reconciliation = Some(reconciliation);
            }
            Err(e) => {
                tracing::error!(error = %e, "reconciliation failed");
                found.stream = Some(Stream::Unreadable);
                report.reconcile_error = Some(e.to_string());
            }
        }
    }
    let outcome = outcome::decide(&found);
    report.outcome = outcome.as_str();
    report.exit_code = outcome.exit_code();
    report.finished_at_ms = now_ms();

    rollup.write_report(&report)?;
    if !options.dry_run && !config.metrics_remote_write_url.is_empty() {
        push_metrics(config, &report, outcome).await?;
    }
    Ok(report)
}

/// The `[invalid]` rules a run settles by, compiled. `deny_list_file` is not read: request
/// reasons are kept from the records, and the file may exist on ingest hosts only.
pub fn rules(invalid: &adclick_invalid::Config) -> Result<Rules, RollupError> {
    Ok(Rules::new(invalid, DenyList::empty())?)
}

/// One run's inputs, shared by its steps.
struct Rollup<'a> {
    config: &'a RollupConfig,
    deps: &'a Deps,
    options: &'a RunOptions,
    /// `options.invalid` compiled.
    rules: &'a Rules,
    day: Day,
}

/// A block on local disk, and the temporary directory that holds it unless `--out-dir` does.
struct LocalBlock {
    block: WrittenBlock,
    // Removed on drop: kept until the block is uploaded.
    _scratch: Option<TempDir>,
}

impl Rollup<'_> {
    /// Lists the archive objects that can hold clicks of the day.
    async fn list(&self) -> Result<ScanPlan, RollupError> {
        let config = self.config;
        let location = ArchiveLocation {
            bucket: &self.deps.bucket,
            prefix: &config.archive_prefix,
            topic: &self.deps.topic,
        };
        let hours = scan::hours_to_read(
            self.day,
            config.dedup_lookback_ms,
            config.read_before_ms,
            config.read_after_ms,
        );
        let plan = scan::plan(&self.deps.s3, &location, hours).await?;
        tracing::info!(day = %self.day, objects = plan.objects.len(), bytes = plan.bytes, "archive listed");
        Ok(plan)
    }

    /// Reads the planned objects and settles their clicks as each arrives, so that no object's
    /// clicks are held longer than it takes to count them.
    async fn read_and_settle(
        &self,
        plan: ScanPlan,
    ) -> Result<(ScanReport, SettledDay), RollupError> {
        let bar = progress_bar(self.options.progress, &plan);
        let mut scan_report = ScanReport {
            hours_first_ms: plan.hours_ms.0,
            hours_end_ms: plan.hours_ms.1,
            objects: plan.objects.len() as u64,
            bytes: plan.bytes,
            foreign_objects: plan.foreign.clone(),
            ..ScanReport::default()
        };
        let mut settlement = Settlement::new(self.day, self.config.dedup_lookback_ms);
        scan::read_all(
            &self.deps.s3,
            &self.deps.bucket,
            plan.objects,
            self.config.fetch_concurrency,
            |read| {
                bar.inc(read.object.size);
                scan_report.overlapping_records += read.overlapping;
                if let Some(corrupt) = read.corrupt {
                    tracing::error!(object = %corrupt.key, reason = %corrupt.reason, "corrupt archive object");
                    scan_report.corrupt_objects.push(corrupt);
                }
                for click in &read.clicks {
                    settlement.add(click);
                }
            },
        )
        .await?;
        bar.finish_and_clear();
        // Objects arrive in no particular order; the report should not depend on it.
        scan_report
            .corrupt_objects
            .sort_by(|a, b| a.key.cmp(&b.key));
        Ok((scan_report, settlement.finish(self.rules)))
    }

    /// Writes the day's block and, unless the run keeps it local, publishes it in place of the
    /// blocks earlier runs published for the day.
    async fn write_and_publish(&self, settled: &SettledDay) -> Result<BlockReport, RollupError> {
        let bucket = BlockBucket {
            s3: &self.deps.s3,
            bucket: &self.deps.bucket,
            prefix: &self.config.blocks_prefix,
        };
        let uploads = self.options.uploads();
        // Found before writing: the new block names their sources as its own.
        let replaced = if uploads {
            bucket
                .overlapping(
                    &self.config.external_labels,
                    self.day.start_ms(),
                    self.day.end_ms(),
                )
                .await?
        } else {
            vec![]
        };
        // Not `unwrap_or_default`: the default ULID is the nil one.
        let ulid = match self.options.ulid {
            Some(ulid) => ulid,
            None => Ulid::new(),
        };
        let local = self.write_block(settled, ulid, &replaced)?;
        let meta = &local.block.meta;
        // The day's rows first, uncommitted: a database that refuses them stops the run before
        // anything is published (adclick-billing's crate docs: the order and what each failure
        // leaves). Dropping `pending` on an error below rolls them back.
        let pending = match (&self.deps.billing, uploads) {
            (Some(store), true) => {
                let rows = billing::rows(self.day, &ulid.to_string(), now_ms(), &settled.daily);
                let pending = store.write_day(&rows).await.map_err(RollupError::Billing)?;
                Some((pending, BillingReport::of(store.url().to_string(), &rows)))
            }
            _ => None,
        };
        let mut billed = None;
        let location = if uploads {
            self.publish(&bucket, &local.block, &replaced, ulid).await?;
            if let Some((pending, report)) = pending {
                pending
                    .commit()
                    .await
                    .map_err(|source| RollupError::BillingCommit {
                        ulid: ulid.to_string(),
                        day: self.day,
                        source,
                    })?;
                tracing::info!(day = %self.day, ads = report.ads, database = %report.database, "billing rows committed");
                billed = Some(report);
            }
            Some(format!(
                "s3://{}/{}{}/",
                self.deps.bucket, self.config.blocks_prefix, ulid
            ))
        } else {
            self.options
                .out_dir
                .as_ref()
                .map(|_| local.block.dir.display().to_string())
        };
        Ok(BlockReport {
            ulid: ulid.to_string(),
            min_time_ms: meta.min_time_ms,
            max_time_ms: meta.max_time_ms,
            series: meta.stats.num_series,
            samples: meta.stats.num_samples,
            chunks: meta.stats.num_chunks,
            bytes: meta.thanos.files.iter().filter_map(|f| f.size_bytes).sum(),
            location,
            replaced,
            billing: billed,
        })
    }

    /// Writes the block under `--out-dir`, or under a temporary directory.
    fn write_block(
        &self,
        settled: &SettledDay,
        ulid: Ulid,
        replaced: &[ExistingBlock],
    ) -> Result<LocalBlock, RollupError> {
        let (parent, scratch) = match &self.options.out_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(|source| RollupError::Local {
                    what: dir.display().to_string(),
                    source,
                })?;
                (dir.clone(), None)
            }
            None => {
                let scratch = tempfile::Builder::new()
                    .prefix("adclick-rollup-")
                    .tempdir()
                    .map_err(|source| RollupError::Local {
                        what: "temporary directory".into(),
                        source,
                    })?;
                (scratch.path().to_path_buf(), Some(scratch))
            }
        };
        let sources: Vec<Ulid> = replaced
            .iter()
            .flat_map(|b| b.sources.iter().copied())
            .collect();
        let config = self.config;
        // Seconds of CPU and file work: the runtime moves this worker's other tasks meanwhile.
        let block = tokio::task::block_in_place(|| {
            block::write(
                &parent,
                self.day,
                settled,
                &config.labels,
                &config.external_labels,
                ulid,
                &sources,
            )
        })?;
        Ok(LocalBlock {
            block,
            _scratch: scratch,
        })
    }

    /// Uploads the block, then marks the blocks it replaces for deletion: only once it is
    /// complete, so that the day is never without a block.
    async fn publish(
        &self,
        bucket: &BlockBucket<'_>,
        block: &WrittenBlock,
        replaced: &[ExistingBlock],
        ulid: Ulid,
    ) -> Result<(), RollupError> {
        bucket.upload(&block.dir, &block.meta).await?;
        for old in replaced {
            bucket
                .mark_for_deletion(&old.ulid, &ulid, now_ms() / 1000)
                .await?;
        }
        Ok(())
    }

    /// Compares the settled day with what the stream path wrote; `None` when reconciliation is
    /// off (no `prometheus_url`).
    async fn reconcile(
        &self,
        settled: &SettledDay,
    ) -> Result<Option<Reconciliation>, ReconcileError> {
        let config = self.config;
        if config.prometheus_url.is_empty() {
            return Ok(None);
        }
        let queries = reconcile::DayQueries::new(self.day, &config.labels, now_ms());
        let stream =
            reconcile::stream_day(&self.deps.http, &config.prometheus_url, &queries).await?;
        Ok(Some(reconcile::compare(
            settled,
            &stream,
            config.report_max_rows,
        )))
    }

    /// Writes the JSON report to `[rollup] report_dir`.
    fn write_report(&self, report: &Report) -> Result<(), RollupError> {
        let dir = PathBuf::from(&self.config.report_dir);
        std::fs::create_dir_all(&dir).map_err(|source| RollupError::Local {
            what: dir.display().to_string(),
            source,
        })?;
        let path = dir.join(format!("rollup-{}.json", self.day));
        let json = serde_json::to_vec_pretty(report).expect("serialisable");
        std::fs::write(&path, json).map_err(|source| RollupError::Local {
            what: path.display().to_string(),
            source,
        })
    }
}

/// A bar of the bytes read, or a hidden one when no terminal watches.
fn progress_bar(show: bool, plan: &ScanPlan) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(plan.bytes);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:40}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta}",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    bar.set_message(format!("reading {} objects", plan.objects.len()));
    bar
}

async fn push_metrics(
    config: &RollupConfig,
    report: &Report,
    outcome: Outcome,
) -> Result<(), RollupError> {
    let url = config.metrics_remote_write_url.clone();
    let failed = |source: MetricsError| RollupError::Metrics {
        url: url.clone(),
        source,
    };
    let sender = adclick_remote_write::Sender::new(
        &adclick_remote_write::Config {
            tls: config.prometheus_tls.clone(),
            ..adclick_remote_write::Config::for_url(&url)
        },
        adclick_remote_write::Metrics::new(),
    )
    .map_err(|e| failed(e.into()))?;
    let success = outcome.publishes();
    let mut labels: BTreeMap<String, String> = config.labels.clone();
    labels.insert("job".into(), "adclick-rollup".into());
    let labels: Vec<(String, String)> = labels.into_iter().collect();
    let request = report.metrics(now_ms(), &labels, success);
    sender.send(&request).await.map_err(|e| failed(e.into()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_ignore_ingests_deny_list_and_bad_rules_say_where() {
        let ingest_only = adclick_invalid::Config {
            deny_list_file: Some("/etc/adclick/not-on-this-host.cidr".into()),
            ..adclick_invalid::Config::default()
        };
        let compiled = rules(&ingest_only).unwrap();
        assert!(compiled.deny_list().is_empty());
        let bad = adclick_invalid::Config {
            bot_user_agent_patterns: vec!["(".into()],
            ..adclick_invalid::Config::default()
        };
        let error = rules(&bad).unwrap_err().to_string();
        assert!(
            error.starts_with("[invalid]: bot_user_agent_patterns: `(` is not a valid"),
            "{error}"
        );
    }
}
