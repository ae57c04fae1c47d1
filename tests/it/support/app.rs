//! `spawn_app()`: the real daemon in process on 127.0.0.1:0, over a fresh database of either
//! backend, with a known admin token; stopped (drained) by `stop()` or when dropped.
#![allow(dead_code)]

use std::sync::Arc;

use mcpwatch::app::App;
use mcpwatch::config::Settings;
use mcpwatch::store::Store;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::sync::oneshot;

use super::db::{Backend, TestDb};

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef";

pub struct TestApp {
    pub base: String,
    pub store: Arc<dyn Store>,
    pub db: Option<TestDb>,
    _data: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), mcpwatch::app::AppError>>>,
    client: reqwest::Client,
    /// The daemon's OpenAPI document, read at the first API call; every answer is checked
    /// against it.
    contract: tokio::sync::OnceCell<super::contract::Contract>,
}

/// Start the app; `tweak` adjusts settings first.
pub async fn spawn_app_with(backend: Backend, tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let db = TestDb::new(backend).await;
    let data = tempfile::tempdir().unwrap();
    let mut settings = Settings::for_tests(data.path());
    settings.database = db.url.clone();
    settings.admin_token = Some(ADMIN_TOKEN.to_string());
    tweak(&mut settings);
    let app = App::build(settings).await.expect("app builds");
    let base = format!("http://{}", app.local_addr());
    let store = app.state().store.clone();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(app.run(async move {
        let _ = rx.await;
    }));
    TestApp {
        base,
        store,
        db: Some(db),
        _data: data,
        stop: Some(tx),
        task: Some(task),
        client: reqwest::Client::builder().no_proxy().build().unwrap(),
        contract: tokio::sync::OnceCell::new(),
    }
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

impl TestApp {
    /// A request with `token` (None: no Authorization header). Returns status and JSON body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .client
            .request(method.clone(), format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let text = resp.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if ["/api/", "/healthz", "/readyz"]
            .iter()
            .any(|p| path.starts_with(p))
        {
            let checked = self
                .contract()
                .await
                .check(&method, path, status, &content_type, &body);
            if let Err(e) = checked {
                panic!("the answer disagrees with /openapi.json: {e}");
            }
        }
        (status, body)
    }

    /// The document every answer is checked against.
    pub async fn contract(&self) -> &super::contract::Contract {
        self.contract
            .get_or_init(|| async {
                let text = self
                    .client
                    .get(format!("{}/openapi.json", self.base))
                    .send()
                    .await
                    .expect("GET /openapi.json")
                    .text()
                    .await
                    .expect("the OpenAPI document");
                let doc: Value = serde_json::from_str(&text).expect("the OpenAPI document is JSON");
                super::contract::Contract::new(doc)
            })
            .await
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, Some(ADMIN_TOKEN), None).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PATCH, path, Some(ADMIN_TOKEN), Some(body))
            .await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(ADMIN_TOKEN), Some(body))
            .await
    }

    /// `GET /metrics` as Prometheus scrapes it (with the metrics token, if one is set).
    pub async fn metrics(&self, token: Option<&str>) -> String {
        let mut req = self.client.get(format!("{}/metrics", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        assert!(resp.status().is_success(), "/metrics: {}", resp.status());
        resp.text().await.unwrap()
    }

    /// A public page (no key): status, headers and text.
    pub async fn fetch(&self, path: &str) -> (u16, reqwest::header::HeaderMap, String) {
        let resp = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        (status, headers, resp.text().await.unwrap())
    }

    /// A form POST to the public pages, as a browser sends it: status and HTML.
    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> (StatusCode, String) {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        let resp = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        (resp.status(), resp.text().await.unwrap())
    }

    /// Register a paused server (nothing probes it), public or not, with these tags.
    pub async fn add_paused_server(&self, name: &str, public: bool, tags: &[&str]) {
        let body = serde_json::json!({"name": name, "url": "http://127.0.0.1:9/mcp",
                                      "public": public, "paused": true, "tags": tags});
        let (status, answer) = self.post("/api/v1/servers", body).await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
    }

    pub fn raw(&self) -> &reqwest::Client {
        &self.client
    }

    /// Send the shutdown signal without waiting (the app drains meanwhile).
    pub fn begin_shutdown(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }

    /// Wait for the app to finish its shutdown; returns what `run` returned.
    pub async fn finish(&mut self) -> Result<(), mcpwatch::app::AppError> {
        match self.task.take() {
            Some(task) => task.await.expect("app task"),
            None => Ok(()),
        }
    }

    /// Stop (drain) and drop the database.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        if let Some(db) = self.db.take() {
            db.cleanup().await;
        }
    }
}
