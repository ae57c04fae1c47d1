//! Two central replicas (`mcpwatch serve`, the real binary) on one Postgres: one leads and
//! probes, the other stands by (serving pages and the API); each due probe runs once per tick; SIGKILL of the
//! leader hands the work to the other within seconds; an outage alerts once.

use crate::support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::db::{Backend, TestDb};
use support::eventually;
use support::fake_mcp::{FakeConfig, FakeServer, Fault};
use support::proc::{Proc, command, serve, start};
use support::webhook_rx::Receiver;

const ADMIN: &str = "replicas-test-admin-token-012345678";

fn replica(db_url: &str, dir: &std::path::Path, name: &str) -> (Proc, String) {
    let data = dir.join(name).to_string_lossy().to_string();
    let key = "ab".repeat(32);
    serve(
        &[
            ("MCPWATCH_LISTEN", "127.0.0.1:0"),
            ("DATABASE_URL", db_url),
            ("MCPWATCH_DATA_DIR", &data),
            ("MCPWATCH_ADMIN_TOKEN", ADMIN),
            // Both replicas open the same sealed probe credentials.
            ("MCPWATCH_SECRET_KEY", &key),
            ("MCPWATCH_ALLOW_PRIVATE_CIDRS", "127.0.0.0/8"),
            ("MCPWATCH_DELIVERY_LEASE", "11"),
            ("MCPWATCH_LOG_FORMAT", "json"),
        ],
        dir,
        name,
    )
}

async fn status(client: &reqwest::Client, url: String) -> u16 {
    client
        .get(url)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

async fn post(client: &reqwest::Client, url: String, body: Value) -> (u16, Value) {
    let r = client
        .post(url)
        .bearer_auth(ADMIN)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    (
        s,
        serde_json::from_str(&r.text().await.unwrap()).unwrap_or(Value::Null),
    )
}

/// `mcpwatch_scheduled_servers` as a replica's `/metrics` shows it.
async fn scheduled_servers(client: &reqwest::Client, base: &str) -> Option<u64> {
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find(|l| l.starts_with("mcpwatch_scheduled_servers{"))?
        .rsplit(' ')
        .next()?
        .parse()
        .ok()
}

fn tools_lists(fake: &FakeServer) -> usize {
    fake.seen(|s| s.methods.iter().filter(|m| *m == "tools/list").count())
}

#[tokio::test]
async fn two_replicas_probe_once_per_tick_fail_over_and_alert_once() {
    let db = TestDb::new(Backend::Postgres).await;
    let db_url = match &db.url {
        mcpwatch::config::DatabaseUrl::Postgres(u) => u.clone(),
        other => panic!("{other:?}"),
    };
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let rx = Receiver::start().await;
    let fake = FakeServer::start(FakeConfig::default()).await;

    let (first, a) = replica(&db_url, dir.path(), "a");
    let (second, b) = replica(&db_url, dir.path(), "b");
    assert_eq!(
        status(&client, format!("{a}/readyz?leader=true")).await,
        200,
        "the first replica leads"
    );
    let standby = client
        .get(format!("{b}/readyz?leader=true"))
        .send()
        .await
        .unwrap();
    let (code, body) = (standby.status().as_u16(), standby.text().await.unwrap());
    assert_eq!(code, 503, "the second stands by: {body}");
    assert!(body.contains("standby"), "{body}");
    assert_eq!(
        status(&client, format!("{b}/readyz")).await,
        200,
        "but serves pages and the API"
    );

    // Registered through the standby: the leader picks it up from the database.
    let (s, ch) = post(
        &client,
        format!("{b}/api/v1/channels"),
        json!({"name": "ops", "url": rx.url}),
    )
    .await;
    assert_eq!(s, 201, "{ch}");
    let (s, v) = post(
        &client,
        format!("{b}/api/v1/servers"),
        json!({"name": "Shared", "url": fake.url(), "interval_seconds": 10, "timeout_seconds": 5, "failures_to_down": 1}),
    )
    .await;
    assert_eq!(s, 201, "{v}");

    // Every tick probes once, not once per replica: three more probes take at least two
    // intervals (two replicas would make them in one).
    eventually(
        "the leader picks up the server registered on the standby",
        Duration::from_secs(15),
        || async { tools_lists(&fake) >= 1 },
    )
    .await;
    let (before, start) = (tools_lists(&fake), Instant::now());
    eventually("three more ticks", Duration::from_secs(40), || async {
        tools_lists(&fake) >= before + 3
    })
    .await;
    assert!(
        start.elapsed() >= Duration::from_secs(15),
        "3 probes in {:?} at a 10 s interval: more than one per tick",
        start.elapsed()
    );

    // Changes through the standby reach the leader's schedule by the change feed: a server
    // added is scheduled there (rung by NOTIFY: well before the 2 s poll), a server deleted
    // is dropped (the feed's count tells a deletion).
    let scheduled = async || scheduled_servers(&client, &a).await;
    assert_eq!(
        scheduled().await,
        Some(1),
        "the leader schedules one server"
    );
    let (s, extra) = post(
        &client,
        format!("{b}/api/v1/servers"),
        json!({"name": "Extra", "url": fake.url(), "interval_seconds": 60}),
    )
    .await;
    assert_eq!(s, 201, "{extra}");
    let added = Instant::now();
    eventually(
        "the leader schedules the server added on the standby",
        Duration::from_secs(10),
        async || scheduled().await == Some(2),
    )
    .await;
    assert!(
        added.elapsed() < Duration::from_millis(1500),
        "scheduled {:?} after it was added: the notification did not ring",
        added.elapsed()
    );
    let gone = client
        .delete(format!(
            "{b}/api/v1/servers/{}",
            extra["id"].as_str().unwrap()
        ))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status().as_u16(), 204);
    eventually(
        "the leader drops the server deleted on the standby",
        Duration::from_secs(10),
        async || scheduled().await == Some(1),
    )
    .await;

    // SIGKILL the leader: the standby leads within seconds and probing goes on.
    drop(first);
    eventually(
        "the standby takes over",
        Duration::from_secs(15),
        || async { status(&client, format!("{b}/readyz?leader=true")).await == 200 },
    )
    .await;
    let taken_over = tools_lists(&fake);
    eventually(
        "the new leader probes within one interval",
        Duration::from_secs(12),
        || async { tools_lists(&fake) > taken_over },
    )
    .await;

    // An outage now: one server.down, delivered once. That no second one comes is read from
    // the database once two more probes have been judged, not waited for.
    fake.update(|c| {
        c.fault = Fault::Status(500);
        c.fault_on = "*";
    });
    let downs = || {
        rx.received()
            .iter()
            .filter(|r| r.json()["type"] == "server.down")
            .count()
    };
    eventually("server.down delivered", Duration::from_secs(30), || async {
        downs() >= 1
    })
    .await;
    let store = db.store().await;
    let server_id = v["id"].as_str().unwrap().to_string();
    let stored = async || {
        let q = mcpwatch::store::ResultQuery {
            server_id: server_id.clone(),
            page: mcpwatch::store::Page {
                limit: 1000,
                after: None,
            },
            ..Default::default()
        };
        store.list_results(&q).await.unwrap().len()
    };
    let at_alert = stored().await;
    eventually(
        "two more probes judged and every delivery done",
        Duration::from_secs(30),
        async || {
            let (n, pending) = (stored().await, store.pending_deliveries().await.unwrap());
            (n < at_alert + 2 || pending > 0)
                .then(|| format!("{n} results stored, {pending} deliveries pending"))
        },
    )
    .await;
    let events = store
        .list_events(
            None,
            Some("server.down"),
            &mcpwatch::store::Page {
                limit: 10,
                after: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(events.len(), 1, "one server.down event: {events:?}");
    assert_eq!(downs(), 1, "one alert, once");
    store.close().await;
    drop(second);
    db.cleanup().await;
}

#[test]
fn a_second_serve_on_one_sqlite_file_refuses_to_start_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let cmd = || {
        let mut c = command(&["serve"], &[("MCPWATCH_LISTEN", "127.0.0.1:0")]);
        c.current_dir(dir.path()).env_remove("DATABASE_URL");
        c
    };
    let first = start(
        cmd(),
        Some("mcpwatch: serving on "),
        dir.path().join("first.log"),
    );
    let out = cmd().spawn().unwrap().wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("SQLite is a single node"), "{stderr}");
    assert!(stderr.contains("DATABASE_URL"), "says what to do: {stderr}");
    drop(first);
}
