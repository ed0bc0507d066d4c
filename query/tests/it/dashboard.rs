//! Every query of `grafana/dashboards/advertiser.json`, with Grafana's variables substituted as
//! Grafana does (adclick-grafana's `substitute`): each panel query is accepted and every selector
//! of the output carries the caller's matcher, no selector lost; each variable's series selector
//! is accepted through `enforce_match`; and the same dashboard opened on another advertiser's id
//! is refused.

use std::collections::BTreeMap;
use std::time::Duration;

use adclick_grafana::{
    Dashboard, VariableSource, builtin_values, load, panel_queries, parse_variable_query,
    substitute, variable_queries,
};
use adclick_query::{Limits, Policy, Refusal, enforce, enforce_match};

use crate::support::{A, B, assert_only, assert_only_a, selectors_of};

fn dashboard() -> Dashboard {
    let path = adclick_grafana::dashboards_dir().join("advertiser.json");
    load(&path).unwrap_or_else(|e| panic!("{e:?}"))
}

/// Grafana's values for a 6-hour range at a 1-minute interval, with the advertiser, campaign and
/// ad variables as given (`.*` is their "All").
fn values(advertiser: u64, campaign: &str, ad: &str) -> BTreeMap<String, String> {
    let to = 1_765_000_000_000;
    let mut v = builtin_values(
        to - 6 * 3_600_000,
        to,
        Duration::from_secs(60),
        Duration::from_secs(240),
    );
    v.insert("advertiser".into(), advertiser.to_string());
    v.insert("campaign".into(), campaign.into());
    v.insert("ad".into(), ad.into());
    v.insert("topn".into(), "10".into());
    v
}

/// Every panel query, substituted.
fn panel_exprs(values: &BTreeMap<String, String>) -> Vec<(String, String)> {
    let d = dashboard();
    let queries = panel_queries(&d);
    assert!(queries.len() >= 10, "only {} panel queries", queries.len());
    queries
        .into_iter()
        .map(|q| {
            let expr = substitute(&q.expr, values).unwrap_or_else(|e| panic!("{e}"));
            (q.panel_title, expr)
        })
        .collect()
}

#[test]
fn every_panel_query_is_accepted_and_restricted() {
    for (campaign, ad) in [(".*", ".*"), ("(5|6)", "(11|12|other)"), ("5", "11")] {
        for (title, q) in panel_exprs(&values(A, campaign, ad)) {
            let out = enforce(&q, A, &Policy::default())
                .unwrap_or_else(|e| panic!("{title}: {q}: refused: {e}"));
            let sels = selectors_of(&out);
            assert!(!sels.is_empty(), "{title}: {out}");
            // No selector lost or gained on the way.
            assert_eq!(sels.len(), selectors_of(&q).len(), "{title}: {out}");
            for vs in &sels {
                assert_only_a(vs, &out);
            }
        }
    }
}

#[test]
fn the_dashboard_opened_on_another_advertiser_is_refused() {
    for (title, q) in panel_exprs(&values(B, ".*", ".*")) {
        match enforce(&q, A, &Policy::default()) {
            Err(Refusal::AdvertiserMatcher { matcher }) => {
                assert_eq!(matcher, format!("advertiser_id=\"{B}\""), "{title}")
            }
            other => panic!("{title}: {q}: {other:?}"),
        }
    }
}

#[test]
fn the_same_dashboard_serves_b_restricted_to_b() {
    for (title, q) in panel_exprs(&values(B, ".*", ".*")) {
        let out = enforce(&q, B, &Policy::default())
            .unwrap_or_else(|e| panic!("{title}: {q}: refused: {e}"));
        for vs in selectors_of(&out) {
            assert_only(&vs, B, &out);
        }
    }
}

#[test]
fn every_variable_selector_is_accepted_and_restricted() {
    let d = dashboard();
    let vars = variable_queries(&d);
    assert!(!vars.is_empty());
    let values = values(A, ".*", ".*");
    for v in vars {
        let VariableSource::LabelValues {
            selector: Some(selector),
            ..
        } = parse_variable_query(&v.query).unwrap()
        else {
            panic!(
                "${}: {} is not label_values(selector, label)",
                v.name, v.query
            )
        };
        let selector = substitute(&selector, &values).unwrap();
        let out = enforce_match(&selector, A, &Policy::default())
            .unwrap_or_else(|e| panic!("{}: {selector}: refused: {e}", v.name));
        let sels = selectors_of(&out);
        assert_eq!(sels.len(), 1);
        assert_only_a(&sels[0], &out);
    }
}

/// The nesting bound leaves the dashboard plenty of room: its deepest query is found by trying
/// ever larger bounds.
#[test]
fn the_dashboards_nesting_is_well_under_the_default_bound() {
    let queries = panel_exprs(&values(A, ".*", ".*"));
    let needed = (0..=Limits::DEFAULT_MAX_NESTING)
        .find(|&n| {
            let policy = Policy::new(
                Policy::default().metrics(),
                Limits {
                    max_nesting: n,
                    ..Limits::default()
                },
            )
            .unwrap();
            queries.iter().all(|(_, q)| enforce(q, A, &policy).is_ok())
        })
        .expect("a panel query needs more than the default nesting");
    println!("the dashboard needs max_nesting {needed}");
    assert!(needed <= 16, "{needed}");
    let longest = queries.iter().map(|(_, q)| q.len()).max().unwrap();
    assert!(longest * 20 < Limits::DEFAULT_MAX_BYTES, "{longest}");
}
