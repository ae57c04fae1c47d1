//! The 2026-07-28 era: stateless requests, each carrying `_meta` and the `MCP-Protocol-Version`
//! and `Mcp-Method` headers; `server/discover` first.
//!
//! Fallback to the initialize era follows the spec's backward-compatibility rules: a 4xx (or a
//! 200) without a recognized modern error, or a result without `supportedVersions`, means a
//! legacy server. A recognized modern error (-32020 … -32022) means a modern server: we retry
//! with a version it lists, or fail, but never fall back.

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{Value, json};
use url::Url;

use super::era::{MODERN_VERSION, speaks_initialize_version};
use super::exchange::{Run, Stop, rpc_failure, status_failure};
use super::jsonrpc::{self, Reply, RpcError};
use super::report::{Failure, FailureKind, Phase, ServerInfo};
use super::tools::{Transport, check_result_type};
use super::{client_capabilities, client_info};

/// Modern error codes: HeaderMismatch, MissingRequiredClientCapability, UnsupportedProtocolVersion.
const MODERN_ERRORS: [i64; 3] = [-32020, -32021, -32022];
const UNSUPPORTED_VERSION: i64 = -32022;

pub(crate) struct Stateless {
    url: Url,
    version: String,
}

/// What `server/discover` told us.
pub(crate) struct Discovered {
    pub protocol_version: String,
    pub server_info: Option<ServerInfo>,
    /// The lists beside tools its capabilities advertise.
    pub advertised: super::contract::Advertised,
}

impl Transport for Stateless {
    async fn call(
        &mut self,
        run: &mut Run,
        method: &str,
        params: Value,
        phase: Phase,
    ) -> Result<Value, Stop> {
        let id = run.next_id();
        let message = run.request(id, method, with_meta(params, &self.version));
        let (resp, url) = run
            .post(&self.url, &message, headers(&self.version, method), phase)
            .await?;
        run.result_of(resp, &url, id, method, phase).await
    }

    async fn call_tool(
        &mut self,
        run: &mut Run,
        params: Value,
        extra: HeaderMap,
        phase: Phase,
    ) -> Result<Value, Stop> {
        let method = "tools/call";
        let id = run.next_id();
        let message = run.request(id, method, with_meta(params, &self.version));
        let mut headers = headers(&self.version, method);
        headers.extend(extra);
        let (resp, url) = run.post(&self.url, &message, headers, phase).await?;
        run.result_of(resp, &url, id, method, phase).await
    }
}

fn with_meta(mut params: Value, version: &str) -> Value {
    let meta = json!({
        "io.modelcontextprotocol/protocolVersion": version,
        "io.modelcontextprotocol/clientCapabilities": client_capabilities(),
        "io.modelcontextprotocol/clientInfo": client_info(),
    });
    // Merged into any `_meta` the request has (a call's `progressToken`).
    if let Some(obj) = params.as_object_mut() {
        let slot = obj.entry("_meta").or_insert_with(|| json!({}));
        match (slot.as_object_mut(), meta) {
            (Some(existing), Value::Object(ours)) => existing.extend(ours),
            (_, meta) => *slot = meta,
        }
    }
    params
}

fn headers(version: &str, method: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(version) {
        h.insert("mcp-protocol-version", v);
    }
    if let Ok(v) = HeaderValue::from_str(method) {
        h.insert("mcp-method", v);
    }
    h
}

/// `server/discover`, retried once on -32022 with a version the server lists.
pub(crate) async fn handshake(run: &mut Run, url: &Url) -> Result<(Stateless, Discovered), Stop> {
    let phase = Phase::Handshake;
    run.enter(phase);
    let mut version = MODERN_VERSION.to_string();
    for attempt in 0..2 {
        match discover_once(run, url, &version).await? {
            DiscoverAnswer::Result(result, answered) => {
                let found = validate(run, &result, &version)?;
                run.leave(phase);
                return Ok((
                    Stateless {
                        url: answered,
                        version,
                    },
                    found,
                ));
            }
            DiscoverAnswer::Supported(list) => {
                let ours = list.iter().find(|v| v.as_str() == MODERN_VERSION);
                match ours {
                    Some(v) if attempt == 0 && *v != version => version = v.clone(),
                    _ if list.iter().any(|v| speaks_initialize_version(v)) => {
                        return Err(Stop::NotThisEra(Failure::new(
                            FailureKind::Protocol,
                            phase,
                            format!("server/discover: server supports only {}", list.join(", ")),
                        )));
                    }
                    _ => {
                        return Err(Stop::Failed(
                            Failure::new(
                                FailureKind::Protocol,
                                phase,
                                format!(
                                    "server supports protocol versions {} and mcpwatch speaks none of them",
                                    list.join(", ")
                                ),
                            )
                            .with_code(UNSUPPORTED_VERSION),
                        ));
                    }
                }
            }
        }
    }
    Err(Stop::Failed(Failure::new(
        FailureKind::Protocol,
        phase,
        "server/discover kept rejecting the protocol version it listed as supported",
    )))
}

enum DiscoverAnswer {
    Result(Value, Url),
    /// -32022 with `data.supported`.
    Supported(Vec<String>),
}

async fn discover_once(run: &mut Run, url: &Url, version: &str) -> Result<DiscoverAnswer, Stop> {
    let phase = Phase::Handshake;
    let method = "server/discover";
    let id = run.next_id();
    let message = run.request(id, method, with_meta(json!({}), version));
    let (mut resp, answered) = run
        .post(url, &message, headers(version, method), phase)
        .await
        .map_err(before_http_is_final)?;
    if let Some(challenge) = run.auth_challenge(&resp, &answered).await {
        return Err(Stop::Auth(Box::new(challenge)));
    }
    let status = resp.status();
    // Below, every answer that does not prove a 2026 server is "older era" (table row 5…9).
    let reply = jsonrpc::read_reply(&run.http, &mut resp, Some(id), phase)
        .await
        .map_err(Stop::NotThisEra)?;
    match reply {
        Reply::Message(msg) => match RpcError::from_value(&msg) {
            Some(err) => modern_error(&err, status)
                .unwrap_or_else(|| Err(Stop::NotThisEra(rpc_failure(&err, method, phase, status)))),
            None => {
                let result = msg.get("result").cloned().unwrap_or(Value::Null);
                if result.get("supportedVersions").is_some() && status.is_success() {
                    Ok(DiscoverAnswer::Result(result, answered))
                } else {
                    Err(Stop::NotThisEra(Failure::new(
                        FailureKind::Protocol,
                        phase,
                        format!(
                            "server/discover: HTTP {} with a result without supportedVersions",
                            status.as_u16()
                        ),
                    )))
                }
            }
        },
        Reply::NotJsonRpc {
            content_type,
            snippet,
        } if status.is_success() => Err(Stop::NotThisEra(
            Failure::new(
                FailureKind::NotMcp,
                phase,
                format!(
                    "{method}: HTTP {} with {content_type} instead of JSON-RPC: {snippet}",
                    status.as_u16()
                ),
            )
            .with_status(status.as_u16()),
        )),
        // The Python SDK 1.x answers with the id "server-error": an id that is not ours does
        // not show that the server speaks 2026, so it is no reason to stop (table row 7).
        Reply::NoMatch { ids } => Err(Stop::NotThisEra(
            Failure::new(
                FailureKind::Protocol,
                phase,
                format!(
                    "{method}: HTTP {} answered with id {}, not ours ({id})",
                    status.as_u16(),
                    ids.join(", ")
                ),
            )
            .with_status(status.as_u16()),
        )),
        other => Err(Stop::NotThisEra(status_failure(
            status, &other, method, phase,
        ))),
    }
}

/// A recognized 2026 error proves a 2026 server: retry with a version it lists, or stop.
/// `None` for any other error (an older server's way of refusing an unknown request).
fn modern_error(err: &RpcError, status: StatusCode) -> Option<Result<DiscoverAnswer, Stop>> {
    let phase = Phase::Handshake;
    let supported: Vec<String> = err
        .data
        .as_ref()
        .and_then(|d| d.get("supported"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    if err.code == UNSUPPORTED_VERSION && !supported.is_empty() {
        return Some(Ok(DiscoverAnswer::Supported(supported)));
    }
    if !MODERN_ERRORS.contains(&err.code) {
        return None;
    }
    Some(Err(Stop::Failed(rpc_failure(
        err,
        "server/discover",
        phase,
        status,
    ))))
}

/// A failure before any HTTP answer (DNS, refused, TLS, the address policy) would repeat for
/// every era: final. One after the request went out (the connection broke mid-answer) is not.
fn before_http_is_final(stop: Stop) -> Stop {
    match stop {
        Stop::Failed(f) if f.is_before_http() => Stop::Failed(f),
        Stop::Failed(f) => Stop::NotThisEra(f),
        other => other,
    }
}

fn validate(run: &Run, result: &Value, version: &str) -> Result<Discovered, Failure> {
    let phase = Phase::Handshake;
    check_result_type(result, "server/discover", phase)?;
    let invalid = |why: &str| {
        Failure::new(
            FailureKind::Protocol,
            phase,
            format!("server/discover result {why}"),
        )
    };
    let supported = result
        .get("supportedVersions")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("has a supportedVersions that is not an array"))?;
    if !supported.iter().any(|v| v.as_str() == Some(version)) {
        run.warn(format!(
            "server/discover does not list {version} in supportedVersions but answered it"
        ));
    }
    let caps = result
        .get("capabilities")
        .and_then(Value::as_object)
        .ok_or_else(|| invalid("has no capabilities object"))?;
    if !caps.contains_key("tools") {
        run.warn("server does not declare the tools capability");
    }
    let info = result
        .get("_meta")
        .and_then(|m| m.get("io.modelcontextprotocol/serverInfo"))
        .or_else(|| result.get("serverInfo"));
    let server_info = match info {
        Some(i) => Some(super::streamable::parse_server_info(i, "server/discover")?),
        None => {
            run.note("server/discover has no serverInfo (optional in 2026-07-28)");
            None
        }
    };
    Ok(Discovered {
        protocol_version: version.to_string(),
        server_info,
        advertised: super::contract::Advertised::from_capabilities(&Value::Object(caps.clone())),
    })
}
