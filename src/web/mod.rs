//! The public face: status page, per-server pages, badges and `/status.json`. No login; only
//! public servers appear (a private one is a 404 everywhere, exactly like one that does not
//! exist). Everything reads state, rollups and incidents, never raw results, except the
//! newest result (the last probe's details) and, for a server with synthetic tool calls, the
//! recent results its call charts need.
//!
//! - `brand.rs`: several pages, each reader's Host picking one: its branding and servers.
//! - `calls.rs`: a server's synthetic tool calls: each call, its write override, its last
//!   outcome and a latency chart per tool.
//! - `history.rs`: the in-memory copy of recent rollups, topped up with what changed.
//! - `last_good.rs`: the last good copy of every public response, served (marked stale) while
//!   the database is unreachable.
//! - `model.rs`: the data of a page, read once and shared by HTML, badges and JSON.
//! - `pages.rs`: the askama templates (`templates/` at the crate root), escaped by default.
//! - `posts.rs`: operators' incident posts and maintenance notices: on `/`, per server, one
//!   page each (`/incidents/{id}`), in `/status.json`, and as Atom feeds.
//! - `report.rs`: a server's printable monthly report (`/s/{slug}/report/{YYYY-MM}`).
//! - `subscribe.rs`: readers subscribing by email or webhook (double opt-in, one-click
//!   unsubscribe); the notices themselves go out through `alert::notice`.
//! - `svg.rs`: bars, sparklines, charts and badges, drawn on the server (works without JS).
//! - `words.rs`: states, failures, times and durations in plain words.

mod brand;
mod calls;
mod history;
mod last_good;
mod model;
mod pages;
mod posts;
mod report;
pub mod subscribe;
mod svg;
mod words;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::clock::{now_ms, rfc3339};
use crate::store::gate::DbGate;
use crate::store::rollup::{DAY_MS, HOUR_MS, day_start, hour_start};
use crate::store::{Scope, Store, StoreError};

pub use brand::{Brand, Pages};
pub use history::HistoryCache;
pub use last_good::LastGood;
pub use model::{Overall, Summary, public_summaries};
pub use posts::{PublicPost, label as status_label, public as public_posts};
pub use report::report_page;
pub use subscribe::Subscriptions;
pub use words::date_time;

/// The public routes, merged into the daemon's router.
pub fn router(state: WebState) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/s/{slug}", get(server_page))
        .route("/status.json", get(status_json))
        .route("/badge/{file}", get(state_badge))
        .route("/badge/{slug}/uptime.svg", get(uptime_badge))
        .route("/incidents/{id}", get(post_page))
        .route("/feed.atom", get(feed))
        .route("/s/{slug}/feed.atom", get(server_feed))
        .route("/s/{slug}/report/{month}", get(report::public_report))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            last_good::serve,
        ))
        // Writes and one-off answers: never a stale copy.
        .route(
            "/subscribe",
            get(|| async { axum::response::Redirect::to("/#subscribe") })
                .post(subscribe::subscribe),
        )
        .route(
            "/subscribe/confirm",
            get(subscribe::confirm_form).post(subscribe::confirm),
        )
        .route(
            "/unsubscribe",
            get(subscribe::unsubscribe_form).post(subscribe::unsubscribe),
        )
        .with_state(state)
}

/// What the public pages read: their own state, so the public face depends on the store and
/// nothing of the API.
#[derive(Clone)]
pub struct WebState {
    pub store: Arc<dyn Store>,
    /// The in-memory copy of recent rollups.
    pub history: Arc<HistoryCache>,
    /// The last good copy of every public response, served while the database is away.
    pub last_good: Arc<LastGood>,
    pub db_gate: DbGate,
    /// A region not heard from this long is silent.
    pub region_silent_after: Duration,
    /// How long a change of the tool list shows on `/` and in `/status.json`.
    pub drift_shown: Duration,
    /// `MCPWATCH_PUBLIC_URL`: the base of absolute links (feeds).
    pub public_url: Option<String>,
    /// The status pages (branding and servers), by Host.
    pub pages: Arc<brand::Pages>,
    /// Readers' subscriptions; `None`: off.
    pub subscriptions: Option<Arc<Subscriptions>>,
}

impl WebState {
    pub fn new(
        store: Arc<dyn Store>,
        db_gate: DbGate,
        region_silent_after: Duration,
        drift_shown: Duration,
    ) -> Self {
        WebState {
            store,
            history: Arc::default(),
            last_good: Arc::default(),
            db_gate,
            region_silent_after,
            drift_shown,
            public_url: None,
            pages: Arc::default(),
            subscriptions: None,
        }
    }

    /// The page the request's Host asks for.
    async fn brand(&self, headers: &axum::http::HeaderMap) -> Brand {
        let host = brand::host_of(headers);
        self.pages.brand(self.store.as_ref(), host.as_deref()).await
    }
}

/// A failure on a public page: a short page (or badge) that says what is wrong, never a trace.
enum WebError {
    NotFound,
    Unavailable(String),
    /// The database cannot be reached: `last_good` serves the page's last copy.
    Unreachable(String),
}

impl From<StoreError> for WebError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unreachable(_) => WebError::Unreachable(e.to_string()),
            other => WebError::Unavailable(other.to_string()),
        }
    }
}

impl From<askama::Error> for WebError {
    fn from(e: askama::Error) -> Self {
        WebError::Unavailable(format!("template: {e}"))
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let unreachable = matches!(self, WebError::Unreachable(_));
        let (status, text) = match self {
            WebError::NotFound => (StatusCode::NOT_FOUND, "No public MCP server by that name."),
            WebError::Unavailable(detail) | WebError::Unreachable(detail) => {
                tracing::warn!(detail = %detail, "status page unavailable");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The status page is briefly unavailable; it will be back in a moment.",
                )
            }
        };
        let body = format!(
            "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{code}</title><meta http-equiv=\"refresh\" content=\"60\"></head><body><p>{text}</p><p><a href=\"/\">All servers</a></p></body></html>",
            code = status.as_u16()
        );
        let resp = (status, no_store(), Html(body)).into_response();
        if unreachable {
            return database_unavailable(resp);
        }
        resp
    }
}

/// The public 404 page, for paths the router never reaches (see `api::reject_nul`).
pub fn not_found_page() -> Response {
    WebError::NotFound.into_response()
}

fn no_store() -> [(header::HeaderName, HeaderValue); 1] {
    [(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"))]
}

/// `/?page=N`: which page of server cards.
#[derive(Debug, serde::Deserialize)]
struct IndexQuery {
    page: Option<usize>,
}

async fn index(
    State(app): State<WebState>,
    headers: axum::http::HeaderMap,
    axum::extract::Query(q): axum::extract::Query<IndexQuery>,
) -> Result<Response, WebError> {
    let now = now_ms();
    let started = std::time::Instant::now();
    let brand = app.brand(&headers).await;
    let (mut summaries, regions, mut active) = tokio::try_join!(
        public_summaries(app.store.as_ref(), &app.history, now, app.drift_shown),
        app.store.list_regions(),
        posts::active(app.store.as_ref())
    )?;
    summaries.retain(|s| brand.shows(&s.server));
    active.retain(|p| brand.shows_post(p));
    let read = started.elapsed();
    let silent = regions
        .iter()
        .filter(|r| is_silent(&app, r, now))
        .map(|r| (r.name.clone(), words::date_time(r.last_seen_at)))
        .collect();
    let html = pages::index(
        &summaries,
        q.page.unwrap_or(1),
        silent,
        (&active, &brand, subscribe::offer(&app, &headers, &brand)),
        now,
    )?;
    tracing::debug!(
        servers = summaries.len(),
        read_ms = read.as_secs_f64() * 1000.0,
        render_ms = (started.elapsed() - read).as_secs_f64() * 1000.0,
        bytes = html.len(),
        "status page"
    );
    Ok((no_store(), Html(html)).into_response())
}

async fn server_page(
    State(app): State<WebState>,
    headers: axum::http::HeaderMap,
    Path(slug): Path<String>,
) -> Result<Response, WebError> {
    let now = now_ms();
    let store = app.store.as_ref();
    let brand = app.brand(&headers).await;
    let Some((s, incidents, windows)) =
        model::public_summary(store, &slug, now, app.drift_shown).await?
    else {
        return Err(WebError::NotFound);
    };
    if !brand.shows(&s.server) {
        return Err(WebError::NotFound);
    }
    let scope = Scope::Server(&s.server.id);
    let hourly = store
        .hourly_rollups(scope, hour_start(now) - (24 * 7 - 1) * HOUR_MS)
        .await?;
    let daily = store
        .daily_rollups(scope, day_start(now) - (model::DAYS - 1) * DAY_MS)
        .await?;
    let snapshots = store.list_snapshots(&s.server.id).await?;
    let schema_changes = store.list_schema_changes(&s.server.id).await?;
    let last = store.last_result(&s.server.id).await?;
    let calls = match s.server.call_plan() {
        Some(plan) => calls::rows(&plan, &recent_results(store, &s.server.id).await?),
        None => Vec::new(),
    };
    let notices = posts::recent(store, Some(&s.server.id), 20).await?;
    let objectives = report::objective_rows(store, &s.server, now).await?;
    let html = pages::server(
        pages::ServerInputs {
            s: &s,
            incidents: &incidents,
            windows: &windows,
            snapshots: &snapshots,
            schema_changes: &schema_changes,
            hourly: &hourly,
            daily: &daily,
            last: last.as_ref(),
            posts: &notices,
            brand: &brand,
            objectives,
            calls,
        },
        now,
    )?;
    Ok((no_store(), Html(html)).into_response())
}

/// The newest results of a server, for its tool-call charts.
async fn recent_results(
    store: &dyn crate::store::Store,
    server_id: &str,
) -> Result<Vec<crate::store::ResultRecord>, crate::store::StoreError> {
    store
        .list_results(&crate::store::ResultQuery {
            server_id: server_id.to_string(),
            page: crate::store::Page {
                limit: calls::PROBES_CHARTED,
                after: None,
            },
            ..Default::default()
        })
        .await
}

/// `/incidents/{id}`: one post and its timeline (a 404 unless it is public).
async fn post_page(
    State(app): State<WebState>,
    headers: axum::http::HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let store = app.store.as_ref();
    let brand = app.brand(&headers).await;
    let Some(post) = store.get_post(&id).await? else {
        return Err(WebError::NotFound);
    };
    let Some(p) = posts::public(store, vec![post]).await?.pop() else {
        return Err(WebError::NotFound);
    };
    if !brand.shows_post(&p) {
        return Err(WebError::NotFound);
    }
    Ok((no_store(), Html(posts::page(&p, &brand, now_ms())?)).into_response())
}

/// Where this page is reached from: `MCPWATCH_PUBLIC_URL` for the default page, else the
/// request's Host (a page of its own host: with the public URL's scheme).
fn base_url(app: &WebState, headers: &axum::http::HeaderMap, brand: &Brand) -> String {
    let public = app.public_url.as_deref().map(|u| u.trim_end_matches('/'));
    let scheme = match public {
        Some(u) if u.starts_with("https://") => "https",
        _ => "http",
    };
    if let (Some(u), "default") = (public, brand.key.as_str()) {
        return u.to_string();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| h.bytes().all(|b| b.is_ascii_graphic()))
        .unwrap_or("localhost");
    format!("{scheme}://{host}")
}

fn atom_response(body: String) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/atom+xml; charset=utf-8"),
        )],
        body,
    )
        .into_response()
}

/// `/feed.atom`: the latest 50 public posts.
async fn feed(
    State(app): State<WebState>,
    headers: axum::http::HeaderMap,
) -> Result<Response, WebError> {
    let brand = app.brand(&headers).await;
    let mut shown = posts::recent(app.store.as_ref(), None, 200).await?;
    shown.retain(|p| brand.shows_post(p));
    shown.truncate(50);
    let base = base_url(&app, &headers, &brand);
    let body = posts::atom(
        &format!("{}: incidents and maintenance", brand.title),
        &base,
        "/feed.atom",
        "/",
        &shown,
    );
    Ok(atom_response(body))
}

/// `/s/{slug}/feed.atom`: the latest 50 posts about one public server.
async fn server_feed(
    State(app): State<WebState>,
    Path(slug): Path<String>,
    headers: axum::http::HeaderMap,
) -> Result<Response, WebError> {
    let store = app.store.as_ref();
    let brand = app.brand(&headers).await;
    let Some(server) = store
        .get_server(&slug)
        .await?
        .filter(|s| s.public && s.slug == slug && brand.shows(s))
    else {
        return Err(WebError::NotFound);
    };
    let shown = posts::recent(store, Some(&server.id), 50).await?;
    let base = base_url(&app, &headers, &brand);
    let title = format!("{}: incidents and maintenance", server.name);
    let body = posts::atom(
        &title,
        &base,
        &format!("/s/{slug}/feed.atom"),
        &format!("/s/{slug}"),
        &shown,
    );
    Ok(atom_response(body))
}

/// A region that stopped reporting (agents only: the central's own region reports through
/// its results, not through contact).
fn is_silent(app: &WebState, r: &crate::store::RegionRecord, now: i64) -> bool {
    r.silent_since.is_some() || now - r.last_seen_at > app.region_silent_after.as_millis() as i64
}

/// One server in `/status.json`.
fn server_json(s: &Summary) -> Value {
    json!({
        "slug": s.server.slug,
        "name": s.server.name,
        "tags": s.server.tags,
        "state": s.look.key,
        "state_label": s.look.label,
        "since": s.since.map(rfc3339),
        "reason": s.reason,
        "warning": s.warning,
        "failing_regions": s.failing_regions,
        "maintenance": s.maintenance.as_ref().map(|(name, end)| json!({"name": name, "until": rfc3339(*end)})),
        "uptime": {
            "24h": s.uptime_24h, "7d": s.uptime_7d, "30d": s.uptime_30d, "90d": s.uptime_90d,
        },
        "probe_success": {"24h": s.probe_success_24h, "90d": s.probe_success_90d},
        "last_check": s.last.as_ref().map(|r| rfc3339(r.at)),
        // null while the last probe failed: it listed no tools, it did not find zero.
        "tool_count": s.last.as_ref().filter(|r| pages::served(r.verdict)).map(|r| r.tool_count),
        "schema_hash": s.schema_hash,
        "schema_change": s.schema_change.as_ref().map(|c| json!({
            "at": rfc3339(c.at), "class": c.class, "summary": c.summary,
            "from": c.from_hash, "to": c.to_hash,
        })),
        "regions": s.regions.iter().map(|r| json!({
            "region": r.state.region,
            "state": r.state.status.as_str(),
            "last_check": r.state.last_result_at.map(rfc3339),
        })).collect::<Vec<_>>(),
        "url": format!("/s/{}", s.server.slug),
    })
}

/// `/status.json`: what the page shows, as data. Uptimes are ratios (0–1) or null without data.
async fn status_json(State(app): State<WebState>, headers: axum::http::HeaderMap) -> Response {
    let now = now_ms();
    let brand = app.brand(&headers).await;
    let cors = [
        (
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        ),
        (
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=30"),
        ),
    ];
    let read = tokio::try_join!(
        public_summaries(app.store.as_ref(), &app.history, now, app.drift_shown),
        app.store.list_regions(),
        posts::active(app.store.as_ref())
    );
    match read {
        Ok((mut summaries, regions, mut active)) => {
            summaries.retain(|s| brand.shows(&s.server));
            active.retain(|p| brand.shows_post(p));
            let body = json!({
                "page": {"title": brand.title},
                "overall": Overall::of(&summaries).key(),
                "overall_label": Overall::of(&summaries).label(),
                "generated_at": rfc3339(now),
                "regions": regions.iter().map(|r| json!({
                    "name": r.name,
                    "last_seen": rfc3339(r.last_seen_at),
                    "silent": is_silent(&app, r, now),
                })).collect::<Vec<_>>(),
                "servers": summaries.iter().map(server_json).collect::<Vec<_>>(),
                "incidents": active.iter().map(posts::json).collect::<Vec<_>>(),
            });
            (cors, axum::Json(body)).into_response()
        }
        Err(e) => {
            let mut r = json_unavailable(e);
            r.headers_mut().insert(
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*"),
            );
            r
        }
    }
}

/// Badges are cached briefly by browsers and CDNs (GitHub's camo honours it).
fn svg_response(status: StatusCode, svg: String) -> Response {
    (
        status,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("image/svg+xml;charset=utf-8"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=60, s-maxage=60"),
            ),
        ],
        svg,
    )
        .into_response()
}

/// `/status.json` when its read failed: a problem document, marked for `last_good` when the
/// database is unreachable (the detail is logged, not shown).
fn json_unavailable(e: StoreError) -> Response {
    tracing::warn!(error = %e, "status.json unavailable");
    let unreachable = matches!(e, StoreError::Unreachable(_));
    let body = json!({"type": "about:blank", "title": "Service unavailable", "status": 503,
        "detail": "the status data is briefly unavailable; retry shortly"});
    let resp = (
        StatusCode::SERVICE_UNAVAILABLE,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        )],
        body.to_string(),
    )
        .into_response();
    if unreachable {
        return database_unavailable(resp);
    }
    resp
}

/// Mark a 503 as caused by the database, for `last_good`.
fn database_unavailable(mut resp: Response) -> Response {
    resp.extensions_mut()
        .insert(crate::store::gate::DatabaseUnavailable);
    resp
}

fn badge_not_found() -> Response {
    svg_response(
        StatusCode::NOT_FOUND,
        svg::badge("mcp", "not found", "#6b6b6b"),
    )
}

/// The one public server with this slug.
async fn public_badge_summary(app: &WebState, slug: &str) -> Result<Option<Summary>, StoreError> {
    Ok(
        model::public_summary(app.store.as_ref(), slug, now_ms(), app.drift_shown)
            .await?
            .map(|(s, _, _)| s),
    )
}

/// `GET /badge/{slug}.svg`: the state.
async fn state_badge(State(app): State<WebState>, Path(file): Path<String>) -> Response {
    let Some(slug) = file.strip_suffix(".svg") else {
        return badge_not_found();
    };
    let read = async {
        let Some(s) = public_badge_summary(&app, slug).await? else {
            return Ok(None);
        };
        let posts = app.store.active_posts().await?;
        let post = posts
            .into_iter()
            .find(|p| p.server_ids.contains(&s.server.id));
        Ok::<_, StoreError>(Some((s, post)))
    };
    match read.await {
        Ok(Some((s, post))) => {
            // An operator's open post about this server is named beside its state.
            let mut value = s.look.label.to_lowercase();
            let mut color = svg::state_color(s.look.key);
            if let Some(p) = post {
                value = format!("{value} · {}", p.kind);
                if s.look.key == "up" && matches!(p.impact.as_str(), "major" | "critical") {
                    color = svg::state_color("degraded");
                }
            }
            svg_response(StatusCode::OK, svg::badge("mcp", &value, color))
        }
        Ok(None) => badge_not_found(),
        Err(e) => {
            tracing::warn!(error = %e, "badge unavailable");
            let resp = svg_response(
                StatusCode::SERVICE_UNAVAILABLE,
                svg::badge("mcp", "unavailable", "#6b6b6b"),
            );
            if matches!(e, StoreError::Unreachable(_)) {
                return database_unavailable(resp);
            }
            resp
        }
    }
}

#[derive(Debug, Deserialize)]
struct UptimeQuery {
    days: Option<String>,
}

/// `GET /badge/{slug}/uptime.svg?days=30`: uptime over 1, 7, 30 or 90 days (from rollups).
async fn uptime_badge(
    State(app): State<WebState>,
    Path(slug): Path<String>,
    Query(q): Query<UptimeQuery>,
) -> Response {
    let days = q.days.as_deref().unwrap_or("30");
    let Some(days) = days
        .parse::<u32>()
        .ok()
        .filter(|d| matches!(d, 1 | 7 | 30 | 90))
    else {
        return svg_response(
            StatusCode::BAD_REQUEST,
            svg::badge("days", "use 1, 7, 30 or 90", "#c62828"),
        );
    };
    match public_badge_summary(&app, &slug).await {
        Ok(Some(s)) => {
            let ratio = match days {
                1 => s.uptime_24h,
                7 => s.uptime_7d,
                30 => s.uptime_30d,
                _ => s.uptime_90d,
            };
            let value = ratio.map_or("no data".to_string(), words::percent);
            let label = if days == 1 {
                "uptime 24h".to_string()
            } else {
                format!("uptime {days}d")
            };
            svg_response(
                StatusCode::OK,
                svg::badge(&label, &value, svg::uptime_color(ratio)),
            )
        }
        Ok(None) => badge_not_found(),
        Err(e) => {
            tracing::warn!(error = %e, "badge unavailable");
            let resp = svg_response(
                StatusCode::SERVICE_UNAVAILABLE,
                svg::badge("uptime", "unavailable", "#6b6b6b"),
            );
            if matches!(e, StoreError::Unreachable(_)) {
                return database_unavailable(resp);
            }
            resp
        }
    }
}
