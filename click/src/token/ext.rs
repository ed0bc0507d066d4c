//! Version 2's extension field (field 12 of the format): a presence byte, then the user hash and
//! the price it says are present. Written and read here; what it means is the module doc's.

use super::bytes::{Reader, put_varint};
use super::{MAX_VARINT_LEN, Malformed};

/// Presence bit 0: an 8-byte big-endian user hash follows.
pub(super) const USER_HASH_PRESENT: u8 = 0b0000_0001;
/// Presence bit 1: a varint price in micro-units follows (after the user hash, if any).
pub(super) const PRICE_PRESENT: u8 = 0b0000_0010;
/// Every bit version 2 defines; any other is refused.
const KNOWN: u8 = USER_HASH_PRESENT | PRICE_PRESENT;

/// Length of the user hash: a `u64`.
pub const USER_HASH_LEN: usize = 8;
/// Longest extension: presence byte, user hash, ten-byte price.
pub const MAX_EXTENSION_BYTES: usize = 1 + USER_HASH_LEN + MAX_VARINT_LEN;

/// The claims version 2 adds, each optional.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Extension {
    pub(super) user_hash: Option<u64>,
    pub(super) price_micros: Option<u64>,
}

impl Extension {
    /// Appends field 12 (only for version 2, i.e. when not empty: an empty extension is refused
    /// on reading).
    pub(super) fn put(&self, out: &mut Vec<u8>) {
        let presence = self.user_hash.map_or(0, |_| USER_HASH_PRESENT)
            | self.price_micros.map_or(0, |_| PRICE_PRESENT);
        out.push(presence);
        if let Some(user_hash) = self.user_hash {
            out.extend_from_slice(&user_hash.to_be_bytes());
        }
        if let Some(price_micros) = self.price_micros {
            put_varint(out, price_micros);
        }
    }

    /// Reads field 12. The caller then checks that nothing but the tag follows.
    pub(super) fn read(reader: &mut Reader<'_>) -> Result<Extension, Malformed> {
        let presence = reader.byte("extension presence byte")?;
        // Refused rather than skipped: a later version may put a field behind a new bit, and a
        // reader that ignored the bit would take that field's bytes for the next known one (or
        // for trailing garbage), or count a click whose meaning it cannot see.
        if presence & !KNOWN != 0 {
            return Err(Malformed::UnknownExtension(presence));
        }
        // One spelling per claims: claims without user hash and price are version 1.
        if presence == 0 {
            return Err(Malformed::EmptyExtension);
        }
        let user_hash = if presence & USER_HASH_PRESENT != 0 {
            let bytes: [u8; USER_HASH_LEN] = reader
                .take(USER_HASH_LEN, "user hash")?
                .try_into()
                .map_err(|_| Malformed::Truncated("user hash"))?;
            let user_hash = u64::from_be_bytes(bytes);
            // 0 is click.proto's "unknown": a token that knows nothing leaves the hash out.
            if user_hash == 0 {
                return Err(Malformed::ZeroId("user hash"));
            }
            Some(user_hash)
        } else {
            None
        };
        let price_micros = if presence & PRICE_PRESENT != 0 {
            Some(reader.varint("price")?)
        } else {
            None
        };
        Ok(Extension {
            user_hash,
            price_micros,
        })
    }
}
