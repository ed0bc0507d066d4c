//! Tests of format version 2 (the extension with user hash and price), and golden vectors of
//! both versions: byte-exact tokens that pin the format, so a change to the encoder cannot pass
//! unnoticed and a signer in another language has examples to check itself against.

use super::tests::{
    Fields, ISSUED, malformed, signable_claims, signer, typical_claims, verifier, verify_sealed,
};
use super::*;
use proptest::prelude::*;

/// The claims of the golden vectors: small numbers, so each field's bytes can be read by eye.
fn golden_claims() -> Claims {
    Claims {
        impression_id: core::array::from_fn(|i| i as u8),
        ad_id: 300,
        campaign_id: 7,
        advertiser_id: 3,
        landing_url: Url::parse("https://shop.example/a").unwrap(),
        issued_at_secs: 1_790_000_000,
        expires_at_secs: 1_790_003_600,
        user_hash: None,
        price_micros: None,
    }
}

const GOLDEN_USER_HASH: u64 = 0x0123_4567_89ab_cdef;
/// 0.25 in the campaign's currency.
const GOLDEN_PRICE_MICROS: u64 = 250_000;

/// Fields 1–11 of the golden claims after the version byte, each with its bytes in hex.
const GOLDEN_FIELDS_2_TO_11: &[(&str, &str)] = &[
    ("key id length: 2", "02"),
    ("key id: `k1`", "6b31"),
    (
        "impression id: 00 01 … 0f",
        "000102030405060708090a0b0c0d0e0f",
    ),
    // 300 = 0b10_0101100: low group 0x2c with the continuation bit, then 0x02.
    ("ad id: 300", "ac02"),
    ("campaign id: 7", "07"),
    ("advertiser id: 3", "03"),
    ("issued at: 1790000000", "80f7c4d506"),
    // 3600 = 0b11100_0010000: 0x10 | 0x80, then 28.
    ("lifetime: 3600 s", "901c"),
    ("landing URL length: 22", "16"),
    (
        "landing URL: `https://shop.example/a`",
        "68747470733a2f2f73686f702e6578616d706c652f61",
    ),
];

/// The golden bodies and tags were computed once by an implementation written from the module
/// doc alone (Python's `hmac` and `base64`), keyed with the tests' `SECRET`, and pinned here.
const GOLDEN_V1_TAG: &str = "ba0a0cd8032cc9271f754406a37d55f7f84a7e0a1a92462f39adcc44ad9ff2fc";
const GOLDEN_V1_TEXT: &str = "AQJrMQABAgMEBQYHCAkKCwwNDg-sAgcDgPfE1QaQHBZodHRwczovL3Nob3AuZXhhbXBsZS9hugoM2AMsyScfdUQGo31V9_hKfgoakkYvOa3MRK2f8vw";

/// Version 2's extension for user hash and price, field by field.
const GOLDEN_V2_EXTENSION: &[(&str, &str)] = &[
    ("presence: bits 0 and 1, user hash and price", "03"),
    (
        "user hash: 0x0123456789abcdef, big-endian",
        "0123456789abcdef",
    ),
    // 250000 = 0b1111_0100001_0010000: 0x10 | 0x80, 0x21 | 0x80, 0x0f.
    ("price: 250000 micro-units", "90a10f"),
];
const GOLDEN_V2_TAG: &str = "90e8ada2a6ca335065137c0013766457760e031a175074cab2b9b7963733af2a";
const GOLDEN_V2_TEXT: &str = "AgJrMQABAgMEBQYHCAkKCwwNDg-sAgcDgPfE1QaQHBZodHRwczovL3Nob3AuZXhhbXBsZS9hAwEjRWeJq83vkKEPkOitoqbKM1BlE3wAE3ZkV3YOAxoXUHTKsrm3ljczryo";
/// The same claims with the price only (presence `02`, then `90a10f`) and the user hash only
/// (presence `01`, then the 8 bytes), as text.
const GOLDEN_V2_PRICE_ONLY_TEXT: &str = "AgJrMQABAgMEBQYHCAkKCwwNDg-sAgcDgPfE1QaQHBZodHRwczovL3Nob3AuZXhhbXBsZS9hApChD_3iCe81zd-H1jqj3qfDxYwhRdsSNxfIG7bj0E12FTRa";
const GOLDEN_V2_USER_ONLY_TEXT: &str = "AgJrMQABAgMEBQYHCAkKCwwNDg-sAgcDgPfE1QaQHBZodHRwczovL3Nob3AuZXhhbXBsZS9hAQEjRWeJq83vX3kCchOT3oU1DudczuH1DfSp0ICmZg4XWEflVc-FFzo";

fn hex_of(fields: &[(&str, &str)]) -> Vec<u8> {
    fields
        .iter()
        .flat_map(|(field, bytes)| hex::decode(bytes).unwrap_or_else(|_| panic!("{field}")))
        .collect()
}

fn binary(token: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(token).unwrap()
}

#[test]
fn golden_version_1_token_is_unchanged() {
    let mut expected = vec![VERSION_1];
    expected.extend(hex_of(GOLDEN_FIELDS_2_TO_11));
    expected.extend(hex::decode(GOLDEN_V1_TAG).unwrap());
    assert_eq!(expected.len(), 86);

    let token = signer().sign(&golden_claims()).unwrap();
    assert_eq!(hex::encode(binary(&token)), hex::encode(&expected));
    assert_eq!(token, GOLDEN_V1_TEXT);
    let verified = verifier().verify(GOLDEN_V1_TEXT, ISSUED).unwrap();
    assert_eq!(verified.claims, golden_claims());
}

#[test]
fn golden_version_2_token_is_byte_exact() {
    let claims = Claims {
        user_hash: Some(GOLDEN_USER_HASH),
        price_micros: Some(GOLDEN_PRICE_MICROS),
        ..golden_claims()
    };
    let mut expected = vec![VERSION_2];
    expected.extend(hex_of(GOLDEN_FIELDS_2_TO_11));
    expected.extend(hex_of(GOLDEN_V2_EXTENSION));
    expected.extend(hex::decode(GOLDEN_V2_TAG).unwrap());
    assert_eq!(expected.len(), 86 + 12);

    let token = signer().sign(&claims).unwrap();
    assert_eq!(hex::encode(binary(&token)), hex::encode(&expected));
    assert_eq!(token, GOLDEN_V2_TEXT);
    assert_eq!(
        verifier().verify(GOLDEN_V2_TEXT, ISSUED).unwrap().claims,
        claims
    );

    for (text, user_hash, price_micros) in [
        (GOLDEN_V2_PRICE_ONLY_TEXT, None, Some(GOLDEN_PRICE_MICROS)),
        (GOLDEN_V2_USER_ONLY_TEXT, Some(GOLDEN_USER_HASH), None),
    ] {
        let claims = Claims {
            user_hash,
            price_micros,
            ..golden_claims()
        };
        assert_eq!(signer().sign(&claims).unwrap(), text);
        assert_eq!(verifier().verify(text, ISSUED).unwrap().claims, claims);
    }
}

#[test]
fn each_combination_round_trips_in_its_version() {
    for (user_hash, price_micros, version, extra_bytes) in [
        (None, None, VERSION_1, 0),
        (Some(GOLDEN_USER_HASH), None, VERSION_2, 1 + 8),
        (None, Some(GOLDEN_PRICE_MICROS), VERSION_2, 1 + 3),
        (
            Some(GOLDEN_USER_HASH),
            Some(GOLDEN_PRICE_MICROS),
            VERSION_2,
            1 + 8 + 3,
        ),
        // Extremes: a zero price is a price; the largest hash and price.
        (None, Some(0), VERSION_2, 1 + 1),
        (Some(u64::MAX), Some(u64::MAX), VERSION_2, 1 + 8 + 10),
        (Some(1), None, VERSION_2, 1 + 8),
    ] {
        let claims = Claims {
            user_hash,
            price_micros,
            ..typical_claims()
        };
        let token = signer().sign(&claims).unwrap();
        let bytes = binary(&token);
        assert_eq!(bytes[0], version, "{claims:?}");
        assert_eq!(bytes.len(), 120 + extra_bytes, "{claims:?}");
        let verified = verifier().verify(&token, ISSUED).unwrap();
        assert_eq!(verified.claims, claims);
    }
}

#[test]
fn the_typical_version_2_token_has_the_documented_length() {
    let claims = Claims {
        user_hash: Some(GOLDEN_USER_HASH),
        price_micros: Some(GOLDEN_PRICE_MICROS),
        ..typical_claims()
    };
    let token = signer().sign(&claims).unwrap();
    assert_eq!(binary(&token).len(), 132);
    assert_eq!(token.len(), 176);
}

/// The typical claims as a version 2 body with `extension` after the URL, sealed and verified.
fn verify_extension(extension: &[u8]) -> Result<Verified, TokenError> {
    verify_sealed(Fields::with(|f| {
        f.version = VERSION_2;
        f.trailing = extension.to_vec();
    }))
}

#[test]
fn the_test_encoder_writes_what_the_signer_writes_for_version_2() {
    // The refusal tests below build extensions by hand; check the hand-built form once.
    let claims = Claims {
        user_hash: Some(GOLDEN_USER_HASH),
        price_micros: Some(GOLDEN_PRICE_MICROS),
        ..typical_claims()
    };
    let verified = verify_extension(&hex_of(GOLDEN_V2_EXTENSION)).unwrap();
    assert_eq!(verified.claims, claims);
}

#[test]
fn unknown_presence_bits_are_refused() {
    for bit in 2..8 {
        let presence = 1u8 << bit;
        // Alone, and beside the known bits with their fields present.
        assert_eq!(
            malformed(verify_extension(&[presence])),
            Malformed::UnknownExtension(presence)
        );
        let mut extension = vec![presence | 0b11];
        extension.extend_from_slice(&GOLDEN_USER_HASH.to_be_bytes());
        extension.push(0x05);
        assert_eq!(
            malformed(verify_extension(&extension)),
            Malformed::UnknownExtension(presence | 0b11)
        );
    }
    assert_eq!(
        malformed(verify_extension(&[0xff; 20])),
        Malformed::UnknownExtension(0xff)
    );
}

#[test]
fn an_empty_extension_is_refused() {
    // Claims without user hash and price are version 1; a second spelling is not accepted.
    assert_eq!(
        malformed(verify_extension(&[0x00])),
        Malformed::EmptyExtension
    );
}

#[test]
fn a_zero_user_hash_is_refused_on_both_sides() {
    let mut extension = vec![0x01];
    extension.extend_from_slice(&0u64.to_be_bytes());
    assert_eq!(
        malformed(verify_extension(&extension)),
        Malformed::ZeroId("user hash")
    );
    let claims = Claims {
        user_hash: Some(0),
        ..typical_claims()
    };
    assert_eq!(
        signer().sign(&claims),
        Err(InvalidClaims::ZeroId("user hash"))
    );
}

#[test]
fn badly_encoded_prices_are_refused() {
    for price in [
        &[0x80, 0x00][..],                                             // 0 in two bytes
        &[0x90, 0xa1, 0x8f, 0x00],                                     // 250000 in four bytes
        &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02], // above u64::MAX
        &[0xff; 11],                                                   // eleven bytes
    ] {
        let extension = [&[0x02][..], price].concat();
        assert_eq!(
            malformed(verify_extension(&extension)),
            Malformed::BadVarint("price"),
            "{price:02x?}"
        );
    }
}

#[test]
fn truncated_extensions_are_refused() {
    // A version 2 token with a version 1 body: it ends where the presence byte should be.
    assert_eq!(
        malformed(verify_extension(&[])),
        Malformed::Truncated("extension presence byte")
    );
    let full = hex_of(GOLDEN_V2_EXTENSION);
    // Cut inside the user hash, then inside the price.
    for len in 1..=8 {
        assert_eq!(
            malformed(verify_extension(&full[..len])),
            Malformed::Truncated("user hash"),
            "{len}"
        );
    }
    for len in 9..full.len() {
        assert_eq!(
            malformed(verify_extension(&full[..len])),
            Malformed::Truncated("price"),
            "{len}"
        );
    }
    // The price bit set with no price.
    assert_eq!(
        malformed(verify_extension(&[0x02])),
        Malformed::Truncated("price")
    );
}

#[test]
fn bytes_after_the_extension_are_refused() {
    let mut extension = hex_of(GOLDEN_V2_EXTENSION);
    extension.push(0x00);
    assert_eq!(
        malformed(verify_extension(&extension)),
        Malformed::TrailingBytes(1)
    );
    // A user hash where only the price bit is set: its bytes are a price and then trailing.
    let mut extension = vec![0x02, 0x05];
    extension.extend_from_slice(&GOLDEN_USER_HASH.to_be_bytes());
    assert_eq!(
        malformed(verify_extension(&extension)),
        Malformed::TrailingBytes(8)
    );
    // Version 1 has no extension: the same bytes after its URL are trailing bytes.
    let body = Fields::with(|f| f.trailing = hex_of(GOLDEN_V2_EXTENSION));
    assert_eq!(malformed(verify_sealed(body)), Malformed::TrailingBytes(12));
}

#[test]
fn the_tag_covers_the_version_and_the_extension() {
    let claims = Claims {
        user_hash: Some(GOLDEN_USER_HASH),
        price_micros: Some(GOLDEN_PRICE_MICROS),
        ..golden_claims()
    };
    let original = binary(&signer().sign(&claims).unwrap());
    let presence_at = 86 - TAG_LEN;
    assert_eq!(original[presence_at], 0x03);
    let verify = |bytes: &[u8]| verifier().verify(URL_SAFE_NO_PAD.encode(bytes), ISSUED);

    // Each presence byte but the signed one, whatever it would mean.
    for presence in (0..=u8::MAX).filter(|&p| p != 0x03) {
        let mut changed = original.clone();
        changed[presence_at] = presence;
        assert_eq!(
            verify(&changed),
            Err(TokenError::BadSignature),
            "{presence:#04x}"
        );
    }
    // Passed off as version 1, or stripped of its price or of its whole extension.
    let mut downgraded = original.clone();
    downgraded[0] = VERSION_1;
    assert_eq!(verify(&downgraded), Err(TokenError::BadSignature));
    let tag = &original[original.len() - TAG_LEN..];
    let unpriced = [&original[..presence_at + 9], tag].concat();
    assert_eq!(verify(&unpriced), Err(TokenError::BadSignature));
    let stripped = [&[VERSION_1][..], &original[1..presence_at], tag].concat();
    assert_eq!(verify(&stripped), Err(TokenError::BadSignature));
}

proptest! {
    #[test]
    fn arbitrary_extensions_never_panic(
        presence in any::<u8>(),
        rest in proptest::collection::vec(any::<u8>(), 0..24),
    ) {
        // Random bytes after a valid header seldom spell valid fields 4-11; these put every
        // presence byte and any bytes after it right behind the typical claims, under a valid tag.
        let extension = [vec![presence], rest].concat();
        match verify_extension(&extension) {
            Ok(verified) => {
                prop_assert!(presence == 1 || presence == 2 || presence == 3);
                // Whatever verifies signs again to the same bytes: one spelling per claims.
                let token = signer().sign(&verified.claims).unwrap();
                let body = Fields::with(|f| {
                    f.version = VERSION_2;
                    f.trailing = extension.clone();
                });
                prop_assert_eq!(&binary(&token)[..body.len()], &body[..]);
            }
            Err(TokenError::Malformed(_)) => {}
            Err(other) => return Err(TestCaseError::fail(other.to_string())),
        }
    }

    #[test]
    fn version_follows_the_optional_claims(claims in signable_claims()) {
        let token = signer().sign(&claims).unwrap();
        let expected = if claims.user_hash.is_none() && claims.price_micros.is_none() {
            VERSION_1
        } else {
            VERSION_2
        };
        prop_assert_eq!(binary(&token)[0], expected);
    }
}
