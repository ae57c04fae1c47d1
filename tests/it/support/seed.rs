//! Seed a store with servers in a chosen state and days of history, through the same
//! `commit_batch` the ingest uses (so rollups are built exactly as in production).
#![allow(dead_code)]

use mcpwatch::monitor::{RegionState, RegionStatus, ServerState, ServerStatus};
use mcpwatch::store::rollup::DAY_MS;
use mcpwatch::store::{BatchWrites, IncidentRecord, ResultRecord, SnapshotRecord, Store};
use serde_json::{Value, json};

use super::fixtures;

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A region: (name, status, the last result's failure as (kind, phase)).
pub type RegionSeed<'a> = (&'a str, RegionStatus, Option<(&'a str, &'a str)>);

/// What to seed for one server.
pub struct Seed<'a> {
    pub slug: &'a str,
    pub name: &'a str,
    pub public: bool,
    pub tags: &'a [&'a str],
    pub status: ServerStatus,
    pub regions: &'a [RegionSeed<'a>],
    /// Days of history before today, one result per `step_ms`; every `fail_every`-th fails.
    pub days: i64,
    pub step_ms: i64,
    pub fail_every: Option<usize>,
}

impl Default for Seed<'_> {
    fn default() -> Self {
        Seed {
            slug: "s",
            name: "Server",
            public: true,
            tags: &[],
            status: ServerStatus::Up,
            regions: &[("eu-west", RegionStatus::Up, None)],
            days: 3,
            step_ms: 3_600_000,
            fail_every: None,
        }
    }
}

pub fn tools(names: &[&str]) -> Value {
    Value::Array(
        names
            .iter()
            .map(|n| json!({"name": n, "description": format!("the {n} tool"), "inputSchema": {"type": "object"}}))
            .collect(),
    )
}

fn result_at(
    id: String,
    server_id: &str,
    at: i64,
    region: &str,
    fail: Option<(&str, &str)>,
) -> ResultRecord {
    let mut r = fixtures::result(&id, server_id, at, region);
    r.duration_ms = 40.0 + (at / 60_000 % 20) as f64;
    if let Some((kind, phase)) = fail {
        r.verdict = mcpwatch::probe::Verdict::Down;
        r.failure_kind = Some(kind.parse().unwrap());
        r.failure_phase = Some(phase.parse().unwrap());
        r.failure_message = Some(format!("{kind} in {phase}"));
        r.tool_count = 0;
        r.schema_hash = None;
    }
    r
}

/// Insert the server and its history; returns its id.
pub async fn seed(store: &dyn Store, s: &Seed<'_>, now: i64) -> String {
    let id = format!("id-{}", s.slug);
    let mut server = fixtures::server(&id, s.slug, 1);
    server.name = s.name.into();
    server.public = s.public;
    server.tags = s.tags.iter().map(|t| t.to_string()).collect();
    server.paused = s.status == ServerStatus::Paused;
    store.insert_server(&server).await.unwrap();

    let mut results = Vec::new();
    let first = now - s.days * DAY_MS;
    let mut n = 0usize;
    let mut at = first;
    while at < now - 120_000 {
        for (region, _, _) in s.regions {
            let fail = s
                .fail_every
                .filter(|k| n.is_multiple_of(*k))
                .map(|_| ("timeout", "tools_list"));
            results.push(result_at(
                format!("{id}-{region}-{n}"),
                &id,
                at,
                region,
                fail,
            ));
            n += 1;
        }
        at += s.step_ms;
    }
    let mut w = BatchWrites::default();
    let last_at = now - 60_000;
    for (region, status, fail) in s.regions {
        // In the same batch as the region's state, as the ingest writes them.
        w.results.push(result_at(
            format!("{id}-{region}-last"),
            &id,
            last_at,
            region,
            *fail,
        ));
        let mut rs = RegionState::new((*region).into());
        rs.status = *status;
        rs.last_result_at = Some(last_at);
        rs.last_verdict = Some(if fail.is_some() {
            mcpwatch::probe::Verdict::Down
        } else {
            mcpwatch::probe::Verdict::Up
        });
        w.region_states.push((id.clone(), rs));
    }
    let mut state = ServerState::new(now - 3 * 3_600_000);
    state.status = s.status;
    state.schema_hash = Some("sha256:aa".into());
    state.last_result_at = Some(last_at);
    w.server_states.push((id.clone(), state));
    if matches!(s.status, ServerStatus::Down) {
        w.incidents_opened.push(IncidentRecord {
            id: format!("{id}-open"),
            server_id: id.clone(),
            kind: "down".into(),
            cause: "tools/list timed out".into(),
            opened_at: now - 3 * 3_600_000,
            closed_at: None,
        });
    }
    w.incidents_opened.push(IncidentRecord {
        id: format!("{id}-old"),
        server_id: id.clone(),
        kind: "down".into(),
        cause: "connection refused".into(),
        opened_at: now - 2 * DAY_MS,
        closed_at: Some(now - 2 * DAY_MS + 25 * 60_000),
    });
    for (i, (names, at)) in [
        (&["echo", "search"][..], now - 5 * DAY_MS),
        (&["echo"][..], now - DAY_MS),
    ]
    .into_iter()
    .enumerate()
    {
        w.schema_changes.push(mcpwatch::store::SchemaChangeRecord {
            server_id: id.clone(),
            at,
            from_hash: (i > 0).then(|| format!("sha256:{}{}", i - 1, i - 1)),
            to_hash: format!("sha256:{i}{i}"),
            class: (i > 0).then(|| "breaking".to_string()),
            summary: (i > 0).then(|| "breaking: 1 removed (search)".to_string()),
        });
        w.snapshots.push(SnapshotRecord {
            server_id: id.clone(),
            hash: format!("sha256:{i}{i}"),
            interface_hash: format!("sha256:i{i}"),
            tools: tools(names),
            first_seen: at,
            last_seen: at,
        });
    }
    // Results go in several batches, as the ingest would commit them.
    for chunk in results.chunks(2000) {
        store
            .commit_batch(&BatchWrites {
                results: chunk.to_vec(),
                ..BatchWrites::default()
            })
            .await
            .unwrap();
    }
    store.commit_batch(&w).await.unwrap();
    id
}
