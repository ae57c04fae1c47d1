//! The dispatcher: claims due outbox rows, sends them, records every attempt.
//!
//! A claim is a lease (`lease`), so a dispatcher that dies mid-send leaves rows that another
//! (or the restarted) dispatcher takes over when the lease ends — with the same id, so the
//! receiver can dedupe. On Postgres, claims use `FOR UPDATE SKIP LOCKED`: several replicas
//! never send the same row at the same time. The clock is injected for tests.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::webhook;
use super::{GIVE_UP_AFTER, backoff};
use crate::probe::AddressPolicy;
use crate::secrets::Sealer;
use crate::store::{
    AttemptRecord, ChannelKind, ChannelRecord, DeliveryRecord, DeliveryStatus, EventRecord, Store,
};

/// Timeout of one webhook call.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest any one send may take, whatever it waits on (and always less than the lease).
const SEND_BOUND: Duration = Duration::from_secs(30);
/// Largest response body read from a receiver.
const RESPONSE_CAP: usize = 4096;
/// Rows claimed at once.
const BATCH: u32 = 32;
/// Failed attempts in a row that make a channel `failing`.
const FAILING_AFTER: u32 = 5;

pub use crate::clock::{Clock, system_clock};

/// What one send attempt produced.
#[derive(Debug, Clone, PartialEq)]
pub struct SendOutcome {
    pub http_status: Option<u16>,
    pub error: Option<String>,
    pub duration_ms: f64,
    /// A permanent refusal (a 5xx SMTP reply): retrying cannot help.
    pub permanent: bool,
}

impl SendOutcome {
    /// A 2xx from a webhook, or an email the SMTP server accepted.
    pub fn delivered(&self) -> bool {
        self.error.is_none() && self.http_status.is_none_or(|s| (200..300).contains(&s))
    }
}

/// Sends events to channels.
#[derive(Clone)]
pub struct Dispatcher {
    pub(super) store: Arc<dyn Store>,
    pub(super) sealer: Sealer,
    client: reqwest::Client,
    policy: AddressPolicy,
    public_url: Option<String>,
    pub(super) clock: Clock,
    pub(super) lease: Duration,
    pub(super) mailer: Option<super::email::Mailer>,
    metrics: Option<Arc<crate::metrics::Metrics>>,
    /// Serializes channel-health decisions, so concurrent sends raise one event.
    health: Arc<tokio::sync::Mutex<()>>,
    /// Notified when new rows are written, so delivery does not wait for the next poll.
    pub wake: Arc<Notify>,
    /// Set on the replica that leads: reminders and maintenance summaries are decided there
    /// only (deliveries themselves are claimed row by row by any replica).
    leader: Option<Arc<std::sync::atomic::AtomicBool>>,
}

impl Dispatcher {
    pub fn new(
        store: Arc<dyn Store>,
        sealer: Sealer,
        policy: AddressPolicy,
        public_url: Option<String>,
        clock: Clock,
        lease: Duration,
    ) -> Result<Self, String> {
        let client = crate::probe::guarded_client(policy.clone(), SEND_TIMEOUT)?;
        Ok(Dispatcher {
            store,
            sealer,
            client,
            policy,
            public_url,
            clock,
            lease,
            mailer: None,
            metrics: None,
            health: Arc::new(tokio::sync::Mutex::new(())),
            wake: Arc::new(Notify::new()),
            leader: None,
        })
    }

    /// Count deliveries in these metrics.
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Decide reminders and maintenance summaries only while `leader` is set.
    pub fn with_leader(mut self, leader: Arc<std::sync::atomic::AtomicBool>) -> Self {
        self.leader = Some(leader);
        self
    }

    /// Send email channels through this SMTP sender.
    pub fn with_mailer(mut self, mailer: super::email::Mailer) -> Self {
        self.mailer = Some(mailer);
        self
    }

    /// A send ends inside its lease, so no other dispatcher can take the row while it runs.
    pub(super) fn send_bound(&self) -> Duration {
        SEND_BOUND.min(self.lease.saturating_sub(Duration::from_secs(1)))
    }

    /// Deliver until `stop`; the batch in hand is finished first.
    pub async fn run(self, stop: CancellationToken) {
        loop {
            if stop.is_cancelled() {
                return;
            }
            let worked = match self.tick().await {
                Ok(n) => n > 0,
                Err(e) => {
                    tracing::warn!(error = %e, "dispatcher cannot claim deliveries; retrying");
                    false
                }
            };
            if !worked {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    }

    /// Claim and deliver one batch; returns how many rows it handled. Also sends the summary
    /// of every maintenance window that has ended.
    pub async fn tick(&self) -> Result<usize, crate::store::StoreError> {
        let now = (self.clock)();
        if self
            .leader
            .as_ref()
            .is_none_or(|l| l.load(std::sync::atomic::Ordering::Relaxed))
        {
            self.summarize_maintenance(now).await?;
            self.send_reminders(now).await?;
        }
        let lease_until = now + self.lease.as_millis() as i64;
        let rows = self.store.claim_deliveries(now, lease_until, BATCH).await?;
        let n = rows.len();
        let mut sends = tokio::task::JoinSet::new();
        for d in rows {
            let this = self.clone();
            sends.spawn(async move { this.deliver(d).await });
        }
        while sends.join_next().await.is_some() {}
        Ok(n + self.deliver_notices(now).await?)
    }

    /// Send `d` once, if its event and an enabled channel are there; otherwise why not.
    async fn attempt(
        &self,
        d: &DeliveryRecord,
        event: Option<&EventRecord>,
        channel: Option<&ChannelRecord>,
    ) -> SendOutcome {
        let refused = |error: String| SendOutcome {
            http_status: None,
            error: Some(error),
            duration_ms: 0.0,
            permanent: true,
        };
        match (event, channel) {
            // An outer bound: nothing inside a send (a pool, a stalled SMTP server) may hold
            // the dispatcher's batch forever.
            (Some(e), Some(c)) if c.enabled => {
                match tokio::time::timeout(self.send_bound(), self.send(c, e, &d.id)).await {
                    Ok(outcome) => outcome,
                    Err(_) => SendOutcome {
                        http_status: None,
                        error: Some(format!("no answer within {} s", SEND_BOUND.as_secs())),
                        duration_ms: SEND_BOUND.as_millis() as f64,
                        permanent: false,
                    },
                }
            }
            (_, Some(c)) if !c.enabled => refused(format!(
                "channel disabled: {}",
                c.disabled_reason.clone().unwrap_or_default()
            )),
            _ => refused("event or channel no longer exists".into()),
        }
    }

    async fn deliver(&self, mut d: DeliveryRecord) {
        let (event, channel) = match read_both(
            self.store.get_event(&d.event_id).await,
            self.store.get_channel(&d.channel_id).await,
        ) {
            Ok(both) => both,
            Err(e) => {
                // A database hiccup says nothing about the delivery: leave the row as it is;
                // its lease runs out and it is tried again, with the same id.
                tracing::warn!(delivery_id = %d.id, error = %e, "delivery postponed: its event or channel could not be read");
                return;
            }
        };
        let outcome = self.attempt(&d, event.as_ref(), channel.as_ref()).await;
        let now = (self.clock)();
        let unusable = event.is_none() || channel.as_ref().is_none_or(|c| !c.enabled);
        record_outcome(&mut d, &outcome, unusable, now);
        let gone = outcome.http_status == Some(410);
        if gone && let Some(mut c) = channel.clone() {
            c.enabled = false;
            c.disabled_reason = Some("the receiver answered 410 Gone".into());
            c.updated_at = now;
            let _ = self.store.update_channel(&c).await;
        }
        if let (Some(m), Some(c)) = (&self.metrics, &channel) {
            let outcome_label = match d.status {
                DeliveryStatus::Delivered => "delivered",
                DeliveryStatus::Dead => "dead",
                DeliveryStatus::Pending | DeliveryStatus::Sending => "retry",
            };
            m.delivery(c.kind.as_str(), outcome_label);
        }
        let attempt = AttemptRecord {
            id: uuid::Uuid::now_v7().to_string(),
            delivery_id: d.id.clone(),
            at: now,
            http_status: d.last_status,
            error: outcome.error.clone(),
            duration_ms: outcome.duration_ms,
        };
        tracing::info!(
            delivery_id = %d.id, channel_id = %d.channel_id, status = %d.status, attempts = d.attempts,
            http_status = outcome.http_status, "delivery attempt"
        );
        if let Err(e) = self.store.finish_delivery(&d, &attempt).await {
            // Not recorded: the lease runs out and the row is sent again, same id.
            tracing::error!(delivery_id = %d.id, error = %e, "delivery result not recorded");
            return;
        }
        // Health of real channels only: a test event or a vanished event says nothing.
        if let (Some(c), Some(_)) = (&channel, &event)
            && c.enabled
        {
            self.track_health(c, outcome.delivered(), outcome.error.as_deref(), now)
                .await;
        }
    }

    /// `server.still_down` to each channel with a reminder interval, for every followed server
    /// still down (or auth_failed) that long since the last alert — unless in maintenance.
    async fn send_reminders(&self, now: i64) -> Result<(), crate::store::StoreError> {
        let channels: Vec<ChannelRecord> = self
            .store
            .list_channels()
            .await?
            .into_iter()
            .filter(|c| c.enabled && c.reminder_interval_seconds.is_some())
            .collect();
        if channels.is_empty() {
            return Ok(());
        }
        let windows = self.store.list_windows().await?;
        for row in self.store.all_states().await? {
            let Some(state) = row.state else { continue };
            let Some(incident) = state.open_incident_id.as_deref().map(String::from) else {
                continue;
            };
            let in_maintenance = windows.iter().any(|w| {
                super::maintenance::covers(&w.server_ids, &w.tags, &row.server)
                    && super::maintenance::schedule_of(w)
                        .ok()
                        .and_then(|s| s.active_at(now))
                        .is_some()
            });
            if in_maintenance {
                continue;
            }
            for c in &channels {
                if !super::routes_to(c, "server.down", &row.server) {
                    continue;
                }
                let every = c.reminder_interval_seconds.unwrap_or(i64::MAX / 2_000) * 1000;
                let last = self
                    .store
                    .last_reminder(&c.id, &incident)
                    .await?
                    .unwrap_or(state.since);
                if now - last < every {
                    continue;
                }
                let event = EventRecord {
                    id: uuid::Uuid::now_v7().to_string(),
                    server_id: Some(row.server.id.clone()),
                    kind: "server.still_down".into(),
                    at: now,
                    payload: serde_json::json!({
                        "server": row.server.event_json(),
                        "state": state.status.as_str(), "since": crate::clock::rfc3339(state.since),
                        "down_for_seconds": (now - state.since) / 1000, "incident_id": incident,
                    }),
                };
                let mut writes = crate::store::BatchWrites::default();
                writes
                    .outbox
                    .push(DeliveryRecord::pending(&event.id, &c.id, now));
                writes.reminders.push((c.id.clone(), incident.clone(), now));
                writes.events.push(event);
                self.store.commit_batch(&writes).await?;
            }
        }
        Ok(())
    }

    /// For each server whose alerts a window held and whose occurrence has ended: one
    /// `maintenance.ended` event to the channels following it, if its state changed.
    async fn summarize_maintenance(&self, now: i64) -> Result<(), crate::store::StoreError> {
        let due = self.store.due_held(now).await?;
        if due.is_empty() {
            return Ok(());
        }
        let channels = self.store.list_channels().await?;
        let windows = self.store.list_windows().await?;
        for h in due {
            let mut writes = crate::store::BatchWrites::default();
            writes.held_summarized.push((
                h.window_id.clone(),
                h.occurrence_start,
                h.server_id.clone(),
            ));
            if let Some(server) = self.store.get_server(&h.server_id).await? {
                let (state, _) = self.store.load_state(&server.id).await?;
                let now_state = state
                    .map(|s| s.status.as_str().to_string())
                    .unwrap_or_else(|| "unknown".into());
                if now_state != h.state_before {
                    let window = windows
                        .iter()
                        .find(|w| w.id == h.window_id)
                        .map(|w| w.name.clone())
                        .unwrap_or_default();
                    let event = EventRecord {
                        id: uuid::Uuid::now_v7().to_string(),
                        server_id: Some(server.id.clone()),
                        kind: "maintenance.ended".into(),
                        at: now,
                        payload: serde_json::json!({
                            "server": server.event_json(),
                            "window": window, "from": h.state_before, "to": now_state,
                            "window_start": crate::clock::rfc3339(h.occurrence_start),
                            "window_end": crate::clock::rfc3339(h.occurrence_end),
                        }),
                    };
                    for c in channels.iter().filter(|c| {
                        c.enabled && super::maintenance::covers(&c.server_ids, &c.tags, &server)
                    }) {
                        writes
                            .outbox
                            .push(DeliveryRecord::pending(&event.id, &c.id, now));
                    }
                    writes.events.push(event);
                }
            }
            self.store.commit_batch(&writes).await?;
        }
        Ok(())
    }

    /// After an attempt: 5 failures in a row mark a channel failing and tell every other
    /// enabled channel once (`channel.failing`); its next success tells them it recovered.
    async fn track_health(
        &self,
        channel: &ChannelRecord,
        delivered: bool,
        last_error: Option<&str>,
        now: i64,
    ) {
        let _one_at_a_time = self.health.lock().await;
        // Re-read: another send may have changed the flag meanwhile.
        let Ok(Some(channel)) = self.store.get_channel(&channel.id).await else {
            return;
        };
        let channel = &channel;
        let kind = match (delivered, channel.failing_since) {
            (true, Some(_)) => "channel.recovered",
            (false, None) => {
                let recent = self
                    .store
                    .recent_channel_attempts(&channel.id, FAILING_AFTER)
                    .await
                    .unwrap_or_default();
                let all_failed = recent.len() as u32 == FAILING_AFTER
                    && recent.iter().all(|a| a.error.is_some());
                if !all_failed {
                    return;
                }
                "channel.failing"
            }
            _ => return,
        };
        let event = EventRecord {
            id: uuid::Uuid::now_v7().to_string(),
            server_id: None,
            kind: kind.to_string(),
            at: now,
            payload: serde_json::json!({
                "channel": {"id": channel.id, "name": channel.name, "kind": channel.kind},
                "last_error": last_error,
                "failing_since": channel.failing_since.map(crate::clock::rfc3339),
            }),
        };
        let mut writes = crate::store::BatchWrites::default();
        writes.channel_health.push((
            channel.id.clone(),
            (kind == "channel.failing").then_some(now),
        ));
        for other in self.store.list_channels().await.unwrap_or_default() {
            if other.id != channel.id && other.enabled {
                writes
                    .outbox
                    .push(DeliveryRecord::pending(&event.id, &other.id, now));
            }
        }
        writes.events.push(event);
        match self.store.commit_batch(&writes).await {
            Ok(()) => {
                tracing::warn!(channel_id = %channel.id, event = kind, "channel health changed");
                self.wake.notify_one();
            }
            Err(e) => {
                tracing::error!(channel_id = %channel.id, error = %e, "channel health not recorded")
            }
        }
    }

    /// Send one event to one channel now (also used by `POST /channels/{id}/test`).
    pub async fn send(
        &self,
        channel: &ChannelRecord,
        event: &EventRecord,
        delivery_id: &str,
    ) -> SendOutcome {
        let started = Instant::now();
        let (http_status, error, permanent) = if channel.kind == ChannelKind::Email {
            self.send_email(channel, event, delivery_id).await
        } else {
            let (status, error) = self.send_webhook(channel, event, delivery_id).await;
            (status, error, false)
        };
        SendOutcome {
            http_status,
            error,
            duration_ms: (started.elapsed().as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0,
            permanent,
        }
    }

    /// One email; the error, and whether retrying cannot help.
    async fn send_email(
        &self,
        channel: &ChannelRecord,
        event: &EventRecord,
        delivery_id: &str,
    ) -> (Option<u16>, Option<String>, bool) {
        let Some(mailer) = &self.mailer else {
            let why = "email channel, but MCPWATCH_SMTP_URL is not configured";
            return (None, Some(why.into()), false);
        };
        match mailer
            .send(channel, event, delivery_id, self.public_url.as_deref())
            .await
        {
            Ok(()) => (None, None, false),
            Err(e) => (None, Some(e.message), e.permanent),
        }
    }

    /// One webhook POST: the receiver's status and, unless 2xx, why it failed.
    async fn send_webhook(
        &self,
        channel: &ChannelRecord,
        event: &EventRecord,
        delivery_id: &str,
    ) -> (Option<u16>, Option<String>) {
        let (target, bytes, mut headers) = match self.request_for(channel, event, delivery_id) {
            Ok(request) => request,
            Err(e) => return (None, Some(e)),
        };
        // The format's content type first: a channel's own headers never replace it.
        headers
            .entry(CONTENT_TYPE)
            .or_insert(HeaderValue::from_static("application/json"));
        self.add_channel_headers(channel, &mut headers);
        self.post_to(&target, bytes, headers).await
    }

    /// POST `bytes` (JSON unless `headers` say otherwise) to `target` through the address
    /// policy: the receiver's status and, unless 2xx, why it failed.
    pub(super) async fn post_to(
        &self,
        target: &str,
        bytes: Vec<u8>,
        mut headers: HeaderMap,
    ) -> (Option<u16>, Option<String>) {
        let Ok(url) = url::Url::parse(target) else {
            return (None, Some("channel has no valid URL".into()));
        };
        let literal = match url.host() {
            Some(url::Host::Ipv4(v4)) => Some(std::net::IpAddr::V4(v4)),
            Some(url::Host::Ipv6(v6)) => Some(std::net::IpAddr::V6(v6)),
            _ => None,
        };
        if let Some(Err(b)) = literal.map(|ip| self.policy.check(ip)) {
            return (None, Some(format!("refused: {b}")));
        }
        headers
            .entry(CONTENT_TYPE)
            .or_insert(HeaderValue::from_static("application/json"));
        match self
            .client
            .post(url)
            .headers(headers)
            .body(bytes)
            .send()
            .await
        {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let snippet = read_snippet(resp).await;
                let error = (!(200..300).contains(&status)).then(|| {
                    let text = String::from_utf8_lossy(&snippet);
                    format!(
                        "HTTP {status}: {}",
                        text.chars().take(200).collect::<String>()
                    )
                });
                (Some(status), error)
            }
            Err(e) => (None, Some(crate::probe::redact_error(&e.without_url()))),
        }
    }

    /// The channel's key or secret, opened.
    fn opened_secret(&self, channel: &ChannelRecord) -> Option<String> {
        let plain = self.sealer.open(channel.secret_enc.as_deref()?).ok()?;
        Some(String::from_utf8_lossy(&plain).into_owned())
    }

    /// Where this event goes for this channel, the body in the channel's format, and the
    /// headers that format needs (Standard Webhooks signature, an Opsgenie key).
    fn request_for(
        &self,
        channel: &ChannelRecord,
        event: &EventRecord,
        delivery_id: &str,
    ) -> Result<(String, Vec<u8>, HeaderMap), String> {
        let url = channel.url.clone().ok_or("channel has no valid URL")?;
        let public = self.public_url.as_deref();
        let json = |v: &serde_json::Value| serde_json::to_vec(v).unwrap_or_default();
        match channel.format.as_deref().unwrap_or("standard") {
            "pagerduty" => {
                let key = self
                    .opened_secret(channel)
                    .ok_or("the routing key cannot be opened")?;
                let body = super::pagerduty::body(&key, event, public);
                let url = match super::pagerduty::is_change(event) {
                    true => super::pagerduty::change_url(&url),
                    false => url,
                };
                Ok((url, json(&body), HeaderMap::new()))
            }
            "opsgenie" => {
                let key = self
                    .opened_secret(channel)
                    .ok_or("the API key cannot be opened")?;
                let (url, body) = super::opsgenie::request(&url, event, public);
                let mut h = HeaderMap::new();
                let mut auth = HeaderValue::from_str(&format!("GenieKey {key}"))
                    .map_err(|_| "the API key is not a header value")?;
                auth.set_sensitive(true);
                h.insert(reqwest::header::AUTHORIZATION, auth);
                Ok((url, json(&body), h))
            }
            "telegram" => {
                let token = self
                    .opened_secret(channel)
                    .ok_or("the bot token cannot be opened")?;
                let chat = channel
                    .recipients
                    .first()
                    .ok_or("the channel has no chat id")?;
                let (url, body) = super::telegram::request(&url, &token, chat, event, public);
                Ok((url, json(&body), HeaderMap::new()))
            }
            "ntfy" => {
                let (text, fields) = webhook::ntfy_message(event, public);
                let mut h = HeaderMap::new();
                for (name, value) in fields {
                    if let Ok(v) = HeaderValue::from_str(&value) {
                        h.insert(name, v);
                    }
                }
                h.insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                );
                Ok((url, text.into_bytes(), h))
            }
            "template" => {
                let (body, h) = Self::template_body(channel, event, public)?;
                Ok((url, body, h))
            }
            f if webhook::CHAT_FORMATS.contains(&f) => Ok((
                url,
                json(&webhook::chat_body(f, event, public)),
                HeaderMap::new(),
            )),
            _ => {
                let (bytes, headers) = self.standard_body(channel, event, delivery_id)?;
                Ok((url, bytes, headers))
            }
        }
    }

    /// The channel's own template rendered for `event`, and its content type.
    fn template_body(
        channel: &ChannelRecord,
        event: &EventRecord,
        public: Option<&str>,
    ) -> Result<(Vec<u8>, HeaderMap), String> {
        let source = channel
            .template
            .as_deref()
            .ok_or("the channel has no template")?;
        let body = super::template::render(source, &webhook::payload(event, public))
            .map_err(|e| format!("the template does not render: {e}"))?;
        let mut h = HeaderMap::new();
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_static(super::template::content_type(&body)),
        );
        Ok((body.into_bytes(), h))
    }

    /// The Standard Webhooks body and headers. Serialized once: the signature covers exactly
    /// the bytes sent.
    fn standard_body(
        &self,
        channel: &ChannelRecord,
        event: &EventRecord,
        delivery_id: &str,
    ) -> Result<(Vec<u8>, HeaderMap), String> {
        let body = webhook::payload(event, self.public_url.as_deref());
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        let mut h = HeaderMap::new();
        let ts = (self.clock)() / 1000;
        if let Some(secret) = channel
            .secret_enc
            .as_deref()
            .and_then(|s| self.sealer.open(s).ok())
        {
            let secret = String::from_utf8_lossy(&secret).into_owned();
            let sig = webhook::sign(&secret, delivery_id, ts, &bytes).map_err(|e| e.to_string())?;
            if let Ok(v) = HeaderValue::from_str(&sig) {
                h.insert("webhook-signature", v);
            }
        }
        if let Ok(v) = HeaderValue::from_str(delivery_id) {
            h.insert("webhook-id", v);
        }
        h.insert("webhook-timestamp", HeaderValue::from(ts));
        Ok((bytes, h))
    }

    /// The channel's own headers (sealed at rest), marked sensitive; they never replace the
    /// signature or the content type.
    fn add_channel_headers(&self, channel: &ChannelRecord, headers: &mut HeaderMap) {
        let Some(Ok(plain)) = channel.headers_enc.as_deref().map(|s| self.sealer.open(s)) else {
            return;
        };
        let extra: Vec<(String, String)> = serde_json::from_slice(&plain).unwrap_or_default();
        for (k, v) in extra {
            if let (Ok(name), Ok(mut value)) = (
                HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_str(&v),
            ) {
                value.set_sensitive(true);
                if !headers.contains_key(&name) {
                    headers.insert(name, value);
                }
            }
        }
    }
}

/// A little of a response body (for the delivery log), never all of it.
async fn read_snippet(mut resp: reqwest::Response) -> Vec<u8> {
    let mut read = 0usize;
    let mut snippet = Vec::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        if read < RESPONSE_CAP {
            snippet.extend_from_slice(&chunk[..chunk.len().min(RESPONSE_CAP - read)]);
        }
        read += chunk.len();
        if read >= RESPONSE_CAP {
            break;
        }
    }
    snippet
}

/// What one attempt means for the delivery: delivered; dead (refused for good, unusable, or
/// retried past [`GIVE_UP_AFTER`]); or pending again after a backoff.
pub(super) fn record_outcome(
    d: &mut DeliveryRecord,
    outcome: &SendOutcome,
    unusable: bool,
    now: i64,
) {
    d.attempts += 1;
    d.last_status = outcome.http_status.map(i64::from);
    d.last_error = outcome.error.clone();
    let permanent = outcome.http_status == Some(410) || outcome.permanent;
    if outcome.delivered() {
        d.status = DeliveryStatus::Delivered;
        d.delivered_at = Some(now);
    } else if permanent || unusable || now - d.created_at >= GIVE_UP_AFTER.as_millis() as i64 {
        d.status = DeliveryStatus::Dead;
    } else {
        d.status = DeliveryStatus::Pending;
        d.next_attempt_at = now + backoff(d.attempts, jitter_unit()).as_millis() as i64;
    }
}

/// Both reads of a delivery, or the first read error. `Ok(None)` means gone for good (the
/// delivery dies); an error means "not now" and must never be taken for gone.
fn read_both<E, C>(
    event: Result<Option<E>, crate::store::StoreError>,
    channel: Result<Option<C>, crate::store::StoreError>,
) -> Result<(Option<E>, Option<C>), crate::store::StoreError> {
    Ok((event?, channel?))
}

fn jitter_unit() -> f64 {
    crate::secrets::random_bytes::<2>()
        .map(|b| f64::from(u16::from_be_bytes(b)) / 65536.0)
        .unwrap_or(0.5)
}
