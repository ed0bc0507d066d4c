//! Why claims cannot be signed and why a token is refused: one variant per reason, so that
//! metrics, logs and tests can tell them apart.

use thiserror::Error;

use super::{KeyIdError, MAX_TOKEN_LEN, MAX_URL_LEN, MIN_TOKEN_BYTES};

/// Why claims cannot be signed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InvalidClaims {
    /// An id, or a user hash that is present, is zero (for the user hash, 0 is click.proto's
    /// "unknown", which a token says by leaving the hash out).
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
    #[error("format version {0}, this build reads versions 1 and 2")]
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
    /// Version 2's presence byte sets a bit this build does not know (a later version's field).
    #[error("extension presence byte {0:#04x} sets bits this build does not know")]
    UnknownExtension(u8),
    /// Version 2 with nothing in its extension: such claims are written as version 1.
    #[error("version 2 token with an empty extension (such claims are version 1)")]
    EmptyExtension,
    #[error("{0} unexpected bytes before the tag")]
    TrailingBytes(usize),
}

impl From<Malformed> for TokenError {
    fn from(malformed: Malformed) -> TokenError {
        TokenError::Malformed(malformed)
    }
}
