//! Never blind: the real binary on a private Postgres cluster that is stopped for a while. It
//! keeps probing through the outage (a lost database is not a lost lease), a target that dies
//! mid-outage is decided then and alerted after, every probe's result is stored once the
//! database is back, and `/readyz` says not ready at once, then ready.

use crate::support;
use support::eventually;

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use support::admin::Admin;
use support::fake_mcp::{FakeConfig, FakeServer, Fault};
use support::private_pg::PrivatePostgres;
use support::proc::serve_on;
use support::seed::now_ms;
use support::webhook_rx::Receiver;

const ADMIN: &str = "outage-admin-token-0123456789abcdef";

/// Probes the fake has seen (each begins with `server/discover`).
fn probes(fake: &FakeServer) -> usize {
    fake.seen(|s| s.methods.iter().filter(|m| *m == "server/discover").count())
}

#[tokio::test]
async fn a_postgres_outage_stops_no_probe_and_loses_no_result() {
    outage("fast").await;
}

#[tokio::test]
async fn a_postgres_crash_stops_no_probe_and_loses_no_result() {
    outage("immediate").await;
}

/// `mode`: how Postgres is stopped (`fast`: connections ended cleanly; `immediate`: a crash).
async fn outage(mode: &str) {
    let pg = PrivatePostgres::start();
    let fake = FakeServer::start(FakeConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    if std::env::var("KEEP_LOGS").is_ok() {
        std::fs::create_dir_all("/tmp/outage-logs").unwrap();
    }
    let logs = if std::env::var("KEEP_LOGS").is_ok() {
        std::path::Path::new("/tmp/outage-logs")
    } else {
        dir.path()
    };
    let (_daemon, base) = serve_on(
        &pg.url(),
        ADMIN,
        &dir.path().join("data"),
        logs,
        &format!("serve-{mode}"),
        &[("MCPWATCH_LOG_FORMAT", "json")],
    );
    let api = Admin::new(&base, ADMIN);
    let rx = Receiver::start().await;
    api.watch_for_down("t", &fake.url(), &rx.url).await;
    // Two probes: the second comes from the leader's own schedule (its periodic re-read of the
    // servers has seen this one), not only from the registration's probe-now.
    eventually("two probes", Duration::from_secs(20), async || {
        probes(&fake) >= 2
    })
    .await;

    pg.down(mode);
    let outage = Instant::now();
    let down_at_ms = now_ms();
    eventually(
        "/readyz says not ready",
        Duration::from_secs(5),
        async || api.get("/readyz").await.0 == StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;
    let before = probes(&fake);
    eventually(
        "probing goes on without the database",
        Duration::from_secs(25),
        async || probes(&fake) >= before + 2,
    )
    .await;
    // The target dies mid-outage: decided now, alerted when the database is back.
    fake.update(|c| {
        c.fault = Fault::Html200;
        c.fault_on = "*";
    });
    let died_at_ms = now_ms();
    let before = probes(&fake);
    eventually("the failing probe", Duration::from_secs(15), async || {
        probes(&fake) > before
    })
    .await;
    // Operators see results waiting: in /readyz and in /metrics, at once.
    let (s, ready) = api.get("/readyz").await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert!(ready.to_string().contains("held in memory"), "{ready}");
    let started = Instant::now();
    let metrics = reqwest::Client::new()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "a scrape does not wait on the pool"
    );
    let waiting: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("mcpwatch_ingest_waiting_seconds "))
        .and_then(|v| v.trim().parse().ok())
        .expect("mcpwatch_ingest_waiting_seconds");
    assert!(
        waiting > 5.0,
        "the oldest result waits since the outage began: {waiting}"
    );
    let outage_len = outage.elapsed();
    assert!(
        rx.received().is_empty(),
        "no alert can leave before the database is back"
    );
    pg.up();
    let back_at_ms = now_ms();

    eventually("/readyz ready again", Duration::from_secs(20), async || {
        api.get("/readyz").await.0 == StatusCode::OK
    })
    .await;
    let seen = probes(&fake);
    let mut stored = 0;
    eventually(
        "every probe's result stored",
        Duration::from_secs(20),
        async || {
            let (_, v) = api.get("/api/v1/servers/t/results?limit=200").await;
            stored = v["items"].as_array().map_or(0, Vec::len);
            stored >= seen
        },
    )
    .await;
    assert!(
        stored <= probes(&fake),
        "stored once: {stored} results, {} probes",
        probes(&fake)
    );
    let (_, server) = api.get("/api/v1/servers/t").await;
    assert_eq!(server["state"], "down", "{server}");
    let (_, events) = api.get("/api/v1/events?type=server.down").await;
    let items = events["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 1, "one server.down: {events}");
    let at = time::OffsetDateTime::parse(
        items[0]["at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let at_ms = (at.unix_timestamp_nanos() / 1_000_000) as i64;
    eventually(
        "the alert, after the outage",
        Duration::from_secs(20),
        async || !rx.received().is_empty(),
    )
    .await;
    let alert = &rx.received()[0];
    let body = String::from_utf8_lossy(&alert.body);
    assert!(body.contains("server.down"), "{body}");
    assert!(
        (died_at_ms - 1_000..back_at_ms).contains(&at_ms) && at_ms > down_at_ms,
        "decided at its real time, during the outage ({outage_len:?}): {at_ms} not in {died_at_ms}..{back_at_ms}"
    );
}
