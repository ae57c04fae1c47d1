//! `schema.inconsistent`: the regions reporting for a server see different tool lists for
//! longer than one probe interval (a CDN or a rolling deploy serving two versions). A moment of
//! disagreement while a deploy rolls out is normal and raises nothing.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

/// Tracks one server's disagreement: since when, and whether it was reported.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Consistency {
    since: Option<i64>,
    reported: bool,
}

impl Consistency {
    /// Look at the latest hash per reporting region at `at`; the event's data when the regions
    /// have disagreed for at least `interval_ms` and it was not reported yet.
    pub fn observe(
        &mut self,
        hashes: &BTreeMap<std::sync::Arc<str>, std::sync::Arc<str>>,
        at: i64,
        interval_ms: i64,
    ) -> Option<Value> {
        let distinct: BTreeSet<&str> = hashes.values().map(|h| &**h).collect();
        if distinct.len() < 2 {
            *self = Consistency::default();
            return None;
        }
        let since = *self.since.get_or_insert(at);
        if self.reported || at - since < interval_ms {
            return None;
        }
        self.reported = true;
        Some(json!({
            "hashes": hashes,
            "since": crate::clock::rfc3339(since),
            "for_seconds": (at - since) / 1000,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hashes(pairs: &[(&str, &str)]) -> BTreeMap<std::sync::Arc<str>, std::sync::Arc<str>> {
        pairs
            .iter()
            .map(|(r, h)| (std::sync::Arc::from(*r), std::sync::Arc::from(*h)))
            .collect()
    }

    #[test]
    fn a_brief_disagreement_is_quiet_a_lasting_one_is_reported_once() {
        let mut c = Consistency::default();
        let split = hashes(&[("eu", "sha256:a"), ("us", "sha256:b")]);
        assert_eq!(c.observe(&split, 0, 60_000), None, "just started");
        assert_eq!(
            c.observe(&split, 30_000, 60_000),
            None,
            "within one interval"
        );
        let agreed = hashes(&[("eu", "sha256:b"), ("us", "sha256:b")]);
        assert_eq!(
            c.observe(&agreed, 45_000, 60_000),
            None,
            "the deploy finished"
        );
        assert_eq!(
            c.observe(&split, 50_000, 60_000),
            None,
            "a new split starts the clock again"
        );
        let event = c
            .observe(&split, 110_000, 60_000)
            .expect("reported after one interval");
        assert_eq!(event["hashes"]["us"], "sha256:b");
        assert_eq!(event["for_seconds"], 60);
        assert_eq!(c.observe(&split, 200_000, 60_000), None, "once");
        assert_eq!(
            c.observe(&hashes(&[("eu", "sha256:a")]), 210_000, 60_000),
            None
        );
        assert_eq!(c, Consistency::default(), "agreement resets it");
    }
}
