//! Upstream answers made safe to pass to a caller: an upstream's error text or warnings may name
//! its own or its stores' addresses (Thanos: "receive series from store 10.0.4.7:10901 …"), which
//! the gateway never shows (issue #21). Error envelopes and warnings are rewritten with
//! addresses and URLs replaced; an error body that is not Prometheus' JSON (a proxy's HTML page)
//! becomes the gateway's own envelope. Success bodies without warnings pass untouched, unread
//! beyond a search for `"warnings"`.

use std::sync::LazyLock;

use axum::body::Bytes;
use axum::http::StatusCode;
use regex::Regex;
use serde_json::Value;

use crate::envelope::Envelope;

/// What replaces an address.
const HIDDEN: &str = "<upstream>";

/// URLs, IPv4 and bracketed IPv6 addresses with or without a port, and `host:port`.
static ADDRESS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r#"(?i)\b[a-z][a-z0-9+.-]*://[^\s"',;]+"#,
        r"|\b(?:\d{1,3}\.){3}\d{1,3}(?::\d+)?\b",
        r"|\[[0-9a-f:.]+\](?::\d+)?",
        r"|\b[a-z0-9-]+(?:\.[a-z0-9-]+)*:\d{2,5}\b",
    ))
    .expect("a valid pattern")
});

/// `text` with every address replaced.
pub(crate) fn text(text: &str) -> String {
    ADDRESS.replace_all(text, HIDDEN).into_owned()
}

/// The body to pass on for an upstream answer of `status`: scrubbed where it may name addresses.
pub(crate) fn body(status: StatusCode, body: Bytes) -> Bytes {
    if status.is_success() {
        if !contains(&body, b"\"warnings\"") && !contains(&body, b"\"infos\"") {
            return body;
        }
        return match serde_json::from_slice::<Value>(&body) {
            Ok(mut v) => {
                for field in ["warnings", "infos"] {
                    if let Some(list) = v.get_mut(field).and_then(Value::as_array_mut) {
                        for w in list.iter_mut() {
                            if let Some(s) = w.as_str() {
                                *w = Value::String(text(s));
                            }
                        }
                    }
                }
                Bytes::from(v.to_string())
            }
            // Not JSON: nothing of Prometheus' to keep, and nothing read from it either.
            Err(_) => body,
        };
    }
    let envelope = serde_json::from_slice::<Value>(&body).ok().filter(|v| {
        v.get("status").and_then(Value::as_str) == Some("error") && v.get("error").is_some()
    });
    let (kind, error) = match envelope {
        Some(v) => (
            v.get("errorType")
                .and_then(Value::as_str)
                .unwrap_or("internal")
                .to_string(),
            text(v.get("error").and_then(Value::as_str).unwrap_or_default()),
        ),
        None => (
            "internal".to_string(),
            format!("the upstream answered {}", status.as_u16()),
        ),
    };
    Bytes::from(Envelope::error(&kind, &error).to_json())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_hidden_and_promql_is_not() {
        assert_eq!(
            text("receive series from store 10.0.4.7:10901: rpc error"),
            "receive series from store <upstream>: rpc error"
        );
        assert_eq!(
            text(r#"Post "http://thanos-query.internal:10902/api/v1/query": EOF"#),
            r#"Post "<upstream>": EOF"#
        );
        assert_eq!(
            text("dial [fd00::1]:9090 refused"),
            "dial <upstream> refused"
        );
        assert_eq!(text("store-gw-0.store:10901 down"), "<upstream> down");
        let promql = r#"sum(ad:adclick_clicks:sum_1h{advertiser_id="42"}[5m]) 1.5e3"#;
        assert_eq!(text(promql), promql);
    }

    #[test]
    fn error_envelopes_keep_their_type_and_lose_addresses() {
        let b = body(
            StatusCode::SERVICE_UNAVAILABLE,
            Bytes::from(
                r#"{"status":"error","errorType":"unavailable","error":"store 10.1.2.3:10901 down"}"#,
            ),
        );
        assert_eq!(
            b,
            r#"{"status":"error","errorType":"unavailable","error":"store <upstream> down"}"#
        );
        let b = body(
            StatusCode::BAD_GATEWAY,
            Bytes::from("<html>nginx at 10.0.0.1</html>"),
        );
        assert_eq!(
            b,
            r#"{"status":"error","errorType":"internal","error":"the upstream answered 502"}"#
        );
    }

    #[test]
    fn successes_pass_untouched_unless_they_warn() {
        let plain =
            Bytes::from(r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#);
        assert_eq!(body(StatusCode::OK, plain.clone()), plain);
        let warned = Bytes::from(
            r#"{"status":"success","data":{},"warnings":["partial response: store 10.0.0.9:10901 timed out"]}"#,
        );
        let out = String::from_utf8(body(StatusCode::OK, warned).to_vec()).unwrap();
        assert!(
            out.contains("store <upstream> timed out") && !out.contains("10.0.0.9"),
            "{out}"
        );
    }
}
