//! The exporter's own metrics (prometheus-client), served on the admin listener next to the
//! remote_write client's (`adclick_remote_write_*`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartitionLabels {
    pub partition: i32,
}

/// Every metric of the exporter.
#[derive(Clone, Default)]
pub struct Metrics {
    pub records: Family<OutcomeLabels, Counter>,
    pub dead_letters: Family<ReasonLabels, Counter>,
    pub minutes_closed: Counter,
    pub minutes_skipped: Family<ReasonLabels, Counter>,
    pub late_clicks: Counter,
    pub invalid_clicks: Counter,
    pub ads_folded: Counter,
    pub samples_written: Counter,
    pub series_last_minute: Family<PartitionLabels, Gauge>,
    pub open_ads: Family<PartitionLabels, Gauge>,
    pub lag: Family<PartitionLabels, Gauge>,
    pub freshness_seconds: Family<PartitionLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    pub watermark_seconds: Family<PartitionLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    pub archive_objects: Counter,
    pub archive_bytes: Counter,
    pub archive_records: Counter,
    pub archive_pending: Gauge,
    pub archive_unsealed_partitions: Gauge,
    pub archive_upload_errors: Counter,
    pub commits: Counter,
    pub commit_errors: Counter,
    pub checkpoints_missing: Counter,
    pub ticks_written: Counter,
    pub partitions_owned: Gauge,
    pub remembered_impressions: Family<PartitionLabels, Gauge>,
    pub remembered_bytes: Family<PartitionLabels, Gauge>,
    pub dedup_forgotten: Family<ReasonLabels, Counter>,
    /// The remote_write client's (`adclick_remote_write_*`), registered with these.
    pub remote_write: adclick_remote_write::Metrics,
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics::default()
    }

    /// Registers the exporter's metrics and its remote_write client's.
    pub fn register(&self, registry: &mut Registry) {
        self.remote_write.register(registry);
        let r = registry.sub_registry_with_prefix("adclick_exporter");
        r.register(
            "records",
            "Records read, by outcome: counted, repeat (an impression remembered within the dedup horizon), late, tick, dead_letter, warm_up (re-read after a restart to rebuild the remembered impressions, not counted)",
            self.records.clone(),
        );
        r.register(
            "remembered_impressions",
            "Impression ids a partition remembers to drop repeats (dedup_horizon_ms)",
            self.remembered_impressions.clone(),
        );
        r.register_with_unit(
            "remembered",
            "Heap bytes of the impression ids a partition remembers",
            Unit::Bytes,
            self.remembered_bytes.clone(),
        );
        r.register(
            "dedup_forgotten",
            "Remembered impression ids forgotten, by reason: horizon (older than dedup_horizon_ms), capacity (dedup_max_impressions reached: the horizon shrank)",
            self.dedup_forgotten.clone(),
        );
        r.register(
            "dead_letters",
            "Records sent to the dead-letter topic, by reason",
            self.dead_letters.clone(),
        );
        r.register(
            "minutes_closed",
            "Partition-minutes closed and written",
            self.minutes_closed.clone(),
        );
        r.register(
            "minutes_skipped",
            "Partition-minutes closed but not written, by reason (too_old: older than max_age_ms by the clock; the rollup settles them)",
            self.minutes_skipped.clone(),
        );
        r.register(
            "late_clicks",
            "Clicks that arrived after their minute was final (adclick_late_clicks)",
            self.late_clicks.clone(),
        );
        r.register(
            "invalid_clicks",
            "Invalid traffic counted on time in closed minutes (adclick_invalid_clicks)",
            self.invalid_clicks.clone(),
        );
        r.register(
            "ads_folded",
            "Ad-minutes folded into ad_id=\"other\" (not among the top K)",
            self.ads_folded.clone(),
        );
        r.register(
            "samples_written",
            "Samples handed to remote_write (clicks, late clicks, zeros, open minute)",
            self.samples_written.clone(),
        );
        r.register(
            "series_last_minute",
            "Series written for the partition's last closed minute",
            self.series_last_minute.clone(),
        );
        r.register(
            "open_ads",
            "Distinct ads in the partition's open minutes (held in memory)",
            self.open_ads.clone(),
        );
        r.register(
            "lag",
            "Records behind the end of the partition, from the read position (the committed offset trails by the dedup horizon)",
            self.lag.clone(),
        );
        r.register_with_unit(
            "freshness",
            "Now minus the end of the partition's last closed minute",
            Unit::Seconds,
            self.freshness_seconds.clone(),
        );
        r.register_with_unit(
            "watermark",
            "The partition's watermark (ms since the epoch / 1000)",
            Unit::Seconds,
            self.watermark_seconds.clone(),
        );
        r.register(
            "archive_objects",
            "Raw archive objects uploaded",
            self.archive_objects.clone(),
        );
        r.register_with_unit(
            "archive",
            "Raw archive bytes uploaded (compressed)",
            Unit::Bytes,
            self.archive_bytes.clone(),
        );
        r.register(
            "archive_records",
            "Records in uploaded raw archive objects",
            self.archive_records.clone(),
        );
        r.register(
            "archive_pending_objects",
            "Archive objects sealed and not yet uploaded",
            self.archive_pending.clone(),
        );
        r.register(
            "archive_unsealed_partitions",
            "Owned partitions whose records are not all in sealed archive objects yet: one is \
             open (an idle tick seals it), or the partition is not read to its end",
            self.archive_unsealed_partitions.clone(),
        );
        r.register(
            "archive_upload_errors",
            "Failed archive upload attempts (each is retried)",
            self.archive_upload_errors.clone(),
        );
        r.register(
            "commits",
            "Offset commits after everything before them was acknowledged",
            self.commits.clone(),
        );
        r.register(
            "commit_errors",
            "Checkpoint or offset commits that failed (retried at the next interval)",
            self.commit_errors.clone(),
        );
        r.register(
            "checkpoints_missing",
            "Assigned partitions with a committed offset but no checkpoint (replay may rewrite minutes)",
            self.checkpoints_missing.clone(),
        );
        r.register(
            "ticks_written",
            "Tick records written into idle partitions",
            self.ticks_written.clone(),
        );
        r.register(
            "partitions_owned",
            "Partitions this instance owns",
            self.partitions_owned.clone(),
        );
    }

    pub fn record(&self, outcome: &'static str) {
        self.records.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    /// Counts remembered impression ids forgotten, by why.
    pub fn forgotten(&self, evictions: Vec<(crate::remembered::Eviction, usize)>) {
        for (why, n) in evictions {
            let reason = match why {
                crate::remembered::Eviction::Horizon => "horizon",
                crate::remembered::Eviction::Capacity => "capacity",
            };
            self.dedup_forgotten
                .get_or_create(&ReasonLabels { reason })
                .inc_by(n as u64);
        }
    }
}
