//! Logging setup: JSON lines (`level`, `ts`, `msg`, fields) when stderr is not a terminal,
//! readable text when it is. `RUST_LOG` filters; the default is `warn` so CLI output stays clean.
//!
//! Nothing in the crate logs header values, credentials or URL query strings: URLs are passed
//! through `probe::redact_url` before they reach a log line.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

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
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init()
    };
}
