//! One rollup of one day, from listing the archive to the exit code.
//!
//! | exit | outcome | published? |
//! |---|---|---|
//! | 0 | `clean`: the block is complete and the stream agrees (or reconciliation is off) | yes |
//! | 1 | an error stopped the run (message on stderr); any partial upload was removed | no |
//! | 3 | `corrupt`: archive objects could not be read; they are listed, nothing is written | no |
//! | 4 | `mismatch`: the block is complete; the stream path disagrees (see the report) | yes |
//! | 5 | `empty`: no clicks for the day in the archive | no |
//! | 6 | `unreconciled`: the block is complete; Prometheus could not be read to compare | yes |
//! | 7 | `corrupt-skipped`: `--skip-corrupt` — complete except the corrupt objects' clicks | yes |
//!
//! Why a corrupt object stops the day: the block is the billing truth, and a block without an
//! object's clicks is silently wrong for every ad in it. The exporter's objects are immutable
//! and replays rewrite them byte for byte, so the usual fix is to restore the object (from a
//! bucket version or replica, or by replaying the partition from Kafka if it is still retained)
//! and rerun. When an object is lost for good, `--skip-corrupt` publishes what is left and the
//! report names what is missing.

use std::collections::BTreeMap;
use std::path::PathBuf;

use adclick_click::now_ms;
use adclick_objstore::StoreError;
use adclick_tsdb::{BlockError, Ulid};
use aws_sdk_s3::Client;
use indicatif::{ProgressBar, ProgressStyle};

use crate::block;
use crate::config::{InvalidConfig, RollupConfig};
use crate::day::Day;
use crate::publish::{BlockBucket, PublishError};
use crate::reconcile;
use crate::report::{BlockReport, Report, ScanReport};
use crate::scan::{self, ArchiveLocation};
use crate::settle::Settlement;

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
}

impl RunOptions {
    pub fn for_day(day: Day) -> RunOptions {
        RunOptions {
            day,
            dry_run: false,
            out_dir: None,
            skip_corrupt: false,
            progress: false,
            ulid: None,
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
}

/// How a run ended, when it ended with a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Clean,
    Corrupt,
    Mismatch,
    Empty,
    Unreconciled,
    CorruptSkipped,
}

impl Outcome {
    pub fn exit_code(self) -> i32 {
        match self {
            Outcome::Clean => 0,
            Outcome::Corrupt => 3,
            Outcome::Mismatch => 4,
            Outcome::Empty => 5,
            Outcome::Unreconciled => 6,
            Outcome::CorruptSkipped => 7,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Clean => "clean",
            Outcome::Corrupt => "corrupt",
            Outcome::Mismatch => "mismatch",
            Outcome::Empty => "empty",
            Outcome::Unreconciled => "unreconciled",
            Outcome::CorruptSkipped => "corrupt-skipped",
        }
    }
}

/// Why a run stopped without a report (exit 1).
#[derive(Debug, thiserror::Error)]
pub enum RollupError {
    #[error(transparent)]
    Config(#[from] InvalidConfig),
    #[error("reading the archive: {0}")]
    Archive(#[from] StoreError),
    #[error("writing the block: {0}")]
    Block(#[from] BlockError),
    #[error("publishing the block: {0}")]
    Publish(#[from] PublishError),
    #[error("{0}: {1}")]
    Local(String, std::io::Error),
    #[error("writing the rollup's metrics to {url}: {message}")]
    Metrics { url: String, message: String },
}

/// Runs the rollup of `options.day`; writes the JSON report to `[rollup] report_dir` and returns
/// it (its `exit_code` is the process's).
pub async fn run(
    config: &RollupConfig,
    deps: &Deps,
    options: &RunOptions,
) -> Result<Report, RollupError> {
    config.validate()?;
    let day = options.day;
    let started_at_ms = now_ms();
    let location = ArchiveLocation {
        bucket: &deps.bucket,
        prefix: &config.archive_prefix,
        topic: &deps.topic,
    };
    let hours = scan::hours_to_read(
        day,
        config.dedup_lookback_ms,
        config.read_before_ms,
        config.read_after_ms,
    );
    let plan = scan::plan(&deps.s3, &location, hours).await?;
    tracing::info!(%day, objects = plan.objects.len(), bytes = plan.bytes, "archive listed");

    let bar = if options.progress {
        let bar = ProgressBar::new(plan.bytes);
        bar.set_style(
            ProgressStyle::with_template("{msg} [{bar:40}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta}")
                .expect("a valid template")
                .progress_chars("=> "),
        );
        bar.set_message(format!("reading {} objects", plan.objects.len()));
        bar
    } else {
        ProgressBar::hidden()
    };
    let mut scan_report = ScanReport {
        hours_first_ms: plan.hours_ms.0,
        hours_end_ms: plan.hours_ms.1,
        objects: plan.objects.len() as u64,
        bytes: plan.bytes,
        foreign_objects: plan.foreign.clone(),
        ..ScanReport::default()
    };
    let mut settlement = Settlement::new(day, config.dedup_lookback_ms);
    scan::read_all(&deps.s3, &deps.bucket, plan.objects, config.fetch_concurrency, |read| {
        bar.inc(read.object.size);
        scan_report.overlapping_records += read.overlapping;
        if let Some(corrupt) = read.corrupt {
            tracing::error!(object = %corrupt.key, reason = %corrupt.reason, "corrupt archive object");
            scan_report.corrupt_objects.push(corrupt);
        }
        for click in &read.clicks {
            settlement.add(click);
        }
    })
    .await?;
    bar.finish_and_clear();
    scan_report
        .corrupt_objects
        .sort_by(|a, b| a.key.cmp(&b.key));
    let settled = settlement.finish();

    let mut report = Report {
        day: day.to_string(),
        day_start_ms: day.start_ms(),
        outcome: "",
        exit_code: 0,
        started_at_ms,
        finished_at_ms: 0,
        dry_run: options.dry_run,
        scan: scan_report,
        settle: settled.stats,
        block: None,
        reconciliation: None,
        reconcile_error: None,
    };
    let corrupt = !report.scan.corrupt_objects.is_empty();
    let outcome = if corrupt && !options.skip_corrupt {
        Outcome::Corrupt
    } else if settled.stats.clicks == 0 {
        Outcome::Empty
    } else {
        let bucket = BlockBucket {
            s3: &deps.s3,
            bucket: &deps.bucket,
            prefix: &config.blocks_prefix,
        };
        let publish = !options.dry_run && options.out_dir.is_none();
        let replaced = if publish {
            bucket
                .overlapping(&config.external_labels, day.start_ms(), day.end_ms())
                .await?
        } else {
            vec![]
        };
        let replaced_sources: Vec<Ulid> = replaced
            .iter()
            .flat_map(|b| b.sources.iter().copied())
            .collect();
        let scratch;
        let parent = match &options.out_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)
                    .map_err(|e| RollupError::Local(dir.display().to_string(), e))?;
                dir.clone()
            }
            None => {
                scratch = tempfile::Builder::new()
                    .prefix("adclick-rollup-")
                    .tempdir()
                    .map_err(|e| RollupError::Local("temporary directory".into(), e))?;
                scratch.path().to_path_buf()
            }
        };
        // Not `unwrap_or_default`: the default ULID is the nil one.
        let ulid = match options.ulid {
            Some(ulid) => ulid,
            None => Ulid::new(),
        };
        let written = {
            let extra = config.labels.clone();
            let external = config.external_labels.clone();
            let settled = &settled;
            tokio::task::block_in_place(|| {
                block::write(
                    &parent,
                    day,
                    settled,
                    &extra,
                    &external,
                    ulid,
                    &replaced_sources,
                )
            })?
        };
        let meta = &written.meta;
        let bytes: u64 = meta.thanos.files.iter().filter_map(|f| f.size_bytes).sum();
        let mut location = options
            .out_dir
            .as_ref()
            .map(|_| written.dir.display().to_string());
        if publish {
            bucket.upload(&written.dir, meta).await?;
            for old in &replaced {
                bucket
                    .mark_for_deletion(&old.ulid, &ulid, now_ms() / 1000)
                    .await?;
            }
            location = Some(format!(
                "s3://{}/{}{}/",
                deps.bucket, config.blocks_prefix, ulid
            ));
        }
        report.block = Some(BlockReport {
            ulid: ulid.to_string(),
            min_time_ms: meta.min_time_ms,
            max_time_ms: meta.max_time_ms,
            series: meta.stats.num_series,
            samples: meta.stats.num_samples,
            chunks: meta.stats.num_chunks,
            bytes,
            location,
            replaced,
        });
        if config.prometheus_url.is_empty() {
            Outcome::Clean
        } else {
            match reconcile::stream_day(&deps.http, &config.prometheus_url, day, &config.labels)
                .await
            {
                Ok(stream) => {
                    let r = reconcile::compare(&settled, &stream, config.report_max_rows);
                    let clean = r.is_clean();
                    report.reconciliation = Some(r);
                    match (corrupt, clean) {
                        (true, _) => Outcome::CorruptSkipped,
                        (false, true) => Outcome::Clean,
                        (false, false) => Outcome::Mismatch,
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "reconciliation failed");
                    report.reconcile_error = Some(e.to_string());
                    if corrupt {
                        Outcome::CorruptSkipped
                    } else {
                        Outcome::Unreconciled
                    }
                }
            }
        }
    };
    let outcome = if corrupt && options.skip_corrupt && outcome == Outcome::Clean {
        Outcome::CorruptSkipped
    } else {
        outcome
    };
    report.outcome = outcome.as_str();
    report.exit_code = outcome.exit_code();
    report.finished_at_ms = now_ms();

    let dir = PathBuf::from(&config.report_dir);
    std::fs::create_dir_all(&dir).map_err(|e| RollupError::Local(dir.display().to_string(), e))?;
    let path = dir.join(format!("rollup-{day}.json"));
    let json = serde_json::to_vec_pretty(&report).expect("serialisable");
    std::fs::write(&path, json).map_err(|e| RollupError::Local(path.display().to_string(), e))?;

    if !options.dry_run && !config.metrics_remote_write_url.is_empty() {
        push_metrics(config, &report, outcome).await?;
    }
    Ok(report)
}

async fn push_metrics(
    config: &RollupConfig,
    report: &Report,
    outcome: Outcome,
) -> Result<(), RollupError> {
    let url = config.metrics_remote_write_url.clone();
    let failed = |message: String| RollupError::Metrics {
        url: url.clone(),
        message,
    };
    let sender = adclick_remote_write::Sender::new(
        &adclick_remote_write::Config {
            tls: config.prometheus_tls.clone(),
            ..adclick_remote_write::Config::for_url(&url)
        },
        adclick_remote_write::Metrics::new(),
    )
    .map_err(|e| failed(e.to_string()))?;
    let success = matches!(
        outcome,
        Outcome::Clean | Outcome::Mismatch | Outcome::Unreconciled | Outcome::CorruptSkipped
    );
    let mut labels: BTreeMap<String, String> = config.labels.clone();
    labels.insert("job".into(), "adclick-rollup".into());
    let labels: Vec<(String, String)> = labels.into_iter().collect();
    let request = report.metrics(now_ms(), &labels, success);
    sender
        .send(&request)
        .await
        .map_err(|e| failed(e.to_string()))?;
    Ok(())
}
