//! Token keys: an id and an HMAC-SHA256 secret each, several at once so that a key can be
//! rotated (sign with the new one while the old one still verifies).

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use thiserror::Error;

use super::{MAX_KEY_ID_LEN, MIN_SECRET_LEN};

/// Why a key id is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KeyIdError {
    #[error("length {0} is not in 1..={MAX_KEY_ID_LEN}")]
    Length(usize),
    #[error("contains a character other than ASCII letters, digits, `-`, `_`, `.`")]
    Characters,
}

/// Why a key or key set cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KeyError {
    #[error("key id `{id}`: {reason}")]
    BadKeyId { id: String, reason: KeyIdError },
    #[error("key `{id}`: secret is not hex")]
    SecretNotHex { id: String },
    #[error("key `{id}`: secret is {len} bytes, at least {MIN_SECRET_LEN} are required")]
    SecretTooShort { id: String, len: usize },
    #[error("key id `{0}` given twice")]
    DuplicateKeyId(String),
    #[error("no token keys configured")]
    NoKeys,
    #[error("signing key id `{0}` is not among the keys")]
    UnknownSigningKey(String),
}

/// Checks a key id's syntax.
pub fn validate_key_id(id: &[u8]) -> Result<(), KeyIdError> {
    if id.is_empty() || id.len() > MAX_KEY_ID_LEN {
        return Err(KeyIdError::Length(id.len()));
    }
    if !id
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(KeyIdError::Characters);
    }
    Ok(())
}

pub(super) type HmacSha256 = Hmac<Sha256>;

/// One HMAC key and its id. The secret is not kept: the keyed MAC state is, which is cloned per
/// token so the key schedule is computed once.
#[derive(Clone)]
pub struct TokenKey {
    pub(super) id: String,
    pub(super) keyed_mac: HmacSha256,
}

impl TokenKey {
    /// A key from its id and raw secret (at least [`MIN_SECRET_LEN`] bytes).
    pub fn new(id: &str, secret: &[u8]) -> Result<TokenKey, KeyError> {
        validate_key_id(id.as_bytes()).map_err(|reason| KeyError::BadKeyId {
            id: id.to_string(),
            reason,
        })?;
        if secret.len() < MIN_SECRET_LEN {
            return Err(KeyError::SecretTooShort {
                id: id.to_string(),
                len: secret.len(),
            });
        }
        let keyed_mac =
            HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length");
        Ok(TokenKey {
            id: id.to_string(),
            keyed_mac,
        })
    }

    /// A key from its id and hex-encoded secret, as configuration gives it.
    pub fn from_hex(id: &str, secret_hex: &str) -> Result<TokenKey, KeyError> {
        let secret = hex::decode(secret_hex.trim())
            .map_err(|_| KeyError::SecretNotHex { id: id.to_string() })?;
        TokenKey::new(id, &secret)
    }

    pub fn id(&self) -> &str {
        &self.id
    }
}

impl fmt::Debug for TokenKey {
    // Only the id: a secret must not reach a log through `{:?}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}
