//! The truth of spend and unique users (issue #19): what each counted click cost and who made it,
//! per ad and minute, per partition of the clicks topic, and per settlement day. Kept only when
//! the plan has users or prices (`--users`, `--price-micros`): an honest run's files are what
//! they always were.
//!
//! The clicks are exactly `truth.csv`'s: an impression's first acknowledged click, in the minute
//! of its event time; its price is the token's (`0` when the plan has users but no prices) and its
//! user the token's user hash. A plan without users has none in its tokens: the Kafka target
//! writes each click's random hash, and ingest gives each request a visitor of its own (loadgen
//! keeps no cookies), so every click is a user of its own — the hash here is the send's, which
//! counts the same. A `user_hash` of 0 (click.proto's "unknown") is spend but never a user.
//!
//! Four more files, in the format of the module doc of `truth` (UTF-8, `\n`, `,`, no spaces or
//! quotes, unsigned decimal numbers, the header first, written through a renamed `.tmp`):
//!
//! `user_clicks.csv`, one row per (ad, minute, partition, user) with at least one counted click,
//! sorted by minute, advertiser, campaign, ad, partition, user hash (numerically):
//! ```text
//! advertiser_id,campaign_id,ad_id,minute_end_ms,partition,user_hash,clicks,spend_micros,too_late_clicks,too_late_spend_micros
//! 3,41,812,1795000020000,5,17523386328130862530,2,500000,1,250000
//! ```
//! `partition` is the clicks topic's partition the clicks were produced to (`partition`:
//! murmur2 of the key, one per ad, or per salt of a hot ad); `user_hash` the 64-bit hash in
//! decimal (up to 18446744073709551615); `clicks` and `spend_micros` all the user's counted clicks
//! there and their prices; `too_late_*` their part that arrives after its minute is final
//! (counted live in `adclick_late_spend_micros`, by the rollup in its own minute). Everything
//! below follows from this file; the stream's per-partition figures (a hot ad's unique users, a
//! campaign's `other`) only from it.
//!
//! `spend.csv`, one row per (ad, minute) of `truth.csv`, same order:
//! ```text
//! advertiser_id,campaign_id,ad_id,minute_end_ms,spend_micros,unique_users
//! 3,41,812,1795000020000,4250000,15
//! ```
//! the spend of all the ad's counted clicks of the minute, and its distinct non-zero user hashes
//! over every partition: what the rollup's block must hold (`tier="rollup"`, every ad its own
//! series). `too_late_spend.csv` has the same format for the clicks that arrive after their
//! minute is final (rows with none left out).
//!
//! `days.csv`, per settlement day (the clicks whose minute ENDS in the UTC day, as the rollup's
//! block: 23:59 of the day before through 23:58), one row per advertiser, per campaign and per
//! ad, sorted by day, advertiser, campaign, ad, where `campaign_id` 0 is the advertiser's row
//! and `ad_id` 0 the campaign's (ids start at 1):
//! ```text
//! day,advertiser_id,campaign_id,ad_id,valid_clicks,spend_micros,unique_users
//! 2026-11-18,3,0,0,1204,301000000,160
//! 2026-11-18,3,41,0,210,52500000,98
//! 2026-11-18,3,41,812,17,4250000,15
//! ```
//! `unique_users` counts each person once per row: over the ad's, the campaign's (all its ads)
//! or the advertiser's (all its campaigns) clicks of the day. What `adclick billing` must state.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use adclick_click::archive::day_name;

use super::{ReadError, TruthKey, read_csv, write_lines};
use crate::partition::Partitioning;
use crate::plan::{Lateness, Send};
use crate::population::AdRef;

const DAY_MS: i64 = 86_400_000;

pub const USER_CLICKS_FILE: &str = "user_clicks.csv";
pub const SPEND_FILE: &str = "spend.csv";
pub const TOO_LATE_SPEND_FILE: &str = "too_late_spend.csv";
pub const DAYS_FILE: &str = "days.csv";

const USER_CLICKS_HEADER: &str = "advertiser_id,campaign_id,ad_id,minute_end_ms,partition,user_hash,clicks,spend_micros,too_late_clicks,too_late_spend_micros";
const SPEND_HEADER: &str =
    "advertiser_id,campaign_id,ad_id,minute_end_ms,spend_micros,unique_users";
const DAYS_HEADER: &str =
    "day,advertiser_id,campaign_id,ad_id,valid_clicks,spend_micros,unique_users";

/// One user's counted clicks on an ad in a minute, on one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UserKey {
    pub minute_end_ms: i64,
    pub ad: AdRef,
    pub partition: u32,
    pub user_hash: u64,
}

/// What a [`UserKey`]'s clicks cost, all of them and the part that arrives too late.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UserClicks {
    pub clicks: u64,
    pub spend_micros: u64,
    pub too_late_clicks: u64,
    pub too_late_spend_micros: u64,
}

/// An ad's minute: its spend and its distinct users.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Spend {
    pub spend_micros: u64,
    pub unique_users: u64,
}

/// A row of `days.csv`: a day's advertiser (`campaign_id` 0), campaign (`ad_id` 0) or ad.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DayKey {
    /// Days since 1970-01-01 (UTC).
    pub day: i64,
    pub advertiser_id: u64,
    pub campaign_id: u64,
    pub ad_id: u64,
}

impl DayKey {
    /// The settlement day of the minute ending at `minute_end_ms`.
    pub fn day_of(minute_end_ms: i64) -> i64 {
        minute_end_ms.div_euclid(DAY_MS)
    }
}

/// A row's figures of `days.csv`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DayTotals {
    pub valid_clicks: u64,
    pub spend_micros: u64,
    pub unique_users: u64,
}

/// Spend and unique users of a run: the four files, as read back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Money {
    pub user_clicks: BTreeMap<UserKey, UserClicks>,
    pub spend: BTreeMap<TruthKey, Spend>,
    pub too_late_spend: BTreeMap<TruthKey, Spend>,
    pub days: BTreeMap<DayKey, DayTotals>,
}

impl Money {
    /// Everything else from the per-user rows.
    pub fn from_user_clicks(user_clicks: BTreeMap<UserKey, UserClicks>) -> Money {
        let mut all: BTreeMap<TruthKey, (u64, BTreeSet<u64>)> = BTreeMap::new();
        let mut too_late: BTreeMap<TruthKey, (u64, BTreeSet<u64>)> = BTreeMap::new();
        let mut days: BTreeMap<DayKey, (u64, u64, BTreeSet<u64>)> = BTreeMap::new();
        for (k, c) in &user_clicks {
            let key = TruthKey {
                minute_end_ms: k.minute_end_ms,
                ad: k.ad,
            };
            let user = (k.user_hash != 0).then_some(k.user_hash);
            let row = all.entry(key).or_default();
            row.0 += c.spend_micros;
            row.1.extend(user);
            if c.too_late_clicks > 0 {
                let row = too_late.entry(key).or_default();
                row.0 += c.too_late_spend_micros;
                row.1.extend(user);
            }
            let day = DayKey::day_of(k.minute_end_ms);
            let a = k.ad;
            for (campaign_id, ad_id) in [(0, 0), (a.campaign_id, 0), (a.campaign_id, a.ad_id)] {
                let row = days
                    .entry(DayKey {
                        day,
                        advertiser_id: a.advertiser_id,
                        campaign_id,
                        ad_id,
                    })
                    .or_default();
                row.0 += c.clicks;
                row.1 += c.spend_micros;
                row.2.extend(user);
            }
        }
        let spend = |rows: BTreeMap<TruthKey, (u64, BTreeSet<u64>)>| {
            rows.into_iter()
                .map(|(k, (spend_micros, users))| {
                    (
                        k,
                        Spend {
                            spend_micros,
                            unique_users: users.len() as u64,
                        },
                    )
                })
                .collect()
        };
        Money {
            spend: spend(all),
            too_late_spend: spend(too_late),
            days: days
                .into_iter()
                .map(|(k, (valid_clicks, spend_micros, users))| {
                    (
                        k,
                        DayTotals {
                            valid_clicks,
                            spend_micros,
                            unique_users: users.len() as u64,
                        },
                    )
                })
                .collect(),
            user_clicks,
        }
    }

    /// Writes the four files into `dir` (which exists).
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        write_lines(
            &dir.join(USER_CLICKS_FILE),
            USER_CLICKS_HEADER,
            self.user_clicks.iter().map(|(k, c)| {
                format!(
                    "{},{},{},{},{},{},{},{},{},{}",
                    k.ad.advertiser_id,
                    k.ad.campaign_id,
                    k.ad.ad_id,
                    k.minute_end_ms,
                    k.partition,
                    k.user_hash,
                    c.clicks,
                    c.spend_micros,
                    c.too_late_clicks,
                    c.too_late_spend_micros
                )
            }),
        )?;
        for (file, rows) in [
            (SPEND_FILE, &self.spend),
            (TOO_LATE_SPEND_FILE, &self.too_late_spend),
        ] {
            write_lines(
                &dir.join(file),
                SPEND_HEADER,
                rows.iter().map(|(k, s)| {
                    format!(
                        "{},{},{},{},{},{}",
                        k.ad.advertiser_id,
                        k.ad.campaign_id,
                        k.ad.ad_id,
                        k.minute_end_ms,
                        s.spend_micros,
                        s.unique_users
                    )
                }),
            )?;
        }
        write_lines(
            &dir.join(DAYS_FILE),
            DAYS_HEADER,
            self.days.iter().map(|(k, t)| {
                format!(
                    "{},{},{},{},{},{},{}",
                    day_name(k.day),
                    k.advertiser_id,
                    k.campaign_id,
                    k.ad_id,
                    t.valid_clicks,
                    t.spend_micros,
                    t.unique_users
                )
            }),
        )
    }

    /// Reads the files of a run with users or prices from `dir`; `None` when the run had neither
    /// (no `user_clicks.csv`).
    pub fn read(dir: &Path) -> Result<Option<Money>, ReadError> {
        let path = dir.join(USER_CLICKS_FILE);
        if !path.exists() {
            return Ok(None);
        }
        let user_clicks = read_csv(&path, USER_CLICKS_HEADER, |f| {
            let ad = ad(f)?;
            Ok((
                UserKey {
                    minute_end_ms: id(f[3])? as i64,
                    ad,
                    partition: u32::try_from(id(f[4])?).map_err(|e| e.to_string())?,
                    user_hash: f[5]
                        .parse::<u64>()
                        .map_err(|e| format!("{:?} is not a user hash: {e}", f[5]))?,
                },
                UserClicks {
                    clicks: count(f[6])?,
                    spend_micros: count(f[7])?,
                    too_late_clicks: count(f[8])?,
                    too_late_spend_micros: count(f[9])?,
                },
            ))
        })?;
        let spend = |file: &str| {
            read_csv(&dir.join(file), SPEND_HEADER, |f| {
                Ok((
                    TruthKey {
                        minute_end_ms: id(f[3])? as i64,
                        ad: ad(f)?,
                    },
                    Spend {
                        spend_micros: count(f[4])?,
                        unique_users: count(f[5])?,
                    },
                ))
            })
        };
        let days = read_csv(&dir.join(DAYS_FILE), DAYS_HEADER, |f| {
            Ok((
                DayKey {
                    day: parse_day(f[0])?,
                    advertiser_id: id(f[1])?,
                    campaign_id: id(f[2])?,
                    ad_id: id(f[3])?,
                },
                DayTotals {
                    valid_clicks: count(f[4])?,
                    spend_micros: count(f[5])?,
                    unique_users: count(f[6])?,
                },
            ))
        })?;
        Ok(Some(Money {
            user_clicks,
            spend: spend(SPEND_FILE)?,
            too_late_spend: spend(TOO_LATE_SPEND_FILE)?,
            days,
        }))
    }

    /// The total spend of the run.
    pub fn total_spend_micros(&self) -> u64 {
        self.spend.values().map(|s| s.spend_micros).sum()
    }
}

/// Accumulates [`Money`] as clicks are counted.
#[derive(Debug)]
pub(crate) struct MoneyTruth {
    partitioning: Partitioning,
    user_clicks: BTreeMap<UserKey, UserClicks>,
}

impl MoneyTruth {
    pub(crate) fn new(partitioning: Partitioning) -> MoneyTruth {
        MoneyTruth {
            partitioning,
            user_clicks: BTreeMap::new(),
        }
    }

    /// Takes a counted click (the one `truth.csv` counts) into account.
    pub(crate) fn count(&mut self, send: &Send) -> u64 {
        let key = UserKey {
            minute_end_ms: TruthKey::of(send.ad, send.event_time_ms).minute_end_ms,
            ad: send.ad,
            partition: self
                .partitioning
                .partition(send.ad.ad_id, &send.impression_id),
            user_hash: send.user_hash,
        };
        let price = send.price_micros.unwrap_or(0);
        let row = self.user_clicks.entry(key).or_default();
        row.clicks += 1;
        row.spend_micros += price;
        if send.lateness == Lateness::TooLate {
            row.too_late_clicks += 1;
            row.too_late_spend_micros += price;
        }
        price
    }

    pub(crate) fn money(&self) -> Money {
        Money::from_user_clicks(self.user_clicks.clone())
    }
}

fn id(s: &str) -> Result<u64, String> {
    s.parse::<u64>()
        .ok()
        .filter(|n| *n <= i64::MAX as u64)
        .ok_or_else(|| format!("{s:?} is not a count or an id"))
}

fn count(s: &str) -> Result<u64, String> {
    s.parse::<u64>()
        .map_err(|e| format!("{s:?} is not a count: {e}"))
}

fn ad(f: &[&str]) -> Result<AdRef, String> {
    Ok(AdRef {
        advertiser_id: id(f[0])?,
        campaign_id: id(f[1])?,
        ad_id: id(f[2])?,
    })
}

/// `2026-11-18` as days since 1970-01-01 (`adclick_click::archive::parse_day`).
fn parse_day(s: &str) -> Result<i64, String> {
    adclick_click::archive::parse_day(s).ok_or_else(|| format!("{s:?} is not a day (YYYY-MM-DD)"))
}

#[cfg(test)]
mod tests;
