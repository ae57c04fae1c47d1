//! `mcpwatch demo-server`: a small MCP server to try mcpwatch on (the README's walkthrough
//! registers it). Streamable HTTP at `/mcp`, answering both eras a modern SDK answers:
//! 2026-07-28 requests (per-request `_meta`, `server/discover`) and the 2025-11-25
//! `initialize` handshake (stateless: no session). Three tools: `echo`, `add`, `now`.
//!
//! Hand-written rather than built on an SDK: the official Rust SDK would add a second HTTP
//! stack for forty lines of JSON-RPC, and this server must stay exactly as small and
//! predictable as a walkthrough needs.

use std::net::SocketAddr;

use axum::Json;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

/// The protocol versions it speaks: the modern one, and the handshake era.
const MODERN: &str = "2026-07-28";
const LEGACY: &str = "2025-11-25";

/// The `_meta` key carrying a modern request's protocol version.
const VERSION_META: &str = "io.modelcontextprotocol/protocolVersion";

/// The demo's routes: `POST /mcp`.
pub fn router() -> axum::Router {
    axum::Router::new().route("/mcp", post(mcp))
}

/// Serve on `listen` until `shutdown` resolves; the bound address is passed to `ready`.
pub async fn run(
    listen: SocketAddr,
    ready: impl FnOnce(SocketAddr),
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    ready(listener.local_addr()?);
    axum::serve(listener, router())
        .with_graceful_shutdown(shutdown)
        .await
}

fn tools() -> Value {
    json!([
        {"name": "echo", "title": "Echo", "description": "Returns the text it is given.",
         "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
         "annotations": {"readOnlyHint": true}},
        {"name": "add", "title": "Add", "description": "Adds two numbers.",
         "inputSchema": {"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}}, "required": ["a", "b"]},
         "outputSchema": {"type": "object", "properties": {"sum": {"type": "number"}}, "required": ["sum"]},
         "annotations": {"readOnlyHint": true}},
        {"name": "now", "title": "Now", "description": "The server's time (RFC 3339, UTC).",
         "inputSchema": {"type": "object", "properties": {}},
         "annotations": {"readOnlyHint": true}}
    ])
}

fn reply(id: &Value, result: Value) -> Response {
    Json(json!({"jsonrpc": "2.0", "id": id, "result": result})).into_response()
}

fn error(
    status: StatusCode,
    id: &Value,
    code: i64,
    message: &str,
    data: Option<Value>,
) -> Response {
    let mut err = json!({"code": code, "message": message});
    if let Some(d) = data {
        err["data"] = d;
    }
    (
        status,
        Json(json!({"jsonrpc": "2.0", "id": id, "error": err})),
    )
        .into_response()
}

/// One JSON-RPC message.
async fn mcp(headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let Ok(msg) = serde_json::from_slice::<Value>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            &Value::Null,
            -32700,
            "Parse error",
            None,
        );
    };
    let id = msg.get("id").cloned().unwrap_or(Value::Null);
    let method = msg.get("method").and_then(Value::as_str).unwrap_or("");
    let version = msg
        .get("params")
        .and_then(|p| p.get("_meta"))
        .and_then(|m| m.get(VERSION_META))
        .and_then(Value::as_str);
    match version {
        Some(v) => modern(&headers, &id, method, v, &msg),
        None => legacy(&id, method, &msg),
    }
}

/// A 2026-07-28 request: its headers must repeat its version and method.
fn modern(headers: &HeaderMap, id: &Value, method: &str, version: &str, msg: &Value) -> Response {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if version != MODERN {
        let data = json!({"supported": [MODERN, LEGACY], "requested": version});
        let msg = "Unsupported protocol version";
        return error(StatusCode::BAD_REQUEST, id, -32022, msg, Some(data));
    }
    if header("mcp-protocol-version") != Some(version) || header("mcp-method") != Some(method) {
        let msg = "Mcp-Protocol-Version and Mcp-Method must match the request";
        return error(StatusCode::BAD_REQUEST, id, -32020, msg, None);
    }
    match method {
        "server/discover" => reply(
            id,
            json!({
                "resultType": "complete",
                "supportedVersions": [MODERN],
                "capabilities": {"tools": {}},
                "_meta": {"io.modelcontextprotocol/serverInfo": server_info()},
                "ttlMs": 60000
            }),
        ),
        "tools/list" => reply(id, json!({"resultType": "complete", "tools": tools()})),
        "tools/call" => call(id, msg, true),
        "ping" => reply(id, json!({"resultType": "complete"})),
        _ => error(StatusCode::NOT_FOUND, id, -32601, "Method not found", None),
    }
}

/// The 2025-11-25 handshake era, without sessions.
fn legacy(id: &Value, method: &str, msg: &Value) -> Response {
    match method {
        "initialize" => reply(
            id,
            json!({
                "protocolVersion": LEGACY,
                "capabilities": {"tools": {"listChanged": false}},
                "serverInfo": server_info()
            }),
        ),
        "notifications/initialized" => StatusCode::ACCEPTED.into_response(),
        "tools/list" => reply(id, json!({"tools": tools()})),
        "tools/call" => call(id, msg, false),
        "ping" => reply(id, json!({})),
        _ => error(StatusCode::OK, id, -32601, "Method not found", None),
    }
}

fn server_info() -> Value {
    json!({"name": "mcpwatch-demo", "version": env!("CARGO_PKG_VERSION")})
}

/// `tools/call` of one of the three tools.
fn call(id: &Value, msg: &Value, modern: bool) -> Response {
    let params = msg.get("params").cloned().unwrap_or(Value::Null);
    let args = params.get("arguments").cloned().unwrap_or(json!({}));
    let result = match params.get("name").and_then(Value::as_str) {
        Some("echo") => match args.get("text").and_then(Value::as_str) {
            Some(text) => json!({"content": [{"type": "text", "text": text}]}),
            None => tool_error("echo needs a string argument 'text'"),
        },
        Some("add") => match (
            args.get("a").and_then(Value::as_f64),
            args.get("b").and_then(Value::as_f64),
        ) {
            (Some(a), Some(b)) => json!({
                "content": [{"type": "text", "text": (a + b).to_string()}],
                "structuredContent": {"sum": a + b}
            }),
            _ => tool_error("add needs numbers 'a' and 'b'"),
        },
        Some("now") => {
            json!({"content": [{"type": "text", "text": crate::clock::rfc3339(crate::clock::now_ms())}]})
        }
        _ => return error(StatusCode::OK, id, -32602, "Unknown tool", None),
    };
    let mut result = result;
    if modern {
        result["resultType"] = json!("complete");
    }
    reply(id, result)
}

fn tool_error(message: &str) -> Value {
    json!({"content": [{"type": "text", "text": message}], "isError": true})
}
