//! What a run tells people and alerts: the JSON report (everything, for the record and for
//! tooling), a short summary for the operator's terminal, and the `adclick_rollup_*` figures
//! written to Prometheus (remote_write) for the alerting rules.
//!
//! The summary's lines:
//! - `archive:` objects and records read, and where the records' event times fell;
//! - `truth:` valid clicks settled (billed: `adclick_clicks{tier="rollup"}`), repeats removed,
//!   records ingest wrote without checking the dedup store;
//! - `spend:` the valid clicks' spend in micros (`adclick_spend_micros{tier="rollup"}`) and the
//!   day's unique users (distinct non-zero user hashes over all valid clicks: not a sum of
//!   `adclick_unique_users`), then the advertisers with the largest spend, each with its users of
//!   the day (the report's `daily` holds the largest `report_max_rows`);
//! - `invalid:` invalid clicks settled (`adclick_invalid_clicks{tier="rollup"}`) by reason, and
//!   records ingest wrote without counting velocity;
//! - `live classification differed:` clicks whose settled verdict is not the one ingest recorded
//!   (per campaign: `N clicks live <recorded> -> settled <settled> (M velocity-unchecked)`; e.g.
//!   `live user_velocity -> settled valid` for a repeat counted towards velocity live,
//!   `live valid -> settled user_velocity` for a flood ingest could not count);
//! - `block`, `replaced`: what was written and where;
//! - `stream:` the stream's valid clicks against the truth, per campaign and ad;
//!   `stream invalid:` its invalid clicks (`adclick_invalid_clicks` + `adclick_late_invalid_clicks`)
//!   against the settled ones, per campaign and reason; `stream spend:` its spend
//!   (`adclick_spend_micros` + `adclick_late_spend_micros`) against the settled spend, per
//!   campaign. Unique users are not compared (they do not add up; see [`crate::reconcile`]).

use std::fmt::Write as _;

use adclick_remote_write::{Labels, Request, RequestBuilder, Sample};
use serde::Serialize;

use crate::daily::{AdvertiserDay, DailyFigures};
use crate::publish::ExistingBlock;
use crate::reconcile::Reconciliation;
use crate::scan::CorruptObject;
use crate::settle::SettleStats;
use crate::verdicts::ChangesReport;

/// Where the block went.
#[derive(Debug, Clone, Serialize)]
pub struct BlockReport {
    pub ulid: String,
    pub min_time_ms: i64,
    pub max_time_ms: i64,
    pub series: u64,
    pub samples: u64,
    pub chunks: u64,
    pub bytes: u64,
    /// `s3://bucket/prefix/ulid/`, a local directory, or `null` for a dry run.
    pub location: Option<String>,
    /// Earlier blocks of the day marked for deletion by this run.
    pub replaced: Vec<ExistingBlock>,
    /// The day's rows committed to the billing store with this block; `null`: none written
    /// (no store configured, or the block was not uploaded).
    pub billing: Option<crate::billing::BillingReport>,
}

/// How the archive read went.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ScanReport {
    pub hours_first_ms: i64,
    pub hours_end_ms: i64,
    pub objects: u64,
    pub bytes: u64,
    /// Records skipped because an earlier object of the partition holds them.
    pub overlapping_records: u64,
    /// Names under the archive hours that are not archive objects.
    pub foreign_objects: Vec<String>,
    pub corrupt_objects: Vec<CorruptObject>,
}

/// The day's billing figures in brief: totals, and the advertisers with the largest spend.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DailyReport {
    pub ads: u64,
    pub campaigns: u64,
    pub advertisers: u64,
    pub valid_clicks: u64,
    pub spend_micros: u64,
    /// Distinct non-zero users over all valid clicks of the day.
    pub unique_users: u64,
    /// At most `report_max_rows`, largest spend first (then most clicks, then ids); each with
    /// its distinct users of the day.
    pub top_advertisers: Vec<AdvertiserDay>,
}

impl DailyReport {
    pub fn of(daily: &DailyFigures, max_rows: usize) -> DailyReport {
        let mut top = daily.advertisers.clone();
        top.sort_by_key(|a| {
            (
                std::cmp::Reverse(a.spend_micros),
                std::cmp::Reverse(a.valid_clicks),
                a.advertiser_id,
            )
        });
        top.truncate(max_rows);
        DailyReport {
            ads: daily.ads.len() as u64,
            campaigns: daily.campaigns.len() as u64,
            advertisers: daily.advertisers.len() as u64,
            valid_clicks: daily.advertisers.iter().map(|a| a.valid_clicks).sum(),
            spend_micros: daily.spend_micros(),
            unique_users: daily.unique_users,
            top_advertisers: top,
        }
    }
}

/// The whole report of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub day: String,
    /// The block's (and the day's) first millisecond.
    pub day_start_ms: i64,
    pub outcome: &'static str,
    pub exit_code: i32,
    pub started_at_ms: i64,
    pub finished_at_ms: i64,
    pub dry_run: bool,
    pub scan: ScanReport,
    pub settle: SettleStats,
    /// The day's spend and users per advertiser, in brief (the billing store has them all).
    pub daily: DailyReport,
    /// Where the settled verdict differs from the one ingest recorded ("live classification
    /// differed").
    pub verdict_changes: ChangesReport,
    pub block: Option<BlockReport>,
    /// `null` when reconciliation was off or failed (then `reconcile_error` says why).
    pub reconciliation: Option<Reconciliation>,
    pub reconcile_error: Option<String>,
}

impl Report {
    /// A few lines for a terminal.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let st = &self.settle;
        let _ = writeln!(
            s,
            "rollup {}: {} (exit {})",
            self.day, self.outcome, self.exit_code
        );
        let _ = writeln!(
            s,
            "  archive: {} objects, {} bytes, {} records ({} of the day, {} look-back, {} outside)",
            self.scan.objects, self.scan.bytes, st.records, st.in_day, st.in_lookback, st.outside
        );
        let _ = writeln!(
            s,
            "  truth: {} clicks; {} duplicates removed; {} clicks were dedup-unchecked (ingest failed open)",
            st.clicks, st.duplicates_removed, st.dedup_unchecked
        );
        let daily = &self.daily;
        let _ = writeln!(
            s,
            "  spend: {} micros; {} unique users of the day ({} advertisers, {} campaigns, {} ads)",
            st.spend_micros, st.unique_users, daily.advertisers, daily.campaigns, daily.ads
        );
        for a in daily.top_advertisers.iter().take(5) {
            let _ = writeln!(
                s,
                "    advertiser {}: {} clicks, {} micros, {} unique users",
                a.advertiser_id, a.valid_clicks, a.spend_micros, a.unique_users
            );
        }
        let by_reason: Vec<String> = st
            .invalid_by_reason
            .iter()
            .map(|(reason, n)| format!("{reason} {n}"))
            .collect();
        let _ = writeln!(
            s,
            "  invalid: {} clicks ({}); {} clicks were velocity-unchecked (ingest failed open)",
            st.invalid_clicks,
            if by_reason.is_empty() {
                "none".to_string()
            } else {
                by_reason.join(", ")
            },
            st.velocity_unchecked
        );
        let changes = &self.verdict_changes;
        if changes.clicks > 0 {
            let _ = writeln!(
                s,
                "  live classification differed: {} clicks ({} velocity-unchecked)",
                changes.clicks, changes.velocity_unchecked
            );
            for c in changes.campaigns.iter().take(5) {
                let _ = writeln!(
                    s,
                    "    campaign {}/{}: {} clicks live {} -> settled {} ({} velocity-unchecked)",
                    c.advertiser_id,
                    c.campaign_id,
                    c.clicks,
                    c.recorded,
                    c.settled,
                    c.velocity_unchecked
                );
            }
        }
        if !self.scan.corrupt_objects.is_empty() {
            let _ = writeln!(s, "  CORRUPT objects: {}", self.scan.corrupt_objects.len());
            for c in self.scan.corrupt_objects.iter().take(5) {
                let _ = writeln!(s, "    {}: {}", c.key, c.reason);
            }
        }
        match &self.block {
            Some(b) => {
                let _ = writeln!(
                    s,
                    "  block {}: {} series, {} samples, {} bytes -> {}",
                    b.ulid,
                    b.series,
                    b.samples,
                    b.bytes,
                    b.location.as_deref().unwrap_or("(dry run, not kept)")
                );
                if !b.replaced.is_empty() {
                    let ids: Vec<String> = b.replaced.iter().map(|r| r.ulid.to_string()).collect();
                    let _ = writeln!(s, "  replaced (marked for deletion): {}", ids.join(", "));
                }
                if let Some(billing) = &b.billing {
                    let _ = writeln!(
                        s,
                        "  billing rows committed: {} ads, {} campaigns, {} advertisers -> {}",
                        billing.ads, billing.campaigns, billing.advertisers, billing.database
                    );
                }
            }
            None => {
                let _ = writeln!(s, "  no block written");
            }
        }
        match (&self.reconciliation, &self.reconcile_error) {
            (Some(r), _) => {
                let _ = writeln!(
                    s,
                    "  stream: {} clicks + {} late; campaigns {} / {} mismatched ({} clicks apart), ads {} / {} mismatched",
                    r.stream_clicks,
                    r.stream_late_clicks,
                    r.campaigns_mismatched,
                    r.campaigns_compared,
                    r.mismatch_clicks,
                    r.ads_mismatched,
                    r.ads_compared
                );
                for c in r.campaigns.iter().take(5) {
                    let _ = writeln!(
                        s,
                        "    campaign {}/{}: truth {}, stream {} (late {}, other {})",
                        c.advertiser_id,
                        c.campaign_id,
                        c.truth,
                        c.stream,
                        c.stream_late,
                        c.stream_other
                    );
                }
                let inv = &r.invalid;
                let _ = writeln!(
                    s,
                    "  stream invalid: {} clicks + {} late; campaign reasons {} / {} mismatched ({} clicks apart)",
                    inv.stream_clicks,
                    inv.stream_late_clicks,
                    inv.mismatched,
                    inv.compared,
                    inv.mismatch_clicks
                );
                for c in inv.rows.iter().take(5) {
                    let _ = writeln!(
                        s,
                        "    campaign {}/{} {}: truth {}, stream {} (late {})",
                        c.advertiser_id, c.campaign_id, c.reason, c.truth, c.stream, c.stream_late
                    );
                }
                let spend = &r.spend;
                let _ = writeln!(
                    s,
                    "  stream spend: {} micros + {} late; campaigns {} / {} mismatched ({} micros apart)",
                    spend.stream_micros,
                    spend.stream_late_micros,
                    spend.campaigns_mismatched,
                    spend.campaigns_compared,
                    spend.mismatch_micros
                );
                for c in spend.rows.iter().take(5) {
                    let _ = writeln!(
                        s,
                        "    campaign {}/{}: truth {} micros, stream {} (late {})",
                        c.advertiser_id,
                        c.campaign_id,
                        c.truth_micros,
                        c.stream_micros,
                        c.stream_late_micros
                    );
                }
            }
            (None, Some(e)) => {
                let _ = writeln!(s, "  reconciliation FAILED: {e}");
            }
            (None, None) => {
                let _ = writeln!(s, "  reconciliation: off");
            }
        }
        s
    }

    /// The figures alerts read, stamped `now_ms`, with `labels` (e.g. `job`) on every series.
    /// A failed run writes only what it knows; `last_success` only a successful one.
    pub fn metrics(&self, now_ms: i64, labels: &[(String, String)], success: bool) -> Request {
        let mut builder = RequestBuilder::new();
        let mut gauge = |name: &str, value: f64| {
            let all = std::iter::once(("__name__".to_string(), name.to_string()))
                .chain(labels.iter().cloned());
            // Names are constants and labels were validated with the configuration.
            let labels = Labels::new(all).expect("valid metric labels");
            builder
                .push(&labels, Sample::new(now_ms, value))
                .expect("one sample per series");
        };
        let st = &self.settle;
        if success {
            gauge(
                "adclick_rollup_last_success_timestamp_seconds",
                now_ms as f64 / 1000.0,
            );
            gauge(
                "adclick_rollup_day_start_timestamp_seconds",
                self.day_start_ms as f64 / 1000.0,
            );
        }
        gauge(
            "adclick_rollup_last_run_exit_code",
            f64::from(self.exit_code),
        );
        gauge("adclick_rollup_clicks", st.clicks as f64);
        gauge("adclick_rollup_spend_micros", st.spend_micros as f64);
        gauge("adclick_rollup_unique_users", st.unique_users as f64);
        gauge(
            "adclick_rollup_duplicates_removed",
            st.duplicates_removed as f64,
        );
        gauge(
            "adclick_rollup_dedup_unchecked_clicks",
            st.dedup_unchecked as f64,
        );
        gauge("adclick_rollup_invalid_clicks", st.invalid_clicks as f64);
        gauge(
            "adclick_rollup_velocity_unchecked_clicks",
            st.velocity_unchecked as f64,
        );
        gauge(
            "adclick_rollup_verdicts_changed",
            st.verdicts_changed as f64,
        );
        gauge(
            "adclick_rollup_corrupt_objects",
            self.scan.corrupt_objects.len() as f64,
        );
        if let Some(r) = &self.reconciliation {
            gauge(
                "adclick_rollup_mismatched_campaigns",
                r.campaigns_mismatched as f64,
            );
            gauge("adclick_rollup_mismatched_ads", r.ads_mismatched as f64);
            gauge("adclick_rollup_mismatch_clicks", r.mismatch_clicks as f64);
            gauge(
                "adclick_rollup_mismatched_invalid",
                r.invalid.mismatched as f64,
            );
            gauge(
                "adclick_rollup_invalid_mismatch_clicks",
                r.invalid.mismatch_clicks as f64,
            );
            gauge(
                "adclick_rollup_stream_late_clicks",
                r.stream_late_clicks as f64,
            );
            gauge(
                "adclick_rollup_mismatched_spend_campaigns",
                r.spend.campaigns_mismatched as f64,
            );
            gauge(
                "adclick_rollup_spend_mismatch_micros",
                r.spend.mismatch_micros as f64,
            );
            gauge(
                "adclick_rollup_stream_late_spend_micros",
                r.spend.stream_late_micros as f64,
            );
        }
        builder.build()
    }
}

#[cfg(test)]
mod tests;
