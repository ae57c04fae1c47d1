//! Operators' posts on the public face: active ones on top of `/`, each server's on its page,
//! one page per post (`/incidents/{id}`) with its timeline, `/status.json`'s `incidents`, and
//! Atom feeds of posts for the whole page (`/feed.atom`) and per server
//! (`/s/{slug}/feed.atom`).
//!
//! A post is public when it names no server (the whole service) or at least one public
//! server; only public servers are ever named.

use std::collections::HashMap;

use askama::Template;
use serde_json::{Value, json};

use crate::clock::rfc3339;
use crate::store::{PostRecord, PostUpdateRecord, Store, StoreError};

use super::brand::Brand;
use super::words;

/// A post as readers see it.
#[derive(Debug, Clone)]
pub struct PublicPost {
    pub id: String,
    pub kind: String,
    pub title: String,
    pub status: String,
    pub impact: String,
    /// Public servers it concerns: (slug, name).
    pub servers: Vec<(String, String)>,
    /// The same servers as (id, tags), for choosing the pages that show it.
    pub concerns: Vec<(String, Vec<String>)>,
    /// Oldest first.
    pub updates: Vec<PostUpdateRecord>,
    /// The automatic incident it explains.
    pub incident_id: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub active: bool,
}

impl PublicPost {
    /// "Investigating", "In progress", …
    pub fn status_label(&self) -> String {
        label(&self.status)
    }

    pub fn updated(&self) -> String {
        words::date_time(self.updated_at)
    }

    pub fn latest(&self) -> Option<&PostUpdateRecord> {
        self.updates.last()
    }

    /// Newest first, for the timeline.
    pub fn timeline(&self) -> Vec<(String, String, &str)> {
        self.updates
            .iter()
            .rev()
            .map(|u| (label(&u.status), words::date_time(u.at), u.message.as_str()))
            .collect()
    }
}

/// A status word as a label: `in_progress` → "In progress".
pub fn label(status: &str) -> String {
    let text = status.replace('_', " ");
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => text,
    }
}

/// `posts` as readers may see them: those naming only private servers left out, private
/// servers left unnamed, updates attached.
pub async fn public(
    store: &dyn Store,
    posts: Vec<PostRecord>,
) -> Result<Vec<PublicPost>, StoreError> {
    let ids: Vec<String> = posts.iter().flat_map(|p| p.server_ids.clone()).collect();
    let public: HashMap<String, crate::store::ServerRecord> = store
        .servers_by_id(&ids)
        .await?
        .into_iter()
        .filter(|s| s.public)
        .map(|s| (s.id.clone(), s))
        .collect();
    let post_ids: Vec<String> = posts.iter().map(|p| p.id.clone()).collect();
    let mut updates: HashMap<String, Vec<PostUpdateRecord>> = HashMap::new();
    for u in store.post_updates(&post_ids).await? {
        updates.entry(u.post_id.clone()).or_default().push(u);
    }
    Ok(posts
        .into_iter()
        .filter_map(|p| {
            let known: Vec<&crate::store::ServerRecord> = p
                .server_ids
                .iter()
                .filter_map(|id| public.get(id))
                .collect();
            if !p.server_ids.is_empty() && known.is_empty() {
                return None;
            }
            let servers = known
                .iter()
                .map(|s| (s.slug.clone(), s.name.clone()))
                .collect();
            let concerns = known
                .iter()
                .map(|s| (s.id.clone(), s.tags.clone()))
                .collect();
            Some(PublicPost {
                active: !matches!(p.status.as_str(), "resolved" | "completed"),
                updates: updates.remove(&p.id).unwrap_or_default(),
                id: p.id,
                kind: p.kind,
                title: p.title,
                status: p.status,
                impact: p.impact,
                servers,
                concerns,
                incident_id: p.incident_id,
                created_at: p.created_at,
                updated_at: p.updated_at,
            })
        })
        .collect())
}

/// Active public posts, newest first.
pub async fn active(store: &dyn Store) -> Result<Vec<PublicPost>, StoreError> {
    let posts = store.active_posts().await?;
    public(store, posts).await
}

/// The latest public posts (of one server, when `slug` is given), newest first.
pub async fn recent(
    store: &dyn Store,
    server_id: Option<&str>,
    limit: usize,
) -> Result<Vec<PublicPost>, StoreError> {
    // A post naming a public server is public, so a server's latest are its latest shown;
    // the whole page's are chosen from more, as some name only private servers or servers
    // another page shows (the caller picks).
    let posts: Vec<PostRecord> = match server_id {
        Some(id) => store.posts_about(id, limit as u32).await?,
        None => store.list_posts(500).await?,
    };
    let mut shown = public(store, posts).await?;
    shown.truncate(limit);
    Ok(shown)
}

/// A post in `/status.json`.
pub fn json(p: &PublicPost) -> Value {
    json!({
        "id": p.id,
        "kind": p.kind,
        "title": p.title,
        "status": p.status,
        "impact": p.impact,
        "servers": p.servers.iter().map(|(slug, _)| slug).collect::<Vec<_>>(),
        "updated_at": rfc3339(p.updated_at),
        "latest": p.latest().map(|u| u.message.clone()),
        "url": format!("/incidents/{}", p.id),
    })
}

#[derive(Template)]
#[template(path = "incident.html")]
pub struct PostPage<'a> {
    pub p: &'a PublicPost,
    pub brand: &'a Brand,
    pub generated: String,
}

/// `/incidents/{id}`.
pub fn page(p: &PublicPost, brand: &Brand, now: i64) -> Result<String, askama::Error> {
    PostPage {
        p,
        brand,
        generated: words::date_time(now),
    }
    .render()
}

/// Text for XML: `&`, `<`, `>`, `"` escaped.
fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// An Atom feed (RFC 4287) of `posts`, at `self_url`, whose page is `page_url`.
pub fn atom(
    title: &str,
    base: &str,
    self_path: &str,
    page_path: &str,
    posts: &[PublicPost],
) -> String {
    let updated = posts.iter().map(|p| p.updated_at).max().unwrap_or(0);
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n");
    out.push_str("<feed xmlns=\"http://www.w3.org/2005/Atom\">\n");
    out.push_str(&format!("<title>{}</title>\n", xml(title)));
    out.push_str(&format!(
        "<id>{}</id>\n",
        xml(&format!("{base}{self_path}"))
    ));
    out.push_str(&format!("<updated>{}</updated>\n", rfc3339(updated)));
    out.push_str(&format!(
        "<link rel=\"self\" type=\"application/atom+xml\" href=\"{}\"/>\n",
        xml(&format!("{base}{self_path}"))
    ));
    out.push_str(&format!(
        "<link rel=\"alternate\" type=\"text/html\" href=\"{}\"/>\n",
        xml(&format!("{base}{page_path}"))
    ));
    out.push_str("<author><name>mcpwatch</name></author>\n");
    for p in posts {
        out.push_str(&entry(base, p));
    }
    out.push_str("</feed>\n");
    out
}

fn entry(base: &str, p: &PublicPost) -> String {
    let link = format!("{base}/incidents/{}", p.id);
    let body: Vec<String> = p
        .timeline()
        .into_iter()
        .map(|(status, at, message)| format!("{at}: {status}. {message}"))
        .collect();
    let kind = if p.kind == "maintenance" {
        "Maintenance"
    } else {
        "Incident"
    };
    format!(
        "<entry>\n<title>{}</title>\n<id>urn:uuid:{}</id>\n<published>{}</published>\n\
         <updated>{}</updated>\n<link rel=\"alternate\" type=\"text/html\" href=\"{}\"/>\n\
         <category term=\"{}\"/>\n<content type=\"text\">{}</content>\n</entry>\n",
        xml(&format!("{kind} ({}): {}", p.status_label(), p.title)),
        xml(&p.id),
        rfc3339(p.created_at),
        rfc3339(p.updated_at),
        xml(&link),
        xml(&p.kind),
        xml(&body.join("\n")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_feed_text_are_escaped() {
        assert_eq!(label("in_progress"), "In progress");
        let p = PublicPost {
            id: "0193".into(),
            kind: "incident".into(),
            title: "Search <down> & out".into(),
            status: "investigating".into(),
            impact: "major".into(),
            servers: vec![],
            concerns: vec![],
            updates: vec![],
            incident_id: None,
            created_at: 0,
            updated_at: 0,
            active: true,
        };
        let feed = atom("A & B", "http://h", "/feed.atom", "/", &[p]);
        assert!(
            feed.contains("<title>Incident (Investigating): Search &lt;down&gt; &amp; out</title>")
        );
        assert!(feed.contains("<title>A &amp; B</title>"));
    }
}
