//! Service level objectives and whether their burn-rate alert is open. Written once for both
//! backends, like `sql.rs`.

use async_trait::async_trait;

use super::StoreResult;
use super::batch;
use super::dialect::{Dialect, Exec};
use super::model::{DeliveryRecord, EventRecord};
use super::rollup::Rollup;
use super::sql::{SqlStore, run_all};
use super::statement::{Statement, marks};

/// One objective: a server's, or every server's with a tag.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct SloRecord {
    pub id: String,
    pub name: String,
    /// One server…
    pub server_id: Option<String>,
    /// …or every server with this tag.
    pub tag: Option<String>,
    /// Availability, e.g. 0.999.
    pub objective: f64,
    pub window_days: i64,
    /// The latency bound, and the share of successful probes that must meet it.
    pub latency_ms: Option<f64>,
    pub latency_objective: Option<f64>,
    /// Set while its burn-rate alert is open.
    pub burning_since: Option<i64>,
    /// The rule that opened it ("14.4× over 1h and 5m").
    pub burning_rule: Option<String>,
    pub created_at: i64,
}

impl SloRecord {
    pub fn objective(&self) -> crate::slo::Objective {
        crate::slo::Objective {
            availability: self.objective,
            window_days: self.window_days,
            latency_share: self.latency_objective,
            latency_ms: self.latency_ms,
        }
    }
}

/// An alert opening or closing: the change, its event and the event's deliveries.
#[derive(Debug, Clone)]
pub struct SloAlert<'a> {
    pub slo_id: &'a str,
    /// What `burning_since` must still be (another leader may have decided meanwhile).
    pub expected: Option<i64>,
    pub burning_since: Option<i64>,
    pub rule: Option<&'a str>,
    pub event: &'a EventRecord,
    pub outbox: &'a [DeliveryRecord],
}

#[async_trait]
pub trait SloStore: Send + Sync {
    async fn insert_slo(&self, s: &SloRecord) -> StoreResult<()>;
    async fn list_slos(&self) -> StoreResult<Vec<SloRecord>>;
    async fn get_slo(&self, id: &str) -> StoreResult<Option<SloRecord>>;
    async fn delete_slo(&self, id: &str) -> StoreResult<bool>;
    /// Open or close an alert with its event and deliveries, atomically, only if nobody did
    /// meanwhile; whether it was written.
    async fn record_slo_alert(&self, a: &SloAlert<'_>) -> StoreResult<bool>;
    /// The daily rollups of these servers from `from_day` (inclusive) to `to_day`
    /// (exclusive), merged: probe counts and the latency histogram.
    async fn merged_daily(
        &self,
        server_ids: &[String],
        from_day: i64,
        to_day: i64,
    ) -> StoreResult<Rollup>;
}

#[async_trait]
impl<D: Dialect> SloStore for SqlStore<D> {
    async fn insert_slo(&self, s: &SloRecord) -> StoreResult<()> {
        let st = Statement::new(
            "INSERT INTO slos (id, name, server_id, tag, objective, window_days, latency_ms, \
             latency_objective, burning_since, burning_rule, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&s.id)
        .bind(&s.name)
        .bind(&s.server_id)
        .bind(&s.tag)
        .bind(s.objective)
        .bind(s.window_days)
        .bind(s.latency_ms)
        .bind(s.latency_objective)
        .bind(s.burning_since)
        .bind(&s.burning_rule)
        .bind(s.created_at);
        self.run(st).await?;
        Ok(())
    }

    async fn list_slos(&self) -> StoreResult<Vec<SloRecord>> {
        self.all(Statement::new("SELECT * FROM slos ORDER BY created_at, id"))
            .await
    }

    async fn get_slo(&self, id: &str) -> StoreResult<Option<SloRecord>> {
        self.first(Statement::new("SELECT * FROM slos WHERE id = ?").bind(id))
            .await
    }

    async fn delete_slo(&self, id: &str) -> StoreResult<bool> {
        let n = self
            .run(Statement::new("DELETE FROM slos WHERE id = ?").bind(id))
            .await?;
        Ok(n > 0)
    }

    async fn record_slo_alert(&self, a: &SloAlert<'_>) -> StoreResult<bool> {
        let guard = match a.expected {
            Some(_) => "burning_since = ?",
            None => "burning_since IS NULL",
        };
        let mut set = Statement::new(format!(
            "UPDATE slos SET burning_since = ?, burning_rule = ? WHERE id = ? AND {guard}"
        ))
        .bind(a.burning_since)
        .bind(a.rule)
        .bind(a.slo_id);
        if let Some(expected) = a.expected {
            set = set.bind(expected);
        }
        let mut tx = self.begin().await?;
        if D::execute(Exec::Tx(&mut tx), &set).await? == 0 {
            return Ok(false);
        }
        run_all(&mut tx, batch::insert_events(std::slice::from_ref(a.event))).await?;
        run_all(&mut tx, batch::insert_outbox(a.outbox)).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn merged_daily(
        &self,
        server_ids: &[String],
        from_day: i64,
        to_day: i64,
    ) -> StoreResult<Rollup> {
        let mut merged = Rollup::default();
        if server_ids.is_empty() {
            return Ok(merged);
        }
        let sql = format!(
            "SELECT probes, successes, failures, latency_hist, latency_max_ms FROM rollup_daily \
             WHERE day_start >= ? AND day_start < ? AND server_id IN ({})",
            marks(server_ids.len())
        );
        let st = server_ids.iter().fold(
            Statement::one_off(sql).bind(from_day).bind(to_day),
            |st, id| st.bind(id),
        );
        let rows: Vec<(i64, i64, String, String, Option<f64>)> = self.all(st).await?;
        for (probes, successes, failures, hist, max_ms) in rows {
            let day = Rollup::from_columns(probes, successes, &failures, &hist, max_ms)
                .map_err(super::StoreError::Corrupt)?;
            merged.merge(&day);
        }
        Ok(merged)
    }
}
