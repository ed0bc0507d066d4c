//! Whole-system tests: adclick's services together against the local stack, each for a minute or
//! more (`.config/nextest.toml` starts them first, at most two driving traffic at once).
//!
//! - `exporter_process`: `adclick export` and `adclick ingest` as processes, SIGKILLed and
//!   restarted, a third-party producer, Redis failing open: every minute exact.
//! - `secure_kafka`: ingest and the exporter reaching Kafka over TLS and SASL/SCRAM.
//! - `exporter_rollup`: the exporter's archive settled by the rollup into exact blocks.
//! - `grafana_stack`: every query of the dashboards returns data from real traffic through
//!   ingest, the exporter and the recording rules; then `through_gateway`: the advertiser
//!   dashboard through the query gateway answers as Prometheus does for that advertiser only.
//! - `invalid_traffic`: bots, prefetches, a deny-listed network, too-fast clicks and floods
//!   through ingest while Redis is down for part of the run: live exact where the truth is known,
//!   the rollup equal to a settlement of the archive by hand, the failed-open verdicts reported.
//! - `support`: the processes and an in-process exporter, and waiting for exact counts.

#![allow(clippy::unwrap_used)] // A test: a panic with the failed call is how it stops.

mod billing;
mod exporter_process;
mod exporter_rollup;
mod grafana_stack;
mod invalid_traffic;
mod secure_kafka;
mod support;
mod through_gateway;
