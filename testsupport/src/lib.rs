//! How adclick's tests reach the local stack that `deploy/local/up` starts.
//!
//! | item | concept |
//! |---|---|
//! | [`Stack`] | the addresses and credentials in `.local/stack.env`; fails loudly when the stack is down |
//! | [`Stack::isolated`] | a [`TestScope`]: names no other test uses (topic, bucket prefix, Redis keys, label values) |
//! | [`PromApi`] | the PromQL HTTP API, for reading back what a test wrote |
//! | [`FaultProxy`] | a TCP proxy in front of a stack server that plays its death at a chosen moment, or its slowness |
//! | [`promtool`] | the Prometheus tools: where `promtool` is, `promtool tsdb dump` read back as samples |
//! | [`ScratchPrometheus`] | a throwaway Prometheus of the stack's binary with a config of the test's own |
//! | [`wait`] | waiting for a condition: fail when progress stops, not at a fixed time |
//! | [`traffic`] | what tests send: the token key, loadgen plans, a backfilled topic and its truth |
//! | [`TestDatabase`], [`ScratchPostgres`] | a fresh database of the test's own on the stack's PostgreSQL; a private cluster a test kills |
//! | [`TestPki`] | a CA, server and client certificates, and a wrong CA, as PEM files |
//! | [`ScratchProcess`] | a server process of the test's own, logging to a file, killed when dropped |
//! | [`Stoppable`] | a service run as a task of the test's process, stopped gracefully or crashed |
//! | [`logs`] | the services' logs on the test's output when `RUST_LOG` asks for them |
//! | [`ScratchRedis`], [`RedisCluster`] | Debian's redis-server over TLS with an ACL user; a cluster whose masters a test kills |
//! | [`ScratchTansu`] | a private tansu broker requiring SASL/SCRAM, advertising a TLS terminator |
//! | [`TlsTerminator`] | TLS in front of a plain server, with the test PKI's certificate |
//! | [`free_port`], [`copy_dir`], [`Rng`] | a port for a test's server (or one nothing answers on), a folder copied, reproducible numbers |
//!
//! Every test gets its own names, so tests never depend on each other's state and can run in
//! parallel against one stack.

// Test support: a panic with the failed call is how a test fails (the workspace denies unwrap
// in production code only).
#![allow(clippy::unwrap_used)]

mod fault;
mod pki;
mod postgres;
mod process;
mod prom;
pub mod promtool;
mod redis;
mod scratch;
mod stack;
mod tansu;
mod task;
mod tls_terminator;
pub mod traffic;
pub mod wait;

pub use fault::FaultProxy;
pub use pki::TestPki;
pub use postgres::{ScratchPostgres, TestDatabase, postgres_admin_url, postgres_bindir, psql};
pub use process::ScratchProcess;
pub use prom::{PromApi, PromError, Series};
pub use redis::{RedisCluster, RedisSetup, ScratchRedis};
pub use scratch::ScratchPrometheus;
pub use stack::{Stack, TestScope, workspace_root};
pub use tansu::{ScratchTansu, TansuSetup};
pub use task::{StopSignal, Stoppable};
pub use tls_terminator::TlsTerminator;

/// The logs of what a test runs in its own process on the test's output, when `RUST_LOG` asks
/// for them (e.g. `RUST_LOG=adclick_exporter=info`); once per test process.
pub fn logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// A free TCP port on 127.0.0.1: for a server a test starts (e.g. an admin listener), or, with
/// nothing started on it, an address that refuses connections (a Redis or broker that is down).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind 127.0.0.1:0")
        .local_addr()
        .expect("local address")
        .port()
}

/// Copies what is under `from` into `to` (made when missing), folders and files, recursively:
/// e.g. blocks a test downloaded into a scratch Prometheus's data directory.
pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A small deterministic generator (splitmix64), so a test's random data reproduces.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `low..high`.
    pub fn range(&mut self, low: i64, high: i64) -> i64 {
        low + (self.next_u64() % (high - low) as u64) as i64
    }
}
