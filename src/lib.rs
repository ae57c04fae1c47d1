//! mcpwatch: an external, protocol-aware uptime monitor for MCP servers.
//!
//! Layout (see `DESIGN.md` in the shared folder for the whole architecture):
//! - [`probe`]: our own MCP client: eras, transports, SSE framing, limits, address policy,
//!   and the [`probe::ProbeReport`] every later stage consumes.
//! - [`schema`]: canonical tool lists (RFC 8785), their SHA-256 identities, structural diffs
//!   and snapshot files.
//! - [`cli`]: `mcpwatch check` and `mcpwatch snapshot`, the CI deploy gates.
//! - [`telemetry`]: logging setup.
//!
//! `main.rs` only parses arguments and calls into here.

pub mod agent;
pub mod alert;
pub mod api;
pub mod app;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod ingest;
pub mod metrics;
pub mod monitor;
pub mod probe;
pub mod scheduler;
pub mod schema;
pub mod secrets;
pub mod store;
pub mod telemetry;
pub mod web;
