//! Several `serve` replicas on one Postgres: one leads (see `store::cluster_sql`), the others
//! stand by.
//!
//! The leader probes the built-in region, evaluates every result (its ingest is the only
//! writer of server state) and runs alert housekeeping. Deliveries are claimed row by row by
//! any replica, and `region.silent` is a conditional update, so those stay exactly once
//! wherever they run. A standby serves pages and the API from the shared database; it refuses
//! agent pushes and "check now" (503 with `Retry-After`, retried by the client), and
//! `/readyz?leader=true` tells the two apart for a load balancer that should route to the
//! leader alone.
//!
//! Every few seconds the leader renews its lease and follows the servers written since its
//! last look (a change feed; on Postgres a `NOTIFY` rings it at once), so changes made through
//! a standby reach its scheduler, its ingest cache and the agents' long polls. When the
//! leader stops renewing (SIGKILL, cut off) a standby takes the lease once it expires, within
//! `LEASE_TTL_SECONDS` plus `EVERY`, and loads the servers; a graceful stop releases it at once.
//! A leader that cannot reach the database keeps leading and probing (results wait in its
//! ingest) until the database answers again.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use tokio::sync::Notify;

use crate::ingest::IngestHandle;
use crate::scheduler::SchedulerHandle;
use crate::secrets::Sealer;
use crate::store::{ServerRecord, Store, StoreError};

/// What the cluster loop works with (a part of the daemon's state, handed over by `app.rs`).
#[derive(Clone)]
pub struct ClusterParts {
    pub store: Arc<dyn Store>,
    pub ingest: IngestHandle,
    pub scheduler: SchedulerHandle,
    pub sealer: Sealer,
    /// This node's region, and whether it probes at all (`MCPWATCH_PROBE_LOCALLY`).
    pub region: String,
    pub probe_locally: bool,
    /// Set while this replica leads.
    pub leader: Arc<AtomicBool>,
    /// Bumped when what agents probe changed.
    pub agent_config: Arc<tokio::sync::watch::Sender<u64>>,
}

impl ClusterParts {
    fn probes_locally(&self, s: &crate::store::ServerRecord) -> bool {
        self.probe_locally && s.probed_from(&self.region)
    }

    fn agent_config_changed(&self) {
        self.agent_config.send_modify(|v| *v += 1);
    }
}
use crate::store::{LeaderLease, LeaseCheck};

/// How often leadership is tried or checked, and changed servers looked for.
const EVERY: Duration = Duration::from_secs(2);

/// How far before the previous look each look reaches back: writers' clocks differ by a
/// little, and a write may commit a moment after the `updated_at` it carries.
const OVERLAP_MS: i64 = 10_000;

/// How often every server's (id, `updated_at`) is compared with the schedule whatever the
/// feed saw: the bound on anything the feed could miss (a writer whose clock is far behind).
const RECONCILE: Duration = Duration::from_secs(300);

/// The leader's view of the servers table, kept in line by a change feed: each look reads
/// the (id, `updated_at`) of servers written since shortly before the previous look, loads
/// only the rows that differ from the schedule, and counts the rows (a count that differs
/// from the schedule means a server was deleted). At 100,000 servers the full re-read every
/// 2 s it replaces cost a fifth of a core and tens of MB of churn.
#[derive(Default)]
struct Feed {
    /// Server id → the `updated_at` it was scheduled with.
    scheduled: HashMap<String, i64>,
    /// When the previous look started (unix ms, this node's clock).
    looked_at: i64,
    /// When every server was last compared; `None` before the first load.
    reconciled_at: Option<tokio::time::Instant>,
}

impl Feed {
    /// Bring the scheduler and the ingest cache in line with the servers table.
    async fn sync(&mut self, app: &ClusterParts) {
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
        // Channels and maintenance windows may have changed through a standby: the ingest
        // reloads them before routing its next event.
        app.ingest.routing_changed().await;
    }

    /// Apply the servers written since the previous look; compare all if the count disagrees.
    async fn follow(&mut self, app: &ClusterParts) -> Result<bool, StoreError> {
        let mut changed = self
            .catch_up(app, Some(self.looked_at - OVERLAP_MS))
            .await?;
        if app.store.count_servers().await? != self.scheduled.len() as i64 {
            changed |= self.catch_up(app, None).await?;
        }
        Ok(changed)
    }

    /// Load and apply the servers written since `since` whose version differs from the
    /// schedule; with `since` `None`, compare every server and drop those gone.
    async fn catch_up(
        &mut self,
        app: &ClusterParts,
        since: Option<i64>,
    ) -> Result<bool, StoreError> {
        let versions = app.store.server_versions(since).await?;
        let stale: Vec<String> = versions
            .iter()
            .filter(|(id, at)| self.scheduled.get(id) != Some(at))
            .map(|(id, _)| id.clone())
            .collect();
        let mut changed = false;
        for s in &app.store.servers_by_id(&stale).await? {
            changed |= self.apply(app, s).await;
        }
        if since.is_some() {
            return Ok(changed);
        }
        let present: HashSet<&str> = versions.iter().map(|(id, _)| id.as_str()).collect();
        let gone: Vec<String> = self
            .scheduled
            .keys()
            .filter(|id| !present.contains(id.as_str()))
            .cloned()
            .collect();
        for id in &gone {
            changed = true;
            self.scheduled.remove(id);
            app.scheduler.remove(id);
            app.ingest.invalidate(id).await;
        }
        self.reconciled_at = Some(tokio::time::Instant::now());
        Ok(changed)
    }

    /// Schedule (or stop probing) one server as written; false if already scheduled so.
    async fn apply(&mut self, app: &ClusterParts, s: &ServerRecord) -> bool {
        if self.scheduled.get(&s.id) == Some(&s.updated_at) {
            return false;
        }
        // The first load keeps every server's regular offset (no probe storm at start or
        // take-over); a server added later through a standby is probed at once.
        let first = self.reconciled_at.is_none();
        let known = self.scheduled.insert(s.id.clone(), s.updated_at).is_some();
        app.ingest.invalidate(&s.id).await;
        if s.paused || !app.probes_locally(s) {
            app.scheduler.remove(&s.id);
            return true;
        }
        match crate::targets::job_for(s, &app.sealer) {
            Ok(job) if first || known => app.scheduler.upsert(job, false),
            // New since the last look: the API that registered it may have probed it
            // already; the scheduler probes it now only if it did not.
            Ok(job) => app.scheduler.upsert_found(job),
            Err(e) => tracing::error!(server = %s.slug, error = ?e, "cannot schedule"),
        }
        true
    }

    /// Stop probing everything (leadership lost), and have the ingest forget what it decided:
    /// the new leader's state is in the database.
    async fn clear(&mut self, app: &ClusterParts) {
        for id in self.scheduled.keys() {
            app.scheduler.remove(id);
            app.ingest.forget(id).await;
        }
        *self = Feed::default();
    }
}

/// A ring of the change doorbell, or never when there is none.
async fn rung(bell: Option<&Arc<Notify>>) {
    match bell {
        Some(bell) => bell.notified().await,
        None => std::future::pending().await,
    }
}

/// Lead when possible, stand by otherwise, until `stop`. `lease` is leadership taken at
/// start (the daemon tries once before it serves). A leader whose database does not answer
/// keeps leading: its scheduler keeps probing and its ingest holds the results.
pub async fn run(
    app: ClusterParts,
    mut lease: Option<Box<dyn LeaderLease>>,
    stop: CancellationToken,
) {
    let mut feed = Feed::default();
    let bell = app.store.server_changes(stop.clone());
    let mut cut_off = false;
    loop {
        let check = match lease.as_mut() {
            Some(l) => Some(l.renew().await),
            None => None,
        };
        match check {
            Some(LeaseCheck::Held) => {
                if !app.leader.swap(true, Ordering::Relaxed) {
                    let term = lease.as_ref().map(|l| l.term()).unwrap_or(0);
                    app.ingest.set_fence(lease.as_ref().and_then(|l| l.fence()));
                    tracing::info!(
                        term,
                        "leading: probing the built-in region and evaluating results"
                    );
                }
                if std::mem::take(&mut cut_off) {
                    tracing::info!("database reachable again: lease renewed, still leading");
                }
                feed.sync(&app).await;
            }
            Some(LeaseCheck::Unknown(why)) => {
                if !std::mem::replace(&mut cut_off, true) {
                    tracing::warn!(error = %why, "database unreachable: still leading, probing goes on and results wait");
                }
            }
            Some(LeaseCheck::Lost) => {
                tracing::error!("another replica took the lease: standing by");
                lease = None;
                cut_off = false;
                app.leader.store(false, Ordering::Relaxed);
                feed.clear(&app).await;
            }
            None => match app.store.try_lead().await {
                Ok(Some(l)) => {
                    lease = Some(l);
                    continue;
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "cannot try for leadership"),
            },
        }
        let tick = tokio::time::sleep(EVERY);
        tokio::pin!(tick);
        loop {
            tokio::select! {
                _ = &mut tick => break,
                // A server written through another replica: follow it now, not at the tick.
                _ = rung(bell.as_ref()) => {
                    if lease.is_some() && !cut_off {
                        feed.sync(&app).await;
                    }
                }
                _ = stop.cancelled() => {
                    // A graceful stop hands over at once instead of after the lease's expiry.
                    if let Some(mut l) = lease {
                        l.release().await;
                    }
                    return;
                }
            }
        }
    }
}
