//! Storage: the [`Store`] trait, with a Postgres and a SQLite implementation.
//!
//! - `model.rs`: the rows as the daemon uses them.
//! - `batch.rs`: `commit_batch` as set-based statements (one per kind of write, not per row).
//! - `column.rs`: enums kept by name and JSON kept as text, read back by sqlx (`Decode`).
//! - `statement.rs`: a [`statement::Statement`], SQL with `?` placeholders and its bound values.
//! - `dialect.rs`: what differs between SQLite and Postgres (placeholders, row locks, the pool,
//!   migrations, running a statement), as a small trait implemented for each.
//! - `sql.rs`: [`SqlStore`], the SQL written once (portable types: TEXT ids, BIGINT Unix-ms
//!   times, TEXT JSON) in ordinary generic code over the dialect; rows decode through
//!   `#[derive(sqlx::FromRow)]` records. No `sqlx::Any`, no macro.
//! - `rollup.rs`: hourly/daily rollups with a mergeable latency histogram (pure).
//! - `cluster_sql.rs`: [`ClusterStore`], which central replica leads (a lease row with a term).
//! - `rows.rs`: writing one server, channel or window row, deleting one with its children,
//!   and a monitors file's whole apply in one transaction.
//! - `page_sql.rs`: [`PageStore`], status pages (branding, servers shown, chosen by Host).
//! - `post_sql.rs`: [`PostStore`], incident posts and announced maintenance with updates.
//! - `slo_sql.rs`: [`SloStore`], service level objectives and their open burn-rate alerts.
//! - `credential_sql.rs`: [`CredentialStore`], which credential-expiry warnings went out (once each).
//! - `subscriber_sql.rs`: [`SubscriberStore`], readers subscribed to a page (addresses sealed)
//!   and the outbox of notices they are sent.
//! - `region_sql.rs`: [`RegionStore`], regions' last contact and result-id checks for agents.
//! - `gate.rs`: [`gate::DbGate`], whether the database answers, as the HTTP side sees it.
//! - `nodelay.rs`: `TCP_NODELAY` on Postgres connections (sqlx 0.9.0 no longer sets it).
//! - `pooler.rs`: the Postgres pool directly or behind a transaction-pooling PgBouncer.
//! - `retention.rs`: batched pruning of raw results and rollups past their age.
//! - `status_sql.rs`: [`StatusStore`], the status page's reads, rollup writes and retention.
//!
//! Migrations live in `migrations/postgres/` and `migrations/sqlite/` and are embedded at build
//! time; they run at start and with `mcpwatch migrate`. The same test suite runs on both.

mod batch;
mod cluster_sql;
mod column;
mod credential_sql;
mod dialect;
pub mod gate;
mod model;
mod nodelay;
mod page_sql;
pub mod pooler;
mod post_sql;
mod region_sql;
pub mod retention;
pub mod rollup;
mod rows;
mod slo_sql;
mod sql;
mod statement;
mod status_sql;
mod subscriber_sql;

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;

pub use cluster_sql::{ClusterStore, LEASE_TTL_SECONDS, LeaderLease, LeaseCheck};
pub use credential_sql::{CredentialStore, CredentialWarning};
pub use model::{
    ApiKeyRecord, AttemptRecord, BatchWrites, ChannelKind, ChannelRecord, ContractSnapshot,
    ContractState, DeliveryRecord, DeliveryStatus, EventRecord, Fence, HandoffRecord, HeldRecord,
    IncidentRecord, MonitorWrites, OAuthShown, Page, RegistryOrigin, ResultQuery, ResultRecord,
    SchemaChangeRecord, ServerFilter, ServerRecord, ServerWithState, SnapshotRecord, WindowRecord,
    server_event_json,
};
pub use page_sql::{PageRecord, PageStore};
pub use post_sql::{PostRecord, PostStore, PostUpdateRecord};
pub use region_sql::{RegionRecord, RegionStore};
pub use slo_sql::{SloAlert, SloRecord, SloStore};
pub use sql::{PostgresStore, SqlStore, SqliteStore};
pub use status_sql::{LastSeen, RegionView, Scope, StatusStore};
pub use subscriber_sql::{NoticeRecord, SubscriberRecord, SubscriberStore, UNCONFIRMED_KEPT_MS};

use crate::config::DatabaseUrl;
use crate::monitor::{RegionState, ServerState, ServerStatus};

/// A storage failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A unique value is taken (e.g. a server slug).
    #[error("{0} already exists")]
    Conflict(String),
    /// The database could not be opened or set up (a file, a path, a lock, a connection
    /// string); the message says which and why.
    #[error("database error: {0}")]
    Database(String),
    /// A database file, its folder or its lock could not be created or opened; `what` says
    /// which ("cannot create /data/mcpwatch.db").
    #[error("{what}: {source}")]
    File {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// The database refused a query (or a query failed in it).
    #[error("database error: {0}")]
    Query(#[source] sqlx::Error),
    /// The database could not be reached: no connection within the pool's timeout, a refused
    /// or broken connection, or the server shutting down. Requests stop waiting on it.
    #[error("database unreachable: {0}")]
    Unreachable(#[source] sqlx::Error),
    /// Migrations could not be applied.
    #[error("migration failed: {0}")]
    Migration(String),
    /// A stored value could not be read back (corrupt JSON, unknown enum name).
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e
            && db.is_unique_violation()
        {
            return StoreError::Conflict(db.constraint().unwrap_or("value").to_string());
        }
        let unreachable = match &e {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_) => true,
            // Postgres ending our session: admin shutdown, terminated backend, no connections.
            sqlx::Error::Database(db) => db
                .code()
                .is_some_and(|c| c.starts_with("57P") || c.starts_with("08") || c == "55000"),
            _ => false,
        };
        if matches!(e, sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_)) {
            // A stored value that does not read back (corrupt JSON, an unknown enum name).
            return StoreError::Corrupt(e.to_string());
        }
        if unreachable {
            StoreError::Unreachable(e)
        } else if pooler::is_pooler_symptom(&e) {
            StoreError::Database(pooler::explain(&e))
        } else {
            StoreError::Query(e)
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Everything the daemon stores. One implementation per backend.
#[async_trait]
pub trait Store:
    StatusStore
    + RegionStore
    + ClusterStore
    + PostStore
    + PageStore
    + SubscriberStore
    + SloStore
    + CredentialStore
    + Send
    + Sync
    + 'static
{
    /// `postgres` or `sqlite`.
    fn backend(&self) -> &'static str;
    async fn migrate(&self) -> StoreResult<()>;
    /// Reachable, and every embedded migration applied.
    async fn ready(&self) -> StoreResult<()>;
    async fn close(&self);

    async fn insert_server(&self, s: &ServerRecord) -> StoreResult<()>;
    /// Register many servers with their first state, all or none, set-based (a slug taken
    /// meanwhile refuses the whole batch with `Conflict`).
    async fn insert_servers(
        &self,
        servers: &[ServerRecord],
        states: &[(String, ServerState)],
    ) -> StoreResult<()>;
    /// Which of `slugs` belong to a server already.
    async fn slugs_taken(&self, slugs: &[String])
    -> StoreResult<std::collections::HashSet<String>>;
    async fn update_server(&self, s: &ServerRecord) -> StoreResult<()>;
    async fn delete_server(&self, id: &str) -> StoreResult<bool>;
    /// By id or slug.
    async fn get_server(&self, id_or_slug: &str) -> StoreResult<Option<ServerRecord>>;
    /// Ordered by (created_at, id); `page.after` continues after a row.
    async fn list_servers(&self, page: &Page) -> StoreResult<Vec<ServerRecord>>;
    async fn all_servers(&self) -> StoreResult<Vec<ServerRecord>>;
    /// The servers with a probe credential whose expiry is known (a bearer token's, or an
    /// OAuth identity's): the credential watchdog's minute-by-minute look, which must not
    /// read the whole fleet (100 MB of records at 100,000 servers).
    async fn servers_with_expiring_credentials(&self) -> StoreResult<Vec<ServerRecord>>;
    /// The id and `updated_at` of every server (`since` `None`), or of those written at or
    /// after `since` (unix ms, by the writer's clock): the change feed that keeps the
    /// scheduler in line without re-reading every server.
    async fn server_versions(&self, since: Option<i64>) -> StoreResult<Vec<(String, i64)>>;
    /// How many servers there are.
    async fn count_servers(&self) -> StoreResult<i64>;
    /// These servers (ids not found are left out).
    async fn servers_by_id(&self, ids: &[String]) -> StoreResult<Vec<ServerRecord>>;

    async fn load_state(
        &self,
        server_id: &str,
    ) -> StoreResult<(Option<ServerState>, Vec<RegionState>)>;
    async fn all_states(&self) -> StoreResult<Vec<ServerWithState>>;
    /// A page of servers with their state and regions, ordered by (created_at, id), in two
    /// queries whatever the page size.
    async fn servers_with_state(
        &self,
        filter: &ServerFilter,
        page: &Page,
    ) -> StoreResult<Vec<ServerWithState>>;
    /// How many servers are in each status (a paused server counts as `paused`, one never
    /// probed as `unknown`); statuses with no server are left out.
    async fn count_by_status(&self) -> StoreResult<Vec<(ServerStatus, i64)>>;
    async fn set_server_state(&self, server_id: &str, state: &ServerState) -> StoreResult<()>;
    /// Write a whole batch of results and what they changed, atomically.
    async fn commit_batch(&self, w: &BatchWrites) -> StoreResult<()>;

    async fn list_results(&self, q: &ResultQuery) -> StoreResult<Vec<ResultRecord>>;
    async fn last_result(&self, server_id: &str) -> StoreResult<Option<ResultRecord>>;
    /// The list of each kind (`kind`, `hash`) the server serves now.
    async fn contract_state(&self, server_id: &str) -> StoreResult<Vec<(String, String)>>;
    /// The items of one resource, template or prompt list seen before.
    async fn get_contract_snapshot(
        &self,
        server_id: &str,
        kind: &str,
        hash: &str,
    ) -> StoreResult<Option<serde_json::Value>>;
    async fn get_snapshot(
        &self,
        server_id: &str,
        hash: &str,
    ) -> StoreResult<Option<SnapshotRecord>>;
    /// Newest first.
    /// Every change of the server's served tool list, newest first.
    async fn list_schema_changes(&self, server_id: &str) -> StoreResult<Vec<SchemaChangeRecord>>;
    /// Changes (not first lists) of every server since `since`, newest first.
    async fn schema_changes_since(&self, since: i64) -> StoreResult<Vec<SchemaChangeRecord>>;
    async fn list_snapshots(&self, server_id: &str) -> StoreResult<Vec<SnapshotRecord>>;
    /// Newest first; `server_id` filters.
    async fn list_incidents(
        &self,
        server_id: Option<&str>,
        page: &Page,
    ) -> StoreResult<Vec<IncidentRecord>>;
    /// Newest first; filters by server and type.
    async fn list_events(
        &self,
        server_id: Option<&str>,
        kind: Option<&str>,
        page: &Page,
    ) -> StoreResult<Vec<EventRecord>>;

    async fn insert_key(&self, k: &ApiKeyRecord) -> StoreResult<()>;
    async fn find_key(&self, hash: &str) -> StoreResult<Option<ApiKeyRecord>>;
    async fn list_keys(&self) -> StoreResult<Vec<ApiKeyRecord>>;
    async fn delete_key(&self, id: &str) -> StoreResult<bool>;
    async fn touch_key(&self, id: &str, at: i64) -> StoreResult<()>;

    async fn insert_channel(&self, c: &ChannelRecord) -> StoreResult<()>;
    async fn update_channel(&self, c: &ChannelRecord) -> StoreResult<()>;
    async fn delete_channel(&self, id: &str) -> StoreResult<bool>;
    async fn get_channel(&self, id: &str) -> StoreResult<Option<ChannelRecord>>;
    async fn list_channels(&self) -> StoreResult<Vec<ChannelRecord>>;
    async fn get_event(&self, id: &str) -> StoreResult<Option<EventRecord>>;
    /// Lease up to `limit` due deliveries (pending and due, or sending with an expired lease)
    /// until `lease_until`. On Postgres rows are claimed with `FOR UPDATE SKIP LOCKED`, so
    /// several dispatchers never take the same row.
    async fn claim_deliveries(
        &self,
        now: i64,
        lease_until: i64,
        limit: u32,
    ) -> StoreResult<Vec<DeliveryRecord>>;
    /// Record an attempt and the row's new state, atomically.
    async fn finish_delivery(&self, d: &DeliveryRecord, attempt: &AttemptRecord)
    -> StoreResult<()>;
    async fn get_delivery(&self, id: &str) -> StoreResult<Option<DeliveryRecord>>;
    /// Newest first; filters by channel and status.
    async fn list_deliveries(
        &self,
        channel_id: Option<&str>,
        status: Option<DeliveryStatus>,
        page: &Page,
    ) -> StoreResult<Vec<DeliveryRecord>>;
    async fn list_attempts(&self, delivery_id: &str) -> StoreResult<Vec<AttemptRecord>>;
    /// A channel's latest attempts, newest first.
    async fn recent_channel_attempts(
        &self,
        channel_id: &str,
        limit: u32,
    ) -> StoreResult<Vec<AttemptRecord>>;
    /// A dead delivery back to pending, due now. False if it is not dead.
    async fn requeue_delivery(&self, id: &str, now: i64) -> StoreResult<bool>;
    /// When the last `server.still_down` for this incident went to this channel.
    async fn last_reminder(&self, channel_id: &str, incident_id: &str) -> StoreResult<Option<i64>>;
    async fn insert_window(&self, w: &WindowRecord) -> StoreResult<()>;
    async fn list_windows(&self) -> StoreResult<Vec<WindowRecord>>;
    async fn delete_window(&self, id: &str) -> StoreResult<bool>;
    /// Write what a monitors file's apply decided, all or nothing.
    async fn apply_monitors(&self, w: &MonitorWrites) -> StoreResult<()>;
    /// Held alerts whose occurrence has ended by `now` and whose summary has not gone out.
    async fn due_held(&self, now: i64) -> StoreResult<Vec<HeldRecord>>;
    /// Count of deliveries not yet delivered or dead.
    async fn pending_deliveries(&self) -> StoreResult<i64>;
}

/// Open the configured database (creating the SQLite file and its folder when needed).
pub async fn open(url: &DatabaseUrl, max_connections: u32) -> StoreResult<Arc<dyn Store>> {
    match url {
        DatabaseUrl::Postgres(u) => Ok(Arc::new(PostgresStore::connect(u, max_connections).await?)),
        DatabaseUrl::Sqlite(path) => Ok(Arc::new(SqliteStore::open(path).await?)),
    }
}

/// Create the parent folder of a SQLite file.
pub(crate) fn ensure_parent(path: &Path) -> StoreResult<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|source| StoreError::File {
            what: format!("cannot create {}", parent.display()),
            source,
        })?;
    }
    Ok(())
}
