//! Synthetic tool calls in the daemon (issue 16 §3): set per server through the API and the
//! monitors file (the write override shown), made by every scheduled and "check now" probe,
//! each call's outcome stored with its result, per-tool series in `/metrics`, and the calls
//! with a latency chart per tool on the server's page. The probe's own checks (schema,
//! isError, hangs, the read-only rule) are in `probe_calls.rs` and, against real servers, in
//! tests/interop/run.sh.

use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;
use test_case::test_case;

use crate::support::app::{TestApp, spawn_app};
use crate::support::db::Backend;
use crate::support::fake_mcp::{FakeConfig, FakeServer};
use crate::support::{self, eventually};

/// `echo` is marked read-only in the fake's tools; `add` is not.
fn echo_and_add() -> Value {
    json!([
        {"tool": "echo", "arguments": {"message": "hi"}, "expect_contains": "ok",
         "max_latency_ms": 5000},
        {"tool": "add", "arguments": {"a": 1, "b": 2}},
    ])
}

async fn register(app: &TestApp, slug: &str, url: &str, extra: Value) -> Value {
    let mut body = json!({"name": slug, "slug": slug, "url": url});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let (s, v) = app.post("/api/v1/servers", body).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    v
}

async fn check(app: &TestApp, slug: &str) -> Value {
    let (s, v) = app
        .post(&format!("/api/v1/servers/{slug}/check"), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v
}

async fn wait_state(app: &TestApp, slug: &str, state: &str) -> Value {
    let mut seen = Value::Null;
    eventually(
        &format!("{slug} {state}"),
        Duration::from_secs(15),
        async || {
            seen = app.get(&format!("/api/v1/servers/{slug}")).await.1;
            (seen["state"] != state).then(|| seen.to_string())
        },
    )
    .await;
    seen
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn calls_are_set_shown_changed_and_cleared_through_the_api(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut override_add = echo_and_add();
    override_add[1]["allow_write"] = json!(true);
    let v = register(
        &app,
        "calls",
        "http://127.0.0.1:9/mcp",
        json!({"paused": true, "calls": override_add, "call_failure": "down"}),
    )
    .await;
    assert_eq!(v["call_failure"], "down", "{v}");
    assert_eq!(v["calls"][0]["tool"], "echo");
    assert_eq!(v["calls"][0]["expect_contains"], "ok");
    assert_eq!(v["calls"][1]["allow_write"], true, "the override is shown");
    assert_eq!(v["calls"][0]["allow_write"], false);

    // A PATCH of the verdict alone keeps the calls; `null` clears them.
    let (s, v) = app
        .patch("/api/v1/servers/calls", json!({"call_failure": "degraded"}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (
            v["call_failure"].as_str(),
            v["calls"].as_array().map(Vec::len)
        ),
        (Some("degraded"), Some(2))
    );
    let (_, v) = app.get("/api/v1/servers/calls").await;
    assert_eq!(v["calls"][1]["arguments"], json!({"a": 1, "b": 2}));
    let (_, v) = app
        .patch("/api/v1/servers/calls", json!({"calls": null}))
        .await;
    assert_eq!(v["calls"], json!([]), "{v}");
}

#[tokio::test]
async fn bad_calls_are_refused_naming_each_call_and_field() {
    let app = spawn_app(Backend::Sqlite).await;
    let bad_calls = json!([
        {"tool": "", "arguments": "a string"},
        {"tool": "x", "expect_pointer": {"pointer": "no-slash", "equals": 1}},
        {"tool": "x", "max_latency_ms": 0},
        {"tool": "x", "expect": "typo"},
    ]);
    let (s, v) = app
        .post(
            "/api/v1/servers",
            json!({"name": "Bad", "url": "http://127.0.0.1:9/mcp", "calls": bad_calls,
                   "call_failure": "sometimes"}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["errors"][0]["field"], "call_failure", "{v}");
    assert!(v["detail"].as_str().unwrap().contains("`down`"), "{v}");

    let (s, v) = app
        .post(
            "/api/v1/servers",
            json!({"name": "Bad", "url": "http://127.0.0.1:9/mcp", "calls": bad_calls}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let fields: Vec<&str> = v["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("{v}"))
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
    for field in [
        "calls[0].tool",
        "calls[0].arguments",
        "calls[1].expect_pointer.pointer",
        "calls[2].max_latency_ms",
        "calls[3]",
    ] {
        assert!(fields.contains(&field), "{field} not in {v}");
    }
    let (s, v) = app
        .post(
            "/api/v1/servers",
            json!({"name": "Many", "url": "http://127.0.0.1:9/mcp",
                   "calls": vec![json!({"tool": "echo"}); 11]}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(v.to_string().contains("at most 10 calls"), "{v}");
}

/// The daemon calls only what it may, stores each outcome, turns a refused call into
/// `degraded`, and calls the write tool once the operator sets the override.
#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_makes_the_calls_stores_them_and_degrades_on_a_failed_one(backend: Backend) {
    let app = support::app::spawn_app_with(backend, |s| {
        s.metrics_token = Some("scrape".into());
    })
    .await;
    let fake = FakeServer::start(FakeConfig::default()).await;
    register(
        &app,
        "tooled",
        &fake.url(),
        json!({"public": true, "calls": echo_and_add(), "failures_to_down": 1}),
    )
    .await;
    let r = check(&app, "tooled").await;
    assert_eq!(r["verdict"], "degraded", "{r}");
    assert_eq!(r["failure"]["kind"], "tool_call", "{r}");
    assert!(
        r["failure"]["message"]
            .as_str()
            .unwrap()
            .contains("'add' is not marked readOnlyHint"),
        "{r}"
    );
    wait_state(&app, "tooled", "degraded").await;
    let mut called = Vec::new();
    fake.seen(|s| called = s.tool_calls.iter().map(|c| c.0.clone()).collect());
    assert!(
        called.iter().all(|t| t == "echo"),
        "add was called: {called:?}"
    );
    assert!(!called.is_empty(), "echo was never called");

    // Every stored result carries what each call did.
    let (_, page) = app.get("/api/v1/servers/tooled/results?limit=1").await;
    let calls = &page["items"][0]["calls"];
    assert_eq!(calls[0]["tool"], "echo", "{page}");
    assert_eq!(calls[0]["called"], true);
    assert_eq!(calls[0]["failure"], Value::Null, "{calls}");
    assert!(calls[0]["latency_ms"].as_f64().unwrap() > 0.0, "{calls}");
    assert_eq!(
        (&calls[1]["tool"], &calls[1]["called"]),
        (&json!("add"), &json!(false))
    );

    // The registration's scheduled probe is in `/metrics`: echo
    // answered, add was refused uncalled (no duration).
    let mut metrics = String::new();
    eventually(
        "the scheduled probe's call series",
        Duration::from_secs(10),
        async || {
            metrics = app.metrics(Some("scrape")).await;
            (!metrics.contains("mcpwatch_tool_call_success{")).then(|| metrics.clone())
        },
    )
    .await;
    let series = |family: &str, tool: &str| {
        metrics
            .lines()
            .find(|l| {
                l.starts_with(&format!(
                    "{family}{{server=\"tooled\",region=\"local\",tool=\"{tool}\"}}"
                ))
            })
            .map(|l| l.rsplit_once(' ').unwrap().1.parse::<f64>().unwrap())
    };
    assert_eq!(
        series("mcpwatch_tool_call_success", "echo"),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        series("mcpwatch_tool_call_success", "add"),
        Some(0.0),
        "{metrics}"
    );
    assert!(
        series("mcpwatch_tool_call_duration_seconds", "echo").is_some_and(|s| s > 0.0),
        "{metrics}"
    );
    assert_eq!(
        series("mcpwatch_tool_call_duration_seconds", "add"),
        None,
        "a call never made has no duration: {metrics}"
    );

    // The override: now `add` is called and the server is up again.
    let mut allowed = echo_and_add();
    allowed[1]["allow_write"] = json!(true);
    let (s, v) = app
        .patch("/api/v1/servers/tooled", json!({"calls": allowed}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let r = check(&app, "tooled").await;
    assert_eq!(r["verdict"], "up", "{r}");
    wait_state(&app, "tooled", "up").await;
    fake.seen(|s| called = s.tool_calls.iter().map(|c| c.0.clone()).collect());
    assert!(called.iter().any(|t| t == "add"), "{called:?}");

    // The page: each call, the override named, and a chart per tool that answered.
    let (status, _, html) = app.fetch("/s/tooled").await;
    assert_eq!(status, 200);
    assert!(html.contains("<h2>Tool calls</h2>"), "{html}");
    assert_eq!(html.matches("class=\"tool-call\"").count(), 2, "{html}");
    assert!(html.contains("write override"), "{html}");
    assert_eq!(
        html.matches("tool-chart").count(),
        2,
        "a chart for each tool that answered: {html}"
    );
}

#[tokio::test]
async fn a_failed_call_makes_the_server_down_when_configured() {
    let app = spawn_app(Backend::Sqlite).await;
    let fake = FakeServer::start(FakeConfig {
        call_result: json!({"isError": true, "content": [{"type": "text", "text": "index offline"}]}),
        ..FakeConfig::default()
    })
    .await;
    register(
        &app,
        "strict",
        &fake.url(),
        json!({"calls": [{"tool": "echo", "arguments": {"message": "hi"}}],
               "call_failure": "down", "failures_to_down": 1}),
    )
    .await;
    let r = check(&app, "strict").await;
    assert_eq!(r["verdict"], "down", "{r}");
    assert!(
        r["failure"]["message"]
            .as_str()
            .unwrap()
            .contains("index offline"),
        "{r}"
    );
    wait_state(&app, "strict", "down").await;
    let (_, events) = app.get("/api/v1/events?limit=20").await;
    assert!(
        events.to_string().contains("server.down"),
        "a down decided by a call is alerted like any other: {events}"
    );
}

#[tokio::test]
async fn a_monitors_file_sets_calls_and_the_export_gives_them_back() {
    let app = spawn_app(Backend::Sqlite).await;
    let doc = json!({"source": "calls.toml", "servers": [{"name": "Filed", "slug": "filed", "paused": true,
        "url": "http://127.0.0.1:9/mcp", "calls": echo_and_add(), "call_failure": "down"}]});
    let (s, v) = app.post("/api/v1/monitors/apply", doc.clone()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, server) = app.get("/api/v1/servers/filed").await;
    assert_eq!(
        server["calls"].as_array().map(Vec::len),
        Some(2),
        "{server}"
    );
    assert_eq!(server["call_failure"], "down");
    // Applying the same file again changes nothing.
    let (_, plan) = app.post("/api/v1/monitors/plan", doc).await;
    assert!(
        !plan.to_string().contains("\"calls\""),
        "the same calls planned as a change: {plan}"
    );
    let (_, exported) = app.get("/api/v1/monitors/export").await;
    let server = &exported["document"]["servers"][0];
    assert_eq!(server["calls"][1]["tool"], "add", "{exported}");
    assert_eq!(server["call_failure"], "down");
}
