//! The strings ingest builds for every click — Redis keys, the visitor cookie — written straight
//! into one buffer instead of through `format!`, whose formatting machinery cost about as much as
//! the rest of building them (`BENCHMARKS.md`, "instructions and allocations per click").

/// Appends `bytes` as lowercase hex digits, two per byte (what `hex::encode` and `{:02x}` give).
pub fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.reserve(2 * bytes.len());
    for &byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
}

/// Appends `n` in decimal (what `{n}` gives).
pub fn push_decimal(out: &mut String, n: i64) {
    out.push_str(itoa::Buffer::new().format(n));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_decimal_are_what_format_writes() {
        for bytes in [&[][..], &[0], &[0xab, 0x01, 0xff], &[0x12; 16]] {
            let mut out = String::from("p:");
            push_hex(&mut out, bytes);
            assert_eq!(out, format!("p:{}", hex::encode(bytes)));
        }
        for n in [0, 7, -1, 1_764_000_000_000, i64::MIN, i64::MAX] {
            let mut out = String::new();
            push_decimal(&mut out, n);
            assert_eq!(out, n.to_string());
        }
        let mut out = String::new();
        push_hex(&mut out, &u64::MAX.wrapping_sub(0xfe).to_be_bytes());
        assert_eq!(out, format!("{:016x}", u64::MAX.wrapping_sub(0xfe)));
    }
}
