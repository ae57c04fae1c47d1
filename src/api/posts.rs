//! `/api/v1/posts`: what operators tell the status page's readers. An incident post
//! (`investigating` → `identified` → `monitoring` → `resolved`) or an announced maintenance
//! (`scheduled` → `in_progress` → `completed`, optionally tied to a maintenance window), with
//! a title, an impact, the servers it concerns, and timestamped updates. A post can explain an
//! automatic incident (`incident`: its id), giving it a human title and updates.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::error::{ApiError, ApiJson, BadInput, Guarded, NoSuch};
use super::{AppState, now_ms};
use crate::clock::rfc3339;
use crate::store::{NoticeRecord, PostRecord, PostUpdateRecord, SubscriberRecord};

/// Statuses of an incident post, in their usual order; the last closes it.
pub const INCIDENT_STATUSES: &[&str] = &["investigating", "identified", "monitoring", "resolved"];
/// Statuses of a maintenance post; the last closes it.
pub const MAINTENANCE_STATUSES: &[&str] = &["scheduled", "in_progress", "completed"];
/// How bad it is for readers.
pub const IMPACTS: &[&str] = &["none", "minor", "major", "critical"];

/// A new post.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PostInput {
    /// `incident` (default) or `maintenance`.
    kind: Option<String>,
    title: String,
    /// Default: `investigating` (incident) or `scheduled` (maintenance).
    status: Option<String>,
    /// `none`, `minor` (default), `major` or `critical`.
    impact: Option<String>,
    /// Server ids or slugs; empty: the whole service.
    servers: Option<Vec<String>>,
    /// A maintenance window's id (maintenance posts).
    window: Option<String>,
    /// An automatic incident's id that this post explains.
    incident: Option<String>,
    /// The first update's words.
    message: String,
}

/// An update of a post.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateInput {
    /// The post's status from now on.
    status: String,
    message: String,
    /// A new title or impact, when the story changed.
    title: Option<String>,
    impact: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct PostsQuery {
    /// Only posts not resolved or completed.
    #[serde(default)]
    active: bool,
}

/// One update as shown.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PostUpdateView {
    pub status: String,
    pub message: String,
    pub at: String,
}

/// A post with its updates, oldest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PostView {
    pub id: String,
    pub kind: String,
    pub title: String,
    pub status: String,
    pub impact: String,
    /// Server ids.
    pub servers: Vec<String>,
    pub window: Option<String>,
    pub incident: Option<String>,
    /// Not resolved or completed.
    pub active: bool,
    /// Its page on the status site.
    pub page: String,
    pub created_at: String,
    pub updated_at: String,
    pub resolved_at: Option<String>,
    pub updates: Vec<PostUpdateView>,
}

/// Posts, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PostList {
    pub items: Vec<PostView>,
}

/// Whether a post with this status is closed.
pub fn closes(status: &str) -> bool {
    matches!(status, "resolved" | "completed")
}

fn view(p: &PostRecord, updates: &[PostUpdateRecord]) -> PostView {
    PostView {
        id: p.id.clone(),
        kind: p.kind.clone(),
        title: p.title.clone(),
        status: p.status.clone(),
        impact: p.impact.clone(),
        servers: p.server_ids.clone(),
        window: p.window_id.clone(),
        incident: p.incident_id.clone(),
        active: !closes(&p.status),
        page: format!("/incidents/{}", p.id),
        created_at: rfc3339(p.created_at),
        updated_at: rfc3339(p.updated_at),
        resolved_at: p.resolved_at.map(rfc3339),
        updates: updates
            .iter()
            .filter(|u| u.post_id == p.id)
            .map(|u| PostUpdateView {
                status: u.status.clone(),
                message: u.message.clone(),
                at: rfc3339(u.at),
            })
            .collect(),
    }
}

fn one_of(field: &str, value: &str, allowed: &[&str]) -> Result<(), ApiError> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(ApiError::field(
            field,
            format!("'{value}' is not one of {}", allowed.join(", ")),
        ))
    }
}

fn text(field: &str, value: &str, max: usize) -> Result<String, ApiError> {
    let v = value.trim();
    if v.is_empty() || v.chars().count() > max {
        return Err(ApiError::field(
            field,
            format!("must be 1-{max} characters"),
        ));
    }
    Ok(v.to_string())
}

fn statuses(kind: &str) -> &'static [&'static str] {
    if kind == "maintenance" {
        MAINTENANCE_STATUSES
    } else {
        INCIDENT_STATUSES
    }
}

/// The post `input` describes, with ids checked.
async fn new_post(app: &AppState, input: &PostInput, now: i64) -> Result<PostRecord, ApiError> {
    let kind = input.kind.clone().unwrap_or_else(|| "incident".into());
    one_of("kind", &kind, &["incident", "maintenance"])?;
    let status = input
        .status
        .clone()
        .unwrap_or_else(|| statuses(&kind)[0].to_string());
    one_of("status", &status, statuses(&kind))?;
    let impact = input.impact.clone().unwrap_or_else(|| "minor".into());
    one_of("impact", &impact, IMPACTS)?;
    let mut server_ids = Vec::new();
    for s in input.servers.iter().flatten() {
        match app.store.get_server(s).await? {
            Some(found) => server_ids.push(found.id),
            None => {
                return Err(ApiError::field(
                    "servers",
                    format!("no server with id or slug '{s}'"),
                ));
            }
        }
    }
    if let Some(w) = &input.window
        && !app.store.list_windows().await?.iter().any(|x| &x.id == w)
    {
        return Err(ApiError::field(
            "window",
            format!("no maintenance window with id '{w}'"),
        ));
    }
    if let Some(i) = &input.incident
        && app.store.get_incident(i).await?.is_none()
    {
        return Err(ApiError::field(
            "incident",
            format!("no incident with id '{i}'"),
        ));
    }
    Ok(PostRecord {
        id: uuid::Uuid::now_v7().to_string(),
        title: text("title", &input.title, 200)?,
        resolved_at: closes(&status).then_some(now),
        kind,
        status,
        impact,
        server_ids,
        window_id: input.window.clone(),
        incident_id: input.incident.clone(),
        created_at: now,
        updated_at: now,
    })
}

#[utoipa::path(post, path = "/posts", tag = "posts", request_body = PostInput, responses((status = 201, description = "the post, shown on the status page", body = PostView), BadInput, Guarded), security(("bearer" = [])))]
pub async fn create(
    State(app): State<AppState>,
    ApiJson(input): ApiJson<PostInput>,
) -> Result<(StatusCode, Json<PostView>), ApiError> {
    let now = now_ms();
    let post = new_post(&app, &input, now).await?;
    let first = PostUpdateRecord {
        id: uuid::Uuid::now_v7().to_string(),
        post_id: post.id.clone(),
        status: post.status.clone(),
        message: text("message", &input.message, 5000)?,
        at: now,
    };
    let notices = notices_for(&app, &post, &first).await?;
    app.store.insert_post(&post, &first, &notices).await?;
    app.dispatcher.wake.notify_one();
    Ok((StatusCode::CREATED, Json(view(&post, &[first]))))
}

/// A notice of update `u` of `post` to every confirmed subscriber of a page that shows the
/// post (none for a post that names only private servers).
async fn notices_for(
    app: &AppState,
    post: &PostRecord,
    u: &PostUpdateRecord,
) -> Result<Vec<NoticeRecord>, ApiError> {
    let subscribers: Vec<SubscriberRecord> = app
        .store
        .list_subscribers()
        .await?
        .into_iter()
        .filter(|s| s.confirmed_at.is_some())
        .collect();
    if subscribers.is_empty() {
        return Ok(Vec::new());
    }
    let shown = crate::web::public_posts(app.store.as_ref(), vec![post.clone()]).await?;
    let Some(public) = shown.first() else {
        return Ok(Vec::new());
    };
    let pages = app.store.list_pages().await?;
    Ok(subscribers
        .iter()
        .filter(|s| crate::web::Pages::of_page_id(&pages, &s.page_id).shows_post(public))
        .map(|s| NoticeRecord::post(&post.id, &u.id, &s.id, u.at))
        .collect())
}

async fn find(app: &AppState, id: &str) -> Result<PostRecord, ApiError> {
    app.store
        .get_post(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no post with id '{id}'")))
}

#[utoipa::path(post, path = "/posts/{id}/updates", tag = "posts", params(("id" = String, Path, description = "post id")), request_body = UpdateInput, responses((status = 200, description = "the post with the new update", body = PostView), BadInput, NoSuch, Guarded), security(("bearer" = [])))]
pub async fn add_update(
    State(app): State<AppState>,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<UpdateInput>,
) -> Result<Json<PostView>, ApiError> {
    let mut post = find(&app, &id).await?;
    one_of("status", &input.status, statuses(&post.kind))?;
    if let Some(t) = &input.title {
        post.title = text("title", t, 200)?;
    }
    if let Some(i) = &input.impact {
        one_of("impact", i, IMPACTS)?;
        post.impact = i.clone();
    }
    let now = now_ms();
    let update = PostUpdateRecord {
        id: uuid::Uuid::now_v7().to_string(),
        post_id: post.id.clone(),
        status: input.status.clone(),
        message: text("message", &input.message, 5000)?,
        at: now,
    };
    post.status = input.status;
    post.updated_at = now;
    post.resolved_at = closes(&post.status).then_some(post.resolved_at.unwrap_or(now));
    let notices = notices_for(&app, &post, &update).await?;
    app.store.add_post_update(&post, &update, &notices).await?;
    app.dispatcher.wake.notify_one();
    let updates = app
        .store
        .post_updates(std::slice::from_ref(&post.id))
        .await?;
    Ok(Json(view(&post, &updates)))
}

#[utoipa::path(get, path = "/posts/{id}", tag = "posts", params(("id" = String, Path, description = "post id")), responses((status = 200, description = "one post with its updates", body = PostView), NoSuch, Guarded), security(("bearer" = [])))]
pub async fn get(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<PostView>, ApiError> {
    let post = find(&app, &id).await?;
    let updates = app
        .store
        .post_updates(std::slice::from_ref(&post.id))
        .await?;
    Ok(Json(view(&post, &updates)))
}

#[utoipa::path(get, path = "/posts", tag = "posts", params(("active" = Option<bool>, Query, description = "only posts not resolved or completed")), responses((status = 200, description = "the latest 200 posts (or every active one), newest first", body = PostList), Guarded), security(("bearer" = [])))]
pub async fn list(
    State(app): State<AppState>,
    Query(q): Query<PostsQuery>,
) -> Result<Json<PostList>, ApiError> {
    let posts = if q.active {
        app.store.active_posts().await?
    } else {
        app.store.list_posts(200).await?
    };
    let ids: Vec<String> = posts.iter().map(|p| p.id.clone()).collect();
    let updates = app.store.post_updates(&ids).await?;
    Ok(Json(PostList {
        items: posts.iter().map(|p| view(p, &updates)).collect(),
    }))
}

#[utoipa::path(delete, path = "/posts/{id}", tag = "posts", params(("id" = String, Path, description = "post id")), responses((status = 204, description = "deleted with its updates"), NoSuch, Guarded), security(("bearer" = [])))]
pub async fn delete(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if !app.store.delete_post(&id).await? {
        return Err(ApiError::NotFound(format!("no post with id '{id}'")));
    }
    Ok(StatusCode::NO_CONTENT)
}
