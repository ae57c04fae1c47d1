//! W3C Trace Context for probes: one trace per probe, one span per request.
//!
//! Every request a probe sends carries `traceparent` as an HTTP header, and every JSON-RPC
//! request also in `params._meta.traceparent` (the 2026-07-28 spec reserves the key for
//! OpenTelemetry propagation; older servers ignore unknown `_meta` keys). The trace id goes in
//! the report, so an operator can find mcpwatch's probes in the server's own traces and logs.
//! The sampled flag is set: a probe is rare and exactly what an operator wants to see.
//!
//! Hand-written rather than the `opentelemetry` crate: we only mint ids and format one header,
//! and the SDK would bring an exporter pipeline we do not use.

use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::Value;

/// The header and `_meta` key.
pub const TRACEPARENT: &str = "traceparent";

/// One probe's trace.
#[derive(Debug, Clone)]
pub(crate) struct Trace {
    trace_id: String,
}

impl Trace {
    /// A fresh random trace (never the all-zero id the spec forbids).
    pub(crate) fn new() -> Self {
        Trace {
            trace_id: random_hex::<16>(),
        }
    }

    /// 32 lowercase hex digits.
    pub(crate) fn trace_id(&self) -> &str {
        &self.trace_id
    }

    /// A `traceparent` value for one more request: version 00, this trace, a new span, sampled.
    pub(crate) fn traceparent(&self) -> String {
        format!("00-{}-{}-01", self.trace_id, random_hex::<8>())
    }
}

/// `params._meta.traceparent` added to a JSON-RPC request, keeping any other `_meta` keys.
pub(crate) fn add_to_meta(message: &mut Value, traceparent: String) {
    let Some(params) = message.get_mut("params").and_then(Value::as_object_mut) else {
        return;
    };
    let meta = params
        .entry("_meta")
        .or_insert_with(|| Value::Object(Default::default()));
    if let Some(meta) = meta.as_object_mut() {
        meta.insert(TRACEPARENT.to_string(), Value::String(traceparent));
    }
}

/// The header for a message: the span its `_meta` names, so both point at the same request.
pub(crate) fn header_for(message: &Value, headers: &mut HeaderMap) {
    let named = message
        .pointer("/params/_meta/traceparent")
        .and_then(Value::as_str)
        .and_then(|v| HeaderValue::from_str(v).ok());
    if let Some(value) = named {
        headers.insert(TRACEPARENT, value);
    }
}

/// `N` random bytes as hex, retried until not all zero (a zero id is invalid in W3C).
fn random_hex<const N: usize>() -> String {
    let mut bytes = [0u8; N];
    loop {
        // getrandom fails only when the OS has no entropy source at all; a fixed id is
        // then still a valid, if unhelpful, trace id.
        if getrandom::fill(&mut bytes).is_err() {
            bytes = [0x5a; N];
        }
        if bytes.iter().any(|b| *b != 0) {
            return bytes.iter().map(|b| format!("{b:02x}")).collect();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_traceparent_is_well_formed_and_each_request_gets_its_own_span() {
        let trace = Trace::new();
        let (a, b) = (trace.traceparent(), trace.traceparent());
        for tp in [&a, &b] {
            let parts: Vec<&str> = tp.split('-').collect();
            assert_eq!(parts.len(), 4, "{tp}");
            assert_eq!(parts[0], "00");
            assert_eq!(parts[1], trace.trace_id());
            assert_eq!(parts[1].len(), 32);
            assert_eq!(parts[2].len(), 16);
            assert_eq!(parts[3], "01");
            assert!(tp.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
            assert!(!tp.chars().any(|c| c.is_ascii_uppercase()));
        }
        assert_ne!(a, b);
        assert_ne!(Trace::new().trace_id(), trace.trace_id());
    }

    #[test]
    fn meta_keeps_other_keys_and_the_header_names_the_same_span() {
        let mut message = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list",
                                 "params": {"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}}});
        add_to_meta(&mut message, "00-aa-bb-01".into());
        assert_eq!(
            message["params"]["_meta"],
            json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28", "traceparent": "00-aa-bb-01"})
        );
        let mut headers = HeaderMap::new();
        header_for(&message, &mut headers);
        assert_eq!(headers[TRACEPARENT], "00-aa-bb-01");
        let mut note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        add_to_meta(&mut note, "00-aa-cc-01".into());
        assert!(
            note.get("params").is_none(),
            "a notification without params stays as it is"
        );
    }
}
