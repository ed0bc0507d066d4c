//! The byte-level reading and writing of the token format: bounds-checked reads, and the
//! minimal LEB128 varints the format's numbers are written in.

use super::{MAX_VARINT_LEN, Malformed};

/// Appends `value` as an unsigned LEB128 varint.
pub(super) fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Reads the binary token front to back; every read is bounds-checked.
pub(super) struct Reader<'a> {
    pub(super) rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(super) fn byte(&mut self, field: &'static str) -> Result<u8, Malformed> {
        let (&first, rest) = self.rest.split_first().ok_or(Malformed::Truncated(field))?;
        self.rest = rest;
        Ok(first)
    }

    pub(super) fn take(&mut self, len: usize, field: &'static str) -> Result<&'a [u8], Malformed> {
        if self.rest.len() < len {
            return Err(Malformed::Truncated(field));
        }
        let (taken, rest) = self.rest.split_at(len);
        self.rest = rest;
        Ok(taken)
    }

    /// A minimal LEB128 varint of at most 64 bits.
    pub(super) fn varint(&mut self, field: &'static str) -> Result<u64, Malformed> {
        let mut value = 0u64;
        for group in 0..MAX_VARINT_LEN {
            let byte = self.byte(field)?;
            // The tenth group holds only bit 63: anything more overflows a u64.
            if group == MAX_VARINT_LEN - 1 && byte > 1 {
                return Err(Malformed::BadVarint(field));
            }
            value |= u64::from(byte & 0x7f) << (7 * group);
            if byte & 0x80 == 0 {
                // A zero last group after the first adds nothing: a longer spelling of a shorter
                // varint, refused so every value has one encoding.
                if byte == 0 && group > 0 {
                    return Err(Malformed::BadVarint(field));
                }
                return Ok(value);
            }
        }
        Err(Malformed::BadVarint(field))
    }
}
