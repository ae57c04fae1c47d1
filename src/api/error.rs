//! Errors as `application/problem+json` (RFC 9457), never a 500 with a stack.
//! [`ApiJson`] replaces axum's `Json` extractor so malformed bodies, unknown fields and wrong
//! types become a 400/422 problem naming the field.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::store::StoreError;

/// The problem+json body every error has (documentation type for the OpenAPI document).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Present on 422: one entry per invalid field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
}

/// One invalid input field.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// The answers every route behind an API key can give besides its own, documented once
/// (`responses(…, Guarded)` in a route's `#[utoipa::path]`).
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // documentation only: `ApiError` renders these
pub enum Guarded {
    /// No valid API key (`WWW-Authenticate: Bearer`).
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthorized(Problem),
    /// The key lacks the scope the route needs.
    #[response(status = 403, content_type = "application/problem+json")]
    Forbidden(Problem),
    /// Rate limited; `Retry-After` says when to try again.
    #[response(status = 429, content_type = "application/problem+json")]
    RateLimited(Problem),
    /// The database is not available, this replica stands by, or it is shutting down (the
    /// detail says which); `Retry-After: 1`.
    #[response(status = 503, content_type = "application/problem+json")]
    Unavailable(Problem),
}

/// The answers of a route that reads a body: unreadable, or fields invalid.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // documentation only
pub enum BadInput {
    /// The body is not JSON, or not the JSON this route reads.
    #[response(status = 400, content_type = "application/problem+json")]
    Unreadable(Problem),
    /// Well-formed, but fields are invalid: `errors` names each.
    #[response(status = 422, content_type = "application/problem+json")]
    Invalid(Problem),
}

// The answer of a route whose path names something that does not exist (documentation only).
#[derive(utoipa::IntoResponses)]
#[response(status = 404, content_type = "application/problem+json")]
#[allow(dead_code)]
/// No such resource.
pub struct NoSuch(Problem);

// The answer of a route that can meet a taken name or a state that forbids it
// (documentation only).
#[derive(utoipa::IntoResponses)]
#[response(status = 409, content_type = "application/problem+json")]
#[allow(dead_code)]
/// A unique value is taken, or the resource is not in a state that allows this.
pub struct Taken(Problem);

// The answer of a route that reads another service (documentation only).
#[derive(utoipa::IntoResponses)]
#[response(status = 502, content_type = "application/problem+json")]
#[allow(dead_code)]
/// The other service (e.g. an MCP registry) could not be read; the detail says why.
pub struct Upstream(Problem);

/// An API error, rendered as problem+json.
#[derive(Debug)]
#[non_exhaustive]
pub enum ApiError {
    /// 400: the body could not be read as JSON.
    BadRequest(String),
    /// 422: well-formed, but fields are invalid.
    Invalid(Vec<FieldError>),
    /// 401: no valid API key.
    Unauthorized,
    /// 403: the key lacks a scope.
    Forbidden(&'static str),
    /// 404: no such resource.
    NotFound(String),
    /// 409: a unique value is taken.
    Conflict(String),
    /// 429: slow down.
    RateLimited { retry_after_secs: u64 },
    /// 503: the database or the daemon is not available.
    Unavailable(String),
    /// 503: the database cannot be reached; requests stop waiting on it until it answers
    /// (see `store::gate`).
    Unreachable(String),
    /// 503 with `Retry-After: 1`: this replica does not do that now (it stands by, or it is
    /// shutting down); the detail says so.
    NotHere(&'static str),
    /// 502: a service the request reads (an MCP registry) failed; the detail says how.
    Upstream(String),
    /// 500: a bug; the detail is logged, not returned.
    Internal(String),
}

impl ApiError {
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        ApiError::Invalid(vec![FieldError {
            field: field.to_string(),
            message: message.into(),
        }])
    }
}

impl ApiError {
    /// Status, title, the detail shown to the client (what is logged instead of shown is
    /// logged here) and the invalid fields.
    fn parts(self) -> (StatusCode, &'static str, String, Option<Vec<FieldError>>) {
        match self {
            ApiError::BadRequest(d) => (StatusCode::BAD_REQUEST, "Bad request", d, None),
            ApiError::Invalid(errs) => {
                let detail = errs
                    .iter()
                    .map(|e| format!("{}: {}", e.field, e.message))
                    .collect::<Vec<_>>()
                    .join("; ");
                (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Invalid input",
                    detail,
                    Some(errs),
                )
            }
            ApiError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
                "send a valid API key as 'Authorization: Bearer <token>'".to_string(),
                None,
            ),
            ApiError::Forbidden(scope) => (
                StatusCode::FORBIDDEN,
                "Forbidden",
                format!("this API key lacks the '{scope}' scope"),
                None,
            ),
            ApiError::NotFound(d) => (StatusCode::NOT_FOUND, "Not found", d, None),
            ApiError::Conflict(d) => (StatusCode::CONFLICT, "Conflict", d, None),
            ApiError::RateLimited { retry_after_secs } => (
                StatusCode::TOO_MANY_REQUESTS,
                "Too many requests",
                format!("rate limit exceeded; retry in {retry_after_secs} s"),
                None,
            ),
            ApiError::Unavailable(d) | ApiError::Unreachable(d) => {
                tracing::warn!(detail = %d, "service unavailable");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Service unavailable",
                    "the database is not available; retry shortly".to_string(),
                    None,
                )
            }
            ApiError::NotHere(d) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Service unavailable",
                d.to_string(),
                None,
            ),
            ApiError::Upstream(d) => (StatusCode::BAD_GATEWAY, "Bad gateway", d, None),
            ApiError::Internal(d) => {
                tracing::error!(detail = %d, "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Internal error",
                    "an internal error occurred; it has been logged".to_string(),
                    None,
                )
            }
        }
    }
}

/// Refuse to change an object a monitors file manages, saying where to change it instead.
pub fn not_managed(kind: &str, name: &str, managed_by: &Option<String>) -> Result<(), ApiError> {
    match managed_by {
        None => Ok(()),
        Some(file) => Err(ApiError::Conflict(format!(
            "{kind} '{name}' is managed by the monitors file '{file}': change it there and apply \
             it (`mcpwatch apply -f {file}`, or SIGHUP a daemon started with --monitors)"
        ))),
    }
}

impl From<crate::targets::TargetError> for ApiError {
    fn from(e: crate::targets::TargetError) -> Self {
        ApiError::Internal(e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(what) => ApiError::Conflict(format!("{what} already exists")),
            StoreError::Database(m) | StoreError::Migration(m) => ApiError::Unavailable(m),
            e @ StoreError::File { .. } => ApiError::Unavailable(e.to_string()),
            StoreError::Query(e) => ApiError::Unavailable(e.to_string()),
            StoreError::Unreachable(e) => ApiError::Unreachable(e.to_string()),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let database_down = matches!(self, ApiError::Unreachable(_));
        let (status, title, detail, errors) = self.parts();
        let body = Problem {
            kind: "about:blank".into(),
            title: title.into(),
            status: status.as_u16(),
            detail,
            errors,
        };
        let body = serde_json::to_string(&body).unwrap_or_default();
        let mut resp = (status, body).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if database_down {
            resp.extensions_mut()
                .insert(crate::store::gate::DatabaseUnavailable);
        }
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"mcpwatch\""),
            );
        }
        resp
    }
}

/// 429 with `Retry-After`.
pub fn rate_limited(retry_after_secs: u64) -> Response {
    let mut resp = ApiError::RateLimited { retry_after_secs }.into_response();
    if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

/// `Json<T>` whose rejections are problems naming the field.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|ct| {
                ct.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            })
            .is_some_and(|essence| {
                essence == "application/json"
                    || (essence.starts_with("application/") && essence.ends_with("+json"))
            });
        if !json {
            return Err(ApiError::BadRequest(
                "send the body as JSON with 'Content-Type: application/json'".into(),
            ));
        }
        let body = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::BadRequest(e.body_text()))?;
        if let Some(field) = nul_field(&body) {
            return Err(ApiError::field(
                &field,
                "contains a NUL character (\\u0000), which no field accepts",
            ));
        }
        match axum::Json::<T>::from_bytes(&body) {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(JsonRejection::JsonDataError(e)) => {
                // "unknown field `x`, expected one of …" or "invalid type … at line …": keep
                // serde's message, which names the field.
                let text = std::error::Error::source(&e)
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| e.body_text());
                let field = field_of(&text);
                // serde_path_to_error prefixes the path; the field is already named.
                let text = text
                    .strip_prefix(&format!("{field}: "))
                    .unwrap_or(&text)
                    .to_string();
                Err(ApiError::Invalid(vec![FieldError {
                    field,
                    message: text,
                }]))
            }
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::BadRequest(
                "send the body as JSON with 'Content-Type: application/json'".into(),
            )),
            Err(other) => Err(ApiError::BadRequest(other.body_text())),
        }
    }
}

/// The path of the first string (or key) holding a NUL character, if any. NUL can only reach
/// a JSON string as the escape `\u0000`, so bodies without one are not parsed twice.
fn nul_field(body: &[u8]) -> Option<String> {
    if !body.windows(6).any(|w| w.eq_ignore_ascii_case(b"\\u0000")) {
        return None;
    }
    fn walk(value: &serde_json::Value, path: &str) -> Option<String> {
        let here = || {
            if path.is_empty() {
                "body".to_string()
            } else {
                path.to_string()
            }
        };
        match value {
            serde_json::Value::String(s) if s.contains('\0') => Some(here()),
            serde_json::Value::Array(items) => items
                .iter()
                .enumerate()
                .find_map(|(i, v)| walk(v, &format!("{}[{i}]", here()))),
            serde_json::Value::Object(map) => map.iter().find_map(|(k, v)| {
                let child = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                if k.contains('\0') {
                    Some(child)
                } else {
                    walk(v, &child)
                }
            }),
            _ => None,
        }
    }
    walk(&serde_json::from_slice(body).ok()?, "")
}

/// 404 as problem+json for unknown routes.
pub async fn not_found() -> ApiError {
    ApiError::NotFound("no such route".into())
}

/// The field a serde error is about: the name in "unknown/missing field `x`", else the path
/// serde_path_to_error puts before ": " ("tags[0]: invalid type …"), else "body".
fn field_of(text: &str) -> String {
    for marker in ["unknown field `", "missing field `"] {
        if let Some(name) = text
            .split(marker)
            .nth(1)
            .and_then(|rest| rest.split('`').next())
        {
            return name.to_string();
        }
    }
    match text.split_once(": ") {
        Some((path, _)) if !path.is_empty() && !path.contains(' ') && path != "." => {
            path.to_string()
        }
        _ => "body".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::field_of;

    #[test]
    fn serde_messages_name_their_field() {
        assert_eq!(
            field_of("colour: unknown field `colour`, expected one of `name`"),
            "colour"
        );
        assert_eq!(field_of("missing field `name` at line 1 column 2"), "name");
        assert_eq!(
            field_of("interval_seconds: invalid type: string \"x\", expected u32"),
            "interval_seconds"
        );
        assert_eq!(field_of("expected value at line 1 column 1"), "body");
    }
}
