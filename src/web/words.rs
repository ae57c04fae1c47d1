//! How states, failures, times and durations read on the status page: plain words, the same
//! everywhere (HTML, badges, `/status.json`).

use crate::probe::{FailureKind, Phase, Verdict};
use crate::store::LastSeen;

/// How a state shows: words, a shape (so colour is never the only signal) and a CSS class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateLook {
    /// The state's stable name (`/status.json`, CSS).
    pub key: &'static str,
    pub label: &'static str,
    /// A glyph drawn beside the label: ✓ up, ▲ degraded, ✕ down, ! auth, ❚❚ paused, ? unknown,
    /// ◆ maintenance.
    pub glyph: &'static str,
}

/// The look of a server state name (`up`, `down`, …); `maintenance` overrides while a window is
/// active.
pub fn state_look(state: &str) -> StateLook {
    let (key, label, glyph) = match state {
        "up" => ("up", "Operational", "✓"),
        "degraded" => ("degraded", "Degraded", "▲"),
        "down" => ("down", "Down", "✕"),
        "auth_failed" => ("auth_failed", "Credential refused", "!"),
        "paused" => ("paused", "Paused", "❚❚"),
        "maintenance" => ("maintenance", "Maintenance", "◆"),
        _ => ("unknown", "No data yet", "?"),
    };
    StateLook { key, label, glyph }
}

/// What went wrong in a failed result, in plain words: "tools/list timed out".
pub fn failure_words(r: &LastSeen) -> String {
    let phase = r.failure_phase.map_or("the probe", Phase::describe);
    match r.failure_kind {
        Some(FailureKind::Timeout) => format!("{phase} timed out"),
        Some(FailureKind::Dns) => "the host name did not resolve".to_string(),
        Some(FailureKind::Connect) => "the connection was refused or unreachable".to_string(),
        Some(FailureKind::Tls) => "the TLS handshake failed".to_string(),
        Some(FailureKind::HttpStatus) => match r.http_status {
            Some(code) => format!("HTTP {code} during {phase}"),
            None => format!("an unexpected HTTP status during {phase}"),
        },
        Some(FailureKind::NotMcp) => format!("HTTP answered, but not with MCP, during {phase}"),
        Some(FailureKind::Protocol) => match r.jsonrpc_code {
            Some(code) => format!("JSON-RPC error {code} during {phase}"),
            None => format!("a protocol error during {phase}"),
        },
        Some(FailureKind::EmptyTools) => "tools/list returned no tools".to_string(),
        Some(FailureKind::Blocked) => "the address is blocked by policy".to_string(),
        Some(FailureKind::TooLarge) => format!("the response was too large during {phase}"),
        Some(FailureKind::AuthDiscovery) => {
            "its OAuth discovery is broken: clients cannot log in".to_string()
        }
        Some(FailureKind::ToolCall) => "a tool call it is checked with failed".to_string(),
        Some(FailureKind::Streaming) => {
            "streaming tool calls do not stream: progress arrives only at the end".to_string()
        }
        _ if r.verdict == Verdict::AuthRequired => "credentials are required".to_string(),
        _ => format!("the probe failed during {phase}"),
    }
}

/// "tools/list timed out from eu-west" (one region), or "… from eu-west, us-east".
pub fn reason(words: &str, regions: &[String]) -> String {
    if regions.is_empty() {
        words.to_string()
    } else {
        format!("{words} from {}", regions.join(", "))
    }
}

/// A duration in the largest two units: "3 d 4 h", "12 min", "45 s".
pub fn duration(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    let (d, h, m) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s} s"),
        (0, 0, m) => format!("{m} min"),
        (0, h, 0) => format!("{h} h"),
        (0, h, m) => format!("{h} h {m} min"),
        (d, 0, _) => format!("{d} d"),
        (d, h, _) => format!("{d} d {h} h"),
    }
}

fn utc(ms: i64) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
}

/// "2026-11-23" (UTC).
pub fn date(ms: i64) -> String {
    utc(ms)
        .map(|t| format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day()))
        .unwrap_or_default()
}

/// "2026-11-23 14:05 UTC".
pub fn date_time(ms: i64) -> String {
    utc(ms)
        .map(|t| format!("{} {:02}:{:02} UTC", date(ms), t.hour(), t.minute()))
        .unwrap_or_default()
}

/// "99.95 %" with as many decimals as it takes to not say 100 % of an imperfect day.
pub fn percent(ratio: f64) -> String {
    let p = ratio * 100.0;
    if p >= 100.0 {
        "100 %".into()
    } else if p >= 99.0 {
        let two = format!("{:.2}", (p * 100.0).floor() / 100.0);
        format!("{two} %")
    } else {
        format!("{:.1} %", (p * 10.0).floor() / 10.0)
    }
}

/// "12 ms", "1.4 s".
pub fn latency(ms: f64) -> String {
    if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{:.1} s", ms / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_percentages_read_naturally() {
        assert_eq!(duration(45_000), "45 s");
        assert_eq!(duration(12 * 60_000 + 5_000), "12 min");
        assert_eq!(duration(2 * 3_600_000 + 5 * 60_000), "2 h 5 min");
        assert_eq!(duration(3 * 86_400_000 + 4 * 3_600_000 + 1), "3 d 4 h");
        assert_eq!(percent(1.0), "100 %");
        assert_eq!(percent(0.99999), "99.99 %", "never rounds up to 100");
        assert_eq!(percent(0.5), "50.0 %");
        assert_eq!(date_time(1_767_225_600_000), "2026-01-01 00:00 UTC");
        assert_eq!(latency(12.4), "12 ms");
        assert_eq!(latency(1420.0), "1.4 s");
    }

    #[test]
    fn every_state_has_words_and_a_shape() {
        for s in [
            "up",
            "degraded",
            "down",
            "auth_failed",
            "paused",
            "maintenance",
            "unknown",
        ] {
            let look = state_look(s);
            assert!(!look.label.is_empty() && !look.glyph.is_empty(), "{s}");
        }
        assert_eq!(state_look("whatever").key, "unknown");
    }
}
