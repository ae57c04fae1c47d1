//! The statements that write one server, channel or maintenance window, and that delete one
//! with the rows referring to it; shared by the single-object calls of the API and by a
//! monitors file's apply, which runs many of them in one transaction.

use sqlx::Transaction;

use super::batch::{self, SERVER_COLS};
use super::dialect::{Dialect, Exec};
use super::model::{ChannelRecord, MonitorWrites, ServerRecord, WindowRecord};
use super::sql::{rows_in, run_all};
use super::statement::{Statement, marks};
use super::{StoreError, StoreResult};

fn to_json(v: &impl serde::Serialize) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

/// Rows that refer to a server, removed (events kept, detached) before it.
pub(super) const SERVER_CHILDREN: &[&str] = &[
    "DELETE FROM probe_results WHERE server_id = ?",
    "DELETE FROM schema_snapshots WHERE server_id = ?",
    "DELETE FROM contract_snapshots WHERE server_id = ?",
    "DELETE FROM contract_state WHERE server_id = ?",
    "DELETE FROM region_state WHERE server_id = ?",
    "DELETE FROM server_state WHERE server_id = ?",
    "DELETE FROM incidents WHERE server_id = ?",
    "DELETE FROM slos WHERE server_id = ?",
    "DELETE FROM credential_warnings WHERE server_id = ?",
    "UPDATE events SET server_id = NULL WHERE server_id = ?",
];

/// A channel's deliveries and their attempts.
pub(super) const CHANNEL_CHILDREN: &[&str] = &[
    "DELETE FROM delivery_attempts WHERE delivery_id IN \
     (SELECT id FROM outbox WHERE channel_id = ?)",
    "DELETE FROM outbox WHERE channel_id = ?",
];

/// Alerts a window holds.
pub(super) const WINDOW_CHILDREN: &[&str] = &["DELETE FROM maintenance_held WHERE window_id = ?"];

/// Insert or update (by id) one server.
pub(super) fn server_row(s: &ServerRecord, insert: bool) -> Statement<'_> {
    let sql = if insert {
        format!("INSERT INTO servers ({SERVER_COLS}) VALUES ({})", marks(29))
    } else {
        "UPDATE servers SET id = ?, slug = ?, name = ?, url = ?, headers_enc = ?, \
         header_names = ?, interval_seconds = ?, timeout_seconds = ?, tags = ?, public = ?, \
         paused = ?, failures_to_down = ?, successes_to_up = ?, degraded_latency_ms = ?, \
         expect_auth = ?, era_hint = ?, created_at = ?, updated_at = ?, regions = ?, \
         quorum = ?, url_enc = ?, managed_by = ?, registry = ?, paused_reason = ?, oauth = ?, \
         oauth_enc = ?, bearer_expires_at = ?, calls = ?, list_contract = ? WHERE id = ?"
            .to_string()
    };
    let st = Statement::new(sql)
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
        .bind(&s.url_enc)
        .bind(&s.managed_by)
        .bind(&s.registry)
        .bind(&s.paused_reason)
        .bind(&s.oauth)
        .bind(&s.oauth_enc)
        .bind(s.bearer_expires_at)
        .bind(&s.calls)
        .bind(s.list_contract);
    if insert { st } else { st.bind(&s.id) }
}

/// A taken slug named as such.
pub(super) fn slug_conflict(e: StoreError, s: &ServerRecord) -> StoreError {
    match e {
        StoreError::Conflict(_) => StoreError::Conflict(format!("slug '{}'", s.slug)),
        other => other,
    }
}

/// Insert or update (by id) one channel.
pub(super) fn channel_row(c: &ChannelRecord, insert: bool) -> Statement<'_> {
    let sql = if insert {
        "INSERT INTO channels (name, kind, url, format, headers_enc, header_names, secret_enc, \
         recipients, server_ids, tags, events, enabled, disabled_reason, failing_since, \
         reminder_interval_seconds, managed_by, template, created_at, updated_at, drift, id) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    } else {
        "UPDATE channels SET name = ?, kind = ?, url = ?, format = ?, headers_enc = ?, \
         header_names = ?, secret_enc = ?, recipients = ?, server_ids = ?, tags = ?, \
         events = ?, enabled = ?, disabled_reason = ?, failing_since = ?, \
         reminder_interval_seconds = ?, managed_by = ?, template = ?, created_at = ?, \
         updated_at = ?, drift = ? WHERE id = ?"
    };
    Statement::new(sql)
        .bind(&c.name)
        .bind(c.kind.as_str())
        .bind(&c.url)
        .bind(&c.format)
        .bind(&c.headers_enc)
        .bind(to_json(&c.header_names))
        .bind(&c.secret_enc)
        .bind(to_json(&c.recipients))
        .bind(to_json(&c.server_ids))
        .bind(to_json(&c.tags))
        .bind(to_json(&c.events))
        .bind(c.enabled)
        .bind(&c.disabled_reason)
        .bind(c.failing_since)
        .bind(c.reminder_interval_seconds)
        .bind(&c.managed_by)
        .bind(&c.template)
        .bind(c.created_at)
        .bind(c.updated_at)
        .bind(to_json(&c.drift))
        .bind(&c.id)
}

/// Insert or update (by id) one maintenance window.
pub(super) fn window_row(w: &WindowRecord, insert: bool) -> Statement<'_> {
    let sql = if insert {
        "INSERT INTO maintenance_windows (name, server_ids, tags, starts_at, ends_at, cron, \
         duration_seconds, timezone, created_at, managed_by, id) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    } else {
        "UPDATE maintenance_windows SET name = ?, server_ids = ?, tags = ?, starts_at = ?, \
         ends_at = ?, cron = ?, duration_seconds = ?, timezone = ?, created_at = ?, \
         managed_by = ? WHERE id = ?"
    };
    Statement::new(sql)
        .bind(&w.name)
        .bind(to_json(&w.server_ids))
        .bind(to_json(&w.tags))
        .bind(w.starts_at)
        .bind(w.ends_at)
        .bind(&w.cron)
        .bind(w.duration_seconds)
        .bind(&w.timezone)
        .bind(w.created_at)
        .bind(&w.managed_by)
        .bind(&w.id)
}

/// Delete the row `id` of `table` and, first, its `children` (statements taking the id), in
/// `tx`. The parent row is locked first: a batch still writing results for a server (which
/// holds a key lock on it and then updates its states) finishes before any child is touched;
/// deleting the children first deadlocked with such a batch.
pub(super) async fn delete_in<D: Dialect>(
    tx: &mut Transaction<'static, D>,
    children: &[&str],
    table: &str,
    id: &str,
) -> StoreResult<bool> {
    let lock = format!("SELECT id FROM {table} WHERE id = ? {}", D::UPDATE_LOCK);
    rows_in(tx, &Statement::one_off(lock).bind(id)).await?;
    for child in children {
        D::execute(Exec::Tx(tx), &Statement::new(*child).bind(id)).await?;
    }
    let parent = Statement::one_off(format!("DELETE FROM {table} WHERE id = ?")).bind(id);
    Ok(D::execute(Exec::Tx(tx), &parent).await? > 0)
}

/// Everything a monitors file's apply writes, in `tx`: deletions first (channels and windows
/// before the servers they may name), then servers with their first states, then channels and
/// windows.
pub(super) async fn write_monitors<D: Dialect>(
    tx: &mut Transaction<'static, D>,
    w: &MonitorWrites,
) -> StoreResult<()> {
    for id in &w.channels_deleted {
        delete_in(tx, CHANNEL_CHILDREN, "channels", id).await?;
    }
    for id in &w.windows_deleted {
        delete_in(tx, WINDOW_CHILDREN, "maintenance_windows", id).await?;
    }
    for id in &w.servers_deleted {
        delete_in(tx, SERVER_CHILDREN, "servers", id).await?;
    }
    for (s, insert) in with_kind(&w.servers_created, &w.servers_changed) {
        let st = server_row(s, insert);
        D::execute(Exec::Tx(tx), &st)
            .await
            .map_err(|e| slug_conflict(e, s))?;
    }
    run_all(tx, batch::upsert_server_states(&w.first_states)).await?;
    for (c, insert) in with_kind(&w.channels_created, &w.channels_changed) {
        D::execute(Exec::Tx(tx), &channel_row(c, insert)).await?;
    }
    for (win, insert) in with_kind(&w.windows_created, &w.windows_changed) {
        D::execute(Exec::Tx(tx), &window_row(win, insert)).await?;
    }
    Ok(())
}

/// Created rows (insert) then changed ones (update).
fn with_kind<'a, T>(created: &'a [T], changed: &'a [T]) -> impl Iterator<Item = (&'a T, bool)> {
    created
        .iter()
        .map(|r| (r, true))
        .chain(changed.iter().map(|r| (r, false)))
}
