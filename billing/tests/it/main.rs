//! The billing store against a real PostgreSQL: the stack's server (a fresh database per test,
//! dropped after it) and, for the crash, a private cluster of the test's own that it SIGKILLs
//! mid-write. A test that cannot reach PostgreSQL fails; none is skipped.

#![allow(clippy::unwrap_used)] // A test: a panic with the failed call is how it stops.

mod crash;
mod days;
mod fixture;
mod migrations;
mod proxy;
mod tls;
