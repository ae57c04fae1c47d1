//! `/api/v1/agent/*`: what regional agents call with their `agent` key (bound to one region;
//! see `crate::agent::protocol` for the exchange). Every call counts as the region's contact.

use std::time::Duration;

use axum::Json;
use axum::extract::{Extension, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::auth::Caller;
use super::error::{ApiError, ApiJson, BadInput, Guarded};
use super::{AppState, now_ms};
use crate::agent::protocol::{AgentBatch, AgentConfig, MAX_BATCH, MAX_WAIT_SECONDS, PushReply};
use crate::ingest::IngestItem;
use crate::targets::agent_server;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ConfigQuery {
    /// Seconds to wait for a change when `If-None-Match` matches (long poll), at most 55.
    wait: Option<u64>,
    /// This agent's instance (1 to 64 letters, digits and dashes; a new one at each start).
    /// Several agents of one region that name their instances share its servers: each gets
    /// those of the buckets rendezvous hashing gives it among the region's live instances.
    /// Without it an agent gets all of the region's servers.
    instance: Option<String>,
}

/// How long an agent instance counts as live after its config poll's wait ends: it polls
/// again at once, so a live one is never past it; a stopped one drops out this much later.
const INSTANCE_GRACE: Duration = Duration::from_secs(20);

/// How often a waiting long poll of a named instance looks whether the region's instances
/// changed (an instance gone or new moves servers between them).
const INSTANCE_RECHECK: Duration = Duration::from_secs(5);

/// `instance`, if given, when it is a plausible instance name.
fn instance_of(q: &ConfigQuery) -> Result<Option<&str>, ApiError> {
    let Some(i) = q.instance.as_deref() else {
        return Ok(None);
    };
    let ok =
        (1..=64).contains(&i.len()) && i.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if ok {
        Ok(Some(i))
    } else {
        Err(ApiError::field(
            "instance",
            "1 to 64 letters, digits or dashes".to_string(),
        ))
    }
}

/// An instance and the live instances of its region it shares the servers with.
type Share<'a> = Option<(&'a str, Vec<String>)>;

/// `instance` and its region's live instances (itself included); `None` without an instance.
async fn share_of<'a>(
    app: &AppState,
    region: &str,
    instance: Option<&'a str>,
) -> Result<Share<'a>, ApiError> {
    let Some(me) = instance else {
        return Ok(None);
    };
    let mut live = app.store.live_agents(region, now_ms()).await?;
    if !live.iter().any(|i| i == me) {
        live.push(me.to_string());
        live.sort();
    }
    Ok(Some((me, live)))
}

/// Whether `server_id` is `me`'s among the region's `live` instances (`None`: not shared).
fn is_share(server_id: &str, share: &Share<'_>) -> bool {
    share.as_ref().is_none_or(|(me, live)| {
        crate::shard::rendezvous(crate::shard::bucket_of(server_id), live) == Some(*me)
    })
}

fn region_of(caller: &Caller) -> Result<&str, ApiError> {
    caller
        .region
        .as_deref()
        .ok_or(ApiError::Forbidden(super::auth::AGENT_SCOPE))
}

/// Record the region's contact; say so when it comes back from silence.
async fn contact(app: &AppState, region: &str, headers: &HeaderMap) {
    let version = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.len() <= 100);
    match app.store.touch_region(region, now_ms(), version).await {
        Ok(Some(silent_since)) => {
            tracing::info!(region, silent_since, "region is reporting again")
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(region, error = %e, "could not record region contact"),
    }
}

async fn config_body(
    app: &AppState,
    region: &str,
    share: &Share<'_>,
) -> Result<(Vec<u8>, String), ApiError> {
    let mut servers = Vec::new();
    for s in app.store.all_servers().await? {
        if !s.paused && s.probed_from(region) && is_share(&s.id, share) {
            servers.push(agent_server(&s, &app.sealer)?);
        }
    }
    let body = serde_json::to_vec(&AgentConfig {
        region: region.to_string(),
        servers,
    })
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    let digest = Sha256::digest(&body);
    let etag = format!(
        "\"{}\"",
        digest[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    Ok((body, etag))
}

#[utoipa::path(get, path = "/agent/config", tag = "agents", params(ConfigQuery), responses((status = 200, description = "the servers this region probes, with an ETag", body = crate::agent::protocol::AgentConfig), (status = 304, description = "unchanged since If-None-Match"), BadInput, Guarded), security(("bearer" = [])))]
pub async fn config(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<ConfigQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let region = region_of(&caller)?;
    contact(&app, region, &headers).await;
    let known = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let wait = Duration::from_secs(q.wait.unwrap_or(0).min(MAX_WAIT_SECONDS));
    let deadline = tokio::time::Instant::now() + wait;
    let instance = instance_of(&q)?;
    if let Some(i) = instance {
        let until = now_ms() + (wait + INSTANCE_GRACE).as_millis() as i64;
        app.store.touch_agent(region, i, until).await?;
    }
    let mut changes = app.agent_config.subscribe();
    loop {
        changes.mark_unchanged();
        let share = share_of(&app, region, instance).await?;
        let (body, etag) = config_body(&app, region, &share).await?;
        if known.as_deref() != Some(etag.as_str()) {
            let mut r = (StatusCode::OK, body).into_response();
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            if let Ok(v) = HeaderValue::from_str(&etag) {
                h.insert(header::ETAG, v);
            }
            return Ok(r);
        }
        // Unchanged: wait for a change (or the deadline, or shutdown), then look again.
        if !changed_before(&app, &mut changes, deadline, region, &share).await? {
            let mut r = StatusCode::NOT_MODIFIED.into_response();
            if let Ok(v) = HeaderValue::from_str(&etag) {
                r.headers_mut().insert(header::ETAG, v);
            }
            return Ok(r);
        }
    }
}

/// Wait until the servers change, or (for a named instance) its region's instances do; false
/// at the deadline or shutdown. The instances are read every few seconds, the servers only
/// when they changed: reading and unsealing every server is the expensive part.
async fn changed_before(
    app: &AppState,
    changes: &mut tokio::sync::watch::Receiver<u64>,
    deadline: tokio::time::Instant,
    region: &str,
    share: &Share<'_>,
) -> Result<bool, ApiError> {
    loop {
        let wake = match share {
            Some(_) => deadline.min(tokio::time::Instant::now() + INSTANCE_RECHECK),
            None => deadline,
        };
        let changed = tokio::time::timeout_at(wake, changes.changed()).await;
        if !app.accepting.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(false);
        }
        match changed {
            Ok(Ok(())) => return Ok(true),
            Ok(Err(_)) => return Ok(false),
            Err(_) if wake >= deadline => return Ok(false),
            Err(_) => {
                let now = share_of(app, region, share.as_ref().map(|(me, _)| *me)).await?;
                if now != *share {
                    return Ok(true);
                }
            }
        }
    }
}

#[utoipa::path(post, path = "/agent/results", tag = "agents", request_body = AgentBatch, responses((status = 200, description = "ingested and committed; counts of accepted, duplicate and unknown-server results", body = PushReply), BadInput, Guarded), security(("bearer" = [])))]
pub async fn results(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    ApiJson(batch): ApiJson<AgentBatch>,
) -> Result<Json<PushReply>, ApiError> {
    let region = region_of(&caller)?.to_string();
    check_batch(&batch)?;
    if !app.accepting.load(std::sync::atomic::Ordering::Relaxed) {
        return Err(ApiError::NotHere("shutting down; retry shortly"));
    }
    // Any replica takes a push: its ingest decides the results of its own buckets and hands
    // the others to their owners, all committed before the answer.
    contact(&app, &region, &headers).await;
    let ids: Vec<String> = batch.results.iter().map(|r| r.id.clone()).collect();
    let stored: std::collections::HashSet<String> = app
        .store
        .existing_result_ids(&ids)
        .await?
        .into_iter()
        .collect();
    let servers = slugs_of(&app, &batch).await?;
    let mut reply = PushReply::default();
    let mut seen = std::collections::HashSet::new();
    for r in batch.results {
        if stored.contains(&r.id) || !seen.insert(r.id.clone()) {
            reply.duplicates += 1;
            continue;
        }
        let Some(Some(slug)) = servers.get(&r.server_id) else {
            reply.unknown_servers += 1;
            continue;
        };
        // A server's own series are kept by its owner (for one handed off, when it takes it).
        let lag = Duration::from_millis(r.lag_ms);
        if app.ownership.owns(&r.server_id) {
            app.metrics.observe_probe(slug, &region, &r.report, lag);
        } else {
            app.metrics.observe_region_probe(&region, &r.report, lag);
        }
        let mut report = r.report;
        report.tools = r.tools;
        let item = IngestItem {
            result_id: r.id,
            server_id: r.server_id,
            region: region.clone(),
            started_at: r.started_at,
            report,
            vantage_unhealthy: r.vantage_unhealthy,
        };
        app.ingest
            .submit(item)
            .await
            .map_err(|_| ApiError::NotHere("shutting down: results are no longer taken"))?;
        reply.accepted += 1;
    }
    // Answer only once it is committed: the agent deletes its copy on our 200. If the
    // database is down the agent retries later; the ingest skips ids it already holds.
    let committed = tokio::time::timeout(Duration::from_secs(20), app.ingest.flush()).await;
    if committed.is_err()
        || !app
            .ingest
            .health
            .database_ok
            .load(std::sync::atomic::Ordering::Relaxed)
    {
        return Err(ApiError::NotHere(
            "result writes are failing: keep the batch and retry",
        ));
    }
    Ok(Json(reply))
}

/// At most [`MAX_BATCH`] results, each with a UUID.
fn check_batch(batch: &AgentBatch) -> Result<(), ApiError> {
    if batch.results.len() > MAX_BATCH {
        return Err(ApiError::field(
            "results",
            format!("at most {MAX_BATCH} results per batch"),
        ));
    }
    if let Some(bad) = batch
        .results
        .iter()
        .find(|r| uuid::Uuid::parse_str(&r.id).is_err())
    {
        return Err(ApiError::field(
            "results",
            format!(
                "result id '{}' is not a UUID",
                bad.id.chars().take(40).collect::<String>()
            ),
        ));
    }
    Ok(())
}

/// Each pushed result's server slug, `None` for a server that no longer exists.
async fn slugs_of(
    app: &AppState,
    batch: &AgentBatch,
) -> Result<std::collections::HashMap<String, Option<String>>, ApiError> {
    let mut servers: std::collections::HashMap<String, Option<String>> = Default::default();
    for r in &batch.results {
        if !servers.contains_key(&r.server_id) {
            let slug = app
                .store
                .get_server(&r.server_id)
                .await?
                .filter(|s| s.id == r.server_id)
                .map(|s| s.slug);
            servers.insert(r.server_id.clone(), slug);
        }
    }
    Ok(servers)
}
