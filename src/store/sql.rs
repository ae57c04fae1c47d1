//! [`SqlStore`]: the [`Store`] on either backend, its SQL written once with `?` placeholders in
//! ordinary generic code over a [`Dialect`] (SQLite as is, Postgres with `$1, $2, …`). Columns
//! use portable types so one decoder serves both: TEXT, BIGINT, DOUBLE PRECISION, BOOLEAN; rows
//! decode through the records' `#[derive(sqlx::FromRow)]`.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::migrate::Migrator;
use sqlx::{Postgres, Sqlite, Transaction};

use super::batch::{self, RESULT_COLS, SERVER_COLS};
use super::dialect::{Decoded, Dialect, Exec};
use super::model::*;
use super::pooler::{PgConnections, Pooler};
use super::rollup::RollupDeltas;
use super::rows::{
    CHANNEL_CHILDREN, SERVER_CHILDREN, WINDOW_CHILDREN, channel_row, delete_in, server_row,
    slug_conflict, window_row, write_monitors,
};
use super::statement::{Statement, marks};
use super::status_sql::write_rollups;
use super::{Store, StoreError, StoreResult, ensure_parent};
use crate::monitor::{RegionState, ServerState, ServerStatus};

pub(super) static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
pub(super) static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// The [`Store`] on one backend.
pub struct SqlStore<D: Dialect> {
    pub(super) pool: D::Pool,
}

/// The embedded default: one file, one node.
pub type SqliteStore = SqlStore<Sqlite>;
/// Replicas and agents share it.
pub type PostgresStore = SqlStore<Postgres>;

fn to_json(v: &impl serde::Serialize) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

/// A server's status as the API shows it: paused by its flag, `unknown` before any state.
const STATUS_OF: &str = "CASE WHEN s.paused THEN 'paused' ELSE COALESCE(t.state, 'unknown') END";

/// A server row joined with its state's columns.
pub(super) const SERVER_WITH_STATE: &str = "SELECT s.*, t.state, t.since, t.schema_hash, t.server_version, \
     t.protocol_version, t.last_result_at, t.open_incident_id \
     FROM servers s LEFT JOIN server_state t ON t.server_id = s.id";

/// The tags column (a JSON array as serde writes it: `["a","b"]`) as `,"a","b",`, so that
/// one tag is matched whole by `%,"tag",%`. Inside a JSON string every quote is escaped, so
/// `,"` can only be an element's opening.
const TAGS_AS_LIST: &str = "(',' || substr(s.tags, 2, length(s.tags) - 2) || ',')";

/// The LIKE pattern for one tag in [`TAGS_AS_LIST`], with `!` escaping LIKE's wildcards.
fn tag_pattern(tag: &str) -> String {
    let json = serde_json::to_string(tag).unwrap_or_default();
    let escaped = json
        .replace('!', "!!")
        .replace('%', "!%")
        .replace('_', "!_");
    format!("%,{escaped},%")
}

/// Newest first, a page at a time over (`time_col`, id): the keyset clause and the limit.
fn newest_first<'a>(st: Statement<'a>, page: &'a Page, time_col: &str) -> Statement<'a> {
    let st = match &page.after {
        Some((t, id)) => st
            .push(&format!(
                " AND ({time_col} < ? OR ({time_col} = ? AND id < ?))"
            ))
            .bind(*t)
            .bind(*t)
            .bind(id),
        None => st,
    };
    st.push(&format!(" ORDER BY {time_col} DESC, id DESC LIMIT ?"))
        .bind(i64::from(page.limit))
}

/// Only the `state` column of a server joined with its state (none before any result).
#[derive(sqlx::FromRow)]
struct StateColumn {
    state: Option<String>,
}

/// A server row joined with its `server_state` columns.
pub(super) fn server_with_state<D: Dialect>(row: &D::Row) -> StoreResult<ServerWithState> {
    let state = match D::decode::<StateColumn>(row)?.state {
        Some(_) => Some(D::decode::<ServerState>(row)?),
        None => None,
    };
    Ok(ServerWithState {
        server: D::decode(row)?,
        state,
        regions: Vec::new(),
    })
}

/// The rows of `st`, run in `tx`.
pub(super) async fn rows_in<D: Dialect>(
    tx: &mut Transaction<'static, D>,
    st: &Statement<'_>,
) -> StoreResult<Vec<D::Row>> {
    D::fetch(Exec::Tx(tx), st).await
}

/// Run set-based statements in `tx`; the rows they return, in order.
pub(super) async fn run_all<D: Dialect>(
    tx: &mut Transaction<'static, D>,
    stmts: Vec<Statement<'_>>,
) -> StoreResult<Vec<D::Row>> {
    let mut rows = Vec::new();
    for st in &stmts {
        rows.extend(rows_in(tx, st).await?);
    }
    Ok(rows)
}

/// How many rows `st` changed, run in `tx`.
async fn run_in<D: Dialect>(
    tx: &mut Transaction<'static, D>,
    st: Statement<'_>,
) -> StoreResult<u64> {
    D::execute(Exec::Tx(tx), &st).await
}

fn decode_all<D: Dialect, T: Decoded>(rows: &[D::Row]) -> StoreResult<Vec<T>> {
    rows.iter().map(D::decode).collect()
}

impl<D: Dialect> SqlStore<D> {
    /// Every row of `st`, decoded.
    pub(super) async fn all<T: Decoded>(&self, st: Statement<'_>) -> StoreResult<Vec<T>> {
        let rows = D::fetch(Exec::Pool(&self.pool), &st).await?;
        decode_all::<D, T>(&rows)
    }

    /// The first row of `st`, decoded.
    pub(super) async fn first<T: Decoded>(&self, st: Statement<'_>) -> StoreResult<Option<T>> {
        let rows = D::fetch(Exec::Pool(&self.pool), &st).await?;
        rows.first().map(D::decode).transpose()
    }

    /// The raw rows of `st`.
    pub(super) async fn rows(&self, st: Statement<'_>) -> StoreResult<Vec<D::Row>> {
        D::fetch(Exec::Pool(&self.pool), &st).await
    }

    /// How many rows `st` changed.
    pub(super) async fn run(&self, st: Statement<'_>) -> StoreResult<u64> {
        D::execute(Exec::Pool(&self.pool), &st).await
    }

    pub(super) async fn begin(&self) -> StoreResult<Transaction<'static, D>> {
        D::begin(&self.pool).await
    }

    /// Of the buckets `needed` (those whose servers a batch decides about), the ones `fence`
    /// does not hold, or whose lease its holder no longer holds with the same term (the
    /// replica was cut off and another took them meanwhile). The rows still held stay locked
    /// against a take-over until the transaction ends; they are locked in name order, as
    /// `settle_buckets` locks them, so the two never deadlock.
    async fn buckets_lost(
        tx: &mut Transaction<'static, D>,
        fence: &Fence,
        needed: &BTreeSet<u16>,
    ) -> StoreResult<HashSet<u16>> {
        let fenced: HashMap<u16, i64> = fence.buckets.iter().copied().collect();
        let names: Vec<String> = needed
            .iter()
            .filter(|b| fenced.contains_key(b))
            .map(|b| crate::shard::lease_name(*b))
            .collect();
        let mut held = HashSet::new();
        if !names.is_empty() {
            let sql = format!(
                "SELECT name, term FROM leases WHERE holder = ? AND name IN ({}) \
                 ORDER BY name {}",
                marks(names.len()),
                D::SHARE_LOCK
            );
            let mut st = Statement::new(sql).bind(&fence.holder);
            for n in &names {
                st = st.bind(n.as_str());
            }
            held = decode_all::<D, (String, i64)>(&rows_in(tx, &st).await?)?
                .into_iter()
                .filter_map(|(name, term)| Some((crate::shard::bucket_of_lease(&name)?, term)))
                .collect();
        }
        Ok(needed
            .iter()
            .filter(|b| fenced.get(b).is_none_or(|t| !held.contains(&(**b, *t))))
            .copied()
            .collect())
    }

    /// Sightings of known tool lists move `last_seen`; only new lists are sent whole.
    async fn write_snapshots(
        tx: &mut Transaction<'static, D>,
        snapshots: &[SnapshotRecord],
        sightings: &[(String, String, i64)],
    ) -> StoreResult<()> {
        let merged = batch::merge_snapshots(snapshots);
        let touches = batch::latest_sightings(&merged, sightings);
        let touched = run_all(tx, batch::touch_snapshots(&touches)).await?;
        let known: HashSet<(String, String)> = decode_all::<D, _>(&touched)?.into_iter().collect();
        let new: Vec<&SnapshotRecord> = merged
            .iter()
            .filter(|s| !known.contains(&(s.server_id.clone(), s.hash.clone())))
            .collect();
        run_all(tx, batch::insert_snapshots(&new)).await?;
        Ok(())
    }

    /// Regions marked silent; one already silent (or heard from since) refuses the whole
    /// batch, so one replica, once, raises `region.silent`.
    async fn mark_regions_silent(
        tx: &mut Transaction<'static, D>,
        silent: &[(String, i64, i64)],
    ) -> StoreResult<()> {
        let rows = run_all(tx, batch::mark_regions_silent(silent)).await?;
        let marked: HashSet<String> = decode_all::<D, (String,)>(&rows)?
            .into_iter()
            .map(|(name,)| name)
            .collect();
        match silent
            .iter()
            .find(|(region, _, _)| !marked.contains(region))
        {
            Some((region, _, _)) => Err(StoreError::Conflict(format!(
                "region {region} already silent"
            ))),
            None => Ok(()),
        }
    }

    /// Results stored now, counted into the rollups; then the tool lists and era hints. These
    /// are facts, written whoever leads.
    async fn write_facts(tx: &mut Transaction<'static, D>, w: &BatchWrites) -> StoreResult<()> {
        let stored = run_all(tx, batch::insert_results(&w.results)).await?;
        let mut stored: HashSet<String> = decode_all::<D, (String,)>(&stored)?
            .into_iter()
            .map(|(id,)| id)
            .collect();
        // Only results stored now count (a re-sent one was counted when it was stored). A
        // result from a vantage point whose canaries failed says nothing about the server:
        // kept, but not counted.
        let mut rollups = RollupDeltas::default();
        for r in &w.results {
            if stored.remove(&r.id) && !r.vantage_unhealthy {
                rollups.add(r);
            }
        }
        write_rollups(tx, &rollups).await?;
        Self::write_snapshots(tx, &w.snapshots, &w.sightings).await?;
        run_all(tx, batch::insert_contract_snapshots(&w.contract_snapshots)).await?;
        run_all(tx, batch::set_era_hints(&w.era_hints)).await?;
        run_all(tx, batch::insert_handoff(&w.handoff)).await?;
        Ok(())
    }

    /// States, incidents, events, alerts and their bookkeeping: the leader's decisions.
    async fn write_decisions(tx: &mut Transaction<'static, D>, w: &BatchWrites) -> StoreResult<()> {
        run_all(tx, batch::upsert_region_states(w)).await?;
        run_all(tx, batch::upsert_server_states(&w.server_states)).await?;
        run_all(tx, batch::insert_incidents(&w.incidents_opened)).await?;
        run_all(tx, batch::close_incidents(&w.incidents_closed)).await?;
        run_all(tx, batch::insert_schema_changes(&w.schema_changes)).await?;
        run_all(tx, batch::upsert_contract_states(&w.contract_states)).await?;
        run_all(tx, batch::insert_events(&w.events)).await?;
        run_all(tx, batch::insert_outbox(&w.outbox)).await?;
        run_all(tx, batch::upsert_held(&w.held)).await?;
        run_all(tx, batch::mark_held_summarized(&w.held_summarized)).await?;
        run_all(tx, batch::upsert_reminders(&w.reminders)).await?;
        Self::mark_regions_silent(tx, &w.region_silent).await?;
        run_all(tx, batch::set_channel_health(&w.channel_health)).await?;
        Ok(())
    }

    async fn write_channel(&self, c: &ChannelRecord, insert: bool) -> StoreResult<()> {
        self.run(channel_row(c, insert)).await?;
        Ok(())
    }

    async fn write_server(&self, s: &ServerRecord, insert: bool) -> StoreResult<()> {
        self.run(server_row(s, insert))
            .await
            .map_err(|e| slug_conflict(e, s))?;
        Ok(())
    }

    /// Delete `parent` and, first, the rows that refer to it (SQLite enforces foreign keys
    /// per connection, Postgres always), all in one transaction.
    /// Delete the row `id` of `table` and, first, its `children` (statements taking the id).
    async fn delete_with_children(
        &self,
        children: &[&str],
        table: &str,
        id: &str,
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let deleted = delete_in(&mut tx, children, table, id).await?;
        tx.commit().await?;
        Ok(deleted)
    }

    /// Region states of these servers, added to each.
    async fn attach_regions(&self, servers: &mut [ServerWithState]) -> StoreResult<()> {
        if servers.is_empty() {
            return Ok(());
        }
        let at: HashMap<String, usize> = servers
            .iter()
            .enumerate()
            .map(|(i, s)| (s.server.id.clone(), i))
            .collect();
        let sql = format!(
            "SELECT * FROM region_state WHERE server_id IN ({}) ORDER BY region",
            marks(servers.len())
        );
        let st = servers
            .iter()
            .fold(Statement::one_off(sql), |st, s| st.bind(&s.server.id));
        for row in self.rows(st).await? {
            let id = D::decode::<ServerIdColumn>(&row)?.server_id;
            if let Some(&i) = at.get(&id) {
                servers[i].regions.push(D::decode(&row)?);
            }
        }
        Ok(())
    }
}

/// The `server_id` column of a row that has one.
#[derive(sqlx::FromRow)]
pub(super) struct ServerIdColumn {
    pub server_id: String,
}

#[async_trait]
impl<D: Dialect> Store for SqlStore<D>
where
    SqlStore<D>: super::ClusterStore,
{
    fn backend(&self) -> &'static str {
        D::BACKEND
    }

    async fn migrate(&self) -> StoreResult<()> {
        D::migrate(&self.pool).await
    }

    async fn ready(&self) -> StoreResult<()> {
        let st =
            Statement::new("SELECT COUNT(*) FROM _sqlx_migrations WHERE success = ?").bind(true);
        let (applied,): (i64,) = self.first(st).await?.unwrap_or((0,));
        let expected = D::migrations().iter().count() as i64;
        if applied < expected {
            return Err(StoreError::Migration(format!(
                "{applied} of {expected} migrations applied"
            )));
        }
        Ok(())
    }

    async fn close(&self) {
        D::close(&self.pool).await;
    }

    async fn insert_server(&self, s: &ServerRecord) -> StoreResult<()> {
        self.write_server(s, true).await
    }

    async fn insert_servers(
        &self,
        servers: &[ServerRecord],
        states: &[(String, ServerState)],
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        run_all(&mut tx, batch::insert_servers(servers)).await?;
        run_all(&mut tx, batch::upsert_server_states(states)).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn slugs_taken(&self, slugs: &[String]) -> StoreResult<HashSet<String>> {
        let mut tx = self.begin().await?;
        let rows = run_all(&mut tx, batch::slugs_taken(slugs)).await?;
        tx.commit().await?;
        let taken = decode_all::<D, (String,)>(&rows)?;
        Ok(taken.into_iter().map(|(slug,)| slug).collect())
    }

    async fn update_server(&self, s: &ServerRecord) -> StoreResult<()> {
        self.write_server(s, false).await
    }

    async fn delete_server(&self, id: &str) -> StoreResult<bool> {
        self.delete_with_children(SERVER_CHILDREN, "servers", id)
            .await
    }

    async fn get_server(&self, id_or_slug: &str) -> StoreResult<Option<ServerRecord>> {
        let sql = format!("SELECT {SERVER_COLS} FROM servers WHERE id = ? OR slug = ?");
        self.first(Statement::new(sql).bind(id_or_slug).bind(id_or_slug))
            .await
    }

    async fn list_servers(&self, page: &Page) -> StoreResult<Vec<ServerRecord>> {
        let st = Statement::new(format!("SELECT {SERVER_COLS} FROM servers"));
        let st = match &page.after {
            Some((t, id)) => st
                .push(" WHERE created_at > ? OR (created_at = ? AND id > ?)")
                .bind(*t)
                .bind(*t)
                .bind(id),
            None => st,
        };
        let st = st
            .push(" ORDER BY created_at, id LIMIT ?")
            .bind(i64::from(page.limit));
        self.all(st).await
    }

    async fn all_servers(&self) -> StoreResult<Vec<ServerRecord>> {
        let sql = format!("SELECT {SERVER_COLS} FROM servers ORDER BY created_at, id");
        self.all(Statement::new(sql)).await
    }

    async fn servers_with_expiring_credentials(&self) -> StoreResult<Vec<ServerRecord>> {
        // Every server whose `expiries` could be non-empty: an OAuth identity's expiry is in
        // its JSON, read by the caller.
        let sql = format!(
            "SELECT {SERVER_COLS} FROM servers WHERE bearer_expires_at IS NOT NULL \
             OR oauth IS NOT NULL ORDER BY created_at, id"
        );
        self.all(Statement::new(sql)).await
    }

    async fn server_versions(&self, since: Option<i64>) -> StoreResult<Vec<(String, i64)>> {
        let st = Statement::new("SELECT id, updated_at FROM servers WHERE updated_at >= ?")
            .bind(since.unwrap_or(i64::MIN));
        self.all(st).await
    }

    async fn count_servers(&self) -> StoreResult<i64> {
        let (n,): (i64,) = self
            .first(Statement::new("SELECT COUNT(*) FROM servers"))
            .await?
            .unwrap_or((0,));
        Ok(n)
    }

    async fn servers_by_id(&self, ids: &[String]) -> StoreResult<Vec<ServerRecord>> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(1000) {
            let sql = format!(
                "SELECT {SERVER_COLS} FROM servers WHERE id IN ({})",
                marks(chunk.len())
            );
            let st = chunk
                .iter()
                .fold(Statement::one_off(sql), |st, id| st.bind(id));
            out.extend(self.all::<ServerRecord>(st).await?);
        }
        Ok(out)
    }

    async fn load_state(
        &self,
        server_id: &str,
    ) -> StoreResult<(Option<ServerState>, Vec<RegionState>)> {
        let server =
            Statement::new("SELECT * FROM server_state WHERE server_id = ?").bind(server_id);
        let regions =
            Statement::new("SELECT * FROM region_state WHERE server_id = ? ORDER BY region")
                .bind(server_id);
        Ok((self.first(server).await?, self.all(regions).await?))
    }

    async fn all_states(&self) -> StoreResult<Vec<ServerWithState>> {
        let mut by_id: HashMap<String, ServerWithState> = self
            .all_servers()
            .await?
            .into_iter()
            .map(|s| {
                let id = s.id.clone();
                (
                    id,
                    ServerWithState {
                        server: s,
                        state: None,
                        regions: Vec::new(),
                    },
                )
            })
            .collect();
        for row in self
            .rows(Statement::new("SELECT * FROM server_state"))
            .await?
        {
            let id = D::decode::<ServerIdColumn>(&row)?.server_id;
            if let Some(entry) = by_id.get_mut(&id) {
                entry.state = Some(D::decode(&row)?);
            }
        }
        let regions = Statement::new("SELECT * FROM region_state ORDER BY region");
        for row in self.rows(regions).await? {
            let id = D::decode::<ServerIdColumn>(&row)?.server_id;
            if let Some(entry) = by_id.get_mut(&id) {
                entry.regions.push(D::decode(&row)?);
            }
        }
        let mut all: Vec<ServerWithState> = by_id.into_values().collect();
        all.sort_by(|a, b| {
            (a.server.created_at, &a.server.id).cmp(&(b.server.created_at, &b.server.id))
        });
        Ok(all)
    }

    async fn servers_with_state(
        &self,
        filter: &ServerFilter,
        page: &Page,
    ) -> StoreResult<Vec<ServerWithState>> {
        let mut st = Statement::new(format!("{SERVER_WITH_STATE} WHERE 1 = 1"));
        if let Some((t, id)) = &page.after {
            st = st
                .push(" AND (s.created_at > ? OR (s.created_at = ? AND s.id > ?))")
                .bind(*t)
                .bind(*t)
                .bind(id);
        }
        if let Some(status) = filter.status {
            st = st
                .push(&format!(" AND {STATUS_OF} = ?"))
                .bind(status.as_str());
        }
        if let Some(tag) = &filter.tag {
            st = st
                .push(&format!(" AND {TAGS_AS_LIST} LIKE ? ESCAPE '!'"))
                .bind(tag_pattern(tag));
        }
        if let Some(ids) = &filter.ids {
            st = st.push(&format!(" AND s.id IN ({})", marks(ids.len())));
            st = ids.iter().fold(st, |st, id| st.bind(id));
            if ids.is_empty() {
                st = st.bind("");
            }
            st.reuse = false;
        }
        let st = st
            .push(" ORDER BY s.created_at, s.id LIMIT ?")
            .bind(i64::from(page.limit));
        let rows = self.rows(st).await?;
        let mut out = rows
            .iter()
            .map(server_with_state::<D>)
            .collect::<StoreResult<Vec<_>>>()?;
        self.attach_regions(&mut out).await?;
        Ok(out)
    }

    async fn count_by_status(&self) -> StoreResult<Vec<(ServerStatus, i64)>> {
        let sql = format!(
            "SELECT {STATUS_OF}, COUNT(*) FROM servers s \
             LEFT JOIN server_state t ON t.server_id = s.id GROUP BY 1"
        );
        let counts: Vec<(String, i64)> = self.all(Statement::new(sql)).await?;
        counts
            .into_iter()
            .map(|(status, n)| Ok((status.parse().map_err(StoreError::Corrupt)?, n)))
            .collect()
    }

    async fn set_server_state(&self, server_id: &str, s: &ServerState) -> StoreResult<()> {
        let mut w = BatchWrites::default();
        w.server_states.push((server_id.to_string(), s.clone()));
        self.commit_batch(&w).await
    }

    async fn commit_batch(&self, w: &BatchWrites) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        Self::write_facts(&mut tx, w).await?;
        let Some(fence) = &w.fence else {
            Self::write_decisions(&mut tx, w).await?;
            return Ok(tx.commit().await?);
        };
        let decided = w.decided_servers();
        let needed: BTreeSet<u16> = decided
            .iter()
            .map(|id| crate::shard::bucket_of(id))
            .collect();
        let lost = Self::buckets_lost(&mut tx, fence, &needed).await?;
        let not_ours = |id: &str| lost.contains(&crate::shard::bucket_of(id));
        if lost.is_empty() {
            Self::write_decisions(&mut tx, w).await?;
            return Ok(tx.commit().await?);
        }
        // Cut off and replaced meanwhile: the results are facts, the decisions about servers
        // of the buckets that moved belong to their new owner.
        let mut kept = w.clone();
        kept.drop_decisions_of(not_ours);
        tracing::warn!(
            buckets = lost.len(),
            results = w.results.len(),
            dropped_events = w.events.len() - kept.events.len(),
            "buckets moved while these results waited: stored as facts, their state changes and alerts dropped"
        );
        Self::write_decisions(&mut tx, &kept).await?;
        Ok(tx.commit().await?)
    }

    async fn list_results(&self, q: &ResultQuery) -> StoreResult<Vec<ResultRecord>> {
        let mut st = Statement::new(format!(
            "SELECT {RESULT_COLS} FROM probe_results WHERE server_id = ?"
        ))
        .bind(&q.server_id);
        if let Some(since) = q.since {
            st = st.push(" AND started_at >= ?").bind(since);
        }
        if let Some(until) = q.until {
            st = st.push(" AND started_at < ?").bind(until);
        }
        if let Some(region) = &q.region {
            st = st.push(" AND region = ?").bind(region);
        }
        self.all(newest_first(st, &q.page, "started_at")).await
    }

    async fn last_result(&self, server_id: &str) -> StoreResult<Option<ResultRecord>> {
        let sql = format!(
            "SELECT {RESULT_COLS} FROM probe_results WHERE server_id = ? \
             ORDER BY started_at DESC, id DESC LIMIT 1"
        );
        self.first(Statement::new(sql).bind(server_id)).await
    }

    async fn contract_state(&self, server_id: &str) -> StoreResult<Vec<(String, String)>> {
        let st = Statement::new("SELECT kind, hash FROM contract_state WHERE server_id = ?")
            .bind(server_id);
        self.all(st).await
    }

    async fn get_contract_snapshot(
        &self,
        server_id: &str,
        kind: &str,
        hash: &str,
    ) -> StoreResult<Option<serde_json::Value>> {
        let st = Statement::new(
            "SELECT items FROM contract_snapshots WHERE server_id = ? AND kind = ? AND hash = ?",
        )
        .bind(server_id)
        .bind(kind)
        .bind(hash);
        let Some((text,)) = self.first::<(String,)>(st).await? else {
            return Ok(None);
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| StoreError::Database(format!("contract snapshot is not JSON: {e}")))
    }

    async fn get_snapshot(
        &self,
        server_id: &str,
        hash: &str,
    ) -> StoreResult<Option<SnapshotRecord>> {
        let st = Statement::new("SELECT * FROM schema_snapshots WHERE server_id = ? AND hash = ?")
            .bind(server_id)
            .bind(hash);
        self.first(st).await
    }

    async fn list_schema_changes(&self, server_id: &str) -> StoreResult<Vec<SchemaChangeRecord>> {
        let st = Statement::new(
            "SELECT * FROM schema_changes WHERE server_id = ? ORDER BY at DESC, to_hash DESC",
        )
        .bind(server_id);
        self.all(st).await
    }

    async fn schema_changes_since(&self, since: i64) -> StoreResult<Vec<SchemaChangeRecord>> {
        let st = Statement::new(
            "SELECT * FROM schema_changes WHERE at >= ? AND from_hash IS NOT NULL \
             ORDER BY at DESC, to_hash DESC",
        )
        .bind(since);
        self.all(st).await
    }

    async fn list_snapshots(&self, server_id: &str) -> StoreResult<Vec<SnapshotRecord>> {
        let st = Statement::new(
            "SELECT * FROM schema_snapshots WHERE server_id = ? ORDER BY first_seen DESC, hash DESC",
        )
        .bind(server_id);
        self.all(st).await
    }

    async fn list_incidents(
        &self,
        server_id: Option<&str>,
        page: &Page,
    ) -> StoreResult<Vec<IncidentRecord>> {
        let st = Statement::new("SELECT * FROM incidents WHERE 1 = 1");
        let st = match server_id {
            Some(id) => st.push(" AND server_id = ?").bind(id),
            None => st,
        };
        self.all(newest_first(st, page, "opened_at")).await
    }

    async fn list_events(
        &self,
        server_id: Option<&str>,
        kind: Option<&str>,
        page: &Page,
    ) -> StoreResult<Vec<EventRecord>> {
        let mut st = Statement::new("SELECT * FROM events WHERE 1 = 1");
        if let Some(id) = server_id {
            st = st.push(" AND server_id = ?").bind(id);
        }
        if let Some(kind) = kind {
            st = st.push(" AND type = ?").bind(kind);
        }
        self.all(newest_first(st, page, "at")).await
    }

    async fn insert_key(&self, k: &ApiKeyRecord) -> StoreResult<()> {
        let st = Statement::new(
            "INSERT INTO api_keys (id, name, prefix, hash, scopes, created_at, last_used_at, region) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&k.id)
        .bind(&k.name)
        .bind(&k.prefix)
        .bind(&k.hash)
        .bind(to_json(&k.scopes))
        .bind(k.created_at)
        .bind(k.last_used_at)
        .bind(&k.region);
        self.run(st).await?;
        Ok(())
    }

    async fn find_key(&self, hash: &str) -> StoreResult<Option<ApiKeyRecord>> {
        self.first(Statement::new("SELECT * FROM api_keys WHERE hash = ?").bind(hash))
            .await
    }

    async fn list_keys(&self) -> StoreResult<Vec<ApiKeyRecord>> {
        self.all(Statement::new(
            "SELECT * FROM api_keys ORDER BY created_at, id",
        ))
        .await
    }

    async fn delete_key(&self, id: &str) -> StoreResult<bool> {
        let n = self
            .run(Statement::new("DELETE FROM api_keys WHERE id = ?").bind(id))
            .await?;
        Ok(n > 0)
    }

    async fn touch_key(&self, id: &str, at: i64) -> StoreResult<()> {
        let st = Statement::new("UPDATE api_keys SET last_used_at = ? WHERE id = ?")
            .bind(at)
            .bind(id);
        self.run(st).await?;
        Ok(())
    }

    async fn insert_channel(&self, c: &ChannelRecord) -> StoreResult<()> {
        self.write_channel(c, true).await
    }

    async fn update_channel(&self, c: &ChannelRecord) -> StoreResult<()> {
        self.write_channel(c, false).await
    }

    async fn delete_channel(&self, id: &str) -> StoreResult<bool> {
        self.delete_with_children(CHANNEL_CHILDREN, "channels", id)
            .await
    }

    async fn get_channel(&self, id: &str) -> StoreResult<Option<ChannelRecord>> {
        self.first(Statement::new("SELECT * FROM channels WHERE id = ?").bind(id))
            .await
    }

    async fn list_channels(&self) -> StoreResult<Vec<ChannelRecord>> {
        self.all(Statement::new(
            "SELECT * FROM channels ORDER BY created_at, id",
        ))
        .await
    }

    async fn get_event(&self, id: &str) -> StoreResult<Option<EventRecord>> {
        self.first(Statement::new("SELECT * FROM events WHERE id = ?").bind(id))
            .await
    }

    async fn claim_deliveries(
        &self,
        now: i64,
        lease_until: i64,
        limit: u32,
    ) -> StoreResult<Vec<DeliveryRecord>> {
        let st = claim_due::<D>("outbox", "*", now, lease_until, limit);
        self.all(st).await
    }

    async fn finish_delivery(&self, d: &DeliveryRecord, a: &AttemptRecord) -> StoreResult<()> {
        let attempt = Statement::new(
            "INSERT INTO delivery_attempts (id, delivery_id, at, http_status, error, duration_ms) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&a.id)
        .bind(&a.delivery_id)
        .bind(a.at)
        .bind(a.http_status)
        .bind(&a.error)
        .bind(a.duration_ms);
        let delivery = settle("outbox", d);
        let mut tx = self.begin().await?;
        run_in(&mut tx, attempt).await?;
        run_in(&mut tx, delivery).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_delivery(&self, id: &str) -> StoreResult<Option<DeliveryRecord>> {
        self.first(Statement::new("SELECT * FROM outbox WHERE id = ?").bind(id))
            .await
    }

    async fn list_deliveries(
        &self,
        channel_id: Option<&str>,
        status: Option<DeliveryStatus>,
        page: &Page,
    ) -> StoreResult<Vec<DeliveryRecord>> {
        let mut st = Statement::new("SELECT * FROM outbox WHERE 1 = 1");
        if let Some(channel) = channel_id {
            st = st.push(" AND channel_id = ?").bind(channel);
        }
        if let Some(status) = status {
            st = st.push(" AND status = ?").bind(status.as_str());
        }
        self.all(newest_first(st, page, "created_at")).await
    }

    async fn list_attempts(&self, delivery_id: &str) -> StoreResult<Vec<AttemptRecord>> {
        let st =
            Statement::new("SELECT * FROM delivery_attempts WHERE delivery_id = ? ORDER BY at, id")
                .bind(delivery_id);
        self.all(st).await
    }

    async fn recent_channel_attempts(
        &self,
        channel_id: &str,
        limit: u32,
    ) -> StoreResult<Vec<AttemptRecord>> {
        let st = Statement::new(
            "SELECT a.* FROM delivery_attempts a JOIN outbox o ON o.id = a.delivery_id \
             WHERE o.channel_id = ? ORDER BY a.at DESC, a.id DESC LIMIT ?",
        )
        .bind(channel_id)
        .bind(i64::from(limit));
        self.all(st).await
    }

    async fn requeue_delivery(&self, id: &str, now: i64) -> StoreResult<bool> {
        let st = Statement::new(
            "UPDATE outbox SET status = 'pending', next_attempt_at = ?, lease_until = NULL \
             WHERE id = ? AND status = 'dead'",
        )
        .bind(now)
        .bind(id);
        Ok(self.run(st).await? > 0)
    }

    async fn last_reminder(&self, channel_id: &str, incident_id: &str) -> StoreResult<Option<i64>> {
        let st = Statement::new(
            "SELECT last_sent_at FROM reminders WHERE channel_id = ? AND incident_id = ?",
        )
        .bind(channel_id)
        .bind(incident_id);
        Ok(self.first::<(i64,)>(st).await?.map(|(at,)| at))
    }

    async fn insert_window(&self, w: &WindowRecord) -> StoreResult<()> {
        self.run(window_row(w, true)).await?;
        Ok(())
    }

    async fn list_windows(&self) -> StoreResult<Vec<WindowRecord>> {
        let st = Statement::new("SELECT * FROM maintenance_windows ORDER BY created_at, id");
        self.all(st).await
    }

    async fn delete_window(&self, id: &str) -> StoreResult<bool> {
        self.delete_with_children(WINDOW_CHILDREN, "maintenance_windows", id)
            .await
    }

    async fn apply_monitors(&self, w: &MonitorWrites) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        write_monitors(&mut tx, w).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn due_held(&self, now: i64) -> StoreResult<Vec<HeldRecord>> {
        let st = Statement::new(
            "SELECT * FROM maintenance_held WHERE summarized = ? AND occurrence_end <= ? \
             ORDER BY occurrence_end LIMIT 500",
        )
        .bind(false)
        .bind(now);
        self.all(st).await
    }

    async fn pending_deliveries(&self) -> StoreResult<i64> {
        let st =
            Statement::new("SELECT COUNT(*) FROM outbox WHERE status IN ('pending', 'sending')");
        Ok(self.first::<(i64,)>(st).await?.map_or(0, |(n,)| n))
    }
}

/// Claim the due rows of an outbox-shaped table (`outbox`, `notices`) until `lease_until`:
/// pending ones whose time has come, and ones whose sender's lease ran out. On Postgres,
/// rows another dispatcher holds are skipped.
pub(super) fn claim_due<D: Dialect>(
    table: &str,
    returning: &str,
    now: i64,
    lease_until: i64,
    limit: u32,
) -> Statement<'static> {
    let sql = format!(
        "UPDATE {table} SET status = 'sending', lease_until = ? WHERE id IN \
         (SELECT id FROM {table} WHERE (status = 'pending' AND next_attempt_at <= ?) \
         OR (status = 'sending' AND lease_until < ?) ORDER BY next_attempt_at, id LIMIT ? {}) \
         RETURNING {returning}",
        D::CLAIM_LOCK
    );
    Statement::new(sql)
        .bind(lease_until)
        .bind(now)
        .bind(now)
        .bind(i64::from(limit))
}

/// Record an attempt's outcome on a row of an outbox-shaped table, releasing its lease.
pub(super) fn settle<'a>(table: &str, d: &'a DeliveryRecord) -> Statement<'a> {
    Statement::new(format!(
        "UPDATE {table} SET status = ?, attempts = ?, next_attempt_at = ?, lease_until = NULL, \
         last_status = ?, last_error = ?, delivered_at = ? WHERE id = ?"
    ))
    .bind(d.status.as_str())
    .bind(d.attempts)
    .bind(d.next_attempt_at)
    .bind(d.last_status)
    .bind(&d.last_error)
    .bind(d.delivered_at)
    .bind(&d.id)
}

/// The key of the transaction-scoped advisory lock that serializes migrating replicas.
const MIGRATION_LOCK: i64 = 0x6d63_7077_6174_6368; // "mcpwatch"

/// Apply the pending Postgres migrations, all in one transaction under a transaction-scoped
/// advisory lock, bookkept in sqlx's own `_sqlx_migrations` table (so databases migrated by
/// earlier versions, which used sqlx's migrator, carry on). Hand-written because sqlx's
/// migrator holds a session-level lock across several transactions, which a transaction
/// pooler breaks (the unlock lands on another session and the lock stays held); here a crash
/// or a concurrent replica leaves either every migration applied or none.
pub(super) async fn migrate_postgres(conns: &PgConnections) -> StoreResult<()> {
    let failed = |e: sqlx::Error| StoreError::Migration(super::pooler::explain(&e));
    let mut tx = conns.begin().await.map_err(StoreError::from)?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *tx)
        .await
        .map_err(failed)?;
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS _sqlx_migrations (
            version BIGINT PRIMARY KEY,
            description TEXT NOT NULL,
            installed_on TIMESTAMPTZ NOT NULL DEFAULT now(),
            success BOOLEAN NOT NULL,
            checksum BYTEA NOT NULL,
            execution_time BIGINT NOT NULL
        )",
    )
    .execute(&mut *tx)
    .await
    .map_err(failed)?;
    let applied: Vec<(i64, bool, Vec<u8>)> =
        sqlx::query_as("SELECT version, success, checksum FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&mut *tx)
            .await
            .map_err(failed)?;
    check_applied(&applied)?;
    for m in POSTGRES_MIGRATIONS.iter() {
        if applied.iter().any(|(v, _, _)| *v == m.version) {
            continue;
        }
        let started = std::time::Instant::now();
        sqlx::raw_sql(m.sql.clone())
            .execute(&mut *tx)
            .await
            .map_err(|e| {
                let e = super::pooler::explain(&e);
                StoreError::Migration(format!("{} {}: {e}", m.version, m.description))
            })?;
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES ($1, $2, TRUE, $3, $4)",
        )
        .bind(m.version)
        .bind(&*m.description)
        .bind(&*m.checksum)
        .bind(started.elapsed().as_nanos() as i64)
        .execute(&mut *tx)
        .await
        .map_err(failed)?;
    }
    tx.commit().await.map_err(failed)
}

/// Every applied migration must be one of ours, whole and unchanged.
fn check_applied(applied: &[(i64, bool, Vec<u8>)]) -> StoreResult<()> {
    for (version, success, checksum) in applied {
        let Some(ours) = POSTGRES_MIGRATIONS.iter().find(|m| m.version == *version) else {
            return Err(StoreError::Migration(format!(
                "the database has migration {version}, which this mcpwatch does not know \
                 (a newer version migrated it)"
            )));
        };
        if !success {
            return Err(StoreError::Migration(format!(
                "migration {version} ({}) failed part-way before; restore the database",
                ours.description
            )));
        }
        if *checksum != *ours.checksum {
            return Err(StoreError::Migration(format!(
                "migration {version} ({}) was changed after it was applied",
                ours.description
            )));
        }
    }
    Ok(())
}

impl SqliteStore {
    /// Open (creating) a SQLite file: WAL journal, foreign keys on, a busy timeout.
    pub async fn open(path: &Path) -> StoreResult<Self> {
        ensure_parent(path)?;
        create_private(path)?;
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
            .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5))
            // 32 MiB of page cache per connection (the default is 2 MiB): the status page's
            // reads and the ingest's index lookups stay in memory on a large database.
            .pragma("cache_size", "-32768");
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .map_err(|e| {
                StoreError::Database(format!(
                    "cannot open SQLite database {}: {e}",
                    path.display()
                ))
            })?;
        Ok(SqlStore { pool })
    }
}

/// The database file and its WAL hold probe results and sealed secrets: readable by the owner
/// only. SQLite gives the `-wal` and `-shm` files the mode of the database file, so creating
/// (or tightening) the file before SQLite opens it covers all three.
fn create_private(path: &Path) -> StoreResult<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let fail = |source: std::io::Error| StoreError::File {
        what: format!("cannot create SQLite database {}", path.display()),
        source,
    };
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(fail)?;
    for suffix in ["", "-wal", "-shm"] {
        let file = PathBuf::from(format!("{}{suffix}", path.display()));
        if file.exists() {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
                .map_err(fail)?;
        }
    }
    Ok(())
}

impl PostgresStore {
    /// Connect a pool. Connections are held per query, never per probe.
    pub async fn connect(url: &str, max_connections: u32) -> StoreResult<Self> {
        let (url, pooler) = super::pooler::split_pooler(url)?;
        let options: sqlx::postgres::PgConnectOptions = url.parse().map_err(|e| {
            StoreError::Database(format!(
                "DATABASE_URL is not a Postgres URL: {}",
                crate::secrets::redact_url_password(&format!("{e}"))
            ))
        })?;
        // One plain connection first: the pool would retry until its acquire timeout and then
        // say only "pool timed out", hiding refused, DNS and authentication errors.
        let where_ = format!("{}:{}", options.get_host(), options.get_port());
        let first = tokio::time::timeout(
            Duration::from_secs(10),
            <sqlx::PgConnection as sqlx::Connection>::connect_with(&options),
        )
        .await;
        let cannot = |why: String| {
            StoreError::Database(format!(
                "cannot connect to Postgres at {where_}: {}",
                crate::secrets::redact_url_password(&why)
            ))
        };
        match first {
            Err(_) => return Err(cannot("no answer within 10 s".into())),
            Ok(Err(e)) => return Err(cannot(connect_cause(&e))),
            Ok(Ok(conn)) => {
                let _ = sqlx::Connection::close(conn).await;
            }
        }
        let port = options.get_port();
        let options = match pooler {
            Pooler::Direct => options,
            // A cached statement would be missing on the next session (see `pooler.rs`).
            Pooler::Transaction => options.statement_cache_capacity(0),
        };
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .after_connect(move |_, _| {
                Box::pin(async move {
                    super::nodelay::set_on_connections_to(port);
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(|e| cannot(e.to_string()))?;
        Ok(SqlStore {
            pool: PgConnections::new(pool, pooler),
        })
    }
}

/// The cause of a failed connection in words: the I/O error (refused, DNS) or the server's
/// own message (authentication, unknown database).
fn connect_cause(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            "connection refused (is Postgres running and listening there?)".into()
        }
        sqlx::Error::Io(io) => format!("{io}"),
        sqlx::Error::Database(db) => db.message().to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_redacted_from_connection_errors() {
        assert_eq!(
            crate::secrets::redact_url_password("postgres://u:pw@h/db refused"),
            "postgres://***@h/db refused"
        );
    }
}
