//! Invalid traffic in the reconciliation: the stream's `adclick_invalid_clicks` plus
//! `adclick_late_invalid_clicks` of the day per campaign and reason, against the settled invalid
//! clicks.
//!
//! They differ where the live verdict did ([`crate::verdicts`]: velocity counted unknown when
//! ingest failed open, a repeat counted towards velocity live, clicks of one millisecond counted
//! in another order), where a repeat of a request-invalid record slipped through live, or where
//! the stream lost or doubled clicks. Reasons are compared by name: a reason this build does not
//! know (a newer exporter's) shows as a difference rather than an error.

use std::collections::HashMap;

use serde::Serialize;

use super::{ReconcileError, count, id, instant};
use crate::settle::SettledDay;

/// (advertiser, campaign, reason name).
pub type InvalidSeries = (u64, u64, String);

/// The stream's invalid clicks of one campaign for one reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamInvalid {
    /// `adclick_invalid_clicks`.
    pub clicks: u64,
    /// `adclick_late_invalid_clicks`.
    pub late: u64,
}

/// Reads the stream's invalid clicks of the day `queries` read.
pub(super) async fn stream(
    http: &reqwest::Client,
    prometheus: &str,
    queries: &super::DayQueries,
) -> Result<HashMap<InvalidSeries, StreamInvalid>, ReconcileError> {
    let mut out: HashMap<InvalidSeries, StreamInvalid> = HashMap::new();
    for (metric, late) in [
        ("adclick_invalid_clicks", false),
        ("adclick_late_invalid_clicks", true),
    ] {
        let (query, time) = queries.sum(metric, "advertiser_id, campaign_id, reason", late);
        for s in instant(http, prometheus, &query, time).await? {
            let reason = s
                .metric
                .get("reason")
                .cloned()
                .ok_or_else(|| ReconcileError::Answer {
                    query: query.clone(),
                    message: format!("series {:?} has no reason", s.metric),
                })?;
            let key = (
                id(&s, "advertiser_id", &query)?,
                id(&s, "campaign_id", &query)?,
                reason,
            );
            let n = count(&s, &query)?;
            let entry = out.entry(key).or_default();
            if late {
                entry.late += n;
            } else {
                entry.clicks += n;
            }
        }
    }
    Ok(out)
}

/// A campaign and reason whose stream count differs from the settled one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InvalidRow {
    pub advertiser_id: u64,
    pub campaign_id: u64,
    pub reason: String,
    pub truth: u64,
    /// `adclick_invalid_clicks` plus `adclick_late_invalid_clicks`.
    pub stream: u64,
    pub stream_late: u64,
    /// `stream - truth`.
    pub difference: i64,
}

/// The invalid-traffic part of a day's comparison.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct InvalidComparison {
    pub truth_clicks: u64,
    pub stream_clicks: u64,
    pub stream_late_clicks: u64,
    /// (campaign, reason) pairs compared.
    pub compared: u64,
    pub mismatched: u64,
    /// Sum over pairs of |stream − truth|.
    pub mismatch_clicks: u64,
    /// The largest differences (at most `report_max_rows`).
    pub rows: Vec<InvalidRow>,
}

/// Compares the settled invalid clicks with the stream's, per campaign and reason.
pub fn compare(
    truth: &SettledDay,
    stream: &HashMap<InvalidSeries, StreamInvalid>,
    max_rows: usize,
) -> InvalidComparison {
    let truth: HashMap<InvalidSeries, u64> = truth
        .invalid_totals()
        .into_iter()
        .map(|(k, n)| {
            (
                (
                    k.advertiser_id,
                    k.campaign_id,
                    k.reason.as_str().to_string(),
                ),
                n,
            )
        })
        .collect();
    let mut keys: Vec<&InvalidSeries> = truth.keys().chain(stream.keys()).collect();
    keys.sort_unstable();
    keys.dedup();
    let mut r = InvalidComparison::default();
    for key in keys {
        let t = truth.get(key).copied().unwrap_or(0);
        let s = stream.get(key).copied().unwrap_or_default();
        let streamed = s.clicks + s.late;
        r.truth_clicks += t;
        r.stream_clicks += s.clicks;
        r.stream_late_clicks += s.late;
        r.compared += 1;
        if streamed != t {
            r.mismatched += 1;
            r.mismatch_clicks += streamed.abs_diff(t);
            r.rows.push(InvalidRow {
                advertiser_id: key.0,
                campaign_id: key.1,
                reason: key.2.clone(),
                truth: t,
                stream: streamed,
                stream_late: s.late,
                difference: streamed as i64 - t as i64,
            });
        }
    }
    r.rows
        .sort_by_key(|row| std::cmp::Reverse(row.difference.unsigned_abs()));
    r.rows.truncate(max_rows);
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settle::InvalidKey;
    use adclick_click::Minute;
    use adclick_invalid::Reason;

    #[test]
    fn late_invalid_clicks_count_and_unknown_reasons_show() {
        let key = |reason| InvalidKey {
            advertiser_id: 1,
            campaign_id: 7,
            reason,
        };
        let truth = SettledDay {
            invalid: vec![
                (key(Reason::BotUserAgent), vec![(Minute(1), 5)]),
                (key(Reason::UserVelocity), vec![(Minute(1), 12)]),
            ],
            ..Default::default()
        };
        let series = |reason: &str| (1, 7, reason.to_string());
        let stream = HashMap::from([
            // Exact, four of them late.
            (
                series("bot_user_agent"),
                StreamInvalid { clicks: 1, late: 4 },
            ),
            // None live: ingest failed open.
            // A reason of a newer exporter.
            (series("click_farm"), StreamInvalid { clicks: 2, late: 0 }),
        ]);
        let r = compare(&truth, &stream, 10);
        assert_eq!((r.compared, r.mismatched, r.mismatch_clicks), (3, 2, 14));
        assert_eq!(
            (r.truth_clicks, r.stream_clicks, r.stream_late_clicks),
            (17, 3, 4)
        );
        let rows: Vec<(&str, i64)> = r
            .rows
            .iter()
            .map(|row| (row.reason.as_str(), row.difference))
            .collect();
        assert_eq!(rows, [("user_velocity", -12), ("click_farm", 2)]);
    }
}
