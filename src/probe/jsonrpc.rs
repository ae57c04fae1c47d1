//! JSON-RPC messages, and finding our reply in what a POST returned.
//!
//! A reply comes as `application/json` (one object, or a batch from old servers) or as a
//! `text/event-stream` scoped to the request. On a stream we skip events with empty data
//! (priming events), ignore notifications and server-to-client requests, and stop reading as
//! soon as the response with our id arrives.

use reqwest::Response;
use reqwest::header::CONTENT_TYPE;
use serde_json::{Value, json};

use super::net::Http;
use super::report::{Failure, FailureKind, Phase};
use super::sse::SseParser;

/// A JSON-RPC request object.
pub(crate) fn request(id: u64, method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

/// A JSON-RPC notification object.
pub(crate) fn notification(method: &str, params: Option<Value>) -> Value {
    match params {
        Some(p) => json!({"jsonrpc": "2.0", "method": method, "params": p}),
        None => json!({"jsonrpc": "2.0", "method": method}),
    }
}

/// A JSON-RPC error object from a reply.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RpcError {
    pub code: i64,
    pub message: String,
    pub data: Option<Value>,
}

impl RpcError {
    pub(crate) fn from_value(v: &Value) -> Option<Self> {
        let e = v.get("error")?;
        Some(RpcError {
            code: e.get("code").and_then(Value::as_i64).unwrap_or(0),
            message: e
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("")
                .chars()
                .take(300)
                .collect(),
            data: e.get("data").cloned(),
        })
    }
}

/// What a POST's body held.
#[derive(Debug)]
pub(crate) enum Reply {
    /// The response object whose id is ours.
    Message(Value),
    /// No body (202, 204, or an empty stream).
    Empty,
    /// A body that is not JSON-RPC: the content type and the first bytes, sanitized.
    NotJsonRpc {
        content_type: String,
        snippet: String,
    },
    /// JSON-RPC, but no response carries our id (the ids seen are listed).
    NoMatch { ids: Vec<String> },
}

/// Whether a JSON value is a JSON-RPC response (has an id and a result or an error).
fn is_response(v: &Value) -> bool {
    v.get("id").is_some() && (v.get("result").is_some() || v.get("error").is_some())
}

fn is_jsonrpc(v: &Value) -> bool {
    v.get("jsonrpc").and_then(Value::as_str) == Some("2.0")
        || is_response(v)
        || v.get("method").is_some()
}

/// Pick our response out of a parsed body (object or batch). `None` id: any error response
/// without an id counts (servers answer transport-level rejections with `id: null`).
fn pick(value: Value, id: Option<u64>) -> Reply {
    let items = match value {
        Value::Array(items) => items,
        other => vec![other],
    };
    if !items.iter().any(is_jsonrpc) {
        return Reply::NotJsonRpc {
            content_type: "application/json".into(),
            snippet: snippet(&serde_json::to_vec(&items).unwrap_or_default()),
        };
    }
    let mut ids = Vec::new();
    for item in items {
        if !is_response(&item) {
            continue;
        }
        let item_id = item.get("id").cloned().unwrap_or(Value::Null);
        let ours = match id {
            Some(n) => item_id == json!(n),
            None => true,
        };
        // An error with `id: null` answers whatever we sent (the server could not read the id).
        if ours || (item_id.is_null() && item.get("error").is_some()) {
            return Reply::Message(item);
        }
        ids.push(item_id.to_string());
    }
    if ids.is_empty() {
        Reply::Empty
    } else {
        Reply::NoMatch { ids }
    }
}

/// Read the reply to request `id` from a response, under the body cap.
pub(crate) async fn read_reply(
    http: &Http,
    resp: &mut Response,
    id: Option<u64>,
    phase: Phase,
) -> Result<Reply, Failure> {
    read_reply_watching(http, resp, id, phase, None).await
}

/// [`read_reply`], noting in `watch` when each `notifications/progress` of an SSE answer
/// arrived (the streaming check times them).
pub(crate) async fn read_reply_watching(
    http: &Http,
    resp: &mut Response,
    id: Option<u64>,
    phase: Phase,
    watch: Option<&std::sync::Mutex<Vec<std::time::Instant>>>,
) -> Result<Reply, Failure> {
    let content_type = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if content_type.starts_with("text/event-stream") {
        return read_sse_reply(http, resp, id, phase, watch).await;
    }
    let body = http.read_body(resp, phase).await?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Reply::Empty);
    }
    match serde_json::from_slice::<Value>(&body) {
        Ok(v) => Ok(match pick(v, id) {
            Reply::NotJsonRpc { snippet, .. } => Reply::NotJsonRpc {
                content_type,
                snippet,
            },
            other => other,
        }),
        // A body labelled JSON that does not parse claims JSON-RPC and breaks it: protocol.
        Err(e) if content_type.contains("json") => Err(Failure::new(
            FailureKind::Protocol,
            phase,
            format!("response is not valid JSON ({e}): {}", snippet(&body)),
        )),
        Err(_) => Ok(Reply::NotJsonRpc {
            content_type,
            snippet: snippet(&body),
        }),
    }
}

async fn read_sse_reply(
    http: &Http,
    resp: &mut Response,
    id: Option<u64>,
    phase: Phase,
    watch: Option<&std::sync::Mutex<Vec<std::time::Instant>>>,
) -> Result<Reply, Failure> {
    let mut parser = SseParser::new();
    let mut total = 0usize;
    let mut other_ids = Vec::new();
    while let Some(chunk) = http.next_chunk(resp, phase).await? {
        total += chunk.len();
        http.check_cap(total, phase)?;
        for event in parser.feed(&chunk) {
            if event.data.trim().is_empty() || event.event != "message" {
                continue;
            }
            let value: Value = serde_json::from_str(&event.data).map_err(|e| {
                Failure::new(
                    FailureKind::Protocol,
                    phase,
                    format!(
                        "SSE event carries invalid JSON ({e}): {}",
                        snippet(event.data.as_bytes())
                    ),
                )
            })?;
            if let Some(w) = watch
                && value.get("method").and_then(Value::as_str) == Some("notifications/progress")
            {
                w.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(std::time::Instant::now());
            }
            match pick(value, id) {
                Reply::Message(m) => return Ok(Reply::Message(m)),
                Reply::NoMatch { ids } => other_ids.extend(ids),
                Reply::Empty | Reply::NotJsonRpc { .. } => {}
            }
        }
    }
    if other_ids.is_empty() {
        Ok(Reply::Empty)
    } else {
        Ok(Reply::NoMatch { ids: other_ids })
    }
}

/// The first 120 characters of a body, on one line, for messages.
pub(crate) fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(480)]);
    let one_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let mut out: String = one_line.chars().take(120).collect();
    if one_line.chars().count() > 120 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_our_id_from_objects_and_batches() {
        let ours = json!({"jsonrpc": "2.0", "id": 3, "result": {}});
        assert!(matches!(pick(ours.clone(), Some(3)), Reply::Message(_)));
        let batch = json!([{"jsonrpc": "2.0", "method": "notifications/x"}, {"jsonrpc": "2.0", "id": 9, "result": {}}, ours]);
        assert!(matches!(pick(batch, Some(3)), Reply::Message(m) if m["id"] == 3));
        match pick(json!({"jsonrpc": "2.0", "id": 4, "result": {}}), Some(3)) {
            Reply::NoMatch { ids } => assert_eq!(ids, vec!["4"]),
            other => panic!("{other:?}"),
        }
        // A string id "3" is not our numeric id 3.
        assert!(matches!(
            pick(json!({"jsonrpc": "2.0", "id": "3", "result": {}}), Some(3)),
            Reply::NoMatch { .. }
        ));
    }

    #[test]
    fn null_id_error_answers_and_plain_json_is_not_jsonrpc() {
        let err =
            json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32600, "message": "bad"}});
        assert!(matches!(pick(err, Some(1)), Reply::Message(_)));
        assert!(matches!(
            pick(json!({"status": "ok"}), Some(1)),
            Reply::NotJsonRpc { .. }
        ));
    }

    #[test]
    fn snippet_is_one_bounded_line() {
        let s = snippet(b"<html>\n  <body>\tHello</body>\n</html>");
        assert_eq!(s, "<html> <body> Hello</body> </html>");
        assert!(snippet(&[b'a'; 500]).ends_with('…'));
    }
}
