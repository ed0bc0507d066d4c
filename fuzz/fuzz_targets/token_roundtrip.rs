//! Fuzz target: sign → verify round trip of arbitrary claims. Claims the signer accepts must
//! verify to themselves, with the signing key's id; claims it refuses must be refused for the
//! reason `Claims::validate` gives.

#![no_main]

use adclick_click::token::{Claims, TokenError, TokenKey, Url, Verifier};
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input {
    impression_id: [u8; 16],
    ad_id: u64,
    campaign_id: u64,
    advertiser_id: u64,
    /// Prefixed with `http://` or `https://` when `absolute` is false, to reach valid URLs often.
    url: String,
    absolute: bool,
    https: bool,
    issued_at_secs: u64,
    lifetime_secs: u64,
    key_id: String,
    secret: [u8; 32],
    clock_skew_secs: u16,
    /// Version 2's optional claims: with either, the token is version 2.
    user_hash: Option<u64>,
    price_micros: Option<u64>,
}

fuzz_target!(|input: Input| {
    let Ok(key) = TokenKey::new(&input.key_id, &input.secret) else {
        return;
    };
    let verifier = Verifier::new([key], u64::from(input.clock_skew_secs)).expect("one key");
    let signer = verifier.signer(&input.key_id).expect("held key");
    let text = if input.absolute {
        input.url.clone()
    } else {
        format!(
            "{}://{}",
            if input.https { "https" } else { "http" },
            input.url
        )
    };
    let Ok(landing_url) = Url::parse(&text) else {
        return;
    };
    let claims = Claims {
        impression_id: input.impression_id,
        ad_id: input.ad_id,
        campaign_id: input.campaign_id,
        advertiser_id: input.advertiser_id,
        landing_url,
        issued_at_secs: input.issued_at_secs,
        expires_at_secs: input.issued_at_secs.wrapping_add(input.lifetime_secs),
        user_hash: input.user_hash,
        price_micros: input.price_micros,
    };
    let token = match (signer.sign(&claims), claims.validate()) {
        (Ok(token), Ok(())) => token,
        (Err(refused), Err(invalid)) => {
            assert_eq!(refused, invalid);
            return;
        }
        (signed, validated) => panic!("sign {signed:?} disagrees with validate {validated:?}"),
    };
    let now = claims.issued_at_secs;
    match verifier.verify(&token, now) {
        Ok(verified) => {
            assert_eq!(verified.key_id, input.key_id);
            assert_eq!(verified.claims, claims);
        }
        // Only an empty validity window: expiring as issued, with no skew to spare.
        Err(TokenError::Expired { .. }) => {
            assert!(
                now >= claims
                    .expires_at_secs
                    .saturating_add(verifier.clock_skew_secs())
            );
        }
        Err(other) => panic!("{other} for {claims:?}"),
    }
});
