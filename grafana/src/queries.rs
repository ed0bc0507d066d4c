//! Every query a dashboard runs — each panel target, each query variable — and a variable's query
//! as the Prometheus API call Grafana makes for it.

use crate::dashboard::{Dashboard, Variable};

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
pub fn panel_queries(dashboard: &Dashboard) -> Vec<PanelQuery> {
    let mut out = vec![];
    for p in dashboard.all_panels() {
        if p.is_row() {
            continue;
        }
        for t in &p.targets {
            out.push(PanelQuery {
                // -1: an id that no panel has; `validate` reports the missing one.
                panel_id: p.id.unwrap_or(-1),
                panel_title: p.title.clone(),
                ref_id: t.ref_id.clone(),
                datasource: p.target_datasource_uid(t).to_string(),
                expr: t.expr.clone(),
                // Grafana's editor can set both; the range wins.
                instant: t.instant && !t.range,
                // A target that has the field uses its own, even when empty (none).
                interval: t
                    .interval
                    .as_deref()
                    .or(p.interval.as_deref())
                    .filter(|s| !s.is_empty())
                    .map(String::from),
                time_from: p.time_from.clone(),
            });
        }
    }
    out
}

/// Every template variable, in order.
pub fn variables(dashboard: &Dashboard) -> &[Variable] {
    &dashboard.templating.list
}

/// The `query` variables, in order: the ones that ask a datasource.
pub fn variable_queries(dashboard: &Dashboard) -> Vec<&Variable> {
    variables(dashboard)
        .iter()
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

/// Why a variable's query is none that Grafana's Prometheus datasource runs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VariableQueryError {
    #[error("label_values: {0:?} is not a label name")]
    NotALabelName(String),
    #[error("query_result() without a query")]
    EmptyQueryResult,
    #[error("{0:?} is none of label_values(…), label_names(…), metrics(…), query_result(…)")]
    Unknown(String),
}

/// Parses a Prometheus variable query.
pub fn parse_variable_query(query: &str) -> Result<VariableSource, VariableQueryError> {
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
            return Err(VariableQueryError::NotALabelName(label.to_string()));
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
            return Err(VariableQueryError::EmptyQueryResult);
        }
        return Ok(VariableSource::QueryResult {
            expr: args.to_string(),
        });
    }
    Err(VariableQueryError::Unknown(q.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
