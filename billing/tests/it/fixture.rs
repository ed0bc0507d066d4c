//! Settled days to write: consistent rows (campaigns and advertisers the sums of their ads),
//! and direct reads of the tables, to check what a write left.

use std::collections::BTreeMap;

use adclick_billing::{
    AdDayRow, AdvertiserDayRow, BillingConfig, BillingStore, CampaignDayRow, Day, SettledDayRows,
};
use secrecy::SecretString;
use sqlx::Row;

/// A store on `url`, migrated.
pub async fn store(url: &str) -> BillingStore {
    BillingStore::connect(&config(url)).await.unwrap()
}

pub fn config(url: &str) -> BillingConfig {
    BillingConfig {
        database_url: SecretString::from(url.to_string()),
        ..BillingConfig::default()
    }
}

pub fn day(text: &str) -> Day {
    text.parse().unwrap()
}

/// A ULID-shaped block name whose last characters say `n`.
pub fn ulid(n: u32) -> String {
    format!("01JF{n:022}")
}

/// One ad's figures: (advertiser, campaign, ad, valid clicks, spend, unique users, invalid).
pub type Ad = (u64, u64, u64, u64, u64, u64, &'static [(&'static str, u64)]);

/// A day of `ads`, with campaigns and advertisers summed from them; `uniques` overrides the
/// campaign (`Some(campaign)`) or advertiser (`None` campaign) unique users, which default to
/// the most of their ads' (a lower bound of the truth, which is what a union could be).
pub fn settled_day(
    day: Day,
    block: u32,
    ads: &[Ad],
    uniques: &[((u64, Option<u64>), u64)],
) -> SettledDayRows {
    let mut campaigns: BTreeMap<(u64, u64), CampaignDayRow> = BTreeMap::new();
    let mut advertisers: BTreeMap<u64, AdvertiserDayRow> = BTreeMap::new();
    let rows: Vec<AdDayRow> = ads
        .iter()
        .map(
            |&(advertiser_id, campaign_id, ad_id, clicks, spend, users, invalid)| {
                let c = campaigns
                    .entry((advertiser_id, campaign_id))
                    .or_insert(CampaignDayRow {
                        advertiser_id,
                        campaign_id,
                        valid_clicks: 0,
                        spend_micros: 0,
                        unique_users: 0,
                    });
                c.valid_clicks += clicks;
                c.spend_micros += spend;
                c.unique_users = c.unique_users.max(users);
                let a = advertisers
                    .entry(advertiser_id)
                    .or_insert(AdvertiserDayRow {
                        advertiser_id,
                        valid_clicks: 0,
                        spend_micros: 0,
                        unique_users: 0,
                    });
                a.valid_clicks += clicks;
                a.spend_micros += spend;
                a.unique_users = a.unique_users.max(users);
                AdDayRow {
                    advertiser_id,
                    campaign_id,
                    ad_id,
                    valid_clicks: clicks,
                    spend_micros: spend,
                    unique_users: users,
                    invalid: invalid.iter().map(|(r, n)| (r.to_string(), *n)).collect(),
                }
            },
        )
        .collect();
    for &((advertiser, campaign), users) in uniques {
        match campaign {
            Some(campaign) => {
                campaigns
                    .get_mut(&(advertiser, campaign))
                    .unwrap()
                    .unique_users = users
            }
            None => advertisers.get_mut(&advertiser).unwrap().unique_users = users,
        }
    }
    SettledDayRows {
        day,
        block_ulid: ulid(block),
        settled_at_ms: (day.0 + 1) * 86_400_000 + 600_000 + i64::from(block),
        ads: rows,
        campaigns: campaigns.into_values().collect(),
        advertisers: advertisers.into_values().collect(),
    }
}

/// How many rows each table holds for `day`: settled_day, ad_day, ad_day_invalid,
/// campaign_day, advertiser_day.
pub async fn row_counts(url: &str, day: Day) -> [i64; 5] {
    let mut conn: sqlx::PgConnection = sqlx::Connection::connect(url).await.unwrap();
    let mut counts = [0; 5];
    for (i, table) in [
        "settled_day",
        "ad_day",
        "ad_day_invalid",
        "campaign_day",
        "advertiser_day",
    ]
    .iter()
    .enumerate()
    {
        counts[i] = sqlx::query(&format!(
            "SELECT count(*) FROM billing.{table} WHERE day = DATE '1970-01-01' + $1"
        ))
        .bind(i32::try_from(day.0).unwrap())
        .fetch_one(&mut conn)
        .await
        .unwrap()
        .get(0);
    }
    counts
}

/// The ad rows of `day` as text, ordered: what a rewrite must have replaced exactly.
pub async fn ad_rows(url: &str, day: Day) -> Vec<String> {
    let mut conn: sqlx::PgConnection = sqlx::Connection::connect(url).await.unwrap();
    sqlx::query(
        "SELECT concat_ws(' ', advertiser_id, campaign_id, ad_id, valid_clicks, spend_micros, \
         unique_users) FROM billing.ad_day WHERE day = DATE '1970-01-01' + $1 \
         ORDER BY advertiser_id, campaign_id, ad_id",
    )
    .bind(i32::try_from(day.0).unwrap())
    .fetch_all(&mut conn)
    .await
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}
