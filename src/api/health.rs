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

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReadyQuery {
    /// `true`: ready only on the replica that leads (for a load balancer that should send
    /// agents to the leader alone).
    leader: Option<bool>,
}

#[utoipa::path(get, path = "/readyz", tag = "health", params(ReadyQuery), responses((status = 200, description = "ready, with this replica's role (leader or standby)", body = Value), (status = 503, description = "not ready, with the reasons", body = Value)))]
pub async fn readyz(
    State(app): State<AppState>,
    axum::extract::Query(q): axum::extract::Query<ReadyQuery>,
) -> (StatusCode, Json<Value>) {
    let mut problems = Vec::new();
    let role = if app.leads() { "leader" } else { "standby" };
    if !app.accepting.load(Ordering::Relaxed) {
        problems.push("shutting down".to_string());
    }
    if q.leader == Some(true) && !app.leads() {
        problems.push("standby: another replica leads".to_string());
    }
    // Answered at once during an outage: from the gate when it is known, else within 1 s.
    if let Some(since) = app.db_gate.down_since() {
        problems.push(format!(
            "database: unreachable since {}",
            super::rfc3339(since)
        ));
    } else {
        match tokio::time::timeout(std::time::Duration::from_secs(1), app.store.ready()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                if matches!(e, crate::store::StoreError::Unreachable(_)) {
                    app.db_gate.mark_down(super::now_ms());
                }
                problems.push(format!("database: {e}"));
            }
            Err(_) => {
                app.db_gate.mark_down(super::now_ms());
                problems.push("database: no answer within 1 s".to_string());
            }
        }
    }
    if !app.ingest.health.database_ok.load(Ordering::Relaxed) {
        problems.push("result writes are failing; results are held in memory".to_string());
    }
    if problems.is_empty() {
        (
            StatusCode::OK,
            Json(json!({"status": "ready", "role": role})),
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "not_ready", "role": role, "problems": problems})),
        )
    }
}

/// Prometheus text format. Protected by `MCPWATCH_METRICS_TOKEN` when it is set.
pub async fn metrics(
    State(app): State<AppState>,
    headers: axum::http::HeaderMap,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if let Some(expected) = &app.settings.metrics_token {
        let given = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        let ok = crate::secrets::hashes_equal(
            &crate::secrets::token_hash(given),
            &crate::secrets::token_hash(expected),
        );
        if !ok {
            return super::error::ApiError::Unauthorized.into_response();
        }
    }
    if let Ok(n) = app.store.pending_deliveries().await {
        app.metrics.outbox_pending.set(n);
    }
    let in_flight = app.scheduler.stats.in_flight.load(Ordering::Relaxed) as i64;
    app.metrics
        .probes_in_flight
        .with_label_values(&[app.settings.region.as_str()])
        .set(in_flight);
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        app.metrics.render(),
    )
        .into_response()
}
