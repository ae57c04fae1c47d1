//! Regions and agents: each region's last contact (for `region.silent`), and the result-id
//! check that makes agent pushes idempotent. Written once for both backends, like `sql.rs`.

use async_trait::async_trait;

use super::StoreResult;
use super::dialect::{Dialect, Exec};
use super::sql::SqlStore;
use super::statement::{Statement, marks};

/// A region that has reported results.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
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
    /// Agent `instance` of `region` is alive until `expires_at` (unix ms).
    async fn touch_agent(&self, region: &str, instance: &str, expires_at: i64) -> StoreResult<()>;
    /// The agent instances of `region` alive at `now`, sorted.
    async fn live_agents(&self, region: &str, now: i64) -> StoreResult<Vec<String>>;
}

#[async_trait]
impl<D: Dialect> RegionStore for SqlStore<D> {
    async fn touch_region(
        &self,
        name: &str,
        at: i64,
        agent_version: Option<&str>,
    ) -> StoreResult<Option<i64>> {
        let was = Statement::new("SELECT silent_since FROM regions WHERE name = ?").bind(name);
        let touch = Statement::new(
            "INSERT INTO regions (name, last_seen_at, silent_since, agent_version) \
             VALUES (?, ?, NULL, ?) ON CONFLICT (name) DO UPDATE SET \
             last_seen_at = excluded.last_seen_at, silent_since = NULL, \
             agent_version = COALESCE(excluded.agent_version, regions.agent_version)",
        )
        .bind(name)
        .bind(at)
        .bind(agent_version);
        let mut tx = self.begin().await?;
        let rows = D::fetch(Exec::Tx(&mut tx), &was).await?;
        let was = match rows.first() {
            Some(row) => D::decode::<(Option<i64>,)>(row)?.0,
            None => None,
        };
        D::execute(Exec::Tx(&mut tx), &touch).await?;
        tx.commit().await?;
        Ok(was)
    }

    async fn list_regions(&self) -> StoreResult<Vec<RegionRecord>> {
        self.all(Statement::new("SELECT * FROM regions ORDER BY name"))
            .await
    }

    async fn existing_result_ids(&self, ids: &[String]) -> StoreResult<Vec<String>> {
        let mut found = Vec::new();
        for chunk in ids.chunks(500) {
            let sql = format!(
                "SELECT id FROM probe_results WHERE id IN ({})",
                marks(chunk.len())
            );
            let st = chunk
                .iter()
                .fold(Statement::one_off(sql), |st, id| st.bind(id));
            let rows: Vec<(String,)> = self.all(st).await?;
            found.extend(rows.into_iter().map(|(id,)| id));
        }
        Ok(found)
    }

    async fn touch_agent(&self, region: &str, instance: &str, expires_at: i64) -> StoreResult<()> {
        let touch = Statement::new(
            "INSERT INTO agent_instances (region, instance, expires_at) VALUES (?, ?, ?) \
             ON CONFLICT (region, instance) DO UPDATE SET expires_at = excluded.expires_at",
        )
        .bind(region)
        .bind(instance)
        .bind(expires_at);
        self.run(touch).await?;
        // Instances gone for a day are of no use to anyone.
        let old = Statement::new("DELETE FROM agent_instances WHERE expires_at < ?")
            .bind(expires_at - 86_400_000);
        self.run(old).await?;
        Ok(())
    }

    async fn live_agents(&self, region: &str, now: i64) -> StoreResult<Vec<String>> {
        let st = Statement::new(
            "SELECT instance FROM agent_instances WHERE region = ? AND expires_at > ? \
             ORDER BY instance",
        )
        .bind(region)
        .bind(now);
        let rows: Vec<(String,)> = self.all(st).await?;
        Ok(rows.into_iter().map(|(instance,)| instance).collect())
    }
}
