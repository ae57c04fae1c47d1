//! The scheduler under paused time: cadence, immediate first probe, interval changes,
//! removal, no overlap (a hanging target skips its own ticks and stalls nobody else), and the
//! concurrency bound. No test sleeps for real.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use mcpwatch::probe::{ProbeReport, ProbeTarget, Verdict};
use mcpwatch::scheduler::{self, Job, Runner, SchedulerHandle, Sink, offset_of};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Answers at once, or after `delays[server]`; counts concurrency.
#[derive(Default)]
struct StubRunner {
    delays: HashMap<String, Duration>,
    running: AtomicUsize,
    max_running: AtomicUsize,
}

#[async_trait]
impl Runner for StubRunner {
    async fn run(&self, job: &Job) -> ProbeReport {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_running.fetch_max(now, Ordering::SeqCst);
        if let Some(d) = self.delays.get(&*job.server_id) {
            tokio::time::sleep(*d).await;
        }
        self.running.fetch_sub(1, Ordering::SeqCst);
        let mut r = ProbeReport::new(job.target().url.to_string(), String::new());
        r.verdict = Verdict::Up;
        r
    }
}

/// Records when each server's report arrived (tokio time, from the test's start).
struct Recorder {
    start: Instant,
    seen: Mutex<Vec<(String, Duration)>>,
    slots: Mutex<Vec<(String, Option<i64>)>>,
}

#[async_trait]
impl Sink for Recorder {
    async fn submit(
        &self,
        job: &Job,
        _started_at_ms: i64,
        _lag: Duration,
        slot: Option<i64>,
        _report: ProbeReport,
    ) {
        self.slots
            .lock()
            .unwrap()
            .push((job.server_id.to_string(), slot));
        self.seen
            .lock()
            .unwrap()
            .push((job.server_id.to_string(), self.start.elapsed()));
    }
}

impl Recorder {
    fn times(&self, id: &str) -> Vec<Duration> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(s, _)| s == id)
            .map(|(_, t)| *t)
            .collect()
    }
}

fn job(id: &str, interval_s: u64) -> Job {
    Job::new(
        id.into(),
        id,
        ProbeTarget::new(format!("http://127.0.0.1:1/{id}").parse().unwrap()),
        Duration::from_secs(interval_s),
    )
}

fn start<R: Runner>(
    runner: R,
    max: usize,
) -> (SchedulerHandle, Arc<Recorder>, Arc<R>, CancellationToken) {
    let runner = Arc::new(runner);
    let rec = Arc::new(Recorder {
        start: Instant::now(),
        seen: Mutex::new(Vec::new()),
        slots: Mutex::new(Vec::new()),
    });
    let stop = CancellationToken::new();
    let h = scheduler::spawn(
        "local".into(),
        runner.clone(),
        rec.clone(),
        max,
        stop.clone(),
        TaskTracker::new(),
        &tokio::runtime::Handle::current(),
    );
    (h, rec, runner, stop)
}

#[tokio::test(start_paused = true)]
async fn probes_every_interval_at_a_stable_offset() {
    let (h, rec, _, stop) = start(StubRunner::default(), 10);
    h.upsert(job("a", 10), false);
    tokio::time::sleep(Duration::from_secs(61)).await;
    let times = rec.times("a");
    assert!((6..=7).contains(&times.len()), "{times:?}");
    assert!(
        times[0] <= Duration::from_secs(10),
        "first probe within one interval: {times:?}"
    );
    for pair in times.windows(2) {
        assert_eq!(pair[1] - pair[0], Duration::from_secs(10), "{times:?}");
    }
    stop.cancel();
}

#[tokio::test(start_paused = true)]
async fn new_server_is_probed_at_once_and_interval_changes_apply() {
    let (h, rec, _, stop) = start(StubRunner::default(), 10);
    h.upsert(job("a", 60), true);
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(rec.times("a").len(), 1, "probe_now runs immediately");
    h.upsert(job("a", 10), false);
    tokio::time::sleep(Duration::from_secs(31)).await;
    let n = rec.times("a").len();
    assert!(
        (4..=5).contains(&n),
        "the 10 s interval took effect: {:?}",
        rec.times("a")
    );
    h.remove("a");
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(rec.times("a").len(), n, "no probes after removal");
    stop.cancel();
}

#[tokio::test(start_paused = true)]
async fn a_hanging_target_skips_its_ticks_and_stalls_nobody() {
    let runner = StubRunner {
        delays: HashMap::from([("slow".to_string(), Duration::from_secs(35))]),
        ..StubRunner::default()
    };
    let (h, rec, _, stop) = start(runner, 10);
    h.upsert(job("slow", 10), true);
    h.upsert(job("fast", 10), true);
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(
        rec.times("fast").len() >= 6,
        "fast kept its cadence: {:?}",
        rec.times("fast")
    );
    let slow = rec.times("slow");
    assert!(slow.len() <= 2, "no burst after the overrun: {slow:?}");
    assert!(h.stats.skipped_ticks.load(Ordering::Relaxed) >= 3);
    stop.cancel();
}

#[tokio::test(start_paused = true)]
async fn concurrency_is_bounded() {
    let delays: HashMap<String, Duration> = (0..8)
        .map(|i| (format!("s{i}"), Duration::from_secs(3)))
        .collect();
    let (h, rec, runner, stop) = start(
        StubRunner {
            delays,
            ..StubRunner::default()
        },
        2,
    );
    for i in 0..8 {
        h.upsert(job(&format!("s{i}"), 60), true);
    }
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert_eq!(runner.max_running.load(Ordering::SeqCst), 2);
    let servers: std::collections::HashSet<String> = rec
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|(s, _)| s.clone())
        .collect();
    assert_eq!(servers.len(), 8, "every server ran eventually");
    assert!(
        h.stats.lag_max_us.load(Ordering::Relaxed) >= 9_000_000,
        "lag measured for queued probes"
    );
    stop.cancel();
}

#[test]
fn offsets_are_deterministic_and_spread() {
    let interval = Duration::from_secs(60);
    assert_eq!(
        offset_of("server-1", interval),
        offset_of("server-1", interval)
    );
    let distinct: std::collections::HashSet<Duration> = (0..1000)
        .map(|i| offset_of(&format!("s{i}"), interval))
        .collect();
    assert!(
        distinct.len() > 900,
        "10,000 servers must not fire in the same second"
    );
    assert!((0..1000).all(|i| offset_of(&format!("s{i}"), interval) < interval));
}

/// Finds this era on every probe, and records the era choice each probe started with.
struct EraRunner {
    found: mcpwatch::probe::Era,
    choices: Mutex<Vec<mcpwatch::probe::EraChoice>>,
}

#[async_trait]
impl Runner for EraRunner {
    async fn run(&self, job: &Job) -> ProbeReport {
        self.choices.lock().unwrap().push(job.era());
        let mut r = ProbeReport::new(job.target().url.to_string(), String::new());
        r.verdict = Verdict::Up;
        r.era = Some(self.found);
        r
    }
}

/// The era a probe found is where the next probe of that server starts (no `server/discover`
/// first for a server known to be older), at once; a forced era stays forced.
#[tokio::test(start_paused = true)]
async fn the_era_a_probe_found_is_where_the_next_one_starts() {
    use mcpwatch::probe::{Era, EraChoice};
    let (h, _, runner, stop) = start(
        EraRunner {
            found: Era::StreamableHttp,
            choices: Mutex::new(Vec::new()),
        },
        10,
    );
    h.upsert(job("a", 10), true);
    let mut target = job("b", 10).target();
    target.era = EraChoice::Force(Era::Stateless);
    h.upsert(
        Job::new("b".into(), "b", target, Duration::from_secs(10)),
        true,
    );
    tokio::time::sleep(Duration::from_secs(25)).await;
    let choices = runner.choices.lock().unwrap().clone();
    let of = |want: fn(&EraChoice) -> bool| choices.iter().filter(|c| want(c)).count();
    assert_eq!(
        of(|c| *c == EraChoice::Detect),
        1,
        "only the first probe detects: {choices:?}"
    );
    assert!(
        of(|c| *c == EraChoice::Prefer(Era::StreamableHttp)) >= 2,
        "{choices:?}"
    );
    assert!(
        of(|c| *c == EraChoice::Force(Era::Stateless)) >= 3,
        "forced stays forced: {choices:?}"
    );
    stop.cancel();
}

/// A server registered through the API (probed at once) and then found by the leader's
/// re-read is not probed a second time at once; one found only by the re-read is.
#[tokio::test(start_paused = true)]
async fn a_server_found_by_a_re_read_is_not_probed_twice_at_once() {
    let (h, rec, _, stop) = start(StubRunner::default(), 10);
    h.upsert(job("api", 60), true);
    tokio::time::sleep(Duration::from_millis(10)).await;
    h.upsert_found(job("api", 60));
    h.upsert_found(job("standby", 60));
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(
        rec.times("api").len(),
        1,
        "probed once, by the API's probe-now"
    );
    assert_eq!(
        rec.times("standby").len(),
        1,
        "new to this scheduler: probed at once"
    );
    stop.cancel();
}

/// A probe-now that has not started yet survives the job being replaced right after (the
/// leader's re-read of a server just resumed through the API).
#[tokio::test(start_paused = true)]
async fn a_pending_probe_now_survives_a_replaced_job() {
    let (h, rec, _, stop) = start(StubRunner::default(), 100);
    // The scheduler may take the second command before or after the first one's run is due:
    // try it on many servers so both orders happen.
    let ids: Vec<String> = (0..40).map(|i| format!("r{i}")).collect();
    for id in &ids {
        h.upsert(job(id, 60), true);
        h.upsert(job(id, 60), false);
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
    let missed: Vec<&String> = ids.iter().filter(|id| rec.times(id).is_empty()).collect();
    assert!(missed.is_empty(), "still probed at once: {missed:?}");
    stop.cancel();
}

/// A regular tick carries its aligned slot (so the result id is the same wherever the slot is
/// probed); a probe run at once carries none (so it never collides with a regular one).
#[tokio::test(start_paused = true)]
async fn regular_ticks_carry_their_aligned_slot_and_a_probe_now_none() {
    let (h, rec, _, stop) = start(StubRunner::default(), 10);
    h.upsert(job("a", 10), true);
    tokio::time::sleep(Duration::from_secs(31)).await;
    let slots: Vec<Option<i64>> = rec.slots.lock().unwrap().iter().map(|(_, s)| *s).collect();
    assert!(slots.len() >= 3, "{slots:?}");
    assert_eq!(slots[0], None, "the probe at once: {slots:?}");
    let offset = scheduler::offset_of("a", Duration::from_secs(10)).as_millis() as i64;
    for pair in slots[1..].windows(2) {
        let (a, b) = (pair[0].unwrap(), pair[1].unwrap());
        assert_eq!(b - a, 10_000, "{slots:?}");
        assert_eq!((a - offset).rem_euclid(10_000), 0, "aligned: {slots:?}");
    }
    let id = |region: &str, slot: i64| scheduler::slot_id("a", region, slot);
    let slot = slots[1].unwrap();
    assert_eq!(id("local", slot), id("local", slot), "one id per slot");
    assert_ne!(id("local", slot), id("eu-west", slot));
    assert_ne!(id("local", slot), id("local", slot + 10_000));
    let uuid = uuid::Uuid::parse_str(&id("local", slot)).unwrap();
    let (secs, nanos) = uuid.get_timestamp().unwrap().to_unix();
    assert_eq!(
        secs as i64 * 1000 + i64::from(nanos / 1_000_000),
        slot,
        "sorts by time"
    );
    stop.cancel();
}
