//! Requests that follow the remote_write 1.0 rules, and only those.
//!
//! A [`Labels`] is a label set the specification allows: sorted by name (it sorts them), no
//! repeated, empty or reserved (`__`-prefixed) names, no empty values, a `__name__` that is a valid
//! metric name, label names matching `[a-zA-Z_][a-zA-Z0-9_]*`. A [`RequestBuilder`] adds samples
//! to series and refuses any that would break the order of a series' timestamps within the
//! request. A [`Request`] can only come out of the builder or out of [`Request::from_proto`],
//! which checks the same rules, so the sender never sees an invalid one.
//!
//! Every refusal is an [`InvalidSeries`]: the series, written out, and the [`Problem`].

use std::collections::HashMap;
use std::collections::hash_map::{DefaultHasher, Entry};
use std::fmt;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::Arc;

use crate::proto;
use crate::stale;

/// The label that holds the metric name.
pub const METRIC_NAME_LABEL: &str = "__name__";
/// Field numbers of `TimeSeries` (proto/prometheus/types.proto).
pub(crate) const TIME_SERIES_LABELS: u32 = 1;

/// A hasher for keys that hash themselves once ([`Labels`] writes its precomputed hash).
#[derive(Default)]
struct Prehashed(u64);

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

type ByLabels<V> = HashMap<Labels, V, BuildHasherDefault<Prehashed>>;

/// One value at one time: milliseconds since the Unix epoch, as the specification requires.
#[derive(Debug, Clone, Copy)]
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

/// Equal when timestamps and value bits are equal, so that a NaN (and the stale marker) equals
/// itself: what tests of an exact round trip need.
impl PartialEq for Sample {
    fn eq(&self, other: &Sample) -> bool {
        self.timestamp_ms == other.timestamp_ms && self.value.to_bits() == other.value.to_bits()
    }
}

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
    fn new<'a>(labels: impl IntoIterator<Item = (&'a str, &'a str)>, problem: Problem) -> Self {
        InvalidSeries {
            series: render(labels),
            problem,
        }
    }
}

/// `{a="1", b="x\"y"}`: every label, values quoted and escaped.
fn render<'a>(labels: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
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

/// Collects samples by series into a [`Request`], keeping every rule of the specification.
///
/// A series given twice is merged into one `TimeSeries`; its samples must still increase.
///
/// Samples are kept flat in arrival order and grouped by series once, in [`take`]: no
/// allocation per series.
///
/// [`take`]: RequestBuilder::take
#[derive(Debug, Default)]
pub struct RequestBuilder {
    /// Each series once, in order of first appearance.
    series: Vec<Labels>,
    /// Per series: samples so far and the last timestamp.
    counts: Vec<u32>,
    last: Vec<i64>,
    /// (series index, sample) in arrival order.
    entries: Vec<(u32, Sample)>,
    index: ByLabels<u32>,
}

impl RequestBuilder {
    pub fn new() -> RequestBuilder {
        RequestBuilder::default()
    }

    /// Adds one sample to `labels`' series. Refused when its timestamp is not after the last
    /// one of the series in this request, or when its value is the stale marker.
    pub fn push(&mut self, labels: &Labels, sample: Sample) -> Result<(), InvalidSeries> {
        if stale::is_stale_marker(sample.value) {
            let problem = Problem::StaleMarkerValue {
                timestamp_ms: sample.timestamp_ms,
            };
            return Err(InvalidSeries::new(labels.pairs(), problem));
        }
        self.append(labels, sample)
            .map_err(|problem| InvalidSeries::new(labels.pairs(), problem))
    }

    /// Ends `labels`' series at `timestamp_ms` with the stale marker.
    pub fn push_stale(&mut self, labels: &Labels, timestamp_ms: i64) -> Result<(), InvalidSeries> {
        self.append(labels, stale::marker(timestamp_ms))
            .map_err(|problem| InvalidSeries::new(labels.pairs(), problem))
    }

    /// Adds a whole series from name/value pairs, or nothing: either every sample is valid and
    /// in order (after what the series already has in this request), or the builder is unchanged.
    pub fn series<I, N, V>(
        &mut self,
        labels: I,
        samples: impl IntoIterator<Item = Sample>,
    ) -> Result<&mut RequestBuilder, InvalidSeries>
    where
        I: IntoIterator<Item = (N, V)>,
        N: Into<String>,
        V: Into<String>,
    {
        let labels = Labels::new(labels)?;
        let samples: Vec<Sample> = samples.into_iter().collect();
        let refuse = |problem| InvalidSeries::new(labels.pairs(), problem);
        if samples.is_empty() {
            return Err(refuse(Problem::NoSamples));
        }
        let mut previous = self.last_timestamp(&labels);
        for s in &samples {
            if stale::is_stale_marker(s.value) {
                return Err(refuse(Problem::StaleMarkerValue {
                    timestamp_ms: s.timestamp_ms,
                }));
            }
            check_order(previous, s.timestamp_ms).map_err(refuse)?;
            previous = Some(s.timestamp_ms);
        }
        for s in samples {
            // Checked above: cannot fail.
            self.append(&labels, s).map_err(refuse)?;
        }
        Ok(self)
    }

    /// Appends after checking the order only: the stale check is the caller's.
    pub(crate) fn append(&mut self, labels: &Labels, sample: Sample) -> Result<(), Problem> {
        // proto3 omits a field at its default value, and -0.0 == 0.0: a negative zero would
        // arrive as +0.0 (with Prometheus' own sender too). Storing +0.0 keeps the request
        // equal to what the receiver decodes.
        let value = if sample.value == 0.0 {
            0.0
        } else {
            sample.value
        };
        let sample = Sample { value, ..sample };
        let i = match self.index.entry(labels.clone()) {
            Entry::Occupied(e) => {
                let i = *e.get();
                check_order(Some(self.last[i as usize]), sample.timestamp_ms)?;
                self.last[i as usize] = sample.timestamp_ms;
                self.counts[i as usize] += 1;
                i
            }
            Entry::Vacant(e) => {
                let i = self.series.len() as u32;
                e.insert(i);
                self.series.push(labels.clone());
                self.counts.push(1);
                self.last.push(sample.timestamp_ms);
                i
            }
        };
        self.entries.push((i, sample));
        Ok(())
    }

    fn last_timestamp(&self, labels: &Labels) -> Option<i64> {
        let i = *self.index.get(labels)?;
        Some(self.last[i as usize])
    }

    /// Samples added so far.
    pub fn samples(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The request, leaving the builder empty for the next one.
    pub fn take(&mut self) -> Request {
        self.index.clear();
        self.last.clear();
        let samples: Vec<Sample> = if self.series.len() == self.entries.len() {
            // One sample per series (the usual batch): already grouped.
            self.entries.iter().map(|&(_, s)| s).collect()
        } else {
            // Counting sort by series, stable: each series' samples keep their order.
            let mut next: Vec<usize> = Vec::with_capacity(self.counts.len());
            let mut offset = 0;
            for &count in &self.counts {
                next.push(offset);
                offset += count as usize;
            }
            let mut grouped = vec![Sample::new(0, 0.0); self.entries.len()];
            for &(i, sample) in &self.entries {
                grouped[next[i as usize]] = sample;
                next[i as usize] += 1;
            }
            grouped
        };
        let mut end = 0;
        let series = self
            .series
            .drain(..)
            .zip(self.counts.drain(..))
            .map(|(labels, count)| {
                end += count as usize;
                (labels, end)
            })
            .collect();
        self.entries.clear();
        Request { series, samples }
    }

    pub fn build(mut self) -> Request {
        self.take()
    }
}

fn check_order(previous: Option<i64>, timestamp_ms: i64) -> Result<(), Problem> {
    match previous {
        Some(previous_ms) if timestamp_ms <= previous_ms => Err(Problem::TimestampsNotIncreasing {
            previous_ms,
            timestamp_ms,
        }),
        _ => Ok(()),
    }
}

/// A valid `WriteRequest`: what the sender accepts.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// Each `TimeSeries`: its labels and the end of its samples in `samples`.
    series: Vec<(Labels, usize)>,
    samples: Vec<Sample>,
}

impl Request {
    /// Checks a decoded request against the same rules as the builder: sorted valid labels,
    /// at least one sample per series, increasing timestamps per series (across repeats of a
    /// series too). Stale markers are accepted: on the wire they are legitimate. The series
    /// keep their order and repeats, so the request encodes to the same bytes.
    pub fn from_proto(proto: proto::WriteRequest) -> Result<Request, InvalidSeries> {
        let mut last: ByLabels<i64> = ByLabels::default();
        let mut request = Request::default();
        for ts in proto.timeseries {
            let labels = Labels::from_proto(ts.labels)?;
            if ts.samples.is_empty() {
                return Err(labels.refuse(Problem::NoSamples));
            }
            let mut previous = last.get(&labels).copied();
            for s in &ts.samples {
                check_order(previous, s.timestamp).map_err(|p| labels.refuse(p))?;
                previous = Some(s.timestamp);
                request.samples.push(Sample::new(s.timestamp, s.value));
            }
            last.insert(labels.clone(), previous.unwrap_or(i64::MIN));
            request.series.push((labels, request.samples.len()));
        }
        Ok(request)
    }

    /// The request as the generated protobuf message.
    pub fn to_proto(&self) -> proto::WriteRequest {
        let timeseries = self
            .iter()
            .map(|(labels, samples)| proto::TimeSeries {
                labels: labels.to_proto(),
                samples: samples
                    .iter()
                    .map(|s| proto::Sample {
                        value: s.value,
                        timestamp: s.timestamp_ms,
                    })
                    .collect(),
            })
            .collect();
        proto::WriteRequest { timeseries }
    }

    /// Each series with its samples, in request order.
    pub fn iter(&self) -> impl Iterator<Item = (&Labels, &[Sample])> {
        let mut start = 0;
        self.series.iter().map(move |(labels, end)| {
            let samples = &self.samples[start..*end];
            start = *end;
            (labels, samples)
        })
    }

    /// Samples in the request, stale markers included.
    pub fn samples(&self) -> usize {
        self.samples.len()
    }

    /// `TimeSeries` entries in the request.
    pub fn series(&self) -> usize {
        self.series.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
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

    #[test]
    fn builder_keeps_series_in_timestamp_order() {
        let a = Labels::new([("__name__", "m"), ("s", "a")]).unwrap();
        let b = Labels::new([("__name__", "m"), ("s", "b")]).unwrap();
        let mut builder = RequestBuilder::new();
        builder.push(&a, Sample::new(2, 1.0)).unwrap();
        builder.push(&b, Sample::new(1, 1.0)).unwrap();
        builder.push(&a, Sample::new(3, 1.0)).unwrap();
        let e = builder.push(&a, Sample::new(3, 2.0)).unwrap_err();
        assert_eq!(
            e.problem,
            Problem::TimestampsNotIncreasing {
                previous_ms: 3,
                timestamp_ms: 3
            }
        );
        assert_eq!(e.series, a.to_string());
        let e = builder.push(&b, Sample::new(0, 2.0)).unwrap_err();
        assert_eq!(
            e.problem,
            Problem::TimestampsNotIncreasing {
                previous_ms: 1,
                timestamp_ms: 0
            }
        );
        let e = builder.push(&b, stale::marker(5)).unwrap_err();
        assert_eq!(e.problem, Problem::StaleMarkerValue { timestamp_ms: 5 });
        builder.push_stale(&b, 5).unwrap();
        let request = builder.build();
        assert_eq!(request.samples(), 4);
        assert_eq!(request.series(), 2);
        let ts = &request.to_proto().timeseries;
        assert_eq!(
            ts[0]
                .samples
                .iter()
                .map(|s| s.timestamp)
                .collect::<Vec<_>>(),
            [2, 3]
        );
        assert!(stale::is_stale_marker(ts[1].samples[1].value));
    }

    #[test]
    fn series_is_all_or_nothing() {
        let mut builder = RequestBuilder::new();
        let labels = [("__name__", "m")];
        builder
            .series(labels, [Sample::new(1, 1.0), Sample::new(2, 1.0)])
            .unwrap();
        let e = builder
            .series(labels, [Sample::new(3, 1.0), Sample::new(2, 1.0)])
            .unwrap_err();
        assert_eq!(
            e.problem,
            Problem::TimestampsNotIncreasing {
                previous_ms: 3,
                timestamp_ms: 2
            }
        );
        let e = builder.series(labels, [Sample::new(2, 1.0)]).unwrap_err();
        assert_eq!(
            e.problem,
            Problem::TimestampsNotIncreasing {
                previous_ms: 2,
                timestamp_ms: 2
            }
        );
        let e = builder.series(labels, []).unwrap_err();
        assert_eq!(e.problem, Problem::NoSamples);
        assert_eq!(builder.samples(), 2);
    }

    #[test]
    fn from_proto_checks_order_across_repeats_of_a_series() {
        let series = |t: i64| proto::TimeSeries {
            labels: vec![proto::Label {
                name: "__name__".into(),
                value: "m".into(),
            }],
            samples: vec![proto::Sample {
                value: 1.0,
                timestamp: t,
            }],
        };
        let ok = proto::WriteRequest {
            timeseries: vec![series(1), series(2)],
        };
        assert_eq!(Request::from_proto(ok).unwrap().samples(), 2);
        let bad = proto::WriteRequest {
            timeseries: vec![series(2), series(1)],
        };
        let e = Request::from_proto(bad).unwrap_err();
        assert_eq!(
            e.problem,
            Problem::TimestampsNotIncreasing {
                previous_ms: 2,
                timestamp_ms: 1
            }
        );
        let empty = proto::WriteRequest {
            timeseries: vec![proto::TimeSeries {
                samples: vec![],
                ..series(1)
            }],
        };
        assert_eq!(
            Request::from_proto(empty).unwrap_err().problem,
            Problem::NoSamples
        );
    }
}
