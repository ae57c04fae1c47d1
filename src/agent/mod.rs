//! Regional agents: `mcpwatch agent` probes from another region and reports to the central.
//! The same binary, no database: the same scheduler and prober as `serve` (so every region
//! probes a server at about the same moment), a bounded on-disk buffer, and canaries.
//!
//! - `protocol.rs`: what agent and central exchange (config with ETag, result batches).
//! - `options.rs`: the agent's flags and variables, validated.
//! - `queue.rs`: the on-disk result buffer (ordered, bounded, crash-safe).
//! - `runtime.rs`: config sync, probing, buffering, pushing, canaries, drain.
//! - `silence.rs` (central side): regions' last contact and `region.silent`.

pub mod options;
pub mod protocol;
pub mod queue;
pub mod runtime;
pub mod silence;

pub use options::{AgentArgs, AgentSettings};
pub use runtime::{AgentError, REGION_HEADER, run};
