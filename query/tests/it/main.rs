//! adclick-query's tests: the escape catalogue of issue #21 at the expression level
//! (`escapes`), every query of the advertiser dashboard (`dashboard`), the policy's series
//! against the recording rules (`rules`), generated queries and nestings (`generated`), and the
//! HTTP gateway against the stack's Prometheus (`gateway`; needs `deploy/local/up`), and the
//! escape catalogue at the HTTP level, against the real service (`http_escapes`; needs the stack
//! too).

#![allow(clippy::unwrap_used)] // A test: a panic with the failed call is how it stops.

mod dashboard;
mod escapes;
mod gateway;
mod generated;
mod http_escapes;
mod rules;
mod support;
