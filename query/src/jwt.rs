//! JSON Web Tokens as the gateway's other credential: the `[query.jwt]` section (one algorithm,
//! one key), the verification of a presented token, and the caller its claims name.
//!
//! Exactly one algorithm is accepted, the configured one: a token whose header names another —
//! `none`, or HS256 signed with the RS256 public key as its secret (algorithm confusion) — is
//! refused before any signature is computed. `exp` is required, `nbf` checked when present, both
//! with `leeway_s` of clock skew; `aud` and `iss` must match when configured, and with no
//! `audience` configured a token that names one is refused (RFC 7519 §4.1.3: we are in no
//! audience). The caller comes from `advertiser_claim` (a decimal string or a JSON integer) or,
//! when `operator_claim` is set, from that claim being `true`; both at once is ambiguous, refused.
//!
//! ```toml
//! [query.jwt]
//! algorithm = "RS256"
//! key_file = "/etc/adclick/jwt-issuer.pub.pem"
//! audience = "adclick-query"
//! issuer = "https://login.example.com"
//! operator_claim = "adclick_operator"
//! ```

use std::path::{Path, PathBuf};

use base64::Engine as _;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{DecodingKey, DecodingKeyKind, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::caller::Caller;

/// Longer tokens are not looked at (neither by [`looks_like_jwt`] nor verified): real ones are a
/// few hundred bytes, and this keeps the cost of a garbage `Authorization` header bounded.
const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// 256 bits, HMAC-SHA256's output size: RFC 7518 §3.2's minimum for an HS256 key.
const MIN_HS256_SECRET_BYTES: usize = 32;
/// More leeway lets every expired token live that much longer; 5 minutes covers any clock skew.
const MAX_LEEWAY_S: u64 = 300;
/// What aws-lc verifies RS256 with (`RSA_PKCS1_2048_8192_SHA256`): other keys would fail every
/// token, so they are refused at load.
const RSA_BITS: std::ops::RangeInclusive<usize> = 2048..=8192;

/// The one algorithm a `[query.jwt]` section accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum JwtAlgorithm {
    /// HMAC-SHA256: `key_file` holds the shared secret.
    #[serde(rename = "HS256")]
    Hs256,
    /// RSASSA-PKCS1-v1_5 with SHA-256: `key_file` holds the issuer's PEM public key.
    #[serde(rename = "RS256")]
    Rs256,
    /// ECDSA P-256 with SHA-256: `key_file` holds the issuer's PEM public key.
    #[serde(rename = "ES256")]
    Es256,
}

impl JwtAlgorithm {
    /// The name a token's header carries as `alg`.
    pub fn name(self) -> &'static str {
        match self {
            JwtAlgorithm::Hs256 => "HS256",
            JwtAlgorithm::Rs256 => "RS256",
            JwtAlgorithm::Es256 => "ES256",
        }
    }

    fn jsonwebtoken(self) -> jsonwebtoken::Algorithm {
        match self {
            JwtAlgorithm::Hs256 => jsonwebtoken::Algorithm::HS256,
            JwtAlgorithm::Rs256 => jsonwebtoken::Algorithm::RS256,
            JwtAlgorithm::Es256 => jsonwebtoken::Algorithm::ES256,
        }
    }
}

/// `[query.jwt]`: JWTs accepted besides API keys. The default (no `key_file`) accepts none.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JwtConfig {
    /// Required with a `key_file`: never guessed, since HS256 with a public key as its secret
    /// would let anyone holding that public key sign tokens.
    pub algorithm: Option<JwtAlgorithm>,
    /// HS256: the shared secret (the file's bytes, trailing newline trimmed, at least 32);
    /// RS256, ES256: the issuer's PEM public key. Empty: JWTs are not accepted.
    pub key_file: PathBuf,
    /// When set, a token's `aud` must name it (and a token without `aud` is refused).
    pub audience: Option<String>,
    /// When set, a token's `iss` must be it (and a token without `iss` is refused).
    pub issuer: Option<String>,
    /// The claim naming the advertiser: a decimal string or a JSON integer.
    pub advertiser_claim: String,
    /// Empty: operators cannot use JWTs. Otherwise a claim of this name equal to `true` makes
    /// the caller an operator.
    pub operator_claim: String,
    /// Clock skew allowed on `exp` and `nbf`, seconds (at most 300).
    pub leeway_s: u64,
}

impl Default for JwtConfig {
    fn default() -> Self {
        JwtConfig {
            algorithm: None,
            key_file: PathBuf::new(),
            audience: None,
            issuer: None,
            advertiser_claim: "advertiser_id".into(),
            operator_claim: String::new(),
            leeway_s: 30,
        }
    }
}

/// Why a `[query.jwt]` section cannot be used; names the file, never shows key material.
#[derive(Debug, thiserror::Error)]
pub enum JwtConfigError {
    #[error("[query.jwt] {field} {reason}")]
    Field {
        field: &'static str,
        reason: &'static str,
    },
    #[error("reading the JWT key file {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "JWT key file {path}: the HS256 secret is {len} bytes, at least {MIN_HS256_SECRET_BYTES} are needed"
    )]
    ShortSecret { path: String, len: usize },
    #[error("JWT key file {path}: {reason}")]
    Key { path: String, reason: &'static str },
    #[error("JWT key file {path}: not a PEM {algorithm} public key")]
    Pem {
        path: String,
        algorithm: &'static str,
        #[source]
        source: jsonwebtoken::errors::Error,
    },
}

/// Why a token is refused. The gateway logs the reason and answers every one with the same 401.
/// Nothing the token carries is shown but the name of its `alg`, and that only when short and
/// alphanumeric.
#[derive(Debug, thiserror::Error)]
pub enum JwtRejection {
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    #[error("the token's alg ({presented}) is not the one configured")]
    Algorithm { presented: String },
    #[error("the signature does not verify")]
    Signature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet (nbf)")]
    NotYetValid,
    #[error("the token is for another audience (aud)")]
    Audience,
    #[error("the token is from another issuer (iss)")]
    Issuer,
    #[error("the token has no `{0}` claim")]
    MissingClaim(String),
    #[error("the token's `{claim}` claim is {reason}")]
    BadClaim { claim: String, reason: &'static str },
    #[error(
        "the token names both an advertiser (`{advertiser_claim}`) and an operator (`{operator_claim}`)"
    )]
    Ambiguous {
        advertiser_claim: String,
        operator_claim: String,
    },
    #[error("refused by jsonwebtoken")]
    Other(#[source] jsonwebtoken::errors::Error),
}

/// Verifies tokens against one `[query.jwt]` section.
pub struct JwtVerifier {
    algorithm: JwtAlgorithm,
    key: DecodingKey,
    validation: Validation,
    advertiser_claim: String,
    operator_claim: Option<String>,
    key_file: PathBuf,
}

/// The key is not shown (an HS256 secret is a password).
impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("algorithm", &self.algorithm)
            .field("key_file", &self.key_file)
            .field("audience", &self.validation.aud)
            .field("issuer", &self.validation.iss)
            .field("advertiser_claim", &self.advertiser_claim)
            .field("operator_claim", &self.operator_claim)
            .field("leeway_s", &self.validation.leeway)
            .finish()
    }
}

impl JwtVerifier {
    /// The verifier `config` describes; None when it has no `key_file` (JWTs not accepted).
    pub fn load(config: &JwtConfig) -> Result<Option<JwtVerifier>, JwtConfigError> {
        let field = |field, reason| Err(JwtConfigError::Field { field, reason });
        if config.key_file.as_os_str().is_empty() {
            if *config != JwtConfig::default() {
                return field(
                    "key_file",
                    "is empty while other keys are set: JWTs would silently not be accepted",
                );
            }
            return Ok(None);
        }
        let Some(algorithm) = config.algorithm else {
            return field(
                "algorithm",
                "is required with a key_file (HS256, RS256 or ES256): it is not guessed from the key",
            );
        };
        if config.advertiser_claim.is_empty() {
            return field("advertiser_claim", "is empty");
        }
        if config.operator_claim == config.advertiser_claim {
            return field("operator_claim", "is the advertiser_claim");
        }
        if config.audience.as_deref() == Some("") || config.issuer.as_deref() == Some("") {
            return field("audience/issuer", "is empty: leave it out not to check it");
        }
        if config.leeway_s > MAX_LEEWAY_S {
            return field("leeway_s", "is above 300 (it extends every token's life)");
        }

        // jsonwebtoken takes its crypto provider from its features and panics at first use when
        // both are on, which another crate of the build could cause; ours is chosen explicitly.
        // An Err means one is installed already (by an earlier load, or deliberately).
        let _ = jsonwebtoken::crypto::CryptoProvider::install_default(
            &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER,
        );
        let key = read_key(&config.key_file, algorithm)?;

        let mut validation = Validation::new(algorithm.jsonwebtoken());
        validation.leeway = config.leeway_s;
        validation.validate_exp = true;
        // Off by default in jsonwebtoken (whose README says otherwise).
        validation.validate_nbf = true;
        let mut required = vec!["exp"];
        if let Some(audience) = &config.audience {
            validation.set_audience(&[audience]);
            required.push("aud");
        }
        if let Some(issuer) = &config.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        validation.set_required_spec_claims(&required);

        Ok(Some(JwtVerifier {
            algorithm,
            key,
            validation,
            advertiser_claim: config.advertiser_claim.clone(),
            operator_claim: (!config.operator_claim.is_empty())
                .then(|| config.operator_claim.clone()),
            key_file: config.key_file.clone(),
        }))
    }

    /// The caller `token` names, if it is signed by the configured key with the configured
    /// algorithm, within its validity and for our audience and issuer.
    pub fn verify(&self, token: &str) -> Result<Caller, JwtRejection> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(JwtRejection::Malformed("longer than 8 KiB"));
        }
        let [header, _, _] =
            segments(token).ok_or(JwtRejection::Malformed("not three dot-separated segments"))?;
        let header = header_json(header)
            .ok_or(JwtRejection::Malformed("the header is not base64url JSON"))?;
        // Checked here before jsonwebtoken checks it again: it reports `none` and names it does
        // not know as a JSON error, where every foreign alg should read as what it is.
        let alg = header
            .get("alg")
            .and_then(Value::as_str)
            .ok_or(JwtRejection::Malformed("the header has no alg"))?;
        if alg != self.algorithm.name() {
            return Err(JwtRejection::Algorithm {
                presented: printable(alg),
            });
        }
        // RFC 7515 §4.1.11: extensions the recipient does not understand must be refused, and
        // jsonwebtoken understands none.
        if header.contains_key("crit") {
            return Err(JwtRejection::Malformed("critical header extensions (crit)"));
        }
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &self.key, &self.validation)
            .map_err(rejection)?;
        self.caller(&data.claims)
    }

    /// The caller the (verified) claims name.
    fn caller(&self, claims: &Map<String, Value>) -> Result<Caller, JwtRejection> {
        let operator = match self.operator_claim.as_ref().map(|c| (c, claims.get(c))) {
            None | Some((_, None | Some(Value::Bool(false)))) => false,
            Some((_, Some(Value::Bool(true)))) => true,
            Some((claim, Some(_))) => {
                return Err(JwtRejection::BadClaim {
                    claim: claim.clone(),
                    reason: "not a boolean",
                });
            }
        };
        let advertiser = claims
            .get(&self.advertiser_claim)
            .map(|value| {
                advertiser_id(value).ok_or_else(|| JwtRejection::BadClaim {
                    claim: self.advertiser_claim.clone(),
                    reason: "neither a non-negative integer nor a decimal string",
                })
            })
            .transpose()?;
        match (advertiser, operator) {
            (Some(id), false) => Ok(Caller::Advertiser(id)),
            (None, true) => Ok(Caller::Operator),
            (Some(_), true) => Err(JwtRejection::Ambiguous {
                advertiser_claim: self.advertiser_claim.clone(),
                operator_claim: self.operator_claim.clone().unwrap_or_default(),
            }),
            (None, false) => Err(JwtRejection::MissingClaim(self.advertiser_claim.clone())),
        }
    }
}

/// Whether `s` has a JWT's shape: three base64url segments (the signature's may be empty) whose
/// first decodes to a JSON object with `alg`. Cheap, so the gateway can ask it of every presented
/// key and verify as a JWT only what looks like one.
pub fn looks_like_jwt(s: &str) -> bool {
    s.len() <= MAX_TOKEN_BYTES
        && segments(s).is_some_and(|[header, claims, signature]| {
            !claims.is_empty()
                && [claims, signature]
                    .iter()
                    .all(|seg| seg.bytes().all(is_base64url))
                && header_json(header).is_some_and(|h| h.contains_key("alg"))
        })
}

/// The three dot-separated segments of a JWS compact serialization.
fn segments(token: &str) -> Option<[&str; 3]> {
    let mut parts = token.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(header), Some(claims), Some(signature), None) => Some([header, claims, signature]),
        _ => None,
    }
}

fn is_base64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// The header segment, decoded: a JSON object, or None.
fn header_json(segment: &str) -> Option<Map<String, Value>> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(segment)
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// An `alg` fit for a log line: short alphanumeric names as they are, anything else hidden.
fn printable(alg: &str) -> String {
    if !alg.is_empty() && alg.len() <= 16 && alg.bytes().all(|b| b.is_ascii_alphanumeric()) {
        alg.to_string()
    } else {
        "not shown".to_string()
    }
}

/// An advertiser id: a JSON integer (not negative, not a float) or a string of decimal digits.
fn advertiser_id(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64(),
        // Digits only: `u64::from_str` would also take a leading `+`.
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse().ok()
        }
        _ => None,
    }
}

fn rejection(err: jsonwebtoken::errors::Error) -> JwtRejection {
    match err.kind() {
        ErrorKind::InvalidToken => JwtRejection::Malformed("not three dot-separated segments"),
        ErrorKind::Base64(_) => JwtRejection::Malformed("a segment is not base64url"),
        ErrorKind::Json(_) | ErrorKind::Utf8(_) => {
            JwtRejection::Malformed("the header or the claims are not a JSON object")
        }
        ErrorKind::InvalidSignature => JwtRejection::Signature,
        ErrorKind::InvalidAlgorithm => JwtRejection::Algorithm {
            presented: "refused by jsonwebtoken".into(),
        },
        ErrorKind::ExpiredSignature => JwtRejection::Expired,
        ErrorKind::ImmatureSignature => JwtRejection::NotYetValid,
        ErrorKind::InvalidAudience => JwtRejection::Audience,
        ErrorKind::InvalidIssuer => JwtRejection::Issuer,
        ErrorKind::MissingRequiredClaim(claim) => JwtRejection::MissingClaim(claim.clone()),
        ErrorKind::InvalidClaimFormat(claim) => JwtRejection::BadClaim {
            claim: claim.clone(),
            reason: "not a NumericDate (seconds since 1970)",
        },
        _ => JwtRejection::Other(err),
    }
}

/// The key in `path` for `algorithm`, checked as far as can be without a token.
fn read_key(path: &Path, algorithm: JwtAlgorithm) -> Result<DecodingKey, JwtConfigError> {
    let shown = || path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| JwtConfigError::Read {
        path: shown(),
        source,
    })?;
    let key_err = |reason| JwtConfigError::Key {
        path: shown(),
        reason,
    };
    let pem_err = |source| JwtConfigError::Pem {
        path: shown(),
        algorithm: algorithm.name(),
        source,
    };
    match algorithm {
        JwtAlgorithm::Hs256 => {
            let end = bytes
                .iter()
                .rposition(|b| !matches!(b, b'\n' | b'\r'))
                .map_or(0, |i| i + 1);
            let secret = &bytes[..end];
            if secret.starts_with(b"-----BEGIN") {
                return Err(key_err(
                    "an HS256 secret, not a PEM key (for a public key, configure RS256 or ES256)",
                ));
            }
            if secret.len() < MIN_HS256_SECRET_BYTES {
                return Err(JwtConfigError::ShortSecret {
                    path: shown(),
                    len: secret.len(),
                });
            }
            Ok(DecodingKey::from_secret(secret))
        }
        JwtAlgorithm::Rs256 | JwtAlgorithm::Es256 => {
            // The gateway only verifies: it should never hold the issuer's signing key.
            if bytes.windows(11).any(|w| w == b"PRIVATE KEY") {
                return Err(key_err(
                    "a private key: give the issuer's public key (-----BEGIN PUBLIC KEY-----)",
                ));
            }
            let key = match algorithm {
                JwtAlgorithm::Rs256 => DecodingKey::from_rsa_pem(&bytes),
                _ => DecodingKey::from_ec_pem(&bytes),
            }
            .map_err(pem_err)?;
            // What jsonwebtoken keeps of a PEM key: PKCS#1 `RSAPublicKey` DER, or an EC point.
            let der: &[u8] = match key.kind() {
                DecodingKeyKind::SecretOrDer(der) => der,
                DecodingKeyKind::RsaModulusExponent { .. } => &[],
            };
            let fits = match algorithm {
                JwtAlgorithm::Rs256 => rsa_modulus_bits(der).is_some_and(|b| RSA_BITS.contains(&b)),
                // A P-256 point: uncompressed (0x04, x, y) or compressed (0x02/0x03, x).
                _ => matches!((der.first(), der.len()), (Some(4), 65) | (Some(2 | 3), 33)),
            };
            if !fits {
                return Err(key_err(match algorithm {
                    JwtAlgorithm::Rs256 => "the RSA key is not of 2048 to 8192 bits",
                    _ => "not a P-256 key (ES256 is ECDSA on P-256)",
                }));
            }
            Ok(key)
        }
    }
}

/// The size of an RSA modulus, from PKCS#1 `RSAPublicKey ::= SEQUENCE { n INTEGER, e INTEGER }`.
fn rsa_modulus_bits(der: &[u8]) -> Option<usize> {
    let (0x30, sequence) = der_item(der)? else {
        return None;
    };
    let (0x02, n) = der_item(sequence)? else {
        return None;
    };
    let n = &n[n.iter().position(|&b| b != 0)?..];
    Some(n.len() * 8 - n.first()?.leading_zeros() as usize)
}

/// The tag and contents of the DER item `input` starts with.
fn der_item(input: &[u8]) -> Option<(u8, &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let (len, rest) = rest.split_at(count);
        (
            len.iter().fold(0, |acc, &b| acc << 8 | usize::from(b)),
            rest,
        )
    };
    Some((tag, rest.get(..len)?))
}

#[cfg(test)]
mod tests;
