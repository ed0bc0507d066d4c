//! A request as the body of the HTTP POST: protobuf 3, then Google's snappy in the BLOCK format
//! (the specification forbids the framed format), and back again for receivers and tests.

use bytes::Bytes;
use prost::Message;

use crate::proto;
use crate::request::Request;

/// The largest uncompressed body [`decode`] accepts. A 2000-sample request of ad series is
/// about 200 KB; anything near this limit is not a remote_write body.
pub const MAX_DECODED_LEN: usize = 64 << 20;

/// Why a request could not be turned into a body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("protobuf encoding failed: {0}")]
    Protobuf(String),
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
        let message = request.as_proto();
        self.protobuf.clear();
        self.protobuf.reserve(message.encoded_len());
        message
            .encode(&mut self.protobuf)
            .map_err(|e| EncodeError::Protobuf(e.to_string()))?;
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
        assert_eq!(encoded.uncompressed_len(), request.as_proto().encoded_len());
        let decoded = decode(encoded.body()).unwrap();
        assert_eq!(decoded.encode_to_vec(), request.as_proto().encode_to_vec());
        assert_eq!(encoded.samples(), 2);
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
