//! The symbol table under construction: every label name and value seen, stored once.
//!
//! The index refers to strings by their position in the sorted table, which is only known
//! once every series has been seen. Series are therefore kept as provisional ids (order of first
//! appearance) and renumbered at the end; each distinct string is held once, however many
//! series repeat it (every `advertiser_id` value, `__name__`, …).

use std::collections::HashMap;

/// Strings interned in order of first appearance.
#[derive(Debug)]
pub(crate) struct SymbolInterner {
    ids: HashMap<String, u32>,
    strings: Vec<String>,
}

/// The final table: strings sorted byte-wise, and each provisional id's position in it.
#[derive(Debug)]
pub(crate) struct SortedSymbols {
    pub(crate) strings: Vec<String>,
    /// `position_of[provisional id]` = index of that string in `strings`.
    pub(crate) position_of: Vec<u32>,
}

impl SymbolInterner {
    /// An interner already holding the empty string, which Prometheus' own blocks always list
    /// (it names the all-series postings list `"" = ""`).
    pub(crate) fn new() -> SymbolInterner {
        let mut interner = SymbolInterner {
            ids: HashMap::new(),
            strings: Vec::new(),
        };
        interner.intern("");
        interner
    }

    /// The provisional id of `s`, adding it if new.
    pub(crate) fn intern(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        let id = u32::try_from(self.strings.len()).expect("fewer than 2^32 distinct symbols");
        self.ids.insert(s.to_owned(), id);
        self.strings.push(s.to_owned());
        id
    }

    pub(crate) fn into_sorted(self) -> SortedSymbols {
        drop(self.ids);
        let mut order: Vec<u32> = (0..self.strings.len() as u32).collect();
        order.sort_unstable_by(|&a, &b| {
            self.strings[a as usize]
                .as_bytes()
                .cmp(self.strings[b as usize].as_bytes())
        });
        let mut position_of = vec![0u32; self.strings.len()];
        for (position, &id) in order.iter().enumerate() {
            position_of[id as usize] = position as u32;
        }
        let mut by_id: Vec<Option<String>> = self.strings.into_iter().map(Some).collect();
        let strings = order
            .iter()
            .map(|&id| by_id[id as usize].take().expect("each id appears once"))
            .collect();
        SortedSymbols {
            strings,
            position_of,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_renumbered_in_byte_order() {
        let mut interner = SymbolInterner::new();
        let zeta = interner.intern("zeta");
        let alpha = interner.intern("alpha");
        let e_acute = interner.intern("é");
        let upper = interner.intern("Zed");
        assert_eq!(interner.intern("alpha"), alpha, "same string, same id");
        let sorted = interner.into_sorted();
        assert_eq!(sorted.strings, ["", "Zed", "alpha", "zeta", "é"]);
        assert_eq!(sorted.position_of[0], 0, "the empty string sorts first");
        assert_eq!(sorted.position_of[upper as usize], 1);
        assert_eq!(sorted.position_of[alpha as usize], 2);
        assert_eq!(sorted.position_of[zeta as usize], 3);
        assert_eq!(sorted.position_of[e_acute as usize], 4);
    }
}
