//! The Prometheus rules under `deploy/prometheus/rules/`: `promtool check rules` is clean,
//! `promtool test rules` passes, and the unit tests cover every rule — each alert firing and
//! not firing, each recording rule's value — and every alert says what to do.
//!
//! promtool comes with the stack's Prometheus (`deploy/local/install`); `$PROMTOOL` names
//! another. A missing promtool fails these tests: they never skip.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use adclick_grafana::{files_with_extension, rules_dir};
use adclick_testsupport::promtool::promtool;

use crate::support::yaml;

fn rule_files() -> Vec<PathBuf> {
    let files = files_with_extension(&rules_dir(), "yml");
    assert!(
        !files.is_empty(),
        "no rule files in {}",
        rules_dir().display()
    );
    files
}

fn test_files() -> Vec<PathBuf> {
    let files = files_with_extension(&rules_dir().join("tests"), "yml");
    assert!(
        !files.is_empty(),
        "no rule tests in {}/tests",
        rules_dir().display()
    );
    files
}

fn run(args: &[&str], files: &[PathBuf]) -> String {
    let out = Command::new(promtool())
        .args(args)
        .args(files)
        .output()
        .expect("running promtool");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "promtool {} failed:\n{said}",
        args.join(" ")
    );
    said
}

struct Rules {
    alerts: Vec<yaml_serde::Value>,
    records: Vec<String>,
}

fn rules() -> Rules {
    let mut alerts = vec![];
    let mut records = vec![];
    for f in rule_files() {
        let doc = yaml(&f);
        for group in doc["groups"].as_sequence().unwrap() {
            for rule in group["rules"].as_sequence().unwrap() {
                if rule["alert"].is_string() {
                    alerts.push(rule.clone());
                } else {
                    records.push(rule["record"].as_str().unwrap().to_string());
                }
            }
        }
    }
    Rules { alerts, records }
}

#[test]
fn promtool_check_rules_is_clean() {
    let said = run(&["check", "rules"], &rule_files());
    // promtool prints SUCCESS per file and warnings (e.g. duplicate rules) otherwise.
    for line in said.lines() {
        let line = line.trim();
        assert!(
            line.is_empty() || line.starts_with("Checking ") || line.starts_with("SUCCESS:"),
            "promtool check rules said: {line}\n{said}"
        );
    }
}

#[test]
fn promtool_unit_tests_pass() {
    let said = run(&["test", "rules"], &test_files());
    assert!(!said.contains("FAILED"), "{said}");
    assert_eq!(
        said.matches("SUCCESS").count(),
        test_files().len(),
        "{said}"
    );
}

/// Each alert has a test where it fires (labels and annotations checked by promtool) and one
/// where it does not; each recording rule has its value checked.
#[test]
fn unit_tests_cover_every_rule() {
    let rules = rules();
    let mut fired = BTreeSet::new();
    let mut quiet = BTreeSet::new();
    let mut exprs = vec![];
    for f in test_files() {
        let doc = yaml(&f);
        for test in doc["tests"].as_sequence().unwrap() {
            for a in test["alert_rule_test"].as_sequence().into_iter().flatten() {
                let name = a["alertname"].as_str().unwrap().to_string();
                let expected = a["exp_alerts"].as_sequence().map_or(0, Vec::len);
                if expected > 0 {
                    for e in a["exp_alerts"].as_sequence().unwrap() {
                        assert!(
                            e["exp_annotations"]["runbook"].is_string(),
                            "{}: a firing {name} without its annotations checked",
                            f.display()
                        );
                    }
                    fired.insert(name);
                } else {
                    quiet.insert(name);
                }
            }
            for e in test["promql_expr_test"].as_sequence().into_iter().flatten() {
                let samples = e["exp_samples"].as_sequence().map_or(0, Vec::len);
                if samples > 0 {
                    exprs.push(e["expr"].as_str().unwrap().to_string());
                }
            }
        }
    }
    let names: BTreeSet<String> = rules
        .alerts
        .iter()
        .map(|a| a["alert"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names.len(), rules.alerts.len(), "alert names are unique");
    let not_fired: Vec<_> = names.difference(&fired).collect();
    let not_quiet: Vec<_> = names.difference(&quiet).collect();
    assert!(not_fired.is_empty(), "never tested firing: {not_fired:?}");
    assert!(
        not_quiet.is_empty(),
        "never tested not firing: {not_quiet:?}"
    );
    let unknown: Vec<_> = fired
        .union(&quiet)
        .filter(|a| !names.contains(*a))
        .collect();
    assert!(
        unknown.is_empty(),
        "tests of alerts that do not exist: {unknown:?}"
    );
    for r in &rules.records {
        assert!(
            exprs
                .iter()
                .any(|e| e == r || e.starts_with(&format!("{r}{{"))),
            "recording rule {r} has no value test"
        );
    }
}

#[test]
fn every_alert_says_what_it_means_and_what_to_do() {
    for a in rules().alerts {
        let name = a["alert"].as_str().unwrap();
        for key in ["summary", "description", "runbook"] {
            let text = a["annotations"][key].as_str().unwrap_or("");
            assert!(
                text.split_whitespace().count() >= 5,
                "{name}: annotation {key} is missing or too short: {text:?}"
            );
        }
        let severity = a["labels"]["severity"].as_str().unwrap_or("");
        assert!(
            ["critical", "warning"].contains(&severity),
            "{name}: severity {severity:?}"
        );
    }
}

/// Where the stack's Prometheus looks for rules (deploy/local/up) matches where they are, and the
/// unit tests are not among the files it loads.
#[test]
fn the_stack_loads_these_rules() {
    let up = std::fs::read_to_string(rules_dir().join("../../local/up")).unwrap();
    assert!(
        up.contains("deploy/prometheus/rules/*.yml"),
        "deploy/local/up"
    );
    for f in rule_files() {
        let doc = yaml(&f);
        assert!(
            doc["groups"].is_sequence(),
            "{} is loaded by Prometheus but is not a rule file",
            f.display()
        );
    }
}

/// Issue #18: the invalid-share band is series, not numbers in the alerts: both alerts compare
/// with the bound recorded per campaign, which falls back to the defaults of
/// adclick-invalid-band.yml (one per bound, without labels), so an operator changes the band or
/// overrides it per advertiser or campaign without touching an alert.
#[test]
fn the_invalid_share_band_is_configured_by_series() {
    let rules = rules();
    for (alert, bound) in [
        (
            "AdclickCampaignInvalidShareHigh",
            "campaign:adclick_invalid_share:upper_bound",
        ),
        (
            "AdclickCampaignInvalidShareLow",
            "campaign:adclick_invalid_share:lower_bound",
        ),
    ] {
        let a = rules
            .alerts
            .iter()
            .find(|a| a["alert"].as_str() == Some(alert))
            .unwrap_or_else(|| panic!("no alert {alert}"));
        let expr = a["expr"].as_str().unwrap();
        assert!(expr.contains(bound), "{alert}: {expr}");
        for number in ["0.3", "0.05", "30", " 5"] {
            assert!(!expr.contains(number), "{alert}: the band is in {expr}");
        }
        assert!(rules.records.iter().any(|r| r == bound), "{bound}");
    }
    let band = yaml(&rules_dir().join("adclick-invalid-band.yml"));
    let defaults: Vec<(&str, &str)> = band["groups"][0]["rules"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|r| {
            assert!(r["labels"].is_null(), "a default with labels: {r:?}");
            (r["record"].as_str().unwrap(), r["expr"].as_str().unwrap())
        })
        .collect();
    assert_eq!(
        defaults,
        vec![
            ("adclick:invalid_share_upper_bound", "vector(0.30)"),
            ("adclick:invalid_share_lower_bound", "vector(0.05)"),
        ]
    );
}
