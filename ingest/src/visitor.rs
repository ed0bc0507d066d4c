//! Who clicked, when the impression token does not say: ingest's first-party cookie and the user
//! hash made from it.
//!
//! # Which user hash a click gets
//!
//! 1. The token's (version 2): the placement side's own salted hash, copied as it is.
//! 2. Else the visitor cookie's: `{user_cookie_name}=<32 lowercase hex digits>` (a random
//!    128-bit id ingest chose on an earlier click), hashed as click.proto defines `user_hash`:
//!    the first 8 bytes of SHA-256(`user_hash_salt` ‖ id bytes), big-endian (never 0: a hash of 0
//!    becomes 1, as 0 means unknown).
//! 3. Else a new id: ingest draws one, hashes it the same way for this click, and sets the cookie
//!    on the redirect so the visitor's next click carries it.
//!
//! A cookie whose value is not 32 hex digits is ignored and replaced (a new id). The raw id
//! never leaves the cookie: records, Redis keys and logs carry only the hash.
//!
//! # The cookie
//!
//! `Set-Cookie: {name}={id}; Path=/click; Max-Age={user_cookie_max_age_secs}; HttpOnly;
//! SameSite=Lax[; Secure]`:
//!
//! - **`SameSite=Lax`.** An ad click is a top-level navigation from the publisher's site to
//!   ingest's: Lax cookies go with exactly those (a GET navigation), so the next click carries
//!   the id, while no embedded request (an image, a frame, a script on another site) ever does —
//!   the cookie cannot be used to follow a person around other sites. `Strict` would not be sent
//!   on the cross-site navigation that every click is; `None` would be sent with embedded
//!   requests too, which nothing here needs.
//! - **`HttpOnly`**: no page script reads it. **`Path=/click`**: sent only with clicks.
//! - **`Secure`** unless `user_cookie_secure = false` (plain-HTTP development only; browsers
//!   drop a `Secure` cookie set over plain HTTP on other hosts than localhost).
//!
//! Prefetches and refused clicks get no cookie: they are not the person's navigation.

use axum::http::{HeaderMap, HeaderValue, header};
use sha2::{Digest as _, Sha256};

/// How ingest recognises returning visitors; cheap to clone.
#[derive(Clone)]
pub struct Visitors {
    cookie_name: String,
    salt: Vec<u8>,
    /// What follows the id in a new visitor's `Set-Cookie`, the same for every visitor (made once).
    cookie_attributes: String,
}

impl std::fmt::Debug for Visitors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Visitors")
            .field("cookie_name", &self.cookie_name)
            .field("cookie_attributes", &self.cookie_attributes)
            .finish_non_exhaustive()
    }
}

/// The visitor of one click: the user hash, and the cookie to set when the id is new.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Visitor {
    pub user_hash: u64,
    pub set_cookie: Option<HeaderValue>,
}

impl Visitors {
    /// `salt`: click.proto's salt of `user_hash` (`None` draws a random one per process: hashes
    /// then differ between ingest processes).
    pub fn new(cookie_name: &str, salt: Option<&[u8]>, max_age_secs: u64, secure: bool) -> Self {
        let salt = salt.map_or_else(|| rand::random::<[u8; 32]>().to_vec(), <[u8]>::to_vec);
        Visitors {
            cookie_name: cookie_name.to_string(),
            salt,
            cookie_attributes: format!(
                "; Path=/click; Max-Age={max_age_secs}; HttpOnly; SameSite=Lax{}",
                if secure { "; Secure" } else { "" }
            ),
        }
    }

    /// click.proto's `user_hash` of a visitor id.
    pub fn user_hash(&self, id: &[u8; 16]) -> u64 {
        let mut sha = Sha256::new();
        sha.update(&self.salt);
        sha.update(id);
        let digest = sha.finalize();
        u64::from_be_bytes(digest[..8].try_into().expect("32-byte digest")).max(1)
    }

    /// The visitor of a request without a user hash in its token: the cookie's id, or a new one.
    pub fn identify(&self, headers: &HeaderMap) -> Visitor {
        if let Some(id) = self.cookie_id(headers) {
            return Visitor {
                user_hash: self.user_hash(&id),
                set_cookie: None,
            };
        }
        let id: [u8; 16] = rand::random();
        Visitor {
            user_hash: self.user_hash(&id),
            set_cookie: Some(self.cookie(&id)),
        }
    }

    /// The id of the first well-formed visitor cookie among the request's `Cookie` headers.
    fn cookie_id(&self, headers: &HeaderMap) -> Option<[u8; 16]> {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .filter(|(name, _)| *name == self.cookie_name)
            .find_map(|(_, value)| parse_id(value))
    }

    fn cookie(&self, id: &[u8; 16]) -> HeaderValue {
        let mut value =
            String::with_capacity(self.cookie_name.len() + 33 + self.cookie_attributes.len());
        value.push_str(&self.cookie_name);
        value.push('=');
        crate::keys::push_hex(&mut value, id);
        value.push_str(&self.cookie_attributes);
        // The name was checked at start (config) and the rest is ASCII of our own. From the
        // `String` itself: no copy.
        HeaderValue::try_from(value).expect("a cookie of checked ASCII")
    }
}

/// 32 lowercase hex digits, else `None`.
fn parse_id(value: &str) -> Option<[u8; 16]> {
    if value.len() != 32
        || !value
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return None;
    }
    hex::decode(value).ok()?.try_into().ok()
}

/// Whether `name` can be a cookie name (RFC 6265 token: visible ASCII but separators).
pub fn is_cookie_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn visitors() -> Visitors {
        Visitors::new("adclick_uid", Some(b"salt"), 31_536_000, true)
    }

    #[test]
    fn a_new_visitor_gets_a_lax_httponly_secure_cookie_and_a_hash_of_it() {
        let v = visitors();
        let new = v.identify(&HeaderMap::new());
        let cookie = new.set_cookie.unwrap();
        let cookie = cookie.to_str().unwrap();
        assert!(
            cookie.ends_with("; Path=/click; Max-Age=31536000; HttpOnly; SameSite=Lax; Secure"),
            "{cookie}"
        );
        let id = cookie
            .strip_prefix("adclick_uid=")
            .unwrap()
            .split(';')
            .next()
            .unwrap();
        // The returning visitor: the same hash, no new cookie.
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            format!("other=1; adclick_uid={id}").parse().unwrap(),
        );
        let back = v.identify(&headers);
        assert_eq!(back.user_hash, new.user_hash);
        assert_eq!(back.set_cookie, None);
        // click.proto's hash: SHA-256(salt || id), first 8 bytes, big-endian.
        let mut sha = Sha256::new();
        sha.update(b"salt");
        sha.update(hex::decode(id).unwrap());
        let want = u64::from_be_bytes(sha.finalize()[..8].try_into().unwrap());
        assert_eq!(back.user_hash, want);
    }

    #[test]
    fn a_malformed_cookie_is_replaced_and_insecure_is_a_choice() {
        let v = Visitors::new("uid", Some(b"salt"), 60, false);
        for bad in ["uid=xyz", "uid=0123456789ABCDEF0123456789ABCDEF", "uid="] {
            let mut headers = HeaderMap::new();
            headers.insert(header::COOKIE, bad.parse().unwrap());
            let visitor = v.identify(&headers);
            let cookie = visitor.set_cookie.expect(bad);
            assert!(!cookie.to_str().unwrap().contains("Secure"));
        }
        // Two new visitors are two people.
        assert_ne!(
            v.identify(&HeaderMap::new()).user_hash,
            v.identify(&HeaderMap::new()).user_hash
        );
    }

    #[test]
    fn cookie_names_are_tokens() {
        assert!(is_cookie_name("adclick_uid"));
        for bad in ["", "a b", "a=b", "a;b", "ä"] {
            assert!(!is_cookie_name(bad), "{bad}");
        }
    }
}
