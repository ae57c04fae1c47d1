//! Which central replica leads: on Postgres, the holder of the `leader` row in `leases`, with a
//! term that grows at every change of holder and an expiry on database time (renewed every
//! 2 s, [`LEASE_TTL_SECONDS`] long). The leader probes the built-in region, evaluates results
//! and runs alert housekeeping; the others stand by (not ready) and take the row once it
//! expires (its holder was killed or cut off) or is released (a graceful shutdown). A leader
//! that cannot reach the database keeps leading, so probing never stops during an outage; when
//! the database is back it either renews (same term) or finds a higher term and stands by. No
//! session state, so PgBouncer in transaction mode works. SQLite is a single node: the first
//! `serve` on a file leads, and a second one refuses to start.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::sql::{PostgresStore, SqliteStore};
use super::{StoreError, StoreResult};

/// What renewing a lease found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseCheck {
    /// Renewed: still ours.
    Held,
    /// Another replica holds it now (a higher term): stop leading.
    Lost,
    /// The database did not answer. Keep leading: nobody can take the lease without it either.
    Unknown(String),
}

/// Held leadership.
#[async_trait]
pub trait LeaderLease: Send {
    /// Renew the lease (every couple of seconds while leading).
    async fn renew(&mut self) -> LeaseCheck;
    /// Give it up at once (a graceful shutdown), so a standby need not wait for the expiry.
    async fn release(&mut self);
    /// The lease's term: it grows with every change of holder.
    fn term(&self) -> i64;
    /// What the ingest's batches carry so a replaced leader's decisions are not written
    /// (`BatchWrites::fence`); `None` where no one else can take the lease (SQLite).
    fn fence(&self) -> Option<super::Fence> {
        None
    }
}

#[async_trait]
pub trait ClusterStore: Send + Sync {
    /// Take leadership if no other replica holds it.
    async fn try_lead(&self) -> StoreResult<Option<Box<dyn LeaderLease>>>;
    /// A doorbell rung soon after any replica writes a server (Postgres `LISTEN`), until
    /// `stop`; `None` where nothing else can write (SQLite: this process is the only writer
    /// and tells its scheduler itself). A missed ring costs only the poll interval.
    fn server_changes(&self, stop: CancellationToken) -> Option<Arc<Notify>>;
}

/// SQLite: an exclusive lock on `<database>.lock`, held until the process ends. A second
/// `serve` on the same file does not get it (SQLite is a single node).
struct FileLease(#[allow(dead_code)] std::fs::File);

#[async_trait]
impl LeaderLease for FileLease {
    async fn renew(&mut self) -> LeaseCheck {
        LeaseCheck::Held
    }

    async fn release(&mut self) {}

    fn term(&self) -> i64 {
        1
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
            .map_err(|source| StoreError::File {
                what: format!("cannot open {}", path.display()),
                source,
            })?;
        match file.try_lock() {
            Ok(()) => Ok(Some(Box::new(FileLease(file)))),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(source)) => Err(StoreError::File {
                what: format!("cannot lock {}", path.display()),
                source,
            }),
        }
    }

    fn server_changes(&self, _stop: CancellationToken) -> Option<Arc<Notify>> {
        None
    }
}

/// How long a Postgres lease lasts without renewal (database time). The leader renews every
/// 2 s; a standby takes over at most this long after the leader stopped renewing.
pub const LEASE_TTL_SECONDS: i64 = 8;

/// The Postgres lease: a row in `leases`, renewed by term.
struct PgLease {
    pool: super::pooler::PgConnections,
    holder: String,
    term: i64,
}

#[async_trait]
impl LeaderLease for PgLease {
    async fn renew(&mut self) -> LeaseCheck {
        let renewed = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            sqlx::query_scalar::<_, i64>(
                "UPDATE leases SET expires_at = now() + make_interval(secs => $3) \
                 WHERE name = 'leader' AND holder = $1 AND term = $2 RETURNING term",
            )
            .bind(&self.holder)
            .bind(self.term)
            .bind(LEASE_TTL_SECONDS as f64)
            .fetch_optional(&self.pool),
        )
        .await;
        match renewed {
            Ok(Ok(Some(_))) => LeaseCheck::Held,
            Ok(Ok(None)) => LeaseCheck::Lost,
            Ok(Err(e)) => LeaseCheck::Unknown(e.to_string()),
            Err(_) => LeaseCheck::Unknown("no answer within 5 s".into()),
        }
    }

    async fn release(&mut self) {
        let _ =
            sqlx::query("DELETE FROM leases WHERE name = 'leader' AND holder = $1 AND term = $2")
                .bind(&self.holder)
                .bind(self.term)
                .execute(&self.pool)
                .await;
    }

    fn term(&self) -> i64 {
        self.term
    }

    fn fence(&self) -> Option<super::Fence> {
        Some(super::Fence {
            holder: self.holder.clone(),
            term: self.term,
        })
    }
}

#[async_trait]
impl ClusterStore for PostgresStore {
    async fn try_lead(&self) -> StoreResult<Option<Box<dyn LeaderLease>>> {
        let holder = format!("{}-{}", std::process::id(), uuid::Uuid::new_v4());
        // Take the row when it is free or expired; every change of holder raises the term.
        let term: Option<i64> = sqlx::query_scalar(
            "INSERT INTO leases (name, holder, term, expires_at) \
             VALUES ('leader', $1, 1, now() + make_interval(secs => $2)) \
             ON CONFLICT (name) DO UPDATE \
             SET holder = EXCLUDED.holder, term = leases.term + 1, expires_at = EXCLUDED.expires_at \
             WHERE leases.expires_at < now() \
             RETURNING term",
        )
        .bind(&holder)
        .bind(LEASE_TTL_SECONDS as f64)
        .fetch_optional(&self.pool)
        .await?;
        Ok(term.map(|term| {
            Box::new(PgLease {
                pool: self.pool.clone(),
                holder,
                term,
            }) as Box<dyn LeaderLease>
        }))
    }

    fn server_changes(&self, stop: CancellationToken) -> Option<Arc<Notify>> {
        if self.pool.pooler() == super::pooler::Pooler::Transaction {
            // `LISTEN` needs a session of its own; the change feed's poll finds changes.
            return None;
        }
        let bell = Arc::new(Notify::new());
        tokio::spawn(listen_for_server_changes(
            self.pool.pool().clone(),
            bell.clone(),
            stop,
        ));
        Some(bell)
    }
}

/// The channel `migrations/postgres/0009_server_changes.sql` notifies on.
const SERVER_CHANNEL: &str = "mcpwatch_servers";

/// Ring `bell` at each notification; reconnect with backoff when the connection drops (an
/// outage), ringing once after each reconnect since changes may have been missed meanwhile.
async fn listen_for_server_changes(pool: sqlx::PgPool, bell: Arc<Notify>, stop: CancellationToken) {
    let mut backoff = Duration::from_millis(200);
    loop {
        let listening = async {
            let mut listener = sqlx::postgres::PgListener::connect_with(&pool).await?;
            listener.listen(SERVER_CHANNEL).await?;
            bell.notify_one();
            loop {
                listener.recv().await?;
                bell.notify_one();
            }
        };
        let ended: Result<(), sqlx::Error> = tokio::select! {
            r = listening => r,
            _ = stop.cancelled() => return,
        };
        if let Err(e) = ended {
            tracing::debug!(error = %e, "server change notifications interrupted; reconnecting");
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.cancelled() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}
