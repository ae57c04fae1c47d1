//! The MCP probe: our own MCP client on reqwest, built to see what an SDK hides (every status
//! code, header, byte and timing) and to survive hostile servers.
//!
//! Layout:
//! - `report.rs`: [`ProbeReport`], [`Verdict`], [`FailureKind`], [`Phase`]: the contract.
//! - `engine.rs`: [`Prober`], [`ProbeTarget`]: era detection, deadline, session cleanup, verdict.
//! - `stateless.rs`, `streamable.rs`, `http_sse.rs`: one file per protocol era.
//! - `tools.rs`: `tools/list` pagination and validation, shared by the eras.
//! - `exchange.rs`: run state, POST, reply → result or failure, auth challenges.
//! - `jsonrpc.rs`, `sse.rs`: message shapes and SSE framing.
//! - `net.rs`: the HTTP client per probe; `recorder.rs`: its timings and connection evidence;
//!   `dns.rs`: resolution plus the address policy hook; `tls.rs`: certificate and TLS-start
//!   hooks; `policy.rs`: the address policy (SSRF guard).
//!
//! Client capabilities are fixed to `{}` and clientInfo to `mcpwatch` + crate version: servers
//! vary their tool list by declared capabilities, and the schema hash must not move because of
//! us.

mod dns;
mod engine;
mod era;
mod exchange;
mod http_sse;
mod jsonrpc;
mod net;
mod policy;
mod recorder;
mod report;
mod sse;
mod stateless;
mod streamable;
mod tls;
mod tools;

pub use engine::{
    DEFAULT_BODY_CAP, DEFAULT_MAX_PAGES, DEFAULT_TIMEOUT, EraChoice, ProbeTarget, Prober,
    ProberConfig, now_rfc3339, now_rfc3339_millis,
};
pub use era::{Era, INITIALIZE_VERSIONS, MODERN_VERSION, UnknownEra};
pub use net::{guarded_client, redact_error, redact_url};
pub use policy::{AddressPolicy, BlockedAddress, InvalidCidr};
pub use report::{
    AuthChallenge, Failure, FailureKind, HttpStep, Phase, ProbeReport, ServerInfo, Timings,
    TlsCertInfo, Verdict,
};
pub use sse::{SseEvent, SseParser};
pub use tls::{TlsBase, TlsSetupError, cert_not_after};

/// Whether `name` is a valid HTTP field name (an RFC 9110 token). Shared by every place that
/// accepts user-supplied headers: the CLI, servers and alert channels.
pub fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// The client capabilities every probe declares: none. Documented in the README.
pub fn client_capabilities() -> serde_json::Value {
    serde_json::json!({})
}

/// The clientInfo every probe sends.
pub fn client_info() -> serde_json::Value {
    serde_json::json!({"name": "mcpwatch", "version": env!("CARGO_PKG_VERSION")})
}

#[cfg(test)]
mod tests {
    #[test]
    fn header_names_are_rfc_9110_tokens() {
        for ok in ["Authorization", "X-Api-Key", "x_token", "A.B"] {
            assert!(super::is_header_name(ok), "{ok}");
        }
        for bad in ["", "Bad Name", "x:y", "é", "a\nb"] {
            assert!(!super::is_header_name(bad), "{bad:?}");
        }
    }
}
