//! The shipped dashboards are valid Grafana dashboards, their variables chain advertiser →
//! campaign → ad, every query sums the exporter's `partition` label away, and the provisioning
//! files point at them.

use std::collections::BTreeMap;
use std::time::Duration;

use adclick_grafana::{
    VariableSource, builtin_values, dashboard_files, load, panel_queries, parse_variable_query,
    provisioning_dir, referenced_variables, shipped_dashboard_files, substitute, validate,
    variable_queries, variables,
};

use crate::support::{dashboard, yaml};

#[test]
fn every_dashboard_is_valid() {
    let files = shipped_dashboard_files().unwrap_or_else(|e| panic!("{e}"));
    let mut uids = BTreeMap::new();
    for f in &files {
        let d = load(f).unwrap_or_else(|e| panic!("{e:?}"));
        let problems = validate(&d);
        assert!(
            problems.is_empty(),
            "{}:\n  {}",
            f.display(),
            problems.join("\n  ")
        );
        let uid = d.uid.clone();
        if let Some(other) = uids.insert(uid.clone(), f.clone()) {
            panic!("uid {uid} used by {} and {}", f.display(), other.display());
        }
    }
}

#[test]
fn advertiser_variables_chain_advertiser_campaign_ad() {
    let d = dashboard("advertiser");
    let vars = variable_queries(&d);
    let chain: Vec<(String, Vec<String>, String)> = vars
        .iter()
        .map(|v| {
            let label = match parse_variable_query(&v.query).unwrap() {
                VariableSource::LabelValues { label, .. } => label,
                other => panic!("${}: {other:?} is not label_values", v.name),
            };
            (
                v.name.clone(),
                referenced_variables(&v.query)
                    .into_iter()
                    .filter(|r| !r.starts_with("__"))
                    .collect(),
                label,
            )
        })
        .collect();
    let expect = |name: &str, refs: &[&str], label: &str| {
        (
            name.to_string(),
            refs.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            label.to_string(),
        )
    };
    assert_eq!(
        chain,
        vec![
            expect("advertiser", &[], "advertiser_id"),
            expect("campaign", &["advertiser"], "campaign_id"),
            expect("ad", &["advertiser", "campaign"], "ad_id"),
        ]
    );
    // The chained variables are all from the stream's click series, on the chosen datasource.
    for v in &vars {
        assert!(
            v.query.contains("adclick_clicks{tier!=\"rollup\""),
            "${}: {}",
            v.name,
            v.query
        );
        assert_eq!(v.datasource_uid(), "${datasource}", "${}", v.name);
    }
    let all = variables(&d);
    let ds = all.iter().find(|v| v.name == "datasource").unwrap();
    assert_eq!(
        (ds.kind.as_str(), ds.query.as_str()),
        ("datasource", "prometheus")
    );
    for name in ["campaign", "ad"] {
        let v = all.iter().find(|v| v.name == name).unwrap();
        assert!(
            v.multi && v.include_all && v.all_value.as_deref() == Some(".*"),
            "{v:?}"
        );
    }
}

/// Every query that reads the exporter's series sums `partition` away (aggregates by labels
/// that do not include it), and every query of the click series says which tier it reads, so the
/// same query is right on Prometheus and on Thanos (where the rollup's `tier="rollup"` series
/// sit next to the stream's).
#[test]
fn queries_sum_partitions_away_and_pick_a_tier() {
    let values: BTreeMap<String, String> = [
        ("datasource", "adclick-prometheus"),
        ("advertiser", "1"),
        ("campaign", ".*"),
        ("ad", ".*"),
        ("topn", "10"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .chain(builtin_values(
        0,
        3_600_000,
        Duration::from_secs(60),
        Duration::from_secs(60),
    ))
    .collect();
    for name in ["advertiser", "operator"] {
        let d = dashboard(name);
        let queries = panel_queries(&d);
        assert!(!queries.is_empty());
        for q in queries {
            let what = format!(
                "{name} panel {} {:?} {}",
                q.panel_id, q.panel_title, q.ref_id
            );
            let expr = substitute(&q.expr, &values).unwrap_or_else(|e| panic!("{what}: {e}"));
            for series in [
                "adclick_clicks{",
                "adclick_late_clicks{",
                "adclick_clicks_open{",
                "adclick_invalid_clicks{",
                "adclick_late_invalid_clicks{",
                "adclick_spend_micros{",
                "adclick_late_spend_micros{",
                "adclick_unique_users{",
            ] {
                for (i, _) in expr.match_indices(series) {
                    let selector = &expr[i..expr[i..].find('}').map_or(expr.len(), |j| i + j)];
                    assert!(
                        selector.contains("tier!=\"rollup\"")
                            || selector.contains("tier=\"rollup\""),
                        "{what}: {selector} does not pick a tier"
                    );
                }
            }
            // Raw per-partition series are only read inside an aggregation without `partition`.
            let raw = [
                "adclick_clicks",
                "adclick_late_clicks",
                "adclick_clicks_open",
                "adclick_invalid_clicks",
                "adclick_late_invalid_clicks",
                "adclick_spend_micros",
                "adclick_late_spend_micros",
                "adclick_unique_users",
                "adclick_exporter_lag",
                "adclick_exporter_freshness_seconds",
            ];
            if raw.iter().any(|r| expr.contains(r)) {
                assert!(
                    expr.contains("sum") || expr.contains("max") || expr.contains("count"),
                    "{what}: {expr} reads per-partition series without aggregating"
                );
                for by in expr.match_indices("by (") {
                    let labels = &expr[by.0..expr[by.0..].find(')').unwrap() + by.0];
                    let keeps_partition = labels.contains("partition");
                    let per_partition_gauge = expr.contains("adclick_exporter_lag")
                        || expr.contains("adclick_exporter_freshness_seconds");
                    assert!(
                        !keeps_partition || per_partition_gauge,
                        "{what}: {expr} keeps partition"
                    );
                }
            }
        }
    }
}

/// Issue #18: each dashboard has an "Invalid traffic" row, and its panels (those after the row)
/// read what they say: the operator's the ingest counters by reason, the live share and the
/// velocity fail-open; the advertiser's the chosen advertiser's invalid series, live.
#[test]
fn both_dashboards_have_an_invalid_traffic_row() {
    for (name, wants) in [
        (
            "operator",
            &[
                "adclick_ingest_invalid_traffic_total",
                "adclick_ingest_dedup_fail_open_total",
                "adclick_invalid_clicks{tier!=\"rollup\"}",
                "campaign:adclick_invalid_share:ratio_1h",
                "adclick:invalid_share_upper_bound",
            ][..],
        ),
        (
            "advertiser",
            &[
                "adclick_invalid_clicks{tier!=\"rollup\", advertiser_id=\"$advertiser\"",
                "adclick_late_invalid_clicks{tier!=\"rollup\", advertiser_id=\"$advertiser\"",
            ][..],
        ),
    ] {
        let d = dashboard(name);
        let at = d
            .panels
            .iter()
            .position(|p| p.is_row() && p.title.starts_with("Invalid traffic"))
            .unwrap_or_else(|| panic!("{name}: no \"Invalid traffic\" row"));
        let exprs: Vec<&str> = d.panels[at + 1..]
            .iter()
            .take_while(|p| !p.is_row())
            .flat_map(|p| p.targets.iter().map(|t| t.expr.as_str()))
            .collect();
        assert!(exprs.len() >= 3, "{name}: {exprs:?}");
        for want in wants {
            assert!(
                exprs.iter().any(|e| e.contains(want)),
                "{name}: no invalid-traffic panel reads {want}"
            );
        }
    }
}

/// Issue #19: the advertiser dashboard's "Spend and people" row reads the chosen advertiser's
/// spend, late spend and unique users, live; spend in currency units (micros / 1e6); unique users
/// never summed over time (no `sum_over_time` of them, no "sum" in their legend), and every panel
/// says why.
#[test]
fn the_advertiser_dashboard_has_a_spend_and_people_row() {
    let d = dashboard("advertiser");
    let at = d
        .panels
        .iter()
        .position(|p| p.is_row() && p.title.starts_with("Spend and people"))
        .expect("no \"Spend and people\" row");
    let exprs: Vec<&str> = d.panels[at + 1..]
        .iter()
        .take_while(|p| !p.is_row())
        .flat_map(|p| p.targets.iter().map(|t| t.expr.as_str()))
        .collect();
    for want in [
        "adclick_spend_micros{tier!=\"rollup\", advertiser_id=\"$advertiser\"",
        "adclick_late_spend_micros{tier!=\"rollup\", advertiser_id=\"$advertiser\"",
        "adclick_unique_users{tier!=\"rollup\", advertiser_id=\"$advertiser\"",
    ] {
        assert!(
            exprs.iter().any(|e| e.contains(want)),
            "no spend-and-people panel reads {want}"
        );
    }
    for e in &exprs {
        if e.contains("spend_micros") {
            assert!(e.contains("/ 1e6"), "{e}: spend not in currency units");
        }
        assert!(
            !e.contains("sum_over_time(adclick_unique_users"),
            "{e}: unique users summed over time"
        );
    }
    // Titles, descriptions and legends are not in the typed panel: read them from the file.
    let file = adclick_grafana::dashboards_dir().join("advertiser.json");
    let raw: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    let users_panels: Vec<&serde_json::Value> = raw["panels"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["targets"].to_string().contains("adclick_unique_users"))
        .collect();
    assert!(!users_panels.is_empty());
    for p in users_panels {
        let title = &p["title"];
        let calcs = p["options"]["legend"]["calcs"].to_string();
        assert!(!calcs.contains("\"sum\""), "{title}: sums unique users");
        let description = p["description"].as_str().unwrap_or_default();
        assert!(
            description.contains("Never add") && description.contains("partition"),
            "{title}: says nothing of adding people up or of hot ads"
        );
    }
}

#[test]
fn provisioning_points_at_the_dashboards_and_both_datasources() {
    let dir = provisioning_dir();
    let ds = yaml(&dir.join("datasources/adclick.yml"));
    let list = ds["datasources"].as_sequence().expect("datasources list");
    let uids: Vec<(&str, &str)> = list
        .iter()
        .map(|d| (d["uid"].as_str().unwrap(), d["type"].as_str().unwrap()))
        .collect();
    assert_eq!(
        uids,
        vec![
            ("adclick-prometheus", "prometheus"),
            ("adclick-thanos", "prometheus")
        ]
    );
    let p = yaml(&dir.join("dashboards/adclick.yml"));
    assert_eq!(p["providers"][0]["type"].as_str(), Some("file"));
    assert_eq!(
        p["providers"][0]["options"]["path"].as_str(),
        Some("${ADCLICK_GRAFANA_DASHBOARDS}")
    );
    // Every fixed datasource uid the dashboards use is provisioned.
    for f in dashboard_files() {
        let d = load(&f).unwrap();
        for q in panel_queries(&d) {
            if !q.datasource.starts_with('$') {
                assert!(
                    uids.iter().any(|(u, _)| *u == q.datasource),
                    "{}: panel {} uses datasource {} that is not provisioned",
                    f.display(),
                    q.panel_id,
                    q.datasource
                );
            }
        }
    }
}

/// An advertiser's Grafana: both datasource uids the Advertiser dashboard uses point at the
/// query gateway with the advertiser's key as basic auth's password, kept in secureJsonData.
#[test]
fn the_gateway_provisioning_sends_both_datasources_through_the_gateway() {
    let dir = provisioning_dir().join("gateway");
    let ds = yaml(&dir.join("datasources/adclick.yml"));
    let list = ds["datasources"].as_sequence().expect("datasources list");
    let mut uids = vec![];
    for d in list {
        uids.push(d["uid"].as_str().unwrap());
        assert_eq!(d["url"].as_str(), Some("${ADCLICK_QUERY_URL}"), "{d:?}");
        assert_eq!(d["basicAuth"].as_bool(), Some(true), "{d:?}");
        assert_eq!(
            d["secureJsonData"]["basicAuthPassword"].as_str(),
            Some("${ADCLICK_QUERY_KEY}"),
            "{d:?}"
        );
        assert_eq!(d["jsonData"]["httpMethod"].as_str(), Some("POST"), "{d:?}");
    }
    let advertiser = dashboard_files()
        .into_iter()
        .find(|f| f.ends_with("advertiser.json"))
        .unwrap();
    let d = load(&advertiser).unwrap();
    for q in panel_queries(&d) {
        if !q.datasource.starts_with('$') {
            assert!(
                uids.contains(&q.datasource.as_str()),
                "panel {} uses datasource {} that the gateway provisioning lacks",
                q.panel_id,
                q.datasource
            );
        }
    }
    assert!(uids.contains(&"adclick-prometheus") && uids.contains(&"adclick-thanos"));
    let p = yaml(&dir.join("dashboards/adclick.yml"));
    assert_eq!(p["providers"][0]["type"].as_str(), Some("file"));
}
