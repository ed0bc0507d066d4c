//! A request as the body of the HTTP POST: protobuf 3, then Google's snappy in the BLOCK format
//! (the specification forbids the framed format), and back again for receivers and tests.
//!
//! The protobuf is written field by field with prost's encoding functions rather than by
//! building the generated `WriteRequest`: each series' labels were encoded once, when its
//! [`Labels`](crate::Labels) was made, and are copied as bytes, so a batch clones no strings.
//! The bytes are exactly those prost writes for [`Request::to_proto`] (tests compare them).

use bytes::Bytes;
use prost::Message;
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint};

use crate::proto;
use crate::request::{Request, Sample};

/// Field numbers of proto/prometheus/{remote,types}.proto.
const WRITE_REQUEST_TIMESERIES: u32 = 1;
const TIME_SERIES_SAMPLES: u32 = 2;
const SAMPLE_VALUE: u32 = 1;
const SAMPLE_TIMESTAMP: u32 = 2;

/// The largest uncompressed body [`decode`] accepts. A 2000-sample request of ad series is
/// about 200 KB; anything near this limit is not a remote_write body.
pub const MAX_DECODED_LEN: usize = 64 << 20;

/// Why a request could not be turned into a body: snappy's block format holds at most
/// 2^32 - 1 bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("snappy compression failed: {0}")]
    Snappy(String),
}

/// Why a body is not a remote_write request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("not a snappy block: {0}")]
    Snappy(String),
    #[error("decompresses to {0} bytes, more than the {MAX_DECODED_LEN} allowed")]
    TooLarge(usize),
    #[error("not a protobuf WriteRequest: {0}")]
    Protobuf(String),
}

/// An encoded request: the compressed body and what it holds.
#[derive(Debug, Clone)]
pub struct Encoded {
    body: Bytes,
    uncompressed_len: usize,
    samples: usize,
}

impl Encoded {
    /// The body to POST (snappy block of the protobuf).
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// Bytes of protobuf before compression.
    pub fn uncompressed_len(&self) -> usize {
        self.uncompressed_len
    }

    /// Bytes on the wire.
    pub fn compressed_len(&self) -> usize {
        self.body.len()
    }

    /// Samples the request holds.
    pub fn samples(&self) -> usize {
        self.samples
    }
}

/// Encodes requests, reusing its protobuf buffer and snappy state between them.
pub struct Encoder {
    protobuf: Vec<u8>,
    snappy: snap::raw::Encoder,
}

impl Default for Encoder {
    fn default() -> Encoder {
        Encoder::new()
    }
}

impl Encoder {
    pub fn new() -> Encoder {
        Encoder {
            protobuf: Vec::new(),
            snappy: snap::raw::Encoder::new(),
        }
    }

    pub fn encode(&mut self, request: &Request) -> Result<Encoded, EncodeError> {
        self.protobuf.clear();
        write_protobuf(request, &mut self.protobuf);
        let body = self
            .snappy
            .compress_vec(&self.protobuf)
            .map_err(|e| EncodeError::Snappy(e.to_string()))?;
        Ok(Encoded {
            body: Bytes::from(body),
            uncompressed_len: self.protobuf.len(),
            samples: request.samples(),
        })
    }
}

/// Appends the `WriteRequest` protobuf of `request` to `buf`. proto3 leaves out fields at their
/// default value (a zero value or timestamp), as prost does.
fn write_protobuf(request: &Request, buf: &mut Vec<u8>) {
    for (labels, samples) in request.iter() {
        let labels = labels.encoded();
        let samples_len: usize = samples
            .iter()
            .map(|s| {
                let len = sample_len(s);
                prost::encoding::key_len(TIME_SERIES_SAMPLES) + encoded_len_varint(len as u64) + len
            })
            .sum();
        let series_len = labels.len() + samples_len;
        encode_key(WRITE_REQUEST_TIMESERIES, WireType::LengthDelimited, buf);
        encode_varint(series_len as u64, buf);
        buf.extend_from_slice(labels);
        for s in samples {
            encode_key(TIME_SERIES_SAMPLES, WireType::LengthDelimited, buf);
            encode_varint(sample_len(s) as u64, buf);
            if s.value != 0.0 {
                prost::encoding::double::encode(SAMPLE_VALUE, &s.value, buf);
            }
            if s.timestamp_ms != 0 {
                prost::encoding::int64::encode(SAMPLE_TIMESTAMP, &s.timestamp_ms, buf);
            }
        }
    }
}

/// The encoded length of a `Sample` message body.
fn sample_len(s: &Sample) -> usize {
    let value = if s.value != 0.0 {
        prost::encoding::double::encoded_len(SAMPLE_VALUE, &s.value)
    } else {
        0
    };
    let timestamp = if s.timestamp_ms != 0 {
        prost::encoding::int64::encoded_len(SAMPLE_TIMESTAMP, &s.timestamp_ms)
    } else {
        0
    };
    value + timestamp
}

/// Encodes one request (use an [`Encoder`] to reuse buffers across many).
pub fn encode(request: &Request) -> Result<Encoded, EncodeError> {
    Encoder::new().encode(request)
}

/// Decodes a body: snappy block, then protobuf. It does not check the request's validity; see
/// [`Request::from_proto`].
pub fn decode(body: &[u8]) -> Result<proto::WriteRequest, DecodeError> {
    let len = snap::raw::decompress_len(body).map_err(|e| DecodeError::Snappy(e.to_string()))?;
    if len > MAX_DECODED_LEN {
        return Err(DecodeError::TooLarge(len));
    }
    let protobuf = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| DecodeError::Snappy(e.to_string()))?;
    proto::WriteRequest::decode(protobuf.as_slice())
        .map_err(|e| DecodeError::Protobuf(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::{RequestBuilder, Sample};

    fn request() -> Request {
        let mut b = RequestBuilder::new();
        b.series(
            [("__name__", "m"), ("ad_id", "1")],
            [Sample::new(60_000, 1.5)],
        )
        .unwrap();
        b.series(
            [("__name__", "m"), ("ad_id", "2")],
            [Sample::new(60_000, f64::NAN)],
        )
        .unwrap();
        b.build()
    }

    #[test]
    fn round_trip_is_bit_exact_and_a_snappy_block() {
        let request = request();
        let encoded = encode(&request).unwrap();
        // The block format starts with the uncompressed length as a varint; the framed
        // format would start with the stream identifier chunk 0xff 0x06 0x00 0x00 "sNaPpY".
        assert_ne!(encoded.body()[0], 0xff);
        let len = snap::raw::decompress_len(encoded.body()).unwrap();
        assert_eq!(len, encoded.uncompressed_len());
        assert_eq!(encoded.uncompressed_len(), request.to_proto().encoded_len());
        let decoded = decode(encoded.body()).unwrap();
        assert_eq!(decoded.encode_to_vec(), request.to_proto().encode_to_vec());
        assert_eq!(encoded.samples(), 2);
    }

    #[test]
    fn the_bytes_are_those_prost_writes_for_the_message() {
        // Zero values and timestamps (fields left out), negative timestamps (10-byte varints),
        // a series repeated in one request, long label values (2-byte lengths).
        let long = "x".repeat(300);
        let series = |name: &str, samples: &[(i64, f64)]| proto::TimeSeries {
            labels: vec![
                proto::Label {
                    name: "__name__".into(),
                    value: name.into(),
                },
                proto::Label {
                    name: "a".into(),
                    value: long.clone(),
                },
            ],
            samples: samples
                .iter()
                .map(|&(timestamp, value)| proto::Sample { value, timestamp })
                .collect(),
        };
        let message = proto::WriteRequest {
            timeseries: vec![
                series("m", &[(-5, 0.0), (0, 1.0), (1, f64::NAN)]),
                series("n", &[(i64::MIN, f64::MIN_POSITIVE), (i64::MAX, -1.0)]),
                series("m", &[(7, 0.0)]),
            ],
        };
        let request = Request::from_proto(message.clone()).unwrap();
        let encoded = encode(&request).unwrap();
        let protobuf = snap::raw::Decoder::new()
            .decompress_vec(encoded.body())
            .unwrap();
        assert_eq!(protobuf, message.encode_to_vec());
        assert_eq!(encoded.samples(), 6);
    }

    #[test]
    fn garbage_is_refused_not_panicked_on() {
        assert!(matches!(
            decode(b"\xff\xff\xff\xff\xff"),
            Err(DecodeError::Snappy(_))
        ));
        let not_protobuf = snap::raw::Encoder::new()
            .compress_vec(b"\x0a\xff\xff")
            .unwrap();
        assert!(matches!(
            decode(&not_protobuf),
            Err(DecodeError::Protobuf(_))
        ));
        // Declares 2^32-1 bytes: refused before allocating.
        assert!(matches!(
            decode(b"\xff\xff\xff\xff\x0f"),
            Err(DecodeError::TooLarge(_))
        ));
    }

    #[test]
    fn the_encoder_can_be_reused() {
        let mut encoder = Encoder::new();
        let a = encoder.encode(&request()).unwrap();
        let b = encoder.encode(&Request::default()).unwrap();
        let c = encoder.encode(&request()).unwrap();
        assert_eq!(a.body(), c.body());
        assert_eq!(b.uncompressed_len(), 0);
        assert!(decode(b.body()).unwrap().timeseries.is_empty());
    }
}
