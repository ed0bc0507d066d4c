//! A Grafana dashboard as this crate reads it — the fields the checks and the queries use, typed —
//! and [`load`], which reads one from its file.
//!
//! Everything else in the JSON (field config, options, links, annotations, …) is ignored. A field
//! Grafana may leave out reads as its default or `None`, so that a dashboard without it still
//! loads and [`validate`](crate::validate) can say what is missing; a field of the wrong type fails
//! the load, naming the file, line and column.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};

/// A dashboard file (Grafana's "JSON model").
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Dashboard {
    pub uid: String,
    pub title: String,
    /// The JSON model's version: Grafana migrates older ones on load.
    pub schema_version: Option<i64>,
    /// The top-level panels, rows included, in file order; see [`Dashboard::all_panels`].
    pub panels: Vec<Panel>,
    pub templating: Templating,
}

/// The dashboard's template variables.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Templating {
    /// In the order Grafana resolves them: a variable may use only those before it.
    pub list: Vec<Variable>,
}

/// One panel; a row (`type: "row"`) is a panel too.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Panel {
    /// Unique within the dashboard.
    pub id: Option<i64>,
    /// The visualisation: `timeseries`, `stat`, `table`, …, or `row`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub grid_pos: Option<GridPos>,
    /// The datasource the targets ask unless they name their own.
    pub datasource: Option<DatasourceRef>,
    pub targets: Vec<Target>,
    /// A collapsed row's panels. An open row has none here: its panels follow it in the
    /// dashboard's list.
    pub panels: Vec<Panel>,
    /// The minimum interval (e.g. `1m`), when set.
    #[serde(deserialize_with = "non_empty")]
    pub interval: Option<String>,
    /// The panel's own relative time (e.g. `now/d`), when it overrides the dashboard's.
    #[serde(deserialize_with = "non_empty")]
    pub time_from: Option<String>,
}

/// A panel's place on the grid, in grid cells ([`GRID_COLUMNS`](crate::GRID_COLUMNS) wide).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct GridPos {
    pub x: i64,
    pub y: i64,
    pub w: i64,
    pub h: i64,
}

/// One query of a panel.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Target {
    /// `A`, `B`, …: unique within the panel.
    pub ref_id: String,
    /// PromQL, still with its variables.
    pub expr: String,
    /// Its own datasource, when it does not use the panel's.
    pub datasource: Option<DatasourceRef>,
    /// Asks for the value at the range's end (tables, stats)…
    pub instant: bool,
    /// …or for the whole range (graphs); Grafana's editor can set both.
    pub range: bool,
    /// The target's minimum interval as written: Grafana writes `""` when the field is left empty.
    pub interval: Option<String>,
}

/// One template variable.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Variable {
    pub name: String,
    /// `query`, `custom`, `datasource`, `constant`, `interval`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// The variable's query: PromQL-ish for `query` (`label_values(…)`), the comma-separated
    /// values for `custom`, the plugin type for `datasource`.
    #[serde(deserialize_with = "query_text")]
    pub query: String,
    /// The datasource a `query` variable asks.
    pub datasource: Option<DatasourceRef>,
    pub multi: bool,
    pub include_all: bool,
    /// The value "All" stands for (`allValue`), when set.
    #[serde(deserialize_with = "non_empty")]
    pub all_value: Option<String>,
}

/// A reference to a datasource.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum DatasourceRef {
    /// `{"type": "prometheus", "uid": "${datasource}"}`, as Grafana writes it since 8.3.
    Ref {
        /// The datasource plugin.
        #[serde(rename = "type", default)]
        kind: Option<String>,
        #[serde(default)]
        uid: Option<String>,
    },
    /// A bare string, as older files have it; taken for the uid.
    Uid(String),
}

impl Dashboard {
    /// Every panel, rows and the panels inside collapsed rows included, in file order.
    pub fn all_panels(&self) -> Vec<&Panel> {
        let mut out = vec![];
        for p in &self.panels {
            out.push(p);
            out.extend(&p.panels);
        }
        out
    }
}

impl Panel {
    pub fn is_row(&self) -> bool {
        self.kind == "row"
    }

    /// The uid of the panel's datasource, still with its variables; empty when it names none.
    pub fn datasource_uid(&self) -> &str {
        uid_of(self.datasource.as_ref())
    }

    /// The uid of the datasource `target` (one of this panel's) asks: its own, else the panel's.
    pub fn target_datasource_uid<'a>(&'a self, target: &'a Target) -> &'a str {
        match uid_of(target.datasource.as_ref()) {
            "" => self.datasource_uid(),
            uid => uid,
        }
    }
}

impl GridPos {
    /// Whether the two rectangles share any cell.
    pub fn overlaps(&self, other: &GridPos) -> bool {
        self.x < other.x + other.w
            && other.x < self.x + self.w
            && self.y < other.y + other.h
            && other.y < self.y + self.h
    }
}

impl Variable {
    /// The uid of the datasource the variable asks, still with its variables; empty when none.
    pub fn datasource_uid(&self) -> &str {
        uid_of(self.datasource.as_ref())
    }
}

impl DatasourceRef {
    /// The uid; empty when the reference has none.
    pub fn uid(&self) -> &str {
        match self {
            DatasourceRef::Ref { uid, .. } => uid.as_deref().unwrap_or(""),
            DatasourceRef::Uid(uid) => uid,
        }
    }
}

fn uid_of(datasource: Option<&DatasourceRef>) -> &str {
    datasource.map_or("", DatasourceRef::uid)
}

/// Grafana writes a text field that is not set as `""`, as `null` or not at all: all read as
/// `None`, so that a `Some` always holds a value.
fn non_empty<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.filter(|s| !s.is_empty()))
}

/// A variable's query is a string, except that Grafana's Prometheus variable editor stores
/// `{"query": "…", "refId": …, "qryType": …}`; only the text says what the variable asks.
fn query_text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Query {
        Text(String),
        Editor {
            #[serde(default)]
            query: String,
        },
    }
    Ok(match Option::<Query>::deserialize(d)? {
        Some(Query::Text(text) | Query::Editor { query: text }) => text,
        None => String::new(),
    })
}

/// Why a dashboard file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("reading {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not a Grafana dashboard", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// A dashboard file.
pub fn load(path: &Path) -> Result<Dashboard, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| LoadError::Parse {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_what_grafana_writes_and_ignores_the_rest() {
        let d: Dashboard = serde_json::from_value(json!({
            "uid": "u", "title": "t", "schemaVersion": 39, "refresh": "30s",
            "annotations": {"list": []},
            "panels": [
                {"id": 1, "type": "row", "title": "r", "collapsed": true,
                 "gridPos": {"x": 0, "y": 0, "w": 24, "h": 1},
                 "panels": [
                     {"id": 2, "type": "stat", "title": "s", "datasource": "old-uid",
                      "timeFrom": null, "interval": "",
                      "targets": [{"refId": "A", "expr": "up", "datasource": {"uid": "own"},
                                   "legendFormat": "x"}]}
                 ]},
                {"id": 3, "type": "timeseries", "datasource": null, "fieldConfig": {}}
            ],
            "templating": {"list": [
                {"type": "query", "name": "a", "datasource": {"type": "prometheus", "uid": "p"},
                 "query": {"query": "label_values(a)", "refId": "X", "qryType": 1},
                 "allValue": null, "current": {}},
                {"type": "custom", "name": "n", "query": "1,2", "allValue": ""},
                {"type": "constant", "name": "c"}
            ]}
        }))
        .unwrap();
        assert_eq!(d.schema_version, Some(39));
        let ids: Vec<_> = d.all_panels().iter().map(|p| p.id).collect();
        assert_eq!(ids, vec![Some(1), Some(2), Some(3)]);
        let stat = d.all_panels()[1];
        assert_eq!(stat.datasource_uid(), "old-uid");
        assert_eq!(stat.target_datasource_uid(&stat.targets[0]), "own");
        assert_eq!(
            (stat.interval.as_deref(), stat.time_from.as_deref()),
            (None, None)
        );
        assert!(d.panels[0].is_row() && d.panels[1].grid_pos.is_none());
        assert_eq!(d.panels[1].datasource_uid(), "");
        let v = &d.templating.list;
        assert_eq!(
            (v[0].query.as_str(), v[0].datasource_uid()),
            ("label_values(a)", "p")
        );
        assert_eq!(
            (v[1].query.as_str(), v[1].all_value.as_deref()),
            ("1,2", None)
        );
        assert_eq!((v[2].query.as_str(), v[2].kind.as_str()), ("", "constant"));
    }

    #[test]
    fn a_file_that_does_not_load_is_named_with_its_cause() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, r#"{"uid": "u", "panels": [{"gridPos": {"x": 0}}]}"#).unwrap();
        let e = load(&bad).unwrap_err();
        assert!(matches!(e, LoadError::Parse { .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            format!("{}: not a Grafana dashboard", bad.display())
        );
        let cause = std::error::Error::source(&e).map(ToString::to_string);
        assert!(
            cause
                .as_deref()
                .is_some_and(|c| c.contains("missing field `y`")),
            "{cause:?}"
        );

        let missing = dir.path().join("missing.json");
        let e = load(&missing).unwrap_err();
        assert!(matches!(e, LoadError::Read { .. }), "{e:?}");
        assert!(e.to_string().contains("missing.json"), "{e}");
    }
}
