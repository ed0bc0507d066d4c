//! `render`: hand-built matrices in, JSON and CSV compared byte for byte; bucket arithmetic
//! across day boundaries; every upstream oddity refused.

use serde_json::json;

use super::*;
use crate::params::Params;

fn request(query: &str) -> ClicksRequest {
    let params = Params(
        url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect(),
    );
    ClicksRequest::parse(&params, None, 2_000_000_000_000, 11_000).unwrap()
}

fn matrix(series: Value) -> Value {
    json!({"resultType": "matrix", "result": series})
}

fn render_ok(query: &str, answers: &[(Figure, Value)]) -> Rendered {
    render(&request(query), answers).unwrap()
}

/// 2026-12-01 00:00–03:00 by campaign: all five figures, ids sorted numerically (9 before
/// 10), explicit zeros kept, rows that only one figure has, a spend at 2^53 micros (the most
/// float64 holds exactly).
fn by_campaign_answers() -> Vec<(Figure, Value)> {
    vec![
        (
            Figure::Final,
            matrix(json!([
                {"metric": {"campaign_id": "10"}, "values": [[1796086800, "5"], [1796090400, "0"]]},
                {"metric": {"campaign_id": "9"}, "values": [[1796086800, "123"]]},
            ])),
        ),
        (
            Figure::Late,
            matrix(json!([{"metric": {"campaign_id": "9"}, "values": [[1796090400.0, "4"]]}])),
        ),
        (
            Figure::Invalid,
            matrix(json!([{"metric": {"campaign_id": "10"}, "values": [[1796086800, "7"]]}])),
        ),
        (
            Figure::Spend,
            matrix(json!([
                {"metric": {"campaign_id": "9"}, "values": [[1796086800, "30750000"]]},
                {"metric": {"campaign_id": "10"}, "values": [[1796086800, "9.007199254740992e+15"]]},
            ])),
        ),
        (
            Figure::Billing,
            matrix(json!([
                {"metric": {"campaign_id": "9"}, "values": [[1796086800, "120"]]},
                {"metric": {"campaign_id": "11"}, "values": [[1796094000, "2"]]},
            ])),
        ),
    ]
}

const BY_CAMPAIGN: &str = "from=2026-12-01T00:00:00Z&to=2026-12-01T03:00:00Z&step=1h";

#[test]
fn json_by_campaign() {
    let r = render_ok(BY_CAMPAIGN, &by_campaign_answers());
    assert_eq!(r.content_type, "application/json");
    assert_eq!(
        r.body,
        concat!(
            r#"{"from":"2026-12-01T00:00:00Z","to":"2026-12-01T03:00:00Z","step":"1h","by":"campaign","rows":["#,
            r#"{"start":"2026-12-01T00:00:00Z","campaign_id":"9","final":123,"late":0,"invalid":0,"spend_micros":30750000,"billing":120},"#,
            r#"{"start":"2026-12-01T00:00:00Z","campaign_id":"10","final":5,"late":0,"invalid":7,"spend_micros":9007199254740992,"billing":null},"#,
            r#"{"start":"2026-12-01T01:00:00Z","campaign_id":"9","final":0,"late":4,"invalid":0,"spend_micros":0,"billing":null},"#,
            r#"{"start":"2026-12-01T01:00:00Z","campaign_id":"10","final":0,"late":0,"invalid":0,"spend_micros":0,"billing":null},"#,
            r#"{"start":"2026-12-01T02:00:00Z","campaign_id":"11","final":0,"late":0,"invalid":0,"spend_micros":0,"billing":2}]}"#,
        )
    );
}

#[test]
fn csv_by_campaign() {
    let r = render_ok(&format!("{BY_CAMPAIGN}&format=csv"), &by_campaign_answers());
    assert_eq!(r.content_type, "text/csv; charset=utf-8; header=present");
    assert_eq!(
        r.body,
        "start,campaign_id,final,late,invalid,spend_micros,billing\r\n\
         2026-12-01T00:00:00Z,9,123,0,0,30750000,120\r\n\
         2026-12-01T00:00:00Z,10,5,0,7,9007199254740992,\r\n\
         2026-12-01T01:00:00Z,9,0,4,0,0,\r\n\
         2026-12-01T01:00:00Z,10,0,0,0,0,\r\n\
         2026-12-01T02:00:00Z,11,0,0,0,0,2\r\n"
    );
}

/// By ad at 1m over midnight, no billing (no history upstream): `other` last, `null`/empty.
fn by_ad_answers() -> Vec<(Figure, Value)> {
    vec![(
        Figure::Final,
        matrix(json!([
            {"metric": {"campaign_id": "7", "ad_id": "other"}, "values": [[1796083200, "3"]]},
            {"metric": {"campaign_id": "7", "ad_id": "12"}, "values": [[1796083200, "1"], [1796083260.000, "2"]]},
            {"metric": {"campaign_id": "7", "ad_id": "3"}, "values": [[1796083260, "1"]]},
        ])),
    )]
}

const BY_AD: &str = "from=2026-11-30T23:59:00Z&to=2026-12-01T00:01:00Z&step=1m&by=ad";

#[test]
fn by_ad_without_billing() {
    let r = render_ok(BY_AD, &by_ad_answers());
    assert_eq!(
        r.body,
        concat!(
            r#"{"from":"2026-11-30T23:59:00Z","to":"2026-12-01T00:01:00Z","step":"1m","by":"ad","rows":["#,
            r#"{"start":"2026-11-30T23:59:00Z","campaign_id":"7","ad_id":"12","final":1,"billing":null},"#,
            r#"{"start":"2026-11-30T23:59:00Z","campaign_id":"7","ad_id":"other","final":3,"billing":null},"#,
            r#"{"start":"2026-12-01T00:00:00Z","campaign_id":"7","ad_id":"3","final":1,"billing":null},"#,
            r#"{"start":"2026-12-01T00:00:00Z","campaign_id":"7","ad_id":"12","final":2,"billing":null}]}"#,
        )
    );
    let r = render_ok(&format!("{BY_AD}&format=csv"), &by_ad_answers());
    assert_eq!(
        r.body,
        "start,campaign_id,ad_id,final,billing\r\n\
         2026-11-30T23:59:00Z,7,12,1,\r\n\
         2026-11-30T23:59:00Z,7,other,3,\r\n\
         2026-12-01T00:00:00Z,7,3,1,\r\n\
         2026-12-01T00:00:00Z,7,12,2,\r\n"
    );
    // No answers at all: the header alone, or no rows.
    assert_eq!(
        render_ok(&format!("{BY_AD}&format=csv"), &[]).body,
        "start,campaign_id,ad_id,final,billing\r\n"
    );
    assert!(render_ok(BY_AD, &[]).body.ends_with(r#""rows":[]}"#));
}

#[test]
fn per_campaign_figures_are_null_when_not_planned() {
    // An ad filter with by=campaign: late and invalid cannot be filtered by ad, so they (and the
    // spend beside them) are not queried.
    let query = "from=2026-12-01&to=2026-12-01T01:00:00Z&ad_id=5&format=csv";
    let final_ = matrix(json!([{"metric": {"campaign_id": "1"}, "values": [[1796086800, "8"]]}]));
    let r = render_ok(query, &[(Figure::Final, final_.clone())]);
    assert_eq!(
        r.body,
        "start,campaign_id,final,late,invalid,spend_micros,billing\r\n2026-12-01T00:00:00Z,1,8,,,,\r\n"
    );
    for figure in [Figure::Late, Figure::Invalid, Figure::Spend] {
        let e = render(&request(query), &[(figure, final_.clone())]).unwrap_err();
        assert!(e.to_string().contains("not planned"), "{e}");
    }
}

#[test]
fn buckets_across_day_and_month_boundaries() {
    // Hours over midnight: each sample's bucket starts one step before it, on the previous day
    // for the sample at 00:00.
    let r = request("from=2026-12-01T22:00:00Z&to=2026-12-02T02:00:00Z&format=csv");
    assert_eq!(
        r.plan()[0].start_ms,
        1_796_166_000_000,
        "the first bucket's end, 23:00"
    );
    let final_ = matrix(json!([{"metric": {"campaign_id": "1"}, "values": [
        [1796166000, "1"], [1796169600, "2"], [1796176800, "3"],
    ]}]));
    assert_eq!(
        render(&r, &[(Figure::Final, final_)]).unwrap().body,
        "start,campaign_id,final,late,invalid,spend_micros,billing\r\n\
         2026-12-01T22:00:00Z,1,1,,,,\r\n\
         2026-12-01T23:00:00Z,1,2,,,,\r\n\
         2026-12-02T01:00:00Z,1,3,,,,\r\n"
    );
    // Days over the end of November: the sample at 2026-12-01T00:00Z is November 30th's.
    let r = request("from=2026-11-30&to=2026-12-02&step=1d&format=csv");
    assert_eq!(r.plan()[0].start_ms, 1_796_083_200_000);
    assert_eq!(r.plan()[0].end_ms, 1_796_169_600_000);
    let billing = matrix(json!([{"metric": {"campaign_id": "1"}, "values": [
        [1796083200, "10"], [1796169600, "20"],
    ]}]));
    assert_eq!(
        render(&r, &[(Figure::Billing, billing)]).unwrap().body,
        "start,campaign_id,final,late,invalid,spend_micros,billing\r\n\
         2026-11-30T00:00:00Z,1,,,,,10\r\n\
         2026-12-01T00:00:00Z,1,,,,,20\r\n"
    );
}

#[test]
fn upstream_oddities_are_refused() {
    let sample =
        |metric: Value, values: Value| matrix(json!([{"metric": metric, "values": values}]));
    let c1 = json!({"campaign_id": "1"});
    for (figure, data, says) in [
        (
            Figure::Final,
            json!({"resultType": "vector", "result": []}),
            "resultType",
        ),
        (Figure::Final, json!({"resultType": "matrix"}), "no result"),
        (
            Figure::Final,
            sample(c1.clone(), json!([[1796086800, "1.5"]])),
            "whole",
        ),
        (
            Figure::Final,
            sample(c1.clone(), json!([[1796086800, "-1"]])),
            "whole",
        ),
        (
            Figure::Final,
            sample(c1.clone(), json!([[1796086800, "NaN"]])),
            "whole",
        ),
        (
            Figure::Final,
            sample(c1.clone(), json!([[1796086800, "+Inf"]])),
            "whole",
        ),
        (
            Figure::Final,
            sample(c1.clone(), json!([[1796086800, 1]])),
            "whole",
        ),
        (
            Figure::Final,
            sample(c1.clone(), json!([[1796086800, "1e300"]])),
            "whole",
        ),
        // Half an hour off, the range's start (a bucket before `from`), after `to`.
        (
            Figure::Final,
            sample(c1.clone(), json!([[1796085000, "1"]])),
            "bucket's end",
        ),
        (
            Figure::Final,
            sample(c1.clone(), json!([[1796083200, "1"]])),
            "bucket's end",
        ),
        (
            Figure::Final,
            sample(c1.clone(), json!([[1796097600, "1"]])),
            "bucket's end",
        ),
        (
            Figure::Final,
            sample(c1.clone(), json!([["1796086800", "1"]])),
            "unix seconds",
        ),
        (
            Figure::Final,
            sample(c1.clone(), json!([[1796086800]])),
            "[time, value]",
        ),
        (
            Figure::Final,
            sample(json!({}), json!([[1796086800, "1"]])),
            "campaign_id",
        ),
        (
            Figure::Final,
            sample(json!({"campaign_id": "x"}), json!([])),
            "campaign_id",
        ),
        (
            Figure::Billing,
            matrix(json!([{"metric": c1, "histograms": []}])),
            "float samples",
        ),
        (
            Figure::Final,
            matrix(json!([
                {"metric": {"campaign_id": "1", "ad_id": "2"}, "values": [[1796086800, "1"]]},
                {"metric": {"campaign_id": "1", "ad_id": "3"}, "values": [[1796086800, "1"]]},
            ])),
            "two samples",
        ),
    ] {
        let e = render(&request(BY_CAMPAIGN), &[(figure, data.clone())]).unwrap_err();
        assert!(e.to_string().contains(says), "{data}: {e}");
        assert_eq!(e.status(), 502);
    }
    // The series is named.
    let e = render(
        &request(BY_CAMPAIGN),
        &[(
            Figure::Final,
            sample(c1.clone(), json!([[1796086800, "0.5"]])),
        )],
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        r#"the final answer could not be read: series {"campaign_id":"1"}: value "0.5" at 2026-12-01T01:00:00Z is not a whole non-negative count"#
    );
    // by=ad needs ad_id; late is not part of by=ad; a figure once.
    let by_ad = request("from=2026-12-01&to=2026-12-01T01:00:00Z&by=ad");
    let no_ad = sample(c1.clone(), json!([[1796086800, "1"]]));
    assert!(render(&by_ad, &[(Figure::Final, no_ad.clone())]).is_err());
    assert!(render(&by_ad, &[(Figure::Late, matrix(json!([])))]).is_err());
    let twice = [
        (Figure::Billing, matrix(json!([]))),
        (Figure::Billing, matrix(json!([]))),
    ];
    assert!(render(&request(BY_CAMPAIGN), &twice).is_err());
}
