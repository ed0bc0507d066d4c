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
//! # Size
//!
//! A token is `ceil(4 n / 3)` characters for `n` binary bytes, and `n = 56 + K + L + v`, where
//! `v` counts the varint bytes beyond one per varint. A typical token is **120 bytes, 160
//! characters**: key id `k1`, an ad id in the millions (4 varint bytes), a campaign id in the
//! hundred thousands (3), an advertiser id in the thousands (2), a current issue time (5), a one-day
//! lifetime (3) and a 50-byte landing URL; that is 70 bytes around the URL, so about 93 characters
//! plus 4/3 of the URL's length. The longest accepted is [`MAX_TOKEN_LEN`]
//! characters; verification refuses longer input before decoding it.
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
//! };
//! let token = signer.sign(&claims).unwrap();
//! let verified = verifier.verify(&token, 1_790_000_100).unwrap();
//! assert_eq!(verified.claims, claims);
//! assert_eq!(verified.key_id, "k1");
//! ```

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::Mac;
use thiserror::Error;

pub use url::Url;

use crate::wire::IMPRESSION_ID_LEN;

mod bytes;
mod keys;

use bytes::{Reader, put_varint};
pub use keys::{KeyError, KeyIdError, TokenKey, validate_key_id};

/// Clock-skew allowance when configuration gives none, in seconds.
pub const DEFAULT_CLOCK_SKEW_SECS: u64 = 30;
/// The only format version this build reads and writes.
pub const VERSION: u8 = 1;
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
/// Longest binary token, give or take one byte: issue time and lifetime cannot both take ten varint
/// bytes, as their sum fits a `u64`.
pub const MAX_TOKEN_BYTES: usize = 1
    + 1
    + MAX_KEY_ID_LEN
    + IMPRESSION_ID_LEN
    + 5 * MAX_VARINT_LEN
    + MAX_URL_LEN_VARINT_LEN
    + MAX_URL_LEN
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
}

impl Claims {
    /// Seconds between issue and expiry, as encoded (zero if the claims are inconsistent).
    pub fn lifetime_secs(&self) -> u64 {
        self.expires_at_secs.saturating_sub(self.issued_at_secs)
    }

    /// Checks what a signer promises: non-zero ids, a signable URL, expiry not before issue.
    pub fn validate(&self) -> Result<(), InvalidClaims> {
        if let Some(field) = zero_id_field(self.ad_id, self.campaign_id, self.advertiser_id) {
            return Err(InvalidClaims::ZeroId(field));
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

/// Why claims cannot be signed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InvalidClaims {
    #[error("{0} is zero")]
    ZeroId(&'static str),
    #[error("landing URL scheme `{0}` is not http or https")]
    BadUrlScheme(String),
    #[error("landing URL carries a user name or password")]
    UrlCredentials,
    #[error("landing URL is {0} bytes, longer than {MAX_URL_LEN}")]
    UrlTooLong(usize),
    #[error("expires at {expires_at_secs}, before it is issued at {issued_at_secs}")]
    ExpiresBeforeIssued {
        issued_at_secs: u64,
        expires_at_secs: u64,
    },
}

/// Why a token is refused. Each reason is its own variant; [`TokenError::reason`] names it for
/// metrics and logs.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TokenError {
    /// Longer than [`MAX_TOKEN_LEN`]: refused before any decoding.
    #[error("token is {0} bytes long, more than {MAX_TOKEN_LEN}")]
    TooLong(usize),
    /// Not a token of this format; says what is wrong.
    #[error("malformed token: {0}")]
    Malformed(Malformed),
    /// Well formed, signed with a key id this verifier does not hold.
    #[error("token signed with unknown key id `{0}`")]
    UnknownKey(String),
    /// The tag does not match: forged or altered.
    #[error("token signature does not match")]
    BadSignature,
    #[error("token expired at {expires_at_secs} (now {now_secs}, skew allowance {skew_secs} s)")]
    Expired {
        expires_at_secs: u64,
        now_secs: u64,
        skew_secs: u64,
    },
    #[error(
        "token issued at {issued_at_secs}, in the future (now {now_secs}, skew allowance {skew_secs} s)"
    )]
    NotYetValid {
        issued_at_secs: u64,
        now_secs: u64,
        skew_secs: u64,
    },
    /// Signed, but the landing URL is not http or https.
    #[error("landing URL scheme `{0}` is not http or https")]
    BadUrlScheme(String),
    /// Signed, but the landing URL carries a user name or password.
    #[error("landing URL carries a user name or password")]
    UrlCredentials,
}

impl TokenError {
    /// A short stable name of the reason (`malformed`, `expired`, …) for metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::TooLong(_) => "too_long",
            Self::Malformed(_) => "malformed",
            Self::UnknownKey(_) => "unknown_key",
            Self::BadSignature => "bad_signature",
            Self::Expired { .. } => "expired",
            Self::NotYetValid { .. } => "not_yet_valid",
            Self::BadUrlScheme(_) => "bad_url_scheme",
            Self::UrlCredentials => "url_credentials",
        }
    }
}

/// What makes a token malformed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Malformed {
    #[error("not unpadded URL-safe base64")]
    NotBase64,
    #[error("{0} bytes, shorter than any token ({MIN_TOKEN_BYTES})")]
    TooShort(usize),
    #[error("format version {0}, this build reads version {VERSION}")]
    UnsupportedVersion(u8),
    #[error("key id: {0}")]
    KeyId(KeyIdError),
    #[error("ends inside the {0}")]
    Truncated(&'static str),
    #[error("{0} is not a minimal LEB128 varint of at most 64 bits")]
    BadVarint(&'static str),
    #[error("{0} is zero")]
    ZeroId(&'static str),
    #[error("issue time plus lifetime overflows")]
    ExpiryOverflow,
    #[error("landing URL length {0} is not in 1..={MAX_URL_LEN}")]
    UrlLength(u64),
    #[error("landing URL is not UTF-8")]
    UrlNotUtf8,
    #[error("landing URL does not parse: {0}")]
    UrlUnparsable(url::ParseError),
    #[error("{0} unexpected bytes between the landing URL and the tag")]
    TrailingBytes(usize),
}

impl From<Malformed> for TokenError {
    fn from(malformed: Malformed) -> TokenError {
        TokenError::Malformed(malformed)
    }
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

    /// The token for `claims`, after checking them ([`Claims::validate`]).
    pub fn sign(&self, claims: &Claims) -> Result<String, InvalidClaims> {
        claims.validate()?;
        let url = claims.landing_url.as_str().as_bytes();
        let key_id = self.key.id.as_bytes();
        let mut binary =
            Vec::with_capacity(MIN_TOKEN_BYTES + key_id.len() + url.len() + 4 * MAX_VARINT_LEN);
        binary.push(VERSION);
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
    /// Checks, in order: length, base64, version, key id, tag, the fields' encoding, the landing
    /// URL, then issue and expiry times; the first failure is the one reported. Never panics.
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
        if version != VERSION {
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
        let claims = read_claims(&mut reader)?;
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

/// Reads fields 4–11 (after the key id) and checks nothing follows them.
fn read_claims(reader: &mut Reader<'_>) -> Result<Claims, Malformed> {
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
