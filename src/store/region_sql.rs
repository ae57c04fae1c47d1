//! Regions and agents: each region's last contact (for `region.silent`), and the result-id
//! check that makes agent pushes idempotent. Expanded for both backends like `sql.rs`.

use async_trait::async_trait;
use sqlx::Row;

use super::StoreResult;
use super::sql::{PostgresStore, SqliteStore, audited, postgres_sql, sqlite_sql};

/// A region that has reported results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionRecord {
    pub name: String,
    pub last_seen_at: i64,
    /// When `region.silent` went out for the current silence (see `BatchWrites::region_silent`).
    pub silent_since: Option<i64>,
    pub agent_version: Option<String>,
}

#[async_trait]
pub trait RegionStore: Send + Sync {
    /// Record contact from `name` at `at`. Returns when it had gone silent, if it had.
    async fn touch_region(
        &self,
        name: &str,
        at: i64,
        agent_version: Option<&str>,
    ) -> StoreResult<Option<i64>>;
    async fn list_regions(&self) -> StoreResult<Vec<RegionRecord>>;
    /// Which of `ids` are stored results already.
    async fn existing_result_ids(&self, ids: &[String]) -> StoreResult<Vec<String>>;
}

macro_rules! region_store {
    ($store:ident, $conv:path) => {
        #[async_trait]
        impl RegionStore for $store {
            async fn touch_region(&self, name: &str, at: i64, agent_version: Option<&str>) -> StoreResult<Option<i64>> {
                let mut tx = self.pool.begin().await?;
                let sql = $conv("SELECT silent_since FROM regions WHERE name = ?");
                let was: Option<i64> = sqlx::query(audited(&sql)).bind(name).fetch_optional(&mut *tx).await?
                    .map(|r| r.try_get::<Option<i64>, _>("silent_since")).transpose()?.flatten();
                let sql = $conv("INSERT INTO regions (name, last_seen_at, silent_since, agent_version) VALUES (?, ?, NULL, ?) ON CONFLICT (name) DO UPDATE SET last_seen_at = excluded.last_seen_at, silent_since = NULL, agent_version = COALESCE(excluded.agent_version, regions.agent_version)");
                sqlx::query(audited(&sql)).bind(name).bind(at).bind(agent_version).execute(&mut *tx).await?;
                tx.commit().await?;
                Ok(was)
            }

            async fn list_regions(&self) -> StoreResult<Vec<RegionRecord>> {
                let rows = sqlx::query("SELECT * FROM regions ORDER BY name").fetch_all(&self.pool).await?;
                rows.iter()
                    .map(|r| {
                        Ok(RegionRecord {
                            name: r.try_get("name")?,
                            last_seen_at: r.try_get("last_seen_at")?,
                            silent_since: r.try_get("silent_since")?,
                            agent_version: r.try_get("agent_version")?,
                        })
                    })
                    .collect()
            }

            async fn existing_result_ids(&self, ids: &[String]) -> StoreResult<Vec<String>> {
                let mut found = Vec::new();
                for chunk in ids.chunks(500) {
                    let marks = vec!["?"; chunk.len()].join(", ");
                    let sql = $conv(&format!("SELECT id FROM probe_results WHERE id IN ({marks})")).into_owned();
                    let mut q = sqlx::query(audited(&sql));
                    for id in chunk {
                        q = q.bind(id);
                    }
                    for row in q.fetch_all(&self.pool).await? {
                        found.push(row.try_get("id")?);
                    }
                }
                Ok(found)
            }
        }
    };
}

region_store!(SqliteStore, sqlite_sql);
region_store!(PostgresStore, postgres_sql);
