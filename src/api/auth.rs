//! Authentication and rate limits at the HTTP boundary, before any handler runs.
//!
//! Bearer API keys: looked up by their SHA-256 (the token itself is never stored), compared in
//! constant time, scoped `read` < `write` < `admin`. GET needs `read`, other methods `write`,
//! `/keys` needs `admin`. Rate limits are token buckets: per key for requests with a valid
//! key, and per client IP for requests without one (missing or wrong tokens, so key guessing
//! is throttled: tokens are 256-bit random, so the lookup that decides is cheap and the
//! throttle is what bounds guessing), so a flood of bad tokens from an address never throttles
//! valid keys behind the same address. Past them, 429 with `Retry-After`. The client IP comes from
//! `X-Forwarded-For` only when the peer is a configured trusted proxy.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::{ApiError, rate_limited};
pub use crate::ratelimit::RateLimiter;
use crate::ratelimit::{address_key, client_ip};
use crate::secrets::{hashes_equal, token_hash};
use crate::store::ApiKeyRecord;

/// What a key may do. Each scope includes the ones below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    Read,
    Write,
    Admin,
}

impl Scope {
    pub fn parse(s: &str) -> Option<Scope> {
        match s {
            "read" => Some(Scope::Read),
            "write" => Some(Scope::Write),
            "admin" => Some(Scope::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
        }
    }
}

/// The scope of regional agents' keys: only `/agent/*`, and nothing else.
pub const AGENT_SCOPE: &str = "agent";

/// The authenticated key, for handlers that need it.
#[derive(Debug, Clone)]
pub struct Caller {
    pub key_id: String,
    /// Set for agent keys: the region their results are for.
    pub region: Option<String>,
    /// The key's highest scope (read for an agent key).
    pub scope: Scope,
}

/// Short-lived cache of keys by hash, so a busy client does not cost a query per request.
#[derive(Default)]
pub struct KeyCache {
    entries: Mutex<HashMap<String, (ApiKeyRecord, Instant)>>,
}

const KEY_CACHE_TTL: Duration = Duration::from_secs(5);

impl KeyCache {
    pub fn clear(&self) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

/// `path` as seen inside the `/api/v1` router (prefix stripped) or from outside it.
fn required_scope(method: &Method, path: &str) -> Scope {
    let path = path.strip_prefix("/api/v1").unwrap_or(path);
    if path == "/keys" || path.starts_with("/keys/") {
        Scope::Admin
    } else if method == Method::GET || method == Method::HEAD || path == "/mcp" {
        // `/mcp` is a POST for every call; each tool checks the scope it needs.
        Scope::Read
    } else {
        Scope::Write
    }
}

/// Middleware for `/api/v1/*`.
pub async fn authenticate(State(app): State<AppState>, mut req: Request, next: Next) -> Response {
    let ip = address_key(client_ip(&req, &app.settings.trusted_proxies));
    // Requests without a valid key spend this address's budget; valid keys spend their own.
    let refuse_anonymous = |response: Response| match app.ip_limiter.check(&ip) {
        Ok(()) => response,
        Err(wait) => rate_limited(wait),
    };
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let Some(token) = token else {
        return refuse_anonymous(ApiError::Unauthorized.into_response());
    };
    let hash = token_hash(token);
    let key = match lookup(&app, &hash).await {
        Ok(Some(k)) if hashes_equal(&k.hash, &hash) => k,
        Ok(_) => return refuse_anonymous(ApiError::Unauthorized.into_response()),
        Err(e) => return e.into_response(),
    };
    if let Err(wait) = app.key_limiter.check(&key.id) {
        return rate_limited(wait);
    }
    // Agent keys reach the agent routes and nothing else; no other key reaches those.
    let path = req.uri().path();
    let agent_route = path.starts_with("/agent/") || path.starts_with("/api/v1/agent/");
    let agent_key = key.scopes.iter().any(|s| s == AGENT_SCOPE);
    if (agent_route || agent_key) && !(agent_route && agent_key && key.region.is_some()) {
        return ApiError::Forbidden(if agent_route { AGENT_SCOPE } else { "read" }).into_response();
    }
    let scope = key
        .scopes
        .iter()
        .filter_map(|s| Scope::parse(s))
        .max()
        .unwrap_or(Scope::Read);
    let needed = required_scope(req.method(), path);
    if !agent_key && scope < needed {
        return ApiError::Forbidden(needed.as_str()).into_response();
    }
    req.extensions_mut().insert(Caller {
        key_id: key.id.clone(),
        region: key.region.clone(),
        scope,
    });
    next.run(req).await
}

async fn lookup(app: &AppState, hash: &str) -> Result<Option<ApiKeyRecord>, ApiError> {
    {
        let cache = app.keys.entries.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((k, at)) = cache.get(hash)
            && at.elapsed() < KEY_CACHE_TTL
        {
            return Ok(Some(k.clone()));
        }
    }
    let found = app.store.find_key(hash).await?;
    if let Some(k) = &found {
        let now = crate::api::now_ms();
        if k.last_used_at.is_none_or(|t| now - t > 60_000) {
            let _ = app.store.touch_key(&k.id, now).await;
        }
        app.keys
            .entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(hash.to_string(), (k.clone(), Instant::now()));
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn limits_allow_the_rate_then_say_when_to_retry_and_refill_with_time() {
        let l = RateLimiter::new(3);
        assert!(l.check("k").is_ok() && l.check("k").is_ok() && l.check("k").is_ok());
        let wait = l.check("k").unwrap_err();
        assert!((1..=20).contains(&wait), "{wait}");
        assert!(l.check("other").is_ok(), "limits are per key");
        tokio::time::advance(Duration::from_secs(20)).await;
        assert!(
            l.check("k").is_ok(),
            "a third of a minute gives one request back"
        );
    }

    #[test]
    fn ipv6_clients_are_limited_by_their_slash_64() {
        let a = address_key("2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = address_key("2001:db8:1:2:bbbb::9".parse().unwrap());
        let other = address_key("2001:db8:1:3::1".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, other);
        assert_eq!(
            address_key("::ffff:203.0.113.7".parse().unwrap()),
            "203.0.113.7"
        );
        assert_eq!(address_key("203.0.113.7".parse().unwrap()), "203.0.113.7");
    }

    #[test]
    fn scopes_are_ordered_and_routes_need_the_right_one() {
        assert!(Scope::Admin > Scope::Write && Scope::Write > Scope::Read);
        assert_eq!(required_scope(&Method::GET, "/api/v1/servers"), Scope::Read);
        assert_eq!(
            required_scope(&Method::POST, "/api/v1/servers"),
            Scope::Write
        );
        assert_eq!(required_scope(&Method::GET, "/api/v1/keys"), Scope::Admin);
        // Inside the nested router the prefix is already gone.
        assert_eq!(required_scope(&Method::GET, "/keys"), Scope::Admin);
        assert_eq!(required_scope(&Method::DELETE, "/keys/abc"), Scope::Admin);
        assert_eq!(required_scope(&Method::GET, "/keysmith"), Scope::Read);
    }
}
