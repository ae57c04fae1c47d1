//! What the daemon recorded: results, schema (current, history, diffs), incidents, events,
//! and the status summary.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::ApiError;
use super::servers::{find, view};
use super::{AppState, next_cursor, page, parse_time, rfc3339};
use crate::schema;
use crate::store::{EventRecord, IncidentRecord, ResultQuery, ResultRecord, SnapshotRecord};

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

fn result_json(r: &ResultRecord) -> Value {
    let failure = r.failure_kind.as_ref().map(|kind| {
        json!({"kind": kind, "phase": r.failure_phase, "message": r.failure_message, "http_status": r.http_status, "jsonrpc_code": r.jsonrpc_code})
    });
    json!({
        "id": r.id, "region": r.region, "started_at": rfc3339(r.started_at), "verdict": r.verdict,
        "failure": failure, "era": r.era, "protocol_version": r.protocol_version,
        "server_info": r.server_name.as_ref().map(|n| json!({"name": n, "version": r.server_version})),
        "tools_count": r.tool_count, "schema_hash": r.schema_hash,
        "timings_ms": {"dns": r.dns_ms, "connect": r.connect_ms, "tls": r.tls_ms, "handshake": r.handshake_ms, "tools_list": r.tools_list_ms, "total": r.duration_ms},
        "tls_not_after": r.tls_not_after.map(|s| rfc3339(s * 1000)),
    })
}

#[utoipa::path(get, path = "/servers/{id}/results", tag = "history", params(("id" = String, Path, description = "server id or slug"), ResultsQuery), responses((status = 200, description = "results, newest first: {items, next_cursor}", body = Value), (status = 422, description = "invalid input, field by field", body = crate::api::error::Problem), (status = 404, description = "no such server", body = crate::api::error::Problem), (status = 401, description = "no valid API key", body = crate::api::error::Problem), (status = 403, description = "the key lacks the scope", body = crate::api::error::Problem), (status = 429, description = "rate limited", body = crate::api::error::Problem)), security(("bearer" = [])))]
pub async fn results(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<ResultsQuery>,
) -> Result<Json<Value>, ApiError> {
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
    let next = next_cursor(&rows, pg.limit, |r| (r.started_at, r.id.clone()));
    Ok(Json(
        json!({"items": rows.iter().map(result_json).collect::<Vec<_>>(), "next_cursor": next}),
    ))
}

fn snapshot_json(s: &SnapshotRecord, with_tools: bool) -> Value {
    let mut v = json!({
        "hash": s.hash, "interface_hash": s.interface_hash,
        "tools_count": s.tools.as_array().map(Vec::len).unwrap_or(0),
        "first_seen": rfc3339(s.first_seen), "last_seen": rfc3339(s.last_seen),
    });
    if with_tools {
        v["tools"] = s.tools.clone();
    }
    v
}

#[utoipa::path(get, path = "/servers/{id}/schema", tag = "schema", params(("id" = String, Path, description = "server id or slug")), responses((status = 200, description = "current canonical tool list and hashes", body = Value), (status = 404, description = "no such server", body = crate::api::error::Problem), (status = 401, description = "no valid API key", body = crate::api::error::Problem), (status = 403, description = "the key lacks the scope", body = crate::api::error::Problem), (status = 429, description = "rate limited", body = crate::api::error::Problem)), security(("bearer" = [])))]
pub async fn schema(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(snapshot_json(&snap, true)))
}

/// Every hash the server has served, newest first, each with the diff from the one before.
#[utoipa::path(get, path = "/servers/{id}/schema/history", tag = "schema", params(("id" = String, Path, description = "server id or slug")), responses((status = 200, description = "every hash served, newest first, with diffs", body = Value), (status = 404, description = "no such server", body = crate::api::error::Problem), (status = 401, description = "no valid API key", body = crate::api::error::Problem), (status = 403, description = "the key lacks the scope", body = crate::api::error::Problem), (status = 429, description = "rate limited", body = crate::api::error::Problem)), security(("bearer" = [])))]
pub async fn schema_history(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
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
        let mut v = snapshot_json(snap, false);
        v["at"] = json!(rfc3339(e.change.at));
        v["previous_hash"] = json!(e.change.previous);
        v["reverts"] = json!(e.reverts);
        if let Some(d) = e.diff {
            v["change"] = json!({"breaking": d.breaking, "security": d.security, "class": d.class(), "summary": d.summary(), "diff": d});
        }
        items.push(v);
    }
    Ok(Json(json!({"items": items})))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DiffQuery {
    from: String,
    to: String,
}

#[utoipa::path(get, path = "/servers/{id}/schema/diff", tag = "schema", params(("id" = String, Path, description = "server id or slug"), DiffQuery), responses((status = 200, description = "structural diff between two hashes", body = Value), (status = 422, description = "invalid input, field by field", body = crate::api::error::Problem), (status = 404, description = "no such server", body = crate::api::error::Problem), (status = 401, description = "no valid API key", body = crate::api::error::Problem), (status = 403, description = "the key lacks the scope", body = crate::api::error::Problem), (status = 429, description = "rate limited", body = crate::api::error::Problem)), security(("bearer" = [])))]
pub async fn schema_diff(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<DiffQuery>,
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(
        json!({"from": from.hash, "to": to.hash, "class": d.class(), "summary": d.summary(), "breaking": d.breaking, "added": d.added, "removed": d.removed, "changed": d.changed}),
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    limit: Option<u32>,
    cursor: Option<String>,
}

fn incident_json(i: &IncidentRecord) -> Value {
    json!({
        "id": i.id, "server_id": i.server_id, "kind": i.kind, "cause": i.cause,
        "opened_at": rfc3339(i.opened_at), "closed_at": i.closed_at.map(rfc3339),
        "duration_seconds": i.closed_at.map(|c| (c - i.opened_at) / 1000),
    })
}

async fn incident_page(
    app: &AppState,
    server_id: Option<&str>,
    q: PageQuery,
) -> Result<Json<Value>, ApiError> {
    let pg = page(q.limit, q.cursor.as_deref())?;
    let rows = app.store.list_incidents(server_id, &pg).await?;
    let next = next_cursor(&rows, pg.limit, |r| (r.opened_at, r.id.clone()));
    Ok(Json(
        json!({"items": rows.iter().map(incident_json).collect::<Vec<_>>(), "next_cursor": next}),
    ))
}

#[utoipa::path(get, path = "/incidents", tag = "history", params(PageQuery), responses((status = 200, description = "incidents, newest first", body = Value), (status = 401, description = "no valid API key", body = crate::api::error::Problem), (status = 403, description = "the key lacks the scope", body = crate::api::error::Problem), (status = 429, description = "rate limited", body = crate::api::error::Problem)), security(("bearer" = [])))]
pub async fn incidents(
    State(app): State<AppState>,
    Query(q): Query<PageQuery>,
) -> Result<Json<Value>, ApiError> {
    incident_page(&app, None, q).await
}

#[utoipa::path(get, path = "/servers/{id}/incidents", tag = "history", params(("id" = String, Path, description = "server id or slug"), PageQuery), responses((status = 200, description = "incidents of one server, newest first", body = Value), (status = 404, description = "no such server", body = crate::api::error::Problem), (status = 401, description = "no valid API key", body = crate::api::error::Problem), (status = 403, description = "the key lacks the scope", body = crate::api::error::Problem), (status = 429, description = "rate limited", body = crate::api::error::Problem)), security(("bearer" = [])))]
pub async fn server_incidents(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> Result<Json<Value>, ApiError> {
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

fn event_json(e: &EventRecord) -> Value {
    json!({"id": e.id, "type": e.kind, "server_id": e.server_id, "at": rfc3339(e.at), "data": e.payload})
}

#[utoipa::path(get, path = "/events", tag = "history", params(EventsQuery), responses((status = 200, description = "events, newest first", body = Value), (status = 401, description = "no valid API key", body = crate::api::error::Problem), (status = 403, description = "the key lacks the scope", body = crate::api::error::Problem), (status = 429, description = "rate limited", body = crate::api::error::Problem)), security(("bearer" = [])))]
pub async fn events(
    State(app): State<AppState>,
    Query(q): Query<EventsQuery>,
) -> Result<Json<Value>, ApiError> {
    let pg = page(q.limit, q.cursor.as_deref())?;
    let server_id = match &q.server {
        Some(s) => Some(find(&app, s).await?.id),
        None => None,
    };
    let rows = app
        .store
        .list_events(server_id.as_deref(), q.kind.as_deref(), &pg)
        .await?;
    let next = next_cursor(&rows, pg.limit, |r| (r.at, r.id.clone()));
    Ok(Json(
        json!({"items": rows.iter().map(event_json).collect::<Vec<_>>(), "next_cursor": next}),
    ))
}

/// Counts by state over the whole fleet, and a page of servers with their state and last
/// result (filtered like `GET /servers`; `next_cursor` continues).
#[utoipa::path(get, path = "/status", tag = "history", params(crate::api::servers::ListQuery), responses((status = 200, description = "counts by state over every server, and a page of servers with their last result: {counts, servers, next_cursor, region}", body = Value), (status = 422, description = "invalid input, field by field", body = crate::api::error::Problem), (status = 401, description = "no valid API key", body = crate::api::error::Problem), (status = 403, description = "the key lacks the scope", body = crate::api::error::Problem), (status = 429, description = "rate limited", body = crate::api::error::Problem)), security(("bearer" = [])))]
pub async fn status(
    State(app): State<AppState>,
    Query(q): Query<crate::api::servers::ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let (filter, pg) = q.parse()?;
    let mut counts: BTreeMap<&'static str, i64> =
        ["unknown", "up", "degraded", "down", "auth_failed", "paused"]
            .into_iter()
            .map(|s| (s, 0))
            .collect();
    for (status, n) in app.store.count_by_status().await? {
        *counts.entry(status.as_str()).or_default() += n;
    }
    let rows = app.store.servers_with_state(&filter, &pg).await?;
    let mut servers = Vec::with_capacity(rows.len());
    // One indexed read per server of the page (at most `limit`), never per fleet.
    for row in &rows {
        let last = app.store.last_result(&row.server.id).await?;
        let mut v = view(&row.server, row.state.as_ref(), &row.regions);
        v["last_result"] = last.as_ref().map(result_json).unwrap_or(Value::Null);
        servers.push(v);
    }
    let next = next_cursor(&rows, pg.limit, |r| {
        (r.server.created_at, r.server.id.clone())
    });
    Ok(Json(
        json!({"counts": counts, "servers": servers, "next_cursor": next, "region": app.settings.region}),
    ))
}
