//! What every era shares: the per-probe run state, sending a JSON-RPC POST, turning an HTTP
//! answer into a result or exactly one failure, and recognising an auth challenge.
//!
//! Progress lives behind a mutex shared with the engine, so when the deadline cuts a probe
//! off mid-step the report still says which phase it was in and which session to close.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderValue, WWW_AUTHENTICATE};
use reqwest::{Method, Response, StatusCode};
use serde_json::Value;
use url::Url;

use super::calls::CallPlan;
use super::discovery::prm_candidates;
use super::era::Era;
use super::jsonrpc::{self, Reply, RpcError};
use super::net::{Http, redact_url};
use super::report::{AuthChallenge, Failure, FailureKind, HttpStep, Phase, ServerInfo};
use super::trace;

/// Why an era attempt stopped.
#[derive(Debug)]
pub(crate) enum Stop {
    /// The server does not speak this era; the failure is the evidence (used if no era works).
    NotThisEra(Failure),
    /// The server speaks this era (or we cannot tell) and failed: final.
    Failed(Failure),
    /// The server asks for credentials: final, `auth_required` (boxed: with its discovery
    /// chain it is the largest variant by far).
    Auth(Box<AuthChallenge>),
}

impl From<Failure> for Stop {
    fn from(f: Failure) -> Self {
        Stop::Failed(f)
    }
}

/// Everything the probe learned so far, readable after a timeout.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    pub phase: Option<Phase>,
    pub era: Option<Era>,
    pub steps: Vec<HttpStep>,
    pub warnings: Vec<String>,
    pub notes: Vec<String>,
    pub protocol_version: Option<String>,
    pub server_info: Option<ServerInfo>,
    /// Session to DELETE when the probe ends, with its protocol version and endpoint.
    pub open_session: Option<(String, String, Url)>,
    pub session_seen: bool,
    pub handshake: Option<(Instant, Option<Instant>)>,
    pub tools_list: Option<(Instant, Option<Instant>)>,
    pub pages: u32,
    /// What each era that did not answer as such said, in order (`era: message`).
    pub fallbacks: Vec<String>,
}

/// The state one probe carries through its eras.
pub(crate) struct Run {
    pub http: Arc<Http>,
    pub progress: Arc<Mutex<Progress>>,
    pub max_pages: u32,
    /// The synthetic tool calls to make after `tools/list` (usually none).
    pub calls: Option<Arc<CallPlan>>,
    /// When the probe's deadline passes: a call stops short of it, so a tool that hangs is
    /// that call's failure, not the probe's timeout.
    pub deadline: Option<tokio::time::Instant>,
    /// While the streaming check's call runs: when each `notifications/progress` arrived.
    pub progress_watch: Option<Arc<Mutex<Vec<std::time::Instant>>>>,
    /// List resources, templates and prompts when advertised (`contract.rs`).
    pub list_contract: bool,
    next_id: u64,
}

impl Run {
    pub(crate) fn new(http: Arc<Http>, progress: Arc<Mutex<Progress>>, max_pages: u32) -> Self {
        Run {
            http,
            progress,
            max_pages,
            calls: None,
            deadline: None,
            progress_watch: None,
            list_contract: false,
            next_id: 0,
        }
    }

    pub(crate) fn with<T>(&self, f: impl FnOnce(&mut Progress) -> T) -> T {
        let mut guard = self.progress.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }

    pub(crate) fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// A JSON-RPC request carrying this probe's trace in `params._meta.traceparent`.
    pub(crate) fn request(&self, id: u64, method: &str, params: Value) -> Value {
        let mut message = jsonrpc::request(id, method, params);
        trace::add_to_meta(&mut message, self.http.trace().traceparent());
        message
    }

    pub(crate) fn enter(&self, phase: Phase) {
        self.with(|p| {
            p.phase = Some(phase);
            let now = Instant::now();
            match phase {
                Phase::Handshake if p.handshake.is_none() => p.handshake = Some((now, None)),
                Phase::ToolsList if p.tools_list.is_none() => p.tools_list = Some((now, None)),
                _ => {}
            }
        });
    }

    pub(crate) fn leave(&self, phase: Phase) {
        self.with(|p| {
            let slot = match phase {
                Phase::Handshake => &mut p.handshake,
                Phase::ToolsList => &mut p.tools_list,
                _ => return,
            };
            if let Some((_, end)) = slot {
                *end = Some(Instant::now());
            }
        });
    }

    pub(crate) fn warn(&self, w: impl Into<String>) {
        let w = w.into();
        self.with(|p| p.warnings.push(w));
    }

    pub(crate) fn note(&self, n: impl Into<String>) {
        let n = n.into();
        self.with(|p| p.notes.push(n));
    }

    pub(crate) fn step(&self, method: &Method, rpc: &str, status: StatusCode) {
        self.with(|p| {
            p.steps.push(HttpStep {
                http_method: method.to_string(),
                rpc: rpc.to_string(),
                status: status.as_u16(),
            })
        });
    }

    /// POST a JSON-RPC message with the standard headers plus `extra`. Records the status.
    pub(crate) async fn post(
        &self,
        url: &Url,
        message: &Value,
        extra: HeaderMap,
        phase: Phase,
    ) -> Result<(Response, Url), Stop> {
        let mut headers = extra;
        trace::header_for(message, &mut headers);
        headers.insert(
            ACCEPT,
            HeaderValue::from_static("application/json, text/event-stream"),
        );
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let body = serde_json::to_vec(message).unwrap_or_default();
        let (resp, answered) = self
            .http
            .send(Method::POST, url, headers, Some(body), phase)
            .await?;
        let rpc = message.get("method").and_then(Value::as_str).unwrap_or("?");
        self.step(&Method::POST, rpc, resp.status());
        if answered != *url {
            self.note_redirect(url, &answered);
        }
        Ok((resp, answered))
    }

    /// A followed POST redirect is worth one note per probe: the server works, but every
    /// client pays a round trip, and the registered URL is not the one that answers.
    fn note_redirect(&self, from: &Url, to: &Url) {
        let note = format!(
            "POST {} was redirected to {}; register that URL to save a round trip",
            redact_url(from),
            redact_url(to)
        );
        self.with(|p| {
            if !p.notes.contains(&note) {
                p.notes.push(note);
            }
        });
    }

    /// Turn an answer to request `id` into its `result`, or exactly one failure.
    /// 401/403 become [`Stop::Auth`] when they carry a challenge or metadata.
    pub(crate) async fn result_of(
        &self,
        mut resp: Response,
        url: &Url,
        id: u64,
        method: &str,
        phase: Phase,
    ) -> Result<Value, Stop> {
        let status = resp.status();
        if let Some(challenge) = self.auth_challenge(&resp, url).await {
            return Err(Stop::Auth(Box::new(challenge)));
        }
        let watch = self.progress_watch.as_deref();
        let reply =
            jsonrpc::read_reply_watching(&self.http, &mut resp, Some(id), phase, watch).await?;
        match (status.is_success(), reply) {
            (_, Reply::Message(msg)) => {
                if let Some(err) = RpcError::from_value(&msg) {
                    return Err(Stop::Failed(rpc_failure(&err, method, phase, status)));
                }
                let result = msg.get("result").cloned().unwrap_or(Value::Null);
                if !result.is_object() {
                    return Err(Stop::Failed(Failure::new(
                        FailureKind::Protocol,
                        phase,
                        format!("{method} result is not an object"),
                    )));
                }
                if !status.is_success() {
                    self.warn(format!("{method} answered HTTP {status} with a result"));
                }
                Ok(result)
            }
            (false, reply) => Err(Stop::Failed(status_failure(status, &reply, method, phase))),
            (
                true,
                Reply::NotJsonRpc {
                    content_type,
                    snippet,
                },
            ) => Err(Stop::Failed(
                Failure::new(
                    FailureKind::NotMcp,
                    phase,
                    format!(
                        "{method}: HTTP {} with {} instead of JSON-RPC: {snippet}",
                        status.as_u16(),
                        if content_type.is_empty() {
                            "no content type"
                        } else {
                            &content_type
                        },
                    ),
                )
                .with_status(status.as_u16()),
            )),
            (true, Reply::Empty) => Err(Stop::Failed(
                Failure::new(
                    FailureKind::Protocol,
                    phase,
                    format!(
                        "{method}: HTTP {} with no JSON-RPC response",
                        status.as_u16()
                    ),
                )
                .with_status(status.as_u16()),
            )),
            (true, Reply::NoMatch { ids }) => Err(Stop::Failed(Failure::new(
                FailureKind::Protocol,
                phase,
                format!(
                    "{method}: response id {} does not match request id {id}",
                    ids.join(", ")
                ),
            ))),
        }
    }

    /// A 401/403 that says how to authenticate, by header or by protected-resource metadata.
    pub(crate) async fn auth_challenge(&self, resp: &Response, url: &Url) -> Option<AuthChallenge> {
        let status = resp.status();
        if status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN {
            return None;
        }
        let credentials_sent = self.http.sends_credentials();
        if let Some(header) = resp
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
        {
            let mut c = parse_www_authenticate(header);
            c.http_status = status.as_u16();
            c.credentials_sent = credentials_sent;
            if !credentials_sent {
                let named = c.resource_metadata.clone();
                c.discovery =
                    Some(super::discovery::discover(&self.http, url, named.as_deref()).await);
            }
            return Some(c);
        }
        // No challenge header: RFC 9728 protected-resource metadata still marks a protected API.
        for candidate in prm_candidates(url) {
            let Ok((mut meta, _)) = self
                .http
                .send(
                    Method::GET,
                    &candidate,
                    HeaderMap::new(),
                    None,
                    Phase::Handshake,
                )
                .await
            else {
                continue;
            };
            if !meta.status().is_success() {
                continue;
            }
            let Ok(body) = self.http.read_body(&mut meta, Phase::Handshake).await else {
                continue;
            };
            let doc: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            if doc.get("resource").is_some() {
                return Some(AuthChallenge {
                    http_status: status.as_u16(),
                    resource_metadata: Some(redact_url(&candidate)),
                    scope: doc
                        .get("scopes_supported")
                        .and_then(Value::as_array)
                        .map(|a| {
                            a.iter()
                                .filter_map(Value::as_str)
                                .collect::<Vec<_>>()
                                .join(" ")
                        }),
                    credentials_sent,
                    discovery: (!credentials_sent).then_some(
                        super::discovery::discover(&self.http, url, Some(candidate.as_str())).await,
                    ),
                    ..AuthChallenge::default()
                });
            }
        }
        None
    }
}

/// A JSON-RPC error as a failure (protocol, with its code).
pub(crate) fn rpc_failure(
    err: &RpcError,
    method: &str,
    phase: Phase,
    status: StatusCode,
) -> Failure {
    let mut f = Failure::new(
        FailureKind::Protocol,
        phase,
        format!(
            "{method} returned JSON-RPC error {}: {}",
            err.code, err.message
        ),
    )
    .with_code(err.code);
    if !status.is_success() {
        f = f.with_status(status.as_u16());
    }
    f
}

/// A non-2xx answer without a JSON-RPC response.
pub(crate) fn status_failure(
    status: StatusCode,
    reply: &Reply,
    method: &str,
    phase: Phase,
) -> Failure {
    let detail = match reply {
        Reply::NotJsonRpc { snippet, .. } if !snippet.is_empty() => format!(": {snippet}"),
        _ => String::new(),
    };
    let what = if status.is_redirection() {
        "redirect (not followed for POST)".to_string()
    } else {
        status.canonical_reason().unwrap_or("").to_string()
    };
    Failure::new(
        FailureKind::HttpStatus,
        phase,
        format!("{method}: HTTP {} {what}{detail}", status.as_u16()),
    )
    .with_status(status.as_u16())
}

/// Parse the first challenge of a `WWW-Authenticate` header (RFC 9110 §11.6.1).
pub(crate) fn parse_www_authenticate(header: &str) -> AuthChallenge {
    let mut c = AuthChallenge::default();
    let header = header.trim();
    let (scheme, rest) = header
        .split_once(char::is_whitespace)
        .unwrap_or((header, ""));
    if !scheme.is_empty() {
        c.scheme = Some(scheme.to_string());
    }
    let mut rest = rest.trim_start();
    while !rest.is_empty() {
        let Some(eq) = rest.find('=') else { break };
        let key = rest[..eq]
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let after = rest[eq + 1..].trim_start();
        let (value, remaining) = if let Some(quoted) = after.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((i, ch)) = chars.next() {
                match ch {
                    '\\' => {
                        if let Some((_, next)) = chars.next() {
                            value.push(next);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    _ => value.push(ch),
                }
            }
            (value, &quoted[end.min(quoted.len())..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_string(), &after[end..])
        };
        match key.as_str() {
            "resource_metadata" => c.resource_metadata = Some(value),
            "scope" => c.scope = Some(value),
            "error" => c.error = Some(value),
            _ => {}
        }
        rest = remaining.trim_start().trim_start_matches(',').trim_start();
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_challenges() {
        let c = parse_www_authenticate(
            r#"Bearer error="invalid_token", error_description="Missing \"Authorization\" header", resource_metadata="http://h/.well-known/oauth-protected-resource/mcp", scope="read write""#,
        );
        assert_eq!(c.scheme.as_deref(), Some("Bearer"));
        assert_eq!(c.error.as_deref(), Some("invalid_token"));
        assert_eq!(
            c.resource_metadata.as_deref(),
            Some("http://h/.well-known/oauth-protected-resource/mcp")
        );
        assert_eq!(c.scope.as_deref(), Some("read write"));
        let bare = parse_www_authenticate("Bearer realm=example, error=insufficient_scope");
        assert_eq!(bare.error.as_deref(), Some("insufficient_scope"));
        assert_eq!(
            parse_www_authenticate("Basic").scheme.as_deref(),
            Some("Basic")
        );
    }

    #[test]
    fn well_known_candidates_follow_rfc_9728() {
        let u = Url::parse("https://a.example/v1/mcp/").unwrap();
        let c: Vec<String> = prm_candidates(&u).iter().map(Url::to_string).collect();
        assert_eq!(
            c,
            vec![
                "https://a.example/.well-known/oauth-protected-resource/v1/mcp",
                "https://a.example/.well-known/oauth-protected-resource"
            ]
        );
    }
}
