//! The verdicts of the user agents a thread classified last, so that a repeat skips the patterns.
//!
//! Real clicks come from few distinct user agents — a browser sends the same one on every click
//! until it updates — and a user agent's verdict is the costliest part of classifying a click:
//! isbot copies it lower-cased and runs 348 patterns over it, about 3 % of ingest's CPU per click
//! (BENCHMARKS.md, "a verdict per user agent"). Each thread keeps a small table of its own, so no
//! lock or shared cache line is touched per click:
//!
//! - direct-mapped: one slot per hash of the user agent (foldhash), [`SLOTS`] of them; a user
//!   agent whose slot holds another takes its place;
//! - a slot holds the user agent itself, and a verdict is reused only for the same bytes: a
//!   collision of hashes costs a recomputation, never a wrong verdict;
//! - a table serves one matcher (its id): a thread that meets another matcher (a new
//!   configuration, a test) starts its table afresh, so one rule set's verdict never answers for
//!   another's;
//! - a user agent longer than [`LONGEST`] bytes is not kept (no browser's comes near; such a one
//!   is classified every time), so a table holds at most `SLOTS × LONGEST` bytes of them.

use std::cell::RefCell;
use std::hash::BuildHasher as _;
use std::sync::atomic::{AtomicU64, Ordering};

use foldhash::fast::FixedState;

/// Slots per thread: room for every browser version a day's clicks bring, many times over.
pub const SLOTS: usize = 256;
/// The longest user agent kept, in bytes (browsers send 100–250).
pub const LONGEST: usize = 512;

/// A new matcher's id: unique in the process, never 0 (an empty table's).
pub fn next_matcher_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

struct Table {
    matcher: u64,
    slots: Vec<Option<(Box<str>, bool)>>,
}

thread_local! {
    static TABLE: RefCell<Table> = const {
        RefCell::new(Table {
            matcher: 0,
            slots: Vec::new(),
        })
    };
}

/// `user_agent`'s verdict under matcher `matcher`: this thread's kept one, else `decide`'s, kept.
pub fn verdict(matcher: u64, user_agent: &str, decide: impl FnOnce(&str) -> bool) -> bool {
    if user_agent.len() > LONGEST {
        return decide(user_agent);
    }
    let slot = slot_of(user_agent);
    let kept = TABLE
        .try_with(|table| {
            let table = table.borrow();
            if table.matcher != matcher {
                return None;
            }
            match &table.slots[slot] {
                Some((kept, bot)) if **kept == *user_agent => Some(*bot),
                _ => None,
            }
        })
        .ok()
        .flatten();
    if let Some(bot) = kept {
        return bot;
    }
    // Decided outside the table's borrow, so that nothing `decide` does can meet it borrowed.
    let bot = decide(user_agent);
    // A thread being torn down has no table left: the verdict is simply not kept.
    let _ = TABLE.try_with(|table| {
        let mut table = table.borrow_mut();
        if table.matcher != matcher {
            table.matcher = matcher;
            table.slots.clear();
            table.slots.resize(SLOTS, None);
        }
        table.slots[slot] = Some((user_agent.into(), bot));
    });
    bot
}

fn slot_of(user_agent: &str) -> usize {
    // A fixed seed: a user agent crafted to share a browser's slot only evicts it, which costs
    // the patterns' time, as every click did before this table.
    let hash = FixedState::with_seed(0x5eed_ab1e).hash_one(user_agent.as_bytes());
    (hash % SLOTS as u64) as usize
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    #[test]
    fn a_repeat_reuses_the_verdict_and_another_matcher_does_not() {
        let (a, b) = (next_matcher_id(), next_matcher_id());
        let calls = Cell::new(0);
        let decide = |bot: bool| {
            let calls = &calls;
            move |_: &str| {
                calls.set(calls.get() + 1);
                bot
            }
        };
        assert!(verdict(a, "agent/1", decide(true)));
        assert!(verdict(a, "agent/1", decide(false)), "kept from the first");
        assert_eq!(calls.get(), 1);
        assert!(!verdict(b, "agent/1", decide(false)), "b's own verdict");
        assert!(
            verdict(a, "agent/1", decide(true)),
            "a decides again after b"
        );
        assert_eq!(calls.get(), 3);
    }

    #[test]
    fn only_the_same_bytes_share_a_verdict() {
        let m = next_matcher_id();
        // Two user agents in one slot: each gets its own verdict, whichever was kept.
        let first = "agent/0".to_string();
        let other = (1..100_000)
            .map(|n| format!("agent/{n}"))
            .find(|ua| slot_of(ua) == slot_of(&first))
            .expect("256 slots: a collision within 100,000 names");
        assert!(verdict(m, &first, |_| true));
        assert!(!verdict(m, &other, |_| false));
        assert!(verdict(m, &first, |_| true));
        // Case matters to the table (the patterns decide case-insensitively, once per spelling).
        assert!(!verdict(m, "AGENT/0", |_| false));
    }

    #[test]
    fn a_user_agent_past_the_longest_is_decided_every_time() {
        let m = next_matcher_id();
        let long = "x".repeat(LONGEST + 1);
        let calls = Cell::new(0);
        for _ in 0..3 {
            verdict(m, &long, |_| {
                calls.set(calls.get() + 1);
                false
            });
        }
        assert_eq!(calls.get(), 3);
    }
}
