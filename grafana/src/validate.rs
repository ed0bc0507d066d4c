//! What makes a dashboard valid here: [`validate`] lists what is wrong with one.

use std::collections::{BTreeMap, BTreeSet};

use crate::dashboard::{Dashboard, GridPos};
use crate::queries::{parse_variable_query, variables};
use crate::variables::{BUILTIN_VARIABLES, referenced_variables};

/// Width of Grafana's grid.
pub const GRID_COLUMNS: i64 = 24;
/// The oldest dashboard schema accepted: Grafana 9's (36). Older schemas are migrated on load,
/// which makes the file on disk differ from what Grafana shows.
pub const MIN_SCHEMA_VERSION: i64 = 36;

/// What is wrong with a dashboard; empty when it is valid:
///
/// - `uid`, `title` and an integer `schemaVersion` of at least [`MIN_SCHEMA_VERSION`];
/// - panels with unique integer ids, a title, and a `gridPos` inside the 24 columns that
///   overlaps no other panel;
/// - every panel that is not a row has a datasource and at least one target, and every target a
///   `refId` (unique in its panel) and a non-empty `expr`;
/// - variables with unique names; a query variable has a query and a datasource; a query (a
///   variable's or a panel's) and a datasource uid only use variables that are defined — a
///   variable's only those defined before it, so the chain resolves in order — or Grafana's
///   global ones ([`BUILTIN_VARIABLES`]).
pub fn validate(dashboard: &Dashboard) -> Vec<String> {
    let mut problems = vec![];
    for (key, value) in [("uid", &dashboard.uid), ("title", &dashboard.title)] {
        if value.is_empty() {
            problems.push(format!("no {key}"));
        }
    }
    match dashboard.schema_version {
        Some(v) if v >= MIN_SCHEMA_VERSION => {}
        Some(v) => problems.push(format!(
            "schemaVersion {v} is older than {MIN_SCHEMA_VERSION}"
        )),
        None => problems.push("no integer schemaVersion".into()),
    }

    // Variables: unique, and each refers only to variables before it.
    let vars = variables(dashboard);
    let mut defined: BTreeSet<String> = BUILTIN_VARIABLES.iter().map(|s| s.to_string()).collect();
    for v in vars {
        if v.name.is_empty() {
            problems.push("a variable without a name".into());
            continue;
        }
        if defined.contains(&v.name) {
            problems.push(format!("variable ${} defined twice", v.name));
        }
        if v.kind == "query" {
            if v.query.trim().is_empty() {
                problems.push(format!("variable ${} has no query", v.name));
            }
            if v.datasource_uid().is_empty() {
                problems.push(format!("variable ${} has no datasource", v.name));
            }
            if let Err(e) = parse_variable_query(&v.query) {
                problems.push(format!("variable ${}: {e}", v.name));
            }
        }
        for r in referenced_variables(&v.query)
            .into_iter()
            .chain(referenced_variables(v.datasource_uid()))
        {
            if !defined.contains(&r) {
                problems.push(format!(
                    "variable ${} uses ${r}, which is not defined before it",
                    v.name
                ));
            }
        }
        defined.insert(v.name.clone());
    }
    let datasource_vars: BTreeSet<&str> = vars
        .iter()
        .filter(|v| v.kind == "datasource")
        .map(|v| v.name.as_str())
        .collect();

    let panels = dashboard.all_panels();
    if panels.is_empty() {
        problems.push("no panels".into());
    }
    let mut ids = BTreeMap::new();
    let mut placed: Vec<(String, GridPos)> = vec![];
    for p in panels {
        let title = p.title.as_str();
        let Some(id) = p.id else {
            problems.push(format!("panel {title:?} has no integer id"));
            continue;
        };
        let name = format!("panel {id} {title:?}");
        if let Some(other) = ids.insert(id, title) {
            problems.push(format!("{name}: id {id} already used by {other:?}"));
        }
        if title.is_empty() {
            problems.push(format!("{name}: no title"));
        }
        match p.grid_pos {
            None => problems.push(format!("{name}: no gridPos with integer x, y, w, h")),
            Some(g) => {
                if g.w < 1 || g.h < 1 || g.x < 0 || g.y < 0 || g.x + g.w > GRID_COLUMNS {
                    problems.push(format!(
                        "{name}: gridPos {g:?} is not inside the {GRID_COLUMNS} columns"
                    ));
                }
                for (other, og) in &placed {
                    if g.overlaps(og) {
                        problems.push(format!("{name}: gridPos {g:?} overlaps {other} {og:?}"));
                    }
                }
                placed.push((name.clone(), g));
            }
        }
        if p.is_row() {
            continue;
        }
        if p.datasource_uid().is_empty() {
            problems.push(format!("{name}: no datasource"));
        }
        if p.targets.is_empty() {
            problems.push(format!("{name}: no targets"));
        }
        let mut ref_ids = BTreeSet::new();
        for t in &p.targets {
            let ref_id = t.ref_id.as_str();
            if ref_id.is_empty() || !ref_ids.insert(ref_id) {
                problems.push(format!("{name}: a target without a unique refId"));
            }
            let expr = t.expr.as_str();
            if expr.trim().is_empty() {
                problems.push(format!("{name}: target {ref_id} has no expr"));
            }
            let ds = p.target_datasource_uid(t);
            for text in [expr, ds, title] {
                for r in referenced_variables(text) {
                    if !defined.contains(&r) {
                        problems.push(format!("{name}: target {ref_id} uses undefined ${r}"));
                    }
                }
            }
            for r in referenced_variables(ds) {
                if !datasource_vars.contains(r.as_str()) {
                    problems.push(format!(
                        "{name}: datasource ${r} is not a datasource variable"
                    ));
                }
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queries::{panel_queries, variable_queries};
    use serde_json::{Value, json};

    fn panel(id: i64, x: i64, y: i64, w: i64, h: i64) -> Value {
        json!({
            "id": id, "type": "timeseries", "title": format!("p{id}"),
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "gridPos": {"x": x, "y": y, "w": w, "h": h},
            "targets": [{"refId": "A", "expr": "sum(x{a=\"$a\"})"}]
        })
    }

    /// The JSON of a dashboard, for the tests to spoil before [`parse`] reads it.
    fn dashboard(panels: Vec<Value>, vars: Value) -> Value {
        json!({"uid": "u", "title": "t", "schemaVersion": 39, "panels": panels,
               "templating": {"list": vars}})
    }

    fn parse(json: &Value) -> Dashboard {
        serde_json::from_value(json.clone()).unwrap()
    }

    fn ok_vars() -> Value {
        json!([
            {"type": "datasource", "name": "datasource", "query": "prometheus"},
            {"type": "query", "name": "a", "datasource": {"uid": "${datasource}"},
             "query": {"query": "label_values(x, a)"}},
            {"type": "query", "name": "b", "datasource": {"uid": "${datasource}"},
             "query": "label_values(x{a=\"$a\"}, b)"}
        ])
    }

    #[test]
    fn validation_accepts_a_good_dashboard() {
        let d = parse(&dashboard(
            vec![panel(1, 0, 0, 12, 8), panel(2, 12, 0, 12, 8)],
            ok_vars(),
        ));
        assert_eq!(validate(&d), Vec::<String>::new());
        let q = panel_queries(&d);
        assert_eq!(q.len(), 2);
        assert_eq!(q[0].datasource, "${datasource}");
        assert!(!q[0].instant);
        assert_eq!(variable_queries(&d).len(), 2);
        assert_eq!(variables(&d)[1].query, "label_values(x, a)");
    }

    #[test]
    fn validation_finds_each_problem() {
        let has = |d: &Value, what: &str| {
            let p = validate(&parse(d));
            assert!(p.iter().any(|p| p.contains(what)), "{what:?} not in {p:?}");
        };
        has(
            &dashboard(
                vec![panel(1, 0, 0, 12, 8), panel(1, 12, 0, 12, 8)],
                ok_vars(),
            ),
            "already used",
        );
        has(
            &dashboard(
                vec![panel(1, 0, 0, 12, 8), panel(2, 11, 7, 12, 8)],
                ok_vars(),
            ),
            "overlaps",
        );
        has(
            &dashboard(vec![panel(1, 20, 0, 12, 8)], ok_vars()),
            "not inside",
        );
        let mut no_ds = panel(1, 0, 0, 12, 8);
        no_ds["datasource"] = Value::Null;
        has(&dashboard(vec![no_ds], ok_vars()), "no datasource");
        let mut no_expr = panel(1, 0, 0, 12, 8);
        no_expr["targets"][0]["expr"] = json!("");
        has(&dashboard(vec![no_expr], ok_vars()), "has no expr");
        let mut no_targets = panel(1, 0, 0, 12, 8);
        no_targets["targets"] = json!([]);
        has(&dashboard(vec![no_targets], ok_vars()), "no targets");
        // b before a: the chain does not resolve in order.
        let mut vars = ok_vars();
        vars.as_array_mut().unwrap().swap(1, 2);
        has(
            &dashboard(vec![panel(1, 0, 0, 12, 8)], vars),
            "not defined before it",
        );
        has(
            &dashboard(vec![panel(1, 0, 0, 12, 8)], json!([])),
            "undefined $a",
        );
        let mut old = dashboard(vec![panel(1, 0, 0, 12, 8)], ok_vars());
        old["schemaVersion"] = json!(16);
        has(&old, "older than");
    }
}
