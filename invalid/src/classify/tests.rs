//! Each rule alone, the precedence, thresholds at their boundaries, the rollup's settlement, and
//! no panic on any input.

use std::net::IpAddr;
use std::path::Path;
use std::sync::LazyLock;

use proptest::prelude::*;

use super::*;
use crate::deny::DenyList;
use crate::facts::Velocity;
use crate::rules::Config;

const CHROME: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
const GOOGLEBOT: &str = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
/// Issued at this second; the valid click below comes 5 s later.
const ISSUED_SECS: u64 = 1_790_000_000;

/// Default rules with a deny list of one IPv4 and one IPv6 range. Built once: compiling isbot's
/// list takes milliseconds.
static RULES: LazyLock<Rules> = LazyLock::new(|| {
    let deny = DenyList::parse("203.0.113.0/24\n2001:db8:dc::/48\n", Path::new("test")).unwrap();
    Rules::new(&Config::default(), deny).unwrap()
});

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// A valid click: Chrome, a residential address, 5 s after issue, counted well under the limits.
fn valid() -> Facts<'static> {
    Facts {
        request: RequestFacts::get(Some(CHROME), ip("198.51.100.7")),
        activity: ActivityFacts {
            token_issued_at_secs: ISSUED_SECS,
            received_at_ms: ISSUED_SECS as i64 * 1000 + 5_000,
            velocity: Velocity {
                user_clicks_in_minute: Some(1),
                ip_clicks_in_second: Some(1),
                ..Velocity::default()
            },
        },
    }
}

fn verdict(facts: &Facts<'_>) -> Verdict {
    classify(facts, &RULES)
}

fn with_velocity(velocity: Velocity) -> Facts<'static> {
    let mut facts = valid();
    facts.activity.velocity = velocity;
    facts
}

#[test]
fn a_browser_click_is_valid() {
    assert_eq!(verdict(&valid()), Verdict::Valid);
    // Nothing counted (Redis failed open, no user hash): still valid.
    assert_eq!(verdict(&with_velocity(Velocity::default())), Verdict::Valid);
}

#[test]
fn each_rule_alone() {
    let mut prefetch = valid();
    prefetch.request.sec_purpose = Some("prefetch");
    let mut bot = valid();
    bot.request.user_agent = Some(GOOGLEBOT);
    let mut no_ua = valid();
    no_ua.request.user_agent = None;
    let mut deny_v4 = valid();
    deny_v4.request.client_ip = ip("203.0.113.77");
    let mut deny_mapped = valid();
    deny_mapped.request.client_ip = ip("::ffff:203.0.113.77");
    let mut deny_v6 = valid();
    deny_v6.request.client_ip = ip("2001:db8:dc:1::9");
    let mut fast = valid();
    fast.activity.received_at_ms = ISSUED_SECS as i64 * 1000 + 300;
    let user = with_velocity(Velocity {
        user_clicks_in_minute: Some(101),
        ..Velocity::default()
    });
    let ip_flood = with_velocity(Velocity {
        ip_clicks_in_second: Some(11),
        ..Velocity::default()
    });
    for (facts, reason) in [
        (prefetch, Reason::Prefetch),
        (bot, Reason::BotUserAgent),
        (no_ua, Reason::BotUserAgent),
        (deny_v4, Reason::DenyListedNetwork),
        (deny_mapped, Reason::DenyListedNetwork),
        (deny_v6, Reason::DenyListedNetwork),
        (fast, Reason::TooFast),
        (user, Reason::UserVelocity),
        (ip_flood, Reason::IpVelocity),
    ] {
        assert_eq!(verdict(&facts), Verdict::Invalid(reason), "{facts:?}");
    }
}

/// A click that breaks every rule at once, with the first `skip` of them repaired.
fn breaking_all_but_first(skip: usize) -> Facts<'static> {
    let mut facts = valid();
    let breaks: [fn(&mut Facts<'static>); 6] = [
        |f: &mut Facts<'static>| f.request.head = true,
        |f: &mut Facts<'static>| f.request.user_agent = Some("curl/8.5.0"),
        |f: &mut Facts<'static>| f.request.client_ip = ip("203.0.113.1"),
        |f: &mut Facts<'static>| f.activity.received_at_ms = ISSUED_SECS as i64 * 1000,
        |f: &mut Facts<'static>| f.activity.velocity.user_clicks_in_minute = Some(500),
        |f: &mut Facts<'static>| f.activity.velocity.ip_clicks_in_second = Some(500),
    ];
    for apply in &breaks[skip..] {
        apply(&mut facts);
    }
    facts
}

#[test]
fn precedence_first_match_wins() {
    for (skip, reason) in Reason::PRECEDENCE.into_iter().enumerate() {
        assert_eq!(
            verdict(&breaking_all_but_first(skip)),
            Verdict::Invalid(reason),
            "{skip} rules repaired"
        );
    }
    assert_eq!(verdict(&breaking_all_but_first(6)), Verdict::Valid);
}

#[test]
fn user_velocity_boundary_100_is_valid_101_is_not() {
    for (count, expected) in [(99, Verdict::Valid), (100, Verdict::Valid)] {
        let facts = with_velocity(Velocity {
            user_clicks_in_minute: Some(count),
            ..Velocity::default()
        });
        assert_eq!(verdict(&facts), expected, "{count}");
    }
    for count in [101, u64::MAX] {
        let facts = with_velocity(Velocity {
            user_clicks_in_minute: Some(count),
            ..Velocity::default()
        });
        assert_eq!(
            verdict(&facts),
            Verdict::Invalid(Reason::UserVelocity),
            "{count}"
        );
    }
}

#[test]
fn ip_velocity_boundary_10_is_valid_11_is_not() {
    let at = |count| {
        verdict(&with_velocity(Velocity {
            ip_clicks_in_second: Some(count),
            ..Velocity::default()
        }))
    };
    assert_eq!(at(10), Verdict::Valid);
    assert_eq!(at(11), Verdict::Invalid(Reason::IpVelocity));
}

#[test]
fn windows_that_are_off_never_fire() {
    // The defaults count per user per minute and per IP per second only.
    let facts = with_velocity(Velocity {
        user_clicks_in_second: Some(1_000),
        ip_clicks_in_minute: Some(1_000_000),
        ..Velocity::default()
    });
    assert_eq!(verdict(&facts), Verdict::Valid);
    // Turned on, they do, and 0 turns a default off.
    let config = Config {
        user_clicks_per_second: 3,
        ip_clicks_per_minute: 600,
        user_clicks_per_minute: 0,
        ip_clicks_per_second: 0,
        too_fast_ms: 0,
        ..Config::default()
    };
    let rules = Rules::new(&config, DenyList::empty()).unwrap();
    let at = |velocity| classify_activity(&with_velocity(velocity).activity, &rules);
    let user = |s, m| Velocity {
        user_clicks_in_second: Some(s),
        user_clicks_in_minute: Some(m),
        ..Velocity::default()
    };
    let ip = |s, m| Velocity {
        ip_clicks_in_second: Some(s),
        ip_clicks_in_minute: Some(m),
        ..Velocity::default()
    };
    assert_eq!(at(user(3, 10_000)), None);
    assert_eq!(at(user(4, 1)), Some(Reason::UserVelocity));
    assert_eq!(at(ip(10_000, 600)), None);
    assert_eq!(at(ip(1, 601)), Some(Reason::IpVelocity));
    let mut instant = valid();
    instant.activity.received_at_ms = 0;
    assert_eq!(classify(&instant, &rules), Verdict::Valid);
}

#[test]
fn too_fast_boundary_and_clock_edges() {
    let at = |received_at_ms: i64| {
        let mut facts = valid();
        facts.activity.received_at_ms = received_at_ms;
        verdict(&facts)
    };
    let issued_ms = ISSUED_SECS as i64 * 1000;
    assert_eq!(at(issued_ms + 999), Verdict::Invalid(Reason::TooFast));
    assert_eq!(at(issued_ms + 1000), Verdict::Valid);
    // Before the issue time by the two clocks: too fast.
    assert_eq!(at(issued_ms - 1), Verdict::Invalid(Reason::TooFast));
    assert_eq!(at(1), Verdict::Invalid(Reason::TooFast));
    assert_eq!(at(i64::MAX), Verdict::Valid);
    // An unknown receive or issue time (0, click.proto's "unknown") never makes a click too fast.
    assert_eq!(at(0), Verdict::Valid);
    assert_eq!(at(i64::MIN), Verdict::Valid);
    let mut unknown_issue = valid();
    unknown_issue.activity.token_issued_at_secs = 0;
    unknown_issue.activity.received_at_ms = 500;
    assert_eq!(verdict(&unknown_issue), Verdict::Valid);
    let mut far_future_token = valid();
    far_future_token.activity.token_issued_at_secs = u64::MAX;
    assert_eq!(
        verdict(&far_future_token),
        Verdict::Invalid(Reason::TooFast)
    );
}

#[test]
fn request_rules_come_before_redis_and_activity_after() {
    let mut bot = valid();
    bot.request.user_agent = Some(GOOGLEBOT);
    assert_eq!(
        classify_request(&bot.request, &RULES),
        Some(Reason::BotUserAgent)
    );
    assert_eq!(classify_activity(&bot.activity, &RULES), None);
    assert_eq!(classify_request(&valid().request, &RULES), None);
}

#[test]
fn settling_keeps_request_reasons_and_recounts_activity() {
    let calm = valid().activity;
    let flood = with_velocity(Velocity {
        user_clicks_in_minute: Some(150),
        ..Velocity::default()
    })
    .activity;
    // A recorded per-request reason stands, whatever the day's counts say.
    for reason in [
        Reason::Prefetch,
        Reason::BotUserAgent,
        Reason::DenyListedNetwork,
    ] {
        assert_eq!(
            settle(Verdict::Invalid(reason), &calm, &RULES),
            Verdict::Invalid(reason)
        );
        assert_eq!(
            settle(Verdict::Invalid(reason), &flood, &RULES),
            Verdict::Invalid(reason)
        );
    }
    // Redis failed open live (valid), the settled day counts 150: user_velocity.
    assert_eq!(
        settle(Verdict::Valid, &flood, &RULES),
        Verdict::Invalid(Reason::UserVelocity)
    );
    // Counted too high live (a repeat counted twice), settled within the limit: valid.
    assert_eq!(
        settle(Verdict::Invalid(Reason::UserVelocity), &calm, &RULES),
        Verdict::Valid
    );
}

fn arb_ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(IpAddr::from),
        any::<[u8; 16]>().prop_map(IpAddr::from),
    ]
}

fn arb_velocity() -> impl Strategy<Value = Velocity> {
    let count = || proptest::option::of(any::<u64>());
    (count(), count(), count(), count()).prop_map(|(a, b, c, d)| Velocity {
        user_clicks_in_second: a,
        user_clicks_in_minute: b,
        ip_clicks_in_second: c,
        ip_clicks_in_minute: d,
    })
}

proptest! {
    /// Arbitrary strings in every header, any address, any clock and count: no panic; `classify`
    /// is its two halves; settling a verdict with its own activity facts gives it back.
    #[test]
    fn classify_never_panics_and_is_consistent(
        user_agent in proptest::option::of(".{0,300}"),
        sec_purpose in proptest::option::of(".{0,40}"),
        purpose in proptest::option::of(".{0,40}"),
        x_purpose in proptest::option::of(".{0,40}"),
        x_moz in proptest::option::of(".{0,40}"),
        head in any::<bool>(),
        client_ip in arb_ip(),
        token_issued_at_secs in any::<u64>(),
        received_at_ms in any::<i64>(),
        velocity in arb_velocity(),
    ) {
        let facts = Facts {
            request: RequestFacts {
                user_agent: user_agent.as_deref(),
                head,
                sec_purpose: sec_purpose.as_deref(),
                purpose: purpose.as_deref(),
                x_purpose: x_purpose.as_deref(),
                x_moz: x_moz.as_deref(),
                client_ip,
            },
            activity: ActivityFacts { token_issued_at_secs, received_at_ms, velocity },
        };
        let verdict = classify(&facts, &RULES);
        let halves = classify_request(&facts.request, &RULES)
            .or_else(|| classify_activity(&facts.activity, &RULES));
        prop_assert_eq!(verdict.reason(), halves);
        prop_assert_eq!(settle(verdict, &facts.activity, &RULES), verdict);
    }
}
