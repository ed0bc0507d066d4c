//! An advertiser's statement: per settled day, each campaign's valid clicks, spend and unique
//! users and the advertiser's own daily figures; clicks and spend summed over the range per
//! campaign and in all; the block and settle time of every day; and the days of the range that
//! are not settled, listed as missing (an invoice must never silently omit a day).
//!
//! Unique users are a per-day figure of one level (a campaign, or the advertiser over all its
//! campaigns): they are never summed across days or campaigns, and the totals carry none.
//!
//! The three reads share one REPEATABLE READ snapshot, so a rerun of a day committing meanwhile
//! shows wholly or not at all.

use std::collections::BTreeMap;

use sqlx::Row;
use sqlx::postgres::PgConnection;

use crate::day::pg_days;
use crate::{BillingError, BillingStore, Day};

/// The longest range one statement reads, days (ten years).
pub const MAX_STATEMENT_DAYS: i64 = 3660;

/// A settled day's block: which one, and when the rollup settled it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    pub block_ulid: String,
    pub settled_at_ms: i64,
}

/// Valid clicks, spend and unique users of one level on one day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DayFigures {
    pub valid_clicks: u64,
    pub spend_micros: u64,
    pub unique_users: u64,
}

/// One campaign's day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignDay {
    pub campaign_id: u64,
    pub figures: DayFigures,
}

/// One day of the range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementDay {
    pub day: Day,
    /// `None`: the day is not settled (missing from the statement's figures).
    pub settlement: Option<Settlement>,
    /// The advertiser's figures of the day (unique users over all its campaigns); zero on a
    /// settled day without clicks, and on a missing day.
    pub advertiser: DayFigures,
    /// Its campaigns with a row that day, by id.
    pub campaigns: Vec<CampaignDay>,
}

/// Clicks and spend summed over the settled days of the range (no unique users: they do not
/// add up across days).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub valid_clicks: u64,
    pub spend_micros: u64,
}

/// An advertiser's statement over `from..=to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub advertiser_id: u64,
    pub from: Day,
    pub to: Day,
    /// Every day of the range, in order, settled or not.
    pub days: Vec<StatementDay>,
    /// Per campaign, by id, over the settled days.
    pub campaign_totals: BTreeMap<u64, Totals>,
    /// Over every campaign and settled day.
    pub totals: Totals,
}

impl Statement {
    /// The days of the range that are not settled.
    pub fn missing_days(&self) -> Vec<Day> {
        self.days
            .iter()
            .filter(|d| d.settlement.is_none())
            .map(|d| d.day)
            .collect()
    }
}

impl BillingStore {
    /// The statement of `advertiser_id` over the settlement days `from..=to` (UTC).
    pub async fn statement(
        &self,
        advertiser_id: u64,
        from: Day,
        to: Day,
    ) -> Result<Statement, BillingError> {
        if to < from {
            return Err(BillingError::EmptyRange { from, to });
        }
        let days = to.0 - from.0 + 1;
        if days > MAX_STATEMENT_DAYS || pg_days(from).is_none() || pg_days(to).is_none() {
            return Err(BillingError::RangeTooLong {
                from,
                to,
                days,
                max: MAX_STATEMENT_DAYS,
            });
        }
        let read = |source| BillingError::Read {
            advertiser_id,
            url: self.url().to_string(),
            source,
        };
        let mut tx = self.pool().begin().await.map_err(read)?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await
            .map_err(read)?;
        let settled: BTreeMap<Day, Settlement> = settled_days(&mut tx, from, to)
            .await
            .map_err(read)?
            .into_iter()
            .collect();
        let campaign_rows = figures(
            &mut tx,
            "SELECT (day - DATE '1970-01-01')::int8, campaign_id::text, valid_clicks::text, \
             spend_micros::text, unique_users::text FROM billing.campaign_day \
             WHERE advertiser_id = $1::numeric AND day BETWEEN DATE '1970-01-01' + $2 \
             AND DATE '1970-01-01' + $3 ORDER BY 1, billing.campaign_day.campaign_id",
            advertiser_id,
            from,
            to,
        )
        .await
        .map_err(read)?;
        let advertiser_rows = figures(
            &mut tx,
            "SELECT (day - DATE '1970-01-01')::int8, advertiser_id::text, valid_clicks::text, \
             spend_micros::text, unique_users::text FROM billing.advertiser_day \
             WHERE advertiser_id = $1::numeric AND day BETWEEN DATE '1970-01-01' + $2 \
             AND DATE '1970-01-01' + $3 ORDER BY day",
            advertiser_id,
            from,
            to,
        )
        .await
        .map_err(read)?;
        tx.commit().await.map_err(read)?;

        let parse = |column: &'static str, text: &str| {
            text.parse::<u64>().map_err(|_| BillingError::NotU64 {
                url: self.url().to_string(),
                column,
                value: text.to_string(),
            })
        };
        let parse_figures = |f: &RawFigures| -> Result<(u64, DayFigures), BillingError> {
            Ok((
                parse("id", &f.id)?,
                DayFigures {
                    valid_clicks: parse("valid_clicks", &f.valid_clicks)?,
                    spend_micros: parse("spend_micros", &f.spend_micros)?,
                    unique_users: parse("unique_users", &f.unique_users)?,
                },
            ))
        };
        let mut statement = Statement {
            advertiser_id,
            from,
            to,
            days: Day::range(from, to)
                .map(|day| StatementDay {
                    day,
                    settlement: settled.get(&day).cloned(),
                    advertiser: DayFigures::default(),
                    campaigns: Vec::new(),
                })
                .collect(),
            campaign_totals: BTreeMap::new(),
            totals: Totals::default(),
        };
        let index = |day: Day| usize::try_from(day.0 - from.0).ok();
        for row in &campaign_rows {
            let (campaign_id, figures) = parse_figures(row)?;
            // Rows exist only for settled days (written in the day's transaction).
            let Some(day) = index(row.day).and_then(|i| statement.days.get_mut(i)) else {
                continue;
            };
            if day.settlement.is_none() {
                continue;
            }
            day.campaigns.push(CampaignDay {
                campaign_id,
                figures,
            });
            let total = statement.campaign_totals.entry(campaign_id).or_default();
            total.valid_clicks = total.valid_clicks.saturating_add(figures.valid_clicks);
            total.spend_micros = total.spend_micros.saturating_add(figures.spend_micros);
        }
        for row in &advertiser_rows {
            let (_, figures) = parse_figures(row)?;
            let Some(day) = index(row.day).and_then(|i| statement.days.get_mut(i)) else {
                continue;
            };
            if day.settlement.is_none() {
                continue;
            }
            day.advertiser = figures;
            statement.totals.valid_clicks = statement
                .totals
                .valid_clicks
                .saturating_add(figures.valid_clicks);
            statement.totals.spend_micros = statement
                .totals
                .spend_micros
                .saturating_add(figures.spend_micros);
        }
        Ok(statement)
    }
}

/// The settled days in `from..=to` and their blocks, by day.
pub(crate) async fn settled_days(
    conn: &mut PgConnection,
    from: Day,
    to: Day,
) -> Result<Vec<(Day, Settlement)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT (day - DATE '1970-01-01')::int8, block_ulid, \
         (extract(epoch FROM settled_at) * 1000)::int8 FROM billing.settled_day \
         WHERE day BETWEEN DATE '1970-01-01' + $1 AND DATE '1970-01-01' + $2 ORDER BY day",
    )
    .bind(pg_days(from).unwrap_or(i32::MIN))
    .bind(pg_days(to).unwrap_or(i32::MAX))
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok((
                Day(row.try_get(0)?),
                Settlement {
                    block_ulid: row.try_get(1)?,
                    settled_at_ms: row.try_get(2)?,
                },
            ))
        })
        .collect()
}

/// One row of figures as PostgreSQL printed them (numeric as text: sqlx decodes no numeric
/// without an extra crate, and text is exact).
struct RawFigures {
    day: Day,
    id: String,
    valid_clicks: String,
    spend_micros: String,
    unique_users: String,
}

async fn figures(
    conn: &mut PgConnection,
    sql: &str,
    advertiser_id: u64,
    from: Day,
    to: Day,
) -> Result<Vec<RawFigures>, sqlx::Error> {
    let rows = sqlx::query(sql)
        .bind(advertiser_id.to_string())
        .bind(pg_days(from).unwrap_or(i32::MIN))
        .bind(pg_days(to).unwrap_or(i32::MAX))
        .fetch_all(&mut *conn)
        .await?;
    rows.iter()
        .map(|row| {
            Ok(RawFigures {
                day: Day(row.try_get(0)?),
                id: row.try_get(1)?,
                valid_clicks: row.try_get(2)?,
                spend_micros: row.try_get(3)?,
                unique_users: row.try_get(4)?,
            })
        })
        .collect()
}
