//! Writing settled days and reading statements back: two advertisers, several campaigns and
//! days, a missing day; a rerun replacing a day; u64 ids and spend above 2^63.

use adclick_billing::render::{self, Format};
use adclick_billing::{BillingError, DayFigures, Settlement, Totals};
use adclick_testsupport::TestDatabase;

use crate::fixture::{ad_rows, day, row_counts, settled_day, store, ulid};

#[tokio::test]
async fn a_statement_reads_back_what_the_days_wrote_and_shows_the_missing_day() {
    let db = TestDatabase::create();
    let store = store(db.url()).await;
    let (d1, d2, d3, d4) = (
        day("2026-12-01"),
        day("2026-12-02"),
        day("2026-12-03"),
        day("2026-12-04"),
    );
    // Advertiser 1: campaigns 10 (ads 100, 101) and 11 (ad 110); advertiser 2: campaign 20.
    store
        .replace_day(&settled_day(
            d1,
            1,
            &[
                (1, 10, 100, 5, 500_000, 3, &[("too_fast", 2)]),
                (1, 10, 101, 4, 400_000, 4, &[]),
                (
                    1,
                    11,
                    110,
                    1,
                    100_000,
                    1,
                    &[("bot_user_agent", 7), ("prefetch", 1)],
                ),
                (2, 20, 200, 9, 900_000, 9, &[]),
            ],
            // Campaign 10's users: 3 and 4 with one in common; the advertiser's: 7 in all.
            &[((1, Some(10)), 6), ((1, None), 7)],
        ))
        .await
        .unwrap();
    // d2 is never settled. d3: only campaign 11 of advertiser 1 had clicks.
    store
        .replace_day(&settled_day(
            d3,
            3,
            &[(1, 11, 110, 2, 250_000, 2, &[]), (2, 20, 200, 1, 1, 1, &[])],
            &[],
        ))
        .await
        .unwrap();
    // d4: settled, advertiser 1 without a click.
    store
        .replace_day(&settled_day(d4, 4, &[(2, 20, 200, 1, 1, 1, &[])], &[]))
        .await
        .unwrap();

    let statement = store.statement(1, d1, d4).await.unwrap();
    assert_eq!(statement.missing_days(), vec![d2]);
    assert_eq!(statement.days.len(), 4);
    let first = &statement.days[0];
    assert_eq!(
        first.settlement,
        Some(Settlement {
            block_ulid: ulid(1),
            settled_at_ms: (d1.0 + 1) * 86_400_000 + 600_001,
        })
    );
    let campaigns: Vec<(u64, DayFigures)> = first
        .campaigns
        .iter()
        .map(|c| (c.campaign_id, c.figures))
        .collect();
    assert_eq!(
        campaigns,
        vec![(10, figures(9, 900_000, 6)), (11, figures(1, 100_000, 1)),]
    );
    assert_eq!(first.advertiser, figures(10, 1_000_000, 7));
    assert_eq!(statement.days[1].settlement, None);
    assert!(statement.days[1].campaigns.is_empty());
    assert_eq!(statement.days[2].advertiser, figures(2, 250_000, 2));
    assert!(statement.days[3].settlement.is_some());
    assert_eq!(statement.days[3].advertiser, DayFigures::default());
    assert!(statement.days[3].campaigns.is_empty());
    assert_eq!(
        statement.campaign_totals.get(&10),
        Some(&Totals {
            valid_clicks: 9,
            spend_micros: 900_000
        })
    );
    assert_eq!(
        statement.campaign_totals.get(&11),
        Some(&Totals {
            valid_clicks: 3,
            spend_micros: 350_000
        })
    );
    assert_eq!(
        statement.totals,
        Totals {
            valid_clicks: 12,
            spend_micros: 1_250_000
        }
    );

    // Advertiser 2 sees only its own campaign.
    let other = store.statement(2, d1, d4).await.unwrap();
    assert!(other.campaign_totals.keys().eq([20].iter()));
    assert_eq!(other.totals.valid_clicks, 11);

    // The formats carry the missing day and no summed uniques.
    let csv = render::render(&statement, Format::Csv);
    assert!(csv.contains("\nmissing_day,2026-12-02,,,,,,\n"), "{csv}");
    assert!(
        csv.contains("\ncampaign_day,2026-12-01,10,9,900000,6,01JF0000000000000000000001,"),
        "{csv}"
    );
    assert!(csv.ends_with("\ntotal,,,12,1250000,,,\n"), "{csv}");
    let json: serde_json::Value =
        serde_json::from_str(&render::render(&statement, Format::Json)).unwrap();
    assert_eq!(json["missing_days"], serde_json::json!(["2026-12-02"]));
    assert_eq!(json["complete"], false);
    let table = render::render(&statement, Format::Table);
    assert!(table.contains("2026-12-02  MISSING"), "{table}");

    // Invalid clicks are stored per reason; the day's row totals them.
    assert_eq!(row_counts(db.url(), d1).await, [1, 4, 3, 3, 2]);

    // A range the wrong way round is refused.
    assert!(matches!(
        store.statement(1, d4, d1).await,
        Err(BillingError::EmptyRange { .. })
    ));
}

#[tokio::test]
async fn a_rerun_of_a_day_leaves_exactly_the_new_rows() {
    let db = TestDatabase::create();
    let store = store(db.url()).await;
    let d = day("2026-12-01");
    store
        .replace_day(&settled_day(
            d,
            1,
            &[
                (1, 10, 100, 5, 500, 3, &[("too_fast", 2)]),
                (1, 10, 101, 4, 400, 4, &[("prefetch", 1)]),
                (2, 20, 200, 9, 900, 9, &[]),
            ],
            &[],
        ))
        .await
        .unwrap();
    // The rerun: ad 101 gone, ad 102 new, other figures.
    let v2 = settled_day(
        d,
        2,
        &[
            (1, 10, 100, 6, 600, 3, &[]),
            (1, 10, 102, 1, 100, 1, &[("bot_user_agent", 3)]),
        ],
        &[],
    );
    store.replace_day(&v2).await.unwrap();
    assert_eq!(row_counts(db.url(), d).await, [1, 2, 1, 1, 1]);
    assert_eq!(
        ad_rows(db.url(), d).await,
        vec!["1 10 100 6 600 3", "1 10 102 1 100 1"]
    );
    let statement = store.statement(1, d, d).await.unwrap();
    assert_eq!(
        statement.days[0].settlement.as_ref().unwrap().block_ulid,
        ulid(2)
    );
    assert_eq!(statement.totals.valid_clicks, 7);
    // Advertiser 2 had clicks in v1 only: its day is settled, with nothing.
    let gone = store.statement(2, d, d).await.unwrap();
    assert!(gone.missing_days().is_empty());
    assert_eq!(gone.totals.valid_clicks, 0);

    // Written but rolled back (the block failed to publish): v2 stays.
    let pending = store
        .write_day(&settled_day(d, 3, &[(1, 10, 100, 1, 1, 1, &[])], &[]))
        .await
        .unwrap();
    assert_eq!(pending.totals().valid_clicks, 1);
    drop(pending);
    let after = store.statement(1, d, d).await.unwrap();
    assert_eq!(
        after.days[0].settlement.as_ref().unwrap().block_ulid,
        ulid(2)
    );
    assert_eq!(ad_rows(db.url(), d).await.len(), 2);

    // Inconsistent rows are refused before anything is written.
    let mut bad = settled_day(d, 4, &[(1, 10, 100, 1, 1, 1, &[])], &[]);
    bad.campaigns[0].valid_clicks = 2;
    let err = store.write_day(&bad).await.err().unwrap();
    assert!(matches!(err, BillingError::InvalidRows { .. }), "{err}");
    assert_eq!(row_counts(db.url(), d).await, [1, 2, 1, 1, 1]);
}

#[tokio::test]
async fn ids_and_spend_above_2_pow_63_round_trip() {
    let db = TestDatabase::create();
    let store = store(db.url()).await;
    let d = day("2026-12-01");
    let big = u64::MAX - 1;
    let spend = (1u64 << 63) + 12_345; // one ad's spend above i64::MAX micros
    store
        .replace_day(&settled_day(
            d,
            1,
            &[
                (big, u64::MAX, big, 3, spend, 2, &[("too_fast", u64::MAX)]),
                (big, (1 << 63) + 1, 1, 1, 7, 1, &[]),
            ],
            &[],
        ))
        .await
        .unwrap();
    let statement = store.statement(big, d, d).await.unwrap();
    let ids: Vec<u64> = statement.days[0]
        .campaigns
        .iter()
        .map(|c| c.campaign_id)
        .collect();
    assert_eq!(ids, vec![(1 << 63) + 1, u64::MAX]);
    assert_eq!(statement.days[0].campaigns[1].figures.spend_micros, spend);
    assert_eq!(statement.totals.spend_micros, spend + 7);
    assert_eq!(
        ad_rows(db.url(), d).await,
        vec![
            format!("{big} {} 1 1 7 1", (1u64 << 63) + 1),
            format!("{big} {} {big} 3 {spend} 2", u64::MAX),
        ]
    );
    let json: serde_json::Value =
        serde_json::from_str(&render::render(&statement, Format::Json)).unwrap();
    assert_eq!(json["advertiser_id"], big.to_string());
    assert_eq!(json["totals"]["spend_micros"], (spend + 7).to_string());
}

fn figures(valid_clicks: u64, spend_micros: u64, unique_users: u64) -> DayFigures {
    DayFigures {
        valid_clicks,
        spend_micros,
        unique_users,
    }
}
