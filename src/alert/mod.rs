//! Events → channels, reliably.
//!
//! - Routing ([`routes_to`]): which channels an event goes to (servers, tags, event types).
//!   The ingest writes one outbox row per (event, matching channel) in the same transaction as
//!   the event, so a state change never exists without its deliveries.
//! - `dispatcher.rs`: claims due outbox rows (a lease; `FOR UPDATE SKIP LOCKED` on Postgres),
//!   sends, records every attempt, retries with backoff and jitter, gives up after 24 h.
//! - `webhook.rs`: Standard Webhooks signing and payload, Slack and Discord bodies.
//! - `oncall.rs`: what an event asks of an on-call tool (open at a level under a key, close a
//!   key, record a change); `pagerduty.rs` (Events API v2) and `opsgenie.rs` (Alert API) speak
//!   it to their vendors.
//! - `email.rs`: multipart text + HTML messages over SMTP.
//! - `notice.rs`: status page subscribers' notices (confirmation requests, post updates) by
//!   email with one-click unsubscribe, or by webhook, with the outbox's retry rules.
//!
//! Delivery is at least once; the outbox row id is the idempotency key (`webhook-id`), the
//! same on every retry and after a crash.

pub mod dispatcher;
pub mod email;
pub mod maintenance;
pub mod notice;
pub mod oncall;
pub mod opsgenie;
pub mod pagerduty;
pub mod telegram;
pub mod template;
pub mod webhook;

use std::time::Duration;

use crate::store::{ChannelRecord, ServerRecord};

/// Event types a channel gets when it names none (objectives' alerts come only where an
/// objective exists, so asking for them by default costs nothing).
pub const DEFAULT_EVENTS: [&str; 9] = [
    "server.down",
    "server.up",
    "server.auth_failed",
    "schema.changed",
    "region.silent",
    "slo.burning",
    "slo.recovered",
    "credential.expiring",
    "credential.expired",
];

/// Every event type a channel may subscribe to.
pub const EVENT_TYPES: [&str; 13] = [
    "server.down",
    "server.up",
    "server.degraded",
    "server.auth_failed",
    "schema.changed",
    "schema.inconsistent",
    "server.version_changed",
    "region.down",
    "region.silent",
    "slo.burning",
    "slo.recovered",
    "credential.expiring",
    "credential.expired",
];

/// Whether `channel` wants event `kind` about `server`.
pub fn routes_to<S: Scoped + ?Sized>(channel: &ChannelRecord, kind: &str, server: &S) -> bool {
    // Flapping and settling speak for the state alerts they replace.
    let wanted = match kind {
        "server.flapping" | "server.settled" => channel
            .events
            .iter()
            .any(|e| e == "server.down" || e == "server.up"),
        _ => channel.events.iter().any(|e| e == kind),
    };
    if !channel.enabled || !wanted {
        return false;
    }
    if channel.server_ids.is_empty() && channel.tags.is_empty() {
        return true;
    }
    names_server(&channel.server_ids, &channel.tags, server)
}

/// What routing reads of a server: its id and tags. The ingest keeps a compact copy of each
/// server's settings (not a whole [`ServerRecord`]), and routes by it.
pub trait Scoped {
    fn id(&self) -> &str;
    fn tags(&self) -> &[String];
}

impl Scoped for ServerRecord {
    fn id(&self) -> &str {
        &self.id
    }
    fn tags(&self) -> &[String] {
        &self.tags
    }
}

/// Whether a list of server ids or tags names `server`.
fn names_server<S: Scoped + ?Sized>(server_ids: &[String], tags: &[String], server: &S) -> bool {
    server_ids.iter().any(|id| id == server.id()) || tags.iter().any(|t| server.tags().contains(t))
}

/// The classes of schema change a channel may choose (`drift`): a change may be several.
pub const DRIFT_CLASSES: [&str; 3] = ["breaking", "security", "compatible"];

/// Whether `channel` is sent this event as far as its drift classes go: every event but a
/// `schema.changed`, and a `schema.changed` whose `breaking` / `security` flags (in its
/// payload) meet one of the classes it chose (none chosen: every change).
pub fn drift_wanted(channel: &ChannelRecord, kind: &str, payload: &serde_json::Value) -> bool {
    if kind != "schema.changed" || channel.drift.is_empty() {
        return true;
    }
    let breaking = payload["breaking"] == serde_json::Value::Bool(true);
    let security = payload["security"] == serde_json::Value::Bool(true);
    channel.drift.iter().any(|class| match class.as_str() {
        "breaking" => breaking,
        "security" => security,
        "compatible" => !breaking,
        _ => false,
    })
}

/// Retry schedule: 10 s, 30 s, 1 min, 2 min, 5 min, 10 min, 30 min, then hourly; ±20 %
/// jitter so a recovering receiver is not hit by every retry at once. After 24 h: dead.
pub const RETRY_SCHEDULE: [Duration; 7] = [
    Duration::from_secs(10),
    Duration::from_secs(30),
    Duration::from_secs(60),
    Duration::from_secs(120),
    Duration::from_secs(300),
    Duration::from_secs(600),
    Duration::from_secs(1800),
];

/// How long a delivery is retried before it is `dead`.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Delay before attempt number `attempts + 1`, with jitter from `unit` in [0, 1).
pub fn backoff(attempts: i64, unit: f64) -> Duration {
    let base = usize::try_from(attempts.max(1) - 1)
        .ok()
        .and_then(|i| RETRY_SCHEDULE.get(i).copied())
        .unwrap_or(Duration::from_secs(3600));
    base.mul_f64(0.8 + 0.4 * unit.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel(server_ids: &[&str], tags: &[&str]) -> ChannelRecord {
        ChannelRecord {
            template: None,
            managed_by: None,
            id: "c".into(),
            name: "c".into(),
            kind: crate::store::ChannelKind::Webhook,
            url: Some("https://hooks.example/x".into()),
            format: Some("standard".into()),
            headers_enc: None,
            header_names: vec![],
            secret_enc: None,
            recipients: vec![],
            server_ids: server_ids.iter().map(|s| s.to_string()).collect(),
            tags: tags.iter().map(|s| s.to_string()).collect(),
            events: DEFAULT_EVENTS.iter().map(|s| s.to_string()).collect(),
            drift: vec![],
            enabled: true,
            disabled_reason: None,
            failing_since: None,
            reminder_interval_seconds: None,
            created_at: 0,
            updated_at: 0,
        }
    }

    fn server(id: &str, tags: &[&str]) -> ServerRecord {
        ServerRecord {
            registry: None,
            paused_reason: None,
            oauth: None,
            oauth_enc: None,
            bearer_expires_at: None,
            calls: None,
            list_contract: true,
            managed_by: None,
            id: id.into(),
            slug: id.into(),
            name: id.into(),
            url: "https://x".into(),
            url_enc: None,
            header_names: vec![],
            headers_enc: None,
            interval_seconds: 60,
            timeout_seconds: 10,
            tags: tags.iter().map(|s| s.to_string()).collect(),
            public: false,
            paused: false,
            failures_to_down: 2,
            successes_to_up: 1,
            degraded_latency_ms: None,
            expect_auth: false,
            era_hint: None,
            created_at: 0,
            updated_at: 0,
            regions: vec![],
            quorum: None,
        }
    }

    #[test]
    fn a_channel_chooses_the_classes_of_schema_change_it_is_sent() {
        use serde_json::json;
        let wanting = |classes: &[&str]| ChannelRecord {
            drift: classes.iter().map(|c| c.to_string()).collect(),
            ..channel(&[], &[])
        };
        let rug_pull = json!({"breaking": false, "security": true});
        let removed_tool = json!({"breaking": true, "security": false});
        let added_tool = json!({"breaking": false, "security": false});
        let every = wanting(&[]);
        let security = wanting(&["security"]);
        let breaking_or_security = wanting(&["breaking", "security"]);
        let compatible = wanting(&["compatible"]);
        for (c, payload, sent) in [
            (&every, &added_tool, true),
            (&security, &rug_pull, true),
            (&security, &removed_tool, false),
            (&security, &added_tool, false),
            (&breaking_or_security, &removed_tool, true),
            (&breaking_or_security, &added_tool, false),
            (&compatible, &added_tool, true),
            (&compatible, &rug_pull, true),
            (&compatible, &removed_tool, false),
        ] {
            assert_eq!(
                drift_wanted(c, "schema.changed", payload),
                sent,
                "{:?} {payload}",
                c.drift
            );
        }
        assert!(
            drift_wanted(&security, "server.down", &json!({})),
            "other events are not filtered by drift"
        );
    }

    #[test]
    fn routing_by_server_tag_and_event_type() {
        let everything = channel(&[], &[]);
        assert!(routes_to(&everything, "server.down", &server("a", &[])));
        assert!(
            !routes_to(&everything, "server.degraded", &server("a", &[])),
            "not subscribed by default"
        );
        assert!(routes_to(
            &channel(&["a"], &[]),
            "server.up",
            &server("a", &[])
        ));
        assert!(!routes_to(
            &channel(&["a"], &[]),
            "server.up",
            &server("b", &[])
        ));
        assert!(routes_to(
            &channel(&[], &["prod"]),
            "server.up",
            &server("b", &["prod", "eu"])
        ));
        let mut off = everything.clone();
        off.enabled = false;
        assert!(!routes_to(&off, "server.down", &server("a", &[])));
    }

    #[test]
    fn backoff_follows_the_schedule_with_bounded_jitter() {
        assert_eq!(backoff(1, 0.5), Duration::from_secs(10));
        assert_eq!(backoff(2, 0.5), Duration::from_secs(30));
        assert_eq!(backoff(20, 0.5), Duration::from_secs(3600));
        assert_eq!(backoff(1, 0.0), Duration::from_secs(8));
        assert!(backoff(1, 0.999) < Duration::from_secs(12));
    }
}
