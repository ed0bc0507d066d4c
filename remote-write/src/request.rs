//! Requests that follow the remote_write 1.0 rules, and only those.
//!
//! Their series are [`Labels`], valid by construction. A [`RequestBuilder`] adds samples to
//! series and refuses any that would break the order of a series' timestamps within the
//! request. A [`Request`] can only come out of the builder or out of [`Request::from_proto`],
//! which checks the same rules, so the sender never sees an invalid one.
//!
//! Every refusal is an [`InvalidSeries`]: the series, written out, and the [`Problem`].

use std::collections::hash_map::Entry;

use crate::labels::ByLabels;
use crate::proto;
use crate::stale;

// Their paths from before labels had a module of their own (`request::is_valid_label_name` is
// how configurations check label names).
pub use crate::invalid::{InvalidSeries, Problem};
pub use crate::labels::{Labels, METRIC_NAME_LABEL, is_valid_label_name, is_valid_metric_name};

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
        N: AsRef<str>,
        V: AsRef<str>,
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
