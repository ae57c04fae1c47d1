//! Registry import against a stand-in registry in the published shapes: several pages (both
//! cursor spellings), a ready remote, a variable filled from its default, a variable without
//! one and a secret header (created paused, saying what they need), a deleted server (not
//! created), a server with two remotes, a slug taken by a server of the API; then a
//! deprecation pausing a monitor, re-listing resuming it, an operator's pause kept, a header an
//! operator gave counting as configuration, and the CLI's dry run.

use crate::support;

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::app::{ADMIN_TOKEN, spawn_app_with};
use support::db::Backend;
use support::fake_mcp::{FakeConfig, FakeServer};
use support::registry::{Registry, entry};

fn remote(url: &str) -> Value {
    json!([{"type": "streamable-http", "url": url}])
}

/// The registry's listing: every case once.
fn listing(fake: &FakeServer) -> Vec<Value> {
    let url = fake.url();
    let port = url::Url::parse(&url).unwrap().port().unwrap().to_string();
    vec![
        entry("io.github.acme/weather", "Weather", "active", remote(&url)),
        entry(
            "io.github.acme/region",
            "Region",
            "active",
            json!([{"type": "streamable-http", "url": "http://127.0.0.1:{port}/mcp",
                    "variables": {"port": {"default": port, "description": "port"}}}]),
        ),
        entry(
            "io.github.acme/tenant",
            "Tenant",
            "active",
            json!([{"type": "streamable-http", "url": "http://127.0.0.1:9/{tenant}/mcp",
                    "variables": {"tenant": {"isRequired": true, "description": "your tenant"}}}]),
        ),
        entry(
            "io.github.acme/keyed",
            "Keyed",
            "active",
            json!([{"type": "streamable-http", "url": url,
                    "headers": [{"name": "Authorization", "isRequired": true, "isSecret": true,
                                 "description": "Bearer token"}]}]),
        ),
        entry("io.github.acme/gone", "Gone", "deleted", remote(&url)),
        entry(
            "io.github.acme/both",
            "Both",
            "active",
            json!([{"type": "streamable-http", "url": url}, {"type": "sse", "url": url},
                   {"type": "stdio"}]),
        ),
        entry("io.github.acme/taken", "Taken", "active", remote(&url)),
    ]
}

fn action(report: &Value, slug: &str) -> (String, String) {
    let a = report["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["slug"] == slug)
        .unwrap_or_else(|| panic!("no action for {slug}: {report}"));
    (
        a["action"].as_str().unwrap().to_string(),
        a["reason"].as_str().unwrap_or("").to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_import_creates_the_right_monitors_in_the_right_states() {
    let fake = FakeServer::start(FakeConfig::default()).await;
    let registry = Registry::start(listing(&fake)).await;
    // Imported servers are probed at their offset within the first interval: a short one.
    let app = spawn_app_with(Backend::Sqlite, |s| s.default_interval = 10).await;
    let (status, _) = app
        .post(
            "/api/v1/servers",
            json!({"name": "Taken", "slug": "io-github-acme-taken", "url": fake.url()}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let import =
        |dry_run: bool| json!({"registry": registry.url, "dry_run": dry_run, "public": true});

    let (status, dry) = app.post("/api/v1/registry/import", import(true)).await;
    assert_eq!(status, StatusCode::OK, "{dry}");
    assert_eq!(
        dry["summary"],
        json!({"created": 4, "created_paused": 2, "updated": 0, "paused": 0, "resumed": 0,
               "unchanged": 0, "skipped": 2})
    );
    assert_eq!(
        (dry["pages"].as_u64(), dry["listed"].as_u64()),
        (Some(4), Some(7))
    );
    let (_, listed) = app.get("/api/v1/servers").await;
    assert_eq!(
        listed["items"].as_array().unwrap().len(),
        1,
        "a dry run writes nothing"
    );
    let first = &registry.queries()[0];
    for param in ["limit=100", "version=latest", "include_deleted=true"] {
        assert!(first.contains(param), "{first}");
    }

    let (status, report) = app.post("/api/v1/registry/import", import(false)).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["summary"], dry["summary"]);
    let (kind, reason) = action(&report, "io-github-acme-taken");
    assert_eq!(kind, "skip");
    assert!(reason.contains("not imported from a registry"), "{reason}");
    assert!(
        action(&report, "io-github-acme-gone")
            .1
            .contains("deleted from the registry")
    );
    let (_, gone) = app.get("/api/v1/servers/io-github-acme-gone").await;
    assert_eq!(gone["status"], 404);

    let (_, weather) = app.get("/api/v1/servers/io-github-acme-weather").await;
    assert_eq!(weather["name"], "Weather");
    assert_eq!(weather["tags"], json!(["registry"]));
    assert_eq!(weather["public"], true);
    assert_eq!(
        weather["registry"],
        json!({"registry": registry.url, "name": "io.github.acme/weather", "title": "Weather",
               "version": "1.2.0", "website_url": "https://example.com/docs",
               "transport": "streamable-http", "status": "active"})
    );
    let (_, region) = app.get("/api/v1/servers/io-github-acme-region").await;
    assert_eq!(region["url"], fake.url(), "the variable took its default");
    let (_, tenant) = app.get("/api/v1/servers/io-github-acme-tenant").await;
    assert_eq!(tenant["state"], "paused");
    assert_eq!(
        tenant["paused_reason"],
        "registry: needs configuration: URL variable {tenant} (no default)"
    );
    let (_, keyed) = app.get("/api/v1/servers/io-github-acme-keyed").await;
    assert_eq!(
        keyed["paused_reason"],
        "registry: needs configuration: header Authorization: a secret Bearer token"
    );
    let (_, both) = app.get("/api/v1/servers/io-github-acme-both-2").await;
    assert_eq!(both["name"], "Both (sse)");
    support::eventually("the ready one is up", Duration::from_secs(25), async || {
        let (_, s) = app.get("/api/v1/servers/io-github-acme-weather").await;
        (s["state"] != "up").then(|| s["state"].to_string())
    })
    .await;

    // Nothing changed in the registry: nothing changes here.
    let (_, again) = app.post("/api/v1/registry/import", import(false)).await;
    assert_eq!(again["summary"]["unchanged"], 6, "{again}");
    assert_eq!(again["summary"]["skipped"], 2);

    // Deprecated: paused with the registry's words; an operator pauses another one.
    registry.set_status(
        "io.github.acme/weather",
        "deprecated",
        Some("use weather-v2"),
    );
    let (status, _) = app
        .post("/api/v1/servers/io-github-acme-region/pause", json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .call(
            Method::PATCH,
            "/api/v1/servers/io-github-acme-keyed",
            Some(ADMIN_TOKEN),
            Some(json!({"headers": {"Authorization": "Bearer given"}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, report) = app.post("/api/v1/registry/import", import(false)).await;
    assert_eq!(
        action(&report, "io-github-acme-weather"),
        (
            "pause".into(),
            "registry: deprecated in the registry: use weather-v2".into()
        )
    );
    assert_eq!(
        action(&report, "io-github-acme-keyed").0,
        "resume",
        "its header was given"
    );
    let (_, weather) = app.get("/api/v1/servers/io-github-acme-weather").await;
    assert_eq!(
        (
            weather["state"].as_str(),
            weather["registry"]["status"].as_str()
        ),
        (Some("paused"), Some("deprecated"))
    );

    // Listed as active again: resumed; the operator's pause stays.
    registry.set_status("io.github.acme/weather", "active", None);
    let (_, report) = app.post("/api/v1/registry/import", import(false)).await;
    assert_eq!(action(&report, "io-github-acme-weather").0, "resume");
    let (_, region) = app.get("/api/v1/servers/io-github-acme-region").await;
    assert_eq!(region["state"], "paused", "paused by an operator: kept");

    // The CLI: a dry run says what it would do, and changes nothing.
    registry.set_status("io.github.acme/both", "deleted", None);
    let base = app.base.clone();
    let reg = registry.url.clone();
    let out = tokio::task::spawn_blocking(move || {
        let dir = tempfile::tempdir().unwrap();
        support::proc::run_client(
            dir.path(),
            &["registry", "import", "--registry", &reg, "--dry-run"],
            &[("MCPWATCH_URL", &base), ("MCPWATCH_TOKEN", ADMIN_TOKEN)],
        )
    })
    .await
    .unwrap();
    assert_eq!(out.0, 0, "{}", out.2);
    assert!(
        out.1.lines().any(|l| l.starts_with("pause")
            && l.contains("io-github-acme-both-1")
            && l.contains("(registry: deleted from the registry)")),
        "{}",
        out.1
    );
    assert!(
        out.1
            .contains("Dry run, nothing changed: 7 servers listed on 4 pages"),
        "{}",
        out.1
    );
    let (_, both) = app.get("/api/v1/servers/io-github-acme-both-1").await;
    assert_ne!(both["state"], "paused");
    app.stop().await;
}
