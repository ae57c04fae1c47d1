//! The owner's side of a handoff: results another replica took for the servers of this
//! replica's buckets wait in the `handoff` table; this loop feeds them to the local ingest
//! (which decides them like its own) and deletes each row once its result is stored. A result
//! stored already (taken twice) is not decided again; a row whose bucket moved on before its
//! result was stored stays for the next owner.

use std::collections::HashSet;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::ClusterParts;

/// How often the table is looked at when it had nothing for us.
const EVERY: Duration = Duration::from_secs(1);

/// Rows taken at a time.
const TAKE: u32 = 500;

/// How long a batch may wait for the ingest to commit it (longer: the database is away;
/// the rows stay and are taken again).
const COMMIT_WAIT: Duration = Duration::from_secs(30);

/// Take handed-off results for this replica's buckets until `stop`.
pub(super) async fn drain(app: ClusterParts, stop: CancellationToken) {
    loop {
        // A full round that cleared every row it took: more may be waiting.
        let full = match take_once(&app).await {
            Ok(cleared) => cleared == u64::from(TAKE),
            Err(e) => {
                tracing::debug!(error = %e, "cannot read handed-off results; retrying");
                false
            }
        };
        if full {
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            _ = stop.cancelled() => return,
        }
    }
}

/// The slugs of the servers of `rows` (for their metric series).
async fn slugs_of(
    app: &ClusterParts,
    rows: &[&crate::store::HandoffRecord],
) -> Result<std::collections::HashMap<String, String>, crate::store::StoreError> {
    let mut ids: Vec<String> = rows.iter().map(|r| r.server_id.clone()).collect();
    ids.sort();
    ids.dedup();
    Ok(app
        .store
        .servers_by_id(&ids)
        .await?
        .into_iter()
        .map(|s| (s.id, s.slug))
        .collect())
}

/// One round: returns how many rows it cleared.
async fn take_once(app: &ClusterParts) -> Result<u64, crate::store::StoreError> {
    let buckets: Vec<u16> = app.ownership.now().terms.keys().copied().collect();
    if buckets.is_empty() {
        return Ok(0);
    }
    let rows = app.store.take_handoff(&buckets, TAKE).await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    let stored: HashSet<String> = app
        .store
        .existing_result_ids(&ids)
        .await?
        .into_iter()
        .collect();
    let fresh: Vec<&crate::store::HandoffRecord> =
        rows.iter().filter(|r| !stored.contains(&r.id)).collect();
    let slugs = slugs_of(app, &fresh).await?;
    let mut unreadable = Vec::new();
    for row in fresh {
        match crate::ingest::handoff::decode(row) {
            Ok(item) => {
                if let Some(slug) = slugs.get(&item.server_id) {
                    app.metrics
                        .observe_server_probe(slug, &item.region, &item.report);
                }
                if app.ingest.submit(item).await.is_err() {
                    return Ok(0); // shutting down: the rows stay for the next owner
                }
            }
            Err(e) => {
                // Written by a replica of another version, or damaged: it can never be
                // decided, and left in place it would be read again every second.
                tracing::error!(error = %e, result_id = %row.id, server_id = %row.server_id, "a handed-off result does not read back; discarded");
                unreadable.push(row.id.clone());
            }
        }
    }
    if !unreadable.is_empty() {
        app.store.discard_handoff(&unreadable).await?;
    }
    if tokio::time::timeout(COMMIT_WAIT, app.ingest.flush())
        .await
        .is_err()
    {
        return Ok(0);
    }
    let cleared = app.store.clear_handoff(&ids).await?;
    tracing::debug!(taken = rows.len(), cleared, "handed-off results decided");
    Ok(cleared)
}
