//! The MCP probe: our own MCP client on reqwest, built to see what an SDK hides (every status
//! code, header, byte and timing) and to survive hostile servers.
//!
//! Layout:
//! - `report.rs`: [`ProbeReport`], [`Verdict`], [`FailureKind`], [`Phase`]: the contract.
//! - `engine.rs`: [`Prober`], [`ProbeTarget`]: era detection, deadline, session cleanup, verdict.
//! - `stateless.rs`, `streamable.rs`, `http_sse.rs`: one file per protocol era.
//! - `tools.rs`: `tools/list` pagination and validation, shared by the eras.
//! - `calls.rs`: synthetic `tools/call`s after the list (read-only tools unless overridden),
//!   checked against the tool's `outputSchema` and the operator's expectations.
//! - `contract.rs`: resources, resource templates and prompts, listed and hashed when the
//!   server advertises them (beside the tools, whose hash they never touch).
//! - `stream.rs`: the streaming check: a progress-reporting tool's `notifications/progress`
//!   timed against its result, to catch a proxy that buffers the stream.
//! - `exchange.rs`: run state, POST, reply → result or failure, auth challenges.
//! - `jsonrpc.rs`, `sse.rs`: message shapes and SSE framing.
//! - `net.rs`: the HTTP client per probe; `recorder.rs`: its timings and connection evidence;
//!   `dns.rs`: resolution plus the address policy hook; `tls.rs`: certificate and TLS-start
//!   hooks; `policy.rs`: the address policy (SSRF guard); `trace.rs`: W3C `traceparent` on
//!   every request, one trace per probe.
//!
//! ## Era detection: the decision table
//!
//! Detection sends `server/discover` first, bounded by 40 % of the probe's deadline (some older
//! servers never answer a method they do not know). Its answer decides (one test per row in
//! `tests/probe_era_table.rs`):
//!
//! | answer to `server/discover` | next |
//! |---|---|
//! | 2xx, result with `supportedVersions` | 2026 era: validate, `tools/list` |
//! | 2xx, result without `supportedVersions` | older era (`initialize`) |
//! | -32022 with `data.supported` listing a 2026 version we speak | retry `server/discover` with it |
//! | -32022 listing only initialize-era versions | older era |
//! | -32022 listing nothing we speak | `down`, `protocol` |
//! | -32020 / -32021 (a 2026 server refused us) | `down`, `protocol` (with the code) |
//! | any other JSON-RPC error, any status, any id (Python SDK 1.x: id `"server-error"`) | older era |
//! | a response whose id is not ours, 2xx or 4xx | older era (not sure it speaks 2026) |
//! | 4xx without JSON-RPC; 404, 405, 406, 415 | older era |
//! | 5xx | older era; if that fails too, the failure names both |
//! | 2xx that is not JSON-RPC (HTML, `{"status":"ok"}`) | older era; `not_mcp` if that fails too |
//! | no answer within its share of the deadline | older era, with the rest of the deadline |
//! | the connection broke after the request went out | older era |
//! | DNS, refused, TLS, or blocked by the address policy | `down` with that kind (no retry) |
//! | 401/403 with a challenge or protected-resource metadata | `auth_required` |
//!
//! `initialize` then decides between the initialize era and HTTP+SSE: 400/404/405 without a
//! JSON-RPC result means "try a GET for an `endpoint` event"; a 2xx with an id not ours is a
//! protocol error (we asked in that era's own terms). When every era fails, the failure is the
//! last era's (or the first era's evidence when none answered as such), followed by what each
//! earlier era said. A POST redirected by 307/308 to the same origin (`/mcp` → `/mcp/`) is
//! followed and noted; another origin only with `follow_post_redirects`.
//!
//! Client capabilities are fixed to `{}` and clientInfo to `mcpwatch` + crate version: servers
//! vary their tool list by declared capabilities, and the schema hash must not move because of
//! us.

mod calls;
mod contract;
pub mod discovery;
mod dns;
mod engine;
mod era;
mod exchange;
mod http_sse;
mod jsonrpc;
mod net;
pub mod oauth;
mod policy;
mod recorder;
mod report;
mod stream;
pub(crate) use report::parse_by_name;
mod sse;
mod stateless;
mod streamable;
mod tls;
mod tools;
mod trace;

pub use calls::{CallOutcome, CallPlan, MAX_CALLS, PointerExpectation, ToolCall};
pub use contract::ListedKind;
pub use engine::{
    DEFAULT_BODY_CAP, DEFAULT_MAX_PAGES, DEFAULT_TIMEOUT, EraChoice, ProbeTarget, Prober,
    ProberConfig, now_rfc3339, now_rfc3339_millis,
};
pub use era::{Era, INITIALIZE_VERSIONS, MODERN_VERSION, UnknownEra};
pub use net::{guarded_client, mask_url, redact_error, redact_url, url_secrets};
pub use policy::{AddressPolicy, BlockedAddress, InvalidCidr};
pub use report::{
    AuthChallenge, Failure, FailureKind, HttpStep, Phase, ProbeReport, ServerInfo, Timings,
    TlsCertInfo, Verdict,
};
pub use sse::{SseEvent, SseParser};
pub use stream::StreamOutcome;
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
