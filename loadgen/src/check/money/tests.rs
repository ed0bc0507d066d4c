use std::collections::BTreeSet;

use super::*;
use crate::population::AdRef;
use crate::truth::money::{UserClicks, UserKey};

const M: i64 = 10 * MINUTE_MS;

fn ad(campaign: u64, ad_id: u64) -> AdRef {
    AdRef {
        advertiser_id: 1,
        campaign_id: campaign,
        ad_id,
    }
}

/// One row of `user_clicks.csv`: `clicks` clicks at `price` each, the last `too_late` of them too
/// late.
fn row(
    ad: AdRef,
    partition: u32,
    user: u64,
    clicks: u64,
    price: u64,
    too_late: u64,
) -> (UserKey, UserClicks) {
    (
        UserKey {
            minute_end_ms: M,
            ad,
            partition,
            user_hash: user,
        },
        UserClicks {
            clicks,
            spend_micros: clicks * price,
            too_late_clicks: too_late,
            too_late_spend_micros: too_late * price,
        },
    )
}

/// Campaign 5: ad 1 (own series on partition 0), ads 2 and 3 folded into partition 0's
/// `other`, hot ad 4 on partitions 1 and 2 with user 100 on both. Campaign 9 a flood's.
fn money() -> Money {
    Money::from_user_clicks(
        [
            row(ad(5, 1), 0, 100, 2, 250_000, 0),
            row(ad(5, 1), 0, 101, 1, 250_000, 1),
            row(ad(5, 2), 0, 100, 1, 1_000_000, 0),
            row(ad(5, 3), 0, 102, 1, 3, 0),
            row(ad(5, 3), 0, 0, 1, 7, 0),
            row(ad(5, 4), 1, 100, 1, 10, 0),
            row(ad(5, 4), 2, 100, 2, 10, 0),
            row(ad(5, 4), 2, 103, 1, 10, 0),
            row(ad(9, 99), 3, 104, 1, 0, 0),
        ]
        .into_iter()
        .collect(),
    )
}

fn cell(campaign: u64, partition: u32, ad: &str) -> CellKey {
    (M, (1, campaign), partition, ad.to_string())
}

/// What an exact stream holds.
fn live() -> LiveMoney {
    LiveMoney {
        spend: [
            (cell(5, 0, "1"), 500_000),
            (cell(5, 0, OTHER), 1_000_010),
            (cell(5, 1, "4"), 10),
            (cell(5, 2, "4"), 30),
            (cell(9, 3, "99"), 0),
            // Another run's campaign, and a minute outside the run: not this run's.
            (cell(77, 0, "1"), 5),
            ((30 * MINUTE_MS, (1, 5), 0, "1".to_string()), 5),
        ]
        .into_iter()
        .collect(),
        unique_users: [
            (cell(5, 0, "1"), 1),
            // Users 100 and 102 (user 0 is nobody; 101's click was too late).
            (cell(5, 0, OTHER), 2),
            (cell(5, 1, "4"), 1),
            (cell(5, 2, "4"), 2),
            // A flood's users are not compared.
            (cell(9, 3, "99"), 7),
        ]
        .into_iter()
        .collect(),
        late_spend: 250_000,
    }
}

fn compare(live: &LiveMoney) -> MoneyComparison {
    let campaigns: BTreeSet<CampaignId> = [(1, 5), (1, 9)].into_iter().collect();
    let floods: BTreeSet<CampaignId> = [(1, 9)].into_iter().collect();
    compare_money(&money(), &campaigns, &floods, M, M + MINUTE_MS, live)
}

#[test]
fn an_exact_stream_is_equal_cell_by_cell() {
    let c = compare(&live());
    assert!(c.is_exact(), "{}", c.render());
    assert_eq!(c.minutes.len(), 2, "every minute of the run is a row");
    assert_eq!(
        c.minutes[0],
        SpendMinute {
            minute_end_ms: M,
            truth_on_time: 1_500_050,
            truth_too_late: 250_000,
            prometheus: 1_500_050,
            cells_apart: 0,
        }
    );
    let rendered = c.render();
    assert!(rendered.contains("spend: truth 1750050 = 1500050 on time + 250000 too late"));
    assert!(rendered.contains(": equal"), "{rendered}");
    assert!(
        rendered.contains("adclick_unique_users: 4 cells"),
        "{rendered}"
    );
}

#[test]
fn a_wrong_figure_fails_and_is_named() {
    // A hot ad's user counted once over both partitions: partition 2 must count 100 again.
    let mut wrong = live();
    wrong.unique_users.insert(cell(5, 2, "4"), 1);
    let c = compare(&wrong);
    assert!(!c.is_exact());
    let rendered = c.render();
    assert!(
        rendered.contains(
            "differs: 1970-01-01 00:10 advertiser 1 campaign 5 ad 4 partition 2 adclick_unique_users: truth 2, Prometheus 1"
        ),
        "{rendered}"
    );
    assert!(rendered.contains("NOT equal"));

    // `other` summed per ad instead of as a union of its ads' users.
    let mut wrong = live();
    wrong.unique_users.insert(cell(5, 0, OTHER), 3);
    assert!(!compare(&wrong).is_exact());

    // A price lost from `other`, and the campaign's minute is apart.
    let mut wrong = live();
    wrong.spend.insert(cell(5, 0, OTHER), 1_000_000);
    let c = compare(&wrong);
    assert!(!c.is_exact());
    assert_eq!(c.minutes[0].cells_apart, 1);
    assert!(c.render().contains("<- differs"));

    // The too-late click's price counted in its minute instead of as late spend.
    let mut wrong = live();
    wrong.spend.insert(cell(5, 0, "1"), 750_000);
    wrong.late_spend = 0;
    assert!(!compare(&wrong).is_exact());
    let mut wrong = live();
    wrong.late_spend = 0;
    assert!(!compare(&wrong).is_exact());

    // A flood ad's valid clicks are unpriced: spend there is a difference.
    let mut wrong = live();
    wrong.spend.insert(cell(9, 3, "99"), 1);
    assert!(!compare(&wrong).is_exact());
}

#[test]
fn the_ads_with_their_own_series_decide_what_other_holds() {
    // Ad 2 with its own series on partition 0: its spend and user leave `other`.
    let mut own = live();
    own.spend.insert(cell(5, 0, "2"), 1_000_000);
    own.spend.insert(cell(5, 0, OTHER), 10);
    own.unique_users.insert(cell(5, 0, "2"), 1);
    own.unique_users.insert(cell(5, 0, OTHER), 1);
    let c = compare(&own);
    assert!(c.is_exact(), "{}", c.render());
    // A series of ad 2 missing altogether: its clicks belong to `other`, which then differs.
    let mut missing = own.clone();
    missing.spend.remove(&cell(5, 0, "2"));
    missing.unique_users.remove(&cell(5, 0, "2"));
    assert!(!compare(&missing).is_exact());
    // Ad 2 folded into `other` this minute but with its own series the minute before: it reads
    // the exporter's 0 here, which does not make it an ad of its own.
    let mut zero = live();
    zero.spend.insert(cell(5, 0, "2"), 0);
    zero.unique_users.insert(cell(5, 0, "2"), 0);
    let c = compare(&zero);
    assert!(c.is_exact(), "{}", c.render());
    // No series at all: every cell of the truth differs.
    let c = compare(&LiveMoney::default());
    assert!(!c.is_exact());
    assert!(c.differences().count() >= 6);
}

#[test]
fn an_empty_truth_against_an_empty_stream_is_equal() {
    let c = compare_money(
        &Money::default(),
        &BTreeSet::new(),
        &BTreeSet::new(),
        M,
        M,
        &LiveMoney::default(),
    );
    assert!(c.is_exact());
    assert_eq!(c.minutes.len(), 1);
}
