//! Several status pages: each reader's Host picks a page (a `pages` row with that host), which
//! brings its branding (title, description, logo, accent colour, links, footer) and the servers
//! it shows (by tag or list). A row without a host brands the default page; with no rows at all
//! the page is what it always was.
//!
//! The rows are kept in memory and read again at most every 10 s (at once after an API change
//! here), so a page keeps its look while the database is away.

use std::sync::{Arc, RwLock};

use axum::http::{HeaderMap, header};

use crate::clock::now_ms;
use crate::store::{PageRecord, ServerRecord, Store};

use super::posts::PublicPost;

/// How long the rows are trusted before they are read again.
const FRESH_MS: i64 = 10_000;

/// What a page looks like and which servers it shows.
#[derive(Debug, Clone)]
pub struct Brand {
    /// Which page (its id, or `default`): part of the last-good copies' keys.
    pub key: String,
    /// The Host that picks this page (`None`: the default page).
    pub host: Option<String>,
    pub title: String,
    pub description: Option<String>,
    pub logo_url: Option<String>,
    /// `#rrggbb`.
    pub accent: Option<String>,
    pub footer: Option<String>,
    pub links: Vec<(String, String)>,
    pub(super) tags: Vec<String>,
    pub(super) server_ids: Vec<String>,
}

impl Default for Brand {
    fn default() -> Self {
        Brand {
            key: "default".into(),
            host: None,
            title: "MCP server status".into(),
            description: None,
            logo_url: None,
            accent: None,
            footer: None,
            links: Vec::new(),
            tags: Vec::new(),
            server_ids: Vec::new(),
        }
    }
}

impl Brand {
    fn of(p: &PageRecord) -> Self {
        Brand {
            key: p.id.clone(),
            host: p.host.clone(),
            title: p.title.clone(),
            description: p.description.clone(),
            logo_url: p.logo_url.clone(),
            accent: p.accent.clone(),
            footer: p.footer.clone(),
            links: p.links.clone(),
            tags: p.tags.clone(),
            server_ids: p.server_ids.clone(),
        }
    }

    /// Whether this page shows `id` with `tags`.
    fn shows_id(&self, id: &str, tags: &[String]) -> bool {
        (self.tags.is_empty() && self.server_ids.is_empty())
            || self.server_ids.iter().any(|s| s == id)
            || tags.iter().any(|t| self.tags.contains(t))
    }

    pub fn shows(&self, s: &ServerRecord) -> bool {
        self.shows_id(&s.id, &s.tags)
    }

    /// A post about the whole service, or about a server this page shows.
    pub fn shows_post(&self, p: &PublicPost) -> bool {
        p.concerns.is_empty() || p.concerns.iter().any(|(id, tags)| self.shows_id(id, tags))
    }
}

/// The pages, as last read.
#[derive(Default)]
pub struct Pages {
    rows: RwLock<(i64, Arc<Vec<PageRecord>>)>,
}

/// The Host a request asked for: lower case, without a port.
pub fn host_of(headers: &HeaderMap) -> Option<String> {
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    Some(name.trim_end_matches('.').to_ascii_lowercase())
}

impl Pages {
    /// Read the rows again on the next request.
    pub fn invalidate(&self) {
        if let Ok(mut rows) = self.rows.write() {
            rows.0 = 0;
        }
    }

    fn pick(rows: &[PageRecord], host: Option<&str>) -> Brand {
        let by_host = host.and_then(|h| rows.iter().find(|p| p.host.as_deref() == Some(h)));
        by_host
            .or_else(|| rows.iter().find(|p| p.host.is_none()))
            .map(Brand::of)
            .unwrap_or_default()
    }

    /// The page subscribers of `page_id` belong to (`default`: the page without a host).
    pub fn of_page_id(rows: &[PageRecord], page_id: &str) -> Brand {
        if page_id == "default" {
            return Self::pick(rows, None);
        }
        rows.iter()
            .find(|p| p.id == page_id)
            .map(Brand::of)
            .unwrap_or_default()
    }

    /// The page for `host` from the rows in memory (no read).
    pub fn cached(&self, host: Option<&str>) -> Brand {
        match self.rows.read() {
            Ok(rows) => Self::pick(&rows.1, host),
            Err(_) => Brand::default(),
        }
    }

    /// The page for `host`, reading the rows again when they are old (a failed read keeps
    /// the old ones).
    pub async fn brand(&self, store: &dyn Store, host: Option<&str>) -> Brand {
        let stale = self
            .rows
            .read()
            .map(|r| now_ms() - r.0 > FRESH_MS)
            .unwrap_or(true);
        if stale
            && let Ok(rows) = store.list_pages().await
            && let Ok(mut held) = self.rows.write()
        {
            *held = (now_ms(), Arc::new(rows));
        }
        self.cached(host)
    }
}
