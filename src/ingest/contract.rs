//! Drift of a server's resources, resource templates and prompts (issue 16 §1). A served
//! result's list of each kind is compared with the one the server serves now (kept per
//! server in the ingest's cache, read from `contract_state` the first time it is needed);
//! a new list is stored once (`contract_snapshots`), becomes the served one, and, when it
//! replaces another, raises `schema.changed` with its `kind` and the structural diff, which
//! channels route like a tool change (their drift classes included). The tools' drift and
//! hash are untouched.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};

use super::IngestItem;
use crate::monitor::{Decided, Event, EventKind};
use crate::probe::Verdict;
use crate::store::{BatchWrites, ContractSnapshot, ContractState, Store, StoreError};

/// The list (hash) of each kind a server serves now.
pub(super) type Served = BTreeMap<String, String>;

/// The member that names an item of each kind.
fn key_of(kind: &str) -> &'static str {
    match kind {
        "resources" => "uri",
        "resource_templates" => "uriTemplate",
        _ => "name",
    }
}

/// Judge the lists of `item`, returning the `schema.changed` events to raise. `served` is
/// loaded from the store when `None`.
pub(super) async fn judge(
    store: &Arc<dyn Store>,
    served: &mut Option<Box<Served>>,
    item: &IngestItem,
    writes: &mut BatchWrites,
) -> Result<Vec<Decided>, StoreError> {
    let report = &item.report;
    if report.contract.is_empty() || !matches!(report.verdict, Verdict::Up | Verdict::Degraded) {
        return Ok(Vec::new());
    }
    if served.is_none() {
        let now: Served = store
            .contract_state(&item.server_id)
            .await?
            .into_iter()
            .collect();
        *served = Some(Box::new(now));
    }
    let served = served.as_mut().expect("loaded above");
    let mut events = Vec::new();
    for listed in &report.contract {
        let old = served.get(&listed.kind).cloned();
        if old.as_deref() == Some(listed.hash.as_str()) {
            continue;
        }
        // An agent's push carries counts and hashes, not the items: nothing to store or diff.
        let has_items = listed.items.len() == listed.count;
        if has_items {
            writes.contract_snapshots.push(ContractSnapshot {
                server_id: item.server_id.clone(),
                kind: listed.kind.clone(),
                hash: listed.hash.clone(),
                items: Value::Array(listed.items.clone()),
                first_seen: item.started_at,
            });
        }
        writes.contract_states.push(ContractState {
            server_id: item.server_id.clone(),
            kind: listed.kind.clone(),
            hash: listed.hash.clone(),
            since: item.started_at,
        });
        served.insert(listed.kind.clone(), listed.hash.clone());
        if let Some(old) = old {
            let before = previous(store, writes, &item.server_id, &listed.kind, &old).await?;
            events.push(changed(item, listed, &old, before.as_ref(), has_items));
        }
    }
    Ok(events)
}

/// The items of the list `hash` of `kind`: from this batch's writes, else the store.
async fn previous(
    store: &Arc<dyn Store>,
    writes: &BatchWrites,
    server_id: &str,
    kind: &str,
    hash: &str,
) -> Result<Option<Value>, StoreError> {
    let pending = writes
        .contract_snapshots
        .iter()
        .find(|s| s.server_id == server_id && s.kind == kind && s.hash == hash);
    match pending {
        Some(s) => Ok(Some(s.items.clone())),
        None => store.get_contract_snapshot(server_id, kind, hash).await,
    }
}

/// `schema.changed` for one kind, with its diff when both lists are known.
fn changed(
    item: &IngestItem,
    listed: &crate::probe::ListedKind,
    old: &str,
    before: Option<&Value>,
    has_items: bool,
) -> Decided {
    let kind = listed.kind.as_str();
    let data = match (before.and_then(Value::as_array), has_items) {
        (Some(before), true) => {
            let d = crate::schema::diff_lists(key_of(kind), before, &listed.items);
            json!({"kind": kind, "from": old, "to": listed.hash, "breaking": d.breaking,
                   "security": d.security, "summary": d.summary(kind), "diff": d,
                   "region": item.region})
        }
        _ => json!({"kind": kind, "from": old, "to": listed.hash, "breaking": false,
                    "security": false, "region": item.region,
                    "summary": format!("{kind}: changed ({} items now; the items were not received, so no diff)", listed.count)}),
    };
    Decided {
        event: Event {
            kind: EventKind::SchemaChanged,
            at: item.started_at,
            data,
        },
        held_by_flapping: false,
    }
}
