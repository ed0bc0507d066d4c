//! A throwaway Prometheus for tests that need a configuration the stack's does not have
//! (no out-of-order window, a data dir holding blocks a test wrote): the stack's own binary,
//! on a free port, with a temporary data dir, killed when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{PromApi, Stack, free_port};

pub struct ScratchPrometheus {
    child: Child,
    dir: tempfile::TempDir,
    url: String,
    /// How it was started, to start it again on the same port and data.
    bin: String,
    port: u16,
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
        let bin = stack.prometheus_bin().to_string();
        let child = spawn(&bin, dir.path(), port);
        let mut p = ScratchPrometheus {
            child,
            dir,
            url: format!("http://127.0.0.1:{port}"),
            bin,
            port,
        };
        p.wait_ready(Duration::from_secs(60));
        p
    }

    /// Stops it (SIGTERM, as an operator's restart would, then waits), keeping its data.
    pub fn stop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }

    /// Starts it again on the same port and data after [`Self::stop`]; waits until ready.
    pub fn restart(&mut self) {
        self.child = spawn(&self.bin, self.dir.path(), self.port);
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
        self.dir.path().join("prometheus.log")
    }

    fn wait_ready(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let ready = format!("{}/-/ready", self.url);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "scratch prometheus exited ({status}): {}",
                    std::fs::read_to_string(self.log_path()).unwrap_or_default()
                );
            }
            let ok = reqwest::blocking::get(&ready)
                .map(|r| r.status().is_success())
                .unwrap_or(false);
            if ok {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "scratch prometheus not ready after {timeout:?}; log: {}",
                    self.log_path().display()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for ScratchPrometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(bin: &str, dir: &Path, port: u16) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("prometheus.log"))
        .unwrap();
    Command::new(bin)
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--web.enable-remote-write-receiver")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {bin}: {e}"))
}
