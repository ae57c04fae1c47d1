//! Webhook bodies and signatures.
//!
//! - `standard`: the Standard Webhooks spec. Headers `webhook-id` (the outbox row id: stable
//!   across retries, so receivers dedupe), `webhook-timestamp`, `webhook-signature`
//!   (`v1,` + base64 HMAC-SHA256 of `id.timestamp.body`, keyed by the base64 part of a
//!   `whsec_` secret). Body: the versioned payload `{type, id, timestamp, data}`.
//! - `slack` / `discord`: a readable message for an incoming-webhook URL.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::store::EventRecord;

/// Version of the JSON payload schema (documented in the README).
pub const PAYLOAD_VERSION: u32 = 1;

/// A `whsec_` secret whose key part is not base64 (or is empty).
#[derive(Debug, thiserror::Error)]
#[error("webhook secret must be 'whsec_' followed by base64 (the value is not shown)")]
pub struct BadSecret;

/// A new random signing secret.
pub fn new_secret() -> Result<String, crate::secrets::SecretError> {
    Ok(format!(
        "whsec_{}",
        STANDARD.encode(crate::secrets::random_bytes::<24>()?)
    ))
}

/// Check a secret's shape without using it.
pub fn validate_secret(secret: &str) -> Result<(), BadSecret> {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .map_err(|_| BadSecret)?;
    if key.is_empty() {
        Err(BadSecret)
    } else {
        Ok(())
    }
}

/// `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Result<String, BadSecret> {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .map_err(|_| BadSecret)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|_| BadSecret)?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(format!(
        "v1,{}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

/// The versioned payload: `{type, id, timestamp, version, data}`; `data` is the event's own
/// payload (server, states, region results, failure, diff…) plus a link to the server.
pub fn payload(event: &EventRecord, public_url: Option<&str>) -> Value {
    let mut data = event.payload.clone();
    if let (Some(base), Some(slug)) = (
        public_url,
        data["server"]["slug"].as_str().map(String::from),
    ) {
        data["link"] = json!(format!("{base}/s/{slug}"));
    }
    json!({
        "type": event.kind,
        "id": event.id,
        "timestamp": crate::clock::rfc3339(event.at),
        "version": PAYLOAD_VERSION,
        "data": data,
    })
}

/// One line saying what happened, for chat and email subjects:
/// "DOWN: Weather — timeout in tools_list from eu-west".
pub fn headline(event: &EventRecord) -> String {
    let d = &event.payload;
    let name = d["server"]["name"].as_str().unwrap_or("a server");
    let region = d["region"].as_str().unwrap_or("?");
    let failure = |d: &Value| {
        let f = &d["failure"];
        match (f["kind"].as_str(), f["phase"].as_str()) {
            (Some(kind), Some(phase)) => format!("{kind} in {phase} from {region}"),
            _ => format!("from {region}"),
        }
    };
    match event.kind.as_str() {
        "server.down" => format!("DOWN: {name} — {}", failure(d)),
        "server.up" => format!("UP: {name} is serving its tools again"),
        "server.degraded" => format!("DEGRADED: {name} — {}", failure(d)),
        "server.auth_failed" => {
            format!("AUTH FAILED: {name} — the probe credential was refused from {region}")
        }
        "schema.changed" => format!(
            "SCHEMA {}: {name} — {}",
            if d["breaking"] == true {
                "CHANGED (breaking)"
            } else {
                "CHANGED"
            },
            d["summary"].as_str().unwrap_or("")
        ),
        "schema.inconsistent" => {
            format!("SCHEMA INCONSISTENT: {name} — regions see different tool lists")
        }
        "server.version_changed" => format!(
            "VERSION: {name} — {} {} → {}",
            d["field"].as_str().unwrap_or("version"),
            d["from"].as_str().unwrap_or("?"),
            d["to"].as_str().unwrap_or("?")
        ),
        "region.down" => format!("REGION DOWN: {name} fails from {region} (below quorum)"),
        "region.silent" => format!(
            "REGION SILENT: {region} has not reported since {}; its missing results are not counted",
            d["last_seen"].as_str().unwrap_or("?")
        ),
        "test" => "TEST: mcpwatch can reach this channel".to_string(),
        "server.flapping" => format!(
            "FLAPPING: {name} changed state {} times in {} minutes; alerts held until it settles",
            d["changes"], d["window_minutes"]
        ),
        "server.still_down" => format!(
            "STILL {}: {name} for {} min (since {})",
            d["state"].as_str().unwrap_or("down").to_uppercase(),
            d["down_for_seconds"].as_i64().unwrap_or(0) / 60,
            d["since"].as_str().unwrap_or("?")
        ),
        "server.settled" => format!(
            "SETTLED: {name} is {} and stable again",
            d["state"].as_str().unwrap_or("?")
        ),
        "maintenance.ended" => format!(
            "AFTER MAINTENANCE: {name} is {} (was {} before '{}')",
            d["to"].as_str().unwrap_or("?"),
            d["from"].as_str().unwrap_or("?"),
            d["window"].as_str().unwrap_or("")
        ),
        "channel.failing" => format!(
            "CHANNEL FAILING: alerts to '{}' keep failing — {}",
            d["channel"]["name"].as_str().unwrap_or("?"),
            d["last_error"].as_str().unwrap_or("")
        ),
        "channel.recovered" => format!(
            "CHANNEL RECOVERED: alerts to '{}' are delivered again",
            d["channel"]["name"].as_str().unwrap_or("?")
        ),
        "slo.burning" => format!(
            "SLO BURNING: {} — {}× its error budget over 1 h ({}); {} of the budget left",
            d["slo"]["name"].as_str().unwrap_or("?"),
            rate(&d["figures"]["burn_rates"]["1h"]),
            d["rule"].as_str().unwrap_or("?"),
            share(&d["figures"]["budget_left"])
        ),
        "slo.recovered" => format!(
            "SLO RECOVERED: {} — burned for {} min; {} of the budget left",
            d["slo"]["name"].as_str().unwrap_or("?"),
            d["burned_for_seconds"].as_i64().unwrap_or(0) / 60,
            share(&d["figures"]["budget_left"])
        ),
        "credential.expiring" => format!(
            "CREDENTIAL EXPIRING: {} for {name} expires within {} ({}); rotate it before probes fail as auth_failed",
            d["credential_description"]
                .as_str()
                .unwrap_or("a credential"),
            d["lead"].as_str().unwrap_or("?"),
            d["expires_at"].as_str().unwrap_or("?")
        ),
        "credential.expired" => format!(
            "CREDENTIAL EXPIRED: {} for {name} expired at {}; probes will be refused until it is replaced",
            d["credential_description"]
                .as_str()
                .unwrap_or("a credential"),
            d["expires_at"].as_str().unwrap_or("?")
        ),
        other => format!("{other}: {name}"),
    }
}

/// A burn rate in words: "19.4".
fn rate(v: &Value) -> String {
    v.as_f64().map_or("?".into(), |r| format!("{:.1}", r))
}

/// A ratio as a percentage: "97.3 %".
fn share(v: &Value) -> String {
    v.as_f64()
        .map_or("?".into(), |r| format!("{:.1} %", r * 100.0))
}

/// The chat formats a webhook channel may use (besides `standard` and `pagerduty`).
pub const CHAT_FORMATS: [&str; 5] = ["slack", "discord", "teams", "googlechat", "mattermost"];

/// The body for a chat incoming webhook: Slack's `{"text"}` (also what Mattermost and
/// Rocket.Chat take, and Google Chat), Discord's `{"content"}`, or a Microsoft Teams Workflows
/// message carrying an Adaptive Card.
pub fn chat_body(format: &str, event: &EventRecord, public_url: Option<&str>) -> Value {
    let title = headline(event);
    let message = event.payload["failure"]["message"].as_str();
    let link = match (public_url, event.payload["server"]["slug"].as_str()) {
        (Some(base), Some(slug)) => Some(format!("{base}/s/{slug}")),
        _ => None,
    };
    if format == "teams" {
        return teams_card(&title, message, link.as_deref());
    }
    let mut text = title;
    if let Some(message) = message {
        text.push_str(&format!("\n> {message}"));
    }
    if let Some(link) = link {
        text.push_str(&format!("\n{link}"));
    }
    match format {
        "discord" => json!({"content": text}),
        _ => json!({"text": text}),
    }
}

/// An ntfy message (publish by POST to the topic URL): the failure and link as the plain-text
/// body, the headline as `Title`, and `Priority`, `Tags` and `Click` headers; an access token
/// goes in the channel's own `Authorization` header.
pub fn ntfy_message(
    event: &EventRecord,
    public_url: Option<&str>,
) -> (String, Vec<(&'static str, String)>) {
    use super::oncall::{Level, OnCall, on_call};
    let (priority, tag) = match on_call(event) {
        OnCall::Open {
            level: Level::Critical,
            ..
        } => ("5", "rotating_light"),
        OnCall::Open {
            level: Level::Error,
            ..
        } => ("4", "lock"),
        OnCall::Open {
            level: Level::Warning,
            ..
        } => ("4", "warning"),
        OnCall::Close { .. } => ("3", "white_check_mark"),
        _ => ("2", "information_source"),
    };
    let d = &event.payload;
    let link = match (public_url, d["server"]["slug"].as_str()) {
        (Some(base), Some(slug)) => Some(format!("{base}/s/{slug}")),
        _ => None,
    };
    let body = d["failure"]["message"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| headline(event));
    // Header values are ASCII-safe here: the headline's dash is spelled out.
    let title: String = headline(event)
        .replace('—', "-")
        .chars()
        .filter(|c| c.is_ascii() && !c.is_ascii_control())
        .collect();
    let mut headers = vec![
        ("Title", title),
        ("Priority", priority.to_string()),
        ("Tags", format!("{tag},mcpwatch")),
    ];
    if let Some(l) = link {
        headers.push(("Click", l));
    }
    (body, headers)
}

/// A Teams Workflows ("When a Teams webhook request is received") message: one Adaptive Card
/// with the headline, the failure and a button to the status page.
fn teams_card(title: &str, message: Option<&str>, link: Option<&str>) -> Value {
    let mut body = vec![
        json!({"type": "TextBlock", "text": title, "weight": "Bolder", "size": "Medium", "wrap": true}),
    ];
    if let Some(m) = message {
        body.push(json!({"type": "TextBlock", "text": m, "wrap": true, "isSubtle": true}));
    }
    let actions: Vec<Value> = link
        .map(|l| json!({"type": "Action.OpenUrl", "title": "Status page", "url": l}))
        .into_iter()
        .collect();
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": body,
                "actions": actions
            }
        }]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standard_webhooks_test_vector_reproduces() {
        let sig = sign(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            br#"{"test": 2432232314}"#,
        )
        .unwrap();
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn secrets_are_checked_and_generated() {
        assert!(validate_secret("whsec_!!!").is_err());
        assert!(validate_secret("whsec_").is_err());
        let s = new_secret().unwrap();
        assert!(s.starts_with("whsec_"));
        assert!(validate_secret(&s).is_ok());
    }

    #[test]
    fn headlines_say_what_happened_where() {
        let e = EventRecord {
            id: "e".into(),
            server_id: Some("s".into()),
            kind: "server.down".into(),
            at: 0,
            payload: json!({"server": {"name": "Weather", "slug": "weather"}, "region": "eu-west",
                "failure": {"kind": "timeout", "phase": "tools_list", "message": "no answer"}}),
        };
        assert_eq!(
            headline(&e),
            "DOWN: Weather — timeout in tools_list from eu-west"
        );
        let body = chat_body("slack", &e, Some("https://status.example"));
        assert_eq!(
            body["text"],
            "DOWN: Weather — timeout in tools_list from eu-west\n> no answer\nhttps://status.example/s/weather"
        );
        assert!(chat_body("discord", &e, None)["content"].is_string());
        let p = payload(&e, Some("https://status.example"));
        assert_eq!(
            (p["type"].as_str(), p["version"].as_u64()),
            (Some("server.down"), Some(1))
        );
        assert_eq!(p["data"]["link"], "https://status.example/s/weather");
    }
}
