//! The SQL behind [`Store`], written once with `?` placeholders and expanded by `sql_store!`
//! into `SqliteStore` and `PostgresStore` (Postgres gets `$1, $2, …`). Columns use portable
//! types so one decoder serves both: TEXT, BIGINT, DOUBLE PRECISION, BOOLEAN.

use std::borrow::Cow;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::Row;
use sqlx::migrate::Migrator;

use super::batch::{self, Arg, RESULT_COLS, SERVER_COLS, Statement};
use super::model::*;
use super::pooler::{PgConnections, Pooler};
use super::rollup::RollupDeltas;
use super::{Store, StoreError, StoreResult, ensure_parent};
use crate::monitor::{RegionState, RegionStatus, ServerState, ServerStatus};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// Our dynamic SQL is assembled from constant fragments only; every value is a bound
/// parameter, never spliced in. That is what this marks for sqlx.
pub(super) fn audited(sql: &str) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(sql.to_string())
}

pub(super) fn sqlite_sql(sql: &str) -> Cow<'_, str> {
    Cow::Borrowed(sql)
}

/// `?` → `$1`, `$2`, … (our SQL never has `?` in a literal).
pub(super) fn postgres_sql(sql: &str) -> Cow<'_, str> {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut n = 0;
    for ch in sql.chars() {
        if ch == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(ch);
        }
    }
    Cow::Owned(out)
}

fn json_list(text: &str) -> StoreResult<Vec<String>> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("list column: {e}")))
}

fn to_json(v: &impl serde::Serialize) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

fn parse<T: FromStr<Err = String>>(s: &str) -> StoreResult<T> {
    s.parse().map_err(StoreError::Corrupt)
}

/// A server's status as the API shows it: paused by its flag, `unknown` before any state.
const STATUS_OF: &str = "CASE WHEN s.paused THEN 'paused' ELSE COALESCE(t.state, 'unknown') END";

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

/// The keyset clause for newest-first pages over (`time_col`, id).
fn before_clause(page: &Page, time_col: &str) -> String {
    match page.after {
        Some(_) => format!(" AND ({time_col} < ? OR ({time_col} = ? AND id < ?))"),
        None => String::new(),
    }
}

macro_rules! sql_store {
    ($store:ident, $db:ty, $pool:ty, $row:ty, $backend:literal, $conv:path, $migrator:expr, $migrate:path, $claim_lock:literal, $share_lock:literal) => {
        /// A [`Store`] on this backend.
        pub struct $store {
            pub(super) pool: $pool,
        }

        impl $store {
            pub(super) fn server(r: &$row) -> StoreResult<ServerRecord> {
                Ok(ServerRecord {
                    id: r.try_get("id")?,
                    slug: r.try_get("slug")?,
                    name: r.try_get("name")?,
                    url: r.try_get("url")?,
                    url_enc: r.try_get("url_enc")?,
                    headers_enc: r.try_get("headers_enc")?,
                    header_names: json_list(&r.try_get::<String, _>("header_names")?)?,
                    interval_seconds: r.try_get::<i64, _>("interval_seconds")? as u32,
                    timeout_seconds: r.try_get::<i64, _>("timeout_seconds")? as u32,
                    tags: json_list(&r.try_get::<String, _>("tags")?)?,
                    public: r.try_get("public")?,
                    paused: r.try_get("paused")?,
                    failures_to_down: r.try_get::<i64, _>("failures_to_down")? as u32,
                    successes_to_up: r.try_get::<i64, _>("successes_to_up")? as u32,
                    degraded_latency_ms: r.try_get::<Option<i64>, _>("degraded_latency_ms")?.map(|v| v as u64),
                    expect_auth: r.try_get("expect_auth")?,
                    era_hint: r.try_get("era_hint")?,
                    created_at: r.try_get("created_at")?,
                    updated_at: r.try_get("updated_at")?,
                    regions: json_list(&r.try_get::<String, _>("regions")?)?,
                    quorum: r.try_get::<Option<i64>, _>("quorum")?.map(|v| v as u32),
                })
            }

            pub(super) fn result(r: &$row) -> StoreResult<ResultRecord> {
                Ok(ResultRecord {
                    id: r.try_get("id")?,
                    server_id: r.try_get("server_id")?,
                    region: r.try_get("region")?,
                    started_at: r.try_get("started_at")?,
                    duration_ms: r.try_get("duration_ms")?,
                    dns_ms: r.try_get("dns_ms")?,
                    connect_ms: r.try_get("connect_ms")?,
                    tls_ms: r.try_get("tls_ms")?,
                    handshake_ms: r.try_get("handshake_ms")?,
                    tools_list_ms: r.try_get("tools_list_ms")?,
                    verdict: r.try_get("verdict")?,
                    failure_kind: r.try_get("failure_kind")?,
                    failure_phase: r.try_get("failure_phase")?,
                    failure_message: r.try_get("failure_message")?,
                    http_status: r.try_get("http_status")?,
                    jsonrpc_code: r.try_get("jsonrpc_code")?,
                    era: r.try_get("era")?,
                    protocol_version: r.try_get("protocol_version")?,
                    server_name: r.try_get("server_name")?,
                    server_version: r.try_get("server_version")?,
                    tool_count: r.try_get("tool_count")?,
                    schema_hash: r.try_get("schema_hash")?,
                    tls_not_after: r.try_get("tls_not_after")?,
                    vantage_unhealthy: r.try_get("vantage_unhealthy")?,
                })
            }

            pub(super) fn server_state(r: &$row) -> StoreResult<ServerState> {
                Ok(ServerState {
                    status: parse::<ServerStatus>(&r.try_get::<String, _>("state")?)?,
                    since: r.try_get("since")?,
                    schema_hash: r.try_get("schema_hash")?,
                    server_version: r.try_get("server_version")?,
                    protocol_version: r.try_get("protocol_version")?,
                    last_result_at: r.try_get("last_result_at")?,
                    open_incident_id: r.try_get("open_incident_id")?,
                })
            }

            /// A server row joined with its `server_state` columns (none before any result).
            pub(super) fn server_with_state(r: &$row) -> StoreResult<ServerWithState> {
                let state = match r.try_get::<Option<String>, _>("state")? {
                    Some(_) => Some(Self::server_state(r)?),
                    None => None,
                };
                Ok(ServerWithState { server: Self::server(r)?, state, regions: Vec::new() })
            }

            pub(super) fn region_state(r: &$row) -> StoreResult<RegionState> {
                Ok(RegionState {
                    region: r.try_get("region")?,
                    status: parse::<RegionStatus>(&r.try_get::<String, _>("state")?)?,
                    consecutive_failures: r.try_get::<i64, _>("consecutive_failures")? as u32,
                    consecutive_successes: r.try_get::<i64, _>("consecutive_successes")? as u32,
                    last_result_at: r.try_get("last_result_at")?,
                    last_verdict: r.try_get("last_verdict")?,
                    last_schema_hash: r.try_get("last_schema_hash")?,
                })
            }

            fn schema_change(r: &$row) -> StoreResult<SchemaChangeRecord> {
                Ok(SchemaChangeRecord {
                    server_id: r.try_get("server_id")?,
                    at: r.try_get("at")?,
                    from_hash: r.try_get("from_hash")?,
                    to_hash: r.try_get("to_hash")?,
                    class: r.try_get("class")?,
                    summary: r.try_get("summary")?,
                })
            }

            fn snapshot(r: &$row) -> StoreResult<SnapshotRecord> {
                let tools: String = r.try_get("tools")?;
                Ok(SnapshotRecord {
                    server_id: r.try_get("server_id")?,
                    hash: r.try_get("hash")?,
                    interface_hash: r.try_get("interface_hash")?,
                    tools: serde_json::from_str(&tools).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    first_seen: r.try_get("first_seen")?,
                    last_seen: r.try_get("last_seen")?,
                })
            }

            pub(super) fn incident(r: &$row) -> StoreResult<IncidentRecord> {
                Ok(IncidentRecord {
                    id: r.try_get("id")?,
                    server_id: r.try_get("server_id")?,
                    kind: r.try_get("kind")?,
                    cause: r.try_get("cause")?,
                    opened_at: r.try_get("opened_at")?,
                    closed_at: r.try_get("closed_at")?,
                })
            }

            fn event(r: &$row) -> StoreResult<EventRecord> {
                let payload: String = r.try_get("payload")?;
                Ok(EventRecord {
                    id: r.try_get("id")?,
                    server_id: r.try_get("server_id")?,
                    kind: r.try_get("type")?,
                    at: r.try_get("at")?,
                    payload: serde_json::from_str(&payload).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                })
            }

            fn key(r: &$row) -> StoreResult<ApiKeyRecord> {
                Ok(ApiKeyRecord {
                    id: r.try_get("id")?,
                    name: r.try_get("name")?,
                    prefix: r.try_get("prefix")?,
                    hash: r.try_get("hash")?,
                    scopes: json_list(&r.try_get::<String, _>("scopes")?)?,
                    created_at: r.try_get("created_at")?,
                    last_used_at: r.try_get("last_used_at")?,
                    region: r.try_get("region")?,
                })
            }

            fn channel(r: &$row) -> StoreResult<ChannelRecord> {
                Ok(ChannelRecord {
                    id: r.try_get("id")?,
                    name: r.try_get("name")?,
                    kind: r.try_get("kind")?,
                    url: r.try_get("url")?,
                    format: r.try_get("format")?,
                    headers_enc: r.try_get("headers_enc")?,
                    header_names: json_list(&r.try_get::<String, _>("header_names")?)?,
                    secret_enc: r.try_get("secret_enc")?,
                    recipients: json_list(&r.try_get::<String, _>("recipients")?)?,
                    server_ids: json_list(&r.try_get::<String, _>("server_ids")?)?,
                    tags: json_list(&r.try_get::<String, _>("tags")?)?,
                    events: json_list(&r.try_get::<String, _>("events")?)?,
                    enabled: r.try_get("enabled")?,
                    disabled_reason: r.try_get("disabled_reason")?,
                    failing_since: r.try_get("failing_since")?,
                    reminder_interval_seconds: r.try_get("reminder_interval_seconds")?,
                    created_at: r.try_get("created_at")?,
                    updated_at: r.try_get("updated_at")?,
                })
            }

            fn window(r: &$row) -> StoreResult<WindowRecord> {
                Ok(WindowRecord {
                    id: r.try_get("id")?,
                    name: r.try_get("name")?,
                    server_ids: json_list(&r.try_get::<String, _>("server_ids")?)?,
                    tags: json_list(&r.try_get::<String, _>("tags")?)?,
                    starts_at: r.try_get("starts_at")?,
                    ends_at: r.try_get("ends_at")?,
                    cron: r.try_get("cron")?,
                    duration_seconds: r.try_get("duration_seconds")?,
                    timezone: r.try_get("timezone")?,
                    created_at: r.try_get("created_at")?,
                })
            }

            fn delivery(r: &$row) -> StoreResult<DeliveryRecord> {
                Ok(DeliveryRecord {
                    id: r.try_get("id")?,
                    event_id: r.try_get("event_id")?,
                    channel_id: r.try_get("channel_id")?,
                    status: r.try_get("status")?,
                    attempts: r.try_get("attempts")?,
                    next_attempt_at: r.try_get("next_attempt_at")?,
                    lease_until: r.try_get("lease_until")?,
                    last_status: r.try_get("last_status")?,
                    last_error: r.try_get("last_error")?,
                    created_at: r.try_get("created_at")?,
                    delivered_at: r.try_get("delivered_at")?,
                })
            }

            fn attempt(r: &$row) -> StoreResult<AttemptRecord> {
                Ok(AttemptRecord {
                    id: r.try_get("id")?,
                    delivery_id: r.try_get("delivery_id")?,
                    at: r.try_get("at")?,
                    http_status: r.try_get("http_status")?,
                    error: r.try_get("error")?,
                    duration_ms: r.try_get("duration_ms")?,
                })
            }

            /// Run set-based statements in `tx`; the rows they return, in order. Their text
            /// depends on the row count, so they are not kept as prepared statements.
            /// Whether `fence` still holds the leadership lease; the row stays locked against
            /// a take-over until the transaction ends.
            async fn fence_holds(
                tx: &mut sqlx::Transaction<'static, $db>,
                fence: &Fence,
            ) -> StoreResult<bool> {
                let sql = $conv(concat!(
                    "SELECT term FROM leases WHERE name = 'leader' AND holder = ? AND term = ? ",
                    $share_lock
                ))
                .into_owned();
                let held = sqlx::query(audited(&sql))
                    .bind(&fence.holder)
                    .bind(fence.term)
                    .fetch_optional(&mut **tx)
                    .await?;
                Ok(held.is_some())
            }

            pub(super) async fn run_all(
                tx: &mut sqlx::Transaction<'static, $db>,
                stmts: Vec<Statement<'_>>,
            ) -> StoreResult<Vec<$row>> {
                let mut rows = Vec::new();
                for s in &stmts {
                    let sql = $conv(&s.sql).into_owned();
                    let mut q = sqlx::query(audited(&sql)).persistent(false);
                    for arg in &s.args {
                        q = match arg {
                            Arg::Text(v) => q.bind(v.as_deref()),
                            Arg::Int(v) => q.bind(*v),
                            Arg::Real(v) => q.bind(*v),
                            Arg::Bool(v) => q.bind(*v),
                        };
                    }
                    rows.extend(q.fetch_all(&mut **tx).await?);
                }
                Ok(rows)
            }

            /// Sightings of known tool lists move `last_seen`; only new lists are sent whole.
            async fn write_snapshots(
                tx: &mut sqlx::Transaction<'static, $db>,
                snapshots: &[SnapshotRecord],
                sightings: &[(String, String, i64)],
            ) -> StoreResult<()> {
                let merged = batch::merge_snapshots(snapshots);
                let touches = batch::latest_sightings(&merged, sightings);
                let mut known = HashSet::new();
                for row in Self::run_all(tx, batch::touch_snapshots(&touches)).await? {
                    known.insert((row.try_get::<String, _>("server_id")?, row.try_get::<String, _>("hash")?));
                }
                let new: Vec<&SnapshotRecord> = merged
                    .iter()
                    .filter(|s| !known.contains(&(s.server_id.clone(), s.hash.clone())))
                    .collect();
                Self::run_all(tx, batch::insert_snapshots(&new)).await?;
                Ok(())
            }

            /// Regions marked silent; one already silent (or heard from since) refuses the
            /// whole batch, so one replica, once, raises `region.silent`.
            async fn mark_regions_silent(
                tx: &mut sqlx::Transaction<'static, $db>,
                silent: &[(String, i64, i64)],
            ) -> StoreResult<()> {
                let marked: HashSet<String> = Self::run_all(tx, batch::mark_regions_silent(silent))
                    .await?
                    .iter()
                    .map(|r| r.try_get("name"))
                    .collect::<Result<_, _>>()?;
                match silent.iter().find(|(region, _, _)| !marked.contains(region)) {
                    Some((region, _, _)) => Err(StoreError::Conflict(format!("region {region} already silent"))),
                    None => Ok(()),
                }
            }

            async fn write_channel(&self, c: &ChannelRecord, insert: bool) -> StoreResult<()> {
                let sql = if insert {
                    $conv("INSERT INTO channels (name, kind, url, format, headers_enc, header_names, secret_enc, recipients, server_ids, tags, events, enabled, disabled_reason, failing_since, reminder_interval_seconds, created_at, updated_at, id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)").into_owned()
                } else {
                    $conv("UPDATE channels SET name = ?, kind = ?, url = ?, format = ?, headers_enc = ?, header_names = ?, secret_enc = ?, recipients = ?, server_ids = ?, tags = ?, events = ?, enabled = ?, disabled_reason = ?, failing_since = ?, reminder_interval_seconds = ?, created_at = ?, updated_at = ? WHERE id = ?").into_owned()
                };
                sqlx::query(audited(&sql))
                    .bind(&c.name).bind(&c.kind).bind(&c.url).bind(&c.format).bind(&c.headers_enc)
                    .bind(to_json(&c.header_names)).bind(&c.secret_enc).bind(to_json(&c.recipients))
                    .bind(to_json(&c.server_ids)).bind(to_json(&c.tags)).bind(to_json(&c.events))
                    .bind(c.enabled).bind(&c.disabled_reason).bind(c.failing_since).bind(c.reminder_interval_seconds).bind(c.created_at).bind(c.updated_at).bind(&c.id)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn write_server(&self, s: &ServerRecord, insert: bool) -> StoreResult<()> {
                let sql = if insert {
                    $conv(&format!("INSERT INTO servers ({SERVER_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")).into_owned()
                } else {
                    $conv("UPDATE servers SET id = ?, slug = ?, name = ?, url = ?, headers_enc = ?, header_names = ?, interval_seconds = ?, timeout_seconds = ?, tags = ?, public = ?, paused = ?, failures_to_down = ?, successes_to_up = ?, degraded_latency_ms = ?, expect_auth = ?, era_hint = ?, created_at = ?, updated_at = ?, regions = ?, quorum = ?, url_enc = ? WHERE id = ?").into_owned()
                };
                let mut q = sqlx::query(audited(&sql))
                    .bind(&s.id)
                    .bind(&s.slug)
                    .bind(&s.name)
                    .bind(&s.url)
                    .bind(&s.headers_enc)
                    .bind(to_json(&s.header_names))
                    .bind(i64::from(s.interval_seconds))
                    .bind(i64::from(s.timeout_seconds))
                    .bind(to_json(&s.tags))
                    .bind(s.public)
                    .bind(s.paused)
                    .bind(i64::from(s.failures_to_down))
                    .bind(i64::from(s.successes_to_up))
                    .bind(s.degraded_latency_ms.map(|v| v as i64))
                    .bind(s.expect_auth)
                    .bind(&s.era_hint)
                    .bind(s.created_at)
                    .bind(s.updated_at)
                    .bind(to_json(&s.regions))
                    .bind(s.quorum.map(i64::from))
                    .bind(&s.url_enc);
                if !insert {
                    q = q.bind(&s.id);
                }
                q.execute(&self.pool).await.map_err(|e| match StoreError::from(e) {
                    StoreError::Conflict(_) => StoreError::Conflict(format!("slug '{}'", s.slug)),
                    other => other,
                })?;
                Ok(())
            }
        }

        #[async_trait]
        impl Store for $store {
            fn backend(&self) -> &'static str {
                $backend
            }

            async fn migrate(&self) -> StoreResult<()> {
                $migrate(&self.pool).await
            }

            async fn ready(&self) -> StoreResult<()> {
                let sql = $conv("SELECT COUNT(*) AS n FROM _sqlx_migrations WHERE success = ?");
                let row = sqlx::query(audited(&sql)).bind(true).fetch_one(&self.pool).await?;
                let applied: i64 = row.try_get("n")?;
                let expected = $migrator.iter().count() as i64;
                if applied < expected {
                    return Err(StoreError::Migration(format!("{applied} of {expected} migrations applied")));
                }
                Ok(())
            }

            async fn close(&self) {
                self.pool.close().await;
            }

            async fn insert_server(&self, s: &ServerRecord) -> StoreResult<()> {
                self.write_server(s, true).await
            }

            async fn insert_servers(&self, servers: &[ServerRecord], states: &[(String, ServerState)]) -> StoreResult<()> {
                let mut tx = self.pool.begin().await?;
                Self::run_all(&mut tx, batch::insert_servers(servers)).await?;
                Self::run_all(&mut tx, batch::upsert_server_states(states)).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn slugs_taken(&self, slugs: &[String]) -> StoreResult<HashSet<String>> {
                let mut tx = self.pool.begin().await?;
                let rows = Self::run_all(&mut tx, batch::slugs_taken(slugs)).await?;
                tx.commit().await?;
                rows.iter().map(|r| r.try_get("slug").map_err(StoreError::from)).collect()
            }

            async fn update_server(&self, s: &ServerRecord) -> StoreResult<()> {
                self.write_server(s, false).await
            }

            async fn delete_server(&self, id: &str) -> StoreResult<bool> {
                let mut tx = self.pool.begin().await?;
                // Children first: SQLite enforces foreign keys per connection, Postgres always.
                for table in ["probe_results", "schema_snapshots", "region_state", "server_state", "incidents"] {
                    let sql = $conv(&format!("DELETE FROM {table} WHERE server_id = ?")).into_owned();
                    sqlx::query(audited(&sql)).bind(id).execute(&mut *tx).await?;
                }
                let sql = $conv("UPDATE events SET server_id = NULL WHERE server_id = ?");
                sqlx::query(audited(&sql)).bind(id).execute(&mut *tx).await?;
                let sql = $conv("DELETE FROM servers WHERE id = ?");
                let n = sqlx::query(audited(&sql)).bind(id).execute(&mut *tx).await?.rows_affected();
                tx.commit().await?;
                Ok(n > 0)
            }

            async fn get_server(&self, id_or_slug: &str) -> StoreResult<Option<ServerRecord>> {
                let sql = $conv(&format!("SELECT {SERVER_COLS} FROM servers WHERE id = ? OR slug = ?")).into_owned();
                let row = sqlx::query(audited(&sql)).bind(id_or_slug).bind(id_or_slug).fetch_optional(&self.pool).await?;
                row.as_ref().map(Self::server).transpose()
            }

            async fn list_servers(&self, page: &Page) -> StoreResult<Vec<ServerRecord>> {
                let cursor = if page.after.is_some() { " WHERE created_at > ? OR (created_at = ? AND id > ?)" } else { "" };
                let sql = $conv(&format!("SELECT {SERVER_COLS} FROM servers{cursor} ORDER BY created_at, id LIMIT ?")).into_owned();
                let mut q = sqlx::query(audited(&sql));
                if let Some((t, id)) = &page.after {
                    q = q.bind(*t).bind(*t).bind(id);
                }
                let rows = q.bind(i64::from(page.limit)).fetch_all(&self.pool).await?;
                rows.iter().map(Self::server).collect()
            }

            async fn all_servers(&self) -> StoreResult<Vec<ServerRecord>> {
                let sql = format!("SELECT {SERVER_COLS} FROM servers ORDER BY created_at, id");
                let rows = sqlx::query(audited(&sql)).fetch_all(&self.pool).await?;
                rows.iter().map(Self::server).collect()
            }

            async fn server_versions(&self, since: Option<i64>) -> StoreResult<Vec<(String, i64)>> {
                let sql = $conv("SELECT id, updated_at FROM servers WHERE updated_at >= ?");
                let rows = sqlx::query(audited(&sql)).bind(since.unwrap_or(i64::MIN)).fetch_all(&self.pool).await?;
                rows.iter().map(|r| Ok((r.try_get("id")?, r.try_get("updated_at")?))).collect()
            }

            async fn count_servers(&self) -> StoreResult<i64> {
                let row = sqlx::query("SELECT COUNT(*) AS n FROM servers").fetch_one(&self.pool).await?;
                Ok(row.try_get("n")?)
            }

            async fn servers_by_id(&self, ids: &[String]) -> StoreResult<Vec<ServerRecord>> {
                let mut out = Vec::with_capacity(ids.len());
                for chunk in ids.chunks(1000) {
                    let marks = vec!["?"; chunk.len()].join(", ");
                    let sql = $conv(&format!("SELECT {SERVER_COLS} FROM servers WHERE id IN ({marks})")).into_owned();
                    let q = chunk.iter().fold(sqlx::query(audited(&sql)).persistent(false), |q, id| q.bind(id));
                    for row in q.fetch_all(&self.pool).await? {
                        out.push(Self::server(&row)?);
                    }
                }
                Ok(out)
            }

            async fn load_state(&self, server_id: &str) -> StoreResult<(Option<ServerState>, Vec<RegionState>)> {
                let sql = $conv("SELECT * FROM server_state WHERE server_id = ?");
                let server = sqlx::query(audited(&sql)).bind(server_id).fetch_optional(&self.pool).await?;
                let sql = $conv("SELECT * FROM region_state WHERE server_id = ? ORDER BY region");
                let regions = sqlx::query(audited(&sql)).bind(server_id).fetch_all(&self.pool).await?;
                Ok((
                    server.as_ref().map(Self::server_state).transpose()?,
                    regions.iter().map(Self::region_state).collect::<StoreResult<_>>()?,
                ))
            }

            async fn all_states(&self) -> StoreResult<Vec<ServerWithState>> {
                let servers = self.all_servers().await?;
                let states = sqlx::query("SELECT * FROM server_state").fetch_all(&self.pool).await?;
                let regions = sqlx::query("SELECT * FROM region_state ORDER BY region").fetch_all(&self.pool).await?;
                let mut by_id: std::collections::HashMap<String, ServerWithState> = servers
                    .into_iter()
                    .map(|s| (s.id.clone(), ServerWithState { server: s, state: None, regions: Vec::new() }))
                    .collect();
                for row in &states {
                    let id: String = row.try_get("server_id")?;
                    if let Some(entry) = by_id.get_mut(&id) {
                        entry.state = Some(Self::server_state(row)?);
                    }
                }
                for row in &regions {
                    let id: String = row.try_get("server_id")?;
                    if let Some(entry) = by_id.get_mut(&id) {
                        entry.regions.push(Self::region_state(row)?);
                    }
                }
                let mut all: Vec<ServerWithState> = by_id.into_values().collect();
                all.sort_by(|a, b| (a.server.created_at, &a.server.id).cmp(&(b.server.created_at, &b.server.id)));
                Ok(all)
            }

            async fn servers_with_state(&self, filter: &ServerFilter, page: &Page) -> StoreResult<Vec<ServerWithState>> {
                let mut sql = String::from("SELECT s.*, t.state, t.since, t.schema_hash, t.server_version, t.protocol_version, t.last_result_at, t.open_incident_id FROM servers s LEFT JOIN server_state t ON t.server_id = s.id WHERE 1 = 1");
                if page.after.is_some() { sql.push_str(" AND (s.created_at > ? OR (s.created_at = ? AND s.id > ?))"); }
                if filter.status.is_some() { sql.push_str(&format!(" AND {STATUS_OF} = ?")); }
                if filter.tag.is_some() { sql.push_str(&format!(" AND {TAGS_AS_LIST} LIKE ? ESCAPE '!'")); }
                if let Some(ids) = &filter.ids { sql.push_str(&format!(" AND s.id IN ({})", vec!["?"; ids.len().max(1)].join(", "))); }
                sql.push_str(" ORDER BY s.created_at, s.id LIMIT ?");
                let sql = $conv(&sql).into_owned();
                let mut q = sqlx::query(audited(&sql)).persistent(filter.ids.is_none());
                if let Some((t, id)) = &page.after { q = q.bind(*t).bind(*t).bind(id); }
                if let Some(st) = filter.status { q = q.bind(st.as_str()); }
                if let Some(tag) = &filter.tag { q = q.bind(tag_pattern(tag)); }
                if let Some(ids) = &filter.ids {
                    q = ids.iter().fold(q, |q, id| q.bind(id));
                    if ids.is_empty() { q = q.bind(""); }
                }
                let rows = q.bind(i64::from(page.limit)).fetch_all(&self.pool).await?;
                let mut out = rows.iter().map(Self::server_with_state).collect::<StoreResult<Vec<_>>>()?;
                if out.is_empty() {
                    return Ok(out);
                }
                let marks = vec!["?"; out.len()].join(", ");
                let sql = $conv(&format!("SELECT * FROM region_state WHERE server_id IN ({marks}) ORDER BY region")).into_owned();
                let mut q = sqlx::query(audited(&sql)).persistent(false);
                for s in &out { q = q.bind(&s.server.id); }
                let mut at: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
                for (i, s) in out.iter().enumerate() { at.insert(s.server.id.clone(), i); }
                for row in q.fetch_all(&self.pool).await? {
                    let id: String = row.try_get("server_id")?;
                    if let Some(&i) = at.get(&id) { out[i].regions.push(Self::region_state(&row)?); }
                }
                Ok(out)
            }

            async fn count_by_status(&self) -> StoreResult<Vec<(ServerStatus, i64)>> {
                let sql = format!("SELECT {STATUS_OF} AS status, COUNT(*) AS n FROM servers s LEFT JOIN server_state t ON t.server_id = s.id GROUP BY 1");
                let rows = sqlx::query(audited(&sql)).fetch_all(&self.pool).await?;
                rows.iter()
                    .map(|r| Ok((parse::<ServerStatus>(&r.try_get::<String, _>("status")?)?, r.try_get("n")?)))
                    .collect()
            }

            async fn set_server_state(&self, server_id: &str, s: &ServerState) -> StoreResult<()> {
                let mut w = BatchWrites::default();
                w.server_states.push((server_id.to_string(), s.clone()));
                self.commit_batch(&w).await
            }

            async fn commit_batch(&self, w: &BatchWrites) -> StoreResult<()> {
                let mut tx = self.pool.begin().await?;
                let stored = Self::run_all(&mut tx, batch::insert_results(&w.results)).await?;
                let mut stored: HashSet<String> =
                    stored.iter().map(|r| r.try_get("id")).collect::<Result<_, _>>()?;
                // Only results stored now count (a re-sent one was counted when it was stored).
                // A result from a vantage point whose canaries failed says nothing about the
                // server: kept, but not counted.
                let mut rollups = RollupDeltas::default();
                for r in &w.results {
                    if stored.remove(&r.id) && !r.vantage_unhealthy {
                        rollups.add(r);
                    }
                }
                Self::write_rollups(&mut tx, &rollups).await?;
                Self::write_snapshots(&mut tx, &w.snapshots, &w.sightings).await?;
                Self::run_all(&mut tx, batch::set_era_hints(&w.era_hints)).await?;
                if let Some(fence) = &w.fence
                    && !Self::fence_holds(&mut tx, fence).await?
                {
                    // Cut off and replaced meanwhile: the results are facts, the decisions
                    // belong to the new leader.
                    tracing::warn!(
                        term = fence.term,
                        results = w.results.len(),
                        events = w.events.len(),
                        "leadership lost while these results waited: stored as facts, their state changes and alerts dropped"
                    );
                    tx.commit().await?;
                    return Ok(());
                }
                Self::run_all(&mut tx, batch::upsert_region_states(w)).await?;
                Self::run_all(&mut tx, batch::upsert_server_states(&w.server_states)).await?;
                Self::run_all(&mut tx, batch::insert_incidents(&w.incidents_opened)).await?;
                Self::run_all(&mut tx, batch::close_incidents(&w.incidents_closed)).await?;
                Self::run_all(&mut tx, batch::insert_schema_changes(&w.schema_changes)).await?;
                Self::run_all(&mut tx, batch::insert_events(&w.events)).await?;
                Self::run_all(&mut tx, batch::insert_outbox(&w.outbox)).await?;
                Self::run_all(&mut tx, batch::upsert_held(&w.held)).await?;
                Self::run_all(&mut tx, batch::mark_held_summarized(&w.held_summarized)).await?;
                Self::run_all(&mut tx, batch::upsert_reminders(&w.reminders)).await?;
                Self::mark_regions_silent(&mut tx, &w.region_silent).await?;
                Self::run_all(&mut tx, batch::set_channel_health(&w.channel_health)).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn list_results(&self, q: &ResultQuery) -> StoreResult<Vec<ResultRecord>> {
                let mut sql = format!("SELECT {RESULT_COLS} FROM probe_results WHERE server_id = ?");
                if q.since.is_some() { sql.push_str(" AND started_at >= ?"); }
                if q.until.is_some() { sql.push_str(" AND started_at < ?"); }
                if q.region.is_some() { sql.push_str(" AND region = ?"); }
                sql.push_str(&before_clause(&q.page, "started_at"));
                sql.push_str(" ORDER BY started_at DESC, id DESC LIMIT ?");
                let sql = $conv(&sql).into_owned();
                let mut query = sqlx::query(audited(&sql)).bind(&q.server_id);
                if let Some(v) = q.since { query = query.bind(v); }
                if let Some(v) = q.until { query = query.bind(v); }
                if let Some(v) = &q.region { query = query.bind(v); }
                if let Some((t, id)) = &q.page.after { query = query.bind(*t).bind(*t).bind(id); }
                let rows = query.bind(i64::from(q.page.limit)).fetch_all(&self.pool).await?;
                rows.iter().map(Self::result).collect()
            }

            async fn last_result(&self, server_id: &str) -> StoreResult<Option<ResultRecord>> {
                let sql = $conv(&format!("SELECT {RESULT_COLS} FROM probe_results WHERE server_id = ? ORDER BY started_at DESC, id DESC LIMIT 1")).into_owned();
                let row = sqlx::query(audited(&sql)).bind(server_id).fetch_optional(&self.pool).await?;
                row.as_ref().map(Self::result).transpose()
            }

            async fn get_snapshot(&self, server_id: &str, hash: &str) -> StoreResult<Option<SnapshotRecord>> {
                let sql = $conv("SELECT * FROM schema_snapshots WHERE server_id = ? AND hash = ?");
                let row = sqlx::query(audited(&sql)).bind(server_id).bind(hash).fetch_optional(&self.pool).await?;
                row.as_ref().map(Self::snapshot).transpose()
            }

            async fn list_schema_changes(&self, server_id: &str) -> StoreResult<Vec<SchemaChangeRecord>> {
                let sql = $conv("SELECT * FROM schema_changes WHERE server_id = ? ORDER BY at DESC, to_hash DESC");
                let rows = sqlx::query(audited(&sql)).bind(server_id).fetch_all(&self.pool).await?;
                rows.iter().map(Self::schema_change).collect()
            }

            async fn schema_changes_since(&self, since: i64) -> StoreResult<Vec<SchemaChangeRecord>> {
                let sql = $conv("SELECT * FROM schema_changes WHERE at >= ? AND from_hash IS NOT NULL ORDER BY at DESC, to_hash DESC");
                let rows = sqlx::query(audited(&sql)).bind(since).fetch_all(&self.pool).await?;
                rows.iter().map(Self::schema_change).collect()
            }

            async fn list_snapshots(&self, server_id: &str) -> StoreResult<Vec<SnapshotRecord>> {
                let sql = $conv("SELECT * FROM schema_snapshots WHERE server_id = ? ORDER BY first_seen DESC, hash DESC");
                let rows = sqlx::query(audited(&sql)).bind(server_id).fetch_all(&self.pool).await?;
                rows.iter().map(Self::snapshot).collect()
            }

            async fn list_incidents(&self, server_id: Option<&str>, page: &Page) -> StoreResult<Vec<IncidentRecord>> {
                let mut sql = String::from("SELECT * FROM incidents WHERE 1 = 1");
                if server_id.is_some() { sql.push_str(" AND server_id = ?"); }
                sql.push_str(&before_clause(page, "opened_at"));
                sql.push_str(" ORDER BY opened_at DESC, id DESC LIMIT ?");
                let sql = $conv(&sql).into_owned();
                let mut q = sqlx::query(audited(&sql));
                if let Some(id) = server_id { q = q.bind(id); }
                if let Some((t, id)) = &page.after { q = q.bind(*t).bind(*t).bind(id); }
                let rows = q.bind(i64::from(page.limit)).fetch_all(&self.pool).await?;
                rows.iter().map(Self::incident).collect()
            }

            async fn list_events(&self, server_id: Option<&str>, kind: Option<&str>, page: &Page) -> StoreResult<Vec<EventRecord>> {
                let mut sql = String::from("SELECT * FROM events WHERE 1 = 1");
                if server_id.is_some() { sql.push_str(" AND server_id = ?"); }
                if kind.is_some() { sql.push_str(" AND type = ?"); }
                sql.push_str(&before_clause(page, "at"));
                sql.push_str(" ORDER BY at DESC, id DESC LIMIT ?");
                let sql = $conv(&sql).into_owned();
                let mut q = sqlx::query(audited(&sql));
                if let Some(id) = server_id { q = q.bind(id); }
                if let Some(k) = kind { q = q.bind(k); }
                if let Some((t, id)) = &page.after { q = q.bind(*t).bind(*t).bind(id); }
                let rows = q.bind(i64::from(page.limit)).fetch_all(&self.pool).await?;
                rows.iter().map(Self::event).collect()
            }

            async fn insert_key(&self, k: &ApiKeyRecord) -> StoreResult<()> {
                let sql = $conv("INSERT INTO api_keys (id, name, prefix, hash, scopes, created_at, last_used_at, region) VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
                sqlx::query(audited(&sql))
                    .bind(&k.id).bind(&k.name).bind(&k.prefix).bind(&k.hash).bind(to_json(&k.scopes)).bind(k.created_at).bind(k.last_used_at).bind(&k.region)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn find_key(&self, hash: &str) -> StoreResult<Option<ApiKeyRecord>> {
                let sql = $conv("SELECT * FROM api_keys WHERE hash = ?");
                let row = sqlx::query(audited(&sql)).bind(hash).fetch_optional(&self.pool).await?;
                row.as_ref().map(Self::key).transpose()
            }

            async fn list_keys(&self) -> StoreResult<Vec<ApiKeyRecord>> {
                let rows = sqlx::query("SELECT * FROM api_keys ORDER BY created_at, id").fetch_all(&self.pool).await?;
                rows.iter().map(Self::key).collect()
            }

            async fn delete_key(&self, id: &str) -> StoreResult<bool> {
                let sql = $conv("DELETE FROM api_keys WHERE id = ?");
                Ok(sqlx::query(audited(&sql)).bind(id).execute(&self.pool).await?.rows_affected() > 0)
            }

            async fn touch_key(&self, id: &str, at: i64) -> StoreResult<()> {
                let sql = $conv("UPDATE api_keys SET last_used_at = ? WHERE id = ?");
                sqlx::query(audited(&sql)).bind(at).bind(id).execute(&self.pool).await?;
                Ok(())
            }

            async fn insert_channel(&self, c: &ChannelRecord) -> StoreResult<()> {
                self.write_channel(c, true).await
            }

            async fn update_channel(&self, c: &ChannelRecord) -> StoreResult<()> {
                self.write_channel(c, false).await
            }

            async fn delete_channel(&self, id: &str) -> StoreResult<bool> {
                let mut tx = self.pool.begin().await?;
                let sql = $conv("DELETE FROM delivery_attempts WHERE delivery_id IN (SELECT id FROM outbox WHERE channel_id = ?)");
                sqlx::query(audited(&sql)).bind(id).execute(&mut *tx).await?;
                let sql = $conv("DELETE FROM outbox WHERE channel_id = ?");
                sqlx::query(audited(&sql)).bind(id).execute(&mut *tx).await?;
                let sql = $conv("DELETE FROM channels WHERE id = ?");
                let n = sqlx::query(audited(&sql)).bind(id).execute(&mut *tx).await?.rows_affected();
                tx.commit().await?;
                Ok(n > 0)
            }

            async fn get_channel(&self, id: &str) -> StoreResult<Option<ChannelRecord>> {
                let sql = $conv("SELECT * FROM channels WHERE id = ?");
                let row = sqlx::query(audited(&sql)).bind(id).fetch_optional(&self.pool).await?;
                row.as_ref().map(Self::channel).transpose()
            }

            async fn list_channels(&self) -> StoreResult<Vec<ChannelRecord>> {
                let rows = sqlx::query("SELECT * FROM channels ORDER BY created_at, id").fetch_all(&self.pool).await?;
                rows.iter().map(Self::channel).collect()
            }

            async fn get_event(&self, id: &str) -> StoreResult<Option<EventRecord>> {
                let sql = $conv("SELECT * FROM events WHERE id = ?");
                let row = sqlx::query(audited(&sql)).bind(id).fetch_optional(&self.pool).await?;
                row.as_ref().map(Self::event).transpose()
            }

            async fn claim_deliveries(&self, now: i64, lease_until: i64, limit: u32) -> StoreResult<Vec<DeliveryRecord>> {
                let sql = $conv(&format!(
                    "UPDATE outbox SET status = 'sending', lease_until = ? WHERE id IN (SELECT id FROM outbox WHERE (status = 'pending' AND next_attempt_at <= ?) OR (status = 'sending' AND lease_until < ?) ORDER BY next_attempt_at, id LIMIT ? {}) RETURNING *",
                    $claim_lock
                ))
                .into_owned();
                let rows = sqlx::query(audited(&sql))
                    .bind(lease_until).bind(now).bind(now).bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(Self::delivery).collect()
            }

            async fn finish_delivery(&self, d: &DeliveryRecord, a: &AttemptRecord) -> StoreResult<()> {
                let mut tx = self.pool.begin().await?;
                let sql = $conv("INSERT INTO delivery_attempts (id, delivery_id, at, http_status, error, duration_ms) VALUES (?, ?, ?, ?, ?, ?)");
                sqlx::query(audited(&sql))
                    .bind(&a.id).bind(&a.delivery_id).bind(a.at).bind(a.http_status).bind(&a.error).bind(a.duration_ms)
                    .execute(&mut *tx)
                    .await?;
                let sql = $conv("UPDATE outbox SET status = ?, attempts = ?, next_attempt_at = ?, lease_until = NULL, last_status = ?, last_error = ?, delivered_at = ? WHERE id = ?");
                sqlx::query(audited(&sql))
                    .bind(&d.status).bind(d.attempts).bind(d.next_attempt_at).bind(d.last_status).bind(&d.last_error)
                    .bind(d.delivered_at).bind(&d.id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn get_delivery(&self, id: &str) -> StoreResult<Option<DeliveryRecord>> {
                let sql = $conv("SELECT * FROM outbox WHERE id = ?");
                let row = sqlx::query(audited(&sql)).bind(id).fetch_optional(&self.pool).await?;
                row.as_ref().map(Self::delivery).transpose()
            }

            async fn list_deliveries(&self, channel_id: Option<&str>, status: Option<&str>, page: &Page) -> StoreResult<Vec<DeliveryRecord>> {
                let mut sql = String::from("SELECT * FROM outbox WHERE 1 = 1");
                if channel_id.is_some() { sql.push_str(" AND channel_id = ?"); }
                if status.is_some() { sql.push_str(" AND status = ?"); }
                sql.push_str(&before_clause(page, "created_at"));
                sql.push_str(" ORDER BY created_at DESC, id DESC LIMIT ?");
                let sql = $conv(&sql).into_owned();
                let mut q = sqlx::query(audited(&sql));
                if let Some(c) = channel_id { q = q.bind(c); }
                if let Some(st) = status { q = q.bind(st); }
                if let Some((t, id)) = &page.after { q = q.bind(*t).bind(*t).bind(id); }
                let rows = q.bind(i64::from(page.limit)).fetch_all(&self.pool).await?;
                rows.iter().map(Self::delivery).collect()
            }

            async fn list_attempts(&self, delivery_id: &str) -> StoreResult<Vec<AttemptRecord>> {
                let sql = $conv("SELECT * FROM delivery_attempts WHERE delivery_id = ? ORDER BY at, id");
                let rows = sqlx::query(audited(&sql)).bind(delivery_id).fetch_all(&self.pool).await?;
                rows.iter().map(Self::attempt).collect()
            }

            async fn recent_channel_attempts(&self, channel_id: &str, limit: u32) -> StoreResult<Vec<AttemptRecord>> {
                let sql = $conv("SELECT a.* FROM delivery_attempts a JOIN outbox o ON o.id = a.delivery_id WHERE o.channel_id = ? ORDER BY a.at DESC, a.id DESC LIMIT ?");
                let rows = sqlx::query(audited(&sql)).bind(channel_id).bind(i64::from(limit)).fetch_all(&self.pool).await?;
                rows.iter().map(Self::attempt).collect()
            }

            async fn requeue_delivery(&self, id: &str, now: i64) -> StoreResult<bool> {
                let sql = $conv("UPDATE outbox SET status = 'pending', next_attempt_at = ?, lease_until = NULL WHERE id = ? AND status = 'dead'");
                Ok(sqlx::query(audited(&sql)).bind(now).bind(id).execute(&self.pool).await?.rows_affected() > 0)
            }

            async fn last_reminder(&self, channel_id: &str, incident_id: &str) -> StoreResult<Option<i64>> {
                let sql = $conv("SELECT last_sent_at FROM reminders WHERE channel_id = ? AND incident_id = ?");
                let row = sqlx::query(audited(&sql)).bind(channel_id).bind(incident_id).fetch_optional(&self.pool).await?;
                Ok(row.map(|r| r.try_get("last_sent_at")).transpose()?)
            }

            async fn insert_window(&self, w: &WindowRecord) -> StoreResult<()> {
                let sql = $conv("INSERT INTO maintenance_windows (id, name, server_ids, tags, starts_at, ends_at, cron, duration_seconds, timezone, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
                sqlx::query(audited(&sql))
                    .bind(&w.id).bind(&w.name).bind(to_json(&w.server_ids)).bind(to_json(&w.tags)).bind(w.starts_at).bind(w.ends_at)
                    .bind(&w.cron).bind(w.duration_seconds).bind(&w.timezone).bind(w.created_at)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn list_windows(&self) -> StoreResult<Vec<WindowRecord>> {
                let rows = sqlx::query("SELECT * FROM maintenance_windows ORDER BY created_at, id").fetch_all(&self.pool).await?;
                rows.iter().map(Self::window).collect()
            }

            async fn delete_window(&self, id: &str) -> StoreResult<bool> {
                let mut tx = self.pool.begin().await?;
                let sql = $conv("DELETE FROM maintenance_held WHERE window_id = ?");
                sqlx::query(audited(&sql)).bind(id).execute(&mut *tx).await?;
                let sql = $conv("DELETE FROM maintenance_windows WHERE id = ?");
                let n = sqlx::query(audited(&sql)).bind(id).execute(&mut *tx).await?.rows_affected();
                tx.commit().await?;
                Ok(n > 0)
            }

            async fn due_held(&self, now: i64) -> StoreResult<Vec<HeldRecord>> {
                let sql = $conv("SELECT * FROM maintenance_held WHERE summarized = ? AND occurrence_end <= ? ORDER BY occurrence_end LIMIT 500");
                let rows = sqlx::query(audited(&sql)).bind(false).bind(now).fetch_all(&self.pool).await?;
                rows.iter()
                    .map(|r| {
                        Ok(HeldRecord {
                            window_id: r.try_get("window_id")?,
                            occurrence_start: r.try_get("occurrence_start")?,
                            occurrence_end: r.try_get("occurrence_end")?,
                            server_id: r.try_get("server_id")?,
                            state_before: r.try_get("state_before")?,
                        })
                    })
                    .collect()
            }

            async fn pending_deliveries(&self) -> StoreResult<i64> {
                let row = sqlx::query("SELECT COUNT(*) AS n FROM outbox WHERE status IN ('pending', 'sending')").fetch_one(&self.pool).await?;
                Ok(row.try_get("n")?)
            }
        }
    };
}

// SQLite serializes writers, so a plain UPDATE … WHERE id IN (SELECT …) claims atomically;
// Postgres needs row locks, skipping those another dispatcher holds.
sql_store!(
    SqliteStore,
    sqlx::Sqlite,
    sqlx::SqlitePool,
    sqlx::sqlite::SqliteRow,
    "sqlite",
    sqlite_sql,
    SQLITE_MIGRATIONS,
    migrate_sqlite,
    "",
    ""
);
sql_store!(
    PostgresStore,
    sqlx::Postgres,
    PgConnections,
    sqlx::postgres::PgRow,
    "postgres",
    postgres_sql,
    POSTGRES_MIGRATIONS,
    migrate_postgres,
    "FOR UPDATE SKIP LOCKED",
    "FOR SHARE"
);

async fn migrate_sqlite(pool: &sqlx::SqlitePool) -> StoreResult<()> {
    SQLITE_MIGRATIONS
        .run(pool)
        .await
        .map_err(|e| StoreError::Migration(e.to_string()))
}

/// The key of the transaction-scoped advisory lock that serializes migrating replicas.
const MIGRATION_LOCK: i64 = 0x6d63_7077_6174_6368; // "mcpwatch"

/// Apply the pending Postgres migrations, all in one transaction under a transaction-scoped
/// advisory lock, bookkept in sqlx's own `_sqlx_migrations` table (so databases migrated by
/// earlier versions, which used sqlx's migrator, carry on). Hand-written because sqlx's
/// migrator holds a session-level lock across several transactions, which a transaction
/// pooler breaks (the unlock lands on another session and the lock stays held); here a crash
/// or a concurrent replica leaves either every migration applied or none.
async fn migrate_postgres(conns: &PgConnections) -> StoreResult<()> {
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
        Ok(SqliteStore { pool })
    }
}

/// The database file and its WAL hold probe results and sealed secrets: readable by the owner
/// only. SQLite gives the `-wal` and `-shm` files the mode of the database file, so creating
/// (or tightening) the file before SQLite opens it covers all three.
fn create_private(path: &Path) -> StoreResult<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let fail = |e: std::io::Error| {
        StoreError::Database(format!(
            "cannot create SQLite database {}: {e}",
            path.display()
        ))
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
        Ok(PostgresStore {
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
    use super::*;

    #[test]
    fn placeholders_are_numbered_for_postgres() {
        assert_eq!(
            postgres_sql("SELECT ? , ?, x = ?"),
            "SELECT $1 , $2, x = $3"
        );
        assert_eq!(sqlite_sql("SELECT ?"), "SELECT ?");
    }

    #[test]
    fn passwords_are_redacted_from_connection_errors() {
        assert_eq!(
            crate::secrets::redact_url_password("postgres://u:pw@h/db refused"),
            "postgres://***@h/db refused"
        );
    }
}
