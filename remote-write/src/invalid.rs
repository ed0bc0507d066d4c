//! Why a series is refused: [`InvalidSeries`] writes the series out, [`Problem`] names the rule
//! of the remote_write 1.0 specification it breaks — in its labels or in its samples.

/// What is wrong with a series.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("a label has an empty name")]
    EmptyLabelName,
    #[error("label {name:?} has an empty value")]
    EmptyLabelValue { name: String },
    #[error("label name {name:?} is repeated")]
    DuplicateLabelName { name: String },
    #[error("label name {name:?} does not match [a-zA-Z_][a-zA-Z0-9_]*")]
    InvalidLabelName { name: String },
    #[error("label name {name:?} starts with \"__\", which is reserved for system use")]
    ReservedLabelName { name: String },
    #[error("there is no __name__ label")]
    MissingMetricName,
    #[error("metric name {name:?} does not match [a-zA-Z_:][a-zA-Z0-9_:]*")]
    InvalidMetricName { name: String },
    #[error("labels are not sorted by name: {before:?} comes before {after:?}")]
    LabelsNotSorted { before: String, after: String },
    #[error(
        "a sample at {timestamp_ms} ms follows one at {previous_ms} ms: \
         the timestamps of a series must increase"
    )]
    TimestampsNotIncreasing { previous_ms: i64, timestamp_ms: i64 },
    #[error(
        "the sample at {timestamp_ms} ms has the stale-marker NaN as its value, which is \
         reserved for ending a series (push_stale / end_series)"
    )]
    StaleMarkerValue { timestamp_ms: i64 },
    #[error("the series has no samples")]
    NoSamples,
}

/// A series refused, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid series {series}: {problem}")]
pub struct InvalidSeries {
    /// The series as `{name="value", ...}`, in the order it was given.
    pub series: String,
    pub problem: Problem,
}

impl InvalidSeries {
    pub(crate) fn new<'a>(
        labels: impl IntoIterator<Item = (&'a str, &'a str)>,
        problem: Problem,
    ) -> Self {
        InvalidSeries {
            series: render(labels),
            problem,
        }
    }
}

/// `{a="1", b="x\"y"}`: every label, values quoted and escaped.
pub(crate) fn render<'a>(labels: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut out = String::from("{");
    for (i, (name, value)) in labels.into_iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&format!("{name}={value:?}"));
    }
    out.push('}');
    out
}
