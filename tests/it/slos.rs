//! Objectives and burn-rate alerts, on both backends, under a manual clock: results go through
//! the real ingest and state machine; the evaluator ticks every 30 s of simulated time. A
//! server failing 2 % of its probes for an hour raises `slo.burning` once (before the budget
//! is gone), and `slo.recovered` once after it stops; the budget is checked against a
//! hand-computed case. Then the API: objectives with figures, bad input by field, metrics, the
//! monthly report as JSON, CSV and a page, and the objective on the server's page.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use crate::support;

use mcpwatch::ingest::{self, IngestItem};
use mcpwatch::probe::{Failure, FailureKind, Phase, ProbeReport, Verdict};
use mcpwatch::slo::watch::SloWatch;
use mcpwatch::store::{EventRecord, SloRecord, Store};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::app::spawn_app;
use support::db::{Backend, TestDb};
use test_case::test_case;

const T0: i64 = 1_800_000_000_000;
const STEP: i64 = 10_000;

fn report(ok: bool) -> ProbeReport {
    let mut r = ProbeReport::new("https://mcp.example.com/mcp".into(), String::new());
    if ok {
        r.verdict = Verdict::Up;
        r.timings_ms.total = 120.0;
    } else {
        r.verdict = Verdict::Down;
        r.failure = Some(Failure {
            kind: FailureKind::Timeout,
            phase: Phase::ToolsList,
            message: "no answer within 10 s".into(),
            http_status: None,
            jsonrpc_code: None,
        });
    }
    r
}

/// Drive `steps` results, every 10 s from `from`, failing where `fails(i)`; the evaluator
/// ticks every 30 s of it. The alerts it raised.
async fn drive(
    handle: &ingest::IngestHandle,
    watch: &SloWatch,
    now: &AtomicI64,
    (from, steps): (i64, i64),
    fails: impl Fn(i64) -> bool,
) -> Vec<EventRecord> {
    let mut raised = Vec::new();
    for i in 0..steps {
        let at = from + i * STEP;
        let item = IngestItem {
            result_id: format!("r{at}"),
            server_id: "srv".into(),
            region: "local".into(),
            started_at: at,
            report: report(!fails(i)),
            vantage_unhealthy: false,
        };
        handle.submit(item).await.unwrap();
        if i % 3 == 2 {
            handle.flush().await;
            now.store(at, Ordering::SeqCst);
            raised.extend(watch.tick().await.unwrap());
        }
    }
    raised
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn an_hour_failing_two_percent_alerts_once_and_recovers_once(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store: Arc<dyn Store> = db.store().await;
    // Watched for 6 hours before the failing hour, as a server in production would be.
    let mut server = support::fixtures::server("srv", "srv", T0 - 6 * 3_600_000);
    server.failures_to_down = 1;
    server.interval_seconds = 10;
    store.insert_server(&server).await.unwrap();
    let oncall =
        support::fixtures::webhook_channel("oncall", &["slo.burning", "slo.recovered"], &["prod"]);
    store.insert_channel(&oncall).await.unwrap();
    let slo = SloRecord {
        id: "slo-1".into(),
        name: "srv availability".into(),
        server_id: Some("srv".into()),
        tag: None,
        objective: 0.999,
        window_days: 30,
        latency_ms: Some(800.0),
        latency_objective: Some(0.95),
        burning_since: None,
        burning_rule: None,
        created_at: T0,
    };
    store.insert_slo(&slo).await.unwrap();
    let (handle, task, stop) = support::fixtures::ingest(&store, None);
    let now = Arc::new(AtomicI64::new(T0));
    let reader = now.clone();
    let metrics = Arc::new(mcpwatch::metrics::Metrics::new().unwrap());
    let watch = SloWatch {
        store: store.clone(),
        clock: Arc::new(move || reader.load(Ordering::SeqCst)),
        metrics: Some(metrics.clone()),
        wake: Arc::new(tokio::sync::Notify::new()),
    };

    let quiet = drive(&handle, &watch, &now, (T0 - 6 * 3_600_000, 2160), |_| false).await;
    assert!(quiet.is_empty(), "{backend:?}: {quiet:?}");
    // One hour at 10 s: 360 probes, 7 of them failing (2 %), each 10 s down.
    let burning = drive(&handle, &watch, &now, (T0, 360), |i| i % 50 == 25).await;
    let kinds: Vec<&str> = burning.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        vec!["slo.burning"],
        "{backend:?}: one alert in the hour"
    );
    let fired = &burning[0];
    assert!(
        fired.payload["figures"]["budget_left"].as_f64().unwrap() > 0.9,
        "{backend:?}: raised long before the budget is gone: {}",
        fired.payload
    );
    assert_eq!(fired.payload["rule"], "14.4× over 1h and 5m");
    // The 6th failure (at 2750 s) puts 60 s in the last hour (16.7×); the tick after it fires.
    assert_eq!(fired.at - T0, 2_780_000, "{backend:?}");
    assert_eq!(fired.payload["server"]["slug"], "srv");

    // Two good hours: it recovers, once, and nothing else is raised.
    let after = drive(&handle, &watch, &now, (T0 + 360 * STEP, 720), |_| false).await;
    let kinds: Vec<&str> = after.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, vec!["slo.recovered"], "{backend:?}");
    // The hour's window holds under 51.84 s (14.4 × 0.1 %) once the 2nd outage (750-760 s)
    // has all but left it: the first tick from 4358 s.
    assert_eq!(after[0].at - T0, 4_370_000, "{backend:?}");
    assert_eq!(after[0].payload["burned_for_seconds"], 1590);

    // Hand-computed: 7 outages of 10 s = 70 s spent of 0.1 % × 30 days = 2592 s.
    let figures = mcpwatch::slo::watch::evaluate(
        store.as_ref(),
        &store.get_slo("slo-1").await.unwrap().unwrap(),
        &[&server],
        now.load(Ordering::SeqCst),
    )
    .await
    .unwrap();
    assert!(
        (figures.budget_seconds - 2592.0).abs() < 1e-6,
        "{figures:?}"
    );
    assert!(
        (figures.spent_seconds - 70.0).abs() < 1e-6,
        "{backend:?}: {figures:?}"
    );
    assert!((figures.budget_left - (1.0 - 70.0 / 2592.0)).abs() < 1e-9);
    let watched = (now.load(Ordering::SeqCst) - server.created_at) as f64 / 1000.0;
    assert!((figures.attainment.unwrap() - (1.0 - 70.0 / watched)).abs() < 1e-9);
    assert_eq!(
        figures.latency_attainment,
        Some(1.0),
        "120 ms is within 800 ms"
    );
    assert_eq!(figures.burn_rate("1h"), Some(0.0));
    assert!(
        store
            .get_slo("slo-1")
            .await
            .unwrap()
            .unwrap()
            .burning_since
            .is_none()
    );

    // Each alert went to the channel following the server's tag, in its transaction.
    let page = mcpwatch::store::Page {
        limit: 50,
        after: None,
    };
    let deliveries = store
        .list_deliveries(Some("oncall"), None, &page)
        .await
        .unwrap();
    for e in burning.iter().chain(&after) {
        let n = deliveries.iter().filter(|d| d.event_id == e.id).count();
        assert_eq!(n, 1, "{backend:?}: {}", e.kind);
    }
    assert_eq!(deliveries.len(), 2, "{backend:?}: nothing else");
    let text = metrics.render();
    assert!(
        text.contains("mcpwatch_slo_objective_ratio{slo=\"srv availability\"} 0.999"),
        "{text}"
    );
    assert!(text.contains("mcpwatch_slo_burning{slo=\"srv availability\"} 0"));
    assert!(text.contains("mcpwatch_slo_burn_rate{slo=\"srv availability\",window=\"6h\"}"));
    stop.cancel();
    let _ = task.await;
    store.close().await;
    db.cleanup().await;
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn objectives_reports_and_the_page_show_the_same_figures(backend: Backend) {
    let app = spawn_app(backend).await;
    app.add_paused_server("Search", true, &["prod"]).await;
    for (body, field) in [
        (json!({"name": "x", "objective": 0.999}), "server"),
        (
            json!({"name": "x", "server": "search", "tag": "prod", "objective": 0.999}),
            "server",
        ),
        (
            json!({"name": "x", "server": "nope", "objective": 0.999}),
            "server",
        ),
        (
            json!({"name": "x", "server": "search", "objective": 99.9}),
            "objective",
        ),
        (
            json!({"name": "x", "server": "search", "objective": 0.999, "window_days": 400}),
            "window_days",
        ),
        (
            json!({"name": "", "server": "search", "objective": 0.999}),
            "name",
        ),
        (
            json!({"name": "x", "server": "search", "objective": 0.999,
                "latency": {"threshold_ms": 800, "objective": 2}}),
            "latency.objective",
        ),
    ] {
        let (status, problem) = app.post("/api/v1/slos", body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
    }
    let (status, slo) = app
        .post(
            "/api/v1/slos",
            json!({"name": "search 99.9", "server": "search", "objective": 0.999,
                   "latency": {"threshold_ms": 800, "objective": 0.95}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{slo}");
    assert_eq!(slo["server"], "search");
    assert_eq!(slo["window_days"], 30);
    assert_eq!(slo["figures"]["budget_seconds"], 2592.0, "0.1 % of 30 days");
    assert_eq!(slo["figures"]["budget_left"], 1.0);
    assert_eq!(slo["burning"], false);
    let (status, _) = app
        .post(
            "/api/v1/slos",
            json!({"name": "search 99.9", "tag": "prod", "objective": 0.99}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "names are unique (the metrics' label)"
    );
    let (status, fleet) = app
        .post(
            "/api/v1/slos",
            json!({"name": "prod fleet", "tag": "prod", "objective": 0.99, "window_days": 7}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(fleet["servers"], 1);
    let (_, list) = app.get("/api/v1/slos").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    let (status, one) = app.get("/api/v1/slos/prod%20fleet").await;
    assert_eq!(status, StatusCode::OK, "{one}");
    assert_eq!(one["tag"], "prod");

    // The monthly report: JSON, CSV, a page; a bad month names the field.
    let (status, report) = app.get("/api/v1/servers/search/report?month=2026-11").await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["month"], "2026-11");
    assert_eq!(report["from"], "2026-11-01T00:00:00Z");
    let names: Vec<&str> = report["objectives"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["search 99.9", "prod fleet"]);
    assert_eq!(
        report["objectives"][0]["budget_seconds"], 2592.0,
        "0.1 % of 30 days"
    );
    let (status, bad): (StatusCode, Value) =
        app.get("/api/v1/servers/search/report?month=2026-13").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad["errors"][0]["field"], "month");
    let csv = app
        .raw()
        .get(format!(
            "{}/api/v1/servers/search/report?month=2026-11&format=csv",
            app.base
        ))
        .bearer_auth(support::app::ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    let csv = csv.text().await.unwrap();
    assert!(
        csv.starts_with("server,month,availability,downtime_seconds,incidents,"),
        "{csv}"
    );
    assert!(csv.contains("\nsearch,2026-11,"), "{csv}");
    let (status, _, page) = app.fetch("/s/search/report/2026-11").await;
    assert_eq!(status, 200);
    assert!(
        page.contains("Server search: November 2026") || page.contains("Search: November 2026"),
        "{page}"
    );
    assert!(page.contains("search 99.9") && page.contains("No incident this month."));
    assert_eq!(app.fetch("/s/search/report/someday").await.0, 404);

    // The server's page: the objectives with their budget, and the report link.
    let (_, _, server_page) = app.fetch("/s/search").await;
    assert!(server_page.contains("<h2>Objectives</h2>"), "{server_page}");
    assert!(server_page.contains("99.9 % over 30 days"));
    assert!(server_page.contains("/s/search/report/"));

    let (status, _) = app
        .call(
            reqwest::Method::DELETE,
            "/api/v1/slos/prod%20fleet",
            Some(support::app::ADMIN_TOKEN),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, list) = app.get("/api/v1/slos").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    app.stop().await;
}
