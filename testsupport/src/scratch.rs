//! A throwaway Prometheus for tests that need a configuration the stack's does not have
//! (no out-of-order window, a data dir holding blocks a test wrote): the stack's own binary,
//! on a free port, with a temporary data dir, killed when dropped.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::process::ScratchProcess;
use crate::{PromApi, Stack, free_port};

pub struct ScratchPrometheus {
    process: ScratchProcess,
    url: String,
    /// Holds the configuration and data; removed when dropped.
    _dir: tempfile::TempDir,
}

impl ScratchPrometheus {
    /// Starts Prometheus with `config_yaml` and the remote-write receiver enabled, on a data dir
    /// that `prepare` may fill first (e.g. with TSDB blocks). Waits until it is ready.
    pub fn start(
        stack: &Stack,
        config_yaml: &str,
        prepare: impl FnOnce(&Path),
    ) -> ScratchPrometheus {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        prepare(&data);
        let config = dir.path().join("prometheus.yml");
        std::fs::write(&config, config_yaml).unwrap();
        let port = free_port();
        let args = [
            format!("--config.file={}", config.display()),
            format!("--storage.tsdb.path={}", data.display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            "--web.enable-remote-write-receiver".to_string(),
        ];
        let process =
            ScratchProcess::start("prometheus", dir.path(), stack.prometheus_bin(), &args);
        let p = ScratchPrometheus {
            process,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        };
        p.wait_ready(Duration::from_secs(60));
        p
    }

    /// Stops it (SIGTERM, as an operator's restart would, then waits), keeping its data.
    pub fn stop(&mut self) {
        self.process.stop();
    }

    /// Starts it again on the same port and data after [`Self::stop`]; waits until ready.
    pub fn restart(&mut self) {
        self.process.restart();
        self.wait_ready(Duration::from_secs(60));
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn remote_write_url(&self) -> String {
        format!("{}/api/v1/write", self.url)
    }

    pub fn api(&self) -> PromApi {
        PromApi::new(&self.url)
    }

    pub fn log_path(&self) -> PathBuf {
        self.process.log_path()
    }

    fn wait_ready(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let ready = format!("{}/-/ready", self.url);
        loop {
            let ok = reqwest::blocking::get(&ready)
                .map(|r| r.status().is_success())
                .unwrap_or(false);
            if ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "scratch prometheus not ready after {timeout:?}:\n{}",
                self.process.log_tail()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}
