//! adclick-query's tests: the escape catalogue of issue #21 at the expression level
//! (`escapes`), every query of the advertiser dashboard (`dashboard`), the policy's series
//! against the recording rules (`rules`), generated queries and nestings (`generated`), and the
//! HTTP gateway against the stack's Prometheus (`gateway`; needs `deploy/local/up`).

#![allow(clippy::unwrap_used)] // A test: a panic with the failed call is how it stops.

mod dashboard;
mod escapes;
mod gateway;
mod generated;
mod rules;
mod support;
