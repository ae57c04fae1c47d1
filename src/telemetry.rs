//! Logging: JSON lines `{"level", "ts", "msg", …fields}` when stderr is not a terminal (or
//! `log_format = "json"`), readable text when it is. `RUST_LOG` filters.
//!
//! Code never logs header values, credentials or raw URLs (URLs go through
//! `probe::redact_url`). As a safety net the JSON formatter also redacts any string value that
//! is a URL with userinfo or a query string, and masks fields whose names say they hold a
//! secret (`authorization`, `token`, `password`, `secret`, `api_key`, `cookie`).

use std::fmt;
use std::io::IsTerminal;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::config::LogFormat;

/// Install the global subscriber once; later calls are no-ops.
pub fn init(default_level: &str, format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let text = match format {
        LogFormat::Text => true,
        LogFormat::Json => false,
        LogFormat::Auto => std::io::stderr().is_terminal(),
    };
    let _ = if text {
        builder.with_target(false).try_init()
    } else {
        builder.event_format(JsonLines).try_init()
    };
}

/// One JSON object per event: `level`, `ts` (RFC 3339), `msg`, `target`, then the fields.
pub struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let meta = event.metadata();
        let mut line = Map::new();
        line.insert(
            "level".into(),
            Value::from(meta.level().as_str().to_ascii_lowercase()),
        );
        line.insert("ts".into(), Value::from(crate::probe::now_rfc3339_millis()));
        line.insert(
            "msg".into(),
            Value::from(fields.message.unwrap_or_default()),
        );
        line.insert("target".into(), Value::from(meta.target()));
        for (k, v) in fields.values {
            line.entry(k).or_insert(v);
        }
        writeln!(writer, "{}", Value::Object(line))
    }
}

#[derive(Default)]
struct Fields {
    message: Option<String>,
    values: Vec<(String, Value)>,
}

const SECRET_FIELDS: [&str; 6] = [
    "authorization",
    "token",
    "password",
    "secret",
    "api_key",
    "cookie",
];

impl Fields {
    fn push(&mut self, field: &Field, value: Value) {
        let name = field.name();
        if name == "message" {
            self.message = Some(match value {
                Value::String(s) => scrub(&s),
                other => other.to_string(),
            });
            return;
        }
        let lower = name.to_ascii_lowercase();
        let value = if SECRET_FIELDS.iter().any(|s| lower.contains(s)) {
            Value::from("***")
        } else if let Value::String(s) = value {
            Value::from(scrub(&s))
        } else {
            value
        };
        self.values.push((name.to_string(), value));
    }
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.push(field, Value::from(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field, Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push(field, Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.push(field, Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.push(field, Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field, Value::from(value));
    }
}

/// Redact every `scheme://…` word that carries userinfo or a query string.
fn scrub(text: &str) -> String {
    if !text.contains("://") {
        return text.to_string();
    }
    text.split(' ')
        .map(|word| {
            match url::Url::parse(word.trim_matches(|c: char| c == '"' || c == '\'' || c == ',')) {
                Ok(u)
                    if u.password().is_some()
                        || !u.username().is_empty()
                        || u.query().is_some() =>
                {
                    crate::probe::redact_url(&u)
                }
                _ => word.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn json_lines_have_level_ts_msg_and_never_secrets() {
        let buf = Buffer::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .event_format(JsonLines)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(
                server_id = "s1",
                duration_ms = 12.5,
                authorization = "Bearer abc",
                url = "https://u:pw@h.example/mcp?key=k",
                "probe done"
            );
        });
        let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let line: Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(line["level"], "info");
        assert_eq!(line["msg"], "probe done");
        assert!(line["ts"].as_str().unwrap().ends_with('Z'));
        assert_eq!(line["server_id"], "s1");
        assert_eq!(line["duration_ms"], 12.5);
        assert_eq!(line["authorization"], "***");
        assert_eq!(line["url"], "https://h.example/mcp?…");
        assert!(
            !out.contains("u:pw") && !out.contains("key=k") && !out.contains("abc"),
            "{out}"
        );
    }
}
