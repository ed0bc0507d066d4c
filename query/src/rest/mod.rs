//! The pure core of `GET /v1/clicks` (issue #21): the request's parameters checked, the PromQL
//! `query_range` calls that answer it planned, and their answers rendered as JSON or CSV rows.
//! No HTTP here: the handler authenticates, passes every planned query through
//! [`enforce`](crate::enforce) (which adds `advertiser_id`; nothing here does), sends it to the
//! upstream that serves the figure, and hands the answers' `data` objects to [`render`].
//!
//! **Buckets.** A row's bucket is `[start, start + step)` of click event time, `step` one of `1m`,
//! `1h`, `1d` (UTC days), `from` and `to` on the step. The exporter stamps each minute's count at
//! the minute's END, so the bucket `[S, S + step)` is the samples stamped `S+1m … S+step`. Each is
//! summed exactly (`sum_over_time` of the minute samples, never `rate`/`increase`, which
//! extrapolate) at `T = S + step` over the window `step − 1s` (`[59s]`, `[59m59s]`,
//! `[23h59m59s]`). Samples sit on whole minutes, so that window holds exactly the bucket's samples
//! whether the range is closed at both ends (Prometheus 2.x) or open on the left (3.x); a window
//! of a whole step would take the previous bucket's last minute too under 2.x. A minute is
//! written once final (the exporter's allowed lateness, 10 s, after its end), so the bucket
//! ending at `to` = now (the default, rounded down) lacks its last minute for those seconds.
//!
//! **Figures** ([`Figure`]), one `query_range` each:
//! - `final`: the stream tier (`tier!="rollup"`, as the Grafana dashboards select it: on
//!   Prometheus there is no `tier` label, through Thanos the stream carries `tier="stream"`), the
//!   minutes as written when final. An ad outside a minute's top K is counted in its campaign's
//!   `ad_id="other"`.
//! - `late` (per campaign only: `adclick_late_clicks` has no `ad_id`, so it is planned only for
//!   `by=campaign` without an `ad_id` filter): clicks that arrived after their minute was final,
//!   counted in the bucket in which they ARRIVED, not in their own. Over a span whose late clicks
//!   have all arrived inside it, `final + late` per campaign is what the rollup settles to (less
//!   repeats the rollup removes); bucket by bucket it is not, since a late click is settled into
//!   its own, earlier minute.
//! - `invalid` (per campaign only, like `late`): invalid traffic, never billed
//!   (`adclick_invalid_clicks` of the stream tier, every reason summed), in the bucket of its own
//!   click time. Invalid traffic that arrived after its minute was final
//!   (`adclick_late_invalid_clicks`, rare) is not in it; the dashboards show it.
//! - `spend_micros` (per campaign, planned with `late` and `invalid`): what `final`'s clicks cost,
//!   in micro-units of the campaign's currency (`adclick_spend_micros` of the stream tier, every
//!   ad and `other` summed; issue #19). The price of a late click is in neither (the stream's
//!   `adclick_late_spend_micros`; the rollup's `billing` statement has all). Exact while a
//!   bucket's sum stays at most 2^53 micros (9,007,199,254 currency units); beyond, refused as
//!   any count is.
//! - `billing`: the rollup's settled series (`tier="rollup"`, served by Thanos), the figure of
//!   record. A day is settled once its rollup ran; until then its rows carry `null`. The rollup
//!   gives every ad its own series, so it has no `other`.
//!
//! **Answers.** JSON (`application/json`):
//! `{"from":"2026-12-01T00:00:00Z","to":"2026-12-02T00:00:00Z","step":"1h","by":"campaign",
//! "rows":[{"start":"2026-12-01T00:00:00Z","campaign_id":"7","final":123,"late":4,"invalid":9,
//! "spend_micros":30750000,"billing":120}]}` (`ad_id` after `campaign_id` with `by=ad`; `late`,
//! `invalid` and `spend_micros` only with `by=campaign`). CSV (`text/csv`, RFC 4180, CRLF):
//! `start,campaign_id[,ad_id],final[,late,invalid,spend_micros],billing`. One row per
//! bucket and group that any figure has a sample for, sorted by start, campaign id, ad id
//! (numerically, `other` last). A figure that was not queried (no history upstream, or the
//! per-campaign figures with an `ad_id` filter) is `null` (CSV: empty); `final`, `late`,
//! `invalid` and `spend_micros` read 0 in a row that only
//! other figures have (no sample: nothing counted); `billing` stays `null` there (not settled,
//! or a group the rollup does not have, such as `other`).

mod plan;
mod render;
mod request;
mod time;

pub use plan::PlannedQuery;
pub use render::{Rendered, render};
pub use request::{AdId, By, ClicksRequest, Format, PROMETHEUS_MAX_POINTS, Step};

/// One figure of a row, each from its own `query_range` (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Figure {
    /// The stream tier's final minutes: Prometheus (or Thanos, `tier="stream"`).
    Final,
    /// Clicks that arrived after their minute was final, in the bucket they arrived in.
    Late,
    /// Invalid traffic (never billed), per campaign, in the bucket of its click time.
    Invalid,
    /// What `Final`'s clicks cost (micros), per campaign.
    Spend,
    /// The rollup's settled minutes: Thanos only, the figure of record.
    Billing,
}

impl Figure {
    /// Whether the figure is answered per campaign only: planned for `by=campaign` without an
    /// `ad_id` filter (`late` and `invalid`: their series have no `ad_id`; `spend_micros` is
    /// given beside them).
    pub fn per_campaign_only(self) -> bool {
        matches!(self, Figure::Late | Figure::Invalid | Figure::Spend)
    }

    /// The figure's name in the answer (a JSON key, a CSV column).
    pub fn as_str(self) -> &'static str {
        match self {
            Figure::Final => "final",
            Figure::Late => "late",
            Figure::Invalid => "invalid",
            Figure::Spend => "spend_micros",
            Figure::Billing => "billing",
        }
    }
}

/// Why `/v1/clicks` cannot answer. Every variant but [`RestError::Upstream`] and
/// [`RestError::Encode`] is the caller's (400), its message naming the parameter and what is
/// expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestError {
    #[error("the parameter `{param}` is missing: expected {expected}")]
    Missing {
        param: &'static str,
        expected: &'static str,
    },

    #[error("the parameter `{param}` is given more than once: expected one value")]
    Repeated { param: &'static str },

    /// A typo (`campain_id`) would otherwise widen the answer silently.
    #[error(
        "unknown parameter `{param}`: expected from, to, step, by, campaign_id, ad_id or format"
    )]
    Unknown { param: String },

    /// `value` is the caller's, cut to a few dozen characters.
    #[error("`{param}={value:?}`: expected {expected}")]
    Invalid {
        param: &'static str,
        value: String,
        expected: &'static str,
    },

    #[error("`{param}={value:?}` is not on a {unit}, as from and to must be with step={step}")]
    Misaligned {
        param: &'static str,
        value: String,
        step: &'static str,
        unit: &'static str,
    },

    #[error(
        "`from` ({from}) must be before `to` ({to}; when not given, now rounded down to the step)"
    )]
    Order { from: String, to: String },

    #[error(
        "from {from} to {to} at step={step} is {points} buckets, more than max_points ({max_points}): narrow the range or use a larger step"
    )]
    TooManyPoints {
        from: String,
        to: String,
        step: &'static str,
        points: i64,
        max_points: usize,
    },

    /// Bounds the query text well below the gateway's query size limit.
    #[error("`{param}` is given {given} times, more than the {max} values allowed")]
    TooManyValues {
        param: &'static str,
        given: usize,
        max: usize,
    },

    /// An upstream answer that is not the matrix the planned query yields (or a figure handed to
    /// [`render`] twice or for a grouping it does not belong to).
    #[error("the {figure} answer could not be read: {detail}")]
    Upstream {
        figure: &'static str,
        detail: String,
    },

    #[error("encoding the answer: {0}")]
    Encode(String),
}

impl RestError {
    /// The HTTP status the handler answers with.
    pub fn status(&self) -> u16 {
        match self {
            RestError::Missing { .. }
            | RestError::Repeated { .. }
            | RestError::Unknown { .. }
            | RestError::Invalid { .. }
            | RestError::Misaligned { .. }
            | RestError::Order { .. }
            | RestError::TooManyValues { .. } => 400,
            // Over the caller's limit, as the PromQL endpoints answer it.
            RestError::TooManyPoints { .. } => 422,
            RestError::Upstream { .. } => 502,
            RestError::Encode(_) => 500,
        }
    }
}

/// At most this many characters of a caller's value are echoed in an error.
const ECHO_CHARS: usize = 48;

/// `value` cut to [`ECHO_CHARS`] characters, for an error message.
fn echo(value: &str) -> String {
    match value.char_indices().nth(ECHO_CHARS) {
        Some((cut, _)) => format!("{}…", &value[..cut]),
        None => value.to_string(),
    }
}
