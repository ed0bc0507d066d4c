//! The `Click` record of the clicks topic (generated from `click.proto`) and its Kafka key.

use prost::Message;

mod generated {
    include!(concat!(env!("OUT_DIR"), "/adclick.v1.rs"));
}

pub use generated::{Click, ClickFlag, InvalidReason};

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

    /// What this record counts once per (click.proto's "dedup identity"): the impression id for
    /// the impression's click (valid, or invalid for an activity reason); the impression id XOR
    /// [`request_reason_mask`] for a record invalid for a request reason, which is not the user
    /// clicking and must never hide the impression's click. `None` before [`Click::validate`]
    /// passes. A reason this build does not know reads as valid (prost's getter), as the
    /// contract says.
    pub fn dedup_identity(&self) -> Option<u128> {
        let impression = u128::from_be_bytes(self.impression_key()?);
        let reason = self.invalid_reason();
        Some(if reason.is_request_reason() {
            impression ^ request_reason_mask(reason)
        } else {
            impression
        })
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

impl InvalidReason {
    /// Whether the request alone decided it (`bot_user_agent`, `deny_listed_network`,
    /// `prefetch`): such a record is not the user clicking. The classifier's
    /// `Reason::is_per_request` says the same (a test of `adclick-invalid` holds the two together).
    pub fn is_request_reason(self) -> bool {
        matches!(
            self,
            InvalidReason::BotUserAgent
                | InvalidReason::DenyListedNetwork
                | InvalidReason::Prefetch
        )
    }

    /// The `reason` label of `adclick_invalid_clicks` (the classifier's names); `None` for
    /// [`InvalidReason::Valid`].
    pub fn label(self) -> Option<&'static str> {
        match self {
            InvalidReason::Valid => None,
            InvalidReason::BotUserAgent => Some("bot_user_agent"),
            InvalidReason::DenyListedNetwork => Some("deny_listed_network"),
            InvalidReason::Prefetch => Some("prefetch"),
            InvalidReason::TooFast => Some("too_fast"),
            InvalidReason::UserVelocity => Some("user_velocity"),
            InvalidReason::IpVelocity => Some("ip_velocity"),
        }
    }
}

/// click.proto's mask for a request reason's dedup identity: 16 bytes of `0xA5`, the last one
/// replaced by the reason's code. XOR with a constant keeps random ids random (and distinct), and
/// no two reasons share a mask.
pub fn request_reason_mask(reason: InvalidReason) -> u128 {
    let mut mask = [0xA5u8; IMPRESSION_ID_LEN];
    mask[IMPRESSION_ID_LEN - 1] = reason as i32 as u8;
    u128::from_be_bytes(mask)
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
            invalid_reason: InvalidReason::IpVelocity as i32,
            token_issued_at_secs: 1_794_999_990,
            ip_hash: 0x0123_4567_89ab_cdef,
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
    fn request_reasons_count_apart_from_the_impressions_click() {
        let mut click = full_click();
        let impression = u128::from_be_bytes(click.impression_key().unwrap());
        for (reason, own) in [
            (InvalidReason::Valid, true),
            (InvalidReason::TooFast, true),
            (InvalidReason::UserVelocity, true),
            (InvalidReason::IpVelocity, true),
            (InvalidReason::BotUserAgent, false),
            (InvalidReason::DenyListedNetwork, false),
            (InvalidReason::Prefetch, false),
        ] {
            click.invalid_reason = reason as i32;
            let identity = click.dedup_identity().unwrap();
            assert_eq!(identity == impression, own, "{reason:?}");
            assert_eq!(reason.is_request_reason(), !own);
        }
        // click.proto's worked example: prefetch (3) XORs A5 A5 ... A5 03.
        click.impression_id = vec![0; 16];
        click.invalid_reason = InvalidReason::Prefetch as i32;
        let mut expected = [0xA5u8; 16];
        expected[15] = 3;
        assert_eq!(click.dedup_identity(), Some(u128::from_be_bytes(expected)));
        // A newer writer's reason reads as valid: the impression's click.
        click.invalid_reason = 99;
        assert_eq!(click.dedup_identity(), Some(0));
        assert_eq!(click.invalid_reason(), InvalidReason::Valid);
        click.impression_id.pop();
        assert_eq!(click.dedup_identity(), None);
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
