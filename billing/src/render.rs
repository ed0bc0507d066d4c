//! A statement written out: CSV and JSON for machines (stable formats, below), a table for
//! people. Spend is integer micros in CSV and JSON (exact); the table shows currency units with
//! six decimals, printed from the integer (no float anywhere). Times are RFC 3339 UTC with
//! milliseconds (`2026-12-02T00:10:00.000Z`); days `YYYY-MM-DD`.
//!
//! # CSV
//!
//! A header, then one line per record, `record` naming its kind:
//!
//! ```text
//! record,day,campaign_id,valid_clicks,spend_micros,unique_users,block_ulid,settled_at
//! campaign_day,2026-12-01,17,120,3400000,88,01JF…,2026-12-02T00:10:00.000Z
//! advertiser_day,2026-12-01,,130,3500000,90,01JF…,2026-12-02T00:10:00.000Z
//! missing_day,2026-12-02,,,,,,
//! campaign_total,,17,120,3400000,,,
//! total,,,130,3500000,,,
//! ```
//!
//! Days in order; within a settled day its `campaign_day` lines by campaign id, then its
//! `advertiser_day` line (the advertiser's unique users over all its campaigns; zeros on a day
//! settled without clicks); an unsettled day is one `missing_day` line. Then a `campaign_total`
//! per campaign and one `total`: clicks and spend over the settled days, `unique_users` empty —
//! unique users never add up across days or campaigns.
//!
//! # JSON
//!
//! One object; ids and `spend_micros` are decimal strings (exact for any u64, also where JSON
//! numbers are doubles), click and user counts numbers:
//!
//! ```text
//! {"advertiser_id": "42", "from": "2026-12-01", "to": "2026-12-02",
//!  "complete": false, "missing_days": ["2026-12-02"],
//!  "unique_users_note": "…per day and level; never summed across days or campaigns",
//!  "days": [
//!   {"day": "2026-12-01", "settled": true, "block_ulid": "01JF…",
//!    "settled_at": "2026-12-02T00:10:00.000Z",
//!    "valid_clicks": 130, "spend_micros": "3500000", "unique_users": 90,
//!    "campaigns": [{"campaign_id": "17", "valid_clicks": 120, "spend_micros": "3400000",
//!                   "unique_users": 88}]},
//!   {"day": "2026-12-02", "settled": false}],
//!  "campaign_totals": [{"campaign_id": "17", "valid_clicks": 120, "spend_micros": "3400000"}],
//!  "totals": {"valid_clicks": 130, "spend_micros": "3500000"}}
//! ```

use std::fmt::Write as _;

use adclick_click::archive::civil_from_days;
use serde::Serialize;

use crate::statement::{DayFigures, Statement};

/// What every rendering says about unique users.
pub const UNIQUE_USERS_NOTE: &str = "unique users are counted per day: per campaign, and for the \
advertiser over all its campaigns; they are never summed across days or campaigns";

/// The output formats of `adclick billing`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Csv,
    Json,
}

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Format, String> {
        match s {
            "table" => Ok(Format::Table),
            "csv" => Ok(Format::Csv),
            "json" => Ok(Format::Json),
            other => Err(format!("{other:?} is not a format: table, csv or json")),
        }
    }
}

/// `statement` in `format`, ending with a newline.
pub fn render(statement: &Statement, format: Format) -> String {
    match format {
        Format::Table => table(statement),
        Format::Csv => csv(statement),
        Format::Json => json(statement),
    }
}

/// `micros` as currency units with six decimals: `3400000` → `3.400000`.
pub fn units(micros: u64) -> String {
    format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000)
}

/// ms since the epoch as RFC 3339 UTC with milliseconds.
pub fn rfc3339_ms(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000
    )
}

pub fn csv(statement: &Statement) -> String {
    let mut out = String::from(
        "record,day,campaign_id,valid_clicks,spend_micros,unique_users,block_ulid,settled_at\n",
    );
    // Writing to a String cannot fail.
    for day in &statement.days {
        let Some(settlement) = &day.settlement else {
            let _ = writeln!(out, "missing_day,{},,,,,,", day.day);
            continue;
        };
        let settled_at = rfc3339_ms(settlement.settled_at_ms);
        let mut line = |record: &str, campaign: &str, f: &DayFigures| {
            let _ = writeln!(
                out,
                "{record},{},{campaign},{},{},{},{},{settled_at}",
                day.day, f.valid_clicks, f.spend_micros, f.unique_users, settlement.block_ulid
            );
        };
        for campaign in &day.campaigns {
            line(
                "campaign_day",
                &campaign.campaign_id.to_string(),
                &campaign.figures,
            );
        }
        line("advertiser_day", "", &day.advertiser);
    }
    for (campaign_id, total) in &statement.campaign_totals {
        let _ = writeln!(
            out,
            "campaign_total,,{campaign_id},{},{},,,",
            total.valid_clicks, total.spend_micros
        );
    }
    let _ = writeln!(
        out,
        "total,,,{},{},,,",
        statement.totals.valid_clicks, statement.totals.spend_micros
    );
    out
}

#[derive(Serialize)]
struct JsonStatement {
    advertiser_id: String,
    from: String,
    to: String,
    complete: bool,
    missing_days: Vec<String>,
    unique_users_note: &'static str,
    days: Vec<JsonDay>,
    campaign_totals: Vec<JsonTotal>,
    totals: JsonTotal,
}

#[derive(Serialize)]
struct JsonDay {
    day: String,
    settled: bool,
    #[serde(flatten)]
    settled_day: Option<JsonSettledDay>,
}

#[derive(Serialize)]
struct JsonSettledDay {
    block_ulid: String,
    settled_at: String,
    valid_clicks: u64,
    spend_micros: String,
    unique_users: u64,
    campaigns: Vec<JsonCampaignDay>,
}

#[derive(Serialize)]
struct JsonCampaignDay {
    campaign_id: String,
    valid_clicks: u64,
    spend_micros: String,
    unique_users: u64,
}

#[derive(Serialize)]
struct JsonTotal {
    #[serde(skip_serializing_if = "Option::is_none")]
    campaign_id: Option<String>,
    valid_clicks: u64,
    spend_micros: String,
}

pub fn json(statement: &Statement) -> String {
    let doc = JsonStatement {
        advertiser_id: statement.advertiser_id.to_string(),
        from: statement.from.to_string(),
        to: statement.to.to_string(),
        complete: statement.missing_days().is_empty(),
        missing_days: statement
            .missing_days()
            .iter()
            .map(ToString::to_string)
            .collect(),
        unique_users_note: UNIQUE_USERS_NOTE,
        days: statement
            .days
            .iter()
            .map(|day| JsonDay {
                day: day.day.to_string(),
                settled: day.settlement.is_some(),
                settled_day: day.settlement.as_ref().map(|s| JsonSettledDay {
                    block_ulid: s.block_ulid.clone(),
                    settled_at: rfc3339_ms(s.settled_at_ms),
                    valid_clicks: day.advertiser.valid_clicks,
                    spend_micros: day.advertiser.spend_micros.to_string(),
                    unique_users: day.advertiser.unique_users,
                    campaigns: day
                        .campaigns
                        .iter()
                        .map(|c| JsonCampaignDay {
                            campaign_id: c.campaign_id.to_string(),
                            valid_clicks: c.figures.valid_clicks,
                            spend_micros: c.figures.spend_micros.to_string(),
                            unique_users: c.figures.unique_users,
                        })
                        .collect(),
                }),
            })
            .collect(),
        campaign_totals: statement
            .campaign_totals
            .iter()
            .map(|(id, t)| JsonTotal {
                campaign_id: Some(id.to_string()),
                valid_clicks: t.valid_clicks,
                spend_micros: t.spend_micros.to_string(),
            })
            .collect(),
        totals: JsonTotal {
            campaign_id: None,
            valid_clicks: statement.totals.valid_clicks,
            spend_micros: statement.totals.spend_micros.to_string(),
        },
    };
    // Plain structs of strings and integers always serialize.
    let mut text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    text.push('\n');
    text
}

/// The statement for people: one line per campaign and day, the advertiser's daily line, the
/// missing days called out, totals, the blocks.
pub fn table(statement: &Statement) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Statement of advertiser {}, settlement days {} to {} (UTC; a day holds the clicks whose minute ends in it)",
        statement.advertiser_id, statement.from, statement.to
    );
    let missing = statement.missing_days();
    if !missing.is_empty() {
        let days: Vec<String> = missing.iter().map(ToString::to_string).collect();
        let _ = writeln!(
            out,
            "INCOMPLETE: {} day(s) not settled, their clicks are not in this statement: {}",
            missing.len(),
            days.join(", ")
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<10}  {:<20}  {:>14}  {:>20}  {:>12}",
        "day", "campaign", "valid clicks", "spend", "unique users"
    );
    for day in &statement.days {
        if day.settlement.is_none() {
            let _ = writeln!(out, "{:<10}  MISSING: not settled", day.day);
            continue;
        }
        for c in &day.campaigns {
            let _ = writeln!(
                out,
                "{:<10}  {:<20}  {:>14}  {:>20}  {:>12}",
                day.day,
                c.campaign_id,
                c.figures.valid_clicks,
                units(c.figures.spend_micros),
                c.figures.unique_users
            );
        }
        let _ = writeln!(
            out,
            "{:<10}  {:<20}  {:>14}  {:>20}  {:>12}",
            day.day,
            "(all campaigns)",
            day.advertiser.valid_clicks,
            units(day.advertiser.spend_micros),
            day.advertiser.unique_users
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "Totals over the settled days:");
    for (id, t) in &statement.campaign_totals {
        let _ = writeln!(
            out,
            "{:<10}  {:<20}  {:>14}  {:>20}",
            "",
            id,
            t.valid_clicks,
            units(t.spend_micros)
        );
    }
    let _ = writeln!(
        out,
        "{:<10}  {:<20}  {:>14}  {:>20}",
        "",
        "(all campaigns)",
        statement.totals.valid_clicks,
        units(statement.totals.spend_micros)
    );
    let _ = writeln!(out);
    let _ = writeln!(out, "Note: {UNIQUE_USERS_NOTE}.");
    let _ = writeln!(out, "Blocks:");
    for day in &statement.days {
        match &day.settlement {
            Some(s) => {
                let _ = writeln!(
                    out,
                    "  {}  {}  settled {}",
                    day.day,
                    s.block_ulid,
                    rfc3339_ms(s.settled_at_ms)
                );
            }
            None => {
                let _ = writeln!(out, "  {}  (none: not settled)", day.day);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::Day;
    use crate::statement::{CampaignDay, Settlement, StatementDay, Totals};

    fn statement() -> Statement {
        let from: Day = "2026-12-01".parse().unwrap();
        Statement {
            advertiser_id: 42,
            from,
            to: from.next(),
            days: vec![
                StatementDay {
                    day: from,
                    settlement: Some(Settlement {
                        block_ulid: "01JF0000000000000000000000".into(),
                        settled_at_ms: 1_796_083_800_000,
                    }),
                    advertiser: DayFigures {
                        valid_clicks: 130,
                        spend_micros: 3_500_000,
                        unique_users: 90,
                    },
                    campaigns: vec![CampaignDay {
                        campaign_id: u64::MAX,
                        figures: DayFigures {
                            valid_clicks: 120,
                            spend_micros: 3_400_000,
                            unique_users: 88,
                        },
                    }],
                },
                StatementDay {
                    day: from.next(),
                    settlement: None,
                    advertiser: DayFigures::default(),
                    campaigns: vec![],
                },
            ],
            campaign_totals: BTreeMap::from([(
                u64::MAX,
                Totals {
                    valid_clicks: 120,
                    spend_micros: 3_400_000,
                },
            )]),
            totals: Totals {
                valid_clicks: 130,
                spend_micros: 3_500_000,
            },
        }
    }

    #[test]
    fn csv_is_as_documented() {
        assert_eq!(
            csv(&statement()),
            "record,day,campaign_id,valid_clicks,spend_micros,unique_users,block_ulid,settled_at\n\
             campaign_day,2026-12-01,18446744073709551615,120,3400000,88,01JF0000000000000000000000,2026-12-01T00:10:00.000Z\n\
             advertiser_day,2026-12-01,,130,3500000,90,01JF0000000000000000000000,2026-12-01T00:10:00.000Z\n\
             missing_day,2026-12-02,,,,,,\n\
             campaign_total,,18446744073709551615,120,3400000,,,\n\
             total,,,130,3500000,,,\n"
        );
    }

    #[test]
    fn json_is_as_documented() {
        let doc: serde_json::Value = serde_json::from_str(&json(&statement())).unwrap();
        assert_eq!(doc["advertiser_id"], "42");
        assert_eq!(doc["complete"], false);
        assert_eq!(doc["missing_days"], serde_json::json!(["2026-12-02"]));
        assert_eq!(doc["days"][0]["settled"], true);
        assert_eq!(doc["days"][0]["block_ulid"], "01JF0000000000000000000000");
        assert_eq!(doc["days"][0]["settled_at"], "2026-12-01T00:10:00.000Z");
        assert_eq!(doc["days"][0]["spend_micros"], "3500000");
        assert_eq!(doc["days"][0]["unique_users"], 90);
        assert_eq!(
            doc["days"][0]["campaigns"][0]["campaign_id"],
            "18446744073709551615"
        );
        assert_eq!(
            doc["days"][1],
            serde_json::json!({"day": "2026-12-02", "settled": false})
        );
        assert_eq!(
            doc["campaign_totals"][0],
            serde_json::json!({"campaign_id": "18446744073709551615", "valid_clicks": 120, "spend_micros": "3400000"})
        );
        assert_eq!(
            doc["totals"],
            serde_json::json!({"valid_clicks": 130, "spend_micros": "3500000"})
        );
    }

    #[test]
    fn the_table_calls_out_missing_days_and_unsummed_uniques() {
        let text = table(&statement());
        assert!(text.contains("INCOMPLETE: 1 day(s) not settled"), "{text}");
        assert!(text.contains("2026-12-02  MISSING: not settled"), "{text}");
        assert!(text.contains("3.400000"), "{text}");
        assert!(text.contains("never summed across days"), "{text}");
        assert!(
            text.contains("01JF0000000000000000000000  settled 2026-12-01T00:10:00.000Z"),
            "{text}"
        );
    }

    #[test]
    fn units_and_times_are_exact() {
        assert_eq!(units(0), "0.000000");
        assert_eq!(units(u64::MAX), "18446744073709.551615");
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(1_796_083_800_123), "2026-12-01T00:10:00.123Z");
    }
}
