//! Label sets the remote_write 1.0 specification allows, and only those.
//!
//! A [`Labels`] is sorted by name (it sorts them), has no repeated, empty or reserved
//! (`__`-prefixed) names and no empty values, a `__name__` that is a valid metric name, and
//! label names matching `[a-zA-Z_][a-zA-Z0-9_]*`. It is checked, hashed and protobuf-encoded
//! once, so that requests and queues holding it copy bytes, not strings.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::fmt;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::Arc;

use crate::invalid::{InvalidSeries, Problem, render};
use crate::proto;

/// The label that holds the metric name.
pub const METRIC_NAME_LABEL: &str = "__name__";
/// Field numbers of `TimeSeries` (proto/prometheus/types.proto).
pub(crate) const TIME_SERIES_LABELS: u32 = 1;

/// A hasher for keys that hash themselves once ([`Labels`] writes its precomputed hash).
#[derive(Default)]
pub(crate) struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only reached by keys other than Labels; FNV-1a keeps it correct for them.
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// A map by series that hashes each key with the hash its [`Labels`] computed once.
pub(crate) type ByLabels<V> = HashMap<Labels, V, BuildHasherDefault<Prehashed>>;

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`
pub fn is_valid_metric_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    let first_ok =
        matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_' || b == b':');
    first_ok && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`
pub fn is_valid_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    let first_ok = matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_');
    first_ok && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Checks labels already sorted by name (ties adjacent) against every rule of the spec.
fn check_sorted(labels: &[proto::Label]) -> Result<(), Problem> {
    let mut has_name = false;
    for (i, label) in labels.iter().enumerate() {
        if label.name.is_empty() {
            return Err(Problem::EmptyLabelName);
        }
        if i > 0 && labels[i - 1].name == label.name {
            return Err(Problem::DuplicateLabelName {
                name: label.name.clone(),
            });
        }
        if !is_valid_label_name(&label.name) {
            return Err(Problem::InvalidLabelName {
                name: label.name.clone(),
            });
        }
        if label.name == METRIC_NAME_LABEL {
            has_name = true;
            if !is_valid_metric_name(&label.value) {
                return Err(Problem::InvalidMetricName {
                    name: label.value.clone(),
                });
            }
        } else if label.name.starts_with("__") {
            return Err(Problem::ReservedLabelName {
                name: label.name.clone(),
            });
        }
        if label.value.is_empty() {
            return Err(Problem::EmptyLabelValue {
                name: label.name.clone(),
            });
        }
    }
    if has_name {
        Ok(())
    } else {
        Err(Problem::MissingMetricName)
    }
}

/// A valid label set: the identity of a series. Cheap to clone (shared); hashed and
/// protobuf-encoded once, so that a request holding it copies bytes instead of strings.
#[derive(Clone)]
pub struct Labels {
    /// The `labels` fields (1) of a `TimeSeries` holding these labels, as prost encodes them:
    /// the only copy. A label set is encoded once and read back rarely (errors, tests), and an
    /// exporter holds one per queued sample, so one allocation of ~100 bytes beats a string per
    /// name and value (~700 bytes for an ad series).
    encoded: Arc<[u8]>,
    /// Kept beside the pointer, so hashing and most comparisons need not read the labels.
    hash: u64,
}

impl Labels {
    /// Sorts `labels` by name and checks them; refuses them naming the series as given.
    pub fn new<I, N, V>(labels: I) -> Result<Labels, InvalidSeries>
    where
        I: IntoIterator<Item = (N, V)>,
        N: Into<String>,
        V: Into<String>,
    {
        let mut labels: Vec<proto::Label> = labels
            .into_iter()
            .map(|(name, value)| proto::Label {
                name: name.into(),
                value: value.into(),
            })
            .collect();
        let given = render(labels.iter().map(|l| (l.name.as_str(), l.value.as_str())));
        // Stable, so repeated names stay adjacent for the check below; byte order, as Go's.
        labels.sort_by(|a, b| a.name.cmp(&b.name));
        match check_sorted(&labels) {
            Ok(()) => Ok(Labels::from_checked(&labels)),
            Err(problem) => Err(InvalidSeries {
                series: given,
                problem,
            }),
        }
    }

    /// Takes the labels of a decoded series; they must already be sorted.
    pub fn from_proto(labels: Vec<proto::Label>) -> Result<Labels, InvalidSeries> {
        let refuse = |problem| {
            InvalidSeries::new(
                labels.iter().map(|l| (l.name.as_str(), l.value.as_str())),
                problem,
            )
        };
        if let Some(w) = labels.windows(2).find(|w| w[0].name > w[1].name) {
            return Err(refuse(Problem::LabelsNotSorted {
                before: w[0].name.clone(),
                after: w[1].name.clone(),
            }));
        }
        check_sorted(&labels).map_err(refuse)?;
        Ok(Labels::from_checked(&labels))
    }

    fn from_checked(labels: &[proto::Label]) -> Labels {
        let mut hasher = DefaultHasher::new();
        let mut encoded = Vec::new();
        for l in labels {
            l.name.hash(&mut hasher);
            l.value.hash(&mut hasher);
            prost::encoding::message::encode(TIME_SERIES_LABELS, l, &mut encoded);
        }
        Labels {
            encoded: encoded.into(),
            hash: hasher.finish(),
        }
    }

    /// The labels as the `labels` fields of a protobuf `TimeSeries`.
    pub(crate) fn encoded(&self) -> &[u8] {
        &self.encoded
    }

    /// The labels as protobuf messages, sorted by name.
    pub fn to_proto(&self) -> Vec<proto::Label> {
        self.pairs()
            .map(|(name, value)| proto::Label {
                name: name.to_string(),
                value: value.to_string(),
            })
            .collect()
    }

    /// The value of label `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// The value of `__name__`.
    pub fn metric_name(&self) -> &str {
        // Present by construction.
        self.get(METRIC_NAME_LABEL).unwrap_or_default()
    }

    /// A hash of the whole label set, stable for the life of the process: picks the shard.
    pub fn hash_value(&self) -> u64 {
        self.hash
    }

    /// The (name, value) pairs, sorted by name, read back from the encoded bytes.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        EncodedLabels(&self.encoded)
    }

    /// The error for `problem` in this series.
    pub(crate) fn refuse(&self, problem: Problem) -> InvalidSeries {
        InvalidSeries::new(self.pairs(), problem)
    }
}

/// Reads `Label` messages (field 1 of `TimeSeries`) back from bytes [`Labels`] encoded: each
/// is key, length, then the name (field 1) and the value (field 2), each key, length, UTF-8.
struct EncodedLabels<'a>(&'a [u8]);

impl<'a> EncodedLabels<'a> {
    /// The next length-delimited field: its number and bytes.
    fn field(buf: &mut &'a [u8]) -> Option<(u32, &'a [u8])> {
        use prost::encoding::decode_varint;
        let key = decode_varint(buf).ok()?;
        let len = decode_varint(buf).ok()? as usize;
        let bytes = buf.get(..len)?;
        *buf = &buf[len..];
        Some(((key >> 3) as u32, bytes))
    }
}

impl<'a> Iterator for EncodedLabels<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<(&'a str, &'a str)> {
        let (_, mut label) = Self::field(&mut self.0)?;
        let (mut name, mut value) = ("", "");
        while let Some((field, bytes)) = Self::field(&mut label) {
            // Written from `String`s by `Labels::from_checked`: always UTF-8.
            let text = std::str::from_utf8(bytes).expect("labels are encoded from strings");
            match field {
                1 => name = text,
                _ => value = text,
            }
        }
        Some((name, value))
    }
}

impl PartialEq for Labels {
    fn eq(&self, other: &Labels) -> bool {
        self.hash == other.hash
            && (Arc::ptr_eq(&self.encoded, &other.encoded) || self.encoded == other.encoded)
    }
}
impl Eq for Labels {}

impl Hash for Labels {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

/// `{__name__="adclick_clicks", ad_id="7"}`
impl fmt::Display for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&render(self.pairs()))
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Labels{self}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem<N: Into<String>, V: Into<String>>(
        labels: impl IntoIterator<Item = (N, V)>,
    ) -> Problem {
        Labels::new(labels).unwrap_err().problem
    }

    #[test]
    fn labels_are_sorted_and_looked_up() {
        let l = Labels::new([("b", "2"), ("__name__", "m"), ("a", "1")]).unwrap();
        let names: Vec<&str> = l.pairs().map(|(name, _)| name).collect();
        assert_eq!(names, ["__name__", "a", "b"]);
        assert_eq!(l.get("b"), Some("2"));
        assert_eq!(l.get("c"), None);
        assert_eq!(l.metric_name(), "m");
        assert_eq!(l.to_string(), r#"{__name__="m", a="1", b="2"}"#);
        let same = Labels::new([("a", "1"), ("b", "2"), ("__name__", "m")]).unwrap();
        assert_eq!(l, same);
        assert_eq!(l.hash_value(), same.hash_value());
    }

    #[test]
    fn every_label_rule_is_enforced() {
        assert_eq!(problem([("a", "1")]), Problem::MissingMetricName);
        assert_eq!(
            problem([("__name__", "m"), ("", "1")]),
            Problem::EmptyLabelName
        );
        assert_eq!(
            problem([("__name__", "m"), ("a", "")]),
            Problem::EmptyLabelValue { name: "a".into() }
        );
        assert_eq!(
            problem([("__name__", "m"), ("a", "1"), ("a", "1")]),
            Problem::DuplicateLabelName { name: "a".into() }
        );
        assert_eq!(
            problem([("__name__", "m"), ("a-b", "1")]),
            Problem::InvalidLabelName { name: "a-b".into() }
        );
        assert_eq!(
            problem([("__name__", "m"), ("1a", "1")]),
            Problem::InvalidLabelName { name: "1a".into() }
        );
        assert_eq!(
            problem([("__name__", "m"), ("a:b", "1")]),
            Problem::InvalidLabelName { name: "a:b".into() }
        );
        assert_eq!(
            problem([("__name__", "m"), ("__x", "1")]),
            Problem::ReservedLabelName { name: "__x".into() }
        );
        assert_eq!(
            problem([("__name__", "1m")]),
            Problem::InvalidMetricName { name: "1m".into() }
        );
        assert_eq!(
            problem([("__name__", "")]),
            Problem::InvalidMetricName { name: "".into() }
        );
        assert_eq!(
            problem([("__name__", "é")]),
            Problem::InvalidMetricName { name: "é".into() }
        );
        // Colons are allowed in metric names (recording rules) but not in label names.
        assert!(Labels::new([("__name__", "job:clicks:rate1m"), ("_x", "ü ∑ \"q\"")]).is_ok());
    }

    #[test]
    fn errors_name_the_series_as_given() {
        let e = Labels::new([("z", "1"), ("a", "")]).unwrap_err();
        assert_eq!(e.series, r#"{z="1", a=""}"#);
        assert!(e.to_string().contains(r#"{z="1", a=""}"#), "{e}");
    }

    #[test]
    fn from_proto_refuses_unsorted_labels() {
        let labels = vec![
            proto::Label {
                name: "b".into(),
                value: "1".into(),
            },
            proto::Label {
                name: "__name__".into(),
                value: "m".into(),
            },
        ];
        let e = Labels::from_proto(labels).unwrap_err();
        assert_eq!(
            e.problem,
            Problem::LabelsNotSorted {
                before: "b".into(),
                after: "__name__".into()
            }
        );
    }
}
