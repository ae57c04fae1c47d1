//! The fields of a server, channel or window as a plan compares and shows them. Sealed values
//! (probe headers, credentials in a URL, signing secrets, vendor keys) are compared opened,
//! by digest, and shown only as "(sensitive)".

use std::collections::BTreeMap;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::clock::rfc3339;
use crate::secrets::Sealer;
use crate::store::{ChannelRecord, ServerRecord, WindowRecord};

/// A field's value as compared and shown.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Shown {
    Plain(Value),
    /// The digest of the opened value (or of the sealed text when it does not open, so that
    /// an apply writes it again).
    Secret([u8; 32]),
}

impl Shown {
    pub(super) fn render(&self) -> String {
        match self {
            Shown::Plain(v) => v.to_string(),
            Shown::Secret(_) => "(sensitive)".into(),
        }
    }
}

/// Field name → value; absent fields are unset.
pub(super) type Fields = BTreeMap<String, Shown>;

fn plain(fields: &mut Fields, name: &str, v: Value) {
    if !v.is_null() {
        fields.insert(name.to_string(), Shown::Plain(v));
    }
}

/// The opened plaintext of `sealed`, as a digest.
fn secret(sealed: &str, sealer: &Sealer) -> Shown {
    let bytes = sealer
        .open(sealed)
        .unwrap_or_else(|_| sealed.as_bytes().to_vec());
    Shown::Secret(Sha256::digest(bytes).into())
}

/// `headers.<Name>` for each sealed header.
fn headers(fields: &mut Fields, names: &[String], sealed: Option<&str>, sealer: &Sealer) {
    let opened: Vec<(String, String)> = sealed
        .and_then(|s| sealer.open(s).ok())
        .and_then(|plain| serde_json::from_slice(&plain).ok())
        .unwrap_or_default();
    for name in names {
        let value = opened
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| Sha256::digest(v.as_bytes()).into())
            // Unreadable: differs from anything, so the apply seals it again.
            .unwrap_or([0xff; 32]);
        fields.insert(format!("headers.{name}"), Shown::Secret(value));
    }
}

pub(super) fn server_fields(s: &ServerRecord, sealer: &Sealer) -> Fields {
    let mut f = Fields::new();
    plain(&mut f, "name", json!(s.name));
    match &s.url_enc {
        Some(sealed) => {
            f.insert("url".into(), secret(sealed, sealer));
        }
        None => plain(&mut f, "url", json!(s.url)),
    }
    headers(&mut f, &s.header_names, s.headers_enc.as_deref(), sealer);
    if let Some(shown) = s.oauth_shown() {
        plain(&mut f, "oauth", json!(shown));
    }
    if let Some(sealed) = &s.oauth_enc {
        f.insert("oauth.secret".into(), secret(sealed, sealer));
    }
    plain(&mut f, "interval_seconds", json!(s.interval_seconds));
    plain(&mut f, "timeout_seconds", json!(s.timeout_seconds));
    plain(&mut f, "tags", json!(s.tags));
    plain(&mut f, "public", json!(s.public));
    plain(&mut f, "paused", json!(s.paused));
    plain(&mut f, "failures_to_down", json!(s.failures_to_down));
    plain(&mut f, "successes_to_up", json!(s.successes_to_up));
    plain(&mut f, "degraded_latency_ms", json!(s.degraded_latency_ms));
    plain(&mut f, "expect_auth", json!(s.expect_auth));
    plain(&mut f, "regions", json!(s.regions));
    plain(&mut f, "quorum", json!(s.quorum));
    if !s.list_contract {
        plain(&mut f, "list_contract", json!(false));
    }
    if let Some(plan) = s.call_plan() {
        plain(&mut f, "calls", json!(plan.calls));
        let failure = crate::api::server_calls::CallFailure::of(Some(&plan));
        plain(&mut f, "call_failure", json!(failure));
        plain(&mut f, "stream_call", json!(plan.stream));
    }
    f
}

/// The name a channel's sealed value has in the file: the signing secret, or its format's key.
pub(super) fn secret_name(format: Option<&str>) -> &'static str {
    match format {
        Some("pagerduty") => "routing_key",
        Some("opsgenie") => "api_key",
        Some("telegram") => "bot_token",
        _ => "secret",
    }
}

pub(super) fn channel_fields(
    c: &ChannelRecord,
    sealer: &Sealer,
    slug_of: &dyn Fn(&str) -> String,
) -> Fields {
    let mut f = Fields::new();
    plain(&mut f, "kind", json!(c.kind.as_str()));
    plain(&mut f, "url", json!(c.url));
    plain(&mut f, "format", json!(c.format));
    headers(&mut f, &c.header_names, c.headers_enc.as_deref(), sealer);
    if let Some(sealed) = &c.secret_enc {
        f.insert(
            secret_name(c.format.as_deref()).into(),
            secret(sealed, sealer),
        );
    }
    plain(&mut f, "recipients", json!(c.recipients));
    let servers: Vec<String> = c.server_ids.iter().map(|id| slug_of(id)).collect();
    plain(&mut f, "servers", json!(servers));
    plain(&mut f, "tags", json!(c.tags));
    plain(&mut f, "events", json!(c.events));
    if !c.drift.is_empty() {
        plain(&mut f, "drift", json!(c.drift));
    }
    plain(&mut f, "enabled", json!(c.enabled));
    plain(
        &mut f,
        "reminder_interval_seconds",
        json!(c.reminder_interval_seconds),
    );
    plain(&mut f, "template", json!(c.template));
    f
}

pub(super) fn window_fields(w: &WindowRecord, slug_of: &dyn Fn(&str) -> String) -> Fields {
    let mut f = Fields::new();
    let servers: Vec<String> = w.server_ids.iter().map(|id| slug_of(id)).collect();
    plain(&mut f, "servers", json!(servers));
    plain(&mut f, "tags", json!(w.tags));
    plain(&mut f, "starts_at", json!(w.starts_at.map(rfc3339)));
    plain(&mut f, "ends_at", json!(w.ends_at.map(rfc3339)));
    plain(&mut f, "cron", json!(w.cron));
    plain(&mut f, "duration_seconds", json!(w.duration_seconds));
    plain(&mut f, "timezone", json!(w.timezone));
    f
}

/// The fields whose values differ, as (field, from, to), in field order.
pub(super) fn differences(
    from: &Fields,
    to: &Fields,
) -> Vec<(String, Option<String>, Option<String>)> {
    let names: std::collections::BTreeSet<&String> = from.keys().chain(to.keys()).collect();
    names
        .into_iter()
        .filter(|n| from.get(*n) != to.get(*n))
        .map(|n| {
            (
                n.clone(),
                from.get(n).map(Shown::render),
                to.get(n).map(Shown::render),
            )
        })
        .collect()
}
