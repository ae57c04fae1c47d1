//! End to end with the real binary on the embedded default (SQLite in the data dir): register a
//! fake MCP server over the API, watch it go up, break it, watch it go down after the
//! threshold, change its tools, see `schema.changed` and the diff; then SIGTERM → exit 0.

mod support;

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
    let mut code = None;
    for _ in 0..200 {
        if let Some(status) = daemon.0.try_wait().unwrap() {
            code = status.code();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(code, Some(0), "graceful shutdown exits 0");
    let logs: Vec<String> = rx.try_iter().collect();
    assert!(
        logs.iter().any(|l| l.contains("\"shutdown complete\"")),
        "{logs:?}"
    );
    assert!(
        logs.iter().all(|l| !l.contains(TOKEN)),
        "the admin token never reaches the logs"
    );
}
