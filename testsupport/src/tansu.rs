//! A Kafka broker of a test's own: the stack's tansu binary on a free port with SQLite storage in
//! a temporary folder, optionally requiring SASL/SCRAM logins and advertising another address
//! (a TLS terminator in front of it). The stack's broker is plain and shared; this one is for
//! the production connections (TLS, SASL).

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::free_port;
use crate::process::ScratchProcess;

/// A private tansu.
pub struct ScratchTansu {
    pub process: ScratchProcess,
    /// Where it listens (plain Kafka protocol).
    pub port: u16,
    _dir: tempfile::TempDir,
}

/// How a [`ScratchTansu`] is set up.
pub struct TansuSetup<'a> {
    /// The address put in metadata for clients (`host:port`); the listener's own when `None`.
    pub advertised: Option<String>,
    /// Topics created before clients connect: name and partitions.
    pub topics: &'a [(&'a str, i32)],
    /// SCRAM-SHA-512 users; when any, the broker is restarted requiring a SASL login.
    pub scram_users: &'a [(&'a str, &'a str)],
}

impl ScratchTansu {
    /// Starts it, creates the topics and users, and (with users) restarts it requiring SASL.
    /// tansu 0.6 keeps SCRAM credentials in its SQLite store, and its own CLI speaks no SASL,
    /// so users and topics are made while it still runs without authentication.
    pub fn start(port: u16, setup: &TansuSetup) -> ScratchTansu {
        let dir = tempfile::tempdir().expect("temp dir");
        let advertised = setup
            .advertised
            .clone()
            .unwrap_or_else(|| format!("127.0.0.1:{port}"));
        let mut args = vec![
            "broker".to_string(),
            "--listener-url".into(),
            format!("tcp://127.0.0.1:{port}"),
            "--advertised-listener-url".into(),
            format!("tcp://{advertised}"),
            // Relative: tansu resolves it against its working directory (see deploy/local/up).
            "--storage-engine".into(),
            "sqlite://tansu.db".into(),
        ];
        let bin = tansu_bin().display().to_string();
        let mut process = ScratchProcess::start("tansu", dir.path(), &bin, &args);
        process.wait_port(port, Duration::from_secs(60));
        let broker = format!("tcp://127.0.0.1:{port}");
        for (topic, partitions) in setup.topics {
            tansu_cli(&[
                "topic",
                "create",
                topic,
                "--partitions",
                &partitions.to_string(),
                "--broker",
                &broker,
            ]);
        }
        for (user, password) in setup.scram_users {
            tansu_cli(&[
                "user",
                "create",
                "--broker",
                &broker,
                "--mechanism",
                "scram512",
                user,
                password,
            ]);
        }
        if !setup.scram_users.is_empty() {
            args.push("--authentication".into());
            process.restart_with(&args);
            process.wait_port(port, Duration::from_secs(60));
        }
        ScratchTansu {
            process,
            port,
            _dir: dir,
        }
    }

    /// Starts it on a free port.
    pub fn start_anywhere(setup: &TansuSetup) -> ScratchTansu {
        ScratchTansu::start(free_port(), setup)
    }

    /// `bootstrap.servers` of its plain listener.
    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// kill -9, as a crash would; its storage stays.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Starts it again on the same port and storage; waits until it listens.
    pub fn restart(&mut self) {
        self.process.restart();
        self.process.wait_port(self.port, Duration::from_secs(60));
    }

    pub fn log_path(&self) -> PathBuf {
        self.process.log_path()
    }
}

/// The tansu the stack runs: `$TANSU`, else on the PATH, else cargo's bin folder (where
/// `deploy/local/install` puts it).
pub fn tansu_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("TANSU") {
        return p.into();
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("tansu"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
        .into_iter()
        .chain([home.join(".cargo/bin/tansu")])
        .find(|p| p.exists())
        .expect("tansu not found: deploy/local/install installs it (or set TANSU)")
}

fn tansu_cli(args: &[&str]) {
    let out = Command::new(tansu_bin())
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("tansu {args:?}: {e}"));
    assert!(
        out.status.success(),
        "tansu {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
