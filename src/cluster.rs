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
//! Every few seconds the leader renews its lease and re-reads the servers, so changes made
//! through a standby reach its scheduler, its ingest cache and the agents' long polls. When the
//! leader stops renewing (SIGKILL, cut off) a standby takes the lease once it expires, within
//! `LEASE_TTL_SECONDS` plus `EVERY`, and loads the servers; a graceful stop releases it at once.
//! A leader that cannot reach the database keeps leading and probing (results wait in its
//! ingest) until the database answers again.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::ingest::IngestHandle;
use crate::scheduler::SchedulerHandle;
use crate::secrets::Sealer;
use crate::store::Store;

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

/// How often leadership is tried or checked, and the servers re-read.
const EVERY: Duration = Duration::from_secs(2);

/// What the leader's scheduler holds: server id → the `updated_at` it was scheduled with.
type Scheduled = HashMap<String, i64>;

/// Bring the scheduler and the ingest cache in line with the servers table.
async fn sync(app: &ClusterParts, scheduled: &mut Scheduled) {
    let servers = match app.store.all_servers().await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read servers; keeping the schedule");
            return;
        }
    };
    let mut changed = false;
    // The first load keeps every server's regular offset (no probe storm at start or
    // take-over); a server added later through a standby is probed at once.
    let first = scheduled.is_empty();
    let mut seen = HashMap::with_capacity(servers.len());
    for s in &servers {
        seen.insert(s.id.clone(), s.updated_at);
        if scheduled.get(&s.id) == Some(&s.updated_at) {
            continue;
        }
        changed = true;
        app.ingest.invalidate(&s.id).await;
        if s.paused || !app.probes_locally(s) {
            app.scheduler.remove(&s.id);
        } else {
            match crate::targets::job_for(s, &app.sealer) {
                Ok(job) if first || scheduled.contains_key(&s.id) => {
                    app.scheduler.upsert(job, false)
                }
                // New since the last re-read: the API that registered it may have probed it
                // already; the scheduler probes it now only if it did not.
                Ok(job) => app.scheduler.upsert_found(job),
                Err(e) => tracing::error!(server = %s.slug, error = ?e, "cannot schedule"),
            }
        }
    }
    for id in scheduled.keys().filter(|id| !seen.contains_key(*id)) {
        changed = true;
        app.scheduler.remove(id);
        app.ingest.invalidate(id).await;
    }
    if changed {
        app.agent_config_changed();
    }
    // Channels and maintenance windows may have changed through a standby: the ingest reloads
    // them before routing its next event.
    app.ingest.routing_changed().await;
    *scheduled = seen;
}

/// Lead when possible, stand by otherwise, until `stop`. `lease` is leadership taken at
/// start (the daemon tries once before it serves). A leader whose database does not answer
/// keeps leading: its scheduler keeps probing and its ingest holds the results.
pub async fn run(
    app: ClusterParts,
    mut lease: Option<Box<dyn LeaderLease>>,
    stop: CancellationToken,
) {
    let mut scheduled = Scheduled::new();
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
                    tracing::info!(
                        term,
                        "leading: probing the built-in region and evaluating results"
                    );
                }
                if std::mem::take(&mut cut_off) {
                    tracing::info!("database reachable again: lease renewed, still leading");
                }
                sync(&app, &mut scheduled).await;
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
                for id in scheduled.keys() {
                    app.scheduler.remove(id);
                }
                scheduled.clear();
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
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
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
