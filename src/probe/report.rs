//! What one probe found: the [`ProbeReport`], its [`Verdict`] and, for a failure, exactly one
//! [`FailureKind`] from a closed set plus the [`Phase`] it happened in.
//!
//! These types are the contract between the probe and everything after it (CLI, store,
//! evaluator, alerts), so their serialized names are stable and documented in the README.

use serde::{Deserialize, Serialize};

use super::era::Era;

/// The outcome of a probe, from the point of view of an MCP client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The server completed the handshake and listed at least one valid tool.
    Up,
    /// Correct answers, but slower than the latency threshold or with warnings.
    Degraded,
    /// The server asks for credentials (401/403 with a challenge or protected-resource
    /// metadata): alive, but protected.
    AuthRequired,
    /// The server is not serving MCP tools; `failure` says why.
    Down,
}

impl Verdict {
    /// The snake_case name used in JSON and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Up => "up",
            Verdict::Degraded => "degraded",
            Verdict::AuthRequired => "auth_required",
            Verdict::Down => "down",
        }
    }
}

/// Why a probe is `down`. A closed set: every failure maps to exactly one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FailureKind {
    /// The host name did not resolve.
    Dns,
    /// No TCP connection (refused, reset, unreachable).
    Connect,
    /// The TLS handshake failed; the message carries the certificate reason.
    Tls,
    /// The probe's deadline passed; the phase says where.
    Timeout,
    /// HTTP answered with a status that is not part of MCP (404, 500, an unfollowed redirect…).
    HttpStatus,
    /// HTTP 2xx, but the body is not JSON-RPC (an HTML page, plain text): "HTTP alive, MCP dead".
    NotMcp,
    /// JSON-RPC error, or a result that breaks the protocol (wrong id, invalid fields,
    /// unsupported version, duplicate tools, cursor cycle…).
    Protocol,
    /// `tools/list` succeeded but returned no tools.
    EmptyTools,
    /// The address policy refused the target (private, loopback, link-local… address).
    Blocked,
    /// A size cap was hit (body, decoded body, SSE stream, page count).
    TooLarge,
    /// The probe's OAuth identity could not get a token (phase `token`): the token endpoint
    /// refused the client (a wrong or expired secret) or could not be reached. The MCP server
    /// itself was not asked.
    Auth,
    /// The server asks for OAuth, but its discovery chain is broken (metadata missing,
    /// unreachable or inconsistent): no spec-following client can log in.
    AuthDiscovery,
    /// A synthetic tool call the operator configured failed (phase `tool_call`): an error,
    /// `isError`, output off its schema, an expectation or latency bound missed, or a tool
    /// that may not be called. The server itself answered MCP.
    ToolCall,
    /// The streaming check (phase `tool_call`): the streaming tool's progress notifications
    /// did not stream (all arrived together at the end: an intermediary buffers the stream),
    /// or none arrived. The server itself answered MCP.
    Streaming,
}

impl FailureKind {
    /// The snake_case name used in JSON, metrics and alerts.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Dns => "dns",
            FailureKind::Connect => "connect",
            FailureKind::Tls => "tls",
            FailureKind::Timeout => "timeout",
            FailureKind::HttpStatus => "http_status",
            FailureKind::NotMcp => "not_mcp",
            FailureKind::Protocol => "protocol",
            FailureKind::EmptyTools => "empty_tools",
            FailureKind::Blocked => "blocked",
            FailureKind::TooLarge => "too_large",
            FailureKind::Auth => "auth",
            FailureKind::AuthDiscovery => "auth_discovery",
            FailureKind::ToolCall => "tool_call",
            FailureKind::Streaming => "streaming",
        }
    }

    /// One line telling an operator where to look first.
    pub fn hint(self) -> &'static str {
        match self {
            FailureKind::Dns => "check the host name and its DNS records",
            FailureKind::Connect => "check that the server is running and reachable on that port",
            FailureKind::Tls => "check the certificate chain, expiry and host name",
            FailureKind::Timeout => "the server accepted the request but did not answer in time",
            FailureKind::HttpStatus => {
                "check the URL path (often /mcp) and the server or proxy logs for that status"
            }
            FailureKind::NotMcp => {
                "the URL serves HTTP but not MCP: check the path and that the MCP handler is mounted"
            }
            FailureKind::Protocol => "the server speaks MCP incorrectly; see the message",
            FailureKind::EmptyTools => "the server lists no tools: check its tool registration",
            FailureKind::Blocked => {
                "the target resolves to a non-public address; allow-list its range if intended"
            }
            FailureKind::TooLarge => "the server sent more than the probe's size caps allow",
            FailureKind::Auth => {
                "check the probe's OAuth client (id, secret or key, token endpoint) and the authorization server"
            }
            FailureKind::AuthDiscovery => {
                "fix the step named: its metadata URL, issuer, token endpoint or PKCE S256 support"
            }
            FailureKind::ToolCall => {
                "the server is up but a tool it lists does not work as expected; see the message"
            }
            FailureKind::Streaming => {
                "progress does not reach clients as it happens: turn off response buffering in the proxy (nginx: proxy_buffering off)"
            }
        }
    }
}

/// `Display` and `FromStr` by the names `as_str` gives, which is how JSON, metrics and the store
/// write them (a name `from_str` does not know is an error that says so, never a default). The
/// enums a probe result carries use it here; the store's own (channel kind, delivery status) too.
macro_rules! parse_by_name {
    ($t:ident [$($v:ident),+ $(,)?]) => {
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl std::str::FromStr for $t {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                [$($t::$v),+]
                    .into_iter()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| format!("unknown {} '{s}'", stringify!($t)))
            }
        }
    };
}
pub(crate) use parse_by_name;

parse_by_name!(Verdict [Up, Degraded, AuthRequired, Down]);
parse_by_name!(FailureKind [
    Dns, Connect, Tls, Timeout, HttpStatus, NotMcp, Protocol, EmptyTools, Blocked, TooLarge,
    Auth, AuthDiscovery, ToolCall, Streaming,
]);
parse_by_name!(Phase [Dns, Connect, Tls, Handshake, ToolsList, Token, ToolCall]);

/// Where in the probe sequence something happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Resolving the host name.
    Dns,
    /// Opening the TCP connection.
    Connect,
    /// The TLS handshake.
    Tls,
    /// `server/discover`, `initialize` + `notifications/initialized`, or the SSE `endpoint` step.
    Handshake,
    /// Every page of `tools/list`.
    ToolsList,
    /// Obtaining the probe's OAuth access token (client credentials) from the token endpoint.
    Token,
    /// A synthetic `tools/call` the operator configured.
    ToolCall,
}

impl Phase {
    /// The snake_case name used in JSON and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Dns => "dns",
            Phase::Connect => "connect",
            Phase::Tls => "tls",
            Phase::Handshake => "handshake",
            Phase::ToolsList => "tools_list",
            Phase::Token => "token",
            Phase::ToolCall => "tool_call",
        }
    }

    /// How the phase reads in a sentence ("tools/list timed out").
    pub fn describe(self) -> &'static str {
        match self {
            Phase::Dns => "DNS lookup",
            Phase::Connect => "TCP connect",
            Phase::Tls => "TLS handshake",
            Phase::Handshake => "MCP handshake",
            Phase::ToolsList => "tools/list",
            Phase::Token => "OAuth token request",
            Phase::ToolCall => "tools/call",
        }
    }
}

/// A failed probe: one kind, the phase, and the evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Failure {
    pub kind: FailureKind,
    pub phase: Phase,
    /// Human-readable; never contains credentials or URL query strings.
    pub message: String,
    pub http_status: Option<u16>,
    pub jsonrpc_code: Option<i64>,
}

impl Failure {
    pub fn new(kind: FailureKind, phase: Phase, message: impl Into<String>) -> Self {
        Failure {
            kind,
            phase,
            message: message.into(),
            http_status: None,
            jsonrpc_code: None,
        }
    }

    /// Whether this failed before any HTTP answer could arrive (DNS, TCP connect, TLS, or
    /// the address policy): another request to the same URL would fail the same way.
    pub fn is_before_http(&self) -> bool {
        self.kind == FailureKind::Blocked
            || matches!(self.phase, Phase::Dns | Phase::Connect | Phase::Tls)
    }

    pub fn with_status(mut self, status: u16) -> Self {
        self.http_status = Some(status);
        self
    }

    pub fn with_code(mut self, code: i64) -> Self {
        self.jsonrpc_code = Some(code);
        self
    }
}

/// `serverInfo` as the server reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ServerInfo {
    pub name: String,
    pub version: String,
}

/// Milliseconds per phase. A phase that did not happen (no TLS on http, no DNS for an IP
/// literal, a failure before it) is `null`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Timings {
    pub dns: Option<f64>,
    pub connect: Option<f64>,
    pub tls: Option<f64>,
    pub handshake: Option<f64>,
    pub tools_list: Option<f64>,
    pub total: f64,
}

/// The HTTP status of one request the probe made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HttpStep {
    /// `GET`, `POST` or `DELETE`.
    pub http_method: String,
    /// The JSON-RPC method (or `sse` for the 2024 stream, `session` for DELETE).
    pub rpc: String,
    pub status: u16,
}

/// What a 401/403 told us about how to authenticate.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuthChallenge {
    /// 401 or 403.
    pub http_status: u16,
    /// The auth scheme of the first challenge (`Bearer`), if any.
    pub scheme: Option<String>,
    /// `resource_metadata` from the challenge, or the well-known URL that answered.
    pub resource_metadata: Option<String>,
    pub scope: Option<String>,
    /// The `error` parameter (`invalid_token`, `insufficient_scope`).
    pub error: Option<String>,
    /// Whether the probe sent configured credentials: a 401 despite them means they failed.
    pub credentials_sent: bool,
    /// The OAuth discovery chain behind the challenge (probes without credentials only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovery: Option<super::discovery::Discovery>,
}

/// The server's TLS certificate, for expiry monitoring.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TlsCertInfo {
    /// notAfter of the leaf certificate, RFC 3339.
    pub not_after: String,
    /// notAfter as Unix seconds (for metrics).
    pub not_after_unix: i64,
}

/// Everything one probe measured. Serialized as the `--json` output of `mcpwatch check`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProbeReport {
    /// The target, with userinfo removed and any query string redacted.
    pub url: String,
    pub verdict: Verdict,
    pub failure: Option<Failure>,
    /// The era the probe found (or was forced to).
    pub era: Option<Era>,
    pub protocol_version: Option<String>,
    pub server_info: Option<ServerInfo>,
    /// Whether the server assigned an `Mcp-Session-Id`.
    pub session: bool,
    /// `tools/list` pages fetched.
    pub pages: u32,
    pub tools_count: usize,
    /// Tool names, sorted.
    pub tool_names: Vec<String>,
    /// `sha256:` + hex of the RFC 8785 canonical tool list; see `schema`.
    pub schema_hash: Option<String>,
    /// The same over names and input schemas only: unchanged by a description edit.
    pub interface_hash: Option<String>,
    pub timings_ms: Timings,
    pub http: Vec<HttpStep>,
    pub auth: Option<AuthChallenge>,
    pub tls: Option<TlsCertInfo>,
    /// Problems that did not stop the probe but make it `degraded` (failed session DELETE…).
    pub warnings: Vec<String>,
    /// Observations that change nothing (an ignored empty cursor, a missing optional field).
    pub notes: Vec<String>,
    /// RFC 3339 time the probe started.
    pub started_at: String,
    /// The W3C trace id every request of this probe carried in `traceparent` (header and
    /// `_meta`): search the server's traces and logs for it. `None` when nothing was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// What each synthetic tool call did, in the order configured (absent when none was).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub calls: Vec<super::calls::CallOutcome>,
    /// The server's other lists (resources, resource templates, prompts) when it advertises
    /// them and the target lists them: each kind's count and canonical hash.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contract: Vec<super::contract::ListedKind>,
    /// What the streaming check saw (absent when none was asked for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<super::stream::StreamOutcome>,
    /// The tool list as received (all pages, server order). Not part of the JSON report:
    /// `snapshot` writes its canonical form.
    #[serde(skip)]
    pub tools: Vec<serde_json::Value>,
}

impl ProbeReport {
    /// A `down` report with nothing measured yet; the engine fills it in.
    pub fn new(url: String, started_at: String) -> Self {
        ProbeReport {
            url,
            verdict: Verdict::Down,
            failure: None,
            era: None,
            protocol_version: None,
            server_info: None,
            session: false,
            pages: 0,
            tools_count: 0,
            tool_names: Vec::new(),
            schema_hash: None,
            interface_hash: None,
            timings_ms: Timings::default(),
            http: Vec::new(),
            auth: None,
            tls: None,
            warnings: Vec::new(),
            notes: Vec::new(),
            started_at,
            trace_id: None,
            calls: Vec::new(),
            stream: None,
            contract: Vec::new(),
            tools: Vec::new(),
        }
    }

    /// Healthy for a deploy gate: `up` or `degraded`, and `auth_required` when allowed.
    pub fn is_healthy(&self, allow_auth_required: bool) -> bool {
        match self.verdict {
            // A failed synthetic call leaves the server `degraded`, but a deploy gate that asked
            // for the call must not pass it.
            Verdict::Up | Verdict::Degraded => {
                self.calls.iter().all(|c| c.failure.is_none())
                    && self.stream.as_ref().is_none_or(|s| s.failure.is_none())
            }
            Verdict::AuthRequired => allow_auth_required,
            Verdict::Down => false,
        }
    }
}

#[cfg(test)]
mod name_tests {
    use super::*;

    #[test]
    fn stored_names_read_back_and_unknown_names_are_refused() {
        for v in [
            Verdict::Up,
            Verdict::Degraded,
            Verdict::AuthRequired,
            Verdict::Down,
        ] {
            assert_eq!(v.as_str().parse::<Verdict>(), Ok(v));
            assert_eq!(serde_json::to_value(v).unwrap(), v.as_str());
        }
        for k in [
            FailureKind::Timeout,
            FailureKind::NotMcp,
            FailureKind::TooLarge,
        ] {
            assert_eq!(k.as_str().parse::<FailureKind>(), Ok(k));
        }
        assert_eq!("tools_list".parse::<Phase>(), Ok(Phase::ToolsList));
        assert_eq!(
            "sideways".parse::<Verdict>(),
            Err("unknown Verdict 'sideways'".to_string())
        );
    }
}
