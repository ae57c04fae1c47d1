//! The states a server and each of its regions can be in, and the events a change produces.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::probe::Verdict;

/// A server's overall state, decided across its regions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ServerStatus {
    /// No result yet.
    Unknown,
    Up,
    /// Serving, but slow or with warnings (regions down below the quorum leave it up).
    Degraded,
    /// Down in at least `quorum` regions.
    Down,
    /// 401/403 although a probe credential is configured: the credential stopped working.
    AuthFailed,
    /// Probing paused by an operator.
    Paused,
}

/// One region's view of a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RegionStatus {
    Unknown,
    Up,
    Down,
    AuthFailed,
}

macro_rules! string_enum {
    ($t:ty { $($v:ident => $s:literal),+ $(,)? }) => {
        impl $t {
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$v => $s),+ }
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl FromStr for $t {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($s => Ok(Self::$v),)+
                    other => Err(format!("unknown {} '{other}'", stringify!($t))),
                }
            }
        }
    };
}

string_enum!(ServerStatus {
    Unknown => "unknown", Up => "up", Degraded => "degraded", Down => "down",
    AuthFailed => "auth_failed", Paused => "paused",
});
string_enum!(RegionStatus { Unknown => "unknown", Up => "up", Down => "down", AuthFailed => "auth_failed" });
string_enum!(EventKind {
    ServerDown => "server.down", ServerUp => "server.up", ServerDegraded => "server.degraded",
    ServerAuthFailed => "server.auth_failed", SchemaChanged => "schema.changed",
    SchemaInconsistent => "schema.inconsistent", VersionChanged => "server.version_changed",
    RegionDown => "region.down", ServerFlapping => "server.flapping",
    ServerSettled => "server.settled",
});

/// The kinds of event the state machine emits (the input of alerting).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventKind {
    /// A quorum of regions cannot get a tool list: an incident opens.
    #[serde(rename = "server.down")]
    ServerDown,
    /// Back to serving its tools (from down, degraded or auth_failed).
    #[serde(rename = "server.up")]
    ServerUp,
    /// Serving, but slow or with warnings.
    #[serde(rename = "server.degraded")]
    ServerDegraded,
    /// The configured probe credential is refused.
    #[serde(rename = "server.auth_failed")]
    ServerAuthFailed,
    /// The served tool list moved to another hash.
    #[serde(rename = "schema.changed")]
    SchemaChanged,
    /// Regions have served different tool lists for over an interval.
    #[serde(rename = "schema.inconsistent")]
    SchemaInconsistent,
    /// The server reports another version in `serverInfo`.
    #[serde(rename = "server.version_changed")]
    VersionChanged,
    /// One region cannot reach it while the server as a whole is still up.
    #[serde(rename = "region.down")]
    RegionDown,
    /// State changes came too often: their alerts are held until it settles.
    #[serde(rename = "server.flapping")]
    ServerFlapping,
    /// A flapping server has been quiet long enough: alerts flow again.
    #[serde(rename = "server.settled")]
    ServerSettled,
}

impl EventKind {
    /// A change of the server's state (what flapping counts and holds).
    pub fn is_state_change(self) -> bool {
        matches!(
            self,
            EventKind::ServerDown
                | EventKind::ServerUp
                | EventKind::ServerDegraded
                | EventKind::ServerAuthFailed
        )
    }
}

/// Per (server, region) state, persisted between results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct RegionState {
    /// Shared by every server probed from it (the ingest's interner).
    pub region: Arc<str>,
    #[sqlx(rename = "state")]
    pub status: RegionStatus,
    #[sqlx(try_from = "i64")]
    pub consecutive_failures: u32,
    #[sqlx(try_from = "i64")]
    pub consecutive_successes: u32,
    pub last_result_at: Option<i64>,
    pub last_verdict: Option<Verdict>,
    /// Shared with the server's state when they are the same list (one copy a server).
    pub last_schema_hash: Option<Arc<str>>,
}

impl RegionState {
    pub fn new(region: Arc<str>) -> Self {
        RegionState {
            region,
            status: RegionStatus::Unknown,
            consecutive_failures: 0,
            consecutive_successes: 0,
            last_result_at: None,
            last_verdict: None,
            last_schema_hash: None,
        }
    }
}

/// Per server state, persisted between results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct ServerState {
    #[sqlx(rename = "state")]
    pub status: ServerStatus,
    /// Unix ms of the last status change.
    pub since: i64,
    /// Shared with the regions' states that saw the same list.
    pub schema_hash: Option<Arc<str>>,
    /// Shared by every server reporting the same (the ingest's interner).
    pub server_version: Option<Arc<str>>,
    pub protocol_version: Option<Arc<str>>,
    pub last_result_at: Option<i64>,
    /// Boxed, not a `String`: 8 bytes less in every cached server.
    pub open_incident_id: Option<Box<str>>,
}

impl ServerState {
    pub fn new(now: i64) -> Self {
        ServerState {
            status: ServerStatus::Unknown,
            since: now,
            schema_hash: None,
            server_version: None,
            protocol_version: None,
            last_result_at: None,
            open_incident_id: None,
        }
    }
}

/// An event with everything an alert needs (the ingest adds the server's name, slug and URL).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub kind: EventKind,
    pub at: i64,
    pub data: serde_json::Value,
}
