//! The one way in for results (the built-in region and remote agents).
//!
//! A single task takes results from a bounded channel, has each judged by its server's
//! [`Monitor`] (cached in memory: no database read per probe), routes the events the monitor
//! decided (channels, maintenance windows, flapping holds), and writes the batch (results,
//! states, events, incidents, snapshots) in one transaction. If the database is down, the
//! batch is retried with backoff and kept; new results wait in the channel and, past its
//! bound, in the spill on disk (`spill.rs`), so probing never waits on the database; readiness
//! reports the outage. API changes reach the cache through the same channel, so they are
//! ordered with the results.
//!
//! Among several replicas, the ingest decides only the servers of the buckets this replica
//! owns (`crate::shard`); a result for any other server (an agent's push or a check that came
//! through this replica, a probe that finished after its bucket moved) is handed off to the
//! owner through the database (`handoff.rs`), in the same transaction as the batch.
//!
//! - `contract.rs`: drift of resources, resource templates and prompts (per kind).
//! - `intern.rs`: one shared copy of the region names and versions every server's state holds.
//! - `recent.rs`: the result ids taken lately, to drop a re-sent copy.
//! - `regions.rs`: which regions a server's quorum counts (the live ones meant to probe it).
//! - `handoff.rs`: a result for another replica, as a row of the `handoff` table.
//! - `spill.rs`: the overflow to disk, bounded by bytes, read back oldest first.
//! - `watched.rs`: the compact copy of each server's settings the cache keeps (what deciding,
//!   routing and alerts read).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

mod contract;
pub mod handoff;
mod intern;
mod recent;
mod regions;
pub mod spill;
mod watched;

use intern::Interner;
use recent::RecentIds;
use watched::Watched;

pub use spill::Spill;

use crate::alert::maintenance::Schedule;
use crate::metrics::Metrics;
use crate::monitor::{
    EventKind, IncidentChange, Monitor, Observation, Outcome, Policy, ServerState, ServerStatus,
};
use crate::probe::{ProbeReport, Verdict};
use crate::schema;
use crate::store::{
    BatchWrites, ChannelRecord, DeliveryRecord, EventRecord, HeldRecord, IncidentRecord,
    ResultRecord, SchemaChangeRecord, SnapshotRecord, Store, WindowRecord,
};

/// Result ids remembered to drop a re-sent result that is not committed yet (`recent.rs`):
/// the latest 100,000 to 200,000, one to two minutes of results at 100,000 servers, where an
/// agent retries within 20 s.
const RECENT_IDS: usize = 200_000;

/// A result or server id as a 128-bit key.
fn id_key(id: &str) -> u128 {
    if let Ok(uuid) = uuid::Uuid::parse_str(id) {
        return uuid.as_u128();
    }
    use std::hash::{BuildHasher, Hasher};
    // Two independent SipHash keys: a collision (two ids taken for one) needs 128 bits.
    let half = |seed: u64| {
        let mut h =
            std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default()
                .build_hasher();
        h.write_u64(seed);
        h.write(id.as_bytes());
        h.finish()
    };
    (u128::from(half(0x6d63_7077)) << 64) | u128::from(half(0x6174_6368))
}

/// Most results written in one transaction.
const MAX_BATCH: usize = 500;

/// How long a batch waits for more results after its first (group commit). Without it, a
/// steady 200 probes/s arrive one by one and make 200 transactions a second; with it, ten
/// or so: measured on Postgres, the database's CPU fell from ~44 % of a core to ~10 %
/// (`benches/fleet`). A result is stored at most this much later; a flush is answered as soon
/// as it arrives in the batch.
const LINGER: Duration = Duration::from_millis(50);

/// A batch: `first`, then whatever arrives within [`LINGER`], up to [`MAX_BATCH`]. A flush
/// or a closed channel ends the wait at once.
async fn gather(first: Msg, rx: &mut mpsc::Receiver<Msg>) -> Vec<Msg> {
    let deadline = tokio::time::Instant::now() + LINGER;
    let mut batch = vec![first];
    while batch.len() < MAX_BATCH && !matches!(batch.last(), Some(Msg::Flush(_))) {
        match rx.try_recv() {
            Ok(m) => batch.push(m),
            Err(mpsc::error::TryRecvError::Disconnected) => break,
            Err(mpsc::error::TryRecvError::Empty) => {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(m)) => batch.push(m),
                    Ok(None) | Err(_) => break,
                }
            }
        }
    }
    batch
}

/// One probe result from one region.
#[derive(Debug)]
pub struct IngestItem {
    pub result_id: String,
    pub server_id: String,
    pub region: String,
    pub started_at: i64,
    pub report: ProbeReport,
    /// From an agent whose canaries were failing: stored, but it moves no state.
    pub vantage_unhealthy: bool,
}

enum Msg {
    Result(Box<IngestItem>),
    /// The server's settings changed or it was deleted: reload them on next use, keeping what
    /// the monitor decided.
    Invalidate(String),
    /// Another replica decides now: forget the server's state too (reloaded on next use).
    Forget(String),
    /// Paused or resumed by an operator.
    Paused {
        server_id: String,
        paused: bool,
        at: i64,
    },
    /// Channels or maintenance windows changed: reload before routing the next event.
    RoutingChanged,
    /// Reply when everything sent before is committed.
    Flush(oneshot::Sender<()>),
}

/// Health of the write path, for `/readyz` and metrics.
#[derive(Debug, Default)]
pub struct IngestHealth {
    pub database_ok: AtomicBool,
    /// Unix ms when the oldest result not yet stored was probed; 0 while writes go through.
    pub waiting_since_ms: std::sync::atomic::AtomicI64,
    pub committed_results: AtomicU64,
    pub failed_commits: AtomicU64,
}

impl IngestHealth {
    /// A result probed at `started_at` is not stored yet: the wait counts from the oldest.
    fn mark_waiting(&self, started_at: i64) {
        let _ = self
            .waiting_since_ms
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |w| {
                (w == 0 || started_at < w).then_some(started_at)
            });
    }
}

/// Sends results and changes to the ingest task.
#[derive(Clone)]
pub struct IngestHandle {
    tx: mpsc::Sender<Msg>,
    pub health: Arc<IngestHealth>,
    spill: Option<Arc<Spill>>,
}

impl IngestHandle {
    /// Queue a result. With a spill it never waits: past the queue's bound the result goes
    /// to disk (a segment write, about a millisecond, once per thousand results or so).
    /// Without one it waits while the queue is full (back-pressure, never a drop).
    pub async fn submit(&self, item: IngestItem) -> Result<(), IngestClosed> {
        match &self.spill {
            Some(spill) => spill.submit(&self.tx, Box::new(item)),
            None => self
                .tx
                .send(Msg::Result(Box::new(item)))
                .await
                .map_err(|_| IngestClosed),
        }
    }

    /// Results spilled to disk, not yet taken back, and the spill's bytes and bound.
    pub fn spilled(&self) -> Option<(usize, u64, u64)> {
        let spill = self.spill.as_ref()?;
        let (bytes, bound) = spill.usage();
        Some((spill.len(), bytes, bound))
    }

    /// Spilled results dropped (past the bound, or unreadable) since the start.
    pub fn spill_dropped(&self) -> u64 {
        self.spill
            .as_ref()
            .map_or(0, |s| s.dropped.load(Ordering::Relaxed))
    }

    /// The server's settings changed (or it was deleted).
    pub async fn invalidate(&self, server_id: &str) {
        let _ = self.tx.send(Msg::Invalidate(server_id.to_string())).await;
    }

    /// Leadership moved: what this node decided about the server is no longer the truth.
    pub async fn forget(&self, server_id: &str) {
        let _ = self.tx.send(Msg::Forget(server_id.to_string())).await;
    }

    pub async fn set_paused(&self, server_id: &str, paused: bool, at: i64) {
        let _ = self
            .tx
            .send(Msg::Paused {
                server_id: server_id.to_string(),
                paused,
                at,
            })
            .await;
    }

    /// Channels or maintenance windows changed.
    pub async fn routing_changed(&self) {
        let _ = self.tx.send(Msg::RoutingChanged).await;
    }

    /// Messages queued, not yet taken into a batch.
    pub fn queue_depth(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// How long the oldest result not yet stored has waited, if writes are failing.
    pub fn waiting(&self, now_ms: i64) -> Option<Duration> {
        let since = self.health.waiting_since_ms.load(Ordering::Relaxed);
        (since != 0).then(|| Duration::from_millis(now_ms.saturating_sub(since).max(0) as u64))
    }

    /// Wait until everything queued before this call is committed.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

/// The ingest task has stopped.
#[derive(Debug, thiserror::Error)]
#[error("the ingest path is shut down")]
pub struct IngestClosed;

/// Where events go: channels, and the maintenance windows that hold them.
struct Routing {
    channels: Vec<ChannelRecord>,
    windows: Vec<(WindowRecord, Schedule)>,
}

impl Routing {
    async fn load(store: &dyn Store) -> Result<Self, crate::store::StoreError> {
        let channels = store.list_channels().await?;
        let windows = store
            .list_windows()
            .await?
            .into_iter()
            .filter_map(|w| {
                let schedule = crate::alert::maintenance::schedule_of(&w).ok()?;
                Some((w, schedule))
            })
            .collect();
        Ok(Routing { channels, windows })
    }

    /// The window (and its occurrence) holding `server`'s alerts at `at`, if any.
    fn window_for(&self, server: &Watched, at: i64) -> Option<(&WindowRecord, (i64, i64))> {
        self.windows.iter().find_map(|(w, schedule)| {
            if !crate::alert::maintenance::covers(&w.server_ids, &w.tags, server) {
                return None;
            }
            schedule.active_at(at).map(|occ| (w, occ))
        })
    }
}

/// The evaluation contexts by server id.
/// Keyed by [`id_key`]: 16 bytes, where the id as a string took 72.
type Cache = HashMap<u128, Box<Cached>>;

/// Cached evaluation context of one server (boxed in the cache: the table's spare room
/// then costs a pointer, not the whole context).
struct Cached {
    server: watched::Watched,
    monitor: Monitor,
    /// The resource, template and prompt lists it serves now (`None`: not read yet).
    contract: Option<Box<contract::Served>>,
}

/// Start the ingest task. It runs until `stop` is cancelled and the channel is drained.
/// `wake` is notified after a batch that wrote outbox rows (the dispatcher's doorbell).
/// With a `spill`, results that do not fit in the `buffer` go to disk instead of making the
/// probes wait.
#[allow(clippy::too_many_arguments)]
pub fn spawn(
    store: Arc<dyn Store>,
    ownership: crate::shard::Ownership,
    buffer: usize,
    spill: Option<Arc<Spill>>,
    stop: CancellationToken,
    wake: Arc<Notify>,
    metrics: Arc<Metrics>,
    silent_after: Duration,
) -> (IngestHandle, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(buffer);
    let health = Arc::new(IngestHealth {
        database_ok: AtomicBool::new(true),
        ..IngestHealth::default()
    });
    let worker = Worker {
        ownership,
        store,
        health: health.clone(),
        stop,
        wake,
        metrics,
        liveness: regions::Liveness::new(silent_after),
        cache: HashMap::new(),
        recent: RecentIds::new(RECENT_IDS),
        intern: Interner::default(),
        routing: None,
        spill: spill.clone(),
        waiting_flushes: Vec::new(),
        database_lost_at_stop: false,
    };
    let task = tokio::spawn(worker.run(rx));
    (IngestHandle { tx, health, spill }, task)
}

/// The ingest task's state.
struct Worker {
    /// The buckets this replica decides; each batch carries them as its fence.
    ownership: crate::shard::Ownership,
    store: Arc<dyn Store>,
    health: Arc<IngestHealth>,
    stop: CancellationToken,
    wake: Arc<Notify>,
    metrics: Arc<Metrics>,
    liveness: regions::Liveness,
    cache: Cache,
    recent: RecentIds,
    intern: Interner,
    /// Alert channels and maintenance windows, loaded when first needed and after every change.
    routing: Option<Routing>,
    spill: Option<Arc<Spill>>,
    /// Flushes answered once the spill is taken back too (what they wait for may be there).
    waiting_flushes: Vec<oneshot::Sender<()>>,
    /// Shutting down and the database did not take a batch: the rest goes to the spill.
    database_lost_at_stop: bool,
}

impl Worker {
    async fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        loop {
            if self.stop.is_cancelled() {
                // Shutting down: take what is already queued, then end. The spill stays on
                // disk for the next start.
                rx.close();
            }
            let first = match rx.try_recv() {
                Ok(m) => m,
                Err(mpsc::error::TryRecvError::Disconnected) => break,
                Err(mpsc::error::TryRecvError::Empty) => {
                    // The queue is empty: spilled results (all newer than it) come next.
                    if self.take_back_spilled().await {
                        continue;
                    }
                    for done in self.waiting_flushes.drain(..) {
                        let _ = done.send(());
                    }
                    let next = if self.stop.is_cancelled() {
                        // Closed: `None` once what senders are still pushing has arrived.
                        // (Waiting here, not looping: a loop would starve those senders on
                        // a single-threaded runtime.)
                        rx.recv().await
                    } else {
                        tokio::select! {
                            m = rx.recv() => m,
                            _ = self.stop.cancelled() => {
                                rx.close();
                                rx.recv().await
                            }
                        }
                    };
                    match next {
                        Some(m) => m,
                        None => break,
                    }
                }
            };
            let batch = gather(first, &mut rx).await;
            self.handle(batch).await;
        }
        if let Some(spill) = &self.spill {
            spill.persist();
        }
        for done in self.waiting_flushes.drain(..) {
            let _ = done.send(());
        }
    }

    /// Take back a segment of spilled results, in batches; false when none are spilled.
    async fn take_back_spilled(&mut self) -> bool {
        let Some(spill) = self.spill.clone() else {
            return false;
        };
        if self.stop.is_cancelled() {
            return false;
        }
        let mut items = spill.take().into_iter().peekable();
        if items.peek().is_none() {
            return false;
        }
        while items.peek().is_some() {
            let batch: Vec<Msg> = items
                .by_ref()
                .take(MAX_BATCH)
                .map(|i| Msg::Result(Box::new(i)))
                .collect();
            self.handle(batch).await;
        }
        true
    }

    /// Evaluate a batch and commit everything it changes in one transaction.
    async fn handle(&mut self, batch: Vec<Msg>) {
        if self.database_lost_at_stop {
            return self.keep_for_next_start(batch);
        }
        // One view of what this replica owns for the whole batch: what it decides here is
        // what the batch's fence claims.
        let owned = self.ownership.now();
        prefetch(
            &self.store,
            &mut self.cache,
            &mut self.intern,
            &batch,
            &owned,
        )
        .await;
        let mut writes = BatchWrites {
            fence: owned.fence(),
            ..BatchWrites::default()
        };
        let mut flushes = Vec::new();
        let mut taken = Vec::new();
        for msg in batch {
            match msg {
                Msg::Result(item) if !owned.owns(&item.server_id) => {
                    writes
                        .handoff
                        .push(handoff::encode(&item, crate::clock::now_ms()));
                    taken.push(Msg::Result(item));
                }
                Msg::Result(item) => {
                    if !self.recent.insert(&item.result_id) {
                        // Re-sent while the first copy was still on its way (an agent's
                        // retry after a timeout): counted once.
                        continue;
                    }
                    self.evaluate(&item, &mut writes, &mut taken).await;
                    taken.push(Msg::Result(item));
                }
                Msg::Invalidate(id) => {
                    if let Some(c) = self.cache.get_mut(&id_key(&id)) {
                        c.server.stale = true;
                    }
                }
                Msg::Forget(id) => {
                    self.cache.remove(&id_key(&id));
                }
                Msg::RoutingChanged => self.routing = None,
                // Another replica's server: its owner follows the change (`cluster`).
                Msg::Paused { server_id, .. } if !owned.owns(&server_id) => {}
                Msg::Paused {
                    server_id,
                    paused,
                    at,
                } => {
                    if let Ok(Some(c)) =
                        context(&self.store, &mut self.cache, &mut self.intern, &server_id).await
                        && (c.monitor.state().status == ServerStatus::Paused) != paused
                    {
                        c.monitor.set_paused(paused, at);
                        c.server.paused = paused;
                        writes
                            .server_states
                            .push((server_id, c.monitor.state().clone()));
                    }
                }
                Msg::Flush(done) => flushes.push(done),
            }
        }
        // A failed commit (shutdown without the database) sets `database_lost_at_stop`.
        if !self.database_lost_at_stop && !writes.is_empty() && self.commit(&writes).await {
            if !writes.outbox.is_empty() {
                self.wake.notify_one();
            }
            record_metrics(&self.metrics, &self.cache, &writes);
        }
        if self.database_lost_at_stop {
            self.keep_for_next_start(taken);
        }
        let spilled = self.spill.as_ref().is_some_and(|s| !s.is_empty());
        for done in flushes {
            if spilled {
                self.waiting_flushes.push(done);
            } else {
                let _ = done.send(());
            }
        }
    }

    /// Evaluate one result into `writes`; if its context cannot be loaded (database down),
    /// commit what the batch has so far and retry this one until it loads.
    async fn evaluate(
        &mut self,
        item: &IngestItem,
        writes: &mut BatchWrites,
        taken: &mut Vec<Msg>,
    ) {
        let Err(e) = self.try_evaluate(item, writes).await else {
            return;
        };
        tracing::error!(server_id = %item.server_id, error = %e, "could not load state; result kept for retry");
        // Loading failed (database down): this result now waits, whatever else the batch
        // holds; commit what we have, retry this one.
        self.health.database_ok.store(false, Ordering::Relaxed);
        self.health.mark_waiting(item.started_at);
        if !writes.is_empty() && !self.commit(writes).await {
            self.keep_for_next_start(std::mem::take(taken));
        }
        taken.clear();
        *writes = BatchWrites {
            fence: writes.fence.take(),
            ..BatchWrites::default()
        };
        if self.database_lost_at_stop {
            return;
        }
        let mut backoff = Duration::from_millis(100);
        loop {
            tokio::time::sleep(backoff).await;
            let Err(e) = self.try_evaluate(item, writes).await else {
                return;
            };
            self.health.database_ok.store(false, Ordering::Relaxed);
            tracing::warn!(error = %e, "database unavailable; holding results");
            if self.stop.is_cancelled() && backoff >= Duration::from_millis(800) {
                // The caller keeps `item` with the batch; with the spill it is written there.
                self.database_lost_at_stop = true;
                return;
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    async fn try_evaluate(
        &mut self,
        item: &IngestItem,
        writes: &mut BatchWrites,
    ) -> Result<(), crate::store::StoreError> {
        evaluate_item(
            &self.store,
            &mut self.cache,
            &mut self.intern,
            &mut self.routing,
            &mut self.liveness,
            item,
            writes,
        )
        .await
    }

    /// Commit with retries until it works; false if shutdown gave up on the database.
    async fn commit(&mut self, writes: &BatchWrites) -> bool {
        let committed = commit(&self.store, writes, &self.health, &self.stop).await;
        if !committed {
            self.database_lost_at_stop = true;
        }
        committed
    }

    /// Shutting down without the database: results go to the spill for the next start (or,
    /// without one, are reported lost).
    fn keep_for_next_start(&mut self, batch: Vec<Msg>) {
        let items = batch.into_iter().filter_map(|m| match m {
            Msg::Result(item) => Some(item),
            _ => None,
        });
        let mut lost = 0usize;
        for item in items {
            match &self.spill {
                Some(spill) => spill.keep(&item),
                None => lost += 1,
            }
        }
        if lost > 0 {
            tracing::error!(
                results = lost,
                "shutting down with the database unreachable: results not stored"
            );
        }
    }
}

/// Load every server of the batch that is not cached yet, in two queries (not two per
/// server: after a start or a bulk registration, every first result would otherwise wait on
/// its own reads in this one task). If the database does not answer, each result loads its
/// own context later, with retries.
async fn prefetch(
    store: &Arc<dyn Store>,
    cache: &mut Cache,
    intern: &mut Interner,
    batch: &[Msg],
    owned: &crate::shard::Owned,
) {
    let mut ids: Vec<String> = batch
        .iter()
        .filter_map(|m| match m {
            Msg::Result(item)
                if !cache.contains_key(&id_key(&item.server_id)) && owned.owns(&item.server_id) =>
            {
                Some(item.server_id.clone())
            }
            _ => None,
        })
        .collect();
    ids.sort();
    ids.dedup();
    if ids.is_empty() {
        return;
    }
    let page = crate::store::Page {
        limit: ids.len() as u32,
        after: None,
    };
    let filter = crate::store::ServerFilter {
        ids: Some(ids),
        ..Default::default()
    };
    let Ok(rows) = store.servers_with_state(&filter, &page).await else {
        return;
    };
    for row in rows {
        let state = row
            .state
            .unwrap_or_else(|| ServerState::new(row.server.created_at));
        let monitor = shared_monitor(intern, state, row.regions);
        let cached = Cached {
            server: row.server.into(),
            monitor,
            contract: None,
        };
        cache.insert(id_key(&cached.server.id), Box::new(cached));
    }
}

/// Server states and schema changes of a committed batch, for `/metrics`.
fn record_metrics(metrics: &Metrics, cache: &Cache, writes: &BatchWrites) {
    for (id, state) in &writes.server_states {
        if let Some(c) = cache.get(&id_key(id)) {
            metrics.server_state(c.server.slug(), state.status);
        }
    }
    for e in writes
        .events
        .iter()
        .filter(|e| e.kind == EventKind::SchemaChanged.as_str())
    {
        if let Some(c) = e.server_id.as_ref().and_then(|id| cache.get(&id_key(id))) {
            metrics.schema_changed(c.server.slug());
        }
    }
}

/// Commit with retries until it works; false when shutdown gave up after a while.
async fn commit(
    store: &Arc<dyn Store>,
    writes: &BatchWrites,
    health: &IngestHealth,
    stop: &CancellationToken,
) -> bool {
    let mut backoff = Duration::from_millis(100);
    let mut attempts = 0u32;
    loop {
        match store.commit_batch(writes).await {
            Ok(()) => {
                health.database_ok.store(true, Ordering::Relaxed);
                health.waiting_since_ms.store(0, Ordering::Relaxed);
                health
                    .committed_results
                    .fetch_add(writes.results.len() as u64, Ordering::Relaxed);
                return true;
            }
            Err(e) => {
                attempts += 1;
                health.database_ok.store(false, Ordering::Relaxed);
                if let Some(oldest) = writes.results.iter().map(|r| r.started_at).min() {
                    health.mark_waiting(oldest);
                }
                health.failed_commits.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, results = writes.results.len(), attempts, "batch not committed; retrying");
                // Shutting down: a few tries, then the spill keeps the results for the next
                // start (the drain must not wait on a database that is away).
                if stop.is_cancelled() && attempts >= 4 {
                    tracing::warn!(
                        results = writes.results.len(),
                        "shutting down with the database unreachable: batch not committed"
                    );
                    return false;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

async fn context<'a>(
    store: &Arc<dyn Store>,
    cache: &'a mut Cache,
    intern: &mut Interner,
    server_id: &str,
) -> Result<Option<&'a mut Cached>, crate::store::StoreError> {
    let key = id_key(server_id);
    if cache.get(&key).is_some_and(|c| c.server.stale) {
        match store.get_server(server_id).await? {
            Some(server) => {
                if let Some(c) = cache.get_mut(&key) {
                    c.server = server.into();
                }
            }
            None => {
                cache.remove(&key);
                return Ok(None);
            }
        }
    }
    if let std::collections::hash_map::Entry::Vacant(slot) = cache.entry(key) {
        let Some(server) = store.get_server(server_id).await? else {
            return Ok(None);
        };
        let (state, regions) = store.load_state(server_id).await?;
        let state = state.unwrap_or_else(|| ServerState::new(server.created_at));
        slot.insert(Box::new(Cached {
            server: server.into(),
            monitor: shared_monitor(intern, state, regions),
            contract: None,
        }));
    }
    Ok(cache.get_mut(&key).map(|c| &mut **c))
}

/// A server's monitor over its stored state, holding the shared copies of its region names
/// and versions (the store gave each server its own).
fn shared_monitor(
    intern: &mut Interner,
    mut state: ServerState,
    mut regions: Vec<crate::monitor::RegionState>,
) -> Monitor {
    for version in [&mut state.server_version, &mut state.protocol_version]
        .into_iter()
        .flatten()
    {
        intern.share(version);
    }
    for r in &mut regions {
        intern.share(&mut r.region);
    }
    Monitor::new(state, regions)
}

/// Evaluate one result and add everything it changes to `writes`.
async fn evaluate_item(
    store: &Arc<dyn Store>,
    cache: &mut Cache,
    intern: &mut Interner,
    routing: &mut Option<Routing>,
    liveness: &mut regions::Liveness,
    item: &IngestItem,
    writes: &mut BatchWrites,
) -> Result<(), crate::store::StoreError> {
    let Some(ctx) = context(store, cache, intern, &item.server_id).await? else {
        return Ok(()); // deleted while the probe ran
    };
    let mut record = ResultRecord::from_report(
        item.result_id.clone(),
        &item.server_id,
        &item.region,
        item.started_at,
        &item.report,
    );
    record.vantage_unhealthy = item.vantage_unhealthy;
    writes.results.push(record);
    if ctx.server.paused
        || item.vantage_unhealthy
        || ctx.monitor.superseded(&item.region, item.started_at)
    {
        // Stored, but neither a paused server's state, nor a blind vantage point's view, nor
        // a result overtaken by a newer one from its region moves anything.
        return Ok(());
    }
    learn_era(&mut ctx.server, item, writes);
    let canonical_tools = new_tool_list(ctx.monitor.state(), &item.report);
    let previous_tools =
        previous_tools(store, &item.server_id, ctx.monitor.state(), &item.report).await?;
    let obs = observation(item, canonical_tools.as_ref(), intern);
    let interval_ms = i64::from(ctx.server.interval_seconds) * 1000;
    let reporting = ctx
        .monitor
        .reporting(&item.region, item.started_at, interval_ms);
    liveness.refresh(store.as_ref()).await?;
    let policy = Policy {
        quorum: Some(liveness.quorum(
            ctx.server.regions(),
            ctx.server.quorum.map(u32::from),
            &reporting,
            item.started_at,
        )),
        ..policy_of(&ctx.server)
    };
    let prev = previous_tools.as_ref().and_then(Value::as_array);
    let incident_id = uuid::Uuid::now_v7().to_string();
    let mut outcome = ctx.monitor.observe(
        &policy,
        interval_ms,
        &reporting,
        &obs,
        prev.map(Vec::as_slice),
        &incident_id,
    );
    let list_changes = contract::judge(store, &mut ctx.contract, item, writes).await?;
    outcome.events.extend(list_changes);
    record_tools(item, canonical_tools, &outcome, writes);
    record_incident(item, &outcome, writes);
    let events = event_records(&ctx.server, item, &outcome);
    if !events.is_empty() && routing.is_none() {
        *routing = Some(Routing::load(store.as_ref()).await?);
    }
    route(
        routing.as_ref(),
        &ctx.server,
        outcome.status_before,
        events,
        writes,
    );
    writes
        .region_states
        .push((item.server_id.clone(), outcome.region));
    writes
        .server_states
        .push((item.server_id.clone(), outcome.server));
    Ok(())
}

/// The era a server answered in is tried first next time.
fn learn_era(server: &mut Watched, item: &IngestItem, writes: &mut BatchWrites) {
    let report = &item.report;
    if let Some(era) = report.era.filter(|_| report.verdict != Verdict::Down)
        && server.era_hint != Some(era)
    {
        server.era_hint = Some(era);
        writes
            .era_hints
            .push((item.server_id.clone(), era.as_str().to_string()));
    }
}

/// The canonical tool list of a report whose list is not the one the server serves now (a
/// first list, a change, another region's view), for the diff and the snapshot. The served
/// list, seen again, is known by its hash: canonicalizing it on every probe was a fifth of the
/// daemon's CPU.
fn new_tool_list(state: &ServerState, report: &ProbeReport) -> Option<Value> {
    let hash = report.schema_hash.as_ref()?;
    if state.schema_hash.as_deref() == Some(hash.as_str()) {
        return None;
    }
    schema::canonical_value(&report.tools).ok()
}

/// The tool list of the served hash, when this result moves it (for the diff).
async fn previous_tools(
    store: &Arc<dyn Store>,
    server_id: &str,
    state: &ServerState,
    report: &ProbeReport,
) -> Result<Option<Value>, crate::store::StoreError> {
    match (&state.schema_hash, &report.schema_hash) {
        (Some(old), Some(new)) if **old != **new => {
            Ok(store.get_snapshot(server_id, old).await?.map(|s| s.tools))
        }
        _ => Ok(None),
    }
}

/// The server's settings the state machine judges by (the quorum is resolved per result).
fn policy_of(server: &Watched) -> Policy {
    Policy {
        failures_to_down: server.failures_to_down.into(),
        successes_to_up: server.successes_to_up.into(),
        has_credentials: server.has_credentials,
        expect_auth: server.expect_auth,
        quorum: server.quorum.map(u32::from),
    }
}

/// A result as the state machine sees it.
fn observation(
    item: &IngestItem,
    canonical_tools: Option<&Value>,
    intern: &mut Interner,
) -> Observation {
    let report = &item.report;
    Observation {
        region: intern.get(&item.region),
        at: item.started_at,
        verdict: report.verdict,
        failure: report
            .failure
            .as_ref()
            .map(|f| json!({"kind": f.kind, "phase": f.phase, "message": f.message})),
        schema_hash: report.schema_hash.as_deref().map(Arc::from),
        server_version: report.server_info.as_ref().map(|s| intern.get(&s.version)),
        protocol_version: report.protocol_version.as_deref().map(|v| intern.get(v)),
        tools: canonical_tools
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
    }
}

/// Every sighting of a tool list (the store sends a list whole only when it is new), and
/// every move of the served list in the history, as the events tell it (a return to an
/// earlier list included).
fn record_tools(
    item: &IngestItem,
    canonical_tools: Option<Value>,
    outcome: &Outcome,
    writes: &mut BatchWrites,
) {
    match (&item.report.schema_hash, canonical_tools) {
        (Some(hash), Some(tools)) => writes.snapshots.push(SnapshotRecord {
            server_id: item.server_id.clone(),
            hash: hash.clone(),
            interface_hash: item.report.interface_hash.clone().unwrap_or_default(),
            tools,
            first_seen: item.started_at,
            last_seen: item.started_at,
        }),
        // The list the server serves: stored when it first came (see `new_tool_list`).
        (Some(hash), None) => {
            writes
                .sightings
                .push((item.server_id.clone(), hash.clone(), item.started_at))
        }
        (None, _) => {}
    }
    if let Some(m) = &outcome.schema_move {
        writes.schema_changes.push(SchemaChangeRecord {
            server_id: item.server_id.clone(),
            at: item.started_at,
            from_hash: m.from.clone(),
            to_hash: m.to.clone(),
            class: m.class.clone(),
            summary: m.summary.clone(),
        });
    }
}

fn record_incident(item: &IngestItem, outcome: &Outcome, writes: &mut BatchWrites) {
    match &outcome.incident {
        Some(IncidentChange::Open { id, kind, cause }) => {
            writes.incidents_opened.push(IncidentRecord {
                id: id.clone(),
                server_id: item.server_id.clone(),
                kind: kind.as_str().to_string(),
                cause: cause.clone(),
                opened_at: item.started_at,
                closed_at: None,
            })
        }
        Some(IncidentChange::Close { id }) => {
            writes
                .incidents_closed
                .push((id.clone(), item.server_id.clone(), item.started_at))
        }
        None => {}
    }
}

/// The outcome's events as stored: with the server as alerts show it, the result that
/// decided them, and `held_by_flapping` on those flapping holds.
fn event_records(server: &Watched, item: &IngestItem, outcome: &Outcome) -> Vec<EventRecord> {
    let server_json = server.event_json();
    outcome
        .events
        .iter()
        .map(|d| {
            let mut payload = d.event.data.clone();
            payload["server"] = server_json.clone();
            payload["result_id"] = json!(item.result_id);
            if d.held_by_flapping {
                payload["held_by_flapping"] = json!(true);
            }
            tracing::info!(server_id = %item.server_id, region = %item.region, event = d.event.kind.as_str(), "event");
            EventRecord {
                id: uuid::Uuid::now_v7().to_string(),
                server_id: Some(item.server_id.clone()),
                kind: d.event.kind.as_str().to_string(),
                at: d.event.at,
                payload,
            }
        })
        .collect()
}

/// Queue each event's alerts: one outbox row per matching channel, unless flapping holds it
/// or a maintenance window does (the event is kept; the state before the window is
/// remembered for the summary when it ends).
fn route(
    routing: Option<&Routing>,
    server: &Watched,
    status_before: ServerStatus,
    mut events: Vec<EventRecord>,
    writes: &mut BatchWrites,
) {
    for event in &mut events {
        let Some(routing) = routing else { break };
        if event.payload["held_by_flapping"] == json!(true) {
            continue;
        }
        if let Some((window, (start, end))) = routing.window_for(server, event.at) {
            event.payload["held_by_maintenance"] = json!(window.name);
            writes.held.push(HeldRecord {
                window_id: window.id.clone(),
                occurrence_start: start,
                occurrence_end: end,
                server_id: server.id.to_string(),
                state_before: status_before.as_str().to_string(),
            });
            continue;
        }
        for channel in &routing.channels {
            if crate::alert::routes_to(channel, &event.kind, server)
                && crate::alert::drift_wanted(channel, &event.kind, &event.payload)
            {
                writes
                    .outbox
                    .push(DeliveryRecord::pending(&event.id, &channel.id, event.at));
            }
        }
    }
    writes.events.extend(events);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cached_server_fits_a_192_byte_allocation() {
        // One for every server decided here; the allocator's next size class is 224 bytes
        // (and it was 320 with the settings as separate strings).
        assert!(
            std::mem::size_of::<Cached>() <= 192,
            "{}",
            std::mem::size_of::<Cached>()
        );
    }
}
