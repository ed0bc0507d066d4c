//! A server process a test starts for itself (Debian's redis-server, a private tansu), in a
//! folder of its own, logging to a file there; killed when dropped. What the stack scripts
//! install is what runs: `deploy/local/install` puts each binary on the machine.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running scratch server.
pub struct ScratchProcess {
    name: String,
    program: String,
    args: Vec<String>,
    dir: PathBuf,
    child: Option<Child>,
}

impl ScratchProcess {
    /// Starts `program args` in `dir` (created), stdout and stderr to `dir/<name>.log`.
    pub fn start(name: &str, dir: &Path, program: &str, args: &[String]) -> ScratchProcess {
        std::fs::create_dir_all(dir).expect("scratch server folder");
        let mut p = ScratchProcess {
            name: name.to_string(),
            program: program.to_string(),
            args: args.to_vec(),
            dir: dir.to_path_buf(),
            child: None,
        };
        p.spawn();
        p
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("scratch server log");
        let child = Command::new(&self.program)
            .args(&self.args)
            .current_dir(&self.dir)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "starting {} ({}): {e}. deploy/local/install installs it.",
                    self.name, self.program
                )
            });
        self.child = Some(child);
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join(format!("{}.log", self.name))
    }

    /// The last lines of its log, for a failure message.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Waits until it accepts TCP connections on 127.0.0.1:`port`; panics with its log when it
    /// exits or does not within `timeout`.
    pub fn wait_port(&mut self, port: u16, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!("{} exited ({status}):\n{}", self.name, self.log_tail());
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "{} does not listen on {port} after {timeout:?}:\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether it has exited (or was killed, or never started).
    pub fn exited(&mut self) -> bool {
        self.child
            .as_mut()
            .is_none_or(|child| matches!(child.try_wait(), Ok(Some(_))))
    }

    /// Kills it with SIGKILL, as a crash would, and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops it with SIGTERM, as an operator's restart would, and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            let _ = child.wait();
        }
    }

    /// Starts it again with the same command (after [`Self::kill`] or [`Self::stop`]).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Starts it again with other arguments.
    pub fn restart_with(&mut self, args: &[String]) {
        self.kill();
        self.args = args.to_vec();
        self.spawn();
    }
}

impl Drop for ScratchProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
