//! The command-line fronts that double as CI deploy gates.
//!
//! - `options.rs`: probe flags shared by both commands, validated into a prober and a target.
//! - `check.rs`: `mcpwatch check`: one probe (or `--wait` until healthy), `--baseline` drift.
//! - `snapshot.rs`: `mcpwatch snapshot`: write a baseline, or `--check` one.
//! - `render.rs`: the human-readable report.
//! - `client.rs`, `servers.rs`, `history.rs`: `mcpwatch servers …`, `status`, `channels …`,
//!   `incidents ls` and `events tail`: the API from a terminal.
//! - `registry.rs`: `mcpwatch registry import`.
//! - `monitors.rs`: `mcpwatch plan`, `apply` and `export`: a monitors file against a daemon.
//!
//! Exit codes are part of the interface: see [`ExitCode`].

mod check;
mod client;
mod history;
mod monitors;
mod options;
mod registry;
mod render;
mod servers;
mod snapshot;

pub use check::{CheckArgs, run_check};
pub use client::{ClientArgs, ClientError};
pub use history::{
    ChannelsArgs, EventsArgs, IncidentsArgs, run_channels, run_events_tail, run_incidents,
};
pub use monitors::{ExportArgs, MonitorsArgs, run_export, run_plan};
pub use options::{ProbeArgs, parse_duration, parse_header, parse_target_url};
pub use registry::{RegistryCommand, run_registry};
pub use render::render_report;
pub use servers::{ServersArgs, ServersCommand, run_servers, run_status};
pub use snapshot::{SnapshotArgs, run_snapshot};

/// The documented exit codes of `check` and `snapshot`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    /// Healthy: up or degraded (auth_required with `--allow-auth-required`); schema unchanged.
    Healthy = 0,
    /// Unhealthy: down, or auth_required without `--allow-auth-required`.
    Unhealthy = 1,
    /// Usage or configuration error (bad flag, unreadable file).
    Usage = 2,
    /// The live schema differs from the baseline.
    Drift = 3,
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(code: ExitCode) -> Self {
        std::process::ExitCode::from(code as u8)
    }
}

/// A command-line error: one line, exit code 2.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// A flag or argument has a bad value.
    #[error("{0}")]
    Usage(String),
    /// A file could not be read or written.
    #[error("{0}")]
    File(String),
}
