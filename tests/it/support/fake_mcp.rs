//! A configurable fake MCP server (axum, 127.0.0.1:0) for probe tests.
//!
//! It can be any era (stateless 2026, Streamable HTTP 2025 with or without sessions, HTTP+SSE
//! 2024, or dual-era), answer with JSON or SSE, paginate, require a bearer token, and
//! misbehave in each way a real server does ([`Fault`]). It records what it saw (sessions
//! opened and deleted, headers) so tests can assert the probe's manners too.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// Which protocol shapes the fake speaks on `/mcp` (and `/sse` for HTTP+SSE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FakeEra {
    /// 2026-07-28 only.
    Stateless,
    /// initialize-based Streamable HTTP only.
    Streamable,
    /// Both on one endpoint, like the Python SDK.
    Dual,
    /// 2024-11-05: GET /sse + POST /messages.
    HttpSse,
}

/// A misbehaviour, applied where [`FakeConfig::fault_on`] says (default `tools/list`).
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    None,
    /// Never answer.
    Hang,
    /// Answer 200 SSE but send one byte every 100 ms, forever.
    DripBytes,
    /// 200 with an HTML page.
    Html200,
    /// This status with a plain-text body.
    Status(u16),
    /// 200 application/json that is not valid JSON.
    InvalidJson,
    /// 200 JSON that is not JSON-RPC.
    PlainJson,
    /// A response whose id is not ours.
    WrongId,
    DuplicateTools,
    EmptyTools,
    /// An SSE reply that streams notifications forever and never answers.
    EndlessSse,
    /// A 5 MiB JSON body.
    HugeBody,
    /// 50 MiB of gzip-compressed zeros.
    GzipBomb,
    /// 307 to this URL.
    Redirect(String),
    /// nextCursor always the same.
    CursorCycle,
    /// Sleep this long, then answer correctly.
    Slow(Duration),
    /// initialize counter-offers this version.
    CounterOffer(String),
    /// DELETE of the session answers 500.
    DeleteFails,
    /// 400 whose body reflects the request's Authorization header (a debug endpoint).
    EchoAuthorization,
    /// This status with this JSON body, verbatim (e.g. the Python SDK 1.x's
    /// `{"id": "server-error", ...}` for a request it cannot place).
    Answer(u16, Value),
    /// 200 headers, then the connection breaks before the body ends.
    BreakConnection,
    /// 400 whose body echoes the request line's path and query (a debug endpoint).
    EchoUri,
}

#[derive(Debug, Clone)]
pub struct FakeConfig {
    pub era: FakeEra,
    /// Answer POSTs with text/event-stream (priming event + a notification first).
    pub sse_replies: bool,
    /// Assign and require an Mcp-Session-Id (Streamable era).
    pub sessions: bool,
    pub page_size: Option<usize>,
    pub tools: Vec<Value>,
    /// Require `Authorization: Bearer <token>`.
    pub bearer: Option<String>,
    /// On 401, send a WWW-Authenticate challenge (else only protected-resource metadata).
    pub challenge_header: bool,
    /// Serve /.well-known/oauth-protected-resource.
    pub prm: bool,
    pub fault: Fault,
    /// The JSON-RPC method the fault applies to.
    pub fault_on: &'static str,
    /// Serialize tool objects with keys in reverse order (a different serializer).
    pub reverse_keys: bool,
    /// server/discover answers a bare `{}` result (not a 2026 server).
    pub discover_minimal: bool,
    /// 2026 versions this server supports.
    pub modern_versions: Vec<&'static str>,
    /// POST /mcp answers `307 Location: http://host/mcp/` (Starlette's slash redirect, as
    /// some Python SDK 1.9 releases do); /mcp/ serves the endpoint.
    pub redirect_to_slash: bool,
    /// How its OAuth discovery chain answers (when it asks for a bearer token).
    pub oauth: OAuthChain,
    /// The authorization server its metadata names (default: its own `{base}/auth`).
    pub issuer: Option<String>,
    /// Accept a bearer token only when this introspection endpoint (RFC 7662) says it is
    /// active: (URL, client id, client secret) of a real authorization server.
    pub introspect: Option<(String, String, String)>,
    /// Answer 503 to probes from these regions (by the agents' `x-mcpwatch-region` header):
    /// a regional outage, seen from one vantage point only.
    pub refuse_regions: Vec<String>,
    /// The result every `tools/call` gets.
    pub call_result: Value,
    /// A `tools/call` carrying a `progressToken` is answered as an SSE stream of this many
    /// `notifications/progress`, one every interval, then the result (a long-running
    /// operation, like the reference server's).
    pub progress: Option<(u32, Duration)>,
    /// Resources it lists (two a page) and advertises; none: the capability is not declared.
    pub resources: Vec<Value>,
    /// Prompts it lists and advertises; none: the capability is not declared.
    pub prompts: Vec<Value>,
    /// `resources/list` sends its first cursor again forever.
    pub resource_cursor_cycle: bool,
}

impl Default for FakeConfig {
    fn default() -> Self {
        FakeConfig {
            era: FakeEra::Stateless,
            sse_replies: false,
            sessions: false,
            page_size: None,
            tools: default_tools(),
            bearer: None,
            challenge_header: true,
            prm: false,
            fault: Fault::None,
            fault_on: "tools/list",
            reverse_keys: false,
            discover_minimal: false,
            modern_versions: vec!["2026-07-28"],
            refuse_regions: Vec::new(),
            redirect_to_slash: false,
            oauth: OAuthChain::Complete,
            issuer: None,
            introspect: None,
            call_result: json!({"content": [{"type": "text", "text": "ok"}]}),
            progress: None,
            resources: Vec::new(),
            prompts: Vec::new(),
            resource_cursor_cycle: false,
        }
    }
}

/// How the fake's OAuth discovery chain answers: complete (its protected-resource metadata
/// names `{base}/auth`, whose RFC 8414 metadata it serves too), or broken at one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OAuthChain {
    #[default]
    Complete,
    /// The authorization server's metadata has no `S256` in code_challenge_methods_supported.
    NoS256,
    /// The authorization server's metadata names another issuer.
    WrongIssuer,
    /// The authorization server has no metadata at any well-known URL.
    NoMetadata,
    /// The protected-resource metadata names another resource.
    WrongResource,
    /// The challenge names protected-resource metadata that is not there (404).
    NoResourceMetadata,
    /// No OAuth at all: a bare `Bearer realm="mcp"` challenge, no metadata anywhere (a server
    /// behind an API key).
    NotAdvertised,
}

/// Three tools with nested schemas and numbers.
pub fn default_tools() -> Vec<Value> {
    vec![
        json!({"name": "search", "description": "Search the index", "inputSchema": {"type": "object", "properties": {"q": {"type": "string"}, "limit": {"type": "integer", "maximum": 100}}, "required": ["q"]}}),
        json!({"name": "echo", "description": "Echo a message", "inputSchema": {"type": "object", "properties": {"message": {"type": "string"}}, "required": ["message"]}, "annotations": {"readOnlyHint": true}}),
        json!({"name": "add", "title": "Add", "inputSchema": {"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}}}}),
    ]
}

/// What the fake observed.
#[derive(Debug, Default)]
pub struct Seen {
    pub sessions_opened: Vec<String>,
    pub sessions_deleted: Vec<String>,
    pub methods: Vec<String>,
    pub authorization: Vec<String>,
    pub client_capabilities: Vec<Value>,
    pub mcp_method_headers: Vec<String>,
    /// Path and query of every request to the MCP endpoint.
    pub uris: Vec<String>,
    /// `(tool, Mcp-Name header)` of every `tools/call`, in order.
    pub tool_calls: Vec<(String, Option<String>)>,
    /// The trace context of every request to the MCP endpoint, in order.
    pub traces: Vec<Traced>,
}

/// The W3C trace context one request carried.
#[derive(Debug, Clone, Default)]
pub struct Traced {
    pub http_method: String,
    /// The JSON-RPC method, for a POST.
    pub rpc: Option<String>,
    /// The `traceparent` header.
    pub header: Option<String>,
    /// `params._meta.traceparent`, for a POST.
    pub meta: Option<String>,
}

struct Shared {
    /// `http` or `https`: the scheme of the URLs its OAuth metadata names.
    scheme: &'static str,
    config: Mutex<FakeConfig>,
    seen: Mutex<Seen>,
    sse_streams: Mutex<HashMap<String, mpsc::UnboundedSender<String>>>,
    live_sessions: Mutex<HashSet<String>>,
}

type AppState = Arc<Shared>;

/// A running fake; the server task stops when this is dropped.
pub struct FakeServer {
    pub addr: std::net::SocketAddr,
    shared: AppState,
    task: tokio::task::JoinHandle<()>,
    https: bool,
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeServer {
    pub async fn start(config: FakeConfig) -> Self {
        Self::start_inner(config, None).await
    }

    /// The same fake behind TLS with the given server configuration (`https://` URLs).
    pub async fn start_tls(
        config: FakeConfig,
        tls: Arc<tokio_rustls::rustls::ServerConfig>,
    ) -> Self {
        Self::start_inner(config, Some(tls)).await
    }

    async fn start_inner(
        config: FakeConfig,
        tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    ) -> Self {
        let https = tls.is_some();
        let shared = Arc::new(Shared {
            scheme: if https { "https" } else { "http" },
            config: Mutex::new(config),
            seen: Mutex::new(Seen::default()),
            sse_streams: Mutex::new(HashMap::new()),
            live_sessions: Mutex::new(HashSet::new()),
        });
        let app = Router::new()
            .route("/mcp", any(mcp))
            .route("/mcp/", any(mcp))
            .route(
                "/sse",
                get(sse_open).post(|| async { StatusCode::METHOD_NOT_ALLOWED }),
            )
            .route("/messages", post(sse_message))
            .route("/.well-known/oauth-protected-resource/mcp", get(prm))
            .route("/.well-known/oauth-protected-resource", get(prm))
            .route(
                "/.well-known/oauth-authorization-server/auth",
                get(as_metadata),
            )
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let task = match tls {
            None => tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            }),
            Some(tls) => tokio::spawn(serve_tls(listener, app, tls)),
        };
        FakeServer {
            addr,
            shared,
            task,
            https,
        }
    }

    /// `/mcp` (or `/sse` for the HTTP+SSE era).
    pub fn url(&self) -> String {
        let path = if self.shared.config.lock().unwrap().era == FakeEra::HttpSse {
            "sse"
        } else {
            "mcp"
        };
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}/{path}", self.addr)
    }

    pub fn seen<T>(&self, f: impl FnOnce(&Seen) -> T) -> T {
        f(&self.shared.seen.lock().unwrap())
    }

    /// Change behaviour while running (tools, fault…).
    pub fn update(&self, f: impl FnOnce(&mut FakeConfig)) {
        f(&mut self.shared.config.lock().unwrap());
    }
}

/// An error answer, boxed (it travels in a Result's error side).
fn reject(status: StatusCode, body: &Value) -> Box<Response> {
    Box::new(json_response(status, body))
}

fn rpc_error(id: Value, code: i64, message: &str, data: Option<Value>) -> Value {
    let mut e = json!({"code": code, "message": message});
    if let Some(d) = data {
        e["data"] = d;
    }
    json!({"jsonrpc": "2.0", "id": id, "error": e})
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// `http://127.0.0.1:PORT`, as the client reached it.
fn base_of(s: &Shared, headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1");
    format!("{}://{host}", s.scheme)
}

/// RFC 9728 metadata: served when asked for (`prm`) or named by the challenge.
async fn prm(State(s): State<AppState>, headers: HeaderMap) -> Response {
    let cfg = s.config.lock().unwrap().clone();
    let gone = matches!(
        cfg.oauth,
        OAuthChain::NoResourceMetadata | OAuthChain::NotAdvertised
    );
    if !(cfg.prm || cfg.challenge_header) || gone {
        return StatusCode::NOT_FOUND.into_response();
    }
    let base = base_of(&s, &headers);
    let resource = if cfg.oauth == OAuthChain::WrongResource {
        "https://other.example/mcp".to_string()
    } else {
        base.clone()
    };
    json_response(
        StatusCode::OK,
        &json!({"resource": resource,
                "authorization_servers": [cfg.issuer.clone().unwrap_or(format!("{base}/auth"))],
                "scopes_supported": ["tools:read"]}),
    )
}

/// RFC 8414 metadata of the issuer `{base}/auth` (path-inserted).
async fn as_metadata(State(s): State<AppState>, headers: HeaderMap) -> Response {
    let chain = s.config.lock().unwrap().oauth;
    if chain == OAuthChain::NoMetadata {
        return StatusCode::NOT_FOUND.into_response();
    }
    let base = base_of(&s, &headers);
    let issuer = if chain == OAuthChain::WrongIssuer {
        "https://login.other.example".to_string()
    } else {
        format!("{base}/auth")
    };
    let pkce = if chain == OAuthChain::NoS256 {
        json!(["plain"])
    } else {
        json!(["S256"])
    };
    json_response(
        StatusCode::OK,
        &json!({"issuer": issuer, "authorization_endpoint": format!("{base}/auth/authorize"),
                "token_endpoint": format!("{base}/auth/token"), "response_types_supported": ["code"],
                "code_challenge_methods_supported": pkce}),
    )
}

fn unauthorized(s: &Shared, cfg: &FakeConfig, headers: &HeaderMap) -> Response {
    let mut resp = (StatusCode::UNAUTHORIZED, "{\"error\":\"invalid_token\"}").into_response();
    if cfg.challenge_header && cfg.oauth == OAuthChain::NotAdvertised {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            "Bearer realm=\"mcp\"".parse().unwrap(),
        );
    } else if cfg.challenge_header {
        let challenge = format!(
            "Bearer error=\"invalid_token\", error_description=\"Missing Authorization header\", resource_metadata=\"{}/.well-known/oauth-protected-resource/mcp\"",
            base_of(s, headers)
        );
        resp.headers_mut()
            .insert(header::WWW_AUTHENTICATE, challenge.parse().unwrap());
    }
    resp
}

/// Whether the authorization server says the request's bearer token is active.
async fn introspected(cfg: &FakeConfig, headers: &HeaderMap) -> bool {
    let Some((url, id, secret)) = &cfg.introspect else {
        return true;
    };
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if token.is_empty() {
        return false;
    }
    let form = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("token", token)
        .finish();
    let answer = reqwest::Client::new()
        .post(url)
        .basic_auth(id, Some(secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await;
    let Ok(r) = answer else { return false };
    let body = r.bytes().await.unwrap_or_default();
    serde_json::from_slice::<Value>(&body).is_ok_and(|v| v["active"] == true)
}

fn authorized(cfg: &FakeConfig, headers: &HeaderMap, seen: &Mutex<Seen>) -> bool {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !auth.is_empty() {
        seen.lock().unwrap().authorization.push(auth.to_string());
    }
    match &cfg.bearer {
        None => cfg.introspect.is_none() || auth.starts_with("Bearer "),
        Some(token) => auth == format!("Bearer {token}"),
    }
}

/// POST/GET/DELETE /mcp.
async fn mcp(
    State(s): State<AppState>,
    uri: axum::http::Uri,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let cfg = s.config.lock().unwrap().clone();
    // Where this request's trace context is recorded (its JSON-RPC method is added below).
    let traced_at = {
        let mut seen = s.seen.lock().unwrap();
        seen.uris.push(uri.to_string());
        seen.traces.push(Traced {
            http_method: method.to_string(),
            header: headers
                .get("traceparent")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            ..Traced::default()
        });
        seen.traces.len() - 1
    };
    if cfg.fault == Fault::EchoUri {
        return (
            StatusCode::BAD_REQUEST,
            format!("debug: you asked for {uri}"),
        )
            .into_response();
    }
    if cfg.redirect_to_slash && uri.path() == "/mcp" {
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("127.0.0.1");
        return (
            StatusCode::TEMPORARY_REDIRECT,
            [(header::LOCATION, format!("http://{host}/mcp/"))],
        )
            .into_response();
    }
    let region = headers
        .get("x-mcpwatch-region")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if cfg.refuse_regions.iter().any(|r| r == region) {
        return (StatusCode::SERVICE_UNAVAILABLE, "not from your region").into_response();
    }
    if !authorized(&cfg, &headers, &s.seen) || !introspected(&cfg, &headers).await {
        return unauthorized(&s, &cfg, &headers);
    }
    if method == Method::DELETE {
        let sid = headers
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        s.seen.lock().unwrap().sessions_deleted.push(sid.clone());
        if cfg.fault == Fault::DeleteFails {
            return (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response();
        }
        if !cfg.sessions {
            return StatusCode::METHOD_NOT_ALLOWED.into_response();
        }
        s.live_sessions.lock().unwrap().remove(&sid);
        return StatusCode::OK.into_response();
    }
    if method != Method::POST {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    let Ok(msg) = serde_json::from_slice::<Value>(&body) else {
        return json_response(
            StatusCode::BAD_REQUEST,
            &rpc_error(Value::Null, -32700, "Parse error", None),
        );
    };
    let rpc_method = msg
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    {
        let mut seen = s.seen.lock().unwrap();
        seen.methods.push(rpc_method.clone());
        if rpc_method == "tools/call" {
            let tool = msg.pointer("/params/name").and_then(Value::as_str);
            let header = headers.get("mcp-name").and_then(|v| v.to_str().ok());
            seen.tool_calls.push((
                tool.unwrap_or_default().to_string(),
                header.map(str::to_string),
            ));
        }
        if let Some(last) = seen.traces.get_mut(traced_at) {
            last.rpc = Some(rpc_method.clone());
            last.meta = msg
                .pointer("/params/_meta/traceparent")
                .and_then(Value::as_str)
                .map(str::to_string);
        }
        if let Some(h) = headers.get("mcp-method").and_then(|v| v.to_str().ok()) {
            seen.mcp_method_headers.push(h.to_string());
        }
    }
    if cfg.fault == Fault::EchoAuthorization {
        let auth = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        return (
            StatusCode::BAD_REQUEST,
            format!("debug: you sent Authorization: {auth}"),
        )
            .into_response();
    }
    if let Some(resp) = early_fault(&cfg, &rpc_method).await {
        return resp;
    }
    if let (Some((steps, every)), Some(token)) =
        (cfg.progress, msg.pointer("/params/_meta/progressToken"))
        && rpc_method == "tools/call"
    {
        let id = msg.get("id").cloned().unwrap_or(Value::Null);
        return progress_stream(steps, every, token.clone(), id, cfg.call_result.clone());
    }
    let id = msg.get("id").cloned();
    let meta_version = msg
        .pointer("/params/_meta/io.modelcontextprotocol~1protocolVersion")
        .and_then(Value::as_str)
        .map(str::to_string);
    let modern = meta_version.is_some();
    let speaks_modern = matches!(cfg.era, FakeEra::Stateless | FakeEra::Dual);
    let speaks_legacy = matches!(cfg.era, FakeEra::Streamable | FakeEra::Dual);

    let reply: Value = if modern && speaks_modern {
        let version = meta_version.unwrap_or_default();
        let header_version = headers
            .get("mcp-protocol-version")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let header_method = headers
            .get("mcp-method")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if header_version != version || header_method != rpc_method {
            return json_response(
                StatusCode::BAD_REQUEST,
                &rpc_error(id.unwrap_or(Value::Null), -32020, "Header mismatch", None),
            );
        }
        if !cfg.modern_versions.contains(&version.as_str()) {
            let mut supported: Vec<&str> = cfg.modern_versions.clone();
            if speaks_legacy {
                supported.push("2025-11-25");
            }
            return json_response(
                StatusCode::BAD_REQUEST,
                &rpc_error(
                    id.unwrap_or(Value::Null),
                    -32022,
                    "Unsupported protocol version",
                    Some(json!({"supported": supported, "requested": version})),
                ),
            );
        }
        if let Some(cap) = msg.pointer("/params/_meta/io.modelcontextprotocol~1clientCapabilities")
        {
            s.seen.lock().unwrap().client_capabilities.push(cap.clone());
        }
        match rpc_method.as_str() {
            "server/discover" if cfg.discover_minimal => {
                json!({"jsonrpc": "2.0", "id": id, "result": {}})
            }
            "server/discover" => json!({"jsonrpc": "2.0", "id": id, "result": {
                "resultType": "complete", "supportedVersions": cfg.modern_versions, "capabilities": capabilities(&cfg),
                "_meta": {"io.modelcontextprotocol/serverInfo": {"name": "fake-mcp", "version": "1.2.3"}}, "ttlMs": 60000}}),
            "tools/list" => tools_page(&cfg, id.clone().unwrap_or(Value::Null), &msg),
            m if contract_page(&cfg, m, Value::Null, &msg).is_some() => {
                contract_page(&cfg, m, id.clone().unwrap_or(Value::Null), &msg).unwrap()
            }
            "tools/call" => json!({"jsonrpc": "2.0", "id": id, "result": cfg.call_result}),
            _ => {
                return json_response(
                    StatusCode::NOT_FOUND,
                    &rpc_error(id.unwrap_or(Value::Null), -32601, "Method not found", None),
                );
            }
        }
    } else if modern {
        // A legacy-only server seeing a 2026 request answers like the TypeScript SDK.
        return json_response(
            StatusCode::BAD_REQUEST,
            &rpc_error(
                Value::Null,
                -32000,
                "Bad Request: Server not initialized",
                None,
            ),
        );
    } else if speaks_legacy {
        match legacy(&s, &cfg, &headers, &msg, &rpc_method) {
            Ok(Some((reply, session))) => {
                let mut resp = reply_response(&cfg, &reply, &rpc_method).await;
                if let Some(sid) = session {
                    resp.headers_mut()
                        .insert("mcp-session-id", sid.parse().unwrap());
                }
                return resp;
            }
            Ok(None) => return StatusCode::ACCEPTED.into_response(),
            Err(resp) => return *resp,
        }
    } else {
        return json_response(
            StatusCode::BAD_REQUEST,
            &rpc_error(
                Value::Null,
                -32600,
                "This server speaks 2026-07-28 only",
                None,
            ),
        );
    };
    reply_response(&cfg, &reply, &rpc_method).await
}

/// Faults that replace the whole answer.
async fn early_fault(cfg: &FakeConfig, method: &str) -> Option<Response> {
    let applies = cfg.fault_on == "*" || cfg.fault_on == method;
    if !applies {
        return None;
    }
    Some(match &cfg.fault {
        Fault::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            StatusCode::OK.into_response()
        }
        Fault::Html200 => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/html")],
            "<!doctype html><html><body><h1>Welcome to nginx!</h1></body></html>",
        )
            .into_response(),
        Fault::Status(code) => {
            (StatusCode::from_u16(*code).unwrap(), "upstream says no").into_response()
        }
        Fault::InvalidJson => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            "{\"jsonrpc\": \"2.0\", \"id\": 1, \"result\": {",
        )
            .into_response(),
        Fault::PlainJson => json_response(StatusCode::OK, &json!({"status": "ok"})),
        Fault::HugeBody => {
            let big = format!(
                "{{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{{\"pad\":\"{}\"}}}}",
                "x".repeat(5 * 1024 * 1024)
            );
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                big,
            )
                .into_response()
        }
        Fault::GzipBomb => {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            let zeros = vec![b' '; 1024 * 1024];
            for _ in 0..50 {
                enc.write_all(&zeros).unwrap();
            }
            let body = enc.finish().unwrap();
            (
                StatusCode::OK,
                [
                    (header::CONTENT_TYPE, "application/json"),
                    (header::CONTENT_ENCODING, "gzip"),
                ],
                body,
            )
                .into_response()
        }
        Fault::Answer(status, body) => json_response(StatusCode::from_u16(*status).unwrap(), body),
        Fault::BreakConnection => {
            let stream = async_stream::stream! {
                yield Ok::<_, std::io::Error>(Bytes::from_static(b"{\"jsonrpc\": \"2.0\", "));
                yield Err(std::io::Error::other("connection broken on purpose"));
            };
            Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from_stream(stream))
                .unwrap()
        }
        Fault::Redirect(to) => (
            StatusCode::TEMPORARY_REDIRECT,
            [(header::LOCATION, to.as_str())],
        )
            .into_response(),
        Fault::DripBytes => {
            let stream = async_stream::stream! {
                loop {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    yield Ok::<_, Infallible>(Bytes::from_static(b":"));
                }
            };
            sse_response(Body::from_stream(stream))
        }
        Fault::EndlessSse => {
            let stream = async_stream::stream! {
                let note = format!("data: {}\n\n", json!({"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "info", "data": "x".repeat(4000)}}));
                loop {
                    yield Ok::<_, Infallible>(Bytes::from(note.clone()));
                    tokio::task::yield_now().await;
                }
            };
            sse_response(Body::from_stream(stream))
        }
        Fault::Slow(d) => {
            tokio::time::sleep(*d).await;
            return None;
        }
        _ => return None,
    })
}

/// `steps` progress notifications, `every` apart, each written and flushed as it happens,
/// then the call's result: a tool that streams its progress.
fn progress_stream(
    steps: u32,
    every: Duration,
    token: Value,
    id: Value,
    result: Value,
) -> Response {
    let stream = async_stream::stream! {
        for step in 1..=steps {
            tokio::time::sleep(every).await;
            let note = json!({"jsonrpc": "2.0", "method": "notifications/progress",
                "params": {"progressToken": token, "progress": step, "total": steps}});
            yield Ok::<_, Infallible>(Bytes::from(format!("event: message\ndata: {note}\n\n")));
        }
        let reply = json!({"jsonrpc": "2.0", "id": id, "result": result});
        yield Ok(Bytes::from(format!("event: message\ndata: {reply}\n\n")));
    };
    sse_response(Body::from_stream(stream))
}

fn sse_response(body: Body) -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .body(body)
        .unwrap()
}

/// initialize / notifications / tools/list in the Streamable era.
/// Ok(Some((reply, new session))) | Ok(None) for 202 | Err(a ready response).
fn legacy(
    s: &Shared,
    cfg: &FakeConfig,
    headers: &HeaderMap,
    msg: &Value,
    method: &str,
) -> Result<Option<(Value, Option<String>)>, Box<Response>> {
    let id = msg.get("id").cloned().unwrap_or(Value::Null);
    if method == "initialize" {
        let requested = msg
            .pointer("/params/protocolVersion")
            .and_then(Value::as_str)
            .unwrap_or("");
        if let Some(cap) = msg.pointer("/params/capabilities") {
            s.seen.lock().unwrap().client_capabilities.push(cap.clone());
        }
        let version = match &cfg.fault {
            Fault::CounterOffer(v) => v.clone(),
            _ if ["2025-11-25", "2025-06-18", "2025-03-26"].contains(&requested) => {
                requested.to_string()
            }
            _ => "2025-06-18".to_string(),
        };
        let session = cfg.sessions.then(|| {
            let sid = format!("sess-{}", s.seen.lock().unwrap().sessions_opened.len() + 1);
            s.seen.lock().unwrap().sessions_opened.push(sid.clone());
            s.live_sessions.lock().unwrap().insert(sid.clone());
            sid
        });
        let mut caps = capabilities(cfg);
        caps["tools"] = json!({"listChanged": true});
        let result = json!({"protocolVersion": version, "capabilities": caps, "serverInfo": {"name": "fake-mcp", "version": "1.2.3"}});
        return Ok(Some((
            json!({"jsonrpc": "2.0", "id": id, "result": result}),
            session,
        )));
    }
    if cfg.sessions {
        let sid = headers.get("mcp-session-id").and_then(|v| v.to_str().ok());
        match sid {
            None => {
                return Err(reject(
                    StatusCode::BAD_REQUEST,
                    &rpc_error(
                        Value::Null,
                        -32000,
                        "Bad Request: No valid session ID provided",
                        None,
                    ),
                ));
            }
            Some(sid) if !s.live_sessions.lock().unwrap().contains(sid) => {
                return Err(reject(
                    StatusCode::NOT_FOUND,
                    &rpc_error(Value::Null, -32001, "Session not found", None),
                ));
            }
            Some(_) => {}
        }
    }
    if msg.get("id").is_none() {
        return Ok(None);
    }
    if headers.get("mcp-protocol-version").is_none() {
        return Err(reject(
            StatusCode::BAD_REQUEST,
            &rpc_error(id, -32600, "missing MCP-Protocol-Version", None),
        ));
    }
    if let Some(page) = contract_page(cfg, method, id.clone(), msg) {
        return Ok(Some((page, None)));
    }
    match method {
        "tools/list" => Ok(Some((tools_page(cfg, id, msg), None))),
        "tools/call" => Ok(Some((
            json!({"jsonrpc": "2.0", "id": id, "result": cfg.call_result}),
            None,
        ))),
        "ping" => Ok(Some((
            json!({"jsonrpc": "2.0", "id": id, "result": {}}),
            None,
        ))),
        _ => Ok(Some((
            rpc_error(id, -32601, "Method not found", None),
            None,
        ))),
    }
}

/// One page of tools, with the fault (if any) applied to its content.
/// The capabilities it declares: tools, and resources / prompts when it has any.
fn capabilities(cfg: &FakeConfig) -> Value {
    let mut caps = json!({"tools": {}});
    if !cfg.resources.is_empty() {
        caps["resources"] = json!({});
    }
    if !cfg.prompts.is_empty() {
        caps["prompts"] = json!({});
    }
    caps
}

/// A page of `resources/list` (two a page), `resources/templates/list` (none) or
/// `prompts/list`; `None` for any other method.
fn contract_page(cfg: &FakeConfig, method: &str, id: Value, msg: &Value) -> Option<Value> {
    let result = match method {
        "resources/list" => {
            let start: usize = msg
                .pointer("/params/cursor")
                .and_then(Value::as_str)
                .and_then(|c| c.strip_prefix("r-"))
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            let end = (start + 2).min(cfg.resources.len());
            let mut r = json!({"resources": cfg.resources.get(start..end).unwrap_or_default()});
            if cfg.resource_cursor_cycle {
                r["nextCursor"] = json!("r-0");
            } else if end < cfg.resources.len() {
                r["nextCursor"] = json!(format!("r-{end}"));
            }
            r
        }
        "resources/templates/list" => json!({"resourceTemplates": []}),
        "prompts/list" => json!({"prompts": cfg.prompts}),
        _ => return None,
    };
    Some(json!({"jsonrpc": "2.0", "id": id, "result": result}))
}

fn tools_page(cfg: &FakeConfig, id: Value, msg: &Value) -> Value {
    let mut tools = cfg.tools.clone();
    match cfg.fault {
        Fault::DuplicateTools => tools.push(tools[0].clone()),
        Fault::EmptyTools => tools.clear(),
        _ => {}
    }
    if cfg.reverse_keys {
        tools = tools.iter().map(reverse_keys).collect();
    }
    let start: usize = msg
        .pointer("/params/cursor")
        .and_then(Value::as_str)
        .and_then(|c| c.strip_prefix("page-"))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let size = cfg.page_size.unwrap_or(usize::MAX);
    let end = start.saturating_add(size).min(tools.len());
    let page: Vec<Value> = tools
        .get(start..end)
        .map(<[Value]>::to_vec)
        .unwrap_or_default();
    let mut result = json!({"tools": page});
    if cfg.fault == Fault::CursorCycle {
        result["nextCursor"] = json!("page-0");
    } else if end < tools.len() {
        result["nextCursor"] = json!(format!("page-{end}"));
    }
    let id = if cfg.fault == Fault::WrongId {
        json!(id.as_u64().unwrap_or(0) + 100)
    } else {
        id
    };
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

fn reverse_keys(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .rev()
                .map(|(k, v)| (k.clone(), reverse_keys(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(reverse_keys).collect()),
        other => other.clone(),
    }
}

/// JSON, or SSE with a priming event and a notification before the reply.
async fn reply_response(cfg: &FakeConfig, reply: &Value, _method: &str) -> Response {
    if !cfg.sse_replies {
        return json_response(StatusCode::OK, reply);
    }
    let note = json!({"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "info", "data": "working"}});
    let request = json!({"jsonrpc": "2.0", "id": "srv-1", "method": "ping"});
    let body = format!(
        "id: 0\ndata:\n\n: keep-alive\n\nevent: message\ndata: {note}\n\ndata: {request}\n\nid: 1\nevent: message\ndata: {reply}\n\n"
    );
    sse_response(Body::from(body))
}

/// GET /sse: the 2024 stream. First event `endpoint`, then replies to POSTs.
async fn sse_open(State(s): State<AppState>, headers: HeaderMap) -> Response {
    let cfg = s.config.lock().unwrap().clone();
    if !authorized(&cfg, &headers, &s.seen) {
        return unauthorized(&s, &cfg, &headers);
    }
    let sid = format!("sse-{}", s.sse_streams.lock().unwrap().len() + 1);
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    s.sse_streams.lock().unwrap().insert(sid.clone(), tx);
    s.seen.lock().unwrap().sessions_opened.push(sid.clone());
    let first = format!("event: endpoint\ndata: /messages?session_id={sid}\n\n");
    let stream = async_stream::stream! {
        yield Ok::<_, Infallible>(Bytes::from(first));
        while let Some(msg) = rx.recv().await {
            yield Ok(Bytes::from(format!("event: message\ndata: {msg}\n\n")));
        }
    };
    sse_response(Body::from_stream(stream))
}

/// POST /messages?session_id=…: 202 now, the reply on the stream.
async fn sse_message(
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let cfg = s.config.lock().unwrap().clone();
    if !authorized(&cfg, &headers, &s.seen) {
        return unauthorized(&s, &cfg, &headers);
    }
    let Some(tx) = q
        .get("session_id")
        .and_then(|sid| s.sse_streams.lock().unwrap().get(sid).cloned())
    else {
        return (StatusCode::NOT_FOUND, "unknown session").into_response();
    };
    let Ok(msg) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "bad json").into_response();
    };
    let method = msg
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    s.seen.lock().unwrap().methods.push(method.clone());
    let id = msg.get("id").cloned();
    if cfg.fault_on == method && cfg.fault == Fault::Hang {
        return StatusCode::ACCEPTED.into_response();
    }
    let reply = match (method.as_str(), id) {
        (_, None) => None,
        ("initialize", Some(id)) => Some(
            json!({"jsonrpc": "2.0", "id": id, "result": {"protocolVersion": "2024-11-05", "capabilities": {"tools": {}}, "serverInfo": {"name": "fake-sse", "version": "0.9.0"}}}),
        ),
        ("tools/list", Some(id)) => {
            // A list_changed notification first, as the TypeScript server can send.
            let _ = tx.send(
                json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}).to_string(),
            );
            Some(tools_page(&cfg, id, &msg))
        }
        (_, Some(id)) => Some(rpc_error(id, -32601, "Method not found", None)),
    };
    if let Some(r) = reply {
        let _ = tx.send(r.to_string());
    }
    (StatusCode::ACCEPTED, "Accepted").into_response()
}

/// Accept TLS connections and serve the router on each (HTTP/1.1).
async fn serve_tls(
    listener: tokio::net::TcpListener,
    app: Router,
    tls: Arc<tokio_rustls::rustls::ServerConfig>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    while let Ok((tcp, _)) = listener.accept().await {
        let acceptor = acceptor.clone();
        let app = app.clone();
        tokio::spawn(async move {
            // A failed handshake (the client refused our certificate) just ends this connection.
            let Ok(stream) = acceptor.accept(tcp).await else {
                return;
            };
            let service = hyper_util::service::TowerToHyperService::new(app);
            let _ =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
        });
    }
}
