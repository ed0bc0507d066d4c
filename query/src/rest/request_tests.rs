//! `ClicksRequest::parse`: every parameter's errors, alignment, defaults, filters.

use super::*;

/// 2026-12-01T00:00:00Z.
const DEC1: i64 = 1_796_083_200_000;
const HOUR: i64 = 3_600_000;

fn parse_with(
    query: &str,
    accept: Option<&str>,
    now_ms: i64,
    max_points: usize,
) -> Result<ClicksRequest, RestError> {
    let params = Params(
        url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect(),
    );
    ClicksRequest::parse(&params, accept, now_ms, max_points)
}

fn parse(query: &str) -> Result<ClicksRequest, RestError> {
    parse_with(query, None, DEC1 + 10 * HOUR + 59 * 60_000, 1000)
}

/// The parameter an error names.
fn param_of(e: &RestError) -> &str {
    match e {
        RestError::Missing { param, .. }
        | RestError::Repeated { param }
        | RestError::Invalid { param, .. }
        | RestError::Misaligned { param, .. }
        | RestError::TooManyValues { param, .. } => param,
        RestError::Unknown { param } => param,
        RestError::Order { .. } => "from/to",
        RestError::TooManyPoints { .. } => "max_points",
        RestError::Upstream { .. } | RestError::Encode(_) => "-",
    }
}

#[test]
fn defaults() {
    let r = parse("from=2026-12-01").unwrap();
    assert_eq!(r.from_ms(), DEC1);
    // Now is 10:59 (plus a few seconds would change nothing): rounded down to the hour.
    assert_eq!(r.to_ms(), DEC1 + 10 * HOUR);
    assert_eq!(r.points(), 10);
    assert_eq!(
        (r.step(), r.by(), r.format()),
        (Step::Hour, By::Campaign, Format::Json)
    );
    assert_eq!(r.campaign_ids().count() + r.ad_ids().count(), 0);

    let r = parse_with("from=2026-12-01&step=1m", None, DEC1 + 90_500, 1000).unwrap();
    assert_eq!(r.to_ms(), DEC1 + 60_000);
    let r = parse_with("from=2026-11-01&step=1d", None, DEC1 + 86_399_999, 1000).unwrap();
    assert_eq!(r.to_ms(), DEC1);
    assert_eq!(r.points(), 30);

    let r = parse("from=1796083200&to=2026-12-01T02:00:00%2B01:00&step=1h&by=ad").unwrap();
    assert_eq!(
        (r.from_ms(), r.to_ms(), r.by()),
        (DEC1, DEC1 + HOUR, By::Ad)
    );
}

#[test]
fn format_from_accept_and_the_parameter() {
    let f = |accept: Option<&str>, query: &str| {
        parse_with(&format!("from=2026-12-01{query}"), accept, DEC1 + HOUR, 10)
            .unwrap()
            .format()
    };
    assert_eq!(f(None, ""), Format::Json);
    assert_eq!(f(Some("text/csv"), ""), Format::Csv);
    assert_eq!(f(Some("TEXT/CSV; charset=utf-8"), ""), Format::Csv);
    assert_eq!(f(Some("text/csv, application/json;q=0.9"), ""), Format::Csv);
    assert_eq!(f(Some("text/csv, */*"), ""), Format::Csv);
    assert_eq!(
        f(Some("application/json, text/csv;q=0.5"), ""),
        Format::Json
    );
    assert_eq!(f(Some("application/json, text/csv"), ""), Format::Json);
    assert_eq!(f(Some("text/csv;q=0"), ""), Format::Json);
    assert_eq!(f(Some("*/*"), ""), Format::Json);
    assert_eq!(f(Some("text/html"), ""), Format::Json);
    assert_eq!(f(Some("text/csv"), "&format=json"), Format::Json);
    assert_eq!(f(None, "&format=csv"), Format::Csv);
}

#[test]
fn each_parameter_names_itself_when_wrong() {
    for (query, param) in [
        ("", "from"),
        ("to=2026-12-02", "from"),
        ("from=2026-12-01&from=2026-12-01", "from"),
        ("from=2026-12-01&to=2026-12-02&to=2026-12-02", "to"),
        ("from=2026-12-01&step=1h&step=1h", "step"),
        ("from=2026-12-01&by=ad&by=ad", "by"),
        ("from=2026-12-01&format=csv&format=csv", "format"),
        ("from=yesterday", "from"),
        ("from=2026-12-01&to=2026-12-32", "to"),
        ("from=2026-12-01&step=60s", "step"),
        ("from=2026-12-01&step=1H", "step"),
        ("from=2026-12-01&step=", "step"),
        ("from=2026-12-01&step=5m", "step"),
        ("from=2026-12-01&by=ads", "by"),
        ("from=2026-12-01&by=advertiser", "by"),
        ("from=2026-12-01&format=xml", "format"),
        ("from=2026-12-01&campain_id=7", "campain_id"),
        ("from=2026-12-01&query=up", "query"),
        ("from=2026-12-01&to=2026-12-01", "from/to"),
        ("from=2026-12-02&to=2026-12-01", "from/to"),
        ("from=2026-12-02", "from/to"),
        ("from=2026-10-01&to=2026-12-01", "max_points"),
    ] {
        let e = parse(query).unwrap_err();
        assert_eq!(param_of(&e), param, "{query}: {e}");
        assert_eq!(e.status(), if param == "max_points" { 422 } else { 400 });
        if param != "from/to" && param != "max_points" {
            assert!(e.to_string().contains(&format!("`{param}")), "{e}");
        }
    }
    assert_eq!(
        parse("from=2026-12-01&step=5m").unwrap_err().to_string(),
        r#"`step="5m"`: expected 1m, 1h or 1d"#
    );
    assert_eq!(
        parse("").unwrap_err().to_string(),
        "the parameter `from` is missing: expected the first bucket's start, on the step \
         (2026-12-01T00:00:00Z, 2026-12-01 or unix seconds)"
    );
    assert_eq!(
        parse("from=2026-12-02").unwrap_err().to_string(),
        "`from` (2026-12-02T00:00:00Z) must be before `to` (2026-12-01T10:00:00Z; when not \
         given, now rounded down to the step)"
    );
}

#[test]
fn from_and_to_are_on_the_step() {
    for (query, param) in [
        ("from=2026-12-01T00:30:00Z&to=2026-12-01T02:00:00Z", "from"),
        ("from=2026-12-01T00:00:00Z&to=2026-12-01T02:00:01Z", "to"),
        ("from=1796083201&to=2026-12-01T02:00:00Z&step=1m", "from"),
        ("from=1796083200.5&to=2026-12-01T02:00:00Z&step=1m", "from"),
        (
            "from=2026-12-01T00:00:00Z&to=2026-12-01T00:01:30Z&step=1m",
            "to",
        ),
        ("from=2026-12-01T01:00:00Z&to=2026-12-03&step=1d", "from"),
        // 00:00 in Paris is 23:00 UTC: not a UTC day.
        (
            "from=2026-12-01T00:00:00%2B01:00&to=2026-12-03&step=1d",
            "from",
        ),
    ] {
        match parse(query) {
            Err(RestError::Misaligned { param: p, .. }) => assert_eq!(p, param, "{query}"),
            other => panic!("{query}: {other:?}"),
        }
    }
    assert_eq!(
        parse("from=2026-12-01T00:30:00Z&to=2026-12-01T02:00:00Z")
            .unwrap_err()
            .to_string(),
        r#"`from="2026-12-01T00:30:00Z"` is not on a whole hour, as from and to must be with step=1h"#
    );
    assert!(parse("from=2026-12-01T00:00:00%2B05:30&to=2026-12-01T02:30:00Z&step=1m").is_ok());
    assert!(parse("from=2026-12-01T01:00:00%2B01:00&to=2026-12-03&step=1d").is_ok());
}

#[test]
fn the_number_of_buckets_is_bounded() {
    let at = |query: &str, max: usize| parse_with(query, None, DEC1, max);
    assert_eq!(
        at("from=2026-11-30&to=2026-12-01", 24).unwrap().points(),
        24
    );
    let e = at("from=2026-11-30&to=2026-12-01", 23).unwrap_err();
    assert_eq!(
        e.to_string(),
        "from 2026-11-30T00:00:00Z to 2026-12-01T00:00:00Z at step=1h is 24 buckets, more than \
         max_points (23): narrow the range or use a larger step"
    );
    // Prometheus' own bound, whatever the caller's limit.
    assert!(at("from=2026-11-01&to=2026-12-01&step=1m", 100_000).is_err());
    assert!(at("from=2026-11-24&to=2026-12-01&step=1m", 100_000).is_ok());
    assert!(matches!(
        at("from=2026-11-01&to=2026-12-01&step=1m", 100_000),
        Err(RestError::TooManyPoints {
            points: 43_200,
            max_points: 11_000,
            ..
        })
    ));
}

#[test]
fn filters_are_numbers_or_other() {
    let r = parse("from=2026-12-01&campaign_id=9&campaign_id=007&campaign_id=9&ad_id=other&ad_id=18446744073709551615&ad_id=3").unwrap();
    assert_eq!(r.campaign_ids().collect::<Vec<_>>(), [7, 9]);
    assert_eq!(
        r.ad_ids().collect::<Vec<_>>(),
        [AdId::Id(3), AdId::Id(u64::MAX), AdId::Other]
    );
    for (param, value) in [
        ("campaign_id", r#"1"} or vector(1) #"#),
        ("ad_id", r#"1"} or vector(1) #"#),
        ("campaign_id", ".*"),
        ("ad_id", ".+"),
        ("campaign_id", "1|2"),
        ("campaign_id", "other"),
        ("ad_id", "OTHER"),
        ("ad_id", "other|1"),
        ("campaign_id", "+5"),
        ("campaign_id", "-1"),
        ("campaign_id", " 1"),
        ("campaign_id", "1 "),
        ("campaign_id", ""),
        ("campaign_id", "1e3"),
        ("campaign_id", "18446744073709551616"),
        ("ad_id", "٣"),
        ("ad_id", "1\\"),
        ("ad_id", "1\n"),
    ] {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("from", "2026-12-01")
            .append_pair(param, value)
            .finish();
        match parse(&query) {
            Err(RestError::Invalid { param: p, .. }) => assert_eq!(p, param, "{value:?}"),
            other => panic!("{param}={value:?}: {other:?}"),
        }
    }
    assert_eq!(
        parse("from=2026-12-01&ad_id=1%22%7D+or+vector(1)+%23")
            .unwrap_err()
            .to_string(),
        r#"`ad_id="1\"} or vector(1) #"`: expected decimal ad ids or other"#
    );
    let many: String = (0..=100).map(|i| format!("&campaign_id={i}")).collect();
    assert_eq!(
        parse(&format!("from=2026-12-01{many}")),
        Err(RestError::TooManyValues {
            param: "campaign_id",
            given: 101,
            max: 100
        })
    );
    assert!(
        parse(&format!(
            "from=2026-12-01{}",
            &many[..many.rfind('&').unwrap()]
        ))
        .is_ok()
    );
}

#[test]
fn echoed_values_are_cut() {
    let long = "9".repeat(10_000);
    let e = parse(&format!("from=2026-12-01&ad_id={long}")).unwrap_err();
    assert!(e.to_string().len() < 120, "{e}");
}
