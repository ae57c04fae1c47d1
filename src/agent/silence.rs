//! On the central: each region's last contact, and `region.silent` when a region stops
//! reporting. Marking the region and writing the event and its outbox rows is one
//! transaction that only one replica can win, so the alert goes out once. The quorum already
//! ignores a silent region (its results are stale), so its silence never makes a server down.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::store::{BatchWrites, DeliveryRecord, EventRecord, Store, StoreError};

/// How often regions are checked, at most (a third of `silent_after` when that is shorter).
const CHECK_EVERY: Duration = Duration::from_secs(15);

/// Raise `region.silent` for every region quiet for longer than `silent_after` at `now`.
/// Returns the regions this call reported.
pub async fn check_once(
    store: &dyn Store,
    silent_after: Duration,
    now: i64,
) -> Result<Vec<String>, StoreError> {
    let limit = now - silent_after.as_millis() as i64;
    let mut raised = Vec::new();
    let channels = store.list_channels().await?;
    for region in store.list_regions().await? {
        if region.silent_since.is_some() || region.last_seen_at >= limit {
            continue;
        }
        let event = EventRecord {
            id: uuid::Uuid::now_v7().to_string(),
            server_id: None,
            kind: "region.silent".into(),
            at: now,
            payload: json!({
                "region": region.name,
                "last_seen": crate::clock::rfc3339(region.last_seen_at),
                "silent_for_seconds": (now - region.last_seen_at) / 1000,
                "agent_version": region.agent_version,
            }),
        };
        let mut w = BatchWrites::default();
        w.region_silent.push((region.name.clone(), limit, now));
        for c in channels
            .iter()
            .filter(|c| c.enabled && c.events.iter().any(|e| e == "region.silent"))
        {
            w.outbox
                .push(DeliveryRecord::pending(&event.id, &c.id, now));
        }
        w.events.push(event);
        match store.commit_batch(&w).await {
            Ok(()) => {
                tracing::warn!(region = %region.name, last_seen = region.last_seen_at, "region silent");
                raised.push(region.name);
            }
            // Another replica marked it first, or it spoke meanwhile.
            Err(StoreError::Conflict(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(raised)
}

/// Check every 15 s (or a third of `silent_after`) until `stop`; `wake` rings the dispatcher.
pub async fn watch(
    store: Arc<dyn Store>,
    silent_after: Duration,
    wake: Arc<Notify>,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(CHECK_EVERY.min(silent_after / 3)) => {}
            _ = stop.cancelled() => return,
        }
        match check_once(store.as_ref(), silent_after, crate::clock::now_ms()).await {
            Ok(raised) if !raised.is_empty() => wake.notify_one(),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "region check failed; will retry"),
        }
    }
}
