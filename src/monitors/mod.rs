//! Monitors as code, the file side: a TOML file of servers, alert channels (with their
//! routing) and maintenance windows, read and checked where it is applied (`mcpwatch plan` /
//! `apply` on the operator's machine, `serve --monitors` in the daemon).
//!
//! - `file.rs`: its shape (with the line of the first shape error), `${VAR}` references
//!   expanded from the environment, literal secrets refused, and the line of any field a later
//!   check names.
//!
//! What a document changes and applying it live with the API (`api::monitors`), which checks
//! every entry with its own rules. Depends on nothing of ours: the document's type is given.

pub mod file;

pub use file::{FileErrors, MonitorsFile, Problem};
