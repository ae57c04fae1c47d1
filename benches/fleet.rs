//! The fleet benchmark: can one node keep `N` MCP servers at an interval, and what does a
//! probe cost against a lean client doing the same requests?
//!
//! `cargo bench --bench fleet` starts fast MCP targets on loopback in this process (2025-11-25
//! Streamable HTTP with sessions: `initialize`, `notifications/initialized`, `tools/list`,
//! `DELETE`, answered from memory), runs the real `mcpwatch serve` binary on a fresh database,
//! registers the fleet with one `POST /servers:batch`, lets it settle for two intervals, and
//! measures a steady window from the daemon's `/metrics` and `/proc`:
//!
//! - probes/s against the needed rate (servers / interval);
//! - scheduling lag p50 / p99 (from the lag histogram: the bucket that holds the quantile);
//! - daemon CPU per probe, and Postgres' CPU (all its processes) in the window;
//! - RSS per server.
//!
//! Then, with the daemon stopped, the same binary runs as a lean client in its own process
//! (`BENCH_ROLE=lean`: hyper, one fresh connection per probe, the same four requests at the
//! same rate) for the same window, and its CPU per probe gives the ratio.
//!
//! Knobs: `BENCH_BACKENDS` (`sqlite,postgres`), `BENCH_SERVERS` (5000), `BENCH_INTERVAL` (10),
//! `BENCH_WINDOW` (60 seconds), `TEST_DATABASE_URL` (the Postgres server, as in the tests),
//! `BENCH_DAEMON_WRAPPER` (a profiler to run the daemon under, e.g. `heaptrack -o FILE`).

mod common;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use common::{BenchDb, env_or};
use mcpwatch::config::DatabaseUrl;
use serde_json::{Value, json};

const ADMIN: &str = "fleet-bench-admin-token-0123456789";

fn tools() -> Value {
    let tool = |name: &str| {
        json!({"name": name, "description": format!("{name}: one thing, done well"),
            "inputSchema": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}})
    };
    json!([tool("search"), tool("fetch"), tool("summarize")])
}

/// One MCP target for every server: the path tells servers apart, the answers are the same.
async fn target(method: Method, headers: HeaderMap, body: Bytes) -> Response {
    if method == Method::DELETE {
        return StatusCode::OK.into_response();
    }
    let Ok(msg) = serde_json::from_slice::<Value>(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let id = msg["id"].clone();
    let json_reply =
        |v: Value| ([(header::CONTENT_TYPE, "application/json")], v.to_string()).into_response();
    match msg["method"].as_str().unwrap_or("") {
        "initialize" => {
            let mut r = json_reply(json!({"jsonrpc": "2.0", "id": id, "result": {
                "protocolVersion": "2025-11-25", "capabilities": {"tools": {}},
                "serverInfo": {"name": "fleet-target", "version": "1.0.0"}}}));
            r.headers_mut()
                .insert("mcp-session-id", "s-1".parse().unwrap());
            r
        }
        "notifications/initialized" => StatusCode::ACCEPTED.into_response(),
        "tools/list" if headers.contains_key("mcp-session-id") => {
            json_reply(json!({"jsonrpc": "2.0", "id": id, "result": {"tools": tools()}}))
        }
        _ => (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "application/json")],
            json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": "Method not found"}}).to_string(),
        )
            .into_response(),
    }
}

async fn start_targets() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(target);
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (format!("http://{addr}"), task)
}

/// CPU seconds (user + system) of a process, from `/proc/<pid>/stat`.
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap_or(0.0) + f[12].parse::<f64>().unwrap_or(0.0);
    ticks / 100.0
}

fn rss_bytes(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Idle CPU seconds of the whole machine (every core), from `/proc/stat`.
fn machine_idle_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let cpu = stat.lines().next().unwrap_or("");
    let idle: f64 = cpu
        .split_whitespace()
        .nth(4)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    idle / 100.0
}

/// CPU seconds of every `postgres` process on the machine.
fn postgres_cpu() -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "postgres")
        })
        .map(cpu_seconds)
        .sum()
}

/// The daemon's `/metrics` values we read: probes done and the lag histogram's buckets.
struct Scrape {
    probes: f64,
    lag_buckets: BTreeMap<String, f64>,
    /// Results waiting for the ingest, and probes running, at the scrape.
    queue: f64,
    in_flight: f64,
}

async fn scrape(client: &reqwest::Client, base: &str) -> Scrape {
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let (mut probes, mut queue, mut in_flight) = (0.0, 0.0, 0.0);
    let mut lag_buckets = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let value: f64 = value.parse().unwrap_or(0.0);
        if series.starts_with("mcpwatch_probes_total{") {
            probes += value;
        } else if series == "mcpwatch_ingest_queue_depth" {
            queue = value;
        } else if series.starts_with("mcpwatch_probes_in_flight{") {
            in_flight += value;
        } else if series.starts_with("mcpwatch_scheduler_lag_seconds_bucket{")
            && let Some(le) = series
                .split("le=\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
        {
            *lag_buckets.entry(le.to_string()).or_default() += value;
        }
    }
    Scrape {
        probes,
        lag_buckets,
        queue,
        in_flight,
    }
}

/// The upper bound of the lag bucket holding quantile `q` of the window's observations.
fn lag_quantile(before: &Scrape, after: &Scrape, q: f64) -> String {
    let mut buckets: Vec<(f64, String, f64)> = after
        .lag_buckets
        .iter()
        .map(|(le, n)| {
            let bound = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap_or(f64::INFINITY)
            };
            let delta = n - before.lag_buckets.get(le).copied().unwrap_or(0.0);
            (bound, le.clone(), delta)
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = buckets.last().map_or(0.0, |b| b.2);
    buckets
        .iter()
        .find(|b| b.2 >= q * total)
        .map_or("?".into(), |b| format!("≤ {} s", b.1))
}

fn start_daemon(url: &DatabaseUrl, dir: &std::path::Path) -> (Child, String) {
    // `BENCH_DAEMON_WRAPPER="heaptrack -o /tmp/fleet"` runs the daemon under a profiler (the
    // figures are then the wrapper's, not the daemon's).
    let wrapper = std::env::var("BENCH_DAEMON_WRAPPER").unwrap_or_default();
    let mut words = wrapper.split_whitespace();
    let mut cmd = match words.next() {
        Some(tool) => {
            let mut c = Command::new(tool);
            c.args(words).arg(env!("CARGO_BIN_EXE_mcpwatch"));
            c
        }
        None => Command::new(env!("CARGO_BIN_EXE_mcpwatch")),
    };
    // Its own process group, so that stopping it also stops a daemon under a wrapper (which
    // would otherwise keep probing in the background and skew the next run).
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    cmd.arg("serve")
        .env("MCPWATCH_LISTEN", "127.0.0.1:0")
        .env("MCPWATCH_DATA_DIR", dir)
        .env("MCPWATCH_ADMIN_TOKEN", ADMIN)
        .env("MCPWATCH_ALLOW_PRIVATE_CIDRS", "127.0.0.0/8")
        .env(
            "MCPWATCH_MAX_CONCURRENT_PROBES",
            env_or("BENCH_CONCURRENCY", "512"),
        )
        .env("MCPWATCH_LOG_FORMAT", "json")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    match url {
        DatabaseUrl::Postgres(u) => cmd.env("DATABASE_URL", u),
        DatabaseUrl::Sqlite(_) => cmd.env_remove("DATABASE_URL"),
    };
    let mut child = cmd.spawn().expect("the mcpwatch binary");
    let stderr = child.stderr.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
    let addr = lines
        .find_map(|l| {
            l.ok()?
                .split("serving on ")
                .nth(1)
                .map(|a| a.trim().to_string())
        })
        .expect("the daemon says where it serves");
    // Keep draining stderr so the daemon never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    let base = match addr.starts_with("http") {
        true => addr,
        false => format!("http://{addr}"),
    };
    (child, base)
}

async fn register(client: &reqwest::Client, base: &str, targets: &str, n: usize, interval: u64) {
    for chunk in (0..n).collect::<Vec<_>>().chunks(10_000) {
        let servers: Vec<Value> = chunk
            .iter()
            .map(|i| json!({"name": format!("fleet {i}"), "url": format!("{targets}/mcp/{i}"), "interval_seconds": interval, "timeout_seconds": 5}))
            .collect();
        let r = client
            .post(format!("{base}/api/v1/servers:batch"))
            .bearer_auth(ADMIN)
            .header("content-type", "application/json")
            .body(json!({"servers": servers}).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    }
}

/// The lean client's figures, as it prints them: probes done and CPU seconds.
fn run_lean(targets: &str, rate: f64, window: u64) -> (f64, f64) {
    let out = Command::new(std::env::current_exe().unwrap())
        .env("BENCH_ROLE", "lean")
        .env("BENCH_TARGETS", targets)
        .env("BENCH_RATE", rate.to_string())
        .env("BENCH_WINDOW", window.to_string())
        .output()
        .expect("the lean client");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("lean "))
        .unwrap_or_else(|| panic!("lean client said: {text}"));
    let mut it = line.split_whitespace().map(|v| v.parse::<f64>().unwrap());
    (it.next().unwrap(), it.next().unwrap())
}

/// One probe as a lean client makes it: one connection, the four requests of a session.
async fn lean_probe(addr: &str, path: &str) -> bool {
    use http_body_util::{BodyExt, Full};
    let Ok(stream) = tokio::net::TcpStream::connect(addr).await else {
        return false;
    };
    let io = hyper_util::rt::TokioIo::new(stream);
    let Ok((mut send, conn)) = hyper::client::conn::http1::handshake(io).await else {
        return false;
    };
    tokio::spawn(conn);
    let mut session = None;
    let bodies = [
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "lean", "version": "1"}}}),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
    ];
    for (i, body) in bodies.iter().enumerate() {
        let mut req = hyper::Request::post(path)
            .header("host", addr)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream");
        if let Some(s) = &session {
            req = req.header("mcp-session-id", s);
        }
        let req = req.body(Full::new(Bytes::from(body.to_string()))).unwrap();
        let Ok(resp) = send.send_request(req).await else {
            return false;
        };
        if i == 0 {
            session = resp
                .headers()
                .get("mcp-session-id")
                .map(|v| v.to_str().unwrap_or("").to_string());
        }
        let Ok(bytes) = resp.into_body().collect().await else {
            return false;
        };
        if i == 2 {
            let v: Value = serde_json::from_slice(&bytes.to_bytes()).unwrap_or(Value::Null);
            if v["result"]["tools"].as_array().is_none() {
                return false;
            }
        }
    }
    let mut req = hyper::Request::delete(path).header("host", addr);
    if let Some(s) = &session {
        req = req.header("mcp-session-id", s);
    }
    let req = req.body(Full::new(Bytes::new())).unwrap();
    send.send_request(req).await.is_ok()
}

/// `BENCH_ROLE=lean`: probe at `BENCH_RATE` per second for `BENCH_WINDOW` seconds, then print
/// `lean <probes> <cpu seconds>`.
async fn lean_main() {
    let targets = env_or("BENCH_TARGETS", "");
    let addr = targets.trim_start_matches("http://").to_string();
    let rate: f64 = env_or("BENCH_RATE", "100").parse().unwrap();
    let window: u64 = env_or("BENCH_WINDOW", "60").parse().unwrap();
    let done = Arc::new(AtomicU64::new(0));
    let cpu_before = cpu_seconds(std::process::id());
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    let mut i = 0u64;
    let limit = Arc::new(tokio::sync::Semaphore::new(512));
    while start.elapsed() < Duration::from_secs(window) {
        tick.tick().await;
        let permit = limit.clone().acquire_owned().await.unwrap();
        let (addr, done) = (addr.clone(), done.clone());
        i += 1;
        let path = format!("/mcp/{i}");
        tokio::spawn(async move {
            let _permit = permit;
            if lean_probe(&addr, &path).await {
                done.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    let _ = limit.acquire_many(512).await;
    let cpu = cpu_seconds(std::process::id()) - cpu_before;
    println!("lean {} {cpu}", done.load(Ordering::Relaxed));
}

async fn run(backend: &str, servers: usize, interval: u64, window: u64) {
    let dir = tempfile::tempdir().unwrap();
    let db = BenchDb::create(backend, dir.path()).await;
    let (targets, _task) = start_targets().await;
    let (mut daemon, base) = start_daemon(&db.url, dir.path());
    let pid = daemon.id();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    // The daemon's fixed memory (runtimes, pools, templates), before it holds any server.
    let _ = scrape(&client, &base).await;
    let idle_rss = rss_bytes(pid);
    let t = Instant::now();
    register(&client, &base, &targets, servers, interval).await;
    eprintln!(
        "{backend}: {servers} servers registered in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(2 * interval)).await;
    let (before, cpu0, pg0) = (
        scrape(&client, &base).await,
        cpu_seconds(pid),
        postgres_cpu(),
    );
    let (own0, idle0) = (cpu_seconds(std::process::id()), machine_idle_seconds());
    let t = Instant::now();
    tokio::time::sleep(Duration::from_secs(window)).await;
    let (after, cpu1, pg1) = (
        scrape(&client, &base).await,
        cpu_seconds(pid),
        postgres_cpu(),
    );
    let secs = t.elapsed().as_secs_f64();
    let (own1, idle1) = (cpu_seconds(std::process::id()), machine_idle_seconds());
    // What else the window shows, to tell where a shortfall comes from.
    eprintln!(
        "{backend}: at the end: ingest queue {:.0}, probes in flight {:.0}; targets (this process) {:.0} % of a core, machine idle {:.0} % of a core",
        after.queue,
        after.in_flight,
        (own1 - own0) * 100.0 / secs,
        (idle1 - idle0) * 100.0 / secs,
    );
    let rss = rss_bytes(pid);
    eprintln!(
        "{backend}: RSS {:.0} MiB with no server, {:.0} MiB at the end: {:.2} KiB a server above the fixed memory",
        idle_rss as f64 / 1048576.0,
        rss as f64 / 1048576.0,
        rss.saturating_sub(idle_rss) as f64 / 1024.0 / servers as f64,
    );
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pid}")])
        .status();
    let _ = daemon.kill();
    let _ = daemon.wait();
    let probes = after.probes - before.probes;
    let rate = probes / secs;
    let needed = servers as f64 / interval as f64;
    let cpu_ms = (cpu1 - cpu0) * 1000.0 / probes.max(1.0);
    let (lean_probes, lean_cpu) = run_lean(&targets, needed, window);
    let lean_ms = lean_cpu * 1000.0 / lean_probes.max(1.0);
    let pg = if backend == "postgres" {
        format!("{:.0} %", (pg1 - pg0) * 100.0 / secs)
    } else {
        "–".into()
    };
    println!(
        "| {backend} | {servers} at {interval} s | {rate:.0} / {needed:.0} ({:.1} %) | {} / {} | {cpu_ms:.3} | {lean_ms:.3} | {:.1}× | {:.1} | {pg} |",
        rate * 100.0 / needed,
        lag_quantile(&before, &after, 0.5),
        lag_quantile(&before, &after, 0.99),
        cpu_ms / lean_ms.max(1e-9),
        rss as f64 / 1024.0 / servers as f64,
    );
    db.drop_pg().await;
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    if env_or("BENCH_ROLE", "") == "lean" {
        rt.block_on(lean_main());
        return;
    }
    let servers: usize = env_or("BENCH_SERVERS", "5000")
        .parse()
        .expect("BENCH_SERVERS");
    let interval: u64 = env_or("BENCH_INTERVAL", "10")
        .parse()
        .expect("BENCH_INTERVAL");
    let window: u64 = env_or("BENCH_WINDOW", "60").parse().expect("BENCH_WINDOW");
    println!(
        "| backend | fleet | probes/s done / needed | lag p50 / p99 | daemon CPU ms/probe | lean client CPU ms/probe | ratio | RSS KiB/server | Postgres CPU |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for backend in env_or("BENCH_BACKENDS", "sqlite,postgres").split(',') {
        rt.block_on(run(backend.trim(), servers, interval, window));
    }
}
