//! adclick-query's tests: the escape catalogue of issue #21 at the expression level
//! (`escapes`), every query of the advertiser dashboard (`dashboard`), the policy's series
//! against the recording rules (`rules`), and generated queries and nestings (`generated`).

#![allow(clippy::unwrap_used)] // A test: a panic with the failed call is how it stops.

mod dashboard;
mod escapes;
mod generated;
mod rules;
mod support;
