//! Invalid traffic: the one classifier that ingest runs on each click and the rollup runs again
//! on the settled day, so that a bot, a prefetch, a deny-listed network or a click flood is never
//! billed, and live and settled counts agree on why.
//!
//! | module | concept |
//! |---|---|
//! | [`reason`] | the reasons (stable names and codes: a metric label, a config key, a click.proto enum), the verdict, and which reason wins when several match |
//! | [`facts`] | what a click is judged on: the request's headers and client IP, the token's issue time, receive time, velocity counts; what counts towards velocity, in which window |
//! | [`classify`](mod@classify) | the rules applied: [`classify()`] (ingest), [`classify_request`] before Redis and [`classify_activity`] after, [`settle`] (the rollup) |
//! | [`rules`] | the configuration with its defaults (seed 003's thresholds) and its compiled form |
//! | [`user_agent`] | `bot_user_agent`: isbot's list, operator patterns and exemptions, a missing user agent |
//! | [`deny`] | `deny_listed_network`: the CIDR file, IPv4, IPv6 and IPv4-mapped lookup |
//! | [`client_ip`](mod@client_ip) | the client's address through trusted proxies only (`X-Forwarded-For` or `Forwarded`), and the IP key velocity counts by |
//!
//! The classifier itself does no I/O and keeps no state: the caller brings the facts, counts
//! velocity (Redis at ingest, the day's archive in the rollup) and resolves the client IP
//! ([`client_ip()`]); [`classify()`] compares. Only loading a deny-list file reads anything.
//!
//! ```
//! use adclick_invalid::{ActivityFacts, Config, Facts, Reason, RequestFacts, Rules, Velocity, Verdict, classify};
//!
//! let rules = Rules::from_config(&Config::default()).unwrap();
//! let chrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
//! let mut facts = Facts {
//!     request: RequestFacts::get(Some(chrome), "198.51.100.7".parse().unwrap()),
//!     activity: ActivityFacts {
//!         token_issued_at_secs: 1_790_000_000,
//!         received_at_ms: 1_790_000_004_000, // 4 s after the ad was served
//!         velocity: Velocity { user_clicks_in_minute: Some(3), ip_clicks_in_second: Some(1), ..Velocity::default() },
//!     },
//! };
//! assert_eq!(classify(&facts, &rules), Verdict::Valid);
//!
//! facts.request.sec_purpose = Some("prefetch");
//! assert_eq!(classify(&facts, &rules), Verdict::Invalid(Reason::Prefetch));
//! ```

pub mod classify;
pub mod client_ip;
pub mod deny;
pub mod facts;
pub mod reason;
pub mod rules;
pub mod user_agent;

pub use classify::{classify, classify_activity, classify_request, settle};
pub use client_ip::{ProxyHeader, client_ip, ip_key};
pub use deny::{DenyList, DenyListError};
pub use facts::{ActivityFacts, Facts, RequestFacts, Velocity, VelocityWindows, windows_of};
pub use ipnet::IpNet;
pub use reason::{Reason, UnknownReason, Verdict};
pub use rules::{Config, Rules, RulesError};
