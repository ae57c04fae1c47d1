//! `mcpwatch demo-server`: a small MCP server to try mcpwatch on (the README's walkthrough
//! registers it). Streamable HTTP at `/mcp`, answering both eras a modern SDK answers:
//! 2026-07-28 requests (per-request `_meta`, `server/discover`) and the 2025-11-25
//! `initialize` handshake (stateless: no session). Three tools: `echo`, `add`, `now`.
//!
//! Hand-written rather than built on an SDK: the official Rust SDK would add a second HTTP
//! stack for forty lines of JSON-RPC, and this server must stay exactly as small and
//! predictable as a walkthrough needs.

use std::net::SocketAddr;

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use serde_json::{Value, json};

use crate::mcp_wire as wire;

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

/// One JSON-RPC message.
async fn mcp(headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let req = match wire::begin(&headers, &body, &server_info()) {
        Ok(req) => req,
        Err(answered) => return *answered,
    };
    match req.method.as_str() {
        "tools/list" => wire::reply(&req, json!({"tools": tools()})),
        "tools/call" => match call(&req.params) {
            Some(result) => wire::reply(&req, result),
            None => wire::error(StatusCode::OK, &req.id, -32602, "Unknown tool", None),
        },
        _ => wire::method_not_found(&req),
    }
}

fn server_info() -> Value {
    json!({"name": "mcpwatch-demo", "version": env!("CARGO_PKG_VERSION")})
}

/// `tools/call` of one of the three tools.
fn call(params: &Value) -> Option<Value> {
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
        _ => return None,
    };
    Some(result)
}

fn tool_error(message: &str) -> Value {
    json!({"content": [{"type": "text", "text": message}], "isError": true})
}
