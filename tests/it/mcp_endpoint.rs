//! mcpwatch speaks MCP (`POST /mcp`), with the real binary: our own probe reports it up in
//! both eras; every tool answers structured content that matches its declared output schema;
//! a read key cannot use the write tools; and the official Python SDK's client asks it
//! whether a server is healthy and gets the truth.

use crate::support;

use std::io::{BufRead, BufReader};
use std::time::Duration;

use mcpwatch::probe::{Era, EraChoice, Verdict};
use serde_json::{Value, json};
use support::proc::{Proc, command};

struct Daemon {
    _proc: Proc,
    _demo: Proc,
    _dir: tempfile::TempDir,
    base: String,
    token: String,
    demo_url: String,
}

/// `serve --local` in a fresh folder, with the demo server registered as `demo`.
async fn daemon_with_demo() -> Daemon {
    let (demo, demo_url) = support::proc::start(
        command(&["demo-server", "--listen", "127.0.0.1:0"], &[]),
        Some("mcpwatch: demo MCP server on "),
        std::env::temp_dir().join(format!("mcpwatch-demo-{}.log", uuid::Uuid::new_v4())),
    );
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = command(&["serve", "--local", "--listen", "127.0.0.1:0"], &[]);
    cmd.current_dir(dir.path()).env_remove("DATABASE_URL");
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let base = loop {
        let line = lines.next().expect("serve's output").unwrap();
        if let Some(rest) = line.strip_prefix("mcpwatch: serving on ") {
            break rest.trim().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let token = std::fs::read_to_string(dir.path().join("data/admin-token"))
        .unwrap()
        .trim()
        .to_string();
    let d = Daemon {
        _proc: Proc(child),
        _demo: demo,
        _dir: dir,
        base,
        token,
        demo_url: demo_url.trim().to_string(),
    };
    let made = rpc(
        &d,
        &d.token,
        "register_server",
        json!({"name": "demo", "url": d.demo_url}),
    )
    .await;
    assert!(made["isError"].is_null(), "{made}");
    d
}

/// A `tools/call` (2025-11-25 style), its result.
async fn rpc(d: &Daemon, token: &str, tool: &str, args: Value) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "arguments": args}});
    let resp = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .post(format!("{}/mcp", d.base))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let v: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    v["result"].clone()
}

async fn tools(d: &Daemon) -> Vec<Value> {
    let resp = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .post(format!("{}/mcp", d.base))
        .bearer_auth(&d.token)
        .header("content-type", "application/json")
        .body(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).to_string())
        .send()
        .await
        .unwrap();
    let v: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    v["result"]["tools"].as_array().unwrap().clone()
}

fn assert_matches(schema: &Value, content: &Value, tool: &str) {
    let validator = jsonschema::validator_for(schema)
        .unwrap_or_else(|e| panic!("{tool}: its output schema is invalid: {e}"));
    let errors: Vec<String> = validator
        .iter_errors(content)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{tool}: {errors:?}\n{content}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcpwatch_answers_over_mcp_with_exact_schemas_and_key_scopes() {
    let d = daemon_with_demo().await;
    let auth = ("Authorization".to_string(), format!("Bearer {}", d.token));
    let url = format!("{}/mcp", d.base);
    let modern = support::probe_with(&url, |t| t.headers = vec![auth.clone()]).await;
    assert_eq!(modern.verdict, Verdict::Up, "{modern:?}");
    assert_eq!(modern.era, Some(Era::Stateless));
    assert_eq!(modern.tools_count, 7);
    let legacy = support::probe_with(&url, |t| {
        t.headers = vec![auth.clone()];
        t.era = EraChoice::Force(Era::StreamableHttp);
    })
    .await;
    assert_eq!(legacy.verdict, Verdict::Up, "{legacy:?}");
    let anonymous = support::probe(&url).await;
    assert_eq!(anonymous.verdict, Verdict::AuthRequired, "{anonymous:?}");

    // Every tool, its answer checked against its declared output schema.
    let declared = tools(&d).await;
    let schema =
        |name: &str| declared.iter().find(|t| t["name"] == name).unwrap()["outputSchema"].clone();
    let healthy = rpc(
        &d,
        &d.token,
        "assert_server_healthy",
        json!({"server": "demo", "wait_seconds": 10}),
    )
    .await;
    assert_eq!(healthy["structuredContent"]["healthy"], true, "{healthy}");
    let calls = [
        ("list_servers", json!({})),
        ("list_servers", json!({"state": "up"})),
        ("get_server_status", json!({"server": "demo"})),
        ("assert_server_healthy", json!({"server": "demo"})),
        ("get_schema_diff", json!({"server": "demo"})),
        ("list_incidents", json!({"server": "demo", "limit": 5})),
        ("list_incidents", json!({})),
    ];
    for (tool, args) in calls {
        let r = rpc(&d, &d.token, tool, args).await;
        assert!(r["isError"].is_null(), "{tool}: {r}");
        assert_matches(&schema(tool), &r["structuredContent"], tool);
    }
    let listed = rpc(&d, &d.token, "list_servers", json!({})).await;
    assert_eq!(listed["structuredContent"]["servers"][0]["slug"], "demo");

    // A read key asks but does not change anything; a write key pauses.
    let (status, key) = {
        let resp = reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .post(format!("{}/api/v1/keys", d.base))
            .bearer_auth(&d.token)
            .header("content-type", "application/json")
            .body(json!({"name": "reader", "scopes": ["read"]}).to_string())
            .send()
            .await
            .unwrap();
        (
            resp.status().as_u16(),
            serde_json::from_str::<Value>(&resp.text().await.unwrap()).unwrap(),
        )
    };
    assert_eq!(status, 201, "{key}");
    let reader = key["token"].as_str().unwrap();
    let refused = rpc(&d, reader, "pause_server", json!({"server": "demo"})).await;
    assert_eq!(refused["isError"], true, "{refused}");
    assert!(
        refused.to_string().contains("needs a write key"),
        "{refused}"
    );
    let read = rpc(&d, reader, "get_server_status", json!({"server": "demo"})).await;
    assert!(read["isError"].is_null(), "{read}");
    let paused = rpc(&d, &d.token, "pause_server", json!({"server": "demo"})).await;
    assert_eq!(paused["structuredContent"]["state"], "paused", "{paused}");
    assert_matches(
        &schema("pause_server"),
        &paused["structuredContent"],
        "pause_server",
    );
    let gone = rpc(&d, &d.token, "get_server_status", json!({"server": "nope"})).await;
    assert_eq!(gone["isError"], true);
    assert!(
        gone.to_string()
            .contains("no server with id or slug 'nope'"),
        "{gone}"
    );
    let unhealthy = rpc(
        &d,
        &d.token,
        "assert_server_healthy",
        json!({"server": "demo"}),
    )
    .await;
    assert_eq!(
        unhealthy["structuredContent"]["healthy"], false,
        "{unhealthy}"
    );
    assert_eq!(unhealthy["structuredContent"]["reason"], "paused");
}

/// A virtualenv with the official Python SDK (the version the interop corpus pins), made
/// once under `target/`.
fn python_sdk() -> std::path::PathBuf {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let venv = root.join("target/sdk-client-venv");
    let python = venv.join("bin/python");
    let ready = venv.join(".mcp-1.30.0");
    if !ready.exists() {
        let made = std::process::Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .expect("python3 -m venv (the SDK client test needs Python 3.10+)");
        assert!(made.success(), "python3 -m venv failed");
        let pip = std::process::Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check", "-c"])
            .arg(root.join("tests/interop/python/constraints-py1.txt"))
            .arg("mcp==1.30.0")
            .status()
            .expect("pip");
        assert!(
            pip.success(),
            "pip install mcp==1.30.0 failed (PyPI reachable?)"
        );
        std::fs::write(&ready, "").unwrap();
    }
    python
}

const SDK_CLIENT: &str = r#"
import asyncio, json, sys
from mcp import ClientSession
from mcp.client.streamable_http import streamablehttp_client

async def main(url, token):
    headers = {"Authorization": "Bearer " + token}
    async with streamablehttp_client(url, headers=headers) as (read, write, _):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            tools = await session.list_tools()
            result = await session.call_tool(
                "assert_server_healthy", {"server": "demo", "wait_seconds": 10})
            print(json.dumps({
                "server": init.serverInfo.name,
                "tools": sorted(t.name for t in tools.tools),
                "is_error": result.isError,
                "answer": result.structuredContent,
            }))

asyncio.run(main(sys.argv[1], sys.argv[2]))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_python_sdk_asks_mcpwatch_whether_a_server_is_healthy() {
    let python = python_sdk();
    let d = daemon_with_demo().await;
    let out = tokio::task::spawn_blocking({
        let (url, token) = (format!("{}/mcp", d.base), d.token.clone());
        move || {
            std::process::Command::new(python)
                .args(["-c", SDK_CLIENT, &url, &token])
                .output()
                .unwrap()
        }
    });
    let out = tokio::time::timeout(Duration::from_secs(60), out)
        .await
        .expect("the SDK client finished")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(said["server"], "mcpwatch");
    assert_eq!(said["tools"].as_array().unwrap().len(), 7, "{said}");
    assert_eq!(said["is_error"], false, "{said}");
    assert_eq!(said["answer"]["healthy"], true, "{said}");
    assert_eq!(said["answer"]["state"], "up", "{said}");
}
