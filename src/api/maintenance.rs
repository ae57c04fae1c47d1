//! `/api/v1/maintenance`: windows during which probes run and are recorded but alerts are held.
//! One-off (`starts_at`, `ends_at`) or recurring (`cron`, `duration_seconds`, `timezone`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;

use super::error::{ApiError, ApiJson, BadInput, Guarded, NoSuch, Taken};
use super::views::{WindowList, WindowView};
use super::{AppState, now_ms, parse_time};
use crate::alert::maintenance::{Schedule, schedule_of};
use crate::store::WindowRecord;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WindowInput {
    pub(crate) name: String,
    /// Server ids or slugs; with `tags` empty too: every server.
    pub(crate) servers: Option<Vec<String>>,
    tags: Option<Vec<String>>,
    /// One-off: RFC 3339 start and end.
    starts_at: Option<String>,
    ends_at: Option<String>,
    /// Recurring: a 5-field crontab expression (0 and 7 are Sunday), e.g. "0 2 * * 0".
    cron: Option<String>,
    duration_seconds: Option<i64>,
    /// IANA time zone of the crontab expression (default UTC).
    timezone: Option<String>,
}

/// The window as it stands at `now`.
fn window_view(w: &WindowRecord, now: i64) -> WindowView {
    let active = schedule_of(w).ok().and_then(|s| s.active_at(now));
    WindowView::new(w, active)
}

#[utoipa::path(post, path = "/maintenance", tag = "alerts", request_body = WindowInput, responses((status = 201, description = "the window", body = WindowView), BadInput, Guarded), security(("bearer" = [])))]
pub async fn create(
    State(app): State<AppState>,
    ApiJson(mut input): ApiJson<WindowInput>,
) -> Result<(StatusCode, Json<WindowView>), ApiError> {
    let mut server_ids = Vec::new();
    for s in input.servers.take().unwrap_or_default() {
        match app.store.get_server(&s).await? {
            Some(found) => server_ids.push(found.id),
            None => {
                return Err(ApiError::field(
                    "servers",
                    format!("no server with id or slug '{s}'"),
                ));
            }
        }
    }
    let w = window_from(input, server_ids, now_ms())?;
    app.store.insert_window(&w).await?;
    app.ingest.routing_changed().await;
    Ok((StatusCode::CREATED, Json(window_view(&w, now_ms()))))
}

/// A new window from `input` (whose `servers` the caller resolved to `server_ids`).
pub(crate) fn window_from(
    input: WindowInput,
    server_ids: Vec<String>,
    now: i64,
) -> Result<WindowRecord, ApiError> {
    let name = input.name.trim().to_string();
    if name.is_empty() || name.len() > 200 {
        return Err(ApiError::field("name", "must be 1-200 characters"));
    }
    let mut w = WindowRecord {
        id: uuid::Uuid::now_v7().to_string(),
        name,
        server_ids,
        tags: input.tags.unwrap_or_default(),
        starts_at: None,
        ends_at: None,
        cron: None,
        duration_seconds: None,
        timezone: None,
        created_at: now,
        managed_by: None,
    };
    match (input.cron, input.starts_at, input.ends_at) {
        (Some(cron), None, None) => {
            let tz = input.timezone.unwrap_or_else(|| "UTC".into());
            let duration = input
                .duration_seconds
                .ok_or_else(|| ApiError::field("duration_seconds", "is required with cron"))?;
            Schedule::recurring(&cron, duration, &tz).map_err(|e| {
                let field = match e {
                    crate::alert::maintenance::ScheduleError::TimeZone(_) => "timezone",
                    crate::alert::maintenance::ScheduleError::Duration => "duration_seconds",
                    _ => "cron",
                };
                ApiError::field(field, e.to_string())
            })?;
            (w.cron, w.duration_seconds, w.timezone) = (Some(cron), Some(duration), Some(tz));
        }
        (None, Some(start), Some(end)) => {
            let (s, e) = (
                parse_time("starts_at", &start)?,
                parse_time("ends_at", &end)?,
            );
            Schedule::once(s, e).map_err(|err| ApiError::field("ends_at", err.to_string()))?;
            (w.starts_at, w.ends_at) = (Some(s), Some(e));
        }
        _ => {
            return Err(ApiError::field(
                "cron",
                "give either cron + duration_seconds (+ timezone), or starts_at + ends_at",
            ));
        }
    }
    Ok(w)
}

#[utoipa::path(get, path = "/maintenance", tag = "alerts", responses((status = 200, description = "every window, with whether it is active now", body = WindowList), Guarded), security(("bearer" = [])))]
pub async fn list(State(app): State<AppState>) -> Result<Json<WindowList>, ApiError> {
    let now = now_ms();
    let all = app.store.list_windows().await?;
    Ok(Json(WindowList {
        items: all.iter().map(|w| window_view(w, now)).collect(),
    }))
}

#[utoipa::path(delete, path = "/maintenance/{id}", tag = "alerts", params(("id" = String, Path, description = "window id")), responses((status = 204, description = "deleted"), NoSuch, Taken, Guarded), security(("bearer" = [])))]
pub async fn delete(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let all = app.store.list_windows().await?;
    let Some(w) = all.iter().find(|w| w.id == id) else {
        return Err(ApiError::NotFound(format!(
            "no maintenance window with id '{id}'"
        )));
    };
    super::error::not_managed("maintenance window", &w.name, &w.managed_by)?;
    app.store.delete_window(&w.id).await?;
    app.ingest.routing_changed().await;
    Ok(StatusCode::NO_CONTENT)
}
