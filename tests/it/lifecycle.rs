//! The daemon applying the checklist to itself: graceful shutdown drains an in-flight probe
//! (readiness 503 meanwhile), and a database outage loses no result and shows in `/readyz`.

use crate::support;
use test_case::test_case;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use mcpwatch::ingest::{self, IngestItem};
use mcpwatch::probe::{ProbeReport, Verdict};
use mcpwatch::store::{self, Page, ResultQuery, ServerRecord, Store};
use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::Connection;
use support::app::spawn_app;
use support::db::{Backend, TestDb};
use support::fake_mcp::{FakeConfig, FakeServer, Fault};
use tokio_util::sync::CancellationToken;

async fn result_count(store: &Arc<dyn Store>, server_id: &str) -> usize {
    let q = ResultQuery {
        server_id: server_id.into(),
        page: Page {
            limit: 500,
            after: None,
        },
        ..ResultQuery::default()
    };
    store.list_results(&q).await.unwrap().len()
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn shutdown_drains_the_in_flight_probe_and_reports_not_ready(backend: Backend) {
    let mut app = spawn_app(backend).await;
    let fake = FakeServer::start(FakeConfig {
        fault: Fault::Slow(Duration::from_millis(1500)),
        ..FakeConfig::default()
    })
    .await;
    let (s, created) = app
        .post(
            "/api/v1/servers",
            json!({"name": "Slow", "url": fake.url()}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let id = created["id"].as_str().unwrap().to_string();
    // The first probe is in flight once the (slow) server has its request.
    support::eventually(
        "the first probe in flight",
        Duration::from_secs(5),
        async || fake.seen(|s| !s.methods.is_empty()),
    )
    .await;
    let started = Instant::now();
    app.begin_shutdown();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (ready, body) = app.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(
        ready,
        StatusCode::SERVICE_UNAVAILABLE,
        "{backend:?}: {body}"
    );
    assert!(body.to_string().contains("shutting down"));
    app.finish().await.expect("clean exit");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "waited for the probe"
    );
    let db = app.db.take().unwrap();
    let check = store::open(&db.url, 1).await.unwrap();
    assert_eq!(
        result_count(&check, &id).await,
        1,
        "{backend:?}: the drained probe's result was stored"
    );
    check.close().await;
    db.cleanup().await;
}

fn up_report() -> ProbeReport {
    let mut r = ProbeReport::new("http://127.0.0.1/mcp".into(), String::new());
    r.verdict = Verdict::Up;
    r
}

async fn set_connections(db_name: &str, allow: bool) {
    let admin = std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "ALTER DATABASE {db_name} ALLOW_CONNECTIONS {allow}"
    )))
    .execute(&mut conn)
    .await
    .unwrap();
    if !allow {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db_name}' AND pid <> pg_backend_pid()"
        )))
        .execute(&mut conn)
        .await
        .unwrap();
    }
}

#[tokio::test]
async fn a_database_outage_loses_no_result_and_readiness_says_so() {
    let db = TestDb::new(Backend::Postgres).await;
    let name = match &db.url {
        mcpwatch::config::DatabaseUrl::Postgres(u) => u.rsplit('/').next().unwrap().to_string(),
        _ => unreachable!(),
    };
    let store = db.store().await;
    let server = ServerRecord {
        registry: None,
        paused_reason: None,
        oauth: None,
        oauth_enc: None,
        bearer_expires_at: None,
        calls: None,
        list_contract: true,
        managed_by: None,
        id: "srv".into(),
        slug: "srv".into(),
        name: "srv".into(),
        url: "http://127.0.0.1/mcp".into(),
        url_enc: None,
        header_names: vec![],
        headers_enc: None,
        interval_seconds: 60,
        timeout_seconds: 10,
        tags: vec![],
        public: false,
        paused: false,
        failures_to_down: 2,
        successes_to_up: 1,
        degraded_latency_ms: None,
        expect_auth: false,
        era_hint: None,
        created_at: 1,
        updated_at: 1,
        regions: vec![],
        quorum: None,
    };
    store.insert_server(&server).await.unwrap();
    let stop = CancellationToken::new();
    let (handle, task) = ingest::spawn(
        store.clone(),
        mcpwatch::shard::Ownership::everything("test"),
        1000,
        None,
        stop.clone(),
        Arc::new(tokio::sync::Notify::new()),
        Arc::new(mcpwatch::metrics::Metrics::new().unwrap()),
        std::time::Duration::from_secs(180),
    );
    handle
        .submit(IngestItem {
            result_id: "r0".into(),
            server_id: "srv".into(),
            region: "local".into(),
            started_at: 1,
            report: up_report(),
            vantage_unhealthy: false,
        })
        .await
        .unwrap();
    handle.flush().await;

    set_connections(&name, false).await;
    for i in 1..=30 {
        let item = IngestItem {
            result_id: format!("r{i}"),
            server_id: "srv".into(),
            region: "local".into(),
            started_at: 1 + i,
            report: up_report(),
            vantage_unhealthy: false,
        };
        handle.submit(item).await.unwrap();
    }
    let mut saw_outage = false;
    for _ in 0..100 {
        if !handle.health.database_ok.load(Ordering::Relaxed) {
            saw_outage = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        saw_outage,
        "the failing writes are reported (readyz reads this flag)"
    );
    assert!(
        store.ready().await.is_err(),
        "readiness fails while the database is away"
    );

    set_connections(&name, true).await;
    tokio::time::timeout(Duration::from_secs(30), handle.flush())
        .await
        .expect("writes resume");
    assert!(handle.health.database_ok.load(Ordering::Relaxed));
    assert_eq!(
        result_count(&store, "srv").await,
        31,
        "every result held during the outage was written"
    );
    stop.cancel();
    let _ = task.await;
    store.close().await;
    db.cleanup().await;
}

/// During a database outage the public pages and badges are served from their last good copy,
/// marked stale, and `/readyz` and the API answer at once instead of hanging on the pool.
#[tokio::test]
async fn a_database_outage_keeps_public_pages_up_and_answers_at_once() {
    let app = spawn_app(Backend::Postgres).await;
    let name = match &app.db.as_ref().unwrap().url {
        mcpwatch::config::DatabaseUrl::Postgres(u) => u.rsplit('/').next().unwrap().to_string(),
        _ => unreachable!(),
    };
    let fake = FakeServer::start(FakeConfig::default()).await;
    let (s, v) = app
        .post(
            "/api/v1/servers",
            json!({"name": "Outage demo", "slug": "od", "url": format!("{}", fake.url()), "public": true}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    for _ in 0..100 {
        let (_, v) = app.get("/api/v1/servers/od").await;
        if v["state"] == "up" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let get = |path: &'static str| {
        let url = format!("{}{path}", app.base);
        let client = app.raw().clone();
        async move {
            let started = Instant::now();
            let resp = client.get(url).send().await.unwrap();
            let stale = resp.headers().contains_key("x-mcpwatch-stale");
            (
                resp.status(),
                stale,
                resp.text().await.unwrap(),
                started.elapsed(),
            )
        }
    };
    for path in ["/", "/s/od", "/status.json", "/badge/od.svg"] {
        let (s, stale, _, _) = get(path).await;
        assert_eq!(
            (s, stale),
            (StatusCode::OK, false),
            "{path} before the outage"
        );
    }

    set_connections(&name, false).await;
    let (s, stale, body, took) = get("/").await;
    assert_eq!((s, stale), (StatusCode::OK, true), "{body}");
    assert!(
        body.contains("Showing the last data") && body.contains("Outage demo"),
        "{body}"
    );
    assert!(
        took < Duration::from_secs(3),
        "the first read is bounded: {took:?}"
    );
    for path in ["/s/od", "/status.json", "/badge/od.svg"] {
        let (s, stale, body, took) = get(path).await;
        assert_eq!((s, stale), (StatusCode::OK, true), "{path}: {body}");
        assert!(
            took < Duration::from_millis(500),
            "{path} at once: {took:?}"
        );
        if path == "/status.json" {
            let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(doc["stale"], true, "{doc}");
            assert!(doc["stale_since"].is_string(), "{doc}");
        }
    }
    let (s, _, body, took) = get("/readyz").await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body.contains("unreachable since") && took < Duration::from_millis(500),
        "{body} {took:?}"
    );
    let (s, _, body, took) = get("/s/never-seen").await;
    assert_eq!(
        s,
        StatusCode::SERVICE_UNAVAILABLE,
        "no copy: says so at once: {body}"
    );
    assert!(took < Duration::from_millis(500), "{took:?}");
    let started = Instant::now();
    let (s, _) = app.get("/api/v1/servers").await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );

    set_connections(&name, true).await;
    let mut fresh = false;
    for _ in 0..150 {
        let (s, stale, _, _) = get("/").await;
        if s == StatusCode::OK && !stale {
            fresh = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(fresh, "fresh pages once the database is back");
    let (s, _) = app.get("/api/v1/servers").await;
    assert_eq!(s, StatusCode::OK);
    app.stop().await;
}

/// Results stored for `server_id`, counted by the database.
async fn stored_results(db: &TestDb, server_id: &str) -> i64 {
    let mut conn = sqlx::PgConnection::connect(&db.url_text()).await.unwrap();
    sqlx::query_scalar("SELECT count(*) FROM probe_results WHERE server_id = $1")
        .bind(server_id)
        .fetch_one(&mut conn)
        .await
        .unwrap()
}

fn spawn_spilling_ingest(
    store: &Arc<dyn Store>,
    spill_dir: &std::path::Path,
) -> (
    ingest::IngestHandle,
    tokio::task::JoinHandle<()>,
    CancellationToken,
) {
    let spill = ingest::Spill::open(spill_dir, ingest::spill::MIN_BYTES).unwrap();
    support::fixtures::ingest(store, Some(spill))
}

/// An outage longer than the in-memory queue: results spill to disk and the probes never
/// wait; a stop during the outage keeps them on disk; the next start stores every one.
#[tokio::test]
async fn an_outage_past_the_queue_spills_to_disk_and_loses_nothing_across_a_restart() {
    let db = TestDb::new(Backend::Postgres).await;
    let name = db.url_text().rsplit('/').next().unwrap().to_string();
    let store = db.store().await;
    store
        .insert_server(&support::fixtures::server("srv", "srv", 1))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (handle, task, stop) = spawn_spilling_ingest(&store, dir.path());
    let item = |i: i64| IngestItem {
        result_id: format!("r{i}"),
        server_id: "srv".into(),
        region: "local".into(),
        started_at: 1_000 + i,
        report: up_report(),
        vantage_unhealthy: false,
    };
    handle.submit(item(0)).await.unwrap();
    handle.flush().await;

    set_connections(&name, false).await;
    // Ten times the queue's bound, and no submit waits on the database.
    tokio::time::timeout(Duration::from_secs(5), async {
        for i in 1..=1_000 {
            handle.submit(item(i)).await.unwrap();
        }
    })
    .await
    .expect("submitting never waits for the database");
    let (spilled, bytes, _) = handle.spilled().unwrap();
    assert!(spilled >= 800, "{spilled} spilled");
    assert!(bytes > 0);

    // A stop mid-outage: what the database did not take stays on disk.
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(20), task)
        .await
        .expect("the stop does not wait on the database")
        .unwrap();
    assert_eq!(handle.spill_dropped(), 0);

    set_connections(&name, true).await;
    let (handle, task, stop) = spawn_spilling_ingest(&store, dir.path());
    handle.submit(item(1_001)).await.unwrap();
    tokio::time::timeout(Duration::from_secs(60), handle.flush())
        .await
        .expect("the spill is taken back");
    assert_eq!(
        stored_results(&db, "srv").await,
        1_002,
        "every result, once"
    );
    assert_eq!(handle.spilled().unwrap().0, 0);
    stop.cancel();
    let _ = task.await;
    store.close().await;
    db.cleanup().await;
}

fn report_with_tools(names: &[&str]) -> ProbeReport {
    let mut r = up_report();
    let tools = support::seed::tools(names).as_array().unwrap().clone();
    r.schema_hash = Some(mcpwatch::schema::schema_hash(&tools).unwrap());
    r.interface_hash = Some(mcpwatch::schema::interface_hash(&tools).unwrap());
    r.tools_count = tools.len();
    r.tools = tools;
    r
}

/// A result overtaken by a newer one from its region (a slow probe finishing after a "check
/// now", a late agent push) is stored and counted, but moves nothing: no state back, no
/// rollback in the schema history, no `schema.changed` for a list the server no longer serves.
#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn a_result_arriving_after_a_newer_one_is_stored_but_decides_nothing(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    store
        .insert_server(&support::fixtures::server("srv", "srv", 1))
        .await
        .unwrap();
    let (handle, task, stop) = support::fixtures::ingest(&store, None);
    let item = |id: &str, started_at: i64, report: ProbeReport| IngestItem {
        result_id: id.into(),
        server_id: "srv".into(),
        region: "local".into(),
        started_at,
        report,
        vantage_unhealthy: false,
    };
    let a = report_with_tools(&["add", "search"]);
    let b = report_with_tools(&["add"]);
    let mut down = up_report();
    down.verdict = Verdict::Down;
    handle.submit(item("r1", 1_000, a.clone())).await.unwrap();
    handle.submit(item("r3", 3_000, b.clone())).await.unwrap();
    // Both started before r3 and arrive after it.
    handle.submit(item("r2", 2_000, a.clone())).await.unwrap();
    handle.submit(item("r2b", 2_500, down)).await.unwrap();
    handle.flush().await;

    assert_eq!(
        result_count(&store, "srv").await,
        4,
        "{backend:?}: all stored"
    );
    let changes = store.list_schema_changes("srv").await.unwrap();
    let moves: Vec<(Option<&str>, &str)> = changes
        .iter()
        .map(|c| (c.from_hash.as_deref(), c.to_hash.as_str()))
        .collect();
    let (ha, hb) = (a.schema_hash.as_deref(), b.schema_hash.as_deref().unwrap());
    assert_eq!(moves.len(), 2, "{backend:?}: {moves:?}");
    assert!(moves.contains(&(ha, hb)), "{backend:?}: {moves:?}");
    let (state, _) = store.load_state("srv").await.unwrap();
    let state = state.unwrap();
    assert_eq!(state.schema_hash.as_deref(), Some(hb), "{backend:?}");
    assert_eq!(state.status.as_str(), "up", "{backend:?}");
    let events = store
        .list_events(
            Some("srv"),
            None,
            &Page {
                limit: 50,
                after: None,
            },
        )
        .await
        .unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "schema.changed").count(),
        1,
        "{backend:?}: only A → B: {kinds:?}"
    );
    assert!(!kinds.contains(&"server.down"), "{backend:?}: {kinds:?}");
    stop.cancel();
    let _ = task.await;
    store.close().await;
    db.cleanup().await;
}

/// A settings change (an operator's edit, the change feed seeing a new server) between two
/// results of one batch takes the new settings and keeps what the first result decided: the
/// server's first tool list is recorded once, its first `up` decided once.
#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn a_settings_change_between_two_results_keeps_the_first_ones_decisions(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let mut server = support::fixtures::server("srv", "srv", 1);
    store.insert_server(&server).await.unwrap();
    let (handle, task, stop) = support::fixtures::ingest(&store, None);
    let item = |id: &str, started_at: i64| IngestItem {
        result_id: id.into(),
        server_id: "srv".into(),
        region: "local".into(),
        started_at,
        report: report_with_tools(&["add", "search"]),
        vantage_unhealthy: false,
    };
    // Queued together (the ingest runs only when this test waits), so one batch.
    handle.submit(item("r1", 1_000)).await.unwrap();
    server.name = "renamed".into();
    store.update_server(&server).await.unwrap();
    handle.invalidate("srv").await;
    handle.submit(item("r2", 2_000)).await.unwrap();
    handle.flush().await;

    let changes = store.list_schema_changes("srv").await.unwrap();
    assert_eq!(changes.len(), 1, "{backend:?}: {changes:?}");
    let events = store
        .list_events(
            Some("srv"),
            None,
            &Page {
                limit: 50,
                after: None,
            },
        )
        .await
        .unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    let mut unique = kinds.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        kinds.len(),
        "{backend:?}: each once: {kinds:?}"
    );
    assert_eq!(result_count(&store, "srv").await, 2, "{backend:?}");
    // The new settings are in use from the next result on.
    let (state, _) = store.load_state("srv").await.unwrap();
    assert_eq!(state.unwrap().last_result_at, Some(2_000), "{backend:?}");
    stop.cancel();
    let _ = task.await;
    store.close().await;
    db.cleanup().await;
}
