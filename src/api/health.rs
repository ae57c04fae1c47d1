//! `/healthz` (the process is alive) and `/readyz` (it should get traffic: database reachable,
//! migrations applied, writes going through, not shutting down).

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::AppState;
use super::views::{Alive, Readiness, Role};

#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, description = "alive", body = Alive)))]
pub async fn healthz() -> Json<Alive> {
    Json(Alive {
        status: "ok".into(),
    })
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReadyQuery {
    /// `true`: ready only on the replica that leads (for a load balancer that should send
    /// agents to the leader alone).
    leader: Option<bool>,
}

/// What `/readyz` says about the results on their way to the database.
fn ingest_problems(app: &AppState) -> Vec<String> {
    let queued = app.ingest.queue_depth();
    let (spilled, bytes, bound) = app.ingest.spilled().unwrap_or((0, 0, 1));
    let on_disk = if spilled > 0 {
        format!(
            ", {spilled} spilled to disk ({} of {} MiB)",
            bytes >> 20,
            bound >> 20
        )
    } else {
        String::new()
    };
    let mut problems = Vec::new();
    if !app.ingest.health.database_ok.load(Ordering::Relaxed) {
        let waiting = app
            .ingest
            .waiting(super::now_ms())
            .map(|w| format!(", the oldest for {} s", w.as_secs()))
            .unwrap_or_default();
        problems.push(format!(
            "result writes are failing; results are held in memory ({queued} queued{on_disk}{waiting})"
        ));
    } else if queued * 10 >= app.settings.ingest_buffer * 9 || spilled > 0 {
        problems.push(format!(
            "results are falling behind: {queued} of {} queued{on_disk}",
            app.settings.ingest_buffer
        ));
    }
    if bytes * 10 >= bound * 9 {
        problems.push(format!(
            "the result spill is nearly full ({} of {} MiB): the oldest spilled results will be dropped",
            bytes >> 20,
            bound >> 20
        ));
    }
    problems
}

#[utoipa::path(get, path = "/readyz", tag = "health", params(ReadyQuery), responses((status = 200, description = "ready, with this replica's role (leader or member) and its buckets", body = Readiness), (status = 503, description = "not ready, with the reasons", body = Readiness)))]
pub async fn readyz(
    State(app): State<AppState>,
    axum::extract::Query(q): axum::extract::Query<ReadyQuery>,
) -> (StatusCode, Json<Readiness>) {
    let mut problems = Vec::new();
    let role = if app.leads() {
        Role::Leader
    } else {
        Role::Member
    };
    if !app.accepting.load(Ordering::Relaxed) {
        problems.push("shutting down".to_string());
    }
    if q.leader == Some(true) && !app.leads() {
        problems.push("member: another replica leads".to_string());
    }
    // Answered at once during an outage: from the gate when it is known, else within 1 s.
    if let Some(since) = app.db_gate.down_since() {
        problems.push(format!(
            "database: unreachable since {}",
            super::rfc3339(since)
        ));
    } else {
        match tokio::time::timeout(Duration::from_secs(1), app.store.ready()).await {
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
    problems.extend(ingest_problems(&app));
    let (status, word) = if problems.is_empty() {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not_ready")
    };
    (
        status,
        Json(Readiness {
            status: word.into(),
            role,
            buckets: app.ownership.bucket_count(),
            problems,
        }),
    )
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
    // During an outage the last known count stays: a scrape must not wait on the pool.
    if app.db_gate.down_since().is_none()
        && let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_secs(1), app.store.pending_deliveries()).await
    {
        app.metrics.outbox_pending.set(n);
    }
    app.metrics
        .ingest_queue_depth
        .set(app.ingest.queue_depth() as i64);
    app.metrics.ingest_waiting_seconds.set(
        app.ingest
            .waiting(super::now_ms())
            .map_or(0.0, |w| w.as_secs_f64()),
    );
    if let Some((results, bytes, _)) = app.ingest.spilled() {
        app.metrics.ingest_spilled_results.set(results as i64);
        app.metrics.ingest_spill_bytes.set(bytes as i64);
    }
    app.metrics.set_spill_dropped(app.ingest.spill_dropped());
    let in_flight = app.scheduler.stats.in_flight.load(Ordering::Relaxed) as i64;
    app.metrics
        .probes_in_flight
        .with_label_values(&[app.settings.region.as_str()])
        .set(in_flight);
    app.metrics
        .scheduled_servers
        .with_label_values(&[app.settings.region.as_str()])
        .set(app.scheduler.stats.jobs.load(Ordering::Relaxed) as i64);
    let cluster = &app.metrics.cluster;
    cluster
        .buckets_owned
        .set(app.ownership.bucket_count() as i64);
    cluster.leader.set(i64::from(app.leads()));
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        // Streamed: at 100,000 servers the text is ~20 MB, written a few hundred servers at a
        // time as the client reads it.
        axum::body::Body::from_stream(futures_util::stream::iter(
            app.metrics
                .clone()
                .chunks()
                .map(Ok::<_, std::convert::Infallible>),
        )),
    )
        .into_response()
}
