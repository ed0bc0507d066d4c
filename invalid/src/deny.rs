//! The deny list: CIDR ranges (data centres, operator ranges) whose clicks are
//! `deny_listed_network`, read from a file and looked up in a few dozen nanoseconds.
//!
//! # File format
//!
//! UTF-8 text, one entry per line:
//!
//! ```text
//! # data-centre ranges, 2026-12 (a comment: from `#` to the end of the line)
//! 192.0.2.0/24
//! 198.51.100.7          # a single address is its /32 (IPv4) or /128 (IPv6)
//! 2001:db8:42::/48
//! ::ffff:203.0.113.0/120   # IPv4-mapped: the same as 203.0.113.0/24
//! ```
//!
//! Blank lines and comments are ignored, and spaces around an entry. An entry is a CIDR range as
//! `ipnet` reads it, or one address. Host bits are cleared (`10.1.2.3/8` is `10.0.0.0/8`), as
//! routers and firewalls read such entries. Anything else refuses the whole file with an error
//! naming the file and the line, so a reload never silently drops half a list.
//!
//! # Matching
//!
//! An IPv4 address matches the IPv4 ranges and the part of any IPv6 range inside the IPv4-mapped
//! block `::ffff:0:0/96`; an IPv4-mapped IPv6 address (`::ffff:192.0.2.1`, what a dual-stack
//! socket reports for an IPv4 client) is looked up as the IPv4 address it carries. So a list of
//! IPv4 ranges catches IPv4 clients however the socket or proxy wrote them.
//!
//! # Why sorted ranges
//!
//! Entries become inclusive `[first, last]` intervals, one sorted vector per family, overlapping
//! and adjacent ones merged; a lookup is one binary search (14 comparisons for 10,000 ranges) in
//! contiguous memory. A radix trie (the `iprange` crate) walks up to 32 or 128 heap nodes per
//! lookup and would be one more dependency for the same answer; `ipnet` alone parses.

use std::fmt;
use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use thiserror::Error;

/// Longest part of a refused line an error repeats.
const MAX_QUOTED: usize = 80;

/// Why a deny-list file was refused.
#[derive(Debug, Error)]
pub enum DenyListError {
    #[error("reading deny list {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("deny list {}, line {line}: `{text}` is not a CIDR range or an IP address", path.display())]
    Entry {
        path: PathBuf,
        /// 1-based.
        line: usize,
        /// The entry, without comment and surrounding spaces, cut at 80 characters.
        text: String,
    },
}

/// A set of IP ranges with fast lookup. Immutable: a reload builds a new one.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct DenyList {
    /// Disjoint, non-adjacent, sorted `[first, last]` intervals.
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
    /// Entries read, before merging.
    entries: usize,
}

impl DenyList {
    /// The empty list: matches nothing.
    pub fn empty() -> Self {
        DenyList::default()
    }

    /// A list of these ranges (host bits cleared).
    pub fn from_nets<I: IntoIterator<Item = IpNet>>(nets: I) -> Self {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        let mut entries = 0;
        for net in nets {
            entries += 1;
            match net.trunc() {
                IpNet::V4(net) => v4.push(v4_interval(net)),
                IpNet::V6(net) => {
                    let interval = v6_interval(net);
                    if let Some(mapped) = mapped_v4_part(interval) {
                        v4.push(mapped);
                    }
                    v6.push(interval);
                }
            }
        }
        DenyList {
            v4: merge(v4),
            v6: merge(v6),
            entries,
        }
    }

    /// Reads a deny-list file (module doc: the format).
    pub fn load(path: &Path) -> Result<Self, DenyListError> {
        let text = fs::read_to_string(path).map_err(|source| DenyListError::Read {
            path: path.to_owned(),
            source,
        })?;
        DenyList::parse(&text, path)
    }

    /// Parses a deny list's text; `path` only names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, DenyListError> {
        let mut nets = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let entry = line.split('#').next().unwrap_or_default().trim();
            if entry.is_empty() {
                continue;
            }
            let net = parse_entry(entry).ok_or_else(|| DenyListError::Entry {
                path: path.to_owned(),
                line: index + 1,
                text: entry.chars().take(MAX_QUOTED).collect(),
            })?;
            nets.push(net);
        }
        Ok(DenyList::from_nets(nets))
    }

    /// Whether `ip` is inside a range (module doc: IPv4-mapped addresses match IPv4 ranges).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match ip.to_canonical() {
            IpAddr::V4(ip) => inside(&self.v4, u32::from(ip)),
            IpAddr::V6(ip) => inside(&self.v6, u128::from(ip)),
        }
    }

    /// Entries read (what an operator counts in the file).
    pub fn entries(&self) -> usize {
        self.entries
    }

    /// Disjoint intervals after merging (what a lookup searches).
    pub fn intervals(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    pub fn is_empty(&self) -> bool {
        self.intervals() == 0
    }
}

/// Counts, not the thousands of ranges.
impl fmt::Debug for DenyList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DenyList")
            .field("entries", &self.entries)
            .field("v4_intervals", &self.v4.len())
            .field("v6_intervals", &self.v6.len())
            .finish()
    }
}

/// A CIDR range, or one address as its /32 or /128.
fn parse_entry(entry: &str) -> Option<IpNet> {
    entry
        .parse::<IpNet>()
        .ok()
        .or_else(|| entry.parse::<IpAddr>().ok().map(IpNet::from))
}

fn v4_interval(net: Ipv4Net) -> (u32, u32) {
    (u32::from(net.network()), u32::from(net.broadcast()))
}

fn v6_interval(net: Ipv6Net) -> (u128, u128) {
    (u128::from(net.network()), u128::from(net.broadcast()))
}

/// First and last address of `::ffff:0:0/96`.
const MAPPED_FIRST: u128 = 0xffff_0000_0000;
const MAPPED_LAST: u128 = 0xffff_ffff_ffff;

/// The IPv4 addresses an IPv6 interval covers through the IPv4-mapped block, if any.
fn mapped_v4_part((first, last): (u128, u128)) -> Option<(u32, u32)> {
    let first = first.max(MAPPED_FIRST);
    let last = last.min(MAPPED_LAST);
    // Inside the block, the low 32 bits are the IPv4 address: the truncation is the point.
    (first <= last).then_some((first as u32, last as u32))
}

/// Sorts and merges overlapping or adjacent intervals.
fn merge<T: Copy + Ord + num::Step>(mut intervals: Vec<(T, T)>) -> Vec<(T, T)> {
    intervals.sort_unstable();
    let mut merged: Vec<(T, T)> = Vec::with_capacity(intervals.len());
    for (first, last) in intervals {
        match merged.last_mut() {
            Some(previous) if previous.1 >= first || previous.1.successor() == Some(first) => {
                previous.1 = previous.1.max(last);
            }
            _ => merged.push((first, last)),
        }
    }
    merged.shrink_to_fit();
    merged
}

/// Whether `x` lies in one of the sorted disjoint `intervals`.
fn inside<T: Copy + Ord>(intervals: &[(T, T)], x: T) -> bool {
    // The last interval starting at or before `x` is the only one that can hold it.
    let after = intervals.partition_point(|&(first, _)| first <= x);
    after > 0 && intervals[after - 1].1 >= x
}

/// The one operation `merge` needs from both integer widths, without a numeric-traits crate.
mod num {
    pub trait Step: Sized {
        fn successor(self) -> Option<Self>;
    }
    impl Step for u32 {
        fn successor(self) -> Option<Self> {
            self.checked_add(1)
        }
    }
    impl Step for u128 {
        fn successor(self) -> Option<Self> {
            self.checked_add(1)
        }
    }
}

#[cfg(test)]
mod tests;
