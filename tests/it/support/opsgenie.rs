//! An Opsgenie Alert API stand-in on 127.0.0.1:0: `POST /v2/alerts` (create) and
//! `POST /v2/alerts/{alias}/close?identifierType=alias`; records each request (path and
//! query, the Authorization header, JSON) and answers as Opsgenie documents (202
//! `{"result": "Request will be processed", …}`; 401 without a `GenieKey`).
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::post;
use serde_json::{Value, json};

/// Every request: (path and query, Authorization, JSON body).
type Seen = Arc<Mutex<Vec<(String, String, Value)>>>;

pub struct Opsgenie {
    /// The alerts endpoint, as a channel's URL.
    pub url: String,
    seen: Seen,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Opsgenie {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn alerts(
    State(seen): State<Seen>,
    uri: Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> (StatusCode, Json<Value>) {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let path = uri
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    seen.lock().unwrap().push((path, auth.clone(), body));
    if !auth.starts_with("GenieKey ") {
        let reply = json!({"message": "Could not authenticate", "took": 0.0, "requestId": "r"});
        return (StatusCode::UNAUTHORIZED, Json(reply));
    }
    let reply = json!({"result": "Request will be processed", "took": 0.1, "requestId": "r-1"});
    (StatusCode::ACCEPTED, Json(reply))
}

impl Opsgenie {
    pub async fn start() -> Self {
        let seen = Seen::default();
        let app = axum::Router::new()
            .route("/v2/alerts", post(alerts))
            .route("/v2/alerts/{alias}/close", post(alerts))
            .with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v2/alerts", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Opsgenie { url, seen, task }
    }

    /// (path and query, Authorization, JSON body) of every request so far.
    pub fn requests(&self) -> Vec<(String, String, Value)> {
        self.seen.lock().unwrap().clone()
    }
}
