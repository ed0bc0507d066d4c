//! The client's IP address behind proxies ([`client_ip()`]): `X-Forwarded-For` or RFC 7239
//! `Forwarded`, believed only as far as trusted proxies wrote them; and the key IP velocity
//! counts by ([`ip_key`]).
//!
//! # The walk, right to left
//!
//! Every proxy appends the address it received the request from to the right of the header (or
//! adds a header line after the others). Only the entries appended by proxies the operator trusts
//! are true; anything to their left was written by the client, who can write anything. So, as
//! nginx's `real_ip_recursive on` and Express' `trust proxy` do:
//!
//! 1. Start with the socket's peer. If it is not a trusted proxy, it is the client: the headers
//!    are not read at all (a client talking to ingest directly cannot move its own address).
//! 2. Otherwise take the header's entries from the right (the last line first) and move left
//!    while the current address is a trusted proxy: the next entry is whom that proxy received the
//!    request from.
//! 3. The first address that is not a trusted proxy is the client. If every entry is trusted, the
//!    leftmost is.
//!
//! An entry that cannot be read — not an address, `unknown`, an obfuscated RFC 7239 node
//! (`_hidden`), a `Forwarded` element without `for=`, bytes that are not ASCII — ends the walk at
//! the last address read, which is a trusted proxy's: what that proxy received cannot be known,
//! and guessing from further left would let the client choose. Empty entries (`a,,b`, trailing
//! commas) are skipped, as nginx does.
//!
//! Entries may carry a port: `192.0.2.1:4711`, `[2001:db8::1]:4711` (some load balancers write
//! them; RFC 7239 allows them); `[2001:db8::1]` without one is read too. IPv4-mapped IPv6 addresses
//! (`::ffff:192.0.2.1`) are their IPv4 address, for the socket, the entries and the trusted ranges
//! alike.
//!
//! Which header is read is the operator's choice ([`ProxyHeader`]): the one the trusted proxies
//! set. Reading both, or falling back from one to the other, would let a client write the one the
//! proxies do not.
//!
//! The walk allocates nothing; its cost is bounded by the number of trusted entries, as it stops
//! at the first untrusted one, however long the client made the header.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use serde::Deserialize;

/// Which header trusted proxies write the client's address into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProxyHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` — what nginx, HAProxy, Envoy and the cloud load
    /// balancers write.
    #[default]
    XForwardedFor,
    /// RFC 7239: `Forwarded: for=client;proto=https, for="[2001:db8::1]:4711"`.
    Forwarded,
}

impl ProxyHeader {
    /// The header's name, lower case (as `http::HeaderMap` takes it).
    pub const fn name(self) -> &'static str {
        match self {
            ProxyHeader::XForwardedFor => "x-forwarded-for",
            ProxyHeader::Forwarded => "forwarded",
        }
    }
}

/// The client's address: the walk of the module doc over `header`'s `lines` (every line of that
/// header, in the order received: `HeaderMap::get_all(name).iter()` fits as it is).
///
/// ```
/// use adclick_invalid::{ProxyHeader, client_ip};
/// use ipnet::IpNet;
///
/// let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
/// let lb = "10.0.0.2".parse().unwrap();
/// // The client claimed 1.2.3.4; the load balancer appended whom it really received it from.
/// let xff = ["1.2.3.4, 198.51.100.7"];
/// let ip = client_ip(lb, ProxyHeader::XForwardedFor, xff, &trusted);
/// assert_eq!(ip, "198.51.100.7".parse::<std::net::IpAddr>().unwrap());
/// // Straight to ingest, the header is not believed at all.
/// let direct = "203.0.113.9".parse().unwrap();
/// assert_eq!(client_ip(direct, ProxyHeader::XForwardedFor, xff, &trusted), direct);
/// ```
pub fn client_ip<I>(
    socket_ip: IpAddr,
    header: ProxyHeader,
    lines: I,
    trusted_proxies: &[IpNet],
) -> IpAddr
where
    I: IntoIterator,
    I::IntoIter: DoubleEndedIterator,
    I::Item: AsRef<[u8]>,
{
    let mut ip = socket_ip.to_canonical();
    if !is_trusted(ip, trusted_proxies) {
        return ip;
    }
    for line in lines.into_iter().rev() {
        let line = line.as_ref();
        let mut entries = RevSplit::new(line, b',', header == ProxyHeader::Forwarded);
        while let Some(entry) = entries.next_entry() {
            let entry = trim(entry);
            if entry.is_empty() {
                continue;
            }
            let parsed = match header {
                ProxyHeader::XForwardedFor => parse_node(entry),
                ProxyHeader::Forwarded => forwarded_for(entry),
            };
            let Some(next) = parsed else {
                return ip;
            };
            ip = next.to_canonical();
            if !is_trusted(ip, trusted_proxies) {
                return ip;
            }
        }
    }
    ip
}

/// What IP velocity counts by: an IPv4 address as its /32, an IPv6 address as its /64 (one host
/// picks its addresses inside its /64, so a /128 key would let one client reset its count at
/// will). IPv4-mapped addresses are their IPv4 address.
pub fn ip_key(ip: IpAddr) -> IpNet {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpNet::from(IpAddr::V4(v4)),
        // 64 is a valid IPv6 prefix length: `new` does not fail.
        IpAddr::V6(v6) => ipnet::Ipv6Net::new(v6, 64)
            .map_or(IpNet::from(IpAddr::V6(v6)), |net| IpNet::V6(net.trunc())),
    }
}

/// Whether `ip` (canonical) is inside a trusted range; an IPv4 address also inside an IPv6 range
/// through its mapped form.
fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|net| match (net, ip) {
        (IpNet::V4(net), IpAddr::V4(ip)) => net.contains(&ip),
        (IpNet::V6(net), IpAddr::V6(ip)) => net.contains(&ip),
        (IpNet::V6(net), IpAddr::V4(ip)) => net.contains(&ip.to_ipv6_mapped()),
        (IpNet::V4(_), IpAddr::V6(_)) => false,
    })
}

/// `for=` of one `Forwarded` element (`for=…;proto=…;by=…`): exactly one, readable.
fn forwarded_for(element: &[u8]) -> Option<IpAddr> {
    let mut found = None;
    let mut pairs = RevSplit::new(element, b';', true);
    while let Some(pair) = pairs.next_entry() {
        let pair = trim(pair);
        let Some(eq) = pair.iter().position(|&b| b == b'=') else {
            if pair.is_empty() {
                continue;
            }
            return None;
        };
        let (name, value) = (trim(&pair[..eq]), trim(&pair[eq + 1..]));
        if name.eq_ignore_ascii_case(b"for") {
            if found.is_some() {
                return None;
            }
            found = Some(value);
        }
    }
    let value = found?;
    let value = match value {
        [b'"', inner @ .., b'"'] => inner,
        _ => value,
    };
    // No address needs an escape or a quote; a value with one is not an address.
    if value.iter().any(|&b| b == b'\\' || b == b'"') {
        return None;
    }
    parse_node(value)
}

/// An address with an optional port: `a.b.c.d`, `a.b.c.d:port`, `x:y::z`, `[x:y::z]`,
/// `[x:y::z]:port`. `unknown`, `_obfuscated` and host names are not addresses.
fn parse_node(node: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(node).ok()?;
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = text.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        return v6.parse::<Ipv6Addr>().ok().map(IpAddr::V6);
    }
    let (v4, port) = text.split_once(':')?;
    if !is_port(port) {
        return None;
    }
    v4.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
}

/// 1–5 digits (RFC 7239 obfuscated ports, `_abc`, are refused like obfuscated nodes: rare, and
/// only a misconfigured trusted proxy writes one).
fn is_port(port: &str) -> bool {
    (1..=5).contains(&port.len()) && port.bytes().all(|b| b.is_ascii_digit())
}

fn trim(bytes: &[u8]) -> &[u8] {
    let is_space = |b: &u8| *b == b' ' || *b == b'\t';
    let start = bytes
        .iter()
        .position(|b| !is_space(b))
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !is_space(b))
        .map_or(start, |i| i + 1);
    &bytes[start..end.max(start)]
}

/// Splits at `sep` from the right, optionally ignoring separators inside quoted strings (RFC 7230
/// quoted-string: `"…"`, with `\"` an escaped quote). Scanning from the right, a quote is escaped
/// when an odd number of backslashes precedes it. Unbalanced quotes only affect text left of
/// where the walk already stopped: the trusted proxies' part on the right is well formed.
struct RevSplit<'a> {
    rest: Option<&'a [u8]>,
    sep: u8,
    quotes: bool,
}

impl<'a> RevSplit<'a> {
    fn new(bytes: &'a [u8], sep: u8, quotes: bool) -> Self {
        RevSplit {
            rest: Some(bytes),
            sep,
            quotes,
        }
    }

    fn next_entry(&mut self) -> Option<&'a [u8]> {
        let bytes = self.rest?;
        let mut quoted = false;
        let mut i = bytes.len();
        while i > 0 {
            i -= 1;
            let b = bytes[i];
            if self.quotes && b == b'"' {
                let backslashes = bytes[..i].iter().rev().take_while(|&&c| c == b'\\').count();
                if backslashes % 2 == 0 {
                    quoted = !quoted;
                }
            } else if b == self.sep && !quoted {
                self.rest = Some(&bytes[..i]);
                return Some(&bytes[i + 1..]);
            }
        }
        self.rest = None;
        Some(bytes)
    }
}

#[cfg(test)]
mod tests;
