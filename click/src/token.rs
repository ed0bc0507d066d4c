//! Signed impression tokens: what the ad-placement side issues per impression and the browser
//! sends back on click (`GET /click/{token}`), and how adclick verifies them.
//!
//! # Format, version 1
//!
//! A token is the **URL-safe base64 alphabet of RFC 4648 §5 (`A–Z a–z 0–9 - _`), without
//! padding**, of the binary token below. The last base64 character must carry no stray bits
//! (canonical encoding), so one binary token has exactly one text form.
//!
//! The binary token is, in this order (a *varint* is unsigned LEB128: 7 bits per byte, least
//! significant group first, high bit set on every byte but the last; it must be minimal, i.e. no
//! trailing `0x00` group after the first byte, and fit in a `u64`, so at most 10 bytes):
//!
//! | # | field | size | content |
//! |---|---|---|---|
//! | 1 | version | 1 byte | `0x01` |
//! | 2 | key id length `K` | 1 byte | `1..=16` |
//! | 3 | key id | `K` bytes | ASCII letters, digits, `-`, `_`, `.`; names the key that signed |
//! | 4 | impression id | 16 bytes | 128 random bits chosen by the signer, one per impression |
//! | 5 | ad id | varint | non-zero |
//! | 6 | campaign id | varint | non-zero |
//! | 7 | advertiser id | varint | non-zero |
//! | 8 | issued at | varint | Unix time in seconds (UTC) |
//! | 9 | lifetime | varint | seconds; expires at = issued at + lifetime (must not overflow `u64`) |
//! | 10 | landing URL length `L` | varint | `1..=2048` |
//! | 11 | landing URL | `L` bytes | UTF-8; an absolute `http` or `https` URL without user name or password |
//! | 12 | tag | 32 bytes | HMAC-SHA256, keyed with the secret of key id, over fields 1–11 (every byte before the tag) |
//!
//! Nothing follows the tag, and nothing may lie between the URL and the tag. The tag is always the
//! last 32 bytes, so a verifier reads fields 1–3, finds the key, checks the tag, and only then reads
//! fields 4–11.
//!
//! A token is valid at Unix second `now`, with clock-skew allowance `skew`, when
//! `issued_at <= now + skew` and `now < expires_at + skew`: `expires_at` is the first second the
//! token is no longer valid (give or take the skew).
//!
//! The landing URL is what the browser will be redirected to. adclick parses it with the WHATWG
//! URL rules (the `url` crate) and redirects to its serialisation, which may differ in form from
//! the signed bytes (`HTTP://Example.com` becomes `http://example.com/`); a signer that wants the
//! two to match signs serialised URLs. URLs with a user name or password are refused on both sides:
//! `https://bank.example@evil.example/` reads as a bank's address to a person and is not one, and
//! no landing page needs credentials in its URL.
//!
//! # Format, version 2
//!
//! Version 2 adds two optional claims: who clicked (a user hash) and what the click costs (a
//! price). Its binary token is version 1's fields 2–11, unchanged, behind the version byte `0x02`,
//! then an extension field, then the tag:
//!
//! | # | field | size | content |
//! |---|---|---|---|
//! | 1 | version | 1 byte | `0x02` |
//! | 2–11 | as version 1 | | key id length, key id, impression id, ad, campaign and advertiser ids, issued at, lifetime, landing URL length, landing URL |
//! | 12 | presence | 1 byte | bit 0 (`0x01`): field 13 follows; bit 1 (`0x02`): field 14 follows; at least one of the two set, no other bit set |
//! | 13 | user hash | 8 bytes, only if bit 0 | big-endian `u64`, non-zero: the placement side's salted hash of the user or device identity, as click.proto's `user_hash` defines it (the first 8 bytes of SHA-256(salt ‖ id)); never a raw id |
//! | 14 | price | varint, only if bit 1 | the click's price in micro-units (millionths) of the campaign's currency: 2.50 in the campaign's currency is `2500000`; 0 is a price (a free click), not its absence |
//! | 15 | tag | 32 bytes | HMAC-SHA256 as in version 1, over fields 1–14 (every byte before the tag) |
//!
//! Nothing follows the tag, and nothing may lie between the last field present and the tag.
//! Everything else is read as in version 1: the tag is the last 32 bytes and is checked before
//! field 4 onwards is read; the validity window and the landing URL's rules are the same.
//!
//! Why it is built so:
//!
//! - **Version 1 stays.** A signer writes version 1 whenever neither claim is present, so every
//!   token without them is byte for byte what it was, and verifiers read both versions. A
//!   version 2 token whose presence byte is `0x00` is refused: one set of claims has one token.
//! - **Unknown presence bits are refused, not skipped.** A later version may put a field behind
//!   a new bit; a verifier that skipped the bit would read that field's bytes as the next field it
//!   knows, or count a click whose terms it cannot see. It refuses the token instead, so a
//!   version 2 verifier never misreads a later version's token.
//! - **Roll out verifiers before signers.** A version 1 verifier refuses a version 2 token
//!   outright (unsupported version), so every verifier must read version 2 before any signer
//!   issues it. The version byte and the extension are under the tag: a version 2 token cannot be
//!   turned into a version 1 token, or lose its price, without the key.
//!
//! # Size
//!
//! A token is `ceil(4 n / 3)` characters for `n` binary bytes, and `n = 56 + K + L + v`, where
//! `v` counts the varint bytes beyond one per varint. A typical token is **120 bytes, 160
//! characters**: key id `k1`, an ad id in the millions (4 varint bytes), a campaign id in the
//! hundred thousands (3), an advertiser id in the thousands (2), a current issue time (5), a one-day
//! lifetime (3) and a 50-byte landing URL; that is 70 bytes around the URL, so about 93 characters
//! plus 4/3 of the URL's length.
//!
//! Version 2 adds the presence byte, 8 bytes for a user hash and the price's varint:
//! `n = 57 + K + L + v + 8 u + p`, where `u` and `p` are 1 when the user hash and the price are
//! present (0 otherwise) and `v` also counts the price's varint bytes beyond one. The typical
//! token with a user hash and a price of 0.25 (`250000`, 3 varint bytes) is **132 bytes, 176
//! characters**. The longest accepted is [`MAX_TOKEN_LEN`] characters (a version 2 token with
//! both claims and every field at its longest); verification refuses longer input before
//! decoding it.
//!
//! # Keys
//!
//! Secrets are at least 32 bytes (given in hex in configuration). A [`Verifier`] holds every key
//! accepted, by id; one of them signs (a [`Signer`]). Rotation: add the new key everywhere that
//! verifies, switch signing to it, and remove the old one once the last token it signed expired.
//!
//! # Example
//!
//! ```
//! use adclick_click::token::{Claims, TokenKey, Verifier, Url};
//!
//! let key = TokenKey::from_hex("k1", &"2a".repeat(32)).unwrap();
//! let verifier = Verifier::new([key], 30).unwrap();
//! let signer = verifier.signer("k1").unwrap();
//! let claims = Claims {
//!     impression_id: [7; 16],
//!     ad_id: 981_234,
//!     campaign_id: 4_321,
//!     advertiser_id: 17,
//!     landing_url: Url::parse("https://shop.example/spring-sale").unwrap(),
//!     issued_at_secs: 1_790_000_000,
//!     expires_at_secs: 1_790_086_400,
//!     user_hash: None,
//!     price_micros: None,
//! };
//! let token = signer.sign(&claims).unwrap(); // version 1: neither optional claim
//! let verified = verifier.verify(&token, 1_790_000_100).unwrap();
//! assert_eq!(verified.claims, claims);
//! assert_eq!(verified.key_id, "k1");
//!
//! // Version 2: who clicked (the placement side's salted hash) and the click's price.
//! let priced = Claims { user_hash: Some(0x5eed_0f_a11ce), price_micros: Some(250_000), ..claims };
//! let token = signer.sign(&priced).unwrap();
//! assert_eq!(verifier.verify(&token, 1_790_000_100).unwrap().claims, priced);
//! ```

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::Mac;

pub use url::Url;

use crate::wire::IMPRESSION_ID_LEN;

mod bytes;
mod error;
mod ext;
mod keys;

use bytes::{Reader, put_varint};
pub use error::{InvalidClaims, Malformed, TokenError};
use ext::Extension;
pub use ext::{MAX_EXTENSION_BYTES, USER_HASH_LEN};
pub use keys::{KeyError, KeyIdError, TokenKey, validate_key_id};

/// Clock-skew allowance when configuration gives none, in seconds.
pub const DEFAULT_CLOCK_SKEW_SECS: u64 = 30;
/// Format version 1: no optional claims. Written for claims without user hash and price.
pub const VERSION_1: u8 = 1;
/// Format version 2: version 1 and an extension with a user hash, a price or both.
pub const VERSION_2: u8 = 2;
/// Longest key id, in bytes.
pub const MAX_KEY_ID_LEN: usize = 16;
/// Shortest secret, in bytes: HMAC-SHA256's own output size, below which a key is weaker than the tag.
pub const MIN_SECRET_LEN: usize = 32;
/// Longest landing URL, in bytes: what browsers and proxies reliably carry in a path.
pub const MAX_URL_LEN: usize = 2048;
/// Length of the HMAC-SHA256 tag.
pub const TAG_LEN: usize = 32;
/// Longest varint: a `u64` in 7-bit groups.
const MAX_VARINT_LEN: usize = 10;
/// Varint length of [`MAX_URL_LEN`].
const MAX_URL_LEN_VARINT_LEN: usize = 2;
/// Shortest binary token: one-byte key id, one-byte varints, empty URL (refused later, but the
/// structural minimum is what bounds reading).
pub const MIN_TOKEN_BYTES: usize = 1 + 1 + 1 + IMPRESSION_ID_LEN + 5 + 1 + TAG_LEN;
/// Longest binary token, give or take one byte: a version 2 token with both optional claims.
/// (Issue time and lifetime cannot both take ten varint bytes, as their sum fits a `u64`.)
pub const MAX_TOKEN_BYTES: usize = 1
    + 1
    + MAX_KEY_ID_LEN
    + IMPRESSION_ID_LEN
    + 5 * MAX_VARINT_LEN
    + MAX_URL_LEN_VARINT_LEN
    + MAX_URL_LEN
    + MAX_EXTENSION_BYTES
    + TAG_LEN;
/// Longest token text, in characters (unpadded base64 of [`MAX_TOKEN_BYTES`]).
pub const MAX_TOKEN_LEN: usize = (MAX_TOKEN_BYTES * 4).div_ceil(3);

/// What a token asserts about one impression. Every field is covered by the tag.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Claims {
    /// 128 random bits naming the impression; a click counts once per impression.
    pub impression_id: [u8; IMPRESSION_ID_LEN],
    pub ad_id: u64,
    pub campaign_id: u64,
    pub advertiser_id: u64,
    /// Where the click redirects to: `http` or `https`, no credentials.
    pub landing_url: Url,
    /// Unix time, seconds, the token was issued.
    pub issued_at_secs: u64,
    /// Unix time, seconds, from which the token is no longer valid (not before `issued_at_secs`).
    pub expires_at_secs: u64,
    /// Who clicked, when the placement side knows (version 2): its salted hash of the user or
    /// device identity, as click.proto's `user_hash` defines it; never a raw id. Non-zero (0 is
    /// click.proto's "unknown", which a token says with `None`).
    pub user_hash: Option<u64>,
    /// What the click costs, in micro-units of the campaign's currency (version 2).
    pub price_micros: Option<u64>,
}

impl Claims {
    /// The format version a signer writes these claims in: 2 when they carry a user hash or a
    /// price, else 1.
    pub fn version(&self) -> u8 {
        if self.user_hash.is_none() && self.price_micros.is_none() {
            VERSION_1
        } else {
            VERSION_2
        }
    }

    /// Seconds between issue and expiry, as encoded (zero if the claims are inconsistent).
    pub fn lifetime_secs(&self) -> u64 {
        self.expires_at_secs.saturating_sub(self.issued_at_secs)
    }

    /// Checks what a signer promises: non-zero ids and user hash, a signable URL, expiry not
    /// before issue.
    pub fn validate(&self) -> Result<(), InvalidClaims> {
        if let Some(field) = zero_id_field(self.ad_id, self.campaign_id, self.advertiser_id) {
            return Err(InvalidClaims::ZeroId(field));
        }
        if self.user_hash == Some(0) {
            return Err(InvalidClaims::ZeroId("user hash"));
        }
        if let Some(refusal) = url_refusal(&self.landing_url) {
            return Err(match refusal {
                UrlRefusal::Scheme(scheme) => InvalidClaims::BadUrlScheme(scheme),
                UrlRefusal::Credentials => InvalidClaims::UrlCredentials,
            });
        }
        let url_len = self.landing_url.as_str().len();
        if url_len > MAX_URL_LEN {
            return Err(InvalidClaims::UrlTooLong(url_len));
        }
        if self.expires_at_secs < self.issued_at_secs {
            return Err(InvalidClaims::ExpiresBeforeIssued {
                issued_at_secs: self.issued_at_secs,
                expires_at_secs: self.expires_at_secs,
            });
        }
        Ok(())
    }
}

/// A fresh random impression id.
pub fn random_impression_id() -> [u8; IMPRESSION_ID_LEN] {
    rand::random()
}

/// The current Unix time in seconds (0 if the clock is before 1970).
pub fn unix_now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Signs tokens with one key.
#[derive(Debug, Clone)]
pub struct Signer {
    key: TokenKey,
}

impl Signer {
    pub fn new(key: TokenKey) -> Signer {
        Signer { key }
    }

    pub fn key_id(&self) -> &str {
        self.key.id()
    }

    /// The token for `claims`, after checking them ([`Claims::validate`]): version 1 when they
    /// carry neither user hash nor price, so such tokens are exactly what they were before
    /// version 2; version 2 otherwise.
    pub fn sign(&self, claims: &Claims) -> Result<String, InvalidClaims> {
        claims.validate()?;
        let url = claims.landing_url.as_str().as_bytes();
        let key_id = self.key.id.as_bytes();
        let extension = Extension {
            user_hash: claims.user_hash,
            price_micros: claims.price_micros,
        };
        let mut binary = Vec::with_capacity(
            MIN_TOKEN_BYTES + key_id.len() + url.len() + 4 * MAX_VARINT_LEN + MAX_EXTENSION_BYTES,
        );
        binary.push(claims.version());
        // Key id length fits a byte: TokenKey::new checked it is at most MAX_KEY_ID_LEN.
        binary.push(key_id.len() as u8);
        binary.extend_from_slice(key_id);
        binary.extend_from_slice(&claims.impression_id);
        for value in [
            claims.ad_id,
            claims.campaign_id,
            claims.advertiser_id,
            claims.issued_at_secs,
            claims.lifetime_secs(),
            url.len() as u64,
        ] {
            put_varint(&mut binary, value);
        }
        binary.extend_from_slice(url);
        if claims.version() == VERSION_2 {
            extension.put(&mut binary);
        }
        let mut mac = self.key.keyed_mac.clone();
        mac.update(&binary);
        binary.extend_from_slice(&mac.finalize().into_bytes());
        Ok(URL_SAFE_NO_PAD.encode(&binary))
    }
}

/// A token that verified: its claims and the id of the key that signed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub key_id: String,
    pub claims: Claims,
}

/// Verifies tokens against every key it holds, with a clock-skew allowance.
#[derive(Debug, Clone)]
pub struct Verifier {
    /// Few keys (current and previous): a linear search beats hashing.
    keys: Vec<TokenKey>,
    clock_skew_secs: u64,
}

impl Verifier {
    /// A verifier accepting `keys` (at least one, distinct ids).
    pub fn new(
        keys: impl IntoIterator<Item = TokenKey>,
        clock_skew_secs: u64,
    ) -> Result<Verifier, KeyError> {
        let mut held: Vec<TokenKey> = Vec::new();
        for key in keys {
            if held.iter().any(|k| k.id == key.id) {
                return Err(KeyError::DuplicateKeyId(key.id));
            }
            held.push(key);
        }
        if held.is_empty() {
            return Err(KeyError::NoKeys);
        }
        Ok(Verifier {
            keys: held,
            clock_skew_secs,
        })
    }

    /// A verifier from `(id, hex secret)` pairs, as configuration gives them.
    pub fn from_hex<'a>(
        keys: impl IntoIterator<Item = (&'a str, &'a str)>,
        clock_skew_secs: u64,
    ) -> Result<Verifier, KeyError> {
        let keys = keys
            .into_iter()
            .map(|(id, secret_hex)| TokenKey::from_hex(id, secret_hex))
            .collect::<Result<Vec<_>, _>>()?;
        Verifier::new(keys, clock_skew_secs)
    }

    /// A signer with the held key `key_id`.
    pub fn signer(&self, key_id: &str) -> Result<Signer, KeyError> {
        self.keys
            .iter()
            .find(|k| k.id == key_id)
            .map(|k| Signer::new(k.clone()))
            .ok_or_else(|| KeyError::UnknownSigningKey(key_id.to_string()))
    }

    /// Ids of the keys accepted.
    pub fn key_ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(TokenKey::id)
    }

    pub fn clock_skew_secs(&self) -> u64 {
        self.clock_skew_secs
    }

    /// Verifies `token` (text, as in the click URL) at Unix second `now_secs`.
    ///
    /// Checks, in order: length, base64, version (1 or 2), key id, tag, the fields' encoding
    /// (version 2's extension included), the landing URL, then issue and expiry times; the first
    /// failure is the one reported. Never panics.
    pub fn verify(&self, token: impl AsRef<[u8]>, now_secs: u64) -> Result<Verified, TokenError> {
        let text = token.as_ref();
        // Bound the work before decoding: a long path costs one comparison.
        if text.len() > MAX_TOKEN_LEN {
            return Err(TokenError::TooLong(text.len()));
        }
        let mut buffer = [0u8; MAX_TOKEN_BYTES];
        let binary_len = URL_SAFE_NO_PAD
            .decode_slice(text, &mut buffer)
            .map_err(|_| Malformed::NotBase64)?;
        let binary = &buffer[..binary_len];
        if binary.len() < MIN_TOKEN_BYTES {
            return Err(Malformed::TooShort(binary.len()).into());
        }
        let (signed, tag) = binary.split_at(binary.len() - TAG_LEN);

        let mut reader = Reader { rest: signed };
        let version = reader.byte("version")?;
        if version != VERSION_1 && version != VERSION_2 {
            return Err(Malformed::UnsupportedVersion(version).into());
        }
        let key_id_len = reader.byte("key id length")?;
        let key_id = reader.take(usize::from(key_id_len), "key id")?;
        validate_key_id(key_id).map_err(Malformed::KeyId)?;
        let key = self
            .keys
            .iter()
            .find(|k| k.id.as_bytes() == key_id)
            .ok_or_else(|| TokenError::UnknownKey(String::from_utf8_lossy(key_id).into_owned()))?;

        let mut mac = key.keyed_mac.clone();
        mac.update(signed);
        // verify_slice compares in constant time, so timing reveals nothing of the expected tag.
        mac.verify_slice(tag)
            .map_err(|_| TokenError::BadSignature)?;

        // Only now, with the bytes known to come from a key holder, read the claims.
        let claims = read_claims(&mut reader, version)?;
        if let Some(refusal) = url_refusal(&claims.landing_url) {
            return Err(match refusal {
                UrlRefusal::Scheme(scheme) => TokenError::BadUrlScheme(scheme),
                UrlRefusal::Credentials => TokenError::UrlCredentials,
            });
        }
        let skew_secs = self.clock_skew_secs;
        if claims.issued_at_secs > now_secs.saturating_add(skew_secs) {
            return Err(TokenError::NotYetValid {
                issued_at_secs: claims.issued_at_secs,
                now_secs,
                skew_secs,
            });
        }
        if now_secs >= claims.expires_at_secs.saturating_add(skew_secs) {
            return Err(TokenError::Expired {
                expires_at_secs: claims.expires_at_secs,
                now_secs,
                skew_secs,
            });
        }
        Ok(Verified {
            key_id: key.id.clone(),
            claims,
        })
    }

    /// [`Verifier::verify`] at the current time.
    pub fn verify_now(&self, token: impl AsRef<[u8]>) -> Result<Verified, TokenError> {
        self.verify(token, unix_now_secs())
    }
}

/// Reads fields 4–11 (after the key id), version 2's extension, and checks nothing follows.
fn read_claims(reader: &mut Reader<'_>, version: u8) -> Result<Claims, Malformed> {
    let impression_id: [u8; IMPRESSION_ID_LEN] = reader
        .take(IMPRESSION_ID_LEN, "impression id")?
        .try_into()
        .map_err(|_| Malformed::Truncated("impression id"))?;
    let ad_id = reader.varint("ad id")?;
    let campaign_id = reader.varint("campaign id")?;
    let advertiser_id = reader.varint("advertiser id")?;
    if let Some(field) = zero_id_field(ad_id, campaign_id, advertiser_id) {
        return Err(Malformed::ZeroId(field));
    }
    let issued_at_secs = reader.varint("issue time")?;
    let lifetime_secs = reader.varint("lifetime")?;
    let expires_at_secs = issued_at_secs
        .checked_add(lifetime_secs)
        .ok_or(Malformed::ExpiryOverflow)?;
    let url_len = reader.varint("landing URL length")?;
    let url_len = match usize::try_from(url_len) {
        Ok(len) if (1..=MAX_URL_LEN).contains(&len) => len,
        _ => return Err(Malformed::UrlLength(url_len)),
    };
    let url_bytes = reader.take(url_len, "landing URL")?;
    let extension = if version == VERSION_2 {
        Extension::read(reader)?
    } else {
        Extension::default()
    };
    if !reader.rest.is_empty() {
        return Err(Malformed::TrailingBytes(reader.rest.len()));
    }
    let url_text = std::str::from_utf8(url_bytes).map_err(|_| Malformed::UrlNotUtf8)?;
    let landing_url = Url::parse(url_text).map_err(Malformed::UrlUnparsable)?;
    Ok(Claims {
        impression_id,
        ad_id,
        campaign_id,
        advertiser_id,
        landing_url,
        issued_at_secs,
        expires_at_secs,
        user_hash: extension.user_hash,
        price_micros: extension.price_micros,
    })
}

/// The name of the first zero id, if any.
fn zero_id_field(ad_id: u64, campaign_id: u64, advertiser_id: u64) -> Option<&'static str> {
    [
        ("ad id", ad_id),
        ("campaign id", campaign_id),
        ("advertiser id", advertiser_id),
    ]
    .into_iter()
    .find(|(_, id)| *id == 0)
    .map(|(field, _)| field)
}

/// Why a parsed landing URL may not be signed or followed.
enum UrlRefusal {
    Scheme(String),
    Credentials,
}

fn url_refusal(url: &Url) -> Option<UrlRefusal> {
    if !matches!(url.scheme(), "http" | "https") {
        return Some(UrlRefusal::Scheme(url.scheme().to_string()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Some(UrlRefusal::Credentials);
    }
    None
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_v2;
