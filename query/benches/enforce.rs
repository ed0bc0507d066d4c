//! The gateway's own work on the advertiser dashboard's queries, single-threaded
//! (`cargo bench -p adclick-query --bench enforce`; BENCHMARKS.md, "query gateway"):
//!
//! - `enforce/<query>`: [`adclick_query::enforce`] of each panel target (bounds, parse, rewrite,
//!   print, verify);
//! - `gateway/<query>`: what the gateway does per query before forwarding it:
//!   [`adclick_query::prepare_query`], the route (a Thanos history upstream, as in
//!   `deploy/bench/query-gateway`) and `render` for it; for a variable, `prepare_match` of its
//!   selector and `render`;
//! - `api_keys/*`: finding the caller of a key among 2,000 (by its digest, in a hash map),
//!   and parsing keys files of 2,000 and 20,000 entries (a start or a reload);
//! - `baseline/regex_new_dotstar`: what promql-parser does for every `=~` matcher it parses,
//!   `Regex::new("^(?:.*)$")` (Grafana's "All"), measured in the same run to read the figures
//!   above by.
//!
//! The queries are the dashboard's with Grafana's variables substituted: advertiser 10042,
//! "All" (`.*`) for campaign and ad, top 10, the dashboard's default 6 h range.

#![allow(clippy::unwrap_used)] // A benchmark: a panic with the failed call is how it stops.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Duration;

use adclick_grafana::{
    VariableSource, builtin_values, load, panel_queries, parse_variable_query, substitute,
    variable_queries,
};
use adclick_query::{
    ApiKeys, HistoryKind, Policy, Routing, enforce, key_digest_hex, prepare_match, prepare_query,
};
use criterion::{Criterion, criterion_group, criterion_main};

const ADVERTISER: u64 = 10_042;
const NOW_MS: i64 = 1_765_000_000_000;
const RANGE_MS: i64 = 6 * 3_600_000;

/// A benchmark's name and the text it works on.
type Named = Vec<(String, String)>;

/// (name, text) of every panel target and (name, selector) of every variable, substituted.
fn dashboard_queries() -> (Named, Named) {
    let path = adclick_grafana::dashboards_dir().join("advertiser.json");
    let d = load(&path).unwrap();
    let mut values = builtin_values(
        NOW_MS - RANGE_MS,
        NOW_MS,
        Duration::from_secs(60),
        Duration::from_secs(75),
    );
    values.extend(BTreeMap::from([
        ("advertiser".to_string(), ADVERTISER.to_string()),
        ("campaign".to_string(), ".*".to_string()),
        ("ad".to_string(), ".*".to_string()),
        ("topn".to_string(), "10".to_string()),
    ]));
    let panels = panel_queries(&d)
        .into_iter()
        .map(|q| {
            let name = format!("panel_{:02}{}", q.panel_id, q.ref_id);
            (name, substitute(&q.expr, &values).unwrap())
        })
        .collect();
    let vars = variable_queries(&d)
        .into_iter()
        .map(|v| {
            let Ok(VariableSource::LabelValues {
                selector: Some(s), ..
            }) = parse_variable_query(&v.query)
            else {
                panic!("${}: not label_values(selector, label)", v.name)
            };
            (format!("var_{}", v.name), substitute(&s, &values).unwrap())
        })
        .collect();
    (panels, vars)
}

fn gateway_work(c: &mut Criterion) {
    let policy = Policy::default();
    let routing = Routing {
        history: Some(HistoryKind::Thanos),
        live_retention: Duration::from_secs(15 * 86_400),
    };
    let (panels, vars) = dashboard_queries();

    let mut group = c.benchmark_group("enforce");
    for (name, q) in &panels {
        enforce(q, ADVERTISER, &policy).unwrap();
        group.bench_function(name.as_str(), |b| {
            b.iter(|| enforce(black_box(q), ADVERTISER, &policy))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("gateway");
    for (name, q) in &panels {
        let run = || {
            let p = prepare_query(black_box(q), Some(ADVERTISER), &policy).unwrap();
            let route = routing
                .route(p.tiers, p.reach.from_ms(NOW_MS - RANGE_MS), NOW_MS)
                .unwrap();
            p.render(&policy, Some((route.tier, route.holds))).unwrap()
        };
        run();
        group.bench_function(name.as_str(), |b| b.iter(run));
    }
    for (name, s) in &vars {
        let run = || {
            let p = prepare_match(black_box(s), Some(ADVERTISER), &policy).unwrap();
            let route = routing.route(p.tiers, NOW_MS - RANGE_MS, NOW_MS).unwrap();
            p.render(&policy, Some((route.tier, route.holds))).unwrap()
        };
        run();
        group.bench_function(name.as_str(), |b| b.iter(run));
    }
    group.finish();

    let file = |n: u64| -> String {
        (0..n)
            .map(|i| format!("{} {}\n", key_digest_hex(&format!("key-{i}")), 10_000 + i))
            .collect()
    };
    let two_thousand = file(2_000);
    let keys = ApiKeys::parse(&two_thousand).unwrap();
    let mut group = c.benchmark_group("api_keys");
    group.bench_function("caller_of_2000", |b| {
        b.iter(|| keys.caller(black_box("key-1999")))
    });
    group.sample_size(10);
    group.bench_function("parse_2000", |b| {
        b.iter(|| ApiKeys::parse(black_box(&two_thousand)).unwrap())
    });
    let twenty_thousand = file(20_000);
    group.bench_function("parse_20000", |b| {
        b.iter(|| ApiKeys::parse(black_box(&twenty_thousand)).unwrap())
    });
    group.finish();

    let mut group = c.benchmark_group("baseline");
    group.bench_function("regex_new_dotstar", |b| {
        b.iter(|| regex::Regex::new(black_box("^(?:.*)$")).unwrap())
    });
    group.finish();
}

criterion_group!(benches, gateway_work);
criterion_main!(benches);
