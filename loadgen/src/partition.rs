//! Which partition of the clicks topic a click lands on, as ingest's and loadgen's producers
//! choose it: librdkafka's `murmur2_random` partitioner, which is Java Kafka's default for keyed
//! records — `(murmur2(key bytes) & 0x7fffffff) % partition_count` — over click.proto's key (the
//! ad id, or `"<ad_id>:<salt>"` for a hot ad, salt = `u32_le(impression_id[0..4]) % N`).
//!
//! The ground truth needs it for what the stream counts per partition: a hot ad's unique users
//! (`adclick_unique_users{partition}`) and a campaign's `other` series, folded per partition.

use std::collections::HashMap;

use adclick_click::wire::{kafka_key, salt};

/// The seed of Kafka's murmur2 (`Utils.murmur2`).
const SEED: u32 = 0x9747_b28c;
const M: u32 = 0x5bd1_e995;
const R: u32 = 24;

/// Java Kafka's `Utils.murmur2` of `data` (MurmurHash2, 32-bit, seed `0x9747b28c`; 4-byte chunks
/// read little-endian), as the signed int Java returns.
pub fn murmur2(data: &[u8]) -> i32 {
    let mut h = SEED ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        // Java's switch falls through: byte 2, then 1, then 0, then one multiplication.
        for (i, byte) in tail.iter().enumerate().rev() {
            h ^= u32::from(*byte) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition of a record keyed `key` in a topic of `partitions` partitions (at least 1):
/// Kafka's `toPositive(murmur2(key)) % partitions`, librdkafka's `murmur2_random` for a key.
pub fn partition_of(key: &[u8], partitions: u32) -> u32 {
    (murmur2(key) as u32 & 0x7fff_ffff) % partitions.max(1)
}

/// How the clicks topic is laid out: its partition count and the hot ads whose clicks spread over
/// salted keys (ad id → N, ingest's `[ingest] hot_ads`, loadgen's `--hot-salt-shards` for the
/// Kafka target).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partitioning {
    pub partitions: u32,
    pub hot_salts: HashMap<u64, u32>,
}

impl Partitioning {
    /// The partition of a click on `ad_id` of impression `impression_id`.
    pub fn partition(&self, ad_id: u64, impression_id: &[u8]) -> u32 {
        let salt = self
            .hot_salts
            .get(&ad_id)
            .map(|shards| salt(impression_id, *shards));
        partition_of(kafka_key(ad_id, salt).as_bytes(), self.partitions)
    }

    /// Whether `ad_id` is salted (its clicks may span partitions).
    pub fn is_hot(&self, ad_id: u64) -> bool {
        self.hot_salts.contains_key(&ad_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vectors of Kafka's `UtilsTest.testMurmur2` (clients/src/test/java/org/apache/kafka/
    /// common/utils/UtilsTest.java).
    #[test]
    fn murmur2_matches_kafkas_utils_test() {
        for (data, want) in [
            (&b"21"[..], -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ] {
            assert_eq!(murmur2(data), want, "{}", String::from_utf8_lossy(data));
        }
    }

    #[test]
    fn partitions_are_the_positive_hash_modulo_the_count() {
        // "foobar": -790332482 & 0x7fffffff = 1357151166; % 50 = 16, % 7 = 4.
        assert_eq!(partition_of(b"foobar", 50), 16);
        assert_eq!(partition_of(b"foobar", 7), 1_357_151_166 % 7);
        assert_eq!(partition_of(b"abc", 1), 0);
        assert_eq!(partition_of(b"abc", 0), 0, "a count of 0 is taken as 1");
    }

    #[test]
    fn a_hot_ads_clicks_spread_by_impression_and_other_ads_stay_put() {
        let layout = Partitioning {
            partitions: 12,
            hot_salts: [(7, 4)].into_iter().collect(),
        };
        let ids: Vec<[u8; 16]> = (0u32..200)
            .map(|i| {
                let mut id = [0u8; 16];
                id[..4].copy_from_slice(&i.wrapping_mul(2_654_435_761).to_le_bytes());
                id
            })
            .collect();
        let hot: std::collections::BTreeSet<u32> =
            ids.iter().map(|id| layout.partition(7, id)).collect();
        let cold: std::collections::BTreeSet<u32> =
            ids.iter().map(|id| layout.partition(8, id)).collect();
        assert!(hot.len() > 1 && hot.len() <= 4, "{hot:?}");
        assert_eq!(cold.len(), 1);
        assert_eq!(cold.first(), Some(&partition_of(b"8", 12)));
        // Impression 07 00 00 00 …: salt 3 of 4 (click.proto's example), key "7:3".
        let mut id = [0u8; 16];
        id[0] = 7;
        assert_eq!(layout.partition(7, &id), partition_of(b"7:3", 12));
        assert!(layout.is_hot(7) && !layout.is_hot(8));
    }
}
