//! Which central replica leads: the one holding a Postgres session advisory lock. The leader
//! probes the built-in region, evaluates results and runs alert housekeeping; the others stand
//! by (not ready) and take over within seconds when the leader's session ends, including when
//! its process is killed (Postgres drops the session, and the lock with it). SQLite is a single
//! node: the first `serve` on a file leads, and a second one refuses to start.

use async_trait::async_trait;
use sqlx::Connection;

use super::sql::{PostgresStore, SqliteStore};
use super::{StoreError, StoreResult};

/// The advisory lock key ("mcpwatch" as a number).
const LEADER_LOCK: i64 = 0x6d63_7077_6174_6368;

/// Held leadership.
#[async_trait]
pub trait LeaderLease: Send {
    /// Whether the lock is still held (its session answers).
    async fn still_held(&mut self) -> bool;
}

#[async_trait]
pub trait ClusterStore: Send + Sync {
    /// Take leadership if no other replica holds it.
    async fn try_lead(&self) -> StoreResult<Option<Box<dyn LeaderLease>>>;
}

/// SQLite: an exclusive lock on `<database>.lock`, held until the process ends. A second
/// `serve` on the same file does not get it (SQLite is a single node).
struct FileLease(#[allow(dead_code)] std::fs::File);

#[async_trait]
impl LeaderLease for FileLease {
    async fn still_held(&mut self) -> bool {
        true
    }
}

#[async_trait]
impl ClusterStore for SqliteStore {
    async fn try_lead(&self) -> StoreResult<Option<Box<dyn LeaderLease>>> {
        let db = self.pool.connect_options().get_filename().to_path_buf();
        let path = db.with_extension("db.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| StoreError::Database(format!("cannot open {}: {e}", path.display())))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(Box::new(FileLease(file)))),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(StoreError::Database(format!(
                "cannot lock {}: {e}",
                path.display()
            ))),
        }
    }
}

/// The session that holds the lock, kept out of the pool.
struct PgLease(sqlx::PgConnection);

#[async_trait]
impl LeaderLease for PgLease {
    async fn still_held(&mut self) -> bool {
        let ping = tokio::time::timeout(std::time::Duration::from_secs(5), self.0.ping()).await;
        matches!(ping, Ok(Ok(())))
    }
}

#[async_trait]
impl ClusterStore for PostgresStore {
    async fn try_lead(&self) -> StoreResult<Option<Box<dyn LeaderLease>>> {
        let mut conn = self.pool.acquire().await?.detach();
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(LEADER_LOCK)
            .fetch_one(&mut conn)
            .await?;
        Ok(got.then(|| Box::new(PgLease(conn)) as Box<dyn LeaderLease>))
    }
}
