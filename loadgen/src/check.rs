//! A run's ground truth against what Prometheus holds (`adclick check-truth`, the demo's last
//! step): per minute and campaign, the truth's clicks within the allowed lateness against
//! `adclick_clicks`; in total, every click of the truth against `adclick_clicks` plus
//! `adclick_late_clicks` (a click that arrives after its minute is final is counted live in the
//! minute open when it arrives, and by the rollup in its own).
//!
//! Prometheus is read with `sum_over_time(...[59999ms])` at each minute's end: exactly the one
//! sample every series has per minute, stamped at the minute's end.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use adclick_click::minute::MINUTE_MS;
use serde::Deserialize;

use crate::truth::TruthKey;

/// One campaign's clicks: (advertiser id, campaign id).
pub type CampaignId = (u64, u64);

/// A minute of the run, summed over the run's campaigns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinuteRow {
    pub minute_end_ms: i64,
    /// The truth's clicks of the minute that arrived within the allowed lateness.
    pub truth_on_time: u64,
    /// The truth's clicks of the minute that arrived after it was final.
    pub truth_too_late: u64,
    /// `adclick_clicks` of the minute, over the run's campaigns.
    pub prometheus: u64,
    /// Campaigns whose count differs in this minute.
    pub campaigns_apart: usize,
}

/// The whole comparison.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Comparison {
    pub minutes: Vec<MinuteRow>,
    /// `adclick_late_clicks` of the run's campaigns, from its first minute to a few minutes
    /// after its last (where its latest late clicks are counted).
    pub prometheus_late: u64,
}

impl Comparison {
    /// Every minute and campaign equal, and the late clicks too.
    pub fn is_exact(&self) -> bool {
        self.minutes
            .iter()
            .all(|m| m.campaigns_apart == 0 && m.truth_on_time == m.prometheus)
            && self.truth_too_late() == self.prometheus_late
    }

    pub fn truth_total(&self) -> u64 {
        self.minutes
            .iter()
            .map(|m| m.truth_on_time + m.truth_too_late)
            .sum()
    }

    pub fn truth_too_late(&self) -> u64 {
        self.minutes.iter().map(|m| m.truth_too_late).sum()
    }

    pub fn prometheus_total(&self) -> u64 {
        self.minutes.iter().map(|m| m.prometheus).sum::<u64>() + self.prometheus_late
    }

    /// The table the demo prints.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<22} {:>12} {:>12} {:>14}  campaigns apart",
            "minute (UTC, end)", "truth", "too late", "adclick_clicks"
        );
        for m in &self.minutes {
            let _ = writeln!(
                out,
                "{:<22} {:>12} {:>12} {:>14}  {}{}",
                utc(m.minute_end_ms),
                m.truth_on_time,
                m.truth_too_late,
                m.prometheus,
                m.campaigns_apart,
                if m.truth_on_time == m.prometheus && m.campaigns_apart == 0 {
                    ""
                } else {
                    "   <- differs"
                }
            );
        }
        let _ = writeln!(
            out,
            "total: truth {} = {} on time + {} too late; Prometheus {} = adclick_clicks {} + adclick_late_clicks {}: {}",
            self.truth_total(),
            self.truth_total() - self.truth_too_late(),
            self.truth_too_late(),
            self.prometheus_total(),
            self.prometheus_total() - self.prometheus_late,
            self.prometheus_late,
            if self.is_exact() {
                "equal"
            } else {
                "NOT equal"
            }
        );
        out
    }
}

/// Compares `truth` (all clicks) and `too_late` (their part beyond the allowed lateness) with
/// Prometheus' per-minute, per-campaign counts `prometheus` and the late clicks `late`.
pub fn compare(
    truth: &BTreeMap<TruthKey, u64>,
    too_late: &BTreeMap<TruthKey, u64>,
    prometheus: &BTreeMap<(i64, CampaignId), u64>,
    late: u64,
) -> Comparison {
    let per_campaign = |rows: &BTreeMap<TruthKey, u64>| {
        let mut out: BTreeMap<(i64, CampaignId), u64> = BTreeMap::new();
        for (k, n) in rows {
            let campaign = (k.ad.advertiser_id, k.ad.campaign_id);
            *out.entry((k.minute_end_ms, campaign)).or_default() += n;
        }
        out
    };
    let all = per_campaign(truth);
    let late_rows = per_campaign(too_late);
    let (Some(first), Some(last)) = (
        all.keys().next().map(|k| k.0),
        all.keys().next_back().map(|k| k.0),
    ) else {
        return Comparison::default();
    };
    let campaigns: std::collections::BTreeSet<CampaignId> = all.keys().map(|k| k.1).collect();
    let mut minutes = vec![];
    let mut end = first;
    while end <= last {
        let mut row = MinuteRow {
            minute_end_ms: end,
            truth_on_time: 0,
            truth_too_late: 0,
            prometheus: 0,
            campaigns_apart: 0,
        };
        for c in &campaigns {
            let total = all.get(&(end, *c)).copied().unwrap_or(0);
            let too_late = late_rows.get(&(end, *c)).copied().unwrap_or(0);
            let live = prometheus.get(&(end, *c)).copied().unwrap_or(0);
            row.truth_on_time += total - too_late;
            row.truth_too_late += too_late;
            row.prometheus += live;
            if total - too_late != live {
                row.campaigns_apart += 1;
            }
        }
        minutes.push(row);
        end += MINUTE_MS;
    }
    Comparison {
        minutes,
        prometheus_late: late,
    }
}

/// Why Prometheus could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("querying Prometheus: {0}")]
    Http(#[from] reqwest::Error),
    #[error("Prometheus answered {query:?} with {message}")]
    Answer { query: String, message: String },
}

#[derive(Deserialize)]
struct Answer {
    status: String,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    data: Option<Matrix>,
}

#[derive(Deserialize)]
struct Matrix {
    result: Vec<RangeSeries>,
}

#[derive(Deserialize)]
struct RangeSeries {
    metric: BTreeMap<String, String>,
    values: Vec<(f64, String)>,
}

/// Prometheus' counts of the run's minutes: `adclick_clicks` per minute and campaign, and the
/// sum of `adclick_late_clicks` from `first_end_ms` to `late_until_ms`. `matchers`: extra label
/// matchers every selector gets (e.g. `test_id=""` to leave test runs out).
pub async fn read_prometheus(
    client: &reqwest::Client,
    base_url: &str,
    matchers: &str,
    first_end_ms: i64,
    last_end_ms: i64,
    late_until_ms: i64,
) -> Result<(BTreeMap<(i64, CampaignId), u64>, u64), CheckError> {
    let clicks = format!(
        "sum by (advertiser_id, campaign_id) (sum_over_time(adclick_clicks{{{matchers}}}[59999ms]))"
    );
    let late = format!("sum(sum_over_time(adclick_late_clicks{{{matchers}}}[59999ms]))");
    let mut per_minute = BTreeMap::new();
    for series in query_range(client, base_url, &clicks, first_end_ms, last_end_ms).await? {
        let id = |name: &str| {
            series
                .metric
                .get(name)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let campaign = (id("advertiser_id"), id("campaign_id"));
        for (t, v) in series.values {
            let n = v.parse::<f64>().unwrap_or(0.0) as u64;
            per_minute.insert(((t * 1000.0).round() as i64, campaign), n);
        }
    }
    let mut late_total = 0;
    for series in query_range(client, base_url, &late, first_end_ms, late_until_ms).await? {
        late_total += series
            .values
            .iter()
            .map(|(_, v)| v.parse::<f64>().unwrap_or(0.0) as u64)
            .sum::<u64>();
    }
    Ok((per_minute, late_total))
}

async fn query_range(
    client: &reqwest::Client,
    base_url: &str,
    query: &str,
    start_ms: i64,
    end_ms: i64,
) -> Result<Vec<RangeSeries>, CheckError> {
    let secs = |ms: i64| format!("{:.3}", ms as f64 / 1000.0);
    let body = client
        .post(format!(
            "{}/api/v1/query_range",
            base_url.trim_end_matches('/')
        ))
        .form(&[
            ("query", query.to_string()),
            ("start", secs(start_ms)),
            ("end", secs(end_ms)),
            ("step", "60".to_string()),
        ])
        .send()
        .await?
        .bytes()
        .await?;
    let answer: Answer = serde_json::from_slice(&body).map_err(|e| CheckError::Answer {
        query: query.into(),
        message: format!("a body that is not the API's JSON ({e})"),
    })?;
    if answer.status != "success" {
        return Err(CheckError::Answer {
            query: query.into(),
            message: answer.error.unwrap_or(answer.status),
        });
    }
    Ok(answer.data.map(|d| d.result).unwrap_or_default())
}

/// `2026-12-01 21:14` for a minute's end.
fn utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = adclick_click::archive::civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::population::AdRef;

    fn key(minute: i64, campaign: u64, ad: u64) -> TruthKey {
        TruthKey {
            minute_end_ms: minute * MINUTE_MS,
            ad: AdRef {
                advertiser_id: 1,
                campaign_id: campaign,
                ad_id: ad,
            },
        }
    }

    #[test]
    fn equal_counts_are_exact_and_any_difference_is_named() {
        let truth: BTreeMap<TruthKey, u64> =
            [(key(10, 5, 1), 3), (key(10, 5, 2), 2), (key(12, 6, 3), 4)]
                .into_iter()
                .collect();
        let too_late: BTreeMap<TruthKey, u64> = [(key(12, 6, 3), 1)].into_iter().collect();
        let mut prom: BTreeMap<(i64, CampaignId), u64> =
            [((10 * MINUTE_MS, (1, 5)), 5), ((12 * MINUTE_MS, (1, 6)), 3)]
                .into_iter()
                .collect();
        let c = compare(&truth, &too_late, &prom, 1);
        assert!(c.is_exact(), "{}", c.render());
        assert_eq!(c.minutes.len(), 3, "the empty minute between is a row");
        assert_eq!((c.truth_total(), c.prometheus_total()), (9, 9));

        prom.insert((12 * MINUTE_MS, (1, 6)), 4);
        let c = compare(&truth, &too_late, &prom, 1);
        assert!(!c.is_exact());
        assert_eq!(c.minutes[2].campaigns_apart, 1);
        assert!(c.render().contains("NOT equal"));
        prom.insert((12 * MINUTE_MS, (1, 6)), 3);
        assert!(
            !compare(&truth, &too_late, &prom, 0).is_exact(),
            "late clicks missing"
        );
    }

    #[test]
    fn minutes_print_in_utc() {
        assert_eq!(utc(0), "1970-01-01 00:00");
        assert_eq!(utc(1_795_000_020_000), "2026-11-18 11:07");
    }
}
