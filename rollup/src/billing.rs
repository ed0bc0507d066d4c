//! The settled day as the billing store keeps it: the [`crate::daily`] figures converted into
//! `adclick-billing`'s rows, and the written rows' count for the report.
//!
//! The store's rows and the block are published together (`adclick_billing`'s crate docs say in
//! which order and what each failure leaves): [`crate::run`] writes the rows in a transaction,
//! publishes the block, then commits.

use adclick_billing::{AdDayRow, AdvertiserDayRow, CampaignDayRow, SettledDayRows};
use adclick_click::Day;
use serde::Serialize;

use crate::daily::DailyFigures;

/// The rows of `daily`, for the block `block_ulid` settled at `settled_at_ms`.
pub fn rows(
    day: Day,
    block_ulid: &str,
    settled_at_ms: i64,
    daily: &DailyFigures,
) -> SettledDayRows {
    SettledDayRows {
        day,
        block_ulid: block_ulid.to_string(),
        settled_at_ms,
        ads: daily
            .ads
            .iter()
            .map(|ad| AdDayRow {
                advertiser_id: ad.advertiser_id,
                campaign_id: ad.campaign_id,
                ad_id: ad.ad_id,
                valid_clicks: ad.valid_clicks,
                spend_micros: ad.spend_micros,
                unique_users: ad.unique_users,
                invalid: ad
                    .invalid
                    .iter()
                    .map(|(reason, n)| (reason.to_string(), *n))
                    .collect(),
            })
            .collect(),
        campaigns: daily
            .campaigns
            .iter()
            .map(|c| CampaignDayRow {
                advertiser_id: c.advertiser_id,
                campaign_id: c.campaign_id,
                valid_clicks: c.valid_clicks,
                spend_micros: c.spend_micros,
                unique_users: c.unique_users,
            })
            .collect(),
        advertisers: daily
            .advertisers
            .iter()
            .map(|a| AdvertiserDayRow {
                advertiser_id: a.advertiser_id,
                valid_clicks: a.valid_clicks,
                spend_micros: a.spend_micros,
                unique_users: a.unique_users,
            })
            .collect(),
    }
}

/// What a run wrote to the billing store (committed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BillingReport {
    /// The store's URL, password hidden.
    pub database: String,
    pub ads: u64,
    pub campaigns: u64,
    pub advertisers: u64,
}

impl BillingReport {
    pub fn of(database: String, rows: &SettledDayRows) -> BillingReport {
        BillingReport {
            database,
            ads: rows.ads.len() as u64,
            campaigns: rows.campaigns.len() as u64,
            advertisers: rows.advertisers.len() as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::daily::{AdDay, AdvertiserDay, CampaignDay};

    #[test]
    fn the_daily_figures_become_rows_the_store_accepts() {
        let daily = DailyFigures {
            ads: vec![
                AdDay {
                    advertiser_id: 1,
                    campaign_id: 2,
                    ad_id: 3,
                    valid_clicks: 4,
                    spend_micros: 1_000,
                    unique_users: 2,
                    invalid: BTreeMap::from([("prefetch", 1)]),
                },
                AdDay {
                    advertiser_id: 1,
                    campaign_id: 2,
                    ad_id: 5,
                    valid_clicks: 1,
                    spend_micros: 7,
                    unique_users: 1,
                    invalid: BTreeMap::new(),
                },
            ],
            campaigns: vec![CampaignDay {
                advertiser_id: 1,
                campaign_id: 2,
                valid_clicks: 5,
                spend_micros: 1_007,
                unique_users: 2,
            }],
            advertisers: vec![AdvertiserDay {
                advertiser_id: 1,
                valid_clicks: 5,
                spend_micros: 1_007,
                unique_users: 2,
            }],
            unique_users: 2,
        };
        let rows = rows(Day(20_000), "01JF0000000000000000000000", 42, &daily);
        assert_eq!(rows.day, Day(20_000));
        assert_eq!(
            rows.ads[0].invalid,
            BTreeMap::from([("prefetch".to_string(), 1)])
        );
        assert_eq!(
            (rows.ads.len(), rows.campaigns.len(), rows.advertisers.len()),
            (2, 1, 1)
        );
        rows.validate().expect("consistent rows");
        assert_eq!(
            BillingReport::of("postgres://x".into(), &rows),
            BillingReport {
                database: "postgres://x".into(),
                ads: 2,
                campaigns: 1,
                advertisers: 1
            }
        );
    }
}
