//! Fuzz target: the invalid-traffic classifier and the client-IP walk on arbitrary request facts
//! and proxy headers (`adclick_invalid`). Nothing may panic, and:
//! - `classify` is `classify_request`, else `classify_activity` (the precedence in two halves);
//! - settling a verdict with the activity facts it was made from gives it back (the rollup agrees
//!   with ingest when the counts agree);
//! - `client_ip` never returns an IPv4-mapped address, returns an untrusted peer unchanged without
//!   reading the headers, and returns either the peer or an address that appears in the header.
//!
//! Header lines are structured (arbitrary): raw text, or addresses the harness writes in the
//! header's syntax, so that walks through trusted hops are reached, not only refusals.

#![no_main]

use std::net::IpAddr;
use std::path::Path;
use std::sync::LazyLock;

use adclick_invalid::{
    ActivityFacts, Config, DenyList, Facts, IpNet, ProxyHeader, RequestFacts, Rules, Velocity,
    classify, classify_activity, classify_request, client_ip, settle,
};
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

/// Default rules, operator patterns of each kind, and a deny list of IPv4, IPv6 and IPv4-mapped
/// ranges. Built once: isbot's list takes milliseconds to compile.
static RULES: LazyLock<Rules> = LazyLock::new(|| {
    let config = Config {
        bot_user_agents: vec!["AcmeScanner".into()],
        bot_user_agent_patterns: vec!["^internal-probe/\\d+".into()],
        not_bot_user_agent_patterns: vec!["^AcmeApp/.* okhttp/".into()],
        ..Config::default()
    };
    let deny = DenyList::parse(
        "10.0.0.0/8\n203.0.113.0/24\n2001:db8:dc::/48\n::ffff:192.0.2.0/120\n",
        Path::new("fuzz"),
    )
    .expect("valid list");
    Rules::new(&config, deny).expect("valid config")
});

/// Trusted proxies: one IPv4 and one IPv6 range.
static TRUSTED: LazyLock<Vec<IpNet>> = LazyLock::new(|| {
    ["172.16.0.0/12", "2001:db8:cd::/48"]
        .iter()
        .map(|n| n.parse().expect("valid range"))
        .collect()
});

#[derive(Debug, Arbitrary)]
enum Ip {
    V4([u8; 4]),
    V6([u8; 16]),
    /// Inside a trusted or deny-listed range, so the walk and the list are reached often.
    Trusted(u8),
    TrustedV6(u8),
    Listed(u8),
}

impl Ip {
    fn addr(&self) -> IpAddr {
        match *self {
            Ip::V4(b) => IpAddr::from(b),
            Ip::V6(b) => IpAddr::from(b),
            Ip::Trusted(n) => IpAddr::from([172, 16, 0, n]),
            Ip::TrustedV6(n) => IpAddr::from([0x2001, 0xdb8, 0xcd, 0, 0, 0, 0, u16::from(n)]),
            Ip::Listed(n) => IpAddr::from([203, 0, 113, n]),
        }
    }
}

/// One entry of a proxy header: raw text, or an address the harness writes in the header's
/// syntax (so the fuzzer reaches walks through trusted hops without spelling addresses).
#[derive(Debug, Arbitrary)]
enum Entry<'a> {
    Raw(&'a str),
    Addr {
        ip: Ip,
        port: Option<u16>,
        /// Written IPv4-mapped (`::ffff:a.b.c.d`) when IPv4.
        mapped: bool,
        /// Forwarded only: a second pair after `for=`.
        proto: bool,
    },
}

impl Entry<'_> {
    fn write(&self, header: ProxyHeader, out: &mut String) {
        let (ip, port, mapped, proto) = match self {
            Entry::Raw(raw) => return out.push_str(raw),
            Entry::Addr {
                ip,
                port,
                mapped,
                proto,
            } => (ip, port, mapped, proto),
        };
        let ip = match ip.addr() {
            IpAddr::V4(v4) if *mapped => IpAddr::V6(v4.to_ipv6_mapped()),
            ip => ip,
        };
        let node = match (ip, port) {
            (IpAddr::V4(v4), Some(port)) => format!("{v4}:{port}"),
            (IpAddr::V6(v6), Some(port)) => format!("[{v6}]:{port}"),
            (IpAddr::V6(v6), None) if header == ProxyHeader::Forwarded => format!("[{v6}]"),
            (ip, None) => ip.to_string(),
        };
        match header {
            ProxyHeader::XForwardedFor => out.push_str(&node),
            ProxyHeader::Forwarded => {
                out.push_str("for=\"");
                out.push_str(&node);
                out.push('"');
                if *proto {
                    out.push_str(";proto=https");
                }
            }
        }
    }
}

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    user_agent: Option<&'a str>,
    head: bool,
    sec_purpose: Option<&'a str>,
    purpose: Option<&'a str>,
    x_purpose: Option<&'a str>,
    x_moz: Option<&'a str>,
    client: Ip,
    token_issued_at_secs: u64,
    received_at_ms: i64,
    user_clicks_in_second: Option<u64>,
    user_clicks_in_minute: Option<u64>,
    ip_clicks_in_second: Option<u64>,
    ip_clicks_in_minute: Option<u64>,
    forwarded: bool,
    peer: Ip,
    /// Header lines, each a list of entries joined with `, `.
    lines: Vec<Vec<Entry<'a>>>,
}

fuzz_target!(|input: Input<'_>| {
    let rules = &*RULES;
    let facts = Facts {
        request: RequestFacts {
            user_agent: input.user_agent,
            head: input.head,
            sec_purpose: input.sec_purpose,
            purpose: input.purpose,
            x_purpose: input.x_purpose,
            x_moz: input.x_moz,
            client_ip: input.client.addr(),
        },
        activity: ActivityFacts {
            token_issued_at_secs: input.token_issued_at_secs,
            received_at_ms: input.received_at_ms,
            velocity: Velocity {
                user_clicks_in_second: input.user_clicks_in_second,
                user_clicks_in_minute: input.user_clicks_in_minute,
                ip_clicks_in_second: input.ip_clicks_in_second,
                ip_clicks_in_minute: input.ip_clicks_in_minute,
            },
        },
    };
    let verdict = classify(&facts, rules);
    let halves = classify_request(&facts.request, rules)
        .or_else(|| classify_activity(&facts.activity, rules));
    assert_eq!(verdict.reason(), halves);
    assert_eq!(settle(verdict, &facts.activity, rules), verdict);

    let header = if input.forwarded {
        ProxyHeader::Forwarded
    } else {
        ProxyHeader::XForwardedFor
    };
    let lines: Vec<String> = input
        .lines
        .iter()
        .map(|entries| {
            let mut line = String::new();
            for (i, entry) in entries.iter().enumerate() {
                if i > 0 {
                    line.push_str(", ");
                }
                entry.write(header, &mut line);
            }
            line
        })
        .collect();
    let peer = input.peer.addr().to_canonical();
    let got = client_ip(input.peer.addr(), header, &lines, &TRUSTED);
    assert!(!matches!(got, IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some()));
    let peer_trusted = TRUSTED.iter().any(|net| net.contains(&peer));
    if !peer_trusted {
        assert_eq!(got, peer);
    } else if got != peer {
        // Whatever the walk returns besides the peer was written in the header: some line holds
        // the address's text (as written, or its IPv4 form when it was written IPv4-mapped).
        let v4 = got.to_string();
        let appears = lines.iter().any(|line| {
            let line = line.to_ascii_lowercase();
            line.contains(&v4) || contains_v6_spelling(&line, got)
        });
        assert!(appears, "{got} not in {lines:?}");
    }
});

/// Whether `line` holds some IPv6 spelling of `ip` (IPv6 has many: `::`, leading zeros, mapped).
fn contains_v6_spelling(line: &str, ip: IpAddr) -> bool {
    line.split(|c: char| !(c.is_ascii_hexdigit() || c == ':' || c == '.'))
        .filter_map(|token| {
            token
                .trim_matches(':')
                .parse::<IpAddr>()
                .ok()
                .or_else(|| token.parse().ok())
        })
        .any(|parsed: IpAddr| parsed.to_canonical() == ip)
}
