//! The watchdog's loop: every minute, on the replica that leads, each server's credentials
//! with a known expiry; the metric set; and the warning due, sent once (the store refuses a
//! warning already sent, whichever leader tries).

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use serde_json::json;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{Expiry, Stage, due, expiries, lead_words};
use crate::alert::routes_to;
use crate::clock::{Clock, rfc3339};
use crate::metrics::Metrics;
use crate::store::{
    ChannelRecord, CredentialWarning, DeliveryRecord, EventRecord, ServerRecord, Store, StoreResult,
};

/// How often credentials are looked at (lead times are days; a minute late is nothing).
pub const EVERY: Duration = Duration::from_secs(60);

/// Warns before probe credentials expire; alerts go through the outbox.
pub struct CredentialWatch {
    pub store: Arc<dyn Store>,
    pub clock: Clock,
    pub metrics: Option<Arc<Metrics>>,
    /// The dispatcher's doorbell.
    pub wake: Arc<Notify>,
    /// Lead times, longest first.
    pub leads: Vec<Duration>,
}

impl CredentialWatch {
    /// Every `EVERY` while `leader` is set, until `stop`.
    pub async fn run(self, leader: Arc<AtomicBool>, stop: CancellationToken) {
        let what = "credentials not checked";
        crate::cluster::while_leading((EVERY, what), leader, stop, || self.tick()).await;
    }

    /// Look at every server's credentials once; the warnings this call sent.
    pub async fn tick(&self) -> StoreResult<Vec<EventRecord>> {
        let now = (self.clock)();
        let servers = self.store.servers_with_expiring_credentials().await?;
        if let Some(m) = &self.metrics {
            m.credential_expiry.reset();
        }
        let mut channels: Option<Vec<ChannelRecord>> = None;
        let mut sent = Vec::new();
        for server in &servers {
            for expiry in expiries(server) {
                self.export(server, &expiry);
                // A paused server is not probed: its credential lapsing harms nothing yet.
                let Some(stage) =
                    due(expiry.expires_at, now, &self.leads).filter(|_| !server.paused)
                else {
                    continue;
                };
                if channels.is_none() {
                    channels = Some(self.store.list_channels().await?);
                }
                let channels = channels.as_deref().unwrap_or_default();
                if let Some(event) = self.warn(server, &expiry, stage, channels, now).await? {
                    sent.push(event);
                }
            }
        }
        Ok(sent)
    }

    /// Send the warning unless it went out already.
    async fn warn(
        &self,
        server: &ServerRecord,
        expiry: &Expiry,
        stage: Stage,
        channels: &[ChannelRecord],
        now: i64,
    ) -> StoreResult<Option<EventRecord>> {
        let event = warning_event(server, expiry, stage, now);
        let outbox: Vec<DeliveryRecord> = channels
            .iter()
            .filter(|c| routes_to(c, &event.kind, server))
            .map(|c| DeliveryRecord::pending(&event.id, &c.id, now))
            .collect();
        let key = stage.key();
        let warning = CredentialWarning {
            server_id: &server.id,
            credential: expiry.credential.as_str(),
            expires_at: expiry.expires_at,
            stage: &key,
            event: &event,
            outbox: &outbox,
        };
        if !self.store.record_credential_warning(&warning).await? {
            return Ok(None);
        }
        tracing::warn!(
            server = %server.slug,
            credential = expiry.credential.as_str(),
            expires_at = %rfc3339(expiry.expires_at),
            event = %event.kind,
            "probe credential expiry"
        );
        self.wake.notify_one();
        Ok(Some(event))
    }

    fn export(&self, server: &ServerRecord, expiry: &Expiry) {
        if let Some(m) = &self.metrics {
            m.credential_expiry
                .with_label_values(&[server.slug.as_str(), expiry.credential.as_str()])
                .set(expiry.expires_at.div_euclid(1000));
        }
    }
}

/// `credential.expiring` (with the lead time reached) or `credential.expired`.
fn warning_event(server: &ServerRecord, expiry: &Expiry, stage: Stage, now: i64) -> EventRecord {
    let mut payload = json!({
        "server": server.event_json(),
        "credential": expiry.credential.as_str(),
        "credential_description": expiry.credential.describe(),
        "expires_at": rfc3339(expiry.expires_at),
        "expires_in_seconds": (expiry.expires_at - now).max(0) / 1000,
    });
    let kind = match stage {
        Stage::Expiring(lead) => {
            payload["lead"] = json!(lead_words(lead));
            payload["lead_seconds"] = json!(lead.as_secs());
            "credential.expiring"
        }
        Stage::Expired => "credential.expired",
    };
    EventRecord {
        id: uuid::Uuid::now_v7().to_string(),
        server_id: Some(server.id.clone()),
        kind: kind.into(),
        at: now,
        payload,
    }
}
