//! The integration tests, one binary (one link of the crate instead of one per file), a module
//! per concern. `support/` holds `spawn_app()`, test databases, the fake MCP server, a webhook
//! receiver, an SMTP server, a private Postgres cluster and the real binary as a child.

mod support;

mod agents;
mod alerts;
mod api;
mod browser;
mod cli;
mod contract_drift;
mod credentials;
mod demo;
mod drift_channels;
mod e2e_alerts;
mod e2e_serve;
mod history;
mod lifecycle;
mod mcp_endpoint;
mod monitors;
mod outage;
mod pages;
mod pgbouncer;
mod posts;
mod probe_calls;
mod probe_contract;
mod probe_era_table;
mod probe_eras;
mod probe_faults;
mod probe_oauth;
mod probe_rmcp;
mod probe_stream;
mod probe_tls;
mod probe_trace;
mod registry;
mod scheduler;
mod server_calls;
mod slos;
mod status_page;
mod store;
mod subscriptions;
