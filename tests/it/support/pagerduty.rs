//! A PagerDuty Events API v2 stand-in on 127.0.0.1:0: records each request (path, headers,
//! JSON) to `/v2/enqueue` and `/v2/change/enqueue` and answers as PagerDuty documents (202
//! `{"status": "success", "message": "Event processed", "dedup_key": …}`; 400 with `errors`
//! for a body without a 32-character routing key).
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::post;
use serde_json::{Value, json};

/// Every request: (path, headers, JSON body).
type Seen = Arc<Mutex<Vec<(String, HeaderMap, Value)>>>;

pub struct PagerDuty {
    /// The events endpoint, as a channel's URL.
    pub url: String,
    seen: Seen,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for PagerDuty {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn enqueue(
    State(seen): State<Seen>,
    uri: Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> (StatusCode, Json<Value>) {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    seen.lock()
        .unwrap()
        .push((uri.path().to_string(), headers, body.clone()));
    let key_ok = body["routing_key"].as_str().is_some_and(|k| k.len() == 32);
    if !key_ok {
        let errors = json!(["'routing_key' is invalid"]);
        let reply = json!({"status": "invalid event", "message": "Event object is invalid", "errors": errors});
        return (StatusCode::BAD_REQUEST, Json(reply));
    }
    let dedup = body["dedup_key"].clone();
    let reply = json!({"status": "success", "message": "Event processed", "dedup_key": dedup});
    (StatusCode::ACCEPTED, Json(reply))
}

impl PagerDuty {
    pub async fn start() -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let app = axum::Router::new()
            .route("/v2/enqueue", post(enqueue))
            .route("/v2/change/enqueue", post(enqueue))
            .with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v2/enqueue", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        PagerDuty { url, seen, task }
    }

    /// (path, JSON body) of every request so far.
    pub fn requests(&self) -> Vec<(String, Value)> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|(p, _, b)| (p.clone(), b.clone()))
            .collect()
    }

    pub fn content_types(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|(_, h, _)| {
                h.get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string()
            })
            .collect()
    }
}
