//! The shipped dashboards and Prometheus rules, checked without the stack (`promtool` aside).
//!
//! - `dashboards`: valid dashboards, variables chaining advertiser → campaign → ad, queries that
//!   sum the `partition` label away, provisioning that points at them.
//! - `rules`: `promtool check rules` and `promtool test rules` pass, the unit tests cover every
//!   rule, every alert says what to do.
//! - `support`: reading the shipped files.
//!
//! Whether every query returns data from real traffic is a whole-system test:
//! `tests/it/grafana_stack.rs` at the root.

#![allow(clippy::unwrap_used)] // A test: a panic with the failed call is how it stops.

mod dashboards;
mod rules;
mod support;
