//! The `[rollup]` section of adclick's configuration.

use std::collections::BTreeMap;

use serde::Deserialize;

/// Every setting of `adclick rollup`; the defaults suit the local stack and production alike.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RollupConfig {
    /// Prefix of the raw archive in the bucket: the exporter's `[exporter.archive] prefix`.
    pub archive_prefix: String,
    /// Where blocks go in the bucket: the root Thanos reads (empty = the bucket's root).
    pub blocks_prefix: String,
    /// Thanos external labels of the rollup's blocks. They keep the rollup's series apart from
    /// the stream's (Prometheus' `external_labels` say `tier="stream"`) in a Thanos querier and
    /// keep the compactor from seeing the two as overlapping blocks of one producer.
    pub external_labels: BTreeMap<String, String>,
    /// Labels added to every series, as `[exporter] labels` adds them to the stream's; the
    /// reconciliation selects the stream's series with them too.
    pub labels: BTreeMap<String, String>,
    /// Archive hours read before the first minute of the day: objects are named by the hour
    /// their first record was written, and a producer's clock may run ahead of the click's.
    pub read_before_ms: i64,
    /// Archive hours read after the day: clicks written late (broker outage, ingest's spill
    /// replay, a partition read late by the exporter). A click archived later still is found
    /// by a later day's run, which reports it (`clicks_for_earlier_days`).
    pub read_after_ms: i64,
    /// How far before the day clicks are read only to learn which impressions were already
    /// counted: a repeat of yesterday's impression is not a click of today. The tokens'
    /// lifetime bounds how far apart two clicks of one impression can be; the default matches
    /// ingest's dedup TTL (24 h).
    pub dedup_lookback_ms: i64,
    /// Archive objects fetched at once.
    pub fetch_concurrency: usize,
    /// Prometheus (query API) the stream path writes to; empty = no reconciliation.
    pub prometheus_url: String,
    /// remote_write endpoint for the rollup's own figures (`adclick_rollup_*`), which alerts
    /// read; empty = none.
    pub metrics_remote_write_url: String,
    /// `[rollup.prometheus_tls]`: a private CA (and client certificate) for `https://`
    /// `prometheus_url` and `metrics_remote_write_url`.
    pub prometheus_tls: adclick_tls::ClientTls,
    /// Directory the JSON report is written to (`rollup-YYYY-MM-DD.json`).
    pub report_dir: String,
    /// Mismatched ads and campaigns listed in the report, largest difference first (the counts
    /// of all of them are always there).
    pub report_max_rows: usize,
    /// Write each settled day's rows to the billing store (`[billing]`), together with the
    /// block: a run whose store is down fails before publishing anything. `--no-billing` turns
    /// it off for one run.
    pub billing: bool,
}

impl Default for RollupConfig {
    fn default() -> Self {
        RollupConfig {
            archive_prefix: String::new(),
            blocks_prefix: String::new(),
            external_labels: BTreeMap::from([("tier".to_string(), "rollup".to_string())]),
            labels: BTreeMap::new(),
            read_before_ms: 3_600_000,
            read_after_ms: 3 * 3_600_000,
            dedup_lookback_ms: 24 * 3_600_000,
            fetch_concurrency: 16,
            prometheus_url: "http://127.0.0.1:9090".into(),
            metrics_remote_write_url: "http://127.0.0.1:9090/api/v1/write".into(),
            prometheus_tls: adclick_tls::ClientTls::default(),
            report_dir: ".".into(),
            report_max_rows: 1000,
            billing: true,
        }
    }
}

/// A configuration value that cannot work.
#[derive(Debug, thiserror::Error)]
#[error("[rollup] {field}: {reason}")]
pub struct InvalidConfig {
    pub field: &'static str,
    pub reason: String,
}

impl RollupConfig {
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        let invalid = |field, reason: &str| {
            Err(InvalidConfig {
                field,
                reason: reason.to_string(),
            })
        };
        if let Err(e) = adclick_tsdb::meta::check_external_labels(&self.external_labels) {
            return invalid("external_labels", &e.to_string());
        }
        for (field, value) in [
            ("read_before_ms", self.read_before_ms),
            ("read_after_ms", self.read_after_ms),
            ("dedup_lookback_ms", self.dedup_lookback_ms),
        ] {
            if !(0..=7 * 86_400_000).contains(&value) {
                return invalid(field, "must be between 0 and 7 days");
            }
        }
        if self.fetch_concurrency == 0 {
            return invalid("fetch_concurrency", "must be at least 1");
        }
        for (name, value) in &self.labels {
            let reserved = [
                "__name__",
                "advertiser_id",
                "campaign_id",
                "ad_id",
                "reason",
                "partition",
            ];
            if !adclick_remote_write::request::is_valid_label_name(name)
                || reserved.contains(&name.as_str())
                || value.is_empty()
            {
                return invalid(
                    "labels",
                    &format!("{name:?}={value:?}: a valid, unreserved name and a non-empty value"),
                );
            }
        }
        if !self.blocks_prefix.is_empty() && !self.blocks_prefix.ends_with('/') {
            return invalid("blocks_prefix", "must end with '/' (or be empty)");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_labels_are_checked() {
        RollupConfig::default().validate().unwrap();
        let mut c = RollupConfig::default();
        c.external_labels.clear();
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("external_labels")
        );
        let mut c = RollupConfig::default();
        c.labels.insert("ad_id".into(), "x".into());
        assert!(c.validate().is_err());
        let c = RollupConfig {
            read_after_ms: -1,
            ..RollupConfig::default()
        };
        assert!(c.validate().is_err());
    }
}
