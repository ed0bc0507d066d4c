//! adclick's load generator: realistic click traffic whose exact outcome is known in advance,
//! sent over HTTP to ingest or straight into Kafka, with a ground-truth file every other
//! component is judged against.
//!
//! | module | concept |
//! |---|---|
//! | [`population`] | advertisers → campaigns → ads; Zipf skew and hot ads |
//! | [`shape`] | steady, ramp and burst rates, and the schedule of send instants |
//! | [`plan`] | every send decided by the seed: duplicates, lateness, forged and expired tokens |
//! | [`users`] | who clicks and what a click costs: signed into version 2 tokens, off by default |
//! | [`client`] | who sends over HTTP: a real browser's `User-Agent` and an `X-Forwarded-For` address, so honest traffic stays valid |
//! | [`invalid`] | invalid traffic on purpose (`--invalid-share`): bots, prefetches, deny-listed networks, too-fast clicks |
//! | [`floods`] | click floods over the user and IP velocity limits, to ads of their own |
//! | [`tokens`] | genuine and forged impression tokens for the HTTP target |
//! | [`http`] | the HTTP target (ingest's `/click/{token}`) |
//! | [`kafka`] | the Kafka target (click.proto records) |
//! | [`truth`] | the ground truth: unique valid clicks per ad per minute, invalid ones per campaign and reason, flood totals, with users or prices spend and unique users ([`truth::money`]); its files and summary |
//! | [`partition`] | the clicks topic's partition of a click: Kafka's murmur2 of its key, hot ads salted |
//! | [`check`] | a run's truth against Prometheus, per minute and campaign, late clicks apart, invalid clicks per reason, spend and unique users ([`check::money`]) |
//! | [`run`] | pacing, in-flight bound, progress and the error bound |
//! | [`latency`] | latency and start-lag percentiles of a run, in bounded memory |

pub mod check;
pub mod client;
pub mod floods;
pub mod http;
pub mod invalid;
pub mod kafka;
pub mod latency;
pub mod partition;
pub mod plan;
pub mod population;
pub mod run;
pub mod shape;
pub mod tokens;
pub mod truth;
pub mod users;

pub use partition::Partitioning;
pub use plan::{Plan, PlanConfig, Send, SendKind};
pub use run::{RunError, RunOptions, Target, run};
pub use truth::money::Money;
pub use truth::{
    GroundTruth, InvalidKey, Outcome, Summary, TruthKey, count_clicks, read_invalid, read_summary,
    read_truth,
};
