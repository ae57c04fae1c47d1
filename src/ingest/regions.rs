//! Which regions a server's quorum counts: the regions meant to probe it that are alive.
//!
//! A server with a `regions` list expects those, minus the ones known silent (an agent that
//! stopped reporting). A server without one expects every region alive now. Regions that
//! reported a fresh result for it count in any case. The quorum is a majority of that number
//! (or the server's own `quorum`, capped by it), so the first region to report after a start
//! cannot decide alone, and a dead agent's region never holds a server down or up.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::monitor::RegionState;
use crate::store::{RegionRecord, Store, StoreError};

/// How long the copy of the regions table is trusted.
const REFRESH: Duration = Duration::from_secs(5);

pub struct Liveness {
    silent_after_ms: i64,
    loaded: Option<Instant>,
    regions: Vec<RegionRecord>,
}

impl Liveness {
    pub fn new(silent_after: Duration) -> Self {
        Liveness {
            silent_after_ms: silent_after.as_millis() as i64,
            loaded: None,
            regions: Vec::new(),
        }
    }

    /// Reload the regions table when the copy is older than a few seconds.
    pub async fn refresh(&mut self, store: &dyn Store) -> Result<(), StoreError> {
        if self.loaded.is_none_or(|t| t.elapsed() > REFRESH) {
            self.regions = store.list_regions().await?;
            self.loaded = Some(Instant::now());
        }
        Ok(())
    }

    fn silent(&self, name: &str, now: i64) -> bool {
        self.regions.iter().any(|r| {
            r.name == name
                && (r.silent_since.is_some() || now - r.last_seen_at > self.silent_after_ms)
        })
    }

    /// The quorum at `now` for a server probed by `regions` (empty: every region) with its
    /// `quorum` setting, given the region states that are fresh.
    pub fn quorum(
        &self,
        regions: &[String],
        quorum: Option<u32>,
        reporting: &[RegionState],
        now: i64,
    ) -> u32 {
        let mut expected: BTreeSet<&str> = if regions.is_empty() {
            self.regions
                .iter()
                .filter(|r| !self.silent(&r.name, now))
                .map(|r| r.name.as_str())
                .collect()
        } else {
            regions
                .iter()
                .filter(|r| !self.silent(r, now))
                .map(String::as_str)
                .collect()
        };
        expected.extend(reporting.iter().map(|r| &*r.region));
        let n = expected.len().max(1) as u32;
        match quorum {
            Some(q) => q.clamp(1, n),
            None => n / 2 + 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(regions: &[&str], quorum: Option<u32>) -> crate::store::ServerRecord {
        let mut s: crate::store::ServerRecord = serde_json::from_value(serde_json::json!({
            "id": "s", "slug": "s", "name": "s", "url": "https://x.example/mcp", "header_names": [],
            "interval_seconds": 60, "timeout_seconds": 10, "tags": [], "public": false, "paused": false,
            "failures_to_down": 2, "successes_to_up": 1, "degraded_latency_ms": null,
            "expect_auth": false, "era_hint": null, "created_at": 0, "updated_at": 0
        }))
        .unwrap();
        s.regions = regions.iter().map(|r| r.to_string()).collect();
        s.quorum = quorum;
        s
    }

    fn seen(name: &str, at: i64, silent: bool) -> RegionRecord {
        RegionRecord {
            name: name.into(),
            last_seen_at: at,
            silent_since: silent.then_some(at + 1),
            agent_version: None,
        }
    }

    #[test]
    fn the_first_region_to_report_does_not_decide_alone() {
        let l = Liveness::new(Duration::from_secs(180));
        let s = server(&["eu", "us", "ap"], None);
        let only_ap = [RegionState::new("ap".into())];
        assert_eq!(
            l.quorum(&s.regions, s.quorum, &only_ap, 1_000),
            2,
            "a majority of the three listed"
        );
    }

    #[test]
    fn silent_regions_leave_the_count_and_overrides_are_capped() {
        let mut l = Liveness::new(Duration::from_secs(180));
        let now = 1_000_000;
        l.regions = vec![
            seen("eu", now, false),
            seen("us", now, false),
            seen("ap", now - 500_000, false),
        ];
        let listed = server(&["eu", "us", "ap"], None);
        assert_eq!(
            l.quorum(&listed.regions, listed.quorum, &[], now),
            2,
            "two alive: both needed"
        );
        let all = server(&[], None);
        assert_eq!(
            l.quorum(
                &all.regions,
                all.quorum,
                &[RegionState::new("local".into())],
                now
            ),
            2,
            "eu, us and local"
        );
        let strict = server(&["eu", "us", "ap"], Some(3));
        assert_eq!(
            l.quorum(&strict.regions, strict.quorum, &[], now),
            2,
            "capped by the regions alive"
        );
        l.regions = vec![seen("eu", now, true)];
        let two = server(&["eu", "us"], None);
        assert_eq!(l.quorum(&two.regions, two.quorum, &[], now), 1);
    }
}
