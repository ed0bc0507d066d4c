//! The byte-level encodings every file of a block is built from, bit-compatible with Go's
//! `encoding/binary` (varints, big-endian integers) and `hash/crc32` with the Castagnoli table.
//!
//! Prometheus reads the block with `tsdb/encoding/encoding.go`; the writers here mirror its
//! `Encbuf` so that the same value always produces the same bytes.

/// Appends `x` as Go's `binary.PutUvarint` does: 7 bits per byte, low group first, high bit set
/// on every byte but the last.
pub(crate) fn put_uvarint(out: &mut Vec<u8>, mut x: u64) {
    while x >= 0x80 {
        out.push((x as u8) | 0x80);
        x >>= 7;
    }
    out.push(x as u8);
}

/// Appends `x` as Go's `binary.PutVarint` does: zig-zag (`0, -1, 1, -2, …` → `0, 1, 2, 3, …`),
/// then uvarint.
pub(crate) fn put_varint(out: &mut Vec<u8>, x: i64) {
    put_uvarint(out, zigzag(x));
}

/// The zig-zag mapping of Go's `PutVarint`, so that small negative numbers stay short.
pub(crate) fn zigzag(x: i64) -> u64 {
    ((x << 1) ^ (x >> 63)) as u64
}

/// Appends a string as the index format stores one: its byte length as uvarint, then the bytes.
pub(crate) fn put_uvarint_str(out: &mut Vec<u8>, s: &str) {
    put_uvarint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

pub(crate) fn put_be32(out: &mut Vec<u8>, x: u32) {
    out.extend_from_slice(&x.to_be_bytes());
}

pub(crate) fn put_be64(out: &mut Vec<u8>, x: u64) {
    out.extend_from_slice(&x.to_be_bytes());
}

/// CRC32 with the Castagnoli polynomial (CRC-32C), the checksum of every index section and chunk.
pub(crate) fn crc32c(bytes: &[u8]) -> u32 {
    crc32c::crc32c(bytes)
}

/// Reads a uvarint from the front of `bytes`: the value and how many bytes it took, or `None`
/// when the bytes end first or the value overflows 64 bits. (The tests' reader of what the
/// writers wrote.)
#[cfg(test)]
pub(crate) fn read_uvarint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, &byte) in bytes.iter().enumerate().take(10) {
        let group = u64::from(byte & 0x7f);
        if i == 9 && byte > 1 {
            return None;
        }
        value |= group << (7 * i);
        if byte < 0x80 {
            return Some((value, i + 1));
        }
    }
    None
}

/// Reads a zig-zag varint from the front of `bytes`, as Go's `binary.Varint`.
#[cfg(test)]
pub(crate) fn read_varint(bytes: &[u8]) -> Option<(i64, usize)> {
    let (unsigned, len) = read_uvarint(bytes)?;
    let value = ((unsigned >> 1) as i64) ^ -((unsigned & 1) as i64);
    Some((value, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uvarint_matches_go_examples() {
        // Go: binary.PutUvarint(buf, x) for these values (encoding/binary example_test.go).
        let cases: [(u64, &[u8]); 6] = [
            (1, &[0x01]),
            (2, &[0x02]),
            (127, &[0x7f]),
            (128, &[0x80, 0x01]),
            (255, &[0xff, 0x01]),
            (256, &[0x80, 0x02]),
        ];
        for (x, want) in cases {
            let mut out = Vec::new();
            put_uvarint(&mut out, x);
            assert_eq!(out, want, "uvarint({x})");
            assert_eq!(read_uvarint(&out), Some((x, want.len())));
        }
    }

    #[test]
    fn varint_matches_go_examples() {
        // Go: binary.PutVarint for these values (encoding/binary example_test.go).
        let cases: [(i64, &[u8]); 7] = [
            (-129, &[0x81, 0x02]),
            (-128, &[0xff, 0x01]),
            (-127, &[0xfd, 0x01]),
            (-1, &[0x01]),
            (0, &[0x00]),
            (1, &[0x02]),
            (128, &[0x80, 0x02]),
        ];
        for (x, want) in cases {
            let mut out = Vec::new();
            put_varint(&mut out, x);
            assert_eq!(out, want, "varint({x})");
            assert_eq!(read_varint(&out), Some((x, want.len())));
        }
    }

    #[test]
    fn extreme_varints_round_trip() {
        for x in [i64::MIN, i64::MAX, i64::MIN + 1, -1, 0] {
            let mut out = Vec::new();
            put_varint(&mut out, x);
            assert_eq!(read_varint(&out), Some((x, out.len())));
        }
        let mut out = Vec::new();
        put_uvarint(&mut out, u64::MAX);
        assert_eq!(out.len(), 10);
        assert_eq!(read_uvarint(&out), Some((u64::MAX, 10)));
        assert_eq!(
            read_uvarint(&out[..9]),
            None,
            "a truncated varint is not a value"
        );
    }

    #[test]
    fn crc32c_is_castagnoli() {
        // The standard check value of CRC-32C over "123456789".
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
    }
}
