//! How adclick's tests reach the local stack that `deploy/local/up` starts.
//!
//! | item | concept |
//! |---|---|
//! | [`Stack`] | the addresses and credentials in `.local/stack.env`; fails loudly when the stack is down |
//! | [`Stack::isolated`] | a [`TestScope`]: names no other test uses (topic, bucket prefix, Redis keys, label values) |
//! | [`PromApi`] | the PromQL HTTP API, for reading back what a test wrote |
//! | [`ScratchPrometheus`] | a throwaway Prometheus of the stack's binary with a config of the test's own |
//!
//! Every test gets its own names, so tests never depend on each other's state and can run in
//! parallel against one stack.

mod prom;
mod scratch;
mod stack;

pub use prom::{PromApi, PromError, Series};
pub use scratch::ScratchPrometheus;
pub use stack::{Stack, TestScope};
