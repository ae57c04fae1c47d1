//! The `template` webhook format: a body the operator writes in Jinja syntax (minijinja, which
//! is sandboxed: no files, no code, no network; fuel bounds loops), rendered from the same data
//! as the standard payload. Checked when the channel is saved (syntax, then a trial render
//! with a sample event), with the line and the reason; the rendered body is capped.
//!
//! Variables: `type`, `timestamp`, `data` (the standard payload's members) and `event` (the
//! whole payload). `{{ data | tojson }}` writes JSON.

use minijinja::{Environment, UndefinedBehavior};
use serde_json::{Value, json};

/// Longest template a channel takes.
pub const MAX_TEMPLATE: usize = 16 * 1024;
/// Largest body a template may render.
pub const MAX_BODY: usize = 64 * 1024;
/// Instructions one render may spend (a loop over a big range runs out, it does not hang).
const FUEL: u64 = 100_000;

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    // Missing members render empty, and chains through them too: one template serves events
    // whose data differ (a `server.down` has a cause, a `schema.changed` a diff).
    env.set_undefined_behavior(UndefinedBehavior::Chainable);
    env.set_fuel(Some(FUEL));
    env
}

/// `line N: reason` of a template error.
fn words(e: &minijinja::Error) -> String {
    let reason = e
        .detail()
        .map_or_else(|| e.kind().to_string(), str::to_string);
    match e.line() {
        Some(line) => format!("line {line}: {reason}"),
        None => reason,
    }
}

/// The body for `payload` (the standard webhook payload).
pub fn render(source: &str, payload: &Value) -> Result<String, String> {
    let env = environment();
    let template = env.template_from_str(source).map_err(|e| words(&e))?;
    let ctx = json!({
        "type": payload.get("type"),
        "timestamp": payload.get("timestamp"),
        "data": payload.get("data"),
        "event": payload,
    });
    let body = template.render(&ctx).map_err(|e| words(&e))?;
    if body.len() > MAX_BODY {
        return Err(format!(
            "the template rendered {} bytes, more than the {MAX_BODY} a body may have",
            body.len()
        ));
    }
    Ok(body)
}

/// Whether `source` is a template a channel can keep: its size, its syntax, and a render of a
/// sample `server.down` event.
pub fn check(source: &str) -> Result<(), String> {
    if source.len() > MAX_TEMPLATE {
        return Err(format!("is longer than {MAX_TEMPLATE} bytes"));
    }
    let sample = json!({
        "type": "server.down",
        "timestamp": "2026-01-01T00:00:00Z",
        "data": {
            "server": {"id": "0", "slug": "example", "name": "Example", "url": "https://example.com/mcp"},
            "region": "local",
            "failure": {"kind": "connect", "phase": "connect", "message": "connection refused"},
            "incident_id": "0",
        }
    });
    render(source, &sample).map(|_| ())
}

/// The content type of a rendered body: JSON when it parses as JSON, else plain text.
pub fn content_type(body: &str) -> &'static str {
    if serde_json::from_str::<Value>(body).is_ok() {
        "application/json"
    } else {
        "text/plain; charset=utf-8"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_payload_and_names_the_line_of_an_error() {
        let payload =
            json!({"type": "server.up", "timestamp": "t", "data": {"server": {"name": "A & B"}}});
        let body = render(
            "{\"text\": {{ (data.server.name ~ ' is ' ~ type) | tojson }}}",
            &payload,
        )
        .unwrap();
        let parsed: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(parsed, json!({"text": "A & B is server.up"}), "{body}");
        assert_eq!(content_type(&body), "application/json");
        let e = check("line one\n{% if %}\n").unwrap_err();
        assert!(e.starts_with("line 2: "), "{e}");
        assert!(
            check("{{ data.nothing.here }}").is_ok(),
            "missing members render empty"
        );
    }

    #[test]
    fn a_runaway_template_is_stopped_and_a_huge_body_refused() {
        assert!(check("{% for i in range(100000000) %}x{% endfor %}").is_err());
        let big = json!({"data": {"s": "x".repeat(70_000)}});
        let e = render("{{ data.s }}", &big).unwrap_err();
        assert!(e.contains("more than the 65536"), "{e}");
    }
}
