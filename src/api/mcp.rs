//! `POST /mcp`: mcpwatch speaks MCP, so an AI client (or its deploy gate) can ask it about the
//! fleet. Streamable HTTP, answering 2026-07-28 requests and the 2025-11-25 `initialize`
//! handshake (stateless, no session), behind the same bearer keys and scopes as the API: a
//! `read` key lists and asks, a `write` key also registers and pauses.
//!
//! Each tool calls the same handler as its REST route, so answers and errors are the API's
//! own; a tool's `outputSchema` is the route's OpenAPI schema (the components it uses, as
//! `$defs`), so it cannot drift from the answer either.

use axum::extract::{Extension, Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::auth::{Caller, Scope};
use super::error::{ApiError, ApiJson};
use super::{AppState, history, servers};
use crate::mcp_wire as wire;

/// Longest `wait_seconds` of `assert_server_healthy`.
const MAX_WAIT_SECONDS: u64 = 120;

/// One tool: its name, what it does, its input schema, the OpenAPI component its answer is,
/// and the scope it needs.
struct Tool {
    name: &'static str,
    description: &'static str,
    input: fn() -> Value,
    output: &'static str,
    scope: Scope,
}

const SERVER_ARG: &str = "server id or slug";

fn server_only() -> Value {
    json!({"type": "object", "properties": {"server": {"type": "string", "description": SERVER_ARG}},
           "required": ["server"], "additionalProperties": false})
}

const TOOLS: [Tool; 7] = [
    Tool {
        name: "list_servers",
        description: "The monitored servers with their state and last probe, with counts by state. Optional filters: tag, state (up, degraded, down, auth_failed, paused, unknown).",
        input: || json!({"type": "object", "properties": {"tag": {"type": "string"}, "state": {"type": "string", "enum": ["up", "degraded", "down", "auth_failed", "paused", "unknown"]}}, "additionalProperties": false}),
        output: "StatusView",
        scope: Scope::Read,
    },
    Tool {
        name: "get_server_status",
        description: "One server: its state and since when, each region's state, warnings, and the last probe (era, tools, schema hash, timings).",
        input: server_only,
        output: "ServerDetail",
        scope: Scope::Read,
    },
    Tool {
        name: "assert_server_healthy",
        description: "Whether a server is healthy (up or degraded) now, waiting up to wait_seconds (default 0, at most 120) for it to become so; says why not. For a deploy gate.",
        input: || json!({"type": "object", "properties": {"server": {"type": "string", "description": SERVER_ARG}, "wait_seconds": {"type": "integer", "minimum": 0, "maximum": MAX_WAIT_SECONDS}}, "required": ["server"], "additionalProperties": false}),
        output: "HealthVerdict",
        scope: Scope::Read,
    },
    Tool {
        name: "get_schema_diff",
        description: "Every change of a server's tool list, newest first, each with its structural diff (breaking, compatible, security).",
        input: server_only,
        output: "SchemaHistory",
        scope: Scope::Read,
    },
    Tool {
        name: "list_incidents",
        description: "Outages (down, auth_failed) with cause, open and close times, newest first; of one server if given.",
        input: || json!({"type": "object", "properties": {"server": {"type": "string", "description": SERVER_ARG}, "limit": {"type": "integer", "minimum": 1, "maximum": 500}}, "additionalProperties": false}),
        output: "IncidentPage",
        scope: Scope::Read,
    },
    Tool {
        name: "register_server",
        description: "Register an MCP server to monitor (probed at once, then every interval). Needs a write key.",
        input: || json!({"type": "object", "properties": {"name": {"type": "string"}, "url": {"type": "string", "format": "uri"}, "tags": {"type": "array", "items": {"type": "string"}}, "public": {"type": "boolean"}, "interval_seconds": {"type": "integer", "minimum": 10}}, "required": ["name", "url"], "additionalProperties": false}),
        output: "ServerView",
        scope: Scope::Write,
    },
    Tool {
        name: "pause_server",
        description: "Stop probing a server (state paused). Needs a write key.",
        input: server_only,
        output: "ServerView",
        scope: Scope::Write,
    },
];

/// `assert_server_healthy`'s answer.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct HealthVerdict {
    /// Up or degraded.
    pub healthy: bool,
    pub state: crate::monitor::ServerStatus,
    /// Why not, in words (`null` when healthy).
    pub reason: Option<String>,
    /// How long it waited.
    pub waited_seconds: f64,
}

/// One JSON-RPC message to `/mcp`.
pub async fn endpoint(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let req = match wire::begin(&headers, &body, &server_info()) {
        Ok(req) => req,
        Err(answered) => return *answered,
    };
    match req.method.as_str() {
        "tools/list" => wire::reply(&req, json!({"tools": tool_list()})),
        "tools/call" => wire::reply(&req, call(&app, &caller, &req.params).await),
        _ => wire::method_not_found(&req),
    }
}

fn server_info() -> Value {
    json!({"name": "mcpwatch", "version": env!("CARGO_PKG_VERSION")})
}

/// Every tool with its input and output schemas (the latter from the OpenAPI document).
fn tool_list() -> Vec<Value> {
    let empty = serde_json::Map::new();
    let components = SCHEMAS.get().unwrap_or(&empty);
    TOOLS
        .iter()
        .map(|t| {
            json!({
                "name": t.name,
                "description": t.description,
                "inputSchema": (t.input)(),
                "outputSchema": output_schema(components, t.output),
                "annotations": {"readOnlyHint": t.scope == Scope::Read}
            })
        })
        .collect()
}

/// The served OpenAPI document's component schemas (set once the router is built).
static SCHEMAS: std::sync::OnceLock<serde_json::Map<String, Value>> = std::sync::OnceLock::new();

/// Keep the served document's component schemas for the tools' output schemas.
pub(super) fn know_schemas(doc: &utoipa::openapi::OpenApi) {
    SCHEMAS.get_or_init(|| components(doc));
}

/// The OpenAPI document's component schemas, with `HealthVerdict` (answered only here).
fn components(doc: &utoipa::openapi::OpenApi) -> serde_json::Map<String, Value> {
    use utoipa::{PartialSchema, ToSchema};
    let doc = serde_json::to_value(doc).unwrap_or_default();
    let mut all = doc
        .pointer("/components/schemas")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    all.insert(
        HealthVerdict::name().into_owned(),
        serde_json::to_value(HealthVerdict::schema()).unwrap_or_default(),
    );
    let text = Value::Object(all)
        .to_string()
        .replace("#/components/schemas/", "#/$defs/");
    serde_json::from_str(&text).unwrap_or_default()
}

/// `{"$ref": root}` with the components it reaches as `$defs`, as an object schema.
fn output_schema(components: &serde_json::Map<String, Value>, root: &str) -> Value {
    let mut defs = serde_json::Map::new();
    let mut todo = vec![root.to_string()];
    while let Some(name) = todo.pop() {
        if defs.contains_key(&name) {
            continue;
        }
        let Some(schema) = components.get(&name) else {
            continue;
        };
        refs_in(schema, &mut todo);
        defs.insert(name, schema.clone());
    }
    json!({"type": "object", "$ref": format!("#/$defs/{root}"), "$defs": defs})
}

fn refs_in(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            if let Some(r) = map.get("$ref").and_then(Value::as_str)
                && let Some(name) = r.strip_prefix("#/$defs/")
            {
                out.push(name.to_string());
            }
            map.values().for_each(|v| refs_in(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| refs_in(v, out)),
        _ => {}
    }
}

/// `tools/call`: the tool's answer as structured content (and as text), or `isError` with
/// the API's words.
async fn call(app: &AppState, caller: &Caller, params: &Value) -> Value {
    let name = params.get("name").and_then(Value::as_str).unwrap_or("");
    let args = params.get("arguments").cloned().unwrap_or(json!({}));
    let Some(tool) = TOOLS.iter().find(|t| t.name == name) else {
        return tool_error(format!("no tool named '{name}'"));
    };
    if caller.scope < tool.scope {
        return tool_error(format!("{name} needs a {} key", tool.scope.as_str()));
    }
    match run(app, name, args).await {
        Ok(answer) => json!({
            "content": [{"type": "text", "text": answer.to_string()}],
            "structuredContent": answer
        }),
        Err(e) => tool_error(api_words(e).await),
    }
}

fn tool_error(message: String) -> Value {
    json!({"content": [{"type": "text", "text": message}], "isError": true})
}

/// An API error in the words its problem document says them.
async fn api_words(e: ApiError) -> String {
    let resp = e.into_response();
    let status = resp.status();
    let body = axum::body::to_bytes(resp.into_body(), 64 * 1024)
        .await
        .unwrap_or_default();
    let problem: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let detail = problem["detail"].as_str().unwrap_or("").to_string();
    let fields: Vec<String> = problem["errors"]
        .as_array()
        .map(|errs| {
            errs.iter()
                .map(|e| {
                    format!(
                        "{}: {}",
                        e["field"].as_str().unwrap_or(""),
                        e["message"].as_str().unwrap_or("")
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    match fields.is_empty() {
        true => format!("{}: {detail}", status.as_u16()),
        false => format!("{}: {detail} ({})", status.as_u16(), fields.join("; ")),
    }
}

fn bad_args(e: serde_json::Error) -> ApiError {
    ApiError::field("arguments", e.to_string())
}

fn server_of(args: &Value) -> Result<String, ApiError> {
    args.get("server")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| ApiError::field("server", "a server id or slug is required".to_string()))
}

async fn run(app: &AppState, name: &str, args: Value) -> Result<Value, ApiError> {
    let st = || State(app.clone());
    let answer = match name {
        "list_servers" => {
            let q = serde_json::from_value(args).map_err(bad_args)?;
            json!(history::status(st(), Query(q)).await?.0)
        }
        "get_server_status" => json!(servers::get(st(), Path(server_of(&args)?)).await?.0),
        "assert_server_healthy" => json!(healthy(app, &args).await?),
        "get_schema_diff" => {
            json!(
                history::schema_history(st(), Path(server_of(&args)?))
                    .await?
                    .0
            )
        }
        "list_incidents" => incidents(app, args).await?,
        "register_server" => {
            let input = serde_json::from_value(args).map_err(bad_args)?;
            let resp = servers::create(st(), ApiJson(input)).await?;
            let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
                .await
                .map_err(|e| ApiError::Internal(e.to_string()))?;
            serde_json::from_slice(&body).map_err(|e| ApiError::Internal(e.to_string()))?
        }
        "pause_server" => json!(servers::pause(st(), Path(server_of(&args)?)).await?.0),
        _ => return Err(ApiError::NotFound(format!("no tool named '{name}'"))),
    };
    Ok(answer)
}

async fn incidents(app: &AppState, mut args: Value) -> Result<Value, ApiError> {
    let server = args
        .as_object_mut()
        .and_then(|m| m.remove("server"))
        .and_then(|v| v.as_str().map(str::to_string));
    let q = serde_json::from_value(args).map_err(bad_args)?;
    let page = match server {
        Some(s) => history::server_incidents(State(app.clone()), Path(s), Query(q)).await?,
        None => history::incidents(State(app.clone()), Query(q)).await?,
    };
    Ok(json!(page.0))
}

/// Poll the server's state until healthy or `wait_seconds` pass.
async fn healthy(app: &AppState, args: &Value) -> Result<HealthVerdict, ApiError> {
    use crate::monitor::ServerStatus;
    let id = server_of(args)?;
    let wait = args["wait_seconds"]
        .as_u64()
        .unwrap_or(0)
        .min(MAX_WAIT_SECONDS);
    let started = tokio::time::Instant::now();
    let deadline = started + std::time::Duration::from_secs(wait);
    loop {
        let server = servers::find(app, &id).await?;
        let (state, _) = app.store.load_state(&server.id).await?;
        let status = state.as_ref().map_or(ServerStatus::Unknown, |s| s.status);
        let healthy = matches!(status, ServerStatus::Up | ServerStatus::Degraded);
        if healthy || tokio::time::Instant::now() >= deadline {
            let last = match healthy {
                true => None,
                false => app.store.last_result(&server.id).await?,
            };
            let reason = (!healthy).then(|| why_not(status, last.as_ref()));
            return Ok(HealthVerdict {
                healthy,
                state: status,
                reason,
                waited_seconds: started.elapsed().as_secs_f64(),
            });
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

/// The state and, when the last probe failed, what it found.
fn why_not(
    status: crate::monitor::ServerStatus,
    last: Option<&crate::store::ResultRecord>,
) -> String {
    match last.and_then(|r| {
        Some((
            r.failure_kind?,
            r.failure_phase,
            r.failure_message.as_deref(),
        ))
    }) {
        Some((kind, phase, message)) => {
            let phase = phase
                .map(|p| format!(" in {}", p.as_str()))
                .unwrap_or_default();
            format!("{status}: {kind}{phase}: {}", message.unwrap_or(""))
        }
        None if status == crate::monitor::ServerStatus::Unknown => {
            "unknown: not probed yet".to_string()
        }
        None => status.to_string(),
    }
}
