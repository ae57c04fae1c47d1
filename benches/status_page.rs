//! The status page's render budget: 500 public servers with 90 days of history at a 60 s
//! cadence, `GET /` under 50 ms median, on SQLite and on Postgres.
//!
//! `cargo bench --bench status_page` seeds a fresh database per backend with what a daemon holds
//! after 90 days at the default retention: 30 days of raw results (one per server per minute),
//! 90 days of hourly and daily rollups, states, last results, incidents and schema snapshots.
//! Then it starts the real daemon on it (probing live: the seeded servers fail fast on the
//! address policy, so results keep flowing in while we measure) and times `GET /`,
//! `GET /status.json` and `GET /s/{slug}` over loopback HTTP.
//!
//! With `BENCH_PRIVATE_SERVERS` (0), that many private servers (state, no history) are added
//! beside the public ones and probed live too, and `GET /api/v1/status?limit=100` (a page of the
//! whole fleet, with counts) and `GET /metrics` are timed as well: the public pages must not
//! pay for a large private fleet.
//!
//! Knobs: `BENCH_BACKENDS` (`sqlite,postgres`), `BENCH_SERVERS` (500), `BENCH_RAW_DAYS` (30),
//! `BENCH_PRIVATE_SERVERS` (0), `BENCH_REQUESTS` (200), `TEST_DATABASE_URL` (the Postgres
//! server, as in the tests).

mod common;

use std::time::{Duration, Instant};

use common::{BenchDb, env_or};
use mcpwatch::app::App;
use mcpwatch::config::{DatabaseUrl, Settings};
use mcpwatch::store::ServerRecord;
use sqlx::Connection;

const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The seeding SQL; `?` placeholders, rewritten to `$n` for Postgres. Every row comes from a
/// recursive counter joined with the servers, so seeding runs inside the database.
fn seed_sql(postgres: bool) -> Vec<String> {
    let counter = |max: &str| {
        format!("WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < {max})")
    };
    let concat = |a: &str, b: &str| format!("{a} || '-' || {b}");
    let stmts = vec![
        // Raw results: one per server per minute over the raw retention; every 97th fails.
        format!(
            "{} INSERT INTO probe_results (id, server_id, region, started_at, duration_ms, connect_ms, handshake_ms, tools_list_ms, verdict, failure_kind, failure_phase, failure_message, era, protocol_version, server_name, server_version, tool_count, schema_hash) \
             SELECT {}, s.id, 'local', ?3 - CAST(g.n AS BIGINT) * 60000, 40 + (g.n % 17), 1, 12, 9, \
             CASE WHEN g.n % 97 = 0 THEN 'down' ELSE 'up' END, CASE WHEN g.n % 97 = 0 THEN 'timeout' END, \
             CASE WHEN g.n % 97 = 0 THEN 'tools_list' END, CASE WHEN g.n % 97 = 0 THEN 'deadline passed' END, \
             'stateless', '2026-07-28', 'bench', '1.0', 3, 'sha256:aa' FROM servers s, g",
            counter("?1 * 1440"),
            concat("s.id", "g.n")
        ),
        // Hourly rollups for 90 days, each last written when its hour ended (as in production,
        // where only the current hour's and day's rows keep changing).
        format!(
            "{} INSERT INTO rollup_hourly (server_id, region, hour_start, probes, successes, failures, latency_hist, latency_p50_ms, latency_p95_ms, latency_max_ms, updated_at) \
             SELECT s.id, 'local', ?2 - CAST(g.n AS BIGINT) * 3600000, 60, CASE WHEN g.n % 53 = 0 THEN 57 ELSE 60 END, \
             CASE WHEN g.n % 53 = 0 THEN '{{\"timeout\":3}}' ELSE '{{}}' END, '[[43,20],[44,25],[45,12]]', \
             40 + (g.n % 7), 80 + (g.n % 11), 210, \
             CASE WHEN ?2 - CAST(g.n AS BIGINT) * 3600000 + 3599999 > ?3 THEN ?3 ELSE ?2 - CAST(g.n AS BIGINT) * 3600000 + 3599999 END \
             FROM servers s, g",
            counter("2160")
        ),
        // Daily rollups for 90 days.
        format!(
            "{} INSERT INTO rollup_daily (server_id, day_start, probes, successes, failures, latency_hist, latency_p50_ms, latency_p95_ms, latency_max_ms, updated_at) \
             SELECT s.id, ?4 - CAST(g.n - 1 AS BIGINT) * 86400000, 1440, CASE WHEN g.n % 5 = 0 THEN 1431 ELSE 1440 END, '{{}}', '[[43,500],[44,600],[45,340]]', \
             42, 85, 240, \
             CASE WHEN ?4 - CAST(g.n - 1 AS BIGINT) * 86400000 + 86399999 > ?3 THEN ?3 ELSE ?4 - CAST(g.n - 1 AS BIGINT) * 86400000 + 86399999 END \
             FROM servers s, g",
            counter("90")
        ),
        "INSERT INTO region_state (server_id, region, state, consecutive_failures, consecutive_successes, last_result_at, last_verdict, last_schema_hash, last_duration_ms, last_tool_count) \
         SELECT id, 'local', 'up', 0, 5, ?3 - 60000, 'up', 'sha256:aa', 45, 3 FROM servers"
            .to_string(),
        "INSERT INTO server_state (server_id, state, since, schema_hash, server_version, protocol_version, last_result_at) \
         SELECT id, 'up', ?3 - 259200000, 'sha256:aa', '1.0', '2026-07-28', ?3 - 60000 FROM servers"
            .to_string(),
        "INSERT INTO incidents (id, server_id, kind, cause, opened_at, closed_at) \
         SELECT id || '-inc', id, 'down', 'tools/list timed out', ?3 - 1728000000, ?3 - 1726200000 FROM servers"
            .to_string(),
        "INSERT INTO schema_snapshots (server_id, hash, interface_hash, tools, first_seen, last_seen) \
         SELECT id, 'sha256:aa', 'sha256:ii', '[{\"name\":\"echo\",\"inputSchema\":{\"type\":\"object\"}}]', ?3 - 6912000000, ?3 FROM servers"
            .to_string(),
        "INSERT INTO schema_changes (server_id, at, from_hash, to_hash) \
         SELECT id, ?3 - 6912000000, NULL, 'sha256:aa' FROM servers"
            .to_string(),
    ];
    stmts
        .into_iter()
        .map(|s| {
            // Numbered placeholders: ?1 raw days, ?2 current hour, ?3 now, ?4 today.
            if postgres {
                s.replace("?1", "$1::bigint")
                    .replace("?2", "$2::bigint")
                    .replace("?3", "$3::bigint")
                    .replace("?4", "$4::bigint")
            } else {
                s
            }
        })
        .collect()
}

fn server(i: usize, now: i64) -> ServerRecord {
    ServerRecord {
        registry: None,
        paused_reason: None,
        oauth: None,
        oauth_enc: None,
        bearer_expires_at: None,
        calls: None,
        list_contract: true,
        managed_by: None,
        id: format!("bench-{i:04}"),
        slug: format!("server-{i:04}"),
        name: format!("MCP server {i:04}"),
        // Refused at once by the address policy: probes run but never leave the machine.
        url: "http://127.0.0.1:9/mcp".into(),
        url_enc: None,
        header_names: vec![],
        headers_enc: None,
        interval_seconds: 60,
        timeout_seconds: 10,
        tags: vec![["search", "files", "dev tools", "data"][i % 4].to_string()],
        public: true,
        paused: false,
        failures_to_down: 2,
        successes_to_up: 1,
        degraded_latency_ms: None,
        expect_auth: false,
        era_hint: None,
        created_at: now,
        updated_at: now,
        regions: vec![],
        quorum: None,
    }
}

async fn seed(url: &DatabaseUrl, servers: usize, raw_days: i64, now: i64) {
    let store = mcpwatch::store::open(url, 4).await.unwrap();
    store.migrate().await.unwrap();
    for i in 0..servers {
        store.insert_server(&server(i, now)).await.unwrap();
    }
    store.close().await;
    let hour = now / HOUR_MS * HOUR_MS;
    let today = now / DAY_MS * DAY_MS;
    let started = Instant::now();
    match url {
        DatabaseUrl::Postgres(u) => {
            let mut c = sqlx::PgConnection::connect(u).await.unwrap();
            for sql in seed_sql(true) {
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(raw_days)
                    .bind(hour)
                    .bind(now)
                    .bind(today)
                    .execute(&mut c)
                    .await
                    .unwrap();
            }
            sqlx::query("ANALYZE").execute(&mut c).await.unwrap();
        }
        DatabaseUrl::Sqlite(p) => {
            let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", p.display()))
                .await
                .unwrap();
            for sql in seed_sql(false) {
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(raw_days)
                    .bind(hour)
                    .bind(now)
                    .bind(today)
                    .execute(&mut c)
                    .await
                    .unwrap();
            }
            sqlx::query("ANALYZE").execute(&mut c).await.unwrap();
        }
    }
    eprintln!("  seeded in {:.0} s", started.elapsed().as_secs_f64());
}

/// Copies of a template server as `n` private servers, with an up state each; set-based,
/// over whatever columns `servers` has.
fn private_sql(columns: &[String], n: usize) -> Vec<String> {
    let exprs: Vec<String> = columns
        .iter()
        .map(|c| match c.as_str() {
            "id" => "'private-' || g.n".to_string(),
            "slug" => "'private-' || g.n".to_string(),
            "name" => "'Private server ' || g.n".to_string(),
            "public" => "FALSE".to_string(),
            other => format!("t.{other}"),
        })
        .collect();
    vec![
        format!(
            "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < {n}) \
             INSERT INTO servers ({}) SELECT {} FROM servers t, g WHERE t.id = 'bench-0000'",
            columns.join(", "),
            exprs.join(", ")
        ),
        "INSERT INTO server_state (server_id, state, since, schema_hash, server_version, protocol_version, last_result_at) \
         SELECT id, 'up', ?3 - 259200000, 'sha256:aa', '1.0', '2026-07-28', ?3 - 60000 FROM servers WHERE id LIKE 'private-%'"
            .to_string(),
        "INSERT INTO region_state (server_id, region, state, consecutive_failures, consecutive_successes, last_result_at, last_verdict, last_schema_hash, last_duration_ms, last_tool_count) \
         SELECT id, 'local', 'up', 0, 5, ?3 - 60000, 'up', 'sha256:aa', 45, 3 FROM servers WHERE id LIKE 'private-%'"
            .to_string(),
    ]
}

async fn seed_private(url: &DatabaseUrl, n: usize, now: i64) {
    if n == 0 {
        return;
    }
    let started = Instant::now();
    match url {
        DatabaseUrl::Postgres(u) => {
            let mut c = sqlx::PgConnection::connect(u).await.unwrap();
            let columns: Vec<String> = sqlx::query_scalar(
                "SELECT column_name::text FROM information_schema.columns \
                 WHERE table_name = 'servers' AND table_schema = 'public' ORDER BY ordinal_position",
            )
            .fetch_all(&mut c)
            .await
            .unwrap();
            for sql in private_sql(&columns, n) {
                let sql = sql.replace("?3", "$1::bigint");
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(now)
                    .execute(&mut c)
                    .await
                    .unwrap();
            }
            sqlx::query("ANALYZE").execute(&mut c).await.unwrap();
        }
        DatabaseUrl::Sqlite(p) => {
            let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", p.display()))
                .await
                .unwrap();
            let columns: Vec<String> =
                sqlx::query_scalar("SELECT name FROM pragma_table_info('servers')")
                    .fetch_all(&mut c)
                    .await
                    .unwrap();
            for sql in private_sql(&columns, n) {
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(now)
                    .bind(now)
                    .bind(now)
                    .execute(&mut c)
                    .await
                    .unwrap();
            }
            sqlx::query("ANALYZE").execute(&mut c).await.unwrap();
        }
    }
    eprintln!(
        "  {n} private servers added in {:.0} s",
        started.elapsed().as_secs_f64()
    );
}

fn stats(mut ms: Vec<f64>) -> (f64, f64, f64) {
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() as f64 - 1.0) * q).round() as usize];
    (at(0.5), at(0.95), ms[ms.len() - 1])
}

const ADMIN: &str = "status-bench-admin-token-0123456789";

async fn measure(base: &str, path: &str, n: usize) -> (f64, f64, f64, usize) {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut times = Vec::with_capacity(n);
    let mut bytes = 0;
    for i in 0..n + 5 {
        let t = Instant::now();
        let resp = client
            .get(format!("{base}{path}"))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
        let body = resp.bytes().await.unwrap();
        if i >= 5 {
            // The first five warm caches and connections.
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        bytes = body.len();
    }
    let (p50, p95, max) = stats(times);
    (p50, p95, max, bytes)
}

async fn run(backend: &str, servers: usize, private: usize, raw_days: i64, requests: usize) {
    let data = tempfile::tempdir().unwrap();
    let db = BenchDb::create(backend, data.path()).await;
    let url = db.url.clone();
    eprintln!("{backend}: seeding {servers} servers, {raw_days} days raw, 90 days of rollups");
    let now = now_ms();
    seed(&url, servers, raw_days, now).await;
    seed_private(&url, private, now).await;

    let mut settings = Settings::for_tests(data.path());
    settings.database = url.clone();
    // The default policy: the seeded loopback URLs are refused before any connection.
    settings.policy = mcpwatch::probe::AddressPolicy::default();
    settings.admin_token = Some(ADMIN.to_string());
    // Room for every probe's result while the private fleet is probed for the first time.
    settings.ingest_buffer = settings.ingest_buffer.max(private + servers);
    let app = App::build(settings).await.unwrap();
    let base = format!("http://{}", app.local_addr());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(app.run(async move {
        let _ = rx.await;
    }));
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!("| backend | route | median ms | p95 ms | max ms | body KiB |");
    let one = format!("/s/server-{:04}", servers / 2);
    let mut paths = vec!["/", "/status.json", one.as_str()];
    if private > 0 {
        paths.extend(["/api/v1/status?limit=100", "/metrics"]);
    }
    for path in paths {
        let (p50, p95, max, bytes) = measure(&base, path, requests).await;
        println!(
            "| {backend} | `GET {path}` | {p50:.1} | {p95:.1} | {max:.1} | {} |",
            bytes / 1024
        );
    }
    let _ = tx.send(());
    let _ = task.await;
    db.drop_pg().await;
}

fn main() {
    let servers: usize = env_or("BENCH_SERVERS", "500")
        .parse()
        .expect("BENCH_SERVERS");
    let private: usize = env_or("BENCH_PRIVATE_SERVERS", "0")
        .parse()
        .expect("BENCH_PRIVATE_SERVERS");
    let raw_days: i64 = env_or("BENCH_RAW_DAYS", "30")
        .parse()
        .expect("BENCH_RAW_DAYS");
    let requests: usize = env_or("BENCH_REQUESTS", "200")
        .parse()
        .expect("BENCH_REQUESTS");
    let backends = env_or("BENCH_BACKENDS", "sqlite,postgres");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    for backend in backends.split(',') {
        rt.block_on(run(backend.trim(), servers, private, raw_days, requests));
    }
}
