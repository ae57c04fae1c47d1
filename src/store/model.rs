//! Rows as the rest of the daemon sees them. Times are Unix milliseconds.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::column::JsonText;
use crate::monitor::{RegionState, ServerState};
use crate::probe::{FailureKind, Phase, ProbeReport, Verdict};

/// A registered MCP server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct ServerRecord {
    pub id: String,
    pub slug: String,
    pub name: String,
    /// The URL as shown: credentials in it (userinfo, query values) appear as `***`.
    pub url: String,
    /// AES-256-GCM sealed whole URL, when it carries credentials; probes use it.
    #[serde(skip)]
    pub url_enc: Option<String>,
    /// Names of the probe headers; the values live sealed in `headers_enc`.
    #[sqlx(try_from = "JsonText<Vec<String>>")]
    pub header_names: Vec<String>,
    /// AES-256-GCM sealed JSON `[[name, value], …]`; never leaves the daemon.
    #[serde(skip)]
    pub headers_enc: Option<String>,
    #[sqlx(try_from = "i64")]
    pub interval_seconds: u32,
    #[sqlx(try_from = "i64")]
    pub timeout_seconds: u32,
    #[sqlx(try_from = "JsonText<Vec<String>>")]
    pub tags: Vec<String>,
    pub public: bool,
    pub paused: bool,
    #[sqlx(try_from = "i64")]
    pub failures_to_down: u32,
    #[sqlx(try_from = "i64")]
    pub successes_to_up: u32,
    #[sqlx(try_from = "NullableInt")]
    pub degraded_latency_ms: Option<u64>,
    pub expect_auth: bool,
    /// The last era found, tried first next time.
    pub era_hint: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// Regions that probe it; empty: every region.
    #[serde(default)]
    #[sqlx(try_from = "JsonText<Vec<String>>")]
    pub regions: Vec<String>,
    /// Regions down needed for the server to be down; `None`: a majority of its regions.
    #[serde(default)]
    #[sqlx(try_from = "NullableInt")]
    pub quorum: Option<u32>,
    /// The monitors file that manages it (`None`: made through the API).
    #[serde(default)]
    pub managed_by: Option<String>,
    /// JSON [`RegistryOrigin`]: the MCP Registry entry it was imported from.
    #[serde(default)]
    pub registry: Option<String>,
    /// Why mcpwatch paused it (`registry: …`); `None` when an operator did, or it runs.
    #[serde(default)]
    pub paused_reason: Option<String>,
    /// JSON [`OAuthShown`]: the probe's OAuth client-credentials identity, without its secret.
    #[serde(default)]
    pub oauth: Option<String>,
    /// AES-256-GCM sealed JSON [`crate::probe::oauth::ClientCredentials`] (with the secret).
    #[serde(skip)]
    pub oauth_enc: Option<String>,
    /// The `exp` of a static `Authorization: Bearer` JWT among the probe headers (Unix ms),
    /// read when the headers are written; the credential-expiry watchdog warns before it.
    #[serde(default)]
    pub bearer_expires_at: Option<i64>,
    /// JSON [`crate::probe::CallPlan`]: the synthetic tool calls each probe makes (`None`:
    /// none). Not a credential: the API and the page show it, write overrides included.
    #[serde(default)]
    pub calls: Option<String>,
    /// Probes list its resources, resource templates and prompts when it advertises them.
    #[serde(default = "yes")]
    pub list_contract: bool,
}

fn yes() -> bool {
    true
}

/// A server's OAuth client-credentials identity as shown (the secret or key never is).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OAuthShown {
    pub client_id: String,
    /// `client_secret_basic`, `client_secret_post` or `private_key_jwt`.
    pub auth_method: crate::probe::oauth::ClientAuth,
    /// `null`: found by the discovery chain.
    pub token_endpoint: Option<String>,
    pub scope: Option<String>,
    /// RFC 8707 `resource`; `null`: the server's URL.
    pub resource: Option<String>,
    /// When the client secret or key expires, as the operator said (Unix ms); the
    /// credential-expiry watchdog warns before it.
    pub expires_at: Option<i64>,
}

/// Where a server imported from an MCP registry came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RegistryOrigin {
    /// The registry's base URL.
    pub registry: String,
    /// The server's name there (reverse-DNS, e.g. `io.github.user/weather`).
    pub name: String,
    pub title: Option<String>,
    pub version: Option<String>,
    pub website_url: Option<String>,
    /// `streamable-http` or `sse`.
    pub transport: String,
    /// `active`, `deprecated` or `deleted`, as the registry last said.
    pub status: String,
}

impl ServerRecord {
    /// Whether `region` probes this server.
    pub fn probed_from(&self, region: &str) -> bool {
        self.regions.is_empty() || self.regions.iter().any(|r| r == region)
    }

    /// Whether probes send credentials (headers or an OAuth identity): a 401 then means they
    /// were refused, not that the server is merely protected.
    pub fn has_credentials(&self) -> bool {
        !self.header_names.is_empty() || self.oauth.is_some()
    }

    /// The OAuth identity as shown, when it has one.
    pub fn oauth_shown(&self) -> Option<OAuthShown> {
        self.oauth
            .as_deref()
            .and_then(|j| serde_json::from_str(j).ok())
    }

    /// The synthetic tool calls it is checked with, when it has any.
    pub fn call_plan(&self) -> Option<crate::probe::CallPlan> {
        self.calls
            .as_deref()
            .and_then(|j| serde_json::from_str(j).ok())
    }

    /// The server as events and alerts show it: never credentials or the query string.
    pub fn event_json(&self) -> Value {
        server_event_json(&self.id, &self.slug, &self.name, &self.url)
    }
}

/// A server as events and alerts show it (its URL redacted once more, as a safety net).
pub fn server_event_json(id: &str, slug: &str, name: &str, url: &str) -> Value {
    let url = url::Url::parse(url)
        .map(|u| crate::probe::redact_url(&u))
        .unwrap_or_default();
    serde_json::json!({"id": id, "slug": slug, "name": name, "url": url})
}

/// One probe result from one region.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct ResultRecord {
    pub id: String,
    pub server_id: String,
    pub region: String,
    pub started_at: i64,
    pub duration_ms: f64,
    pub dns_ms: Option<f64>,
    pub connect_ms: Option<f64>,
    pub tls_ms: Option<f64>,
    pub handshake_ms: Option<f64>,
    pub tools_list_ms: Option<f64>,
    pub verdict: Verdict,
    pub failure_kind: Option<FailureKind>,
    pub failure_phase: Option<Phase>,
    pub failure_message: Option<String>,
    pub http_status: Option<i64>,
    pub jsonrpc_code: Option<i64>,
    pub era: Option<String>,
    pub protocol_version: Option<String>,
    pub server_name: Option<String>,
    pub server_version: Option<String>,
    pub tool_count: i64,
    pub schema_hash: Option<String>,
    pub tls_not_after: Option<i64>,
    /// From an agent whose canaries were failing: stored, never counted.
    #[serde(default)]
    pub vantage_unhealthy: bool,
    /// The W3C trace id every request of the probe carried (`None` when none was sent).
    #[serde(default)]
    pub trace_id: Option<String>,
    /// JSON `[CallOutcome]`: what each synthetic tool call did (`None`: none were asked for).
    #[serde(default)]
    pub calls: Option<String>,
    /// JSON `StreamOutcome`: what the streaming check saw (`None`: none was asked for).
    #[serde(default)]
    pub stream: Option<String>,
    /// JSON `[ListedKind]`: each listed kind's count and hash (`None`: none listed).
    #[serde(default)]
    pub contract: Option<String>,
}

impl ResultRecord {
    /// Flatten a probe report for storage.
    pub fn from_report(
        id: String,
        server_id: &str,
        region: &str,
        started_at: i64,
        r: &ProbeReport,
    ) -> Self {
        let f = r.failure.as_ref();
        ResultRecord {
            id,
            server_id: server_id.to_string(),
            region: region.to_string(),
            started_at,
            duration_ms: r.timings_ms.total,
            dns_ms: r.timings_ms.dns,
            connect_ms: r.timings_ms.connect,
            tls_ms: r.timings_ms.tls,
            handshake_ms: r.timings_ms.handshake,
            tools_list_ms: r.timings_ms.tools_list,
            verdict: r.verdict,
            failure_kind: f.map(|f| f.kind),
            failure_phase: f.map(|f| f.phase),
            failure_message: f.map(|f| f.message.clone()).or_else(|| auth_words(r)),
            http_status: f.and_then(|f| f.http_status).map(i64::from),
            jsonrpc_code: f.and_then(|f| f.jsonrpc_code),
            era: r.era.map(|e| e.as_str().to_string()),
            protocol_version: r.protocol_version.clone(),
            server_name: r.server_info.as_ref().map(|s| s.name.clone()),
            server_version: r.server_info.as_ref().map(|s| s.version.clone()),
            tool_count: r.tools_count as i64,
            schema_hash: r.schema_hash.clone(),
            tls_not_after: r.tls.as_ref().map(|t| t.not_after_unix),
            vantage_unhealthy: false,
            trace_id: r.trace_id.clone(),
            calls: (!r.calls.is_empty())
                .then(|| serde_json::to_string(&r.calls).unwrap_or_default()),
            stream: r
                .stream
                .as_ref()
                .map(|s| serde_json::to_string(s).unwrap_or_default()),
            contract: (!r.contract.is_empty())
                .then(|| serde_json::to_string(&r.contract).unwrap_or_default()),
        }
    }
}

/// For an `auth_required` result, what its OAuth discovery showed, in words: stored as the
/// result's message so the API and the status page say "alive and correctly protected" (or
/// that no OAuth is advertised) rather than nothing.
fn auth_words(r: &ProbeReport) -> Option<String> {
    use crate::probe::discovery::DiscoveryStatus;
    let d = r.auth.as_ref()?.discovery.as_ref()?;
    match d.status {
        DiscoveryStatus::Ok => Some(format!(
            "OAuth discovery OK: issuer {}",
            d.issuer.as_deref().unwrap_or("?")
        )),
        DiscoveryStatus::NotAdvertised => Some("no OAuth metadata advertised".into()),
        DiscoveryStatus::Broken => None,
    }
}

/// A resource, template or prompt list as first seen (items as received).
#[derive(Debug, Clone, PartialEq)]
pub struct ContractSnapshot {
    pub server_id: String,
    /// `resources`, `resource_templates` or `prompts`.
    pub kind: String,
    pub hash: String,
    pub items: Value,
    pub first_seen: i64,
}

/// The list of one kind a server serves now.
#[derive(Debug, Clone, PartialEq)]
pub struct ContractState {
    pub server_id: String,
    pub kind: String,
    pub hash: String,
    pub since: i64,
}

/// A stored tool list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct SnapshotRecord {
    pub server_id: String,
    pub hash: String,
    pub interface_hash: String,
    /// The canonical tool list.
    #[sqlx(try_from = "JsonText<Value>")]
    pub tools: Value,
    pub first_seen: i64,
    pub last_seen: i64,
}

/// A change of the served tool list: from one hash (none for the first list) to another, at
/// the time of the result that showed it. A return to an earlier list is a change too.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct SchemaChangeRecord {
    pub server_id: String,
    pub at: i64,
    pub from_hash: Option<String>,
    pub to_hash: String,
    /// `breaking` / `compatible`, and one line of what changed; `None` for a first list.
    pub class: Option<String>,
    pub summary: Option<String>,
}

impl From<&SchemaChangeRecord> for crate::schema::history::Change {
    fn from(c: &SchemaChangeRecord) -> Self {
        crate::schema::history::Change {
            at: c.at,
            previous: c.from_hash.clone(),
            hash: c.to_hash.clone(),
        }
    }
}

/// An outage (down or auth_failed) from open to close.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct IncidentRecord {
    pub id: String,
    pub server_id: String,
    pub kind: String,
    pub cause: String,
    pub opened_at: i64,
    pub closed_at: Option<i64>,
}

/// A stored event (the input of alerting).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct EventRecord {
    pub id: String,
    pub server_id: Option<String>,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub at: i64,
    #[sqlx(try_from = "JsonText<Value>")]
    pub payload: Value,
}

/// An API key; only its SHA-256 hash is stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct ApiKeyRecord {
    pub id: String,
    pub name: String,
    /// The first characters of the token, to recognise it in a list.
    pub prefix: String,
    #[serde(skip)]
    pub hash: String,
    #[sqlx(try_from = "JsonText<Vec<String>>")]
    pub scopes: Vec<String>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    /// The region an `agent` key reports for.
    pub region: Option<String>,
}

pub use crate::shard::Fence;

/// A result taken by a replica that does not own its server, waiting in the database for the
/// owner (`handoff` table): the owner's ingest decides it, then the row goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandoffRecord {
    /// The result's id (a result is handed off once).
    pub id: String,
    pub bucket: u16,
    pub server_id: String,
    /// The ingest item, as `ingest::handoff` encodes it.
    pub payload: String,
    pub created_at: i64,
}

/// Everything a batch of results changes, written in one transaction.
#[derive(Debug, Default, Clone)]
pub struct BatchWrites {
    pub results: Vec<ResultRecord>,
    pub region_states: Vec<(String, RegionState)>,
    pub server_states: Vec<(String, ServerState)>,
    pub events: Vec<EventRecord>,
    pub incidents_opened: Vec<IncidentRecord>,
    /// (incident id, server id, closed_at)
    pub incidents_closed: Vec<(String, String, i64)>,
    /// Inserted, or `last_seen` bumped when already known.
    pub snapshots: Vec<SnapshotRecord>,
    /// (server id, hash, seen at): a tool list the server serves already, seen again. Only its
    /// `last_seen` moves, so the ingest need not canonicalize a list it knows by its hash.
    pub sightings: Vec<(String, String, i64)>,
    /// Every change of a served tool list (the history; a re-sent change is kept once).
    pub schema_changes: Vec<SchemaChangeRecord>,
    /// Resource, template and prompt lists first seen (facts).
    pub contract_snapshots: Vec<ContractSnapshot>,
    /// The lists each server serves now (decisions, like its state).
    pub contract_states: Vec<ContractState>,
    /// (server id, era) learned from results, tried first next time.
    pub era_hints: Vec<(String, String)>,
    /// One outbox row per (event, matching channel), in the same transaction as the event.
    pub outbox: Vec<DeliveryRecord>,
    /// (channel id, failing_since) changes, with the channel.failing/recovered event.
    pub channel_health: Vec<(String, Option<i64>)>,
    /// Alerts held by a maintenance window (inserted once per occurrence and server; later
    /// held events only count).
    pub held: Vec<HeldRecord>,
    /// (window id, occurrence start, server id) whose summary went out.
    pub held_summarized: Vec<(String, i64, String)>,
    /// (channel id, incident id, sent at) of `server.still_down` reminders.
    pub reminders: Vec<(String, String, i64)>,
    /// (region, last seen before, silent since): mark the region silent, only if it is not
    /// already and has not spoken since; otherwise the whole batch is refused with
    /// `StoreError::Conflict`, so one replica, once, raises `region.silent`.
    pub region_silent: Vec<(String, i64, i64)>,
    /// Results of servers this replica does not own, for their owner (facts: always written).
    pub handoff: Vec<HandoffRecord>,
    /// The bucket leases under which this batch's states, events and alerts were decided. For
    /// a server whose bucket another holder or term holds when the batch commits (this node
    /// was cut off and replaced meanwhile), only the facts are written: results, rollups,
    /// tool lists and era hints. `None`: nothing to check (SQLite, a single node).
    pub fence: Option<Fence>,
}

impl BatchWrites {
    pub fn is_empty(&self) -> bool {
        self.results.is_empty()
            && self.events.is_empty()
            && self.server_states.is_empty()
            && self.handoff.is_empty()
    }

    /// The servers whose states, incidents, schema history, events or alerts this batch
    /// writes (the decisions a fence guards).
    pub fn decided_servers(&self) -> std::collections::BTreeSet<&str> {
        let ids = self.region_states.iter().map(|(id, _)| id.as_str());
        ids.chain(self.server_states.iter().map(|(id, _)| id.as_str()))
            .chain(self.incidents_opened.iter().map(|i| i.server_id.as_str()))
            .chain(self.incidents_closed.iter().map(|(_, id, _)| id.as_str()))
            .chain(self.schema_changes.iter().map(|c| c.server_id.as_str()))
            .chain(self.events.iter().filter_map(|e| e.server_id.as_deref()))
            .chain(self.held.iter().map(|h| h.server_id.as_str()))
            .collect()
    }

    /// Drop every decision about the servers `lost` names (their bucket moved to another
    /// replica before this batch committed), with the alerts of the events dropped.
    pub fn drop_decisions_of(&mut self, lost: impl Fn(&str) -> bool) {
        self.region_states.retain(|(id, _)| !lost(id));
        self.server_states.retain(|(id, _)| !lost(id));
        self.incidents_opened.retain(|i| !lost(&i.server_id));
        self.incidents_closed.retain(|(_, id, _)| !lost(id));
        self.schema_changes.retain(|c| !lost(&c.server_id));
        self.contract_states.retain(|c| !lost(&c.server_id));
        self.held.retain(|h| !lost(&h.server_id));
        let dropped: std::collections::HashSet<String> = self
            .events
            .iter()
            .filter(|e| e.server_id.as_deref().is_some_and(&lost))
            .map(|e| e.id.clone())
            .collect();
        self.events.retain(|e| !dropped.contains(&e.id));
        self.outbox.retain(|d| !dropped.contains(&d.event_id));
    }
}

/// Filters and pagination for list endpoints. `after` is a keyset cursor.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub limit: u32,
    /// (time, id) of the last row of the previous page.
    pub after: Option<(i64, String)>,
}

/// Filters for the result history.
#[derive(Debug, Clone, Default)]
pub struct ResultQuery {
    pub server_id: String,
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub region: Option<String>,
    pub page: Page,
}

/// Which servers a list shows.
#[derive(Debug, Clone, Default)]
pub struct ServerFilter {
    /// Only servers with this tag.
    pub tag: Option<String>,
    /// Only servers in this status (a paused server counts as `paused`).
    pub status: Option<crate::monitor::ServerStatus>,
    /// Only these servers (the ingest loading a batch's servers at once).
    pub ids: Option<Vec<String>>,
}

/// A server with its current state, for the summary and the list.
#[derive(Debug, Clone)]
pub struct ServerWithState {
    pub server: ServerRecord,
    pub state: Option<ServerState>,
    pub regions: Vec<RegionState>,
}

/// An alert channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct ChannelRecord {
    pub id: String,
    pub name: String,
    pub kind: ChannelKind,
    pub url: Option<String>,
    /// `standard`, `slack` or `discord` (webhooks).
    pub format: Option<String>,
    #[serde(skip)]
    pub headers_enc: Option<String>,
    #[sqlx(try_from = "JsonText<Vec<String>>")]
    pub header_names: Vec<String>,
    /// Sealed `whsec_` secret; never leaves the daemon after creation.
    #[serde(skip)]
    pub secret_enc: Option<String>,
    #[sqlx(try_from = "JsonText<Vec<String>>")]
    pub recipients: Vec<String>,
    /// Servers (ids) and tags this channel follows; both empty: every server.
    #[sqlx(try_from = "JsonText<Vec<String>>")]
    pub server_ids: Vec<String>,
    #[sqlx(try_from = "JsonText<Vec<String>>")]
    pub tags: Vec<String>,
    /// Event types delivered.
    #[sqlx(try_from = "JsonText<Vec<String>>")]
    pub events: Vec<String>,
    /// Which schema changes it is sent: any of `breaking`, `security`, `compatible`; empty:
    /// every one.
    #[serde(default)]
    #[sqlx(try_from = "JsonText<Vec<String>>")]
    pub drift: Vec<String>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    /// When the channel started failing (5 failed attempts in a row); `None` when healthy.
    pub failing_since: Option<i64>,
    /// Send `server.still_down` this often while a followed server is down; `None`: never.
    pub reminder_interval_seconds: Option<i64>,
    /// The body template of the `template` format.
    pub template: Option<String>,
    /// The monitors file that manages it (`None`: made through the API).
    pub managed_by: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Where an alert goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    /// An HTTP POST (Standard Webhooks, Slack or Discord format).
    Webhook,
    /// Mail through the configured SMTP relay.
    Email,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting for its next attempt.
    Pending,
    /// Claimed by a dispatcher (until its lease ends).
    Sending,
    /// The receiver accepted it.
    Delivered,
    /// Given up: out of attempts, or refused for good. Requeued only by an operator.
    Dead,
}

impl ChannelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Webhook => "webhook",
            ChannelKind::Email => "email",
        }
    }
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Sending => "sending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Dead => "dead",
        }
    }
}

crate::probe::parse_by_name!(ChannelKind [Webhook, Email]);
crate::probe::parse_by_name!(DeliveryStatus [Pending, Sending, Delivered, Dead]);

/// One (event, channel) delivery: the outbox row. Its id is the idempotency key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct DeliveryRecord {
    pub id: String,
    pub event_id: String,
    pub channel_id: String,
    pub status: DeliveryStatus,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub lease_until: Option<i64>,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub delivered_at: Option<i64>,
}

impl DeliveryRecord {
    /// A new outbox row for `event_id` → `channel_id`, due at `at`.
    pub fn pending(event_id: &str, channel_id: &str, at: i64) -> Self {
        DeliveryRecord {
            id: uuid::Uuid::now_v7().to_string(),
            event_id: event_id.to_string(),
            channel_id: channel_id.to_string(),
            status: DeliveryStatus::Pending,
            attempts: 0,
            next_attempt_at: at,
            lease_until: None,
            last_status: None,
            last_error: None,
            created_at: at,
            delivered_at: None,
        }
    }
}

/// One attempt to deliver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct AttemptRecord {
    pub id: String,
    pub delivery_id: String,
    pub at: i64,
    pub http_status: Option<i64>,
    pub error: Option<String>,
    pub duration_ms: f64,
}

/// A maintenance window (one-off or recurring).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct WindowRecord {
    pub id: String,
    pub name: String,
    #[sqlx(try_from = "JsonText<Vec<String>>")]
    pub server_ids: Vec<String>,
    #[sqlx(try_from = "JsonText<Vec<String>>")]
    pub tags: Vec<String>,
    pub starts_at: Option<i64>,
    pub ends_at: Option<i64>,
    pub cron: Option<String>,
    pub duration_seconds: Option<i64>,
    pub timezone: Option<String>,
    pub created_at: i64,
    /// The monitors file that manages it (`None`: made through the API).
    pub managed_by: Option<String>,
}

/// What applying a monitors file writes, all in one transaction.
#[derive(Debug, Default)]
pub struct MonitorWrites {
    pub servers_created: Vec<ServerRecord>,
    /// The first state of each created server.
    pub first_states: Vec<(String, crate::monitor::ServerState)>,
    pub servers_changed: Vec<ServerRecord>,
    /// Ids.
    pub servers_deleted: Vec<String>,
    pub channels_created: Vec<ChannelRecord>,
    pub channels_changed: Vec<ChannelRecord>,
    pub channels_deleted: Vec<String>,
    pub windows_created: Vec<WindowRecord>,
    pub windows_changed: Vec<WindowRecord>,
    pub windows_deleted: Vec<String>,
}

/// Alerts a window held for a server during one occurrence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct HeldRecord {
    pub window_id: String,
    pub occurrence_start: i64,
    pub occurrence_end: i64,
    pub server_id: String,
    /// The server's state before the first held event.
    pub state_before: String,
}

/// A nullable BIGINT read into a narrower unsigned field.
#[derive(Debug, sqlx::Type)]
#[sqlx(transparent)]
pub struct NullableInt(pub Option<i64>);

impl TryFrom<NullableInt> for Option<u32> {
    type Error = std::num::TryFromIntError;
    fn try_from(v: NullableInt) -> Result<Self, Self::Error> {
        v.0.map(u32::try_from).transpose()
    }
}

impl TryFrom<NullableInt> for Option<u64> {
    type Error = std::num::TryFromIntError;
    fn try_from(v: NullableInt) -> Result<Self, Self::Error> {
        v.0.map(u64::try_from).transpose()
    }
}
