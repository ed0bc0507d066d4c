//! The impressions of which the spill holds a record that the replay has not yet handed to
//! librdkafka: a later click of one of them is spilled behind that record, never produced ahead of
//! it (`crate::spill`, "the order of an impression's records"). A click of any other impression
//! may be produced directly while the spill still holds records, so ingest goes back to Kafka as
//! soon as the broker answers instead of waiting for an empty spill — which, at a rate ingest only
//! just serves, never comes, and then every click is written, fsynced, read back and produced.
//!
//! An impression is known here by [`impression_key`], a 64-bit hash of its id. Two impressions
//! with one key only make a click of the second wait in the spill behind the first's record: a
//! collision costs a replay, never the order.
//!
//! Memory: per spilled record not yet handed over, 8 bytes in its segment's list and, per distinct
//! impression, a hash map entry (16 bytes and a control byte, at a load of 44–88 %): about 30–50
//! bytes per click, so a spill filled to the default 1 GiB (~10 million clicks) holds 300–500 MB
//! here — an estimate from the sizes, not measured.
//!
//! An impression is added when its append is queued to the spill's writer (before the writer
//! takes it, so a click that checks afterwards sees it), filed under the segment its record was
//! written to, and dropped when the replay has handed that whole segment to librdkafka — which
//! from then on keeps the record ahead of every record handed to it later, per partition (the
//! producer is idempotent). An append the writer refuses drops its impression at once.

use std::collections::{BTreeMap, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;

/// The key of an impression id here.
pub fn impression_key(impression_id: &[u8]) -> u64 {
    let mut hasher = DefaultHasher::new();
    impression_id.hash(&mut hasher);
    hasher.finish()
}

/// The impression key of a spilled record's value, a `Click` (`crate::spill::ImpressionOf`). A
/// value that does not decode (none that ingest writes) gets the key of an empty id.
pub fn impression_of_click(value: &[u8]) -> u64 {
    use prost::Message as _;
    let impression_id = adclick_click::wire::Click::decode(value)
        .map(|click| click.impression_id)
        .unwrap_or_default();
    impression_key(&impression_id)
}

/// The impressions with a record in the spill not yet handed to librdkafka; shared by the click
/// path (which asks), the spill's writer and the replay (which add and drop).
#[derive(Debug, Default)]
pub struct Unreplayed {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Records not yet handed over, per impression key.
    records: HashMap<u64, u32>,
    /// The impression keys of each segment's records, until the segment is handed over.
    by_segment: BTreeMap<u64, Vec<u64>>,
}

impl Unreplayed {
    /// Whether a record of `impression` waits in the spill: a click of it must be spilled too.
    pub fn holds(&self, impression: u64) -> bool {
        self.lock().records.contains_key(&impression)
    }

    /// Impressions with a record waiting.
    pub fn len(&self) -> usize {
        self.lock().records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// An append of a record of `impression` is queued.
    pub fn add(&self, impression: u64) {
        *self.lock().records.entry(impression).or_default() += 1;
    }

    /// An added append was refused or failed: its record is not in the spill.
    pub fn forget(&self, impression: u64) {
        forget(&mut self.lock().records, impression);
    }

    /// Added appends were written to `segment`.
    pub fn written(&self, segment: u64, impressions: &[u64]) {
        self.lock().file(segment, impressions);
    }

    /// `segment`, found on disk at start, holds records of `impressions` (added here).
    pub fn recovered(&self, segment: u64, impressions: &[u64]) {
        let mut inner = self.lock();
        for &impression in impressions {
            *inner.records.entry(impression).or_default() += 1;
        }
        inner.file(segment, impressions);
    }

    /// Every record of `segment` is queued in librdkafka (or the segment is gone): its
    /// impressions no longer hold later clicks back. Does nothing the second time.
    pub fn handed_over(&self, segment: u64) {
        let mut inner = self.lock();
        let Inner {
            records,
            by_segment,
        } = &mut *inner;
        for impression in by_segment.remove(&segment).unwrap_or_default() {
            forget(records, impression);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Every update leaves the maps consistent before it can panic, so a poisoned lock still
        // holds a usable state.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Inner {
    /// Files `impressions` under `segment`, to be dropped when it is handed over.
    fn file(&mut self, segment: u64, impressions: &[u64]) {
        self.by_segment
            .entry(segment)
            .or_default()
            .extend_from_slice(impressions);
    }
}

fn forget(records: &mut HashMap<u64, u32>, impression: u64) {
    if let Some(count) = records.get_mut(&impression) {
        *count -= 1;
        if *count == 0 {
            records.remove(&impression);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_impression_is_held_until_every_segment_with_its_records_is_handed_over() {
        let u = Unreplayed::default();
        let (a, b) = (impression_key(b"a"), impression_key(b"b"));
        assert_ne!(a, b);
        u.add(a);
        assert!(u.holds(a), "held from the moment its append is queued");
        assert!(!u.holds(b));
        u.written(1, &[a]);
        u.add(a);
        u.add(b);
        u.written(2, &[a, b]);
        u.handed_over(1);
        assert!(u.holds(a), "its record in segment 2 still waits");
        u.handed_over(2);
        assert!(!u.holds(a) && !u.holds(b));
        u.handed_over(2);
        assert!(u.is_empty());
    }

    #[test]
    fn a_refused_append_holds_nothing_and_recovered_records_are_held() {
        let u = Unreplayed::default();
        let a = impression_key(b"a");
        u.add(a);
        u.forget(a);
        assert!(!u.holds(a));
        u.recovered(7, &[a, a]);
        assert_eq!(u.len(), 1);
        u.handed_over(7);
        assert!(!u.holds(a));
    }
}
