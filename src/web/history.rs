//! The status page's in-memory copy of recent rollups (90 days daily, 24 h hourly, public
//! servers). The first request loads them; later ones read only the rows written since the
//! last read (an indexed `updated_at` range, a few hundred rows a minute for 500 servers), so
//! `GET /` stays fast without ever serving stale numbers.
//!
//! Rows are replaced whole, so reading one twice is harmless: each sync looks back `OVERLAP`
//! before the previous one, which covers transactions that committed late and clock skew
//! between replicas. A full reload every `RELOAD_EVERY`, or when a server turns public, drops
//! what was deleted or pruned.

use std::collections::{HashMap, HashSet};

use tokio::sync::{Mutex, MutexGuard};

use crate::store::rollup::{DAY_MS, DailyRollup, HOUR_MS, HourlyRollup, day_start, hour_start};
use crate::store::{Scope, Store, StoreError};

use super::model::DAYS;

/// How far back each sync re-reads.
const OVERLAP_MS: i64 = 5 * 60_000;
/// How often the copy is rebuilt from scratch.
const RELOAD_EVERY_MS: i64 = 15 * 60_000;

#[derive(Default)]
pub struct Snapshot {
    loaded_at: i64,
    synced_at: i64,
    servers: HashSet<String>,
    /// Per server, by day, oldest first.
    daily: HashMap<String, Vec<DailyRollup>>,
    /// Per server, by (hour, region), oldest first.
    hourly: HashMap<String, Vec<HourlyRollup>>,
}

impl Snapshot {
    /// Whether the copy holds this server's history (it was public when loaded).
    pub fn knows(&self, server_id: &str) -> bool {
        self.servers.contains(server_id)
    }

    /// One server's rollups.
    pub fn of(&self, server_id: &str) -> (&[DailyRollup], &[HourlyRollup]) {
        (
            self.daily.get(server_id).map_or(&[], Vec::as_slice),
            self.hourly.get(server_id).map_or(&[], Vec::as_slice),
        )
    }

    fn put_daily(&mut self, row: DailyRollup) {
        let list = self.daily.entry(row.server_id.clone()).or_default();
        match list.binary_search_by_key(&row.day_start, |d| d.day_start) {
            Ok(i) => list[i] = row,
            Err(i) => list.insert(i, row),
        }
    }

    fn put_hourly(&mut self, row: HourlyRollup) {
        let list = self.hourly.entry(row.server_id.clone()).or_default();
        let key = (row.hour_start, row.region.clone());
        match list.binary_search_by(|h| (h.hour_start, h.region.as_str()).cmp(&(key.0, &key.1))) {
            Ok(i) => list[i] = row,
            Err(i) => list.insert(i, row),
        }
    }

    /// Forget what fell out of the windows the page shows.
    fn trim(&mut self, first_day: i64, first_hour: i64) {
        for list in self.daily.values_mut() {
            list.retain(|d| d.day_start >= first_day);
        }
        for list in self.hourly.values_mut() {
            list.retain(|h| h.hour_start >= first_hour);
        }
    }
}

#[derive(Default)]
pub struct HistoryCache {
    inner: Mutex<Snapshot>,
}

impl HistoryCache {
    /// The copy, brought up to date at `now`: loaded on first use and every
    /// `RELOAD_EVERY_MS`, otherwise topped up with the rows written since the last sync.
    pub async fn synced(
        &self,
        store: &dyn Store,
        now: i64,
    ) -> Result<MutexGuard<'_, Snapshot>, StoreError> {
        let mut snap = self.inner.lock().await;
        if snap.loaded_at == 0 || now - snap.loaded_at > RELOAD_EVERY_MS {
            load(&mut snap, store, None, now).await?;
        } else {
            top_up(&mut snap, store, now).await?;
        }
        Ok(snap)
    }

    /// Load from scratch, for exactly these public servers.
    pub async fn reload(
        &self,
        store: &dyn Store,
        servers: &[&str],
        now: i64,
    ) -> Result<MutexGuard<'_, Snapshot>, StoreError> {
        let mut snap = self.inner.lock().await;
        load(&mut snap, store, Some(servers), now).await?;
        Ok(snap)
    }
}

fn windows(now: i64) -> (i64, i64) {
    (
        day_start(now) - (DAYS - 1) * DAY_MS,
        hour_start(now) - 23 * HOUR_MS,
    )
}

async fn load(
    snap: &mut Snapshot,
    store: &dyn Store,
    servers: Option<&[&str]>,
    now: i64,
) -> Result<(), StoreError> {
    let (first_day, first_hour) = windows(now);
    let (daily, hourly, public) = tokio::try_join!(
        store.daily_rollups(Scope::Public, first_day),
        store.hourly_rollups(Scope::Public, first_hour),
        async {
            match servers {
                Some(ids) => Ok(ids.iter().map(|s| s.to_string()).collect()),
                None => Ok(store
                    .public_states()
                    .await?
                    .into_iter()
                    .map(|r| r.server.id)
                    .collect::<HashSet<String>>()),
            }
        }
    )?;
    *snap = Snapshot {
        loaded_at: now,
        synced_at: now,
        servers: public,
        ..Snapshot::default()
    };
    for row in daily {
        snap.put_daily(row);
    }
    for row in hourly {
        snap.put_hourly(row);
    }
    Ok(())
}

async fn top_up(snap: &mut Snapshot, store: &dyn Store, now: i64) -> Result<(), StoreError> {
    let (first_day, first_hour) = windows(now);
    let (daily, hourly) = store
        .rollups_changed(snap.synced_at - OVERLAP_MS, first_day, first_hour)
        .await?;
    snap.synced_at = now;
    // Changed rows of every server: keep those of the public ones.
    for row in daily {
        if snap.servers.contains(&row.server_id) {
            snap.put_daily(row);
        }
    }
    for row in hourly {
        if snap.servers.contains(&row.server_id) {
            snap.put_hourly(row);
        }
    }
    snap.trim(first_day, first_hour);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(server: &str, day_start: i64, probes: i64) -> DailyRollup {
        DailyRollup {
            server_id: server.into(),
            day_start,
            probes,
            successes: probes,
            p50_ms: None,
            p95_ms: None,
            max_ms: None,
        }
    }

    #[test]
    fn rows_are_replaced_in_place_and_kept_in_order() {
        let mut s = Snapshot::default();
        s.put_daily(day("a", 2 * DAY_MS, 1));
        s.put_daily(day("a", DAY_MS, 1));
        s.put_daily(day("a", 2 * DAY_MS, 7));
        let (d, _) = s.of("a");
        assert_eq!(
            d.iter()
                .map(|r| (r.day_start, r.probes))
                .collect::<Vec<_>>(),
            vec![(DAY_MS, 1), (2 * DAY_MS, 7)]
        );
        s.trim(2 * DAY_MS, 0);
        assert_eq!(s.of("a").0.len(), 1);
        assert!(s.of("nobody").0.is_empty());
    }
}
