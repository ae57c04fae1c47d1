//! Several `serve` replicas on one Postgres share the servers (see `crate::shard` and
//! `store::cluster_sql`).
//!
//! Every 2 s each replica renews its heartbeat, reads the live replicas, and settles its
//! bucket leases: it lets go of the buckets rendezvous hashing now gives to another live
//! replica, renews the rest, and takes the free or expired ones it should have. It probes and
//! decides the servers of its buckets (its ingest is the only writer of their state), so N
//! replicas carry N times the fleet. When a replica dies (even by SIGKILL) its heartbeat and
//! leases expire within `LEASE_TTL_SECONDS`, and the others take its buckets at their next
//! look; a graceful stop gives them up once its last results are stored. A replica that
//! cannot reach the database keeps its buckets and keeps probing (results wait in its ingest):
//! nobody can take them without the database either.
//!
//! One replica also holds the `leader` lease and runs the singletons (retention, reminders,
//! maintenance summaries). Deliveries are claimed row by row by any replica, and
//! `region.silent` is a conditional update, so those stay exactly once wherever they run.
//! Results a replica takes for another's servers reach their owner through the database
//! (`handoff.rs`); changes to servers reach every replica by the change feed (`feed.rs`; on
//! Postgres a `NOTIFY` rings it at once). On SQLite the one node owns everything.
//!
//! - `feed.rs`: the servers table → this replica's scheduler and ingest cache.
//! - `handoff.rs`: results handed off by other replicas → this replica's ingest.
//!
//! [`while_leading`] is the loop of the leader's periodic singletons (objectives, credentials).

mod feed;
mod handoff;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::ingest::IngestHandle;
use crate::metrics::Metrics;
use crate::scheduler::SchedulerHandle;
use crate::secrets::Sealer;
use crate::shard::Ownership;
use crate::store::{LeaderLease, LeaseCheck, ServerRecord, Store};
use feed::Feed;

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
    /// Set while this replica holds the leader lease.
    pub leader: Arc<AtomicBool>,
    /// The buckets this replica holds (set here, read by the ingest and the API).
    pub ownership: Ownership,
    pub metrics: Arc<Metrics>,
    /// Bumped when what agents probe changed.
    pub agent_config: Arc<tokio::sync::watch::Sender<u64>>,
}

impl ClusterParts {
    fn probes_locally(&self, s: &ServerRecord) -> bool {
        self.probe_locally && s.probed_from(&self.region) && self.ownership.owns(&s.id)
    }

    fn agent_config_changed(&self) {
        self.agent_config.send_modify(|v| *v += 1);
    }
}
/// How often leases are renewed or tried, and changed servers looked for.
const EVERY: Duration = Duration::from_secs(2);

/// A ring of the change doorbell, or never when there is none.
async fn rung(bell: Option<&Arc<Notify>>) {
    match bell {
        Some(bell) => bell.notified().await,
        None => std::future::pending().await,
    }
}

/// The leader lease (the singletons), renewed or tried at every look.
struct Leadership {
    lease: Option<Box<dyn LeaderLease>>,
    /// The database did not answer the last renewal.
    cut_off: bool,
}

impl Leadership {
    /// Renew the lease or try for it; false when the database did not answer.
    async fn step(&mut self, app: &ClusterParts) -> bool {
        let Some(lease) = self.lease.as_mut() else {
            return match app.store.try_lead(&app.ownership.holder()).await {
                Ok(Some(l)) => {
                    self.lead(app, l);
                    true
                }
                Ok(None) => true,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot try for the leader lease");
                    false
                }
            };
        };
        match lease.renew().await {
            LeaseCheck::Held => {
                if std::mem::take(&mut self.cut_off) {
                    tracing::info!("database reachable again: leader lease renewed");
                }
                true
            }
            LeaseCheck::Unknown(why) => {
                if !std::mem::replace(&mut self.cut_off, true) {
                    tracing::warn!(error = %why, "database unreachable: probing goes on and results wait");
                }
                false
            }
            LeaseCheck::Lost => {
                tracing::error!("another replica took the leader lease");
                self.lease = None;
                self.cut_off = false;
                app.leader.store(false, Ordering::Relaxed);
                app.metrics.cluster.leader_term.set(0);
                true
            }
        }
    }

    fn lead(&mut self, app: &ClusterParts, lease: Box<dyn LeaderLease>) {
        tracing::info!(
            term = lease.term(),
            "leading: running retention, reminders and maintenance summaries"
        );
        app.metrics.cluster.leader_term.set(lease.term());
        app.leader.store(true, Ordering::Relaxed);
        self.lease = Some(lease);
    }
}

/// Renew the heartbeat and settle the bucket leases; move the servers of buckets that moved.
/// False when the database did not answer (everything held is kept).
async fn settle(app: &ClusterParts, feed: &mut Feed) -> bool {
    let me = app.ownership.holder();
    let live = match app.store.heartbeat(&me).await {
        Ok(live) => live,
        Err(e) => {
            tracing::debug!(error = %e, "heartbeat not renewed; keeping the buckets");
            return false;
        }
    };
    app.metrics.cluster.replicas_live.set(live.len() as i64);
    let want = crate::shard::wanted(&me, &live);
    let held = match app.store.settle_buckets(&me, &want).await {
        Ok(held) => held,
        Err(e) => {
            tracing::debug!(error = %e, "bucket leases not renewed; keeping the buckets");
            return false;
        }
    };
    let before = app.ownership.now().terms;
    // A bucket held again under another term was someone else's meanwhile: lost and gained.
    let lost: BTreeSet<u16> = before
        .iter()
        .filter(|(b, t)| held.get(b) != Some(t))
        .map(|(b, _)| *b)
        .collect();
    let gained: BTreeSet<u16> = held
        .iter()
        .filter(|(b, t)| before.get(b) != Some(t))
        .map(|(b, _)| *b)
        .collect();
    if lost.is_empty() && gained.is_empty() {
        return true;
    }
    tracing::info!(
        gained = gained.len(),
        lost = lost.len(),
        owned = held.len(),
        replicas = live.len(),
        "buckets moved"
    );
    let counter = |change: &str, n: usize| {
        app.metrics
            .cluster
            .bucket_handovers
            .with_label_values(&[change])
            .inc_by(n as u64)
    };
    counter("gained", gained.len());
    counter("lost", lost.len());
    // Lost servers leave the scheduler and the ingest's cache before the ingest stops
    // deciding them; gained ones are scheduled once the ingest decides them.
    feed.release(app, &lost).await;
    app.ownership.set(held);
    if let Err(e) = feed.take(app, &gained).await {
        tracing::warn!(error = %e, "cannot load the servers of new buckets; the next look will");
    }
    let bucket = crate::shard::bucket_of;
    let exported = export_states(
        app.store.as_ref(),
        &app.metrics,
        |id| gained.contains(&bucket(id)),
        |id| lost.contains(&bucket(id)),
    );
    if let Err(e) = exported.await {
        tracing::warn!(error = %e, "cannot read the states of the servers that moved");
    }
    true
}

/// The per-server state series of `/metrics` are this replica's own servers' (another
/// replica's would go stale here): set from the database for the servers `arriving` (at start,
/// or when buckets arrive), dropped for those `leaving`.
pub async fn export_states(
    store: &dyn Store,
    metrics: &Metrics,
    arriving: impl Fn(&str) -> bool,
    leaving: impl Fn(&str) -> bool,
) -> Result<(), crate::store::StoreError> {
    use crate::monitor::ServerStatus;
    for row in store.all_states().await? {
        let s = &row.server;
        if leaving(&s.id) {
            metrics.forget_server(&s.slug);
        } else if arriving(&s.id) {
            let status = match &row.state {
                _ if s.paused => ServerStatus::Paused,
                Some(state) => state.status,
                None => ServerStatus::Unknown,
            };
            metrics.server_state(&s.slug, status);
        }
    }
    Ok(())
}

/// Take this replica's buckets before it serves (a single Postgres node takes them all), so
/// its first servers are probed and decided here from the start. A failure is left to the
/// loop, which tries every 2 s.
pub async fn claim_at_start(store: &dyn Store, ownership: &Ownership) {
    if !ownership.is_sharded() {
        return;
    }
    let me = ownership.holder();
    let Ok(live) = store.heartbeat(&me).await else {
        return;
    };
    if let Ok(held) = store
        .settle_buckets(&me, &crate::shard::wanted(&me, &live))
        .await
    {
        ownership.set(held);
    }
}

/// Hold what this replica should, follow the servers, until `stop`. `lease` is the leader
/// lease taken at start (the daemon tries once before it serves). Returns the leader lease
/// still held, for the caller to release once the last results are stored (a graceful stop);
/// the bucket leases likewise go with `Store::leave`.
pub async fn run(
    app: ClusterParts,
    lease: Option<Box<dyn LeaderLease>>,
    stop: CancellationToken,
) -> Option<Box<dyn LeaderLease>> {
    if let Some(l) = &lease {
        app.metrics.cluster.leader_term.set(l.term());
    }
    let sharded = app.ownership.is_sharded();
    let mut leadership = Leadership {
        lease,
        cut_off: false,
    };
    let mut feed = Feed::default();
    let bell = app.store.server_changes(stop.clone());
    if sharded {
        tokio::spawn(handoff::drain(app.clone(), stop.clone()));
    }
    // Looks start every 2 s however long one takes (a sleep after the work would stretch the
    // period by the work, and with it how long a dead replica's buckets wait for a new owner).
    let mut every = tokio::time::interval(EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    every.tick().await;
    loop {
        let reachable = !sharded || settle(&app, &mut feed).await;
        let reachable = leadership.step(&app).await && reachable;
        if reachable {
            feed.sync(&app).await;
        }
        loop {
            tokio::select! {
                _ = every.tick() => break,
                // A server written through another replica: follow it now, not at the tick.
                _ = rung(bell.as_ref()) => {
                    if reachable {
                        feed.sync(&app).await;
                    }
                }
                _ = stop.cancelled() => return leadership.lease,
            }
        }
    }
}

/// Run `tick` every `period` while `leader` is set, until `stop`; a failed tick is logged as
/// `what` and tried again next period. The loop of the leader's periodic singletons.
pub async fn while_leading<T, E, Fut>(
    (period, what): (Duration, &str),
    leader: Arc<AtomicBool>,
    stop: tokio_util::sync::CancellationToken,
    mut tick: impl FnMut() -> Fut,
) where
    Fut: std::future::Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    let mut timer = tokio::time::interval(period);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = timer.tick() => {}
        }
        if !leader.load(Ordering::Relaxed) {
            continue;
        }
        if let Err(e) = tick().await {
            tracing::warn!(error = %e, "{what} failed; trying again in {period:?}");
        }
    }
}
