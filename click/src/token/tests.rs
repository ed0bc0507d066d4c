//! Tests of the impression token: every failure reason, key handling, and properties over any
//! claims (round trip, single-byte changes, truncations).

use super::*;
use crate::token::keys::HmacSha256;
use proptest::prelude::*;

const SECRET: &[u8; 32] = b"adclick-token-tests-secret-32byt";
const OTHER_SECRET: &[u8; 32] = b"adclick-token-tests-other-secret";
const SKEW: u64 = 30;
pub(super) const ISSUED: u64 = 1_790_000_000;
const DAY: u64 = 86_400;

pub(super) fn verifier() -> Verifier {
    Verifier::new([TokenKey::new("k1", SECRET).unwrap()], SKEW).unwrap()
}

pub(super) fn signer() -> Signer {
    verifier().signer("k1").unwrap()
}

/// The typical token of the module doc: ids of 4, 3 and 2 varint bytes, a 50-byte URL.
pub(super) fn typical_claims() -> Claims {
    let url = "https://shop.example.com/spring-sale?utm_source=ad";
    assert_eq!(url.len(), 50);
    Claims {
        impression_id: *b"0123456789abcdef",
        ad_id: 9_876_543,
        campaign_id: 123_456,
        advertiser_id: 4_321,
        landing_url: Url::parse(url).unwrap(),
        issued_at_secs: ISSUED,
        expires_at_secs: ISSUED + DAY,
        user_hash: None,
        price_micros: None,
    }
}

/// The fields of a binary token, to build bodies the signer refuses to make.
pub(super) struct Fields {
    pub(super) version: u8,
    pub(super) key_id: Vec<u8>,
    pub(super) impression_id: Vec<u8>,
    pub(super) ad_id: u64,
    pub(super) campaign_id: u64,
    pub(super) advertiser_id: u64,
    pub(super) issued_at_secs: u64,
    pub(super) lifetime_secs: u64,
    pub(super) url: Vec<u8>,
    /// Overrides the encoded URL length.
    pub(super) url_len: Option<u64>,
    /// Bytes placed after the URL, before the tag.
    pub(super) trailing: Vec<u8>,
}

impl Fields {
    pub(super) fn typical() -> Fields {
        let claims = typical_claims();
        Fields {
            version: VERSION_1,
            key_id: b"k1".to_vec(),
            impression_id: claims.impression_id.to_vec(),
            ad_id: claims.ad_id,
            campaign_id: claims.campaign_id,
            advertiser_id: claims.advertiser_id,
            issued_at_secs: claims.issued_at_secs,
            lifetime_secs: claims.lifetime_secs(),
            url: claims.landing_url.as_str().as_bytes().to_vec(),
            url_len: None,
            trailing: Vec::new(),
        }
    }

    pub(super) fn with(edit: impl FnOnce(&mut Fields)) -> Vec<u8> {
        let mut fields = Fields::typical();
        edit(&mut fields);
        fields.encode()
    }

    pub(super) fn encode(&self) -> Vec<u8> {
        let mut body = vec![self.version, self.key_id.len() as u8];
        body.extend_from_slice(&self.key_id);
        body.extend_from_slice(&self.impression_id);
        for value in [
            self.ad_id,
            self.campaign_id,
            self.advertiser_id,
            self.issued_at_secs,
            self.lifetime_secs,
            self.url_len.unwrap_or(self.url.len() as u64),
        ] {
            put_varint(&mut body, value);
        }
        body.extend_from_slice(&self.url);
        body.extend_from_slice(&self.trailing);
        body
    }
}

/// `body` with a valid tag of `SECRET` appended, as text: what a key holder could produce.
pub(super) fn seal(body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(SECRET).unwrap();
    mac.update(body);
    let mut binary = body.to_vec();
    binary.extend_from_slice(&mac.finalize().into_bytes());
    URL_SAFE_NO_PAD.encode(binary)
}

pub(super) fn verify_sealed(body: Vec<u8>) -> Result<Verified, TokenError> {
    verifier().verify(seal(&body), ISSUED)
}

pub(super) fn malformed(result: Result<Verified, TokenError>) -> Malformed {
    match result {
        Err(TokenError::Malformed(m)) => m,
        other => panic!("expected a malformed token, got {other:?}"),
    }
}

#[test]
fn typical_token_round_trips_at_the_documented_length() {
    let claims = typical_claims();
    let token = signer().sign(&claims).unwrap();
    assert_eq!(URL_SAFE_NO_PAD.decode(&token).unwrap().len(), 120);
    assert_eq!(token.len(), 160);
    assert!(
        token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "{token}"
    );
    let verified = verifier().verify(&token, ISSUED + 5).unwrap();
    assert_eq!(
        verified,
        Verified {
            key_id: "k1".into(),
            claims
        }
    );
}

#[test]
fn test_encoder_matches_the_signer() {
    // The malformed-token tests build bodies with `Fields`; they mean something only if `Fields`
    // writes what the signer writes.
    assert_eq!(
        seal(&Fields::typical().encode()),
        signer().sign(&typical_claims()).unwrap()
    );
}

#[test]
fn the_longest_token_is_within_a_byte_of_the_length_bound() {
    let key_id = "k".repeat(MAX_KEY_ID_LEN);
    let verifier = Verifier::new([TokenKey::new(&key_id, SECRET).unwrap()], SKEW).unwrap();
    let claims = Claims {
        impression_id: [0xff; 16],
        ad_id: u64::MAX,
        campaign_id: u64::MAX,
        advertiser_id: 1 << 63,
        landing_url: Url::parse(&format!(
            "http://a.example/{}",
            "x".repeat(MAX_URL_LEN - 17)
        ))
        .unwrap(),
        // Ten varint bytes for the issue time, nine for the lifetime: both cannot take ten, as
        // their sum fits a u64, so the bound is one byte loose.
        issued_at_secs: 1 << 63,
        expires_at_secs: u64::MAX,
        // Version 2 at its longest: both optional claims, a ten-byte price.
        user_hash: Some(u64::MAX),
        price_micros: Some(u64::MAX),
    };
    assert_eq!(claims.landing_url.as_str().len(), MAX_URL_LEN);
    let signer = verifier.signer(&key_id).unwrap();
    let token = signer.sign(&claims).unwrap();
    assert_eq!(
        URL_SAFE_NO_PAD.decode(&token).unwrap().len(),
        MAX_TOKEN_BYTES - 1
    );
    assert_eq!(token.len(), ((MAX_TOKEN_BYTES - 1) * 4).div_ceil(3));
    assert!(token.len() < MAX_TOKEN_LEN);
    assert_eq!(verifier.verify(&token, 1 << 63).unwrap().claims, claims);

    // Version 1 at its longest is the extension shorter.
    let v1 = Claims {
        user_hash: None,
        price_micros: None,
        ..claims
    };
    let token = signer.sign(&v1).unwrap();
    assert_eq!(
        URL_SAFE_NO_PAD.decode(&token).unwrap().len(),
        MAX_TOKEN_BYTES - 1 - MAX_EXTENSION_BYTES
    );
    assert_eq!(verifier.verify(&token, 1 << 63).unwrap().claims, v1);
}

#[test]
fn too_long_input_is_refused_before_decoding() {
    let token = "A".repeat(MAX_TOKEN_LEN + 1);
    assert_eq!(
        verifier().verify(&token, ISSUED),
        Err(TokenError::TooLong(MAX_TOKEN_LEN + 1))
    );
    // Even garbage that is not base64 gets the length reason: nothing else was looked at.
    assert_eq!(
        verifier().verify("!".repeat(10_000_000), ISSUED),
        Err(TokenError::TooLong(10_000_000))
    );
}

#[test]
fn non_base64_is_malformed() {
    let token = signer().sign(&typical_claims()).unwrap();
    for bad in [
        format!("{token}=="),                             // padding
        token.replace('-', "+").replace('_', "/") + "+/", // standard alphabet
        format!("{}.", &token[..token.len() - 1]),
        "é".repeat(40),
    ] {
        assert_eq!(
            malformed(verifier().verify(&bad, ISSUED)),
            Malformed::NotBase64,
            "{bad}"
        );
    }
    // Stray bits in the last character: a second spelling of the same bytes.
    let binary = URL_SAFE_NO_PAD.decode(&token).unwrap();
    assert_eq!(
        binary.len() % 3,
        0,
        "the typical token has no partial last group"
    );
    let mut two_byte_tail = URL_SAFE_NO_PAD.encode(&binary[..binary.len() - 1]);
    let last = two_byte_tail.pop().unwrap();
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let next = alphabet.as_bytes()[alphabet.find(last).unwrap() + 1] as char;
    two_byte_tail.push(next);
    assert_eq!(
        malformed(verifier().verify(&two_byte_tail, ISSUED)),
        Malformed::NotBase64
    );
}

#[test]
fn short_input_is_malformed() {
    let short = URL_SAFE_NO_PAD.encode([1u8; MIN_TOKEN_BYTES - 1]);
    assert_eq!(
        malformed(verifier().verify(&short, ISSUED)),
        Malformed::TooShort(MIN_TOKEN_BYTES - 1)
    );
    assert_eq!(
        malformed(verifier().verify("", ISSUED)),
        Malformed::TooShort(0)
    );
}

#[test]
fn other_versions_are_malformed() {
    for version in [0, 3, 0x81, u8::MAX] {
        let result = verify_sealed(Fields::with(|f| f.version = version));
        assert_eq!(malformed(result), Malformed::UnsupportedVersion(version));
    }
}

#[test]
fn bad_key_ids_are_malformed() {
    assert_eq!(
        malformed(verify_sealed(Fields::with(|f| f.key_id.clear()))),
        Malformed::KeyId(KeyIdError::Length(0))
    );
    assert_eq!(
        malformed(verify_sealed(Fields::with(|f| f.key_id = vec![b'k'; 17]))),
        Malformed::KeyId(KeyIdError::Length(17))
    );
    assert_eq!(
        malformed(verify_sealed(Fields::with(|f| f.key_id = b"k 1".to_vec()))),
        Malformed::KeyId(KeyIdError::Characters)
    );
    // A length byte pointing past the end of the input.
    let mut binary = vec![VERSION_1, 200];
    binary.resize(MIN_TOKEN_BYTES, b'k');
    let result = verifier().verify(URL_SAFE_NO_PAD.encode(&binary), ISSUED);
    assert_eq!(malformed(result), Malformed::Truncated("key id"));
}

#[test]
fn unknown_key_ids_are_named() {
    let result = verify_sealed(Fields::with(|f| f.key_id = b"k9".to_vec()));
    assert_eq!(result, Err(TokenError::UnknownKey("k9".into())));
}

#[test]
fn another_keys_tag_is_a_bad_signature() {
    let impostor = Signer::new(TokenKey::new("k1", OTHER_SECRET).unwrap());
    let token = impostor.sign(&typical_claims()).unwrap();
    assert_eq!(
        verifier().verify(&token, ISSUED),
        Err(TokenError::BadSignature)
    );
}

#[test]
fn altered_claims_are_a_bad_signature() {
    let token = signer().sign(&typical_claims()).unwrap();
    let mut binary = URL_SAFE_NO_PAD.decode(&token).unwrap();
    let ad_id_offset = 1 + 1 + 2 + 16;
    binary[ad_id_offset] ^= 1;
    let result = verifier().verify(URL_SAFE_NO_PAD.encode(&binary), ISSUED);
    assert_eq!(result, Err(TokenError::BadSignature));
}

/// `typical`'s version, key id and impression id: the part before the varints.
fn header_and_impression(fields: &Fields) -> Vec<u8> {
    let mut body = vec![fields.version, fields.key_id.len() as u8];
    body.extend_from_slice(&fields.key_id);
    body.extend_from_slice(&fields.impression_id);
    body
}

#[test]
fn signed_but_truncated_fields_are_malformed() {
    // Bodies of 25 bytes: with the tag, exactly the shortest token, so only the field reader can
    // find them short.
    let typical = Fields::typical();
    let mut body = header_and_impression(&typical);
    body.extend_from_slice(&[0x81; 5]);
    assert_eq!(body.len() + TAG_LEN, MIN_TOKEN_BYTES);
    assert_eq!(
        malformed(verify_sealed(body)),
        Malformed::Truncated("ad id")
    );

    let mut body = vec![VERSION_1, 16];
    body.extend_from_slice(&[b'k'; 16]);
    body.extend_from_slice(&[7; 7]);
    let verifier = Verifier::new([TokenKey::new(&"k".repeat(16), SECRET).unwrap()], SKEW).unwrap();
    let result = verifier.verify(seal(&body), ISSUED);
    assert_eq!(malformed(result), Malformed::Truncated("impression id"));

    assert_eq!(
        malformed(verify_sealed(Fields::with(
            |f| f.url_len = Some(f.url.len() as u64 + 1)
        ))),
        Malformed::Truncated("landing URL")
    );
}

#[test]
fn signed_but_badly_encoded_fields_are_malformed() {
    // Each body carries a valid tag, so only the field checks after the tag can refuse it.
    let typical = Fields::typical();
    let rest_of_fields = [1, 1, 1, 1, 1, 1, b'x'];

    // Overlong ad id: 1 spelled in two bytes.
    let mut body = header_and_impression(&typical);
    body.extend_from_slice(&[0x81, 0x00]);
    body.extend_from_slice(&rest_of_fields);
    assert_eq!(
        malformed(verify_sealed(body)),
        Malformed::BadVarint("ad id")
    );

    // Eleven bytes, and ten bytes worth more than u64::MAX.
    let mut body = header_and_impression(&typical);
    body.extend_from_slice(&[0xff; 10]);
    body.push(0x01);
    body.extend_from_slice(&rest_of_fields);
    assert_eq!(
        malformed(verify_sealed(body)),
        Malformed::BadVarint("ad id")
    );
    let mut body = header_and_impression(&typical);
    body.extend_from_slice(&[0xff; 9]);
    body.push(0x02);
    body.extend_from_slice(&rest_of_fields);
    assert_eq!(
        malformed(verify_sealed(body)),
        Malformed::BadVarint("ad id")
    );

    type Edit = fn(&mut Fields);
    let zero_ids: [(&str, Edit); 3] = [
        ("ad id", |f| f.ad_id = 0),
        ("campaign id", |f| f.campaign_id = 0),
        ("advertiser id", |f| f.advertiser_id = 0),
    ];
    for (field, edit) in zero_ids {
        assert_eq!(
            malformed(verify_sealed(Fields::with(edit))),
            Malformed::ZeroId(field)
        );
    }
    let overflowing = Fields::with(|f| {
        f.issued_at_secs = u64::MAX - 5;
        f.lifetime_secs = 6;
    });
    assert_eq!(
        malformed(verify_sealed(overflowing)),
        Malformed::ExpiryOverflow
    );
    assert_eq!(
        malformed(verify_sealed(Fields::with(|f| f.url_len = Some(0)))),
        Malformed::UrlLength(0)
    );
    let too_long = MAX_URL_LEN as u64 + 1;
    assert_eq!(
        malformed(verify_sealed(Fields::with(|f| f.url_len = Some(too_long)))),
        Malformed::UrlLength(too_long)
    );
    assert_eq!(
        malformed(verify_sealed(Fields::with(
            |f| f.url = b"http://a.example/\xff".to_vec()
        ))),
        Malformed::UrlNotUtf8
    );
    assert_eq!(
        malformed(verify_sealed(Fields::with(
            |f| f.url = b"/relative/path".to_vec()
        ))),
        Malformed::UrlUnparsable(url::ParseError::RelativeUrlWithoutBase)
    );
    assert_eq!(
        malformed(verify_sealed(Fields::with(|f| f.url = b"http://".to_vec()))),
        Malformed::UrlUnparsable(url::ParseError::EmptyHost)
    );
    assert_eq!(
        malformed(verify_sealed(Fields::with(|f| f.trailing = vec![0, 0, 0]))),
        Malformed::TrailingBytes(3)
    );
}

#[test]
fn signed_non_http_urls_are_refused() {
    for (url, scheme) in [
        ("ftp://files.example/x", "ftp"),
        ("javascript:alert(1)", "javascript"),
        ("data:text/html,<script>alert(1)</script>", "data"),
        ("file:///etc/passwd", "file"),
    ] {
        let result = verify_sealed(Fields::with(|f| f.url = url.as_bytes().to_vec()));
        assert_eq!(
            result,
            Err(TokenError::BadUrlScheme(scheme.into())),
            "{url}"
        );
    }
    // Upper case is the same scheme: the URL parser lower-cases it.
    let result = verify_sealed(Fields::with(|f| f.url = b"HTTPS://shop.example/".to_vec()));
    assert_eq!(
        result.unwrap().claims.landing_url.as_str(),
        "https://shop.example/"
    );
}

#[test]
fn signed_urls_with_credentials_are_refused() {
    for url in [
        "https://bank.example@evil.example/",
        "http://user:pw@shop.example/",
        "http://:pw@shop.example/",
    ] {
        let result = verify_sealed(Fields::with(|f| f.url = url.as_bytes().to_vec()));
        assert_eq!(result, Err(TokenError::UrlCredentials), "{url}");
    }
}

#[test]
fn expiry_and_issue_time_allow_the_clock_skew() {
    let token = signer().sign(&typical_claims()).unwrap();
    let expires = ISSUED + DAY;
    let verify_at = |now| verifier().verify(&token, now);
    assert!(verify_at(ISSUED - SKEW).is_ok());
    assert_eq!(
        verify_at(ISSUED - SKEW - 1),
        Err(TokenError::NotYetValid {
            issued_at_secs: ISSUED,
            now_secs: ISSUED - SKEW - 1,
            skew_secs: SKEW
        })
    );
    assert!(verify_at(expires + SKEW - 1).is_ok());
    assert_eq!(
        verify_at(expires + SKEW),
        Err(TokenError::Expired {
            expires_at_secs: expires,
            now_secs: expires + SKEW,
            skew_secs: SKEW
        })
    );
    assert!(matches!(
        verify_at(u64::MAX),
        Err(TokenError::Expired { .. })
    ));
    assert!(matches!(verify_at(0), Err(TokenError::NotYetValid { .. })));

    // Without an allowance, `expires_at_secs` is the first second refused.
    let strict = Verifier::new([TokenKey::new("k1", SECRET).unwrap()], 0).unwrap();
    assert!(strict.verify(&token, expires - 1).is_ok());
    assert!(matches!(
        strict.verify(&token, expires),
        Err(TokenError::Expired { .. })
    ));
    assert!(matches!(
        strict.verify(&token, ISSUED - 1),
        Err(TokenError::NotYetValid { .. })
    ));
}

#[test]
fn verify_now_uses_the_clock() {
    let now = unix_now_secs();
    let claims = Claims {
        issued_at_secs: now,
        expires_at_secs: now + 60,
        ..typical_claims()
    };
    assert_eq!(
        verifier()
            .verify_now(signer().sign(&claims).unwrap())
            .unwrap()
            .claims,
        claims
    );
    let long_ago = Claims {
        issued_at_secs: 1_000_000_000,
        expires_at_secs: 1_000_000_060,
        ..typical_claims()
    };
    assert!(matches!(
        verifier().verify_now(signer().sign(&long_ago).unwrap()),
        Err(TokenError::Expired { .. })
    ));
}

#[test]
fn every_reason_has_its_own_name() {
    let errors = [
        TokenError::TooLong(0),
        TokenError::Malformed(Malformed::NotBase64),
        TokenError::UnknownKey(String::new()),
        TokenError::BadSignature,
        TokenError::Expired {
            expires_at_secs: 0,
            now_secs: 0,
            skew_secs: 0,
        },
        TokenError::NotYetValid {
            issued_at_secs: 0,
            now_secs: 0,
            skew_secs: 0,
        },
        TokenError::BadUrlScheme(String::new()),
        TokenError::UrlCredentials,
    ];
    let names: std::collections::BTreeSet<_> = errors.iter().map(TokenError::reason).collect();
    assert_eq!(names.len(), errors.len(), "{names:?}");
}

#[test]
fn unsignable_claims_are_refused() {
    let sign = |edit: fn(&mut Claims)| {
        let mut claims = typical_claims();
        edit(&mut claims);
        signer().sign(&claims)
    };
    assert_eq!(sign(|c| c.ad_id = 0), Err(InvalidClaims::ZeroId("ad id")));
    assert_eq!(
        sign(|c| c.campaign_id = 0),
        Err(InvalidClaims::ZeroId("campaign id"))
    );
    assert_eq!(
        sign(|c| c.advertiser_id = 0),
        Err(InvalidClaims::ZeroId("advertiser id"))
    );
    assert_eq!(
        sign(|c| c.landing_url = Url::parse("ftp://files.example/").unwrap()),
        Err(InvalidClaims::BadUrlScheme("ftp".into()))
    );
    assert_eq!(
        sign(|c| c.landing_url = Url::parse("mailto:x@example.com").unwrap()),
        Err(InvalidClaims::BadUrlScheme("mailto".into()))
    );
    assert_eq!(
        sign(|c| c.landing_url = Url::parse("https://u:p@shop.example/").unwrap()),
        Err(InvalidClaims::UrlCredentials)
    );
    let long_url = format!("https://shop.example/{}", "x".repeat(MAX_URL_LEN));
    let mut claims = typical_claims();
    claims.landing_url = Url::parse(&long_url).unwrap();
    assert_eq!(
        signer().sign(&claims),
        Err(InvalidClaims::UrlTooLong(long_url.len()))
    );
    assert_eq!(
        sign(|c| c.expires_at_secs = c.issued_at_secs - 1),
        Err(InvalidClaims::ExpiresBeforeIssued {
            issued_at_secs: ISSUED,
            expires_at_secs: ISSUED - 1
        })
    );
    assert!(
        sign(|c| c.expires_at_secs = c.issued_at_secs).is_ok(),
        "a zero lifetime is signable"
    );
}

#[test]
fn keys_are_checked() {
    let hex_secret = hex::encode(SECRET);
    assert_eq!(
        TokenKey::from_hex("k1", &format!(" {hex_secret}\n"))
            .unwrap()
            .id(),
        "k1"
    );
    assert_eq!(
        TokenKey::from_hex("k1", "zz").unwrap_err(),
        KeyError::SecretNotHex { id: "k1".into() }
    );
    assert_eq!(
        TokenKey::from_hex("k1", &hex_secret[..62]).unwrap_err(),
        KeyError::SecretTooShort {
            id: "k1".into(),
            len: 31
        }
    );
    assert_eq!(
        TokenKey::new("", SECRET).unwrap_err(),
        KeyError::BadKeyId {
            id: String::new(),
            reason: KeyIdError::Length(0)
        }
    );
    assert_eq!(
        TokenKey::new(&"k".repeat(17), SECRET).unwrap_err(),
        KeyError::BadKeyId {
            id: "k".repeat(17),
            reason: KeyIdError::Length(17)
        }
    );
    assert_eq!(
        TokenKey::new("k/1", SECRET).unwrap_err(),
        KeyError::BadKeyId {
            id: "k/1".into(),
            reason: KeyIdError::Characters
        }
    );
    assert!(TokenKey::new("2026-05_k.A", SECRET).is_ok());
    assert_eq!(
        Verifier::from_hex(
            [("k1", hex_secret.as_str()), ("k1", hex_secret.as_str())],
            SKEW
        )
        .unwrap_err(),
        KeyError::DuplicateKeyId("k1".into())
    );
    assert_eq!(Verifier::new([], SKEW).unwrap_err(), KeyError::NoKeys);
    assert_eq!(
        verifier().signer("k2").unwrap_err(),
        KeyError::UnknownSigningKey("k2".into())
    );
}

#[test]
fn debug_output_hides_secrets() {
    let key = TokenKey::new("k1", SECRET).unwrap();
    let printed = format!("{key:?} {:?} {:?}", Signer::new(key.clone()), verifier());
    let secret_text = std::str::from_utf8(SECRET).unwrap();
    assert!(
        !printed.contains(secret_text) && !printed.contains(&hex::encode(SECRET)),
        "{printed}"
    );
    assert!(printed.contains("k1"), "{printed}");
}

#[test]
fn rotation_old_key_still_verifies_new_key_signs() {
    let old = TokenKey::new("2026-01", SECRET).unwrap();
    let new = TokenKey::new("2026-02", OTHER_SECRET).unwrap();
    let before_rotation = Verifier::new([old.clone()], SKEW).unwrap();
    let old_token = before_rotation
        .signer("2026-01")
        .unwrap()
        .sign(&typical_claims())
        .unwrap();

    let during_rotation = Verifier::new([old, new.clone()], SKEW).unwrap();
    let new_signer = during_rotation.signer("2026-02").unwrap();
    let new_token = new_signer.sign(&typical_claims()).unwrap();
    assert_eq!(
        during_rotation.verify(&old_token, ISSUED).unwrap().key_id,
        "2026-01"
    );
    assert_eq!(
        during_rotation.verify(&new_token, ISSUED).unwrap().key_id,
        "2026-02"
    );
    assert_eq!(
        before_rotation.verify(&new_token, ISSUED),
        Err(TokenError::UnknownKey("2026-02".into())),
        "a verifier not yet given the new key refuses its tokens by name"
    );

    let after_rotation = Verifier::new([new], SKEW).unwrap();
    assert_eq!(
        after_rotation.verify(&old_token, ISSUED),
        Err(TokenError::UnknownKey("2026-01".into()))
    );
    assert!(after_rotation.verify(&new_token, ISSUED).is_ok());
}

#[test]
fn every_single_byte_change_of_a_token_is_refused() {
    // Exhaustive on one token: every position, every other byte value.
    let token = signer().sign(&typical_claims()).unwrap().into_bytes();
    let verifier = verifier();
    for position in 0..token.len() {
        for replacement in 0..=u8::MAX {
            if replacement == token[position] {
                continue;
            }
            let mut changed = token.clone();
            changed[position] = replacement;
            assert!(
                verifier.verify(&changed, ISSUED).is_err(),
                "byte {position} set to {replacement}"
            );
        }
    }
}

#[test]
fn varints_round_trip_and_stay_minimal() {
    for value in [0, 1, 127, 128, 16_383, 16_384, u64::MAX >> 1, u64::MAX] {
        let mut encoded = Vec::new();
        put_varint(&mut encoded, value);
        assert_eq!(
            encoded.len(),
            (64 - value.leading_zeros() as usize).div_ceil(7).max(1)
        );
        let mut reader = Reader { rest: &encoded };
        assert_eq!(reader.varint("v"), Ok(value));
        assert!(reader.rest.is_empty());
    }
}

/// Any `http` or `https` URL the signer accepts, built from varied parts (case, IP hosts,
/// international names, ports, any characters in path, query and fragment).
fn signable_url() -> impl Strategy<Value = Url> {
    let scheme = prop_oneof!["http", "https", "HTTP", "hTTpS"];
    let host = prop_oneof![
        "[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?(\\.[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?){0,3}",
        any::<[u8; 4]>().prop_map(|o| format!("{}.{}.{}.{}", o[0], o[1], o[2], o[3])),
        any::<[u16; 8]>().prop_map(|g| format!("[{}]", g.map(|x| format!("{x:x}")).join(":"))),
        "\\p{L}{1,8}\\.example",
    ];
    let port = proptest::option::of(any::<u16>());
    let path = proptest::collection::vec("\\PC{0,12}", 0..5);
    let query = proptest::option::of("\\PC{0,24}");
    let fragment = proptest::option::of("\\PC{0,12}");
    (scheme, host, port, path, query, fragment).prop_filter_map(
        "a signable URL",
        |(scheme, host, port, path, query, fragment)| {
            let mut text = format!("{scheme}://{host}");
            if let Some(port) = port {
                text += &format!(":{port}");
            }
            for segment in path {
                text += &format!("/{segment}");
            }
            if let Some(query) = query {
                text += &format!("?{query}");
            }
            if let Some(fragment) = fragment {
                text += &format!("#{fragment}");
            }
            let url = Url::parse(&text).ok()?;
            let claims = Claims {
                landing_url: url,
                ..typical_claims()
            };
            claims.validate().is_ok().then_some(claims.landing_url)
        },
    )
}

/// Any claims the signer accepts, the time window included.
pub(super) fn signable_claims() -> impl Strategy<Value = Claims> {
    (
        any::<[u8; 16]>(),
        1..=u64::MAX,
        1..=u64::MAX,
        1..=u64::MAX,
        signable_url(),
        any::<u64>(),
        any::<u64>(),
        // Version 1 and each kind of version 2 token.
        proptest::option::of(1..=u64::MAX),
        proptest::option::of(any::<u64>()),
    )
        .prop_map(
            |(
                impression_id,
                ad_id,
                campaign_id,
                advertiser_id,
                landing_url,
                issued,
                lifetime,
                user_hash,
                price_micros,
            )| {
                // Any lifetime that does not overflow.
                let lifetime = lifetime % (u64::MAX - issued).saturating_add(1).max(1);
                Claims {
                    impression_id,
                    ad_id,
                    campaign_id,
                    advertiser_id,
                    landing_url,
                    issued_at_secs: issued,
                    expires_at_secs: issued + lifetime,
                    user_hash,
                    price_micros,
                }
            },
        )
}

fn any_key_id() -> impl Strategy<Value = String> {
    "[A-Za-z0-9._-]{1,16}"
}

proptest! {
    #[test]
    fn sign_then_verify_round_trips(
        claims in signable_claims(),
        key_id in any_key_id(),
        secret in proptest::collection::vec(any::<u8>(), 32..100),
        skew in 0u64..1_000,
    ) {
        let verifier = Verifier::new([TokenKey::new(&key_id, &secret).unwrap()], skew).unwrap();
        let token = verifier.signer(&key_id).unwrap().sign(&claims).unwrap();
        prop_assert!(token.len() <= MAX_TOKEN_LEN);
        // Any second within the validity window verifies; the window is empty only when the
        // token expires as it is issued and no skew is allowed.
        let now = claims.issued_at_secs;
        let valid_now = now < claims.expires_at_secs.saturating_add(skew);
        match verifier.verify(&token, now) {
            Ok(verified) => {
                prop_assert!(valid_now);
                prop_assert_eq!(verified.key_id, key_id);
                prop_assert_eq!(verified.claims, claims);
            }
            Err(TokenError::Expired { .. }) => prop_assert!(!valid_now),
            Err(other) => return Err(TestCaseError::fail(other.to_string())),
        }
    }

    #[test]
    fn urls_from_any_text_round_trip(text in "\\PC{0,60}", https in any::<bool>()) {
        let scheme = if https { "https" } else { "http" };
        let Ok(landing_url) = Url::parse(&format!("{scheme}://{text}")) else { return Ok(()) };
        let claims = Claims { landing_url, ..typical_claims() };
        match signer().sign(&claims) {
            Ok(token) => prop_assert_eq!(verifier().verify(&token, ISSUED).unwrap().claims, claims),
            Err(InvalidClaims::UrlCredentials) => {
                prop_assert!(!claims.landing_url.username().is_empty() || claims.landing_url.password().is_some());
            }
            Err(other) => return Err(TestCaseError::fail(other.to_string())),
        }
    }

    #[test]
    fn any_single_byte_change_is_refused(claims in signable_claims(), seed in any::<u64>()) {
        let token = signer().sign(&claims).unwrap();
        let verifier = verifier();
        let now = claims.issued_at_secs;
        prop_assume!(verifier.verify(&token, now).is_ok());
        let mut replacement_source = seed;
        let mut next_delta = || {
            replacement_source = replacement_source.rotate_left(8) ^ 0x9e37_79b9_7f4a_7c15;
            (replacement_source % 255) as u8 + 1
        };
        // In the text, as the browser sends it.
        for position in 0..token.len() {
            let mut changed = token.clone().into_bytes();
            changed[position] = changed[position].wrapping_add(next_delta());
            prop_assert!(verifier.verify(&changed, now).is_err(), "text byte {}", position);
        }
        // In the binary token, so every change is a valid base64 one.
        let binary = URL_SAFE_NO_PAD.decode(&token).unwrap();
        for position in 0..binary.len() {
            let mut changed = binary.clone();
            changed[position] = changed[position].wrapping_add(next_delta());
            let result = verifier.verify(URL_SAFE_NO_PAD.encode(&changed), now);
            prop_assert!(result.is_err(), "binary byte {}", position);
        }
    }

    #[test]
    fn truncations_and_extensions_are_refused(claims in signable_claims(), extra in "[A-Za-z0-9_-]{1,8}") {
        let token = signer().sign(&claims).unwrap();
        let verifier = verifier();
        let now = claims.issued_at_secs;
        prop_assume!(verifier.verify(&token, now).is_ok());
        for len in 0..token.len() {
            prop_assert!(verifier.verify(&token[..len], now).is_err(), "text cut to {}", len);
        }
        let binary = URL_SAFE_NO_PAD.decode(&token).unwrap();
        for len in 0..binary.len() {
            let result = verifier.verify(URL_SAFE_NO_PAD.encode(&binary[..len]), now);
            prop_assert!(result.is_err(), "binary cut to {}", len);
        }
        let extended = token.clone() + &extra;
        prop_assert!(verifier.verify(&extended, now).is_err());
    }

    #[test]
    fn arbitrary_input_never_panics(input in proptest::collection::vec(any::<u8>(), 0..400)) {
        // As text, as base64 of a binary token, and signed after a valid header of either
        // version: the last reaches the field reader, which forged input cannot.
        let _ = verifier().verify(&input, ISSUED);
        let _ = verifier().verify(URL_SAFE_NO_PAD.encode(&input), ISSUED);
        for version in [VERSION_1, VERSION_2] {
            let mut body = vec![version, 2, b'k', b'1'];
            body.extend_from_slice(&input);
            if let Ok(verified) = verify_sealed(body) {
                // Whatever verifies is signable again and verifies to the same claims.
                let token = signer().sign(&verified.claims).unwrap();
                prop_assert_eq!(verifier().verify(&token, ISSUED).unwrap(), verified);
            }
        }
    }

}
