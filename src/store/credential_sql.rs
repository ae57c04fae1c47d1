//! Which credential-expiry warnings have gone out: each once per server, credential, expiry
//! and stage, written with its event and deliveries in one transaction, so two leaders (or a
//! restart) never send one twice. Written once for both backends, like `sql.rs`.

use async_trait::async_trait;

use super::StoreResult;
use super::batch;
use super::dialect::{Dialect, Exec};
use super::model::{DeliveryRecord, EventRecord};
use super::sql::{SqlStore, run_all};
use super::statement::Statement;

/// A warning to record, with what it sends.
#[derive(Debug)]
pub struct CredentialWarning<'a> {
    pub server_id: &'a str,
    /// `bearer` or `oauth_client`.
    pub credential: &'a str,
    pub expires_at: i64,
    /// `expiring:<lead seconds>` or `expired`.
    pub stage: &'a str,
    pub event: &'a EventRecord,
    pub outbox: &'a [DeliveryRecord],
}

#[async_trait]
pub trait CredentialStore: Send + Sync {
    /// Record the warning and its event and deliveries, unless it was sent already; whether
    /// this call sent it.
    async fn record_credential_warning(&self, w: &CredentialWarning<'_>) -> StoreResult<bool>;
}

#[async_trait]
impl<D: Dialect> CredentialStore for SqlStore<D> {
    async fn record_credential_warning(&self, w: &CredentialWarning<'_>) -> StoreResult<bool> {
        let mark = Statement::new(
            "INSERT INTO credential_warnings (server_id, credential, expires_at, stage, sent_at) \
             VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(w.server_id)
        .bind(w.credential)
        .bind(w.expires_at)
        .bind(w.stage)
        .bind(w.event.at);
        let mut tx = self.begin().await?;
        if D::execute(Exec::Tx(&mut tx), &mark).await? == 0 {
            return Ok(false);
        }
        run_all(&mut tx, batch::insert_events(std::slice::from_ref(w.event))).await?;
        run_all(&mut tx, batch::insert_outbox(w.outbox)).await?;
        tx.commit().await?;
        Ok(true)
    }
}
