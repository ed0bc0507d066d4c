//! The policy's series against what the project defines: the recording rules that keep
//! `advertiser_id` (deploy/prometheus/rules/, read and analysed here) are exactly
//! `RECORDED_SERIES`, and the raw series are the README's.

use std::collections::BTreeSet;

use adclick_grafana::{files_with_extension, rules_dir};
use adclick_query::{ADVERTISER_LABEL, Policy, RAW_SERIES, RECORDED_SERIES, enforce};
use promql_parser::parser::{Expr, LabelModifier, parse};

use crate::support::{A, assert_only_a, selectors_of};

/// Every recording rule of every rule file, in file order: (name, expr).
fn recording_rules() -> Vec<(String, String)> {
    let mut out = vec![];
    for f in files_with_extension(&rules_dir(), "yml") {
        let text = std::fs::read_to_string(&f).unwrap();
        let doc: yaml_serde::Value = yaml_serde::from_str(&text).unwrap();
        for group in doc["groups"].as_sequence().unwrap() {
            for rule in group["rules"].as_sequence().unwrap() {
                if let Some(record) = rule["record"].as_str() {
                    out.push((
                        record.to_string(),
                        rule["expr"].as_str().unwrap().to_string(),
                    ));
                }
            }
        }
    }
    assert!(
        !out.is_empty(),
        "no recording rules in {}",
        rules_dir().display()
    );
    out
}

/// Whether every series `expr` reads keeps `advertiser_id` (is in `keeping`) and no aggregation
/// drops it (`by` without it, `without` with it). Binary operations, functions and parens keep
/// the labels of their operands in these rules (no `on`/`ignoring` drops them here).
fn keeps_advertiser(expr: &Expr, keeping: &BTreeSet<String>) -> bool {
    match expr {
        Expr::Aggregate(a) => {
            let kept = match &a.modifier {
                Some(LabelModifier::Exclude(ls)) => {
                    !ls.labels.iter().any(|l| l == ADVERTISER_LABEL)
                }
                Some(LabelModifier::Include(ls)) => ls.labels.iter().any(|l| l == ADVERTISER_LABEL),
                None => false,
            };
            kept && keeps_advertiser(&a.expr, keeping)
        }
        Expr::Unary(u) => keeps_advertiser(&u.expr, keeping),
        Expr::Binary(b) => {
            b.modifier.as_ref().is_none_or(|m| m.matching.is_none())
                && [&b.lhs, &b.rhs].iter().all(|side| {
                    matches!(***side, Expr::NumberLiteral(_)) || keeps_advertiser(side, keeping)
                })
        }
        Expr::Paren(p) => keeps_advertiser(&p.expr, keeping),
        Expr::Subquery(s) => keeps_advertiser(&s.expr, keeping),
        Expr::VectorSelector(vs) => vs.name.as_ref().is_some_and(|n| keeping.contains(n)),
        Expr::MatrixSelector(ms) => ms.vs.name.as_ref().is_some_and(|n| keeping.contains(n)),
        Expr::Call(c) => c.args.args.iter().all(|a| keeps_advertiser(a, keeping)),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => false,
    }
}

#[test]
fn recorded_series_are_the_rules_that_keep_advertiser_id() {
    let mut keeping: BTreeSet<String> = RAW_SERIES.iter().map(|s| s.to_string()).collect();
    let mut kept = BTreeSet::new();
    for (name, expr) in recording_rules() {
        let parsed = parse(&expr).unwrap_or_else(|e| panic!("{name}: {e}"));
        if keeps_advertiser(&parsed, &keeping) {
            keeping.insert(name.clone());
            kept.insert(name);
        }
    }
    let listed: BTreeSet<String> = RECORDED_SERIES.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        kept, listed,
        "RECORDED_SERIES is not the rules that keep {ADVERTISER_LABEL}"
    );
}

#[test]
fn every_allowed_series_is_queryable() {
    for name in Policy::default().metrics() {
        let out = enforce(&format!("sum({name})"), A, &Policy::default()).unwrap();
        let sels = selectors_of(&out);
        assert_eq!(sels.len(), 1);
        assert_only_a(&sels[0], &out);
    }
}

#[test]
fn raw_series_are_the_readmes() {
    let readme = adclick_testsupport::workspace_root().join("README.md");
    let readme = std::fs::read_to_string(readme).unwrap();
    for name in RAW_SERIES {
        assert!(
            readme.contains(&format!("| `{name}` |")),
            "{name} is not in README's series table"
        );
    }
}
