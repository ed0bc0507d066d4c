//! PostgreSQL for tests. [`TestDatabase`]: a fresh database of the test's own
//! (`adclick_t_<pid>_<n>_<time>`) on the stack's server (`POSTGRES_URL` of the stack's env file,
//! else 127.0.0.1:5432 as user `postgres`, trust auth), dropped when the test ends.
//! [`ScratchPostgres`]: a private cluster (initdb + postgres of Debian's server binaries, on a
//! free port, in a temporary folder) that a test may kill with SIGKILL and restart; the stack's
//! server is shared and is never stopped by a test.
//!
//! Both fail the test loudly when PostgreSQL is missing or does not answer: a billing test never
//! passes without a database. `deploy/local/install` installs the server, `up` starts it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::free_port;
use crate::pki::TestPki;
use crate::process::ScratchProcess;

/// The stack's server when the env file does not say: what `deploy/local/up` ensures.
const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The stack's PostgreSQL, its maintenance database: `POSTGRES_URL` in the stack's env file.
pub fn postgres_admin_url() -> String {
    crate::stack::env_file_var("POSTGRES_URL").unwrap_or_else(|| DEFAULT_ADMIN_URL.to_string())
}

/// Runs `sql` with psql on `url`; panics with psql's message when it fails.
pub fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([
            url,
            "-X",
            "-q",
            "-t",
            "-A",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ])
        .env("PGCONNECT_TIMEOUT", "10")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!("running psql ({e}): deploy/local/install installs Debian's postgresql")
        });
    assert!(
        out.status.success(),
        "psql {url} -c {sql:?} failed: {}\nIs PostgreSQL up? deploy/local/up starts it; \
         deploy/local/status tells.",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A database of one test's own, dropped (connections and all) when dropped.
pub struct TestDatabase {
    name: String,
    admin_url: String,
    url: String,
}

impl TestDatabase {
    /// A fresh, empty database on the stack's PostgreSQL.
    pub fn create() -> TestDatabase {
        TestDatabase::create_on(&postgres_admin_url())
    }

    /// A fresh, empty database on the server of `admin_url` (a URL of an existing database
    /// there, e.g. `postgres`).
    pub fn create_on(admin_url: &str) -> TestDatabase {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let name = format!(
            "adclick_t_{}_{}_{:x}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            nanos % (1 << 40)
        );
        psql(admin_url, &format!("CREATE DATABASE {name}"));
        let url = with_database(admin_url, &name);
        TestDatabase {
            name,
            admin_url: admin_url.to_string(),
            url,
        }
    }

    /// `postgres://…/adclick_t_…`.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([&self.admin_url, "-X", "-q", "-c"])
            .arg(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .env("PGCONNECT_TIMEOUT", "10")
            .stdin(Stdio::null())
            .output();
    }
}

/// `url` with its database (path) replaced by `database`.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{database}", &base[..host_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// A private PostgreSQL cluster on a free port, owned by the `postgres` user when the tests run
/// as root (initdb refuses root), in a temporary folder removed when dropped. Its database
/// `adclick` exists from the start.
pub struct ScratchPostgres {
    process: ScratchProcess,
    port: u16,
    data: PathBuf,
    _dir: tempfile::TempDir,
}

impl ScratchPostgres {
    /// initdb, start, wait until it answers, create the database `adclick`.
    pub fn start() -> ScratchPostgres {
        ScratchPostgres::start_with(None)
    }

    /// As [`Self::start`], serving TLS (and plain) with `pki`'s server certificate (for
    /// `localhost` and 127.0.0.1).
    pub fn start_tls(pki: &TestPki) -> ScratchPostgres {
        ScratchPostgres::start_with(Some(pki))
    }

    fn start_with(tls: Option<&TestPki>) -> ScratchPostgres {
        let bin = postgres_bindir();
        let dir = tempfile::tempdir().expect("temp dir");
        let owner = cluster_owner();
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
        }
        let data = dir.path().join("data");
        let out = as_owner(owner, &bin.join("initdb"))
            .args(["-D"])
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .stdin(Stdio::null())
            .output()
            .expect("running initdb");
        assert!(
            out.status.success(),
            "initdb {}: {}{}",
            data.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        // The postmaster is this process's own child (setpriv execs, it does not fork), so a
        // kill is of the postmaster itself, and its exit is reaped here.
        let (program, mut args) = match owner {
            Some((uid, gid)) => (
                "setpriv".to_string(),
                vec![
                    format!("--reuid={uid}"),
                    format!("--regid={gid}"),
                    "--init-groups".to_string(),
                    "--".to_string(),
                    bin.join("postgres").display().to_string(),
                ],
            ),
            None => (bin.join("postgres").display().to_string(), vec![]),
        };
        args.extend([
            "-D".to_string(),
            data.display().to_string(),
            "-p".to_string(),
            port.to_string(),
            "-k".to_string(),
            dir.path().display().to_string(),
            "-c".to_string(),
            "listen_addresses=127.0.0.1".to_string(),
            "-c".to_string(),
            "shared_buffers=32MB".to_string(),
        ]);
        if let Some(pki) = tls {
            // The server reads them as its user, and refuses a key others may read.
            let (cert, key) = (dir.path().join("server.crt"), dir.path().join("server.key"));
            std::fs::copy(pki.server_cert(), &cert).unwrap();
            std::fs::copy(pki.server_key(), &key).unwrap();
            std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .unwrap();
            if let Some((uid, gid)) = owner {
                std::os::unix::fs::chown(&cert, Some(uid), Some(gid)).unwrap();
                std::os::unix::fs::chown(&key, Some(uid), Some(gid)).unwrap();
            }
            args.extend([
                "-c".to_string(),
                "ssl=on".to_string(),
                "-c".to_string(),
                format!("ssl_cert_file={}", cert.display()),
                "-c".to_string(),
                format!("ssl_key_file={}", key.display()),
            ]);
        }
        // The log goes to the folder the cluster's owner can write to.
        let process = ScratchProcess::start("postgres", dir.path(), &program, &args);
        let mut pg = ScratchPostgres {
            process,
            port,
            data,
            _dir: dir,
        };
        pg.wait_ready(Duration::from_secs(60));
        psql(&pg.url("postgres"), "CREATE DATABASE adclick");
        pg
    }

    /// `postgres://postgres@127.0.0.1:<port>/<database>`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the whole cluster with SIGKILL at once, the postmaster and every backend, as a
    /// crash of the machine or a container kill would. (Killing the postmaster alone is not a
    /// crash of a write: its backends run on until they next wait for their client, so a COPY
    /// whose data is all in the socket still completes.) The postmaster is stopped first, so it
    /// starts no backend between the listing of its children and their kill.
    pub fn kill(&mut self) {
        let postmaster = self.postmaster_pid();
        signal("STOP", postmaster);
        let backends = children_of(postmaster);
        for pid in &backends {
            signal("KILL", *pid);
        }
        self.process.kill();
        let deadline = Instant::now() + Duration::from_secs(20);
        while backends.iter().any(|pid| alive(*pid)) {
            assert!(
                Instant::now() < deadline,
                "the scratch PostgreSQL's backends outlive SIGKILL"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts it again on the same data and port (crash recovery runs); waits until it answers.
    pub fn restart(&mut self) {
        // Right after a kill the old shared memory may still be attached for a moment: retry.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            self.process.restart();
            if self.try_wait_ready(Duration::from_secs(30)) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the scratch PostgreSQL did not restart:\n{}",
                self.process.log_tail()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The server's log, for a failure message.
    pub fn log_tail(&self) -> String {
        self.process.log_tail()
    }

    fn postmaster_pid(&self) -> u32 {
        let text = std::fs::read_to_string(self.data.join("postmaster.pid")).unwrap_or_default();
        text.lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or_else(|| panic!("no postmaster.pid in {}", self.data.display()))
    }

    fn wait_ready(&mut self, timeout: Duration) {
        assert!(
            self.try_wait_ready(timeout),
            "the scratch PostgreSQL on {} is not ready after {timeout:?}:\n{}",
            self.port,
            self.process.log_tail()
        );
    }

    fn try_wait_ready(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let ready = Command::new("pg_isready")
                .args([
                    "-q",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                    "-t",
                    "2",
                ])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return true;
            }
            if self.process.exited() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }
}

/// Debian's server binaries, the newest version installed: `/usr/lib/postgresql/<ver>/bin`.
pub fn postgres_bindir() -> PathBuf {
    let root = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).unwrap_or_else(|| {
        panic!(
            "no PostgreSQL server under {}: deploy/local/install installs Debian's postgresql",
            root.display()
        )
    })
}

/// The `postgres` user's uid and gid when this process is root (initdb and postgres refuse to
/// run as root); `None` otherwise (the cluster is this user's).
fn cluster_owner() -> Option<(u32, u32)> {
    let id = |flag: &str, user: Option<&str>| -> u32 {
        let out = Command::new("id").arg(flag).args(user).output().unwrap();
        assert!(
            out.status.success(),
            "id {flag} {user:?}: the postgres user is missing (deploy/local/install installs Debian's postgresql)"
        );
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    };
    (id("-u", None) == 0).then(|| (id("-u", Some("postgres")), id("-g", Some("postgres"))))
}

/// `program` run as the cluster's owner: through `runuser` when this process is root.
fn as_owner(owner: Option<(u32, u32)>, program: &Path) -> Command {
    match owner {
        Some(_) => {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        }
        None => Command::new(program),
    }
}

/// The pids whose parent is `pid` (the postmaster's backends and workers).
fn children_of(pid: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let child: u32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            // `pid (comm) state ppid …`: comm may hold spaces, so read after the last ')'.
            let ppid: u32 = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            (ppid == pid).then_some(child)
        })
        .collect()
}

/// Sends `SIG<name>` to `pid` (a process of the test's own cluster).
fn signal(name: &str, pid: u32) {
    let _ = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status();
}

/// Whether `pid` runs (a zombie does not).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| Some(stat.rsplit_once(')')?.1.split_whitespace().next()? != "Z"))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgres://u@h:1/postgres?sslmode=disable", "x"),
            "postgres://u@h:1/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
    }
}
