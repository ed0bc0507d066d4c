//! `bot_user_agent`: isbot's list of bot user agents, the operator's own patterns on top, and the
//! operator's exemptions from isbot's list.
//!
//! A user agent is a bot when
//!
//! 1. it is missing, empty or only spaces, and `missing_user_agent_is_bot` is on (the default:
//!    the MRC's invalid-traffic guidelines list "non-browser user-agent headers or other forms of
//!    unknown browsers" as general invalid traffic, and every browser sends one); or
//! 2. one of the operator's `bot_user_agents` (substrings) or `bot_user_agent_patterns` (regular
//!    expressions) matches; or
//! 3. isbot's list matches and none of the operator's `not_bot_user_agent_patterns` does (for a
//!    false positive of the list, e.g. an in-house app whose HTTP client isbot names).
//!
//! Every comparison is ASCII case-insensitive. Operator patterns are Rust `regex` syntax, matched
//! anywhere in the user agent unless anchored (`^curl/`), linear-time whatever the input.
//!
//! isbot (0.1.3, MIT) is the list the issue names, built to flag no real browser: a false positive
//! here is a real person's click unbilled. Its last release is from June 2022, so crawlers newer
//! than its patterns need operator patterns until a maintained successor replaces it: most call
//! themselves `…Bot` or carry a URL and are caught (GPTBot, ClaudeBot, PerplexityBot, Bytespider,
//! meta-externalagent are), but not all (`anthropic-ai` is not). Native HTTP clients of apps
//! (`Dalvik/…`, `CFNetwork/…`) are not bots to it; generic libraries (`okhttp`, `curl`,
//! `python-requests`, `Go-http-client`) are. Its `is_bot` lower-cases the user agent into a new
//! `String`.
//!
//! A user agent's verdict is kept per thread (`verdicts`): a repeat of a user agent, which most
//! clicks are, is neither copied nor matched again.

mod verdicts;

use std::fmt;

use regex::{Regex, RegexBuilder};

use crate::rules::RulesError;

/// The compiled user-agent rules.
pub struct BotMatcher {
    isbot: isbot::Bots,
    /// The operator's substrings and patterns, as one case-insensitive alternation.
    operator: Option<Regex>,
    /// Exemptions from isbot's list.
    exempt: Option<Regex>,
    missing_is_bot: bool,
    /// This matcher's verdicts' key in each thread's table (`verdicts`).
    id: u64,
}

impl BotMatcher {
    pub fn new(
        substrings: &[String],
        patterns: &[String],
        exemptions: &[String],
        missing_is_bot: bool,
    ) -> Result<Self, RulesError> {
        let escaped: Vec<String> = substrings.iter().map(|s| regex::escape(s)).collect();
        for (field, list) in [
            ("bot_user_agent_patterns", patterns),
            ("not_bot_user_agent_patterns", exemptions),
        ] {
            for pattern in list {
                compile(std::slice::from_ref(pattern)).map_err(|source| RulesError::Pattern {
                    field,
                    pattern: pattern.clone(),
                    source,
                })?;
            }
        }
        for substring in substrings {
            if substring.trim().is_empty() {
                // An empty substring matches every user agent: every click would be a bot.
                return Err(RulesError::EmptySubstring);
            }
        }
        let operator: Vec<String> = escaped
            .into_iter()
            .chain(patterns.iter().cloned())
            .collect();
        // Each pattern compiled alone above; together they can still exceed the size limit.
        let combined = |field: &'static str, list: &[String]| {
            compile(list).map_err(|source| RulesError::Pattern {
                field,
                pattern: format!("({} patterns together)", list.len()),
                source,
            })
        };
        Ok(BotMatcher {
            isbot: isbot::Bots::default(),
            operator: combined("bot_user_agent_patterns", &operator)?,
            exempt: combined("not_bot_user_agent_patterns", exemptions)?,
            missing_is_bot,
            id: verdicts::next_matcher_id(),
        })
    }

    /// Whether this user agent is a bot (module doc).
    pub fn is_bot(&self, user_agent: Option<&str>) -> bool {
        let Some(user_agent) = user_agent.filter(|ua| !ua.trim().is_empty()) else {
            return self.missing_is_bot;
        };
        verdicts::verdict(self.id, user_agent, |user_agent| self.decide(user_agent))
    }

    /// The patterns' verdict on a present user agent.
    fn decide(&self, user_agent: &str) -> bool {
        if self
            .operator
            .as_ref()
            .is_some_and(|re| re.is_match(user_agent))
        {
            return true;
        }
        self.isbot.is_bot(user_agent)
            && !self
                .exempt
                .as_ref()
                .is_some_and(|re| re.is_match(user_agent))
    }
}

/// Without isbot's 348 patterns, which would fill any log line that prints the rules.
impl fmt::Debug for BotMatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BotMatcher")
            .field("isbot", &"default list")
            .field("operator", &self.operator.as_ref().map(Regex::as_str))
            .field("exempt", &self.exempt.as_ref().map(Regex::as_str))
            .field("missing_is_bot", &self.missing_is_bot)
            .finish()
    }
}

/// One case-insensitive regex matching any of `patterns`; `None` for none.
fn compile(patterns: &[String]) -> Result<Option<Regex>, regex::Error> {
    if patterns.is_empty() {
        return Ok(None);
    }
    // Each in its own group, so one pattern's `|` stays inside it.
    let alternation: Vec<String> = patterns.iter().map(|p| format!("(?:{p})")).collect();
    RegexBuilder::new(&alternation.join("|"))
        .case_insensitive(true)
        .build()
        .map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
    const SAFARI_IOS: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1";
    const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";
    const SAMSUNG: &str = "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36";
    const FACEBOOK_IN_APP: &str = "Mozilla/5.0 (Linux; Android 14; Pixel 8 Build/AP2A.240805.005; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/128.0.6613.127 Mobile Safari/537.36 [FB_IAB/FB4A;FBAV/481.0.0.50.71;]";

    fn matcher() -> BotMatcher {
        BotMatcher::new(&[], &[], &[], true).unwrap()
    }

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn browsers_are_not_bots() {
        let m = matcher();
        for ua in [CHROME, SAFARI_IOS, FIREFOX, SAMSUNG, FACEBOOK_IN_APP] {
            assert!(!m.is_bot(Some(ua)), "{ua}");
        }
    }

    #[test]
    fn crawlers_previewers_and_http_libraries_are_bots() {
        let m = matcher();
        for ua in [
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
            "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
            "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
            "Twitterbot/1.0",
            "TelegramBot (like TwitterBot)",
            "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)",
            "WhatsApp/2.23.20.0 A",
            "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36",
            "curl/8.5.0",
            "python-requests/2.32.3",
            "Go-http-client/1.1",
            "okhttp/4.12.0",
            "Wget/1.21.4",
        ] {
            assert!(m.is_bot(Some(ua)), "{ua}");
        }
    }

    #[test]
    fn a_missing_user_agent_is_a_bot_unless_configured_otherwise() {
        let m = matcher();
        assert!(m.is_bot(None));
        assert!(m.is_bot(Some("")));
        assert!(m.is_bot(Some("   ")));
        let lenient = BotMatcher::new(&[], &[], &[], false).unwrap();
        assert!(!lenient.is_bot(None));
        assert!(!lenient.is_bot(Some(" ")));
        assert!(lenient.is_bot(Some("curl/8.5.0")));
    }

    #[test]
    fn operator_substrings_and_patterns_add_bots_case_insensitively() {
        let m = BotMatcher::new(
            &strings(&["AcmeScanner", "a.b (x)"]),
            &strings(&["^internal-probe/\\d+", "Chrome/1[0-9]\\."]),
            &[],
            true,
        )
        .unwrap();
        assert!(m.is_bot(Some("Mozilla/5.0 (acmescanner 2.0)")));
        // A substring is literal: `.` and `(` are not regex syntax.
        assert!(m.is_bot(Some("x A.B (X) y")));
        assert!(!m.is_bot(Some("x aXb (x) y")));
        assert!(m.is_bot(Some("Internal-Probe/7")));
        assert!(!m.is_bot(Some("x internal-probe/7")));
        assert!(m.is_bot(Some("Mozilla/5.0 Chrome/12.0 Safari")));
        assert!(!m.is_bot(Some(CHROME)));
    }

    #[test]
    fn exemptions_lift_isbot_matches_but_not_operator_ones() {
        let m = BotMatcher::new(
            &strings(&["okhttp/3."]),
            &[],
            &strings(&["^AcmeShopApp/.* okhttp/"]),
            true,
        )
        .unwrap();
        assert!(!m.is_bot(Some("AcmeShopApp/5.1 (Android 14) okhttp/4.12.0")));
        assert!(m.is_bot(Some("okhttp/4.12.0")));
        // The operator's own bot pattern wins over its exemption.
        assert!(m.is_bot(Some("AcmeShopApp/5.1 (Android 14) okhttp/3.14")));
        // An exemption does not make a missing user agent valid.
        assert!(m.is_bot(None));
    }

    /// Verdicts are kept per thread and per matcher (`verdicts`): two rule sets on one thread,
    /// asked in turns, never answer with each other's verdict (each turn starts the thread's
    /// table afresh, so this holds the separation, not the keeping, which `verdicts` tests).
    #[test]
    fn a_kept_verdict_answers_only_for_its_own_rules() {
        let plain = matcher();
        let strict = BotMatcher::new(&[], &strings(&["Chrome/131\\."]), &[], true).unwrap();
        for _ in 0..3 {
            assert!(!plain.is_bot(Some(CHROME)));
            assert!(strict.is_bot(Some(CHROME)));
            assert!(plain.is_bot(Some("curl/8.5.0")));
            assert!(strict.is_bot(Some("curl/8.5.0")));
        }
    }

    #[test]
    fn bad_patterns_are_refused_by_name() {
        let error = BotMatcher::new(&[], &strings(&["ok", "(unclosed"]), &[], true).unwrap_err();
        assert!(
            matches!(&error, RulesError::Pattern { field: "bot_user_agent_patterns", pattern, .. } if pattern == "(unclosed"),
            "{error}"
        );
        let error = BotMatcher::new(&[], &[], &strings(&["[z-a]"]), true).unwrap_err();
        assert!(matches!(
            error,
            RulesError::Pattern {
                field: "not_bot_user_agent_patterns",
                ..
            }
        ));
        // An alternation inside one pattern stays inside it.
        let m = BotMatcher::new(&[], &strings(&["^a|^b", "zz$"]), &[], true).unwrap();
        assert!(m.is_bot(Some("b...")));
        assert!(!m.is_bot(Some("xb")));
        assert!(matches!(
            BotMatcher::new(&strings(&[" "]), &[], &[], true),
            Err(RulesError::EmptySubstring)
        ));
    }
}
