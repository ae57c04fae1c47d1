//! `/api/v1/pages`: several status pages. Each has its own host (the Host readers ask for;
//! none: the default page's branding), branding (title, description, logo, accent colour,
//! links, footer), and the servers it shows (by tag or list; none given: every public one).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::error::{ApiError, ApiJson, BadInput, Guarded, NoSuch, Taken};
use super::{AppState, now_ms};
use crate::clock::rfc3339;
use crate::store::PageRecord;

/// A link in a page's header.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Link {
    pub label: String,
    pub url: String,
}

/// A new page.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PageInput {
    /// The host name readers use (`status.example.com`, no port); absent: the default page.
    host: Option<String>,
    title: String,
    description: Option<String>,
    /// An http(s) image URL.
    logo_url: Option<String>,
    /// `#rrggbb`.
    accent: Option<String>,
    footer: Option<String>,
    #[serde(default)]
    links: Vec<Link>,
    /// Show the public servers with one of these tags…
    #[serde(default)]
    tags: Vec<String>,
    /// …or listed here (ids or slugs). Neither: every public server.
    #[serde(default)]
    servers: Vec<String>,
}

/// A page as shown.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PageView {
    pub id: String,
    pub host: Option<String>,
    pub title: String,
    pub description: Option<String>,
    pub logo_url: Option<String>,
    pub accent: Option<String>,
    pub footer: Option<String>,
    pub links: Vec<Link>,
    pub tags: Vec<String>,
    /// Server ids.
    pub servers: Vec<String>,
    pub created_at: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PageList {
    pub items: Vec<PageView>,
}

fn view(p: &PageRecord) -> PageView {
    PageView {
        id: p.id.clone(),
        host: p.host.clone(),
        title: p.title.clone(),
        description: p.description.clone(),
        logo_url: p.logo_url.clone(),
        accent: p.accent.clone(),
        footer: p.footer.clone(),
        links: p
            .links
            .iter()
            .map(|(label, url)| Link {
                label: label.clone(),
                url: url.clone(),
            })
            .collect(),
        tags: p.tags.clone(),
        servers: p.server_ids.clone(),
        created_at: rfc3339(p.created_at),
    }
}

fn bounded(field: &str, v: Option<&str>, max: usize) -> Result<Option<String>, ApiError> {
    match v.map(str::trim) {
        None => Ok(None),
        Some(t) if t.is_empty() || t.chars().count() > max => Err(ApiError::field(
            field,
            format!("must be 1-{max} characters"),
        )),
        Some(t) => Ok(Some(t.to_string())),
    }
}

fn web_url(field: &str, v: &str) -> Result<String, ApiError> {
    match url::Url::parse(v) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {
            Ok(v.to_string())
        }
        _ => Err(ApiError::field(field, "must be an http(s) URL")),
    }
}

/// A host name as readers type it: letters, digits, `-` and `.`, no port.
fn host_name(v: &str) -> Result<String, ApiError> {
    let h = v.trim().trim_end_matches('.').to_ascii_lowercase();
    let ok = !h.is_empty()
        && h.len() <= 253
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if ok {
        Ok(h)
    } else {
        Err(ApiError::field(
            "host",
            "must be a host name (letters, digits, - and .), without a port",
        ))
    }
}

/// The page `input` describes, checked.
async fn page_from(app: &AppState, input: PageInput) -> Result<PageRecord, ApiError> {
    let accent = match input.accent.as_deref().map(str::trim) {
        None => None,
        Some(a)
            if a.len() == 7
                && a.starts_with('#')
                && a[1..].bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            Some(a.to_ascii_lowercase())
        }
        Some(_) => return Err(ApiError::field("accent", "must be a colour as #rrggbb")),
    };
    let mut links = Vec::new();
    for l in input.links {
        let label = bounded("links", Some(&l.label), 50)?.unwrap_or_default();
        links.push((label, web_url("links", &l.url)?));
    }
    let mut server_ids = Vec::new();
    for s in &input.servers {
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
    Ok(PageRecord {
        id: uuid::Uuid::now_v7().to_string(),
        host: input.host.as_deref().map(host_name).transpose()?,
        title: bounded("title", Some(&input.title), 100)?.unwrap_or_default(),
        description: bounded("description", input.description.as_deref(), 500)?,
        logo_url: input
            .logo_url
            .as_deref()
            .map(|u| web_url("logo_url", u))
            .transpose()?,
        accent,
        footer: bounded("footer", input.footer.as_deref(), 500)?,
        links,
        tags: input.tags,
        server_ids,
        created_at: now_ms(),
    })
}

#[utoipa::path(post, path = "/pages", tag = "posts", request_body = PageInput, responses((status = 201, description = "the page, served to readers asking for its host", body = PageView), BadInput, Taken, Guarded), security(("bearer" = [])))]
pub async fn create(
    State(app): State<AppState>,
    ApiJson(input): ApiJson<PageInput>,
) -> Result<(StatusCode, Json<PageView>), ApiError> {
    let page = page_from(&app, input).await?;
    if page.host.is_none()
        && app
            .store
            .list_pages()
            .await?
            .iter()
            .any(|p| p.host.is_none())
    {
        return Err(ApiError::Conflict(
            "the default page is branded already: delete that page first".into(),
        ));
    }
    app.store.insert_page(&page).await.map_err(|e| match e {
        crate::store::StoreError::Conflict(_) => ApiError::Conflict(format!(
            "a page for host '{}' exists already",
            page.host.as_deref().unwrap_or("")
        )),
        other => other.into(),
    })?;
    app.web.pages.invalidate();
    Ok((StatusCode::CREATED, Json(view(&page))))
}

#[utoipa::path(get, path = "/pages", tag = "posts", responses((status = 200, description = "every page", body = PageList), Guarded), security(("bearer" = [])))]
pub async fn list(State(app): State<AppState>) -> Result<Json<PageList>, ApiError> {
    let pages = app.store.list_pages().await?;
    Ok(Json(PageList {
        items: pages.iter().map(view).collect(),
    }))
}

#[utoipa::path(delete, path = "/pages/{id}", tag = "posts", params(("id" = String, Path, description = "page id")), responses((status = 204, description = "deleted; its host shows the default page"), NoSuch, Guarded), security(("bearer" = [])))]
pub async fn delete(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if !app.store.delete_page(&id).await? {
        return Err(ApiError::NotFound(format!("no page with id '{id}'")));
    }
    app.web.pages.invalidate();
    Ok(StatusCode::NO_CONTENT)
}
