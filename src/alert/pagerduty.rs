//! PagerDuty Events API v2 (`format: "pagerduty"` webhooks): an outage triggers an alert
//! whose `dedup_key` is the incident id, and the recovery resolves that same alert; a schema
//! or version change is a change event; anything else a channel subscribes to triggers an
//! `info` alert of its own. The routing key is sealed at rest like other channel secrets and
//! sent only in the body PagerDuty reads it from.

use serde_json::{Value, json};

use super::oncall::{Level, OnCall, on_call};
use crate::store::EventRecord;

/// Where PagerDuty takes events (a channel's URL when it does not name another).
pub const EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// A routing (integration) key: 32 letters and digits.
pub fn validate_routing_key(key: &str) -> Result<(), String> {
    if key.len() == 32 && key.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(())
    } else {
        Err(
            "a PagerDuty routing key is 32 letters and digits (Events API v2 integration key)"
                .into(),
        )
    }
}

pub use super::oncall::is_change;

/// The change-events URL beside an events URL (`…/v2/enqueue` → `…/v2/change/enqueue`).
pub fn change_url(events_url: &str) -> String {
    match events_url.strip_suffix("/v2/enqueue") {
        Some(base) => format!("{base}/v2/change/enqueue"),
        None => events_url.to_string(),
    }
}

/// PagerDuty's word for a level.
fn severity(level: Level) -> &'static str {
    match level {
        Level::Critical => "critical",
        Level::Error => "error",
        Level::Warning => "warning",
        Level::Info => "info",
    }
}

/// The body for `event`, with `routing_key`.
pub fn body(routing_key: &str, event: &EventRecord, public_url: Option<&str>) -> Value {
    let summary: String = super::webhook::headline(event).chars().take(1024).collect();
    let d = &event.payload;
    let source = d["server"]["url"]
        .as_str()
        .or(d["server"]["slug"].as_str())
        .unwrap_or("mcpwatch")
        .to_string();
    let links: Vec<Value> = match (public_url, d["server"]["slug"].as_str()) {
        (Some(base), Some(slug)) => {
            vec![json!({"href": format!("{base}/s/{slug}"), "text": "Status page"})]
        }
        _ => Vec::new(),
    };
    let timestamp = crate::clock::rfc3339(event.at);
    match on_call(event) {
        OnCall::Close { key: dedup_key } => json!({
            "routing_key": routing_key,
            "event_action": "resolve",
            "dedup_key": dedup_key,
        }),
        OnCall::Change => json!({
            "routing_key": routing_key,
            "payload": {"summary": summary, "timestamp": timestamp, "source": source, "custom_details": d},
            "links": links,
        }),
        OnCall::Open {
            level,
            key: dedup_key,
        } => json!({
            "routing_key": routing_key,
            "event_action": "trigger",
            "dedup_key": dedup_key,
            "payload": {
                "summary": summary,
                "source": source,
                "severity": severity(level),
                "timestamp": timestamp,
                "component": d["server"]["slug"],
                "class": event.kind,
                "custom_details": d,
            },
            "links": links,
            "client": "mcpwatch",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::alert::oncall::test_event as event;

    const KEY: &str = "R0UTINGKEY0123456789abcdefABCDEF";

    #[test]
    fn an_outage_triggers_by_incident_and_its_recovery_resolves_the_same_alert() {
        let server = json!({"id": "srv", "slug": "weather", "name": "Weather", "url": "https://w.example/mcp"});
        let down = event(
            "server.down",
            json!({"server": server, "incident_id": "inc-7", "region": "eu", "failure": {"kind": "timeout", "phase": "tools_list"}}),
        );
        let b = body(KEY, &down, Some("https://status.example"));
        assert_eq!(b["event_action"], "trigger");
        assert_eq!(b["dedup_key"], "inc-7");
        assert_eq!(b["routing_key"], KEY);
        assert_eq!(b["payload"]["severity"], "critical");
        assert_eq!(b["payload"]["source"], "https://w.example/mcp");
        assert!(
            b["payload"]["summary"]
                .as_str()
                .unwrap()
                .starts_with("DOWN: Weather")
        );
        assert_eq!(b["links"][0]["href"], "https://status.example/s/weather");
        let up = event(
            "server.up",
            json!({"server": server, "incident_id": "inc-7"}),
        );
        let b = body(KEY, &up, None);
        assert_eq!(
            (b["event_action"].as_str(), b["dedup_key"].as_str()),
            (Some("resolve"), Some("inc-7"))
        );
        assert!(b.get("payload").is_none());
    }

    #[test]
    fn changes_go_to_the_change_endpoint_and_keys_are_checked() {
        let changed = event(
            "schema.changed",
            json!({"server": {"slug": "weather"}, "summary": "1 tool added"}),
        );
        assert!(is_change(&changed));
        assert!(body(KEY, &changed, None).get("event_action").is_none());
        assert_eq!(
            change_url(EVENTS_URL),
            "https://events.pagerduty.com/v2/change/enqueue"
        );
        assert!(validate_routing_key(KEY).is_ok());
        assert!(validate_routing_key("short").is_err());
        assert!(validate_routing_key(&"x".repeat(31).replace('x', "-")).is_err());
    }
}
