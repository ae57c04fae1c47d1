//! Restart safety with the real binary: SIGKILL the daemon while a webhook delivery is in
//! flight; after a restart every pending delivery is sent, none under a new id.

use crate::support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use support::fake_mcp::{FakeConfig, FakeServer, Fault};
use support::webhook_rx::{Receiver, verify};

const TOKEN: &str = "e2e-alerts-admin-token-0123456789";

/// Killed by PID when dropped.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(dir: &std::path::Path) -> (Daemon, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mcpwatch"))
        .arg("serve")
        .current_dir(dir)
        .env("MCPWATCH_LISTEN", "127.0.0.1:0")
        .env("MCPWATCH_ADMIN_TOKEN", TOKEN)
        .env("MCPWATCH_ALLOW_PRIVATE_CIDRS", "127.0.0.0/8")
        .env("MCPWATCH_DELIVERY_LEASE", "11")
        .env("MCPWATCH_LOG_FORMAT", "json")
        .env_remove("DATABASE_URL")
        .stderr(Stdio::piped())
        .spawn()
        .expect("start mcpwatch serve");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let base = loop {
        let line = lines.next().expect("daemon output").unwrap();
        if let Some(addr) = line.strip_prefix("mcpwatch: serving on ") {
            break addr.to_string();
        }
    };
    // Keep draining stderr (into a file, for a failing test to show) so the daemon never
    // blocks on a full pipe.
    let log_path = dir.join(format!("daemon-{}.log", child.id()));
    std::thread::spawn(move || {
        use std::io::Write;
        let mut f = std::fs::File::create(log_path).unwrap();
        for line in lines.map_while(Result::ok) {
            let _ = writeln!(f, "{line}");
        }
    });
    (Daemon(child), base)
}

async fn api(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    body: Option<Value>,
) -> Value {
    let mut req = client.request(method, url).bearer_auth(TOKEN);
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    serde_json::from_str(&req.send().await.unwrap().text().await.unwrap()).unwrap_or(Value::Null)
}

#[tokio::test]
async fn sigkill_mid_delivery_loses_nothing_and_mints_no_new_ids() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    let fake = FakeServer::start(FakeConfig::default()).await;
    let client = reqwest::Client::builder().no_proxy().build().unwrap();

    let (daemon, base) = start(dir.path());
    let v1 = |p: &str| format!("{base}/api/v1{p}");
    let ch = api(
        &client,
        reqwest::Method::POST,
        v1("/channels"),
        Some(json!({"name": "ops", "url": rx.url})),
    )
    .await;
    let secret = ch["secret"].as_str().expect("channel created").to_string();
    api(
        &client,
        reqwest::Method::POST,
        v1("/servers"),
        Some(json!({"name": "Kill", "url": fake.url()})),
    )
    .await;
    support::eventually("the first probe", Duration::from_secs(10), async || {
        let v = api(&client, reqwest::Method::GET, v1("/servers/kill"), None).await;
        v["state"] != "unknown" && !v["state"].is_null()
    })
    .await;

    rx.hold(true);
    fake.update(|c| {
        c.fault = Fault::Status(500);
        c.fault_on = "*";
    });
    api(
        &client,
        reqwest::Method::POST,
        v1("/servers/kill/check"),
        Some(json!({})),
    )
    .await;
    api(
        &client,
        reqwest::Method::POST,
        v1("/servers/kill/check"),
        Some(json!({})),
    )
    .await;
    for _ in 0..100 {
        if !rx.received().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let in_flight = rx.received();
    assert_eq!(
        in_flight.len(),
        1,
        "the server.down delivery reached the receiver, unanswered"
    );
    let id = in_flight[0].header("webhook-id");

    // SIGKILL: no drain, no goodbye.
    drop(daemon);
    rx.hold(false);

    let (daemon, base) = start(dir.path());
    let mut got = rx.received();
    for _ in 0..400 {
        got = rx.received();
        if got.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if got.len() < 2 || std::env::var("SHOW_LOGS").is_ok() {
        for entry in std::fs::read_dir(dir.path()).unwrap().flatten() {
            if entry.file_name().to_string_lossy().starts_with("daemon-") {
                eprintln!(
                    "== {:?}\n{}",
                    entry.file_name(),
                    std::fs::read_to_string(entry.path()).unwrap()
                );
            }
        }
    }
    assert_eq!(got.len(), 2, "sent again after the lease ended");
    assert_eq!(
        got[1].header("webhook-id"),
        id,
        "the same id, so the receiver can dedupe"
    );
    assert!(verify(&secret, &got[1]));
    assert_eq!(got[1].json()["type"], "server.down");
    // Recorded a moment after the receiver answered.
    let mut deliveries = Value::Null;
    for _ in 0..100 {
        deliveries = api(
            &client,
            reqwest::Method::GET,
            format!("{base}/api/v1/deliveries"),
            None,
        )
        .await;
        if deliveries["items"][0]["status"] == "delivered" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let items = deliveries["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "one delivery, not a new one per restart");
    assert_eq!(items[0]["status"], "delivered");
    let events = api(
        &client,
        reqwest::Method::GET,
        format!("{base}/api/v1/events?type=server.down"),
        None,
    )
    .await;
    assert_eq!(
        events["items"].as_array().unwrap().len(),
        1,
        "the event itself was written once"
    );
    drop(daemon);
}
