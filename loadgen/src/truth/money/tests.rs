use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::*;
use crate::plan::{Plan, PlanConfig, SendKind};
use crate::shape::TrafficShape;
use crate::truth::{GroundTruth, Outcome};
use crate::users::PriceRange;

/// A plan over midnight (UTC), so the clicks fall in two settlement days, with users and prices.
fn sends() -> (Vec<Send>, Partitioning) {
    let day_end = 1_795_046_400_000; // 2026-11-19 00:00 UTC
    let plan = Plan::new(PlanConfig {
        seed: 5,
        start_ms: day_end - 150_000,
        duration_secs: 240.0,
        shape: TrafficShape::Steady { rate: 100.0 },
        duplicate_share: 0.1,
        late_share: 0.1,
        too_late_share: 0.05,
        forged_share: 0.02,
        expired_share: 0.02,
        users: 800,
        prices: Some(PriceRange {
            min_micros: 10_000,
            max_micros: 2_000_000,
        }),
        ..Default::default()
    })
    .unwrap();
    let hot_salts = plan
        .population()
        .hot_ads()
        .iter()
        .map(|ad| (ad.ad_id, 4))
        .collect();
    let layout = Partitioning {
        partitions: 6,
        hot_salts,
    };
    (plan.collect(), layout)
}

fn honest(send: &Send) -> Outcome {
    match send.kind {
        SendKind::Click | SendKind::Duplicate => Outcome::Accepted,
        _ => Outcome::Refused(401),
    }
}

/// The money of `sends` counted again from scratch: each impression's earliest genuine click.
fn recount(sends: &[Send], layout: &Partitioning) -> Money {
    let mut first: HashMap<[u8; 16], &Send> = HashMap::new();
    for s in sends
        .iter()
        .filter(|s| matches!(s.kind, SendKind::Click | SendKind::Duplicate))
    {
        let e = first.entry(s.impression_id).or_insert(s);
        if s.event_time_ms < e.event_time_ms {
            *e = s;
        }
    }
    let mut spend: BTreeMap<TruthKey, (u64, BTreeSet<u64>)> = BTreeMap::new();
    let mut days: BTreeMap<DayKey, (u64, u64, BTreeSet<u64>)> = BTreeMap::new();
    let mut user_clicks: BTreeMap<UserKey, UserClicks> = BTreeMap::new();
    for s in first.values() {
        let key = TruthKey::of(s.ad, s.event_time_ms);
        let price = s.price_micros.unwrap();
        let row = spend.entry(key).or_default();
        row.0 += price;
        row.1.insert(s.user_hash);
        let day = key.minute_end_ms / 86_400_000;
        for (campaign_id, ad_id) in [
            (0, 0),
            (s.ad.campaign_id, 0),
            (s.ad.campaign_id, s.ad.ad_id),
        ] {
            let level = DayKey {
                day,
                advertiser_id: s.ad.advertiser_id,
                campaign_id,
                ad_id,
            };
            let row = days.entry(level).or_default();
            row.0 += 1;
            row.1 += price;
            row.2.insert(s.user_hash);
        }
        let user = user_clicks
            .entry(UserKey {
                minute_end_ms: key.minute_end_ms,
                ad: s.ad,
                partition: layout.partition(s.ad.ad_id, &s.impression_id),
                user_hash: s.user_hash,
            })
            .or_default();
        user.clicks += 1;
        user.spend_micros += price;
        if s.lateness == Lateness::TooLate {
            user.too_late_clicks += 1;
            user.too_late_spend_micros += price;
        }
    }
    Money {
        spend: spend
            .into_iter()
            .map(|(k, (spend_micros, users))| {
                (
                    k,
                    Spend {
                        spend_micros,
                        unique_users: users.len() as u64,
                    },
                )
            })
            .collect(),
        days: days
            .into_iter()
            .map(|(k, (clicks, spend, users))| {
                (
                    k,
                    DayTotals {
                        valid_clicks: clicks,
                        spend_micros: spend,
                        unique_users: users.len() as u64,
                    },
                )
            })
            .collect(),
        // Checked below through the per-user rows.
        too_late_spend: BTreeMap::new(),
        user_clicks,
    }
}

fn truth_of(sends: &[Send], layout: &Partitioning) -> GroundTruth {
    let mut truth = GroundTruth::new(5, 0).with_money(layout.clone());
    for s in sends {
        truth.record(s, &honest(s));
    }
    truth
}

#[test]
fn spend_and_users_follow_the_counted_clicks() {
    let (sends, layout) = sends();
    let truth = truth_of(&sends, &layout);
    let money = truth.money().unwrap();
    let want = recount(&sends, &layout);
    assert_eq!(money.spend, want.spend);
    assert_eq!(money.days, want.days);
    assert_eq!(money.user_clicks, want.user_clicks);
    // The same ads and minutes as truth.csv, and as many clicks.
    assert!(money.spend.keys().eq(truth.counts().keys()));
    let clicks: u64 = money.user_clicks.values().map(|c| c.clicks).sum();
    assert_eq!(clicks, truth.summary.clicks);
    assert_eq!(truth.summary.spend_micros, Some(money.total_spend_micros()));
    // Too late: the part of the rows that truth's too_late.csv has.
    let too_late_clicks: u64 = money.user_clicks.values().map(|c| c.too_late_clicks).sum();
    assert_eq!(too_late_clicks, truth.summary.too_late_clicks);
    assert!(money.too_late_spend.keys().eq(truth.too_late().keys()));
    // Two settlement days, each with its advertiser, campaign and ad rows.
    let day_set: BTreeSet<i64> = money.days.keys().map(|k| k.day).collect();
    assert_eq!(day_set.len(), 2, "{day_set:?}");
    // The population is small enough that users repeat within an ad's minute and a day.
    let repeated = money
        .spend
        .iter()
        .filter(|(k, s)| s.unique_users < truth.counts()[k])
        .count();
    assert!(repeated > 0);
    // Hot ads spread over more than one partition in a minute.
    let hot = layout.hot_salts.keys().next().unwrap();
    let mut partitions: BTreeMap<i64, BTreeSet<u32>> = BTreeMap::new();
    for k in money.user_clicks.keys().filter(|k| k.ad.ad_id == *hot) {
        partitions
            .entry(k.minute_end_ms)
            .or_default()
            .insert(k.partition);
    }
    assert!(partitions.values().any(|p| p.len() > 1), "{partitions:?}");
}

#[test]
fn uniques_are_distinct_per_row_level_and_never_summed() {
    let (sends, layout) = sends();
    let money = truth_of(&sends, &layout).money().unwrap();
    for (k, t) in money.days.iter().filter(|(k, _)| k.campaign_id == 0) {
        let children: Vec<&DayTotals> = money
            .days
            .iter()
            .filter(|(c, _)| {
                c.day == k.day
                    && c.advertiser_id == k.advertiser_id
                    && c.campaign_id != 0
                    && c.ad_id == 0
            })
            .map(|(_, t)| t)
            .collect();
        assert_eq!(
            t.valid_clicks,
            children.iter().map(|c| c.valid_clicks).sum::<u64>()
        );
        assert_eq!(
            t.spend_micros,
            children.iter().map(|c| c.spend_micros).sum::<u64>()
        );
        assert!(t.unique_users <= children.iter().map(|c| c.unique_users).sum::<u64>());
        assert!(t.unique_users >= children.iter().map(|c| c.unique_users).max().unwrap());
    }
}

#[test]
fn a_failed_first_click_is_paid_by_its_duplicate_and_user_zero_is_no_user() {
    let (sends, layout) = sends();
    let orig = sends.iter().find(|s| s.duplicated_later).unwrap();
    let dup = sends
        .iter()
        .find(|s| s.kind == SendKind::Duplicate && s.impression_id == orig.impression_id)
        .unwrap();
    let mut truth = GroundTruth::new(0, 0).with_money(layout.clone());
    truth.record(orig, &Outcome::Failed("reset".into()));
    truth.record(dup, &Outcome::Accepted);
    let anonymous = Send {
        user_hash: 0,
        impression_id: [9; 16],
        kind: SendKind::Click,
        ..dup.clone()
    };
    truth.record(&anonymous, &Outcome::Accepted);
    let money = truth.money().unwrap();
    let key = TruthKey::of(dup.ad, dup.event_time_ms);
    assert_eq!(
        money.spend[&key],
        Spend {
            spend_micros: 2 * dup.price_micros.unwrap(),
            unique_users: 1,
        }
    );
    assert_eq!(money.user_clicks.len(), 2);
}

#[test]
fn files_round_trip_and_only_plans_with_users_or_prices_write_them() {
    let (sends, layout) = sends();
    let truth = truth_of(&sends, &layout);
    let dir = tempfile::tempdir().unwrap();
    truth.write(dir.path()).unwrap();
    let read = Money::read(dir.path()).unwrap().unwrap();
    assert_eq!(read, truth.money().unwrap());
    let text = std::fs::read_to_string(dir.path().join(DAYS_FILE)).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some(DAYS_HEADER));
    assert!(lines.next().unwrap().starts_with("2026-11-18,"), "{text}");
    let summary = std::fs::read_to_string(dir.path().join("summary.json")).unwrap();
    assert!(summary.contains("\"spend_micros\""), "{summary}");

    let plain_dir = tempfile::tempdir().unwrap();
    let mut plain = GroundTruth::new(5, 0);
    for s in &sends {
        plain.record(s, &honest(s));
    }
    plain.write(plain_dir.path()).unwrap();
    assert_eq!(Money::read(plain_dir.path()).unwrap(), None);
    assert!(!plain_dir.path().join(SPEND_FILE).exists());
}

#[test]
fn bad_files_are_refused_with_their_line() {
    let dir = tempfile::tempdir().unwrap();
    Money::default().write(dir.path()).unwrap();
    assert_eq!(Money::read(dir.path()).unwrap(), Some(Money::default()));
    let path = dir.path().join(USER_CLICKS_FILE);
    std::fs::write(
        &path,
        format!("{USER_CLICKS_HEADER}\n1,2,3,60000,0,18446744073709551615,1,5,0,0\n1,2,3,60000,0,x,1,5,0,0\n"),
    )
    .unwrap();
    let err = Money::read(dir.path()).unwrap_err().to_string();
    assert!(err.contains("user_clicks.csv:3"), "{err}");
    std::fs::write(
        dir.path().join(USER_CLICKS_FILE),
        format!("{USER_CLICKS_HEADER}\n"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join(DAYS_FILE),
        format!("{DAYS_HEADER}\n2026-02-30,1,0,0,1,1,1\n"),
    )
    .unwrap();
    let err = Money::read(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("days.csv:2") && err.contains("not a day"),
        "{err}"
    );
    assert_eq!(parse_day("1970-01-01"), Ok(0));
    assert_eq!(parse_day("2026-11-18"), Ok(20_775));
}
