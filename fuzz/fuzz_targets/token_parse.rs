//! Fuzz target: the token verifier on arbitrary input. Nothing may panic, and whatever verifies
//! must sign again to a token that verifies to the same claims.
//!
//! Forged input cannot get past the tag, so each input is also tried with a valid tag appended
//! (the harness holds the key): that reaches the field reader, the part a key holder's bugs or a
//! third-party signer's would exercise.

#![no_main]

use adclick_click::token::{TokenKey, Verifier};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;
use sha2::Sha256;

const SECRET: &[u8; 32] = b"adclick-fuzz-token-parse-secret!";
const KEY_ID: &str = "fz";
/// A time inside most tokens the fuzzer builds: issue times it writes are small varints.
const NOW_SECS: u64 = 1_000;

fn verifier() -> Verifier {
    Verifier::new([TokenKey::new(KEY_ID, SECRET).expect("valid key")], 30).expect("one key")
}

/// `body` with the tag of `SECRET`, as token text.
fn seal(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET).expect("any key length");
    mac.update(body);
    let mut binary = body.to_vec();
    binary.extend_from_slice(&mac.finalize().into_bytes());
    URL_SAFE_NO_PAD.encode(binary)
}

fn check(verifier: &Verifier, token: &[u8]) {
    let Ok(verified) = verifier.verify(token, NOW_SECS) else {
        return;
    };
    assert_eq!(verified.key_id, KEY_ID);
    // The parsed URL can serialise longer than the signed bytes (percent-encoding); such claims
    // are verifiable but not signable again, which is the signer's documented limit.
    let Ok(again) = verifier
        .signer(KEY_ID)
        .expect("held key")
        .sign(&verified.claims)
    else {
        return;
    };
    assert_eq!(verifier.verify(&again, NOW_SECS), Ok(verified));
}

fuzz_target!(|data: &[u8]| {
    let verifier = verifier();
    check(&verifier, data);
    check(&verifier, URL_SAFE_NO_PAD.encode(data).as_bytes());
    check(&verifier, seal(data).as_bytes());
    // Behind a header of each version: version 2's reader also reads the extension.
    for version in [1, 2] {
        let mut with_header = vec![version, KEY_ID.len() as u8];
        with_header.extend_from_slice(KEY_ID.as_bytes());
        with_header.extend_from_slice(data);
        check(&verifier, seal(&with_header).as_bytes());
    }
});
