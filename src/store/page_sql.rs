//! Status pages: their branding and the servers each shows, chosen by the reader's Host.
//! Written once for both backends, like `sql.rs`.

use async_trait::async_trait;
use serde::Serialize;

use super::StoreResult;
use super::column::JsonText;
use super::dialect::{Dialect, Exec};
use super::sql::SqlStore;
use super::statement::Statement;

/// One status page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct PageRecord {
    pub id: String,
    /// The Host it answers (lower case, no port); `None`: the default page's branding.
    pub host: Option<String>,
    pub title: String,
    pub description: Option<String>,
    pub logo_url: Option<String>,
    /// `#rrggbb`.
    pub accent: Option<String>,
    pub footer: Option<String>,
    /// `[[label, url], …]`.
    #[sqlx(try_from = "JsonText<Vec<(String, String)>>")]
    pub links: Vec<(String, String)>,
    /// Servers shown: those with one of these tags, or listed; both empty: every public one.
    #[sqlx(try_from = "JsonText<Vec<String>>")]
    pub tags: Vec<String>,
    #[sqlx(try_from = "JsonText<Vec<String>>")]
    pub server_ids: Vec<String>,
    pub created_at: i64,
}

#[async_trait]
pub trait PageStore: Send + Sync {
    async fn insert_page(&self, p: &PageRecord) -> StoreResult<()>;
    async fn list_pages(&self) -> StoreResult<Vec<PageRecord>>;
    async fn delete_page(&self, id: &str) -> StoreResult<bool>;
}

fn to_json(v: &impl Serialize) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

#[async_trait]
impl<D: Dialect> PageStore for SqlStore<D> {
    async fn insert_page(&self, p: &PageRecord) -> StoreResult<()> {
        let st = Statement::new(
            "INSERT INTO pages (id, host, title, description, logo_url, accent, footer, links, \
             tags, server_ids, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&p.id)
        .bind(&p.host)
        .bind(&p.title)
        .bind(&p.description)
        .bind(&p.logo_url)
        .bind(&p.accent)
        .bind(&p.footer)
        .bind(to_json(&p.links))
        .bind(to_json(&p.tags))
        .bind(to_json(&p.server_ids))
        .bind(p.created_at);
        self.run(st).await?;
        Ok(())
    }

    async fn list_pages(&self) -> StoreResult<Vec<PageRecord>> {
        self.all(Statement::new(
            "SELECT * FROM pages ORDER BY created_at, id",
        ))
        .await
    }

    async fn delete_page(&self, id: &str) -> StoreResult<bool> {
        // A page's subscribers subscribed to it alone: they go with it.
        let mut tx = self.begin().await?;
        let notices = Statement::new(
            "DELETE FROM notices WHERE subscriber_id IN \
             (SELECT id FROM subscribers WHERE page_id = ?)",
        )
        .bind(id);
        D::execute(Exec::Tx(&mut tx), &notices).await?;
        let subscribers = Statement::new("DELETE FROM subscribers WHERE page_id = ?").bind(id);
        D::execute(Exec::Tx(&mut tx), &subscribers).await?;
        let page = Statement::new("DELETE FROM pages WHERE id = ?").bind(id);
        let n = D::execute(Exec::Tx(&mut tx), &page).await?;
        tx.commit().await?;
        Ok(n > 0)
    }
}
