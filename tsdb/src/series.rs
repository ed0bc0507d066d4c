//! Series as a block stores them: a label set and its samples, the rules a series must follow
//! to be written (and why one was refused), and the order blocks keep series in.

use std::cmp::Ordering;
use std::fmt;

/// The label holding the metric name; every series must have it.
pub const METRIC_NAME_LABEL: &str = "__name__";

/// One label of a series.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Label {
    pub name: String,
    pub value: String,
}

impl Label {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Label {
        Label {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// One sample: a millisecond timestamp and a float value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub timestamp_ms: i64,
    pub value: f64,
}

impl Sample {
    pub fn new(timestamp_ms: i64, value: f64) -> Sample {
        Sample {
            timestamp_ms,
            value,
        }
    }
}

/// A whole series in memory, for callers that gather series before sorting them
/// (see [`write_block`](crate::write_block)).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Sorted by name, names unique, `__name__` among them.
    pub labels: Vec<Label>,
    /// Strictly increasing timestamps.
    pub samples: Vec<Sample>,
}

/// Prometheus' `labels.Compare`: label by label, name then value, byte-wise; a prefix sorts
/// first. Blocks store series in this order and derive series ids from it.
pub fn compare_label_sets(a: &[Label], b: &[Label]) -> Ordering {
    a.iter()
        .map(|l| (l.name.as_bytes(), l.value.as_bytes()))
        .cmp(b.iter().map(|l| (l.name.as_bytes(), l.value.as_bytes())))
}

/// Sorts series into block order and each label set by name, for callers holding unsorted
/// series in memory. Duplicate names or series stay and are refused when written.
pub fn sort_series(series: &mut [Series]) {
    for one in series.iter_mut() {
        one.labels.sort_by(|a, b| a.name.cmp(&b.name));
    }
    series.sort_by(|a, b| compare_label_sets(&a.labels, &b.labels));
}

/// A label set in PromQL notation, values quoted and escaped: how errors name a series.
pub struct DisplayLabels<'a>(pub &'a [Label]);

impl fmt::Display for DisplayLabels<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, label) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}={:?}", label.name, label.value)?;
        }
        f.write_str("}")
    }
}

/// What is wrong with a series that was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SeriesProblem {
    #[error("no `__name__` label")]
    NoMetricName,
    #[error("a label has an empty name")]
    EmptyLabelName,
    #[error("label `{0}` has an empty value (Prometheus treats that as no label)")]
    EmptyLabelValue(String),
    #[error("label `{0}` appears twice")]
    DuplicateLabel(String),
    #[error("labels are not sorted by name: `{after}` comes after `{before}`")]
    LabelsNotSorted { before: String, after: String },
    #[error("no samples")]
    NoSamples,
    #[error("sample at {timestamp_ms} ms is outside the block's [{min_time_ms}, {max_time_ms}) ms")]
    OutsideBlock {
        timestamp_ms: i64,
        min_time_ms: i64,
        max_time_ms: i64,
    },
    #[error("timestamps do not increase: {timestamp_ms} ms follows {previous_ms} ms")]
    NotIncreasing { previous_ms: i64, timestamp_ms: i64 },
}

/// Checks a label set: names non-empty, sorted and unique, values non-empty, `__name__` present.
pub(crate) fn check_labels(labels: &[Label]) -> Result<(), SeriesProblem> {
    for (i, label) in labels.iter().enumerate() {
        if label.name.is_empty() {
            return Err(SeriesProblem::EmptyLabelName);
        }
        if label.value.is_empty() {
            return Err(SeriesProblem::EmptyLabelValue(label.name.clone()));
        }
        if let Some(before) = i.checked_sub(1).map(|j| &labels[j]) {
            match before.name.cmp(&label.name) {
                Ordering::Less => {}
                Ordering::Equal => return Err(SeriesProblem::DuplicateLabel(label.name.clone())),
                Ordering::Greater => {
                    return Err(SeriesProblem::LabelsNotSorted {
                        before: before.name.clone(),
                        after: label.name.clone(),
                    });
                }
            }
        }
    }
    if !labels.iter().any(|l| l.name == METRIC_NAME_LABEL) {
        return Err(SeriesProblem::NoMetricName);
    }
    Ok(())
}

/// Checks samples: at least one, timestamps strictly increasing, all in `[min, max)`.
pub(crate) fn check_samples(
    samples: &[Sample],
    min_time_ms: i64,
    max_time_ms: i64,
) -> Result<(), SeriesProblem> {
    let (first, last) = match (samples.first(), samples.last()) {
        (Some(first), Some(last)) => (first, last),
        _ => return Err(SeriesProblem::NoSamples),
    };
    if let Some(pair) = samples
        .windows(2)
        .find(|pair| pair[1].timestamp_ms <= pair[0].timestamp_ms)
    {
        return Err(SeriesProblem::NotIncreasing {
            previous_ms: pair[0].timestamp_ms,
            timestamp_ms: pair[1].timestamp_ms,
        });
    }
    // Increasing, so the ends bound every sample.
    for sample in [first, last] {
        if sample.timestamp_ms < min_time_ms || sample.timestamp_ms >= max_time_ms {
            return Err(SeriesProblem::OutsideBlock {
                timestamp_ms: sample.timestamp_ms,
                min_time_ms,
                max_time_ms,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Vec<Label> {
        pairs.iter().map(|(n, v)| Label::new(*n, *v)).collect()
    }

    #[test]
    fn label_sets_compare_like_prometheus() {
        let a = labels(&[("__name__", "x"), ("a", "1")]);
        let b = labels(&[("__name__", "x"), ("a", "2")]);
        let prefix = labels(&[("__name__", "x")]);
        let later_name = labels(&[("__name__", "x"), ("b", "0")]);
        assert_eq!(compare_label_sets(&a, &b), Ordering::Less);
        assert_eq!(compare_label_sets(&prefix, &a), Ordering::Less);
        assert_eq!(compare_label_sets(&b, &later_name), Ordering::Less);
        assert_eq!(compare_label_sets(&a, &a), Ordering::Equal);
        // Byte order, not Unicode collation: "Z" < "a" < "é".
        let upper = labels(&[("__name__", "Z")]);
        let accented = labels(&[("__name__", "é")]);
        assert_eq!(compare_label_sets(&upper, &prefix), Ordering::Less);
        assert_eq!(compare_label_sets(&prefix, &accented), Ordering::Less);
    }

    #[test]
    fn label_problems_are_named() {
        assert_eq!(
            check_labels(&labels(&[("a", "1")])),
            Err(SeriesProblem::NoMetricName)
        );
        assert_eq!(
            check_labels(&labels(&[("__name__", "x"), ("b", "1"), ("a", "2")])),
            Err(SeriesProblem::LabelsNotSorted {
                before: "b".into(),
                after: "a".into()
            })
        );
        assert_eq!(
            check_labels(&labels(&[("__name__", "x"), ("a", "1"), ("a", "2")])),
            Err(SeriesProblem::DuplicateLabel("a".into()))
        );
        assert_eq!(
            check_labels(&labels(&[("__name__", "x"), ("a", "")])),
            Err(SeriesProblem::EmptyLabelValue("a".into()))
        );
        assert_eq!(
            check_labels(&labels(&[("", "v"), ("__name__", "x")])),
            Err(SeriesProblem::EmptyLabelName)
        );
        assert_eq!(
            check_labels(&labels(&[("__name__", "x"), ("a", "1")])),
            Ok(())
        );
    }

    #[test]
    fn sample_problems_are_named() {
        let s = |t| Sample::new(t, 1.0);
        assert_eq!(check_samples(&[], 0, 10), Err(SeriesProblem::NoSamples));
        assert_eq!(
            check_samples(&[s(1), s(1)], 0, 10),
            Err(SeriesProblem::NotIncreasing {
                previous_ms: 1,
                timestamp_ms: 1
            })
        );
        assert_eq!(
            check_samples(&[s(1), s(10)], 0, 10),
            Err(SeriesProblem::OutsideBlock {
                timestamp_ms: 10,
                min_time_ms: 0,
                max_time_ms: 10
            })
        );
        assert!(matches!(
            check_samples(&[s(-1)], 0, 10),
            Err(SeriesProblem::OutsideBlock {
                timestamp_ms: -1,
                ..
            })
        ));
        assert_eq!(check_samples(&[s(0), s(9)], 0, 10), Ok(()));
    }

    #[test]
    fn display_quotes_and_escapes_values() {
        let set = labels(&[("__name__", "x"), ("a", "say \"hi\"\n")]);
        assert_eq!(
            DisplayLabels(&set).to_string(),
            r#"{__name__="x", a="say \"hi\"\n"}"#
        );
    }

    #[test]
    fn sort_series_orders_labels_then_series() {
        let mut series = vec![
            Series {
                labels: labels(&[("b", "1"), ("__name__", "x")]),
                samples: vec![],
            },
            Series {
                labels: labels(&[("__name__", "x"), ("a", "1")]),
                samples: vec![],
            },
        ];
        sort_series(&mut series);
        assert_eq!(series[0].labels, labels(&[("__name__", "x"), ("a", "1")]));
        assert_eq!(series[1].labels, labels(&[("__name__", "x"), ("b", "1")]));
    }
}
