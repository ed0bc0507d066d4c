//! The verdicts of the user agents a thread classified last, so that a repeat skips the patterns.
//!
//! Real clicks come from few distinct user agents — a browser sends the same one on every click
//! until it updates — and a user agent's verdict is the costliest part of classifying a click:
//! isbot copies it lower-cased and runs 348 patterns over it, about 3 % of ingest's CPU per click
//! (BENCHMARKS.md, "a verdict per user agent"). Each thread keeps a small table of its own, so no
//! lock or shared cache line is touched per click:
//!
//! - [`SETS`] sets of two entries, a user agent's set chosen by its hash (foldhash, seeded at
//!   random per thread, so that which user agents share a set differs from thread to thread and
//!   from run to run, and cannot be aimed at); within a set the one used last stays, a new user
//!   agent replaces the other;
//! - an entry holds the user agent itself, and a verdict is reused only for the same bytes: a
//!   collision of hashes costs a recomputation, never a wrong verdict;
//! - a table serves one matcher (its id): a thread that meets another matcher (a new
//!   configuration, a test) starts its table afresh, so one rule set's verdict never answers for
//!   another's;
//! - a user agent longer than [`LONGEST`] bytes is not kept (no browser's comes near; such a one
//!   is classified every time), so a table holds at most `2 × SETS × LONGEST` bytes of user
//!   agents, in buffers that are refilled, not reallocated, when an entry is replaced.

use std::cell::RefCell;
use std::hash::BuildHasher as _;
use std::sync::atomic::{AtomicU64, Ordering};

use foldhash::fast::RandomState;

/// Sets per thread (two entries each): 512 user agents, most of a day's browsers and versions.
pub const SETS: usize = 256;
/// The longest user agent kept, in bytes (browsers send 100–250, in-app browsers up to ~400).
pub const LONGEST: usize = 512;

/// A new matcher's id: unique in the process, never 0 (an empty table's).
pub fn next_matcher_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// One kept verdict; an empty `user_agent` is an unused entry (an empty one is never asked).
#[derive(Default)]
struct Entry {
    user_agent: String,
    bot: bool,
}

struct Table {
    matcher: u64,
    hasher: RandomState,
    /// `2 × SETS` entries, set `s` at `2s` (used last) and `2s + 1`.
    entries: Vec<Entry>,
}

impl Table {
    fn set_of(&self, user_agent: &str) -> usize {
        (self.hasher.hash_one(user_agent.as_bytes()) % SETS as u64) as usize
    }
}

thread_local! {
    static TABLE: RefCell<Table> = RefCell::new(Table {
        matcher: 0,
        hasher: RandomState::default(),
        entries: Vec::new(),
    });
}

/// `user_agent`'s verdict under matcher `matcher`: this thread's kept one, else `decide`'s, kept.
pub fn verdict(matcher: u64, user_agent: &str, decide: impl FnOnce(&str) -> bool) -> bool {
    if user_agent.is_empty() || user_agent.len() > LONGEST {
        return decide(user_agent);
    }
    // The user agent's set (hashed once: a miss keeps the verdict in the same set), and its kept
    // verdict if any.
    let looked_up = TABLE
        .try_with(|table| {
            let mut table = table.borrow_mut();
            let first = 2 * table.set_of(user_agent);
            if table.matcher != matcher {
                return (first, None);
            }
            let set = &mut table.entries[first..first + 2];
            let kept = if set[0].user_agent == user_agent {
                Some(set[0].bot)
            } else if set[1].user_agent == user_agent {
                set.swap(0, 1);
                Some(set[0].bot)
            } else {
                None
            };
            (first, kept)
        })
        .ok();
    let first = match looked_up {
        Some((_, Some(bot))) => return bot,
        Some((first, None)) => first,
        // A thread being torn down has no table left: the verdict is decided and not kept.
        None => return decide(user_agent),
    };
    // Decided outside the table's borrow, so that nothing `decide` does can meet it borrowed.
    let bot = decide(user_agent);
    let _ = TABLE.try_with(|table| {
        let mut table = table.borrow_mut();
        if table.matcher != matcher {
            table.entries.clear();
            table.entries.resize_with(2 * SETS, Entry::default);
            table.matcher = matcher;
        }
        let set = &mut table.entries[first..first + 2];
        // The entry used last moves second; the other one's buffer takes the new user agent.
        set.swap(0, 1);
        set[0].user_agent.clear();
        set[0].user_agent.push_str(user_agent);
        set[0].bot = bot;
    });
    bot
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    /// A `decide` that answers `bot` and counts its calls in `calls`.
    fn counted(calls: &Cell<u32>, bot: bool) -> impl FnOnce(&str) -> bool + '_ {
        move |_| {
            calls.set(calls.get() + 1);
            bot
        }
    }

    #[test]
    fn a_repeat_reuses_the_verdict_and_another_matcher_does_not() {
        let (a, b) = (next_matcher_id(), next_matcher_id());
        let calls = Cell::new(0);
        assert!(verdict(a, "agent/1", counted(&calls, true)));
        assert!(verdict(a, "agent/1", counted(&calls, false)), "kept");
        assert_eq!(calls.get(), 1);
        assert!(!verdict(b, "agent/1", counted(&calls, false)), "b's own");
        assert!(verdict(a, "agent/1", counted(&calls, true)), "a again");
        assert_eq!(calls.get(), 3);
    }

    /// User agents of one set, as this thread's table hashes them.
    fn same_set(count: usize) -> Vec<String> {
        let m = next_matcher_id();
        verdict(m, "agent/0", |_| false);
        TABLE.with(|table| {
            let table = table.borrow();
            let set = table.set_of("agent/0");
            (0..1_000_000)
                .map(|n| format!("agent/{n}"))
                .filter(|ua| table.set_of(ua) == set)
                .take(count)
                .collect()
        })
    }

    #[test]
    fn a_set_keeps_the_two_used_last_and_only_the_same_bytes_share_a_verdict() {
        let [a, b, c] = <[String; 3]>::try_from(same_set(3)).unwrap();
        let m = next_matcher_id();
        let calls = Cell::new(0);
        assert!(verdict(m, &a, counted(&calls, true)));
        assert!(!verdict(m, &b, counted(&calls, false)), "b's own");
        assert!(!verdict(m, &b, counted(&calls, true)), "b kept");
        assert!(
            verdict(m, &a, counted(&calls, false)),
            "a kept, used last now"
        );
        assert_eq!(calls.get(), 2);
        // c replaces the one used longer ago (b), not the one used last (a).
        assert!(verdict(m, &c, counted(&calls, true)));
        assert!(verdict(m, &a, counted(&calls, false)), "a still kept");
        assert_eq!(calls.get(), 3);
        assert!(!verdict(m, &b, counted(&calls, false)), "b decided again");
        assert_eq!(calls.get(), 4);
        // Case matters to the table (the patterns decide case-insensitively, once per spelling).
        assert!(!verdict(m, &a.to_uppercase(), counted(&calls, false)));
        assert_eq!(calls.get(), 5);
    }

    #[test]
    fn a_user_agent_past_the_longest_is_decided_every_time() {
        let m = next_matcher_id();
        let long = "x".repeat(LONGEST + 1);
        let calls = Cell::new(0);
        for _ in 0..3 {
            verdict(m, &long, counted(&calls, false));
        }
        assert_eq!(calls.get(), 3);
    }
}
