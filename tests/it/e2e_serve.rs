//! End to end with the real binary on the embedded default (SQLite in the data dir): register a
//! fake MCP server over the API, watch it go up, break it, watch it go down after the
//! threshold, change its tools, see `schema.changed` and the diff; then SIGTERM → exit 0.

use crate::support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use support::fake_mcp::{FakeConfig, FakeServer, Fault};

const TOKEN: &str = "e2e-admin-token-abcdefghijklmnop";

/// Kills the daemon by PID if a test fails before stopping it.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = client.request(method, url).bearer_auth(TOKEN);
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (
        status,
        serde_json::from_str(&resp.text().await.unwrap()).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn real_binary_registers_detects_outage_and_drift_then_stops_cleanly() {
    let fake = FakeServer::start(FakeConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mcpwatch"))
        .arg("serve")
        .current_dir(dir.path())
        .env("MCPWATCH_LISTEN", "127.0.0.1:0")
        .env("MCPWATCH_ADMIN_TOKEN", TOKEN)
        .env("MCPWATCH_ALLOW_PRIVATE_CIDRS", "127.0.0.0/8")
        .env("MCPWATCH_LOG_FORMAT", "json")
        .env_remove("DATABASE_URL")
        .env_remove("MCPWATCH_DATA_DIR")
        .stderr(Stdio::piped())
        .spawn()
        .expect("start mcpwatch serve");
    let stderr = child.stderr.take().unwrap();
    let daemon = Daemon(child);
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let base = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("daemon announces its address");
        if let Some(addr) = line.strip_prefix("mcpwatch: serving on ") {
            break addr.to_string();
        }
    };
    assert!(
        dir.path().join("data/mcpwatch.db").exists(),
        "SQLite created in ./data on first start"
    );
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let api = |path: &str| format!("{base}/api/v1{path}");

    let (status, created) = call(
        &client,
        reqwest::Method::POST,
        api("/servers"),
        Some(json!({"name": "E2E", "url": fake.url()})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let mut server = Value::Null;
    for _ in 0..100 {
        server = call(&client, reqwest::Method::GET, api("/servers/e2e"), None)
            .await
            .1;
        if server["state"] == "up" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(server["state"], "up", "{server}");

    fake.update(|c| {
        c.fault = Fault::Status(502);
        c.fault_on = "*";
    });
    for expected in ["up", "down"] {
        call(
            &client,
            reqwest::Method::POST,
            api("/servers/e2e/check"),
            Some(json!({})),
        )
        .await;
        let (_, s) = call(&client, reqwest::Method::GET, api("/servers/e2e"), None).await;
        assert_eq!(s["state"], expected, "failures_to_down is 2: {s}");
    }
    fake.update(|c| {
        c.fault = Fault::None;
        c.tools[1]["inputSchema"]["required"] = json!(["message", "language"]);
    });
    let (_, check) = call(
        &client,
        reqwest::Method::POST,
        api("/servers/e2e/check"),
        Some(json!({})),
    )
    .await;
    assert_eq!(check["verdict"], "up");
    let (_, events) = call(
        &client,
        reqwest::Method::GET,
        api("/events?type=schema.changed"),
        None,
    )
    .await;
    let changed = &events["items"][0]["data"];
    assert_eq!(changed["breaking"], true, "{events}");
    assert_eq!(changed["diff"]["changed"][0]["name"], "echo");
    let (_, history) = call(
        &client,
        reqwest::Method::GET,
        api("/servers/e2e/schema/history"),
        None,
    )
    .await;
    assert_eq!(
        history["items"][0]["change"]["diff"]["changed"][0]["reasons"][0],
        "required parameter 'language' added"
    );

    // SIGTERM → drain → exit 0.
    let pid = daemon.0.id();
    let killed = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let mut daemon = daemon;
    // Bounded by the drain budget (MCPWATCH_DRAIN_TIMEOUT, 15 s: a probe in flight may run to
    // its timeout) plus the last ingest batch; it normally takes well under a second.
    let mut code = None;
    for _ in 0..600 {
        if let Some(status) = daemon.0.try_wait().unwrap() {
            code = status.code();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let logs: Vec<String> = rx.try_iter().collect();
    let tail = &logs[logs.len().saturating_sub(20)..];
    assert_eq!(
        code,
        Some(0),
        "graceful shutdown exits 0; last logs: {tail:?}"
    );
    assert!(
        logs.iter().any(|l| l.contains("\"shutdown complete\"")),
        "{logs:?}"
    );
    assert!(
        logs.iter().all(|l| !l.contains(TOKEN)),
        "the admin token never reaches the logs"
    );
}

#[tokio::test]
async fn bad_settings_stop_start_up_with_one_line_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "DATABASE_URL",
            "mysql://db/x",
            "DATABASE_URL: scheme 'mysql'",
        ),
        (
            "MCPWATCH_DEFAULT_INTERVAL",
            "5",
            "MCPWATCH_DEFAULT_INTERVAL: 5 is below the minimum",
        ),
        (
            "MCPWATCH_ALLOW_PRIVATE_CIDRS",
            "10.0.0.0/99",
            "MCPWATCH_ALLOW_PRIVATE_CIDRS",
        ),
        ("MCPWATCH_LISTEN", "not-an-address", "MCPWATCH_LISTEN"),
    ];
    for (var, value, expected) in cases {
        let out = Command::new(env!("CARGO_BIN_EXE_mcpwatch"))
            .arg("serve")
            .current_dir(dir.path())
            .env(var, value)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{var}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert!(err.contains(expected), "{err}");
    }
    assert!(
        !dir.path().join("data").exists(),
        "nothing created before settings are valid"
    );
}

#[tokio::test]
async fn first_start_generates_a_private_admin_token_and_migrate_works() {
    let dir = tempfile::tempdir().unwrap();
    let migrate = Command::new(env!("CARGO_BIN_EXE_mcpwatch"))
        .arg("migrate")
        .current_dir(dir.path())
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(
        migrate.status.success(),
        "{}",
        String::from_utf8_lossy(&migrate.stderr)
    );
    assert!(String::from_utf8_lossy(&migrate.stdout).contains("migrations applied (sqlite)"));

    let mut child = Command::new(env!("CARGO_BIN_EXE_mcpwatch"))
        .arg("serve")
        .current_dir(dir.path())
        .env("MCPWATCH_LISTEN", "127.0.0.1:0")
        .env_remove("MCPWATCH_ADMIN_TOKEN")
        .env_remove("DATABASE_URL")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let daemon = Daemon(child);
    let mut printed = Vec::new();
    let base = loop {
        let line = lines.next().expect("output").unwrap();
        if let Some(addr) = line.strip_prefix("mcpwatch: serving on ") {
            break addr.to_string();
        }
        printed.push(line);
    };
    assert!(
        printed
            .iter()
            .any(|l| l.contains("admin API token was written to ./data/admin-token")),
        "{printed:?}"
    );
    let path = dir.path().join("data/admin-token");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let token = std::fs::read_to_string(&path).unwrap().trim().to_string();
    assert!(
        printed.iter().all(|l| !l.contains(&token)),
        "the token itself is never printed"
    );
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let resp = client
        .get(format!("{base}/api/v1/servers"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    drop(daemon);
}
