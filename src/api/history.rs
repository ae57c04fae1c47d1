//! What the daemon recorded: results, schema (current, history, diffs), incidents, events,
//! and the status summary.

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Deserialize;

use super::error::ApiError;
use super::error::{BadInput, Guarded, NoSuch};
use super::servers::find;
use super::views::{
    ChangeView, DiffView, EventPage, EventView, HistoryEntry, IncidentPage, IncidentView,
    ResultPage, ResultView, SchemaHistory, SchemaView, SnapshotView, StateCounts, StatusEntry,
    StatusView,
};
use super::{AppState, next_cursor, page, parse_time, rfc3339};
use crate::schema;
use crate::store::{ResultQuery, SnapshotRecord};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ResultsQuery {
    since: Option<String>,
    until: Option<String>,
    region: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

#[utoipa::path(get, path = "/servers/{id}/results", tag = "history", params(("id" = String, Path, description = "server id or slug"), ResultsQuery), responses((status = 200, description = "results, newest first", body = ResultPage), BadInput, NoSuch, Guarded), security(("bearer" = [])))]
pub async fn results(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<ResultsQuery>,
) -> Result<Json<ResultPage>, ApiError> {
    let s = find(&app, &id).await?;
    let pg = page(q.limit, q.cursor.as_deref())?;
    let query = ResultQuery {
        server_id: s.id,
        since: q
            .since
            .as_deref()
            .map(|t| parse_time("since", t))
            .transpose()?,
        until: q
            .until
            .as_deref()
            .map(|t| parse_time("until", t))
            .transpose()?,
        region: q.region,
        page: pg.clone(),
    };
    let rows = app.store.list_results(&query).await?;
    Ok(Json(ResultPage {
        items: rows.iter().map(ResultView::from).collect(),
        next_cursor: next_cursor(&rows, pg.limit, |r| (r.started_at, r.id.clone())),
    }))
}

#[utoipa::path(get, path = "/servers/{id}/schema", tag = "schema", params(("id" = String, Path, description = "server id or slug")), responses((status = 200, description = "current canonical tool list and hashes", body = SchemaView), NoSuch, Guarded), security(("bearer" = [])))]
pub async fn schema(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<SchemaView>, ApiError> {
    let s = find(&app, &id).await?;
    let (state, _) = app.store.load_state(&s.id).await?;
    let hash = state.and_then(|st| st.schema_hash).ok_or_else(|| {
        ApiError::NotFound(format!(
            "no schema recorded yet for '{}': wait for a successful probe",
            s.slug
        ))
    })?;
    let snap = app
        .store
        .get_snapshot(&s.id, &hash)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("snapshot {hash} is missing")))?;
    let tools = snap
        .tools
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t.as_object().cloned())
        .collect();
    Ok(Json(SchemaView {
        snapshot: SnapshotView::from(&snap),
        tools,
    }))
}

/// Every hash the server has served, newest first, each with the diff from the one before.
#[utoipa::path(get, path = "/servers/{id}/schema/history", tag = "schema", params(("id" = String, Path, description = "server id or slug")), responses((status = 200, description = "every hash served, newest first, with diffs", body = SchemaHistory), NoSuch, Guarded), security(("bearer" = [])))]
pub async fn schema_history(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<SchemaHistory>, ApiError> {
    let s = find(&app, &id).await?;
    let (snaps, changes) = tokio::try_join!(
        app.store.list_snapshots(&s.id),
        app.store.list_schema_changes(&s.id)
    )?;
    let by_hash: std::collections::HashMap<&str, &SnapshotRecord> =
        snaps.iter().map(|s| (s.hash.as_str(), s)).collect();
    let changes: Vec<schema::history::Change> = changes.iter().map(Into::into).collect();
    let entries = schema::history::history(&changes, |hash| {
        by_hash
            .get(hash)
            .and_then(|s| s.tools.as_array())
            .map(Vec::as_slice)
    });
    let mut items = Vec::with_capacity(entries.len());
    for e in entries {
        let Some(snap) = by_hash.get(e.change.hash.as_str()) else {
            continue;
        };
        items.push(HistoryEntry {
            snapshot: SnapshotView::from(*snap),
            at: rfc3339(e.change.at),
            previous_hash: e.change.previous,
            reverts: e.reverts,
            change: e.diff.map(ChangeView::from),
        });
    }
    Ok(Json(SchemaHistory { items }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DiffQuery {
    from: String,
    to: String,
}

#[utoipa::path(get, path = "/servers/{id}/schema/diff", tag = "schema", params(("id" = String, Path, description = "server id or slug"), DiffQuery), responses((status = 200, description = "structural diff between two hashes", body = DiffView), BadInput, NoSuch, Guarded), security(("bearer" = [])))]
pub async fn schema_diff(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<DiffQuery>,
) -> Result<Json<DiffView>, ApiError> {
    let s = find(&app, &id).await?;
    let load = |field: &'static str, hash: String| {
        let app = app.clone();
        let sid = s.id.clone();
        async move {
            app.store.get_snapshot(&sid, &hash).await?.ok_or_else(|| {
                ApiError::field(
                    field,
                    format!("no snapshot with hash '{hash}' for this server"),
                )
            })
        }
    };
    let from = load("from", q.from).await?;
    let to = load("to", q.to).await?;
    let d = schema::diff(
        from.tools.as_array().map(Vec::as_slice).unwrap_or(&[]),
        to.tools.as_array().map(Vec::as_slice).unwrap_or(&[]),
    );
    Ok(Json(DiffView {
        from: from.hash,
        to: to.hash,
        class: d.class().to_string(),
        summary: d.summary(),
        breaking: d.breaking,
        added: d.added,
        removed: d.removed,
        changed: d.changed,
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    limit: Option<u32>,
    cursor: Option<String>,
}

async fn incident_page(
    app: &AppState,
    server_id: Option<&str>,
    q: PageQuery,
) -> Result<Json<IncidentPage>, ApiError> {
    let pg = page(q.limit, q.cursor.as_deref())?;
    let rows = app.store.list_incidents(server_id, &pg).await?;
    Ok(Json(IncidentPage {
        items: rows.iter().map(IncidentView::from).collect(),
        next_cursor: next_cursor(&rows, pg.limit, |r| (r.opened_at, r.id.clone())),
    }))
}

#[utoipa::path(get, path = "/incidents", tag = "history", params(PageQuery), responses((status = 200, description = "incidents, newest first", body = IncidentPage), BadInput, Guarded), security(("bearer" = [])))]
pub async fn incidents(
    State(app): State<AppState>,
    Query(q): Query<PageQuery>,
) -> Result<Json<IncidentPage>, ApiError> {
    incident_page(&app, None, q).await
}

#[utoipa::path(get, path = "/servers/{id}/incidents", tag = "history", params(("id" = String, Path, description = "server id or slug"), PageQuery), responses((status = 200, description = "incidents of one server, newest first", body = IncidentPage), BadInput, NoSuch, Guarded), security(("bearer" = [])))]
pub async fn server_incidents(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> Result<Json<IncidentPage>, ApiError> {
    let s = find(&app, &id).await?;
    incident_page(&app, Some(&s.id), q).await
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    server: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

#[utoipa::path(get, path = "/events", tag = "history", params(EventsQuery), responses((status = 200, description = "events, newest first", body = EventPage), BadInput, Guarded), security(("bearer" = [])))]
pub async fn events(
    State(app): State<AppState>,
    Query(q): Query<EventsQuery>,
) -> Result<Json<EventPage>, ApiError> {
    let pg = page(q.limit, q.cursor.as_deref())?;
    let server_id = match &q.server {
        Some(s) => Some(find(&app, s).await?.id),
        None => None,
    };
    let rows = app
        .store
        .list_events(server_id.as_deref(), q.kind.as_deref(), &pg)
        .await?;
    Ok(Json(EventPage {
        items: rows.iter().map(EventView::from).collect(),
        next_cursor: next_cursor(&rows, pg.limit, |r| (r.at, r.id.clone())),
    }))
}

/// Counts by state over the whole fleet, and a page of servers with their state and last
/// result (filtered like `GET /servers`; `next_cursor` continues).
#[utoipa::path(get, path = "/status", tag = "history", params(crate::api::servers::ListQuery), responses((status = 200, description = "counts by state over every server, and a page of servers with their last result", body = StatusView), BadInput, Guarded), security(("bearer" = [])))]
pub async fn status(
    State(app): State<AppState>,
    Query(q): Query<crate::api::servers::ListQuery>,
) -> Result<Json<StatusView>, ApiError> {
    let (filter, pg) = q.parse()?;
    let mut counts = StateCounts::default();
    for (status, n) in app.store.count_by_status().await? {
        counts.add(status, n);
    }
    let rows = app.store.servers_with_state(&filter, &pg).await?;
    let mut servers = Vec::with_capacity(rows.len());
    // One indexed read per server of the page (at most `limit`), never per fleet.
    for row in &rows {
        let last = app.store.last_result(&row.server.id).await?;
        servers.push(StatusEntry {
            server: super::views::ServerView::new(&row.server, row.state.as_ref(), &row.regions),
            last_result: last.as_ref().map(ResultView::from),
        });
    }
    let next_cursor = next_cursor(&rows, pg.limit, |r| {
        (r.server.created_at, r.server.id.clone())
    });
    Ok(Json(StatusView {
        counts,
        servers,
        next_cursor,
        region: app.settings.region.clone(),
    }))
}
