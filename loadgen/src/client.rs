//! Who sends a click over HTTP: the browser (its `User-Agent`) and the client's address (the
//! `X-Forwarded-For` entry ingest believes from loadgen, a trusted proxy on 127.0.0.1).
//!
//! Ingest classifies every click (the adclick-invalid crate): a request without a user agent or
//! with a bot's is `bot_user_agent`, more than 10 clicks of one address in a UTC second is
//! `ip_velocity`. Honest traffic must never be either, so that every test's truth stays "all
//! valid": each honest send carries one of [`BROWSERS`] (current desktop and mobile Chrome,
//! Firefox, Safari and Edge, none of which the classifier flags: a unit test checks it) and a
//! random address of [`HONEST_NETWORK`], drawn once per impression (a repeat comes from the same
//! person). With 2^24 addresses, even a million clicks a second puts about 0.06 on one address
//! in a second: more than 10 never happens in practice.
//!
//! Both are drawn from a random stream of the seed's own (as users and prices are, `users`), so
//! that they change nothing else of a plan.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// The stream of the plan's seed that browsers and addresses are drawn from.
const STREAM: u64 = 2;

/// Where honest clients are: 10.0.0.0/8 (private, so never a real client, and never in a deny
/// list of data centres).
pub const HONEST_NETWORK: Ipv4Net = Ipv4Net::new_assert(Ipv4Addr::new(10, 0, 0, 0), 8);

/// Real browsers' user agents, as they were sent at the end of 2024: desktop and mobile.
pub const BROWSERS: [&str; 11] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (Android 14; Mobile; rv:133.0) Gecko/133.0 Firefox/133.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (iPad; CPU OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1",
];

/// Declared crawlers, link previewers and HTTP libraries: the `bot_user_agent` sends. (A send
/// without any user agent is the other kind of bot: [`UserAgent::Missing`].)
pub const BOTS: [&str; 7] = [
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
    "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "Twitterbot/1.0",
    "curl/8.5.0",
    "python-requests/2.32.3",
];

/// The `User-Agent` of a send, as an index into the lists above (a send stays small and `Copy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum UserAgent {
    /// One of [`BROWSERS`].
    Browser(u8),
    /// One of [`BOTS`].
    Bot(u8),
    /// No `User-Agent` header at all (what an HTTP library sends by default): a bot to ingest.
    Missing,
}

impl UserAgent {
    /// The header's value; `None` sends none. An index past its list wraps around (a send read
    /// back from a file cannot make this panic).
    pub fn header(self) -> Option<&'static str> {
        match self {
            UserAgent::Browser(i) => Some(BROWSERS[usize::from(i) % BROWSERS.len()]),
            UserAgent::Bot(i) => Some(BOTS[usize::from(i) % BOTS.len()]),
            UserAgent::Missing => None,
        }
    }

    /// A bot's user agent, `Missing` included, uniformly.
    pub fn random_bot(rng: &mut impl Rng) -> UserAgent {
        let i = rng.random_range(0..=BOTS.len());
        if i == BOTS.len() {
            UserAgent::Missing
        } else {
            UserAgent::Bot(i as u8)
        }
    }

    /// A browser's user agent, uniformly.
    pub fn random_browser(rng: &mut impl Rng) -> UserAgent {
        UserAgent::Browser(rng.random_range(0..BROWSERS.len()) as u8)
    }
}

/// A uniformly random host address of `net` (neither its network nor its broadcast address
/// when it has others).
pub fn random_address(net: Ipv4Net, rng: &mut impl Rng) -> Ipv4Addr {
    let base = u32::from(net.network());
    let size = 1u64 << (32 - u32::from(net.prefix_len()));
    let offset = if size > 2 {
        rng.random_range(1..size - 1)
    } else {
        rng.random_range(0..size)
    };
    Ipv4Addr::from(base.wrapping_add(offset as u32))
}

/// Draws each honest impression's browser and address.
#[derive(Debug, Clone)]
pub(crate) struct Clients {
    rng: ChaCha8Rng,
}

impl Clients {
    pub(crate) fn new(seed: u64) -> Clients {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(STREAM);
        Clients { rng }
    }

    /// The next honest impression's browser and address.
    pub(crate) fn draw(&mut self) -> (UserAgent, Ipv4Addr) {
        let agent = UserAgent::random_browser(&mut self.rng);
        (agent, random_address(HONEST_NETWORK, &mut self.rng))
    }
}

#[cfg(test)]
mod tests {
    use adclick_invalid::{Config, Rules};

    use super::*;

    fn rules() -> Rules {
        Rules::from_config(&Config::default()).unwrap()
    }

    #[test]
    fn browsers_are_valid_and_bots_are_bots_to_the_default_rules() {
        let rules = rules();
        for ua in BROWSERS {
            assert!(!rules.is_bot(Some(ua)), "flagged as a bot: {ua}");
        }
        for i in 0..BOTS.len() {
            let ua = UserAgent::Bot(i as u8).header();
            assert!(rules.is_bot(ua), "not a bot: {ua:?}");
        }
        assert!(rules.is_bot(UserAgent::Missing.header()));
    }

    #[test]
    fn every_list_entry_is_drawn_and_indices_wrap() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let browsers: std::collections::HashSet<_> = (0..1_000)
            .map(|_| UserAgent::random_browser(&mut rng))
            .collect();
        assert_eq!(browsers.len(), BROWSERS.len());
        let bots: std::collections::HashSet<_> = (0..1_000)
            .map(|_| UserAgent::random_bot(&mut rng))
            .collect();
        assert_eq!(bots.len(), BOTS.len() + 1);
        assert!(bots.contains(&UserAgent::Missing));
        assert_eq!(UserAgent::Browser(200).header(), Some(BROWSERS[200 % 11]));
    }

    #[test]
    fn addresses_stay_in_their_network_and_spread() {
        let mut clients = Clients::new(5);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            let (agent, ip) = clients.draw();
            assert!(matches!(agent, UserAgent::Browser(_)));
            assert!(HONEST_NETWORK.contains(&ip), "{ip}");
            assert_ne!(ip, HONEST_NETWORK.network());
            assert_ne!(ip, HONEST_NETWORK.broadcast());
            seen.insert(ip);
        }
        assert!(seen.len() > 9_990, "{} distinct", seen.len());
        let one: Ipv4Net = "192.0.2.7/32".parse().unwrap();
        assert_eq!(
            random_address(one, &mut ChaCha8Rng::seed_from_u64(1)),
            Ipv4Addr::new(192, 0, 2, 7)
        );
        // Same seed, same clients.
        let a: Vec<_> = (0..5).map(|_| Clients::new(9).draw()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
    }
}
