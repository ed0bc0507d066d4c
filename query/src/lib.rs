//! The query gateway's core (issue #21): an advertiser's PromQL, parsed and rewritten so that it
//! reads only that advertiser's clicks — or refused, naming why. Pure: text in, text out, no HTTP,
//! no I/O; the `adclick query` service, its authentication, REST and limits are built on top.
//!
//! | module | concept | items |
//! |---|---|---|
//! | `policy` | what an advertiser may reach: the series names (adclick's click series and the recording rules that keep `advertiser_id`), the label that is enforced, the size and nesting bounds | [`Policy`], [`Limits`], [`PolicyError`], [`ADVERTISER_LABEL`], [`RAW_SERIES`], [`RECORDED_SERIES`] |
//! | `refusal` | why a query is not forwarded, one variant per reason, each with the HTTP status a gateway answers | [`Refusal`] |
//! | `bounds` | the checks made on the raw text before parsing: its length, and its nesting (brackets plus operators), so the parser never sees input deep enough to exhaust the stack | (crate-internal) |
//! | `parse` | promql-parser behind a guard: its panics (a duration such as `[1e30]`) become a refusal | (crate-internal) |
//! | `rewrite` | the walk over every node of the AST, aggregation parameters included, that refuses what cannot be enforced and puts `advertiser_id="<id>"` on every vector and matrix selector | (crate-internal) |
//! | `verify` | defence in depth: the rewritten query printed, parsed again and checked selector by selector | (crate-internal) |
//! | `enforce` | the entry points: a query (`/api/v1/query`, `query_range`), a series selector (`match[]` of `series`, `labels`, `label/<name>/values`), and the caller's own series when no `match[]` is given | [`enforce`], [`enforce_match`], [`own_series`] |
//!
//! ```
//! use adclick_query::{Policy, Refusal, enforce};
//!
//! let policy = Policy::default();
//! let q = enforce("sum by (ad_id) (sum_over_time(adclick_clicks[1h]))", 42, &policy).unwrap();
//! assert_eq!(q, r#"sum by (ad_id) (sum_over_time(adclick_clicks{advertiser_id="42"}[1h]))"#);
//!
//! let err = enforce(r#"adclick_clicks{advertiser_id=~".+"}"#, 42, &policy).unwrap_err();
//! assert!(matches!(err, Refusal::AdvertiserMatcher { .. }));
//! assert_eq!(err.status(), 403);
//! ```
//!
//! Two gaps of promql-parser 0.11 shape the design (read from its source): its walkers
//! (`util::visitor::walk_expr{,_mut}`) never visit an aggregation's parameter, so `rewrite` walks
//! the AST itself, matching every `Expr` variant (a new variant fails to compile); and it accepts
//! `{a="1" or b="2"}` (not Prometheus 2.x syntax) but prints only the `or` groups, so an injected
//! matcher would vanish — such selectors are refused.

mod bounds;
mod enforce;
mod parse;
mod policy;
mod refusal;
mod rewrite;
mod verify;

pub use enforce::{enforce, enforce_match, own_series};
pub use policy::{ADVERTISER_LABEL, Limits, Policy, PolicyError, RAW_SERIES, RECORDED_SERIES};
pub use refusal::Refusal;
