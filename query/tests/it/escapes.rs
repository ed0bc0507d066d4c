//! The escape catalogue of issue #21 at the expression level: each attempt to read beyond the
//! caller's own series is either refused with the reason it names, or accepted with every selector
//! of the output (parsed back and inspected) carrying only the caller's `advertiser_id` matcher.

use adclick_query::{Limits, Policy, Refusal, enforce, enforce_match};
use promql_parser::parser::{Expr, parse};
use promql_parser::util::{ExprVisitor, walk_expr};

use crate::support::{A, B, accepted, assert_only_a, matcher, refused, selectors_of};

fn assert_advertiser_matcher(query: &str, shown: &str) {
    match refused(query) {
        Refusal::AdvertiserMatcher { matcher } => assert_eq!(matcher, shown, "{query}"),
        other => panic!("{query}: {other:?}"),
    }
}

// --- matchers on advertiser_id ---

#[test]
fn regex_matcher_on_advertiser_is_refused() {
    assert_advertiser_matcher(
        r#"adclick_clicks{advertiser_id=~".+"}"#,
        r#"advertiser_id=~".+""#,
    );
}

#[test]
fn regex_matching_only_the_callers_id_is_refused_too() {
    assert_advertiser_matcher(
        r#"sum(adclick_clicks{advertiser_id=~"1001|2002"})"#,
        r#"advertiser_id=~"1001|2002""#,
    );
    assert_advertiser_matcher(
        r#"adclick_clicks{advertiser_id=~"1001"}"#,
        r#"advertiser_id=~"1001""#,
    );
}

#[test]
fn negative_regex_on_advertiser_is_refused() {
    assert_advertiser_matcher(
        r#"adclick_clicks{advertiser_id!~"1001"}"#,
        r#"advertiser_id!~"1001""#,
    );
}

#[test]
fn not_equal_on_advertiser_is_refused() {
    assert_advertiser_matcher(
        r#"adclick_clicks{advertiser_id!="1001"}"#,
        r#"advertiser_id!="1001""#,
    );
}

#[test]
fn another_advertisers_id_is_refused() {
    assert_advertiser_matcher(
        &format!(r#"adclick_clicks{{advertiser_id="{B}"}}"#),
        r#"advertiser_id="2002""#,
    );
    // "absent" (the empty value) is another value, and a padded id is another id.
    assert_advertiser_matcher(r#"adclick_clicks{advertiser_id=""}"#, r#"advertiser_id="""#);
    assert_advertiser_matcher(
        r#"adclick_clicks{advertiser_id="01001"}"#,
        r#"advertiser_id="01001""#,
    );
}

#[test]
fn own_id_with_another_id_on_the_same_selector_is_refused() {
    assert_advertiser_matcher(
        r#"adclick_clicks{advertiser_id="1001", advertiser_id="2002"}"#,
        r#"advertiser_id="2002""#,
    );
}

#[test]
fn another_id_deep_in_functions_and_binary_operations_is_refused() {
    assert_advertiser_matcher(
        r#"sum(rate(adclick_clicks[5m])) / sum(rate(adclick_clicks{advertiser_id="2002"}[5m] offset 1h))"#,
        r#"advertiser_id="2002""#,
    );
}

#[test]
fn the_callers_own_matcher_is_kept_once() {
    let (out, sels) =
        accepted(r#"adclick_clicks{advertiser_id="1001", campaign_id="5", advertiser_id="1001"}"#);
    assert_eq!(sels.len(), 1, "{out}");
    assert_eq!(
        matcher(&sels[0], "campaign_id"),
        Some(("=".into(), "5".into()))
    );
}

#[test]
fn escape_sequences_spelling_another_id_are_refused() {
    // \u0032\u0030\u0030\u0032 is "2002"; so is the octal \062\060\060\062.
    assert_advertiser_matcher(
        r#"adclick_clicks{advertiser_id="\u0032\u0030\u0030\u0032"}"#,
        r#"advertiser_id="2002""#,
    );
    assert_advertiser_matcher(
        r#"adclick_clicks{advertiser_id="\062\060\060\062"}"#,
        r#"advertiser_id="2002""#,
    );
    // A quoted label name with an escape is the same label.
    assert_advertiser_matcher(
        r#"adclick_clicks{"advertiser\u005fid"!="1001"}"#,
        r#"advertiser_id!="1001""#,
    );
}

#[test]
fn escape_sequences_spelling_the_callers_id_are_normalised() {
    let (out, sels) = accepted(r#"adclick_clicks{advertiser_id="\x31\x30\x30\x31"}"#);
    assert_eq!(sels.len(), 1);
    assert!(out.contains(r#"advertiser_id="1001""#), "{out}");
}

#[test]
fn a_lookalike_label_name_is_only_another_label() {
    // Cyrillic "і" in the name: another label entirely, which cannot widen the selection.
    let (out, sels) = accepted("adclick_clicks{\"advertiser_\u{456}d\"=\"2002\"}");
    assert_eq!(sels.len(), 1);
    assert_eq!(
        matcher(&sels[0], "advertiser_\u{456}d"),
        Some(("=".into(), "2002".into())),
        "{out}"
    );
}

#[test]
fn a_lookalike_metric_name_is_not_an_allowed_one() {
    // Cyrillic "с": unquoted it does not even lex; quoted it is another name.
    assert!(matches!(refused("adclick_\u{441}licks"), Refusal::Parse(_)));
    assert_eq!(
        refused("{\"adclick_\u{441}licks\"}"),
        Refusal::MetricNotAllowed {
            name: "adclick_\u{441}licks".into()
        }
    );
}

#[test]
fn percent_encoding_is_not_decoded_here() {
    // The HTTP layer decodes the form once; what arrives still encoded is PromQL (`%` is modulo)
    // and does not parse.
    assert!(matches!(
        refused("adclick_clicks%7Badvertiser_id%3D%222002%22%7D"),
        Refusal::Parse(_)
    ));
}

#[test]
fn quotes_and_control_characters_in_values_stay_inside_their_string() {
    // The value holds `",advertiser_id="2002`: printed back escaped, it cannot become a matcher.
    let (out, sels) =
        accepted(r#"adclick_clicks{campaign_id="x\",advertiser_id=\"2002", ad_id="a\nb\u0000\\"}"#);
    assert_eq!(sels.len(), 1, "{out}");
    assert_eq!(
        matcher(&sels[0], "campaign_id"),
        Some(("=".into(), r#"x",advertiser_id="2002"#.into()))
    );
    assert_eq!(
        matcher(&sels[0], "ad_id"),
        Some(("=".into(), "a\nb\u{0}\\".into()))
    );
}

// --- metric names ---

#[test]
fn any_name_regex_is_refused() {
    match refused(r#"{__name__=~".+"}"#) {
        Refusal::NameMatcher { matcher } => assert_eq!(matcher, r#"__name__=~".+""#),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        refused(r#"count({__name__=~"adclick_clicks|up"})"#),
        Refusal::NameMatcher { .. }
    ));
    assert!(matches!(
        refused(r#"{__name__!="adclick_clicks", ad_id="7"}"#),
        Refusal::NameMatcher { .. }
    ));
}

#[test]
fn two_names_are_refused() {
    assert!(matches!(
        refused(r#"{__name__="adclick_clicks", __name__="up"}"#),
        Refusal::NameMatcher { .. }
    ));
}

#[test]
fn a_selector_without_a_name_is_refused() {
    for q in [
        r#"{ad_id="7"}"#,
        r#"{advertiser_id="1001"}"#,
        r#"sum by (job) ({job=~".+"})"#,
    ] {
        assert!(matches!(refused(q), Refusal::NoMetricName { .. }), "{q}");
    }
}

#[test]
fn an_exact_name_matcher_is_accepted_as_the_name() {
    let (out, sels) = accepted(r#"{__name__="adclick_clicks", campaign_id="5"}"#);
    assert_eq!(sels[0].name.as_deref(), Some("adclick_clicks"), "{out}");
    let (out, sels) = accepted(r#"sum({"adclick_clicks_open"})"#);
    assert_eq!(
        sels[0].name.as_deref(),
        Some("adclick_clicks_open"),
        "{out}"
    );
}

#[test]
fn series_outside_the_allowlist_are_refused() {
    for (q, name) in [
        ("up", "up"),
        (
            "sum(adclick_ingest_clicks_accepted_total)",
            "adclick_ingest_clicks_accepted_total",
        ),
        (
            r#"adclick_rollup_clicks{tier="rollup"}"#,
            "adclick_rollup_clicks",
        ),
        (
            r#"{__name__="prometheus_build_info"}"#,
            "prometheus_build_info",
        ),
        ("adclick_clicks * on() group_left up", "up"),
    ] {
        assert_eq!(
            refused(q),
            Refusal::MetricNotAllowed { name: name.into() },
            "{q}"
        );
    }
}

#[test]
fn recorded_and_rollup_series_are_allowed() {
    let (_, sels) = accepted(
        r#"sum(advertiser:adclick_clicks:sum_1d) + sum(sum_over_time(adclick_clicks{tier="rollup"}[1d]))"#,
    );
    assert_eq!(sels.len(), 2);
    assert_eq!(
        matcher(&sels[1], "tier"),
        Some(("=".into(), "rollup".into()))
    );
}

// --- set operations, joins, aggregations ---

#[test]
fn or_vector_keeps_the_selector_restricted() {
    let (out, sels) = accepted("sum(adclick_clicks) or vector(1)");
    assert_eq!(sels.len(), 1, "{out}");
    assert!(matches!(
        refused("adclick_clicks or up"),
        Refusal::MetricNotAllowed { .. }
    ));
    assert!(matches!(
        refused("adclick_clicks OR up"),
        Refusal::MetricNotAllowed { .. }
    ));
}

#[test]
fn on_and_group_left_joins_restrict_both_sides() {
    let (out, sels) = accepted(
        "adclick_clicks * on (ad_id) group_left (campaign_id) ad:adclick_clicks:sum_1h \
         / ignoring (advertiser_id) group_right adclick_clicks_open",
    );
    assert_eq!(sels.len(), 3, "{out}");
    let (_, sels) = accepted("adclick_clicks and on () adclick_late_clicks");
    assert_eq!(sels.len(), 2);
}

#[test]
fn count_by_advertiser_counts_only_the_callers_series() {
    let (out, sels) = accepted("count by (advertiser_id) (adclick_clicks)");
    assert_eq!(sels.len(), 1);
    assert!(out.starts_with("count by (advertiser_id) ("), "{out}");
}

#[test]
fn topk_over_everything_is_refused_and_over_clicks_restricted() {
    assert!(matches!(
        refused(r#"topk(10, {__name__=~".+"})"#),
        Refusal::NameMatcher { .. }
    ));
    let (_, sels) = accepted("topk(10, adclick_clicks)");
    assert_eq!(sels.len(), 1);
}

/// promql-parser's own walker never visits an aggregation's parameter (the gap the crate's walk
/// closes): here it sees one selector of two.
#[test]
fn the_aggregation_parameter_is_restricted() {
    struct Count(usize);
    impl ExprVisitor for Count {
        type Error = ();
        fn pre_visit(&mut self, e: &Expr) -> Result<bool, ()> {
            self.0 += usize::from(matches!(e, Expr::VectorSelector(_)));
            Ok(true)
        }
    }
    let q = "topk(scalar(sum(adclick_clicks)), adclick_clicks)";
    let mut count = Count(0);
    walk_expr(&mut count, &parse(q).unwrap()).unwrap();
    assert_eq!(
        count.0, 1,
        "promql-parser's walker now visits the parameter"
    );

    let (out, sels) = accepted(q);
    assert_eq!(sels.len(), 2, "{out}");
    let (_, sels) = accepted("quantile(scalar(max(adclick_clicks_open)), adclick_clicks)");
    assert_eq!(sels.len(), 2);
    let (_, sels) = accepted("limitk(scalar(count(adclick_late_clicks)), adclick_clicks)");
    assert_eq!(sels.len(), 2);
}

#[test]
fn another_id_hidden_in_the_aggregation_parameter_is_refused() {
    assert_advertiser_matcher(
        r#"topk(scalar(sum(adclick_clicks{advertiser_id!="1001"})), adclick_clicks)"#,
        r#"advertiser_id!="1001""#,
    );
    assert!(matches!(
        refused(r#"bottomk(scalar(count({__name__=~".+"})), adclick_clicks)"#),
        Refusal::NameMatcher { .. }
    ));
}

// --- functions ---

#[test]
fn label_replace_onto_advertiser_is_refused() {
    assert_eq!(
        refused(r#"label_replace(adclick_clicks, "advertiser_id", "2002", "", "")"#),
        Refusal::WritesAdvertiserLabel {
            function: "label_replace".into()
        }
    );
    // A parenthesised literal is the same label.
    assert_eq!(
        refused(r#"label_replace(adclick_clicks, ("advertiser_id"), "2002", "", "")"#),
        Refusal::WritesAdvertiserLabel {
            function: "label_replace".into()
        }
    );
}

#[test]
fn label_join_onto_advertiser_is_refused() {
    assert_eq!(
        refused(r#"sum(label_join(adclick_clicks, "advertiser_id", "", "campaign_id"))"#),
        Refusal::WritesAdvertiserLabel {
            function: "label_join".into()
        }
    );
}

#[test]
fn label_replace_onto_other_labels_is_allowed() {
    let (_, sels) =
        accepted(r#"label_replace(adclick_clicks, "ad", "$1", "advertiser_id", "(.*)")"#);
    assert_eq!(sels.len(), 1);
    let (_, sels) = accepted(r#"label_join(adclick_clicks, "key", "/", "campaign_id", "ad_id")"#);
    assert_eq!(sels.len(), 1);
}

#[test]
fn count_values_into_advertiser_is_refused() {
    assert_eq!(
        refused(r#"count_values("advertiser_id", adclick_clicks)"#),
        Refusal::WritesAdvertiserLabel {
            function: "count_values".into()
        }
    );
    let (_, sels) = accepted(r#"count_values("clicks", adclick_clicks)"#);
    assert_eq!(sels.len(), 1);
}

#[test]
fn absent_is_restricted() {
    let (out, sels) = accepted(r#"absent(adclick_clicks{campaign_id="9"})"#);
    assert_eq!(sels.len(), 1, "{out}");
    let (_, sels) = accepted("absent_over_time(adclick_late_clicks[5m])");
    assert_eq!(sels.len(), 1);
    assert!(matches!(
        refused(r#"absent(up{job="x"})"#),
        Refusal::MetricNotAllowed { .. }
    ));
}

#[test]
fn info_and_experimental_functions_are_refused() {
    assert!(matches!(
        refused("info(adclick_clicks)"),
        Refusal::FunctionNotAllowed { ref name, .. } if name == "info"
    ));
    assert!(matches!(
        refused(r#"sort_by_label(adclick_clicks, "ad_id")"#),
        Refusal::FunctionNotAllowed { ref name, .. } if name == "sort_by_label"
    ));
}

#[test]
fn selector_free_expressions_are_allowed() {
    for (q, out) in [
        ("1+1", "1 + 1"),
        ("vector(1)", "vector(1)"),
        ("time()", "time()"),
        ("scalar(vector(1)) * 2", "scalar(vector(1)) * 2"),
        (r#""hello""#, r#""hello""#),
    ] {
        let (got, sels) = accepted(q);
        assert_eq!(got, out);
        assert!(sels.is_empty());
    }
}

// --- subqueries, @ and offset ---

#[test]
fn subqueries_are_restricted() {
    let (out, sels) = accepted(
        "max_over_time(sum(adclick_clicks)[1h:5m]) + min_over_time(rate(adclick_clicks_open[5m])[30m:])",
    );
    assert_eq!(sels.len(), 2, "{out}");
}

#[test]
fn at_and_offset_modifiers_are_kept_and_restricted() {
    let (out, sels) = accepted(
        "sum_over_time(adclick_clicks[1h] @ start() offset -5m) + adclick_clicks @ 1700000000 offset 1d \
         + max_over_time(sum(adclick_clicks)[1h:1m] @ end() offset 1h)",
    );
    assert_eq!(sels.len(), 3, "{out}");
    assert!(out.contains("[1h] @ start() offset -5m"), "{out}");
    assert!(out.contains("@ 1700000000.000 offset 1d"), "{out}");
    assert!(out.contains("[1h:1m] @ end() offset 1h"), "{out}");
}

#[test]
fn an_at_time_before_1970_is_refused_rather_than_reprinted_as_zero() {
    assert!(matches!(
        refused("adclick_clicks @ -100"),
        Refusal::Unsupported { .. }
    ));
}

#[test]
fn durations_the_printer_would_truncate_are_refused() {
    for q in [
        "adclick_clicks[0.0001]",
        "rate(adclick_clicks[1.0005])",
        "adclick_clicks offset 0.0001",
    ] {
        assert!(matches!(refused(q), Refusal::Unsupported { .. }), "{q}");
    }
    let (out, _) = accepted("sum_over_time(adclick_clicks[1.5])");
    assert!(out.contains("[1s500ms]"), "{out}");
}

#[test]
fn a_duration_out_of_range_is_refused_without_a_panic_escaping() {
    for q in [
        "adclick_clicks[1e30]",
        "adclick_clicks offset 1e30",
        "max_over_time(adclick_clicks[1m:1e30])",
    ] {
        assert!(matches!(refused(q), Refusal::Parse(_)), "{q}");
    }
}

// --- syntax promql-parser accepts and prints lossily ---

#[test]
fn or_between_matchers_is_refused() {
    for q in [
        r#"adclick_clicks{a="1" or b="2"}"#,
        r#"adclick_clicks{advertiser_id="1001" or advertiser_id="2002"}"#,
        r#"sum(rate(adclick_clicks{campaign_id="1", ad_id="2" or campaign_id="3"}[5m]))"#,
    ] {
        assert!(matches!(refused(q), Refusal::OrMatchers { .. }), "{q}");
    }
}

#[test]
fn comments_cannot_hide_or_smuggle_a_selector() {
    assert!(matches!(
        refused("adclick_clicks # } or\n + on() group_left up"),
        Refusal::MetricNotAllowed { .. }
    ));
    let (out, sels) = accepted("# up{advertiser_id=\"2002\"}\nadclick_clicks");
    assert_eq!(sels.len(), 1, "{out}");
    assert!(!out.contains('#'), "{out}");
}

// --- size and depth ---

#[test]
fn a_megabyte_query_is_refused_before_parsing() {
    let q = format!("adclick_clicks{}", " + 0".repeat(256 * 1024));
    assert!(q.len() >= 1 << 20);
    assert_eq!(
        refused(&q),
        Refusal::TooLong {
            len: q.len(),
            max: Limits::DEFAULT_MAX_BYTES
        }
    );
}

/// Refused on the raw text: the parser never sees it. With the size bound raised to let the
/// text through, the nesting bound alone refuses it.
#[test]
fn ten_thousand_nested_parentheses_are_refused_without_a_crash() {
    let roomy = Policy::new(
        Policy::default().metrics(),
        Limits {
            max_bytes: 1 << 20,
            ..Limits::default()
        },
    )
    .unwrap();
    for q in [
        format!("{}adclick_clicks{}", "(".repeat(10_000), ")".repeat(10_000)),
        format!("{}adclick_clicks", "(".repeat(10_000)),
        format!("{}1{}", "sum(".repeat(10_000), ")".repeat(10_000)),
        format!("{}adclick_clicks", "-".repeat(10_000)),
        format!("adclick_clicks{}", " + adclick_clicks".repeat(10_000)),
    ] {
        assert!(
            matches!(enforce(&q, A, &roomy), Err(Refusal::TooDeep { nesting, max: 64 }) if nesting >= 10_000),
            "{}…",
            &q[..40]
        );
        assert!(matches!(
            enforce(&q, A, &Policy::default()),
            Err(Refusal::TooLong { .. } | Refusal::TooDeep { .. })
        ));
    }
}

#[test]
fn nesting_within_the_bound_is_accepted() {
    let q = format!("{}adclick_clicks{}", "(".repeat(60), ")".repeat(60));
    let (_, sels) = accepted(&q);
    assert_eq!(sels.len(), 1);
}

// --- series selectors (match[] of /api/v1/series, labels, label values) ---

#[test]
fn series_selectors_are_restricted_or_refused() {
    let p = Policy::default();
    let out = enforce_match(r#"adclick_clicks{tier!="rollup"}"#, A, &p).unwrap();
    let sels = selectors_of(&out);
    assert_eq!(sels.len(), 1);
    assert_only_a(&sels[0], &out);

    for (s, ok) in [
        (r#"{__name__=~".+"}"#, false),
        (r#"{advertiser_id="1001"}"#, false),
        (r#"adclick_clicks{advertiser_id=~".*"}"#, false),
        (r#"adclick_clicks{advertiser_id="2002"}"#, false),
        (r#"up"#, false),
        (r#"adclick_clicks{a="1" or b="2"}"#, false),
        (r#"{__name__="adclick_late_clicks"}"#, true),
    ] {
        assert_eq!(enforce_match(s, A, &p).is_ok(), ok, "{s}");
    }
    for s in [
        "sum(adclick_clicks)",
        "adclick_clicks[5m]",
        "adclick_clicks offset 5m",
        "1",
    ] {
        assert!(
            matches!(
                enforce_match(s, A, &p),
                Err(Refusal::NotASeriesSelector { .. })
            ),
            "{s}"
        );
    }
}

#[test]
fn label_values_of_advertiser_id_come_only_from_the_callers_series() {
    // Grafana's `label_values(adclick_clicks{tier!="rollup"}, advertiser_id)` becomes
    // /api/v1/label/advertiser_id/values?match[]=…: the selector is what restricts the values.
    let out = enforce_match(r#"adclick_clicks{tier!="rollup"}"#, A, &Policy::default()).unwrap();
    assert_eq!(
        out,
        r#"adclick_clicks{advertiser_id="1001",tier!="rollup"}"#
    );
}

#[test]
fn refusals_carry_their_status() {
    assert_eq!(
        refused(r#"adclick_clicks{advertiser_id="2002"}"#).status(),
        403
    );
    assert_eq!(refused("up").status(), 403);
    assert_eq!(refused(r#"{__name__=~".+"}"#).status(), 403);
    assert_eq!(refused("sum(").status(), 400);
    assert_eq!(refused(r#"adclick_clicks{a="1" or b="2"}"#).status(), 400);
    assert_eq!(refused(&"1+".repeat(100_000)).status(), 400);
}
