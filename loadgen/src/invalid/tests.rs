//! Invalid traffic against the classifier ingest runs (adclick-invalid with its default rules and
//! the default deny network in its deny list): honest sends are valid, each invalid kind is its
//! reason, and the truth counts them as the files say.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use adclick_invalid::{
    ActivityFacts, Config, DenyList, Reason, RequestFacts, Rules, Velocity, classify_activity,
    classify_request,
};

use super::*;
use crate::floods::Flood;
use crate::plan::Plan;
use crate::shape::TrafficShape;
use crate::truth::{GroundTruth, InvalidKey, Outcome, TruthKey, read_invalid, read_truth};

fn rules() -> Rules {
    let deny = DenyList::parse(&format!("{DEFAULT_DENY_NETWORK}\n"), "t".as_ref()).unwrap();
    Rules::new(&Config::default(), deny).unwrap()
}

fn config(share: f64, users: u64) -> PlanConfig {
    PlanConfig {
        seed: 11,
        start_ms: 1_800_000_020_000,
        duration_secs: 130.0,
        shape: TrafficShape::Steady { rate: 200.0 },
        duplicate_share: 0.05,
        late_share: 0.05,
        too_late_share: 0.01,
        forged_share: 0.0,
        expired_share: 0.0,
        users,
        invalid: InvalidConfig {
            share,
            ..InvalidConfig::default()
        },
        ..PlanConfig::default()
    }
}

/// The request facts of a send as ingest sees them from loadgen's headers.
fn request(send: &Send) -> RequestFacts<'static> {
    let mut facts = RequestFacts::get(send.user_agent.header(), IpAddr::V4(send.client_ip));
    if let SendKind::Prefetch(signal) = send.kind {
        match signal {
            PrefetchSignal::SecPurpose => facts.sec_purpose = Some("prefetch"),
            PrefetchSignal::Purpose => facts.purpose = Some("prefetch"),
            PrefetchSignal::XMoz => facts.x_moz = Some("prefetch"),
            PrefetchSignal::Head => facts.head = true,
        }
    }
    facts
}

/// Ingest's verdict on every send of `sends`, each received `delay_ms` after its planned instant:
/// request rules, then (first records of an impression not invalid per request) activity rules
/// with velocity counted per the facts contract.
fn classify_all(sends: &[Send], delay_ms: i64) -> Vec<Option<Reason>> {
    let rules = rules();
    let mut claimed = std::collections::HashSet::new();
    let mut user_minutes: HashMap<(u64, i64), u64> = HashMap::new();
    let mut ip_seconds: HashMap<(std::net::Ipv4Addr, i64), u64> = HashMap::new();
    sends
        .iter()
        .map(|send| {
            if let Some(reason) = classify_request(&request(send), &rules) {
                return Some(reason);
            }
            if !claimed.insert(send.impression_id) {
                return None; // A repeat: dropped in Redis, counts nothing.
            }
            let received_at_ms = send.at_ms + delay_ms;
            let user = send.user_in_token.then(|| {
                let n = user_minutes
                    .entry((send.user_hash, received_at_ms.div_euclid(60_000)))
                    .or_default();
                *n += 1;
                *n
            });
            let ip = ip_seconds
                .entry((send.client_ip, received_at_ms.div_euclid(1000)))
                .or_default();
            *ip += 1;
            let activity = ActivityFacts {
                token_issued_at_secs: send.issued_at_secs as u64,
                received_at_ms,
                velocity: Velocity {
                    user_clicks_in_minute: user,
                    ip_clicks_in_second: Some(*ip),
                    ..Velocity::default()
                },
            };
            classify_activity(&activity, &rules)
        })
        .collect()
}

#[test]
fn honest_traffic_is_valid_to_the_default_rules() {
    // 200 clicks/s among 300 users: 40 a user a minute, under the plan's bound.
    for users in [0, 300] {
        let sends: Vec<Send> = Plan::new(config(0.0, users)).unwrap().collect();
        // Received early by a clock 900 ms behind, on time, or 3 s late.
        for delay_ms in [-900, 0, 3_000] {
            let verdicts = classify_all(&sends, delay_ms);
            for (send, verdict) in sends.iter().zip(&verdicts) {
                assert_eq!(*verdict, None, "{send:?} received {delay_ms} ms late");
            }
        }
    }
}

#[test]
fn each_invalid_kind_is_its_reason_and_the_rest_stays_valid() {
    let sends: Vec<Send> = Plan::new(config(0.2, 300)).unwrap().collect();
    let mut per_kind: BTreeMap<String, usize> = BTreeMap::new();
    let mut flood_verdicts: HashMap<Flood, Vec<Option<Reason>>> = HashMap::new();
    // Received on time, and 4 s late (a too_fast token is still too fast).
    for delay_ms in [0, 4_000] {
        for (send, verdict) in sends.iter().zip(classify_all(&sends, delay_ms)) {
            match send.kind {
                SendKind::Flood(flood) => {
                    if delay_ms == 0 {
                        flood_verdicts.entry(flood).or_default().push(verdict);
                    }
                }
                kind => {
                    assert_eq!(verdict, kind.invalid_reason(), "{send:?}");
                    if delay_ms == 0 {
                        *per_kind
                            .entry(format!("{:?}", kind).chars().take(8).collect())
                            .or_default() += 1;
                    }
                }
            }
        }
    }
    // 26,000 scheduled sends, a fifth invalid, a quarter of that each.
    for kind in ["Bot", "Prefetch", "DenyList", "TooFast"] {
        let n = per_kind.get(kind).copied().unwrap_or(0);
        assert!((1_000..1_500).contains(&n), "{kind}: {n} of {per_kind:?}");
    }
    // Every prefetch is followed by its impression's valid click.
    for prefetch in sends
        .iter()
        .filter(|s| matches!(s.kind, SendKind::Prefetch(_)))
    {
        let click = sends
            .iter()
            .find(|s| s.impression_id == prefetch.impression_id && s.kind == SendKind::Click);
        // A prefetch in the last 3 s may have its click beyond the run's end.
        if prefetch.at_ms < 1_800_000_020_000 + 127_000 {
            let click = click.expect("the prefetch's click");
            assert!(click.at_ms >= prefetch.at_ms + 200 && click.at_ms < prefetch.at_ms + 3_100);
            assert_eq!(
                (click.ad, click.issued_at_secs),
                (prefetch.ad, prefetch.issued_at_secs)
            );
        }
    }
    // Floods: the limits' worth valid per window, the rest their reason. 130 s from 20 s into a
    // minute: floods in its three minutes (38 s, 58 s and 28 s of them inside the run).
    let user = &flood_verdicts[&Flood::User];
    let ip = &flood_verdicts[&Flood::Ip];
    assert_eq!((user.len(), ip.len()), (450, 90));
    let count = |v: &[Option<Reason>], r: Option<Reason>| v.iter().filter(|x| **x == r).count();
    assert_eq!(count(user, None), 300);
    assert_eq!(count(user, Some(Reason::UserVelocity)), 150);
    assert_eq!(count(ip, None), 30);
    assert_eq!(count(ip, Some(Reason::IpVelocity)), 60);
}

#[test]
fn plans_with_invalid_traffic_are_decided_by_the_seed() {
    let a: Vec<Send> = Plan::new(config(0.1, 0)).unwrap().collect();
    let b: Vec<Send> = Plan::new(config(0.1, 0)).unwrap().collect();
    let c: Vec<Send> = Plan::new(PlanConfig {
        seed: 12,
        ..config(0.1, 0)
    })
    .unwrap()
    .collect();
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert!(
        a.windows(2)
            .all(|w| w[0].at_ms <= w[1].at_ms && w[0].seq + 1 == w[1].seq)
    );
}

/// What a correct ingest answers.
fn answer(send: &Send) -> Outcome {
    match send.kind {
        SendKind::Prefetch(_) => Outcome::Refused(503),
        SendKind::Forged(_) | SendKind::Expired => Outcome::Refused(403),
        _ => Outcome::Accepted,
    }
}

#[test]
fn a_prefetch_then_its_click_count_one_invalid_prefetch_and_one_valid_click() {
    let sends: Vec<Send> = Plan::new(config(0.2, 0)).unwrap().collect();
    let prefetch = sends
        .iter()
        .find(|s| matches!(s.kind, SendKind::Prefetch(_)))
        .unwrap();
    let click = sends
        .iter()
        .find(|s| s.impression_id == prefetch.impression_id && s.kind == SendKind::Click)
        .unwrap();
    let mut truth = GroundTruth::new(0, 0).with_invalid_traffic();
    truth.record(prefetch, &Outcome::Refused(503));
    truth.record(click, &Outcome::Accepted);
    assert_eq!(truth.summary.errors, 0);
    assert_eq!(truth.summary.clicks, 1);
    assert_eq!(truth.summary.invalid["prefetch"], 1);
    assert_eq!(
        truth
            .counts()
            .get(&TruthKey::of(click.ad, click.event_time_ms)),
        Some(&1)
    );
    let key = InvalidKey::of(prefetch.ad, prefetch.event_time_ms, Reason::Prefetch);
    assert_eq!(truth.invalid().get(&key), Some(&1));
    // A prefetch that was redirected claimed the impression: an error, never counted.
    let mut wrong = GroundTruth::new(0, 0);
    wrong.record(prefetch, &Outcome::Wrong("302".into()));
    assert_eq!((wrong.summary.errors, wrong.invalid().len()), (1, 0));
}

#[test]
fn the_truth_of_a_run_with_invalid_traffic_round_trips_through_its_files() {
    let sends: Vec<Send> = Plan::new(config(0.1, 0)).unwrap().collect();
    let mut truth = GroundTruth::new(11, 0).with_invalid_traffic();
    for s in &sends {
        truth.record(s, &answer(s));
    }
    let sum = &truth.summary;
    assert_eq!(sum.errors, 0, "{:?}", sum.error_examples);
    assert_eq!(sum.flood_clicks, 540);
    assert_eq!(
        sum.invalid.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "bot_user_agent",
            "deny_listed_network",
            "prefetch",
            "too_fast"
        ]
    );
    // The valid truth holds no invalid send and no flood ad.
    let flood_ads = crate::floods::flood_ads(Plan::new(config(0.1, 0)).unwrap().population());
    assert!(truth.counts().keys().all(|k| !flood_ads.contains(&k.ad)));
    let valid: u64 = truth.counts().values().sum();
    let first_clicks = sends.iter().filter(|s| s.kind == SendKind::Click).count() as u64;
    assert_eq!(valid, first_clicks);

    let dir = tempfile::tempdir().unwrap();
    truth.write(dir.path()).unwrap();
    assert_eq!(
        &read_invalid(&dir.path().join("invalid.csv")).unwrap(),
        truth.invalid()
    );
    assert_eq!(
        &read_truth(&dir.path().join("floods.csv")).unwrap(),
        truth.floods()
    );
    assert_eq!(
        &read_truth(&dir.path().join("truth.csv")).unwrap(),
        truth.counts()
    );
    let summary = crate::truth::read_summary(&dir.path().join("summary.json")).unwrap();
    assert_eq!(summary, truth.summary);
    // The file's bytes: header, then rows in minute, ids, reason order.
    let text = std::fs::read_to_string(dir.path().join("invalid.csv")).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("advertiser_id,campaign_id,reason,minute_end_ms,clicks")
    );
    let rows: Vec<(i64, u64, u64, String)> = lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (
                f[3].parse().unwrap(),
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                f[2].to_string(),
            )
        })
        .collect();
    assert!(rows.windows(2).all(|w| w[0] < w[1]));
    assert!(text.ends_with('\n') && !text.contains('\r'));
    std::fs::write(
        dir.path().join("bad.csv"),
        "advertiser_id,campaign_id,reason,minute_end_ms,clicks\n1,2,slow,4,5\n",
    )
    .unwrap();
    let err = read_invalid(&dir.path().join("bad.csv"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("bad.csv:2") && err.contains("slow"), "{err}");
}

#[test]
fn the_deny_network_must_stay_clear_of_the_others() {
    assert_eq!(InvalidConfig::default().check(), Ok(()));
    for bad in ["10.1.0.0/16", "0.0.0.0/0", "100.100.0.0/24"] {
        let config = InvalidConfig {
            deny_network: bad.parse().unwrap(),
            share: 0.1,
        };
        assert!(config.check().is_err(), "{bad}");
    }
    let config = InvalidConfig {
        share: 1.5,
        ..InvalidConfig::default()
    };
    assert!(config.check().is_err());
}

#[test]
fn a_user_population_too_small_for_the_rate_is_refused() {
    let err = Plan::new(config(0.0, 100)).err().unwrap();
    assert!(
        matches!(err, crate::plan::PlanError::UserRate { users: 100, .. }),
        "{err}"
    );
    assert!(Plan::new(config(0.0, 240)).is_ok());
}

#[test]
fn reasons_of_the_kinds() {
    assert_eq!(SendKind::Bot.invalid_reason(), Some(Reason::BotUserAgent));
    assert_eq!(
        SendKind::Prefetch(PrefetchSignal::Head).invalid_reason(),
        Some(Reason::Prefetch)
    );
    assert_eq!(SendKind::Click.invalid_reason(), None);
    assert_eq!(SendKind::Flood(Flood::User).invalid_reason(), None);
}
