//! A run's spend and unique users (`truth::money`) against the stream's series (issue #19):
//! `adclick_spend_micros`, `adclick_unique_users` and `adclick_late_spend_micros`.
//!
//! The stream folds per partition: each partition keeps its own top ads of a minute, every other
//! ad of the campaign goes into that partition's `ad_id="other"`. So the comparison is per
//! (minute, campaign, partition, ad or `other`), where it is exact for both figures:
//! - the ads with their own series are those Prometheus holds for that minute and partition (a
//!   series written with 0 too); the truth's other ads of the campaign on that partition are
//!   `other`;
//! - spend: the sum of the on-time clicks' prices of the cell (the too-late part is in
//!   `adclick_late_spend_micros`, compared in total, as the clicks are);
//! - unique users: the distinct non-zero user hashes of the cell's on-time clicks, for `other`
//!   the union over its ads. A hot ad's users are counted per partition, and so compared; summed
//!   over partitions the stream's figure is at least the truth's (a user in two partitions
//!   counts in each), which is why the per-ad sum is never compared.
//!
//! The flood campaigns' unique users are not compared: which of a flood's clicks were valid
//! follows from ingest's receive clock (`check` compares the flood totals); their spend is (the
//! floods are unpriced: 0). Spend per minute and campaign, summed over partitions and `other`,
//! is what the rendered table shows.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use adclick_click::minute::MINUTE_MS;

use super::{CampaignId, CheckError, query_range, utc};
use crate::truth::money::Money;

/// The stream's figure of a cell: (minute end, campaign, partition, `ad_id` label).
pub type CellKey = (i64, CampaignId, u32, String);

/// A figure per cell, as Prometheus holds it.
pub type CellFigures = BTreeMap<CellKey, u64>;

/// The `ad_id` label of a campaign's folded ads.
pub const OTHER: &str = "other";

pub const SPEND: &str = "adclick_spend_micros";
pub const UNIQUE_USERS: &str = "adclick_unique_users";
pub const LATE_SPEND: &str = "adclick_late_spend_micros";

/// What Prometheus holds for the run: both figures per cell, and the late spend in total.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveMoney {
    pub spend: CellFigures,
    pub unique_users: CellFigures,
    /// `adclick_late_spend_micros` from the run's first minute to a few after its last.
    pub late_spend: u64,
}

/// One figure of one cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoneyCell {
    pub minute_end_ms: i64,
    pub campaign: CampaignId,
    pub partition: u32,
    /// The ad id, or `other`.
    pub ad: String,
    /// [`SPEND`] or [`UNIQUE_USERS`].
    pub metric: &'static str,
    pub truth: u64,
    pub prometheus: u64,
}

/// A minute's spend over the run's campaigns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpendMinute {
    pub minute_end_ms: i64,
    pub truth_on_time: u64,
    pub truth_too_late: u64,
    pub prometheus: u64,
    /// Cells (either figure) that differ in this minute.
    pub cells_apart: usize,
}

/// The comparison of spend and unique users.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MoneyComparison {
    pub cells: Vec<MoneyCell>,
    pub minutes: Vec<SpendMinute>,
    pub truth_late_spend: u64,
    pub prometheus_late_spend: u64,
}

impl MoneyComparison {
    pub fn is_exact(&self) -> bool {
        self.cells.iter().all(|c| c.truth == c.prometheus)
            && self.truth_late_spend == self.prometheus_late_spend
    }

    /// The cells that differ.
    pub fn differences(&self) -> impl Iterator<Item = &MoneyCell> {
        self.cells.iter().filter(|c| c.truth != c.prometheus)
    }

    /// A row per minute, every differing cell named, the totals.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<22} {:>16} {:>16} {:>20}  cells apart",
            "minute (UTC, end)", "spend (micros)", "too late", SPEND
        );
        for m in &self.minutes {
            let _ = writeln!(
                out,
                "{:<22} {:>16} {:>16} {:>20}  {}{}",
                utc(m.minute_end_ms),
                m.truth_on_time,
                m.truth_too_late,
                m.prometheus,
                m.cells_apart,
                if m.truth_on_time == m.prometheus && m.cells_apart == 0 {
                    ""
                } else {
                    "   <- differs"
                }
            );
        }
        for c in self.differences() {
            let _ = writeln!(
                out,
                "differs: {} advertiser {} campaign {} ad {} partition {} {}: truth {}, Prometheus {}",
                utc(c.minute_end_ms),
                c.campaign.0,
                c.campaign.1,
                c.ad,
                c.partition,
                c.metric,
                c.truth,
                c.prometheus
            );
        }
        let users = self.cells.iter().filter(|c| c.metric == UNIQUE_USERS);
        let (users_cells, users_apart) = users.fold((0, 0), |(n, apart), c| {
            (n + 1, apart + usize::from(c.truth != c.prometheus))
        });
        let truth_on_time: u64 = self.minutes.iter().map(|m| m.truth_on_time).sum();
        let prometheus: u64 = self.minutes.iter().map(|m| m.prometheus).sum();
        let _ = writeln!(
            out,
            "spend: truth {} = {} on time + {} too late; Prometheus {} = {SPEND} {} + {LATE_SPEND} {}: {}",
            truth_on_time + self.truth_late_spend,
            truth_on_time,
            self.truth_late_spend,
            prometheus + self.prometheus_late_spend,
            prometheus,
            self.prometheus_late_spend,
            if self.is_exact() {
                "equal"
            } else {
                "NOT equal"
            }
        );
        let _ = writeln!(
            out,
            "{UNIQUE_USERS}: {users_cells} cells (ad or other, partition, minute), {users_apart} apart"
        );
        out
    }
}

/// What the truth holds for one cell's on-time clicks.
#[derive(Debug, Default)]
struct TruthCell {
    spend_micros: u64,
    users: BTreeSet<u64>,
}

/// Compares the truth's spend and users of the run's `campaigns` over the minutes ending
/// `first_end_ms..=last_end_ms` with what Prometheus holds (`live`). `flood_campaigns`: whose
/// unique users are not compared (module doc).
pub fn compare_money(
    money: &Money,
    campaigns: &BTreeSet<CampaignId>,
    flood_campaigns: &BTreeSet<CampaignId>,
    first_end_ms: i64,
    last_end_ms: i64,
    live: &LiveMoney,
) -> MoneyComparison {
    let in_run = |minute: i64, campaign: &CampaignId| {
        (first_end_ms..=last_end_ms).contains(&minute) && campaigns.contains(campaign)
    };
    // The ads with their own series, per (minute, campaign, partition): a non-zero sample. The
    // minute after an ad's own series it gets a 0 even when its new clicks went to `other`
    // (the zero that keeps Prometheus from carrying the count forward), so a 0 says nothing.
    let mut own: BTreeSet<CellKey> = BTreeSet::new();
    for (key, value) in live.spend.iter().chain(live.unique_users.iter()) {
        if *value != 0 && key.3 != OTHER && in_run(key.0, &key.1) {
            own.insert(key.clone());
        }
    }
    let mut truth: BTreeMap<CellKey, TruthCell> = BTreeMap::new();
    let mut too_late: BTreeMap<i64, u64> = BTreeMap::new();
    for (k, c) in &money.user_clicks {
        let campaign = (k.ad.advertiser_id, k.ad.campaign_id);
        *too_late.entry(k.minute_end_ms).or_default() += c.too_late_spend_micros;
        if c.clicks == c.too_late_clicks {
            continue;
        }
        let mut key: CellKey = (
            k.minute_end_ms,
            campaign,
            k.partition,
            k.ad.ad_id.to_string(),
        );
        if !own.contains(&key) {
            key.3 = OTHER.to_string();
        }
        let cell = truth.entry(key).or_default();
        cell.spend_micros += c.spend_micros - c.too_late_spend_micros;
        if k.user_hash != 0 {
            cell.users.insert(k.user_hash);
        }
    }
    let mut keys: BTreeSet<CellKey> = truth.keys().cloned().collect();
    keys.extend(
        live.spend
            .keys()
            .chain(live.unique_users.keys())
            .filter(|k| in_run(k.0, &k.1))
            .cloned(),
    );
    let mut cells = vec![];
    let mut minutes: BTreeMap<i64, SpendMinute> = BTreeMap::new();
    for key in keys {
        let t = truth.get(&key);
        let (minute_end_ms, campaign, partition, ad) = key.clone();
        let minute = minutes.entry(minute_end_ms).or_insert(SpendMinute {
            minute_end_ms,
            truth_on_time: 0,
            truth_too_late: 0,
            prometheus: 0,
            cells_apart: 0,
        });
        let spend = MoneyCell {
            minute_end_ms,
            campaign,
            partition,
            ad: ad.clone(),
            metric: SPEND,
            truth: t.map_or(0, |t| t.spend_micros),
            prometheus: live.spend.get(&key).copied().unwrap_or(0),
        };
        minute.truth_on_time += spend.truth;
        minute.prometheus += spend.prometheus;
        minute.cells_apart += usize::from(spend.truth != spend.prometheus);
        cells.push(spend);
        if !flood_campaigns.contains(&campaign) {
            let users = MoneyCell {
                minute_end_ms,
                campaign,
                partition,
                ad,
                metric: UNIQUE_USERS,
                truth: t.map_or(0, |t| t.users.len() as u64),
                prometheus: live.unique_users.get(&key).copied().unwrap_or(0),
            };
            minute.cells_apart += usize::from(users.truth != users.prometheus);
            cells.push(users);
        }
    }
    // Every minute of the run is a row, as in the clicks' table.
    let mut end = first_end_ms;
    while end <= last_end_ms {
        let row = minutes.entry(end).or_insert(SpendMinute {
            minute_end_ms: end,
            truth_on_time: 0,
            truth_too_late: 0,
            prometheus: 0,
            cells_apart: 0,
        });
        row.truth_too_late = too_late.get(&end).copied().unwrap_or(0);
        end += MINUTE_MS;
    }
    MoneyComparison {
        cells,
        minutes: minutes.into_values().collect(),
        truth_late_spend: money.too_late_spend.values().map(|s| s.spend_micros).sum(),
        prometheus_late_spend: live.late_spend,
    }
}

/// Prometheus' stream figures of the run's minutes (ending `first_end_ms..=last_end_ms`) per
/// cell, and `adclick_late_spend_micros` summed up to `late_until_ms`. `matchers` as for
/// `read_prometheus`; the rollup's series (`tier="rollup"`, no partition) are left out.
pub async fn read_prometheus_money(
    client: &reqwest::Client,
    base_url: &str,
    matchers: &str,
    first_end_ms: i64,
    last_end_ms: i64,
    late_until_ms: i64,
) -> Result<LiveMoney, CheckError> {
    let selector = |metric: &str| {
        let matchers = matchers.trim().trim_end_matches(',');
        if matchers.is_empty() {
            format!("{metric}{{tier!=\"rollup\"}}")
        } else {
            format!("{metric}{{tier!=\"rollup\",{matchers}}}")
        }
    };
    let mut live = LiveMoney::default();
    for (metric, figures) in [
        (SPEND, &mut live.spend),
        (UNIQUE_USERS, &mut live.unique_users),
    ] {
        let query = format!(
            "sum by (advertiser_id, campaign_id, ad_id, partition) (sum_over_time({}[59999ms]))",
            selector(metric)
        );
        for series in query_range(client, base_url, &query, first_end_ms, last_end_ms).await? {
            let label = |name: &str| series.metric.get(name).map(String::as_str);
            let id = |name: &str| label(name).and_then(|v| v.parse::<u64>().ok());
            let (Some(advertiser), Some(campaign), Some(partition), Some(ad)) = (
                id("advertiser_id"),
                id("campaign_id"),
                label("partition").and_then(|p| p.parse::<u32>().ok()),
                label("ad_id"),
            ) else {
                continue;
            };
            for (t, v) in &series.values {
                let n = v.parse::<f64>().unwrap_or(0.0) as u64;
                figures.insert(
                    (
                        (t * 1000.0).round() as i64,
                        (advertiser, campaign),
                        partition,
                        ad.to_string(),
                    ),
                    n,
                );
            }
        }
    }
    let late = format!("sum(sum_over_time({}[59999ms]))", selector(LATE_SPEND));
    for series in query_range(client, base_url, &late, first_end_ms, late_until_ms).await? {
        live.late_spend += series
            .values
            .iter()
            .map(|(_, v)| v.parse::<f64>().unwrap_or(0.0) as u64)
            .sum::<u64>();
    }
    Ok(live)
}

#[cfg(test)]
mod tests;
