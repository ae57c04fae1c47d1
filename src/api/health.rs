//! `/healthz` (the process is alive) and `/readyz` (it should get traffic: database reachable,
//! migrations applied, writes going through, not shutting down).

use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::AppState;

#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, description = "alive", body = Value)))]
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

#[utoipa::path(get, path = "/readyz", tag = "health", responses((status = 200, description = "ready", body = Value), (status = 503, description = "not ready, with the reasons", body = Value)))]
pub async fn readyz(State(app): State<AppState>) -> (StatusCode, Json<Value>) {
    let mut problems = Vec::new();
    if !app.accepting.load(Ordering::Relaxed) {
        problems.push("shutting down".to_string());
    }
    if let Err(e) = app.store.ready().await {
        problems.push(format!("database: {e}"));
    }
    if !app.ingest.health.database_ok.load(Ordering::Relaxed) {
        problems.push("result writes are failing; results are held in memory".to_string());
    }
    if problems.is_empty() {
        (StatusCode::OK, Json(json!({"status": "ready"})))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "not_ready", "problems": problems})),
        )
    }
}
