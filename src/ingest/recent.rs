//! The result ids the ingest has taken lately, to drop a result re-sent while its first copy
//! is not committed yet (an agent's retry after a timeout). The store refuses ids already
//! committed, so only a window of recent ids is needed, not every id ever seen.
//!
//! Two generations of 64-bit keys: the newest ids go into `current`; when it holds half the
//! bound, it becomes `previous` and the older generation is forgotten whole. That remembers
//! between half the bound and the whole bound of the latest ids without keeping their order
//! (a queue of 200,000 128-bit keys beside the set cost 4 MB; 128-bit keys in the set another
//! 2 MB: 8.6 MB in all at 100,000 servers, now about 2.4 MB at most).
//!
//! A 64-bit key can stand for two ids: with 200,000 ids held, a new id is taken for an old one
//! with odds of about 1 in 10^14 (a result dropped as a repeat about once in 2,000 years at
//! 1,667 results a second).

use std::collections::HashSet;

/// The last ids seen, between `bound / 2` and `bound` of them.
pub(super) struct RecentIds {
    /// Ids in one generation before it turns over.
    generation: usize,
    current: HashSet<u64>,
    previous: HashSet<u64>,
}

impl RecentIds {
    pub fn new(bound: usize) -> Self {
        RecentIds {
            generation: (bound / 2).max(1),
            current: HashSet::new(),
            previous: HashSet::new(),
        }
    }

    /// False if `id` was seen already (within the window).
    pub fn insert(&mut self, id: &str) -> bool {
        let key = key_of(id);
        if self.previous.contains(&key) || !self.current.insert(key) {
            return false;
        }
        if self.current.len() >= self.generation {
            // The old table's room is reused: no allocation at each turn.
            std::mem::swap(&mut self.previous, &mut self.current);
            self.current.clear();
        }
        true
    }
}

/// 64 bits of a result id: a UUID's halves folded (both carry random bits), anything else
/// hashed.
fn key_of(id: &str) -> u64 {
    let wide = super::id_key(id);
    (wide >> 64) as u64 ^ wide as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u32) -> String {
        format!("result-{n}")
    }

    #[test]
    fn a_repeat_within_the_window_is_refused_once_per_copy() {
        let mut recent = RecentIds::new(10);
        assert!(recent.insert(&id(1)));
        assert!(!recent.insert(&id(1)));
        let uuid = uuid::Uuid::now_v7().to_string();
        assert!(recent.insert(&uuid));
        assert!(!recent.insert(&uuid));
    }

    #[test]
    fn at_least_half_the_bound_is_remembered_and_older_ids_are_forgotten() {
        let mut recent = RecentIds::new(10);
        for n in 0..100 {
            assert!(recent.insert(&id(n)), "{n} is new");
            // The latest five (half the bound) are always still known.
            for back in 0..5.min(n + 1) {
                assert!(
                    recent.previous.contains(&key_of(&id(n - back)))
                        || recent.current.contains(&key_of(&id(n - back)))
                );
            }
            assert!(recent.previous.len() + recent.current.len() <= 10);
        }
        // Long gone: taken again as new.
        assert!(recent.insert(&id(3)));
    }
}
