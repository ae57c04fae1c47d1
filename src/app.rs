//! Wiring, start and shutdown of `mcpwatch serve`.
//!
//! [`App::build`] validates nothing itself (settings arrive validated), opens and migrates the
//! store, loads the secret key, makes sure an admin key exists, starts the ingest and the
//! built-in region's scheduler, and binds its own listener (port 0 in tests). [`App::run`]
//! serves until the shutdown future resolves, then: not ready → stop scheduling → drain
//! in-flight probes (up to the drain timeout, HTTP still answering `/readyz` with 503) →
//! commit buffered results → let the alert dispatcher finish its batch → stop HTTP → close
//! the pool.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::alert::dispatcher::{Dispatcher, system_clock};
use crate::alert::email::Mailer;
use crate::api::{self, AppState, KeyCache};
use crate::config::Settings;
use crate::ingest::{self, IngestHandle, IngestItem};
use crate::metrics::Metrics;
use crate::probe::{ProbeReport, Prober, ProberConfig};
use crate::scheduler::{self, Job, Sink};
use crate::secrets::{Sealer, token_hash, write_private};
use crate::store::{self, ApiKeyRecord, Store};

/// Start-up failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppError {
    /// The database could not be opened or migrated.
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// The secret key could not be loaded or created.
    #[error(transparent)]
    Secret(#[from] crate::secrets::SecretError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {reason}")]
    Bind { addr: SocketAddr, reason: String },
    /// The probe's TLS setup failed.
    #[error(transparent)]
    Tls(#[from] crate::probe::TlsSetupError),
    /// A stored server could not be scheduled.
    #[error("cannot schedule a stored server: {0}")]
    Schedule(String),
    /// The ingest's spill folder could not be opened.
    #[error(transparent)]
    Spill(#[from] crate::ingest::spill::SpillError),
    /// The probes' runtime could not be started (threads refused by the system).
    #[error("cannot start the probe runtime: {0}")]
    Runtime(String),
    /// The HTTP server stopped with an error.
    #[error("HTTP server error: {0}")]
    Serve(String),
    /// The monitors file could not be applied at start (every problem, with its line).
    #[error("the monitors file was not applied, nothing of it is:\n{0}")]
    Monitors(#[from] crate::api::monitors::watch::WatchError),
}

/// Reports from the built-in region go into the local ingest, the same path agents use.
struct LocalSink {
    ingest: IngestHandle,
    region: String,
    metrics: Arc<Metrics>,
    ownership: crate::shard::Ownership,
}

#[async_trait]
impl Sink for LocalSink {
    async fn submit(
        &self,
        job: &Job,
        started_at_ms: i64,
        lag: std::time::Duration,
        slot: Option<i64>,
        report: ProbeReport,
    ) {
        // A probe that finished after its server's bucket moved: the new owner keeps its series.
        if self.ownership.owns(&job.server_id) {
            self.metrics
                .observe_probe(&job.slug, &self.region, &report, lag);
        } else {
            self.metrics
                .observe_region_probe(&self.region, &report, lag);
        }
        let result_id = match slot {
            Some(slot) => scheduler::slot_id(&job.server_id, &self.region, slot),
            None => uuid::Uuid::now_v7().to_string(),
        };
        tracing::info!(
            server_id = %job.server_id, region = %self.region, probe_id = %result_id,
            duration_ms = report.timings_ms.total, verdict = %report.verdict,
            failure = report.failure.as_ref().map(|f| f.kind.as_str()), "probe"
        );
        let item = IngestItem {
            result_id,
            server_id: job.server_id.to_string(),
            region: self.region.clone(),
            started_at: started_at_ms,
            report,
            vantage_unhealthy: false,
        };
        if self.ingest.submit(item).await.is_err() {
            tracing::error!(server_id = %job.server_id, "ingest closed; result not stored");
        }
    }
}

/// A built daemon, ready to run.
pub struct App {
    listener: TcpListener,
    state: AppState,
    stop_scheduling: CancellationToken,
    stop_ingest: CancellationToken,
    tracker: TaskTracker,
    ingest_task: tokio::task::JoinHandle<()>,
    stop_dispatch: CancellationToken,
    dispatch_task: tokio::task::JoinHandle<()>,
    stop_retention: CancellationToken,
    probe_runtime: ProbeRuntime,
    /// Gives back the leader lease when it stops, released once the last results are stored.
    cluster_task: tokio::task::JoinHandle<Option<Box<dyn store::LeaderLease>>>,
}

/// The runtime the scheduler and its probes run on, apart from the one that serves the API
/// and writes results. On one runtime, every wake-up of the ingest (each answer from the
/// database inside a commit) waited in line behind hundreds of ready probe tasks: at 100,000
/// servers the ingest spent most of each batch queued, not working, and fell behind with
/// the machine 30 % idle (`benches/fleet`). Threads of two runtimes are scheduled by the
/// kernel, which lets a thread that slept (the ingest's) run at once.
struct ProbeRuntime(Option<tokio::runtime::Runtime>);

impl ProbeRuntime {
    fn start() -> Result<Self, AppError> {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("mcpwatch-probe")
            .enable_all()
            .build()
            .map_err(|e| AppError::Runtime(e.to_string()))?;
        Ok(ProbeRuntime(Some(rt)))
    }

    fn handle(&self) -> tokio::runtime::Handle {
        match &self.0 {
            Some(rt) => rt.handle().clone(),
            None => tokio::runtime::Handle::current(),
        }
    }
}

impl Drop for ProbeRuntime {
    fn drop(&mut self) {
        // Dropped inside the main runtime, where blocking on its threads is not allowed;
        // the probes were drained (or abandoned after the drain timeout) before this.
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// Servers registered before URL credentials were sealed keep them in plain text: seal them
/// once (idempotent: a sealed row's shown URL has nothing left to seal).
pub async fn seal_url_credentials(store: &dyn Store, sealer: &Sealer) -> Result<(), AppError> {
    for mut server in store.all_servers().await? {
        if server.url_enc.is_some() {
            continue;
        }
        let Ok((shown, Some(sealed))) = api::seal_url(&server.url, sealer) else {
            continue;
        };
        server.url = shown;
        server.url_enc = Some(sealed);
        store.update_server(&server).await?;
        tracing::info!(server = %server.slug, "sealed the credentials in a server URL");
    }
    Ok(())
}

/// The ingest, with its spill directory under the data dir.
fn start_ingest(
    store: &Arc<dyn Store>,
    settings: &Settings,
    dispatcher: &Dispatcher,
    metrics: &Arc<Metrics>,
    ownership: &crate::shard::Ownership,
    stop: &CancellationToken,
) -> Result<(IngestHandle, tokio::task::JoinHandle<()>), AppError> {
    let spill_dir = settings.data_dir.join("spill");
    let spill = ingest::Spill::open(&spill_dir, settings.ingest_spill_bytes)?;
    Ok(ingest::spawn(
        store.clone(),
        ownership.clone(),
        settings.ingest_buffer,
        Some(Arc::new(spill)),
        stop.clone(),
        dispatcher.wake.clone(),
        metrics.clone(),
        settings.region_silent_after,
    ))
}

/// The listener, bound before anything is served (port 0 picks a free one for tests).
async fn bind(settings: &Settings, backend: &str, leader: bool) -> Result<TcpListener, AppError> {
    let listener = TcpListener::bind(settings.listen)
        .await
        .map_err(|e| AppError::Bind {
            addr: settings.listen,
            reason: e.to_string(),
        })?;
    tracing::info!(
        listen = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
        backend, region = %settings.region, leader, "mcpwatch serving"
    );
    Ok(listener)
}

/// The built-in region's scheduler, its reports going to the local ingest; it runs on the
/// probe runtime, stops starting probes at `stop`, and `tracker` drains them.
fn start_scheduler(
    settings: &Settings,
    prober: &Prober,
    (ingest, ownership): (&IngestHandle, &crate::shard::Ownership),
    metrics: &Arc<Metrics>,
    (stop, tracker, runtime): (&CancellationToken, &TaskTracker, &ProbeRuntime),
) -> scheduler::SchedulerHandle {
    let sink = Arc::new(LocalSink {
        ingest: ingest.clone(),
        region: settings.region.clone(),
        metrics: metrics.clone(),
        ownership: ownership.clone(),
    });
    scheduler::spawn(
        settings.region.clone(),
        Arc::new(prober.clone()),
        sink,
        settings.max_concurrent_probes,
        stop.clone(),
        tracker.clone(),
        &runtime.handle(),
    )
}

/// This replica's buckets: all of them on a single node; on Postgres those it can take
/// before it serves (`cluster::claim_at_start`).
async fn own_buckets(store: &Arc<dyn Store>, holder: &str) -> crate::shard::Ownership {
    let ownership = if store.sharded() {
        crate::shard::Ownership::sharded(holder)
    } else {
        crate::shard::Ownership::everything(holder)
    };
    crate::cluster::claim_at_start(store.as_ref(), &ownership).await;
    ownership
}

/// The database gate and the public pages' state.
fn public_pages(
    store: &Arc<dyn Store>,
    settings: &Settings,
    (sealer, dispatcher): (&Sealer, &Dispatcher),
) -> (crate::store::gate::DbGate, crate::web::WebState) {
    let db_gate = crate::store::gate::DbGate::new(store.clone());
    let mut web = crate::web::WebState::new(
        store.clone(),
        db_gate.clone(),
        settings.region_silent_after,
        settings.drift_shown,
    );
    web.public_url = settings.public_url.clone();
    if settings.subscriptions {
        web.subscriptions = Some(Arc::new(subscriptions(sealer, settings, dispatcher)));
    }
    (db_gate, web)
}

/// Readers' subscriptions: confirmation requests ring the dispatcher.
fn subscriptions(
    sealer: &Sealer,
    settings: &Settings,
    dispatcher: &Dispatcher,
) -> crate::web::Subscriptions {
    let mut subs = crate::web::Subscriptions::new(
        sealer.clone(),
        settings.smtp_url.is_some() && settings.smtp_from.is_some(),
        settings.policy.clone(),
        dispatcher.wake.clone(),
    );
    subs.trusted_proxies = settings.trusted_proxies.clone();
    subs
}

/// What the cluster loop (leadership, the change feed) works with.
fn cluster_parts(state: &AppState) -> crate::cluster::ClusterParts {
    crate::cluster::ClusterParts {
        store: state.store.clone(),
        ingest: state.ingest.clone(),
        scheduler: state.scheduler.clone(),
        sealer: state.sealer.clone(),
        region: state.settings.region.clone(),
        probe_locally: state.settings.probe_locally,
        leader: state.leader.clone(),
        ownership: state.ownership.clone(),
        metrics: state.metrics.clone(),
        agent_config: state.agent_config.clone(),
    }
}

impl App {
    pub async fn build(settings: Settings) -> Result<App, AppError> {
        // This replica's id: the holder of its leases and heartbeat.
        let holder = format!("{}-{}", std::process::id(), uuid::Uuid::new_v4());
        let (store, sealer, lease) = open_store(&settings, &holder).await?;
        let leader = Arc::new(AtomicBool::new(lease.is_some()));
        let ownership = own_buckets(&store, &holder).await;
        let prober = Prober::new(ProberConfig {
            policy: settings.policy.clone(),
            ..ProberConfig::default()
        })?;

        let metrics =
            Arc::new(Metrics::new().map_err(|e| AppError::Schedule(format!("metrics: {e}")))?);
        crate::cluster::export_states(store.as_ref(), &metrics, |id| ownership.owns(id), |_| false)
            .await?;
        let dispatcher = dispatcher(&store, &sealer, &settings, &metrics, &leader).await?;
        let stop_ingest = CancellationToken::new();
        let (ingest, ingest_task) = start_ingest(
            &store,
            &settings,
            &dispatcher,
            &metrics,
            &ownership,
            &stop_ingest,
        )?;
        let stop_dispatch = CancellationToken::new();
        let dispatch_task = tokio::spawn(dispatcher.clone().run(stop_dispatch.clone()));
        let stop_retention = spawn_upkeep(&store, &settings, (&leader, &metrics), &dispatcher);
        let stop_scheduling = CancellationToken::new();
        let tracker = TaskTracker::new();
        let probe_runtime = ProbeRuntime::start()?;
        let scheduler = start_scheduler(
            &settings,
            &prober,
            (&ingest, &ownership),
            &metrics,
            (&stop_scheduling, &tracker, &probe_runtime),
        );
        let listener = bind(&settings, store.backend(), lease.is_some()).await?;
        let per_minute = settings.rate_limit_per_minute;
        let (db_gate, web) = public_pages(&store, &settings, (&sealer, &dispatcher));
        let state = AppState {
            store,
            ingest,
            scheduler,
            prober,
            sealer,
            settings: Arc::new(settings),
            accepting: Arc::new(AtomicBool::new(true)),
            ip_limiter: Arc::new(api::RateLimiter::new(per_minute)),
            key_limiter: Arc::new(api::RateLimiter::new(per_minute)),
            keys: Arc::new(KeyCache::default()),
            dispatcher,
            metrics,
            agent_config: Arc::new(tokio::sync::watch::channel(0).0),
            leader,
            ownership,
            web,
            db_gate,
        };
        start_monitors_file(&state, &stop_scheduling).await?;
        let cluster_task = tokio::spawn(crate::cluster::run(
            cluster_parts(&state),
            lease,
            stop_scheduling.clone(),
        ));
        Ok(App {
            listener,
            state,
            stop_scheduling,
            stop_ingest,
            tracker,
            ingest_task,
            stop_dispatch,
            dispatch_task,
            stop_retention,
            probe_runtime,
            cluster_task,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| self.state.settings.listen)
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serve until `shutdown` resolves, then drain and stop.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), AppError> {
        let App {
            listener,
            state,
            stop_scheduling,
            stop_ingest,
            tracker,
            ingest_task,
            stop_dispatch,
            dispatch_task,
            stop_retention,
            probe_runtime,
            cluster_task,
        } = self;
        // Kept to the end of this function: probes drain before it stops.
        let _probe_runtime = probe_runtime;
        let router = api::router(state.clone());
        let stop_http = CancellationToken::new();
        let http = tokio::spawn(
            axum::serve(
                listener,
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(stop_http.clone().cancelled_owned())
            .into_future(),
        );
        shutdown.await;
        let drain = state.settings.drain_timeout;
        tracing::info!(
            drain_timeout_seconds = drain.as_secs(),
            "shutdown: not ready, draining in-flight probes"
        );
        state.accepting.store(false, Ordering::Relaxed);
        let deadline = tokio::time::Instant::now() + drain;
        stop_scheduling.cancel();
        stop_retention.cancel();
        tracker.close();
        if tokio::time::timeout_at(deadline, tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                in_flight = tracker.len(),
                "drain timeout: abandoning probes still running"
            );
        }
        // Commit what the ingest holds, then let it end.
        let _ = tokio::time::timeout_at(deadline, state.ingest.flush()).await;
        stop_ingest.cancel();
        let _ = tokio::time::timeout_at(deadline + std::time::Duration::from_secs(5), ingest_task)
            .await;
        // Everything decided here is stored: other replicas may take the buckets and the
        // leader lease now, instead of after their expiry.
        if let Ok(Ok(Some(mut lease))) =
            tokio::time::timeout(std::time::Duration::from_secs(5), cluster_task).await
        {
            lease.release().await;
        }
        state.store.leave(&state.ownership.holder()).await;
        // The dispatcher finishes the batch in hand; unsent rows stay in the outbox for the
        // next start (or another replica), with their ids.
        stop_dispatch.cancel();
        let _ =
            tokio::time::timeout_at(deadline + std::time::Duration::from_secs(5), dispatch_task)
                .await;
        stop_http.cancel();
        let served = tokio::time::timeout(std::time::Duration::from_secs(5), http).await;
        state.store.close().await;
        tracing::info!("shutdown complete");
        match served {
            Ok(Ok(Err(e))) => Err(AppError::Serve(e.to_string())),
            _ => Ok(()),
        }
    }
}

/// `serve --monitors FILE`: applied before the daemon serves (a bad file stops the start),
/// then watched until `stop`; and the registry sync, when asked for.
async fn start_monitors_file(state: &AppState, stop: &CancellationToken) -> Result<(), AppError> {
    use crate::api::monitors::watch;
    if let Some(path) = state.settings.monitors_file.clone() {
        let view = watch::apply_file(state, &path).await?;
        watch::report(&view, &path);
        watch::spawn(state.clone(), path, stop.clone());
    }
    if let Some(every) = state.settings.registry_sync {
        crate::api::registry::spawn_sync(state.clone(), every, stop.clone());
    }
    Ok(())
}

/// The first admin key: from `MCPWATCH_ADMIN_TOKEN`, or generated into `<data dir>/admin-token`
/// (mode 0600) on first start, its path printed once.
async fn ensure_admin_key(store: &dyn store::Store, settings: &Settings) -> Result<(), AppError> {
    if let Some(token) = &settings.admin_token {
        let hash = token_hash(token);
        if store.find_key(&hash).await?.is_none() {
            let record = ApiKeyRecord {
                id: uuid::Uuid::now_v7().to_string(),
                name: "admin (MCPWATCH_ADMIN_TOKEN)".into(),
                prefix: token.chars().take(12).collect(),
                hash,
                scopes: vec!["admin".into()],
                created_at: api::now_ms(),
                last_used_at: None,
                region: None,
            };
            store.insert_key(&record).await?;
        }
        return Ok(());
    }
    let has_admin = store
        .list_keys()
        .await?
        .iter()
        .any(|k| k.scopes.iter().any(|s| s == "admin"));
    if has_admin {
        return Ok(());
    }
    let (_, token) = api::issue_key(
        store,
        "admin (generated on first start)",
        vec!["admin".into()],
        None,
    )
    .await
    .map_err(|e| AppError::Schedule(format!("{e:?}")))?;
    std::fs::create_dir_all(&settings.data_dir).map_err(|e| {
        crate::secrets::SecretError::KeyFile {
            path: settings.data_dir.display().to_string(),
            reason: e.to_string(),
        }
    })?;
    let path = settings.data_dir.join("admin-token");
    let _ = std::fs::remove_file(&path);
    write_private(&path, &token).map_err(|e| crate::secrets::SecretError::KeyFile {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    eprintln!(
        "mcpwatch: first start: an admin API token was written to {} (mode 0600)",
        path.display()
    );
    Ok(())
}

/// The store, migrated, with credentials sealed and the admin key in place, and this node's
/// lease if it leads.
async fn open_store(
    settings: &Settings,
    holder: &str,
) -> Result<
    (
        Arc<dyn store::Store>,
        Sealer,
        Option<Box<dyn store::LeaderLease>>,
    ),
    AppError,
> {
    let store = store::open(&settings.database, settings.db_max_connections).await?;
    store.migrate().await?;
    let sealer = Sealer::load_or_create(settings.secret_key, &settings.data_dir)?;
    seal_url_credentials(store.as_ref(), &sealer).await?;
    ensure_admin_key(store.as_ref(), settings).await?;
    // One replica leads (always, on SQLite); the cluster task schedules its servers.
    let lease = store.try_lead(holder).await?;
    if lease.is_none() && store.backend() == "sqlite" {
        return Err(AppError::Schedule(
            "SQLite is a single node and another mcpwatch serve already uses this database; \
             run replicas on Postgres (DATABASE_URL=postgres://…)"
                .into(),
        ));
    }
    Ok((store, sealer, lease))
}

/// The alert dispatcher, with email when SMTP is set (and refusing to start without it when
/// email channels exist).
async fn dispatcher(
    store: &Arc<dyn store::Store>,
    sealer: &Sealer,
    settings: &Settings,
    metrics: &Arc<Metrics>,
    leader: &Arc<AtomicBool>,
) -> Result<Dispatcher, AppError> {
    let dispatcher = Dispatcher::new(
        store.clone(),
        sealer.clone(),
        settings.policy.clone(),
        settings.public_url.clone(),
        system_clock(),
        settings.delivery_lease,
    )
    .map_err(|e| AppError::Schedule(format!("alert dispatcher: {e}")))?;
    let dispatcher = match (&settings.smtp_url, &settings.smtp_from) {
        (Some(url), Some(from)) => {
            if crate::config::smtp_password_in_clear(url) {
                tracing::warn!(
                    "MCPWATCH_SMTP_URL sends its password without TLS \
                     (allowed by MCPWATCH_SMTP_PLAINTEXT_AUTH=true)"
                );
            }
            dispatcher.with_mailer(Mailer::new(url, from).map_err(AppError::Schedule)?)
        }
        _ => {
            let email = store
                .list_channels()
                .await?
                .iter()
                .filter(|c| c.kind == crate::store::ChannelKind::Email)
                .count();
            if email > 0 {
                return Err(AppError::Schedule(format!(
                    "MCPWATCH_SMTP_URL: {email} email channel(s) exist but SMTP is not configured (set MCPWATCH_SMTP_URL and MCPWATCH_SMTP_FROM)"
                )));
            }
            dispatcher
        }
    }
    .with_metrics(metrics.clone())
    .with_leader(leader.clone());
    Ok(dispatcher)
}

/// Background upkeep: regions gone silent, retention, objectives and credential expiry; stopped by the returned token.
fn spawn_upkeep(
    store: &Arc<dyn store::Store>,
    settings: &Settings,
    (leader, metrics): (&Arc<AtomicBool>, &Arc<Metrics>),
    dispatcher: &Dispatcher,
) -> CancellationToken {
    let stop_retention = CancellationToken::new();
    tokio::spawn(crate::agent::silence::watch(
        store.clone(),
        settings.region_silent_after,
        dispatcher.wake.clone(),
        stop_retention.clone(),
    ));
    tokio::spawn(store::retention::run(
        store.clone(),
        store::retention::Retention {
            raw: settings.retention_raw,
            rollup: settings.retention_rollup,
        },
        stop_retention.clone(),
        leader.clone(),
    ));
    let objectives = crate::slo::watch::SloWatch {
        store: store.clone(),
        clock: system_clock(),
        metrics: Some(metrics.clone()),
        wake: dispatcher.wake.clone(),
    };
    tokio::spawn(objectives.run(leader.clone(), stop_retention.clone()));
    let credentials = crate::credentials::watch::CredentialWatch {
        store: store.clone(),
        clock: system_clock(),
        metrics: Some(metrics.clone()),
        wake: dispatcher.wake.clone(),
        leads: settings.credential_warn.clone(),
    };
    tokio::spawn(credentials.run(leader.clone(), stop_retention.clone()));
    stop_retention
}
