//! Schema identity: the canonical tool list (RFC 8785), its SHA-256 identities, and the
//! structural diff between two lists.
//!
//! - `canonical.rs`: sorting, JCS bytes, `schema_hash` and `interface_hash`.
//! - `memo.rs`: both identities of a list seen before, without canonicalizing it again.
//! - `diff.rs`: added / removed / changed tools, classed breaking or compatible.
//! - `lists.rs`: the same for resource, resource-template and prompt lists (by their key).
//! - `history.rs`: a server's history of changes (returns included), each with its diff.
//! - `snapshot.rs`: the snapshot file `mcpwatch snapshot` writes and `--check` reads.
//!
//! No I/O beyond the snapshot file helpers; unit-testable alone.

mod canonical;
mod diff;
pub mod history;
mod lists;
mod memo;
mod snapshot;

pub use canonical::{
    CanonicalError, canonical_bytes, canonical_value, interface_hash, list_hash, schema_hash,
    sorted_tools,
};
pub use diff::{FailOn, SchemaDiff, ToolChange, diff};
pub use lists::{ListDiff, diff_lists};
pub use memo::identities;
pub use snapshot::{ListSnapshot, contract_drift, list_key};
pub use snapshot::{Snapshot, SnapshotError};
