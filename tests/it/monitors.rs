//! Monitors as code: a document planned and applied through the API on both backends (field
//! by field, idempotent, all or nothing, managed objects refused to the API, deletions of the
//! file's own objects, prune, adoption); the example file in `config/` plans cleanly; the CLI's
//! `plan`, `apply` and `export` against a real daemon with problems placed by line; and
//! `serve --monitors` applying its file at start, on SIGHUP and when the file changes.

use crate::support;

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::app::{ADMIN_TOKEN, TestApp, spawn_app};
use support::db::Backend;
use support::fake_mcp::{FakeConfig, FakeServer};
use support::proc::{Proc, command, run_client as cli};
use test_case::test_case;

/// A document: two servers, a webhook following one of them, a weekly window.
fn document(a: &str, b: &str, token: &str, interval: u32) -> Value {
    json!({
        "source": "fleet.toml",
        "servers": [
            {"slug": "alpha", "name": "Alpha", "url": a, "interval_seconds": interval,
             "tags": ["prod"], "headers": {"Authorization": format!("Bearer {token}")}},
            {"name": "Beta", "url": b, "public": true}
        ],
        "channels": [
            {"name": "ops", "url": "http://127.0.0.1:9/hook",
             "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "servers": ["alpha"]}
        ],
        "maintenance": [
            {"name": "weekly", "servers": ["beta"], "cron": "0 3 * * 0", "duration_seconds": 3600}
        ]
    })
}

async fn plan(app: &TestApp, doc: &Value) -> (StatusCode, Value) {
    app.post("/api/v1/monitors/plan", doc.clone()).await
}

async fn apply(app: &TestApp, doc: &Value) -> (StatusCode, Value) {
    app.post("/api/v1/monitors/apply", doc.clone()).await
}

/// The change of `kind` `name` in a plan, and its fields as `field: from → to`.
fn change(view: &Value, kind: &str, name: &str) -> (String, Vec<String>) {
    let c = view["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == kind && c["name"] == name)
        .unwrap_or_else(|| panic!("no change of {kind} {name} in {view}"));
    let fields = c["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            format!(
                "{}: {} → {}",
                f["field"].as_str().unwrap(),
                f["from"],
                f["to"]
            )
        })
        .collect();
    (c["action"].as_str().unwrap().to_string(), fields)
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn a_document_is_planned_applied_once_and_then_matches(backend: Backend) {
    let fa = FakeServer::start(FakeConfig::default()).await;
    let fb = FakeServer::start(FakeConfig::default()).await;
    let app = spawn_app(backend).await;
    let doc = document(&fa.url(), &fb.url(), "first-token", 60);

    let (status, view) = plan(&app, &doc).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["applied"], false);
    assert_eq!(
        view["summary"],
        json!({"create": 4, "update": 0, "delete": 0, "unchanged": 0})
    );
    let (action, fields) = change(&view, "server", "alpha");
    assert_eq!(action, "create");
    assert!(
        fields.contains(&"interval_seconds: null → \"60\"".to_string()),
        "{fields:?}"
    );
    assert!(fields.contains(&"headers.Authorization: null → \"(sensitive)\"".to_string()));
    assert!(
        !view.to_string().contains("first-token"),
        "a secret in a plan: {view}"
    );
    let (_, listed) = app.get("/api/v1/servers").await;
    assert_eq!(listed["items"], json!([]), "a plan writes nothing");

    let (status, view) = apply(&app, &doc).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["applied"], true);
    let (_, alpha) = app.get("/api/v1/servers/alpha").await;
    assert_eq!(alpha["managed_by"], "fleet.toml");
    assert_eq!(alpha["headers"], json!({"Authorization": "***"}));
    let (_, channels) = app.get("/api/v1/channels").await;
    assert_eq!(channels["items"][0]["servers"], json!([alpha["id"]]));
    let (_, windows) = app.get("/api/v1/maintenance").await;
    assert_eq!(windows["items"][0]["managed_by"], "fleet.toml");
    support::eventually("alpha is probed", Duration::from_secs(15), async || {
        let (_, s) = app.get("/api/v1/servers/alpha").await;
        (s["state"] != "up").then(|| s["state"].to_string())
    })
    .await;

    let (_, again) = apply(&app, &doc).await;
    assert_eq!(
        again["changes"],
        json!([]),
        "a second apply changes nothing"
    );
    assert_eq!(again["summary"]["unchanged"], 4);

    // A changed interval and token: exactly those fields, the token only as "(sensitive)".
    let changed = document(&fa.url(), &fb.url(), "second-token", 30);
    let (_, view) = plan(&app, &changed).await;
    let (action, fields) = change(&view, "server", "alpha");
    assert_eq!(action, "update");
    assert_eq!(
        fields,
        vec![
            "headers.Authorization: \"(sensitive)\" → \"(sensitive)\"",
            "interval_seconds: \"60\" → \"30\"",
        ]
    );
    assert_eq!(view["summary"]["unchanged"], 3);
    app.stop().await;
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn managed_objects_are_refused_to_the_api_and_deleted_with_the_file(backend: Backend) {
    let fa = FakeServer::start(FakeConfig::default()).await;
    let fb = FakeServer::start(FakeConfig::default()).await;
    let app = spawn_app(backend).await;
    let (status, _) = apply(&app, &document(&fa.url(), &fb.url(), "t", 60)).await;
    assert_eq!(status, StatusCode::OK);

    let patch = app
        .call(
            Method::PATCH,
            "/api/v1/servers/alpha",
            Some(ADMIN_TOKEN),
            Some(json!({"interval_seconds": 20})),
        )
        .await;
    assert_eq!(patch.0, StatusCode::CONFLICT, "{}", patch.1);
    assert!(
        patch.1["detail"]
            .as_str()
            .unwrap()
            .contains("managed by the monitors file 'fleet.toml'"),
        "{}",
        patch.1
    );
    let gone = app
        .call(
            Method::DELETE,
            "/api/v1/servers/alpha",
            Some(ADMIN_TOKEN),
            None,
        )
        .await;
    assert_eq!(gone.0, StatusCode::CONFLICT);
    let (_, channels) = app.get("/api/v1/channels").await;
    let ops = channels["items"][0]["id"].as_str().unwrap().to_string();
    let gone = app
        .call(
            Method::DELETE,
            &format!("/api/v1/channels/{ops}"),
            Some(ADMIN_TOKEN),
            None,
        )
        .await;
    assert_eq!(gone.0, StatusCode::CONFLICT);
    // Pausing is an operator's act, not configuration: allowed, and an apply keeps it.
    let (status, _) = app.post("/api/v1/servers/alpha/pause", json!({})).await;
    assert_eq!(status, StatusCode::OK);

    // A server made through the API is left alone, or adopted when the file names it.
    let (status, _) = app
        .post("/api/v1/servers", json!({"name": "Gamma", "url": fa.url()}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let mut smaller = document(&fa.url(), &fb.url(), "t", 60);
    smaller["servers"].as_array_mut().unwrap().remove(1);
    smaller["maintenance"] = json!([]);
    let (_, view) = apply(&app, &smaller).await;
    assert_eq!(change(&view, "server", "beta").0, "delete");
    assert_eq!(change(&view, "maintenance", "weekly").0, "delete");
    assert_eq!(view["summary"]["delete"], 2, "{view}");
    let (_, alpha) = app.get("/api/v1/servers/alpha").await;
    assert_eq!(alpha["paused"], true, "the file does not say paused: kept");
    let (status, _) = app.get("/api/v1/servers/gamma").await;
    assert_eq!(status, StatusCode::OK, "made through the API: left alone");

    let mut adopting = smaller.clone();
    adopting["servers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "Gamma", "url": fa.url()}));
    let (_, view) = apply(&app, &adopting).await;
    assert_eq!(change(&view, "server", "gamma").0, "adopt");
    let (_, gamma) = app.get("/api/v1/servers/gamma").await;
    assert_eq!(gamma["managed_by"], "fleet.toml");

    // prune: what the API made and the file does not name goes too.
    let (status, _) = app
        .post("/api/v1/servers", json!({"name": "Delta", "url": fa.url()}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    adopting["prune"] = json!(true);
    let (_, view) = apply(&app, &adopting).await;
    assert_eq!(change(&view, "server", "delta").0, "delete");
    let (status, _) = app.get("/api/v1/servers/delta").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    app.stop().await;
}

/// Every problem at once, each named `servers[i].field`; nothing of the document is written.
#[tokio::test]
async fn a_bad_document_is_refused_whole_with_every_problem() {
    let fa = FakeServer::start(FakeConfig::default()).await;
    let app = spawn_app(Backend::Sqlite).await;
    let doc = json!({
        "source": "bad.toml",
        "servers": [
            {"name": "Good", "url": fa.url()},
            {"name": "Fast", "url": fa.url(), "interval_seconds": 3},
            {"name": "Good", "url": "ftp://example.com/"}
        ],
        "channels": [{"name": "ops", "url": "http://127.0.0.1:9/h", "servers": ["nowhere"]}]
    });
    let (status, problem) = apply(&app, &doc).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        vec![
            "servers[1].interval_seconds",
            "servers[2].url",
            "channels[0].servers"
        ],
        "{problem}"
    );
    let (_, listed) = app.get("/api/v1/servers").await;
    assert_eq!(listed["items"], json!([]), "all or nothing");
    app.stop().await;
}

/// The store writes a whole apply or none of it: a second server whose slug is taken (by a row
/// written after the plan) leaves the first unwritten too.
#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn an_apply_is_one_transaction(backend: Backend) {
    let app = spawn_app(backend).await;
    let now = mcpwatch::clock::now_ms();
    let taken = support::fixtures::server("taken-id", "taken", now);
    app.store.insert_server(&taken).await.unwrap();
    let first = support::fixtures::server("first-id", "first", now);
    let second = support::fixtures::server("second-id", "taken", now);
    let writes = mcpwatch::store::MonitorWrites {
        servers_created: vec![first, second],
        ..Default::default()
    };
    let err = app.store.apply_monitors(&writes).await.unwrap_err();
    assert!(
        matches!(err, mcpwatch::store::StoreError::Conflict(_)),
        "{err}"
    );
    assert!(app.store.get_server("first-id").await.unwrap().is_none());
    app.stop().await;
}

/// `config/monitors.example.toml` reads (with its variables set) and plans without a problem.
#[tokio::test]
async fn the_example_monitors_file_plans_cleanly() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/monitors.example.toml");
    let env = |name: &str| Some(format!("value-of-{name}"));
    let file = mcpwatch::monitors::MonitorsFile::read::<mcpwatch::api::monitors::MonitorsDocument>(
        &path, &env,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let app = spawn_app(Backend::Sqlite).await;
    let mut doc = file.document.clone();
    // Its secrets as the formats they stand for.
    doc["channels"][0]["secret"] = json!("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    let (status, view) = plan(&app, &doc).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert!(view["summary"]["create"].as_u64().unwrap() >= 4, "{view}");
    assert_eq!(view["source"], "monitors.example.toml");
    app.stop().await;
}

/// `serve --local` in `dir` (with `extra` arguments and `envs`): the process, its base URL and
/// admin token. Its log goes to `dir/serve.log`.
fn daemon(dir: &std::path::Path, extra: &[&str], envs: &[(&str, &str)]) -> (Proc, String, String) {
    let mut args = vec!["serve", "--local", "--listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let mut cmd = command(&args, envs);
    cmd.current_dir(dir)
        .env_remove("DATABASE_URL")
        .env_remove("MCPWATCH_ALLOW_PRIVATE_CIDRS");
    let (proc, base) =
        support::proc::start(cmd, Some("mcpwatch: serving on "), dir.join("serve.log"));
    let token = std::fs::read_to_string(dir.join("data/admin-token")).unwrap();
    (proc, base.trim().to_string(), token.trim().to_string())
}

async fn server_json(base: &str, token: &str, slug: &str) -> Value {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("{base}/api/v1/servers/{slug}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .map(|t| serde_json::from_str(&t).unwrap())
        .unwrap()
}

const HOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// A monitors file of two servers and a webhook following the first.
fn fleet_file(a: &str, b: &str, interval: u32) -> String {
    format!(
        "# the fleet\n\
         [[servers]]\n\
         slug = \"alpha\"\n\
         name = \"Alpha\"\n\
         url = \"{a}\"\n\
         interval_seconds = {interval}\n\
         paused = false\n\
         headers = {{ Authorization = \"Bearer ${{ALPHA_TOKEN}}\" }}\n\
         \n\
         [[servers]]\n\
         name = \"Beta\"\n\
         url = \"{b}\"\n\
         \n\
         [[channels]]\n\
         name = \"ops\"\n\
         url = \"http://127.0.0.1:9/hook\"\n\
         secret = \"${{HOOK_SECRET}}\"\n\
         servers = [\"alpha\"]\n"
    )
}

// Several workers: the CLI runs as a blocking child while the fake servers answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_plans_applies_and_exports_a_monitors_file() {
    let fa = FakeServer::start(FakeConfig::default()).await;
    let fb = FakeServer::start(FakeConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let (_daemon, base, token) = daemon(dir.path(), &[], &[]);
    let file = dir.path().join("fleet.toml");
    std::fs::write(&file, fleet_file(&fa.url(), &fb.url(), 30)).unwrap();
    let env = [
        ("MCPWATCH_URL", base.as_str()),
        ("MCPWATCH_TOKEN", token.as_str()),
        ("ALPHA_TOKEN", "alpha-secret-value"),
        ("HOOK_SECRET", HOOK_SECRET),
    ];
    let d = dir.path();

    let (code, out, err) = cli(d, &["plan", "-f", "fleet.toml"], &env);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("  + server alpha\n"), "{out}");
    assert!(out.contains("      interval_seconds: 30\n"), "{out}");
    assert!(
        out.contains("      headers.Authorization: (sensitive)\n"),
        "{out}"
    );
    assert!(out.contains("  + channel ops\n"), "{out}");
    assert!(
        out.ends_with("Plan: 3 to create, 0 to change, 0 to delete (0 unchanged).\n"),
        "{out}"
    );
    assert!(!out.contains("alpha-secret-value") && !out.contains(HOOK_SECRET));

    let (code, out, err) = cli(d, &["apply", "-f", "fleet.toml"], &env);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.ends_with("Applied: 3 created, 0 changed, 0 deleted (0 unchanged).\n"),
        "{out}"
    );
    let (code, out, _) = cli(d, &["apply", "-f", "fleet.toml"], &env);
    assert_eq!(
        (code, out.as_str()),
        (
            0,
            "No changes: the daemon matches fleet.toml (3 unchanged).\n"
        )
    );

    // A reference not set, and a problem only the daemon finds: each placed by line.
    let (code, _, err) = cli(d, &["plan", "-f", "fleet.toml"], &env[..3]);
    assert_eq!(code, 1);
    assert!(
        err.contains("fleet.toml:17: channels[0].secret: ${HOOK_SECRET} is not set"),
        "{err}"
    );
    std::fs::write(&file, fleet_file(&fa.url(), &fb.url(), 3)).unwrap();
    let (code, _, err) = cli(d, &["apply", "-f", "fleet.toml"], &env);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.starts_with("fleet.toml:6: servers[0].interval_seconds: "),
        "{err}"
    );
    assert!(err.contains("nothing was applied"), "{err}");
    let alpha = server_json(&base, &token, "alpha").await;
    assert_eq!(
        alpha["interval_seconds"], 30,
        "nothing of a bad file is applied"
    );

    // The export applies back as the same file: nothing changes.
    let (code, _, err) = cli(d, &["export", "-o", "exported.toml"], &env);
    assert_eq!(code, 0, "{err}");
    let exported = std::fs::read_to_string(d.join("exported.toml")).unwrap();
    assert!(
        exported.contains("#   ALPHA_AUTHORIZATION\n#   OPS_SECRET\n"),
        "{exported}"
    );
    assert!(exported.contains("source = \"fleet.toml\""), "{exported}");
    assert!(!exported.contains("alpha-secret-value"), "{exported}");
    let back = [
        ("MCPWATCH_URL", base.as_str()),
        ("MCPWATCH_TOKEN", token.as_str()),
        ("ALPHA_AUTHORIZATION", "Bearer alpha-secret-value"),
        ("OPS_SECRET", HOOK_SECRET),
    ];
    let (code, out, err) = cli(d, &["plan", "-f", "exported.toml"], &back);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("No changes: the daemon matches exported.toml (3 unchanged)"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_applies_its_monitors_file_at_start_on_sighup_and_on_change() {
    let fa = FakeServer::start(FakeConfig::default()).await;
    let fb = FakeServer::start(FakeConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fleet.toml");
    std::fs::write(&file, fleet_file(&fa.url(), &fb.url(), 60)).unwrap();
    let secrets = [
        ("ALPHA_TOKEN", "alpha-secret-value"),
        ("HOOK_SECRET", HOOK_SECRET),
    ];
    let (daemon, base, token) = daemon(dir.path(), &["--monitors", "fleet.toml"], &secrets);
    let alpha = server_json(&base, &token, "alpha").await;
    assert_eq!(alpha["managed_by"], "fleet.toml", "{alpha}");
    assert_eq!(alpha["interval_seconds"], 60);

    // SIGHUP applies the unchanged file again: the file says paused = false.
    let pause = reqwest::Client::builder().no_proxy().build().unwrap();
    let paused = pause
        .post(format!("{base}/api/v1/servers/alpha/pause"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert!(paused.status().is_success());
    assert_eq!(server_json(&base, &token, "alpha").await["paused"], true);
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &daemon.0.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    support::eventually("SIGHUP re-applies", Duration::from_secs(10), async || {
        let s = server_json(&base, &token, "alpha").await;
        (s["paused"] != false).then(|| s.to_string())
    })
    .await;

    // A changed file is applied without a signal.
    std::fs::write(&file, fleet_file(&fa.url(), &fb.url(), 30)).unwrap();
    support::eventually(
        "the change is applied",
        Duration::from_secs(10),
        async || {
            let s = server_json(&base, &token, "alpha").await;
            (s["interval_seconds"] != 30).then(|| s.to_string())
        },
    )
    .await;

    // A bad file is logged, problem by problem, and the daemon keeps what it had.
    std::fs::write(&file, fleet_file(&fa.url(), &fb.url(), 3)).unwrap();
    let log = dir.path().join("serve.log");
    support::eventually(
        "the bad file is logged",
        Duration::from_secs(10),
        async || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            (!text.contains("servers[0].interval_seconds")).then(|| text.clone())
        },
    )
    .await;
    assert_eq!(
        server_json(&base, &token, "alpha").await["interval_seconds"],
        30
    );
    assert!(
        !std::fs::read_to_string(&log)
            .unwrap()
            .contains("alpha-secret-value")
    );
    drop(daemon);

    // A daemon does not start on a bad file, and says why, by line.
    let other = tempfile::tempdir().unwrap();
    std::fs::copy(&file, other.path().join("fleet.toml")).unwrap();
    let mut cmd = command(
        &[
            "serve",
            "--local",
            "--listen",
            "127.0.0.1:0",
            "--monitors",
            "fleet.toml",
        ],
        &secrets,
    );
    cmd.current_dir(other.path()).env_remove("DATABASE_URL");
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("fleet.toml:6: servers[0].interval_seconds: "),
        "{err}"
    );
}

/// An OAuth identity in a monitors document: planned with its secret "(sensitive)", applied
/// sealed, exported with its secret as a reference, and the export applied back changes nothing.
#[tokio::test]
async fn an_oauth_identity_is_planned_applied_and_exported_as_a_reference() {
    let app = spawn_app(Backend::Sqlite).await;
    let doc = json!({"source": "oauth.toml", "servers": [{
        "slug": "billing", "name": "Billing", "url": "https://billing.example.com/mcp",
        "paused": true,
        "oauth": {"client_id": "probe", "client_secret": "oauth-secret-value",
                  "token_endpoint": "https://auth.example.com/token",
                  "expires_at": "2031-01-01T00:00:00Z"},
    }]});
    let (status, view) = plan(&app, &doc).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    let (_, fields) = change(&view, "server", "billing");
    assert!(
        fields.contains(&"oauth.secret: null → \"(sensitive)\"".to_string()),
        "{fields:?}"
    );
    assert!(!view.to_string().contains("oauth-secret-value"), "{view}");
    let (status, view) = apply(&app, &doc).await;
    assert_eq!(status, StatusCode::OK, "{view}");

    let (_, exported) = app.get("/api/v1/monitors/export").await;
    assert_eq!(exported["variables"], json!(["BILLING_OAUTH_SECRET"]));
    let mut back = exported["document"].clone();
    let oauth = &back["servers"][0]["oauth"];
    assert_eq!(
        oauth["client_secret"], "${BILLING_OAUTH_SECRET}",
        "{exported}"
    );
    assert_eq!(oauth["expires_at"], "2031-01-01T00:00:00Z");
    assert!(!exported.to_string().contains("oauth-secret-value"));
    back["servers"][0]["oauth"]["client_secret"] = json!("oauth-secret-value");
    let (_, again) = plan(&app, &back).await;
    assert_eq!(again["changes"], json!([]), "{again}");
    // A changed secret is a change, shown only as "(sensitive)".
    back["servers"][0]["oauth"]["client_secret"] = json!("rotated");
    let (_, rotated) = plan(&app, &back).await;
    let (action, fields) = change(&rotated, "server", "billing");
    assert_eq!(action, "update");
    assert_eq!(
        fields,
        ["oauth.secret: \"(sensitive)\" → \"(sensitive)\""],
        "{rotated}"
    );
    app.stop().await;
}
