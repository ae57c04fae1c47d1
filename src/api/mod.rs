//! The REST API under `/api/v1`, plus `/healthz` and `/readyz`.
//!
//! - `auth.rs`: API keys, scopes and rate limits (a middleware, before any handler).
//! - `error.rs`: problem+json errors, the shared error answers of the OpenAPI document, and the
//!   JSON extractor that names bad fields.
//! - `views.rs`: every typed answer (records become views there).
//! - `servers.rs`: register, list, change, pause, delete, check now; `server_oauth.rs`: a
//!   server's OAuth client-credentials identity (secret write-only, kept across writes);
//!   `server_calls.rs`: its synthetic tool calls (`calls`, `call_failure`).
//! - `history.rs`: results, schema and its history and diffs, incidents, events, status.
//! - `keys.rs`: API key management.
//! - `channels.rs`: alert channels, deliveries and retries.
//! - `maintenance.rs`: maintenance windows that hold alerts.
//! - `agent.rs`: regional agents' config (long poll, ETag) and result pushes.
//! - `health.rs`: liveness and readiness.
//! - `slos.rs`: objectives with their live figures; a server's monthly report.
//! - `posts.rs`, `pages.rs`, `subscribers.rs`: incident posts (with their subscribers'
//!   notices), status pages, and the readers subscribed to them (never their addresses).
//!
//! Conventions: snake_case JSON; `_seconds` integers for durations; RFC 3339 UTC times; UUID
//! ids, and a server's slug wherever its id is accepted; lists take `limit` and an opaque
//! `cursor` and return `next_cursor`.

mod agent;
mod auth;
pub(crate) mod channels;
pub(crate) mod error;
mod health;
mod history;
mod keys;
pub(crate) mod maintenance;
mod mcp;
pub mod monitors;
pub(crate) mod pages;
pub(crate) mod posts;
pub mod registry;
pub(crate) mod server_calls;
mod server_oauth;
pub(crate) mod servers;
pub(crate) mod slos;
pub(crate) mod subscribers;
pub mod views;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::Router;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

pub use auth::{KeyCache, RateLimiter, Scope};
pub use error::{ApiError, FieldError};
pub use keys::issue as issue_key;
pub use servers::seal_url;

use crate::config::Settings;
use crate::ingest::IngestHandle;
use crate::probe::Prober;
use crate::scheduler::SchedulerHandle;
use crate::secrets::Sealer;
use crate::store::{Page, Store};

/// The OpenAPI document's fixed parts; the paths come from the handlers' annotations.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "mcpwatch", description = "Protocol-aware uptime monitor for MCP servers"),
    modifiers(&BearerAuth),
    // Named by the shared error responses (`error::Guarded`, …), which do not register it.
    components(schemas(error::Problem, error::FieldError)),
    tags(
        (name = "servers", description = "registered MCP servers"),
        (name = "history", description = "results, incidents, events, status"),
        (name = "schema", description = "tool lists, their history and diffs"),
        (name = "keys", description = "API keys (admin)"),
        (name = "alerts", description = "alert channels and deliveries"),
        (name = "posts", description = "the status pages: incident posts, announced maintenance, branding and several pages by host"),
        (name = "monitors", description = "monitors as code: plan, apply and export a monitors file"),
        (name = "health", description = "liveness and readiness"),
        (name = "agents", description = "regional agents (agent keys only)")
    )
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Everything handlers need. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub ingest: IngestHandle,
    pub scheduler: SchedulerHandle,
    pub prober: Prober,
    pub sealer: Sealer,
    pub settings: Arc<Settings>,
    /// False once shutdown has begun.
    pub accepting: Arc<AtomicBool>,
    /// Per client IP, spent only by requests without a valid key.
    pub ip_limiter: Arc<RateLimiter>,
    pub key_limiter: Arc<RateLimiter>,
    pub keys: Arc<KeyCache>,
    /// For `POST /channels/{id}/test`, which sends at once.
    pub dispatcher: crate::alert::dispatcher::Dispatcher,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Bumped on every change to what agents probe; long-polling agents wait on it.
    pub agent_config: Arc<tokio::sync::watch::Sender<u64>>,
    /// This replica holds the leader lease (see `crate::cluster`): it runs the singletons.
    pub leader: Arc<AtomicBool>,
    /// The buckets of servers this replica probes and decides (`crate::shard`).
    pub ownership: crate::shard::Ownership,
    /// Whether the database answers; while it does not, requests are answered at once.
    pub db_gate: crate::store::gate::DbGate,
    /// What the public pages read (their own state: `web` knows nothing of the API).
    pub web: crate::web::WebState,
}

impl AppState {
    /// Servers changed: agents waiting on their config get it now.
    pub fn agent_config_changed(&self) {
        self.agent_config.send_modify(|v| *v += 1);
    }

    /// Whether this replica leads (always true on SQLite).
    pub fn leads(&self) -> bool {
        self.leader.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether this node's own scheduler probes `s` (its region is one of the server's, local
    /// probing is on, and its bucket is this replica's).
    pub fn probes_locally(&self, s: &crate::store::ServerRecord) -> bool {
        self.settings.probe_locally
            && s.probed_from(&self.settings.region)
            && self.ownership.owns(&s.id)
    }
}

/// Largest body of `POST /servers:batch` and of a monitors document.
const BULK_BODY_LIMIT: usize = 16 * 1024 * 1024;

/// The routes of `/api/v1`, behind keys (their layers are added by [`router`]).
fn v1_routes() -> utoipa_axum::router::OpenApiRouter<AppState> {
    use utoipa_axum::router::OpenApiRouter;
    use utoipa_axum::routes;
    // A bulk registration of 10,000 servers is a few MiB; every other body stays under
    // axum's default 2 MiB.
    let bulk: OpenApiRouter<AppState> = OpenApiRouter::new()
        .routes(routes!(servers::create_batch))
        .routes(routes!(monitors::plan_document))
        .routes(routes!(monitors::apply_document))
        .layer(axum::extract::DefaultBodyLimit::max(BULK_BODY_LIMIT));
    OpenApiRouter::new()
        .merge(bulk)
        .routes(routes!(servers::list, servers::create))
        .routes(routes!(servers::get, servers::update, servers::delete))
        .routes(routes!(servers::pause))
        .routes(routes!(servers::resume))
        .routes(routes!(servers::check_now))
        .routes(routes!(history::results))
        .routes(routes!(history::schema))
        .routes(routes!(history::schema_history))
        .routes(routes!(history::schema_diff))
        .routes(routes!(history::server_incidents))
        .routes(routes!(history::incidents))
        .routes(routes!(history::events))
        .routes(routes!(history::status))
        .routes(routes!(keys::list, keys::create))
        .routes(routes!(keys::delete))
        .routes(routes!(channels::list, channels::create))
        .routes(routes!(channels::get, channels::update, channels::delete))
        .routes(routes!(channels::test))
        .routes(routes!(channels::channel_deliveries))
        .routes(routes!(channels::deliveries))
        .routes(routes!(channels::retry))
        .routes(routes!(maintenance::list, maintenance::create))
        .routes(routes!(maintenance::delete))
        .routes(routes!(monitors::export_document))
        .routes(routes!(registry::import_route))
        .routes(routes!(posts::list, posts::create))
        .routes(routes!(posts::get, posts::delete))
        .routes(routes!(posts::add_update))
        .routes(routes!(pages::list, pages::create))
        .routes(routes!(pages::delete))
        .routes(routes!(subscribers::list))
        .routes(routes!(subscribers::delete))
        .routes(routes!(subscribers::forget))
        .routes(routes!(slos::list, slos::create))
        .routes(routes!(slos::get, slos::delete))
        .routes(routes!(slos::server_report))
        .routes(routes!(agent::config))
        .routes(routes!(agent::results))
}

/// The whole HTTP surface, and the OpenAPI document generated from the same route list.
pub fn router(state: AppState) -> Router {
    use utoipa::OpenApi;
    use utoipa_axum::router::OpenApiRouter;
    use utoipa_axum::routes;
    let v1 = v1_routes()
        .fallback(error::not_found)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), database_gate));
    let (router, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .nest("/api/v1", v1)
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .split_for_parts();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    mcp::know_schemas(&doc);
    let doc = Arc::new(doc);
    let public = crate::web::router(state.web.clone());
    // mcpwatch's own MCP endpoint, behind the same keys as the API.
    let mcp = Router::new()
        .route("/mcp", axum::routing::post(mcp::endpoint))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), database_gate));
    router
        .merge(mcp)
        .route("/metrics", get(health::metrics))
        .route(
            "/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move { axum::Json(doc.as_ref().clone()) }
            }),
        )
        .with_state(state)
        .merge(public)
        .fallback(error::not_found)
        .layer(middleware::from_fn(reject_nul))
}

/// While the database is known to be unreachable, API requests get their 503 at once instead
/// of each waiting for a pool connection; a 503 caused by the database marks it so.
async fn database_gate(
    axum::extract::State(app): axum::extract::State<AppState>,
    req: axum::extract::Request,
    next: middleware::Next,
) -> Response {
    if let Some(since) = app.db_gate.down_since() {
        return ApiError::Unreachable(format!("database unreachable since {}", rfc3339(since)))
            .into_response();
    }
    let resp = next.run(req).await;
    if resp
        .extensions()
        .get::<crate::store::gate::DatabaseUnavailable>()
        .is_some()
    {
        app.db_gate.mark_down(now_ms());
    }
    resp
}

/// No text we store or look up may hold a NUL character (Postgres refuses it, and no name, slug
/// or tag needs one), so it is refused here, the same on both backends, before any handler:
/// in the path, 404 (nothing can be named so); in the query, 400. JSON bodies are checked by
/// [`error::ApiJson`], which names the field.
async fn reject_nul(req: axum::extract::Request, next: middleware::Next) -> Response {
    let uri = req.uri();
    if uri.path().contains("%00") {
        return if uri.path().starts_with("/api/") {
            ApiError::NotFound("no such resource: the path contains a NUL character".into())
                .into_response()
        } else {
            crate::web::not_found_page()
        };
    }
    if uri.query().is_some_and(|q| q.contains("%00")) {
        return ApiError::BadRequest("the query string contains a NUL character (%00)".into())
            .into_response();
    }
    next.run(req).await
}

pub use crate::clock::{now_ms, rfc3339};

/// RFC 3339 → Unix ms, or a field error.
pub fn parse_time(field: &str, text: &str) -> Result<i64, ApiError> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        .map_err(|_| {
            ApiError::field(
                field,
                format!("'{text}' is not an RFC 3339 time like 2026-01-31T12:00:00Z"),
            )
        })
}

/// `limit` (1..=500, default 50) and `cursor` → a keyset page.
pub fn page(limit: Option<u32>, cursor: Option<&str>) -> Result<Page, ApiError> {
    let limit = limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::field("limit", "must be between 1 and 500"));
    }
    let after = match cursor.filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => Some(
            decode_cursor(c)
                .ok_or_else(|| ApiError::field("cursor", "is not a cursor this API returned"))?,
        ),
    };
    Ok(Page { limit, after })
}

/// The opaque cursor for a row at (time, id).
pub fn encode_cursor(at: i64, id: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{at}:{id}"))
}

fn decode_cursor(c: &str) -> Option<(i64, String)> {
    let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(c).ok()?).ok()?;
    let (at, id) = raw.split_once(':')?;
    Some((at.parse().ok()?, id.to_string()))
}

/// `next_cursor` when the page was full.
pub fn next_cursor<T>(rows: &[T], limit: u32, key: impl Fn(&T) -> (i64, String)) -> Option<String> {
    if rows.len() as u32 == limit {
        rows.last().map(|r| {
            let (at, id) = key(r);
            encode_cursor(at, &id)
        })
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_bad_ones_are_field_errors() {
        let c = encode_cursor(1_700_000_000_000, "abc-1");
        assert_eq!(decode_cursor(&c), Some((1_700_000_000_000, "abc-1".into())));
        assert!(page(Some(10), Some("garbage!")).is_err());
        assert!(page(Some(0), None).is_err());
        assert_eq!(page(None, None).unwrap().limit, 50);
    }

    #[test]
    fn times_round_trip() {
        let ms = 1_767_225_600_123;
        assert_eq!(rfc3339(ms), "2026-01-01T00:00:00.123Z");
        assert_eq!(parse_time("since", "2026-01-01T00:00:00.123Z").unwrap(), ms);
        assert!(parse_time("since", "yesterday").is_err());
    }
}
