//! The verifier against tokens made here: each algorithm, forgeries, `alg` tricks, time and
//! audience claims, claim shapes, bad key files.

use super::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-test-only";

fn key_path(name: &str) -> PathBuf {
    adclick_testsupport::workspace_root()
        .join("query/tests/keys")
        .join(name)
}

fn now() -> i64 {
    jsonwebtoken::get_current_timestamp() as i64
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn sign(alg: Algorithm, key: &EncodingKey, claims: &Value) -> String {
    jsonwebtoken::encode(&Header::new(alg), claims, key).unwrap()
}

fn hs_key() -> EncodingKey {
    EncodingKey::from_secret(SECRET)
}

fn rs_key(name: &str) -> EncodingKey {
    EncodingKey::from_rsa_pem(&std::fs::read(key_path(name)).unwrap()).unwrap()
}

fn es_key(name: &str) -> EncodingKey {
    EncodingKey::from_ec_pem(&std::fs::read(key_path(name)).unwrap()).unwrap()
}

/// A secret file (with a trailing newline, as editors write it) and its HS256 config.
fn hs_config(dir: &tempfile::TempDir) -> JwtConfig {
    let path = dir.path().join("secret");
    std::fs::write(&path, [SECRET, b"\n"].concat()).unwrap();
    JwtConfig {
        algorithm: Some(JwtAlgorithm::Hs256),
        key_file: path,
        ..JwtConfig::default()
    }
}

fn pem_config(algorithm: JwtAlgorithm, file: &str) -> JwtConfig {
    JwtConfig {
        algorithm: Some(algorithm),
        key_file: key_path(file),
        ..JwtConfig::default()
    }
}

fn verifier(config: &JwtConfig) -> JwtVerifier {
    JwtVerifier::load(config).unwrap().unwrap()
}

fn hs_verifier() -> (JwtVerifier, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    (verifier(&hs_config(&dir)), dir)
}

/// A token of the given header and claims, and signature bytes, assembled by hand.
fn raw(header: &Value, claims: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes()),
        b64(signature)
    )
}

fn valid(advertiser: Value) -> Value {
    json!({ "advertiser_id": advertiser, "exp": now() + 600 })
}

#[test]
fn each_algorithm_verifies_its_tokens() {
    let (hs, _dir) = hs_verifier();
    let t = sign(Algorithm::HS256, &hs_key(), &valid(json!("42")));
    assert_eq!(hs.verify(&t).unwrap(), Caller::Advertiser(42));
    let t = sign(Algorithm::HS256, &hs_key(), &valid(json!(7)));
    assert_eq!(hs.verify(&t).unwrap(), Caller::Advertiser(7));

    let rs = verifier(&pem_config(JwtAlgorithm::Rs256, "rs256-public.pem"));
    let t = sign(
        Algorithm::RS256,
        &rs_key("rs256-private.pem"),
        &valid(json!(43)),
    );
    assert_eq!(rs.verify(&t).unwrap(), Caller::Advertiser(43));

    let es = verifier(&pem_config(JwtAlgorithm::Es256, "es256-public.pem"));
    let t = sign(
        Algorithm::ES256,
        &es_key("es256-private.pem"),
        &valid(json!("44")),
    );
    assert_eq!(es.verify(&t).unwrap(), Caller::Advertiser(44));
    assert!(looks_like_jwt(&t));
}

#[test]
fn forged_signatures_are_refused() {
    let (hs, _dir) = hs_verifier();
    let other = EncodingKey::from_secret(b"another secret, 32 bytes or more, ok");
    let t = sign(Algorithm::HS256, &other, &valid(json!(1)));
    assert!(matches!(hs.verify(&t), Err(JwtRejection::Signature)), "{t}");

    let rs = verifier(&pem_config(JwtAlgorithm::Rs256, "rs256-public.pem"));
    let t = sign(
        Algorithm::RS256,
        &rs_key("rs256-other-private.pem"),
        &valid(json!(1)),
    );
    assert!(matches!(rs.verify(&t), Err(JwtRejection::Signature)));

    let es = verifier(&pem_config(JwtAlgorithm::Es256, "es256-public.pem"));
    let t = sign(
        Algorithm::ES256,
        &es_key("es256-other-private.pem"),
        &valid(json!(1)),
    );
    assert!(matches!(es.verify(&t), Err(JwtRejection::Signature)));

    // A genuine signature over other claims: the advertiser id swapped.
    let genuine = sign(Algorithm::HS256, &hs_key(), &valid(json!(1)));
    let [h, _, s] = segments(&genuine).unwrap();
    let swapped = format!("{h}.{}.{s}", b64(valid(json!(2)).to_string().as_bytes()));
    assert!(matches!(hs.verify(&swapped), Err(JwtRejection::Signature)));
}

#[test]
fn alg_none_and_other_algorithms_are_refused() {
    let (hs, _dir) = hs_verifier();
    for alg in ["none", "None", "NONE", "HS384", "HS512", "RS256", ""] {
        let t = raw(&json!({ "alg": alg, "typ": "JWT" }), &valid(json!(1)), b"");
        assert!(
            matches!(hs.verify(&t), Err(JwtRejection::Algorithm { .. })),
            "{alg}"
        );
    }
    // Same secret, another HMAC: valid for HS384, refused because HS384 is not configured.
    let t = sign(Algorithm::HS384, &hs_key(), &valid(json!(1)));
    match hs.verify(&t) {
        Err(JwtRejection::Algorithm { presented }) => assert_eq!(presented, "HS384"),
        other => panic!("{other:?}"),
    }
    // An RS256 token to an ES256 verifier.
    let es = verifier(&pem_config(JwtAlgorithm::Es256, "es256-public.pem"));
    let t = sign(
        Algorithm::RS256,
        &rs_key("rs256-private.pem"),
        &valid(json!(1)),
    );
    assert!(matches!(es.verify(&t), Err(JwtRejection::Algorithm { .. })));
    // Whatever alg says is never echoed unless it is a short name.
    let t = raw(&json!({ "alg": "x\n\u{1b}[31m" }), &valid(json!(1)), b"");
    let err = hs.verify(&t).unwrap_err().to_string();
    assert!(err.contains("not shown"), "{err}");
    // `crit` names extensions nobody here understands.
    let mut header = Header::new(Algorithm::HS256);
    header.extras.insert("crit".into(), "[\"exp\"]".into());
    let t = jsonwebtoken::encode(&header, &valid(json!(1)), &hs_key()).unwrap();
    assert!(matches!(hs.verify(&t), Err(JwtRejection::Malformed(_))));
}

#[test]
fn alg_confusion_with_the_public_key_as_hmac_secret_is_refused() {
    let public_pem = std::fs::read(key_path("rs256-public.pem")).unwrap();
    let rs = verifier(&pem_config(JwtAlgorithm::Rs256, "rs256-public.pem"));
    let forged = sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(&public_pem),
        &valid(json!(1)),
    );
    assert!(matches!(
        rs.verify(&forged),
        Err(JwtRejection::Algorithm { .. })
    ));
    // And the operator who forgets `algorithm` with a public key gets no HS256 default.
    let config = JwtConfig {
        algorithm: None,
        ..pem_config(JwtAlgorithm::Rs256, "rs256-public.pem")
    };
    assert!(matches!(
        JwtVerifier::load(&config),
        Err(JwtConfigError::Field {
            field: "algorithm",
            ..
        })
    ));
    // Nor may the public key be configured as an HS256 secret.
    let config = pem_config(JwtAlgorithm::Hs256, "rs256-public.pem");
    assert!(matches!(
        JwtVerifier::load(&config),
        Err(JwtConfigError::Key { .. })
    ));
}

#[test]
fn time_claims_are_checked_with_leeway() {
    let (hs, _dir) = hs_verifier();
    let token = |claims: Value| sign(Algorithm::HS256, &hs_key(), &claims);
    let with = |extra: Value| {
        let mut c = valid(json!(1));
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        token(c)
    };
    // leeway_s is 30.
    assert!(hs.verify(&with(json!({ "exp": now() - 10 }))).is_ok());
    assert!(matches!(
        hs.verify(&with(json!({ "exp": now() - 60 }))),
        Err(JwtRejection::Expired)
    ));
    assert!(hs.verify(&with(json!({ "nbf": now() + 10 }))).is_ok());
    assert!(matches!(
        hs.verify(&with(json!({ "nbf": now() + 60 }))),
        Err(JwtRejection::NotYetValid)
    ));
    // GHSA-h395-gr6q-cpjc: a time of the wrong JSON type must not skip its check.
    assert!(matches!(
        hs.verify(&with(json!({ "nbf": "99999999999" }))),
        Err(JwtRejection::BadClaim { .. })
    ));
    assert!(matches!(
        hs.verify(&token(json!({ "advertiser_id": 1 }))),
        Err(JwtRejection::MissingClaim(c)) if c == "exp"
    ));
    assert!(matches!(
        hs.verify(&token(json!({ "advertiser_id": 1, "exp": "never" }))),
        Err(JwtRejection::MissingClaim(c)) if c == "exp"
    ));
}

#[test]
fn audience_and_issuer_must_match_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    let v = verifier(&JwtConfig {
        audience: Some("adclick-query".into()),
        issuer: Some("https://login.example.com".into()),
        ..hs_config(&dir)
    });
    let token = |aud: Value, iss: Value| {
        let mut c = valid(json!(5));
        for (k, val) in [("aud", aud), ("iss", iss)] {
            if !val.is_null() {
                c[k] = val;
            }
        }
        sign(Algorithm::HS256, &hs_key(), &c)
    };
    let iss = json!("https://login.example.com");
    let t = token(json!("adclick-query"), iss.clone());
    assert_eq!(v.verify(&t).unwrap(), Caller::Advertiser(5));
    let t = token(json!(["grafana", "adclick-query"]), iss.clone());
    assert_eq!(v.verify(&t).unwrap(), Caller::Advertiser(5));
    let t = token(json!("grafana"), iss.clone());
    assert!(matches!(v.verify(&t), Err(JwtRejection::Audience)));
    let t = token(Value::Null, iss);
    assert!(matches!(v.verify(&t), Err(JwtRejection::MissingClaim(c)) if c == "aud"));
    let t = token(json!("adclick-query"), json!("https://evil.example.com"));
    assert!(matches!(v.verify(&t), Err(JwtRejection::Issuer)));
    let t = token(json!("adclick-query"), Value::Null);
    assert!(matches!(v.verify(&t), Err(JwtRejection::MissingClaim(c)) if c == "iss"));
    // No audience configured: a token meant for someone else is not ours to accept.
    let (hs, _dir) = hs_verifier();
    let t = token(json!("grafana"), Value::Null);
    assert!(matches!(hs.verify(&t), Err(JwtRejection::Audience)));
}

#[test]
fn the_advertiser_claim_must_be_a_non_negative_integer() {
    let (hs, _dir) = hs_verifier();
    let t = sign(Algorithm::HS256, &hs_key(), &json!({ "exp": now() + 60 }));
    assert!(matches!(hs.verify(&t), Err(JwtRejection::MissingClaim(c)) if c == "advertiser_id"));
    for bad in [
        json!("abc"),
        json!(-1),
        json!("-1"),
        json!("+7"),
        json!(" 7"),
        json!(""),
        json!(1.5),
        json!("18446744073709551616"),
        json!(true),
        json!(null),
        json!([7]),
    ] {
        let t = sign(Algorithm::HS256, &hs_key(), &valid(bad.clone()));
        assert!(
            matches!(hs.verify(&t), Err(JwtRejection::BadClaim { .. })),
            "{bad}"
        );
    }
    let t = sign(Algorithm::HS256, &hs_key(), &valid(json!(u64::MAX)));
    assert_eq!(hs.verify(&t).unwrap(), Caller::Advertiser(u64::MAX));
}

#[test]
fn the_operator_claim_names_operators_only_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    let v = verifier(&JwtConfig {
        operator_claim: "adclick_operator".into(),
        ..hs_config(&dir)
    });
    let sign_ = |claims: Value| sign(Algorithm::HS256, &hs_key(), &claims);
    let exp = now() + 60;
    let op = sign_(json!({ "adclick_operator": true, "exp": exp }));
    assert_eq!(v.verify(&op).unwrap(), Caller::Operator);
    let t = sign_(json!({ "adclick_operator": false, "advertiser_id": 3, "exp": exp }));
    assert_eq!(v.verify(&t).unwrap(), Caller::Advertiser(3));
    let t = sign_(json!({ "adclick_operator": "true", "exp": exp }));
    assert!(matches!(v.verify(&t), Err(JwtRejection::BadClaim { .. })));
    let both = sign_(json!({ "adclick_operator": true, "advertiser_id": 3, "exp": exp }));
    assert!(matches!(
        v.verify(&both),
        Err(JwtRejection::Ambiguous { .. })
    ));
    // Without operator_claim, the same token is no operator's.
    let (hs, _dir) = hs_verifier();
    assert!(matches!(hs.verify(&op), Err(JwtRejection::MissingClaim(_))));
}

#[test]
fn garbage_is_malformed_and_does_not_look_like_a_jwt() {
    let (hs, _dir) = hs_verifier();
    let long = "a".repeat(MAX_TOKEN_BYTES + 1);
    for garbage in [
        "",
        "abc",
        "a.b",
        "a.b.c.d",
        "!!!.e30.x",
        "e30.e30.x",
        "bm90IGpzb24.e30.x",
        "W10.e30.x",
        long.as_str(),
    ] {
        assert!(
            matches!(hs.verify(garbage), Err(JwtRejection::Malformed(_))),
            "{garbage:.40}"
        );
        assert!(!looks_like_jwt(garbage), "{garbage:.40}");
    }
    // Right header and signature, claims not JSON (the signature is checked first).
    let message = format!("{}.{}", b64(br#"{"alg":"HS256"}"#), b64(b"nope"));
    let signature =
        jsonwebtoken::crypto::sign(message.as_bytes(), &hs_key(), Algorithm::HS256).unwrap();
    let t = format!("{message}.{signature}");
    assert!(matches!(hs.verify(&t), Err(JwtRejection::Malformed(_))));
    assert!(matches!(
        hs.verify(&format!("{message}.")),
        Err(JwtRejection::Signature)
    ));
    // A 64-hex API key is never taken for a JWT; a `none` token (empty signature) is.
    assert!(!looks_like_jwt(&crate::keys::key_digest_hex("k")));
    assert!(looks_like_jwt(&raw(
        &json!({ "alg": "none" }),
        &json!({}),
        b""
    )));
    assert!(!looks_like_jwt(&format!(
        "{}.e30=.x",
        b64(br#"{"alg":"HS256"}"#)
    )));
    assert!(!looks_like_jwt(&format!(
        "{}.e30.x",
        b64(br#"{"typ":"JWT"}"#)
    )));
}

#[test]
fn bad_key_files_are_refused_at_load_and_named() {
    assert!(JwtVerifier::load(&JwtConfig::default()).unwrap().is_none());
    let half_done = JwtConfig {
        algorithm: Some(JwtAlgorithm::Rs256),
        ..JwtConfig::default()
    };
    assert!(JwtVerifier::load(&half_done).is_err());

    let dir = tempfile::tempdir().unwrap();
    let short = dir.path().join("short");
    std::fs::write(&short, "0123456789abcdef0123456789abcde\n").unwrap();
    let config = JwtConfig {
        key_file: short.clone(),
        ..hs_config(&dir)
    };
    match JwtVerifier::load(&config) {
        Err(e @ JwtConfigError::ShortSecret { len: 31, .. }) => {
            let shown = e.to_string();
            assert!(shown.contains(&short.display().to_string()), "{shown}");
            assert!(!shown.contains("0123456789"), "{shown}");
        }
        other => panic!("{other:?}"),
    }

    let missing = dir.path().join("no-such-file");
    let config = JwtConfig {
        key_file: missing.clone(),
        ..hs_config(&dir)
    };
    match JwtVerifier::load(&config) {
        Err(e @ JwtConfigError::Read { .. }) => {
            assert!(e.to_string().contains(&missing.display().to_string()));
            assert!(std::error::Error::source(&e).is_some());
        }
        other => panic!("{other:?}"),
    }

    for (algorithm, file, why) in [
        (JwtAlgorithm::Rs256, "es256-public.pem", "not a PEM RS256"),
        (JwtAlgorithm::Es256, "rs256-public.pem", "not a PEM ES256"),
        (JwtAlgorithm::Rs256, "rs256-private.pem", "a private key"),
        (JwtAlgorithm::Es256, "es256-private.pem", "a private key"),
        (
            JwtAlgorithm::Rs256,
            "rsa1024-public.pem",
            "2048 to 8192 bits",
        ),
        (JwtAlgorithm::Es256, "es384-public.pem", "not a P-256 key"),
        (JwtAlgorithm::Rs256, "README.md", "not a PEM RS256"),
    ] {
        match JwtVerifier::load(&pem_config(algorithm, file)) {
            Err(e @ (JwtConfigError::Key { .. } | JwtConfigError::Pem { .. })) => {
                let shown = e.to_string();
                assert!(shown.contains(file) && shown.contains(why), "{shown}");
            }
            other => panic!("{file}: {other:?}"),
        }
    }
}

#[test]
fn config_defaults_and_claim_settings() {
    let c: JwtConfig = serde_json::from_value(json!({})).unwrap();
    assert_eq!(c, JwtConfig::default());
    assert_eq!(
        (c.advertiser_claim.as_str(), c.leeway_s),
        ("advertiser_id", 30)
    );
    let c: JwtConfig =
        serde_json::from_value(json!({ "algorithm": "ES256", "key_file": "k.pem" })).unwrap();
    assert_eq!(c.algorithm, Some(JwtAlgorithm::Es256));
    assert!(serde_json::from_value::<JwtConfig>(json!({ "algorithm": "none" })).is_err());
    assert!(serde_json::from_value::<JwtConfig>(json!({ "leway_s": 1 })).is_err());

    let dir = tempfile::tempdir().unwrap();
    for bad in [
        JwtConfig {
            advertiser_claim: String::new(),
            ..hs_config(&dir)
        },
        JwtConfig {
            operator_claim: "advertiser_id".into(),
            ..hs_config(&dir)
        },
        JwtConfig {
            audience: Some(String::new()),
            ..hs_config(&dir)
        },
        JwtConfig {
            leeway_s: 301,
            ..hs_config(&dir)
        },
    ] {
        assert!(
            matches!(JwtVerifier::load(&bad), Err(JwtConfigError::Field { .. })),
            "{bad:?}"
        );
    }
    // Another claim name, and the secret never in Debug.
    let v = verifier(&JwtConfig {
        advertiser_claim: "sub".into(),
        ..hs_config(&dir)
    });
    let t = sign(
        Algorithm::HS256,
        &hs_key(),
        &json!({ "sub": "9", "exp": now() + 60 }),
    );
    assert_eq!(v.verify(&t).unwrap(), Caller::Advertiser(9));
    let shown = format!("{v:?}");
    assert!(!shown.contains("0123456789abcdef"), "{shown}");
    assert!(shown.contains("sub"), "{shown}");
}
