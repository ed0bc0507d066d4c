//! adclick's Grafana dashboards (`grafana/dashboards/*.json`) and Prometheus rules
//! (`deploy/prometheus/rules/`), as something tests can check and run.
//!
//! | item | concept |
//! |---|---|
//! | [`dashboard_files`], [`load`] | the dashboards this crate ships |
//! | [`validate`] | what makes a dashboard valid here: schema version, unique panel ids, grid positions that do not overlap, a datasource and a query on every panel, variables that only refer to earlier ones |
//! | [`panel_queries`], [`variables`] | every query a dashboard runs: each panel target, each variable |
//! | [`parse_variable_query`] | a variable's query as the Prometheus API call Grafana makes for it (`label_values(…)`, `query_result(…)`) |
//! | [`builtin_values`], [`substitute`] | template variables (`$advertiser`, `${campaign}`, `[[ad]]`, `$__range`, `$__interval`, `$__rate_interval`, …) replaced by values, as Grafana does before sending a query |
//!
//! The queries are PromQL for two datasources with the same API: Prometheus (live) and Thanos
//! Query (history and the rollup's `tier="rollup"` blocks); see `grafana/README.md`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

/// Width of Grafana's grid.
pub const GRID_COLUMNS: i64 = 24;
/// The oldest dashboard schema accepted: Grafana 9's (36). Older schemas are migrated on load,
/// which makes the file on disk differ from what Grafana shows.
pub const MIN_SCHEMA_VERSION: i64 = 36;

/// Grafana's global variables that a query may use without defining them.
pub const BUILTIN_VARIABLES: &[&str] = &[
    "__range",
    "__range_s",
    "__range_ms",
    "__interval",
    "__interval_ms",
    "__rate_interval",
    "__rate_interval_ms",
    "__from",
    "__to",
    "__dashboard",
    "__org",
    "__user",
    "__timeFilter",
];

/// `grafana/dashboards/`.
pub fn dashboards_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboards")
}

/// `grafana/provisioning/`.
pub fn provisioning_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("provisioning")
}

/// `deploy/prometheus/rules/`: the recording and alerting rules the stack's Prometheus loads.
pub fn rules_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/prometheus/rules")
}

/// Every `*.json` of [`dashboards_dir`], sorted.
pub fn dashboard_files() -> Vec<PathBuf> {
    files_with_extension(&dashboards_dir(), "json")
}

/// Every file of `dir` whose name ends in `.{ext}`, sorted (none when `dir` is missing).
pub fn files_with_extension(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == ext))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// A dashboard file as JSON.
pub fn load(path: &Path) -> Result<Value, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: not JSON: {e}", path.display()))
}

/// Every panel, rows and the panels inside collapsed rows included, in file order.
pub fn all_panels(dashboard: &Value) -> Vec<&Value> {
    let mut out = vec![];
    for p in dashboard["panels"].as_array().into_iter().flatten() {
        out.push(p);
        for inner in p["panels"].as_array().into_iter().flatten() {
            out.push(inner);
        }
    }
    out
}

fn is_row(panel: &Value) -> bool {
    panel["type"] == "row"
}

/// A panel's place on the grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GridPos {
    pub x: i64,
    pub y: i64,
    pub w: i64,
    pub h: i64,
}

impl GridPos {
    fn of(panel: &Value) -> Option<GridPos> {
        let g = &panel["gridPos"];
        Some(GridPos {
            x: g["x"].as_i64()?,
            y: g["y"].as_i64()?,
            w: g["w"].as_i64()?,
            h: g["h"].as_i64()?,
        })
    }

    /// Whether the two rectangles share any cell.
    pub fn overlaps(&self, other: &GridPos) -> bool {
        self.x < other.x + other.w
            && other.x < self.x + self.w
            && self.y < other.y + other.h
            && other.y < self.y + self.h
    }
}

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
pub fn validate(dashboard: &Value) -> Vec<String> {
    let mut problems = vec![];
    for key in ["uid", "title"] {
        if dashboard[key].as_str().is_none_or(str::is_empty) {
            problems.push(format!("no {key}"));
        }
    }
    match dashboard["schemaVersion"].as_i64() {
        Some(v) if v >= MIN_SCHEMA_VERSION => {}
        Some(v) => problems.push(format!(
            "schemaVersion {v} is older than {MIN_SCHEMA_VERSION}"
        )),
        None => problems.push("no integer schemaVersion".into()),
    }

    // Variables: unique, and each refers only to variables before it.
    let vars = variables(dashboard);
    let mut defined: BTreeSet<String> = BUILTIN_VARIABLES.iter().map(|s| s.to_string()).collect();
    for v in &vars {
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
            if v.datasource.is_empty() {
                problems.push(format!("variable ${} has no datasource", v.name));
            }
            if let Err(e) = parse_variable_query(&v.query) {
                problems.push(format!("variable ${}: {e}", v.name));
            }
        }
        for r in referenced_variables(&v.query)
            .into_iter()
            .chain(referenced_variables(&v.datasource))
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

    let panels = all_panels(dashboard);
    if panels.is_empty() {
        problems.push("no panels".into());
    }
    let mut ids = BTreeMap::new();
    let mut placed: Vec<(String, GridPos)> = vec![];
    for p in &panels {
        let title = p["title"].as_str().unwrap_or("");
        let Some(id) = p["id"].as_i64() else {
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
        match GridPos::of(p) {
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
        if is_row(p) {
            continue;
        }
        let panel_ds = datasource_uid(&p["datasource"]);
        if panel_ds.is_empty() {
            problems.push(format!("{name}: no datasource"));
        }
        let targets = p["targets"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        if targets.is_empty() {
            problems.push(format!("{name}: no targets"));
        }
        let mut ref_ids = BTreeSet::new();
        for t in targets {
            let ref_id = t["refId"].as_str().unwrap_or("");
            if ref_id.is_empty() || !ref_ids.insert(ref_id) {
                problems.push(format!("{name}: a target without a unique refId"));
            }
            let expr = t["expr"].as_str().unwrap_or("");
            if expr.trim().is_empty() {
                problems.push(format!("{name}: target {ref_id} has no expr"));
            }
            let ds = match datasource_uid(&t["datasource"]) {
                uid if uid.is_empty() => panel_ds.clone(),
                uid => uid,
            };
            for text in [expr, ds.as_str(), title] {
                for r in referenced_variables(text) {
                    if !defined.contains(&r) {
                        problems.push(format!("{name}: target {ref_id} uses undefined ${r}"));
                    }
                }
            }
            for r in referenced_variables(&ds) {
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

/// The uid of a datasource reference: `{"type": …, "uid": …}`, or a bare string (older files).
fn datasource_uid(ds: &Value) -> String {
    match ds {
        Value::String(s) => s.clone(),
        Value::Object(o) => o.get("uid").and_then(Value::as_str).unwrap_or("").into(),
        _ => String::new(),
    }
}

/// One query of one panel.
#[derive(Debug, Clone, PartialEq)]
pub struct PanelQuery {
    pub panel_id: i64,
    pub panel_title: String,
    pub ref_id: String,
    /// The datasource uid, still with its variables (e.g. `${datasource}`).
    pub datasource: String,
    /// PromQL, still with its variables.
    pub expr: String,
    /// An instant query (tables, stats); else a range query (graphs).
    pub instant: bool,
    /// The panel's minimum interval (e.g. `1m`), when it sets one.
    pub interval: Option<String>,
    /// The panel's own relative time (e.g. `now/d`), when it overrides the dashboard's.
    pub time_from: Option<String>,
}

/// Every query of every panel (rows have none), in file order.
pub fn panel_queries(dashboard: &Value) -> Vec<PanelQuery> {
    let mut out = vec![];
    for p in all_panels(dashboard) {
        if is_row(p) {
            continue;
        }
        let panel_ds = datasource_uid(&p["datasource"]);
        for t in p["targets"].as_array().into_iter().flatten() {
            let ds = match datasource_uid(&t["datasource"]) {
                uid if uid.is_empty() => panel_ds.clone(),
                uid => uid,
            };
            let interval = t["interval"]
                .as_str()
                .or(p["interval"].as_str())
                .filter(|s| !s.is_empty())
                .map(String::from);
            out.push(PanelQuery {
                panel_id: p["id"].as_i64().unwrap_or(-1),
                panel_title: p["title"].as_str().unwrap_or("").into(),
                ref_id: t["refId"].as_str().unwrap_or("").into(),
                datasource: ds,
                expr: t["expr"].as_str().unwrap_or("").into(),
                instant: t["instant"].as_bool().unwrap_or(false)
                    && !t["range"].as_bool().unwrap_or(false),
                interval,
                time_from: p["timeFrom"]
                    .as_str()
                    .filter(|s| !s.is_empty())
                    .map(String::from),
            });
        }
    }
    out
}

/// One template variable.
#[derive(Debug, Clone, PartialEq)]
pub struct Variable {
    pub name: String,
    /// `query`, `custom`, `datasource`, `constant`, `interval`, …
    pub kind: String,
    /// The variable's query: PromQL-ish for `query` (`label_values(…)`), the comma-separated
    /// values for `custom`, the plugin type for `datasource`.
    pub query: String,
    /// The datasource uid a `query` variable asks, still with its variables.
    pub datasource: String,
    pub multi: bool,
    pub include_all: bool,
    /// The value "All" stands for (`allValue`), when set.
    pub all_value: Option<String>,
}

/// Every template variable, in order.
pub fn variables(dashboard: &Value) -> Vec<Variable> {
    dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| {
            let query = match &v["query"] {
                Value::String(s) => s.clone(),
                // The Prometheus variable editor stores {"query": "...", "refId": ...}.
                Value::Object(o) => o
                    .get("query")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                _ => String::new(),
            };
            Variable {
                name: v["name"].as_str().unwrap_or("").into(),
                kind: v["type"].as_str().unwrap_or("").into(),
                query,
                datasource: datasource_uid(&v["datasource"]),
                multi: v["multi"].as_bool().unwrap_or(false),
                include_all: v["includeAll"].as_bool().unwrap_or(false),
                all_value: v["allValue"]
                    .as_str()
                    .filter(|s| !s.is_empty())
                    .map(String::from),
            }
        })
        .collect()
}

/// The `query` variables, in order: the ones that ask a datasource.
pub fn variable_queries(dashboard: &Value) -> Vec<Variable> {
    variables(dashboard)
        .into_iter()
        .filter(|v| v.kind == "query")
        .collect()
}

/// What a Prometheus query variable asks, as Grafana's Prometheus datasource understands it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VariableSource {
    /// `label_values(label)` or `label_values(selector, label)`: the label's values
    /// (`/api/v1/label/{label}/values`, with `match[]={selector}`).
    LabelValues {
        label: String,
        selector: Option<String>,
    },
    /// `label_names()` or `label_names(selector)`.
    LabelNames { selector: Option<String> },
    /// `metrics(regex)`: metric names matching.
    Metrics { regex: String },
    /// `query_result(expr)`: each result element of an instant query.
    QueryResult { expr: String },
}

/// Parses a Prometheus variable query.
pub fn parse_variable_query(query: &str) -> Result<VariableSource, String> {
    let q = query.trim();
    let call = |name: &str| -> Option<&str> {
        q.strip_prefix(name)
            .map(str::trim_start)
            .and_then(|rest| rest.strip_prefix('('))
            .and_then(|rest| rest.strip_suffix(')'))
            .map(str::trim)
    };
    if let Some(args) = call("label_values") {
        // The label is after the last top-level comma (selectors contain commas in braces).
        let mut depth = 0i32;
        let mut in_string = false;
        let mut split = None;
        let mut prev = '\0';
        for (i, c) in args.char_indices() {
            match c {
                '"' if prev != '\\' => in_string = !in_string,
                '{' | '(' | '[' if !in_string => depth += 1,
                '}' | ')' | ']' if !in_string => depth -= 1,
                ',' if !in_string && depth == 0 => split = Some(i),
                _ => {}
            }
            prev = c;
        }
        let (selector, label) = match split {
            Some(i) => (Some(args[..i].trim().to_string()), args[i + 1..].trim()),
            None => (None, args),
        };
        if label.is_empty() || !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("label_values: {label:?} is not a label name"));
        }
        return Ok(VariableSource::LabelValues {
            label: label.to_string(),
            selector: selector.filter(|s| !s.is_empty()),
        });
    }
    if let Some(args) = call("label_names") {
        return Ok(VariableSource::LabelNames {
            selector: Some(args.to_string()).filter(|s| !s.is_empty()),
        });
    }
    if let Some(args) = call("metrics") {
        return Ok(VariableSource::Metrics {
            regex: args.to_string(),
        });
    }
    if let Some(args) = call("query_result") {
        if args.is_empty() {
            return Err("query_result() without a query".into());
        }
        return Ok(VariableSource::QueryResult {
            expr: args.to_string(),
        });
    }
    Err(format!(
        "{q:?} is none of label_values(…), label_names(…), metrics(…), query_result(…)"
    ))
}

/// A duration as Grafana writes it into PromQL: whole seconds as `{n}s`, else `{n}ms`.
pub fn prom_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// Grafana's global variables for a query over `[from_ms, to_ms]` at `interval`: `__range`
/// (`{seconds}s`), `__range_s`, `__range_ms`, `__interval`, `__interval_ms`, `__rate_interval`
/// (Grafana: max(interval + scrape interval, 4 × scrape interval); pass the result),
/// `__rate_interval_ms`, `__from`, `__to` (ms).
pub fn builtin_values(
    from_ms: i64,
    to_ms: i64,
    interval: Duration,
    rate_interval: Duration,
) -> BTreeMap<String, String> {
    let range_ms = (to_ms - from_ms).max(0);
    let mut v = BTreeMap::new();
    v.insert("__range".into(), format!("{}s", range_ms / 1000));
    v.insert("__range_s".into(), (range_ms / 1000).to_string());
    v.insert("__range_ms".into(), range_ms.to_string());
    v.insert("__interval".into(), prom_duration(interval));
    v.insert("__interval_ms".into(), interval.as_millis().to_string());
    v.insert("__rate_interval".into(), prom_duration(rate_interval));
    v.insert(
        "__rate_interval_ms".into(),
        rate_interval.as_millis().to_string(),
    );
    v.insert("__from".into(), from_ms.to_string());
    v.insert("__to".into(), to_ms.to_string());
    v
}

/// One variable reference found in a text: where it is and what it names.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Reference {
    start: usize,
    end: usize,
    name: String,
}

/// Finds `$name`, `${name}`, `${name:format}` and `[[name]]`. A `$` that starts none of them
/// (a regex anchor in `=~"x$"`) is left alone.
fn references(text: &str) -> Vec<Reference> {
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let b = text.as_bytes();
    let mut out = vec![];
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'$' && i + 1 < b.len() && b[i + 1] == b'{' {
            if let Some(close) = text[i + 2..].find('}') {
                let inner = &text[i + 2..i + 2 + close];
                let name = inner.split(':').next().unwrap_or("");
                if !name.is_empty() && name.bytes().all(ident) {
                    out.push(Reference {
                        start: i,
                        end: i + 3 + close,
                        name: name.into(),
                    });
                    i += 3 + close;
                    continue;
                }
            }
        } else if b[i] == b'$' && i + 1 < b.len() && ident(b[i + 1]) {
            let mut j = i + 1;
            while j < b.len() && ident(b[j]) {
                j += 1;
            }
            out.push(Reference {
                start: i,
                end: j,
                name: text[i + 1..j].into(),
            });
            i = j;
            continue;
        } else if b[i] == b'[' && text[i..].starts_with("[[") {
            if let Some(close) = text[i + 2..].find("]]") {
                let name = &text[i + 2..i + 2 + close];
                if !name.is_empty() && name.bytes().all(ident) {
                    out.push(Reference {
                        start: i,
                        end: i + 4 + close,
                        name: name.into(),
                    });
                    i += 4 + close;
                    continue;
                }
            }
        }
        i += 1;
    }
    out
}

/// The names of the variables `text` uses, each once, in order of first use.
pub fn referenced_variables(text: &str) -> Vec<String> {
    let mut seen = BTreeSet::new();
    references(text)
        .into_iter()
        .filter(|r| seen.insert(r.name.clone()))
        .map(|r| r.name)
        .collect()
}

/// `text` with every variable reference replaced by its value in `values` (user variables and
/// [`builtin_values`] alike). Values go in as they are: for a multi-value variable pass what
/// Grafana would (its `allValue`, e.g. `.*`, or `(a|b)`). Fails naming every variable that has
/// no value, so a query is never sent half substituted.
pub fn substitute(text: &str, values: &BTreeMap<String, String>) -> Result<String, String> {
    let refs = references(text);
    let missing: BTreeSet<&str> = refs
        .iter()
        .filter(|r| !values.contains_key(&r.name))
        .map(|r| r.name.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "no value for {} in {text:?}",
            missing
                .iter()
                .map(|m| format!("${m}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for r in refs {
        out.push_str(&text[at..r.start]);
        out.push_str(&values[&r.name]);
        at = r.end;
    }
    out.push_str(&text[at..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn values(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn substitution_matches_whole_names_in_every_syntax() {
        let v = values(&[
            ("ad", "7"),
            ("advertiser", "3"),
            ("__range", "3600s"),
            ("__range_s", "3600"),
        ]);
        assert_eq!(
            substitute(
                r#"x{advertiser_id="$advertiser", ad_id=~"${ad}", b="[[ad]]", c="${ad:regex}"}[$__range] $__range_s"#,
                &v
            )
            .unwrap(),
            r#"x{advertiser_id="3", ad_id=~"7", b="7", c="7"}[3600s] 3600"#
        );
        // A regex anchor and a lone `$` are not variables.
        assert_eq!(
            substitute(r#"x{a=~"foo$", b="$"} $ 1"#, &v).unwrap(),
            r#"x{a=~"foo$", b="$"} $ 1"#
        );
        let err = substitute("x{a=\"$campaign\"}[$__interval]", &v).unwrap_err();
        assert!(
            err.contains("$campaign") && err.contains("$__interval"),
            "{err}"
        );
        assert_eq!(
            referenced_variables("$a ${b} [[a]] $__range"),
            vec!["a", "b", "__range"]
        );
    }

    #[test]
    fn builtins_are_what_grafana_sends() {
        let b = builtin_values(
            1_000_000,
            1_000_000 + 6 * 3_600_000,
            Duration::from_secs(60),
            Duration::from_millis(1500),
        );
        assert_eq!(b["__range"], "21600s");
        assert_eq!(b["__range_s"], "21600");
        assert_eq!(b["__range_ms"], "21600000");
        assert_eq!(b["__interval"], "60s");
        assert_eq!(b["__interval_ms"], "60000");
        assert_eq!(b["__rate_interval"], "1500ms");
        assert_eq!(b["__from"], "1000000");
    }

    #[test]
    fn variable_queries_parse() {
        assert_eq!(
            parse_variable_query(
                r#"label_values(adclick_clicks{tier!="rollup", advertiser_id="$advertiser"}, campaign_id)"#
            )
            .unwrap(),
            VariableSource::LabelValues {
                label: "campaign_id".into(),
                selector: Some(
                    r#"adclick_clicks{tier!="rollup", advertiser_id="$advertiser"}"#.into()
                ),
            }
        );
        assert_eq!(
            parse_variable_query("label_values(job)").unwrap(),
            VariableSource::LabelValues {
                label: "job".into(),
                selector: None
            }
        );
        assert_eq!(
            parse_variable_query(r#"query_result(topk(5, sum by (ad_id) (x{a="1,2"})))"#).unwrap(),
            VariableSource::QueryResult {
                expr: r#"topk(5, sum by (ad_id) (x{a="1,2"}))"#.into()
            }
        );
        assert!(parse_variable_query("up").is_err());
        assert!(parse_variable_query("label_values(x{a=\"b\"}, )").is_err());
    }

    fn panel(id: i64, x: i64, y: i64, w: i64, h: i64) -> Value {
        json!({
            "id": id, "type": "timeseries", "title": format!("p{id}"),
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "gridPos": {"x": x, "y": y, "w": w, "h": h},
            "targets": [{"refId": "A", "expr": "sum(x{a=\"$a\"})"}]
        })
    }

    fn dashboard(panels: Vec<Value>, vars: Value) -> Value {
        json!({"uid": "u", "title": "t", "schemaVersion": 39, "panels": panels,
               "templating": {"list": vars}})
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
        let d = dashboard(
            vec![panel(1, 0, 0, 12, 8), panel(2, 12, 0, 12, 8)],
            ok_vars(),
        );
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
            let p = validate(d);
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
