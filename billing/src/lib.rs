//! The billing store: each settled day's figures in PostgreSQL, and an advertiser's statement
//! read from them (issue #19).
//!
//! | item | concept |
//! |---|---|
//! | [`SettledDayRows`] | one settled day as the rollup hands it over: per ad, campaign and advertiser, the block ULID, the settle time |
//! | [`BillingStore::connect`] | the database of `[billing] database_url`, migrated (billing/migrations/) |
//! | [`BillingStore::write_day`] → [`PendingDay`] | the day's rows replaced in one transaction the caller commits |
//! | [`BillingStore::statement`] → [`Statement`] | an advertiser's days, campaigns, totals, blocks and missing days |
//! | [`render`] | a statement as CSV, JSON (documented there) or a table |
//! | [`BillingConfig`] | `[billing]`: the URL (TLS through `sslmode`/`sslrootcert`), timeouts, pool size |
//! | [`Day`] | the settlement day: clicks whose minute ENDS in it, UTC |
//!
//! # Consistency with the block
//!
//! The rollup settles day D into a Thanos block and into this store. Its order is:
//! 1. [`BillingStore::write_day`]: in one transaction, take D's lock, delete D's rows, COPY the
//!    new ones, insert D's `settled_day` row naming the block's ULID — not committed;
//! 2. publish the block (its `meta.json` last: the block exists for readers from then on);
//! 3. [`PendingDay::commit`].
//!
//! Readers of the store see D's previous version (or none) until step 3, then the new one
//! whole: never part of a day. What each failure leaves:
//! - PostgreSQL dies (or refuses) in step 1: `write_day` returns the error, the rollup publishes
//!   nothing, PostgreSQL rolls the transaction back (crash recovery does, after a crash). Store
//!   and bucket both hold D's previous version, or nothing.
//! - Publishing fails in step 2: the rollup drops the [`PendingDay`] (rollback); the store keeps
//!   the previous version, the bucket has no new block (no `meta.json`).
//! - PostgreSQL dies after step 2, before the commit reaches it: the block is published, the
//!   store still holds the previous version of D or nothing. A day with no `settled_day` row is
//!   listed as MISSING on every statement, and a day whose `block_ulid` is not the published
//!   block's shows that ULID: either way visible, never silently wrong.
//! - The commit reached PostgreSQL but its answer was lost: the store holds the new version
//!   (naming the published block) while the rollup reports an error; the rerun changes nothing.
//!
//! So a `settled_day` row only ever names a block that was published before the row became
//! visible. The remedy for every failure is the same: rerun the rollup of D, which replaces both
//! the block and the store's rows of D (a rerun deletes D's rows in the transaction that writes
//! the new ones; concurrent writers of D wait for each other on D's advisory lock).
//!
//! # Schema
//!
//! billing/migrations/ (applied in order by `connect`, never edited once released), schema
//! `billing`: `settled_day` (day, block ULID, settle time, totals), `ad_day` (valid clicks,
//! spend, unique users per ad), `ad_day_invalid` (invalid clicks per ad and reason),
//! `campaign_day` and `advertiser_day` (unique users are per level: they cannot be summed from
//! the level below). ids, counts and spend are u64 as `numeric(20,0)` (the migration says why).

mod config;
mod copy;
mod day;
mod error;
pub mod render;
mod rows;
mod statement;
mod store;

pub use config::{BillingConfig, DEFAULT_DATABASE_URL, redact};
pub use day::{BadDay, Day};
pub use error::BillingError;
pub use render::Format;
pub use rows::{
    AdDayRow, AdvertiserDayRow, CampaignDayRow, DayTotals, InvalidRows, SettledDayRows,
};
pub use statement::{
    CampaignDay, DayFigures, MAX_STATEMENT_DAYS, Settlement, Statement, StatementDay, Totals,
};
pub use store::{BillingStore, PendingDay};
