//! Spend and users: per minute, per day, from the counted record only, never from invalid clicks.

use super::*;

/// A click of impression `n` at `t` by `user` for `price_micros`, of ad 5 (campaign 7).
fn priced(n: u32, t: i64, user: u64, price_micros: u64) -> Click {
    Click {
        user_hash: user,
        price_micros,
        ..numbered(n, t)
    }
}

#[test]
fn a_minute_has_the_spend_and_distinct_users_of_its_valid_clicks() {
    let t = day().start_ms() + 3_600_000;
    let m = Minute::of(t);
    let settled = settle(&[
        priced(1, t, 0xa, 1_000_000),
        priced(2, t + 1, 0xa, 250_000), // the same person again
        priced(3, t + 2, 0xb, 0),       // a free click
        priced(4, t + 3, 0, 500_000),   // an unknown user: spend, no user
        priced(5, t + 60_000, 0xb, 2),  // the next minute
    ]);
    let ad = settled.ads[0].0;
    assert_eq!(
        settled.ads,
        vec![(
            ad,
            vec![
                (
                    m,
                    AdMinute {
                        clicks: 4,
                        spend_micros: 1_750_000,
                        unique_users: 2
                    }
                ),
                (
                    m.next(),
                    AdMinute {
                        clicks: 1,
                        spend_micros: 2,
                        unique_users: 1
                    }
                ),
            ]
        )]
    );
    // Over the day user 0xb is one user, not two.
    assert_eq!(
        (settled.stats.spend_micros, settled.stats.unique_users),
        (1_750_002, 2)
    );
    assert_eq!(settled.daily.ads[0].unique_users, 2);
    assert_eq!(settled.daily.ads[0].spend_micros, 1_750_002);
}

#[test]
fn user_hash_0_is_never_a_user() {
    let t = day().start_ms() + 3_600_000;
    let settled = settle(
        &(0..50u32)
            .map(|i| priced(i, t + i64::from(i), 0, 3))
            .collect::<Vec<_>>(),
    );
    assert_eq!(
        settled.ads[0].1,
        vec![(
            Minute::of(t),
            AdMinute {
                clicks: 50,
                spend_micros: 150,
                unique_users: 0
            }
        )]
    );
    assert_eq!(settled.stats.unique_users, 0);
    let d = &settled.daily;
    assert_eq!(
        (
            d.ads[0].unique_users,
            d.campaigns[0].unique_users,
            d.advertisers[0].unique_users,
            d.unique_users
        ),
        (0, 0, 0, 0)
    );
}

#[test]
fn a_repeat_with_another_user_or_price_changes_nothing() {
    let t = day().start_ms() + 3_600_000;
    let first = priced(1, t, 0xa, 1_000);
    let want = settle(std::slice::from_ref(&first));
    // Read before and after the counted record, in the same minute and the next, and from a
    // fail-open repeat with the same event time but a later receive time.
    let mut same_time = priced(1, t, 0xc, 7);
    same_time.receive_time_ms += 5;
    for records in [
        vec![priced(1, t + 30, 0xb, 9_999), first.clone()],
        vec![first.clone(), priced(1, t + 60_000, 0xb, 9_999)],
        vec![same_time.clone(), first.clone()],
        vec![first.clone(), same_time.clone()],
    ] {
        let got = settle(&records);
        assert_eq!(got.ads, want.ads);
        assert_eq!(got.daily, want.daily);
        assert_eq!((got.stats.spend_micros, got.stats.unique_users), (1_000, 1));
    }
    // A record of the impression in the look-back: the impression is not the day's at all.
    let mut earlier = priced(1, day().start_ms() - 1_800_000, 0xb, 5);
    earlier.receive_time_ms = earlier.event_time_ms;
    let got = settle(&[first, earlier]);
    assert!(got.ads.is_empty() && got.daily.ads.is_empty());
    assert_eq!((got.stats.spend_micros, got.stats.unique_users), (0, 0));
}

#[test]
fn the_days_users_are_not_the_sum_of_the_minutes_or_the_ads() {
    let t = day().start_ms() + 3_600_000;
    let on_ad = |c: Click, ad_id: u64, campaign_id: u64, advertiser_id: u64| Click {
        ad_id,
        campaign_id,
        advertiser_id,
        ..c
    };
    // User 0xa clicks ad 5 in two minutes and ad 6 (same campaign) once; user 0xb ad 6 and ad 8
    // of another campaign of the same advertiser; user 0xc ad 9 of another advertiser.
    let settled = settle(&[
        on_ad(priced(1, t, 0xa, 10), 5, 7, 1),
        on_ad(priced(2, t + 60_000, 0xa, 10), 5, 7, 1),
        on_ad(priced(3, t + 120_000, 0xa, 20), 6, 7, 1),
        on_ad(priced(4, t + 120_000, 0xb, 20), 6, 7, 1),
        on_ad(priced(5, t + 180_000, 0xb, 40), 8, 9, 1),
        on_ad(priced(6, t + 180_000, 0xc, 1), 9, 10, 2),
    ]);
    let minute_users: u64 = settled
        .ads
        .iter()
        .flat_map(|(_, minutes)| minutes.iter().map(|(_, m)| m.unique_users))
        .sum();
    assert_eq!(minute_users, 6);
    let d = &settled.daily;
    let ads: Vec<(u64, u64, u64, u64)> = d
        .ads
        .iter()
        .map(|a| (a.ad_id, a.valid_clicks, a.spend_micros, a.unique_users))
        .collect();
    assert_eq!(
        ads,
        [(5, 2, 20, 1), (6, 2, 40, 2), (8, 1, 40, 1), (9, 1, 1, 1)]
    );
    let campaigns: Vec<(u64, u64, u64, u64)> = d
        .campaigns
        .iter()
        .map(|c| {
            (
                c.campaign_id,
                c.valid_clicks,
                c.spend_micros,
                c.unique_users,
            )
        })
        .collect();
    assert_eq!(campaigns, [(7, 4, 60, 2), (9, 1, 40, 1), (10, 1, 1, 1)]);
    let advertisers: Vec<(u64, u64, u64, u64)> = d
        .advertisers
        .iter()
        .map(|a| {
            (
                a.advertiser_id,
                a.valid_clicks,
                a.spend_micros,
                a.unique_users,
            )
        })
        .collect();
    assert_eq!(advertisers, [(1, 5, 100, 2), (2, 1, 1, 1)]);
    assert_eq!(d.unique_users, 3);
    assert_eq!(settled.stats.unique_users, 3);
    assert_eq!(settled.stats.spend_micros, 101);
}

#[test]
fn invalid_clicks_bring_no_spend_and_no_users() {
    let t = day().start_ms() + 3_600_000;
    let m = Minute::of(t);
    // A bot record and a prefetch of impression 1 (with a user and a price), the person's click
    // of it; a bot record of impression 2, never clicked by a person.
    let settled = settle(&[
        with_reason(priced(1, t, 0xb07, 1_000), InvalidReason::BotUserAgent),
        with_reason(priced(1, t + 1, 0xb08, 1_000), InvalidReason::Prefetch),
        priced(1, t + 2, 0xa, 300),
        with_reason(priced(2, t, 0xb09, 1_000), InvalidReason::BotUserAgent),
    ]);
    assert_eq!(
        settled.ads[0].1,
        vec![(
            m,
            AdMinute {
                clicks: 1,
                spend_micros: 300,
                unique_users: 1
            }
        )]
    );
    assert_eq!(settled.stats.invalid_clicks, 3);
    let ad = &settled.daily.ads[0];
    assert_eq!(
        (ad.valid_clicks, ad.spend_micros, ad.unique_users),
        (1, 300, 1)
    );
    assert_eq!(
        ad.invalid,
        BTreeMap::from([("bot_user_agent", 2), ("prefetch", 1)])
    );
    assert_eq!(settled.daily.unique_users, 1);

    // Clicks settled invalid for velocity: 101 clicks of one user in a minute, one over the
    // limit — billed are the 100 valid ones, and the user is one user.
    let flood: Vec<Click> = (0..101u32)
        .map(|i| priced(100 + i, t + i64::from(i), 0xf, 10))
        .collect();
    let settled = settle(&flood);
    assert_eq!(invalid_by_reason(&settled), vec![(Reason::UserVelocity, 1)]);
    assert_eq!(
        settled.ads[0].1,
        vec![(
            m,
            AdMinute {
                clicks: 100,
                spend_micros: 1_000,
                unique_users: 1
            }
        )]
    );
    assert_eq!(
        settled.daily.ads[0].invalid,
        BTreeMap::from([("user_velocity", 1)])
    );

    // An ad with bots only is listed in the daily figures with nothing billed.
    let mut bots_only = with_reason(priced(7, t, 0xb0, 1_000), InvalidReason::BotUserAgent);
    bots_only.ad_id = 99;
    let settled = settle(&[bots_only]);
    assert!(settled.ads.is_empty());
    let d = &settled.daily;
    assert_eq!(d.ads.len(), 1);
    assert_eq!(
        (
            d.ads[0].ad_id,
            d.ads[0].valid_clicks,
            d.ads[0].spend_micros,
            d.ads[0].unique_users
        ),
        (99, 0, 0, 0)
    );
    assert_eq!((d.campaigns.len(), d.advertisers.len()), (1, 1));
    assert_eq!(
        (settled.stats.spend_micros, settled.stats.unique_users),
        (0, 0)
    );
}
