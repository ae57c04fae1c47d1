//! The agent's tasks: config sync (long poll with ETag), the same scheduler and prober as
//! `serve`, a sink that buffers results to disk, a pusher that drains the buffer to the central
//! in order, and canaries that tell a blind vantage point from a dead server.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use reqwest::StatusCode;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::options::AgentSettings;
use super::protocol::{AgentBatch, AgentConfig, AgentResult, AgentServer, PushReply};
use super::queue::{DiskQueue, QueueError};
use crate::probe::{ProbeReport, ProbeTarget, Prober, ProberConfig, Verdict};
use crate::scheduler::{self, Job, SchedulerHandle, Sink};

/// Results handed to the disk buffer at least this often.
const FLUSH_EVERY: Duration = Duration::from_millis(500);
/// An idle agent still reports this often, so its region is never taken for silent.
const HEARTBEAT: Duration = Duration::from_secs(5);
/// Header every agent probe carries, so server operators can tell regions apart.
pub const REGION_HEADER: &str = "x-mcpwatch-region";

/// Why the agent stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// The result buffer cannot be used.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// The HTTP client or the prober could not be built.
    #[error("cannot start: {0}")]
    Start(String),
    /// The key belongs to another region than `--region`.
    #[error("the agent key is bound to region '{key}', not '{flag}' (MCPWATCH_AGENT_REGION)")]
    WrongRegion { key: String, flag: String },
}

struct Shared {
    settings: AgentSettings,
    client: reqwest::Client,
    queue: DiskQueue,
    /// Canaries answer: failed probes are evidence about the server, not about us.
    vantage_ok: AtomicBool,
    pending: std::sync::Mutex<Vec<AgentResult>>,
    pushed: Notify,
    /// This run's instance name: several agents of one region share its servers by it.
    instance: String,
}

impl Shared {
    fn url(&self, path: &str) -> String {
        format!(
            "{}{path}",
            self.settings.central.as_str().trim_end_matches('/')
        )
    }

    /// Move results waiting in memory to the disk buffer.
    fn flush(&self) {
        let batch = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        if batch.is_empty() {
            return;
        }
        if let Err(e) = self.queue.push(&batch) {
            // Keep them in memory and try again: the disk may come back.
            tracing::error!(error = %e, results = batch.len(), "cannot buffer results");
            self.pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .splice(0..0, batch);
        }
        self.pushed.notify_one();
    }
}

struct AgentSink(Arc<Shared>);

#[async_trait]
impl Sink for AgentSink {
    async fn submit(
        &self,
        job: &Job,
        started_at_ms: i64,
        lag: Duration,
        slot: Option<i64>,
        mut report: ProbeReport,
    ) {
        // A success proves the vantage point works; a failure while the canaries fail says
        // nothing about the server.
        let blind = report.verdict == Verdict::Down && !self.0.vantage_ok.load(Ordering::Relaxed);
        let tools = std::mem::take(&mut report.tools);
        let result = AgentResult {
            // One id per (server, region, slot): two agents of a region that both probe a
            // slot while its servers move between them are stored once.
            id: match slot {
                Some(slot) => {
                    crate::scheduler::slot_id(&job.server_id, &self.0.settings.region, slot)
                }
                None => uuid::Uuid::now_v7().to_string(),
            },
            server_id: job.server_id.to_string(),
            started_at: started_at_ms,
            lag_ms: lag.as_millis() as u64,
            vantage_unhealthy: blind,
            report,
            tools,
        };
        let full = {
            let mut pending = self.0.pending.lock().unwrap_or_else(|p| p.into_inner());
            pending.push(result);
            pending.len() >= 200
        };
        if full {
            self.0.flush();
        }
    }
}

impl Shared {
    /// The push client and the disk buffer (with what the last run left in it).
    fn open(settings: &AgentSettings) -> Result<Self, AgentError> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .user_agent(concat!("mcpwatch-agent/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| AgentError::Start(e.to_string()))?;
        let queue = DiskQueue::open(&settings.data_dir.join("buffer"), settings.buffer)?;
        if !queue.is_empty() {
            tracing::info!(
                buffered = queue.len(),
                "results left from the last run will be pushed first"
            );
        }
        Ok(Shared {
            settings: settings.clone(),
            client,
            queue,
            vantage_ok: AtomicBool::new(true),
            pending: Default::default(),
            pushed: Notify::new(),
            instance: uuid::Uuid::new_v4().to_string(),
        })
    }
}

/// Move finished results from memory to the disk buffer every [`FLUSH_EVERY`], until `stop`.
async fn flush_loop(shared: Arc<Shared>, stop: CancellationToken) {
    while !stop.is_cancelled() {
        tokio::select! {
            _ = tokio::time::sleep(FLUSH_EVERY) => shared.flush(),
            _ = stop.cancelled() => {}
        }
    }
}

/// Run until `shutdown`, then drain: finish probes, buffer, push what the drain time allows.
pub async fn run(
    settings: AgentSettings,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), AgentError> {
    let prober = Prober::new(ProberConfig {
        policy: settings.policy.clone(),
        ..ProberConfig::default()
    })
    .map_err(|e| AgentError::Start(e.to_string()))?;
    let shared = Arc::new(Shared::open(&settings)?);
    let stop = CancellationToken::new();
    let stop_probing = CancellationToken::new();
    let tracker = TaskTracker::new();
    let scheduler = scheduler::spawn(
        settings.region.clone(),
        Arc::new(prober.clone()),
        Arc::new(AgentSink(shared.clone())),
        settings.max_concurrent_probes,
        stop_probing.clone(),
        tracker.clone(),
        &tokio::runtime::Handle::current(),
    );
    tracing::info!(region = %settings.region, central = %settings.central, "mcpwatch agent started");
    let (wrong_tx, mut wrong_rx) = tokio::sync::mpsc::channel::<AgentError>(1);
    let sync = tokio::spawn(sync_config(
        shared.clone(),
        scheduler,
        stop.clone(),
        wrong_tx,
    ));
    let canary = tokio::spawn(canaries(shared.clone(), prober, stop.clone()));
    let flusher = tokio::spawn(flush_loop(shared.clone(), stop.clone()));
    let stop_push = CancellationToken::new();
    let pusher = tokio::spawn(push_loop(shared.clone(), stop_push.clone()));

    let failure = tokio::select! {
        _ = shutdown => None,
        e = wrong_rx.recv() => e,
    };
    tracing::info!("agent stopping: draining probes and pushing results");
    let deadline = tokio::time::Instant::now() + settings.drain_timeout;
    stop_probing.cancel();
    tracker.close();
    let _ = tokio::time::timeout_at(deadline, tracker.wait()).await;
    stop.cancel();
    let _ = tokio::join!(sync, canary, flusher);
    shared.flush();
    // Push what we can before the deadline; the rest stays on disk for the next start.
    while !shared.queue.is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop_push.cancel();
    let _ = pusher.await;
    tracing::info!(buffered = shared.queue.len(), "agent stopped");
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The job for a server as this region probes it: tagged with the region header.
fn job_of(server: &AgentServer, region: &str) -> Option<Job> {
    match server.target() {
        Ok(mut target) => {
            target.headers.push((REGION_HEADER.into(), region.into()));
            Some(server.job_probing(target))
        }
        Err(e) => {
            tracing::error!(server = %server.slug, error = %e, "server skipped: bad URL from the central");
            None
        }
    }
}

/// The long poll for this agent's config (as of `etag`, if it has one).
fn config_request(shared: &Shared, etag: Option<&str>) -> reqwest::RequestBuilder {
    let wait = shared.settings.config_wait;
    let req = shared
        .client
        .get(shared.url(&format!(
            "/api/v1/agent/config?wait={}&instance={}",
            wait.as_secs(),
            shared.instance
        )))
        .bearer_auth(&shared.settings.token)
        .timeout(wait + Duration::from_secs(15));
    match etag {
        Some(tag) => req.header(reqwest::header::IF_NONE_MATCH, tag),
        None => req,
    }
}

async fn sync_config(
    shared: Arc<Shared>,
    scheduler: SchedulerHandle,
    stop: CancellationToken,
    wrong: tokio::sync::mpsc::Sender<AgentError>,
) {
    let mut etag: Option<String> = None;
    let mut current: HashMap<String, AgentServer> = HashMap::new();
    let mut backoff = Duration::from_secs(1);
    loop {
        let outcome = tokio::select! {
            r = config_request(&shared, etag.as_deref()).send() => r,
            _ = stop.cancelled() => return,
        };
        let retry = match outcome {
            Ok(resp) if resp.status() == StatusCode::NOT_MODIFIED => None,
            Ok(resp) if resp.status().is_success() => {
                let tag = resp
                    .headers()
                    .get(reqwest::header::ETAG)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let body = resp.bytes().await.map_err(|e| e.to_string());
                match body.and_then(|b| {
                    serde_json::from_slice::<AgentConfig>(&b).map_err(|e| e.to_string())
                }) {
                    Ok(config) if config.region != shared.settings.region => {
                        let _ = wrong
                            .send(AgentError::WrongRegion {
                                key: config.region,
                                flag: shared.settings.region.clone(),
                            })
                            .await;
                        return;
                    }
                    Ok(config) => {
                        apply(&scheduler, &mut current, config, &shared.settings.region);
                        etag = tag;
                        None
                    }
                    Err(e) => Some(format!("unreadable config: {e}")),
                }
            }
            Ok(resp)
                if matches!(
                    resp.status(),
                    StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
                ) =>
            {
                backoff = Duration::from_secs(30);
                Some(format!(
                    "the central refused the agent key ({})",
                    resp.status()
                ))
            }
            Ok(resp) => Some(format!("config: HTTP {}", resp.status())),
            Err(e) => Some(format!("config: {}", crate::probe::redact_error(&e))),
        };
        match retry {
            None => backoff = Duration::from_secs(1),
            Some(why) => {
                tracing::warn!(reason = %why, retry_in_seconds = backoff.as_secs(), "config sync failed; probing on with the last config");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.cancelled() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// Bring the scheduler in line with a new config: new servers are probed at once.
fn apply(
    scheduler: &SchedulerHandle,
    current: &mut HashMap<String, AgentServer>,
    config: AgentConfig,
    region: &str,
) {
    let mut next: HashMap<String, AgentServer> = HashMap::new();
    for server in config.servers {
        let known = current.get(&server.id);
        if known != Some(&server)
            && let Some(job) = job_of(&server, region)
        {
            scheduler.upsert(job, known.is_none());
        }
        next.insert(server.id.clone(), server);
    }
    for id in current.keys().filter(|id| !next.contains_key(*id)) {
        scheduler.remove(id);
    }
    tracing::info!(servers = next.len(), "config applied");
    *current = next;
}

/// Push buffered batches oldest first; delete each once the central has committed it.
async fn push_loop(shared: Arc<Shared>, stop: CancellationToken) {
    let mut backoff = Duration::from_millis(500);
    let mut last_contact = tokio::time::Instant::now();
    loop {
        let Some((seq, results)) = shared.queue.oldest() else {
            if last_contact.elapsed() >= HEARTBEAT {
                // Nothing to push: an empty batch tells the central this region is alive.
                let beat = shared
                    .client
                    .post(shared.url("/api/v1/agent/results"))
                    .bearer_auth(&shared.settings.token)
                    .timeout(Duration::from_secs(10))
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(r#"{"results":[]}"#)
                    .send()
                    .await;
                if beat.is_ok_and(|r| r.status().is_success()) {
                    last_contact = tokio::time::Instant::now();
                }
            }
            tokio::select! {
                _ = shared.pushed.notified() => continue,
                _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                _ = stop.cancelled() => return,
            }
        };
        let count = results.len();
        let send = shared
            .client
            .post(shared.url("/api/v1/agent/results"))
            .bearer_auth(&shared.settings.token)
            .timeout(Duration::from_secs(30))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(&AgentBatch { results }).unwrap_or_default())
            .send();
        let outcome = tokio::select! {
            r = send => r,
            _ = stop.cancelled() => return,
        };
        let failure = match outcome {
            Ok(resp) if resp.status().is_success() => {
                let reply: PushReply = match resp.bytes().await {
                    Ok(b) => serde_json::from_slice(&b).unwrap_or_default(),
                    Err(_) => PushReply::default(),
                };
                tracing::debug!(
                    accepted = reply.accepted,
                    duplicates = reply.duplicates,
                    "batch pushed"
                );
                shared.queue.remove(seq);
                last_contact = tokio::time::Instant::now();
                backoff = Duration::from_millis(500);
                continue;
            }
            Ok(resp) if resp.status() == StatusCode::UNPROCESSABLE_ENTITY => {
                // The central will never take this batch; keeping it would block the rest.
                tracing::error!(
                    results = count,
                    "central rejected a batch as invalid; dropped"
                );
                shared
                    .queue
                    .dropped
                    .fetch_add(count as u64, Ordering::Relaxed);
                shared.queue.remove(seq);
                continue;
            }
            Ok(resp) => format!("HTTP {}", resp.status()),
            Err(e) => crate::probe::redact_error(&e),
        };
        tracing::warn!(reason = %failure, buffered = shared.queue.len(), retry_in_ms = backoff.as_millis() as u64, "push failed; results stay buffered");
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.cancelled() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

/// Probe the canaries: the central's `/healthz`, and a known-good MCP server if configured.
async fn canaries(shared: Arc<Shared>, prober: Prober, stop: CancellationToken) {
    loop {
        let central = shared
            .client
            .get(shared.url("/healthz"))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        let known_good = match &shared.settings.canary {
            None => false,
            Some(url) => {
                let mut target = ProbeTarget::new(url.clone());
                target.timeout = Duration::from_secs(5);
                prober.probe(&target).await.verdict != Verdict::Down
            }
        };
        let ok = central || known_good;
        if shared.vantage_ok.swap(ok, Ordering::Relaxed) != ok {
            if ok {
                tracing::info!("canaries answer again: failures count again");
            } else {
                tracing::warn!("every canary fails: failed probes are marked vantage_unhealthy");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(shared.settings.canary_every) => {}
            _ = stop.cancelled() => return,
        }
    }
}
