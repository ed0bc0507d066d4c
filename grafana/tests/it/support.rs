//! What the dashboard and rule tests share: reading the files this crate ships.

use std::path::Path;

use adclick_grafana::{Dashboard, load};

/// A shipped dashboard by name. `{e:?}` rather than `{e}`: the message names the file, its cause
/// (as `source`) says why.
pub fn dashboard(name: &str) -> Dashboard {
    let path = adclick_grafana::dashboards_dir().join(format!("{name}.json"));
    load(&path).unwrap_or_else(|e| panic!("{e:?}"))
}

/// A YAML file (a rule file, a provisioning file), parsed.
pub fn yaml(path: &Path) -> yaml_serde::Value {
    let text = std::fs::read_to_string(path).unwrap();
    yaml_serde::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
