//! Where this crate's files are: the dashboards, Grafana's provisioning, the Prometheus rules.

use std::path::{Path, PathBuf};

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
