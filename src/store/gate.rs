//! Whether the database answers, as far as the HTTP side knows: set when a request finds it
//! unreachable, cleared by a background check that pings it every second until it answers.
//!
//! While it is down, requests do not queue for a pool connection (each would wait the pool's
//! acquire timeout before its 503): the API answers 503 at once, `/readyz` says so at once, and
//! the public pages serve their last good copy (`web::last_good`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use super::Store;

/// How often a down database is pinged, and how long one ping may take.
const RECHECK: Duration = Duration::from_secs(1);

/// Marks a response whose failure was the database being unavailable (a 503 for that reason,
/// not for a standby or a shutdown), so the HTTP layer can mark the gate down.
#[derive(Debug, Clone, Copy)]
pub struct DatabaseUnavailable;

/// Shared by every request of one process. Cheap to clone.
#[derive(Clone)]
pub struct DbGate {
    store: Arc<dyn Store>,
    /// Unix ms since when the database has been unreachable; 0 while it answers.
    down_since: Arc<AtomicI64>,
    rechecking: Arc<AtomicBool>,
}

impl DbGate {
    pub fn new(store: Arc<dyn Store>) -> Self {
        DbGate {
            store,
            down_since: Arc::new(AtomicI64::new(0)),
            rechecking: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Unix ms since when the database has been unreachable, if it is.
    pub fn down_since(&self) -> Option<i64> {
        Some(self.down_since.load(Ordering::Relaxed)).filter(|t| *t != 0)
    }

    /// The database did not answer a request: stop sending it requests until a ping answers.
    pub fn mark_down(&self, now_ms: i64) {
        let _ = self
            .down_since
            .compare_exchange(0, now_ms, Ordering::Relaxed, Ordering::Relaxed);
        if self.rechecking.swap(true, Ordering::AcqRel) {
            return;
        }
        tracing::warn!("database unreachable: serving pages from their last good copy");
        let gate = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(RECHECK).await;
                let answered = tokio::time::timeout(RECHECK, gate.store.ready()).await;
                if matches!(answered, Ok(Ok(()))) {
                    break;
                }
            }
            gate.down_since.store(0, Ordering::Relaxed);
            gate.rechecking.store(false, Ordering::Release);
            tracing::info!("database reachable again");
        });
    }
}
