//! The 2024-11-05 era: HTTP+SSE. GET the URL for an event stream whose first event is
//! `endpoint`; POST messages there; replies arrive on the GET stream, matched by id.
//!
//! A reader task owns the stream, counts its bytes against the body cap, and forwards JSON-RPC
//! messages; it is aborted when the transport drops, which closes the stream.

use std::sync::Arc;

use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderValue};
use reqwest::{Method, Response};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use url::Url;

use super::era::HTTP_SSE_VERSION;
use super::exchange::{Run, Stop, status_failure};
use super::jsonrpc::{self, Reply, RpcError, snippet};
use super::net::{Http, redact_url};
use super::report::{Failure, FailureKind, Phase};
use super::sse::SseParser;
use super::tools::Transport;
use super::{client_capabilities, client_info};

/// What the reader task forwards.
enum StreamItem {
    Endpoint(String),
    Message(Value),
    /// The stream failed or ended; carries the failure to report if we still wait on it.
    Closed(Failure),
}

pub(crate) struct HttpSse {
    endpoint: Url,
    events: mpsc::UnboundedReceiver<StreamItem>,
    reader: JoinHandle<()>,
}

impl Drop for HttpSse {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl HttpSse {
    /// Wait for the response with our id, ignoring notifications and server requests (but
    /// noting in `watch` when each `notifications/progress` came, for the streaming check).
    async fn wait_for(
        &mut self,
        id: u64,
        method: &str,
        phase: Phase,
        watch: Option<&std::sync::Mutex<Vec<std::time::Instant>>>,
    ) -> Result<Value, Stop> {
        loop {
            match self.events.recv().await {
                Some(StreamItem::Message(msg)) => {
                    if let Some(w) = watch
                        && msg.get("method").and_then(Value::as_str)
                            == Some("notifications/progress")
                    {
                        w.lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push(std::time::Instant::now());
                    }
                    if msg.get("id") != Some(&json!(id)) {
                        continue;
                    }
                    if let Some(err) = RpcError::from_value(&msg) {
                        return Err(Stop::Failed(
                            Failure::new(
                                FailureKind::Protocol,
                                phase,
                                format!(
                                    "{method} returned JSON-RPC error {}: {}",
                                    err.code, err.message
                                ),
                            )
                            .with_code(err.code),
                        ));
                    }
                    let result = msg.get("result").cloned().unwrap_or(Value::Null);
                    if !result.is_object() {
                        return Err(Failure::new(
                            FailureKind::Protocol,
                            phase,
                            format!("{method} result is not an object"),
                        )
                        .into());
                    }
                    return Ok(result);
                }
                Some(StreamItem::Endpoint(_)) => continue,
                Some(StreamItem::Closed(mut f)) => {
                    f.phase = phase;
                    f.message = format!("{method}: {}", f.message);
                    return Err(Stop::Failed(f));
                }
                None => {
                    return Err(Failure::new(
                        FailureKind::Protocol,
                        phase,
                        format!("{method}: event stream ended"),
                    )
                    .into());
                }
            }
        }
    }

    async fn send(&mut self, run: &mut Run, message: &Value, phase: Phase) -> Result<(), Stop> {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        super::trace::header_for(message, &mut headers);
        let body = serde_json::to_vec(message).unwrap_or_default();
        let (mut resp, url) = run
            .http
            .send(Method::POST, &self.endpoint, headers, Some(body), phase)
            .await?;
        let rpc = message.get("method").and_then(Value::as_str).unwrap_or("?");
        run.step(&Method::POST, rpc, resp.status());
        if let Some(challenge) = run.auth_challenge(&resp, &url).await {
            return Err(Stop::Auth(Box::new(challenge)));
        }
        let status = resp.status();
        let body = run.http.read_body(&mut resp, phase).await?;
        if !status.is_success() {
            let reply = Reply::NotJsonRpc {
                content_type: String::new(),
                snippet: snippet(&body),
            };
            return Err(Stop::Failed(status_failure(status, &reply, rpc, phase)));
        }
        Ok(())
    }
}

impl Transport for HttpSse {
    async fn call(
        &mut self,
        run: &mut Run,
        method: &str,
        params: Value,
        phase: Phase,
    ) -> Result<Value, Stop> {
        let id = run.next_id();
        let message = run.request(id, method, params);
        self.send(run, &message, phase).await?;
        let watch = run.progress_watch.clone();
        self.wait_for(id, method, phase, watch.as_deref()).await
    }
}

/// Open the stream, take the endpoint, then `initialize` + `notifications/initialized`.
pub(crate) async fn handshake(
    run: &mut Run,
    url: &Url,
) -> Result<(HttpSse, super::streamable::Initialized), Stop> {
    let phase = Phase::Handshake;
    run.enter(phase);
    let mut headers = HeaderMap::new();
    headers.insert(ACCEPT, HeaderValue::from_static("text/event-stream"));
    let (resp, answered) = run
        .http
        .send(Method::GET, url, headers, None, phase)
        .await?;
    run.step(&Method::GET, "sse", resp.status());
    if let Some(challenge) = run.auth_challenge(&resp, &answered).await {
        return Err(Stop::Auth(Box::new(challenge)));
    }
    check_event_stream(&resp)?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let reader = tokio::spawn(read_stream(run.http.clone(), resp, tx));
    let endpoint_data = endpoint_event(&mut rx, &reader).await?;
    let endpoint = answered.join(endpoint_data.trim()).map_err(|e| {
        Failure::new(
            FailureKind::Protocol,
            phase,
            format!("endpoint event is not a valid URL ({e})"),
        )
    })?;
    if endpoint.origin() != answered.origin() {
        run.note(format!(
            "message endpoint is on another origin: {}",
            redact_url(&endpoint)
        ));
    }
    let mut transport = HttpSse {
        endpoint,
        events: rx,
        reader,
    };
    let init_params = json!({
        "protocolVersion": HTTP_SSE_VERSION,
        "capabilities": client_capabilities(),
        "clientInfo": client_info(),
    });
    let result = transport
        .call(run, "initialize", init_params, phase)
        .await?;
    let init = super::streamable::validate_initialize(&result)?;
    run.with(|p| {
        p.protocol_version = Some(init.protocol_version.clone());
        p.server_info = Some(init.server_info.clone());
    });
    transport
        .send(
            run,
            &jsonrpc::notification("notifications/initialized", None),
            phase,
        )
        .await?;
    run.leave(phase);
    Ok((transport, init))
}

/// The GET must answer 2xx with an event stream; anything else is not an HTTP+SSE server.
fn check_event_stream(resp: &Response) -> Result<(), Stop> {
    let phase = Phase::Handshake;
    let status = resp.status();
    let content_type = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if !status.is_success() {
        let reply = Reply::NotJsonRpc {
            content_type: String::new(),
            snippet: String::new(),
        };
        return Err(Stop::NotThisEra(status_failure(
            status,
            &reply,
            "GET (SSE)",
            phase,
        )));
    }
    if !content_type.starts_with("text/event-stream") {
        return Err(Stop::NotThisEra(
            Failure::new(
                FailureKind::NotMcp,
                phase,
                format!(
                    "GET answered {} instead of an event stream",
                    if content_type.is_empty() {
                        "no content type"
                    } else {
                        &content_type
                    }
                ),
            )
            .with_status(status.as_u16()),
        ));
    }
    Ok(())
}

/// The stream's first event, which must be `endpoint` (its data is the message URL).
async fn endpoint_event(
    rx: &mut mpsc::UnboundedReceiver<StreamItem>,
    reader: &tokio::task::JoinHandle<()>,
) -> Result<String, Stop> {
    let phase = Phase::Handshake;
    match rx.recv().await {
        Some(StreamItem::Endpoint(data)) => Ok(data),
        Some(StreamItem::Message(_)) => {
            reader.abort();
            Err(Failure::new(
                FailureKind::Protocol,
                phase,
                "the first SSE event is a message, expected 'endpoint'",
            )
            .into())
        }
        Some(StreamItem::Closed(f)) => {
            reader.abort();
            Err(Stop::NotThisEra(f))
        }
        None => Err(Failure::new(
            FailureKind::Protocol,
            phase,
            "event stream closed before the endpoint event",
        )
        .into()),
    }
}

/// Own the GET stream: parse events, forward the endpoint and JSON-RPC messages, enforce the cap.
async fn read_stream(http: Arc<Http>, mut resp: Response, tx: mpsc::UnboundedSender<StreamItem>) {
    let mut parser = SseParser::new();
    let mut total = 0usize;
    loop {
        let chunk = match http.next_chunk(&mut resp, Phase::Handshake).await {
            Ok(Some(c)) => c,
            Ok(None) => {
                let _ = tx.send(StreamItem::Closed(Failure::new(
                    FailureKind::Protocol,
                    Phase::Handshake,
                    "event stream closed by the server",
                )));
                return;
            }
            Err(f) => {
                let _ = tx.send(StreamItem::Closed(f));
                return;
            }
        };
        total += chunk.len();
        if let Err(f) = http.check_cap(total, Phase::Handshake) {
            let _ = tx.send(StreamItem::Closed(f));
            return;
        }
        for event in parser.feed(&chunk) {
            let item = if event.event == "endpoint" {
                StreamItem::Endpoint(event.data)
            } else if event.data.trim().is_empty() {
                continue;
            } else {
                match serde_json::from_str::<Value>(&event.data) {
                    Ok(v) => StreamItem::Message(v),
                    Err(e) => StreamItem::Closed(Failure::new(
                        FailureKind::Protocol,
                        Phase::Handshake,
                        format!(
                            "SSE event carries invalid JSON ({e}): {}",
                            snippet(event.data.as_bytes())
                        ),
                    )),
                }
            };
            if tx.send(item).is_err() {
                return;
            }
        }
    }
}
