//! What the API answers: one typed response per shape, each a `ToSchema`, so `/openapi.json`
//! describes every field a client reads (a generated client needs no `Value`).
//!
//! Records from the store become views here (`From<&Record>`), which is also where times turn
//! into RFC 3339 text and write-only values into `"***"`. Free-form JSON appears only where the
//! data is free-form by nature (a tool's JSON Schema, an event's payload), as a JSON object.

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;

use super::rfc3339;
use crate::credentials::{CredentialKind, Expiry};
use crate::monitor::{RegionState, RegionStatus, ServerState, ServerStatus};
use crate::probe::oauth::ClientAuth;
use crate::probe::{FailureKind, Phase, ProbeReport, Timings, Verdict};
use crate::schema::{SchemaDiff, ToolChange};
use crate::store::{
    ApiKeyRecord, AttemptRecord, ChannelKind, ChannelRecord, DeliveryRecord, DeliveryStatus,
    EventRecord, IncidentRecord, OAuthShown, RegistryOrigin, ResultRecord, ServerRecord,
    SnapshotRecord, WindowRecord,
};

/// A JSON object whose members are not fixed (a tool, an event's data).
pub type Object = serde_json::Map<String, serde_json::Value>;

/// Write-only values (probe headers, a channel's secret) as they are shown: always `"***"`.
const HIDDEN: &str = "***";

fn hidden_headers(names: &[String]) -> BTreeMap<String, String> {
    names.iter().map(|n| (n.clone(), HIDDEN.into())).collect()
}

/// A server's OAuth client-credentials identity as shown: the secret or key never is.
#[derive(Debug, Serialize, ToSchema)]
pub struct OAuthView {
    pub client_id: String,
    pub auth_method: ClientAuth,
    /// `***` when it authenticates with a client secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// `***` when it signs `private_key_jwt` assertions with a key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private_key: Option<String>,
    /// `null`: found by the discovery chain.
    pub token_endpoint: Option<String>,
    pub scope: Option<String>,
    /// `null`: the server's URL.
    pub resource: Option<String>,
    /// When the secret or key expires, as set (the watchdog warns before).
    pub expires_at: Option<String>,
}

impl From<OAuthShown> for OAuthView {
    fn from(o: OAuthShown) -> Self {
        let key = o.auth_method == ClientAuth::PrivateKeyJwt;
        OAuthView {
            client_id: o.client_id,
            auth_method: o.auth_method,
            client_secret: (!key).then(|| HIDDEN.into()),
            private_key: key.then(|| HIDDEN.into()),
            token_endpoint: o.token_endpoint,
            scope: o.scope,
            resource: o.resource,
            expires_at: o.expires_at.map(rfc3339),
        }
    }
}

/// A probe credential with a known expiry.
#[derive(Debug, Serialize, ToSchema)]
pub struct CredentialView {
    /// `bearer` (a static bearer JWT's `exp`) or `oauth_client` (the `expires_at` set).
    pub credential: CredentialKind,
    pub expires_at: String,
}

impl From<&Expiry> for CredentialView {
    fn from(e: &Expiry) -> Self {
        CredentialView {
            credential: e.credential,
            expires_at: rfc3339(e.expires_at),
        }
    }
}

/// A registered server, its settings and its decided state. Header values never appear.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServerView {
    pub id: String,
    pub slug: String,
    pub name: String,
    /// Credentials in the URL (userinfo, query values) appear as `***`.
    pub url: String,
    /// Probe header names, each with the value `***`.
    pub headers: BTreeMap<String, String>,
    /// The probe's OAuth client-credentials identity; its secret or key appears as `***`.
    pub oauth: Option<OAuthView>,
    /// Probe credentials with a known expiry, which the watchdog warns before.
    pub credentials: Vec<CredentialView>,
    pub interval_seconds: u32,
    pub timeout_seconds: u32,
    pub tags: Vec<String>,
    pub public: bool,
    pub paused: bool,
    pub failures_to_down: u32,
    pub successes_to_up: u32,
    pub degraded_latency_ms: Option<u64>,
    pub expect_auth: bool,
    /// The era the last probe found (`stateless`, `streamable_http`, `http_sse`).
    pub era: Option<String>,
    /// Regions that probe it; empty: every region.
    pub regions: Vec<String>,
    /// Regions down needed for the server to be down; `null`: a majority.
    pub quorum: Option<u32>,
    /// The synthetic tool calls each probe makes; a call with `allow_write: true` is one the
    /// operator allowed on a tool not marked read-only.
    pub calls: Vec<crate::probe::ToolCall>,
    /// What a failed call makes the probe: `degraded` or `down`.
    pub call_failure: super::server_calls::CallFailure,
    /// The streaming check's call (a tool that reports progress), if any.
    pub stream_call: Option<crate::probe::ToolCall>,
    /// Probes list its resources, resource templates and prompts (when advertised).
    pub list_contract: bool,
    pub state: ServerStatus,
    /// Regions down while the server stays up (fewer than the quorum).
    pub warnings: Vec<String>,
    /// It answered 401/403 to a probe without credentials: alive, its tools not listed.
    pub protected: bool,
    pub state_since: Option<String>,
    pub last_result_at: Option<String>,
    pub schema_hash: Option<String>,
    pub open_incident_id: Option<String>,
    /// The monitors file that manages it (the API refuses to change or delete it); `null`:
    /// made through the API.
    pub managed_by: Option<String>,
    /// Why mcpwatch paused it (e.g. `registry: needs configuration: header Authorization: a
    /// secret`); `null` when an operator paused it, or it is not paused.
    pub paused_reason: Option<String>,
    /// The MCP Registry entry it was imported from.
    pub registry: Option<RegistryOrigin>,
    pub created_at: String,
    pub updated_at: String,
}

impl ServerView {
    pub fn new(s: &ServerRecord, state: Option<&ServerState>, regions: &[RegionState]) -> Self {
        let protected = !s.has_credentials()
            && regions
                .iter()
                .any(|r| r.last_verdict == Some(Verdict::AuthRequired));
        let status = if s.paused {
            ServerStatus::Paused
        } else {
            state.map(|st| st.status).unwrap_or(ServerStatus::Unknown)
        };
        let serving = matches!(status, ServerStatus::Up | ServerStatus::Degraded);
        let plan = s.call_plan();
        let warnings = regions
            .iter()
            .filter(|r| {
                serving && matches!(r.status, RegionStatus::Down | RegionStatus::AuthFailed)
            })
            .map(|r| {
                format!(
                    "region.down: {} is {} (fewer regions than the quorum)",
                    r.region,
                    r.status.as_str()
                )
            })
            .collect();
        ServerView {
            id: s.id.clone(),
            slug: s.slug.clone(),
            name: s.name.clone(),
            url: s.url.clone(),
            headers: hidden_headers(&s.header_names),
            oauth: s.oauth_shown().map(OAuthView::from),
            credentials: crate::credentials::expiries(s)
                .iter()
                .map(CredentialView::from)
                .collect(),
            interval_seconds: s.interval_seconds,
            timeout_seconds: s.timeout_seconds,
            tags: s.tags.clone(),
            public: s.public,
            paused: s.paused,
            failures_to_down: s.failures_to_down,
            successes_to_up: s.successes_to_up,
            degraded_latency_ms: s.degraded_latency_ms,
            expect_auth: s.expect_auth,
            era: s.era_hint.clone(),
            regions: s.regions.clone(),
            quorum: s.quorum,
            calls: plan.as_ref().map(|p| p.calls.clone()).unwrap_or_default(),
            call_failure: super::server_calls::CallFailure::of(plan.as_ref()),
            stream_call: plan.as_ref().and_then(|p| p.stream.clone()),
            list_contract: s.list_contract,
            state: status,
            warnings,
            protected,
            state_since: state.map(|st| rfc3339(st.since)),
            last_result_at: state.and_then(|st| st.last_result_at).map(rfc3339),
            schema_hash: state.and_then(|st| st.schema_hash.as_deref().map(String::from)),
            open_incident_id: state.and_then(|st| st.open_incident_id.as_deref().map(String::from)),
            managed_by: s.managed_by.clone(),
            paused_reason: s.paused_reason.clone(),
            registry: s
                .registry
                .as_deref()
                .and_then(|r| serde_json::from_str(r).ok()),
            created_at: rfc3339(s.created_at),
            updated_at: rfc3339(s.updated_at),
        }
    }
}

/// One region's view of a server.
#[derive(Debug, Serialize, ToSchema)]
pub struct RegionView {
    pub region: String,
    pub state: RegionStatus,
    pub last_result_at: Option<String>,
    pub consecutive_failures: u32,
}

impl From<&RegionState> for RegionView {
    fn from(r: &RegionState) -> Self {
        RegionView {
            region: r.region.to_string(),
            state: r.status,
            last_result_at: r.last_result_at.map(rfc3339),
            consecutive_failures: r.consecutive_failures,
        }
    }
}

/// `GET /servers/{id}`: the server, with each region's state in `region_states`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServerDetail {
    #[serde(flatten)]
    pub server: ServerView,
    pub region_states: Vec<RegionView>,
}

/// A page of servers.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServerPage {
    pub items: Vec<ServerView>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

/// One server registered by `POST /servers:batch`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedServer {
    pub id: String,
    pub slug: String,
    pub name: String,
}

/// `POST /servers:batch`: how many were registered, in input order.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchCreated {
    pub created: usize,
    pub servers: Vec<CreatedServer>,
}

/// `POST /servers/{id}/check`: the probe report, recorded like any result.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckResult {
    #[serde(flatten)]
    pub report: ProbeReport,
    pub result_id: String,
    /// The region the probe ran from (this node's).
    pub region: String,
}

/// Why a stored result failed.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResultFailure {
    /// A failure kind (`dns`, `connect`, `tls`, `timeout`, …; see the README).
    pub kind: FailureKind,
    pub phase: Option<Phase>,
    pub message: Option<String>,
    pub http_status: Option<i64>,
    pub jsonrpc_code: Option<i64>,
}

/// The server's name and version from its handshake.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServerInfoView {
    pub name: String,
    pub version: Option<String>,
}

/// One stored probe result.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResultView {
    pub id: String,
    pub region: String,
    pub started_at: String,
    pub verdict: Verdict,
    pub failure: Option<ResultFailure>,
    pub era: Option<String>,
    pub protocol_version: Option<String>,
    pub server_info: Option<ServerInfoView>,
    pub tools_count: i64,
    pub schema_hash: Option<String>,
    /// Milliseconds per phase; `null` where the phase did not run.
    pub timings_ms: Timings,
    pub tls_not_after: Option<String>,
    /// The W3C trace id the probe's requests carried in `traceparent`: search the server's
    /// own traces and logs for it.
    pub trace_id: Option<String>,
    /// What each synthetic tool call did (empty when the server has none).
    pub calls: Vec<crate::probe::CallOutcome>,
    /// What the streaming check saw (`null` when the server has none).
    pub stream: Option<crate::probe::StreamOutcome>,
    /// Its resources, resource templates and prompts: each kind's count and hash (empty when
    /// none were listed).
    pub contract: Vec<crate::probe::ListedKind>,
}

impl From<&ResultRecord> for ResultView {
    fn from(r: &ResultRecord) -> Self {
        let failure = r.failure_kind.map(|kind| ResultFailure {
            kind,
            phase: r.failure_phase,
            message: r.failure_message.clone(),
            http_status: r.http_status,
            jsonrpc_code: r.jsonrpc_code,
        });
        ResultView {
            id: r.id.clone(),
            region: r.region.clone(),
            started_at: rfc3339(r.started_at),
            verdict: r.verdict,
            failure,
            era: r.era.clone(),
            protocol_version: r.protocol_version.clone(),
            server_info: r.server_name.as_ref().map(|n| ServerInfoView {
                name: n.clone(),
                version: r.server_version.clone(),
            }),
            tools_count: r.tool_count,
            schema_hash: r.schema_hash.clone(),
            timings_ms: Timings {
                dns: r.dns_ms,
                connect: r.connect_ms,
                tls: r.tls_ms,
                handshake: r.handshake_ms,
                tools_list: r.tools_list_ms,
                total: r.duration_ms,
            },
            tls_not_after: r.tls_not_after.map(|s| rfc3339(s * 1000)),
            trace_id: r.trace_id.clone(),
            calls: r
                .calls
                .as_deref()
                .and_then(|j| serde_json::from_str(j).ok())
                .unwrap_or_default(),
            stream: r
                .stream
                .as_deref()
                .and_then(|j| serde_json::from_str(j).ok()),
            contract: r
                .contract
                .as_deref()
                .and_then(|j| serde_json::from_str(j).ok())
                .unwrap_or_default(),
        }
    }
}

/// A page of results, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResultPage {
    pub items: Vec<ResultView>,
    pub next_cursor: Option<String>,
}

/// A tool list the server served, by its hash.
#[derive(Debug, Serialize, ToSchema)]
pub struct SnapshotView {
    /// `sha256:` + hex of the RFC 8785 canonical tool list.
    pub hash: String,
    /// The same over names and input schemas only.
    pub interface_hash: String,
    pub tools_count: usize,
    pub first_seen: String,
    pub last_seen: String,
}

impl From<&SnapshotRecord> for SnapshotView {
    fn from(s: &SnapshotRecord) -> Self {
        SnapshotView {
            hash: s.hash.clone(),
            interface_hash: s.interface_hash.clone(),
            tools_count: s.tools.as_array().map(Vec::len).unwrap_or(0),
            first_seen: rfc3339(s.first_seen),
            last_seen: rfc3339(s.last_seen),
        }
    }
}

/// `GET /servers/{id}/schema`: the current tool list, canonical, with its hashes.
#[derive(Debug, Serialize, ToSchema)]
pub struct SchemaView {
    #[serde(flatten)]
    pub snapshot: SnapshotView,
    /// The tools as MCP defines them (name, inputSchema, …), canonical order.
    #[schema(value_type = Vec<Object>)]
    pub tools: Vec<Object>,
}

/// What changed from the previous hash.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChangeView {
    pub breaking: bool,
    pub security: bool,
    /// `breaking`, `security`, `compatible` or a combination.
    pub class: String,
    pub summary: String,
    pub diff: SchemaDiff,
}

impl From<SchemaDiff> for ChangeView {
    fn from(d: SchemaDiff) -> Self {
        ChangeView {
            breaking: d.breaking,
            security: d.security,
            class: d.class().to_string(),
            summary: d.summary(),
            diff: d,
        }
    }
}

/// One entry of the schema history: a hash the server moved to, and when.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryEntry {
    #[serde(flatten)]
    pub snapshot: SnapshotView,
    pub at: String,
    pub previous_hash: Option<String>,
    /// For a return to a list served before (a rollback): the hash it went back from.
    pub reverts: Option<String>,
    /// Absent for the first hash.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change: Option<ChangeView>,
}

/// Every hash served, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct SchemaHistory {
    pub items: Vec<HistoryEntry>,
}

/// `GET /servers/{id}/schema/diff`: the structural diff between two hashes.
#[derive(Debug, Serialize, ToSchema)]
pub struct DiffView {
    pub from: String,
    pub to: String,
    pub class: String,
    pub summary: String,
    pub breaking: bool,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<ToolChange>,
}

/// An outage (`down`, `auth_failed`) or degradation of one server.
#[derive(Debug, Serialize, ToSchema)]
pub struct IncidentView {
    pub id: String,
    pub server_id: String,
    pub kind: String,
    pub cause: String,
    pub opened_at: String,
    /// `null` while open.
    pub closed_at: Option<String>,
    pub duration_seconds: Option<i64>,
}

impl From<&IncidentRecord> for IncidentView {
    fn from(i: &IncidentRecord) -> Self {
        IncidentView {
            id: i.id.clone(),
            server_id: i.server_id.clone(),
            kind: i.kind.clone(),
            cause: i.cause.clone(),
            opened_at: rfc3339(i.opened_at),
            closed_at: i.closed_at.map(rfc3339),
            duration_seconds: i.closed_at.map(|c| (c - i.opened_at) / 1000),
        }
    }
}

/// A page of incidents, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct IncidentPage {
    pub items: Vec<IncidentView>,
    pub next_cursor: Option<String>,
}

/// Something that happened (`server.down`, `schema.changed`, …), as alert channels receive it.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventView {
    pub id: String,
    /// The event type, e.g. `server.down`.
    #[serde(rename = "type")]
    pub kind: String,
    pub server_id: Option<String>,
    pub at: String,
    /// The event's data; its members depend on the type (see the README's alert payloads).
    #[schema(value_type = Object)]
    pub data: Object,
}

impl From<&EventRecord> for EventView {
    fn from(e: &EventRecord) -> Self {
        EventView {
            id: e.id.clone(),
            kind: e.kind.clone(),
            server_id: e.server_id.clone(),
            at: rfc3339(e.at),
            data: e.payload.as_object().cloned().unwrap_or_default(),
        }
    }
}

/// A page of events, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventPage {
    pub items: Vec<EventView>,
    pub next_cursor: Option<String>,
}

/// A server with its last result, for `GET /status`.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatusEntry {
    #[serde(flatten)]
    pub server: ServerView,
    pub last_result: Option<ResultView>,
}

/// Servers per state over the whole fleet.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct StateCounts {
    pub unknown: i64,
    pub up: i64,
    pub degraded: i64,
    pub down: i64,
    pub auth_failed: i64,
    pub paused: i64,
}

impl StateCounts {
    pub fn add(&mut self, status: ServerStatus, n: i64) {
        let slot = match status {
            ServerStatus::Unknown => &mut self.unknown,
            ServerStatus::Up => &mut self.up,
            ServerStatus::Degraded => &mut self.degraded,
            ServerStatus::Down => &mut self.down,
            ServerStatus::AuthFailed => &mut self.auth_failed,
            ServerStatus::Paused => &mut self.paused,
        };
        *slot += n;
    }
}

/// `GET /status`: counts over the fleet and a page of servers with their last result.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatusView {
    pub counts: StateCounts,
    pub servers: Vec<StatusEntry>,
    pub next_cursor: Option<String>,
    /// This node's region.
    pub region: String,
}

/// An API key (never its token).
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyView {
    pub id: String,
    pub name: String,
    /// The token's first characters, to tell keys apart.
    pub prefix: String,
    pub scopes: Vec<String>,
    /// The region of an `agent` key.
    pub region: Option<String>,
    pub created_at: String,
    pub last_used_at: Option<String>,
}

impl From<&ApiKeyRecord> for KeyView {
    fn from(k: &ApiKeyRecord) -> Self {
        KeyView {
            id: k.id.clone(),
            name: k.name.clone(),
            prefix: k.prefix.clone(),
            scopes: k.scopes.clone(),
            region: k.region.clone(),
            created_at: rfc3339(k.created_at),
            last_used_at: k.last_used_at.map(rfc3339),
        }
    }
}

/// `POST /keys`: the new key with its token, shown only in this answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct IssuedKey {
    #[serde(flatten)]
    pub key: KeyView,
    pub token: String,
    pub note: String,
}

/// Every API key.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyList {
    pub items: Vec<KeyView>,
}

/// An alert channel. Header values and the signing secret appear as `***`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelView {
    pub id: String,
    pub name: String,
    pub kind: ChannelKind,
    pub url: Option<String>,
    /// Webhook body format: `mcpwatch`, `slack` or `discord`.
    pub format: Option<String>,
    pub headers: BTreeMap<String, String>,
    pub recipients: Vec<String>,
    /// `***` when the channel signs its deliveries (the secret itself only in the answer that
    /// generated it).
    pub secret: Option<String>,
    /// Server ids it follows; empty (with no tags): every server.
    pub servers: Vec<String>,
    pub tags: Vec<String>,
    pub events: Vec<String>,
    /// Which schema changes it is sent (`breaking`, `security`, `compatible`); empty: every
    /// one.
    pub drift: Vec<String>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub failing_since: Option<String>,
    pub reminder_interval_seconds: Option<i64>,
    /// The body template of the `template` format.
    pub template: Option<String>,
    /// The monitors file that manages it (the API refuses to change or delete it); `null`:
    /// made through the API.
    pub managed_by: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&ChannelRecord> for ChannelView {
    fn from(c: &ChannelRecord) -> Self {
        ChannelView {
            id: c.id.clone(),
            name: c.name.clone(),
            kind: c.kind,
            url: c.url.clone(),
            format: c.format.clone(),
            headers: hidden_headers(&c.header_names),
            recipients: c.recipients.clone(),
            secret: c.secret_enc.as_ref().map(|_| HIDDEN.to_string()),
            servers: c.server_ids.clone(),
            tags: c.tags.clone(),
            events: c.events.clone(),
            drift: c.drift.clone(),
            enabled: c.enabled,
            disabled_reason: c.disabled_reason.clone(),
            failing_since: c.failing_since.map(rfc3339),
            reminder_interval_seconds: c.reminder_interval_seconds,
            template: c.template.clone(),
            managed_by: c.managed_by.clone(),
            created_at: rfc3339(c.created_at),
            updated_at: rfc3339(c.updated_at),
        }
    }
}

/// `POST /channels`: the channel; when a signing secret was generated, `secret` holds it
/// (shown only in this answer) and `note` says so.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedChannel {
    #[serde(flatten)]
    pub channel: ChannelView,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    pub note: Option<String>,
}

/// Every channel.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelList {
    pub items: Vec<ChannelView>,
}

/// `POST /channels/{id}/test`: what the receiver answered (not stored as a delivery).
#[derive(Debug, Serialize, ToSchema)]
pub struct TestOutcome {
    pub delivered: bool,
    pub http_status: Option<u16>,
    pub error: Option<String>,
    pub duration_ms: f64,
    /// The `webhook-id` the receiver saw.
    pub webhook_id: String,
}

/// One attempt at a delivery.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptView {
    pub at: String,
    pub http_status: Option<i64>,
    pub error: Option<String>,
    pub duration_ms: f64,
}

impl From<&AttemptRecord> for AttemptView {
    fn from(a: &AttemptRecord) -> Self {
        AttemptView {
            at: rfc3339(a.at),
            http_status: a.http_status,
            error: a.error.clone(),
            duration_ms: a.duration_ms,
        }
    }
}

/// One event to one channel, with its attempts.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    pub id: String,
    pub event_id: String,
    pub channel_id: String,
    pub status: DeliveryStatus,
    pub attempts: i64,
    /// When the next attempt is due (pending only).
    pub next_attempt_at: Option<String>,
    pub last_http_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: String,
    pub delivered_at: Option<String>,
    /// Every attempt, oldest first (in lists; absent from the answer to a retry).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    pub attempt_log: Option<Vec<AttemptView>>,
}

impl DeliveryView {
    pub fn new(d: &DeliveryRecord, attempts: Option<&[AttemptRecord]>) -> Self {
        DeliveryView {
            id: d.id.clone(),
            event_id: d.event_id.clone(),
            channel_id: d.channel_id.clone(),
            status: d.status,
            attempts: d.attempts,
            next_attempt_at: (d.status == DeliveryStatus::Pending)
                .then(|| rfc3339(d.next_attempt_at)),
            last_http_status: d.last_status,
            last_error: d.last_error.clone(),
            created_at: rfc3339(d.created_at),
            delivered_at: d.delivered_at.map(rfc3339),
            attempt_log: attempts.map(|a| a.iter().map(AttemptView::from).collect()),
        }
    }
}

/// A page of deliveries, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryPage {
    pub items: Vec<DeliveryView>,
    pub next_cursor: Option<String>,
}

/// The occurrence of a window that is on now.
#[derive(Debug, Serialize, ToSchema)]
pub struct Occurrence {
    pub start: String,
    pub end: String,
}

/// A maintenance window: one-off (`starts_at`..`ends_at`) or recurring (`cron` + duration).
#[derive(Debug, Serialize, ToSchema)]
pub struct WindowView {
    pub id: String,
    pub name: String,
    pub servers: Vec<String>,
    pub tags: Vec<String>,
    pub starts_at: Option<String>,
    pub ends_at: Option<String>,
    pub cron: Option<String>,
    pub duration_seconds: Option<i64>,
    pub timezone: Option<String>,
    pub active_now: bool,
    pub current_occurrence: Option<Occurrence>,
    /// The monitors file that manages it (the API refuses to change or delete it); `null`:
    /// made through the API.
    pub managed_by: Option<String>,
    pub created_at: String,
}

impl WindowView {
    /// The window as it stands at `now` (`active`: the occurrence on now, if any).
    pub fn new(w: &WindowRecord, active: Option<(i64, i64)>) -> Self {
        WindowView {
            id: w.id.clone(),
            name: w.name.clone(),
            servers: w.server_ids.clone(),
            tags: w.tags.clone(),
            starts_at: w.starts_at.map(rfc3339),
            ends_at: w.ends_at.map(rfc3339),
            cron: w.cron.clone(),
            duration_seconds: w.duration_seconds,
            timezone: w.timezone.clone(),
            active_now: active.is_some(),
            current_occurrence: active.map(|(s, e)| Occurrence {
                start: rfc3339(s),
                end: rfc3339(e),
            }),
            managed_by: w.managed_by.clone(),
            created_at: rfc3339(w.created_at),
        }
    }
}

/// Every maintenance window.
#[derive(Debug, Serialize, ToSchema)]
pub struct WindowList {
    pub items: Vec<WindowView>,
}

/// `GET /healthz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Alive {
    /// Always `ok`.
    pub status: String,
}

/// Whether this replica holds the leader lease.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// It runs the singletons (retention, reminders, maintenance summaries) besides probing
    /// and deciding the servers of its buckets.
    Leader,
    /// Another replica leads; this one probes and decides the servers of its buckets.
    Member,
}

/// `GET /readyz`: ready, or not with the reasons.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` or `not_ready`.
    pub status: String,
    pub role: Role,
    /// Buckets of servers this replica probes and decides (of 128; all of them on a single
    /// node).
    pub buckets: usize,
    /// What keeps it from being ready (absent when ready).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(required = false)]
    pub problems: Vec<String>,
}
