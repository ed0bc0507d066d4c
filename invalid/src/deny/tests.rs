//! Deny-list parsing, IPv4 / IPv6 / IPv4-mapped matching, merging, and file errors.

use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;

use super::*;

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn list(text: &str) -> DenyList {
    DenyList::parse(text, Path::new("deny.cidr")).unwrap()
}

#[test]
fn ipv4_ranges_match_inside_and_not_beside() {
    let deny = list("192.0.2.0/24\n198.51.100.7\n");
    assert!(deny.contains(ip("192.0.2.0")));
    assert!(deny.contains(ip("192.0.2.255")));
    assert!(!deny.contains(ip("192.0.1.255")));
    assert!(!deny.contains(ip("192.0.3.0")));
    assert!(deny.contains(ip("198.51.100.7")));
    assert!(!deny.contains(ip("198.51.100.8")));
    assert!(!deny.contains(ip("2001:db8::1")));
    assert_eq!(deny.entries(), 2);
}

#[test]
fn ipv6_ranges_match_inside_and_not_beside() {
    let deny = list("2001:db8:42::/48\n2001:db8:ffff::1\n");
    assert!(deny.contains(ip("2001:db8:42::")));
    assert!(deny.contains(ip("2001:db8:42:ffff:ffff:ffff:ffff:ffff")));
    assert!(!deny.contains(ip("2001:db8:43::")));
    assert!(!deny.contains(ip("2001:db8:41:ffff:ffff:ffff:ffff:ffff")));
    assert!(deny.contains(ip("2001:db8:ffff::1")));
    assert!(!deny.contains(ip("2001:db8:ffff::2")));
    // An IPv6 range never matches an IPv4 client outside the mapped block.
    assert!(!deny.contains(ip("32.1.13.184")));
}

#[test]
fn an_ipv4_mapped_address_matches_ipv4_ranges() {
    let deny = list("203.0.113.0/24\n");
    assert!(deny.contains(ip("::ffff:203.0.113.9")));
    assert!(deny.contains(IpAddr::V6(Ipv4Addr::new(203, 0, 113, 200).to_ipv6_mapped())));
    assert!(!deny.contains(ip("::ffff:203.0.114.9")));
    // IPv4-compatible (deprecated, `::a.b.c.d`) is not mapped: an IPv6 address of its own.
    assert!(!deny.contains(ip("::203.0.113.9")));
}

#[test]
fn an_ipv4_mapped_range_matches_ipv4_clients() {
    let deny = list("::ffff:198.51.100.0/120\n");
    assert!(deny.contains(ip("198.51.100.1")));
    assert!(deny.contains(ip("::ffff:198.51.100.1")));
    assert!(!deny.contains(ip("198.51.101.1")));
    // A wide IPv6 range covering the mapped block covers every IPv4 client.
    let everything = list("::/0\n");
    assert!(everything.contains(ip("8.8.8.8")));
    assert!(everything.contains(ip("2001:db8::1")));
}

#[test]
fn comments_blank_lines_spaces_and_crlf_are_ignored() {
    let deny = list(
        "# data centres\r\n\r\n   10.0.0.0/8   # private\r\n\t172.16.0.0/12\r\n#192.168.0.0/16\r\n",
    );
    assert_eq!(deny.entries(), 2);
    assert!(deny.contains(ip("10.200.1.1")));
    assert!(deny.contains(ip("172.31.255.255")));
    assert!(!deny.contains(ip("192.168.1.1")));
    assert!(list("").is_empty());
    assert!(list("# nothing\n\n").is_empty());
    assert!(!DenyList::empty().contains(ip("0.0.0.0")));
}

#[test]
fn host_bits_are_cleared() {
    let deny = list("10.1.2.3/8\n");
    assert!(deny.contains(ip("10.255.0.1")));
}

#[test]
fn overlapping_and_adjacent_ranges_merge() {
    let deny = list(
        "10.0.0.0/24\n10.0.1.0/24\n10.0.0.128/25\n10.0.3.0/24\n0.0.0.0/32\n255.255.255.255/32\n",
    );
    // 10.0.0.0–10.0.1.255 (two adjacent and one inside), 10.0.3.0/24, and the two extremes.
    assert_eq!(deny.intervals(), 4);
    assert!(deny.contains(ip("10.0.1.255")));
    assert!(!deny.contains(ip("10.0.2.0")));
    assert!(deny.contains(ip("0.0.0.0")));
    assert!(deny.contains(ip("255.255.255.255")));
    assert!(!deny.contains(ip("255.255.255.254")));
    let full = list("0.0.0.0/1\n128.0.0.0/1\n");
    assert_eq!(full.intervals(), 1);
    assert!(full.contains(ip("127.255.255.255")));
}

#[test]
fn a_bad_line_names_the_file_and_the_line() {
    for (text, line, quoted) in [
        ("10.0.0.0/8\n\n10.0.0.0/33\n", 3, "10.0.0.0/33"),
        ("# header\nexample.com  # a host name\n", 2, "example.com"),
        ("10.0.0.0/8 192.0.2.0/24\n", 1, "10.0.0.0/8 192.0.2.0/24"),
        ("2001:db8::/129\n", 1, "2001:db8::/129"),
        ("10.0.0.0/\n", 1, "10.0.0.0/"),
        ("fe80::1%eth0\n", 1, "fe80::1%eth0"),
    ] {
        let error = DenyList::parse(text, Path::new("/etc/adclick/deny.cidr")).unwrap_err();
        let DenyListError::Entry {
            line: got_line,
            text: got_text,
            ..
        } = &error
        else {
            panic!("{error}");
        };
        assert_eq!((*got_line, got_text.as_str()), (line, quoted), "{text:?}");
        assert_eq!(
            error.to_string(),
            format!(
                "deny list /etc/adclick/deny.cidr, line {line}: `{quoted}` is not a CIDR range or an IP address"
            )
        );
    }
    let long = format!("{}\n", "x".repeat(500));
    let DenyListError::Entry { text, .. } = DenyList::parse(&long, Path::new("f")).unwrap_err()
    else {
        panic!("not an entry error");
    };
    assert_eq!(text.len(), MAX_QUOTED);
}

#[test]
fn files_load_and_missing_files_name_their_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deny.cidr");
    let mut file = fs::File::create(&path).unwrap();
    writeln!(file, "# test\n192.0.2.0/24\n2001:db8::/32").unwrap();
    drop(file);
    let deny = DenyList::load(&path).unwrap();
    assert_eq!(deny.entries(), 2);
    assert!(deny.contains(ip("2001:db8:1::1")));

    let missing = dir.path().join("missing.cidr");
    let error = DenyList::load(&missing).unwrap_err();
    assert!(matches!(error, DenyListError::Read { .. }));
    assert!(
        error
            .to_string()
            .starts_with(&format!("reading deny list {}: ", missing.display())),
        "{error}"
    );

    fs::write(&path, b"192.0.2.0/24\n\xff\n").unwrap();
    assert!(matches!(
        DenyList::load(&path),
        Err(DenyListError::Read { .. })
    ));
}

#[test]
fn thousands_of_ranges() {
    // Every other /24 of 10.0.0.0/8's first 8,192: none merge.
    let text: String = (0..8192u32)
        .map(|i| format!("10.{}.{}.0/24\n", (2 * i) >> 8 & 0xff, (2 * i) & 0xff))
        .collect();
    let deny = list(&text);
    assert_eq!(deny.intervals(), 8192);
    assert!(deny.contains(ip("10.0.0.1")));
    assert!(!deny.contains(ip("10.0.1.1")));
    assert!(deny.contains(ip("10.63.254.1")));
    assert!(!deny.contains(ip("10.63.255.1")));
    assert!(!deny.contains(ip("10.64.0.1")));
}

/// The reference: does any of the nets contain the address, the slow way.
fn naive(nets: &[IpNet], ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    nets.iter().any(|net| match (net.trunc(), ip) {
        (IpNet::V4(net), IpAddr::V4(ip)) => net.contains(&ip),
        (IpNet::V6(net), IpAddr::V6(ip)) => net.contains(&ip),
        (IpNet::V6(net), IpAddr::V4(ip)) => net.contains(&ip.to_ipv6_mapped()),
        (IpNet::V4(_), IpAddr::V6(_)) => false,
    })
}

fn arb_net() -> impl Strategy<Value = IpNet> {
    prop_oneof![
        // Small prefixes of a small space, so ranges overlap and touch.
        (0u32..64, 26u8..=32).prop_map(|(n, len)| {
            IpNet::V4(Ipv4Net::new(Ipv4Addr::from(0x0a00_0000 + n * 16), len).unwrap())
        }),
        (0u128..64, 122u8..=128).prop_map(|(n, len)| {
            IpNet::V6(
                Ipv6Net::new(Ipv6Addr::from((0x2001_0db8_u128 << 96) | (n * 16)), len).unwrap(),
            )
        }),
        (0u32..64, 122u8..=128).prop_map(|(n, len)| {
            let v4 = Ipv4Addr::from(0x0a00_0000 + n * 16);
            IpNet::V6(Ipv6Net::new(v4.to_ipv6_mapped(), len).unwrap())
        }),
    ]
}

fn arb_ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        (0u32..1100).prop_map(|n| IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n))),
        (0u32..1100).prop_map(|n| IpAddr::V6(Ipv4Addr::from(0x0a00_0000 + n).to_ipv6_mapped())),
        (0u128..1100).prop_map(|n| IpAddr::V6(Ipv6Addr::from((0x2001_0db8_u128 << 96) | n))),
    ]
}

proptest! {
    #[test]
    fn lookup_agrees_with_checking_every_range(
        nets in proptest::collection::vec(arb_net(), 0..40),
        ips in proptest::collection::vec(arb_ip(), 1..40),
    ) {
        let deny = DenyList::from_nets(nets.clone());
        for ip in ips {
            prop_assert_eq!(deny.contains(ip), naive(&nets, ip), "{}", ip);
        }
    }
}
