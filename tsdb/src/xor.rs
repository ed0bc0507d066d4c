//! XOR chunks: Prometheus' float sample encoding (Gorilla-style), bit for bit as
//! `tsdb/chunkenc/xor.go` writes it, and how many samples one chunk holds.
//!
//! Layout (`tsdb/docs/format/chunks.md`): a big-endian `u16` sample count; the first timestamp as
//! varint and the first value as 64 raw bits; the second timestamp as a uvarint delta; every later
//! timestamp as a delta of deltas in a prefix-coded bucket of 1, 16, 20, 24 or 68 bits. Each value
//! after the first is XORed with the previous one and stored as one `0` bit when equal, or by its
//! meaningful bits, reusing the previous leading/trailing zero window when it fits.

use crate::bitstream::{BitReader, BitWriter, EndOfStream};
use crate::encoding::put_varint;
use crate::series::Sample;

/// The chunk encoding byte of XOR chunks in a segment file (`chunkenc.EncXOR`).
pub const ENCODING_XOR: u8 = 1;

/// The most samples Prometheus puts in one chunk (`samplesPerChunk` in `tsdb/head_append.go`).
/// Readers decode a whole chunk to use any sample of it, so small chunks keep queries cheap.
pub const MAX_SAMPLES_PER_CHUNK: usize = 120;

/// How a series of `sample_count` samples is cut into chunks: as few chunks as
/// [`MAX_SAMPLES_PER_CHUNK`] allows, filled evenly (121 samples make 61 + 60, not 120 + 1), so no
/// chunk is a nearly empty tail. Yields each chunk's sample count, in order.
pub fn chunk_sizes(sample_count: usize) -> impl Iterator<Item = usize> {
    let chunk_count = sample_count.div_ceil(MAX_SAMPLES_PER_CHUNK);
    let (base, larger) = match sample_count.checked_div(chunk_count) {
        Some(base) => (base, sample_count % chunk_count),
        None => (0, 0),
    };
    (0..chunk_count).map(move |i| base + usize::from(i < larger))
}

/// Why samples cannot be one chunk.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EncodeError {
    #[error("a chunk needs at least one sample")]
    NoSamples,
    #[error("{0} samples do not fit the chunk's 16-bit sample count")]
    TooManySamples(usize),
}

/// Encodes `samples` (timestamps expected increasing; the caller validates) as one XOR chunk,
/// appending the chunk data (header included) to `out`.
pub fn encode(samples: &[Sample], out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let count = match u16::try_from(samples.len()) {
        Ok(0) => return Err(EncodeError::NoSamples),
        Ok(count) => count,
        Err(_) => return Err(EncodeError::TooManySamples(samples.len())),
    };
    out.extend_from_slice(&count.to_be_bytes());

    let first = samples[0];
    put_varint(out, first.timestamp_ms);
    let mut bits = BitWriter::new(out);
    bits.write_bits(first.value.to_bits(), 64);

    let mut state = XorState::new(first);
    if let Some(second) = samples.get(1) {
        let delta = (second.timestamp_ms.wrapping_sub(first.timestamp_ms)) as u64;
        // A uvarint, byte-aligned here (2 header bytes, whole varint bytes, 64 value bits).
        let mut rest = delta;
        while rest >= 0x80 {
            bits.write_bits((rest & 0x7f) | 0x80, 8);
            rest >>= 7;
        }
        bits.write_bits(rest, 8);
        state.write_value(&mut bits, second.value);
        state.timestamp_ms = second.timestamp_ms;
        state.delta_ms = delta;
    }
    for sample in samples.iter().skip(2) {
        let delta = (sample.timestamp_ms.wrapping_sub(state.timestamp_ms)) as u64;
        let delta_of_delta = delta.wrapping_sub(state.delta_ms) as i64;
        write_delta_of_delta(&mut bits, delta_of_delta);
        state.write_value(&mut bits, sample.value);
        state.timestamp_ms = sample.timestamp_ms;
        state.delta_ms = delta;
    }
    bits.finish();
    Ok(())
}

/// The timestamp bucket of xor.go's `Append`: prefix `0` for 0, `10` + 14 bits, `110` + 17 bits,
/// `1110` + 20 bits, else `1111` + 64 bits.
#[inline]
fn write_delta_of_delta(bits: &mut BitWriter<'_>, dod: i64) {
    if dod == 0 {
        bits.write_bit(false);
    } else if fits_bits(dod, 14) {
        bits.write_bits(0b10, 2);
        bits.write_bits(dod as u64, 14);
    } else if fits_bits(dod, 17) {
        bits.write_bits(0b110, 3);
        bits.write_bits(dod as u64, 17);
    } else if fits_bits(dod, 20) {
        bits.write_bits(0b1110, 4);
        bits.write_bits(dod as u64, 20);
    } else {
        bits.write_bits(0b1111, 4);
        bits.write_bits(dod as u64, 64);
    }
}

/// xor.go's `bitRange`: the range is asymmetric, `-(2^(n-1) - 1) ..= 2^(n-1)`, because the reader
/// maps `n`-bit patterns above `2^(n-1)` to negatives. Writers must use exactly this range.
#[inline]
fn fits_bits(x: i64, nbits: u32) -> bool {
    let half = 1i64 << (nbits - 1);
    -(half - 1) <= x && x <= half
}

/// What the encoder carries from one sample to the next.
struct XorState {
    timestamp_ms: i64,
    delta_ms: u64,
    value_bits: u64,
    /// Leading zeros of the current XOR window; `0xff` until the first window is written.
    leading: u32,
    trailing: u32,
}

impl XorState {
    fn new(first: Sample) -> XorState {
        XorState {
            timestamp_ms: first.timestamp_ms,
            delta_ms: 0,
            value_bits: first.value.to_bits(),
            leading: 0xff,
            trailing: 0,
        }
    }

    /// xor.go's `writeVDelta`.
    #[inline]
    fn write_value(&mut self, bits: &mut BitWriter<'_>, value: f64) {
        let value_bits = value.to_bits();
        let xor = value_bits ^ self.value_bits;
        self.value_bits = value_bits;
        if xor == 0 {
            bits.write_bit(false);
            return;
        }
        // Leading zeros are stored in 5 bits, so at most 31 of them are counted.
        let leading = xor.leading_zeros().min(31);
        let trailing = xor.trailing_zeros();
        if self.leading != 0xff && leading >= self.leading && trailing >= self.trailing {
            // `10`: the meaningful bits fit the previous window.
            bits.write_bits(0b10, 2);
            bits.write_bits(xor >> self.trailing, 64 - self.leading - self.trailing);
        } else {
            self.leading = leading;
            self.trailing = trailing;
            let significant = 64 - leading - trailing;
            // `11`, 5 bits of leading zeros, 6 bits of length (64 is written as 0), the bits.
            bits.write_bits(0b11, 2);
            bits.write_bits(u64::from(leading), 5);
            bits.write_bits(u64::from(significant), 6);
            bits.write_bits(xor >> trailing, significant);
        }
    }
}

/// Why bytes are not an XOR chunk.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("chunk is {0} bytes, shorter than its 2-byte header")]
    NoHeader(usize),
    #[error("chunk data ends inside sample {index} of {count}")]
    Truncated { index: usize, count: usize },
    #[error("timestamp varint of sample {index} is malformed")]
    BadVarint { index: usize },
    #[error("value of sample {index} claims more than 64 bits")]
    BadXorWindow { index: usize },
}

/// Decodes an XOR chunk's data back into its samples, as xor.go's iterator does.
pub fn decode(data: &[u8]) -> Result<Vec<Sample>, DecodeError> {
    let header: [u8; 2] = data
        .get(..2)
        .and_then(|h| h.try_into().ok())
        .ok_or(DecodeError::NoHeader(data.len()))?;
    let count = usize::from(u16::from_be_bytes(header));
    let mut reader = BitReader::new(&data[2..]);
    let mut samples = Vec::with_capacity(count);
    let (mut timestamp, mut delta, mut value_bits) = (0i64, 0u64, 0u64);
    let (mut leading, mut trailing) = (0u32, 0u32);
    for index in 0..count {
        let truncated = |_: EndOfStream| DecodeError::Truncated { index, count };
        match index {
            0 => {
                let raw = read_uvarint_bits(&mut reader)
                    .map_err(truncated)?
                    .ok_or(DecodeError::BadVarint { index })?;
                timestamp = ((raw >> 1) as i64) ^ -((raw & 1) as i64);
                value_bits = reader.read_bits(64).map_err(truncated)?;
                samples.push(Sample::new(timestamp, f64::from_bits(value_bits)));
                continue;
            }
            1 => {
                delta = read_uvarint_bits(&mut reader)
                    .map_err(truncated)?
                    .ok_or(DecodeError::BadVarint { index })?;
            }
            _ => {
                let mut prefix = 0u8;
                for _ in 0..4 {
                    prefix <<= 1;
                    if !reader.read_bit().map_err(truncated)? {
                        break;
                    }
                    prefix |= 1;
                }
                let dod = match prefix {
                    0b0 => 0,
                    0b10 => read_signed(&mut reader, 14).map_err(truncated)?,
                    0b110 => read_signed(&mut reader, 17).map_err(truncated)?,
                    0b1110 => read_signed(&mut reader, 20).map_err(truncated)?,
                    _ => reader.read_bits(64).map_err(truncated)? as i64,
                };
                delta = (delta as i64).wrapping_add(dod) as u64;
            }
        }
        timestamp = timestamp.wrapping_add(delta as i64);
        if reader.read_bit().map_err(truncated)? {
            if reader.read_bit().map_err(truncated)? {
                leading = reader.read_bits(5).map_err(truncated)? as u32;
                let mut significant = reader.read_bits(6).map_err(truncated)? as u32;
                if significant == 0 {
                    significant = 64;
                }
                trailing = 64u32
                    .checked_sub(leading + significant)
                    .ok_or(DecodeError::BadXorWindow { index })?;
            }
            let significant = 64 - leading - trailing;
            let xor = reader.read_bits(significant).map_err(truncated)?;
            value_bits ^= xor << trailing;
        }
        samples.push(Sample::new(timestamp, f64::from_bits(value_bits)));
    }
    Ok(samples)
}

/// A uvarint read 8 bits at a time from the bit stream (`binary.ReadUvarint` on the bstream).
fn read_uvarint_bits(reader: &mut BitReader<'_>) -> Result<Option<u64>, EndOfStream> {
    let mut value = 0u64;
    for i in 0..10 {
        let byte = reader.read_byte()?;
        if i == 9 && byte > 1 {
            return Ok(None);
        }
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            return Ok(Some(value));
        }
    }
    Ok(None)
}

/// An `nbits` delta of deltas: patterns above `2^(nbits-1)` are negative (see [`fits_bits`]).
fn read_signed(reader: &mut BitReader<'_>, nbits: u32) -> Result<i64, EndOfStream> {
    let raw = reader.read_bits(nbits)? as i64;
    Ok(if raw > 1 << (nbits - 1) {
        raw - (1 << nbits)
    } else {
        raw
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn two_samples_match_promtools_chunk() {
        // promtool 2.42 `tsdb create-blocks-from openmetrics` on samples (60 s, 1e6), (120 s, 0.1):
        // the chunk data of chunks/000001 after its uvarint length (0x1a) and encoding byte (0x01).
        let want = "0002c0a907412e848000000000e0d403c3f7e971d199999999a0";
        let mut out = Vec::new();
        encode(
            &[Sample::new(60_000, 1e6), Sample::new(120_000, 0.1)],
            &mut out,
        )
        .unwrap();
        assert_eq!(hex(&out), want);
    }

    #[test]
    fn bucket_edges_follow_xor_go_bit_range() {
        // Three samples of value 0: after the header, varint(t0), 64 zero bits and
        // uvarint(t1 - t0) come `0` (value unchanged), the delta of deltas, `0` again.
        let chunk = |t1: i64, t2: i64| {
            let mut out = Vec::new();
            let samples = [
                Sample::new(0, 0.0),
                Sample::new(t1, 0.0),
                Sample::new(t2, 0.0),
            ];
            encode(&samples, &mut out).unwrap();
            hex(&out)
        };
        // dod = +8192 is the top of the 14-bit bucket: 0 | 10 | 10000000000000 | 0.
        assert_eq!(
            chunk(1000, 1000 + 1000 + 8192),
            "0003000000000000000000e807500000"
        );
        // dod = -8192 is not in it (-8191 is the bottom): 0 | 110 | 17 bits of -8192 | 0.
        assert_eq!(
            chunk(10_000, 10_000 + 10_000 - 8192),
            "0003000000000000000000904e6f0000"
        );
    }

    #[test]
    fn every_timestamp_bucket_round_trips() {
        // Deltas of deltas at each bucket's edges, including the asymmetric ends of bitRange.
        let dods: [i64; 14] = [
            0,
            1,
            -1,
            8192,
            -8191,
            8193,
            -8192,
            65536,
            -65535,
            65537,
            524288,
            -524287,
            524289,
            -(1 << 40),
        ];
        let mut t = 1_000_000_000_000i64;
        let mut delta = 10_000_000_000i64;
        let mut samples = vec![Sample::new(t, 0.0)];
        t += delta;
        samples.push(Sample::new(t, 1.0));
        for (i, dod) in dods.iter().enumerate() {
            delta += dod;
            t += delta;
            samples.push(Sample::new(t, i as f64));
        }
        let mut out = Vec::new();
        encode(&samples, &mut out).unwrap();
        let decoded = decode(&out).unwrap();
        assert_eq!(decoded.len(), samples.len());
        for (got, want) in decoded.iter().zip(&samples) {
            assert_eq!(got.timestamp_ms, want.timestamp_ms);
            assert_eq!(got.value.to_bits(), want.value.to_bits());
        }
    }

    #[test]
    fn chunk_sizes_fill_evenly_up_to_the_limit() {
        let sizes = |n| chunk_sizes(n).collect::<Vec<_>>();
        assert_eq!(sizes(0), Vec::<usize>::new());
        assert_eq!(sizes(1), vec![1]);
        assert_eq!(sizes(120), vec![120]);
        assert_eq!(sizes(121), vec![61, 60]);
        assert_eq!(sizes(1440), vec![120; 12]);
        assert_eq!(sizes(1441), [vec![111; 11], vec![110; 2]].concat());
        for n in 0..2000 {
            let s = sizes(n);
            assert_eq!(s.iter().sum::<usize>(), n);
            assert!(s.iter().all(|&c| (1..=MAX_SAMPLES_PER_CHUNK).contains(&c)));
            assert_eq!(s.len(), n.div_ceil(MAX_SAMPLES_PER_CHUNK));
        }
    }

    #[test]
    fn empty_and_oversized_chunks_are_refused() {
        let mut out = Vec::new();
        assert_eq!(encode(&[], &mut out), Err(EncodeError::NoSamples));
        let many = vec![Sample::new(0, 0.0); 70_000];
        assert_eq!(
            encode(&many, &mut out),
            Err(EncodeError::TooManySamples(70_000))
        );
    }

    #[test]
    fn truncated_chunks_fail_to_decode() {
        let mut out = Vec::new();
        let samples: Vec<_> = (0..50)
            .map(|i| Sample::new(i * 60_000, i as f64 * 1.5))
            .collect();
        encode(&samples, &mut out).unwrap();
        assert_eq!(decode(&out[..1]), Err(DecodeError::NoHeader(1)));
        assert!(matches!(
            decode(&out[..out.len() - 3]),
            Err(DecodeError::Truncated { count: 50, .. })
        ));
    }

    fn sorted_timestamps() -> impl Strategy<Value = Vec<i64>> {
        // Start anywhere, then increasing gaps from 1 ms to far beyond the 20-bit bucket.
        (
            -(1i64 << 50)..(1i64 << 50),
            prop::collection::vec(
                prop_oneof![1i64..100, 1i64..70_000, 1i64..1_000_000, 1i64..(1 << 40)],
                0..200,
            ),
        )
            .prop_map(|(start, gaps)| {
                let mut t = start;
                let mut out = vec![t];
                for gap in gaps {
                    t += gap;
                    out.push(t);
                }
                out
            })
    }

    fn any_value() -> impl Strategy<Value = f64> {
        prop_oneof![
            any::<u64>().prop_map(f64::from_bits),
            (0u32..50).prop_map(f64::from),
            Just(f64::from_bits(0x7ff0_0000_0000_0002)),
            Just(f64::NAN),
            Just(f64::INFINITY),
            Just(-0.0),
        ]
    }

    proptest! {
        #[test]
        fn encode_then_decode_is_identity(
            timestamps in sorted_timestamps(),
            values in prop::collection::vec(any_value(), 201),
        ) {
            let samples: Vec<Sample> = timestamps
                .iter()
                .zip(&values)
                .map(|(&t, &v)| Sample::new(t, v))
                .collect();
            let mut out = Vec::new();
            encode(&samples, &mut out).unwrap();
            let decoded = decode(&out).unwrap();
            prop_assert_eq!(decoded.len(), samples.len());
            for (got, want) in decoded.iter().zip(&samples) {
                prop_assert_eq!(got.timestamp_ms, want.timestamp_ms);
                prop_assert_eq!(got.value.to_bits(), want.value.to_bits());
            }
        }
    }
}
