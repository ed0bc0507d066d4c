//! adclick rollup (`adclick rollup`): once a day, the raw click archive the exporter wrote is
//! settled exactly — every impression counted once, every ad on its own series, late and
//! fail-open clicks included — into one Prometheus TSDB block with Thanos metadata in the
//! bucket Thanos Store Gateway serves, and compared with what the stream path wrote.
//!
//! | module | concept |
//! |---|---|
//! | [`scan`] | finding, fetching and decoding the day's archive objects; overlaps; corrupt objects |
//! | [`settle`] | exact dedup by identity (impression, or impression and request reason), per-minute counts of valid clicks, their spend and distinct users per ad, and of invalid ones per campaign and reason: the billing truth |
//! | [`daily`] | the day's billing figures per ad, campaign and advertiser: valid clicks, spend, distinct users, invalid clicks |
//! | [`velocity`] | running counts of the day's clicks in fixed windows of receive time, per user and IP hash |
//! | [`verdicts`] | a click's recorded and settled verdicts, and where they differ |
//! | [`block`] | the settled day as series and samples of a TSDB block (stream contract, zeros) |
//! | [`billing`] | the settled day's rows for the billing store (PostgreSQL), written with the block |
//! | [`publish`] | upload in Thanos' order, removal of a failed upload, deletion marks on reruns |
//! | [`reconcile`] | the stream path's counts from Prometheus' API, compared per ad and campaign (clicks, spend) |
//! | [`report`] | the JSON report, the human summary, the metrics an alert reads |
//! | [`run`](mod@run) | one rollup from start to exit code: its steps in order |
//! | [`outcome`] | how a run ended and its exit code, decided from what the steps found |
//! | [`config`] | the `[rollup]` section |
//!
//! The day's boundaries follow the stream contract: a sample is stamped with the END of its
//! minute, and a block covers `[day 00:00, next day 00:00)`, so the block of day D holds the
//! minutes that end in D — 23:59 of D−1 through 23:58 of D (see [`adclick_click::day`] for why, and README for
//! the PromQL of a calendar day).

pub mod billing;
pub mod block;
pub mod config;
pub mod daily;
pub mod outcome;
pub mod publish;
pub mod reconcile;
pub mod report;
pub mod run;
pub mod scan;
pub mod settle;
pub mod velocity;
pub mod verdicts;

pub use adclick_click::Day;
pub use config::RollupConfig;
pub use outcome::Outcome;
pub use run::{Deps, RollupError, RunOptions, run};
