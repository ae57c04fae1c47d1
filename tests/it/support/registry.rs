//! A stand-in MCP Registry (axum on 127.0.0.1:0) serving `GET /v0.1/servers` in the shapes of
//! the registry's published OpenAPI (`ServerList` of `ServerResponse`, `_meta` with the
//! official status): two servers a page whatever `limit` asks, the first page's cursor as
//! `metadata.nextCursor` and later ones as `next_cursor` (both spellings are in the wild).
//! Entries can be changed between requests; every query string is recorded.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::extract::{RawQuery, State};
use axum::routing::get;
use serde_json::{Value, json};

/// Servers per page.
const PER_PAGE: usize = 2;

#[derive(Default)]
struct Inner {
    entries: Vec<Value>,
    queries: Vec<String>,
}

pub struct Registry {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A `ServerResponse` with status `status` and `remotes`.
pub fn entry(name: &str, title: &str, status: &str, remotes: Value) -> Value {
    json!({
        "server": {
            "$schema": "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json",
            "name": name,
            "title": title,
            "description": format!("{title}, for tests"),
            "version": "1.2.0",
            "websiteUrl": "https://example.com/docs",
            "repository": {"url": "https://github.com/acme/servers", "source": "github"},
            "remotes": remotes
        },
        "_meta": {
            "io.modelcontextprotocol.registry/official": {
                "status": status,
                "publishedAt": "2026-10-01T10:00:00Z",
                "updatedAt": "2026-11-01T10:00:00Z",
                "isLatest": true
            }
        }
    })
}

async fn list(State(inner): State<Arc<Mutex<Inner>>>, RawQuery(q): RawQuery) -> Json<Value> {
    let mut inner = inner.lock().unwrap();
    let q = q.unwrap_or_default();
    inner.queries.push(q.clone());
    let start: usize = url::form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == "cursor")
        .and_then(|(_, v)| v.strip_prefix("page-").and_then(|n| n.parse().ok()))
        .unwrap_or(0);
    let page: Vec<Value> = inner
        .entries
        .iter()
        .skip(start)
        .take(PER_PAGE)
        .cloned()
        .collect();
    let next = start + PER_PAGE;
    let mut metadata = json!({"count": page.len()});
    if next < inner.entries.len() {
        let key = if start == 0 {
            "nextCursor"
        } else {
            "next_cursor"
        };
        metadata[key] = json!(format!("page-{next}"));
    }
    Json(json!({"servers": page, "metadata": metadata}))
}

impl Registry {
    pub async fn start(entries: Vec<Value>) -> Registry {
        let inner = Arc::new(Mutex::new(Inner {
            entries,
            queries: Vec::new(),
        }));
        let app = Router::new()
            .route("/v0.1/servers", get(list))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Registry { url, inner, task }
    }

    /// Set the official status of the entry named `name`.
    pub fn set_status(&self, name: &str, status: &str, message: Option<&str>) {
        let mut inner = self.inner.lock().unwrap();
        let e = inner
            .entries
            .iter_mut()
            .find(|e| e["server"]["name"] == name)
            .expect("an entry of that name");
        let official = &mut e["_meta"]["io.modelcontextprotocol.registry/official"];
        official["status"] = json!(status);
        if let Some(m) = message {
            official["statusMessage"] = json!(m);
        }
    }

    pub fn queries(&self) -> Vec<String> {
        self.inner.lock().unwrap().queries.clone()
    }
}
