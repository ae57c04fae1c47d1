//! `commit_batch` as a few set-based statements, written once for both backends.
//!
//! Each kind of write in a [`BatchWrites`] becomes one statement over a table of bound rows,
//! `(VALUES (…), (…)) AS v` (both SQLite and Postgres name its columns `column1`, `column2`, …),
//! instead of one statement per row: on Postgres a batch of 500 results was ~3,000 round trips
//! with the transaction idle in between. The builders here are plain functions from rows to
//! [`Statement`]s (SQL with `?` placeholders and the values to bind); the backends only run them.
//!
//! Rows that would touch the same key twice in one statement are merged first, because
//! Postgres refuses an `ON CONFLICT DO UPDATE` that affects a row twice.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};

use super::model::{
    BatchWrites, ContractSnapshot, ContractState, DeliveryRecord, EventRecord, HandoffRecord,
    HeldRecord, IncidentRecord, ResultRecord, SchemaChangeRecord, ServerRecord, SnapshotRecord,
};
use super::rollup::Rollup;
use super::statement::{Arg, Statement};
use crate::monitor::{RegionState, ServerState};
use crate::probe::{FailureKind, Phase, Verdict};

fn text(v: &str) -> Arg<'_> {
    Arg::Text(Some(Cow::Borrowed(v)))
}

fn opt_text<S: AsRef<str>>(v: &Option<S>) -> Arg<'_> {
    Arg::Text(v.as_ref().map(|s| Cow::Borrowed(s.as_ref())))
}

fn opt_name<T: Copy>(v: Option<T>, name: fn(T) -> &'static str) -> Arg<'static> {
    Arg::Text(v.map(|v| Cow::Borrowed(name(v))))
}

fn owned(v: String) -> Arg<'static> {
    Arg::Text(Some(Cow::Owned(v)))
}

fn int(v: i64) -> Arg<'static> {
    Arg::Int(Some(v))
}

/// Bound values per statement: under SQLite's limit (32,766) and Postgres' (65,535).
const MAX_ARGS: usize = 30_000;

/// Statements over `rows`, `cols` values each: `{values}` in `template` becomes
/// `VALUES (?, …), (?, …)`, in chunks that stay under [`MAX_ARGS`].
fn over_rows<'a, T: 'a>(
    template: &str,
    cols: usize,
    rows: impl IntoIterator<Item = T>,
    bind: impl Fn(T, &mut Vec<Arg<'a>>),
) -> Vec<Statement<'a>> {
    let per_chunk = (MAX_ARGS / cols).max(1);
    let tuple = format!("({})", vec!["?"; cols].join(", "));
    let mut out = Vec::new();
    let mut args = Vec::new();
    let mut n = 0;
    let mut flush = |args: &mut Vec<Arg<'a>>, n: &mut usize| {
        if *n > 0 {
            let values = format!("VALUES {}", vec![tuple.as_str(); *n].join(", "));
            // Their text depends on the row count: not kept as prepared statements.
            out.push(Statement {
                sql: template.replace("{values}", &values),
                args: std::mem::take(args),
                reuse: false,
            });
            *n = 0;
        }
    };
    for row in rows {
        bind(row, &mut args);
        n += 1;
        if n == per_chunk {
            flush(&mut args, &mut n);
        }
    }
    flush(&mut args, &mut n);
    out
}

/// The last entry per key, in first-seen key order (a later write of a key replaces it).
fn last_per_key<'a, T, K: std::hash::Hash + Eq>(
    items: &'a [T],
    key: impl Fn(&'a T) -> K,
) -> Vec<&'a T> {
    let mut at: HashMap<K, usize> = HashMap::new();
    let mut out: Vec<&T> = Vec::new();
    for item in items {
        match at.get(&key(item)) {
            Some(&i) => out[i] = item,
            None => {
                at.insert(key(item), out.len());
                out.push(item);
            }
        }
    }
    out
}

/// The first entry per key (a later one would have found the row already written).
fn first_per_key<'a, T, K: std::hash::Hash + Eq>(
    items: &'a [T],
    key: impl Fn(&'a T) -> K,
) -> Vec<&'a T> {
    let mut seen = HashSet::new();
    items.iter().filter(|i| seen.insert(key(i))).collect()
}

pub(super) const SERVER_COLS: &str = "id, slug, name, url, headers_enc, header_names, interval_seconds, timeout_seconds, tags, public, paused, failures_to_down, successes_to_up, degraded_latency_ms, expect_auth, era_hint, created_at, updated_at, regions, quorum, url_enc, managed_by, registry, paused_reason, oauth, oauth_enc, bearer_expires_at, calls, list_contract";

/// New servers (a bulk registration), in the column order of [`SERVER_COLS`].
pub(super) fn insert_servers(servers: &[ServerRecord]) -> Vec<Statement<'_>> {
    let template = format!("INSERT INTO servers ({SERVER_COLS}) {{values}}");
    let json = |v: &Vec<String>| owned(serde_json::to_string(v).unwrap_or_default());
    over_rows(&template, 29, servers, |s, a| {
        a.extend([text(&s.id), text(&s.slug), text(&s.name), text(&s.url)]);
        a.extend([opt_text(&s.headers_enc), json(&s.header_names)]);
        a.extend([
            int(i64::from(s.interval_seconds)),
            int(i64::from(s.timeout_seconds)),
        ]);
        a.extend([json(&s.tags), Arg::Bool(s.public), Arg::Bool(s.paused)]);
        a.extend([
            int(i64::from(s.failures_to_down)),
            int(i64::from(s.successes_to_up)),
        ]);
        a.extend([
            Arg::Int(s.degraded_latency_ms.map(|v| v as i64)),
            Arg::Bool(s.expect_auth),
        ]);
        a.extend([opt_text(&s.era_hint), int(s.created_at), int(s.updated_at)]);
        a.extend([
            json(&s.regions),
            Arg::Int(s.quorum.map(i64::from)),
            opt_text(&s.url_enc),
            opt_text(&s.managed_by),
            opt_text(&s.registry),
            opt_text(&s.paused_reason),
            opt_text(&s.oauth),
            opt_text(&s.oauth_enc),
            Arg::Int(s.bearer_expires_at),
            opt_text(&s.calls),
            Arg::Bool(s.list_contract),
        ]);
    })
}

/// Which of these slugs are taken.
pub(super) fn slugs_taken(slugs: &[String]) -> Vec<Statement<'_>> {
    over_rows(
        "SELECT slug FROM servers WHERE slug IN (SELECT * FROM ({values}) AS v)",
        1,
        slugs,
        |s, a| a.push(text(s)),
    )
}

pub(super) const RESULT_COLS: &str = "id, server_id, region, started_at, duration_ms, dns_ms, connect_ms, tls_ms, handshake_ms, tools_list_ms, verdict, failure_kind, failure_phase, failure_message, http_status, jsonrpc_code, era, protocol_version, server_name, server_version, tool_count, schema_hash, tls_not_after, vantage_unhealthy, trace_id, calls, stream, contract";

/// Results for another replica's servers; a result handed off twice is kept once.
pub(super) fn insert_handoff(rows: &[HandoffRecord]) -> Vec<Statement<'_>> {
    let template = "INSERT INTO handoff (id, bucket, server_id, payload, created_at) \
         SELECT * FROM ({values}) AS v ON CONFLICT (id) DO NOTHING";
    over_rows(template, 5, rows, |h, a| {
        a.extend([text(&h.id), int(i64::from(h.bucket)), text(&h.server_id)]);
        a.extend([text(&h.payload), int(h.created_at)]);
    })
}

/// New results; `RETURNING id` names those stored now (a re-sent result is skipped, and must
/// not be counted in the rollups again).
pub(super) fn insert_results(results: &[ResultRecord]) -> Vec<Statement<'_>> {
    let template = format!(
        "INSERT INTO probe_results ({RESULT_COLS}) SELECT * FROM ({{values}}) AS v \
         WHERE EXISTS (SELECT 1 FROM servers s WHERE s.id = v.column2) \
         ON CONFLICT (id) DO NOTHING RETURNING id"
    );
    over_rows(&template, 28, results, |r, a| {
        a.extend([
            text(&r.id),
            text(&r.server_id),
            text(&r.region),
            int(r.started_at),
        ]);
        a.extend([Arg::Real(Some(r.duration_ms)), Arg::Real(r.dns_ms)]);
        a.extend([
            Arg::Real(r.connect_ms),
            Arg::Real(r.tls_ms),
            Arg::Real(r.handshake_ms),
        ]);
        a.extend([
            Arg::Real(r.tools_list_ms),
            text(r.verdict.as_str()),
            opt_name(r.failure_kind, FailureKind::as_str),
        ]);
        a.extend([
            opt_name(r.failure_phase, Phase::as_str),
            opt_text(&r.failure_message),
        ]);
        a.extend([
            Arg::Int(r.http_status),
            Arg::Int(r.jsonrpc_code),
            opt_text(&r.era),
        ]);
        a.extend([opt_text(&r.protocol_version), opt_text(&r.server_name)]);
        a.extend([
            opt_text(&r.server_version),
            int(r.tool_count),
            opt_text(&r.schema_hash),
        ]);
        a.extend([Arg::Int(r.tls_not_after), Arg::Bool(r.vantage_unhealthy)]);
        a.extend([
            opt_text(&r.trace_id),
            opt_text(&r.calls),
            opt_text(&r.stream),
            opt_text(&r.contract),
        ]);
    })
}

/// Each region's state, with its last result's failure, latency and tool count riding along
/// (so the status page needs no raw results). A state whose last result is not in this batch
/// keeps the stored ones.
pub(super) fn upsert_region_states(w: &BatchWrites) -> Vec<Statement<'_>> {
    let last_of: HashMap<(&str, &str, i64), &ResultRecord> = w
        .results
        .iter()
        .map(|r| ((r.server_id.as_str(), r.region.as_str(), r.started_at), r))
        .collect();
    let keep = |col: &str| {
        format!(
            "{col} = CASE WHEN excluded.last_duration_ms IS NULL THEN region_state.{col} ELSE excluded.{col} END"
        )
    };
    let kept: Vec<String> = [
        "last_failure_kind",
        "last_failure_phase",
        "last_http_status",
        "last_jsonrpc_code",
        "last_duration_ms",
        "last_tool_count",
    ]
    .iter()
    .map(|c| keep(c))
    .collect();
    let template = format!(
        "INSERT INTO region_state (server_id, region, state, consecutive_failures, consecutive_successes, last_result_at, last_verdict, last_schema_hash, last_failure_kind, last_failure_phase, last_http_status, last_jsonrpc_code, last_duration_ms, last_tool_count) \
         SELECT * FROM ({{values}}) AS v WHERE EXISTS (SELECT 1 FROM servers s WHERE s.id = v.column1) \
         ON CONFLICT (server_id, region) DO UPDATE SET state = excluded.state, consecutive_failures = excluded.consecutive_failures, consecutive_successes = excluded.consecutive_successes, last_result_at = excluded.last_result_at, last_verdict = excluded.last_verdict, last_schema_hash = excluded.last_schema_hash, {}",
        kept.join(", ")
    );
    let rows = last_per_key(&w.region_states, |(id, r)| (id.as_str(), &*r.region));
    over_rows(&template, 14, rows, |(id, r): &(String, RegionState), a| {
        let last = r
            .last_result_at
            .and_then(|at| last_of.get(&(id.as_str(), &*r.region, at)).copied());
        a.extend([text(id), text(&r.region), text(r.status.as_str())]);
        a.extend([int(i64::from(r.consecutive_failures))]);
        a.extend([
            int(i64::from(r.consecutive_successes)),
            Arg::Int(r.last_result_at),
        ]);
        a.extend([
            opt_name(r.last_verdict, Verdict::as_str),
            opt_text(&r.last_schema_hash),
        ]);
        a.extend([opt_name(
            last.and_then(|l| l.failure_kind),
            FailureKind::as_str,
        )]);
        a.extend([opt_name(last.and_then(|l| l.failure_phase), Phase::as_str)]);
        a.extend([Arg::Int(last.and_then(|l| l.http_status))]);
        a.extend([Arg::Int(last.and_then(|l| l.jsonrpc_code))]);
        a.extend([
            Arg::Real(last.map(|l| l.duration_ms)),
            Arg::Int(last.map(|l| l.tool_count)),
        ]);
    })
}

pub(super) fn upsert_server_states(states: &[(String, ServerState)]) -> Vec<Statement<'_>> {
    let template = "INSERT INTO server_state (server_id, state, since, schema_hash, server_version, protocol_version, last_result_at, open_incident_id) \
         SELECT * FROM ({values}) AS v WHERE EXISTS (SELECT 1 FROM servers s WHERE s.id = v.column1) \
         ON CONFLICT (server_id) DO UPDATE SET state = excluded.state, since = excluded.since, schema_hash = excluded.schema_hash, server_version = excluded.server_version, protocol_version = excluded.protocol_version, last_result_at = excluded.last_result_at, open_incident_id = excluded.open_incident_id";
    let rows = last_per_key(states, |(id, _)| id.as_str());
    over_rows(template, 8, rows, |(id, s): &(String, ServerState), a| {
        a.extend([text(id), text(s.status.as_str()), int(s.since)]);
        a.extend([opt_text(&s.schema_hash), opt_text(&s.server_version)]);
        a.extend([opt_text(&s.protocol_version), Arg::Int(s.last_result_at)]);
        a.extend([opt_text(&s.open_incident_id)]);
    })
}

pub(super) fn insert_incidents(opened: &[IncidentRecord]) -> Vec<Statement<'_>> {
    let template = "INSERT INTO incidents (id, server_id, kind, cause, opened_at, closed_at) \
         SELECT * FROM ({values}) AS v WHERE EXISTS (SELECT 1 FROM servers s WHERE s.id = v.column2)";
    over_rows(template, 6, opened, |i, a| {
        a.extend([
            text(&i.id),
            text(&i.server_id),
            text(&i.kind),
            text(&i.cause),
        ]);
        a.extend([int(i.opened_at), Arg::Int(i.closed_at)]);
    })
}

/// Close incidents still open (the first close of an incident wins, as it would row by row).
pub(super) fn close_incidents(closed: &[(String, String, i64)]) -> Vec<Statement<'_>> {
    let template = "UPDATE incidents SET closed_at = v.column2 FROM ({values}) AS v \
         WHERE incidents.id = v.column1 AND incidents.closed_at IS NULL";
    let rows = first_per_key(closed, |(id, _, _)| id.as_str());
    over_rows(
        template,
        2,
        rows,
        |(id, _, at): &(String, String, i64), a| {
            a.extend([text(id), int(*at)]);
        },
    )
}

/// A sighting of a known tool list only moves its `last_seen`; the list itself (the bulk of
/// a snapshot) is sent only for (server, hash) pairs the first statement did not find.
pub(super) fn touch_snapshots<'a>(sightings: &[Sighting<'a>]) -> Vec<Statement<'a>> {
    let template = "UPDATE schema_snapshots SET last_seen = v.column3 FROM ({values}) AS v \
         WHERE server_id = v.column1 AND hash = v.column2 RETURNING server_id, hash";
    over_rows(
        template,
        3,
        sightings.iter().copied(),
        |(id, hash, at), a| {
            a.extend([text(id), text(hash), int(at)]);
        },
    )
}

/// (server id, hash, seen at).
pub(super) type Sighting<'a> = (&'a str, &'a str, i64);

/// The latest sighting per (server, hash), of the snapshots and the bare sightings alike (an
/// `UPDATE … FROM` that matches a row twice would keep either value).
pub(super) fn latest_sightings<'a>(
    snapshots: &'a [SnapshotRecord],
    sightings: &'a [(String, String, i64)],
) -> Vec<Sighting<'a>> {
    let all = snapshots
        .iter()
        .map(|s| (s.server_id.as_str(), s.hash.as_str(), s.last_seen))
        .chain(
            sightings
                .iter()
                .map(|(id, h, at)| (id.as_str(), h.as_str(), *at)),
        );
    let mut latest: HashMap<(&str, &str), i64> = HashMap::new();
    for (id, hash, at) in all {
        let seen = latest.entry((id, hash)).or_insert(at);
        *seen = (*seen).max(at);
    }
    latest
        .into_iter()
        .map(|((id, h), at)| (id, h, at))
        .collect()
}

pub(super) fn insert_snapshots<'a>(snapshots: &[&'a SnapshotRecord]) -> Vec<Statement<'a>> {
    let template = "INSERT INTO schema_snapshots (server_id, hash, interface_hash, tools, first_seen, last_seen) \
         SELECT * FROM ({values}) AS v WHERE EXISTS (SELECT 1 FROM servers s WHERE s.id = v.column1) \
         ON CONFLICT (server_id, hash) DO UPDATE SET last_seen = excluded.last_seen";
    over_rows(
        template,
        6,
        snapshots.iter().copied(),
        |s: &'a SnapshotRecord, a| {
            a.extend([text(&s.server_id), text(&s.hash), text(&s.interface_hash)]);
            a.extend([
                owned(s.tools.to_string()),
                int(s.first_seen),
                int(s.last_seen),
            ]);
        },
    )
}

/// Resource, template and prompt lists first seen (a list seen before is kept as it was).
pub(super) fn insert_contract_snapshots(rows: &[ContractSnapshot]) -> Vec<Statement<'_>> {
    let template = "INSERT INTO contract_snapshots (server_id, kind, hash, items, first_seen) \
         SELECT * FROM ({values}) AS v WHERE EXISTS (SELECT 1 FROM servers s WHERE s.id = v.column1) \
         ON CONFLICT (server_id, kind, hash) DO NOTHING";
    over_rows(template, 5, rows, |c, a| {
        a.extend([text(&c.server_id), text(&c.kind), text(&c.hash)]);
        a.extend([owned(c.items.to_string()), int(c.first_seen)]);
    })
}

/// The list of each kind each server serves now, and since when.
pub(super) fn upsert_contract_states(rows: &[ContractState]) -> Vec<Statement<'_>> {
    let template = "INSERT INTO contract_state (server_id, kind, hash, since) \
         SELECT * FROM ({values}) AS v WHERE EXISTS (SELECT 1 FROM servers s WHERE s.id = v.column1) \
         ON CONFLICT (server_id, kind) DO UPDATE SET hash = excluded.hash, since = excluded.since";
    let rows = last_per_key(rows, |c| (c.server_id.as_str(), c.kind.as_str()));
    over_rows(template, 4, rows, |c: &ContractState, a| {
        a.extend([
            text(&c.server_id),
            text(&c.kind),
            text(&c.hash),
            int(c.since),
        ]);
    })
}

/// One row per (server, hash): the earliest `first_seen` and the latest `last_seen`.
pub(super) fn merge_snapshots(snapshots: &[SnapshotRecord]) -> Vec<SnapshotRecord> {
    let mut out: Vec<SnapshotRecord> = Vec::new();
    let mut at: HashMap<(&str, &str), usize> = HashMap::new();
    for s in snapshots {
        match at.get(&(s.server_id.as_str(), s.hash.as_str())) {
            Some(&i) => {
                out[i].first_seen = out[i].first_seen.min(s.first_seen);
                out[i].last_seen = out[i].last_seen.max(s.last_seen);
            }
            None => {
                at.insert((&s.server_id, &s.hash), out.len());
                out.push(s.clone());
            }
        }
    }
    out
}

pub(super) fn insert_schema_changes(changes: &[SchemaChangeRecord]) -> Vec<Statement<'_>> {
    let template = "INSERT INTO schema_changes (server_id, at, from_hash, to_hash, class, summary) \
         SELECT * FROM ({values}) AS v WHERE EXISTS (SELECT 1 FROM servers s WHERE s.id = v.column1) \
         ON CONFLICT (server_id, at, to_hash) DO NOTHING";
    over_rows(template, 6, changes, |c, a| {
        a.extend([
            text(&c.server_id),
            int(c.at),
            opt_text(&c.from_hash),
            text(&c.to_hash),
        ]);
        a.extend([opt_text(&c.class), opt_text(&c.summary)]);
    })
}

/// Events of a server that is gone are dropped with it; events of no server always stay.
pub(super) fn insert_events(events: &[EventRecord]) -> Vec<Statement<'_>> {
    let template = "INSERT INTO events (id, server_id, type, at, payload) \
         SELECT * FROM ({values}) AS v \
         WHERE v.column2 IS NULL OR EXISTS (SELECT 1 FROM servers s WHERE s.id = v.column2)";
    over_rows(template, 5, events, |e, a| {
        a.extend([
            text(&e.id),
            opt_text(&e.server_id),
            text(&e.kind),
            int(e.at),
        ]);
        a.extend([owned(e.payload.to_string())]);
    })
}

pub(super) fn insert_outbox(outbox: &[DeliveryRecord]) -> Vec<Statement<'_>> {
    let template = "INSERT INTO outbox (id, event_id, channel_id, status, attempts, next_attempt_at, lease_until, last_status, last_error, created_at, delivered_at) \
         SELECT * FROM ({values}) AS v WHERE EXISTS (SELECT 1 FROM channels c WHERE c.id = v.column3) \
         ON CONFLICT (event_id, channel_id) DO NOTHING";
    over_rows(template, 11, outbox, |d, a| {
        a.extend([
            text(&d.id),
            text(&d.event_id),
            text(&d.channel_id),
            text(d.status.as_str()),
        ]);
        a.extend([
            int(d.attempts),
            int(d.next_attempt_at),
            Arg::Int(d.lease_until),
        ]);
        a.extend([
            Arg::Int(d.last_status),
            opt_text(&d.last_error),
            int(d.created_at),
        ]);
        a.extend([Arg::Int(d.delivered_at)]);
    })
}

/// Held alerts, counted: the first of an occurrence inserts the row, each one counts.
pub(super) fn upsert_held(held: &[HeldRecord]) -> Vec<Statement<'_>> {
    let mut counted: Vec<(&HeldRecord, i64)> = Vec::new();
    let mut at: HashMap<(&str, i64, &str), usize> = HashMap::new();
    for h in held {
        let key = (
            h.window_id.as_str(),
            h.occurrence_start,
            h.server_id.as_str(),
        );
        match at.get(&key) {
            Some(&i) => counted[i].1 += 1,
            None => {
                at.insert(key, counted.len());
                counted.push((h, 1));
            }
        }
    }
    let template = "INSERT INTO maintenance_held (window_id, occurrence_start, occurrence_end, server_id, state_before, held_events) \
         SELECT * FROM ({values}) AS v \
         WHERE EXISTS (SELECT 1 FROM maintenance_windows m WHERE m.id = v.column1) \
         AND EXISTS (SELECT 1 FROM servers s WHERE s.id = v.column4) \
         ON CONFLICT (window_id, occurrence_start, server_id) DO UPDATE SET held_events = maintenance_held.held_events + excluded.held_events";
    over_rows(template, 6, counted, |(h, n), a| {
        a.extend([
            text(&h.window_id),
            int(h.occurrence_start),
            int(h.occurrence_end),
        ]);
        a.extend([text(&h.server_id), text(&h.state_before), int(n)]);
    })
}

pub(super) fn mark_held_summarized(done: &[(String, i64, String)]) -> Vec<Statement<'_>> {
    let template = "UPDATE maintenance_held SET summarized = v.column4 FROM ({values}) AS v \
         WHERE window_id = v.column1 AND occurrence_start = v.column2 AND server_id = v.column3";
    over_rows(template, 4, done, |(window, start, server), a| {
        a.extend([text(window), int(*start), text(server), Arg::Bool(true)]);
    })
}

pub(super) fn upsert_reminders(reminders: &[(String, String, i64)]) -> Vec<Statement<'_>> {
    let template = "INSERT INTO reminders (channel_id, incident_id, last_sent_at) \
         SELECT * FROM ({values}) AS v WHERE EXISTS (SELECT 1 FROM channels c WHERE c.id = v.column1) \
         ON CONFLICT (channel_id, incident_id) DO UPDATE SET last_sent_at = excluded.last_sent_at";
    let rows = last_per_key(reminders, |(c, i, _)| (c.as_str(), i.as_str()));
    over_rows(
        template,
        3,
        rows,
        |(channel, incident, at): &(String, String, i64), a| {
            a.extend([text(channel), text(incident), int(*at)]);
        },
    )
}

/// Mark regions silent; `RETURNING name` lists those marked, so a region already silent (or
/// heard from since) refuses the batch.
pub(super) fn mark_regions_silent(silent: &[(String, i64, i64)]) -> Vec<Statement<'_>> {
    let template = "UPDATE regions SET silent_since = v.column3 FROM ({values}) AS v \
         WHERE name = v.column1 AND silent_since IS NULL AND last_seen_at < v.column2 RETURNING name";
    let rows = first_per_key(silent, |(region, _, _)| region.as_str());
    over_rows(
        template,
        3,
        rows,
        |(region, seen_before, at): &(String, i64, i64), a| {
            a.extend([text(region), int(*seen_before), int(*at)]);
        },
    )
}

pub(super) fn set_channel_health(health: &[(String, Option<i64>)]) -> Vec<Statement<'_>> {
    let template =
        "UPDATE channels SET failing_since = v.column2 FROM ({values}) AS v WHERE id = v.column1";
    let rows = last_per_key(health, |(id, _)| id.as_str());
    over_rows(
        template,
        2,
        rows,
        |(id, since): &(String, Option<i64>), a| {
            a.extend([text(id), Arg::Int(*since)]);
        },
    )
}

pub(super) fn set_era_hints(hints: &[(String, String)]) -> Vec<Statement<'_>> {
    let template =
        "UPDATE servers SET era_hint = v.column2 FROM ({values}) AS v WHERE id = v.column1";
    let rows = last_per_key(hints, |(id, _)| id.as_str());
    over_rows(template, 2, rows, |(id, era): &(String, String), a| {
        a.extend([text(id), text(era)]);
    })
}

/// Which rollup table a read or write is for.
#[derive(Debug, Clone, Copy)]
pub(super) enum RollupTable {
    /// Per (server, region, hour).
    Hourly,
    /// Per (server, day), over all regions.
    Daily,
}

/// A rollup row's key: (server id, region — `None` for daily rows —, period start).
pub(super) type RollupKey = (String, Option<String>, i64);

impl RollupTable {
    fn name(self) -> &'static str {
        match self {
            RollupTable::Hourly => "rollup_hourly",
            RollupTable::Daily => "rollup_daily",
        }
    }

    /// The key columns, as the table names them.
    pub(super) fn key_cols(self) -> &'static str {
        match self {
            RollupTable::Hourly => "server_id, region, hour_start",
            RollupTable::Daily => "server_id, day_start",
        }
    }

    fn bind_key<'a>(self, key: &'a RollupKey, a: &mut Vec<Arg<'a>>) {
        a.push(text(&key.0));
        if let (RollupTable::Hourly, Some(region)) = (self, &key.1) {
            a.push(text(region));
        }
        a.push(int(key.2));
    }

    fn key_width(self) -> usize {
        match self {
            RollupTable::Hourly => 3,
            RollupTable::Daily => 2,
        }
    }
}

/// The stored rows for these keys, locked for the rewrite where the backend can
/// (`row_lock`: `FOR UPDATE` on Postgres).
pub(super) fn read_rollups<'a>(
    table: RollupTable,
    keys: &'a [RollupKey],
    row_lock: &str,
) -> Vec<Statement<'a>> {
    let template = format!(
        "SELECT {}, probes, successes, failures, latency_hist, latency_max_ms FROM {} WHERE ({}) IN ({{values}}) {row_lock}",
        table.key_cols(),
        table.name(),
        table.key_cols()
    );
    over_rows(&template, table.key_width(), keys, |k, a| {
        table.bind_key(k, a)
    })
}

/// Write merged totals back (insert or replace), `now` as their `updated_at`.
pub(super) fn write_rollups<'a>(
    table: RollupTable,
    totals: &'a BTreeMap<RollupKey, Rollup>,
    now: i64,
) -> Vec<Statement<'a>> {
    let cols = "probes, successes, failures, latency_hist, latency_p50_ms, latency_p95_ms, latency_max_ms, updated_at";
    let set: Vec<String> = cols
        .split(", ")
        .map(|c| format!("{c} = excluded.{c}"))
        .collect();
    let template = format!(
        "INSERT INTO {} ({}, {cols}) {{values}} ON CONFLICT ({}) DO UPDATE SET {}",
        table.name(),
        table.key_cols(),
        table.key_cols(),
        set.join(", ")
    );
    over_rows(&template, table.key_width() + 8, totals, |(k, t), a| {
        table.bind_key(k, a);
        a.extend([int(t.probes), int(t.successes), owned(t.failures_json())]);
        a.extend([owned(t.hist_json()), Arg::Real(t.percentile(0.5))]);
        a.extend([Arg::Real(t.percentile(0.95)), Arg::Real(t.max_ms), int(now)]);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_chunked_under_the_bound_parameter_limit() {
        let rows: Vec<i64> = (0..7_000).collect();
        let stmts = over_rows(
            "INSERT INTO t (a, b, c, d, e) {values}",
            5,
            &rows,
            |r, a| {
                a.extend([int(*r), int(*r), int(*r), int(*r), int(*r)]);
            },
        );
        assert_eq!(stmts.len(), 2);
        assert_eq!(stmts[0].args.len(), 30_000);
        assert_eq!(stmts[1].args.len(), 5_000);
        for s in &stmts {
            assert_eq!(s.sql.matches('?').count(), s.args.len());
        }
        assert!(
            stmts[1]
                .sql
                .starts_with("INSERT INTO t (a, b, c, d, e) VALUES (?, ?, ?, ?, ?), (")
        );
    }

    #[test]
    fn no_rows_no_statement() {
        let rows: Vec<i64> = Vec::new();
        assert!(over_rows("X {values}", 1, &rows, |r, a| a.push(int(*r))).is_empty());
    }

    #[test]
    fn a_key_written_twice_keeps_its_last_value_in_first_seen_order() {
        let hints = vec![
            ("a".to_string(), "stateless".to_string()),
            ("b".to_string(), "session".to_string()),
            ("a".to_string(), "legacy_sse".to_string()),
        ];
        let stmts = set_era_hints(&hints);
        assert_eq!(stmts.len(), 1);
        assert_eq!(
            stmts[0].args,
            vec![text("a"), text("legacy_sse"), text("b"), text("session")]
        );
    }

    #[test]
    fn an_incident_closed_twice_keeps_its_first_close() {
        let closed = vec![
            ("i".to_string(), "s".to_string(), 5),
            ("i".to_string(), "s".to_string(), 9),
        ];
        assert_eq!(close_incidents(&closed)[0].args, vec![text("i"), int(5)]);
    }

    #[test]
    fn held_alerts_of_one_occurrence_are_counted_in_one_row() {
        let h = HeldRecord {
            window_id: "w".into(),
            occurrence_start: 1,
            occurrence_end: 2,
            server_id: "s".into(),
            state_before: "up".into(),
        };
        let held = [h.clone(), h.clone(), h];
        let stmts = upsert_held(&held);
        assert_eq!(stmts[0].args.len(), 6);
        assert_eq!(stmts[0].args[5], int(3));
    }

    #[test]
    fn snapshots_of_one_hash_merge_their_sightings() {
        let s = |first, last| SnapshotRecord {
            server_id: "s".into(),
            hash: "h".into(),
            interface_hash: "i".into(),
            tools: serde_json::json!([]),
            first_seen: first,
            last_seen: last,
        };
        let merged = merge_snapshots(&[s(5, 5), s(3, 3), s(9, 9)]);
        assert_eq!(merged.len(), 1);
        assert_eq!((merged[0].first_seen, merged[0].last_seen), (3, 9));
    }
}
