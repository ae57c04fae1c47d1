//! `/api/v1/subscribers`: the readers subscribed to the status pages, for operators. An
//! address is personal data: never shown here (only its kind, page and whether it is
//! confirmed), but an operator can erase a reader who asks, by address, across every page.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::AppState;
use super::error::{ApiError, ApiJson, BadInput, Guarded, NoSuch};
use crate::clock::rfc3339;
use crate::web::subscribe::address_digests;

/// One subscription, without its address.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SubscriberView {
    pub id: String,
    /// The page's id, or `default`.
    pub page: String,
    /// `email` or `webhook`.
    pub kind: String,
    pub confirmed: bool,
    pub created_at: String,
    pub confirmed_at: Option<String>,
}

/// Subscriptions, oldest first, with counts.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SubscriberList {
    pub confirmed: usize,
    pub pending: usize,
    pub items: Vec<SubscriberView>,
}

/// An address to erase.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForgetInput {
    /// An email address or webhook URL, as the reader gave it.
    address: String,
}

/// How many subscriptions were erased.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Forgotten {
    pub deleted: u64,
}

#[utoipa::path(get, path = "/subscribers", tag = "posts", responses((status = 200, description = "every subscription (addresses are never shown)", body = SubscriberList), Guarded), security(("bearer" = [])))]
pub async fn list(State(app): State<AppState>) -> Result<Json<SubscriberList>, ApiError> {
    let rows = app.store.list_subscribers().await?;
    let confirmed = rows.iter().filter(|s| s.confirmed_at.is_some()).count();
    Ok(Json(SubscriberList {
        confirmed,
        pending: rows.len() - confirmed,
        items: rows
            .into_iter()
            .map(|s| SubscriberView {
                confirmed: s.confirmed_at.is_some(),
                confirmed_at: s.confirmed_at.map(rfc3339),
                created_at: rfc3339(s.created_at),
                id: s.id,
                page: s.page_id,
                kind: s.kind,
            })
            .collect(),
    }))
}

#[utoipa::path(delete, path = "/subscribers/{id}", tag = "posts", params(("id" = String, Path, description = "subscriber id")), responses((status = 204, description = "deleted with its address and pending notices"), NoSuch, Guarded), security(("bearer" = [])))]
pub async fn delete(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if !app.store.delete_subscriber(&id).await? {
        return Err(ApiError::NotFound(format!("no subscriber with id '{id}'")));
    }
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/subscribers/forget", tag = "posts", request_body = ForgetInput, responses((status = 200, description = "every subscription of that address deleted, on every page", body = Forgotten), BadInput, Guarded), security(("bearer" = [])))]
pub async fn forget(
    State(app): State<AppState>,
    ApiJson(input): ApiJson<ForgetInput>,
) -> Result<Json<Forgotten>, ApiError> {
    let address = input.address.trim();
    if address.is_empty() {
        return Err(ApiError::field("address", "must not be empty"));
    }
    let mut deleted = 0;
    for digest in address_digests(&app.sealer, address) {
        deleted += app.store.delete_subscribers_by_mac(&digest).await?;
    }
    Ok(Json(Forgotten { deleted }))
}
