//! Settling: dedup by identity, the velocity sweep, settled verdicts and their differences, spend
//! and users.

use super::*;
use adclick_click::wire::InvalidReason;
use adclick_invalid::{Config, DenyList};
use proptest::prelude::*;

fn rules() -> Rules {
    Rules::new(&Config::default(), DenyList::empty()).unwrap()
}

fn day() -> Day {
    "2026-11-23".parse().unwrap()
}

fn click(impression: u8, ad_id: u64, event_time_ms: i64) -> Click {
    Click {
        impression_id: vec![impression; 16],
        ad_id,
        campaign_id: ad_id / 10 + 1,
        advertiser_id: 1,
        event_time_ms,
        ..Default::default()
    }
}

/// A click of impression `n` (any u32) at `t`, received at `t`, of ad 5.
fn numbered(n: u32, t: i64) -> Click {
    let mut id = [0u8; 16];
    id[12..].copy_from_slice(&n.to_be_bytes());
    Click {
        impression_id: id.to_vec(),
        ad_id: 5,
        campaign_id: 7,
        advertiser_id: 1,
        event_time_ms: t,
        receive_time_ms: t,
        ..Default::default()
    }
}

fn with_reason(mut c: Click, reason: InvalidReason) -> Click {
    c.invalid_reason = reason as i32;
    c
}

fn settle(clicks: &[Click]) -> SettledDay {
    let mut s = Settlement::new(day(), 3_600_000);
    clicks.iter().for_each(|c| s.add(c));
    s.finish(&rules())
}

fn key(reason: Reason) -> InvalidKey {
    InvalidKey {
        advertiser_id: 1,
        campaign_id: 7,
        reason,
    }
}

/// Clicks of unknown users, free: no spend, no users.
fn clicks(clicks: u64) -> AdMinute {
    AdMinute {
        clicks,
        ..AdMinute::default()
    }
}

/// Invalid clicks per reason over the day.
fn invalid_by_reason(settled: &SettledDay) -> Vec<(Reason, u64)> {
    settled
        .invalid
        .iter()
        .map(|(k, minutes)| (k.reason, minutes.iter().map(|(_, n)| n).sum()))
        .collect()
}

#[test]
fn first_click_counts_once_in_its_minute() {
    let day = day();
    let t = day.start_ms() + 3_600_000;
    let mut s = Settlement::new(day, 3_600_000);
    s.add(&click(1, 5, t + 61_000)); // a repeat read before the first click
    s.add(&click(1, 5, t + 1_000));
    s.add(&click(2, 5, t + 2_000));
    s.add(&click(3, 7, day.start_ms() - 1_800_000)); // before the day: only an impression learnt ...
    s.add(&click(3, 7, t)); // ... so this repeat is removed
    s.add(&click(4, 7, day.end_ms())); // next day's
    let mut unchecked = click(5, 7, t);
    unchecked.set_flag(ClickFlag::DedupUnchecked);
    s.add(&unchecked);
    let settled = s.finish(&rules());
    let m = Minute::of(t);
    assert_eq!(
        settled.ads,
        vec![
            (
                AdKey {
                    advertiser_id: 1,
                    campaign_id: 1,
                    ad_id: 5
                },
                vec![(m, clicks(2))]
            ),
            (
                AdKey {
                    advertiser_id: 1,
                    campaign_id: 1,
                    ad_id: 7
                },
                vec![(m, clicks(1))]
            ),
        ]
    );
    assert!(settled.invalid.is_empty() && settled.verdict_changes.is_empty());
    let st = settled.stats;
    assert_eq!(
        (st.records, st.in_day, st.in_lookback, st.outside),
        (7, 5, 1, 1)
    );
    assert_eq!(
        (
            st.clicks,
            st.invalid_clicks,
            st.duplicates_removed,
            st.dedup_unchecked
        ),
        (3, 0, 2, 1)
    );
}

#[test]
fn a_bot_record_and_the_real_click_of_one_impression_both_count() {
    let t = day().start_ms() + 3_600_000;
    let bot = with_reason(numbered(1, t), InvalidReason::BotUserAgent);
    let settled = settle(&[
        bot.clone(),
        numbered(1, t + 5_000),
        bot.clone(), // the bot again: one per impression and reason
    ]);
    assert_eq!(settled.stats.clicks, 1);
    assert_eq!(settled.stats.invalid_clicks, 1);
    assert_eq!(settled.stats.duplicates_removed, 1);
    assert_eq!(
        settled.invalid,
        vec![(key(Reason::BotUserAgent), vec![(Minute::of(t), 1)])]
    );
    // A request reason recorded stands: no change to report.
    assert!(settled.verdict_changes.is_empty());
}

#[test]
fn a_prefetch_then_the_persons_click_count_one_each() {
    let t = day().start_ms() + 7_200_000;
    let prefetch = with_reason(numbered(1, t), InvalidReason::Prefetch);
    // Read in either order; a deny-listed record of the same impression is a third identity.
    let deny = with_reason(numbered(1, t + 10), InvalidReason::DenyListedNetwork);
    for records in [
        vec![prefetch.clone(), numbered(1, t + 2_000), deny.clone()],
        vec![numbered(1, t + 2_000), deny.clone(), prefetch.clone()],
    ] {
        let settled = settle(&records);
        assert_eq!(settled.stats.clicks, 1);
        assert_eq!(
            invalid_by_reason(&settled),
            vec![(Reason::DenyListedNetwork, 1), (Reason::Prefetch, 1)]
        );
        assert_eq!(settled.stats.duplicates_removed, 0);
    }
}

#[test]
fn user_velocity_over_100_a_minute_by_receive_time_then_impression() {
    let m = day().start_ms() + 3_600_000;
    // 102 clicks of one user in one minute of receive time; the 100th and 101st share a
    // millisecond, so the impression id decides which one is the 101st.
    let mut clicks: Vec<Click> = (0..100u32)
        .map(|i| numbered(1000 + i, m + i64::from(i) * 100))
        .collect();
    // Same ms as impression 1099, lower id: counted before it. Of another campaign, to tell
    // which of the two was over the limit.
    let mut tie = numbered(50, m + 99 * 100);
    tie.campaign_id = 8;
    clicks.push(tie);
    clicks.push(numbered(2000, m + 59_999));
    for c in &mut clicks {
        c.user_hash = 0xabc;
    }
    // A click of the same user in the next minute starts again.
    let mut next = numbered(3000, m + 60_000);
    next.user_hash = 0xabc;
    clicks.push(next);
    // Read in reverse: the order is the receive time's, not the archive's.
    clicks.reverse();
    let settled = settle(&clicks);
    assert_eq!(settled.stats.clicks, 101);
    assert_eq!(
        settled.invalid,
        vec![(key(Reason::UserVelocity), vec![(Minute::of(m), 2)])]
    );
    // The two over the limit were recorded valid: impression 1099 (after 50 in their
    // millisecond: the 101st) and the minute's last.
    let changed: u64 = settled.verdict_changes.iter().map(|c| c.clicks).sum();
    assert_eq!(changed, 2);
    assert_eq!(settled.stats.verdicts_changed, 2);
    // Unknown users (hash 0) are never counted together.
    let anonymous: Vec<Click> = (0..150u32).map(|i| numbered(i, m + i64::from(i))).collect();
    assert_eq!(settle(&anonymous).stats.clicks, 150);
}

#[test]
fn ip_velocity_counts_per_second() {
    let s0 = day().start_ms() + 3_600_000;
    let mut clicks = Vec::new();
    for i in 0..11u32 {
        clicks.push(numbered(i, s0 + i64::from(i) * 90)); // 11 in second 0
    }
    for i in 0..10u32 {
        clicks.push(numbered(100 + i, s0 + 1_000 + i64::from(i))); // 10 in second 1
    }
    for c in &mut clicks {
        c.ip_hash = 0x1f;
    }
    let settled = settle(&clicks);
    assert_eq!(settled.stats.clicks, 20);
    assert_eq!(invalid_by_reason(&settled), vec![(Reason::IpVelocity, 1)]);
}

#[test]
fn a_velocity_unchecked_click_settles_invalid_and_the_difference_is_reported() {
    let m = day().start_ms() + 3_600_000;
    let clicks: Vec<Click> = (0..101u32)
        .map(|i| {
            let mut c = numbered(i, m + i64::from(i));
            c.user_hash = 9;
            // Ingest's counters failed open for the last few: recorded valid, unchecked.
            if i >= 98 {
                c.set_flag(ClickFlag::VelocityUnchecked);
            }
            c
        })
        .collect();
    let settled = settle(&clicks);
    assert_eq!(settled.stats.velocity_unchecked, 3);
    assert_eq!(
        settled.verdict_changes,
        vec![VerdictChange {
            advertiser_id: 1,
            campaign_id: 7,
            minute: Minute::of(m),
            recorded: Verdict::Valid,
            settled: Verdict::Invalid(Reason::UserVelocity),
            clicks: 1,
            velocity_unchecked: 1,
        }]
    );
    // And the other way: recorded user_velocity live (a repeat counted there), valid settled.
    let mut lone = numbered(500, m);
    lone.invalid_reason = InvalidReason::UserVelocity as i32;
    lone.user_hash = 10;
    let settled = settle(&[lone]);
    assert_eq!(settled.stats.clicks, 1);
    assert_eq!(
        settled.verdict_changes[0].recorded,
        Verdict::Invalid(Reason::UserVelocity)
    );
    assert_eq!(settled.verdict_changes[0].settled, Verdict::Valid);
    assert_eq!(settled.verdict_changes[0].velocity_unchecked, 0);
}

#[test]
fn request_invalid_records_and_repeats_do_not_count_towards_velocity() {
    let m = day().start_ms() + 3_600_000;
    let mut clicks = Vec::new();
    for i in 0..100u32 {
        let mut c = numbered(i, m + i64::from(i) * 10);
        c.user_hash = 9;
        // Each impression repeated (a fail-open repeat), and prefetched by a bot, in the minute.
        let mut repeat = c.clone();
        repeat.event_time_ms += 5;
        repeat.receive_time_ms += 5;
        let mut bot = with_reason(c.clone(), InvalidReason::BotUserAgent);
        bot.receive_time_ms -= 1;
        clicks.extend([c, repeat, bot]);
    }
    let settled = settle(&clicks);
    assert_eq!(settled.stats.clicks, 100);
    assert_eq!(
        invalid_by_reason(&settled),
        vec![(Reason::BotUserAgent, 100)]
    );
    assert_eq!(settled.stats.duplicates_removed, 100);
    assert!(settled.verdict_changes.is_empty());
}

#[test]
fn too_fast_is_settled_from_the_token_and_never_fires_on_an_unknown_issue_time() {
    let t = day().start_ms() + 3_600_000 + 500; // half a second into a second
    let issued_secs = (t / 1000) as u64;
    let mut fast = numbered(1, t);
    fast.token_issued_at_secs = issued_secs; // 500 ms after the issue
    let mut slow = numbered(2, t);
    slow.token_issued_at_secs = issued_secs - 2;
    let mut unknown = numbered(3, t);
    unknown.token_issued_at_secs = 0;
    // Without a receive time the token would look issued after the click.
    let mut no_receive_time = numbered(4, t);
    no_receive_time.receive_time_ms = 0;
    no_receive_time.token_issued_at_secs = issued_secs;
    let settled = settle(&[fast, slow, unknown, no_receive_time]);
    assert_eq!(settled.stats.clicks, 3);
    assert_eq!(invalid_by_reason(&settled), vec![(Reason::TooFast, 1)]);
}

#[test]
fn the_lookback_counts_towards_the_velocity_of_the_days_first_clicks() {
    let day = day();
    // 100 clicks of one user with event times in the look-back, received in the block's first
    // minute (23:59 of the day before), then one click of the day received in that minute too.
    let first = day.first_minute().start_ms();
    let mut clicks: Vec<Click> = (0..100u32)
        .map(|i| {
            let mut c = numbered(i, first - 120_000);
            c.receive_time_ms = first + i64::from(i);
            c.user_hash = 4;
            c
        })
        .collect();
    let mut last = numbered(1000, first);
    last.receive_time_ms = first + 59_000;
    last.user_hash = 4;
    clicks.push(last);
    let settled = settle(&clicks);
    assert_eq!(settled.stats.in_day, 1);
    assert_eq!(invalid_by_reason(&settled), vec![(Reason::UserVelocity, 1)]);
}

#[test]
fn invalid_clicks_are_grouped_per_campaign_reason_and_minute() {
    let t = day().start_ms() + 3_600_000;
    let mut other_campaign = with_reason(numbered(9, t), InvalidReason::Prefetch);
    other_campaign.campaign_id = 8;
    let settled = settle(&[
        with_reason(numbered(1, t), InvalidReason::Prefetch),
        with_reason(numbered(2, t + 1), InvalidReason::Prefetch),
        with_reason(numbered(3, t + 60_000), InvalidReason::Prefetch),
        with_reason(numbered(4, t), InvalidReason::BotUserAgent),
        other_campaign,
    ]);
    let m = Minute::of(t);
    assert_eq!(
        settled.invalid,
        vec![
            (key(Reason::BotUserAgent), vec![(m, 1)]),
            (key(Reason::Prefetch), vec![(m, 2), (m.next(), 1)]),
            (
                InvalidKey {
                    campaign_id: 8,
                    ..key(Reason::Prefetch)
                },
                vec![(m, 1)]
            ),
        ]
    );
    let totals = settled.invalid_totals();
    assert_eq!(totals[&key(Reason::Prefetch)], 3);
}

proptest! {
    /// Whatever order the archive is read in, and however often records repeat, the counts
    /// are those of a straightforward model: each impression once, at its earliest minute.
    #[test]
    fn order_and_repeats_do_not_change_the_truth(
        clicks in proptest::collection::vec((0u8..40, -200i64..1600), 1..200),
        seed in any::<u64>(),
    ) {
        let day = day();
        let at = |minute: i64| day.start_ms() + minute * 60_000 + 17;
        // An impression's ad is fixed by its token.
        let records: Vec<Click> = clicks.iter()
            .map(|&(imp, minute)| click(imp, u64::from(imp % 5) + 1, at(minute)))
            .collect();
        let mut shuffled = records.clone();
        let mut r = seed;
        for i in (1..shuffled.len()).rev() {
            r = r.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            shuffled.swap(i, (r >> 33) as usize % (i + 1));
        }
        shuffled.extend(records.iter().take(3).cloned());
        let lookback = 60 * 60_000;
        let mut s = Settlement::new(day, lookback);
        shuffled.iter().for_each(|c| s.add(c));
        let got = s.finish(&rules());

        // The run sees the look-back and the day, nothing else.
        let (from, to) = day.event_window_ms();
        let mut first: std::collections::BTreeMap<u8, (i64, u64)> = Default::default();
        for c in records.iter().filter(|c| (from - lookback..to).contains(&c.event_time_ms)) {
            let e = first.entry(c.impression_id[0]).or_insert((c.event_time_ms, c.ad_id));
            if c.event_time_ms < e.0 { *e = (c.event_time_ms, c.ad_id); }
        }
        let mut want: std::collections::BTreeMap<(u64, i64), u64> = Default::default();
        for (t, ad) in first.values() {
            if *t >= from {
                *want.entry((*ad, Minute::of(*t).0)).or_default() += 1;
            }
        }
        let got_flat: std::collections::BTreeMap<(u64, i64), u64> = got.ads.iter()
            .flat_map(|(ad, ms)| ms.iter().map(move |(m, n)| ((ad.ad_id, m.0), n.clicks)))
            .collect();
        prop_assert_eq!(got_flat, want);
    }

    /// With velocity in play, the settled day still does not depend on the read order: the
    /// sweep orders clicks by receive time and impression, never by the archive; nor do spend
    /// and users, taken from each impression's counted record.
    #[test]
    fn velocity_verdicts_do_not_depend_on_the_read_order(
        clicks in proptest::collection::vec((0u32..300, 0i64..3_000, 0u64..3, 0u64..3), 1..300),
        seed in any::<u64>(),
    ) {
        let base = day().start_ms() + 3_600_000;
        let records: Vec<Click> = clicks.iter().map(|&(n, ms, user, ip)| {
            let mut c = numbered(n, base + ms);
            c.user_hash = user;
            c.ip_hash = ip;
            // Records of one impression priced apart: the counted one's price is the spend.
            c.price_micros = ms as u64 * 7;
            c
        }).collect();
        let mut shuffled = records.clone();
        let mut r = seed;
        for i in (1..shuffled.len()).rev() {
            r = r.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            shuffled.swap(i, (r >> 33) as usize % (i + 1));
        }
        let config = Config { user_clicks_per_second: 2, ip_clicks_per_minute: 3, ..Config::default() };
        let rules = Rules::new(&config, DenyList::empty()).unwrap();
        let run = |records: &[Click]| {
            let mut s = Settlement::new(day(), 0);
            records.iter().for_each(|c| s.add(c));
            s.finish(&rules)
        };
        let a = run(&records);
        let b = run(&shuffled);
        prop_assert_eq!(a, b);
    }
}

mod spend_users;
