//! Incident posts and announced maintenance: what an operator tells the status page's readers,
//! with timestamped updates. Written once for both backends, like `sql.rs`.

use async_trait::async_trait;
use serde::Serialize;

use super::StoreResult;
use super::column::JsonText;
use super::dialect::{Dialect, Exec};
use super::model::IncidentRecord;
use super::sql::SqlStore;
use super::statement::{Statement, marks};
use super::subscriber_sql::{NoticeRecord, notice_row};

/// A post: an incident write-up or an announced maintenance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct PostRecord {
    pub id: String,
    /// `incident` or `maintenance`.
    pub kind: String,
    pub title: String,
    /// Its latest update's status (`investigating` … `resolved`; `scheduled` … `completed`).
    pub status: String,
    /// `none`, `minor`, `major` or `critical`.
    pub impact: String,
    /// The servers it concerns; empty: the whole service.
    #[sqlx(try_from = "JsonText<Vec<String>>")]
    pub server_ids: Vec<String>,
    /// The maintenance window it announces.
    pub window_id: Option<String>,
    /// The automatic incident (from the state machine) it explains.
    pub incident_id: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// When it was resolved or completed.
    pub resolved_at: Option<i64>,
}

/// One timestamped update of a post.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct PostUpdateRecord {
    pub id: String,
    pub post_id: String,
    pub status: String,
    pub message: String,
    pub at: i64,
}

#[async_trait]
pub trait PostStore: Send + Sync {
    /// A new post with its first update and the subscribers' notices of it, atomically.
    async fn insert_post(
        &self,
        p: &PostRecord,
        first: &PostUpdateRecord,
        notices: &[NoticeRecord],
    ) -> StoreResult<()>;
    /// An update, the post's status and times as it leaves them, and the subscribers'
    /// notices of it, atomically.
    async fn add_post_update(
        &self,
        p: &PostRecord,
        u: &PostUpdateRecord,
        notices: &[NoticeRecord],
    ) -> StoreResult<()>;
    async fn get_post(&self, id: &str) -> StoreResult<Option<PostRecord>>;
    /// Newest first (by creation), at most `limit`.
    async fn list_posts(&self, limit: u32) -> StoreResult<Vec<PostRecord>>;
    /// The latest posts naming server `server_id`, newest first, at most `limit`.
    async fn posts_about(&self, server_id: &str, limit: u32) -> StoreResult<Vec<PostRecord>>;
    /// Posts not resolved or completed, newest first.
    async fn active_posts(&self) -> StoreResult<Vec<PostRecord>>;
    /// The updates of these posts, oldest first.
    async fn post_updates(&self, post_ids: &[String]) -> StoreResult<Vec<PostUpdateRecord>>;
    async fn delete_post(&self, id: &str) -> StoreResult<bool>;
    /// One automatic incident.
    async fn get_incident(&self, id: &str) -> StoreResult<Option<IncidentRecord>>;
}

fn to_json(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

/// Posts still open.
const ACTIVE: &str = "status NOT IN ('resolved', 'completed')";

#[async_trait]
impl<D: Dialect> PostStore for SqlStore<D> {
    async fn insert_post(
        &self,
        p: &PostRecord,
        first: &PostUpdateRecord,
        notices: &[NoticeRecord],
    ) -> StoreResult<()> {
        let post = Statement::new(
            "INSERT INTO posts (id, kind, title, status, impact, server_ids, window_id, \
             incident_id, created_at, updated_at, resolved_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&p.id)
        .bind(&p.kind)
        .bind(&p.title)
        .bind(&p.status)
        .bind(&p.impact)
        .bind(to_json(&p.server_ids))
        .bind(&p.window_id)
        .bind(&p.incident_id)
        .bind(p.created_at)
        .bind(p.updated_at)
        .bind(p.resolved_at);
        let mut tx = self.begin().await?;
        D::execute(Exec::Tx(&mut tx), &post).await?;
        D::execute(Exec::Tx(&mut tx), &update_row(first)).await?;
        for n in notices {
            D::execute(Exec::Tx(&mut tx), &notice_row(n)).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn add_post_update(
        &self,
        p: &PostRecord,
        u: &PostUpdateRecord,
        notices: &[NoticeRecord],
    ) -> StoreResult<()> {
        let post = Statement::new(
            "UPDATE posts SET title = ?, status = ?, impact = ?, server_ids = ?, updated_at = ?, \
             resolved_at = ? WHERE id = ?",
        )
        .bind(&p.title)
        .bind(&p.status)
        .bind(&p.impact)
        .bind(to_json(&p.server_ids))
        .bind(p.updated_at)
        .bind(p.resolved_at)
        .bind(&p.id);
        let mut tx = self.begin().await?;
        D::execute(Exec::Tx(&mut tx), &post).await?;
        D::execute(Exec::Tx(&mut tx), &update_row(u)).await?;
        for n in notices {
            D::execute(Exec::Tx(&mut tx), &notice_row(n)).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn get_post(&self, id: &str) -> StoreResult<Option<PostRecord>> {
        self.first(Statement::new("SELECT * FROM posts WHERE id = ?").bind(id))
            .await
    }

    async fn list_posts(&self, limit: u32) -> StoreResult<Vec<PostRecord>> {
        let st = Statement::new("SELECT * FROM posts ORDER BY created_at DESC, id DESC LIMIT ?")
            .bind(i64::from(limit));
        self.all(st).await
    }

    async fn posts_about(&self, server_id: &str, limit: u32) -> StoreResult<Vec<PostRecord>> {
        // `server_ids` is a JSON array of ids: a quoted id matches only that id (ids are
        // UUIDs, free of `%`, `_` and quotes).
        let st = Statement::new(
            "SELECT * FROM posts WHERE server_ids LIKE ? ORDER BY created_at DESC, id DESC LIMIT ?",
        )
        .bind(format!(
            "%{}%",
            to_json(&[server_id.to_string()]).trim_matches(['[', ']'])
        ))
        .bind(i64::from(limit));
        self.all(st).await
    }

    async fn active_posts(&self) -> StoreResult<Vec<PostRecord>> {
        let sql = format!("SELECT * FROM posts WHERE {ACTIVE} ORDER BY created_at DESC, id DESC");
        self.all(Statement::new(sql)).await
    }

    async fn post_updates(&self, post_ids: &[String]) -> StoreResult<Vec<PostUpdateRecord>> {
        if post_ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT * FROM post_updates WHERE post_id IN ({}) ORDER BY at, id",
            marks(post_ids.len())
        );
        let st = post_ids
            .iter()
            .fold(Statement::one_off(sql), |st, id| st.bind(id));
        self.all(st).await
    }

    async fn delete_post(&self, id: &str) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        // Notices not yet sent would tell readers of a post that is gone.
        let notices = Statement::new("DELETE FROM notices WHERE post_id = ?").bind(id);
        D::execute(Exec::Tx(&mut tx), &notices).await?;
        let updates = Statement::new("DELETE FROM post_updates WHERE post_id = ?").bind(id);
        D::execute(Exec::Tx(&mut tx), &updates).await?;
        let post = Statement::new("DELETE FROM posts WHERE id = ?").bind(id);
        let n = D::execute(Exec::Tx(&mut tx), &post).await?;
        tx.commit().await?;
        Ok(n > 0)
    }

    async fn get_incident(&self, id: &str) -> StoreResult<Option<IncidentRecord>> {
        self.first(Statement::new("SELECT * FROM incidents WHERE id = ?").bind(id))
            .await
    }
}

fn update_row(u: &PostUpdateRecord) -> Statement<'_> {
    Statement::new(
        "INSERT INTO post_updates (id, post_id, status, message, at) VALUES (?, ?, ?, ?, ?)",
    )
    .bind(&u.id)
    .bind(&u.post_id)
    .bind(&u.status)
    .bind(&u.message)
    .bind(u.at)
}
