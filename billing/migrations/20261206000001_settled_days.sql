-- adclick billing store, version 1: the settled days and their per-ad, per-campaign and
-- per-advertiser rows. Applied by `BillingStore::connect` (sqlx::migrate!, embedded in the
-- binary); a migration once released is never edited: a change is a new file.
--
-- Integers: ids (advertiser, campaign, ad), click counts, unique users and spend in micros are
-- u64 in adclick. PostgreSQL has no unsigned 64-bit type: bigint would need ids above 2^63 stored
-- as negative numbers (an offset or a bit cast that every reader, psql and BI tools included,
-- must know to undo), so they are numeric(20,0) — exact, every u64 fits in 20 digits — narrowed
-- by the domain `billing.u64` to 0..2^64-1. Money is integer micros, never a float. numeric
-- costs some space and arithmetic speed over bigint; a day is written once and read by
-- statements of a few hundred rows, so exactness wins.
CREATE SCHEMA billing;

CREATE DOMAIN billing.u64 AS numeric(20, 0)
    CHECK (VALUE >= 0 AND VALUE <= 18446744073709551615);

-- One row per settled day: present only once every row of the day is written (same
-- transaction). A day with no row here is unsettled, whatever other tables hold.
CREATE TABLE billing.settled_day (
    -- The settlement day: clicks whose minute ENDS in it, UTC.
    day date PRIMARY KEY,
    -- The rollup's Thanos block of the day (the same figures, as series).
    block_ulid text NOT NULL CHECK (block_ulid ~ '^[0-7][0-9A-HJKMNP-TV-Z]{25}$'),
    -- When the rollup settled the day; and when this row was written (a rerun rewrites both).
    settled_at timestamptz NOT NULL,
    written_at timestamptz NOT NULL DEFAULT now(),
    -- Rows written for the day, and its totals over every advertiser.
    ads bigint NOT NULL,
    campaigns bigint NOT NULL,
    advertisers bigint NOT NULL,
    valid_clicks billing.u64 NOT NULL,
    spend_micros billing.u64 NOT NULL,
    invalid_clicks billing.u64 NOT NULL
);

-- One row per ad and day. 10M ads a day is the design target: bulk-loaded with COPY; the primary
-- key leads with the day, which is how a rerun deletes them.
CREATE TABLE billing.ad_day (
    day date NOT NULL,
    advertiser_id billing.u64 NOT NULL,
    campaign_id billing.u64 NOT NULL,
    ad_id billing.u64 NOT NULL,
    valid_clicks billing.u64 NOT NULL,
    spend_micros billing.u64 NOT NULL,
    -- Distinct non-zero user hashes among the ad's valid clicks of the day.
    unique_users billing.u64 NOT NULL,
    PRIMARY KEY (day, advertiser_id, campaign_id, ad_id)
);

-- Invalid clicks (never billed) per ad, day and reason label. A table of its own rather than a
-- column per reason: reasons are append-only (a new rule adds a label), and a new label needs no
-- migration. Only reasons with clicks have rows.
CREATE TABLE billing.ad_day_invalid (
    day date NOT NULL,
    advertiser_id billing.u64 NOT NULL,
    campaign_id billing.u64 NOT NULL,
    ad_id billing.u64 NOT NULL,
    reason text NOT NULL CHECK (reason <> ''),
    clicks billing.u64 NOT NULL,
    PRIMARY KEY (day, advertiser_id, campaign_id, ad_id, reason)
);

-- Per campaign and per advertiser: clicks and spend are the sums of the level below, but unique
-- users are not (a user of two ads is one user of the campaign), so each level keeps its own row.
-- Statements read these by advertiser and day range; a rerun deletes by day.
CREATE TABLE billing.campaign_day (
    day date NOT NULL,
    advertiser_id billing.u64 NOT NULL,
    campaign_id billing.u64 NOT NULL,
    valid_clicks billing.u64 NOT NULL,
    spend_micros billing.u64 NOT NULL,
    unique_users billing.u64 NOT NULL,
    PRIMARY KEY (advertiser_id, day, campaign_id)
);
CREATE INDEX campaign_day_by_day ON billing.campaign_day (day);

CREATE TABLE billing.advertiser_day (
    day date NOT NULL,
    advertiser_id billing.u64 NOT NULL,
    valid_clicks billing.u64 NOT NULL,
    spend_micros billing.u64 NOT NULL,
    unique_users billing.u64 NOT NULL,
    PRIMARY KEY (advertiser_id, day)
);
CREATE INDEX advertiser_day_by_day ON billing.advertiser_day (day);
