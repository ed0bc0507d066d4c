//! What the stream path wrote for the day, read back from Prometheus' query API, and where it
//! differs from the settled truth.
//!
//! The stream's day is read with the block's boundaries: `sum_over_time(...[1d])` evaluated
//! 1 ms before the block's end covers the samples stamped in `[day 00:00, next day 00:00)`,
//! exactly the block's (Prometheus 2.x ranges include both ends). The late series are read by
//! the day their clicks' own minutes are in (`block_day`), however long after it they were
//! stamped: the late clicks of 23:58 are counted while 23:59–24:00 is open, in a sample stamped
//! 00:00 of the next day ([`DayQueries`]).
//!
//! Comparison:
//! - per campaign: truth vs. `adclick_clicks` (own series and `other`) plus
//!   `adclick_late_clicks` of the campaign. They differ when the stream lost or doubled clicks
//!   (fail-open repeats in different minutes are counted by the stream and removed here).
//! - per ad: truth vs. the ad's own series. An ad folded into `other` in some minutes, or whose
//!   campaign had late clicks, shows fewer clicks in the stream by design, so for those only a
//!   stream count *above* the truth is a mismatch; for the others any difference is.
//! - per campaign and reason: the settled invalid clicks vs. `adclick_invalid_clicks` plus
//!   `adclick_late_invalid_clicks` ([`invalid`]).
//! - per campaign: the settled spend vs. `adclick_spend_micros` (own series and `other`) plus
//!   `adclick_late_spend_micros` ([`spend`]).
//!
//! Unique users are not reconciled: `adclick_unique_users` counts distinct users per minute (and,
//! live, per partition), which cannot be summed into a campaign's day — the settled figures
//! ([`crate::daily`]) are the only ones that say how many people a day had.

use std::collections::{BTreeMap, HashMap};

use adclick_click::Day;
use serde::{Deserialize, Serialize};

use crate::settle::{AdKey, SettledDay};

pub mod invalid;
pub mod spend;

pub use invalid::{InvalidComparison, InvalidRow, InvalidSeries, StreamInvalid};
pub use spend::{SpendComparison, SpendRow, StreamSpend};

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("querying Prometheus at {url}: {message}")]
    Query { url: String, message: String },
    #[error("Prometheus answered {query:?} with something unexpected: {message}")]
    Answer { query: String, message: String },
}

/// The stream's counts of one campaign.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamCampaign {
    /// `adclick_clicks`, own series and `other`.
    pub clicks: u64,
    /// `adclick_clicks{ad_id="other"}`.
    pub other: u64,
    /// `adclick_late_clicks`.
    pub late: u64,
}

/// What the stream path wrote for the day.
#[derive(Debug, Clone, Default)]
pub struct StreamDay {
    pub campaigns: HashMap<(u64, u64), StreamCampaign>,
    /// Ads with series of their own.
    pub ads: HashMap<AdKey, u64>,
    /// Invalid clicks per campaign and reason.
    pub invalid: HashMap<InvalidSeries, StreamInvalid>,
    /// Spend per campaign (advertiser, campaign).
    pub spend: HashMap<(u64, u64), StreamSpend>,
}

#[derive(Deserialize)]
struct ApiAnswer {
    status: String,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    data: Option<ApiData>,
}

#[derive(Deserialize)]
struct ApiData {
    #[serde(rename = "resultType")]
    result_type: String,
    result: Vec<ApiSample>,
}

#[derive(Deserialize)]
pub(crate) struct ApiSample {
    pub(crate) metric: BTreeMap<String, String>,
    value: (f64, String),
}

/// A PromQL selector body for `labels` (`a="x",b="y"`), values escaped.
pub fn selector(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={}", serde_json::to_string(v).expect("a string")))
        .collect::<Vec<_>>()
        .join(",")
}

/// The instant at which `sum_over_time(x[1d])` covers exactly the block of `day`, in the API's
/// seconds.
pub fn evaluation_time(day: Day) -> String {
    api_time(day.end_ms() - 1)
}

/// `ms` in the query API's seconds.
fn api_time(ms: i64) -> String {
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

/// The queries that read one day of the stream.
///
/// - A series of the minutes themselves (`adclick_clicks`, `adclick_spend_micros`,
///   `adclick_invalid_clicks`) is summed over the samples stamped in the day's block.
/// - A late series (`adclick_late_*`) is summed over its samples labelled `block_day="<day>"`,
///   stamped from the block's start (a late click is stamped after its own minute) up to the
///   later of the block's end and `now`: a late click of the day's last minutes is stamped in the
///   next day, and a rollup run days later still finds the ones that arrived since.
#[derive(Debug, Clone)]
pub struct DayQueries {
    sel: String,
    day_sel: String,
    on_time_at: String,
    late_at: String,
    late_range_ms: i64,
}

impl DayQueries {
    /// For the series carrying `labels`, read at `now_ms`.
    pub fn new(day: Day, labels: &BTreeMap<String, String>, now_ms: i64) -> DayQueries {
        let sel = selector(labels);
        let mut day_labels = labels.clone();
        day_labels.insert("block_day".to_string(), day.to_string());
        let late_at = (day.end_ms() - 1).max(now_ms);
        DayQueries {
            sel,
            day_sel: selector(&day_labels),
            on_time_at: evaluation_time(day),
            late_at: api_time(late_at),
            late_range_ms: late_at - day.start_ms(),
        }
    }

    /// `sum by (<by>) (sum_over_time(<metric>{...}[...]))` over the day, and the instant to
    /// evaluate it at; `late`: a late series, read by its `block_day`.
    pub fn sum(&self, metric: &str, by: &str, late: bool) -> (String, &str) {
        if late {
            let (sel, range) = (&self.day_sel, self.late_range_ms);
            let query = format!("sum by ({by}) (sum_over_time({metric}{{{sel}}}[{range}ms]))");
            (query, &self.late_at)
        } else {
            let sel = &self.sel;
            let query = format!("sum by ({by}) (sum_over_time({metric}{{{sel}}}[1d]))");
            (query, &self.on_time_at)
        }
    }
}

pub(crate) async fn instant(
    http: &reqwest::Client,
    base: &str,
    query: &str,
    time: &str,
) -> Result<Vec<ApiSample>, ReconcileError> {
    let url = format!("{}/api/v1/query", base.trim_end_matches('/'));
    let failed = |message: String| ReconcileError::Query {
        url: url.clone(),
        message,
    };
    let response = http
        .post(&url)
        .form(&[("query", query), ("time", time)])
        .send()
        .await
        .map_err(|e| failed(e.to_string()))?;
    let status = response.status();
    let answer: ApiAnswer = response
        .json()
        .await
        .map_err(|e| failed(format!("HTTP {status}, body not the API's JSON: {e}")))?;
    let wrong = |message: String| ReconcileError::Answer {
        query: query.to_string(),
        message,
    };
    if answer.status != "success" {
        return Err(wrong(answer.error.unwrap_or(answer.status)));
    }
    let data = answer.data.ok_or_else(|| wrong("no data".into()))?;
    if data.result_type != "vector" {
        return Err(wrong(format!("result type {}", data.result_type)));
    }
    Ok(data.result)
}

pub(crate) fn id(sample: &ApiSample, name: &str, query: &str) -> Result<u64, ReconcileError> {
    sample
        .metric
        .get(name)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| ReconcileError::Answer {
            query: query.to_string(),
            message: format!("series {:?} has no numeric {name}", sample.metric),
        })
}

pub(crate) fn count(sample: &ApiSample, query: &str) -> Result<u64, ReconcileError> {
    let v: f64 = sample.value.1.parse().map_err(|_| ReconcileError::Answer {
        query: query.to_string(),
        message: format!("value {:?} is not a number", sample.value.1),
    })?;
    if !(v >= 0.0 && v.fract() == 0.0) {
        return Err(ReconcileError::Answer {
            query: query.to_string(),
            message: format!("count {v} is not a whole non-negative number"),
        });
    }
    Ok(v as u64)
}

/// Reads the stream's counts of the day `queries` read.
pub async fn stream_day(
    http: &reqwest::Client,
    prometheus: &str,
    queries: &DayQueries,
) -> Result<StreamDay, ReconcileError> {
    let (clicks_q, clicks_at) =
        queries.sum("adclick_clicks", "advertiser_id, campaign_id, ad_id", false);
    let (late_q, late_at) = queries.sum("adclick_late_clicks", "advertiser_id, campaign_id", true);
    let mut out = StreamDay::default();
    for s in instant(http, prometheus, &clicks_q, clicks_at).await? {
        let campaign = (
            id(&s, "advertiser_id", &clicks_q)?,
            id(&s, "campaign_id", &clicks_q)?,
        );
        let n = count(&s, &clicks_q)?;
        let c = out.campaigns.entry(campaign).or_default();
        c.clicks += n;
        if s.metric.get("ad_id").map(String::as_str) == Some("other") {
            c.other += n;
        } else {
            let ad = AdKey {
                advertiser_id: campaign.0,
                campaign_id: campaign.1,
                ad_id: id(&s, "ad_id", &clicks_q)?,
            };
            *out.ads.entry(ad).or_default() += n;
        }
    }
    for s in instant(http, prometheus, &late_q, late_at).await? {
        let campaign = (
            id(&s, "advertiser_id", &late_q)?,
            id(&s, "campaign_id", &late_q)?,
        );
        out.campaigns.entry(campaign).or_default().late += count(&s, &late_q)?;
    }
    out.invalid = invalid::stream(http, prometheus, queries).await?;
    out.spend = spend::stream(http, prometheus, queries).await?;
    Ok(out)
}

/// A campaign whose stream count differs from the truth.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CampaignRow {
    pub advertiser_id: u64,
    pub campaign_id: u64,
    pub truth: u64,
    /// `adclick_clicks` plus `adclick_late_clicks`.
    pub stream: u64,
    pub stream_late: u64,
    pub stream_other: u64,
    /// `stream - truth`.
    pub difference: i64,
}

/// An ad whose own series differs from the truth beyond what folding and late clicks explain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AdRow {
    pub advertiser_id: u64,
    pub campaign_id: u64,
    pub ad_id: u64,
    pub truth: u64,
    pub stream: u64,
    pub difference: i64,
}

/// The comparison of a day.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Reconciliation {
    pub truth_clicks: u64,
    pub stream_clicks: u64,
    pub stream_late_clicks: u64,
    pub campaigns_compared: u64,
    pub campaigns_mismatched: u64,
    pub ads_compared: u64,
    pub ads_mismatched: u64,
    /// Sum over campaigns of |stream − truth|.
    pub mismatch_clicks: u64,
    /// The largest campaign differences (at most `report_max_rows`).
    pub campaigns: Vec<CampaignRow>,
    pub ads: Vec<AdRow>,
    /// Invalid clicks per campaign and reason.
    pub invalid: InvalidComparison,
    /// Spend per campaign.
    pub spend: SpendComparison,
}

impl Reconciliation {
    pub fn is_clean(&self) -> bool {
        self.campaigns_mismatched == 0
            && self.ads_mismatched == 0
            && self.invalid.mismatched == 0
            && self.spend.campaigns_mismatched == 0
    }
}

/// Compares the truth with the stream; keeps the `max_rows` largest differences of each kind.
pub fn compare(truth: &SettledDay, stream: &StreamDay, max_rows: usize) -> Reconciliation {
    let truth_campaigns = truth.campaign_totals();
    let mut r = Reconciliation::default();
    let mut keys: Vec<(u64, u64)> = truth_campaigns
        .keys()
        .chain(stream.campaigns.keys())
        .copied()
        .collect();
    keys.sort_unstable();
    keys.dedup();
    for key in keys {
        let t = truth_campaigns.get(&key).copied().unwrap_or(0);
        let s = stream.campaigns.get(&key).copied().unwrap_or_default();
        let streamed = s.clicks + s.late;
        r.truth_clicks += t;
        r.stream_clicks += s.clicks;
        r.stream_late_clicks += s.late;
        r.campaigns_compared += 1;
        if streamed != t {
            r.campaigns_mismatched += 1;
            r.mismatch_clicks += streamed.abs_diff(t);
            r.campaigns.push(CampaignRow {
                advertiser_id: key.0,
                campaign_id: key.1,
                truth: t,
                stream: streamed,
                stream_late: s.late,
                stream_other: s.other,
                difference: streamed as i64 - t as i64,
            });
        }
    }
    let truth_ads: HashMap<AdKey, u64> = truth
        .ads
        .iter()
        .map(|(ad, minutes)| (*ad, minutes.iter().map(|(_, m)| m.clicks).sum()))
        .collect();
    let mut ads: Vec<AdKey> = truth_ads.keys().chain(stream.ads.keys()).copied().collect();
    ads.sort_unstable();
    ads.dedup();
    for ad in ads {
        let t = truth_ads.get(&ad).copied().unwrap_or(0);
        let s = stream.ads.get(&ad).copied().unwrap_or(0);
        let c = stream
            .campaigns
            .get(&(ad.advertiser_id, ad.campaign_id))
            .copied()
            .unwrap_or_default();
        r.ads_compared += 1;
        let explained_shortfall = c.other > 0 || c.late > 0;
        if s > t || (s < t && !explained_shortfall) {
            r.ads_mismatched += 1;
            r.ads.push(AdRow {
                advertiser_id: ad.advertiser_id,
                campaign_id: ad.campaign_id,
                ad_id: ad.ad_id,
                truth: t,
                stream: s,
                difference: s as i64 - t as i64,
            });
        }
    }
    r.campaigns
        .sort_by_key(|row| std::cmp::Reverse(row.difference.unsigned_abs()));
    r.campaigns.truncate(max_rows);
    r.ads
        .sort_by_key(|row| std::cmp::Reverse(row.difference.unsigned_abs()));
    r.ads.truncate(max_rows);
    r.invalid = invalid::compare(truth, &stream.invalid, max_rows);
    r.spend = spend::compare(truth, &stream.spend, max_rows);
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settle::AdMinute;
    use adclick_click::Minute;

    fn clicks(clicks: u64) -> AdMinute {
        AdMinute {
            clicks,
            ..AdMinute::default()
        }
    }

    fn ad(campaign_id: u64, ad_id: u64) -> AdKey {
        AdKey {
            advertiser_id: 1,
            campaign_id,
            ad_id,
        }
    }

    #[test]
    fn folding_and_late_clicks_explain_a_shortfall_but_not_an_excess() {
        let truth = SettledDay {
            ads: vec![
                (ad(1, 10), vec![(Minute(1), clicks(5))]),
                (ad(1, 11), vec![(Minute(1), clicks(2))]),
                (ad(2, 20), vec![(Minute(1), clicks(3))]),
                (ad(3, 30), vec![(Minute(1), clicks(4))]),
            ],
            ..Default::default()
        };
        let mut stream = StreamDay::default();
        // Campaign 1: ad 11 folded into other; exact in total.
        stream.campaigns.insert(
            (1, 1),
            StreamCampaign {
                clicks: 7,
                other: 2,
                late: 0,
            },
        );
        stream.ads.insert(ad(1, 10), 5);
        // Campaign 2: one click short, nothing explains it.
        stream.campaigns.insert(
            (1, 2),
            StreamCampaign {
                clicks: 2,
                other: 0,
                late: 0,
            },
        );
        stream.ads.insert(ad(2, 20), 2);
        // Campaign 3: a fail-open repeat counted twice by the stream.
        stream.campaigns.insert(
            (1, 3),
            StreamCampaign {
                clicks: 5,
                other: 0,
                late: 0,
            },
        );
        stream.ads.insert(ad(3, 30), 5);
        let r = compare(&truth, &stream, 10);
        assert_eq!(
            (
                r.campaigns_compared,
                r.campaigns_mismatched,
                r.mismatch_clicks
            ),
            (3, 2, 2)
        );
        assert_eq!((r.ads_compared, r.ads_mismatched), (4, 2));
        assert_eq!(r.truth_clicks, 14);
        let diffs: Vec<(u64, i64)> = r.ads.iter().map(|a| (a.ad_id, a.difference)).collect();
        assert!(
            diffs.contains(&(20, -1)) && diffs.contains(&(30, 1)),
            "{diffs:?}"
        );
        assert!(!r.is_clean());
    }

    #[test]
    fn evaluation_time_is_a_millisecond_before_the_block_end() {
        let day: Day = "2026-11-23".parse().unwrap();
        assert_eq!(evaluation_time(day), "1795478399.999");
        let sel = selector(&BTreeMap::from([("test_id".into(), "a\"b".into())]));
        assert_eq!(sel, r#"test_id="a\"b""#);
    }

    #[test]
    fn late_series_are_read_by_their_day_up_to_now() {
        let day: Day = "2026-11-23".parse().unwrap();
        let labels = BTreeMap::from([("test_id".into(), "t".into())]);
        let by = "advertiser_id, campaign_id";
        // Run the next morning at 01:00: the late clicks stamped since the block's start.
        let q = DayQueries::new(day, &labels, day.end_ms() + 3_600_000);
        assert_eq!(
            q.sum("adclick_late_clicks", by, true),
            (
                format!(
                    "sum by ({by}) (sum_over_time(adclick_late_clicks{{block_day=\"2026-11-23\",test_id=\"t\"}}[90000000ms]))"
                ),
                "1795482000.000"
            )
        );
        assert_eq!(
            q.sum("adclick_clicks", by, false),
            (
                format!("sum by ({by}) (sum_over_time(adclick_clicks{{test_id=\"t\"}}[1d]))"),
                "1795478399.999"
            )
        );
        // Run before the day is over (a test, a rerun of today): the block's range.
        let early = DayQueries::new(day, &labels, day.start_ms() + 5);
        assert_eq!(early.sum("m", by, true).1, "1795478399.999");
        assert!(early.sum("m", by, true).0.contains("[86399999ms]"));
    }
}
