//! The rules' configuration ([`Config`], a TOML table with serde defaults) and its compiled form
//! ([`Rules`]), which [`crate::classify()`] reads.
//!
//! # Configuration
//!
//! ```toml
//! missing_user_agent_is_bot = true      # no User-Agent: an unknown browser (MRC: invalid)
//! bot_user_agents = ["AcmeScanner"]     # more bots: substrings, ASCII case-insensitive
//! bot_user_agent_patterns = ["^curl/"]  # more bots: regular expressions, case-insensitive
//! not_bot_user_agent_patterns = []      # exemptions from isbot's list (not from the two above)
//! deny_list_file = "/etc/adclick/deny.cidr"   # CIDR file (deny.rs); absent: no deny list
//! too_fast_ms = 1000                    # sooner after the token's issue: too_fast (0: off)
//! user_clicks_per_minute = 100          # more per user hash: user_velocity (0: off)
//! user_clicks_per_second = 0
//! ip_clicks_per_second = 10             # more per IP key: ip_velocity (0: off)
//! ip_clicks_per_minute = 0
//! ```
//!
//! # Defaults, and why
//!
//! - **Velocity: 100 clicks a minute per user, 10 a second per IP** — seed 003's thresholds
//!   ("> 100 clicks/min = suspicious", "> 10 clicks/sec"). The minute limit goes on the user hash,
//!   which names one person or device; the second limit on the IP, which may be a carrier's NAT
//!   or an office shared by many people, so only a burst no group of people produces is counted
//!   against it. The other two windows are off, and a caller counts only the windows that are on
//!   ([`Rules::velocity_windows`]).
//! - **`too_fast_ms` = 1000.** The token is issued when the ad is served; before a person can
//!   click it, the ad has to reach the browser and render, and the person has to see it and move
//!   to it: a visual reaction alone takes about 200–250 ms and aiming at a target hundreds more,
//!   on top of the delivery. Under a second from serving to click is a script that fetched the ad
//!   and followed its link. The token's issue time is whole seconds (rounded down), so the elapsed
//!   time computed is at least the real one: a click flagged was really faster than the limit,
//!   while one up to a second faster can pass. The rule trusts the placement side's clock and
//!   ingest's to agree (NTP): a signer running ahead by `d` makes clicks within `d` of serving
//!   look too fast, which shows as a jump of `too_fast` on the dashboard.
//! - **`missing_user_agent_is_bot` = true**: see `user_agent.rs`.

use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;
use thiserror::Error;

use crate::deny::{DenyList, DenyListError};
use crate::facts::VelocityWindows;
use crate::user_agent::BotMatcher;

/// The `[… invalid]` table (module doc). Unknown keys are refused: a misspelt limit must not
/// silently leave the default in force.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub missing_user_agent_is_bot: bool,
    pub bot_user_agents: Vec<String>,
    pub bot_user_agent_patterns: Vec<String>,
    pub not_bot_user_agent_patterns: Vec<String>,
    pub deny_list_file: Option<PathBuf>,
    pub too_fast_ms: u64,
    pub user_clicks_per_minute: u64,
    pub user_clicks_per_second: u64,
    pub ip_clicks_per_second: u64,
    pub ip_clicks_per_minute: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            missing_user_agent_is_bot: true,
            bot_user_agents: Vec::new(),
            bot_user_agent_patterns: Vec::new(),
            not_bot_user_agent_patterns: Vec::new(),
            deny_list_file: None,
            too_fast_ms: DEFAULT_TOO_FAST_MS,
            user_clicks_per_minute: DEFAULT_USER_CLICKS_PER_MINUTE,
            user_clicks_per_second: 0,
            ip_clicks_per_second: DEFAULT_IP_CLICKS_PER_SECOND,
            ip_clicks_per_minute: 0,
        }
    }
}

/// Default of `too_fast_ms` (module doc: why).
pub const DEFAULT_TOO_FAST_MS: u64 = 1000;
/// Default of `user_clicks_per_minute`: seed 003's "> 100 clicks/min".
pub const DEFAULT_USER_CLICKS_PER_MINUTE: u64 = 100;
/// Default of `ip_clicks_per_second`: seed 003's "> 10 clicks/sec".
pub const DEFAULT_IP_CLICKS_PER_SECOND: u64 = 10;

/// Why a configuration cannot become [`Rules`].
#[derive(Debug, Error)]
pub enum RulesError {
    #[error("{field}: `{pattern}` is not a valid regular expression: {source}")]
    Pattern {
        field: &'static str,
        pattern: String,
        source: regex::Error,
    },
    #[error("bot_user_agents: an empty substring would match every user agent")]
    EmptySubstring,
    #[error(transparent)]
    DenyList(#[from] DenyListError),
}

/// Limits of the velocity rules; 0 is off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    pub too_fast_ms: u64,
    pub user_per_second: u64,
    pub user_per_minute: u64,
    pub ip_per_second: u64,
    pub ip_per_minute: u64,
}

/// The compiled rules. Cheap to clone (the compiled parts are shared), `Send` and `Sync`: one per
/// process, swapped whole when the deny list is reloaded ([`Rules::with_deny_list`]).
#[derive(Debug, Clone)]
pub struct Rules {
    bots: Arc<BotMatcher>,
    deny_list: Arc<DenyList>,
    pub(crate) limits: Limits,
}

impl Rules {
    /// Compiles `config` with this deny list (`config.deny_list_file` is not read: the caller
    /// loaded `deny_list`, or wants none).
    pub fn new(config: &Config, deny_list: DenyList) -> Result<Self, RulesError> {
        Ok(Rules {
            bots: Arc::new(BotMatcher::new(
                &config.bot_user_agents,
                &config.bot_user_agent_patterns,
                &config.not_bot_user_agent_patterns,
                config.missing_user_agent_is_bot,
            )?),
            deny_list: Arc::new(deny_list),
            limits: Limits {
                too_fast_ms: config.too_fast_ms,
                user_per_second: config.user_clicks_per_second,
                user_per_minute: config.user_clicks_per_minute,
                ip_per_second: config.ip_clicks_per_second,
                ip_per_minute: config.ip_clicks_per_minute,
            },
        })
    }

    /// Compiles `config`, reading `deny_list_file` if set.
    pub fn from_config(config: &Config) -> Result<Self, RulesError> {
        let deny_list = match &config.deny_list_file {
            Some(path) => DenyList::load(path)?,
            None => DenyList::empty(),
        };
        Rules::new(config, deny_list)
    }

    /// The same rules with another deny list (a reload of the file), sharing the compiled
    /// user-agent patterns.
    pub fn with_deny_list(&self, deny_list: DenyList) -> Self {
        Rules {
            deny_list: Arc::new(deny_list),
            ..self.clone()
        }
    }

    pub fn deny_list(&self) -> &DenyList {
        &self.deny_list
    }

    /// Whether this user agent is a bot by these rules (`user_agent.rs`).
    pub fn is_bot(&self, user_agent: Option<&str>) -> bool {
        self.bots.is_bot(user_agent)
    }

    /// The velocity windows whose limits are on: what a caller has to count.
    pub fn velocity_windows(&self) -> VelocityWindows {
        VelocityWindows {
            user_second: self.limits.user_per_second > 0,
            user_minute: self.limits.user_per_minute > 0,
            ip_second: self.limits.ip_per_second > 0,
            ip_minute: self.limits.ip_per_minute > 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_seed_003s() {
        let config: Config = toml::from_str("").unwrap();
        assert_eq!(config, Config::default());
        assert_eq!(config.too_fast_ms, 1000);
        assert_eq!(config.user_clicks_per_minute, 100);
        assert_eq!(config.ip_clicks_per_second, 10);
        assert!(config.missing_user_agent_is_bot);
        let rules = Rules::from_config(&config).unwrap();
        assert_eq!(
            rules.velocity_windows(),
            VelocityWindows {
                user_second: false,
                user_minute: true,
                ip_second: true,
                ip_minute: false,
            }
        );
        assert!(rules.deny_list().is_empty());
    }

    #[test]
    fn every_key_reads_and_unknown_keys_are_refused() {
        let config: Config = toml::from_str(
            r#"
            missing_user_agent_is_bot = false
            bot_user_agents = ["AcmeScanner"]
            bot_user_agent_patterns = ["^curl/"]
            not_bot_user_agent_patterns = ["^AcmeApp/"]
            deny_list_file = "/etc/adclick/deny.cidr"
            too_fast_ms = 0
            user_clicks_per_minute = 0
            user_clicks_per_second = 5
            ip_clicks_per_second = 0
            ip_clicks_per_minute = 600
            "#,
        )
        .unwrap();
        assert_eq!(config.deny_list_file, Some("/etc/adclick/deny.cidr".into()));
        let rules = Rules::new(&config, DenyList::empty()).unwrap();
        assert_eq!(
            rules.velocity_windows(),
            VelocityWindows {
                user_second: true,
                user_minute: false,
                ip_second: false,
                ip_minute: true,
            }
        );
        let error = toml::from_str::<Config>("ip_clicks_per_sec = 5").unwrap_err();
        assert!(
            error
                .to_string()
                .contains("unknown field `ip_clicks_per_sec`"),
            "{error}"
        );
    }

    #[test]
    fn the_deny_list_file_is_read_and_its_errors_say_where() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deny.cidr");
        std::fs::write(&path, "192.0.2.0/24\nnot-a-range\n").unwrap();
        let config = Config {
            deny_list_file: Some(path.clone()),
            ..Config::default()
        };
        let error = Rules::from_config(&config).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "deny list {}, line 2: `not-a-range` is not a CIDR range or an IP address",
                path.display()
            )
        );
        std::fs::write(&path, "192.0.2.0/24\n").unwrap();
        let rules = Rules::from_config(&config).unwrap();
        assert_eq!(rules.deny_list().entries(), 1);
        let reloaded = rules.with_deny_list(DenyList::empty());
        assert!(reloaded.deny_list().is_empty());
        assert_eq!(rules.deny_list().entries(), 1);
    }

    #[test]
    fn rules_are_shareable_between_threads_and_print_short() {
        fn send_sync<T: Send + Sync + Clone>() {}
        send_sync::<Rules>();
        let config = Config {
            bot_user_agents: vec!["Acme.Scanner".into()],
            ..Config::default()
        };
        let deny = DenyList::parse("10.0.0.0/8\n2001:db8::/32\n", "t".as_ref()).unwrap();
        let debug = format!("{:?}", Rules::new(&config, deny).unwrap());
        assert!(
            debug.contains(r#"operator: Some("(?:Acme\\.Scanner)")"#),
            "{debug}"
        );
        assert!(
            debug.contains("entries: 2, v4_intervals: 1, v6_intervals: 1"),
            "{debug}"
        );
        // Not isbot's 348 patterns.
        assert!(debug.len() < 400, "{debug}");
    }
}
