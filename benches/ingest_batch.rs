//! The ingest's write path: how long one `commit_batch` of 500 steady-state results takes, and
//! so how many results per second one ingest task can store, on SQLite and on Postgres.
//!
//! `cargo bench --bench ingest_batch` registers `BENCH_SERVERS` servers, then commits
//! `BENCH_ROUNDS` batches shaped like the ingest's in steady state: per result, the result row,
//! its region's state, the server's state and a sighting of its (unchanged) tool list, which
//! also updates the hourly and daily rollups. The first round (every server's first result,
//! first snapshot) is timed apart from the rest.
//!
//! Knobs: `BENCH_BACKENDS` (`sqlite,postgres`), `BENCH_SERVERS` (5000), `BENCH_ROUNDS` (20),
//! `TEST_DATABASE_URL` (the Postgres server, as in the tests).

mod common;
#[path = "../tests/it/support/fixtures.rs"]
mod fixtures;

use std::time::Instant;

use common::{BenchDb, env_or};
use mcpwatch::monitor::{RegionState, RegionStatus, ServerState, ServerStatus};
use mcpwatch::store::{BatchWrites, ServerRecord, SnapshotRecord};

const BATCH: usize = 500;

fn server(i: usize, now: i64) -> ServerRecord {
    let mut s = fixtures::server(&format!("bench-{i:06}"), &format!("server-{i:06}"), now);
    s.header_names.clear();
    s.headers_enc = None;
    s
}

/// Three tools with schemas, about the size of a small real server's list.
fn tools() -> serde_json::Value {
    let tool = |name: &str| {
        serde_json::json!({
            "name": name,
            "description": format!("{name}: does one thing well, with a description of usual length"),
            "inputSchema": {"type": "object", "properties": {
                "query": {"type": "string", "description": "what to look for"},
                "limit": {"type": "integer", "minimum": 1, "maximum": 100}
            }, "required": ["query"]}
        })
    };
    serde_json::json!([tool("search"), tool("fetch"), tool("summarize")])
}

/// One steady-state result for server `i` in round `round`: what the ingest writes for it.
fn add_result(w: &mut BatchWrites, i: usize, round: usize, now: i64, tools: &serde_json::Value) {
    let server_id = format!("bench-{i:06}");
    let at = now + round as i64 * 60_000;
    let mut result = fixtures::result(&format!("{server_id}-{round}"), &server_id, at, "local");
    result.duration_ms = 12.0 + (i % 7) as f64;
    result.schema_hash = Some("sha256:bench".into());
    w.results.push(result);
    let mut region = RegionState::new("local".into());
    region.status = RegionStatus::Up;
    region.consecutive_successes = round as u32 + 1;
    region.last_result_at = Some(at);
    region.last_verdict = Some(mcpwatch::probe::Verdict::Up);
    region.last_schema_hash = Some("sha256:bench".into());
    w.region_states.push((server_id.clone(), region));
    let mut state = ServerState::new(now);
    state.status = ServerStatus::Up;
    state.schema_hash = Some("sha256:bench".into());
    state.last_result_at = Some(at);
    w.server_states.push((server_id.clone(), state));
    w.snapshots.push(SnapshotRecord {
        server_id,
        hash: "sha256:bench".into(),
        interface_hash: "sha256:iface".into(),
        tools: tools.clone(),
        first_seen: at,
        last_seen: at,
    });
}

fn median(mut ms: Vec<f64>) -> f64 {
    ms.sort_by(f64::total_cmp);
    ms[ms.len() / 2]
}

async fn run(backend: &str, servers: usize, rounds: usize) {
    let dir = tempfile::tempdir().unwrap();
    let db = BenchDb::create(backend, dir.path()).await;
    let store = mcpwatch::store::open(&db.url, 4).await.unwrap();
    store.migrate().await.unwrap();
    let now = 1_800_000_000_000;
    for i in 0..servers {
        store.insert_server(&server(i, now)).await.unwrap();
    }
    let tools = tools();
    let (mut first, mut steady) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        for chunk in (0..servers).collect::<Vec<_>>().chunks(BATCH) {
            let mut w = BatchWrites::default();
            for &i in chunk {
                add_result(&mut w, i, round, now, &tools);
            }
            let t = Instant::now();
            store.commit_batch(&w).await.unwrap();
            let ms = t.elapsed().as_secs_f64() * 1000.0;
            if round == 0 {
                first.push(ms)
            } else {
                steady.push(ms)
            }
        }
    }
    let (f, s) = (median(first), median(steady));
    println!(
        "| {backend} | {servers} | {f:.1} | {s:.1} | {:.0} |",
        BATCH as f64 / (s / 1000.0)
    );
    store.close().await;
    db.drop_pg().await;
}

fn main() {
    let servers: usize = env_or("BENCH_SERVERS", "5000")
        .parse()
        .expect("BENCH_SERVERS");
    let rounds: usize = env_or("BENCH_ROUNDS", "20").parse().expect("BENCH_ROUNDS");
    let backends = env_or("BENCH_BACKENDS", "sqlite,postgres");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "| backend | servers | first batch ms (median) | steady batch ms (median) | results/s |"
    );
    println!("|---|---|---|---|---|");
    for backend in backends.split(',') {
        rt.block_on(run(backend.trim(), servers, rounds.max(2)));
    }
}
