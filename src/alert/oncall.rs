//! What an event asks of an on-call tool (PagerDuty, Opsgenie): open an alert at some level
//! under a key, close the alert of a key, or record a change. An outage's key is its incident
//! id, so its recovery closes exactly the alert it opened; a degraded server without an
//! outage has a key of its own per server; anything else is an alert of its own.

use crate::store::EventRecord;

/// How urgent an opened alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Down: people should act now.
    Critical,
    /// The probe's credential was refused.
    Error,
    /// Degraded, a region down or silent, a channel failing, flapping.
    Warning,
    /// Anything else a channel subscribes to.
    Info,
}

/// What to ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnCall {
    Open {
        level: Level,
        key: String,
    },
    Close {
        key: String,
    },
    /// A schema or version change (a change event where the tool has them).
    Change,
}

pub fn is_change(event: &EventRecord) -> bool {
    matches!(
        event.kind.as_str(),
        "schema.changed" | "server.version_changed"
    )
}

pub fn on_call(event: &EventRecord) -> OnCall {
    let d = &event.payload;
    let incident = d["incident_id"].as_str().map(str::to_string);
    let server = d["server"]["id"]
        .as_str()
        .or(event.server_id.as_deref())
        .unwrap_or("fleet");
    let degraded_key = format!("mcpwatch:degraded:{server}");
    let open = |level, key: Option<String>| OnCall::Open {
        level,
        key: key.unwrap_or_else(|| event.id.clone()),
    };
    match event.kind.as_str() {
        "server.down" | "server.still_down" => open(Level::Critical, incident),
        "server.auth_failed" => open(Level::Error, incident),
        "server.up" | "server.degraded" if incident.is_some() => OnCall::Close {
            key: incident.unwrap_or_default(),
        },
        "server.degraded" => open(Level::Warning, Some(degraded_key)),
        // One alert per objective while it burns: recovery closes exactly it.
        "slo.burning" => open(Level::Error, Some(slo_key(event))),
        "slo.recovered" => OnCall::Close {
            key: slo_key(event),
        },
        "server.up" => OnCall::Close { key: degraded_key },
        _ if is_change(event) => OnCall::Change,
        "credential.expired" => open(Level::Error, None),
        "region.down"
        | "region.silent"
        | "channel.failing"
        | "server.flapping"
        | "credential.expiring" => open(Level::Warning, None),
        _ => open(Level::Info, None),
    }
}

/// The key of an objective's burn-rate alert.
fn slo_key(event: &EventRecord) -> String {
    format!(
        "mcpwatch:slo:{}",
        event.payload["slo"]["id"].as_str().unwrap_or("?")
    )
}

/// An event of `kind` about server `srv`, for the vendors' tests.
#[cfg(test)]
pub(crate) fn test_event(kind: &str, payload: serde_json::Value) -> EventRecord {
    EventRecord {
        id: "ev-1".into(),
        server_id: Some("srv".into()),
        kind: kind.into(),
        at: 1_800_000_000_000,
        payload,
    }
}
