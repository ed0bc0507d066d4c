//! What ingest tells Prometheus: one registry, served on the admin listener at `/metrics` in the
//! OpenMetrics text format to clients that ask for it (Prometheus does) and the classic text
//! format otherwise (`promtool check metrics` clean).
//!
//! Every name starts with `adclick_ingest_`. Counters of a kind share one family with a label
//! (`reason`, `path`) rather than one metric per case, so a dashboard sums or splits them freely.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// How an accepted click was made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DurablePath {
    /// Kafka acknowledged it within the produce bound.
    Kafka,
    /// Appended to the spill log and fsynced.
    Spill,
}

impl DurablePath {
    pub fn as_str(self) -> &'static str {
        match self {
            DurablePath::Kafka => "kafka",
            DurablePath::Spill => "spill",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct PathLabel {
    pub path: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

/// Every metric of one ingest process. Cheap to share: metrics are atomics behind `Arc`s.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// New clicks made durable, by path.
    pub accepted: Family<PathLabel, Counter>,
    /// Clicks on an impression already seen: redirected, not produced.
    pub duplicates: Counter,
    /// Requests refused, by reason (token reasons of `TokenError::reason`, `rate_limited`, …).
    pub invalid: Family<ReasonLabel, Counter>,
    /// Clicks recorded as invalid traffic, by `adclick-invalid` reason (`prefetch`, `too_fast`, …).
    pub invalid_traffic: Family<ReasonLabel, Counter>,
    /// Clicks produced without a dedup check, by reason (`timeout`, `error`, `unavailable`).
    pub dedup_fail_open: Family<ReasonLabel, Counter>,
    /// Valid new clicks that could not be made durable, by reason (`spill_full`, `spill_error`).
    pub lost: Family<ReasonLabel, Counter>,
    /// What happened to client-reported click times (`accepted`, `future`, `too_old`, …).
    pub client_time: Family<ReasonLabel, Counter>,
    pub spill_records: Gauge,
    pub spill_bytes: Gauge,
    pub spill_capacity_bytes: Gauge,
    /// Records the spill refused because it was full or broken.
    pub spill_refused: Counter,
    pub spill_fsyncs: Counter,
    /// Records replayed from the spill into Kafka (acknowledged).
    pub replayed: Counter,
    /// Torn or corrupt spill bytes dropped when opening the spill.
    pub spill_corrupt_bytes: Counter,
    /// 1 while the broker is considered reachable (clicks produced directly).
    pub broker_up: Gauge,
    /// 1 while ingest can make clicks durable (what `/readyz` answers).
    pub ready: Gauge,
    /// Time from request to answer on the click path.
    pub redirect_seconds: Histogram,
    /// Time from produce to Kafka's acknowledgement, for clicks acknowledged within the bound.
    pub produce_seconds: Histogram,
    /// Produce attempts that did not end in an acknowledgement within the bound, by reason.
    pub produce_errors: Family<ReasonLabel, Counter>,
    /// Time from a round of claims' send to Redis's answer, for rounds answered within the bound:
    /// Redis's time as the click path sees it (`bound.rs`).
    pub claim_round_seconds: Histogram,
    pub spill_fsync_seconds: Histogram,
    /// How long work that became ready waited before it ran, and whether that is overload.
    pub overload: crate::overload::OverloadMetrics,
}

impl Metrics {
    /// The metrics, registered in `registry` under `adclick_ingest_`.
    pub fn new(registry: &mut Registry) -> Metrics {
        // 0.25 ms .. ~4 s: a redirect is sub-millisecond when everything is healthy, tens of ms at
        // the fail-open and spill bounds.
        let latency = || Histogram::new(exponential_buckets(0.000_25, 2.0, 15));
        let m = Metrics {
            accepted: Family::default(),
            duplicates: Counter::default(),
            invalid: Family::default(),
            invalid_traffic: Family::default(),
            dedup_fail_open: Family::default(),
            lost: Family::default(),
            client_time: Family::default(),
            spill_records: Gauge::default(),
            spill_bytes: Gauge::default(),
            spill_capacity_bytes: Gauge::default(),
            spill_refused: Counter::default(),
            spill_fsyncs: Counter::default(),
            replayed: Counter::default(),
            spill_corrupt_bytes: Counter::default(),
            broker_up: Gauge::default(),
            ready: Gauge::default(),
            redirect_seconds: latency(),
            produce_seconds: latency(),
            produce_errors: Family::default(),
            claim_round_seconds: latency(),
            spill_fsync_seconds: latency(),
            overload: crate::overload::OverloadMetrics {
                queueing_delay_seconds: latency(),
                overloaded: Gauge::default(),
            },
        };
        let r = registry.sub_registry_with_prefix("adclick_ingest");
        r.register(
            "clicks_accepted",
            "New clicks made durable, by path (kafka or spill)",
            m.accepted.clone(),
        );
        r.register(
            "duplicates",
            "Clicks on an already counted impression: redirected, not produced",
            m.duplicates.clone(),
        );
        r.register(
            "invalid",
            "Requests refused without a redirect, by reason",
            m.invalid.clone(),
        );
        r.register(
            "invalid_traffic",
            "Clicks recorded as invalid traffic (not billed), by reason",
            m.invalid_traffic.clone(),
        );
        r.register(
            "dedup_fail_open",
            "Clicks produced unchecked (dedup, and velocity where counted) because Redis failed or was slow, by reason",
            m.dedup_fail_open.clone(),
        );
        r.register(
            "clicks_lost",
            "Valid new clicks neither Kafka nor the spill could take, by reason",
            m.lost.clone(),
        );
        r.register(
            "client_time",
            "Client-reported click times (?t=), by verdict",
            m.client_time.clone(),
        );
        r.register(
            "spill_records",
            "Records in the spill log waiting for replay",
            m.spill_records.clone(),
        );
        r.register_with_unit(
            "spill",
            "Bytes of the spill log on disk",
            Unit::Bytes,
            m.spill_bytes.clone(),
        );
        r.register_with_unit(
            "spill_capacity",
            "Most bytes the spill log may hold",
            Unit::Bytes,
            m.spill_capacity_bytes.clone(),
        );
        r.register(
            "spill_refused",
            "Records the spill refused: full or broken",
            m.spill_refused.clone(),
        );
        r.register(
            "spill_fsyncs",
            "Group fsyncs of the spill log",
            m.spill_fsyncs.clone(),
        );
        r.register(
            "spill_replayed",
            "Spilled records replayed into Kafka and acknowledged",
            m.replayed.clone(),
        );
        r.register_with_unit(
            "spill_corrupt",
            "Torn or corrupt spill bytes dropped on open",
            Unit::Bytes,
            m.spill_corrupt_bytes.clone(),
        );
        r.register(
            "broker_up",
            "1 while clicks are produced to Kafka directly, 0 while they go to the spill",
            m.broker_up.clone(),
        );
        r.register(
            "ready",
            "1 while ingest can make clicks durable",
            m.ready.clone(),
        );
        r.register_with_unit(
            "redirect_duration",
            "Click request to answer",
            Unit::Seconds,
            m.redirect_seconds.clone(),
        );
        r.register_with_unit(
            "produce_duration",
            "Kafka produce to acknowledgement, within the bound",
            Unit::Seconds,
            m.produce_seconds.clone(),
        );
        r.register_with_unit(
            "claim_round_duration",
            "Redis round of dedup claims, send to answer, within the bound",
            Unit::Seconds,
            m.claim_round_seconds.clone(),
        );
        r.register(
            "produce_errors",
            "Produce attempts not acknowledged within the bound, by reason",
            m.produce_errors.clone(),
        );
        r.register_with_unit(
            "spill_fsync_duration",
            "One group fsync of the spill log",
            Unit::Seconds,
            m.spill_fsync_seconds.clone(),
        );
        r.register_with_unit(
            "queueing_delay",
            "How long work that became ready waited before ingest ran it (probed; overload.rs)",
            Unit::Seconds,
            m.overload.queueing_delay_seconds.clone(),
        );
        r.register(
            "overloaded",
            "Whether clicks have waited over overload_delay_ms for overload_window_ms (then /readyz answers 503)",
            m.overload.overloaded.clone(),
        );
        m
    }

    /// Counts one event of `family` with `reason`.
    pub fn count(family: &Family<ReasonLabel, Counter>, reason: &'static str) {
        family.get_or_create(&ReasonLabel { reason }).inc();
    }

    pub fn accepted(&self, path: DurablePath) {
        self.accepted
            .get_or_create(&PathLabel {
                path: path.as_str(),
            })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use adclick_admin::{encode, encode_text};

    #[test]
    fn families_and_units_are_named() {
        let mut registry = Registry::default();
        let m = Metrics::new(&mut registry);
        m.accepted(DurablePath::Spill);
        Metrics::count(&m.invalid, "expired");
        m.redirect_seconds.observe(0.001);
        let text = encode(&registry);
        assert!(
            text.contains("adclick_ingest_clicks_accepted_total{path=\"spill\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("adclick_ingest_invalid_total{reason=\"expired\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("adclick_ingest_redirect_duration_seconds_bucket"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
        let classic = encode_text(&registry);
        assert!(
            classic.contains("# TYPE adclick_ingest_clicks_accepted_total counter\n"),
            "{classic}"
        );
        assert!(
            classic.contains("# HELP adclick_ingest_clicks_accepted_total New clicks"),
            "{classic}"
        );
        assert!(classic.contains("# TYPE adclick_ingest_redirect_duration_seconds histogram\n"));
        assert!(!classic.contains("# EOF") && !classic.contains("# UNIT"));
    }

    /// `promtool check metrics` accepts the classic output. promtool comes with the stack's
    /// Prometheus (`deploy/local/install`); `$PROMTOOL` names another one.
    #[test]
    fn promtool_finds_nothing_to_complain_about() {
        let promtool = std::env::var("PROMTOOL").unwrap_or_else(|_| "/usr/bin/promtool".into());
        assert!(
            std::path::Path::new(&promtool).exists(),
            "{promtool} not found: install the stack's tools (deploy/local/install) or set PROMTOOL"
        );
        let mut registry = Registry::default();
        let m = Metrics::new(&mut registry);
        m.accepted(DurablePath::Kafka);
        m.duplicates.inc();
        Metrics::count(&m.invalid, "bad_signature");
        Metrics::count(&m.dedup_fail_open, "timeout");
        Metrics::count(&m.lost, "spill_full");
        Metrics::count(&m.client_time, "accepted");
        Metrics::count(&m.produce_errors, "timeout");
        m.redirect_seconds.observe(0.002);
        let mut child = std::process::Command::new(&promtool)
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write as _;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(encode_text(&registry).as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && said.trim().is_empty(),
            "promtool: {said}"
        );
    }
}
