//! Opsgenie Alert API (`format: "opsgenie"`): an outage creates an alert whose `alias` is the
//! incident id, and its recovery closes the alert of that alias; the API key (sealed, sent as
//! `Authorization: GenieKey …`) never appears in a body or a URL.

use serde_json::{Value, json};

use super::oncall::{Level, OnCall, on_call};
use crate::store::EventRecord;

/// Opsgenie's alert endpoint (EU accounts use `https://api.eu.opsgenie.com/v2/alerts`).
pub const ALERTS_URL: &str = "https://api.opsgenie.com/v2/alerts";

/// An API key of an Opsgenie API integration: a UUID.
pub fn validate_api_key(key: &str) -> Result<(), String> {
    uuid::Uuid::parse_str(key)
        .map(|_| ())
        .map_err(|_| "an Opsgenie API key is a UUID (an API integration's key)".into())
}

fn priority(level: Level) -> &'static str {
    match level {
        Level::Critical => "P1",
        Level::Error => "P2",
        Level::Warning => "P3",
        Level::Info => "P5",
    }
}

/// The URL and body for `event`, against the alerts endpoint `alerts_url`.
pub fn request(alerts_url: &str, event: &EventRecord, public_url: Option<&str>) -> (String, Value) {
    let headline = super::webhook::headline(event);
    let base = alerts_url.trim_end_matches('/');
    let (level, alias) = match on_call(event) {
        OnCall::Close { key } => {
            let url = format!("{base}/{}/close?identifierType=alias", urlencode(&key));
            return (url, json!({"source": "mcpwatch", "note": headline}));
        }
        OnCall::Open { level, key } => (level, key),
        OnCall::Change => (Level::Info, event.id.clone()),
    };
    let d = &event.payload;
    let mut description = d["failure"]["message"].as_str().unwrap_or("").to_string();
    if let (Some(base), Some(slug)) = (public_url, d["server"]["slug"].as_str()) {
        description.push_str(&format!("\nStatus page: {base}/s/{slug}"));
    }
    let body = json!({
        "message": headline.chars().take(130).collect::<String>(),
        "alias": alias,
        "description": description.trim(),
        "priority": priority(level),
        "source": "mcpwatch",
        "entity": d["server"]["slug"],
        "tags": ["mcpwatch", event.kind],
        "details": {"event": event.kind, "server": d["server"]["name"], "url": d["server"]["url"], "region": d["region"]},
    });
    (base.to_string(), body)
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::alert::oncall::test_event as event;

    #[test]
    fn an_outage_creates_by_incident_alias_and_its_recovery_closes_it() {
        let server = json!({"id": "srv", "slug": "weather", "name": "Weather", "url": "https://w.example/mcp"});
        let down = event(
            "server.down",
            json!({"server": server, "incident_id": "inc-7", "failure": {"message": "timed out"}}),
        );
        let (url, body) = request(ALERTS_URL, &down, Some("https://status.example"));
        assert_eq!(url, ALERTS_URL);
        assert_eq!(
            (body["alias"].as_str(), body["priority"].as_str()),
            (Some("inc-7"), Some("P1"))
        );
        assert!(
            body["description"]
                .as_str()
                .unwrap()
                .contains("https://status.example/s/weather")
        );
        let up = event(
            "server.up",
            json!({"server": server, "incident_id": "inc-7"}),
        );
        let (url, body) = request(ALERTS_URL, &up, None);
        assert_eq!(
            url,
            "https://api.opsgenie.com/v2/alerts/inc-7/close?identifierType=alias"
        );
        assert_eq!(body["source"], "mcpwatch");
        assert!(validate_api_key("3f0e2a1c-5b7d-4e2f-9a10-b2c3d4e5f607").is_ok());
        assert!(validate_api_key("not-a-key").is_err());
    }
}
