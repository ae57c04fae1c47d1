//! The real daemon's API as an admin calls it (for tests that run `mcpwatch serve` as a child;
//! in-process tests use `app::TestApp`).
#![allow(dead_code)]

use reqwest::StatusCode;
use serde_json::{Value, json};

/// Calls to one daemon with the admin token.
pub struct Admin {
    client: reqwest::Client,
    pub base: String,
    token: String,
}

impl Admin {
    pub fn new(base: &str, token: &str) -> Self {
        Admin {
            client: reqwest::Client::new(),
            base: base.to_string(),
            token: token.to_string(),
        }
    }

    /// `GET {base}{path}`: status and JSON body (`Null` when not JSON); a daemon that does not
    /// answer reads as 502.
    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        let sent = self.client.get(format!("{}{path}", self.base));
        read(sent.bearer_auth(&self.token).send().await).await
    }

    /// `POST {base}{path}` with a JSON body.
    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let sent = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body.to_string());
        read(sent.bearer_auth(&self.token).send().await).await
    }

    /// Register a server (slug `slug`, probed every 10 s, down after one failure) and a
    /// webhook channel for `server.down` to `hook`; both must be created.
    pub async fn watch_for_down(&self, slug: &str, target: &str, hook: &str) {
        let server = json!({"name": "Target", "slug": slug, "url": target,
                            "interval_seconds": 10, "failures_to_down": 1});
        let (s, v) = self.post("/api/v1/servers", server).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let channel = json!({"name": "ops", "url": hook, "events": ["server.down"]});
        let (s, v) = self.post("/api/v1/channels", channel).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
}

async fn read(sent: reqwest::Result<reqwest::Response>) -> (StatusCode, Value) {
    let Ok(r) = sent else {
        return (StatusCode::BAD_GATEWAY, Value::Null);
    };
    let status = r.status();
    let text = r.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}
