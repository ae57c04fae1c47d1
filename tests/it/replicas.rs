//! Central replicas (`mcpwatch serve`, the real binary) sharing one Postgres: the servers are
//! spread over the replicas by bucket leases; each server is probed once per tick by one of
//! them; a fourth replica takes about a quarter of the buckets; SIGKILL of one hands its
//! buckets to the others within seconds, no server misses more than one tick, and an outage
//! alerts once.

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

/// `/readyz` of a replica: (role, buckets), or `None` if it does not answer.
async fn readiness(client: &reqwest::Client, base: &str) -> Option<(String, u64)> {
    let text = client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    Some((v["role"].as_str()?.to_string(), v["buckets"].as_u64()?))
}

/// The buckets each replica in `bases` owns (0 for one that does not answer).
async fn buckets(client: &reqwest::Client, bases: &[&String]) -> Vec<u64> {
    let mut out = Vec::new();
    for b in bases {
        out.push(readiness(client, b).await.map_or(0, |(_, n)| n));
    }
    out
}

/// Wait until the replicas at `bases` hold all 128 buckets between them, each some, and the
/// shares have settled (the same over two of their 2 s looks: while buckets move, one may be
/// let go a look before its new owner takes it).
async fn shared_by_all(client: &reqwest::Client, bases: &[&String]) -> Vec<u64> {
    let mut last = Vec::new();
    eventually(
        &format!("{} replicas share the 128 buckets", bases.len()),
        Duration::from_secs(30),
        async || {
            let n = buckets(client, bases).await;
            let settled = n == last && n.iter().sum::<u64>() == 128 && !n.contains(&0);
            last = n.clone();
            if !settled {
                tokio::time::sleep(Duration::from_millis(2_500)).await;
            }
            (!settled).then(|| format!("{n:?}"))
        },
    )
    .await;
    last
}

/// Every built-in-region result per server: server id → start times, ascending.
async fn probe_times(db_url: &str) -> std::collections::HashMap<String, Vec<i64>> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(db_url).await.unwrap();
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT server_id, started_at FROM probe_results WHERE region = 'local' \
         ORDER BY server_id, started_at",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let mut out: std::collections::HashMap<String, Vec<i64>> = Default::default();
    for (id, at) in rows {
        out.entry(id).or_default().push(at);
    }
    out
}

/// The replicas whose heartbeats are live (their holder ids, `{pid}-{uuid}`).
async fn live_replicas(db_url: &str) -> Vec<String> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(db_url).await.unwrap();
    sqlx::query_scalar("SELECT holder FROM replicas WHERE expires_at > now() ORDER BY holder")
        .fetch_all(&mut conn)
        .await
        .unwrap()
}

/// How many results one server has.
async fn results_of(db_url: &str, server_id: &str) -> usize {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(db_url).await.unwrap();
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM probe_results WHERE server_id = $1")
        .bind(server_id)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    n as usize
}

/// Servers this test registers: 3,000 at 10 s as the issue asks (`TEST_REPLICA_SERVERS`
/// changes it, e.g. for a quick local run).
fn fleet_size() -> usize {
    std::env::var("TEST_REPLICA_SERVERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000)
}

// Multi-threaded so the fake fleet answers on worker threads: on the test's own thread it
// stalled for seconds while the test read tens of thousands of probe times, and its 3,000
// healthy servers timed out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_the_fleet_by_buckets_take_over_a_killed_ones_and_alert_once() {
    let db = TestDb::new(Backend::Postgres).await;
    let db_url = db.url_text();
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let rx = Receiver::start().await;
    let fleet = FakeServer::start(FakeConfig::default()).await;
    let victim = FakeServer::start(FakeConfig::default()).await;

    let (first, a) = replica(&db_url, dir.path(), "a");
    let (second, b) = replica(&db_url, dir.path(), "b");
    let (third, c) = replica(&db_url, dir.path(), "c");
    let three = [&a, &b, &c];
    shared_by_all(&client, &three).await;
    let roles: Vec<String> = {
        let mut r = Vec::new();
        for base in three {
            r.push(readiness(&client, base).await.unwrap().0);
        }
        r
    };
    assert_eq!(
        roles.iter().filter(|r| *r == "leader").count(),
        1,
        "one leads the singletons: {roles:?}"
    );
    let mut leader_only = Vec::new();
    for base in three {
        leader_only.push(status(&client, format!("{base}/readyz?leader=true")).await);
    }
    let expected: Vec<u16> = roles
        .iter()
        .map(|r| if r == "leader" { 200 } else { 503 })
        .collect();
    assert_eq!(
        leader_only, expected,
        "?leader=true routes to the leader alone"
    );

    // The fleet, registered in one request through one replica; the others find their
    // servers by the change feed. One more server on its own target, to fail later.
    let n = fleet_size();
    let servers: Vec<Value> = (0..n)
        // The fleet's timeout is 8 s: at a take-over, four debug daemons, Postgres and this
        // process share two cores, and the fake fleet (3,000 servers on one port) once
        // answered no probe for over 5 s, so healthy servers went down; the victim keeps 5 s.
        .map(|i| json!({"name": format!("fleet-{i}"), "url": fleet.url(), "interval_seconds": 10, "timeout_seconds": 8}))
        .chain([json!({"name": "victim", "url": victim.url(), "interval_seconds": 10, "timeout_seconds": 5, "failures_to_down": 1})])
        .collect();
    let (s, v) = post(
        &client,
        format!("{b}/api/v1/servers:batch"),
        json!({"servers": servers}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let victim_id = v["servers"][n]["id"].as_str().unwrap().to_string();
    let (s, ch) = post(
        &client,
        format!("{c}/api/v1/channels"),
        json!({"name": "ops", "url": rx.url}),
    )
    .await;
    assert_eq!(s, 201, "{ch}");
    eventually(
        "every server probed twice",
        Duration::from_secs(60),
        async || {
            let times = probe_times(&db.url_text()).await;
            let done = times.values().filter(|t| t.len() >= 2).count();
            (done < n + 1).then(|| format!("{done} of {}", n + 1))
        },
    )
    .await;

    // A fourth replica takes about a quarter of the buckets, from all three.
    let before = buckets(&client, &three).await;
    assert_eq!(before.iter().sum::<u64>(), 128, "{before:?}");
    let (fourth, d) = replica(&db_url, dir.path(), "d");
    let four = [&a, &b, &c, &d];
    let after = shared_by_all(&client, &four).await;
    // Exactly the buckets rendezvous hashing gives it among the four (about a quarter, but
    // random replica ids spread that from under 20 to over 45 in about 1 % of runs).
    let live = live_replicas(&db_url).await;
    assert_eq!(live.len(), 4, "{live:?}");
    let fourth_id = live
        .iter()
        .find(|h| h.starts_with(&format!("{}-", fourth.0.id())))
        .expect("the fourth replica's heartbeat");
    assert_eq!(
        after[3],
        mcpwatch::shard::wanted(fourth_id, &live).len() as u64,
        "the fourth's share by rendezvous ({before:?} -> {after:?})"
    );
    for i in 0..3 {
        assert!(
            after[i] <= before[i],
            "{before:?} -> {after:?}: only the newcomer gains"
        );
    }

    // SIGKILL one: its buckets move to the others within 10 s (its leases expire in 8 s,
    // the others look every 2 s).
    let survivors = [&a, &b, &d];
    let killed_at_ms = mcpwatch::clock::now_ms();
    let killed_at = Instant::now();
    drop(third);
    eventually(
        "the killed replica's buckets are taken over",
        Duration::from_secs(20),
        async || {
            let n = buckets(&client, &survivors).await;
            (n.iter().sum::<u64>() != 128).then(|| format!("{n:?}"))
        },
    )
    .await;
    let moved_in = killed_at.elapsed();
    // Leases expire after 8 s and survivors settle every 2 s: 10 s, measured 7.6-9.3 s. (This
    // test runs in its own binary, tests/cluster.rs: inside `it`, another test shared the two
    // cores with these four daemons and their 3,000 servers, and take-overs took up to 12.5 s.)
    // The bound adds 2 s for a loaded machine: a look that starts late (four debug daemons
    // on two cores) moves everything after it.
    assert!(
        moved_in <= Duration::from_millis(12_000),
        "buckets moved {moved_in:?} after the kill"
    );
    // Once every server has been probed again well after the kill, look at every server's
    // probes: once per tick throughout (no two in one tick), and no server missed more than
    // one tick across the kill.
    eventually(
        "every server probed again after the take-over",
        Duration::from_secs(40),
        async || {
            let times = probe_times(&db.url_text()).await;
            let behind = times
                .values()
                .filter(|t| t.last().is_none_or(|l| *l <= killed_at_ms + 12_000))
                .count();
            (behind > 0 || times.len() < n + 1).then(|| format!("{behind} not yet"))
        },
    )
    .await;
    let times = probe_times(&db.url_text()).await;
    assert_eq!(times.len(), n + 1, "every server has results");
    // Across the kill the bound is the take-over, not a tick count: the killed replica's
    // last probes may never have been stored (SIGKILL loses its unflushed batch), so a
    // server's last stored probe can be a whole tick before the kill. What the survivors
    // owe is a probe at the first aligned tick after they take the bucket.
    let first_after_kill_by = killed_at_ms + moved_in.as_millis() as i64 + 10_000 + 2_000;
    let mut worst = (0i64, String::new());
    for (id, t) in &times {
        for pair in t.windows(2) {
            let gap = pair[1] - pair[0];
            assert!(gap >= 5_000, "{id}: two probes {gap} ms apart: {t:?}");
            if pair[0] <= killed_at_ms && pair[1] > killed_at_ms {
                assert!(
                    pair[1] <= first_after_kill_by,
                    "{id}: first probe after the kill came {} ms after it (taken over in {moved_in:?}): {t:?}",
                    pair[1] - killed_at_ms
                );
            } else if gap > worst.0 {
                worst = (gap, id.clone());
            }
        }
        let last = *t.last().unwrap();
        assert!(
            last > killed_at_ms + 12_000,
            "{id} not probed since the kill: {t:?}"
        );
    }
    assert!(
        worst.0 <= 2 * 10_000 + 3_000,
        "{} waited {} ms between probes away from the kill (more than one missed tick)",
        worst.1,
        worst.0
    );
    eprintln!(
        "replicas: {} servers, buckets {before:?} -> {after:?}, taken over in {moved_in:?}, longest gap away from the kill {} ms",
        n + 1,
        worst.0
    );

    // An outage of one server now: one server.down, delivered once, whichever replica owns
    // it and whichever sends. That no second one comes is read from the database once two
    // more probes have been judged, not waited for.
    victim.update(|c| {
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
    let stored = async || results_of(&db.url_text(), &victim_id).await;
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
    drop((first, second, fourth));
    db.cleanup().await;
}

/// Servers registered, edited and deleted through any replica reach the owner's schedule by
/// the change feed (rung by NOTIFY: well before the 2 s poll); a check made through a replica
/// that does not own the server is handed to the owner and decided there; each replica
/// exports its own servers' state series; a SIGTERM hands the buckets over at once.
#[tokio::test]
async fn changes_and_checks_through_any_replica_reach_the_owner() {
    let db = TestDb::new(Backend::Postgres).await;
    let db_url = db.url_text();
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let fake = FakeServer::start(FakeConfig::default()).await;
    let (first, a) = replica(&db_url, dir.path(), "a");
    let (second, b) = replica(&db_url, dir.path(), "b");
    shared_by_all(&client, &[&a, &b]).await;
    // A server owned by `a`, registered through `b`.
    let owned_by = async || {
        let total = async |base: &str| scheduled_servers(&client, base).await.unwrap_or(0);
        (total(&a).await, total(&b).await)
    };
    let mut made = Vec::new();
    for i in 0..8 {
        let (s, v) = post(
            &client,
            format!("{b}/api/v1/servers"),
            json!({"name": format!("s{i}"), "url": fake.url(), "interval_seconds": 60}),
        )
        .await;
        assert_eq!(s, 201, "{v}");
        made.push(v);
    }
    let added = Instant::now();
    eventually(
        "the owners schedule the servers added through b",
        Duration::from_secs(10),
        async || {
            let (x, y) = owned_by().await;
            (x + y != 8).then(|| format!("a {x}, b {y}"))
        },
    )
    .await;
    assert!(
        added.elapsed() < Duration::from_millis(1500),
        "scheduled {:?} after they were added: the notification did not ring",
        added.elapsed()
    );
    let (on_a, on_b) = owned_by().await;
    assert!(
        on_a > 0 && on_b > 0,
        "8 servers all on one replica: a {on_a}, b {on_b}"
    );

    // Every server checked through `a`: the results of b's servers are handed to b, which
    // decides them (each server's state leaves `unknown` for `up`, probed once each).
    for v in &made {
        let id = v["id"].as_str().unwrap();
        let (s, r) = post(&client, format!("{a}/api/v1/servers/{id}/check"), json!({})).await;
        assert_eq!(s, 200, "{r}");
    }
    let store = db.store().await;
    eventually(
        "every check decided by its owner",
        Duration::from_secs(15),
        async || {
            let mut unknown = 0;
            for v in &made {
                let (state, _) = store.load_state(v["id"].as_str().unwrap()).await.unwrap();
                if state.is_none_or(|s| s.status != mcpwatch::monitor::ServerStatus::Up) {
                    unknown += 1;
                }
            }
            (unknown > 0).then(|| format!("{unknown} not up yet"))
        },
    )
    .await;

    // Each replica exports the state series of its own servers only (another's would go
    // stale there).
    for base in [&a, &b] {
        let text = client
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let states = text
            .lines()
            .filter(|l| l.starts_with("mcpwatch_server_up{"))
            .count();
        let scheduled = scheduled_servers(&client, base).await.unwrap() as usize;
        assert_eq!(
            states, scheduled,
            "{base}: {states} state series, {scheduled} servers"
        );
    }

    // Deleted through `a`: dropped from whichever schedule held it.
    for v in &made {
        let gone = client
            .delete(format!("{a}/api/v1/servers/{}", v["id"].as_str().unwrap()))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap();
        assert_eq!(gone.status().as_u16(), 204);
    }
    eventually(
        "both schedules empty",
        Duration::from_secs(10),
        async || {
            let (x, y) = owned_by().await;
            (x + y != 0).then(|| format!("a {x}, b {y}"))
        },
    )
    .await;

    // A graceful stop (SIGTERM) hands its buckets over once its results are stored, at
    // once: the other replica holds all 128 well before the 8 s a killed one's leases take.
    let mut second = second;
    let stopping = Instant::now();
    second.sigterm();
    eventually(
        "the stopped replica's buckets are taken over",
        Duration::from_secs(8),
        async || {
            let n = buckets(&client, &[&a]).await;
            (n != [128]).then(|| format!("{n:?}"))
        },
    )
    .await;
    assert!(
        stopping.elapsed() < Duration::from_secs(5),
        "handed over {:?} after SIGTERM",
        stopping.elapsed()
    );
    store.close().await;
    drop(first);
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
