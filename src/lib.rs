//! mcpwatch: an external, protocol-aware uptime monitor for MCP servers.
//!
//! Layout, in data-path order (see the README's architecture section and `DESIGN.md` in the
//! shared folder for the whole picture):
//! - [`probe`]: our own MCP client: eras, transports, SSE framing, limits, address policy, and
//!   the [`probe::ProbeReport`] every later stage consumes.
//! - [`schema`]: canonical tool lists (RFC 8785), their SHA-256 identities, structural diffs
//!   and snapshot files.
//! - [`scheduler`]: when each server is probed (timer heap, offsets, no overlap, a bound on
//!   concurrency); hands each report to a sink.
//! - [`targets`]: a stored server as a prober needs it (sealed URL, headers, OAuth opened).
//! - [`ingest`]: the one way in for results: batches, the evaluator, one transaction each.
//! - [`monitor`]: the pure state machine: results in, states, events and incidents out.
//! - [`store`]: the `Store` trait on SQLite and Postgres, rollups, retention, and the
//!   [`store::gate::DbGate`] that knows whether the database answers.
//! - [`slo`]: objectives, error budgets and multi-window burn-rate alerts from the same
//!   availability the status page shows; the leader's evaluator; monthly reports.
//! - [`credentials`]: the credential-expiry watchdog (a static bearer JWT's `exp`, an OAuth
//!   client secret's `expires_at`): `credential.expiring` at lead times, `credential.expired`.
//! - [`alert`]: routing, the outbox dispatcher, Standard Webhooks, Slack/Discord, email.
//! - [`api`]: the REST API (axum), keys and scopes, rate limits, problem+json, OpenAPI, and
//!   monitors as code (plan, apply, export; `serve --monitors`), registry import and sync.
//! - [`monitors`]: reading a monitors file (`${VAR}` references, literal secrets refused,
//!   lines of problems); depends on nothing of ours.
//! - [`registry`]: the MCP Registry's list API read page by page, and a listed remote as a
//!   monitor needs it (variables filled, fixed headers, what it still needs).
//! - [`web`]: the public status page, server pages, badges, `/status.json`, with their own
//!   state ([`web::WebState`]).
//! - [`agent`]: `mcpwatch agent`, a remote region: config sync, disk buffer, pusher, canaries.
//! - [`shard`]: buckets of servers, rendezvous hashing over live replicas, and what this
//!   replica owns (read by the ingest and the API, set by `cluster`); depends on nothing.
//! - [`cluster`]: bucket leases and heartbeats, the leader lease for singletons, the change
//!   feed (servers → scheduler) and the handoff of results to their owner.
//! - [`app`]: wiring, start and graceful shutdown of `mcpwatch serve`.
//! - [`cli`]: `mcpwatch check` and `mcpwatch snapshot`, the CI deploy gates.
//! - [`demo`]: `mcpwatch demo-server`, a small MCP server to try mcpwatch on.
//! - [`mcp_wire`]: the server side of MCP over HTTP for a tools-only server (both eras), used
//!   by the demo server and the daemon's `/mcp`; depends on nothing of ours.
//! - [`clock`]: Unix-millisecond clocks (system or manual) and RFC 3339 helpers.
//! - [`config`]: settings from the environment and an optional file, validated at start.
//! - [`secrets`]: AES-256-GCM sealing, API tokens and their hashes.
//! - [`metrics`]: the Prometheus registry; [`telemetry`]: logging setup.
//! - [`ratelimit`]: keyed rate limits on tokio's clock and the client address they key by
//!   (the API and the public subscription form); depends on nothing of ours.
//!
//! No module depends on one that depends back on it (`clock` depends on nothing; `api` and
//! `app` sit on top). `main.rs` only parses arguments and calls into here.

pub mod agent;
pub mod alert;
pub mod api;
pub mod app;
pub mod cli;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod credentials;
pub mod demo;
pub mod ingest;
pub mod mcp_wire;
pub mod metrics;
pub mod monitor;
pub mod monitors;
pub mod probe;
pub mod ratelimit;
pub mod registry;
pub mod scheduler;
pub mod schema;
pub mod secrets;
pub mod shard;
pub mod slo;
pub mod store;
pub mod targets;
pub mod telemetry;
pub mod web;
