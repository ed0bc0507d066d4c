//! What the tests share: the two advertisers, running `enforce` and reading its output back as a
//! tree, with a selector walk of the tests' own (independent of the crate's); for the tests
//! against a Prometheus, two advertiser ids of a test run's own.

use adclick_query::{ADVERTISER_LABEL, Policy, Refusal, enforce};
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
