//! Integration tests: blocks written by this crate, read back by the real Prometheus 2.42 tools.
//!
//! - `support`: finding `promtool`/`prometheus` (a missing tool fails the test, never skips it),
//!   reading `promtool tsdb dump` output, building series.
//! - `promtool`: `tsdb analyze` accepts each block and `tsdb dump` lists exactly the samples
//!   written, for several shapes; chunks and series bytes equal promtool's own block.
//! - `prometheus`: a stock Prometheus started on a data dir holding a block answers PromQL
//!   over it exactly.

#![allow(clippy::unwrap_used)] // A test: a panic with the failed call is how it stops.

mod prometheus;
mod promtool;
mod support;
