//! The public pages survive a database outage: every successful public response is kept (by
//! path and query), and while the database is unreachable the last good copy is served at
//! once, marked stale: a banner on HTML pages, `"stale": true` and `stale_since` in
//! `/status.json`, and an `x-mcpwatch-stale` header everywhere (badges keep their picture).
//!
//! A public read gets [`READ_BUDGET`]; past it the database counts as unreachable.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::WebState;
use crate::clock::{now_ms, rfc3339};
use crate::store::gate::DatabaseUnavailable;

/// How long a public read may wait on the database before the last good copy is served.
pub const READ_BUDGET: Duration = Duration::from_secs(2);
/// Responses larger than this are passed through and not kept (`/` with 500 public servers is
/// about 5 MiB).
const MAX_BODY: usize = 32 * 1024 * 1024;
/// Copies kept at most: every public page, its JSON and four badges per server, for
/// thousands of servers. Past it, new paths are not kept.
const MAX_ENTRIES: usize = 20_000;

/// One kept response.
struct Copy {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    /// Unix ms when it was generated.
    at: i64,
}

/// The last good response per public path.
#[derive(Default)]
pub struct LastGood {
    copies: Mutex<HashMap<String, Copy>>,
}

impl LastGood {
    fn keep(&self, key: String, copy: Copy) {
        let mut copies = self.copies.lock().unwrap_or_else(|p| p.into_inner());
        if copies.len() < MAX_ENTRIES || copies.contains_key(&key) {
            copies.insert(key, copy);
        }
    }

    /// The kept copy of `key`, marked stale, if there is one.
    fn stale(&self, key: &str, down_since: i64) -> Option<Response> {
        let copies = self.copies.lock().unwrap_or_else(|p| p.into_inner());
        let copy = copies.get(key)?;
        let body = mark_stale(&copy.headers, &copy.body, copy.at, down_since);
        let mut resp = Response::new(Body::from(body));
        *resp.status_mut() = copy.status;
        *resp.headers_mut() = copy.headers.clone();
        resp.headers_mut().remove(header::CONTENT_LENGTH);
        resp.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        if let Ok(v) = HeaderValue::from_str(&rfc3339(copy.at)) {
            resp.headers_mut().insert("x-mcpwatch-stale", v);
        }
        Some(resp)
    }
}

/// Middleware for the public routes.
pub async fn serve(State(app): State<WebState>, req: Request, next: Next) -> Response {
    // Pages differ by Host (several status pages): the page is part of the key.
    let page = app
        .pages
        .cached(super::brand::host_of(req.headers()).as_deref())
        .key;
    let key = format!(
        "{page} {}",
        req.uri()
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default()
    );
    if let Some(since) = app.db_gate.down_since() {
        return app
            .last_good
            .stale(&key, since)
            .unwrap_or_else(|| unavailable(since));
    }
    let resp = match tokio::time::timeout(READ_BUDGET, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => {
            app.db_gate.mark_down(now_ms());
            return fallback(&app, &key);
        }
    };
    if resp.extensions().get::<DatabaseUnavailable>().is_some() {
        app.db_gate.mark_down(now_ms());
        return fallback(&app, &key);
    }
    if !resp.status().is_success() {
        return resp;
    }
    // Only a body of known size under the cap is buffered (ours are whole strings); anything
    // else goes out as it is, uncached, rather than fail.
    let known = axum::body::HttpBody::size_hint(resp.body()).exact();
    if known.is_none_or(|n| n > MAX_BODY as u64) {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    app.last_good.keep(
        key,
        Copy {
            status: parts.status,
            headers: parts.headers.clone(),
            body: bytes.clone(),
            at: now_ms(),
        },
    );
    Response::from_parts(parts, Body::from(bytes))
}

fn fallback(app: &WebState, key: &str) -> Response {
    let since = app.db_gate.down_since().unwrap_or_else(now_ms);
    app.last_good
        .stale(key, since)
        .unwrap_or_else(|| unavailable(since))
}

/// No copy of this page yet: say so at once (a short page, never a trace).
fn unavailable(since: i64) -> Response {
    let body = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>503</title><meta http-equiv=\"refresh\" content=\"30\"></head><body><p>The status page cannot reach its database (since {}); it will be back in a moment.</p></body></html>",
        rfc3339(since)
    );
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (header::RETRY_AFTER, HeaderValue::from_static("5")),
        ],
        axum::response::Html(body),
    )
        .into_response()
}

/// The body of a kept copy as served while the database is away.
fn mark_stale(headers: &HeaderMap, body: &Bytes, at: i64, down_since: i64) -> Bytes {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type.starts_with("text/html") {
        let html = String::from_utf8_lossy(body);
        let banner = format!(
            "<p class=\"stale\" role=\"status\" style=\"margin:0;padding:.6rem 1rem;background:#fff4e5;color:#5c3b00;text-align:center\">Showing the last data, from {at}: the status database is unreachable since {since}. States may have changed since.</p>",
            at = rfc3339(at),
            since = rfc3339(down_since)
        );
        return match html
            .find("<body")
            .and_then(|i| html[i..].find('>').map(|j| i + j + 1))
        {
            Some(end) => Bytes::from(format!("{}{banner}{}", &html[..end], &html[end..])),
            None => body.clone(),
        };
    }
    if content_type.starts_with("application/json")
        && let Ok(serde_json::Value::Object(mut doc)) = serde_json::from_slice(body)
    {
        doc.insert("stale".into(), serde_json::Value::Bool(true));
        doc.insert("stale_since".into(), rfc3339(down_since).into());
        return Bytes::from(serde_json::Value::Object(doc).to_string());
    }
    body.clone()
}
