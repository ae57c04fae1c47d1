//! Replicas on one Postgres, coordinated by rows with a term and an expiry on database time
//! ([`LEASE_TTL_SECONDS`], renewed every 2 s), never by a session (so PgBouncer in
//! transaction mode works):
//! - each live replica has a heartbeat row in `replicas`;
//! - each bucket of servers (`crate::shard`) is a `bucket:N` row of `leases`, held by the
//!   replica that probes and decides its servers; the term grows at every change of holder
//!   and fences the holder's writes;
//! - the `leader` row names the replica that runs the singletons (retention, reminders,
//!   maintenance summaries);
//! - `handoff` holds results taken by a replica that does not own their server, for the owner.
//!
//! A replica that cannot reach the database keeps what it holds, so probing never stops during
//! an outage; when the database is back it renews (same terms) or finds higher terms and lets
//! those buckets go. SQLite is a single node: the first `serve` on a file owns everything, and a
//! second one refuses to start.

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
}

#[async_trait]
pub trait ClusterStore: Send + Sync {
    /// Take leadership (the singletons: retention, reminders, maintenance summaries) for
    /// `holder` if no other replica holds it.
    async fn try_lead(&self, holder: &str) -> StoreResult<Option<Box<dyn LeaderLease>>>;
    /// Whether replicas share the servers by bucket leases (Postgres); otherwise this node
    /// owns every server (SQLite).
    fn sharded(&self) -> bool {
        false
    }
    /// Renew `holder`'s heartbeat and return the live replicas (their ids, sorted).
    async fn heartbeat(&self, _holder: &str) -> StoreResult<Vec<String>> {
        Ok(Vec::new())
    }
    /// Make `holder`'s bucket leases what it wants: release those it holds and no longer
    /// wants, renew the rest, take the wanted ones that are free or expired. Returns every
    /// bucket it holds now, with its term.
    async fn settle_buckets(
        &self,
        _holder: &str,
        _want: &[u16],
    ) -> StoreResult<std::collections::BTreeMap<u16, i64>> {
        Ok(Default::default())
    }
    /// A graceful stop: `holder`'s heartbeat and bucket leases go at once.
    async fn leave(&self, _holder: &str) {}
    /// Results handed off to the owner of `buckets`, oldest first.
    async fn take_handoff(
        &self,
        _buckets: &[u16],
        _limit: u32,
    ) -> StoreResult<Vec<super::HandoffRecord>> {
        Ok(Vec::new())
    }
    /// Delete the handed-off results among `ids` that are stored now (or whose server is
    /// gone); returns how many.
    async fn clear_handoff(&self, _ids: &[String]) -> StoreResult<u64> {
        Ok(0)
    }
    /// Delete the handed-off rows `ids` whatever their state (rows that do not read back).
    async fn discard_handoff(&self, _ids: &[String]) -> StoreResult<u64> {
        Ok(0)
    }
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
    async fn try_lead(&self, _holder: &str) -> StoreResult<Option<Box<dyn LeaderLease>>> {
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
}

#[async_trait]
impl ClusterStore for PostgresStore {
    async fn try_lead(&self, holder: &str) -> StoreResult<Option<Box<dyn LeaderLease>>> {
        // Take the row when it is free or expired; every change of holder raises the term.
        let term: Option<i64> = sqlx::query_scalar(
            "INSERT INTO leases (name, holder, term, expires_at) \
             VALUES ('leader', $1, 1, now() + make_interval(secs => $2)) \
             ON CONFLICT (name) DO UPDATE \
             SET holder = EXCLUDED.holder, term = leases.term + 1, expires_at = EXCLUDED.expires_at \
             WHERE leases.expires_at < now() \
             RETURNING term",
        )
        .bind(holder)
        .bind(LEASE_TTL_SECONDS as f64)
        .fetch_optional(&self.pool)
        .await?;
        Ok(term.map(|term| {
            Box::new(PgLease {
                pool: self.pool.clone(),
                holder: holder.to_string(),
                term,
            }) as Box<dyn LeaderLease>
        }))
    }

    fn sharded(&self) -> bool {
        true
    }

    async fn heartbeat(&self, holder: &str) -> StoreResult<Vec<String>> {
        sqlx::query(
            "INSERT INTO replicas (holder, expires_at) VALUES ($1, now() + make_interval(secs => $2)) \
             ON CONFLICT (holder) DO UPDATE SET expires_at = EXCLUDED.expires_at",
        )
        .bind(holder)
        .bind(LEASE_TTL_SECONDS as f64)
        .execute(&self.pool)
        .await?;
        // Rows of replicas gone for a minute are of no use to anyone.
        sqlx::query("DELETE FROM replicas WHERE expires_at < now() - interval '1 minute'")
            .execute(&self.pool)
            .await?;
        Ok(sqlx::query_scalar(
            "SELECT holder FROM replicas WHERE expires_at > now() ORDER BY holder",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    async fn settle_buckets(
        &self,
        holder: &str,
        want: &[u16],
    ) -> StoreResult<std::collections::BTreeMap<u16, i64>> {
        let names: Vec<String> = want.iter().map(|b| crate::shard::lease_name(*b)).collect();
        let mut tx = self.pool.begin().await?;
        // Our rows first, in name order (as the ingest's fence check locks them): no deadlock.
        sqlx::query(
            "SELECT name FROM leases WHERE holder = $1 AND name LIKE 'bucket:%' \
             ORDER BY name FOR UPDATE",
        )
        .bind(holder)
        .execute(&mut *tx)
        .await?;
        // Let go by expiring, not deleting: the row keeps its term, so the next holder's is
        // higher.
        sqlx::query(
            "UPDATE leases SET expires_at = now() - interval '1 second' \
             WHERE holder = $1 AND name LIKE 'bucket:%' AND NOT (name = ANY($2)) \
             AND expires_at > now() - interval '1 second'",
        )
        .bind(holder)
        .bind(&names)
        .execute(&mut *tx)
        .await?;
        let mut held: Vec<(String, i64)> = sqlx::query_as(
            "UPDATE leases SET expires_at = now() + make_interval(secs => $3) \
             WHERE holder = $1 AND name = ANY($2) RETURNING name, term",
        )
        .bind(holder)
        .bind(&names)
        .bind(LEASE_TTL_SECONDS as f64)
        .fetch_all(&mut *tx)
        .await?;
        // Free or expired rows only; every change of holder raises the bucket's term.
        held.extend(
            sqlx::query_as::<_, (String, i64)>(
                "INSERT INTO leases (name, holder, term, expires_at) \
                 SELECT n, $1, 1, now() + make_interval(secs => $3) FROM unnest($2::text[]) AS n \
                 ON CONFLICT (name) DO UPDATE \
                 SET holder = EXCLUDED.holder, term = leases.term + 1, expires_at = EXCLUDED.expires_at \
                 WHERE leases.expires_at < now() AND leases.holder <> EXCLUDED.holder \
                 RETURNING name, term",
            )
            .bind(holder)
            .bind(&names)
            .bind(LEASE_TTL_SECONDS as f64)
            .fetch_all(&mut *tx)
            .await?,
        );
        tx.commit().await?;
        Ok(held
            .into_iter()
            .filter_map(|(name, term)| Some((crate::shard::bucket_of_lease(&name)?, term)))
            .collect())
    }

    async fn leave(&self, holder: &str) {
        let _ = sqlx::query(
            "UPDATE leases SET expires_at = now() - interval '1 second' \
             WHERE holder = $1 AND name LIKE 'bucket:%'",
        )
        .bind(holder)
        .execute(&self.pool)
        .await;
        let _ = sqlx::query("DELETE FROM replicas WHERE holder = $1")
            .bind(holder)
            .execute(&self.pool)
            .await;
    }

    async fn take_handoff(
        &self,
        buckets: &[u16],
        limit: u32,
    ) -> StoreResult<Vec<super::HandoffRecord>> {
        let buckets: Vec<i32> = buckets.iter().map(|b| i32::from(*b)).collect();
        let rows: Vec<(String, i32, String, String, i64)> = sqlx::query_as(
            "SELECT id, bucket, server_id, payload, created_at FROM handoff \
             WHERE bucket = ANY($1) ORDER BY created_at, id LIMIT $2",
        )
        .bind(&buckets)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(id, bucket, server_id, payload, created_at)| super::HandoffRecord {
                    id,
                    bucket: bucket as u16,
                    server_id,
                    payload,
                    created_at,
                },
            )
            .collect())
    }

    async fn clear_handoff(&self, ids: &[String]) -> StoreResult<u64> {
        let done = sqlx::query(
            "DELETE FROM handoff WHERE id = ANY($1) \
             AND (EXISTS (SELECT 1 FROM probe_results p WHERE p.id = handoff.id) \
                  OR NOT EXISTS (SELECT 1 FROM servers s WHERE s.id = handoff.server_id))",
        )
        .bind(ids)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn discard_handoff(&self, ids: &[String]) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM handoff WHERE id = ANY($1)")
            .bind(ids)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
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
