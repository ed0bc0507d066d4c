//! Spend in the reconciliation: the stream's `adclick_spend_micros` (own series and `other`) plus
//! `adclick_late_spend_micros` of the day per campaign, against the settled spend — summed over
//! the day exactly as the clicks and late clicks are.
//!
//! They differ where the clicks do (a click lost or doubled by the stream, a fail-open repeat in
//! another minute, a verdict settled otherwise than live), and where the stream priced a click
//! from another record of its impression than the counted one.
//!
//! Unique users are not compared: the stream's per-minute, per-partition counts of distinct users
//! do not add up to a campaign's day (a person clicking in two minutes or partitions is counted in
//! each), so no sum of them is the settled figure, nor a bound tight enough to alert on.

use std::collections::HashMap;

use serde::Serialize;

use super::{ReconcileError, count, id, instant};
use crate::settle::SettledDay;

/// The stream's spend of one campaign, in micros.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamSpend {
    /// `adclick_spend_micros`, own series and `other`.
    pub spend_micros: u64,
    /// `adclick_late_spend_micros`.
    pub late_micros: u64,
}

/// Reads the stream's spend of the day `queries` read, per (advertiser, campaign).
pub(super) async fn stream(
    http: &reqwest::Client,
    prometheus: &str,
    queries: &super::DayQueries,
) -> Result<HashMap<(u64, u64), StreamSpend>, ReconcileError> {
    let mut out: HashMap<(u64, u64), StreamSpend> = HashMap::new();
    for (metric, late) in [
        ("adclick_spend_micros", false),
        ("adclick_late_spend_micros", true),
    ] {
        let (query, time) = queries.sum(metric, "advertiser_id, campaign_id", late);
        for s in instant(http, prometheus, &query, time).await? {
            let key = (
                id(&s, "advertiser_id", &query)?,
                id(&s, "campaign_id", &query)?,
            );
            let micros = count(&s, &query)?;
            let entry = out.entry(key).or_default();
            if late {
                entry.late_micros += micros;
            } else {
                entry.spend_micros += micros;
            }
        }
    }
    Ok(out)
}

/// A campaign whose stream spend differs from the settled one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpendRow {
    pub advertiser_id: u64,
    pub campaign_id: u64,
    pub truth_micros: u64,
    /// `adclick_spend_micros` plus `adclick_late_spend_micros`.
    pub stream_micros: u64,
    pub stream_late_micros: u64,
    /// `stream_micros - truth_micros`.
    pub difference_micros: i64,
}

/// The spend part of a day's comparison.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SpendComparison {
    pub truth_micros: u64,
    pub stream_micros: u64,
    pub stream_late_micros: u64,
    pub campaigns_compared: u64,
    pub campaigns_mismatched: u64,
    /// Sum over campaigns of |stream − truth|.
    pub mismatch_micros: u64,
    /// The largest differences (at most `report_max_rows`).
    pub rows: Vec<SpendRow>,
}

/// Compares the settled spend with the stream's, per campaign.
pub fn compare(
    truth: &SettledDay,
    stream: &HashMap<(u64, u64), StreamSpend>,
    max_rows: usize,
) -> SpendComparison {
    let truth = truth.campaign_spend();
    let mut keys: Vec<(u64, u64)> = truth.keys().chain(stream.keys()).copied().collect();
    keys.sort_unstable();
    keys.dedup();
    let mut r = SpendComparison::default();
    for key in keys {
        let t = truth.get(&key).copied().unwrap_or(0);
        let s = stream.get(&key).copied().unwrap_or_default();
        let streamed = s.spend_micros.saturating_add(s.late_micros);
        r.truth_micros = r.truth_micros.saturating_add(t);
        r.stream_micros = r.stream_micros.saturating_add(s.spend_micros);
        r.stream_late_micros = r.stream_late_micros.saturating_add(s.late_micros);
        r.campaigns_compared += 1;
        if streamed != t {
            r.campaigns_mismatched += 1;
            r.mismatch_micros = r.mismatch_micros.saturating_add(streamed.abs_diff(t));
            r.rows.push(SpendRow {
                advertiser_id: key.0,
                campaign_id: key.1,
                truth_micros: t,
                stream_micros: streamed,
                stream_late_micros: s.late_micros,
                difference_micros: (i128::from(streamed) - i128::from(t))
                    .clamp(i128::from(i64::MIN), i128::from(i64::MAX))
                    as i64,
            });
        }
    }
    r.rows
        .sort_by_key(|row| std::cmp::Reverse(row.difference_micros.unsigned_abs()));
    r.rows.truncate(max_rows);
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settle::{AdKey, AdMinute};
    use adclick_click::Minute;

    #[test]
    fn late_spend_counts_and_a_difference_is_a_row() {
        let ad = |campaign_id, ad_id| AdKey {
            advertiser_id: 1,
            campaign_id,
            ad_id,
        };
        let spent = |clicks, spend_micros| AdMinute {
            clicks,
            spend_micros,
            unique_users: clicks,
        };
        let truth = SettledDay {
            ads: vec![
                (ad(1, 10), vec![(Minute(1), spent(2, 1_000))]),
                (ad(1, 11), vec![(Minute(1), spent(1, 500))]),
                (ad(2, 20), vec![(Minute(1), spent(3, 3_000))]),
                // Free clicks: a campaign compared at 0.
                (ad(4, 40), vec![(Minute(1), spent(1, 0))]),
            ],
            ..Default::default()
        };
        let stream = HashMap::from([
            // Exact: 500 of it late.
            (
                (1, 1),
                StreamSpend {
                    spend_micros: 1_000,
                    late_micros: 500,
                },
            ),
            // A click of 1,000 lost.
            (
                (1, 2),
                StreamSpend {
                    spend_micros: 2_000,
                    late_micros: 0,
                },
            ),
            // Spend the settled day does not have.
            (
                (1, 3),
                StreamSpend {
                    spend_micros: 0,
                    late_micros: 250,
                },
            ),
        ]);
        let r = compare(&truth, &stream, 10);
        assert_eq!(
            (
                r.campaigns_compared,
                r.campaigns_mismatched,
                r.mismatch_micros
            ),
            (4, 2, 1_250)
        );
        assert_eq!(
            (r.truth_micros, r.stream_micros, r.stream_late_micros),
            (4_500, 3_000, 750)
        );
        let rows: Vec<(u64, i64)> = r
            .rows
            .iter()
            .map(|row| (row.campaign_id, row.difference_micros))
            .collect();
        assert_eq!(rows, [(2, -1_000), (3, 250)]);
        assert_eq!(compare(&truth, &stream, 1).rows.len(), 1);
    }
}
