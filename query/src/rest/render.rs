//! The planned queries' answers (Prometheus `query_range` matrices) as `/v1/clicks` rows, in JSON
//! or CSV. Every sample is checked against the plan: a bucket's end within the range, a whole
//! non-negative count, one sample per bucket and group; anything else is the upstream's fault and
//! refused rather than shown.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use super::request::{AdId, By, ClicksRequest, Format, canonical_id};
use super::time::format_rfc3339;
use super::{Figure, RestError, echo};

/// A `/v1/clicks` answer's body and its `Content-Type`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub content_type: &'static str,
    pub body: String,
}

/// The largest count taken: f64 holds every integer up to 2^53 exactly, no more.
const MAX_COUNT: f64 = 9_007_199_254_740_992.0;

/// A row's place: bucket start (unix ms), campaign, ad (`by=ad` only). Tuple order is the rows'
/// order; [`AdId`] sorts `other` last.
type Key = (i64, u64, Option<AdId>);

/// A row's figures as sampled; `None`: no sample.
#[derive(Debug, Default)]
struct Cells {
    final_: Option<u64>,
    late: Option<u64>,
    invalid: Option<u64>,
    spend: Option<u64>,
    billing: Option<u64>,
}

impl Cells {
    fn slot(&mut self, figure: Figure) -> &mut Option<u64> {
        match figure {
            Figure::Final => &mut self.final_,
            Figure::Late => &mut self.late,
            Figure::Invalid => &mut self.invalid,
            Figure::Spend => &mut self.spend,
            Figure::Billing => &mut self.billing,
        }
    }
}

/// `request`'s answer from `answers`: each the `data` object of a `query_range` success for the
/// figure's planned query. [`Figure::Billing`] (no history upstream) or any other figure may be
/// missing: its values are then `null` (CSV: empty).
pub fn render(request: &ClicksRequest, answers: &[(Figure, Value)]) -> Result<Rendered, RestError> {
    let mut answered = BTreeSet::new();
    let mut rows: BTreeMap<Key, Cells> = BTreeMap::new();
    for (figure, data) in answers {
        let figure = *figure;
        let planned = !figure.per_campaign_only() || request.plans_per_campaign();
        if !planned {
            return Err(upstream(figure, "not planned for this request"));
        }
        if !answered.insert(figure) {
            return Err(upstream(figure, "given twice"));
        }
        read_matrix(request, figure, data, &mut rows)?;
    }
    // A figure that was asked: no sample is nothing counted. Billing: no sample is not settled
    // (or a group the rollup has no series for, such as `other`).
    let counted =
        |figure: Figure, value: Option<u64>| answered.contains(&figure).then(|| value.unwrap_or(0));
    let by_ad = request.by == By::Ad;
    let out: Vec<Row> = rows
        .into_iter()
        .map(|((start, campaign_id, ad_id), cells)| Row {
            start: format_rfc3339(start),
            campaign_id: campaign_id.to_string(),
            ad_id: ad_id.map(|a| a.to_string()),
            final_: counted(Figure::Final, cells.final_),
            late: (!by_ad).then(|| counted(Figure::Late, cells.late)),
            invalid: (!by_ad).then(|| counted(Figure::Invalid, cells.invalid)),
            spend_micros: (!by_ad).then(|| counted(Figure::Spend, cells.spend)),
            billing: cells.billing,
        })
        .collect();
    match request.format {
        Format::Json => json(request, out),
        Format::Csv => Ok(csv(by_ad, &out)),
    }
}

/// One answer's row: `ad_id` only with `by=ad`, `late`, `invalid` and `spend_micros` only with
/// `by=campaign` (then `null` when not queried).
#[derive(Debug, Serialize)]
struct Row {
    start: String,
    campaign_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    ad_id: Option<String>,
    #[serde(rename = "final")]
    final_: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    late: Option<Option<u64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    invalid: Option<Option<u64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    spend_micros: Option<Option<u64>>,
    billing: Option<u64>,
}

#[derive(Debug, Serialize)]
struct Body {
    from: String,
    to: String,
    step: &'static str,
    by: &'static str,
    rows: Vec<Row>,
}

fn json(request: &ClicksRequest, rows: Vec<Row>) -> Result<Rendered, RestError> {
    let body = Body {
        from: format_rfc3339(request.from_ms),
        to: format_rfc3339(request.to_ms),
        step: request.step.as_str(),
        by: request.by.as_str(),
        rows,
    };
    Ok(Rendered {
        content_type: "application/json",
        body: serde_json::to_string(&body).map_err(|e| RestError::Encode(e.to_string()))?,
    })
}

/// RFC 4180: CRLF after every record, the header first (RFC 7111's `header=present`).
fn csv(by_ad: bool, rows: &[Row]) -> Rendered {
    let mut header = vec!["start", "campaign_id"];
    header.extend(by_ad.then_some("ad_id"));
    header.push("final");
    if !by_ad {
        header.extend(["late", "invalid", "spend_micros"]);
    }
    header.push("billing");
    let mut body = record(header.into_iter().map(str::to_string));
    let count = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
    for row in rows {
        let mut fields = vec![row.start.clone(), row.campaign_id.clone()];
        fields.extend(row.ad_id.clone());
        fields.push(count(row.final_));
        fields.extend(row.late.map(count));
        fields.extend(row.invalid.map(count));
        fields.extend(row.spend_micros.map(count));
        fields.push(count(row.billing));
        body.push_str(&record(fields.into_iter()));
    }
    Rendered {
        content_type: "text/csv; charset=utf-8; header=present",
        body,
    }
}

/// One CSV record: fields joined by commas, each quoted (quotes doubled) when it holds a comma, a
/// quote or a line break. Ours are digits, `other` and times, but the rule costs nothing.
fn record(fields: impl Iterator<Item = String>) -> String {
    let mut line = fields
        .map(|f| {
            if f.contains([',', '"', '\r', '\n']) {
                format!("\"{}\"", f.replace('"', "\"\""))
            } else {
                f
            }
        })
        .collect::<Vec<_>>()
        .join(",");
    line.push_str("\r\n");
    line
}

fn upstream(figure: Figure, detail: impl Into<String>) -> RestError {
    RestError::Upstream {
        figure: figure.as_str(),
        detail: detail.into(),
    }
}

/// `data` (`{"resultType":"matrix","result":[{"metric":{…},"values":[[t,"v"],…]},…]}`) into
/// `rows`, as `figure`.
fn read_matrix(
    request: &ClicksRequest,
    figure: Figure,
    data: &Value,
    rows: &mut BTreeMap<Key, Cells>,
) -> Result<(), RestError> {
    let err = |detail: String| upstream(figure, detail);
    let kind = data.get("resultType").and_then(Value::as_str);
    if kind != Some("matrix") {
        return Err(err(format!("resultType {kind:?}, expected \"matrix\"")));
    }
    let result = data
        .get("result")
        .and_then(Value::as_array)
        .ok_or_else(|| err("no result list".into()))?;
    let step = request.step.millis();
    for series in result {
        let metric = series.get("metric").unwrap_or(&Value::Null);
        let name = echo(&metric.to_string());
        let label = |l: &str| metric.get(l).and_then(Value::as_str);
        let campaign = label("campaign_id")
            .and_then(canonical_id)
            .ok_or_else(|| err(format!("series {name}: no decimal campaign_id")))?;
        let ad = match request.by {
            By::Ad => Some(
                label("ad_id")
                    .and_then(AdId::from_label)
                    .ok_or_else(|| err(format!("series {name}: no ad_id (decimal or other)")))?,
            ),
            By::Campaign => None,
        };
        // Native histograms come under `histograms`; adclick's series are floats only.
        let values = match (series.get("values"), series.get("histograms")) {
            (Some(Value::Array(values)), None) => values,
            _ => return Err(err(format!("series {name}: no float samples (`values`)"))),
        };
        for point in values {
            let (t, v) = match point.as_array().map(Vec::as_slice) {
                Some([t, v]) => (t, v),
                _ => {
                    return Err(err(format!(
                        "series {name}: sample {point} is not [time, value]"
                    )));
                }
            };
            let end = t
                .as_f64()
                .filter(|t| t.is_finite() && (0.0..1e13).contains(t))
                // Whole milliseconds: Prometheus prints times with at most three decimals.
                .map(|t| (t * 1000.0).round() as i64)
                .ok_or_else(|| {
                    err(format!(
                        "series {name}: sample time {t} is not unix seconds"
                    ))
                })?;
            let start = end - step;
            if start < request.from_ms
                || start >= request.to_ms
                || (start - request.from_ms) % step != 0
            {
                return Err(err(format!(
                    "series {name}: a sample at {}, not a bucket's end",
                    format_rfc3339(end)
                )));
            }
            let count = v
                .as_str()
                .and_then(|s| s.parse::<f64>().ok())
                .filter(|c| *c >= 0.0 && *c <= MAX_COUNT && c.fract() == 0.0)
                .map(|c| c as u64)
                .ok_or_else(|| {
                    err(format!(
                        "series {name}: value {} at {} is not a whole non-negative count",
                        echo(&v.to_string()),
                        format_rfc3339(end)
                    ))
                })?;
            let slot = rows.entry((start, campaign, ad)).or_default().slot(figure);
            if slot.replace(count).is_some() {
                return Err(err(format!(
                    "two samples for series {name} at {}",
                    format_rfc3339(end)
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "render_tests.rs"]
mod tests;
