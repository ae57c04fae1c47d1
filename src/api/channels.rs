//! `/api/v1/channels` and `/api/v1/deliveries`: where alerts go, and what happened to each.
//!
//! A webhook channel has a URL (checked against the address policy, like probe targets), a
//! format (`standard` | `slack` | `discord`), optional extra headers and, for `standard`, a
//! `whsec_` signing secret: generated when not given, shown once on creation, sealed at rest,
//! never returned again.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::error::{ApiError, ApiJson, BadInput, FieldError, Guarded, NoSuch, Taken};
use super::views::{
    ChannelList, ChannelView, CreatedChannel, DeliveryPage, DeliveryView, TestOutcome,
};
use super::{AppState, next_cursor, now_ms, page};
use crate::alert::{DEFAULT_EVENTS, EVENT_TYPES, webhook};
use crate::store::{ChannelKind, ChannelRecord, DeliveryStatus, EventRecord};

/// A channel as clients send it (POST: `name` and `url` required; PATCH: any subset).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelInput {
    pub(crate) name: Option<String>,
    /// `webhook` (default) or `email`.
    pub(crate) kind: Option<String>,
    /// Email addresses (email channels).
    recipients: Option<Vec<String>>,
    pub(crate) url: Option<String>,
    /// `standard` (default), `slack`, `discord` or `pagerduty` (Events API v2; `url` defaults
    /// to PagerDuty's, `routing_key` is required).
    pub(crate) format: Option<String>,
    /// The PagerDuty integration's routing key (write-only, sealed).
    routing_key: Option<String>,
    /// The Opsgenie API integration's key (write-only, sealed; sent as `GenieKey`).
    api_key: Option<String>,
    /// The Telegram bot's token (write-only, sealed).
    bot_token: Option<String>,
    /// The Telegram chat to send to (a number, or `@channelname`).
    chat_id: Option<String>,
    /// Extra request headers (write-only).
    headers: Option<std::collections::BTreeMap<String, String>>,
    /// The body of the `template` format: Jinja syntax over `type`, `timestamp`, `data` and
    /// `event` (the standard payload), e.g. `{"text": {{ data.server.name | tojson }}}`; checked
    /// when saved (the line and reason of an error); at most 16 KiB, rendering at most 64 KiB.
    pub(crate) template: Option<String>,
    /// A `whsec_…` secret for the standard format; generated when absent.
    pub(crate) secret: Option<String>,
    /// Server ids or slugs to follow; with `tags` empty too: every server.
    pub(crate) servers: Option<Vec<String>>,
    tags: Option<Vec<String>>,
    /// Event types; default: server.down, server.up, server.auth_failed, schema.changed.
    events: Option<Vec<String>>,
    /// Which schema changes to send: any of `breaking`, `security` (descriptions, titles,
    /// annotations: what a rug pull edits), `compatible`; empty (default): every change.
    drift: Option<Vec<String>>,
    pub(crate) enabled: Option<bool>,
    /// Remind (`server.still_down`) this often while a followed server is down; 0 turns it off
    /// (the default).
    reminder_interval_seconds: Option<i64>,
}

/// Invalid fields found so far, all reported at once.
type Problems = Vec<FieldError>;

fn problem(problems: &mut Problems) -> impl FnMut(&str, String) + '_ {
    |field: &str, message: String| {
        problems.push(FieldError {
            field: field.into(),
            message,
        })
    }
}

/// Validate `input` over `c`; returns a newly generated secret to show once.
pub(crate) async fn apply(
    app: &AppState,
    mut input: ChannelInput,
    c: &mut ChannelRecord,
    creating: bool,
) -> Result<Option<String>, ApiError> {
    let mut problems = Problems::new();
    apply_kind(app, &mut input, c, creating, &mut problems);
    let shown_secret = apply_target(app, &mut input, c, creating, &mut problems).await?;
    apply_following(app, &mut input, c, &mut problems).await?;
    if problems.is_empty() {
        Ok(shown_secret)
    } else {
        Err(ApiError::Invalid(problems))
    }
}

/// Name, kind (fixed once created), recipients and body format.
fn apply_kind(
    app: &AppState,
    input: &mut ChannelInput,
    c: &mut ChannelRecord,
    creating: bool,
    problems: &mut Problems,
) {
    let mut err = problem(problems);
    match input.name.take().map(|n| n.trim().to_string()) {
        Some(n) if n.is_empty() || n.len() > 200 => err("name", "must be 1-200 characters".into()),
        Some(n) => c.name = n,
        None if creating => err("name", "is required".into()),
        None => {}
    }
    match input.kind.as_deref().map(|k| (k, k.parse::<ChannelKind>())) {
        None => {}
        Some((_, Ok(ChannelKind::Webhook))) if creating => c.kind = ChannelKind::Webhook,
        Some((_, Ok(ChannelKind::Email))) if creating => {
            if app.settings.smtp_url.is_none() {
                err(
                    "kind",
                    "email channels need MCPWATCH_SMTP_URL and MCPWATCH_SMTP_FROM on the daemon"
                        .into(),
                );
            }
            c.kind = ChannelKind::Email;
            c.format = None;
        }
        Some((_, Ok(k))) if k != c.kind => err(
            "kind",
            "a channel's kind cannot change; create a new channel".into(),
        ),
        Some((_, Ok(_))) => {}
        Some((other, Err(_))) => err(
            "kind",
            format!("'{other}' is not a channel kind (webhook, email)"),
        ),
    }
    if let Some(recipients) = input.recipients.take() {
        match recipients
            .iter()
            .find(|r| r.parse::<lettre::message::Mailbox>().is_err())
        {
            Some(bad) => err("recipients", format!("'{bad}' is not an email address")),
            None if recipients.is_empty() => err("recipients", "needs at least one address".into()),
            None => c.recipients = recipients,
        }
    }
    if c.kind == ChannelKind::Email && c.recipients.is_empty() && creating {
        err(
            "recipients",
            "an email channel needs at least one address".into(),
        );
    }
    match input.format.as_deref() {
        None => {}
        Some(f)
            if [
                "standard",
                "pagerduty",
                "opsgenie",
                "ntfy",
                "telegram",
                "template",
            ]
            .contains(&f)
                || webhook::CHAT_FORMATS.contains(&f) =>
        {
            c.format = Some(f.to_string())
        }
        Some(other) => err(
            "format",
            format!(
                "'{other}' is not one of standard, pagerduty, opsgenie, ntfy, telegram, template, {}",
                webhook::CHAT_FORMATS.join(", ")
            ),
        ),
    }
}

/// The URL a vendor's format uses when the channel names none.
fn vendor_url(format: Option<&str>) -> Option<&'static str> {
    match format? {
        "pagerduty" => Some(crate::alert::pagerduty::EVENTS_URL),
        "opsgenie" => Some(crate::alert::opsgenie::ALERTS_URL),
        "telegram" => Some(crate::alert::telegram::API_URL),
        _ => None,
    }
}

/// A PagerDuty routing key, an Opsgenie API key or a Telegram bot token, sealed where other
/// channels keep their signing secret; each only for its format, required when such a channel
/// is created. A Telegram channel's chat id too.
fn apply_vendor_key(
    app: &AppState,
    input: &mut ChannelInput,
    c: &mut ChannelRecord,
    creating: bool,
    err: &mut impl FnMut(&str, String),
) -> Result<(), ApiError> {
    type Check = fn(&str) -> Result<(), String>;
    let keys: [(&str, &str, Option<String>, Check); 3] = [
        (
            "routing_key",
            "pagerduty",
            input.routing_key.take(),
            crate::alert::pagerduty::validate_routing_key,
        ),
        (
            "api_key",
            "opsgenie",
            input.api_key.take(),
            crate::alert::opsgenie::validate_api_key,
        ),
        (
            "bot_token",
            "telegram",
            input.bot_token.take(),
            crate::alert::telegram::validate_bot_token,
        ),
    ];
    let telegram = c.format.as_deref() == Some("telegram");
    match input.chat_id.take() {
        Some(_) if !telegram => err("chat_id", "only telegram channels take one".into()),
        Some(id) => match crate::alert::telegram::validate_chat_id(id.trim()) {
            Ok(()) => c.recipients = vec![id.trim().to_string()],
            Err(m) => err("chat_id", m),
        },
        None if creating && telegram => err("chat_id", "is required".into()),
        None => {}
    }
    for (field, format, given, check) in keys {
        let ours = c.format.as_deref() == Some(format);
        match given {
            Some(_) if !ours => err(field, format!("only {format} channels take one")),
            Some(k) => match check(k.trim()) {
                Ok(()) => {
                    let sealed = app.sealer.seal(k.trim().as_bytes());
                    c.secret_enc = Some(sealed.map_err(|e| ApiError::Internal(e.to_string()))?);
                }
                Err(m) => err(field, m),
            },
            None if creating && ours => err(field, "is required".into()),
            None => {}
        }
    }
    Ok(())
}

/// The body template: required by (and only for) the `template` format, checked now.
fn apply_template(
    input: &mut ChannelInput,
    c: &mut ChannelRecord,
    creating: bool,
    err: &mut impl FnMut(&str, String),
) {
    let templated = c.format.as_deref() == Some("template");
    match input.template.take() {
        Some(_) if !templated => err("template", "only template channels take one".into()),
        Some(t) => match crate::alert::template::check(&t) {
            Ok(()) => c.template = Some(t),
            Err(m) => err("template", m),
        },
        None if templated && (creating || c.template.is_none()) => {
            err("template", "is required by the template format".into())
        }
        None => {}
    }
    if !templated {
        c.template = None;
    }
}

/// Where deliveries go: the URL, extra headers (sealed) and the signing secret (sealed; a
/// generated one is returned to show once).
async fn apply_target(
    app: &AppState,
    input: &mut ChannelInput,
    c: &mut ChannelRecord,
    creating: bool,
    problems: &mut Problems,
) -> Result<Option<String>, ApiError> {
    let mut err = problem(problems);
    match input.url.take() {
        Some(_) if c.kind == ChannelKind::Email => {
            err("url", "email channels take recipients, not a URL".into())
        }
        Some(u) => match super::servers::validate_url(u.trim(), &app.settings.policy).await {
            Ok(()) => c.url = Some(u.trim().to_string()),
            Err(m) => err("url", m),
        },
        None if creating && vendor_url(c.format.as_deref()).is_some() => {
            c.url = vendor_url(c.format.as_deref()).map(str::to_string)
        }
        None if creating && c.kind == ChannelKind::Webhook => err("url", "is required".into()),
        None => {}
    }
    apply_vendor_key(app, input, c, creating, &mut err)?;
    apply_template(input, c, creating, &mut err);
    if let Some(h) = input.headers.take() {
        let bad = h.iter().find(|(k, v)| {
            !crate::probe::is_header_name(k)
                || v.bytes().any(|b| b.is_ascii_control() && b != b'\t')
        });
        if let Some((k, _)) = bad {
            err(
                "headers",
                format!(
                    "'{k}' is not a valid header (an HTTP field name; a value without control characters)"
                ),
            );
        } else {
            c.header_names = h.keys().cloned().collect();
            let plain = serde_json::to_vec(&h.into_iter().collect::<Vec<_>>()).unwrap_or_default();
            c.headers_enc = if c.header_names.is_empty() {
                None
            } else {
                Some(
                    app.sealer
                        .seal(&plain)
                        .map_err(|e| ApiError::Internal(e.to_string()))?,
                )
            };
        }
    }
    let mut shown_secret = None;
    match input.secret.take() {
        Some(s) => match webhook::validate_secret(&s) {
            Ok(()) => {
                c.secret_enc = Some(
                    app.sealer
                        .seal(s.as_bytes())
                        .map_err(|e| ApiError::Internal(e.to_string()))?,
                )
            }
            Err(e) => err("secret", e.to_string()),
        },
        None if creating
            && c.kind == ChannelKind::Webhook
            && c.format.as_deref() == Some("standard") =>
        {
            let s = webhook::new_secret().map_err(|e| ApiError::Internal(e.to_string()))?;
            c.secret_enc = Some(
                app.sealer
                    .seal(s.as_bytes())
                    .map_err(|e| ApiError::Internal(e.to_string()))?,
            );
            shown_secret = Some(s);
        }
        None => {}
    }
    Ok(shown_secret)
}

/// What it follows (servers, tags, event types), reminders and whether it is on.
async fn apply_following(
    app: &AppState,
    input: &mut ChannelInput,
    c: &mut ChannelRecord,
    problems: &mut Problems,
) -> Result<(), ApiError> {
    let mut err = problem(problems);
    if let Some(servers) = input.servers.take() {
        let mut ids = Vec::new();
        for s in servers {
            match app.store.get_server(&s).await? {
                Some(found) => ids.push(found.id),
                None => err("servers", format!("no server with id or slug '{s}'")),
            }
        }
        c.server_ids = ids;
    }
    if let Some(tags) = input.tags.take() {
        c.tags = tags;
    }
    if let Some(events) = input.events.take() {
        match events.iter().find(|e| !EVENT_TYPES.contains(&e.as_str())) {
            Some(bad) => err(
                "events",
                format!("'{bad}' is not an event type ({})", EVENT_TYPES.join(", ")),
            ),
            None if events.is_empty() => {
                err("events", "subscribe to at least one event type".into())
            }
            None => c.events = events,
        }
    }
    if let Some(drift) = input.drift.take() {
        let classes = &crate::alert::DRIFT_CLASSES;
        match drift.iter().find(|d| !classes.contains(&d.as_str())) {
            Some(bad) => err(
                "drift",
                format!(
                    "'{bad}' is not a class of schema change ({})",
                    classes.join(", ")
                ),
            ),
            None => {
                let mut drift = drift;
                drift.sort();
                drift.dedup();
                c.drift = drift;
            }
        }
    }
    match input.reminder_interval_seconds {
        None => {}
        Some(0) => c.reminder_interval_seconds = None,
        Some(s) if (300..=7 * 86_400).contains(&s) => c.reminder_interval_seconds = Some(s),
        Some(_) => err(
            "reminder_interval_seconds",
            "must be 0 (off) or between 300 and 604800".into(),
        ),
    }
    if let Some(e) = input.enabled {
        c.enabled = e;
        if e {
            c.disabled_reason = None;
        }
    }
    Ok(())
}

async fn find_channel(app: &AppState, id: &str) -> Result<ChannelRecord, ApiError> {
    app.store
        .get_channel(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no channel with id '{id}'")))
}

#[utoipa::path(post, path = "/channels", tag = "alerts", request_body = ChannelInput, responses((status = 201, description = "the channel; a generated secret is shown once", body = CreatedChannel), BadInput, Guarded), security(("bearer" = [])))]
pub async fn create(
    State(app): State<AppState>,
    ApiJson(input): ApiJson<ChannelInput>,
) -> Result<(StatusCode, Json<CreatedChannel>), ApiError> {
    let mut c = new_channel(now_ms());
    let secret = apply(&app, input, &mut c, true).await?;
    app.store.insert_channel(&c).await?;
    app.ingest.routing_changed().await;
    let mut channel = ChannelView::from(&c);
    let note = secret.map(|s| {
        channel.secret = Some(s);
        "the signing secret is shown only now; store it with the receiver".to_string()
    });
    Ok((StatusCode::CREATED, Json(CreatedChannel { channel, note })))
}

/// A new channel's defaults: a standard webhook following every server's default events.
pub(crate) fn new_channel(now: i64) -> ChannelRecord {
    ChannelRecord {
        id: uuid::Uuid::now_v7().to_string(),
        name: String::new(),
        kind: ChannelKind::Webhook,
        url: None,
        format: Some("standard".into()),
        headers_enc: None,
        header_names: Vec::new(),
        secret_enc: None,
        recipients: Vec::new(),
        server_ids: Vec::new(),
        tags: Vec::new(),
        events: DEFAULT_EVENTS.iter().map(|e| e.to_string()).collect(),
        drift: Vec::new(),
        enabled: true,
        disabled_reason: None,
        failing_since: None,
        reminder_interval_seconds: None,
        template: None,
        managed_by: None,
        created_at: now,
        updated_at: now,
    }
}

#[utoipa::path(get, path = "/channels", tag = "alerts", responses((status = 200, description = "every channel", body = ChannelList), Guarded), security(("bearer" = [])))]
pub async fn list(State(app): State<AppState>) -> Result<Json<ChannelList>, ApiError> {
    let all = app.store.list_channels().await?;
    Ok(Json(ChannelList {
        items: all.iter().map(ChannelView::from).collect(),
    }))
}

#[utoipa::path(get, path = "/channels/{id}", tag = "alerts", params(("id" = String, Path, description = "channel id")), responses((status = 200, description = "one channel", body = ChannelView), NoSuch, Guarded), security(("bearer" = [])))]
pub async fn get(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ChannelView>, ApiError> {
    Ok(Json(ChannelView::from(&find_channel(&app, &id).await?)))
}

#[utoipa::path(patch, path = "/channels/{id}", tag = "alerts", params(("id" = String, Path, description = "channel id")), request_body = ChannelInput, responses((status = 200, description = "the changed channel", body = ChannelView), BadInput, NoSuch, Taken, Guarded), security(("bearer" = [])))]
pub async fn update(
    State(app): State<AppState>,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<ChannelInput>,
) -> Result<Json<ChannelView>, ApiError> {
    let mut c = find_channel(&app, &id).await?;
    super::error::not_managed("channel", &c.name, &c.managed_by)?;
    apply(&app, input, &mut c, false).await?;
    c.updated_at = now_ms();
    app.store.update_channel(&c).await?;
    app.ingest.routing_changed().await;
    Ok(Json(ChannelView::from(&c)))
}

#[utoipa::path(delete, path = "/channels/{id}", tag = "alerts", params(("id" = String, Path, description = "channel id")), responses((status = 204, description = "deleted with its deliveries"), NoSuch, Taken, Guarded), security(("bearer" = [])))]
pub async fn delete(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let c = find_channel(&app, &id).await?;
    super::error::not_managed("channel", &c.name, &c.managed_by)?;
    if !app.store.delete_channel(&c.id).await? {
        return Err(ApiError::NotFound(format!("no channel with id '{id}'")));
    }
    app.ingest.routing_changed().await;
    Ok(StatusCode::NO_CONTENT)
}

/// Send a `test` event now and return the result (not stored as a delivery).
#[utoipa::path(post, path = "/channels/{id}/test", tag = "alerts", params(("id" = String, Path, description = "channel id")), responses((status = 200, description = "what the receiver answered", body = TestOutcome), NoSuch, Guarded), security(("bearer" = [])))]
pub async fn test(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<TestOutcome>, ApiError> {
    let c = find_channel(&app, &id).await?;
    let event = EventRecord {
        id: uuid::Uuid::now_v7().to_string(),
        server_id: None,
        kind: "test".into(),
        at: now_ms(),
        payload: json!({"message": "a test from mcpwatch", "channel": {"id": c.id, "name": c.name}}),
    };
    let delivery_id = format!("test-{}", event.id);
    let outcome = app.dispatcher.send(&c, &event, &delivery_id).await;
    Ok(Json(TestOutcome {
        delivered: outcome.delivered(),
        http_status: outcome.http_status,
        error: outcome.error,
        duration_ms: outcome.duration_ms,
        webhook_id: delivery_id,
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeliveriesQuery {
    /// pending, sending, delivered or dead.
    status: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

async fn delivery_page(
    app: &AppState,
    channel: Option<&str>,
    q: DeliveriesQuery,
) -> Result<Json<DeliveryPage>, ApiError> {
    let status = match q.status.as_deref().map(str::parse::<DeliveryStatus>) {
        Some(Err(_)) => {
            return Err(ApiError::field(
                "status",
                "must be one of pending, sending, delivered, dead",
            ));
        }
        Some(Ok(s)) => Some(s),
        None => None,
    };
    let pg = page(q.limit, q.cursor.as_deref())?;
    let rows = app.store.list_deliveries(channel, status, &pg).await?;
    let mut items = Vec::with_capacity(rows.len());
    for d in &rows {
        let attempts = app.store.list_attempts(&d.id).await?;
        items.push(DeliveryView::new(d, Some(&attempts)));
    }
    Ok(Json(DeliveryPage {
        items,
        next_cursor: next_cursor(&rows, pg.limit, |d| (d.created_at, d.id.clone())),
    }))
}

#[utoipa::path(get, path = "/channels/{id}/deliveries", tag = "alerts", params(("id" = String, Path, description = "channel id"), DeliveriesQuery), responses((status = 200, description = "deliveries with every attempt", body = DeliveryPage), BadInput, NoSuch, Guarded), security(("bearer" = [])))]
pub async fn channel_deliveries(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<DeliveriesQuery>,
) -> Result<Json<DeliveryPage>, ApiError> {
    let c = find_channel(&app, &id).await?;
    delivery_page(&app, Some(&c.id), q).await
}

#[utoipa::path(get, path = "/deliveries", tag = "alerts", params(DeliveriesQuery), responses((status = 200, description = "deliveries with every attempt", body = DeliveryPage), BadInput, Guarded), security(("bearer" = [])))]
pub async fn deliveries(
    State(app): State<AppState>,
    Query(q): Query<DeliveriesQuery>,
) -> Result<Json<DeliveryPage>, ApiError> {
    delivery_page(&app, None, q).await
}

/// Re-queue a dead delivery (same id, so receivers still dedupe).
#[utoipa::path(post, path = "/deliveries/{id}/retry", tag = "alerts", params(("id" = String, Path, description = "delivery id")), responses((status = 200, description = "queued again", body = DeliveryView), NoSuch, Taken, Guarded), security(("bearer" = [])))]
pub async fn retry(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<DeliveryView>, ApiError> {
    let d = app
        .store
        .get_delivery(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no delivery with id '{id}'")))?;
    if !app.store.requeue_delivery(&d.id, now_ms()).await? {
        return Err(ApiError::Conflict(format!(
            "delivery '{id}' is {}, only dead deliveries can be retried",
            d.status
        )));
    }
    app.dispatcher.wake.notify_one();
    let d = app.store.get_delivery(&id).await?.unwrap_or(d);
    Ok(Json(DeliveryView::new(&d, None)))
}
