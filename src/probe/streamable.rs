//! The 2025-03-26 … 2025-11-25 era: Streamable HTTP with `initialize`.
//!
//! We offer our newest initialize-era version and accept a counter-offer we speak (refusing one
//! we don't), send `notifications/initialized`, list tools with `Mcp-Session-Id` (when given)
//! and `MCP-Protocol-Version`, and the engine DELETEs the session at the end so probes never
//! leak sessions on the monitored server.

use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use url::Url;

use super::era::{INITIALIZE_VERSIONS, speaks_initialize_version};
use super::exchange::{Run, Stop, rpc_failure, status_failure};
use super::jsonrpc::{self, Reply, RpcError};
use super::report::{Failure, FailureKind, Phase, ServerInfo};
use super::tools::Transport;
use super::{client_capabilities, client_info};

const SESSION_HEADER: &str = "mcp-session-id";

pub(crate) struct Streamable {
    url: Url,
    version: String,
    session: Option<String>,
}

/// What `initialize` negotiated.
pub(crate) struct Initialized {
    pub protocol_version: String,
    pub server_info: ServerInfo,
    /// The lists beside tools its capabilities advertise.
    pub advertised: super::contract::Advertised,
}

impl Streamable {
    fn headers(&self) -> HeaderMap {
        session_headers(self.session.as_deref(), &self.version)
    }
}

fn session_headers(session: Option<&str>, version: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(version) {
        h.insert("mcp-protocol-version", v);
    }
    if let Some(Ok(v)) = session.map(HeaderValue::from_str) {
        h.insert(SESSION_HEADER, v);
    }
    h
}

impl Transport for Streamable {
    async fn call(
        &mut self,
        run: &mut Run,
        method: &str,
        params: Value,
        phase: Phase,
    ) -> Result<Value, Stop> {
        let id = run.next_id();
        let message = run.request(id, method, params);
        let (resp, url) = run.post(&self.url, &message, self.headers(), phase).await?;
        if resp.status() == StatusCode::NOT_FOUND && self.session.is_some() {
            return Err(Stop::Failed(
                Failure::new(
                    FailureKind::Protocol,
                    phase,
                    format!("{method}: HTTP 404 for our session: the server lost or expired it right after initialize"),
                )
                .with_status(404),
            ));
        }
        run.result_of(resp, &url, id, method, phase).await
    }
}

/// `initialize` + `notifications/initialized`. `may_fall_back`: a 400/404/405 without a
/// JSON-RPC error means "try HTTP+SSE" rather than "down".
pub(crate) async fn handshake(
    run: &mut Run,
    url: &Url,
    may_fall_back: bool,
) -> Result<(Streamable, Initialized), Stop> {
    let phase = Phase::Handshake;
    run.enter(phase);
    let method = "initialize";
    let id = run.next_id();
    let params = json!({
        "protocolVersion": INITIALIZE_VERSIONS[0],
        "capabilities": client_capabilities(),
        "clientInfo": client_info(),
    });
    let message = run.request(id, method, params);
    let (mut resp, answered) = run.post(url, &message, HeaderMap::new(), phase).await?;
    if let Some(challenge) = run.auth_challenge(&resp, &answered).await {
        return Err(Stop::Auth(Box::new(challenge)));
    }
    let status = resp.status();
    let session = resp
        .headers()
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let reply = jsonrpc::read_reply(&run.http, &mut resp, Some(id), phase).await?;
    let result = initialize_result(reply, status, id, may_fall_back)?;
    let init = validate_initialize(&result)?;
    if let Some(sid) = &session {
        check_session_id(sid)?;
        run.with(|p| {
            p.session_seen = true;
            p.open_session = Some((sid.clone(), init.protocol_version.clone(), answered.clone()));
        });
    }
    run.with(|p| {
        p.protocol_version = Some(init.protocol_version.clone());
        p.server_info = Some(init.server_info.clone());
    });
    let transport = Streamable {
        url: answered,
        version: init.protocol_version.clone(),
        session,
    };
    send_initialized(run, &transport).await?;
    run.leave(phase);
    Ok((transport, init))
}

/// The `initialize` answer's result, or why there is none: a JSON-RPC error, not MCP at all,
/// a wrong id, or a status that (when `may_fall_back`) means "try HTTP+SSE".
fn initialize_result(
    reply: Reply,
    status: StatusCode,
    id: u64,
    may_fall_back: bool,
) -> Result<Value, Stop> {
    let (method, phase) = ("initialize", Phase::Handshake);
    match reply {
        Reply::Message(msg) => match RpcError::from_value(&msg) {
            Some(err) => Err(Stop::Failed(rpc_failure(&err, method, phase, status))),
            None => Ok(msg.get("result").cloned().unwrap_or(Value::Null)),
        },
        Reply::NotJsonRpc {
            content_type,
            snippet,
        } if status.is_success() => Err(Stop::Failed(
            Failure::new(
                FailureKind::NotMcp,
                phase,
                format!(
                    "initialize: HTTP {} with {content_type} instead of JSON-RPC: {snippet}",
                    status.as_u16()
                ),
            )
            .with_status(status.as_u16()),
        )),
        // We asked in this era's own terms and the server answered 2xx: a wrong id is its fault.
        Reply::NoMatch { ids } if status.is_success() => Err(Stop::Failed(Failure::new(
            FailureKind::Protocol,
            phase,
            format!(
                "initialize: response id {} does not match request id {id}",
                ids.join(", ")
            ),
        ))),
        other => {
            let failure = status_failure(status, &other, method, phase);
            let legacy_status = matches!(status.as_u16(), 400 | 404 | 405);
            Err(if may_fall_back && legacy_status {
                Stop::NotThisEra(failure)
            } else {
                Stop::Failed(failure)
            })
        }
    }
}

/// A session id must be visible ASCII (the spec's rule; anything else cannot be sent back).
fn check_session_id(sid: &str) -> Result<(), Stop> {
    if sid.is_empty() || !sid.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(Stop::Failed(Failure::new(
            FailureKind::Protocol,
            Phase::Handshake,
            "initialize returned an Mcp-Session-Id with characters outside visible ASCII",
        )));
    }
    Ok(())
}

/// `notifications/initialized`: 202 expected; anything else is a warning, not a failure.
async fn send_initialized(run: &mut Run, transport: &Streamable) -> Result<(), Stop> {
    let phase = Phase::Handshake;
    let note = jsonrpc::notification("notifications/initialized", None);
    let (mut resp, _) = run
        .post(&transport.url, &note, transport.headers(), phase)
        .await?;
    let st = resp.status();
    let _ = run.http.read_body(&mut resp, phase).await;
    if !st.is_success() {
        run.warn(format!(
            "notifications/initialized answered HTTP {}",
            st.as_u16()
        ));
    } else if st != StatusCode::ACCEPTED {
        run.note(format!(
            "notifications/initialized answered HTTP {} (spec: 202)",
            st.as_u16()
        ));
    }
    Ok(())
}

/// Check an `initialize` result (any initialize-era transport) and read what it negotiated.
pub(crate) fn validate_initialize(result: &Value) -> Result<Initialized, Failure> {
    let phase = Phase::Handshake;
    let invalid = |why: String| {
        Failure::new(
            FailureKind::Protocol,
            phase,
            format!("initialize result {why}"),
        )
    };
    if !result.is_object() {
        return Err(invalid("is not an object".into()));
    }
    let version = result
        .get("protocolVersion")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("has no string protocolVersion".into()))?;
    if !speaks_initialize_version(version) {
        return Err(invalid(format!(
            "counter-offers protocol version {version}, which mcpwatch does not speak ({})",
            INITIALIZE_VERSIONS.join(", ")
        )));
    }
    let Some(capabilities) = result.get("capabilities").filter(|c| c.is_object()) else {
        return Err(invalid("has no capabilities object".into()));
    };
    let info = result
        .get("serverInfo")
        .ok_or_else(|| invalid("has no serverInfo".into()))?;
    Ok(Initialized {
        protocol_version: version.to_string(),
        server_info: parse_server_info(info, "initialize")?,
        advertised: super::contract::Advertised::from_capabilities(capabilities),
    })
}

/// `serverInfo` must carry a string `name` and `version`.
pub(crate) fn parse_server_info(info: &Value, method: &str) -> Result<ServerInfo, Failure> {
    let field = |k: &str| info.get(k).and_then(Value::as_str).map(str::to_string);
    match (field("name"), field("version")) {
        (Some(name), Some(version)) => Ok(ServerInfo { name, version }),
        _ => Err(Failure::new(
            FailureKind::Protocol,
            Phase::Handshake,
            format!("{method}: serverInfo needs a string name and version"),
        )),
    }
}

/// DELETE the session; 2xx and 405 (the server does not support explicit close) are fine.
pub(crate) async fn close_session(run: &Run, session: &str, version: &str, url: &Url) {
    let headers = session_headers(Some(session), version);
    match run
        .http
        .send(Method::DELETE, url, headers, None, Phase::ToolsList)
        .await
    {
        Ok((resp, _)) => {
            let st = resp.status();
            run.step(&Method::DELETE, "session", st);
            if !(st.is_success() || st == StatusCode::METHOD_NOT_ALLOWED) {
                run.warn(format!(
                    "session DELETE answered HTTP {}: the session may leak",
                    st.as_u16()
                ));
            }
        }
        Err(f) => run.warn(format!("session DELETE failed: {}", f.message)),
    }
}
