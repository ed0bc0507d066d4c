//! Who is asking: the credential a request presents (`Authorization: Bearer <key>`, or the
//! password of basic auth, which is what Grafana's datasource sends) and the caller it names.

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use base64::Engine as _;

use crate::keys::ApiKeys;

/// An authenticated caller, named by an API key or a JWT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Caller {
    /// Sees only series with `advertiser_id="<id>"`: every query is enforced.
    Advertiser(u64),
    /// Sees everything: requests are forwarded unmodified.
    Operator,
}

/// The key a request presents: the token of `Authorization: Bearer <key>`, or the password of
/// `Authorization: Basic base64(user:password)` (the user name is not looked at). None for
/// anything else, a missing header included.
pub fn presented_key(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, rest) = value.split_once(' ')?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return (!rest.is_empty()).then(|| rest.to_string());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (_user, password) = text.split_once(':')?;
        return (!password.is_empty()).then(|| password.to_string());
    }
    None
}

/// The caller of a request, when its key is one of `keys`.
pub fn authenticate(headers: &HeaderMap, keys: &ApiKeys) -> Option<Caller> {
    keys.caller(&presented_key(headers)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with_auth(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn bearer_and_basic_passwords_are_keys() {
        assert_eq!(
            presented_key(&with_auth("Bearer abc")).as_deref(),
            Some("abc")
        );
        assert_eq!(
            presented_key(&with_auth("bearer  abc ")).as_deref(),
            Some("abc")
        );
        let basic = base64::engine::general_purpose::STANDARD.encode("grafana:s3cr:et");
        assert_eq!(
            presented_key(&with_auth(&format!("Basic {basic}"))).as_deref(),
            Some("s3cr:et")
        );
        let no_password = base64::engine::general_purpose::STANDARD.encode("grafana:");
        assert_eq!(
            presented_key(&with_auth(&format!("Basic {no_password}"))),
            None
        );
        assert_eq!(presented_key(&with_auth("Basic !!!")), None);
        assert_eq!(presented_key(&with_auth("Bearer")), None);
        assert_eq!(presented_key(&with_auth("Token abc")), None);
        assert_eq!(presented_key(&HeaderMap::new()), None);
    }

    #[test]
    fn a_known_key_names_its_caller() {
        let keys = ApiKeys::parse(&format!("{} 7\n", crate::keys::key_digest_hex("k7"))).unwrap();
        assert_eq!(
            authenticate(&with_auth("Bearer k7"), &keys),
            Some(Caller::Advertiser(7))
        );
        assert_eq!(authenticate(&with_auth("Bearer k8"), &keys), None);
    }
}
