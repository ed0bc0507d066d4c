//! Redis servers of a test's own, of Debian's `redis-server`: one over TLS with an ACL user, or
//! a Redis Cluster of masters and replicas whose masters a test can kill. The stack's Redis is
//! shared and plain; these are for the production connections (TLS, ACL, cluster failover).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::free_port;
use crate::pki::TestPki;
use crate::process::ScratchProcess;

/// One redis-server on a free port.
pub struct ScratchRedis {
    pub process: ScratchProcess,
    pub port: u16,
    /// `redis://` or `rediss://` 127.0.0.1 and the port.
    pub url: String,
}

/// How a [`ScratchRedis`] is set up.
#[derive(Default)]
pub struct RedisSetup<'a> {
    /// Serve TLS only (no plain port), with the PKI's server certificate; clients need no
    /// certificate of their own.
    pub tls: Option<&'a TestPki>,
    /// An ACL user with every right and this password; the default user is switched off.
    pub acl_user: Option<(&'a str, &'a str)>,
    /// A cluster node (cluster-enabled, 1 s node timeout).
    pub cluster: bool,
}

impl ScratchRedis {
    /// Starts it in `dir`, waits until it listens.
    pub fn start(dir: &Path, setup: &RedisSetup) -> ScratchRedis {
        let port = free_port();
        let mut args: Vec<String> = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let scheme = if let Some(pki) = setup.tls {
            args.extend([
                "--port".into(),
                "0".into(),
                "--tls-port".into(),
                port.to_string(),
                "--tls-cert-file".into(),
                pki.server_cert().display().to_string(),
                "--tls-key-file".into(),
                pki.server_key().display().to_string(),
                "--tls-ca-cert-file".into(),
                pki.ca().display().to_string(),
                "--tls-auth-clients".into(),
                "optional".into(),
            ]);
            if setup.cluster {
                args.extend(["--tls-cluster".into(), "yes".into()]);
            }
            "rediss"
        } else {
            args.extend(["--port".into(), port.to_string()]);
            "redis"
        };
        if let Some((user, password)) = setup.acl_user {
            // Each word its own argument: redis-server joins them into one config line.
            args.extend(
                [
                    "--user",
                    user,
                    "on",
                    &format!(">{password}"),
                    "~*",
                    "&*",
                    "+@all",
                    "--user",
                    "default",
                    "off",
                ]
                .map(str::to_string),
            );
        }
        if setup.cluster {
            args.extend([
                "--cluster-enabled".into(),
                "yes".into(),
                "--cluster-config-file".into(),
                "nodes.conf".into(),
                "--cluster-node-timeout".into(),
                "1000".into(),
                // As production should run it (README, "Production connections"): with Redis's
                // default (yes) every node refuses every command while a master's slots are
                // uncovered, so every claim fails open until the failover is done; with no, only
                // that master's slots fail.
                "--cluster-require-full-coverage".into(),
                "no".into(),
            ]);
        }
        let dir = dir.join(format!("redis-{port}"));
        let mut process = ScratchProcess::start("redis-server", &dir, "redis-server", &args);
        process.wait_port(port, Duration::from_secs(20));
        ScratchRedis {
            process,
            port,
            url: format!("{scheme}://127.0.0.1:{port}"),
        }
    }
}

/// A Redis Cluster on free ports: `masters` masters with `replicas` replicas each.
pub struct RedisCluster {
    pub nodes: Vec<ScratchRedis>,
    _dir: tempfile::TempDir,
}

impl RedisCluster {
    /// Starts the nodes, joins them with `redis-cli --cluster create`, and waits until every
    /// slot is served.
    pub fn start(masters: usize, replicas: usize) -> RedisCluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let setup = RedisSetup {
            cluster: true,
            ..RedisSetup::default()
        };
        let nodes: Vec<ScratchRedis> = (0..masters * (1 + replicas))
            .map(|_| ScratchRedis::start(dir.path(), &setup))
            .collect();
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for node in &nodes {
            create.arg(format!("127.0.0.1:{}", node.port));
        }
        create
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdin(std::process::Stdio::null());
        let out = create.output().expect("redis-cli --cluster create");
        assert!(
            out.status.success(),
            "redis-cli --cluster create: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let cluster = RedisCluster { nodes, _dir: dir };
        cluster.wait_healthy(Duration::from_secs(30));
        cluster
    }

    /// `redis://` URLs of every node.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.url.clone()).collect()
    }

    /// The ports of the nodes that are masters now, as `port` answers `CLUSTER NODES`.
    pub fn master_ports(&self) -> Vec<u16> {
        let alive = self.nodes.iter().find(|n| cli(n.port, &["ping"]).is_some());
        let Some(alive) = alive else { return vec![] };
        let listing = cli(alive.port, &["cluster", "nodes"]).unwrap_or_default();
        listing
            .lines()
            .filter(|line| line.contains("master") && !line.contains("fail"))
            .filter_map(|line| {
                let addr = line.split_whitespace().nth(1)?;
                addr.split(['@', ':']).nth(1)?.parse().ok()
            })
            .collect()
    }

    /// Kills the node on `port` (SIGKILL).
    pub fn kill(&mut self, port: u16) {
        let node = self
            .nodes
            .iter_mut()
            .find(|n| n.port == port)
            .expect("a node of this cluster");
        node.process.kill();
    }

    /// Waits until every node that runs says `cluster_state:ok`.
    pub fn wait_healthy(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let states: Vec<String> = self
                .nodes
                .iter()
                .filter_map(|n| cli(n.port, &["cluster", "info"]))
                .map(|info| {
                    info.lines()
                        .find(|l| l.starts_with("cluster_state:"))
                        .unwrap_or("cluster_state:?")
                        .trim()
                        .to_string()
                })
                .collect();
            if !states.is_empty() && states.iter().all(|s| s == "cluster_state:ok") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the Redis cluster is not healthy after {timeout:?}: {states:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// `redis-cli -p port args…`'s output, or `None` when the node does not answer.
fn cli(port: u16, args: &[&str]) -> Option<String> {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    (out.status.success() && !text.contains("Could not connect")).then_some(text)
}
