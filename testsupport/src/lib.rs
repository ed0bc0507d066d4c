//! How adclick's tests reach the local stack that `deploy/local/up` starts.
//!
//! | item | concept |
//! |---|---|
//! | [`Stack`] | the addresses and credentials in `.local/stack.env`; fails loudly when the stack is down |
//! | [`Stack::isolated`] | a [`TestScope`]: names no other test uses (topic, bucket prefix, Redis keys, label values) |
//! | [`PromApi`] | the PromQL HTTP API, for reading back what a test wrote |
//! | [`FaultProxy`] | a TCP proxy in front of a stack server that plays its death at a chosen moment |
//! | [`promtool`] | the Prometheus tools: `promtool tsdb dump` read back as samples |
//! | [`ScratchPrometheus`] | a throwaway Prometheus of the stack's binary with a config of the test's own |
//! | [`wait`] | waiting for a condition: fail when progress stops, not at a fixed time |
//!
//! Every test gets its own names, so tests never depend on each other's state and can run in
//! parallel against one stack.

mod fault;
mod prom;
pub mod promtool;
mod scratch;
mod stack;
pub mod wait;

pub use fault::FaultProxy;
pub use prom::{PromApi, PromError, Series};
pub use scratch::ScratchPrometheus;
pub use stack::{Stack, TestScope};

/// A free TCP port on 127.0.0.1 (for a server a test starts, e.g. an admin listener).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind 127.0.0.1:0")
        .local_addr()
        .expect("local address")
        .port()
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
