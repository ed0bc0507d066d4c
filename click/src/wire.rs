//! The `Click` record of the clicks topic (generated from `click.proto`) and its Kafka key.

use prost::Message;

mod generated {
    include!(concat!(env!("OUT_DIR"), "/adclick.v1.rs"));
}

pub use generated::{Click, ClickFlag};

/// An ad and the campaign and advertiser it belongs to: what an ad's series are named by, in
/// the exporter's windows and the rollup's day alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AdKey {
    pub advertiser_id: u64,
    pub campaign_id: u64,
    pub ad_id: u64,
}

impl AdKey {
    pub fn of(click: &Click) -> AdKey {
        AdKey {
            advertiser_id: click.advertiser_id,
            campaign_id: click.campaign_id,
            ad_id: click.ad_id,
        }
    }
}

/// Length of an impression id in bytes (128 bits).
pub const IMPRESSION_ID_LEN: usize = 16;

/// Why a record on the clicks topic is not a countable click.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvalidClick {
    /// The value is not a protobuf `Click`.
    Undecodable(String),
    /// The impression id is not exactly 16 bytes.
    ImpressionIdLength(usize),
    /// An id that must be non-zero is zero.
    ZeroId(&'static str),
}

impl std::fmt::Display for InvalidClick {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Undecodable(e) => write!(f, "not a protobuf Click: {e}"),
            Self::ImpressionIdLength(n) => {
                write!(
                    f,
                    "impression id has {n} bytes, expected {IMPRESSION_ID_LEN}"
                )
            }
            Self::ZeroId(field) => write!(f, "{field} is zero"),
        }
    }
}

impl std::error::Error for InvalidClick {}

impl Click {
    /// Decodes a record value and checks the contract's invariants.
    pub fn decode_valid(value: &[u8]) -> Result<Click, InvalidClick> {
        let click = Click::decode(value).map_err(|e| InvalidClick::Undecodable(e.to_string()))?;
        click.validate()?;
        Ok(click)
    }

    /// Checks what the proto comments promise about a click.
    pub fn validate(&self) -> Result<(), InvalidClick> {
        if self.impression_id.len() != IMPRESSION_ID_LEN {
            return Err(InvalidClick::ImpressionIdLength(self.impression_id.len()));
        }
        for (field, id) in [
            ("ad_id", self.ad_id),
            ("campaign_id", self.campaign_id),
            ("advertiser_id", self.advertiser_id),
        ] {
            if id == 0 {
                return Err(InvalidClick::ZeroId(field));
            }
        }
        Ok(())
    }

    /// The impression id as a fixed array (call after [`Click::validate`]).
    pub fn impression_key(&self) -> Option<[u8; IMPRESSION_ID_LEN]> {
        self.impression_id.as_slice().try_into().ok()
    }

    /// Whether `flag` is set.
    pub fn has_flag(&self, flag: ClickFlag) -> bool {
        self.flags & flag as u32 != 0
    }

    /// Sets `flag`.
    pub fn set_flag(&mut self, flag: ClickFlag) {
        self.flags |= flag as u32;
    }

    /// The Kafka key of this click: the ad id, salted with `salt` for hot ads.
    pub fn kafka_key(&self, salt: Option<u32>) -> String {
        kafka_key(self.ad_id, salt)
    }
}

/// The Kafka message key for `ad_id`: `"981234"`, or `"981234:3"` with a salt.
pub fn kafka_key(ad_id: u64, salt: Option<u32>) -> String {
    match salt {
        None => ad_id.to_string(),
        Some(s) => format!("{ad_id}:{s}"),
    }
}

/// The salt of a hot ad's click, in `0..shards`: click.proto's rule, `u32_little_endian(
/// impression_id[0..4]) mod N`. Derived from the impression id, so every record of one impression
/// carries the same key and lands on the same partition, where the exporter can still drop
/// repeats.
pub fn salt(impression_id: &[u8], shards: u32) -> u32 {
    let mut first = [0u8; 4];
    let n = impression_id.len().min(4);
    first[..n].copy_from_slice(&impression_id[..n]);
    u32::from_le_bytes(first) % shards.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full_click() -> Click {
        let mut c = Click {
            impression_id: (1..=16).collect(),
            ad_id: u64::MAX,
            campaign_id: 7,
            advertiser_id: 3,
            event_time_ms: 1_795_000_000_123,
            receive_time_ms: 1_795_000_000_456,
            user_hash: 0xdead_beef_cafe_f00d,
            flags: 0,
            price_micros: 2_500_000,
        };
        c.set_flag(ClickFlag::DedupUnchecked);
        c.set_flag(ClickFlag::Replayed);
        c.set_flag(ClickFlag::Synthetic);
        c
    }

    #[test]
    fn fully_filled_click_round_trips() {
        let click = full_click();
        let bytes = click.encode_to_vec();
        let back = Click::decode_valid(&bytes).unwrap();
        assert_eq!(back, click);
        assert!(back.has_flag(ClickFlag::DedupUnchecked));
        assert!(back.has_flag(ClickFlag::Replayed));
        assert!(back.has_flag(ClickFlag::Synthetic));
        assert_eq!(back.flags, 7);
    }

    #[test]
    fn invalid_records_are_named() {
        assert!(matches!(
            Click::decode_valid(&[0xff, 0xff]),
            Err(InvalidClick::Undecodable(_))
        ));
        let mut c = full_click();
        c.impression_id.pop();
        assert_eq!(c.validate(), Err(InvalidClick::ImpressionIdLength(15)));
        let mut c = full_click();
        c.campaign_id = 0;
        assert_eq!(c.validate(), Err(InvalidClick::ZeroId("campaign_id")));
    }

    #[test]
    fn keys() {
        assert_eq!(kafka_key(981234, None), "981234");
        assert_eq!(kafka_key(981234, Some(3)), "981234:3");
    }

    #[test]
    fn salts_spread_and_stay_put() {
        let salts: std::collections::BTreeSet<u32> = (0u32..1000)
            .map(|i| salt(&i.wrapping_mul(2654435761).to_le_bytes(), 4))
            .collect();
        assert_eq!(salts.into_iter().collect::<Vec<_>>(), vec![0, 1, 2, 3]);
        let id = [9u8; 16];
        assert_eq!(salt(&id, 4), salt(&id, 4));
        assert_eq!(salt(&id, 0), 0);
    }

    #[test]
    fn salt_follows_the_contracts_worked_examples() {
        // click.proto: id 07 00 00 00 ... with N = 4 gives salt 3.
        let mut id = [0u8; 16];
        id[0] = 7;
        assert_eq!(salt(&id, 4), 3);
        // 01 02 03 04 ... reads 0x04030201 = 67305985; mod 10 = 5.
        id[..4].copy_from_slice(&[1, 2, 3, 4]);
        assert_eq!(salt(&id, 10), 5);
        assert_eq!(kafka_key(981234, Some(salt(&id, 10))), "981234:5");
    }
}
