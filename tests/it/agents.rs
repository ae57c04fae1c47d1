//! Multi-region with the real binary: one central (`mcpwatch serve`) on a real Postgres and
//! three agents (`mcpwatch agent`), all on loopback, probing fake MCP servers that refuse
//! chosen regions (by the agents' `x-mcpwatch-region` header).
//!
//! What loopback cannot show: a region whose whole network is cut off (here an agent is
//! refused by the server, or killed); DNS or routing that differ between regions.

use crate::support;

use std::time::Duration;

use mcpwatch::agent::protocol::{AgentBatch, AgentResult, PushReply};
use mcpwatch::probe::{ProbeReport, Verdict};
use mcpwatch::store::Scope;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::db::{Backend, TestDb};
use support::eventually;
use support::fake_mcp::{FakeConfig, FakeServer};
use support::proc::{Proc, command, serve, start};
use support::webhook_rx::Receiver;

const ADMIN: &str = "agents-test-admin-token-0123456789";
const REGIONS: [&str; 3] = ["eu-west", "us-east", "ap-south"];

fn central(db_url: &str, listen: &str, dir: &std::path::Path) -> (Proc, String) {
    let data = dir.to_string_lossy().to_string();
    serve(
        &[
            ("MCPWATCH_LISTEN", listen),
            ("DATABASE_URL", db_url),
            ("MCPWATCH_DATA_DIR", &data),
            ("MCPWATCH_ADMIN_TOKEN", ADMIN),
            ("MCPWATCH_PROBE_LOCALLY", "false"),
            ("MCPWATCH_REGION_SILENT_AFTER", "15"),
            ("MCPWATCH_DELIVERY_LEASE", "11"),
            ("MCPWATCH_ALLOW_PRIVATE_CIDRS", "127.0.0.0/8"),
            ("MCPWATCH_LOG_FORMAT", "json"),
        ],
        dir,
        &format!("central-{}", support::seed::now_ms()),
    )
}

fn agent(region: &str, base: &str, token: &str, dir: &std::path::Path) -> Proc {
    let data = dir
        .join(format!("agent-{region}"))
        .to_string_lossy()
        .to_string();
    let cmd = command(
        &["agent", "--region", region, "--central", base],
        &[
            ("MCPWATCH_AGENT_TOKEN", token),
            ("MCPWATCH_DATA_DIR", &data),
            ("MCPWATCH_ALLOW_PRIVATE_CIDRS", "127.0.0.0/8"),
            ("MCPWATCH_LOG_FORMAT", "json"),
        ],
    );
    start(cmd, None, dir.join(format!("agent-{region}.log"))).0
}

struct Api {
    client: reqwest::Client,
    base: String,
}

impl Api {
    async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn server(&self, slug: &str) -> Value {
        self.call(Method::GET, &format!("/api/v1/servers/{slug}"), ADMIN, None)
            .await
            .1
    }
}

fn events_of(rx: &Receiver, kind: &str) -> Vec<Value> {
    rx.received()
        .iter()
        .map(|r| r.json())
        .filter(|j| j["type"] == kind)
        .collect()
}

fn batch_for(server_id: &str) -> AgentBatch {
    let mut report = ProbeReport::new(
        "http://127.0.0.1:9/mcp".into(),
        "2026-11-24T00:00:00Z".into(),
    );
    report.verdict = Verdict::Up;
    report.timings_ms.total = 12.0;
    AgentBatch {
        results: vec![AgentResult {
            id: uuid::Uuid::now_v7().to_string(),
            server_id: server_id.into(),
            started_at: support::seed::now_ms(),
            lag_ms: 0,
            vantage_unhealthy: false,
            report,
            tools: vec![],
        }],
    }
}

// Several workers: starting and stopping the central blocks the test's thread (it waits on
// the child's output and exit), and the fake servers the agents probe must keep answering
// meanwhile; on one thread they were starved and a healthy server timed out from every region.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_regions_decide_by_quorum_buffer_through_outages_and_count_once() {
    let db = TestDb::new(Backend::Postgres).await;
    let db_url = db.url_text();
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    let healthy = FakeServer::start(FakeConfig::default()).await;
    let one_region_out = FakeServer::start(FakeConfig {
        refuse_regions: vec!["ap-south".into()],
        ..FakeConfig::default()
    })
    .await;
    let two_regions_out = FakeServer::start(FakeConfig {
        refuse_regions: vec!["eu-west".into(), "us-east".into()],
        ..FakeConfig::default()
    })
    .await;

    let (mut central_proc, base) = central(&db_url, "127.0.0.1:0", dir.path());
    let api = Api {
        client: reqwest::Client::builder().no_proxy().build().unwrap(),
        base: base.clone(),
    };
    let (s, ch) = api
        .call(Method::POST, "/api/v1/channels", ADMIN, Some(json!({"name": "ops", "url": rx.url, "events": ["server.down", "server.up", "region.down", "region.silent"]})))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{ch}");
    let mut tokens = Vec::new();
    for region in REGIONS {
        let (s, key) = api
            .call(Method::POST, "/api/v1/keys", ADMIN, Some(json!({"name": format!("agent {region}"), "scopes": ["agent"], "region": region})))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{key}");
        tokens.push(key["token"].as_str().unwrap().to_string());
    }
    // An agent key reaches nothing but the agent routes.
    let (s, _) = api
        .call(Method::GET, "/api/v1/servers", &tokens[0], None)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    for (slug, fake) in [
        ("healthy", &healthy),
        ("one-out", &one_region_out),
        ("two-out", &two_regions_out),
    ] {
        let (s, v) = api
            .call(Method::POST, "/api/v1/servers", ADMIN, Some(json!({
                "name": slug, "slug": slug, "url": fake.url(), "regions": REGIONS,
                "interval_seconds": 10, "timeout_seconds": 5, "failures_to_down": 1, "public": true,
            })))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    // A server no agent probes, for the replay check.
    let (_, quiet) = api
        .call(Method::POST, "/api/v1/servers", ADMIN, Some(json!({"name": "quiet", "slug": "quiet", "url": healthy.url(), "regions": ["nowhere"], "interval_seconds": 60})))
        .await;

    let mut agents: Vec<Option<Proc>> = REGIONS
        .iter()
        .zip(&tokens)
        .map(|(r, t)| Some(agent(r, &base, t, dir.path())))
        .collect();

    // 1. All healthy from three regions; one region refused → a warning, not down; two of
    //    three refused → down, with one alert.
    eventually("every region reports", Duration::from_secs(40), || async {
        let h = api.server("healthy").await;
        let one = api.server("one-out").await;
        let two = api.server("two-out").await;
        let ok = h["state"] == "up"
            && one["state"] == "up"
            && one["warnings"].as_array().is_some_and(|w| {
                w.iter()
                    .any(|m| m.as_str().unwrap_or("").contains("ap-south"))
            })
            && two["state"] == "down";
        (!ok).then(|| {
            format!(
                "healthy={} one-out={} {} two-out={}",
                h["state"], one["state"], one["warnings"], two["state"]
            )
        })
    })
    .await;
    eventually("alerts delivered", Duration::from_secs(20), || async {
        let downs = events_of(&rx, "server.down");
        let regional = events_of(&rx, "region.down");
        let ok = downs.len() == 1 && regional.iter().any(|e| e["data"]["region"] == "ap-south");
        (!ok).then(|| format!("server.down={downs:?} region.down={regional:?}"))
    })
    .await;
    let downs = events_of(&rx, "server.down");
    assert_eq!(
        downs[0]["data"]["server"]["slug"], "two-out",
        "only the quorum outage alerts"
    );

    // 2. A replayed batch is counted once.
    let batch = batch_for(quiet["id"].as_str().unwrap());
    let body = serde_json::to_value(&batch).unwrap();
    let (s, first) = api
        .call(
            Method::POST,
            "/api/v1/agent/results",
            &tokens[0],
            Some(body.clone()),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{first}");
    let (_, again) = api
        .call(
            Method::POST,
            "/api/v1/agent/results",
            &tokens[0],
            Some(body),
        )
        .await;
    let first: PushReply = serde_json::from_value(first).unwrap();
    let again: PushReply = serde_json::from_value(again).unwrap();
    assert_eq!(
        (first.accepted, again.accepted, again.duplicates),
        (1, 0, 1)
    );
    let store = db.store().await;
    let quiet_hours = store
        .hourly_rollups(Scope::Server(quiet["id"].as_str().unwrap()), 0)
        .await
        .unwrap();
    assert_eq!(
        quiet_hours.iter().map(|h| h.probes).sum::<i64>(),
        1,
        "{quiet_hours:?}"
    );

    // 3. An agent killed: region.silent, and the server states do not move.
    drop(agents[2].take());
    eventually(
        "region.silent for ap-south",
        Duration::from_secs(45),
        || async {
            let silent = events_of(&rx, "region.silent");
            (!silent.iter().any(|e| e["data"]["region"] == "ap-south"))
                .then(|| format!("{silent:?}"))
        },
    )
    .await;
    assert_eq!(api.server("healthy").await["state"], "up");
    assert_eq!(api.server("two-out").await["state"], "down");
    assert_eq!(events_of(&rx, "region.silent").len(), 1, "once");
    let page = api
        .client
        .get(format!("{base}/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("Region ap-south has not reported since"),
        "the status page says so"
    );
    let status: Value = serde_json::from_str(
        &api.client
            .get(format!("{base}/status.json"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    let silent: Vec<&Value> = status["regions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["silent"] == true)
        .collect();
    assert_eq!(silent.len(), 1, "{status}");
    assert_eq!(silent[0]["name"], "ap-south");

    // 4. The central stops for a while: agents keep probing and buffer; after a restart on the
    //    same address everything arrives, once.
    let stopped_at = support::seed::now_ms();
    central_proc.sigterm();
    let probed =
        |fake: &FakeServer| fake.seen(|s| s.methods.iter().filter(|m| *m == "tools/list").count());
    let before = probed(&healthy);
    // Every region probes the healthy server at least once more while the central is away.
    eventually(
        "the agents probe while the central is down",
        Duration::from_secs(25),
        || async { probed(&healthy) >= before + REGIONS.len() },
    )
    .await;
    let restarted_at = support::seed::now_ms();
    let listen = base.trim_start_matches("http://").to_string();
    let (central_again, _) = central(&db_url, &listen, dir.path());
    let healthy_id = api.server("healthy").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    eventually(
        "buffered results from the outage arrive",
        Duration::from_secs(40),
        || {
            let store = store.clone();
            let healthy_id = healthy_id.clone();
            async move {
                let page = mcpwatch::store::ResultQuery {
                    server_id: healthy_id,
                    since: Some(stopped_at),
                    until: Some(restarted_at),
                    region: Some("eu-west".into()),
                    page: mcpwatch::store::Page {
                        limit: 100,
                        after: None,
                    },
                };
                let n = store.list_results(&page).await.unwrap().len();
                (n == 0).then(|| "no eu-west result from the outage yet".to_string())
            }
        },
    )
    .await;
    // Nothing counted twice or lost: once the agents stop, the rollups count exactly the
    // stored results that count (a result counted twice would keep them apart for good).
    drop(agents);
    eventually(
        "rollups count each stored result once",
        Duration::from_secs(20),
        || async {
            let all = store
                .list_results(&mcpwatch::store::ResultQuery {
                    server_id: healthy_id.clone(),
                    page: mcpwatch::store::Page {
                        limit: 1000,
                        after: None,
                    },
                    ..Default::default()
                })
                .await
                .unwrap();
            let counted: i64 = store
                .hourly_rollups(Scope::Server(&healthy_id), 0)
                .await
                .unwrap()
                .iter()
                .map(|h| h.probes)
                .sum();
            // A failed probe while the agent's canaries failed (the central was away) is
            // stored as vantage_unhealthy and, by design, not counted.
            let countable = all.iter().filter(|r| !r.vantage_unhealthy).count();
            (counted != countable as i64).then(|| {
                format!(
                    "{counted} counted, {} stored, {countable} countable",
                    all.len()
                )
            })
        },
    )
    .await;
    assert_eq!(api.server("healthy").await["state"], "up");

    drop(central_again);
    db.cleanup().await;
}

/// The last "config applied" line of an agent's JSON log: how many servers it probes.
fn servers_applied(log: &std::path::Path) -> Option<u64> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["msg"] == "config applied")
        .and_then(|v| v["servers"].as_u64())
}

/// Two agents of one region share its servers (each its own part, by instance), so a region
/// scales out like the central does; when one stops, the other takes all of them within a
/// minute, and every server is probed once per tick throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_agents_of_one_region_share_its_servers_and_one_takes_over_for_the_other() {
    let db = TestDb::new(Backend::Postgres).await;
    let db_url = db.url_text();
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeServer::start(FakeConfig::default()).await;
    let (central_proc, base) = central(&db_url, "127.0.0.1:0", dir.path());
    let api = Api {
        client: reqwest::Client::builder().no_proxy().build().unwrap(),
        base: base.clone(),
    };
    let (s, key) = api
        .call(
            Method::POST,
            "/api/v1/keys",
            ADMIN,
            Some(json!({"name": "agents eu-west", "scopes": ["agent"], "region": "eu-west"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{key}");
    let token = key["token"].as_str().unwrap().to_string();
    let (s, bad) = api
        .call(
            Method::GET,
            "/api/v1/agent/config?instance=no%20spaces",
            &token,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    assert!(bad.to_string().contains("instance"), "{bad}");
    const N: u64 = 40;
    let servers: Vec<Value> = (0..N)
        .map(|i| json!({"name": format!("s{i}"), "url": fake.url(), "regions": ["eu-west"], "interval_seconds": 10, "timeout_seconds": 5}))
        .collect();
    let (s, v) = api
        .call(
            Method::POST,
            "/api/v1/servers:batch",
            ADMIN,
            Some(json!({"servers": servers})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");

    let start_agent = |name: &str| {
        let data = dir.path().join(name).to_string_lossy().to_string();
        let cmd = command(
            &["agent", "--region", "eu-west", "--central", &base],
            &[
                ("MCPWATCH_AGENT_TOKEN", token.as_str()),
                ("MCPWATCH_DATA_DIR", &data),
                ("MCPWATCH_ALLOW_PRIVATE_CIDRS", "127.0.0.0/8"),
                ("MCPWATCH_LOG_FORMAT", "json"),
            ],
        );
        let log = dir.path().join(format!("{name}.log"));
        (start(cmd, None, log.clone()).0, log)
    };
    let (first, first_log) = start_agent("agent-one");
    let (second, second_log) = start_agent("agent-two");
    eventually(
        "the two agents split the region's servers",
        Duration::from_secs(40),
        async || {
            let (a, b) = (servers_applied(&first_log), servers_applied(&second_log));
            match (a, b) {
                (Some(a), Some(b)) if a + b == N && a > 0 && b > 0 => None,
                other => Some(format!("{other:?}")),
            }
        },
    )
    .await;
    let split = (servers_applied(&first_log), servers_applied(&second_log));

    // Once per tick: while every server gets two more results, the target sees one probe per
    // server per 10 s tick (plus one in flight each), not two: counted against the time it
    // took, which grows when the machine is busy (results reach the central a little later).
    let tools_lists = || fake.seen(|s| s.methods.iter().filter(|m| *m == "tools/list").count());
    let before = tools_lists();
    let counting = std::time::Instant::now();
    let since = support::seed::now_ms();
    let store = db.store().await;
    let ids: Vec<String> = v["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    eventually(
        "two more probes of every server",
        Duration::from_secs(40),
        async || {
            let mut short = 0;
            for id in &ids {
                let q = mcpwatch::store::ResultQuery {
                    server_id: id.clone(),
                    since: Some(since),
                    page: mcpwatch::store::Page {
                        limit: 5,
                        after: None,
                    },
                    ..Default::default()
                };
                if store.list_results(&q).await.unwrap().len() < 2 {
                    short += 1;
                }
            }
            (short > 0).then(|| format!("{short} servers short"))
        },
    )
    .await;
    let probes = tools_lists() - before;
    let ticks = counting.elapsed().as_secs_f64() / 10.0 + 1.0;
    let once_per_tick = (N as f64 * ticks * 1.2) as usize;
    assert!(
        (2 * N as usize..=once_per_tick).contains(&probes),
        "{probes} probes of {N} servers in {ticks:.1} ticks; once per tick is at most \
         {once_per_tick} ({split:?})"
    );

    // One stops: the other takes all the region's servers once the first's instance lapses.
    drop(first);
    let stopped = std::time::Instant::now();
    eventually(
        "the remaining agent takes every server",
        Duration::from_secs(90),
        async || {
            let b = servers_applied(&second_log);
            (b != Some(N)).then(|| format!("{b:?}"))
        },
    )
    .await;
    let took = stopped.elapsed();
    let after_take = support::seed::now_ms();
    eventually(
        "every server probed from eu-west since",
        Duration::from_secs(30),
        async || {
            let mut behind = 0;
            for s in v["servers"].as_array().unwrap() {
                let q = mcpwatch::store::ResultQuery {
                    server_id: s["id"].as_str().unwrap().into(),
                    region: Some("eu-west".into()),
                    page: mcpwatch::store::Page {
                        limit: 1,
                        after: None,
                    },
                    ..Default::default()
                };
                let newest = store.list_results(&q).await.unwrap();
                if newest.first().is_none_or(|r| r.started_at < after_take) {
                    behind += 1;
                }
            }
            (behind > 0).then(|| format!("{behind} not probed yet"))
        },
    )
    .await;
    eprintln!(
        "agents: split {split:?}, {probes} probes in 20 s, one took over all {N} in {took:?}"
    );
    store.close().await;
    drop((second, central_proc));
    db.cleanup().await;
}
