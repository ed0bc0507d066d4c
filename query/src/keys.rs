//! The API keys file: who a presented key belongs to, found by its SHA-256 digest in a hash map.
//!
//! Format: one key per line, `<sha256 of the key, 64 hex digits> <advertiser id | operator>`,
//! separated by spaces or tabs; blank lines and `#` comments (whole lines or after the entry) are
//! ignored. An advertiser may have several keys (rotation); `operator` keys see everything,
//! unrestricted. The keys themselves are never stored: `printf %s "$KEY" | sha256sum` gives the
//! digest to write.
//!
//! ```text
//! # advertiser 42, rotated in 2026-12
//! 3a6eb0790f39ac87c94f3856b2dd2c5d110e6811602261a9a923d3bb23adc8b7  42
//! # the operations team's Grafana
//! 8c3b3b2b0f6e4d7fa0a8b5bbfd4bd6a1f0c5a5b1f2e3d4c5b6a7980112233445  operator
//! ```

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use crate::caller::Caller;

/// A SHA-256 digest.
type KeyDigest = [u8; 32];

/// The accepted keys, by digest.
#[derive(Clone, Default)]
pub struct ApiKeys {
    /// By digest: a lookup costs the same with 10 keys or 100,000 (a linear constant-time scan
    /// cost 56 µs per request at 2,000 keys, BENCHMARKS.md "query gateway"). What the map's
    /// timing could tell is about the digest of the presented key, which an attacker can steer
    /// only by finding SHA-256 preimages: nothing about a stored key's bytes leaks.
    entries: HashMap<KeyDigest, Caller>,
}

/// Why a keys file cannot be used; names the line, never a digest.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error("reading the API keys file {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("API keys file, line {line}: {reason}")]
    Line { line: usize, reason: &'static str },
}

/// Digests are not shown: the list is as good as a password list for an offline guesser.
impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeys")
            .field("keys", &self.entries.len())
            .finish()
    }
}

/// The hex SHA-256 digest of `key`: what the keys file holds for it.
pub fn key_digest_hex(key: &str) -> String {
    hex::encode(digest(key))
}

fn digest(key: &str) -> KeyDigest {
    Sha256::digest(key.as_bytes()).into()
}

impl ApiKeys {
    /// Reads and parses the file at `path`.
    pub fn load(path: &std::path::Path) -> Result<ApiKeys, KeysError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeysError::Read {
            path: path.display().to_string(),
            source,
        })?;
        ApiKeys::parse(&text)
    }

    /// Parses the file's text (format in the module's documentation).
    pub fn parse(text: &str) -> Result<ApiKeys, KeysError> {
        let mut entries = HashMap::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let content = raw.split('#').next().unwrap_or_default().trim();
            if content.is_empty() {
                continue;
            }
            let mut fields = content.split_whitespace();
            let (Some(hex_digest), Some(who), None) = (fields.next(), fields.next(), fields.next())
            else {
                return Err(KeysError::Line {
                    line,
                    reason: "expected `<sha256 hex> <advertiser id | operator>`",
                });
            };
            let mut key = [0u8; 32];
            hex::decode_to_slice(hex_digest, &mut key).map_err(|_| KeysError::Line {
                line,
                reason: "the digest is not 64 hex digits (sha256 of the key)",
            })?;
            let caller =
                if who == "operator" {
                    Caller::Operator
                } else {
                    who.parse().map(Caller::Advertiser).map_err(|_| KeysError::Line {
                    line,
                    reason: "the owner is neither an advertiser id (decimal) nor `operator`",
                })?
                };
            if entries.contains_key(&key) {
                return Err(KeysError::Line {
                    line,
                    reason: "this digest is listed twice",
                });
            }
            entries.insert(key, caller);
        }
        Ok(ApiKeys { entries })
    }

    /// Who `key` belongs to, if anyone: looked up by its digest (see `entries`).
    pub fn caller(&self, key: &str) -> Option<Caller> {
        self.entries.get(&digest(key)).copied()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_found_by_their_digest() {
        let text = format!(
            "# a comment\n\n{}  42   # advertiser 42\n{}\toperator\n{} 42\n",
            key_digest_hex("key-a"),
            key_digest_hex("key-op"),
            key_digest_hex("key-a2").to_uppercase(),
        );
        let keys = ApiKeys::parse(&text).unwrap();
        assert_eq!(keys.len(), 3);
        assert_eq!(keys.caller("key-a"), Some(Caller::Advertiser(42)));
        assert_eq!(keys.caller("key-a2"), Some(Caller::Advertiser(42)));
        assert_eq!(keys.caller("key-op"), Some(Caller::Operator));
        assert_eq!(keys.caller("key-b"), None);
        assert_eq!(keys.caller(""), None);
        assert!(!format!("{keys:?}").contains(&key_digest_hex("key-a")));
    }

    #[test]
    fn bad_lines_are_named() {
        let d = key_digest_hex("k");
        for (text, line) in [
            (format!("{d}\n"), 1),
            (format!("\n{d} 42 43\n"), 2),
            ("abc 42\n".to_string(), 1),
            (format!("{d} -1\n"), 1),
            (format!("{d} Operator\n"), 1),
            (format!("{d} 1\n{d} 2\n"), 2),
        ] {
            match ApiKeys::parse(&text) {
                Err(KeysError::Line { line: l, .. }) => assert_eq!(l, line, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
        assert!(ApiKeys::parse("").unwrap().is_empty());
    }
}
