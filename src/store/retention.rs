//! Retention: raw results older than `MCPWATCH_RETENTION_RAW` and rollups older than
//! `MCPWATCH_RETENTION_ROLLUP` are deleted in small batches (each its own short statement, with
//! a pause between), so pruning never holds a lock long enough to stall the ingest.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{Store, StoreError};

/// Rows deleted per statement.
pub const BATCH: u32 = 2_000;
/// How often pruning runs.
const EVERY: Duration = Duration::from_secs(600);
/// Pause between batches: lets result commits in.
const PAUSE: Duration = Duration::from_millis(25);

/// How long history is kept.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub raw: Duration,
    pub rollup: Duration,
}

/// What one pass deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    pub results: u64,
    pub rollups: u64,
}

/// One pass: delete everything past retention at `now`, `batch` rows at a time.
pub async fn prune_once(
    store: &dyn Store,
    keep: Retention,
    now: i64,
    batch: u32,
) -> Result<Pruned, StoreError> {
    let mut pruned = Pruned::default();
    let raw_before = now - keep.raw.as_millis() as i64;
    loop {
        let n = store.prune_results(raw_before, batch).await?;
        pruned.results += n;
        if n < u64::from(batch) {
            break;
        }
        tokio::time::sleep(PAUSE).await;
    }
    let rollup_before = now - keep.rollup.as_millis() as i64;
    loop {
        let n = store.prune_rollups(rollup_before, batch).await?;
        pruned.rollups += n;
        if n == 0 {
            break;
        }
        tokio::time::sleep(PAUSE).await;
    }
    Ok(pruned)
}

/// Prune a minute after start, then every ten minutes, until `stop`; only while `leader`
/// (one replica prunes).
pub async fn run(
    store: std::sync::Arc<dyn Store>,
    keep: Retention,
    stop: CancellationToken,
    leader: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    let mut wait = Duration::from_secs(60);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        wait = EVERY;
        if !leader.load(std::sync::atomic::Ordering::Relaxed) {
            continue;
        }
        let now = crate::clock::now_ms();
        match prune_once(store.as_ref(), keep, now, BATCH).await {
            Ok(p) if p != Pruned::default() => {
                tracing::info!(
                    results = p.results,
                    rollups = p.rollups,
                    "retention: pruned"
                )
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "retention: pruning failed; will retry"),
        }
    }
}
