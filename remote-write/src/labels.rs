//! Label sets the remote_write 1.0 specification allows, and only those.
//!
//! A [`Labels`] is sorted by name (it sorts them), has no repeated, empty or reserved
//! (`__`-prefixed) names and no empty values, a `__name__` that is a valid metric name, and
//! label names matching `[a-zA-Z_][a-zA-Z0-9_]*`. It is checked, hashed and protobuf-encoded
//! once, so that requests and queues holding it copy bytes, not strings.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};
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

/// Hashes a label set's encoding: fixed, so that a series keeps its hash (and queue shard) for
/// the life of the process; foldhash's quality variant, as shards take the hash modulo their
/// number.
const LABELS_HASH: foldhash::quality::FixedState =
    foldhash::quality::FixedState::with_seed(0x5eed_adc1);

/// Appends one `Label` message as field 1 of a `TimeSeries`: key, length, then the name as
/// field 1 and the value as field 2, each key, length, UTF-8 (prost's encoding of a `Label`
/// whose fields are not empty).
fn put_label(name: &str, value: &str, buf: &mut Vec<u8>) {
    use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint};
    let field_len = |text: &str| 1 + encoded_len_varint(text.len() as u64) + text.len();
    let put = |field: u32, text: &str, buf: &mut Vec<u8>| {
        encode_key(field, WireType::LengthDelimited, buf);
        encode_varint(text.len() as u64, buf);
        buf.extend_from_slice(text.as_bytes());
    };
    encode_key(TIME_SERIES_LABELS, WireType::LengthDelimited, buf);
    encode_varint((field_len(name) + field_len(value)) as u64, buf);
    put(1, name, buf);
    put(2, value, buf);
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
fn check_sorted(labels: &[(&str, &str)]) -> Result<(), Problem> {
    let mut has_name = false;
    for (i, &(name, value)) in labels.iter().enumerate() {
        if name.is_empty() {
            return Err(Problem::EmptyLabelName);
        }
        if i > 0 && labels[i - 1].0 == name {
            return Err(Problem::DuplicateLabelName { name: name.into() });
        }
        if !is_valid_label_name(name) {
            return Err(Problem::InvalidLabelName { name: name.into() });
        }
        if name == METRIC_NAME_LABEL {
            has_name = true;
            if !is_valid_metric_name(value) {
                return Err(Problem::InvalidMetricName { name: value.into() });
            }
        } else if name.starts_with("__") {
            return Err(Problem::ReservedLabelName { name: name.into() });
        }
        if value.is_empty() {
            return Err(Problem::EmptyLabelValue { name: name.into() });
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
        N: AsRef<str>,
        V: AsRef<str>,
    {
        let given: Vec<(N, V)> = labels.into_iter().collect();
        let pairs = || given.iter().map(|(n, v)| (n.as_ref(), v.as_ref()));
        let mut sorted: Vec<(&str, &str)> = pairs().collect();
        // Stable, so repeated names stay adjacent for the check below; byte order, as Go's.
        sorted.sort_by(|a, b| a.0.cmp(b.0));
        match check_sorted(&sorted) {
            Ok(()) => Ok(Labels::from_checked(&sorted)),
            // Only now is the series written out: labels are made far more often than refused.
            Err(problem) => Err(InvalidSeries::new(pairs(), problem)),
        }
    }

    /// Takes the labels of a decoded series; they must already be sorted.
    pub fn from_proto(labels: Vec<proto::Label>) -> Result<Labels, InvalidSeries> {
        let pairs: Vec<(&str, &str)> = labels
            .iter()
            .map(|l| (l.name.as_str(), l.value.as_str()))
            .collect();
        let refuse = |problem| InvalidSeries::new(pairs.iter().copied(), problem);
        if let Some(w) = pairs.windows(2).find(|w| w[0].0 > w[1].0) {
            return Err(refuse(Problem::LabelsNotSorted {
                before: w[0].0.into(),
                after: w[1].0.into(),
            }));
        }
        check_sorted(&pairs).map_err(refuse)?;
        Ok(Labels::from_checked(&pairs))
    }

    /// The same labels under the metric name `name`: the series of one subject measured
    /// otherwise (clicks, spend, users of one ad), made by replacing the bytes of `__name__`
    /// alone, without writing out, sorting and checking the other labels again.
    pub fn with_metric_name(&self, name: &str) -> Result<Labels, InvalidSeries> {
        if !is_valid_metric_name(name) {
            return Err(self.refuse(Problem::InvalidMetricName { name: name.into() }));
        }
        let total = self.encoded.len();
        let mut labels = EncodedLabels(&self.encoded);
        let span = loop {
            let start = total - labels.0.len();
            match labels.next() {
                Some((METRIC_NAME_LABEL, _)) => break start..total - labels.0.len(),
                Some(_) => {}
                // Present by construction.
                None => return Err(self.refuse(Problem::MissingMetricName)),
            }
        };
        Ok(Labels::encode_with(|buf| {
            buf.extend_from_slice(&self.encoded[..span.start]);
            put_label(METRIC_NAME_LABEL, name, buf);
            buf.extend_from_slice(&self.encoded[span.end..]);
        }))
    }

    /// Encodes checked labels as prost would (no field of a checked label is empty, so none is
    /// left out).
    fn from_checked(labels: &[(&str, &str)]) -> Labels {
        Labels::encode_with(|buf| {
            for &(name, value) in labels {
                put_label(name, value, buf);
            }
        })
    }

    /// The labels `encode` writes into an empty buffer, hashed. The buffer is the thread's
    /// own, reused: the labels then cost one allocation, the shared bytes.
    fn encode_with(encode: impl FnOnce(&mut Vec<u8>)) -> Labels {
        thread_local! {
            static BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        BUFFER.with_borrow_mut(|buf| {
            buf.clear();
            encode(buf);
            Labels {
                hash: LABELS_HASH.hash_one(&buf[..]),
                encoded: Arc::from(&buf[..]),
            }
        })
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

    fn problem<N: AsRef<str>, V: AsRef<str>>(labels: impl IntoIterator<Item = (N, V)>) -> Problem {
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
    fn labels_are_encoded_as_prost_encodes_them() {
        use prost::Message;
        let l = Labels::new([
            ("b", "ü".repeat(70)),
            ("__name__", "m".into()),
            ("a", "1".into()),
        ])
        .unwrap();
        let series = proto::TimeSeries {
            labels: l.to_proto(),
            samples: vec![],
        };
        assert_eq!(l.encoded(), series.encode_to_vec());
        assert_eq!(Labels::from_proto(l.to_proto()).unwrap(), l);
    }

    #[test]
    fn a_metric_name_is_swapped_and_checked() {
        let l = Labels::new([("b", "2"), ("__name__", "m"), ("A", "0")]).unwrap();
        let spend = l.with_metric_name("m_spend").unwrap();
        assert_eq!(
            spend,
            Labels::new([("b", "2"), ("__name__", "m_spend"), ("A", "0")]).unwrap()
        );
        assert_eq!(
            spend.hash_value(),
            Labels::new([("__name__", "m_spend"), ("A", "0"), ("b", "2")])
                .unwrap()
                .hash_value()
        );
        let e = l.with_metric_name("1m").unwrap_err();
        assert_eq!(e.problem, Problem::InvalidMetricName { name: "1m".into() });
        assert_eq!(e.series, r#"{A="0", __name__="m", b="2"}"#);
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
