//! The `[exporter]` configuration section and its defaults (documented key by key in
//! `deploy/adclick.example.toml`).

use serde::Deserialize;

/// `adclick export`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExporterConfig {
    /// Kafka consumer group shared by every exporter instance of one deployment.
    pub group_id: String,
    /// This instance's stable name in the group (Kafka static membership, `group.instance.id`):
    /// a restarted exporter then takes its old place at once, instead of the group waiting for
    /// the dead member's session to expire (45 s on Kafka; tansu does not expire it at all).
    /// Unique per instance and stable across its restarts, e.g. the pod name; empty = dynamic.
    pub instance_id: String,
    /// Admin listener: /metrics, /healthz, /readyz.
    pub admin_listen: String,
    /// How far behind a partition's highest event time a click may arrive and still count in its
    /// minute, ms. A minute's final sample is written this long after the minute ends.
    pub allowed_lateness_ms: i64,
    /// Ads per minute with their own series across the whole topic; every partition keeps
    /// `ceil(top_k / partitions)`, whichever instance owns it.
    pub top_k: usize,
    /// `adclick_spend_micros` beside every `adclick_clicks` series (and `adclick_late_spend_micros`
    /// beside `adclick_late_clicks`): the spend of those valid clicks, from their tokens' prices.
    pub spend: bool,
    /// `adclick_unique_users` beside every `adclick_clicks` series: the distinct users among
    /// those clicks (16 bytes per click by a further user of an ad, while its minute is open).
    pub unique_users: bool,
    /// How long, in event time, a partition remembers the impression ids it read, to drop a
    /// repeat whichever minute it falls in, ms. An id is remembered for at least this and at most
    /// `dedup_generation_ms` more after the last record that carried it; a repeat further apart
    /// is counted again live and settled by the rollup (whose reconciliation reports the
    /// difference). A restart re-reads this much of the log before counting again.
    pub dedup_horizon_ms: i64,
    /// The granularity of forgetting, ms: remembered ids are kept in generations this long.
    pub dedup_generation_ms: i64,
    /// Impression ids one partition remembers at most (about 19-22 B each, BENCHMARKS.md):
    /// beyond, the oldest generations are forgotten early and the horizon shrinks
    /// (`adclick_exporter_dedup_forgotten_total{reason="capacity"}`).
    pub dedup_max_impressions: usize,
    /// Clicks whose event time is further ahead of their record's timestamp are dead-lettered, ms.
    pub max_future_ms: i64,
    /// Clicks whose minute ended longer before their record's timestamp are dead-lettered (and
    /// archived), and closed minutes older than this (by the clock) are not written, ms. Must
    /// be below Prometheus' `out_of_order_time_window`.
    pub max_age_ms: i64,
    /// A partition with no record for this long, read to its end, gets a tick record, ms.
    pub idle_tick_ms: u64,
    /// How often the running count of the open minute is written, ms (0: never).
    pub open_minute_interval_ms: u64,
    /// How often acknowledged progress is checkpointed and committed, ms.
    pub commit_interval_ms: u64,
    /// Where poison records go, with the reason in a header.
    pub dead_letter_topic: String,
    /// Labels added to every series written (e.g. `env = "prod"`), beside the click labels.
    pub labels: std::collections::BTreeMap<String, String>,
    /// On SIGTERM: time to finish in-flight writes and commit what was acknowledged, ms.
    pub shutdown_timeout_ms: u64,
    pub remote_write: adclick_remote_write::Config,
    pub archive: ArchiveConfig,
}

impl Default for ExporterConfig {
    fn default() -> Self {
        ExporterConfig {
            group_id: "adclick-exporter".into(),
            instance_id: String::new(),
            admin_listen: "127.0.0.1:9102".into(),
            allowed_lateness_ms: 10_000,
            top_k: 100_000,
            spend: true,
            unique_users: true,
            dedup_horizon_ms: 15 * 60_000,
            dedup_generation_ms: 5 * 60_000,
            dedup_max_impressions: 10_000_000,
            max_future_ms: 600_000,
            max_age_ms: 5_400_000,
            idle_tick_ms: 5_000,
            open_minute_interval_ms: 2_000,
            commit_interval_ms: 2_000,
            dead_letter_topic: "clicks-dead-letter".into(),
            labels: Default::default(),
            shutdown_timeout_ms: 10_000,
            remote_write: adclick_remote_write::Config {
                queue: adclick_remote_write::QueueConfig {
                    batch_send_deadline_ms: 500,
                    ..Default::default()
                },
                ..Default::default()
            },
            archive: ArchiveConfig::default(),
        }
    }
}

/// The raw click archive and the checkpoints, in the object store.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ArchiveConfig {
    /// Prepended to every object name (`{prefix}raw/...`, `{prefix}checkpoints/...`).
    pub prefix: String,
    /// An object is closed after this many records ...
    pub max_records: usize,
    /// ... or this many bytes of record values.
    pub max_bytes: usize,
    /// Objects uploading at once at most; reading waits beyond (backpressure).
    pub max_pending_uploads: usize,
}

impl Default for ArchiveConfig {
    fn default() -> Self {
        ArchiveConfig {
            prefix: String::new(),
            max_records: 100_000,
            max_bytes: 8 << 20,
            max_pending_uploads: 16,
        }
    }
}

/// A configuration value that cannot work.
#[derive(Debug, thiserror::Error)]
#[error("[exporter] {field}: {reason}")]
pub struct InvalidConfig {
    pub field: &'static str,
    pub reason: String,
}

impl ExporterConfig {
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        let invalid = |field, reason: &str| {
            Err(InvalidConfig {
                field,
                reason: reason.to_string(),
            })
        };
        if self.allowed_lateness_ms < 0 {
            return invalid("allowed_lateness_ms", "must not be negative");
        }
        if self.max_future_ms <= 0 || self.max_future_ms > 600_000 {
            return invalid(
                "max_future_ms",
                "must be in 1..=600000 (Prometheus refuses samples over 10 minutes ahead)",
            );
        }
        if self.max_age_ms <= self.allowed_lateness_ms + 60_000 {
            return invalid("max_age_ms", "must exceed allowed_lateness_ms + 1 minute");
        }
        if self.dedup_horizon_ms < 0
            || self.dedup_generation_ms <= 0
            || self.dedup_generation_ms > self.dedup_horizon_ms.max(1)
        {
            return invalid(
                "dedup_horizon_ms / dedup_generation_ms",
                "the horizon must not be negative, a generation positive and no longer than it",
            );
        }
        if self.dedup_max_impressions == 0 {
            return invalid("dedup_max_impressions", "must be positive");
        }
        if self.idle_tick_ms == 0 || self.commit_interval_ms == 0 {
            return invalid("idle_tick_ms / commit_interval_ms", "must be positive");
        }
        if self.archive.max_records == 0
            || self.archive.max_bytes == 0
            || self.archive.max_pending_uploads == 0
        {
            return invalid(
                "archive",
                "max_records, max_bytes, max_pending_uploads must be positive",
            );
        }
        if self.dead_letter_topic.is_empty() || self.group_id.is_empty() {
            return invalid("group_id / dead_letter_topic", "must not be empty");
        }
        const OWN: [&str; 5] = [
            "__name__",
            "advertiser_id",
            "campaign_id",
            "ad_id",
            "partition",
        ];
        for (name, value) in &self.labels {
            if OWN.contains(&name.as_str())
                || name.starts_with("__")
                || !adclick_remote_write::request::is_valid_label_name(name)
                || value.is_empty()
            {
                return invalid(
                    "labels",
                    &format!(
                        "{name:?}={value:?}: a valid label name of its own and a non-empty value"
                    ),
                );
            }
        }
        Ok(())
    }

    /// The extra labels as the series builder takes them.
    pub fn extra_labels(&self) -> Vec<(String, String)> {
        self.labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// The dedup horizon's rule.
    pub fn horizon(&self) -> crate::remembered::Horizon {
        crate::remembered::Horizon {
            horizon_ms: self.dedup_horizon_ms,
            generation_ms: self.dedup_generation_ms,
            max_remembered: self.dedup_max_impressions,
        }
    }

    /// The figures written beside the clicks.
    pub fn measures(&self) -> crate::window::Measures {
        crate::window::Measures {
            spend: self.spend,
            unique_users: self.unique_users,
        }
    }

    /// Ads with their own series per partition per minute.
    pub fn top_k_per_partition(&self, partitions: usize) -> usize {
        self.top_k.div_ceil(partitions.max(1))
    }
}
