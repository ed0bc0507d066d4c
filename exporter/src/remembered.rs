//! The impression ids a partition remembers over its dedup horizon, so that a repeat is dropped
//! whichever minute it falls in — a pure function of the partition's log, rebuilt exactly after a
//! restart by re-reading the records since the oldest id still remembered.
//!
//! ## The rule
//!
//! Ids are kept in *generations* of `generation_ms` of event time. A record read while the
//! partition's highest event time (its own included) is `h` belongs to generation
//! `h.div_euclid(generation_ms)`. A click whose impression id is in any remembered generation is
//! a repeat; every click's id (repeats too) is remembered in the current generation, so an
//! impression stays remembered for the horizon after the *last* record that carried it. A
//! generation is forgotten once the current one is more than `horizon_ms / generation_ms`
//! generations ahead of it: an id is remembered for at least `horizon_ms` and at most
//! `horizon_ms + generation_ms` of event time after its record was read.
//!
//! Memory is bounded by `max_remembered` ids per partition: the open generation is sealed early
//! when it holds `max_remembered / (generations kept + 1)` ids, and the oldest sealed generations
//! are forgotten while the partition holds more than `max_remembered` (the horizon then shrinks,
//! `adclick_exporter_dedup_evictions_total{reason="capacity"}` says so). Both are functions of the
//! log too.
//!
//! ## Rebuilding after a restart
//!
//! Everything the partition remembers before record `o` came from the records since the first
//! record of its oldest generation remembered at `o` ([`Remembered::rebuild_start`]). Reading
//! from there with the same rule rebuilds the same generations: the oldest ones the first pass
//! had besides are forgotten by `o` anyway, and a click that was a repeat of one of them was
//! remembered all the same (every click's id is). The checkpoint therefore commits that record's
//! offset and says where counting resumes; the records in between only warm the set up.
//!
//! ## Memory
//!
//! The open generation is a hash set (17 B a slot); a sealed one is a sorted array of the 16-byte
//! ids with a radix index on their top bits (≤ 0.5 B per id), searched in one or two cache lines,
//! behind a blocked Bloom filter (1 B per id, one 64-bit word per look-up, ~4 % false positives):
//! most clicks are new, so most look-ups of a sealed generation cost one cache miss. Impression ids
//! are random (click.proto), so the index spreads them evenly; ids that are not still work, with
//! a longer binary search and more false positives.

use std::collections::VecDeque;

use crate::window::FastSet;

/// The horizon rule's knobs (`[exporter] dedup_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Horizon {
    /// Event time an impression id is remembered for at least, ms.
    pub horizon_ms: i64,
    /// Event time one generation spans, ms; ids are remembered for at most
    /// `horizon_ms + generation_ms`.
    pub generation_ms: i64,
    /// Ids one partition remembers at most.
    pub max_remembered: usize,
}

impl Horizon {
    /// Generations kept behind the current one.
    fn behind(&self) -> i64 {
        (self.horizon_ms + self.generation_ms - 1).div_euclid(self.generation_ms.max(1))
    }

    /// Ids the open generation holds before it is sealed early.
    fn generation_limit(&self) -> usize {
        (self.max_remembered / (self.behind() as usize + 1)).max(1)
    }
}

/// Where a generation's first record is in the log, and the partition's highest event time
/// before it: a replay reading from there rebuilds the generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Start {
    pub offset: i64,
    pub max_event_before: Option<i64>,
}

/// Why ids were forgotten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eviction {
    /// Past the horizon.
    Horizon,
    /// The partition held more than `max_remembered`.
    Capacity,
}

/// Whether a click's impression was remembered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    New,
    Repeat,
}

#[derive(Debug)]
struct Open {
    generation: i64,
    start: Start,
    ids: FastSet<u128>,
}

#[derive(Debug)]
struct Sealed {
    generation: i64,
    start: Start,
    ids: SortedIds,
}

/// One partition's remembered impression ids.
#[derive(Debug)]
pub struct Remembered {
    horizon: Horizon,
    open: Option<Open>,
    /// Oldest first.
    sealed: VecDeque<Sealed>,
    sealed_ids: usize,
    /// Generations forgotten, with the offset of the record that made them forgotten, kept until
    /// no checkpoint can need them ([`Remembered::forget_history_before`]).
    forgotten: VecDeque<(Start, i64)>,
    evictions: Vec<(Eviction, usize)>,
}

impl Remembered {
    pub fn new(horizon: Horizon) -> Remembered {
        Remembered {
            horizon,
            open: None,
            sealed: VecDeque::new(),
            sealed_ids: 0,
            forgotten: VecDeque::new(),
            evictions: vec![],
        }
    }

    /// Event time moved to `high` at record `offset` (a click or a tick): seals the open
    /// generation if `high` is past it and forgets what fell behind the horizon.
    pub fn advance(&mut self, offset: i64, high: i64) {
        let current = high.div_euclid(self.horizon.generation_ms.max(1));
        if self.open.as_ref().is_some_and(|o| o.generation < current) {
            self.seal();
        }
        let oldest_kept = current - self.horizon.behind();
        while self
            .sealed
            .front()
            .is_some_and(|g| g.generation < oldest_kept)
        {
            self.forget_oldest(offset, Eviction::Horizon);
        }
    }

    /// Checks a click's impression id and remembers it. `high`: the partition's highest event
    /// time with this click; `max_event_before`: without it.
    pub fn check(
        &mut self,
        offset: i64,
        max_event_before: Option<i64>,
        high: i64,
        id: u128,
    ) -> Seen {
        self.advance(offset, high);
        if self.open.as_ref().is_some_and(|o| o.ids.contains(&id)) {
            return Seen::Repeat;
        }
        let seen = if self.sealed.iter().rev().any(|g| g.ids.contains(id)) {
            Seen::Repeat
        } else {
            Seen::New
        };
        let generation = high.div_euclid(self.horizon.generation_ms.max(1));
        let open = self.open.get_or_insert_with(|| Open {
            generation,
            start: Start {
                offset,
                max_event_before,
            },
            ids: FastSet::default(),
        });
        open.ids.insert(id);
        if open.ids.len() >= self.horizon.generation_limit() {
            self.seal();
        }
        while self.sealed_ids + self.open_len() > self.horizon.max_remembered
            && !self.sealed.is_empty()
        {
            self.forget_oldest(offset, Eviction::Capacity);
        }
        seen
    }

    /// The start of the oldest generation remembered just before record `offset` was read: a
    /// replay that must decide from `offset` on as the first pass did reads from there. None
    /// when nothing was remembered then.
    pub fn rebuild_start(&self, offset: i64) -> Option<Start> {
        let forgotten_later = self
            .forgotten
            .iter()
            .filter(|(start, at)| *at >= offset && start.offset < offset)
            .map(|(start, _)| *start);
        let kept = self
            .sealed
            .iter()
            .map(|g| g.start)
            .chain(self.open.as_ref().map(|o| o.start))
            .filter(|start| start.offset < offset);
        forgotten_later.chain(kept).min_by_key(|s| s.offset)
    }

    /// Drops the history of forgotten generations that no checkpoint at or after `offset` needs.
    pub fn forget_history_before(&mut self, offset: i64) {
        self.forgotten.retain(|(_, at)| *at >= offset);
    }

    /// Ids remembered (an id refreshed into a newer generation counts once per generation).
    pub fn len(&self) -> usize {
        self.sealed_ids + self.open_len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Heap bytes held by the remembered ids.
    pub fn heap_bytes(&self) -> usize {
        let open = self.open.as_ref().map_or(0, |o| hash_set_bytes(&o.ids));
        open + self
            .sealed
            .iter()
            .map(|g| g.ids.heap_bytes())
            .sum::<usize>()
    }

    /// Forgetting since the last call, by reason, in ids.
    pub fn take_evictions(&mut self) -> Vec<(Eviction, usize)> {
        std::mem::take(&mut self.evictions)
    }

    fn open_len(&self) -> usize {
        self.open.as_ref().map_or(0, |o| o.ids.len())
    }

    fn seal(&mut self) {
        if let Some(open) = self.open.take() {
            let ids = SortedIds::from_set(open.ids);
            self.sealed_ids += ids.len();
            self.sealed.push_back(Sealed {
                generation: open.generation,
                start: open.start,
                ids,
            });
        }
    }

    fn forget_oldest(&mut self, offset: i64, why: Eviction) {
        if let Some(g) = self.sealed.pop_front() {
            self.sealed_ids -= g.ids.len();
            self.forgotten.push_back((g.start, offset));
            self.evictions.push((why, g.ids.len()));
        }
    }
}

/// What a hash set of ids holds on the heap: hashbrown's buckets (a power of two, at most 7/8
/// full) of 16 bytes plus one control byte each.
fn hash_set_bytes(ids: &FastSet<u128>) -> usize {
    if ids.capacity() == 0 {
        return 0;
    }
    let buckets = (ids.capacity() * 8 / 7).next_power_of_two();
    buckets * 17 + 16
}

/// A sealed generation: ids sorted, with an index of where each value of their top `bits` bits
/// starts, and a filter that tells most absent ids without touching either.
#[derive(Debug)]
struct SortedIds {
    ids: Vec<u128>,
    bits: u32,
    starts: Vec<u32>,
    filter: Vec<u64>,
}

/// The filter word of `id` (from its low 64 bits) and the three bits it sets there (from its
/// high ones): a blocked Bloom filter, 8 bits per id.
fn filter_slot(id: u128, words: usize) -> (usize, u64) {
    let word = ((u128::from(id as u64) * words as u128) >> 64) as usize;
    let hi = (id >> 64) as u64;
    let mask = (1u64 << (hi & 63)) | (1u64 << ((hi >> 6) & 63)) | (1u64 << ((hi >> 12) & 63));
    (word, mask)
}

impl SortedIds {
    fn from_set(set: FastSet<u128>) -> SortedIds {
        let mut ids: Vec<u128> = set.into_iter().collect();
        ids.shrink_to_fit();
        ids.sort_unstable();
        // At least 8 ids per index slot: at most 0.5 B of index per id.
        let bits = match ids.len() / 8 {
            0 => 0,
            slots => (usize::BITS - 1 - slots.leading_zeros()).min(24),
        };
        let mut starts = Vec::with_capacity((1 << bits) + 1);
        let mut i = 0;
        for bucket in 0..(1u128 << bits) {
            while i < ids.len() && top_bits(ids[i], bits) < bucket {
                i += 1;
            }
            starts.push(i as u32);
        }
        starts.push(ids.len() as u32);
        let mut filter = vec![0u64; ids.len().div_ceil(8).max(1)];
        for id in &ids {
            let (word, mask) = filter_slot(*id, filter.len());
            filter[word] |= mask;
        }
        SortedIds {
            ids,
            bits,
            starts,
            filter,
        }
    }

    fn contains(&self, id: u128) -> bool {
        let (word, mask) = filter_slot(id, self.filter.len());
        if self.filter[word] & mask != mask {
            return false;
        }
        let b = top_bits(id, self.bits) as usize;
        let (lo, hi) = (self.starts[b] as usize, self.starts[b + 1] as usize);
        self.ids[lo..hi].binary_search(&id).is_ok()
    }

    fn len(&self) -> usize {
        self.ids.len()
    }

    fn heap_bytes(&self) -> usize {
        self.ids.capacity() * 16 + self.starts.capacity() * 4 + self.filter.capacity() * 8
    }
}

fn top_bits(id: u128, bits: u32) -> u128 {
    if bits == 0 { 0 } else { id >> (128 - bits) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MIN: i64 = 60_000;
    const H: Horizon = Horizon {
        horizon_ms: 2 * MIN,
        generation_ms: MIN,
        max_remembered: 1_000_000,
    };

    #[test]
    fn a_repeat_is_seen_across_generations_until_the_horizon() {
        let mut r = Remembered::new(H);
        assert_eq!(r.check(0, None, 10, 7), Seen::New);
        assert_eq!(r.check(1, Some(10), MIN + 5, 7), Seen::Repeat);
        // Refreshed at MIN + 5 (generation 1): remembered through generation 3.
        assert_eq!(r.check(2, Some(MIN + 5), 3 * MIN + 59_999, 7), Seen::Repeat);
        r.advance(3, 6 * MIN);
        assert_eq!(r.check(4, Some(6 * MIN), 6 * MIN, 7), Seen::New);
    }

    #[test]
    fn an_id_is_remembered_at_least_the_horizon_and_at_most_one_generation_more() {
        // Read at MIN - 1 (generation 0): kept while the current generation is at most 2.
        let mut r = Remembered::new(H);
        r.check(0, None, MIN - 1, 1);
        r.advance(1, 3 * MIN - 1);
        assert_eq!(r.check(2, Some(3 * MIN - 1), 3 * MIN - 1, 1), Seen::Repeat);
        let mut r = Remembered::new(H);
        r.check(0, None, MIN - 1, 1);
        r.advance(1, 3 * MIN);
        assert_eq!(r.check(2, Some(3 * MIN), 3 * MIN, 1), Seen::New);
        // Read at 0 (generation 0 too): remembered for 3 minutes, the horizon plus a generation.
        let mut r = Remembered::new(H);
        r.check(0, None, 0, 1);
        assert_eq!(r.check(1, Some(0), 3 * MIN - 1, 1), Seen::Repeat);
    }

    #[test]
    fn sorted_ids_find_every_member_and_nothing_else() {
        for n in [0usize, 1, 7, 8, 100, 5_000] {
            let set: FastSet<u128> = (0..n as u128)
                .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835))
                .collect();
            let sorted = SortedIds::from_set(set.clone());
            for id in &set {
                assert!(sorted.contains(*id), "n={n}");
            }
            for i in 0..200u128 {
                let probe = i.wrapping_mul(0x1234_5678_9abc_def1) ^ u128::MAX;
                assert_eq!(sorted.contains(probe), set.contains(&probe));
            }
            let bytes = sorted.heap_bytes();
            assert!(bytes <= n * 17 + n / 2 + 16, "n={n}: {bytes} B");
        }
    }

    #[test]
    fn capacity_forgets_the_oldest_generations_first() {
        let small = Horizon {
            max_remembered: 6,
            ..H
        };
        let mut r = Remembered::new(small);
        // generation_limit = 6 / 3 = 2: every second id seals a generation.
        for id in 0..10u128 {
            r.check(id as i64, Some(0), 0, id);
        }
        assert!(r.len() <= 6);
        assert_eq!(r.check(10, Some(0), 0, 9), Seen::Repeat);
        assert_eq!(r.check(11, Some(0), 0, 0), Seen::New);
        let forgotten: usize = r
            .take_evictions()
            .iter()
            .filter(|(why, _)| *why == Eviction::Capacity)
            .map(|(_, n)| n)
            .sum();
        assert!(forgotten >= 4);
    }

    /// A log of (event time step, id) clicks and ticks.
    fn log_strategy() -> impl Strategy<Value = Vec<(bool, i64, u128)>> {
        proptest::collection::vec((0u8..10, 0i64..40_000, 0u128..60), 1..400).prop_map(|steps| {
            let mut t = 0;
            steps
                .into_iter()
                .map(|(kind, step, id)| {
                    t += step;
                    (kind == 0, t, id)
                })
                .collect()
        })
    }

    /// Runs the rule over `log[from..]` starting with the highest event time `max_before`;
    /// returns the decisions from `count_from` on and the state.
    fn run(
        horizon: Horizon,
        log: &[(bool, i64, u128)],
        from: usize,
        max_before: Option<i64>,
        count_from: usize,
    ) -> (Vec<Seen>, Remembered, Vec<Option<i64>>) {
        let mut r = Remembered::new(horizon);
        let mut high = max_before;
        let mut highs = vec![];
        let mut seen = vec![];
        for (i, (tick, t, id)) in log.iter().enumerate().skip(from) {
            highs.push(high);
            let before = high;
            let now = high.map_or(*t, |h| h.max(*t));
            high = Some(now);
            if *tick {
                r.advance(i as i64, now);
            } else {
                let s = r.check(i as i64, before, now, *id);
                if i >= count_from {
                    seen.push(s);
                }
            }
        }
        (seen, r, highs)
    }

    proptest! {
        /// Cut the first pass anywhere, rebuild the state of any earlier point from the start it
        /// names (as a checkpoint counting from there does), and the decisions from that point on
        /// are the first pass's, horizon and capacity evictions alike.
        #[test]
        fn a_rebuild_from_its_start_decides_as_the_first_pass(
            log in log_strategy(), cut_at in 0.0f64..1.0, back in 0.0f64..1.0, cap in 4usize..200
        ) {
            let horizon = Horizon { max_remembered: cap, ..H };
            let cut = ((log.len() as f64) * cut_at) as usize;
            let at = cut - ((cut as f64) * back * 0.3) as usize;
            let (all, _, highs) = run(horizon, &log, 0, None, 0);
            let clicks_before = log[..at].iter().filter(|(tick, _, _)| !tick).count();
            // The first pass as it stands at `cut`, asked for the point `at` behind it.
            let (_, first, _) = run(horizon, &log[..cut], 0, None, 0);
            let (from, max_before) = match first.rebuild_start(at as i64) {
                Some(s) => (s.offset as usize, s.max_event_before),
                None => (at, highs.get(at).copied().flatten()),
            };
            prop_assert!(from <= at);
            let (replayed, _, _) = run(horizon, &log, from, max_before, at);
            prop_assert_eq!(&replayed[..], &all[clicks_before..]);
        }

        /// Against a plain model: an id is a repeat iff a record carried it within the horizon.
        #[test]
        fn repeats_are_those_within_the_horizon(log in log_strategy()) {
            let (seen, _, _) = run(H, &log, 0, None, 0);
            let mut last: std::collections::HashMap<u128, i64> = Default::default();
            let mut high = i64::MIN;
            let mut clicks = 0;
            for (tick, t, id) in &log {
                high = high.max(*t);
                if *tick { continue; }
                let g = high.div_euclid(MIN);
                let want = match last.get(id) {
                    Some(prev) if g - prev.div_euclid(MIN) <= 2 => Seen::Repeat,
                    _ => Seen::New,
                };
                prop_assert_eq!(seen[clicks], want);
                last.insert(*id, high);
                clicks += 1;
            }
        }
    }
}
