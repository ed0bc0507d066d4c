//! Generated queries: random trees of the constructs advertisers use (proptest), each either
//! restricted selector by selector or, when a selector carries a foreign `advertiser_id` matcher,
//! refused; and nestings of every shape at every depth up to past the bound, accepted below it,
//! refused above it, without exhausting a 2 MiB stack at the highest bound a policy may set.

use adclick_query::{Limits, Policy, Refusal, enforce};
use proptest::prelude::*;

use crate::support::{A, assert_only_a, selectors_of};

/// A selector: an allowed name and a few matchers, sometimes the caller's own advertiser matcher
/// and sometimes (`bad`) a foreign one.
fn selector() -> impl Strategy<Value = (String, bool)> {
    let names = prop::sample::select(vec![
        "adclick_clicks",
        "adclick_clicks_open",
        "adclick_late_clicks",
        "ad:adclick_clicks:sum_1h",
        "campaign:adclick_clicks:sum_1d",
    ]);
    let matcher = prop::sample::select(vec![
        (r#"campaign_id="5""#, false),
        (r#"ad_id=~"1.*""#, false),
        (r#"ad_id!="other""#, false),
        (r#"tier!="rollup""#, false),
        (r#"advertiser_id="1001""#, false),
        (r#"advertiser_id="2002""#, true),
        (r#"advertiser_id=~".+""#, true),
        (r#"advertiser_id!="1001""#, true),
    ]);
    (names, prop::collection::vec(matcher, 0..3)).prop_map(|(name, ms)| {
        let bad = ms.iter().any(|(_, b)| *b);
        let body: Vec<&str> = ms.iter().map(|(m, _)| *m).collect();
        (format!("{name}{{{}}}", body.join(", ")), bad)
    })
}

/// An instant-vector expression.
fn vector_expr() -> impl Strategy<Value = (String, bool)> {
    let leaf = prop_oneof![
        selector(),
        selector().prop_map(|(s, b)| (format!("sum_over_time({s}[1h])"), b)),
        selector().prop_map(|(s, b)| (format!("rate({s}[5m] offset 1d)"), b)),
        selector().prop_map(|(s, b)| (format!("{s} @ end()"), b)),
        Just(("vector(1)".to_string(), false)),
    ];
    leaf.prop_recursive(4, 24, 2, |inner| {
        prop_oneof![
            inner
                .clone()
                .prop_map(|(e, b)| (format!("sum by (ad_id) ({e})"), b)),
            inner.clone().prop_map(|(e, b)| (format!("({e})"), b)),
            inner.clone().prop_map(|(e, b)| (format!("-{e}"), b)),
            inner.clone().prop_map(|(e, b)| (format!("abs({e})"), b)),
            inner
                .clone()
                .prop_map(|(e, b)| (format!("max_over_time(({e})[30m:1m])"), b)),
            inner.clone().prop_map(|(e, b)| (
                format!(r#"label_replace({e}, "x", "$1", "ad_id", "(.*)")"#),
                b
            )),
            (inner.clone(), inner.clone())
                .prop_map(|((p, pb), (e, eb))| (format!("topk(scalar({p}), {e})"), pb || eb)),
            (inner.clone(), inner.clone())
                .prop_map(|((l, lb), (r, rb))| (format!("{l} + on (ad_id) {r}"), lb || rb)),
            (inner.clone(), inner.clone())
                .prop_map(|((l, lb), (r, rb))| (format!("{l} or {r}"), lb || rb)),
            (inner.clone(), inner).prop_map(|((l, lb), (r, rb))| (
                format!("{l} > bool on () group_left count({r})"),
                lb || rb
            )),
        ]
    })
}

fn roomy() -> Policy {
    Policy::new(
        Policy::default().metrics(),
        Limits {
            max_bytes: 1 << 20,
            max_nesting: Limits::MAX_NESTING_CEILING,
        },
    )
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn generated_queries_are_restricted_or_refused((query, bad) in vector_expr()) {
        match enforce(&query, A, &roomy()) {
            Ok(out) => {
                prop_assert!(!bad, "{query} was accepted as {out}");
                let sels = selectors_of(&out);
                prop_assert_eq!(sels.len(), selectors_of(&query).len(), "{} -> {}", query, out);
                for vs in &sels {
                    assert_only_a(vs, &out);
                }
            }
            Err(Refusal::AdvertiserMatcher { .. }) => prop_assert!(bad, "{query}"),
            Err(e) => return Err(TestCaseError::fail(format!("{query}: {e}"))),
        }
    }
}

type Shape = fn(usize) -> String;

/// Each shape wraps a selector `n` times; it nests (brackets plus operators) `n` deep give or
/// take a constant and a factor of 2, so below the bound it must pass and past it be refused.
fn shapes() -> Vec<(&'static str, Shape)> {
    fn parens(n: usize) -> String {
        format!("{}adclick_clicks{}", "(".repeat(n), ")".repeat(n))
    }
    fn sums(n: usize) -> String {
        format!("{}adclick_clicks{}", "sum(".repeat(n), ")".repeat(n))
    }
    fn unary_minus(n: usize) -> String {
        format!("{}adclick_clicks", "-".repeat(n))
    }
    fn sum_chain(n: usize) -> String {
        format!("adclick_clicks{}", " + adclick_clicks_open".repeat(n))
    }
    fn power_chain(n: usize) -> String {
        format!("adclick_clicks{}", " ^ adclick_clicks".repeat(n))
    }
    fn topk_parameters(n: usize) -> String {
        format!(
            "{}adclick_clicks{}",
            "topk(scalar(".repeat(n),
            "), adclick_clicks)".repeat(n)
        )
    }
    fn subqueries(n: usize) -> String {
        format!(
            "{}adclick_clicks{}",
            "max_over_time(".repeat(n),
            "[10m:1m])".repeat(n)
        )
    }
    vec![
        ("parens", parens as Shape),
        ("sums", sums as Shape),
        ("unary minus", unary_minus as Shape),
        ("sum chain", sum_chain as Shape),
        ("power chain", power_chain as Shape),
        ("topk parameters", topk_parameters as Shape),
        ("subqueries", subqueries as Shape),
    ]
}

#[test]
fn nestings_below_the_bound_pass_and_above_it_are_refused() {
    let policy = Policy::default();
    let max = policy.limits().max_nesting;
    for (shape, build) in shapes() {
        for n in 1..=2 * max {
            let q = build(n);
            match enforce(&q, A, &policy) {
                Ok(out) => {
                    assert!(n <= max, "{shape} {n}");
                    let sels = selectors_of(&out);
                    assert!(!sels.is_empty());
                    for vs in &sels {
                        assert_only_a(vs, &out);
                    }
                }
                Err(Refusal::TooDeep { .. }) => assert!(n + 1 > max / 2, "{shape} {n}"),
                Err(e) => panic!("{shape} {n}: {e}"),
            }
        }
        // Far past the bound: refused on the text, never parsed.
        assert!(matches!(
            enforce(&build(10_000), A, &roomy()),
            Err(Refusal::TooDeep { .. })
        ));
    }
}

/// At the highest bound a policy may set, every shape parses, is rewritten, printed, parsed
/// again and dropped on a thread with tokio's default 2 MiB stack.
#[test]
fn the_nesting_ceiling_fits_a_two_mebibyte_stack() {
    let handle = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(|| {
            let policy = roomy();
            let ceiling = Limits::MAX_NESTING_CEILING;
            for (shape, build) in shapes() {
                // The deepest query of the shape the bound lets through.
                let n = (1..=ceiling)
                    .rev()
                    .find(|&n| {
                        !matches!(enforce(&build(n), A, &policy), Err(Refusal::TooDeep { .. }))
                    })
                    .unwrap_or_else(|| panic!("{shape}: nothing passes"));
                let out =
                    enforce(&build(n), A, &policy).unwrap_or_else(|e| panic!("{shape} {n}: {e}"));
                assert!(out.contains(r#"advertiser_id="1001""#));
            }
        })
        .unwrap();
    handle.join().unwrap();
}
