//! The server side of MCP over Streamable HTTP, for a server that offers tools only: one
//! JSON-RPC message per POST, answered as JSON, in both eras a modern SDK answers: 2026-07-28
//! requests (per-request `_meta` with the protocol version, repeated in the
//! `Mcp-Protocol-Version` and `Mcp-Method` headers; `server/discover`) and the 2025-11-25
//! `initialize` handshake, stateless (no session). Shared by `mcpwatch demo-server` and the
//! daemon's own `/mcp`.

use axum::Json;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// The modern era's version, and the handshake era's.
pub const MODERN: &str = "2026-07-28";
pub const LEGACY: &str = "2025-11-25";

/// One request, read and checked.
#[derive(Debug, Clone)]
pub struct Request {
    pub id: Value,
    pub method: String,
    pub params: Value,
    /// A 2026-07-28 request (its answers carry `resultType`).
    pub modern: bool,
}

/// The message in `body`, or the error answer: unparsable JSON, a modern version we do not
/// speak, or headers that do not repeat the request's version and method.
pub fn read(headers: &HeaderMap, body: &[u8]) -> Result<Request, Box<Response>> {
    let Ok(msg) = serde_json::from_slice::<Value>(body) else {
        return Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            &Value::Null,
            -32700,
            "Parse error",
            None,
        )));
    };
    let id = msg.get("id").cloned().unwrap_or(Value::Null);
    let method = msg
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let params = msg.get("params").cloned().unwrap_or(json!({}));
    let version = params
        .pointer("/_meta/io.modelcontextprotocol~1protocolVersion")
        .and_then(Value::as_str);
    if let Some(v) = version {
        let header = |name: &str| headers.get(name).and_then(|h| h.to_str().ok());
        if v != MODERN {
            let data = json!({"supported": [MODERN, LEGACY], "requested": v});
            let e = error(
                StatusCode::BAD_REQUEST,
                &id,
                -32022,
                "Unsupported protocol version",
                Some(data),
            );
            return Err(Box::new(e));
        }
        if header("mcp-protocol-version") != Some(v) || header("mcp-method") != Some(&method) {
            let m = "Mcp-Protocol-Version and Mcp-Method must match the request";
            return Err(Box::new(error(
                StatusCode::BAD_REQUEST,
                &id,
                -32020,
                m,
                None,
            )));
        }
    }
    let modern = version.is_some();
    Ok(Request {
        id,
        method,
        params,
        modern,
    })
}

/// The request in `body` for the server to answer, or the answer already given: an error, or
/// one of the methods every tools-only server answers alike ([`lifecycle`]).
pub fn begin(
    headers: &HeaderMap,
    body: &[u8],
    server_info: &Value,
) -> Result<Request, Box<Response>> {
    let req = read(headers, body)?;
    match lifecycle(&req, server_info) {
        Some(answer) => Err(Box::new(answer)),
        None => Ok(req),
    }
}

/// The answer to what every tools-only server answers alike (discovery, the handshake, its
/// notification, ping), introducing itself as `server_info`; `None` for anything else.
pub fn lifecycle(req: &Request, server_info: &Value) -> Option<Response> {
    let result = match req.method.as_str() {
        "server/discover" if req.modern => json!({
            "supportedVersions": [MODERN],
            "capabilities": {"tools": {}},
            "_meta": {"io.modelcontextprotocol/serverInfo": server_info},
            "ttlMs": 60000
        }),
        "initialize" if !req.modern => json!({
            "protocolVersion": LEGACY,
            "capabilities": {"tools": {"listChanged": false}},
            "serverInfo": server_info
        }),
        "notifications/initialized" => return Some(StatusCode::ACCEPTED.into_response()),
        "ping" => json!({}),
        _ => return None,
    };
    Some(reply(req, result))
}

/// `result` as the answer to `req` (marked complete in the modern era).
pub fn reply(req: &Request, mut result: Value) -> Response {
    if req.modern {
        result["resultType"] = json!("complete");
    }
    Json(json!({"jsonrpc": "2.0", "id": req.id, "result": result})).into_response()
}

/// A method this server does not have (404 in the modern era, as the spec asks of HTTP).
pub fn method_not_found(req: &Request) -> Response {
    let status = if req.modern {
        StatusCode::NOT_FOUND
    } else {
        StatusCode::OK
    };
    error(status, &req.id, -32601, "Method not found", None)
}

/// A JSON-RPC error answer.
pub fn error(
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
