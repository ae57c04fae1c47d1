//! One shared copy of each short text that many servers hold the same: region names, protocol
//! versions (a handful of dates) and server versions (a few per framework). Kept in every
//! server's state for the life of the daemon, a copy each cost an allocation a server; shared,
//! the state holds an `Arc` to the one copy (issue 12: 2 KiB a server in all).

use std::collections::HashSet;
use std::sync::Arc;

/// Texts handed out, swept of those nobody holds any more when it has doubled since the last
/// sweep (a server upgraded, a region retired), so it never grows without bound.
pub(super) struct Interner {
    texts: HashSet<Arc<str>>,
    sweep_at: usize,
}

/// Entries held before the first sweep.
const FIRST_SWEEP: usize = 1_024;

impl Default for Interner {
    fn default() -> Self {
        Interner {
            texts: HashSet::new(),
            sweep_at: FIRST_SWEEP,
        }
    }
}

impl Interner {
    /// The shared copy of `text`.
    pub fn get(&mut self, text: &str) -> Arc<str> {
        if let Some(shared) = self.texts.get(text) {
            return shared.clone();
        }
        if self.texts.len() >= self.sweep_at {
            // Held only here: no state refers to it.
            self.texts.retain(|t| Arc::strong_count(t) > 1);
            self.sweep_at = (2 * self.texts.len()).max(FIRST_SWEEP);
        }
        let shared: Arc<str> = Arc::from(text);
        self.texts.insert(shared.clone());
        shared
    }

    /// `text` as the shared copy (the same allocation when it already is).
    pub fn share(&mut self, text: &mut Arc<str>) {
        *text = self.get(text);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.texts.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_texts_share_one_copy() {
        let mut interner = Interner::default();
        let a = interner.get("2025-11-25");
        let mut b: Arc<str> = Arc::from("2025-11-25");
        assert!(!Arc::ptr_eq(&a, &b));
        interner.share(&mut b);
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &interner.get("2026-07-28")));
    }

    #[test]
    fn texts_nobody_holds_are_swept_when_the_table_doubles() {
        let mut interner = Interner::default();
        let kept = interner.get("kept");
        for n in 0..10 * FIRST_SWEEP {
            drop(interner.get(&format!("gone-{n}")));
        }
        assert!(interner.len() <= 2 * FIRST_SWEEP, "{}", interner.len());
        assert!(
            Arc::ptr_eq(&kept, &interner.get("kept")),
            "a held text stays"
        );
    }
}
