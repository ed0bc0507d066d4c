//! A run's ground truth against what Prometheus holds (`adclick check-truth`, the demo's last
//! step): per minute and campaign, the truth's clicks within the allowed lateness against
//! `adclick_clicks`; in total, every click of the truth against `adclick_clicks` plus
//! `adclick_late_clicks` (a click that arrives after its minute is final is counted live in the
//! minute open when it arrives, and by the rollup in its own).
//!
//! With invalid traffic (`invalid.csv` present), also per minute, campaign and reason the truth's
//! invalid clicks against `adclick_invalid_clicks` ([`compare_invalid`]): every reason of every
//! campaign of the run must be equal (an honest campaign's velocity reasons 0), except a flood
//! campaign's velocity reasons, where `adclick_clicks` plus `user_velocity` plus `ip_velocity`
//! must equal `floods.csv` instead (ingest's receive clock splits them, the rollup checks the
//! split). The invalid sends are all on time, so `adclick_late_invalid_clicks` is not read.
//!
//! With users or prices (`user_clicks.csv` present), also spend and unique users per minute,
//! campaign, partition and ad or `other` ([`money`]).
//!
//! Prometheus is read with `sum_over_time(...[59999ms])` at each minute's end: exactly the one
//! sample every series has per minute, stamped at the minute's end.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use adclick_click::minute::MINUTE_MS;
use serde::Deserialize;

use crate::truth::{InvalidKey, TruthKey};

pub mod money;

/// The velocity reasons: a flood's invalid clicks.
const VELOCITY_REASONS: [&str; 2] = ["user_velocity", "ip_velocity"];

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

/// Prometheus' invalid clicks per (minute end, campaign, reason name).
pub type InvalidCounts = BTreeMap<(i64, CampaignId, String), u64>;

/// A campaign's invalid clicks of one reason in one minute, where the truth or Prometheus has any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidCell {
    pub minute_end_ms: i64,
    pub campaign: CampaignId,
    pub reason: String,
    pub truth: u64,
    pub prometheus: u64,
}

/// A flood campaign's clicks in one minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FloodRow {
    pub minute_end_ms: i64,
    pub campaign: CampaignId,
    /// `floods.csv`.
    pub truth: u64,
    /// `adclick_clicks`.
    pub valid: u64,
    /// `adclick_invalid_clicks` of the velocity reasons.
    pub velocity: u64,
}

impl FloodRow {
    pub fn is_exact(&self) -> bool {
        self.truth == self.valid + self.velocity
    }
}

/// The invalid clicks' comparison.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InvalidComparison {
    pub cells: Vec<InvalidCell>,
    pub floods: Vec<FloodRow>,
}

impl InvalidComparison {
    pub fn is_exact(&self) -> bool {
        self.cells.iter().all(|c| c.truth == c.prometheus)
            && self.floods.iter().all(FloodRow::is_exact)
    }

    /// Totals per reason, then the flood rows, then every cell that differs.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut per_reason: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
        for c in &self.cells {
            let t = per_reason.entry(&c.reason).or_default();
            t.0 += c.truth;
            t.1 += c.prometheus;
        }
        let _ = writeln!(
            out,
            "{:<22} {:>12} {:>22}",
            "reason", "truth", "adclick_invalid_clicks"
        );
        for (reason, (truth, prom)) in &per_reason {
            let mark = if truth == prom { "" } else { "   <- differs" };
            let _ = writeln!(out, "{reason:<22} {truth:>12} {prom:>22}{mark}");
        }
        if !self.floods.is_empty() {
            let _ = writeln!(
                out,
                "{:<22} {:>10} {:>12} {:>14} {:>10}",
                "flood minute (UTC)", "campaign", "floods.csv", "adclick_clicks", "velocity"
            );
            for f in &self.floods {
                let _ = writeln!(
                    out,
                    "{:<22} {:>10} {:>12} {:>14} {:>10}{}",
                    utc(f.minute_end_ms),
                    f.campaign.1,
                    f.truth,
                    f.valid,
                    f.velocity,
                    if f.is_exact() { "" } else { "   <- differs" }
                );
            }
        }
        for c in self.cells.iter().filter(|c| c.truth != c.prometheus) {
            let _ = writeln!(
                out,
                "differs: {} advertiser {} campaign {} {}: truth {}, Prometheus {}",
                utc(c.minute_end_ms),
                c.campaign.0,
                c.campaign.1,
                c.reason,
                c.truth,
                c.prometheus
            );
        }
        let _ = writeln!(
            out,
            "invalid clicks: {}",
            if self.is_exact() {
                "equal"
            } else {
                "NOT equal"
            }
        );
        out
    }
}

/// Compares the truth's invalid clicks (`invalid`) and flood totals (`floods`) of the run's
/// campaigns (`campaigns`: every campaign of the truth's files) over the minutes ending
/// `first_end_ms..=last_end_ms` with Prometheus' `adclick_clicks` (`clicks`) and
/// `adclick_invalid_clicks` (`prometheus`). Module doc: what must be equal.
pub fn compare_invalid(
    invalid: &BTreeMap<InvalidKey, u64>,
    floods: &BTreeMap<TruthKey, u64>,
    campaigns: &BTreeSet<CampaignId>,
    first_end_ms: i64,
    last_end_ms: i64,
    clicks: &BTreeMap<(i64, CampaignId), u64>,
    prometheus: &InvalidCounts,
) -> InvalidComparison {
    let in_range = |minute: i64| (first_end_ms..=last_end_ms).contains(&minute);
    let mut flood_truth: BTreeMap<(i64, CampaignId), u64> = BTreeMap::new();
    for (k, n) in floods {
        *flood_truth
            .entry((k.minute_end_ms, (k.ad.advertiser_id, k.ad.campaign_id)))
            .or_default() += n;
    }
    let flood_campaigns: BTreeSet<CampaignId> = flood_truth.keys().map(|k| k.1).collect();
    let is_flood_velocity = |campaign: &CampaignId, reason: &str| {
        flood_campaigns.contains(campaign) && VELOCITY_REASONS.contains(&reason)
    };
    let mut cells: BTreeMap<(i64, CampaignId, String), (u64, u64)> = BTreeMap::new();
    for (k, n) in invalid {
        let key = (
            k.minute_end_ms,
            (k.advertiser_id, k.campaign_id),
            k.reason.as_str().to_string(),
        );
        cells.entry(key).or_default().0 += n;
    }
    let mut flood_velocity: BTreeMap<(i64, CampaignId), u64> = BTreeMap::new();
    for ((minute, campaign, reason), n) in prometheus {
        if !in_range(*minute) || !campaigns.contains(campaign) {
            continue;
        }
        if is_flood_velocity(campaign, reason) {
            *flood_velocity.entry((*minute, *campaign)).or_default() += n;
        } else {
            cells
                .entry((*minute, *campaign, reason.clone()))
                .or_default()
                .1 += n;
        }
    }
    let mut flood_keys: BTreeSet<(i64, CampaignId)> = flood_truth.keys().copied().collect();
    flood_keys.extend(flood_velocity.keys().copied());
    flood_keys.extend(
        clicks
            .keys()
            .filter(|(m, c)| in_range(*m) && flood_campaigns.contains(c)),
    );
    InvalidComparison {
        cells: cells
            .into_iter()
            .map(
                |((minute_end_ms, campaign, reason), (truth, prometheus))| InvalidCell {
                    minute_end_ms,
                    campaign,
                    reason,
                    truth,
                    prometheus,
                },
            )
            .collect(),
        floods: flood_keys
            .into_iter()
            .map(|key| FloodRow {
                minute_end_ms: key.0,
                campaign: key.1,
                truth: flood_truth.get(&key).copied().unwrap_or(0),
                valid: clicks.get(&key).copied().unwrap_or(0),
                velocity: flood_velocity.get(&key).copied().unwrap_or(0),
            })
            .collect(),
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

/// Prometheus' `adclick_invalid_clicks` per minute, campaign and reason, over the minutes ending
/// `first_end_ms..=last_end_ms`. `matchers` as for [`read_prometheus`].
pub async fn read_prometheus_invalid(
    client: &reqwest::Client,
    base_url: &str,
    matchers: &str,
    first_end_ms: i64,
    last_end_ms: i64,
) -> Result<InvalidCounts, CheckError> {
    let query = format!(
        "sum by (advertiser_id, campaign_id, reason) (sum_over_time(adclick_invalid_clicks{{{matchers}}}[59999ms]))"
    );
    let mut counts = InvalidCounts::new();
    for series in query_range(client, base_url, &query, first_end_ms, last_end_ms).await? {
        let id = |name: &str| {
            series
                .metric
                .get(name)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let campaign = (id("advertiser_id"), id("campaign_id"));
        let reason = series.metric.get("reason").cloned().unwrap_or_default();
        for (t, v) in &series.values {
            let n = v.parse::<f64>().unwrap_or(0.0) as u64;
            counts.insert(((t * 1000.0).round() as i64, campaign, reason.clone()), n);
        }
    }
    Ok(counts)
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
    fn invalid_clicks_compare_per_reason_and_floods_by_their_totals() {
        use adclick_invalid::Reason;
        let invalid_key = |minute: i64, campaign: u64, reason: Reason| InvalidKey {
            minute_end_ms: minute * MINUTE_MS,
            advertiser_id: 1,
            campaign_id: campaign,
            reason,
        };
        let invalid: BTreeMap<InvalidKey, u64> = [
            (invalid_key(10, 5, Reason::BotUserAgent), 2),
            (invalid_key(10, 5, Reason::Prefetch), 1),
            (invalid_key(11, 6, Reason::TooFast), 3),
        ]
        .into_iter()
        .collect();
        // Campaign 9 is a flood's: 150 clicks in minute 10.
        let floods: BTreeMap<TruthKey, u64> = [(key(10, 9, 99), 150)].into_iter().collect();
        let campaigns: BTreeSet<CampaignId> = [(1, 5), (1, 6), (1, 9)].into_iter().collect();
        let clicks: BTreeMap<(i64, CampaignId), u64> =
            [((10 * MINUTE_MS, (1, 9)), 100)].into_iter().collect();
        let s = |x: &str| x.to_string();
        let mut prom: InvalidCounts = [
            ((10 * MINUTE_MS, (1, 5), s("bot_user_agent")), 2),
            ((10 * MINUTE_MS, (1, 5), s("prefetch")), 1),
            ((11 * MINUTE_MS, (1, 6), s("too_fast")), 3),
            ((10 * MINUTE_MS, (1, 9), s("user_velocity")), 49),
            ((10 * MINUTE_MS, (1, 9), s("ip_velocity")), 1),
            // Another run's campaign, and a minute outside the run: not this run's.
            ((10 * MINUTE_MS, (1, 77), s("too_fast")), 5),
            ((30 * MINUTE_MS, (1, 5), s("too_fast")), 5),
        ]
        .into_iter()
        .collect();
        let compare = |prom: &InvalidCounts| {
            compare_invalid(
                &invalid,
                &floods,
                &campaigns,
                10 * MINUTE_MS,
                11 * MINUTE_MS,
                &clicks,
                prom,
            )
        };
        let c = compare(&prom);
        assert!(c.is_exact(), "{}", c.render());
        assert_eq!(c.floods.len(), 1);
        assert!(c.render().contains("invalid clicks: equal"));
        // An honest campaign's click counted as velocity is a difference.
        prom.insert((11 * MINUTE_MS, (1, 6), s("ip_velocity")), 1);
        let c = compare(&prom);
        assert!(!c.is_exact());
        assert!(
            c.render().contains("ip_velocity: truth 0, Prometheus 1"),
            "{}",
            c.render()
        );
        prom.remove(&(11 * MINUTE_MS, (1, 6), s("ip_velocity")));
        // A flood click missing.
        prom.insert((10 * MINUTE_MS, (1, 9), s("user_velocity")), 48);
        assert!(!compare(&prom).is_exact());
        prom.insert((10 * MINUTE_MS, (1, 9), s("user_velocity")), 49);
        // A bot missing.
        prom.remove(&(10 * MINUTE_MS, (1, 5), s("bot_user_agent")));
        assert!(!compare(&prom).is_exact());
    }

    #[test]
    fn minutes_print_in_utc() {
        assert_eq!(utc(0), "1970-01-01 00:00");
        assert_eq!(utc(1_795_000_020_000), "2026-11-18 11:07");
    }
}
