//! CPU per click of the invalid-traffic classifier (`cargo bench -p adclick-invalid --bench
//! classify`): a valid click from a current Chrome (its user agent's verdict kept from the clicks
//! before, and one never seen), from an in-app browser and with a 950-byte user agent, a declared
//! bot, a prefetch; and the parts (isbot alone, a deny-list lookup among
//! 11,000 ranges, the client-IP walk).

#![allow(clippy::unwrap_used)] // A benchmark: a panic with the failed call is how it stops.

use std::hint::black_box;
use std::net::IpAddr;
use std::path::Path;

use adclick_invalid::{
    ActivityFacts, Config, DenyList, Facts, ProxyHeader, RequestFacts, Rules, Velocity, classify,
    client_ip,
};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// Chrome 131 on Windows: 111 bytes, the most common shape of user agent.
const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
/// An in-app browser: 190 bytes, among the longest user agents real clicks carry.
const IN_APP: &str = "Mozilla/5.0 (Linux; Android 14; Pixel 8 Build/AP2A.240805.005; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/128.0.6613.127 Mobile Safari/537.36 [FB_IAB/FB4A;FBAV/481.0.0.50.71;]";
const GOOGLEBOT: &str = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

/// 10,000 disjoint IPv4 /24s and 1,000 IPv6 /48s: the size of a data-centre list.
fn deny_list() -> DenyList {
    let mut text = String::new();
    for i in 0..10_000u32 {
        let net = 0x2d00_0000 + i * 512; // every other /24 from 45.0.0.0
        text.push_str(&format!("{}/24\n", std::net::Ipv4Addr::from(net)));
    }
    for i in 0..1_000u32 {
        text.push_str(&format!("2a05:{:x}::/48\n", i * 2));
    }
    DenyList::parse(&text, Path::new("bench")).unwrap()
}

fn facts(user_agent: &str) -> Facts<'_> {
    Facts {
        request: RequestFacts::get(Some(user_agent), "198.51.100.7".parse().unwrap()),
        activity: ActivityFacts {
            token_issued_at_secs: 1_790_000_000,
            received_at_ms: 1_790_000_004_000,
            velocity: Velocity {
                user_clicks_in_minute: Some(3),
                ip_clicks_in_second: Some(1),
                ..Velocity::default()
            },
        },
    }
}

fn bench(c: &mut Criterion) {
    let rules = Rules::new(&Config::default(), deny_list()).unwrap();
    let valid = facts(CHROME);
    let in_app = facts(IN_APP);
    // No browser sends this: what a client pays to make the regexes read 950 bytes.
    let long_ua = IN_APP.repeat(5);
    let long = facts(&long_ua);
    let bot = facts(GOOGLEBOT);
    let mut prefetch = facts(CHROME);
    prefetch.request.sec_purpose = Some("prefetch");
    let bots = isbot::Bots::default();
    let listed: IpAddr = "45.1.2.3".parse().unwrap();
    let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
    let lb: IpAddr = "10.0.0.2".parse().unwrap();
    let xff = ["203.0.113.9, 198.51.100.7, 10.0.0.3"];

    let mut group = c.benchmark_group("classify");
    group.throughput(Throughput::Elements(1));
    group.bench_function("valid_chrome", |b| {
        b.iter(|| classify(black_box(&valid), &rules))
    });
    // A user agent the thread has not classified yet (its verdict is kept per thread: a repeat,
    // as `valid_chrome`, skips the patterns): 4,096 Chrome builds in turn, more than the table's
    // slots, so every click misses and pays the patterns, the lookup and the keeping.
    let unseen: Vec<String> = (0..4096)
        .map(|n| CHROME.replace("131.0.0.0", &format!("131.0.{n}.0")))
        .collect();
    let unseen: Vec<Facts<'_>> = unseen.iter().map(|ua| facts(ua)).collect();
    let mut next = 0;
    group.bench_function("valid_chrome_unseen_user_agent", |b| {
        b.iter(|| {
            next = (next + 1) % unseen.len();
            classify(black_box(&unseen[next]), &rules)
        })
    });
    group.bench_function("valid_in_app", |b| {
        b.iter(|| classify(black_box(&in_app), &rules))
    });
    group.bench_function("valid_950_byte_user_agent", |b| {
        b.iter(|| classify(black_box(&long), &rules))
    });
    group.bench_function("bot_googlebot", |b| {
        b.iter(|| classify(black_box(&bot), &rules))
    });
    group.bench_function("prefetch", |b| {
        b.iter(|| classify(black_box(&prefetch), &rules))
    });
    group.bench_function("part_isbot_chrome", |b| {
        b.iter(|| bots.is_bot(black_box(CHROME)))
    });
    group.bench_function("part_deny_list_hit_11k", |b| {
        b.iter(|| rules.deny_list().contains(black_box(listed)))
    });
    group.bench_function("part_client_ip_xff_2_hops", |b| {
        b.iter(|| client_ip(black_box(lb), ProxyHeader::XForwardedFor, xff, &trusted))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
