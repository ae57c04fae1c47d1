//! The read side of the status page and the history's upkeep: rollup writes (called inside
//! `commit_batch`'s transaction), rollup and public-state reads, and batched retention.
//! Written once for both backends, like `sql.rs`.

use std::time::{SystemTime, UNIX_EPOCH};

use std::collections::BTreeMap;

use async_trait::async_trait;
use sqlx::Transaction;

use super::batch::{self, RollupKey, RollupTable};
use super::dialect::Dialect;
use super::model::{IncidentRecord, ResultRecord, ServerWithState};
use super::rollup::{DailyRollup, HourlyRollup, Rollup, RollupDeltas};
use super::sql::{SERVER_WITH_STATE, SqlStore, run_all, server_with_state};
use super::statement::Statement;
use super::{StoreError, StoreResult};
use crate::monitor::RegionState;
use crate::probe::{FailureKind, Phase, Verdict};

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
    pub verdict: Verdict,
    pub failure_kind: Option<FailureKind>,
    pub failure_phase: Option<Phase>,
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
            verdict: r.verdict,
            failure_kind: r.failure_kind,
            failure_phase: r.failure_phase,
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

/// `st` narrowed to a scope's servers (`server_id` column).
fn in_scope<'a>(st: Statement<'a>, scope: Scope<'a>) -> Statement<'a> {
    match scope {
        Scope::Public => st
            .push(" AND server_id IN (SELECT id FROM servers WHERE public = ?)")
            .bind(true),
        Scope::Server(id) => st.push(" AND server_id = ?").bind(id),
    }
}

/// A rollup row's key and running totals, as `write_rollups` reads them back.
#[derive(sqlx::FromRow)]
struct RollupRow {
    server_id: String,
    #[sqlx(default)]
    region: Option<String>,
    #[sqlx(default)]
    hour_start: Option<i64>,
    #[sqlx(default)]
    day_start: Option<i64>,
    probes: i64,
    successes: i64,
    failures: String,
    latency_hist: String,
    latency_max_ms: Option<f64>,
}

impl RollupRow {
    fn key(&self) -> RollupKey {
        let period = self.hour_start.or(self.day_start).unwrap_or_default();
        (self.server_id.clone(), self.region.clone(), period)
    }

    fn totals(&self) -> StoreResult<Rollup> {
        Rollup::from_columns(
            self.probes,
            self.successes,
            &self.failures,
            &self.latency_hist,
            self.latency_max_ms,
        )
        .map_err(StoreError::Corrupt)
    }
}

/// Merge a batch's new results into the rollups, in the batch's transaction: one read of the
/// stored rows (locked on Postgres) and one write per table.
pub(super) async fn write_rollups<D: Dialect>(
    tx: &mut Transaction<'static, D>,
    deltas: &RollupDeltas,
) -> StoreResult<()> {
    let now = now_ms();
    let hourly: BTreeMap<RollupKey, Rollup> = deltas
        .hourly
        .iter()
        .map(|((server, region, hour), d)| {
            ((server.clone(), Some(region.clone()), *hour), d.clone())
        })
        .collect();
    let daily: BTreeMap<RollupKey, Rollup> = deltas
        .daily
        .iter()
        .map(|((server, day), d)| ((server.clone(), None, *day), d.clone()))
        .collect();
    for (table, mut totals) in [(RollupTable::Hourly, hourly), (RollupTable::Daily, daily)] {
        let keys: Vec<RollupKey> = totals.keys().cloned().collect();
        let stored = run_all(tx, batch::read_rollups(table, &keys, D::UPDATE_LOCK)).await?;
        for row in &stored {
            let row: RollupRow = D::decode(row)?;
            if let Some(total) = totals.get_mut(&row.key()) {
                total.merge(&row.totals()?);
            }
        }
        run_all(tx, batch::write_rollups(table, &totals, now)).await?;
    }
    Ok(())
}

/// The last result's columns kept beside a region's state.
#[derive(sqlx::FromRow)]
struct LastColumns {
    server_id: String,
    last_failure_kind: Option<FailureKind>,
    last_failure_phase: Option<Phase>,
    last_http_status: Option<i64>,
    last_jsonrpc_code: Option<i64>,
    last_duration_ms: Option<f64>,
    last_tool_count: Option<i64>,
}

/// A region's state with its last result, from one `region_state` row.
fn region_view<D: Dialect>(row: &D::Row) -> StoreResult<RegionView> {
    let state: RegionState = D::decode(row)?;
    let cols: LastColumns = D::decode(row)?;
    let last = match (state.last_result_at, state.last_verdict) {
        (Some(at), Some(verdict)) => Some(LastSeen {
            at,
            verdict,
            failure_kind: cols.last_failure_kind,
            failure_phase: cols.last_failure_phase,
            http_status: cols.last_http_status,
            jsonrpc_code: cols.last_jsonrpc_code,
            duration_ms: cols.last_duration_ms.unwrap_or(0.0),
            tool_count: cols.last_tool_count.unwrap_or(0),
            schema_hash: state.last_schema_hash.as_deref().map(String::from),
        }),
        _ => None,
    };
    Ok(RegionView {
        server_id: cols.server_id,
        state,
        last,
    })
}

#[async_trait]
impl<D: Dialect> StatusStore for SqlStore<D> {
    async fn public_states(&self) -> StoreResult<Vec<ServerWithState>> {
        let sql = format!("{SERVER_WITH_STATE} WHERE s.public = ? ORDER BY s.name, s.id");
        let rows = self.rows(Statement::new(sql).bind(true)).await?;
        rows.iter().map(server_with_state::<D>).collect()
    }

    async fn region_views(&self, scope: Scope<'_>) -> StoreResult<Vec<RegionView>> {
        let st = in_scope(
            Statement::new("SELECT * FROM region_state WHERE 1 = 1"),
            scope,
        )
        .push(" ORDER BY server_id, region");
        let rows = self.rows(st).await?;
        rows.iter().map(region_view::<D>).collect()
    }

    async fn daily_rollups(
        &self,
        scope: Scope<'_>,
        from_day: i64,
    ) -> StoreResult<Vec<DailyRollup>> {
        let sql = format!("SELECT {DAILY_COLS} FROM rollup_daily WHERE day_start >= ?");
        let st = in_scope(Statement::new(sql).bind(from_day), scope).push(" ORDER BY day_start");
        self.all(st).await
    }

    async fn hourly_rollups(
        &self,
        scope: Scope<'_>,
        from_hour: i64,
    ) -> StoreResult<Vec<HourlyRollup>> {
        let sql = format!("SELECT {HOURLY_COLS} FROM rollup_hourly WHERE hour_start >= ?");
        let st = in_scope(Statement::new(sql).bind(from_hour), scope)
            .push(" ORDER BY hour_start, region");
        self.all(st).await
    }

    async fn rollups_changed(
        &self,
        since: i64,
        from_day: i64,
        from_hour: i64,
    ) -> StoreResult<(Vec<DailyRollup>, Vec<HourlyRollup>)> {
        // `+col` keeps the planner on the updated_at index (in SQLite it disables an index on
        // that column; in Postgres it is a no-op).
        let daily = format!(
            "SELECT {DAILY_COLS} FROM rollup_daily WHERE updated_at >= ? AND +day_start >= ?"
        );
        let hourly = format!(
            "SELECT {HOURLY_COLS} FROM rollup_hourly WHERE updated_at >= ? AND +hour_start >= ?"
        );
        Ok((
            self.all(Statement::new(daily).bind(since).bind(from_day))
                .await?,
            self.all(Statement::new(hourly).bind(since).bind(from_hour))
                .await?,
        ))
    }

    async fn incidents_since(
        &self,
        scope: Scope<'_>,
        since: i64,
    ) -> StoreResult<Vec<IncidentRecord>> {
        let st =
            Statement::new("SELECT * FROM incidents WHERE (closed_at IS NULL OR closed_at >= ?)")
                .bind(since);
        let st = in_scope(st, scope).push(" ORDER BY opened_at DESC, id DESC");
        self.all(st).await
    }

    async fn state_changes_since(
        &self,
        scope: Scope<'_>,
        since: i64,
    ) -> StoreResult<Vec<(String, String, i64)>> {
        let st = Statement::new(
            "SELECT server_id, type, at FROM events WHERE at >= ? AND type IN \
             ('server.down', 'server.up', 'server.degraded', 'server.auth_failed')",
        )
        .bind(since);
        let st = in_scope(st, scope).push(" ORDER BY at, id");
        self.all(st).await
    }

    async fn prune_results(&self, before: i64, batch: u32) -> StoreResult<u64> {
        let st = Statement::new(
            "DELETE FROM probe_results WHERE id IN \
             (SELECT id FROM probe_results WHERE started_at < ? LIMIT ?)",
        )
        .bind(before)
        .bind(i64::from(batch));
        self.run(st).await
    }

    async fn prune_rollups(&self, before: i64, batch: u32) -> StoreResult<u64> {
        let hourly = Statement::new(
            "DELETE FROM rollup_hourly WHERE (server_id, region, hour_start) IN \
             (SELECT server_id, region, hour_start FROM rollup_hourly WHERE hour_start < ? LIMIT ?)",
        );
        let daily = Statement::new(
            "DELETE FROM rollup_daily WHERE (server_id, day_start) IN \
             (SELECT server_id, day_start FROM rollup_daily WHERE day_start < ? LIMIT ?)",
        );
        let mut n = 0;
        for st in [hourly, daily] {
            n += self.run(st.bind(before).bind(i64::from(batch))).await?;
        }
        Ok(n)
    }
}
