//! The right-to-left walk: spoofing attempts, trusted chains, both headers, malformed entries.

use proptest::prelude::*;

use super::*;

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn nets(list: &[&str]) -> Vec<IpNet> {
    list.iter().map(|n| n.parse().unwrap()).collect()
}

/// Trusted: the load balancers' 10.0.0.0/8 and a CDN's 2001:db8:cd::/48.
fn trusted() -> Vec<IpNet> {
    nets(&["10.0.0.0/8", "2001:db8:cd::/48"])
}

fn xff(socket: &str, lines: &[&str]) -> IpAddr {
    client_ip(ip(socket), ProxyHeader::XForwardedFor, lines, &trusted())
}

fn fwd(socket: &str, lines: &[&str]) -> IpAddr {
    client_ip(ip(socket), ProxyHeader::Forwarded, lines, &trusted())
}

#[test]
fn without_a_trusted_peer_the_headers_are_not_read() {
    // A client straight to ingest claims to be someone else, even a trusted proxy.
    assert_eq!(xff("198.51.100.7", &["1.2.3.4"]), ip("198.51.100.7"));
    assert_eq!(
        xff("198.51.100.7", &["10.0.0.9, 1.2.3.4"]),
        ip("198.51.100.7")
    );
    assert_eq!(fwd("198.51.100.7", &["for=1.2.3.4"]), ip("198.51.100.7"));
    // No trusted proxies configured: the socket, always.
    let none: [IpNet; 0] = [];
    let got = client_ip(
        ip("10.0.0.2"),
        ProxyHeader::XForwardedFor,
        ["1.2.3.4"],
        &none,
    );
    assert_eq!(got, ip("10.0.0.2"));
}

#[test]
fn a_header_maps_lines_are_read_as_they_are() {
    let mut headers = http::HeaderMap::new();
    headers.append("x-forwarded-for", "1.2.3.4".parse().unwrap());
    headers.append("x-forwarded-for", "198.51.100.7, 10.0.0.3".parse().unwrap());
    headers.append("forwarded", "for=203.0.113.9".parse().unwrap());
    let lines = headers.get_all(ProxyHeader::XForwardedFor.name());
    let got = client_ip(
        ip("10.0.0.2"),
        ProxyHeader::XForwardedFor,
        lines,
        &trusted(),
    );
    assert_eq!(got, ip("198.51.100.7"));
    let lines = headers.get_all(ProxyHeader::Forwarded.name());
    let got = client_ip(ip("10.0.0.2"), ProxyHeader::Forwarded, lines, &trusted());
    assert_eq!(got, ip("203.0.113.9"));
    // Not visible ASCII (obs-text): unreadable, the walk stops at the trusted peer.
    let mut raw = http::HeaderMap::new();
    raw.append(
        "x-forwarded-for",
        http::HeaderValue::from_bytes(b"\xe9t\xe9").unwrap(),
    );
    let got = client_ip(
        ip("10.0.0.2"),
        ProxyHeader::XForwardedFor,
        raw.get_all("x-forwarded-for"),
        &trusted(),
    );
    assert_eq!(got, ip("10.0.0.2"));
}

#[test]
fn a_trusted_peer_with_no_header_is_the_client() {
    assert_eq!(xff("10.0.0.2", &[]), ip("10.0.0.2"));
    assert_eq!(xff("10.0.0.2", &[""]), ip("10.0.0.2"));
    assert_eq!(xff("10.0.0.2", &[" , ,"]), ip("10.0.0.2"));
}

#[test]
fn a_fake_entry_left_of_the_proxys_is_ignored() {
    // The client sent `X-Forwarded-For: 1.2.3.4`; the load balancer appended the real peer.
    assert_eq!(
        xff("10.0.0.2", &["1.2.3.4, 198.51.100.7"]),
        ip("198.51.100.7")
    );
    // The fake entry names a trusted address: still only the proxy's entry counts.
    assert_eq!(
        xff("10.0.0.2", &["10.9.9.9, 198.51.100.7"]),
        ip("198.51.100.7")
    );
    // The client added its own header line; the proxy added another after it.
    assert_eq!(
        xff("10.0.0.2", &["1.2.3.4", "198.51.100.7"]),
        ip("198.51.100.7")
    );
    assert_eq!(
        fwd("10.0.0.2", &["for=1.2.3.4", "for=198.51.100.7;proto=https"]),
        ip("198.51.100.7")
    );
}

#[test]
fn a_chain_of_trusted_proxies_is_walked_through() {
    // client → CDN (2001:db8:cd::5) → LB (10.0.0.3) → LB (10.0.0.2) → ingest.
    assert_eq!(
        xff(
            "10.0.0.2",
            &["1.2.3.4, 203.0.113.50, 2001:db8:cd::5, 10.0.0.3"]
        ),
        ip("203.0.113.50")
    );
    // The same chain over two lines.
    assert_eq!(
        xff(
            "10.0.0.2",
            &["1.2.3.4, 203.0.113.50", "2001:db8:cd::5, 10.0.0.3"]
        ),
        ip("203.0.113.50")
    );
    // Every entry trusted: the leftmost.
    assert_eq!(xff("10.0.0.2", &["10.1.1.1, 10.0.0.3"]), ip("10.1.1.1"));
}

#[test]
fn a_malformed_entry_stops_at_the_last_trusted_address() {
    for line in [
        "1.2.3.4, unknown",
        "1.2.3.4, 999.1.1.1",
        "1.2.3.4, example.com",
        "1.2.3.4, fe80::1%eth0",
        "1.2.3.4, 198.51.100.7:port",
        "1.2.3.4, 198.51.100.7:123456",
        "1.2.3.4, [2001:db8::1",
        "1.2.3.4, [2001:db8::1]x",
        "1.2.3.4, 198.51.100.7 198.51.100.8",
    ] {
        assert_eq!(xff("10.0.0.2", &[line]), ip("10.0.0.2"), "{line:?}");
        // Behind a second trusted hop, the walk stops at that hop.
        let line = format!("{line}, 10.0.0.3");
        assert_eq!(xff("10.0.0.2", &[&line]), ip("10.0.0.3"), "{line:?}");
    }
    // Bytes that are not ASCII text.
    let raw: [&[u8]; 1] = [b"1.2.3.4, \xff\xfe"];
    assert_eq!(
        client_ip(ip("10.0.0.2"), ProxyHeader::XForwardedFor, raw, &trusted()),
        ip("10.0.0.2")
    );
}

#[test]
fn empty_entries_are_skipped() {
    assert_eq!(xff("10.0.0.2", &["198.51.100.7,, ,"]), ip("198.51.100.7"));
    assert_eq!(
        xff("10.0.0.2", &["1.2.3.4,,198.51.100.7"]),
        ip("198.51.100.7")
    );
    assert_eq!(xff("10.0.0.2", &["198.51.100.7", ""]), ip("198.51.100.7"));
}

#[test]
fn ports_and_brackets_are_read() {
    assert_eq!(xff("10.0.0.2", &["198.51.100.7:4711"]), ip("198.51.100.7"));
    assert_eq!(xff("10.0.0.2", &["[2001:db8::7]:4711"]), ip("2001:db8::7"));
    assert_eq!(xff("10.0.0.2", &["[2001:db8::7]"]), ip("2001:db8::7"));
    assert_eq!(xff("10.0.0.2", &["2001:db8::7"]), ip("2001:db8::7"));
    assert_eq!(xff("10.0.0.2", &["\t198.51.100.7 "]), ip("198.51.100.7"));
}

#[test]
fn ipv4_mapped_addresses_are_ipv4_everywhere() {
    // A dual-stack listener reports the load balancer as ::ffff:10.0.0.2: still trusted.
    assert_eq!(
        xff("::ffff:10.0.0.2", &["198.51.100.7"]),
        ip("198.51.100.7")
    );
    // An untrusted mapped peer comes back as IPv4.
    assert_eq!(xff("::ffff:198.51.100.7", &["1.2.3.4"]), ip("198.51.100.7"));
    // A mapped entry is its IPv4 address, trusted or not.
    assert_eq!(
        xff("10.0.0.2", &["::ffff:198.51.100.7"]),
        ip("198.51.100.7")
    );
    assert_eq!(
        xff("10.0.0.2", &["198.51.100.7, ::ffff:10.0.0.3"]),
        ip("198.51.100.7")
    );
    // A trusted range written IPv4-mapped trusts IPv4 peers.
    let mapped = nets(&["::ffff:10.0.0.0/104"]);
    let got = client_ip(
        ip("10.0.0.2"),
        ProxyHeader::XForwardedFor,
        ["198.51.100.7"],
        &mapped,
    );
    assert_eq!(got, ip("198.51.100.7"));
}

#[test]
fn forwarded_elements_pairs_quotes_and_nodes() {
    assert_eq!(fwd("10.0.0.2", &["for=198.51.100.7"]), ip("198.51.100.7"));
    assert_eq!(
        fwd("10.0.0.2", &["For=198.51.100.7;Proto=https;by=10.0.0.2"]),
        ip("198.51.100.7")
    );
    assert_eq!(
        fwd("10.0.0.2", &["proto=https; for=198.51.100.7"]),
        ip("198.51.100.7")
    );
    assert_eq!(
        fwd("10.0.0.2", &["for=\"198.51.100.7:4711\""]),
        ip("198.51.100.7")
    );
    assert_eq!(
        fwd("10.0.0.2", &["for=\"[2001:db8:cafe::17]:4711\""]),
        ip("2001:db8:cafe::17")
    );
    assert_eq!(
        fwd("10.0.0.2", &["for=\"[2001:db8:cafe::17]\""]),
        ip("2001:db8:cafe::17")
    );
    // RFC 7239's own example of a chain, behind two trusted hops.
    assert_eq!(
        fwd(
            "10.0.0.2",
            &["for=192.0.2.43, for=\"[2001:db8:cd::17]\", for=10.0.0.3"]
        ),
        ip("192.0.2.43")
    );
    // A quoted comma or semicolon does not split anything.
    assert_eq!(
        fwd(
            "10.0.0.2",
            &["for=1.2.3.4;ext=\"a,b;c\", for=198.51.100.7;ext=\"x,y\""]
        ),
        ip("198.51.100.7")
    );
    // An escaped quote inside a trusted hop's quoted string keeps the string open.
    assert_eq!(
        fwd(
            "10.0.0.2",
            &[r#"for=1.2.3.4, for=198.51.100.7;ext="a\",b", for=10.0.0.3"#]
        ),
        ip("198.51.100.7")
    );
}

#[test]
fn unreadable_forwarded_elements_stop_at_the_last_trusted_address() {
    for element in [
        "for=unknown",
        "for=_hidden",
        "for=\"_SEVKISEK\"",
        "proto=https",
        "for=198.51.100.7;for=198.51.100.8",
        "for=\"198.51.100.7",
        "for=\"198.51.\\100.7\"",
        "for=\"[2001:db8::1]:_port\"",
        "garbage",
        "for",
    ] {
        let line = format!("for=1.2.3.4, {element}");
        assert_eq!(fwd("10.0.0.2", &[&line]), ip("10.0.0.2"), "{element:?}");
    }
    // Reading the wrong header's syntax is unreadable too.
    assert_eq!(fwd("10.0.0.2", &["198.51.100.7"]), ip("10.0.0.2"));
    assert_eq!(xff("10.0.0.2", &["for=198.51.100.7"]), ip("10.0.0.2"));
}

#[test]
fn an_unbalanced_quote_left_of_the_proxys_entry_changes_nothing() {
    // The client opened a quote it never closed; the proxy appended a well-formed element.
    assert_eq!(
        fwd("10.0.0.2", &["for=\"1.2.3.4, for=198.51.100.7"]),
        ip("198.51.100.7")
    );
}

#[test]
fn ip_keys_are_v4_addresses_and_v6_slash_64s() {
    assert_eq!(
        ip_key(ip("198.51.100.7")),
        "198.51.100.7/32".parse::<IpNet>().unwrap()
    );
    assert_eq!(
        ip_key(ip("::ffff:198.51.100.7")),
        "198.51.100.7/32".parse::<IpNet>().unwrap()
    );
    assert_eq!(
        ip_key(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd")),
        "2001:db8:1:2::/64".parse::<IpNet>().unwrap()
    );
    assert_eq!(
        ip_key(ip("2001:db8:1:2::1")),
        ip_key(ip("2001:db8:1:2:ffff::9"))
    );
    assert_ne!(ip_key(ip("2001:db8:1:2::1")), ip_key(ip("2001:db8:1:3::1")));
}

#[test]
fn header_names() {
    assert_eq!(ProxyHeader::XForwardedFor.name(), "x-forwarded-for");
    assert_eq!(ProxyHeader::Forwarded.name(), "forwarded");
    #[derive(serde::Deserialize)]
    struct T {
        h: ProxyHeader,
    }
    let t: T = toml::from_str("h = \"forwarded\"").unwrap();
    assert_eq!(t.h, ProxyHeader::Forwarded);
    let t: T = toml::from_str("h = \"x-forwarded-for\"").unwrap();
    assert_eq!(t.h, ProxyHeader::XForwardedFor);
}

proptest! {
    /// Whatever the header holds: no panic; an untrusted peer is the answer; the answer is never
    /// an IPv4-mapped address; and what a client prepends cannot change the answer once a trusted
    /// proxy appended an untrusted address after it.
    #[test]
    fn the_client_cannot_move_its_address(
        prefix in proptest::collection::vec(any::<u8>(), 0..80),
        forwarded in any::<bool>(),
        real in any::<[u8; 4]>(),
        peer_trusted in any::<bool>(),
    ) {
        let header = if forwarded { ProxyHeader::Forwarded } else { ProxyHeader::XForwardedFor };
        let real = IpAddr::from(real);
        let peer = if peer_trusted { ip("10.0.0.2") } else { ip("198.51.100.7") };
        let appended = match header {
            ProxyHeader::XForwardedFor => format!(", {real}"),
            ProxyHeader::Forwarded => format!(", for={real}"),
        };
        let mut line = prefix.clone();
        line.extend_from_slice(appended.as_bytes());
        let got = client_ip(peer, header, [&prefix[..], &line[..]], &trusted());
        prop_assert!(!matches!(got, IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some()));
        if !peer_trusted {
            prop_assert_eq!(got, peer);
        } else if !is_trusted(real, &trusted()) {
            // The proxy's own line is the last one; the prefix line before it is never reached.
            let alone = client_ip(peer, header, [&line[..]], &trusted());
            prop_assert_eq!(alone, real);
            prop_assert_eq!(got, real);
        }
    }
}
