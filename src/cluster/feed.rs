//! The servers table → this replica's scheduler and ingest cache, by a change feed: each look
//! reads the (id, `updated_at`) of servers written since shortly before the previous look,
//! loads only the rows that differ from what it has seen, and counts the rows (a count that
//! differs means a server was deleted). At 100,000 servers the full re-read every 2 s it
//! replaced cost a fifth of a core and tens of MB of churn.
//!
//! Every server is followed, but only those of this replica's buckets are scheduled; when
//! buckets move ([`Feed::release`], [`Feed::take`]) their servers are taken from or given to the scheduler,
//! and the ingest forgets their states (the database has what the other owner decided).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use super::ClusterParts;
use crate::shard::bucket_of;
use crate::store::{ServerRecord, StoreError};

/// How far before the previous look each look reaches back: writers' clocks differ by a
/// little, and a write may commit a moment after the `updated_at` it carries.
const OVERLAP_MS: i64 = 10_000;

/// How often every server's (id, `updated_at`) is compared with the schedule whatever the
/// feed saw: the bound on anything the feed could miss (a writer whose clock is far behind).
const RECONCILE: Duration = Duration::from_secs(300);

/// Most new servers one look probes at once; more are a bulk registration, spread over
/// their interval instead of probed in one burst.
const AT_ONCE_AT_MOST: usize = 50;

/// Most servers loaded whole by one read.
const LOAD_AT_ONCE: usize = 1_000;

/// How a server found by the feed is scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found {
    /// Changed, or loaded with the rest at start or when its bucket arrived: at its regular
    /// tick (no probe storm at a start or a take-over).
    Regular,
    /// New since the last look: at once, unless the replica that registered it has already.
    New,
}

#[derive(Default)]
pub(super) struct Feed {
    /// Server id → the `updated_at` it was last seen with (every server, owned or not). The
    /// id is shared with the scheduler's job: one copy a server, not one per holder.
    seen: HashMap<Arc<str>, i64>,
    /// When the previous look started (unix ms, this node's clock).
    looked_at: i64,
    /// When every server was last compared; `None` before the first load.
    reconciled_at: Option<tokio::time::Instant>,
}

impl Feed {
    /// Bring the scheduler and the ingest cache in line with the servers table.
    pub(super) async fn sync(&mut self, app: &ClusterParts) {
        let due = self
            .reconciled_at
            .is_none_or(|at| at.elapsed() >= RECONCILE);
        let now = crate::clock::now_ms();
        let looked = if due {
            self.catch_up(app, None).await
        } else {
            self.follow(app).await
        };
        match looked {
            Ok(changed) => {
                self.looked_at = now;
                if changed {
                    app.agent_config_changed();
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read servers; keeping the schedule"),
        }
        // Channels and maintenance windows may have changed through another replica: the
        // ingest reloads them before routing its next event.
        app.ingest.routing_changed().await;
    }

    /// Apply the servers written since the previous look; compare all if the count disagrees.
    async fn follow(&mut self, app: &ClusterParts) -> Result<bool, StoreError> {
        let mut changed = self
            .catch_up(app, Some(self.looked_at - OVERLAP_MS))
            .await?;
        if app.store.count_servers().await? != self.seen.len() as i64 {
            changed |= self.catch_up(app, None).await?;
        }
        Ok(changed)
    }

    /// Load and apply the servers written since `since` whose version differs from what was
    /// seen; with `since` `None`, compare every server and drop those gone.
    async fn catch_up(
        &mut self,
        app: &ClusterParts,
        since: Option<i64>,
    ) -> Result<bool, StoreError> {
        let versions = app.store.server_versions(since).await?;
        let stale: Vec<String> = versions
            .iter()
            .filter(|(id, at)| self.seen.get(id.as_str()) != Some(at))
            .map(|(id, _)| id.clone())
            .collect();
        // The first load keeps every server's regular offset, and so does a bulk registration
        // (spread over the interval, as on the replica that took it); a few servers added
        // through another replica are probed at once.
        let unseen = stale
            .iter()
            .filter(|id| !self.seen.contains_key(id.as_str()))
            .count();
        let found = if self.reconciled_at.is_none() || unseen > AT_ONCE_AT_MOST {
            Found::Regular
        } else {
            Found::New
        };
        let mut changed = false;
        // In chunks: a start or a bulk registration finds every server at once, and 100,000
        // whole records in memory together were ~100 MB the allocator then keeps for a while.
        for chunk in stale.chunks(LOAD_AT_ONCE) {
            for s in &app.store.servers_by_id(chunk).await? {
                changed |= self.apply(app, s, found).await;
            }
        }
        if since.is_some() {
            return Ok(changed);
        }
        let present: HashSet<&str> = versions.iter().map(|(id, _)| id.as_str()).collect();
        let gone: Vec<Arc<str>> = self
            .seen
            .keys()
            .filter(|id| !present.contains(&***id))
            .cloned()
            .collect();
        for id in &gone {
            changed = true;
            self.seen.remove(id);
            app.scheduler.remove(id);
            app.ingest.invalidate(id).await;
        }
        self.reconciled_at = Some(tokio::time::Instant::now());
        Ok(changed)
    }

    /// Schedule (or stop probing) one server as written; false if already seen so.
    async fn apply(&mut self, app: &ClusterParts, s: &ServerRecord, found: Found) -> bool {
        let id = self.key(&s.id);
        let known = match self.seen.insert(id.clone(), s.updated_at) {
            Some(at) if at == s.updated_at => return false,
            Some(_) => true,
            None => false,
        };
        if !app.ownership.owns(&s.id) {
            app.scheduler.remove(&s.id);
            return true;
        }
        app.ingest.invalidate(&s.id).await;
        if known {
            // Paused or resumed through another replica: the owner's ingest records it.
            app.ingest.set_paused(&s.id, s.paused, s.updated_at).await;
        }
        Self::schedule(app, s, id, if known { Found::Regular } else { found });
        true
    }

    /// The shared copy of a server id (a new one for a server not seen yet).
    fn key(&self, id: &str) -> Arc<str> {
        self.seen
            .get_key_value(id)
            .map_or_else(|| Arc::from(id), |(k, _)| k.clone())
    }

    /// Hand `s` to the scheduler (or take it away if paused or not probed here).
    fn schedule(app: &ClusterParts, s: &ServerRecord, id: Arc<str>, found: Found) {
        if s.paused || !app.probes_locally(s) {
            app.scheduler.remove(&s.id);
            return;
        }
        let job = crate::targets::job_for(s, &app.sealer).map(|mut job| {
            job.server_id = id;
            job
        });
        match job {
            Ok(job) if found == Found::Regular => app.scheduler.upsert(job, false),
            // New since the last look: the API that registered it may have probed it
            // already; the scheduler probes it now only if it did not.
            Ok(job) => app.scheduler.upsert_found(job),
            Err(e) => tracing::error!(server = %s.slug, error = ?e, "cannot schedule"),
        }
    }

    /// Buckets `lost`: their servers leave the scheduler and the ingest's cache.
    pub(super) async fn release(&mut self, app: &ClusterParts, lost: &BTreeSet<u16>) {
        if lost.is_empty() {
            return;
        }
        for id in self.seen.keys().filter(|id| lost.contains(&bucket_of(id))) {
            app.scheduler.remove(id);
            app.ingest.forget(id).await;
        }
    }

    /// Buckets `gained`: their servers are scheduled at their regular ticks, their states read
    /// from the database (decided there by the previous owner). Before the first load there
    /// is nothing to do: the load schedules them.
    pub(super) async fn take(
        &mut self,
        app: &ClusterParts,
        gained: &BTreeSet<u16>,
    ) -> Result<(), StoreError> {
        let arriving: Vec<String> = self
            .seen
            .keys()
            .filter(|id| gained.contains(&bucket_of(id)))
            .map(|id| id.to_string())
            .collect();
        // Unseen until loaded: if the load fails, the next look finds them (the count
        // differs) and schedules them then.
        for id in &arriving {
            self.seen.remove(id.as_str());
        }
        for s in &app.store.servers_by_id(&arriving).await? {
            app.ingest.forget(&s.id).await;
            let id: Arc<str> = Arc::from(s.id.as_str());
            self.seen.insert(id.clone(), s.updated_at);
            Self::schedule(app, s, id, Found::Regular);
        }
        Ok(())
    }
}
