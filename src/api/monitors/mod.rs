//! `/api/v1/monitors`: monitors as code. A document (a monitors file with its `${VAR}`
//! references expanded by whoever applies it) is planned (`POST /monitors/plan`: what would be
//! created, changed, adopted and deleted, field by field) or applied (`POST /monitors/apply`:
//! the same, written in one transaction); `GET /monitors/export` gives the daemon's objects as
//! such a document, secrets as `${VAR}` references.
//!
//! - `plan.rs`: the plan, checked with the API's own rules, and its apply.
//! - `fields.rs`: the comparable fields of a server, channel or window.
//! - `export.rs`: the export.
//! - `watch.rs`: `serve --monitors FILE`: applied at start, on SIGHUP and when it changes.
//!
//! Identity: a server is its slug, a channel and a window their name. What an apply creates
//! or adopts is marked `managed_by` the document's `source` (the file's name); the API
//! refuses to change or delete it. Objects of the same source missing from the file are
//! deleted; objects made through the API are left alone unless the document asks to `prune`.

mod export;
mod fields;
mod plan;
pub mod watch;

use axum::Json;
use axum::extract::State;
use serde::Deserialize;

use super::AppState;
use super::channels::ChannelInput;
use super::error::{ApiError, ApiJson, BadInput, Guarded, Taken};
use super::maintenance::WindowInput;
use super::servers::ServerInput;

pub use export::Exported;
pub use plan::{Action, Change, FieldChange, GeneratedSecret, PlanView, Summary};

/// A monitors file as the daemon takes it: `${VAR}` references already expanded.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MonitorsDocument {
    /// The name objects are marked as managed by (default: the file's name).
    #[serde(default)]
    pub source: Option<String>,
    /// Also delete servers, channels and windows made through the API that the file does not
    /// name (never those of another monitors file).
    #[serde(default)]
    pub prune: bool,
    /// Each as for `POST /servers`; `slug` (or the name's slug) is its identity.
    #[serde(default)]
    pub servers: Vec<ServerInput>,
    /// Each as for `POST /channels`; `name` is its identity; `servers` may name this file's
    /// servers by slug.
    #[serde(default)]
    pub channels: Vec<ChannelInput>,
    /// Each as for `POST /maintenance`; `name` is its identity.
    #[serde(default)]
    pub maintenance: Vec<WindowInput>,
}

/// One plan or apply at a time in this process: an apply's plan stays true until it is
/// written. (Replicas applying the same file at once collide on the managed ids instead.)
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Plan `doc` and, when `write`, apply it.
pub async fn plan_or_apply(
    app: &AppState,
    doc: MonitorsDocument,
    write: bool,
) -> Result<PlanView, ApiError> {
    let _turn = ONE_AT_A_TIME.lock().await;
    let plan = plan::plan(app, doc).await?;
    if write {
        plan::apply(app, plan).await
    } else {
        Ok(plan.view(false))
    }
}

#[utoipa::path(post, path = "/monitors/plan", tag = "monitors", request_body = MonitorsDocument, responses((status = 200, description = "what an apply would change, field by field", body = PlanView), BadInput, Guarded), security(("bearer" = [])))]
pub async fn plan_document(
    State(app): State<AppState>,
    ApiJson(doc): ApiJson<MonitorsDocument>,
) -> Result<Json<PlanView>, ApiError> {
    Ok(Json(plan_or_apply(&app, doc, false).await?))
}

#[utoipa::path(post, path = "/monitors/apply", tag = "monitors", request_body = MonitorsDocument, responses((status = 200, description = "what changed, all in one transaction; a signing secret generated for a new channel is shown once", body = PlanView), BadInput, Taken, Guarded), security(("bearer" = [])))]
pub async fn apply_document(
    State(app): State<AppState>,
    ApiJson(doc): ApiJson<MonitorsDocument>,
) -> Result<Json<PlanView>, ApiError> {
    Ok(Json(plan_or_apply(&app, doc, true).await?))
}

#[utoipa::path(get, path = "/monitors/export", tag = "monitors", responses((status = 200, description = "every server, channel and window as a monitors document; secrets as ${VAR} references", body = Exported), Guarded), security(("bearer" = [])))]
pub async fn export_document(State(app): State<AppState>) -> Result<Json<Exported>, ApiError> {
    Ok(Json(export::export(&app).await?))
}
