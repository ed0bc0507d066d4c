//! adclick-query's tests: the escape catalogue of issue #21 at the expression level
//! (`escapes`), every query of the advertiser dashboard (`dashboard`), the policy's series
//! against the recording rules (`rules`), generated queries and nestings (`generated`); the
//! HTTP gateway against the stack's Prometheus (`gateway`), the escape catalogue at the HTTP
//! level against the real service (`http_escapes`), and the history route against stock
//! Prometheus processes serving rollup and stream blocks (`history`), all three needing
//! `deploy/local/up`.

#![allow(clippy::unwrap_used)] // A test: a panic with the failed call is how it stops.

mod dashboard;
mod escapes;
mod gateway;
mod generated;
mod history;
mod http_escapes;
mod rules;
mod support;
