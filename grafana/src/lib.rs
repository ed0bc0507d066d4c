//! adclick's Grafana dashboards (`grafana/dashboards/*.json`) and Prometheus rules
//! (`deploy/prometheus/rules/`), as something tests can check and run.
//!
//! | module | concept | items |
//! |---|---|---|
//! | `files` | where the dashboards, Grafana's provisioning and the rules are, in the checkout found at run time | [`checkout`], [`dashboard_files`], [`dashboards_dir`], [`provisioning_dir`], [`rules_dir`] |
//! | `dashboard` | a dashboard as typed data (panels, targets, variables, datasources, grid positions), read from its file | [`Dashboard`], [`load`] |
//! | `validate` | what makes a dashboard valid here: schema version, unique panel ids, grid positions that do not overlap, a datasource and a query on every panel, variables that only refer to earlier ones | [`validate`] |
//! | `queries` | every query a dashboard runs (each panel target, each variable), and a variable's query as the Prometheus API call Grafana makes for it (`label_values(…)`, `query_result(…)`) | [`panel_queries`], [`variables`], [`parse_variable_query`] |
//! | `variables` | template variables (`$advertiser`, `${campaign}`, `[[ad]]`, `$__range`, `$__interval`, `$__rate_interval`, …) replaced by values, as Grafana does before sending a query | [`builtin_values`], [`substitute`] |
//!
//! The queries are PromQL for two datasources with the same API: Prometheus (live) and Thanos
//! Query (history and the rollup's `tier="rollup"` blocks); see `grafana/README.md`.

mod dashboard;
mod files;
mod queries;
mod validate;
mod variables;

pub use dashboard::{
    Dashboard, DatasourceRef, GridPos, LoadError, Panel, Target, Templating, Variable, load,
};
pub use files::{
    DASHBOARDS, checkout, dashboard_files, dashboards_dir, files_with_extension, provisioning_dir,
    rules_dir, shipped_dashboard_files,
};
pub use queries::{
    PanelQuery, VariableQueryError, VariableSource, panel_queries, parse_variable_query,
    variable_queries, variables,
};
pub use validate::{GRID_COLUMNS, MIN_SCHEMA_VERSION, validate};
pub use variables::{
    BUILTIN_VARIABLES, MissingValues, builtin_values, prom_duration, referenced_variables,
    substitute,
};
