//! The read side of the status page and the history's upkeep: rollup writes (called inside
//! `commit_batch`'s transaction), rollup and public-state reads, and batched retention.
//! Expanded for both backends like `sql.rs`.

use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use sqlx::Row;

use std::collections::BTreeMap;

use super::batch::{self, RollupKey, RollupTable};
use super::model::{IncidentRecord, ResultRecord, ServerWithState};
use super::rollup::{DailyRollup, HourlyRollup, Rollup, RollupDeltas};
use super::sql::{PostgresStore, SqliteStore, audited, postgres_sql, sqlite_sql};
use super::{StoreError, StoreResult};
use crate::monitor::RegionState;

/// Which servers a status read covers.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    /// Every public server (the status page, `/status.json`).
    Public,
    /// One server by id.
    Server(&'a str),
}

/// A region's state with what its last result saw (for "tools/list timed out from eu-west").
#[derive(Debug, Clone)]
pub struct RegionView {
    pub server_id: String,
    pub state: RegionState,
    pub last: Option<LastSeen>,
}

/// The part of a region's last result the status page shows, kept beside the region's state.
#[derive(Debug, Clone, PartialEq)]
pub struct LastSeen {
    pub at: i64,
    pub verdict: String,
    pub failure_kind: Option<String>,
    pub failure_phase: Option<String>,
    pub http_status: Option<i64>,
    pub jsonrpc_code: Option<i64>,
    pub duration_ms: f64,
    pub tool_count: i64,
    pub schema_hash: Option<String>,
}

impl From<&ResultRecord> for LastSeen {
    fn from(r: &ResultRecord) -> Self {
        LastSeen {
            at: r.started_at,
            verdict: r.verdict.clone(),
            failure_kind: r.failure_kind.clone(),
            failure_phase: r.failure_phase.clone(),
            http_status: r.http_status,
            jsonrpc_code: r.jsonrpc_code,
            duration_ms: r.duration_ms,
            tool_count: r.tool_count,
            schema_hash: r.schema_hash.clone(),
        }
    }
}

/// Reads behind the status page, badges and `/status.json`, and retention.
#[async_trait]
pub trait StatusStore: Send + Sync {
    /// Public servers with their state (no region detail), by name.
    async fn public_states(&self) -> StoreResult<Vec<ServerWithState>>;
    /// Region states with each region's last result.
    async fn region_views(&self, scope: Scope<'_>) -> StoreResult<Vec<RegionView>>;
    /// Daily rollups from `from_day` on, oldest first.
    async fn daily_rollups(&self, scope: Scope<'_>, from_day: i64)
    -> StoreResult<Vec<DailyRollup>>;
    /// Hourly rollups (per region) from `from_hour` on, oldest first.
    async fn hourly_rollups(
        &self,
        scope: Scope<'_>,
        from_hour: i64,
    ) -> StoreResult<Vec<HourlyRollup>>;
    /// Rollup rows of any server written at or after `since` (by the `updated_at` index alone),
    /// within the windows the status page shows. Its in-memory copy reads just these.
    async fn rollups_changed(
        &self,
        since: i64,
        from_day: i64,
        from_hour: i64,
    ) -> StoreResult<(Vec<DailyRollup>, Vec<HourlyRollup>)>;
    /// Incidents open at any time since `since` (opened after, or still open / closed after).
    async fn incidents_since(
        &self,
        scope: Scope<'_>,
        since: i64,
    ) -> StoreResult<Vec<IncidentRecord>>;
    /// State changes (`server.down`, `server.up`, `server.degraded`, `server.auth_failed`)
    /// since `since`, oldest first: (server id, event type, at).
    async fn state_changes_since(
        &self,
        scope: Scope<'_>,
        since: i64,
    ) -> StoreResult<Vec<(String, String, i64)>>;
    /// Delete up to `batch` raw results older than `before`; returns how many went.
    async fn prune_results(&self, before: i64, batch: u32) -> StoreResult<u64>;
    /// Delete up to `batch` hourly and daily rollup rows older than `before`.
    async fn prune_rollups(&self, before: i64, batch: u32) -> StoreResult<u64>;
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// What the status page reads of a daily and an hourly rollup row.
const DAILY_COLS: &str =
    "server_id, day_start, probes, successes, latency_p50_ms, latency_p95_ms, latency_max_ms";
const HOURLY_COLS: &str = "server_id, region, hour_start, probes, successes, latency_p50_ms, latency_p95_ms, latency_max_ms";

/// The server filter for a scope; binds: `public = true`, or the id.
fn scope_clause(scope: Scope<'_>, col: &str) -> String {
    match scope {
        Scope::Public => format!("{col} IN (SELECT id FROM servers WHERE public = ?)"),
        Scope::Server(_) => format!("{col} = ?"),
    }
}

macro_rules! status_store {
    ($store:ident, $db:ty, $row:ty, $conv:path, $row_lock:literal) => {
        impl $store {
            fn daily_row(r: &$row) -> StoreResult<DailyRollup> {
                Ok(DailyRollup {
                    server_id: r.try_get("server_id")?,
                    day_start: r.try_get("day_start")?,
                    probes: r.try_get("probes")?,
                    successes: r.try_get("successes")?,
                    p50_ms: r.try_get("latency_p50_ms")?,
                    p95_ms: r.try_get("latency_p95_ms")?,
                    max_ms: r.try_get("latency_max_ms")?,
                })
            }

            fn hourly_row(r: &$row) -> StoreResult<HourlyRollup> {
                Ok(HourlyRollup {
                    server_id: r.try_get("server_id")?,
                    region: r.try_get("region")?,
                    hour_start: r.try_get("hour_start")?,
                    probes: r.try_get("probes")?,
                    successes: r.try_get("successes")?,
                    p50_ms: r.try_get("latency_p50_ms")?,
                    p95_ms: r.try_get("latency_p95_ms")?,
                    max_ms: r.try_get("latency_max_ms")?,
                })
            }

            fn rollup_cols(r: &$row) -> StoreResult<Rollup> {
                Rollup::from_columns(
                    r.try_get("probes")?,
                    r.try_get("successes")?,
                    &r.try_get::<String, _>("failures")?,
                    &r.try_get::<String, _>("latency_hist")?,
                    r.try_get("latency_max_ms")?,
                )
                .map_err(StoreError::Corrupt)
            }

            /// Merge a batch's new results into the rollups, in the batch's transaction: one
            /// read of the stored rows (locked on Postgres) and one write per table.
            pub(super) async fn write_rollups(
                tx: &mut sqlx::Transaction<'static, $db>,
                deltas: &RollupDeltas,
            ) -> StoreResult<()> {
                let now = now_ms();
                let hourly: BTreeMap<RollupKey, Rollup> = deltas
                    .hourly
                    .iter()
                    .map(|((server, region, hour), d)| ((server.clone(), Some(region.clone()), *hour), d.clone()))
                    .collect();
                let daily: BTreeMap<RollupKey, Rollup> = deltas
                    .daily
                    .iter()
                    .map(|((server, day), d)| ((server.clone(), None, *day), d.clone()))
                    .collect();
                for (table, mut totals) in [(RollupTable::Hourly, hourly), (RollupTable::Daily, daily)] {
                    let keys: Vec<RollupKey> = totals.keys().cloned().collect();
                    for row in Self::run_all(tx, batch::read_rollups(table, &keys, $row_lock)).await? {
                        let region = match table {
                            RollupTable::Hourly => Some(row.try_get("region")?),
                            RollupTable::Daily => None,
                        };
                        let key = (row.try_get("server_id")?, region, row.try_get(table.period_col())?);
                        if let Some(total) = totals.get_mut(&key) {
                            total.merge(&Self::rollup_cols(&row)?);
                        }
                    }
                    Self::run_all(tx, batch::write_rollups(table, &totals, now)).await?;
                }
                Ok(())
            }
        }

        #[async_trait]
        impl StatusStore for $store {
            async fn public_states(&self) -> StoreResult<Vec<ServerWithState>> {
                let sql = $conv("SELECT s.*, t.state, t.since, t.schema_hash, t.server_version, t.protocol_version, t.last_result_at, t.open_incident_id FROM servers s LEFT JOIN server_state t ON t.server_id = s.id WHERE s.public = ? ORDER BY s.name, s.id");
                let rows = sqlx::query(audited(&sql)).bind(true).fetch_all(&self.pool).await?;
                rows.iter().map(Self::server_with_state).collect()
            }

            async fn region_views(&self, scope: Scope<'_>) -> StoreResult<Vec<RegionView>> {
                let sql = $conv(&format!(
                    "SELECT * FROM region_state WHERE {} ORDER BY server_id, region",
                    scope_clause(scope, "server_id")
                )).into_owned();
                let q = sqlx::query(audited(&sql));
                let q = match scope { Scope::Public => q.bind(true), Scope::Server(id) => q.bind(id) };
                let rows = q.fetch_all(&self.pool).await?;
                let mut out: Vec<RegionView> = Vec::with_capacity(rows.len());
                for row in &rows {
                    let state = Self::region_state(row)?;
                    let last = match (state.last_result_at, &state.last_verdict) {
                        (Some(at), Some(verdict)) => Some(LastSeen {
                            at,
                            verdict: verdict.clone(),
                            failure_kind: row.try_get("last_failure_kind")?,
                            failure_phase: row.try_get("last_failure_phase")?,
                            http_status: row.try_get("last_http_status")?,
                            jsonrpc_code: row.try_get("last_jsonrpc_code")?,
                            duration_ms: row.try_get::<Option<f64>, _>("last_duration_ms")?.unwrap_or(0.0),
                            tool_count: row.try_get::<Option<i64>, _>("last_tool_count")?.unwrap_or(0),
                            schema_hash: state.last_schema_hash.clone(),
                        }),
                        _ => None,
                    };
                    out.push(RegionView { server_id: row.try_get("server_id")?, state, last });
                }
                Ok(out)
            }

            async fn daily_rollups(&self, scope: Scope<'_>, from_day: i64) -> StoreResult<Vec<DailyRollup>> {
                let sql = $conv(&format!(
                    "SELECT {DAILY_COLS} FROM rollup_daily WHERE day_start >= ? AND {} ORDER BY day_start",
                    scope_clause(scope, "server_id")
                )).into_owned();
                let q = sqlx::query(audited(&sql)).bind(from_day);
                let q = match scope { Scope::Public => q.bind(true), Scope::Server(id) => q.bind(id) };
                let rows = q.fetch_all(&self.pool).await?;
                rows.iter().map(Self::daily_row).collect()
            }

            async fn hourly_rollups(&self, scope: Scope<'_>, from_hour: i64) -> StoreResult<Vec<HourlyRollup>> {
                let sql = $conv(&format!(
                    "SELECT {HOURLY_COLS} FROM rollup_hourly WHERE hour_start >= ? AND {} ORDER BY hour_start, region",
                    scope_clause(scope, "server_id")
                )).into_owned();
                let q = sqlx::query(audited(&sql)).bind(from_hour);
                let q = match scope { Scope::Public => q.bind(true), Scope::Server(id) => q.bind(id) };
                let rows = q.fetch_all(&self.pool).await?;
                rows.iter().map(Self::hourly_row).collect()
            }

            async fn rollups_changed(&self, since: i64, from_day: i64, from_hour: i64) -> StoreResult<(Vec<DailyRollup>, Vec<HourlyRollup>)> {
                // `+col` keeps the planner on the updated_at index (in SQLite it disables an index
                // on that column; in Postgres it is a no-op).
                let sql = $conv(&format!("SELECT {DAILY_COLS} FROM rollup_daily WHERE updated_at >= ? AND +day_start >= ?")).into_owned();
                let rows = sqlx::query(audited(&sql)).bind(since).bind(from_day).fetch_all(&self.pool).await?;
                let daily = rows.iter().map(Self::daily_row).collect::<StoreResult<Vec<_>>>()?;
                let sql = $conv(&format!("SELECT {HOURLY_COLS} FROM rollup_hourly WHERE updated_at >= ? AND +hour_start >= ?")).into_owned();
                let rows = sqlx::query(audited(&sql)).bind(since).bind(from_hour).fetch_all(&self.pool).await?;
                let hourly = rows.iter().map(Self::hourly_row).collect::<StoreResult<Vec<_>>>()?;
                Ok((daily, hourly))
            }

            async fn incidents_since(&self, scope: Scope<'_>, since: i64) -> StoreResult<Vec<IncidentRecord>> {
                let sql = $conv(&format!(
                    "SELECT * FROM incidents WHERE (closed_at IS NULL OR closed_at >= ?) AND {} ORDER BY opened_at DESC, id DESC",
                    scope_clause(scope, "server_id")
                )).into_owned();
                let q = sqlx::query(audited(&sql)).bind(since);
                let q = match scope { Scope::Public => q.bind(true), Scope::Server(id) => q.bind(id) };
                let rows = q.fetch_all(&self.pool).await?;
                rows.iter().map(Self::incident).collect()
            }

            async fn state_changes_since(&self, scope: Scope<'_>, since: i64) -> StoreResult<Vec<(String, String, i64)>> {
                let sql = $conv(&format!(
                    "SELECT server_id, type, at FROM events WHERE at >= ? AND type IN ('server.down', 'server.up', 'server.degraded', 'server.auth_failed') AND {} ORDER BY at, id",
                    scope_clause(scope, "server_id")
                )).into_owned();
                let q = sqlx::query(audited(&sql)).bind(since);
                let q = match scope { Scope::Public => q.bind(true), Scope::Server(id) => q.bind(id) };
                let rows = q.fetch_all(&self.pool).await?;
                rows.iter()
                    .map(|r| Ok((r.try_get("server_id")?, r.try_get("type")?, r.try_get("at")?)))
                    .collect()
            }

            async fn prune_results(&self, before: i64, batch: u32) -> StoreResult<u64> {
                let sql = $conv("DELETE FROM probe_results WHERE id IN (SELECT id FROM probe_results WHERE started_at < ? LIMIT ?)");
                let done = sqlx::query(audited(&sql)).bind(before).bind(i64::from(batch)).execute(&self.pool).await?;
                Ok(done.rows_affected())
            }

            async fn prune_rollups(&self, before: i64, batch: u32) -> StoreResult<u64> {
                let hourly = $conv("DELETE FROM rollup_hourly WHERE (server_id, region, hour_start) IN (SELECT server_id, region, hour_start FROM rollup_hourly WHERE hour_start < ? LIMIT ?)");
                let mut n = sqlx::query(audited(&hourly)).bind(before).bind(i64::from(batch)).execute(&self.pool).await?.rows_affected();
                let daily = $conv("DELETE FROM rollup_daily WHERE (server_id, day_start) IN (SELECT server_id, day_start FROM rollup_daily WHERE day_start < ? LIMIT ?)");
                n += sqlx::query(audited(&daily)).bind(before).bind(i64::from(batch)).execute(&self.pool).await?.rows_affected();
                Ok(n)
            }
        }
    };
}

status_store!(
    SqliteStore,
    sqlx::Sqlite,
    sqlx::sqlite::SqliteRow,
    sqlite_sql,
    ""
);
status_store!(
    PostgresStore,
    sqlx::Postgres,
    sqlx::postgres::PgRow,
    postgres_sql,
    "FOR UPDATE"
);
