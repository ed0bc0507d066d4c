//! `/v1/clicks`' parameters, checked: the range and step, the grouping, the id filters (kept as
//! numbers, so nothing but digits and `other` ever reaches a query), and the answer's format.

use std::collections::BTreeSet;

use super::time::{format_rfc3339, parse_instant};
use super::{RestError, echo};
use crate::params::{ParamError, Params};

/// Prometheus refuses a `query_range` of more than 11,000 points per series ("exceeded maximum
/// resolution"); a larger `max_points` is lowered to this.
pub const PROMETHEUS_MAX_POINTS: usize = 11_000;

/// The most values of `campaign_id` or `ad_id`: 100 twenty-digit ids make a query of about 4 KB,
/// well inside the gateway's 16 KiB query limit (`Limits::max_bytes`).
const MAX_FILTER_VALUES: usize = 100;

const PARAMS: [&str; 7] = ["from", "to", "step", "by", "campaign_id", "ad_id", "format"];

/// A bucket's length: whole minutes, hours, or UTC days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Minute,
    Hour,
    Day,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Minute => "1m",
            Step::Hour => "1h",
            Step::Day => "1d",
        }
    }

    pub fn millis(self) -> i64 {
        match self {
            Step::Minute => 60_000,
            Step::Hour => 3_600_000,
            // Unix time has no leap seconds: every UTC day starts on a multiple of this.
            Step::Day => 86_400_000,
        }
    }

    /// The range that holds exactly one bucket's minute samples when evaluated at its end: one
    /// second short of the step (see the module documentation).
    pub(super) fn window(self) -> &'static str {
        match self {
            Step::Minute => "59s",
            Step::Hour => "59m59s",
            Step::Day => "23h59m59s",
        }
    }

    fn unit(self) -> &'static str {
        match self {
            Step::Minute => "whole minute",
            Step::Hour => "whole hour",
            Step::Day => "UTC day (00:00Z)",
        }
    }
}

/// What a row is per: an ad (of a campaign), or a campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum By {
    Ad,
    Campaign,
}

impl By {
    pub fn as_str(self) -> &'static str {
        match self {
            By::Ad => "ad",
            By::Campaign => "campaign",
        }
    }
}

/// The answer's media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
}

/// An `ad_id`: an ad's number, or a campaign's `other` (the ads outside a minute's top K). `Id`
/// before `Other`, so sorting puts `other` last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AdId {
    Id(u64),
    Other,
}

impl std::fmt::Display for AdId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AdId::Id(id) => write!(f, "{id}"),
            AdId::Other => f.write_str("other"),
        }
    }
}

impl AdId {
    /// An `ad_id` label value as the exporter writes it: decimal without sign or leading zeros,
    /// or `other`.
    pub(super) fn from_label(s: &str) -> Option<AdId> {
        if s == "other" {
            Some(AdId::Other)
        } else {
            canonical_id(s).map(AdId::Id)
        }
    }
}

/// A checked `/v1/clicks` request. Built only by [`ClicksRequest::parse`]: the filters are
/// numbers, so the query text planned from them cannot carry anything else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClicksRequest {
    pub(super) from_ms: i64,
    pub(super) to_ms: i64,
    pub(super) step: Step,
    pub(super) by: By,
    pub(super) campaign_ids: BTreeSet<u64>,
    pub(super) ad_ids: BTreeSet<AdId>,
    pub(super) format: Format,
}

impl ClicksRequest {
    /// The request of `params` (`from`, `to`, `step`, `by`, `campaign_id`, `ad_id`, `format`; any
    /// other name is refused), with the `Accept` header's value (`text/csv` preferred: CSV;
    /// otherwise JSON; `format` overrides it), `now_ms` (`to`'s default, rounded down to the
    /// step) and the most buckets allowed (at most [`PROMETHEUS_MAX_POINTS`]).
    pub fn parse(
        params: &Params,
        accept: Option<&str>,
        now_ms: i64,
        max_points: usize,
    ) -> Result<ClicksRequest, RestError> {
        if let Some((name, _)) = params.0.iter().find(|(k, _)| !PARAMS.contains(&k.as_str())) {
            return Err(RestError::Unknown { param: echo(name) });
        }
        let step = match optional(params, "step")? {
            None | Some("1h") => Step::Hour,
            Some("1m") => Step::Minute,
            Some("1d") => Step::Day,
            Some(v) => return Err(invalid("step", v, "1m, 1h or 1d")),
        };
        let by = match optional(params, "by")? {
            None | Some("campaign") => By::Campaign,
            Some("ad") => By::Ad,
            Some(v) => return Err(invalid("by", v, "ad or campaign")),
        };
        let format = match optional(params, "format")? {
            None => accepted_format(accept),
            Some("json") => Format::Json,
            Some("csv") => Format::Csv,
            Some(v) => return Err(invalid("format", v, "json or csv")),
        };
        let from = optional(params, "from")?.ok_or(RestError::Missing {
            param: "from",
            expected: "the first bucket's start, on the step (2026-12-01T00:00:00Z, 2026-12-01 or unix seconds)",
        })?;
        let from_ms = aligned("from", from, step)?;
        let to_ms = match optional(params, "to")? {
            Some(to) => aligned("to", to, step)?,
            None => now_ms.div_euclid(step.millis()) * step.millis(),
        };
        if from_ms >= to_ms {
            return Err(RestError::Order {
                from: format_rfc3339(from_ms),
                to: format_rfc3339(to_ms),
            });
        }
        let points = (to_ms - from_ms) / step.millis();
        let max_points = max_points.min(PROMETHEUS_MAX_POINTS);
        if usize::try_from(points).map_or(true, |p| p > max_points) {
            return Err(RestError::TooManyPoints {
                from: format_rfc3339(from_ms),
                to: format_rfc3339(to_ms),
                step: step.as_str(),
                points,
                max_points,
            });
        }
        let campaign_ids = filter(params, "campaign_id", "decimal campaign ids", |v| {
            canonical_id(v)
        })?;
        let ad_ids = filter(params, "ad_id", "decimal ad ids or other", AdId::from_label)?;
        Ok(ClicksRequest {
            from_ms,
            to_ms,
            step,
            by,
            campaign_ids,
            ad_ids,
            format,
        })
    }

    /// The first bucket's start (unix ms).
    pub fn from_ms(&self) -> i64 {
        self.from_ms
    }

    /// The end of the last bucket, exclusive (unix ms).
    pub fn to_ms(&self) -> i64 {
        self.to_ms
    }

    pub fn step(&self) -> Step {
        self.step
    }

    pub fn by(&self) -> By {
        self.by
    }

    pub fn format(&self) -> Format {
        self.format
    }

    /// The `campaign_id` filter, sorted; empty: every campaign.
    pub fn campaign_ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.campaign_ids.iter().copied()
    }

    /// The `ad_id` filter, sorted (`other` last); empty: every ad.
    pub fn ad_ids(&self) -> impl Iterator<Item = AdId> + '_ {
        self.ad_ids.iter().copied()
    }

    /// The number of buckets per group: `(to − from) / step`.
    pub fn points(&self) -> i64 {
        (self.to_ms - self.from_ms) / self.step.millis()
    }
}

/// The one value of `name`, if given.
fn optional<'a>(params: &'a Params, name: &'static str) -> Result<Option<&'a str>, RestError> {
    match params.optional(name) {
        Ok(v) => Ok(v),
        Err(ParamError::Repeated(param)) => Err(RestError::Repeated { param }),
        // `optional` fails only on a repeat; these are listed so that a new way to fail is
        // handled here, not dropped.
        Err(ParamError::Missing(param) | ParamError::Invalid { name: param, .. }) => {
            Err(invalid(param, "", "one value"))
        }
    }
}

fn invalid(param: &'static str, value: &str, expected: &'static str) -> RestError {
    RestError::Invalid {
        param,
        value: echo(value),
        expected,
    }
}

/// `value` of `param` as unix ms, on a bucket boundary of `step`.
fn aligned(param: &'static str, value: &str, step: Step) -> Result<i64, RestError> {
    let ms = parse_instant(param, value)?;
    if ms % step.millis() != 0 {
        return Err(RestError::Misaligned {
            param,
            value: echo(value),
            step: step.as_str(),
            unit: step.unit(),
        });
    }
    Ok(ms)
}

/// Decimal digits only (no sign, which `u64::from_str` would take), within u64. Leading zeros
/// are dropped by the round trip, as the exporter writes ids without them.
pub(super) fn canonical_id(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Every value of the repeatable `param`, each read by `read`, deduplicated and sorted.
fn filter<T: Ord>(
    params: &Params,
    param: &'static str,
    expected: &'static str,
    read: impl Fn(&str) -> Option<T>,
) -> Result<BTreeSet<T>, RestError> {
    let given = params.all(param).count();
    if given > MAX_FILTER_VALUES {
        return Err(RestError::TooManyValues {
            param,
            given,
            max: MAX_FILTER_VALUES,
        });
    }
    params
        .all(param)
        .map(|v| read(v).ok_or_else(|| invalid(param, v, expected)))
        .collect()
}

/// CSV when `Accept` ranks `text/csv` above `application/json` (absent: 0; `q` as given, 1 by
/// default); JSON otherwise, wildcards included (JSON is the default answer).
fn accepted_format(accept: Option<&str>) -> Format {
    let (mut csv, mut json) = (0.0_f64, 0.0_f64);
    for range in accept.unwrap_or("").split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f64>().ok())
            .unwrap_or(1.0);
        if media.eq_ignore_ascii_case("text/csv") {
            csv = csv.max(q);
        } else if media.eq_ignore_ascii_case("application/json") {
            json = json.max(q);
        }
    }
    if csv > json {
        Format::Csv
    } else {
        Format::Json
    }
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
