//! Readers subscribed to a status page, and the notices they are sent. Written once for both
//! backends, like `sql.rs`.
//!
//! An address is personal data: stored sealed (`address_enc`), found by a keyed digest
//! (`address_mac`, [`crate::secrets::Sealer::mac`]), never listed. Notices have their own
//! outbox table with the outbox's life (pending → sending under a lease → delivered or dead,
//! the same claim, retries and give-up), so that a subscriber's deletion takes its notices with
//! it and readers' deliveries never count toward an alert channel's health.

use async_trait::async_trait;

use super::StoreResult;
use super::dialect::{Dialect, Exec};
use super::model::DeliveryRecord;
use super::sql::{SqlStore, claim_due, settle};
use super::statement::Statement;

/// Unconfirmed subscriptions are forgotten after this long (7 days).
pub const UNCONFIRMED_KEPT_MS: i64 = 7 * 24 * 3_600_000;

/// One reader's subscription to one page.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SubscriberRecord {
    pub id: String,
    /// The page's id, or `default`.
    pub page_id: String,
    /// `email` or `webhook`.
    pub kind: String,
    /// The address or URL, sealed.
    pub address_enc: String,
    /// Keyed digest of the normalised address: finds it without opening every row.
    pub address_mac: String,
    /// The origin the reader subscribed on: the base of the links they are sent.
    pub base_url: String,
    pub confirmed_at: Option<i64>,
    /// When the last confirmation request was queued (bounds resends).
    pub confirm_sent_at: i64,
    pub created_at: i64,
}

/// A notice to one subscriber: a confirmation request, or a post's update. The delivery's
/// `event_id` is the post update's id (empty for a confirmation) and its `channel_id` the
/// subscriber's id, so the dispatcher's retry rules apply unchanged.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct NoticeRecord {
    /// `confirm` or `post`.
    pub kind: String,
    pub post_id: Option<String>,
    #[sqlx(flatten)]
    pub delivery: DeliveryRecord,
}

impl NoticeRecord {
    /// A confirmation request to `subscriber_id`, due at `at`.
    pub fn confirm(subscriber_id: &str, at: i64) -> Self {
        NoticeRecord {
            kind: "confirm".into(),
            post_id: None,
            delivery: DeliveryRecord::pending("", subscriber_id, at),
        }
    }

    /// Post update `update_id` of `post_id` to `subscriber_id`, due at `at`.
    pub fn post(post_id: &str, update_id: &str, subscriber_id: &str, at: i64) -> Self {
        NoticeRecord {
            kind: "post".into(),
            post_id: Some(post_id.to_string()),
            delivery: DeliveryRecord::pending(update_id, subscriber_id, at),
        }
    }
}

#[async_trait]
pub trait SubscriberStore: Send + Sync {
    /// A new, unconfirmed subscriber and its confirmation request, atomically.
    async fn insert_subscriber(
        &self,
        s: &SubscriberRecord,
        confirm: &NoticeRecord,
    ) -> StoreResult<()>;
    /// The subscriber of `page_id` with this kind and address digest.
    async fn find_subscriber(
        &self,
        page_id: &str,
        kind: &str,
        address_mac: &str,
    ) -> StoreResult<Option<SubscriberRecord>>;
    async fn get_subscriber(&self, id: &str) -> StoreResult<Option<SubscriberRecord>>;
    /// Queue another confirmation request for an unconfirmed subscriber.
    async fn resend_confirmation(&self, confirm: &NoticeRecord) -> StoreResult<()>;
    /// Mark confirmed (once); whether it was unconfirmed before.
    async fn confirm_subscriber(&self, id: &str, at: i64) -> StoreResult<bool>;
    /// Delete a subscriber with its notices; whether it existed.
    async fn delete_subscriber(&self, id: &str) -> StoreResult<bool>;
    /// Delete every subscriber with this address digest (on any page); how many.
    async fn delete_subscribers_by_mac(&self, address_mac: &str) -> StoreResult<u64>;
    /// Delete subscriptions never confirmed and created before `before`; how many.
    async fn forget_unconfirmed(&self, before: i64) -> StoreResult<u64>;
    /// Every subscriber, oldest first.
    async fn list_subscribers(&self) -> StoreResult<Vec<SubscriberRecord>>;
    /// Subscriptions created since `since` (confirmed or not): bounds sign-ups per hour.
    async fn subscribers_since(&self, since: i64) -> StoreResult<i64>;
    /// Claim due notices (as `claim_deliveries` does outbox rows).
    async fn claim_notices(
        &self,
        now: i64,
        lease_until: i64,
        limit: u32,
    ) -> StoreResult<Vec<NoticeRecord>>;
    /// Record a notice's attempt (status, attempts, next attempt, last answer).
    async fn finish_notice(&self, d: &DeliveryRecord) -> StoreResult<()>;
}

/// Columns of a notice, named as a delivery's.
const NOTICE_COLUMNS: &str = "kind, post_id, id, update_id AS event_id, \
     subscriber_id AS channel_id, status, attempts, next_attempt_at, lease_until, last_status, \
     last_error, created_at, delivered_at";

/// The row of a new notice.
pub(super) fn notice_row(n: &NoticeRecord) -> Statement<'_> {
    let d = &n.delivery;
    Statement::new(
        "INSERT INTO notices (id, subscriber_id, kind, post_id, update_id, status, attempts, \
         next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&d.id)
    .bind(&d.channel_id)
    .bind(&n.kind)
    .bind(&n.post_id)
    .bind(&d.event_id)
    .bind(d.status.as_str())
    .bind(d.attempts)
    .bind(d.next_attempt_at)
    .bind(d.created_at)
}

#[async_trait]
impl<D: Dialect> SubscriberStore for SqlStore<D> {
    async fn insert_subscriber(
        &self,
        s: &SubscriberRecord,
        confirm: &NoticeRecord,
    ) -> StoreResult<()> {
        let row = Statement::new(
            "INSERT INTO subscribers (id, page_id, kind, address_enc, address_mac, base_url, \
             confirmed_at, confirm_sent_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&s.id)
        .bind(&s.page_id)
        .bind(&s.kind)
        .bind(&s.address_enc)
        .bind(&s.address_mac)
        .bind(&s.base_url)
        .bind(s.confirmed_at)
        .bind(s.confirm_sent_at)
        .bind(s.created_at);
        let mut tx = self.begin().await?;
        D::execute(Exec::Tx(&mut tx), &row).await?;
        D::execute(Exec::Tx(&mut tx), &notice_row(confirm)).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn find_subscriber(
        &self,
        page_id: &str,
        kind: &str,
        address_mac: &str,
    ) -> StoreResult<Option<SubscriberRecord>> {
        let st = Statement::new(
            "SELECT * FROM subscribers WHERE page_id = ? AND kind = ? AND address_mac = ?",
        )
        .bind(page_id)
        .bind(kind)
        .bind(address_mac);
        self.first(st).await
    }

    async fn get_subscriber(&self, id: &str) -> StoreResult<Option<SubscriberRecord>> {
        self.first(Statement::new("SELECT * FROM subscribers WHERE id = ?").bind(id))
            .await
    }

    async fn resend_confirmation(&self, confirm: &NoticeRecord) -> StoreResult<()> {
        let sent = Statement::new("UPDATE subscribers SET confirm_sent_at = ? WHERE id = ?")
            .bind(confirm.delivery.created_at)
            .bind(&confirm.delivery.channel_id);
        let mut tx = self.begin().await?;
        D::execute(Exec::Tx(&mut tx), &sent).await?;
        D::execute(Exec::Tx(&mut tx), &notice_row(confirm)).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn confirm_subscriber(&self, id: &str, at: i64) -> StoreResult<bool> {
        let st = Statement::new(
            "UPDATE subscribers SET confirmed_at = ? WHERE id = ? AND confirmed_at IS NULL",
        )
        .bind(at)
        .bind(id);
        Ok(self.run(st).await? > 0)
    }

    async fn delete_subscriber(&self, id: &str) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let notices = Statement::new("DELETE FROM notices WHERE subscriber_id = ?").bind(id);
        D::execute(Exec::Tx(&mut tx), &notices).await?;
        let row = Statement::new("DELETE FROM subscribers WHERE id = ?").bind(id);
        let n = D::execute(Exec::Tx(&mut tx), &row).await?;
        tx.commit().await?;
        Ok(n > 0)
    }

    async fn delete_subscribers_by_mac(&self, address_mac: &str) -> StoreResult<u64> {
        let mut tx = self.begin().await?;
        let notices = Statement::new(
            "DELETE FROM notices WHERE subscriber_id IN \
             (SELECT id FROM subscribers WHERE address_mac = ?)",
        )
        .bind(address_mac);
        D::execute(Exec::Tx(&mut tx), &notices).await?;
        let rows =
            Statement::new("DELETE FROM subscribers WHERE address_mac = ?").bind(address_mac);
        let n = D::execute(Exec::Tx(&mut tx), &rows).await?;
        tx.commit().await?;
        Ok(n)
    }

    async fn forget_unconfirmed(&self, before: i64) -> StoreResult<u64> {
        let stale = "SELECT id FROM subscribers WHERE confirmed_at IS NULL AND created_at < ?";
        let mut tx = self.begin().await?;
        let notices = Statement::new(format!(
            "DELETE FROM notices WHERE subscriber_id IN ({stale})"
        ))
        .bind(before);
        D::execute(Exec::Tx(&mut tx), &notices).await?;
        let rows =
            Statement::new("DELETE FROM subscribers WHERE confirmed_at IS NULL AND created_at < ?")
                .bind(before);
        let n = D::execute(Exec::Tx(&mut tx), &rows).await?;
        tx.commit().await?;
        Ok(n)
    }

    async fn list_subscribers(&self) -> StoreResult<Vec<SubscriberRecord>> {
        self.all(Statement::new(
            "SELECT * FROM subscribers ORDER BY created_at, id",
        ))
        .await
    }

    async fn subscribers_since(&self, since: i64) -> StoreResult<i64> {
        let st =
            Statement::new("SELECT COUNT(*) FROM subscribers WHERE created_at >= ?").bind(since);
        Ok(self.first::<(i64,)>(st).await?.map_or(0, |(n,)| n))
    }

    async fn claim_notices(
        &self,
        now: i64,
        lease_until: i64,
        limit: u32,
    ) -> StoreResult<Vec<NoticeRecord>> {
        let st = claim_due::<D>("notices", NOTICE_COLUMNS, now, lease_until, limit);
        self.all(st).await
    }

    async fn finish_notice(&self, d: &DeliveryRecord) -> StoreResult<()> {
        let st = settle("notices", d);
        self.run(st).await?;
        Ok(())
    }
}
