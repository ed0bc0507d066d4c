//! Throughput of signing and verifying impression tokens (`cargo bench -p adclick-click --bench token`).

#![allow(clippy::unwrap_used)] // A benchmark: a panic with the failed call is how it stops.

use std::hint::black_box;

use adclick_click::token::{Claims, TokenKey, Url, Verifier};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The typical token of the `token` module doc: 160 characters.
fn typical_claims() -> Claims {
    Claims {
        impression_id: *b"0123456789abcdef",
        ad_id: 9_876_543,
        campaign_id: 123_456,
        advertiser_id: 4_321,
        landing_url: Url::parse("https://shop.example.com/spring-sale?utm_source=ad")
            .expect("valid URL"),
        issued_at_secs: 1_790_000_000,
        expires_at_secs: 1_790_086_400,
        user_hash: None,
        price_micros: None,
    }
}

fn tokens(c: &mut Criterion) {
    // Two keys, as during a rotation; the token names the second, so lookup is not the best case.
    let old = TokenKey::new("k0", &[1; 32]).expect("valid key");
    let new = TokenKey::new("k1", &[2; 32]).expect("valid key");
    let verifier = Verifier::new([old, new], 30).expect("valid keys");
    let signer = verifier.signer("k1").expect("held key");
    let claims = typical_claims();
    let token = signer.sign(&claims).expect("signable claims");
    let forged = {
        let mut bytes = token.clone().into_bytes();
        let last = bytes.len() - 2;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        String::from_utf8(bytes).expect("ASCII")
    };
    let now = claims.issued_at_secs + 60;
    // Version 2 with both optional claims: 132 bytes, 176 characters.
    let claims_v2 = Claims {
        user_hash: Some(0x0123_4567_89ab_cdef),
        price_micros: Some(250_000),
        ..claims.clone()
    };
    let token_v2 = signer.sign(&claims_v2).expect("signable claims");

    let mut group = c.benchmark_group("token");
    group.throughput(Throughput::Elements(1));
    group.bench_function("sign", |b| b.iter(|| signer.sign(black_box(&claims))));
    group.bench_function("verify", |b| {
        b.iter(|| verifier.verify(black_box(&token), now))
    });
    group.bench_function("sign_v2", |b| b.iter(|| signer.sign(black_box(&claims_v2))));
    group.bench_function("verify_v2", |b| {
        b.iter(|| verifier.verify(black_box(&token_v2), now))
    });
    group.bench_function("verify_forged", |b| {
        b.iter(|| verifier.verify(black_box(&forged), now))
    });

    // Baselines measured in the same run, to read the figures above as ratios on a noisy machine:
    // the two costs verification cannot avoid, the tag over the signed bytes and the URL parse.
    let binary = URL_SAFE_NO_PAD.decode(&token).expect("base64");
    let signed = &binary[..binary.len() - 32];
    let keyed_mac = Hmac::<Sha256>::new_from_slice(&[2; 32]).expect("any key length");
    group.bench_function("baseline_hmac_sha256", |b| {
        b.iter(|| {
            let mut mac = keyed_mac.clone();
            mac.update(black_box(signed));
            mac.finalize()
        })
    });
    let url_text = claims.landing_url.as_str();
    group.bench_function("baseline_url_parse", |b| {
        b.iter(|| Url::parse(black_box(url_text)))
    });
    group.finish();
}

criterion_group!(benches, tokens);
criterion_main!(benches);
