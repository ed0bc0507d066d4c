//! Where this crate's files are: the dashboards, Grafana's provisioning, the Prometheus rules.

use std::path::{Path, PathBuf};

/// `grafana/dashboards/`.
pub fn dashboards_dir() -> PathBuf {
    checkout().join("grafana/dashboards")
}

/// `grafana/provisioning/`.
pub fn provisioning_dir() -> PathBuf {
    checkout().join("grafana/provisioning")
}

/// `deploy/prometheus/rules/`: the recording and alerting rules the stack's Prometheus loads.
pub fn rules_dir() -> PathBuf {
    checkout().join("deploy/prometheus/rules")
}

/// The checkout the running test, bench or example belongs to: the nearest directory holding
/// `Cargo.lock` above the package cargo runs it for (`CARGO_MANIFEST_DIR` at run time), else above
/// the working directory, else where this crate was compiled. Looked up at run time because
/// cargo reuses a workspace crate's build from another checkout of the same sources that shares
/// the target directory, and `env!("CARGO_MANIFEST_DIR")` then names that checkout's files.
/// `adclick_testsupport::workspace_root` is this.
pub fn checkout() -> PathBuf {
    let compiled_in = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let start = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::current_dir().ok());
    start
        .and_then(|dir| {
            dir.ancestors()
                .find(|d| d.join("Cargo.lock").is_file())
                .map(Path::to_path_buf)
        })
        .unwrap_or(compiled_in)
}

/// Every `*.json` of [`dashboards_dir`], sorted.
pub fn dashboard_files() -> Vec<PathBuf> {
    files_with_extension(&dashboards_dir(), "json")
}

/// The dashboards adclick ships, by file name.
pub const DASHBOARDS: [&str; 2] = ["advertiser.json", "operator.json"];

/// [`dashboard_files`] when every one of [`DASHBOARDS`] is among them; else what is missing and
/// where, for a check over the dashboards that would otherwise pass having checked none.
pub fn shipped_dashboard_files() -> Result<Vec<PathBuf>, String> {
    let files = dashboard_files();
    let names: Vec<String> = files
        .iter()
        .filter_map(|f| Some(f.file_name()?.to_string_lossy().into_owned()))
        .collect();
    match DASHBOARDS.iter().find(|d| !names.iter().any(|n| n == *d)) {
        None => Ok(files),
        Some(missing) => Err(format!(
            "{missing} is not in {} (found: {names:?})",
            dashboards_dir().display()
        )),
    }
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
