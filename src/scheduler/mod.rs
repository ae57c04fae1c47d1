//! When each server is probed, in one region.
//!
//! One task keeps a min-heap of due times (not a sleeping task per server). Each server's
//! ticks are aligned to the wall clock at an offset derived from its id, so servers spread
//! over the interval and every region probes a given server at about the same moment. A server
//! never has two probes in flight: a probe that overruns skips ticks instead of queueing a
//! burst. Probes run on spawned tasks under a concurrency bound; scheduling lag (due → start)
//! is measured. Changes arrive as [`Command`]s and take effect at once.
//!
//! The probe and the destination of its report are traits ([`Runner`], [`Sink`]): `serve` uses
//! the real prober and the local ingest, the agent an HTTP push, tests a stub.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use url::Url;

use crate::probe::{Era, EraChoice, ProbeReport, ProbeTarget, Prober};

/// One server to probe, as the scheduler holds it: compact, since it holds one for every
/// server (issue 12: about 2 KiB a server in all). A whole [`ProbeTarget`] with its parsed URL
/// is about 330 bytes with its strings; this keeps the URL as text, the times as milliseconds
/// and the rarely set options behind one pointer (80 bytes, 96 with its `Arc`), and rebuilds
/// the target for each probe (about a microsecond).
#[derive(Clone)]
pub struct Job {
    /// Shared with the scheduler's table and heap (one allocation a server).
    pub server_id: Arc<str>,
    /// For metrics labels and logs.
    pub slug: Box<str>,
    /// The interval and the server's offset within it, in milliseconds (the offset is a
    /// SHA-256 of the id: computed once here, not twice a probe).
    interval_ms: u32,
    offset_ms: u32,
    target: CompactTarget,
}

/// A [`ProbeTarget`] with only the URL and the common options inline.
#[derive(Clone)]
struct CompactTarget {
    url: Box<str>,
    /// The whole target when it has anything else (headers, OAuth, calls, other limits, or
    /// a URL whose text would not parse back to it): most servers have none of these.
    rare: Option<Box<ProbeTarget>>,
    timeout_ms: u32,
    degraded_after_ms: Option<u32>,
    era: EraChoice,
    list_contract: bool,
}

/// A duration in whole milliseconds, saturating (about 49 days: past any interval).
fn millis(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

impl CompactTarget {
    fn new(target: ProbeTarget) -> Self {
        let plain = ProbeTarget::new(target.url.clone());
        let common = target.headers.is_empty()
            && target.oauth.is_none()
            && target.calls.is_none()
            && target.body_cap == plain.body_cap
            && target.max_pages == plain.max_pages
            && target.follow_post_redirects == plain.follow_post_redirects
            && Url::parse(target.url.as_str()).as_ref() == Ok(&target.url)
            && Duration::from_millis(millis(target.timeout).into()) == target.timeout
            && target
                .degraded_after
                .is_none_or(|d| Duration::from_millis(millis(d).into()) == d);
        CompactTarget {
            url: target.url.as_str().into(),
            timeout_ms: millis(target.timeout),
            era: target.era,
            degraded_after_ms: target.degraded_after.map(millis),
            list_contract: target.list_contract,
            rare: (!common).then(|| Box::new(target)),
        }
    }

    fn expand(&self) -> ProbeTarget {
        // The URL is parsed only when no whole target is kept: that is the common case, and a
        // kept target already holds its parsed URL (and its times to the nanosecond).
        match &self.rare {
            Some(whole) => {
                let mut target = (**whole).clone();
                target.era = self.era;
                target
            }
            None => match Url::parse(&self.url) {
                Ok(url) => {
                    let mut target = ProbeTarget::new(url);
                    target.timeout = Duration::from_millis(self.timeout_ms.into());
                    target.era = self.era;
                    target.degraded_after = self
                        .degraded_after_ms
                        .map(|ms| Duration::from_millis(ms.into()));
                    target.list_contract = self.list_contract;
                    target
                }
                // Not reached: `new` keeps the whole target unless its URL's text parses back.
                Err(_) => unreachable!("a compact target's URL parses"),
            },
        }
    }
}

impl Job {
    pub fn new(server_id: Arc<str>, slug: &str, target: ProbeTarget, interval: Duration) -> Self {
        let interval_ms = millis(interval).max(1);
        Job {
            offset_ms: offset_ms(&server_id, interval_ms),
            server_id,
            slug: slug.into(),
            interval_ms,
            target: CompactTarget::new(target),
        }
    }

    /// The target to probe (built anew for each probe).
    pub fn target(&self) -> ProbeTarget {
        self.target.expand()
    }

    /// The era the next probe tries first.
    pub fn era(&self) -> EraChoice {
        self.target.era
    }

    pub fn interval(&self) -> Duration {
        Duration::from_millis(self.interval_ms.into())
    }
}

impl std::fmt::Debug for Job {
    // The URL may hold secrets (an opened sealed URL): `ProbeTarget`'s own Debug redacts it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("server_id", &self.server_id)
            .field("slug", &self.slug)
            .field("interval", &self.interval())
            .field("target", &self.target())
            .finish()
    }
}

/// The next probe of this job starts with the era its last probe found, so a server known to
/// speak an older era is not sent `server/discover` (and does not spend its discovery budget)
/// on every probe; a forced era stays forced. Takes effect at once, not when the server's row
/// next changes.
fn learn_era(job: &mut Arc<Job>, era: Era) {
    let preferred = EraChoice::Prefer(era);
    if matches!(job.target.era, EraChoice::Force(_)) || job.target.era == preferred {
        return;
    }
    Arc::make_mut(job).target.era = preferred;
}

/// Runs one probe.
#[async_trait]
pub trait Runner: Send + Sync + 'static {
    async fn run(&self, job: &Job) -> ProbeReport;
}

#[async_trait]
impl Runner for Prober {
    async fn run(&self, job: &Job) -> ProbeReport {
        self.probe(&job.target()).await
    }
}

/// Receives each report (the local ingest, or an agent's upload queue).
#[async_trait]
pub trait Sink: Send + Sync + 'static {
    /// `lag`: how late the probe started after its due time; `slot`: the aligned tick it
    /// was due at (unix ms), `None` for a probe run at once. The same server, region and
    /// slot is the same probe wherever it runs (see [`slot_id`]).
    async fn submit(
        &self,
        job: &Job,
        started_at_ms: i64,
        lag: Duration,
        slot: Option<i64>,
        report: ProbeReport,
    );
}

/// The result id of the probe of `server_id` from `region` due at the aligned tick `slot_ms`:
/// the same wherever and however often it runs, so two replicas that both probe one slot
/// during a handover (one of them cut off from the database) store it once. Laid out like
/// a version 7 UUID (the slot's milliseconds first, so ids still sort by time), the rest from
/// a SHA-256 of the three.
pub fn slot_id(server_id: &str, region: &str, slot_ms: i64) -> String {
    let mut h = Sha256::new();
    for part in [server_id.as_bytes(), b"\0", region.as_bytes(), b"\0"] {
        h.update(part);
    }
    h.update(slot_ms.to_be_bytes());
    let digest = h.finalize();
    let mut rand = [0u8; 10];
    rand.copy_from_slice(&digest[..10]);
    uuid::Builder::from_unix_timestamp_millis(slot_ms.max(0) as u64, &rand)
        .into_uuid()
        .to_string()
}

/// Changes to the set of jobs.
#[derive(Debug)]
pub enum Command {
    /// Add or replace a job; `probe_now` runs it at once (a newly registered server).
    /// (Boxed: a job carries a whole probe target; the other commands are small.)
    Upsert {
        job: Box<Job>,
        probe_now: ProbeNow,
    },
    Remove(String),
    /// Internal: a probe finished, having found this era (if any).
    Done {
        /// The job's own id (shared: no copy per probe).
        server_id: Arc<str>,
        generation: u64,
        era: Option<Era>,
    },
}

/// Whether an upserted job runs at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeNow {
    /// At its next regular tick.
    No,
    /// At once (registered or changed through the API).
    Yes,
    /// At once only if the scheduler does not hold it yet (a server found by a re-read, which
    /// the API may already have scheduled and probed: never twice at once).
    IfNew,
}

/// Scheduler counters (the metrics issue exports them).
#[derive(Debug, Default)]
pub struct SchedulerStats {
    pub started: AtomicU64,
    pub skipped_ticks: AtomicU64,
    pub in_flight: AtomicU64,
    /// Servers scheduled here.
    pub jobs: AtomicU64,
    /// Sum and maximum of scheduling lag in microseconds.
    pub lag_sum_us: AtomicU64,
    pub lag_max_us: AtomicU64,
}

/// Sends commands to the scheduler.
#[derive(Clone)]
pub struct SchedulerHandle {
    tx: mpsc::UnboundedSender<Command>,
    pub stats: Arc<SchedulerStats>,
}

impl SchedulerHandle {
    pub fn upsert(&self, job: Job, probe_now: bool) {
        let probe_now = if probe_now {
            ProbeNow::Yes
        } else {
            ProbeNow::No
        };
        let _ = self.tx.send(Command::Upsert {
            job: Box::new(job),
            probe_now,
        });
    }

    /// Upsert a job found by a re-read of the servers: probed at once only if new here.
    pub fn upsert_found(&self, job: Job) {
        let _ = self.tx.send(Command::Upsert {
            job: Box::new(job),
            probe_now: ProbeNow::IfNew,
        });
    }

    pub fn remove(&self, server_id: &str) {
        let _ = self.tx.send(Command::Remove(server_id.to_string()));
    }
}

/// The deterministic offset of a server within its interval (same in every region).
pub fn offset_of(server_id: &str, interval: Duration) -> Duration {
    Duration::from_millis(offset_ms(server_id, millis(interval).max(1)).into())
}

/// [`offset_of`] in milliseconds, for an interval of `interval_ms` (at least 1).
fn offset_ms(server_id: &str, interval_ms: u32) -> u32 {
    let digest = Sha256::digest(server_id.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    // Below `interval_ms`, so it fits.
    (u64::from_be_bytes(first) % u64::from(interval_ms)) as u32
}

/// One job in the table: 32 bytes (with an `Instant` it was 40, and the table holds one a
/// server).
struct Entry {
    job: Arc<Job>,
    generation: u64,
    /// When it runs next ([`Clock::tick`]).
    due: u64,
    in_flight: bool,
}

/// Maps tokio time to wall-clock alignment (fixed at start, so paused-time tests work).
struct Clock {
    anchor: Instant,
    anchor_unix_ms: u64,
}

impl Clock {
    /// `at` as nanoseconds since the anchor: 8 bytes where an `Instant` takes 16, for the
    /// table and the heap, which hold one or two a server. (Scheduled times are never
    /// before the anchor; 2^64 ns is 584 years.)
    fn tick(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.anchor).as_nanos() as u64
    }

    /// The instant of a [`Clock::tick`].
    fn instant(&self, tick: u64) -> Instant {
        self.anchor + Duration::from_nanos(tick)
    }

    fn unix_ms(&self, at: Instant) -> u64 {
        self.anchor_unix_ms + at.saturating_duration_since(self.anchor).as_millis() as u64
    }

    /// `at` as unix ms if it is one of `job`'s aligned ticks.
    fn is_tick(&self, job: &Job, at: Instant) -> Option<i64> {
        let (interval, offset) = (u64::from(job.interval_ms), u64::from(job.offset_ms));
        let ms = self.unix_ms(at);
        (ms + interval - offset % interval)
            .is_multiple_of(interval)
            .then_some(ms as i64)
    }

    /// The first aligned tick of `job` strictly after `now`.
    fn next_tick(&self, job: &Job, now: Instant) -> Instant {
        let (interval, offset) = (u64::from(job.interval_ms), u64::from(job.offset_ms));
        let now_ms = self.unix_ms(now);
        let since_phase = (now_ms + interval - offset % interval) % interval;
        let wait = interval - since_phase;
        now + Duration::from_millis(wait)
    }
}

/// Start the scheduler for `region` on the runtime `on` (its probes run there too). It stops
/// starting probes when `stop` is cancelled; probes in flight are tracked by `tracker` so the
/// caller can drain them.
#[allow(clippy::too_many_arguments)]
pub fn spawn(
    region: String,
    runner: Arc<dyn Runner>,
    sink: Arc<dyn Sink>,
    max_concurrency: usize,
    stop: CancellationToken,
    tracker: TaskTracker,
    on: &tokio::runtime::Handle,
) -> SchedulerHandle {
    let (tx, rx) = mpsc::unbounded_channel();
    let stats = Arc::new(SchedulerStats::default());
    let handle = SchedulerHandle {
        tx: tx.clone(),
        stats: stats.clone(),
    };
    let loop_tracker = tracker.clone();
    loop_tracker.spawn_on(
        run(
            region,
            runner,
            sink,
            max_concurrency,
            stop,
            tracker,
            tx,
            rx,
            stats,
        ),
        on,
    );
    handle
}

/// The jobs of one region: a table by server id and a heap of due times. Ids are shared
/// between the two, so a tick moves a pointer, not a string.
struct Table {
    clock: Clock,
    entries: HashMap<Arc<str>, Entry>,
    /// Due tick, generation, server id: 32 bytes an item.
    heap: BinaryHeap<Reverse<(u64, u64, Arc<str>)>>,
    generation: u64,
}

/// A probe to start now: the job, when it was due, and the generation that scheduled it.
struct Due {
    job: Arc<Job>,
    due: Instant,
    /// The aligned tick it was due at (unix ms); `None` for a probe run at once.
    slot: Option<i64>,
    generation: u64,
}

impl Table {
    fn new(clock: Clock) -> Self {
        Table {
            clock,
            entries: HashMap::new(),
            heap: BinaryHeap::new(),
            generation: 0,
        }
    }

    fn next_due(&self) -> Option<Instant> {
        self.heap
            .peek()
            .map(|Reverse((at, _, _))| self.clock.instant(*at))
    }

    fn upsert(&mut self, job: Job, probe_now: ProbeNow) {
        self.generation += 1;
        let now = Instant::now();
        let known = self.entries.get(&*job.server_id);
        let in_flight = known.is_some_and(|e| e.in_flight);
        let at_once = match probe_now {
            ProbeNow::Yes => true,
            ProbeNow::IfNew => known.is_none(),
            ProbeNow::No => false,
        };
        let mut due = if at_once {
            now
        } else {
            self.clock.next_tick(&job, now)
        };
        // A replaced job keeps a sooner run it already had (a probe-now that has not started
        // yet is not pushed back to the next tick).
        if let Some(k) = known.filter(|k| !k.in_flight && self.clock.instant(k.due) < due) {
            due = self.clock.instant(k.due).max(now);
        }
        let due = self.clock.tick(due);
        let key = self
            .entries
            .get_key_value(&*job.server_id)
            .map_or_else(|| job.server_id.clone(), |(k, _)| k.clone());
        let generation = self.generation;
        self.heap.push(Reverse((due, generation, key.clone())));
        let job = Arc::new(job);
        self.entries.insert(
            key,
            Entry {
                job,
                generation,
                in_flight,
                due,
            },
        );
    }

    /// Give back the heap's spare room once replaced entries have left it: a bulk
    /// registration (each server upserted by the API and again by the feed) doubles it, and a
    /// vector never shrinks by itself (at 100,000 servers that room was ~5 MB).
    fn trim_heap(&mut self) {
        let len = self.heap.len();
        if self.heap.capacity() > 1024 && self.heap.capacity() > len * 2 {
            self.heap.shrink_to(len + len / 4);
        }
    }

    fn remove(&mut self, server_id: &str) {
        self.entries.remove(server_id);
    }

    /// The probe finished, whichever version of the job started it.
    fn done(&mut self, server_id: &str, era: Option<Era>) {
        if let Some(e) = self.entries.get_mut(server_id) {
            e.in_flight = false;
            if let Some(era) = era {
                learn_era(&mut e.job, era);
            }
        }
    }

    /// Every job due by `now`, each rescheduled for its next tick; a job whose previous probe
    /// still runs skips this tick (counted in `skipped`).
    fn take_due(&mut self, now: Instant, region: &str, skipped: &AtomicU64) -> Vec<Due> {
        let mut out = Vec::new();
        let now_tick = self.clock.tick(now);
        while let Some(Reverse((due_tick, g, id))) = self.heap.peek().cloned() {
            if due_tick > now_tick {
                break;
            }
            let due = self.clock.instant(due_tick);
            self.heap.pop();
            let Some(entry) = self.entries.get_mut(&*id) else {
                continue;
            };
            if entry.generation != g {
                continue; // replaced or rescheduled
            }
            let next = self
                .clock
                .tick(self.clock.next_tick(&entry.job, due.max(now)));
            self.heap.push(Reverse((next, g, id.clone())));
            entry.due = next;
            if entry.in_flight {
                skipped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(server_id = %id, region = %region, "previous probe still running; tick skipped");
                continue;
            }
            entry.in_flight = true;
            let slot = self.clock.is_tick(&entry.job, due);
            out.push(Due {
                job: entry.job.clone(),
                due,
                slot,
                generation: g,
            });
        }
        self.trim_heap();
        out
    }
}

/// What every probe task shares.
#[derive(Clone)]
struct Probing {
    runner: Arc<dyn Runner>,
    sink: Arc<dyn Sink>,
    permits: Arc<Semaphore>,
    stats: Arc<SchedulerStats>,
    tx: mpsc::UnboundedSender<Command>,
}

impl Probing {
    /// Run one due probe within the concurrency limit, hand its report to the sink, and tell
    /// the scheduler it is done.
    async fn run(self, d: Due) {
        let Ok(_permit) = self.permits.acquire_owned().await else {
            return;
        };
        let stats = &self.stats;
        let lag = Instant::now().saturating_duration_since(d.due).as_micros() as u64;
        stats.lag_sum_us.fetch_add(lag, Ordering::Relaxed);
        stats.lag_max_us.fetch_max(lag, Ordering::Relaxed);
        stats.started.fetch_add(1, Ordering::Relaxed);
        stats.in_flight.fetch_add(1, Ordering::Relaxed);
        let started_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|t| t.as_millis() as i64)
            .unwrap_or(0);
        let report = self.runner.run(&d.job).await;
        let era = report.era;
        let lag = Duration::from_micros(lag);
        self.sink
            .submit(&d.job, started_at, lag, d.slot, report)
            .await;
        stats.in_flight.fetch_sub(1, Ordering::Relaxed);
        let _ = self.tx.send(Command::Done {
            server_id: d.job.server_id.clone(),
            generation: d.generation,
            era,
        });
    }
}

#[allow(clippy::too_many_arguments)]
async fn run(
    region: String,
    runner: Arc<dyn Runner>,
    sink: Arc<dyn Sink>,
    max_concurrency: usize,
    stop: CancellationToken,
    tracker: TaskTracker,
    tx: mpsc::UnboundedSender<Command>,
    mut rx: mpsc::UnboundedReceiver<Command>,
    stats: Arc<SchedulerStats>,
) {
    let unix_now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let mut table = Table::new(Clock {
        anchor: Instant::now(),
        anchor_unix_ms: unix_now,
    });
    let probing = Probing {
        runner,
        sink,
        permits: Arc::new(Semaphore::new(max_concurrency.max(1))),
        stats: stats.clone(),
        tx,
    };
    loop {
        let next_due = table.next_due();
        let sleep = async {
            match next_due {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            cmd = rx.recv() => {
                let Some(cmd) = cmd else { return };
                match cmd {
                    Command::Upsert { job, probe_now } => table.upsert(*job, probe_now),
                    Command::Remove(id) => table.remove(&id),
                    Command::Done { server_id, era, .. } => table.done(&server_id, era),
                }
                stats.jobs.store(table.entries.len() as u64, Ordering::Relaxed);
            }
            _ = sleep => {
                for due in table.take_due(Instant::now(), &region, &stats.skipped_ticks) {
                    tracker.spawn(probing.clone().run(due));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(url: &str) -> ProbeTarget {
        let mut t = ProbeTarget::new(url.parse().unwrap());
        t.timeout = Duration::from_secs(7);
        t.era = EraChoice::Prefer(Era::StreamableHttp);
        t.degraded_after = Some(Duration::from_millis(1500));
        t.list_contract = true;
        t
    }

    fn job(t: ProbeTarget) -> Job {
        Job::new("s1".into(), "docs", t, Duration::from_secs(60))
    }

    #[test]
    fn a_compact_job_gives_back_the_target_it_was_made_from() {
        let made = job(target("https://x.example:8443/mcp?key=s3cret#f")).target();
        assert_eq!(made.url.as_str(), "https://x.example:8443/mcp?key=s3cret#f");
        assert_eq!(made.timeout, Duration::from_secs(7));
        assert_eq!(made.era, EraChoice::Prefer(Era::StreamableHttp));
        assert_eq!(made.degraded_after, Some(Duration::from_millis(1500)));
        assert!(made.list_contract);
        assert!(made.headers.is_empty() && made.oauth.is_none() && made.calls.is_none());

        // A time finer than a millisecond is kept whole, in the whole target.
        let mut fine = target("http://127.0.0.1:9/mcp");
        fine.timeout = Duration::from_micros(7_500_250);
        assert_eq!(job(fine).target().timeout, Duration::from_micros(7_500_250));

        let mut rare = target("http://127.0.0.1:9/mcp");
        rare.headers
            .push(("Authorization".into(), "Bearer t".into()));
        rare.max_pages = 3;
        rare.follow_post_redirects = true;
        let mut j = Arc::new(job(rare));
        learn_era(&mut j, Era::Stateless);
        let made = j.target();
        assert_eq!(made.headers, [("Authorization".into(), "Bearer t".into())]);
        assert_eq!((made.max_pages, made.follow_post_redirects), (3, true));
        assert_eq!(
            made.era,
            EraChoice::Prefer(Era::Stateless),
            "a learned era wins"
        );
    }

    #[test]
    fn the_kept_offset_is_the_one_every_region_computes() {
        for id in ["s1", "0193a8e4-7c1d-7000-8000-000000000001", "another"] {
            let j = Job::new(
                id.into(),
                "x",
                target("http://h/mcp"),
                Duration::from_secs(60),
            );
            let offset = offset_of(id, Duration::from_secs(60));
            assert_eq!(Duration::from_millis(j.offset_ms.into()), offset);
            assert!(offset < Duration::from_secs(60));
        }
    }

    #[test]
    fn a_job_is_small_and_its_debug_hides_the_url_secret() {
        // The scheduler holds one a server: a whole ProbeTarget inline was ~200 bytes; 80
        // with the Arc's counts is 96, a size class of its own.
        assert!(
            std::mem::size_of::<Job>() <= 80,
            "{}",
            std::mem::size_of::<Job>()
        );
        assert!(std::mem::size_of::<Entry>() <= 32);
        let shown = format!("{:?}", job(target("https://x.example/mcp?key=s3cret")));
        assert!(!shown.contains("s3cret"), "{shown}");
    }
}
