//! What the tests share: the two advertisers, running `enforce` and reading its output back as a
//! tree, with a selector walk of the tests' own (independent of the crate's); and, for the tests
//! against the stack, two advertisers' samples written to its Prometheus, parameters encoded as
//! a form, and HTTP answers read whole (from reqwest, or off a socket for requests sent as raw
//! bytes); two advertiser ids of a test run's own.

use std::time::{SystemTime, UNIX_EPOCH};

use adclick_query::{ADVERTISER_LABEL, Policy, Refusal, enforce};
use adclick_remote_write::{RequestBuilder, Sample, Sender};
use adclick_testsupport::Stack;
use promql_parser::label::MatchOp;
use promql_parser::parser::{Expr, VectorSelector, parse};

/// The caller.
pub const A: u64 = 1001;
/// Another advertiser, whose series A must never see.
pub const B: u64 = 2002;

/// Two advertiser ids (a, a + 1) of the test run whose scope id is `scope_id`, derived from it and
/// far above the stack's plans, so that a run never reads another's series.
pub fn advertiser_pair(scope_id: &str) -> (u64, u64) {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    scope_id.hash(&mut h);
    let a = 8_000_000_000_000 + (h.finish() % 1_000_000_000_000) * 2;
    (a, a + 1)
}

/// `query` enforced for A, which must be accepted: returns the output and its selectors, each
/// checked to carry `advertiser_id="1001"` exactly once, an allowed name and no `or` groups. The
/// output is parsed and inspected as a tree, not compared as text.
pub fn accepted(query: &str) -> (String, Vec<VectorSelector>) {
    let out = enforce(query, A, &Policy::default())
        .unwrap_or_else(|e| panic!("{query:?} was refused: {e}"));
    let sels = selectors_of(&out);
    for vs in &sels {
        assert_only_a(vs, &out);
    }
    (out, sels)
}

/// `query` enforced for A, which must be refused; the refusal's message must say something.
pub fn refused(query: &str) -> Refusal {
    match enforce(query, A, &Policy::default()) {
        Ok(out) => panic!("{query:?} was accepted as {out:?}"),
        Err(e) => {
            assert!(!e.to_string().is_empty());
            e
        }
    }
}

/// Every vector selector of `text` (parsed with promql-parser), those in matrix selectors and
/// aggregation parameters included.
pub fn selectors_of(text: &str) -> Vec<VectorSelector> {
    let expr = parse(text).unwrap_or_else(|e| panic!("{text:?} does not parse: {e}"));
    let mut out = vec![];
    walk(&expr, &mut out);
    out
}

fn walk(e: &Expr, out: &mut Vec<VectorSelector>) {
    match e {
        Expr::Aggregate(a) => {
            if let Some(p) = &a.param {
                walk(p, out);
            }
            walk(&a.expr, out);
        }
        Expr::Unary(u) => walk(&u.expr, out),
        Expr::Binary(b) => {
            walk(&b.lhs, out);
            walk(&b.rhs, out);
        }
        Expr::Paren(p) => walk(&p.expr, out),
        Expr::Subquery(s) => walk(&s.expr, out),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => {}
        Expr::VectorSelector(vs) => out.push(vs.clone()),
        Expr::MatrixSelector(ms) => out.push(ms.vs.clone()),
        Expr::Call(c) => c.args.args.iter().for_each(|a| walk(a, out)),
        Expr::Extension(_) => panic!("an extension node"),
    }
}

/// The selector carries `advertiser_id="1001"` and no other matcher on that label, a name the
/// default policy allows, and nothing the printer could drop.
pub fn assert_only_a(vs: &VectorSelector, context: &str) {
    assert_only(vs, A, context)
}

pub fn assert_only(vs: &VectorSelector, id: u64, context: &str) {
    let ours: Vec<_> = vs
        .matchers
        .matchers
        .iter()
        .chain(vs.matchers.or_matchers.iter().flatten())
        .filter(|m| m.name == ADVERTISER_LABEL)
        .collect();
    assert_eq!(ours.len(), 1, "{vs} in {context}");
    assert_eq!(ours[0].op, MatchOp::Equal, "{vs} in {context}");
    assert_eq!(ours[0].value, id.to_string(), "{vs} in {context}");
    assert!(vs.matchers.or_matchers.is_empty(), "{vs} in {context}");
    let name = vs
        .name
        .as_deref()
        .unwrap_or_else(|| panic!("{vs} has no name in {context}"));
    assert!(Policy::default().allows(name), "{vs} in {context}");
    assert!(
        vs.matchers.matchers.iter().all(|m| m.name != "__name__"),
        "{vs} in {context}"
    );
}

/// The value of `label`'s matchers in a selector, as (op, value).
pub fn matcher(vs: &VectorSelector, label: &str) -> Option<(String, String)> {
    vs.matchers
        .matchers
        .iter()
        .find(|m| m.name == label)
        .map(|m| (m.op.to_string(), m.value.clone()))
}

/// Two advertisers' samples of one test run in the stack's Prometheus (see [`write_samples`]).
pub struct Written {
    /// The caller's advertiser id: this run's own, used by no other test.
    pub a: u64,
    /// The other advertiser (`a + 1`), whose samples must never reach A.
    pub b: u64,
    /// The `test_id` label on both advertisers' series.
    pub test_id: String,
    /// The evaluation time of instant queries, Unix seconds: just after the last sample.
    pub time: String,
}

/// Writes three minutes of `adclick_clicks` samples for an advertiser A (1, 2, 3) and another,
/// B (100, 200, 300), both `campaign_id="1", ad_id="1"` and labelled with the scope's id, into
/// the stack's Prometheus by remote_write.
pub async fn write_samples(test: &str) -> Written {
    let stack = Stack::get();
    let scope = stack.isolated(test);
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let (a, b) = advertiser_pair(&scope.id);
    let first = (now_ms / 1000 - 180) * 1000;
    let mut builder = RequestBuilder::new();
    for (advertiser, scale) in [(a, 1.0), (b, 100.0)] {
        let samples = (0..3).map(|i| Sample::new(first + i * 60_000, scale * (i + 1) as f64));
        builder
            .series(
                [
                    ("__name__", "adclick_clicks".to_string()),
                    ("advertiser_id", advertiser.to_string()),
                    ("campaign_id", "1".to_string()),
                    ("ad_id", "1".to_string()),
                    ("test_id", scope.id.clone()),
                ],
                samples,
            )
            .unwrap();
    }
    let sender = Sender::new(
        &adclick_remote_write::Config::for_url(stack.remote_write_url()),
        adclick_remote_write::Metrics::new(),
    )
    .unwrap();
    sender.send(&builder.build()).await.unwrap();
    Written {
        a,
        b,
        test_id: scope.id,
        time: format!("{}", (first + 120_000) / 1000 + 1),
    }
}

/// `application/x-www-form-urlencoded` text of `params`, every byte but the unreserved ones
/// percent-encoded.
pub fn url_encode(params: &[(&str, &str)]) -> String {
    let mut s = String::new();
    for (k, v) in params {
        if !s.is_empty() {
            s.push('&');
        }
        s.push_str(&encode_component(k));
        s.push('=');
        s.push_str(&encode_component(v));
    }
    s
}

pub fn encode_component(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// An HTTP answer as a test reads it: status, headers (names lower-cased), body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    /// reqwest's response, read whole.
    pub async fn read(response: reqwest::Response) -> Answer {
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into()))
            .collect();
        let body = response.text().await.unwrap();
        Answer {
            status,
            headers,
            body,
        }
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {}", self.status, self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        let mut values = self.headers.iter().filter(|(k, _)| k == name);
        values.next().map(|(_, v)| v.as_str())
    }

    /// A refusal: `status`, Prometheus' error envelope, `reason` in its message.
    pub fn refused(&self, status: u16, reason: &str) {
        assert_eq!(self.status, status, "{}", self.body);
        let v = self.json();
        assert_eq!(v["status"], "error", "{v}");
        assert!(
            v["errorType"].as_str().is_some_and(|t| !t.is_empty()),
            "{v}"
        );
        let error = v["error"].as_str().unwrap_or_else(|| panic!("{v}"));
        assert!(error.contains(reason), "{reason:?} not in {error:?}");
    }
}

/// Sends `bytes` as they are on a new connection to `addr`, and reads every HTTP/1.1 answer
/// until the server closes it: for requests no client would send as written.
pub async fn exchange(addr: std::net::SocketAddr, bytes: &[u8]) -> Vec<Answer> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut read = Vec::new();
    let within = std::time::Duration::from_secs(20);
    tokio::time::timeout(within, stream.read_to_end(&mut read))
        .await
        .expect("no answer within 20 s")
        .unwrap();
    parse_answers(&read)
}

/// The HTTP/1.1 answers in `bytes`, one after another (Content-Length or chunked bodies).
fn parse_answers(mut bytes: &[u8]) -> Vec<Answer> {
    let mut answers = Vec::new();
    while let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&bytes[..end]).to_string();
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap();
        let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let header = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v);
        let mut rest = &bytes[end + 4..];
        let mut body = Vec::new();
        if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            loop {
                let eol = rest.windows(2).position(|w| w == b"\r\n").unwrap();
                let size = std::str::from_utf8(&rest[..eol]).unwrap().trim();
                let size = usize::from_str_radix(size, 16).unwrap();
                body.extend_from_slice(&rest[eol + 2..eol + 2 + size]);
                rest = &rest[eol + 2 + size + 2..];
                if size == 0 {
                    break;
                }
            }
        } else {
            let len = header("content-length").map_or(rest.len(), |v| v.parse().unwrap());
            body.extend_from_slice(&rest[..len]);
            rest = &rest[len..];
        }
        answers.push(Answer {
            status,
            headers,
            body: String::from_utf8_lossy(&body).to_string(),
        });
        bytes = rest;
    }
    answers
}
