//! Protocol eras and the protocol versions mcpwatch speaks.
//!
//! An era is a transport shape, not a single version: the initialize-based Streamable HTTP era
//! spans 2025-03-26 … 2025-11-25, and the negotiated version is recorded separately.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The modern, stateless protocol version (per-request `_meta`, `server/discover`).
pub const MODERN_VERSION: &str = "2026-07-28";

/// Initialize-era versions we speak, newest first. The first is what we offer.
pub const INITIALIZE_VERSIONS: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

/// The version of the deprecated HTTP+SSE transport.
pub const HTTP_SSE_VERSION: &str = "2024-11-05";

/// Whether we speak `version` in the initialize era (used to accept a counter-offer).
pub fn speaks_initialize_version(version: &str) -> bool {
    INITIALIZE_VERSIONS.contains(&version)
}

/// How a server speaks MCP over HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum Era {
    /// 2026-07-28 and later: stateless, `server/discover`, `_meta` on every request.
    #[serde(rename = "stateless")]
    Stateless,
    /// 2025-03-26 … 2025-11-25: Streamable HTTP with `initialize` and an optional session.
    #[serde(rename = "streamable_http")]
    StreamableHttp,
    /// 2024-11-05: HTTP+SSE, a GET stream plus a POST endpoint.
    #[serde(rename = "http_sse")]
    HttpSse,
}

impl Era {
    /// All eras in the order detection tries them.
    pub const DETECTION_ORDER: [Era; 3] = [Era::Stateless, Era::StreamableHttp, Era::HttpSse];

    pub fn as_str(self) -> &'static str {
        match self {
            Era::Stateless => "stateless",
            Era::StreamableHttp => "streamable_http",
            Era::HttpSse => "http_sse",
        }
    }

    /// The protocol revision(s) the era stands for, for humans.
    pub fn revisions(self) -> &'static str {
        match self {
            Era::Stateless => "2026-07-28",
            Era::StreamableHttp => "2025-03-26 … 2025-11-25",
            Era::HttpSse => "2024-11-05",
        }
    }
}

impl fmt::Display for Era {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An `--era` value that names no era.
#[derive(Debug, thiserror::Error)]
#[error("unknown era '{0}': expected stateless (2026), streamable_http (2025) or http_sse (2024)")]
pub struct UnknownEra(String);

impl FromStr for Era {
    type Err = UnknownEra;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "stateless" | "modern" | "2026" | "2026_07_28" => Ok(Era::Stateless),
            "streamable_http" | "streamable" | "2025" | "2025_11_25" | "2025_06_18"
            | "2025_03_26" => Ok(Era::StreamableHttp),
            "http_sse" | "sse" | "2024" | "2024_11_05" => Ok(Era::HttpSse),
            _ => Err(UnknownEra(s.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn era_names_round_trip_and_aliases_parse() {
        for era in Era::DETECTION_ORDER {
            assert_eq!(era.as_str().parse::<Era>().unwrap(), era);
            let json = serde_json::to_string(&era).unwrap();
            assert_eq!(json, format!("\"{}\"", era.as_str()));
        }
        assert_eq!("2024-11-05".parse::<Era>().unwrap(), Era::HttpSse);
        assert_eq!(
            "Streamable-HTTP".parse::<Era>().unwrap(),
            Era::StreamableHttp
        );
        let err = "2023".parse::<Era>().unwrap_err().to_string();
        assert!(err.contains("unknown era '2023'"), "{err}");
    }

    #[test]
    fn we_offer_our_newest_initialize_version() {
        assert_eq!(INITIALIZE_VERSIONS[0], "2025-11-25");
        assert!(speaks_initialize_version("2025-03-26"));
        assert!(!speaks_initialize_version("2099-01-01"));
        assert!(!speaks_initialize_version(MODERN_VERSION));
    }
}
