//! What one settled day brings to the store: the rollup's daily figures per ad, campaign and
//! advertiser, the block's ULID and the settle time, as plain integers (the lead's rollup
//! converts its figures into these), and the checks they pass before anything is written.

use std::collections::{BTreeMap, HashMap};

use crate::Day;
use crate::day::pg_days;

/// One settled day: every row the store keeps for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettledDayRows {
    /// The settlement day: clicks whose minute ends in it, UTC.
    pub day: Day,
    /// The ULID of the rollup's block of the day (26 characters, Crockford base32).
    pub block_ulid: String,
    /// When the rollup settled the day, ms since the epoch.
    pub settled_at_ms: i64,
    pub ads: Vec<AdDayRow>,
    pub campaigns: Vec<CampaignDayRow>,
    pub advertisers: Vec<AdvertiserDayRow>,
}

/// One ad's day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdDayRow {
    pub advertiser_id: u64,
    pub campaign_id: u64,
    pub ad_id: u64,
    pub valid_clicks: u64,
    /// Sum of the valid clicks' `price_micros`.
    pub spend_micros: u64,
    /// Distinct non-zero `user_hash` among the ad's valid clicks of the day.
    pub unique_users: u64,
    /// Invalid clicks by reason label (`bot_user_agent`, `too_fast`, …); never billed. Reasons
    /// with no clicks may be left out.
    pub invalid: BTreeMap<String, u64>,
}

/// One campaign's day: its ads' clicks and spend summed, its unique users counted over all its
/// ads' valid clicks together (not a sum of the ads' figures).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignDayRow {
    pub advertiser_id: u64,
    pub campaign_id: u64,
    pub valid_clicks: u64,
    pub spend_micros: u64,
    pub unique_users: u64,
}

/// One advertiser's day: its campaigns' clicks and spend summed, its unique users counted over
/// all its campaigns' valid clicks together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdvertiserDayRow {
    pub advertiser_id: u64,
    pub valid_clicks: u64,
    pub spend_micros: u64,
    pub unique_users: u64,
}

/// Rows that do not describe one consistent day; nothing was written.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InvalidRows {
    #[error("block ULID {0:?} is not 26 characters of Crockford base32")]
    BlockUlid(String),
    #[error("day {0} is outside what PostgreSQL's date holds")]
    DayOutOfRange(Day),
    #[error("an invalid-click reason label is empty or has control characters: {0:?}")]
    ReasonLabel(String),
    #[error("{level} {key}: {unique_users} unique users but {valid_clicks} valid clicks")]
    MoreUsersThanClicks {
        level: &'static str,
        key: String,
        unique_users: u64,
        valid_clicks: u64,
    },
    #[error(
        "{level} {key}: its rows below it sum to {below_clicks} clicks and {below_spend} micros, its own row says {clicks} and {spend}"
    )]
    SumsDisagree {
        level: &'static str,
        key: String,
        clicks: u64,
        spend: u64,
        below_clicks: u64,
        below_spend: u64,
    },
    #[error("{level} {key}: the sum of its rows below it overflows u64")]
    Overflow { level: &'static str, key: String },
}

/// Clicks and spend summed, checked.
#[derive(Default, Clone, Copy)]
struct Sum {
    clicks: u64,
    spend: u64,
    overflow: bool,
}

impl Sum {
    fn add(&mut self, clicks: u64, spend: u64) {
        match (
            self.clicks.checked_add(clicks),
            self.spend.checked_add(spend),
        ) {
            (Some(c), Some(s)) => (self.clicks, self.spend) = (c, s),
            _ => self.overflow = true,
        }
    }
}

impl SettledDayRows {
    /// Checks the rows before they are written: the ULID and day are storable, reason labels
    /// are labels, no level counts more users than clicks, and each campaign's (advertiser's)
    /// clicks and spend are its ads' (campaigns') summed — so a conversion slip in the caller
    /// fails here, not on an invoice. A campaign or advertiser with no rows below it is one with
    /// no activity and must then say 0.
    pub fn validate(&self) -> Result<(), InvalidRows> {
        if !is_ulid(&self.block_ulid) {
            return Err(InvalidRows::BlockUlid(self.block_ulid.clone()));
        }
        if pg_days(self.day).is_none() {
            return Err(InvalidRows::DayOutOfRange(self.day));
        }
        let mut by_campaign: HashMap<(u64, u64), Sum> = HashMap::new();
        for ad in &self.ads {
            let key = || format!("{}/{}/{}", ad.advertiser_id, ad.campaign_id, ad.ad_id);
            users_within_clicks("ad", key, ad.unique_users, ad.valid_clicks)?;
            if let Some(label) = ad.invalid.keys().find(|l| !is_label(l)) {
                return Err(InvalidRows::ReasonLabel(label.clone()));
            }
            by_campaign
                .entry((ad.advertiser_id, ad.campaign_id))
                .or_default()
                .add(ad.valid_clicks, ad.spend_micros);
        }
        let mut by_advertiser: HashMap<u64, Sum> = HashMap::new();
        for campaign in &self.campaigns {
            let key = || format!("{}/{}", campaign.advertiser_id, campaign.campaign_id);
            users_within_clicks(
                "campaign",
                key,
                campaign.unique_users,
                campaign.valid_clicks,
            )?;
            let below = by_campaign
                .remove(&(campaign.advertiser_id, campaign.campaign_id))
                .unwrap_or_default();
            sums_agree(
                "campaign",
                key,
                below,
                campaign.valid_clicks,
                campaign.spend_micros,
            )?;
            by_advertiser
                .entry(campaign.advertiser_id)
                .or_default()
                .add(campaign.valid_clicks, campaign.spend_micros);
        }
        // Ads whose campaign has no row: their campaign's row says 0 (none).
        if let Some(((advertiser, campaign), below)) = by_campaign.into_iter().next() {
            sums_agree(
                "campaign",
                || format!("{advertiser}/{campaign} (no row)"),
                below,
                0,
                0,
            )?;
        }
        for advertiser in &self.advertisers {
            let key = || advertiser.advertiser_id.to_string();
            users_within_clicks(
                "advertiser",
                key,
                advertiser.unique_users,
                advertiser.valid_clicks,
            )?;
            let below = by_advertiser
                .remove(&advertiser.advertiser_id)
                .unwrap_or_default();
            sums_agree(
                "advertiser",
                key,
                below,
                advertiser.valid_clicks,
                advertiser.spend_micros,
            )?;
        }
        if let Some((advertiser, below)) = by_advertiser.into_iter().next() {
            sums_agree(
                "advertiser",
                || format!("{advertiser} (no row)"),
                below,
                0,
                0,
            )?;
        }
        Ok(())
    }

    /// The day's totals, as its `settled_day` row holds them.
    pub fn totals(&self) -> DayTotals {
        let mut totals = DayTotals {
            ads: self.ads.len() as u64,
            campaigns: self.campaigns.len() as u64,
            advertisers: self.advertisers.len() as u64,
            ..DayTotals::default()
        };
        for advertiser in &self.advertisers {
            totals.valid_clicks = totals.valid_clicks.saturating_add(advertiser.valid_clicks);
            totals.spend_micros = totals.spend_micros.saturating_add(advertiser.spend_micros);
        }
        for ad in &self.ads {
            for clicks in ad.invalid.values() {
                totals.invalid_clicks = totals.invalid_clicks.saturating_add(*clicks);
            }
        }
        totals
    }
}

/// A settled day's totals over every advertiser.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DayTotals {
    pub ads: u64,
    pub campaigns: u64,
    pub advertisers: u64,
    pub valid_clicks: u64,
    pub spend_micros: u64,
    pub invalid_clicks: u64,
}

fn users_within_clicks(
    level: &'static str,
    key: impl Fn() -> String,
    unique_users: u64,
    valid_clicks: u64,
) -> Result<(), InvalidRows> {
    if unique_users > valid_clicks {
        return Err(InvalidRows::MoreUsersThanClicks {
            level,
            key: key(),
            unique_users,
            valid_clicks,
        });
    }
    Ok(())
}

fn sums_agree(
    level: &'static str,
    key: impl Fn() -> String,
    below: Sum,
    clicks: u64,
    spend: u64,
) -> Result<(), InvalidRows> {
    if below.overflow {
        return Err(InvalidRows::Overflow { level, key: key() });
    }
    if below.clicks != clicks || below.spend != spend {
        return Err(InvalidRows::SumsDisagree {
            level,
            key: key(),
            clicks,
            spend,
            below_clicks: below.clicks,
            below_spend: below.spend,
        });
    }
    Ok(())
}

/// 26 characters of Crockford's base32 (upper case, as the `ulid` crate prints them), the
/// first at most `7` (a ULID is 128 bits).
pub(crate) fn is_ulid(text: &str) -> bool {
    text.len() == 26
        && text.as_bytes()[0] <= b'7'
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b.is_ascii_uppercase() && !b"ILOU".contains(&b)))
}

/// A reason label: non-empty, printable, no separators that COPY's text format would escape.
fn is_label(label: &str) -> bool {
    !label.is_empty() && label.chars().all(|c| !c.is_control() && c != '\\')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day() -> SettledDayRows {
        SettledDayRows {
            day: Day(20_000),
            block_ulid: "01JF0000000000000000000000".into(),
            settled_at_ms: 1_728_000_000_000,
            ads: vec![
                AdDayRow {
                    advertiser_id: 1,
                    campaign_id: 10,
                    ad_id: 100,
                    valid_clicks: 5,
                    spend_micros: 500,
                    unique_users: 3,
                    invalid: BTreeMap::from([("too_fast".to_string(), 2)]),
                },
                AdDayRow {
                    advertiser_id: 1,
                    campaign_id: 10,
                    ad_id: 101,
                    valid_clicks: 1,
                    spend_micros: 7,
                    unique_users: 1,
                    invalid: BTreeMap::new(),
                },
            ],
            campaigns: vec![CampaignDayRow {
                advertiser_id: 1,
                campaign_id: 10,
                valid_clicks: 6,
                spend_micros: 507,
                unique_users: 3,
            }],
            advertisers: vec![AdvertiserDayRow {
                advertiser_id: 1,
                valid_clicks: 6,
                spend_micros: 507,
                unique_users: 3,
            }],
        }
    }

    #[test]
    fn a_consistent_day_passes_and_totals_add_up() {
        let rows = day();
        rows.validate().unwrap();
        let totals = rows.totals();
        assert_eq!(
            totals,
            DayTotals {
                ads: 2,
                campaigns: 1,
                advertisers: 1,
                valid_clicks: 6,
                spend_micros: 507,
                invalid_clicks: 2,
            }
        );
    }

    #[test]
    fn inconsistent_days_are_refused() {
        let mut rows = day();
        rows.campaigns[0].spend_micros = 506;
        assert!(matches!(
            rows.validate(),
            Err(InvalidRows::SumsDisagree {
                level: "campaign",
                ..
            })
        ));

        let mut rows = day();
        rows.advertisers[0].valid_clicks = 7;
        assert!(matches!(
            rows.validate(),
            Err(InvalidRows::SumsDisagree {
                level: "advertiser",
                ..
            })
        ));

        let mut rows = day();
        rows.campaigns.clear();
        let err = rows.validate().unwrap_err().to_string();
        assert!(err.contains("1/10 (no row)"), "{err}");

        let mut rows = day();
        rows.ads[1].unique_users = 2;
        assert!(matches!(
            rows.validate(),
            Err(InvalidRows::MoreUsersThanClicks { level: "ad", .. })
        ));

        let mut rows = day();
        rows.ads[0].invalid.insert("bad\tlabel".into(), 1);
        assert!(matches!(rows.validate(), Err(InvalidRows::ReasonLabel(_))));

        let mut rows = day();
        rows.ads[0].spend_micros = u64::MAX;
        assert!(matches!(rows.validate(), Err(InvalidRows::Overflow { .. })));

        let mut rows = day();
        rows.block_ulid = "01jf0000000000000000000000".into();
        assert!(matches!(rows.validate(), Err(InvalidRows::BlockUlid(_))));
        rows.block_ulid = "81JF0000000000000000000000".into();
        assert!(matches!(rows.validate(), Err(InvalidRows::BlockUlid(_))));
    }
}
