//! The store: connecting (and migrating), writing a settled day in one transaction that the
//! caller commits, and the connection pool statements read through.

use std::str::FromStr;

use secrecy::ExposeSecret;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, Postgres, Transaction};

use crate::copy::CopyWriter;
use crate::day::pg_days;
use crate::rows::DayTotals;
use crate::{BillingConfig, BillingError, Day, SettledDayRows};

/// billing/migrations/, embedded in the binary.
static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// `pg_advisory_xact_lock(class, day)`'s first key: writers of the same day wait for each other
/// (a second rerun replaces the first's rows instead of colliding with them).
const DAY_LOCK_CLASS: i32 = 0x0adc_b111;

/// The billing store in PostgreSQL.
#[derive(Clone)]
pub struct BillingStore {
    pool: PgPool,
    /// The database URL without its password, for messages.
    url: String,
}

impl std::fmt::Debug for BillingStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BillingStore")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl BillingStore {
    /// Connects to `[billing] database_url` and applies the migrations the database lacks (none
    /// when it is up to date; concurrent callers wait on sqlx's migration lock). Fails with a
    /// message naming the URL (without its password) when the database is down, refuses the
    /// user, or does not answer within `connect_timeout_ms`.
    pub async fn connect(config: &BillingConfig) -> Result<BillingStore, BillingError> {
        // Both of rustls' providers are in the binary: sqlx's TLS needs the process default.
        adclick_tls::install_crypto_provider();
        let url = config.redacted_url();
        let mut options = PgConnectOptions::from_str(config.database_url.expose_secret())
            .map_err(|source| BillingError::Url {
                url: url.clone(),
                source,
            })?
            .application_name("adclick-billing");
        if config.statement_timeout_ms > 0 {
            options =
                options.options([("statement_timeout", config.statement_timeout_ms.to_string())]);
        }
        // One connection first, for a clear error (a pool would retry until its timeout and
        // report only that) and for the migrations.
        let timeout = config.connect_timeout();
        let mut conn = match tokio::time::timeout(timeout, options.connect()).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(source)) => {
                let hint = crate::error::connect_hint(&source);
                return Err(BillingError::Connect { url, source, hint });
            }
            Err(_) => {
                return Err(BillingError::ConnectTimeout {
                    url,
                    timeout_ms: config.connect_timeout_ms,
                });
            }
        };
        MIGRATOR
            .run(&mut conn)
            .await
            .map_err(|source| BillingError::Migrate {
                url: url.clone(),
                source,
            })?;
        let _ = conn.close().await;
        let pool = PgPoolOptions::new()
            .max_connections(config.max_connections.max(1))
            .acquire_timeout(timeout)
            .connect_lazy_with(options);
        Ok(BillingStore { pool, url })
    }

    /// The database URL without its password.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Writes `rows` as the whole of their day, in one transaction that is NOT committed yet:
    /// takes the day's lock, deletes whatever the day held (a rerun replaces it), bulk-loads the
    /// ad, invalid-click, campaign and advertiser rows with COPY, and inserts the day's row.
    /// The caller publishes the block, then [`PendingDay::commit`]s (crate docs: why this
    /// order); dropping the [`PendingDay`] rolls the day back. Readers see the previous version
    /// of the day (or none) until the commit, never a part.
    pub async fn write_day(&self, rows: &SettledDayRows) -> Result<PendingDay, BillingError> {
        rows.validate()
            .map_err(|source| BillingError::InvalidRows {
                day: rows.day,
                source,
            })?;
        let day = rows.day;
        let err = |step: &'static str| {
            let url = self.url.clone();
            move |source| BillingError::Write {
                day,
                url,
                step,
                source,
            }
        };
        let pg_day = pg_days(rows.day).unwrap_or_default(); // validate checked the range
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(err("beginning a transaction"))?;
        sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
            .bind(DAY_LOCK_CLASS)
            .bind(pg_day)
            .execute(&mut *tx)
            .await
            .map_err(err("waiting for the day's lock"))?;
        for table in [
            "billing.settled_day",
            "billing.ad_day",
            "billing.ad_day_invalid",
            "billing.campaign_day",
            "billing.advertiser_day",
        ] {
            sqlx::query(&format!(
                "DELETE FROM {table} WHERE day = DATE '1970-01-01' + $1"
            ))
            .bind(pg_day)
            .execute(&mut *tx)
            .await
            .map_err(err("deleting the day's previous rows"))?;
        }
        copy_ads(&mut tx, rows)
            .await
            .map_err(err("copying the ad rows (billing.ad_day)"))?;
        copy_invalid(&mut tx, rows).await.map_err(err(
            "copying the invalid-click rows (billing.ad_day_invalid)",
        ))?;
        copy_campaigns(&mut tx, rows)
            .await
            .map_err(err("copying the campaign rows (billing.campaign_day)"))?;
        copy_advertisers(&mut tx, rows)
            .await
            .map_err(err("copying the advertiser rows (billing.advertiser_day)"))?;
        let totals = rows.totals();
        sqlx::query(
            "INSERT INTO billing.settled_day (day, block_ulid, settled_at, ads, campaigns, \
             advertisers, valid_clicks, spend_micros, invalid_clicks) \
             VALUES (DATE '1970-01-01' + $1, $2, TIMESTAMPTZ 'epoch' + $3 * INTERVAL '1 millisecond', \
             $4, $5, $6, $7::numeric, $8::numeric, $9::numeric)",
        )
        .bind(pg_day)
        .bind(&rows.block_ulid)
        .bind(rows.settled_at_ms)
        .bind(i64::try_from(totals.ads).unwrap_or(i64::MAX))
        .bind(i64::try_from(totals.campaigns).unwrap_or(i64::MAX))
        .bind(i64::try_from(totals.advertisers).unwrap_or(i64::MAX))
        .bind(totals.valid_clicks.to_string())
        .bind(totals.spend_micros.to_string())
        .bind(totals.invalid_clicks.to_string())
        .execute(&mut *tx)
        .await
        .map_err(err("inserting the day's row (billing.settled_day)"))?;
        Ok(PendingDay {
            tx,
            day,
            url: self.url.clone(),
            totals,
        })
    }

    /// Writes `rows` and commits at once: for callers with nothing to publish in between.
    pub async fn replace_day(&self, rows: &SettledDayRows) -> Result<DayTotals, BillingError> {
        let pending = self.write_day(rows).await?;
        let totals = pending.totals();
        pending.commit().await?;
        Ok(totals)
    }

    /// The days in `from..=to` that are settled, with their blocks.
    pub async fn settled_days(
        &self,
        from: Day,
        to: Day,
    ) -> Result<Vec<(Day, crate::Settlement)>, sqlx::Error> {
        let mut conn = self.pool.acquire().await?;
        crate::statement::settled_days(&mut conn, from, to).await
    }
}

/// A settled day written but not committed: its transaction, holding the day's lock. Commit
/// after the block is published; drop (or [`Self::rollback`]) to leave the day as it was.
pub struct PendingDay {
    tx: Transaction<'static, Postgres>,
    day: Day,
    url: String,
    totals: DayTotals,
}

impl std::fmt::Debug for PendingDay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingDay")
            .field("day", &self.day)
            .field("url", &self.url)
            .field("totals", &self.totals)
            .finish_non_exhaustive()
    }
}

impl PendingDay {
    pub fn day(&self) -> Day {
        self.day
    }

    /// What the day's row says (rows written, clicks, spend, invalid clicks).
    pub fn totals(&self) -> DayTotals {
        self.totals
    }

    /// Makes the day visible, replacing its previous version at once.
    pub async fn commit(self) -> Result<(), BillingError> {
        self.tx
            .commit()
            .await
            .map_err(|source| BillingError::Commit {
                day: self.day,
                url: self.url,
                source,
            })
    }

    /// Leaves the day as it was before [`BillingStore::write_day`].
    pub async fn rollback(self) -> Result<(), BillingError> {
        self.tx
            .rollback()
            .await
            .map_err(|source| BillingError::Write {
                day: self.day,
                url: self.url,
                step: "rolling back",
                source,
            })
    }
}

async fn copy_ads(conn: &mut PgConnection, rows: &SettledDayRows) -> Result<(), sqlx::Error> {
    let day = rows.day;
    let mut copy = CopyWriter::start(
        conn,
        "billing.ad_day",
        &[
            "day",
            "advertiser_id",
            "campaign_id",
            "ad_id",
            "valid_clicks",
            "spend_micros",
            "unique_users",
        ],
    )
    .await?;
    for ad in &rows.ads {
        copy.row(&[
            &day,
            &ad.advertiser_id,
            &ad.campaign_id,
            &ad.ad_id,
            &ad.valid_clicks,
            &ad.spend_micros,
            &ad.unique_users,
        ])
        .await?;
    }
    copy.finish().await?;
    Ok(())
}

async fn copy_invalid(conn: &mut PgConnection, rows: &SettledDayRows) -> Result<(), sqlx::Error> {
    let day = rows.day;
    let mut copy = CopyWriter::start(
        conn,
        "billing.ad_day_invalid",
        &[
            "day",
            "advertiser_id",
            "campaign_id",
            "ad_id",
            "reason",
            "clicks",
        ],
    )
    .await?;
    for ad in &rows.ads {
        for (reason, clicks) in ad.invalid.iter().filter(|(_, clicks)| **clicks > 0) {
            copy.row(&[
                &day,
                &ad.advertiser_id,
                &ad.campaign_id,
                &ad.ad_id,
                reason,
                clicks,
            ])
            .await?;
        }
    }
    copy.finish().await?;
    Ok(())
}

async fn copy_campaigns(conn: &mut PgConnection, rows: &SettledDayRows) -> Result<(), sqlx::Error> {
    let day = rows.day;
    let mut copy = CopyWriter::start(
        conn,
        "billing.campaign_day",
        &[
            "day",
            "advertiser_id",
            "campaign_id",
            "valid_clicks",
            "spend_micros",
            "unique_users",
        ],
    )
    .await?;
    for c in &rows.campaigns {
        copy.row(&[
            &day,
            &c.advertiser_id,
            &c.campaign_id,
            &c.valid_clicks,
            &c.spend_micros,
            &c.unique_users,
        ])
        .await?;
    }
    copy.finish().await?;
    Ok(())
}

async fn copy_advertisers(
    conn: &mut PgConnection,
    rows: &SettledDayRows,
) -> Result<(), sqlx::Error> {
    let day = rows.day;
    let mut copy = CopyWriter::start(
        conn,
        "billing.advertiser_day",
        &[
            "day",
            "advertiser_id",
            "valid_clicks",
            "spend_micros",
            "unique_users",
        ],
    )
    .await?;
    for a in &rows.advertisers {
        copy.row(&[
            &day,
            &a.advertiser_id,
            &a.valid_clicks,
            &a.spend_micros,
            &a.unique_users,
        ])
        .await?;
    }
    copy.finish().await?;
    Ok(())
}
