//! The first hour, with the real binary: `mcpwatch demo-server` answers both protocol eras a
//! modern SDK answers, and `mcpwatch serve --local` (SQLite in a fresh folder, nothing else
//! set) takes the walkthrough's registration of it, says what to do next, and sees it up.

use crate::support;

use std::io::{BufRead, BufReader};
use std::time::Duration;

use mcpwatch::probe::{Era, EraChoice, Verdict};
use serde_json::{Value, json};
use support::eventually;
use support::proc::{Proc, command};

/// `mcpwatch demo-server` on a free port; returns it and its endpoint.
fn demo_server() -> (Proc, String) {
    let (proc, rest) = support::proc::start(
        command(&["demo-server", "--listen", "127.0.0.1:0"], &[]),
        Some("mcpwatch: demo MCP server on "),
        std::env::temp_dir().join(format!("mcpwatch-demo-{}.log", uuid::Uuid::new_v4())),
    );
    (proc, rest.trim().to_string())
}

#[tokio::test]
async fn the_demo_server_is_up_in_both_eras_with_three_tools() {
    let (_demo, url) = demo_server();
    let modern = support::probe(&url).await;
    assert_eq!(modern.verdict, Verdict::Up, "{modern:?}");
    assert_eq!(modern.era, Some(Era::Stateless));
    assert_eq!(modern.tool_names, vec!["add", "echo", "now"]);
    assert!(modern.warnings.is_empty(), "{:?}", modern.warnings);
    let legacy = support::probe_with(&url, |t| {
        t.era = EraChoice::Force(Era::StreamableHttp);
    })
    .await;
    assert_eq!(legacy.verdict, Verdict::Up, "{legacy:?}");
    assert_eq!(legacy.protocol_version.as_deref(), Some("2025-11-25"));
    assert_eq!(
        legacy.schema_hash, modern.schema_hash,
        "the same tools either way"
    );
}

/// `serve` in a fresh folder, `--local` or not; returns it, its base URL and what it printed
/// after the line that says where it serves.
fn serve_in(dir: &std::path::Path, local: bool) -> (Proc, String, Vec<String>) {
    let mut args = vec!["serve", "--listen", "127.0.0.1:0"];
    if local {
        args.push("--local");
    }
    // The CLI client's and the agent's variables, set in the same shell, are not the daemon's.
    let others = [
        ("MCPWATCH_URL", "http://127.0.0.1:9"),
        ("MCPWATCH_TOKEN", "for-the-cli-client-0123456789"),
        ("MCPWATCH_AGENT_TOKEN", "for-an-agent-0123456789"),
    ];
    let mut cmd = command(&args, &others);
    cmd.current_dir(dir)
        .env_remove("DATABASE_URL")
        .env_remove("MCPWATCH_ALLOW_PRIVATE_CIDRS");
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let base = loop {
        let line = lines.next().expect("serve's output").unwrap();
        if let Some(rest) = line.strip_prefix("mcpwatch: serving on ") {
            break rest.trim().to_string();
        }
    };
    let banner: Vec<String> = lines
        .by_ref()
        .take(if local { 3 } else { 2 })
        .map_while(Result::ok)
        .collect();
    std::thread::spawn(move || for _ in lines {});
    (Proc(child), base, banner)
}

async fn register(base: &str, token: &str, url: &str) -> (u16, Value) {
    let resp = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .post(format!("{base}/api/v1/servers"))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(json!({"name": "Demo", "url": url, "public": true}).to_string())
        .send()
        .await
        .unwrap();
    let code = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    (code, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test]
async fn local_mode_takes_the_walkthroughs_registration_and_says_what_to_do_next() {
    let (_demo, url) = demo_server();
    let dir = tempfile::tempdir().unwrap();

    // Without local mode a loopback target is refused, and the refusal says how to allow it.
    let (plain, base, banner) = serve_in(dir.path(), false);
    assert!(
        !banner.iter().any(|l| l.contains("local mode")),
        "{banner:?}"
    );
    let token = std::fs::read_to_string(dir.path().join("data/admin-token")).unwrap();
    let (code, refused) = register(&base, token.trim(), &url).await;
    assert_eq!(code, 422, "{refused}");
    let why = refused.to_string();
    assert!(
        why.contains("MCPWATCH_ALLOW_PRIVATE_CIDRS") && why.contains("--local"),
        "{why}"
    );
    drop(plain);

    let (_daemon, base, banner) = serve_in(dir.path(), true);
    let said = banner.join("\n");
    assert!(said.contains(&format!("status page {base}/")), "{said}");
    assert!(said.contains("local mode: targets on loopback"), "{said}");
    assert!(
        said.contains("data/admin-token") && said.contains("/api/v1/servers"),
        "{said}"
    );
    let (code, made) = register(&base, token.trim(), &url).await;
    assert_eq!(code, 201, "{made}");
    demo_up_on_the_page(&base).await;
}

/// Wait until the status page's `/status.json` shows the demo server (named `Demo`) up.
async fn demo_up_on_the_page(base: &str) {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    eventually(
        "the demo server is up on the status page",
        Duration::from_secs(10),
        async || {
            let text = client
                .get(format!("{base}/status.json"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap_or_default();
            let page: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            let demo = &page["servers"][0];
            (demo["name"] != "Demo" || demo["state"] != "up").then(|| text.clone())
        },
    )
    .await;
}

/// `serve --local` in `dir`: the process, its base URL and its admin token.
fn local_daemon(dir: &std::path::Path) -> (Proc, String, String) {
    let (daemon, base, _) = serve_in(dir, true);
    let token = std::fs::read_to_string(dir.join("data/admin-token")).unwrap();
    (daemon, base, token.trim().to_string())
}

/// `mcpwatch <args>` against a daemon; (exit code, stdout, stderr).
fn client(args: &[&str], envs: &[(&str, &str)]) -> (i32, String, String) {
    // No key but the one given: no token file where it runs, none inherited.
    let nowhere = tempfile::tempdir().unwrap();
    support::proc::run_client(nowhere.path(), args, envs)
}

/// The CLI client: `servers add` names a server after its serverInfo, `ls` and `status` show
/// it up, `check` renders the report, `pause`, `rm`; a wrong key, a missing daemon and no key
/// at all each get their own exit code and a line that says what to do.
#[tokio::test]
async fn the_cli_client_adds_lists_checks_pauses_and_removes_servers() {
    let (_demo, url) = demo_server();
    let dir = tempfile::tempdir().unwrap();
    let (_daemon, base, token) = local_daemon(dir.path());
    let env = [
        ("MCPWATCH_URL", base.as_str()),
        ("MCPWATCH_TOKEN", token.as_str()),
    ];

    let (code, out, err) = client(&["servers", "add", &url, "--tag", "demo", "--json"], &env);
    assert_eq!(code, 0, "{err}");
    let made: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        made["name"], "mcpwatch-demo",
        "named after serverInfo: {made}"
    );
    assert_eq!(made["tags"], json!(["demo"]));
    eventually("ls shows it up", Duration::from_secs(10), async || {
        let (code, out, err) = client(&["servers", "ls"], &env);
        assert_eq!(code, 0, "{err}");
        let row = out.lines().find(|l| l.starts_with("mcpwatch-demo"));
        (!row.is_some_and(|r| r.contains(" up ") && r.contains("stateless") && r.contains(" 3 ")))
            .then(|| out.clone())
    })
    .await;
    let (code, out, _) = client(&["status"], &env);
    assert_eq!(code, 0);
    assert!(out.starts_with("up 1 · degraded 0"), "{out}");
    let (code, out, _) = client(&["servers", "check", "mcpwatch-demo"], &env);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with("UP ") && out.contains("add, echo, now"),
        "{out}"
    );
    let (code, out, _) = client(&["servers", "pause", "mcpwatch-demo"], &env);
    assert_eq!(code, 0);
    assert!(out.contains("paused"), "{out}");

    let (code, _, err) = client(
        &["servers", "ls", "--token", "wrong-token-0123456789"],
        &env,
    );
    assert_eq!(code, 1, "refused: {err}");
    assert!(err.contains("401"), "{err}");
    let (code, _, err) = client(&["servers", "ls", "--url", "http://127.0.0.1:1"], &env);
    assert_eq!(code, 3, "unreachable: {err}");
    assert!(
        err.contains("cannot reach the daemon at http://127.0.0.1:1"),
        "{err}"
    );
    let (code, _, err) = client(&["servers", "ls"], &[("MCPWATCH_URL", base.as_str())]);
    assert_eq!(code, 2, "no key: {err}");
    assert!(err.contains("MCPWATCH_TOKEN"), "{err}");

    let (code, out, _) = client(&["servers", "rm", "mcpwatch-demo"], &env);
    assert_eq!((code, out.trim()), (0, "deleted mcpwatch-demo"));
    let (code, _, err) = client(&["servers", "show", "mcpwatch-demo"], &env);
    assert_eq!(code, 1);
    assert!(
        err.contains("404") && err.contains("mcpwatch-demo"),
        "{err}"
    );
}

/// Channels, incidents and events from the CLI: a webhook added and tested, `events tail`
/// following a real outage of the demo server as it happens, and the incident it opened.
// Several workers: the CLI runs as a blocking child while the receiver answers on this runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_client_adds_a_channel_and_follows_an_outage() {
    let (demo, url) = demo_server();
    let dir = tempfile::tempdir().unwrap();
    let (_daemon, base, token) = local_daemon(dir.path());
    let env = [
        ("MCPWATCH_URL", base.as_str()),
        ("MCPWATCH_TOKEN", token.as_str()),
    ];
    let rx = support::webhook_rx::Receiver::start().await;

    let (code, _, err) = client(&["servers", "add", &url, "--name", "demo"], &env);
    assert_eq!(code, 0, "{err}");
    let add = [
        "channels",
        "add",
        "--name",
        "ops",
        "--webhook",
        rx.url.as_str(),
    ];
    let (code, out, err) = client(&add, &env);
    assert_eq!(code, 0, "{err}");
    let channel: Value = serde_json::from_str(&out).unwrap();
    assert!(
        channel["secret"]
            .as_str()
            .is_some_and(|s| s.starts_with("whsec_")),
        "{channel}"
    );
    let (code, out, _) = client(&["channels", "ls"], &env);
    assert_eq!(code, 0);
    assert!(
        out.lines()
            .any(|l| l.contains("ops") && l.contains(rx.url.as_str())),
        "{out}"
    );
    let (code, out, err) = client(&["channels", "test", channel["id"].as_str().unwrap()], &env);
    assert_eq!(code, 0, "{err}");
    assert!(
        rx.received().iter().any(|r| r.json()["type"] == "test"),
        "{out}"
    );

    // `events tail` follows what happens next.
    let mut tail = command(&["events", "tail", "--last", "0"], &env);
    tail.env("MCPWATCH_URL", &base)
        .env("MCPWATCH_TOKEN", &token)
        .stdout(std::process::Stdio::piped());
    let mut tail = tail.spawn().unwrap();
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let sink = lines.clone();
    let stdout = tail.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    let tail = Proc(tail);

    drop(demo);
    for _ in 0..2 {
        let (code, _, _) = client(&["servers", "check", "demo"], &env);
        assert_eq!(code, 1, "the demo server is gone: unhealthy");
    }
    eventually(
        "events tail shows the outage",
        Duration::from_secs(10),
        async || {
            let seen = lines.lock().unwrap().clone();
            (!seen
                .iter()
                .any(|l| l.contains("server.down") && l.contains("demo")))
            .then(|| format!("{seen:?}"))
        },
    )
    .await;
    let (code, out, _) = client(&["incidents", "ls"], &env);
    assert_eq!(code, 0);
    assert!(
        out.lines()
            .any(|l| l.contains("down") && l.contains("open")),
        "{out}"
    );
    drop(tail);
}

/// The quick start's second way: `config/demo.monitors.toml` applied with the CLI to a local
/// daemon (its key found in ./data) puts the demo server, on its documented port, on the
/// public status page with a signed webhook configured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_walkthroughs_monitors_file_shows_the_demo_with_a_webhook() {
    let (_demo, url) = support::proc::start(
        command(&["demo-server"], &[]),
        Some("mcpwatch: demo MCP server on "),
        std::env::temp_dir().join(format!("mcpwatch-demo-{}.log", uuid::Uuid::new_v4())),
    );
    assert_eq!(
        url.trim(),
        "http://127.0.0.1:39141/mcp",
        "the documented port"
    );
    let dir = tempfile::tempdir().unwrap();
    let (_daemon, base, _) = serve_in(dir.path(), true);
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/config/demo.monitors.toml");
    let env = [
        ("MCPWATCH_URL", base.as_str()),
        (
            "DEMO_WEBHOOK_SECRET",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        ),
    ];
    let (code, out, err) = support::proc::run_client(dir.path(), &["apply", "-f", file], &env);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("  + server demo\n") && out.contains("  + channel demo-webhook\n"),
        "{out}"
    );
    assert!(
        out.ends_with("Applied: 2 created, 0 changed, 0 deleted (0 unchanged).\n"),
        "{out}"
    );
    let (code, out, _) = support::proc::run_client(dir.path(), &["channels", "ls"], &env);
    assert_eq!(code, 0);
    assert!(out.contains("demo-webhook"), "{out}");
    demo_up_on_the_page(&base).await;
}
