//! Streams of bits, most significant bit first, as Prometheus' `tsdb/chunkenc/bstream.go` lays
//! them out: the XOR chunk encoding is a sequence of fields of 1 to 64 bits with no byte
//! alignment, and the final byte is padded with zero bits.

/// Appends bit fields to a byte vector.
///
/// Bits gather in a 64-bit word and reach the vector eight bytes at a time: writing one field
/// costs a shift and an or instead of the bit-by-bit loop of the Go original, for the same bytes.
#[derive(Debug)]
pub(crate) struct BitWriter<'a> {
    bytes: &'a mut Vec<u8>,
    /// Bits written but not yet in `bytes`, right-aligned (the oldest bit is the highest).
    pending: u64,
    /// How many low bits of `pending` are in use; always below 64 between calls.
    pending_bits: u32,
}

impl<'a> BitWriter<'a> {
    /// A writer that appends after whatever `bytes` already holds (e.g. a chunk header).
    pub(crate) fn new(bytes: &'a mut Vec<u8>) -> BitWriter<'a> {
        BitWriter {
            bytes,
            pending: 0,
            pending_bits: 0,
        }
    }

    /// Writes the `nbits` (0 to 64) lowest bits of `value`, highest of them first.
    #[inline]
    pub(crate) fn write_bits(&mut self, value: u64, nbits: u32) {
        debug_assert!(nbits <= 64);
        if nbits == 0 {
            return;
        }
        let value = if nbits == 64 {
            value
        } else {
            value & ((1u64 << nbits) - 1)
        };
        let free = 64 - self.pending_bits;
        if nbits < free {
            self.pending = (self.pending << nbits) | value;
            self.pending_bits += nbits;
            return;
        }
        // The field completes the word: the part that fits goes out now, the rest stays pending.
        let spill = nbits - free;
        let head = if spill == 0 { value } else { value >> spill };
        let word = if free == 64 {
            head
        } else {
            (self.pending << free) | head
        };
        self.bytes.extend_from_slice(&word.to_be_bytes());
        self.pending = if spill == 0 {
            0
        } else {
            value & ((1u64 << spill) - 1)
        };
        self.pending_bits = spill;
    }

    #[inline]
    pub(crate) fn write_bit(&mut self, bit: bool) {
        self.write_bits(u64::from(bit), 1);
    }

    /// Writes the pending bits, the last byte padded with zero bits.
    pub(crate) fn finish(self) {
        let full_bytes = self.pending_bits / 8;
        let rest_bits = self.pending_bits % 8;
        for i in (0..full_bytes).rev() {
            self.bytes.push((self.pending >> (rest_bits + 8 * i)) as u8);
        }
        if rest_bits > 0 {
            self.bytes.push((self.pending << (8 - rest_bits)) as u8);
        }
    }
}

/// Reads bit fields back, for the decoder.
#[derive(Debug)]
pub(crate) struct BitReader<'a> {
    bytes: &'a [u8],
    /// Index of the next bit to read, counted from the most significant bit of `bytes[0]`.
    position: usize,
}

/// The stream ended before the field that was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EndOfStream;

impl<'a> BitReader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> BitReader<'a> {
        BitReader { bytes, position: 0 }
    }

    pub(crate) fn read_bit(&mut self) -> Result<bool, EndOfStream> {
        let byte = *self.bytes.get(self.position / 8).ok_or(EndOfStream)?;
        let bit = (byte >> (7 - self.position % 8)) & 1;
        self.position += 1;
        Ok(bit == 1)
    }

    /// Reads `nbits` (0 to 64) bits as the low bits of the result.
    pub(crate) fn read_bits(&mut self, nbits: u32) -> Result<u64, EndOfStream> {
        debug_assert!(nbits <= 64);
        if self.position + nbits as usize > self.bytes.len() * 8 {
            return Err(EndOfStream);
        }
        let mut value = 0u64;
        for _ in 0..nbits {
            value = (value << 1) | u64::from(self.read_bit()?);
        }
        Ok(value)
    }

    pub(crate) fn read_byte(&mut self) -> Result<u8, EndOfStream> {
        Ok(self.read_bits(8)? as u8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference: Go's bstream writes one bit at a time into the last byte.
    fn bit_by_bit(fields: &[(u64, u32)]) -> Vec<u8> {
        let mut bytes = Vec::new();
        let mut free_in_last = 0u32;
        for &(value, nbits) in fields {
            for i in (0..nbits).rev() {
                if free_in_last == 0 {
                    bytes.push(0);
                    free_in_last = 8;
                }
                if (value >> i) & 1 == 1 {
                    *bytes.last_mut().unwrap() |= 1 << (free_in_last - 1);
                }
                free_in_last -= 1;
            }
        }
        bytes
    }

    #[test]
    fn fields_of_every_width_pack_like_go_bstream() {
        let mut fields = Vec::new();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for round in 0..400u32 {
            x = x.rotate_left(17).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            fields.push((x, round % 65));
        }
        let mut bytes = vec![0xAB, 0xCD];
        let mut writer = BitWriter::new(&mut bytes);
        for &(value, nbits) in &fields {
            writer.write_bits(value, nbits);
        }
        writer.finish();
        let mut want = vec![0xAB, 0xCD];
        want.extend(bit_by_bit(&fields));
        assert_eq!(bytes, want);

        let mut reader = BitReader::new(&bytes[2..]);
        for &(value, nbits) in &fields {
            let mask = if nbits == 64 {
                u64::MAX
            } else {
                (1u64 << nbits) - 1
            };
            assert_eq!(reader.read_bits(nbits), Ok(value & mask));
        }
    }

    #[test]
    fn reading_past_the_end_fails() {
        let mut reader = BitReader::new(&[0xff]);
        assert_eq!(reader.read_bits(7), Ok(0x7f));
        assert_eq!(reader.read_bits(2), Err(EndOfStream));
        assert_eq!(reader.read_bit(), Ok(true));
        assert_eq!(reader.read_bit(), Err(EndOfStream));
    }
}
