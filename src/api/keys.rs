//! `/api/v1/keys` (admin scope): create (the token is shown once), list, delete.

use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use serde::Deserialize;

use super::auth::{AGENT_SCOPE, Caller, Scope};
use super::error::{ApiError, ApiJson, BadInput, Guarded, NoSuch};
use super::views::{IssuedKey, KeyList, KeyView};
use super::{AppState, now_ms};
use crate::secrets::{new_token, token_hash};
use crate::store::ApiKeyRecord;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyInput {
    name: String,
    /// read, write, admin; or `agent` alone, with `region`.
    scopes: Vec<String>,
    /// The region an `agent` key reports for (agent keys only).
    #[serde(default)]
    region: Option<String>,
}

/// Make and store a key; returns the record and the token (to show once).
pub async fn issue(
    app_store: &dyn crate::store::Store,
    name: &str,
    scopes: Vec<String>,
    region: Option<String>,
) -> Result<(ApiKeyRecord, String), ApiError> {
    let token = new_token().map_err(|e| ApiError::Internal(e.to_string()))?;
    let record = ApiKeyRecord {
        id: uuid::Uuid::now_v7().to_string(),
        name: name.to_string(),
        prefix: token.chars().take(12).collect(),
        hash: token_hash(&token),
        scopes,
        created_at: now_ms(),
        last_used_at: None,
        region,
    };
    app_store.insert_key(&record).await?;
    Ok((record, token))
}

#[utoipa::path(post, path = "/keys", tag = "keys", request_body = KeyInput, responses((status = 201, description = "the key, with its token shown once", body = IssuedKey), BadInput, Guarded), security(("bearer" = [])))]
pub async fn create(
    State(app): State<AppState>,
    ApiJson(input): ApiJson<KeyInput>,
) -> Result<(StatusCode, Json<IssuedKey>), ApiError> {
    let name = input.name.trim();
    if name.is_empty() || name.len() > 100 {
        return Err(ApiError::field("name", "must be 1-100 characters"));
    }
    if input.scopes.is_empty() {
        return Err(ApiError::field(
            "scopes",
            "needs at least one of read, write, admin (or agent)",
        ));
    }
    let agent = input.scopes.iter().any(|s| s == AGENT_SCOPE);
    if agent && input.scopes.len() > 1 {
        return Err(ApiError::field(
            "scopes",
            "'agent' stands alone: an agent key can only fetch its config and push results",
        ));
    }
    if let Some(bad) = input
        .scopes
        .iter()
        .find(|s| Scope::parse(s).is_none() && *s != AGENT_SCOPE)
    {
        return Err(ApiError::field(
            "scopes",
            format!("'{bad}' is not one of read, write, admin, agent"),
        ));
    }
    let region = match (agent, input.region.as_deref()) {
        (true, Some(r)) if crate::config::is_region_name(r) => Some(r.to_string()),
        (true, Some(r)) => {
            return Err(ApiError::field(
                "region",
                format!("'{r}' must be 1-64 characters of letters, digits, - or _"),
            ));
        }
        (true, None) => {
            return Err(ApiError::field(
                "region",
                "an agent key needs the region it probes from, e.g. \"eu-west\"",
            ));
        }
        (false, Some(_)) => {
            return Err(ApiError::field("region", "only agent keys have a region"));
        }
        (false, None) => None,
    };
    let mut scopes = input.scopes.clone();
    scopes.sort();
    scopes.dedup();
    let (record, token) = issue(app.store.as_ref(), name, scopes, region).await?;
    Ok((
        StatusCode::CREATED,
        Json(IssuedKey {
            key: KeyView::from(&record),
            token,
            note: "the token is shown only now; store it safely".into(),
        }),
    ))
}

#[utoipa::path(get, path = "/keys", tag = "keys", responses((status = 200, description = "API keys (never their tokens)", body = KeyList), Guarded), security(("bearer" = [])))]
pub async fn list(State(app): State<AppState>) -> Result<Json<KeyList>, ApiError> {
    let keys = app.store.list_keys().await?;
    Ok(Json(KeyList {
        items: keys.iter().map(KeyView::from).collect(),
    }))
}

#[utoipa::path(delete, path = "/keys/{id}", tag = "keys", params(("id" = String, Path, description = "key id")), responses((status = 204, description = "deleted"), NoSuch, Guarded), security(("bearer" = [])))]
pub async fn delete(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if !app.store.delete_key(&id).await? {
        return Err(ApiError::NotFound(format!("no API key with id '{id}'")));
    }
    app.keys.clear();
    tracing::info!(key_id = %id, deleted_by = %caller.key_id, "API key deleted");
    Ok(StatusCode::NO_CONTENT)
}
