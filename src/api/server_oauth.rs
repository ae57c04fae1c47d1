//! A server's `oauth` field: the probe's OAuth client-credentials identity. The client secret
//! or private key is write-only: sealed with the rest of the identity, shown as `***`, and kept
//! when a later write leaves it out (or sends `***` back), so a GET-then-PATCH changes nothing.

use serde::Deserialize;
use serde_json::Value;

use super::error::{ApiError, FieldError};
use crate::probe::oauth::{ClientAuth, ClientCredentials, signing_key};
use crate::secrets::Sealer;
use crate::store::{OAuthShown, ServerRecord};

/// `oauth` as clients send it.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OAuthInput {
    client_id: String,
    /// For `client_secret_basic` / `client_secret_post`; write-only.
    client_secret: Option<String>,
    /// A PEM RSA or EC (P-256) private key for `private_key_jwt`; write-only.
    private_key: Option<String>,
    /// Default: `private_key_jwt` with a key, else `client_secret_basic`.
    auth_method: Option<ClientAuth>,
    /// Default: found by the discovery chain.
    token_endpoint: Option<String>,
    scope: Option<String>,
    /// RFC 8707 `resource`; default: the server's URL.
    resource: Option<String>,
    /// RFC 3339: when the secret or key expires (the watchdog warns before).
    expires_at: Option<String>,
}

const HIDDEN: &str = "***";

fn problem(field: &str, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.into(),
        message: message.into(),
    }
}

/// Apply `oauth` (absent: unchanged; `null`: removed) to `s`; problems are pushed.
pub(super) fn apply_oauth(
    oauth: Option<Value>,
    s: &mut ServerRecord,
    sealer: &Sealer,
    problems: &mut Vec<FieldError>,
) -> Result<(), ApiError> {
    let input = match oauth {
        None => return Ok(()),
        Some(Value::Null) => {
            s.oauth = None;
            s.oauth_enc = None;
            return Ok(());
        }
        Some(v) => match serde_json::from_value::<OAuthInput>(v) {
            Ok(input) => input,
            Err(e) => {
                problems.push(problem("oauth", e.to_string()));
                return Ok(());
            }
        },
    };
    let stored = stored_credentials(s, sealer);
    if let Some((shown, creds)) = credentials(input, stored.as_ref(), problems) {
        let plain = serde_json::to_vec(&creds).map_err(|e| ApiError::Internal(e.to_string()))?;
        s.oauth_enc = Some(
            sealer
                .seal(&plain)
                .map_err(|e| ApiError::Internal(e.to_string()))?,
        );
        s.oauth = Some(serde_json::to_string(&shown).unwrap_or_default());
    }
    Ok(())
}

/// The identity stored now, opened (for keeping its secret).
fn stored_credentials(s: &ServerRecord, sealer: &Sealer) -> Option<ClientCredentials> {
    let plain = sealer.open(s.oauth_enc.as_deref()?).ok()?;
    serde_json::from_slice(&plain).ok()
}

/// The identity `input` describes, or `None` with its problems pushed.
fn credentials(
    input: OAuthInput,
    stored: Option<&ClientCredentials>,
    problems: &mut Vec<FieldError>,
) -> Option<(OAuthShown, ClientCredentials)> {
    let before = problems.len();
    let given = |v: &Option<String>| v.clone().filter(|v| v != HIDDEN);
    let (secret, key) = (given(&input.client_secret), given(&input.private_key));
    let auth = input.auth_method.unwrap_or(if key.is_some() {
        ClientAuth::PrivateKeyJwt
    } else {
        ClientAuth::ClientSecretBasic
    });
    let uses_key = auth == ClientAuth::PrivateKeyJwt;
    let kept = stored
        .filter(|c| (c.auth == ClientAuth::PrivateKeyJwt) == uses_key)
        .map(|c| c.secret.clone());
    let secret = match (secret, key, uses_key) {
        (Some(_), Some(_), _) => {
            problems.push(problem(
                "oauth",
                "give client_secret or private_key, not both",
            ));
            None
        }
        (Some(_), None, true) => {
            problems.push(problem(
                "oauth.client_secret",
                "private_key_jwt signs with a private_key, not a client secret",
            ));
            None
        }
        (None, Some(_), false) => {
            problems.push(problem(
                "oauth.private_key",
                format!("{} authenticates with a client_secret", auth.as_str()),
            ));
            None
        }
        (Some(s), None, false) => Some(s),
        (None, Some(k), true) => {
            if let Err(m) = signing_key(&k) {
                problems.push(problem("oauth.private_key", m));
            }
            Some(k)
        }
        (None, None, _) => kept,
    };
    if secret.is_none() && problems.len() == before {
        let field = if uses_key {
            "oauth.private_key"
        } else {
            "oauth.client_secret"
        };
        problems.push(problem(field, "is required"));
    }
    check_fields(&input, problems);
    let expires_at = input
        .expires_at
        .as_deref()
        .and_then(|t| super::parse_time("oauth.expires_at", t).ok());
    if problems.len() > before {
        return None;
    }
    let shown = OAuthShown {
        client_id: input.client_id.trim().to_string(),
        auth_method: auth,
        token_endpoint: input.token_endpoint.clone(),
        scope: input.scope.clone(),
        resource: input.resource.clone(),
        expires_at,
    };
    let creds = ClientCredentials {
        token_endpoint: input.token_endpoint,
        client_id: shown.client_id.clone(),
        auth,
        secret: secret.unwrap_or_default(),
        scope: input.scope,
        resource: input.resource,
    };
    Some((shown, creds))
}

/// The client id, URLs and expiry, each named when wrong.
fn check_fields(input: &OAuthInput, problems: &mut Vec<FieldError>) {
    let id = input.client_id.trim();
    if id.is_empty() || id.len() > 500 || id.chars().any(char::is_control) {
        problems.push(problem(
            "oauth.client_id",
            "must be 1-500 characters without control characters",
        ));
    }
    for (field, value) in [
        ("oauth.token_endpoint", &input.token_endpoint),
        ("oauth.resource", &input.resource),
    ] {
        let Some(v) = value else { continue };
        let ok = url::Url::parse(v).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
        if !ok {
            problems.push(problem(field, format!("'{v}' is not an http(s) URL")));
        }
    }
    if let Some(t) = &input.expires_at
        && super::parse_time("oauth.expires_at", t).is_err()
    {
        problems.push(problem(
            "oauth.expires_at",
            format!("'{t}' is not an RFC 3339 time such as 2027-01-31T00:00:00Z"),
        ));
    }
    if let Some(scope) = &input.scope
        && scope.chars().any(char::is_control)
    {
        problems.push(problem("oauth.scope", "must not hold control characters"));
    }
}
