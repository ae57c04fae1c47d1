//! `/api/v1/servers`: register, list, read, change, pause/resume, delete, check now.
//!
//! Input is parsed into a [`ServerRecord`] by [`apply`], which reports every invalid field at
//! once. Probe headers are write-only: sealed with AES-256-GCM before storage and shown as
//! `"***"` in every response.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;

use super::error::{ApiError, ApiJson, BadInput, FieldError, Guarded, NoSuch, Taken};
use super::views::{
    BatchCreated, CheckResult, CreatedServer, RegionView, ServerDetail, ServerPage, ServerView,
};
use super::{AppState, next_cursor, now_ms, page};
use crate::config::MIN_INTERVAL_SECONDS;
use crate::ingest::IngestItem;
use crate::monitor::{ServerState, ServerStatus};
use crate::probe::AddressPolicy;
use crate::secrets::Sealer;
use crate::store::{Page, ServerFilter, ServerRecord};

/// A server as clients send it (POST: `name` and `url` required; PATCH: any subset).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerInput {
    pub(crate) name: Option<String>,
    url: Option<String>,
    pub(crate) slug: Option<String>,
    /// Probe credentials, e.g. `{"Authorization": "Bearer …"}`; `null` clears them.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<BTreeMap<String, String>>)]
    headers: Option<Value>,
    /// The probe's OAuth client-credentials identity (the probe gets its own tokens); the
    /// secret or key is write-only and kept when left out; `null` removes it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<super::server_oauth::OAuthInput>)]
    oauth: Option<Value>,
    /// Seconds between probes: 10 … 86400, default 60 (`MCPWATCH_DEFAULT_INTERVAL`).
    interval_seconds: Option<u32>,
    /// The probe's total deadline: 1 … 60 and shorter than `interval_seconds`. Default: 10, or
    /// half the interval when that is shorter; a default timeout follows interval changes.
    timeout_seconds: Option<u32>,
    tags: Option<Vec<String>>,
    public: Option<bool>,
    pub(crate) paused: Option<bool>,
    failures_to_down: Option<u32>,
    successes_to_up: Option<u32>,
    /// Above this probe duration the server is degraded; `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u64>)]
    degraded_latency_ms: Option<Value>,
    expect_auth: Option<bool>,
    /// Regions that probe it (agents' region names and the central's own); empty: all.
    regions: Option<Vec<String>>,
    /// Regions down needed for the server to be down; `null`: a majority of its regions.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u32>)]
    quorum: Option<Value>,
    /// Synthetic tool calls after `tools/list` (at most 10). Only tools the server marks
    /// `readOnlyHint: true` are called unless a call sets `allow_write`; `null` or `[]`:
    /// none.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<crate::probe::ToolCall>>)]
    calls: Option<Value>,
    /// What a failed call makes the probe: `degraded` (default) or `down`.
    call_failure: Option<super::server_calls::CallFailure>,
    /// The streaming check: a tool that reports progress as it runs (same rules as a call),
    /// called asking for progress; `degraded` when the progress does not stream; `null`: none.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<crate::probe::ToolCall>)]
    stream_call: Option<Value>,
    /// List its resources, resource templates and prompts when it advertises them, and
    /// raise `schema.changed` (with the kind) when one changes; default true.
    list_contract: Option<bool>,
}

/// Distinguish "absent" (None) from "null" (Some(Null)).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Ok(Some(Value::deserialize(d)?))
}

const MAX_TIMEOUT_SECONDS: u32 = 60;

/// The timeout a server gets unless one is given: 10 s, or half the interval when that is
/// shorter (a 10 s interval gets 5 s), so the default always fits the interval.
pub(crate) fn default_timeout(interval_seconds: u32) -> u32 {
    (interval_seconds / 2).clamp(1, 10)
}

/// Invalid fields found so far, all reported at once.
type Problems = Vec<FieldError>;

fn bad(problems: &mut Problems, field: &str, message: impl Into<String>) {
    problems.push(FieldError {
        field: field.into(),
        message: message.into(),
    });
}

/// Validate `input` over `s` (a new record's defaults, or the stored record for PATCH).
pub(crate) async fn apply(
    input: ServerInput,
    mut s: ServerRecord,
    creating: bool,
    policy: &AddressPolicy,
    sealer: &Sealer,
) -> Result<ServerRecord, ApiError> {
    let mut problems = Problems::new();
    let ServerInput {
        name,
        url,
        slug,
        headers,
        oauth,
        interval_seconds,
        timeout_seconds,
        tags,
        public,
        paused,
        failures_to_down,
        successes_to_up,
        degraded_latency_ms,
        expect_auth,
        regions,
        quorum,
        calls,
        call_failure,
        stream_call,
        list_contract,
    } = input;
    apply_identity(
        (name, url, slug),
        &mut s,
        creating,
        policy,
        sealer,
        &mut problems,
    )
    .await?;
    apply_headers(headers, &mut s, sealer, &mut problems)?;
    super::server_oauth::apply_oauth(oauth, &mut s, sealer, &mut problems)?;
    if s.oauth.is_some()
        && s.header_names
            .iter()
            .any(|h| h.eq_ignore_ascii_case("authorization"))
    {
        bad(
            &mut problems,
            "oauth",
            "the probe's OAuth identity sends its own Authorization header: remove the Authorization probe header",
        );
    }
    apply_timing(interval_seconds, timeout_seconds, &mut s, &mut problems);
    apply_grouping(tags, regions, quorum, &mut s, &mut problems);
    super::server_calls::apply_calls(calls, call_failure, stream_call, &mut s, &mut problems);
    if let Some(l) = list_contract {
        s.list_contract = l;
    }
    apply_judgement(
        Judgement {
            public,
            paused,
            failures_to_down,
            successes_to_up,
            degraded_latency_ms,
            expect_auth,
        },
        &mut s,
        &mut problems,
    );
    if problems.is_empty() {
        Ok(s)
    } else {
        Err(ApiError::Invalid(problems))
    }
}

/// Name, URL (sealed when it carries credentials) and slug.
async fn apply_identity(
    (name, url, slug): (Option<String>, Option<String>, Option<String>),
    s: &mut ServerRecord,
    creating: bool,
    policy: &AddressPolicy,
    sealer: &Sealer,
    problems: &mut Problems,
) -> Result<(), ApiError> {
    let mut err = |field: &str, message: String| bad(problems, field, message);
    match name.map(|n| n.trim().to_string()) {
        Some(n) if n.is_empty() || n.chars().count() > 200 => {
            err("name", "must be 1-200 characters".into())
        }
        Some(n) => s.name = n,
        None if creating => err("name", "is required".into()),
        None => {}
    }
    match url.map(|u| u.trim().to_string()) {
        // The masked URL sent back as it was shown (a GET then a PATCH) changes nothing.
        Some(u) if !creating && u == s.url => {}
        Some(u) => match validate_url(&u, policy).await {
            Ok(()) => {
                let (shown, sealed) = seal_url(&u, sealer)?;
                s.url = shown;
                s.url_enc = sealed;
            }
            Err(m) => err("url", m),
        },
        None if creating => err("url", "is required".into()),
        None => {}
    }
    if let Some(slug) = slug {
        if valid_slug(&slug) {
            s.slug = slug;
        } else {
            err(
                "slug",
                "must be 1-64 characters of a-z, 0-9 and -, not starting with -".into(),
            );
        }
    }
    Ok(())
}

/// Probe headers: write-only, sealed; `null` clears them.
fn apply_headers(
    headers: Option<Value>,
    s: &mut ServerRecord,
    sealer: &Sealer,
    problems: &mut Problems,
) -> Result<(), ApiError> {
    let mut err = |field: &str, message: String| bad(problems, field, message);
    match headers {
        None => {}
        Some(Value::Null) => {
            s.header_names.clear();
            s.headers_enc = None;
            s.bearer_expires_at = None;
        }
        Some(Value::Object(map)) => {
            let mut pairs: BTreeMap<String, String> = BTreeMap::new();
            for (k, v) in map {
                let ok_name = crate::probe::is_header_name(&k);
                match (ok_name, v) {
                    (false, _) => err("headers", format!("'{k}' is not a valid header name")),
                    (true, Value::String(v))
                        if !v.bytes().any(|b| b.is_ascii_control() && b != b'\t') =>
                    {
                        pairs.insert(k, v);
                    }
                    (true, _) => err(
                        "headers",
                        format!(
                            "the value of '{k}' must be a string without control characters (not shown)"
                        ),
                    ),
                }
            }
            s.header_names = pairs.keys().cloned().collect();
            let pairs: Vec<(String, String)> = pairs.into_iter().collect();
            s.bearer_expires_at = crate::credentials::bearer_exp(&pairs);
            let plain = serde_json::to_vec(&pairs).unwrap_or_default();
            s.headers_enc = if s.header_names.is_empty() {
                None
            } else {
                Some(
                    sealer
                        .seal(&plain)
                        .map_err(|e| ApiError::Internal(e.to_string()))?,
                )
            };
        }
        Some(_) => err(
            "headers",
            "must be an object of header name to value".into(),
        ),
    }
    Ok(())
}

/// Interval and timeout (the timeout shorter, and following the interval when nobody chose it).
fn apply_timing(
    interval_seconds: Option<u32>,
    timeout_seconds: Option<u32>,
    s: &mut ServerRecord,
    problems: &mut Problems,
) {
    let mut err = |field: &str, message: String| bad(problems, field, message);
    let old_interval = s.interval_seconds;
    if let Some(i) = interval_seconds {
        if !(MIN_INTERVAL_SECONDS..=86_400).contains(&i) {
            err(
                "interval_seconds",
                format!("must be between {MIN_INTERVAL_SECONDS} and 86400"),
            );
        } else {
            s.interval_seconds = i;
        }
    }
    if let Some(t) = timeout_seconds {
        if t == 0 || t > MAX_TIMEOUT_SECONDS {
            err(
                "timeout_seconds",
                format!("must be between 1 and {MAX_TIMEOUT_SECONDS}"),
            );
        } else {
            s.timeout_seconds = t;
        }
    }
    // A timeout nobody chose follows the interval: `{"interval_seconds": 10}` alone must work.
    if timeout_seconds.is_none() && s.timeout_seconds == default_timeout(old_interval) {
        s.timeout_seconds = default_timeout(s.interval_seconds);
    }
    if s.timeout_seconds >= s.interval_seconds {
        err(
            "timeout_seconds",
            format!(
                "{} s must be shorter than interval_seconds ({} s), so probes never overlap",
                s.timeout_seconds, s.interval_seconds
            ),
        );
    }
}

/// Tags, regions and the quorum over them.
fn apply_grouping(
    tags: Option<Vec<String>>,
    regions: Option<Vec<String>>,
    quorum: Option<Value>,
    s: &mut ServerRecord,
    problems: &mut Problems,
) {
    let mut err = |field: &str, message: String| bad(problems, field, message);
    if let Some(tags) = tags {
        let bad: Vec<&String> = tags
            .iter()
            .filter(|t| t.is_empty() || t.len() > 64 || t.chars().any(char::is_control))
            .collect();
        if bad.is_empty() && tags.len() <= 32 {
            let mut tags = tags;
            tags.sort();
            tags.dedup();
            s.tags = tags;
        } else {
            err(
                "tags",
                "at most 32 tags of 1-64 printable characters".into(),
            );
        }
    }
    if let Some(regions) = regions {
        if regions.len() <= 32 && regions.iter().all(|r| crate::config::is_region_name(r)) {
            let mut regions = regions;
            regions.sort();
            regions.dedup();
            s.regions = regions;
        } else {
            err(
                "regions",
                "at most 32 region names of 1-64 letters, digits, - or _".into(),
            );
        }
    }
    match quorum {
        None => {}
        Some(Value::Null) => s.quorum = None,
        Some(v) => match v.as_u64().filter(|q| (1..=32).contains(q)) {
            Some(q) => s.quorum = Some(q as u32),
            None => err("quorum", "must be an integer from 1 to 32, or null".into()),
        },
    }
    if let Some(q) = s.quorum
        && !s.regions.is_empty()
        && q as usize > s.regions.len()
    {
        err(
            "quorum",
            format!(
                "{q} is more than the {} regions that probe it",
                s.regions.len()
            ),
        );
    }
}

/// How results are judged and shown.
struct Judgement {
    public: Option<bool>,
    paused: Option<bool>,
    failures_to_down: Option<u32>,
    successes_to_up: Option<u32>,
    degraded_latency_ms: Option<Value>,
    expect_auth: Option<bool>,
}

/// Visibility, pausing and the state machine's thresholds.
fn apply_judgement(input: Judgement, s: &mut ServerRecord, problems: &mut Problems) {
    let mut err = |field: &str, message: String| bad(problems, field, message);
    if let Some(p) = input.public {
        s.public = p;
    }
    if let Some(p) = input.paused {
        s.paused = p;
    }
    for (field, value, slot) in [
        (
            "failures_to_down",
            input.failures_to_down,
            &mut s.failures_to_down,
        ),
        (
            "successes_to_up",
            input.successes_to_up,
            &mut s.successes_to_up,
        ),
    ] {
        match value {
            Some(v) if (1..=100).contains(&v) => *slot = v,
            Some(_) => err(field, "must be between 1 and 100".into()),
            None => {}
        }
    }
    match input.degraded_latency_ms {
        None => {}
        Some(Value::Null) => s.degraded_latency_ms = None,
        Some(v) => match v.as_u64() {
            Some(ms) if (1..=600_000).contains(&ms) => s.degraded_latency_ms = Some(ms),
            _ => err(
                "degraded_latency_ms",
                "must be an integer between 1 and 600000, or null".into(),
            ),
        },
    }
    if let Some(e) = input.expect_auth {
        s.expect_auth = e;
    }
}

pub(crate) fn valid_slug(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && !s.starts_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && uuid::Uuid::parse_str(s).is_err()
}

/// A slug from a name: "My MCP Server!" → "my-mcp-server".
pub(crate) fn slugify(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let out: String = out.trim_matches('-').chars().take(56).collect();
    if out.is_empty() {
        "server".to_string()
    } else {
        out.trim_end_matches('-').to_string()
    }
}

/// http(s), a host, and an address the policy allows (checked now, and again at every probe).
pub(crate) async fn validate_url(text: &str, policy: &AddressPolicy) -> Result<(), String> {
    let url = url::Url::parse(text).map_err(|e| format!("is not a valid URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "scheme '{}' is not supported: use http or https",
            url.scheme()
        ));
    }
    let host = url
        .host_str()
        .ok_or("has no host")?
        .trim_matches(['[', ']'])
        .to_string();
    let port = url.port_or_known_default().unwrap_or(443);
    let addrs: Vec<IpAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => match tokio::time::timeout(
            Duration::from_secs(3),
            tokio::net::lookup_host((host.as_str(), port)),
        )
        .await
        {
            Ok(Ok(found)) => found.map(|a| a.ip()).collect(),
            // Not resolvable yet: accepted; the probe reports `dns` until it is.
            _ => Vec::new(),
        },
    };
    for ip in addrs {
        if let Err(blocked) = policy.check(ip) {
            return Err(format!(
                "resolves to {blocked}; to monitor private targets, add the range to MCPWATCH_ALLOW_PRIVATE_CIDRS (or, for loopback on one machine, start `mcpwatch serve --local`) and restart"
            ));
        }
    }
    Ok(())
}

/// A URL as stored: the shown form (credentials as `***`) and, when it has credentials, the
/// whole URL sealed. Query values and userinfo are credentials (`?key=…`): sealed at rest like
/// headers, shown to no one.
pub fn seal_url(url: &str, sealer: &Sealer) -> Result<(String, Option<String>), ApiError> {
    let parsed = url::Url::parse(url).map_err(|e| ApiError::field("url", e.to_string()))?;
    match crate::probe::mask_url(&parsed) {
        None => Ok((url.to_string(), None)),
        Some(shown) => {
            let sealed = sealer
                .seal(url.as_bytes())
                .map_err(|e| ApiError::Internal(e.to_string()))?;
            Ok((shown, Some(sealed)))
        }
    }
}

/// Load by id or slug, or 404.
pub async fn find(app: &AppState, id: &str) -> Result<ServerRecord, ApiError> {
    app.store
        .get_server(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no server with id or slug '{id}'")))
}

pub(crate) fn defaults(app: &AppState) -> ServerRecord {
    let now = now_ms();
    ServerRecord {
        registry: None,
        paused_reason: None,
        oauth: None,
        oauth_enc: None,
        bearer_expires_at: None,
        calls: None,
        list_contract: true,
        id: uuid::Uuid::now_v7().to_string(),
        slug: String::new(),
        name: String::new(),
        url: String::new(),
        url_enc: None,
        header_names: Vec::new(),
        headers_enc: None,
        interval_seconds: app.settings.default_interval,
        timeout_seconds: default_timeout(app.settings.default_interval),
        tags: Vec::new(),
        public: false,
        paused: false,
        failures_to_down: 2,
        successes_to_up: 1,
        degraded_latency_ms: None,
        expect_auth: false,
        era_hint: None,
        created_at: now,
        updated_at: now,
        regions: vec![],
        quorum: None,
        managed_by: None,
    }
}

/// Tell the scheduler and the ingest about a changed server.
pub(crate) async fn propagate(
    app: &AppState,
    s: &ServerRecord,
    probe_now: bool,
) -> Result<(), ApiError> {
    app.ingest.invalidate(&s.id).await;
    app.agent_config_changed();
    // Another replica's server: its owner follows the change by the change feed.
    if s.paused || !app.probes_locally(s) {
        app.scheduler.remove(&s.id);
    } else {
        app.scheduler
            .upsert(crate::targets::job_for(s, &app.sealer)?, probe_now);
    }
    Ok(())
}

#[utoipa::path(post, path = "/servers", tag = "servers", request_body = ServerInput, responses((status = 201, description = "registered; probed at once", body = ServerView), BadInput, Taken, Guarded), security(("bearer" = [])))]
pub async fn create(
    State(app): State<AppState>,
    ApiJson(input): ApiJson<ServerInput>,
) -> Result<Response, ApiError> {
    let explicit_slug = input.slug.is_some();
    let mut s = apply(
        input,
        defaults(&app),
        true,
        &app.settings.policy,
        &app.sealer,
    )
    .await?;
    if !explicit_slug {
        s.slug = slugify(&s.name);
    }
    let base = s.slug.clone();
    let mut attempt = 1;
    loop {
        match app.store.insert_server(&s).await {
            Ok(()) => break,
            Err(crate::store::StoreError::Conflict(_))
                if !explicit_slug && attempt < SLUG_ATTEMPTS =>
            {
                attempt += 1;
                s.slug = format!("{base}-{attempt}");
            }
            Err(crate::store::StoreError::Conflict(_)) => {
                return Err(ApiError::Conflict(format!(
                    "a server with slug '{}' already exists",
                    s.slug
                )));
            }
            Err(e) => return Err(e.into()),
        }
    }
    let (_, state) = first_state(&s);
    app.store.set_server_state(&s.id, &state).await?;
    propagate(&app, &s, true).await?;
    tracing::info!(server_id = %s.id, slug = %s.slug, "server registered");
    let location = format!("/api/v1/servers/{}", s.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(ServerView::new(&s, Some(&state), &[])),
    )
        .into_response())
}

/// Most servers one bulk registration takes.
pub const MAX_BATCH: usize = 10_000;
/// Servers validated at once in a bulk registration (a URL check may resolve a name).
pub(crate) const VALIDATE_CONCURRENCY: usize = 32;
/// Candidate slugs tried per name (`name`, `name-2`, …), as for one registration.
const SLUG_ATTEMPTS: usize = 20;

/// Many servers at once.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchInput {
    /// 1 … 10,000 servers, each as for `POST /servers`.
    servers: Vec<ServerInput>,
}

/// Register up to 10,000 servers in one request and one transaction: every server is
/// validated first (errors name `servers[i].field`), then all are stored or none. They are
/// probed at their stable offset within the first interval, not all at once.
#[utoipa::path(post, path = "/servers:batch", tag = "servers", request_body = BatchInput, responses((status = 201, description = "registered, in input order", body = BatchCreated), BadInput, Taken, Guarded), security(("bearer" = [])))]
pub async fn create_batch(
    State(app): State<AppState>,
    ApiJson(input): ApiJson<BatchInput>,
) -> Result<Response, ApiError> {
    let n = input.servers.len();
    if n == 0 || n > MAX_BATCH {
        return Err(ApiError::field(
            "servers",
            format!("must hold 1 to {MAX_BATCH} servers, not {n}"),
        ));
    }
    let explicit: Vec<bool> = input.servers.iter().map(|i| i.slug.is_some()).collect();
    let (mut servers, mut errors) = validate_all(&app, input.servers).await?;
    errors.extend(assign_slugs(&app, &mut servers, &explicit).await?);
    if !errors.is_empty() {
        // In the order of the servers, every problem of every server at once.
        errors.sort_by_key(|(i, _)| *i);
        return Err(ApiError::Invalid(
            errors.into_iter().map(|(_, e)| e).collect(),
        ));
    }
    let servers: Vec<ServerRecord> = servers.into_iter().map(|(_, s)| s).collect();
    let states: Vec<(String, ServerState)> = servers.iter().map(first_state).collect();
    app.store
        .insert_servers(&servers, &states)
        .await
        .map_err(|e| match e {
            crate::store::StoreError::Conflict(_) => {
                ApiError::Conflict("a slug in this batch was taken meanwhile; retry".into())
            }
            other => other.into(),
        })?;
    schedule_new(&app, &servers)?;
    tracing::info!(count = n, "servers registered in bulk");
    let created = servers
        .iter()
        .map(|s| CreatedServer {
            id: s.id.clone(),
            slug: s.slug.clone(),
            name: s.name.clone(),
        })
        .collect();
    Ok((
        StatusCode::CREATED,
        Json(BatchCreated {
            created: n,
            servers: created,
        }),
    )
        .into_response())
}

/// New servers reach the scheduler and the agents. Unlike [`propagate`], nothing goes through
/// the ingest's queue: a new server has nothing cached to invalidate, and a request must not
/// wait behind a full queue of results (measured: with 100,000 servers probing, it did).
pub(crate) fn schedule_new(app: &AppState, servers: &[ServerRecord]) -> Result<(), ApiError> {
    app.agent_config_changed();
    // Servers of other replicas' buckets are scheduled by their owners (the change feed).
    for s in servers
        .iter()
        .filter(|s| !s.paused && app.probes_locally(s))
    {
        app.scheduler
            .upsert(crate::targets::job_for(s, &app.sealer)?, false);
    }
    Ok(())
}

/// A new server's state: unknown, or paused.
pub(crate) fn first_state(s: &ServerRecord) -> (String, ServerState) {
    let mut state = ServerState::new(s.created_at);
    if s.paused {
        state.status = ServerStatus::Paused;
    }
    (s.id.clone(), state)
}

/// A field error of the `i`th server of a batch.
type IndexedError = (usize, FieldError);

/// Every input validated (a few at a time): the valid servers with their index, and every
/// field error named `servers[i].field`.
async fn validate_all(
    app: &AppState,
    inputs: Vec<ServerInput>,
) -> Result<(Vec<(usize, ServerRecord)>, Vec<IndexedError>), ApiError> {
    use futures_util::StreamExt;
    let checked: Vec<(usize, Result<ServerRecord, ApiError>)> =
        futures_util::stream::iter(inputs.into_iter().enumerate())
            .map(|(i, input)| async move {
                let r = apply(
                    input,
                    defaults(app),
                    true,
                    &app.settings.policy,
                    &app.sealer,
                )
                .await;
                (i, r)
            })
            .buffered(VALIDATE_CONCURRENCY)
            .collect()
            .await;
    let mut servers = Vec::with_capacity(checked.len());
    let mut errors = Vec::new();
    for (i, r) in checked {
        match r {
            Ok(s) => servers.push((i, s)),
            Err(ApiError::Invalid(errs)) => errors.extend(
                errs.into_iter()
                    .map(|e| (i, indexed(i, &e.field, e.message))),
            ),
            Err(other) => return Err(other),
        }
    }
    Ok((servers, errors))
}

fn indexed(i: usize, field: &str, message: String) -> FieldError {
    FieldError {
        field: format!("servers[{i}].{field}"),
        message,
    }
}

/// Slugs for a batch: an explicit one must be free and used once; a name's slug takes the
/// first free of `name`, `name-2`, … as one registration would. Returns the problems.
async fn assign_slugs(
    app: &AppState,
    servers: &mut [(usize, ServerRecord)],
    explicit: &[bool],
) -> Result<Vec<IndexedError>, ApiError> {
    for (i, s) in servers.iter_mut() {
        if !explicit[*i] {
            s.slug = slugify(&s.name);
        }
    }
    let candidates: Vec<String> = servers
        .iter()
        .flat_map(|(i, s)| {
            let tries = if explicit[*i] { 1 } else { SLUG_ATTEMPTS };
            slug_candidates(&s.slug).take(tries)
        })
        .collect();
    let in_db = app.store.slugs_taken(&candidates).await?;
    let mut used = std::collections::HashSet::new();
    let mut errors = Vec::new();
    for (i, s) in servers.iter().filter(|(i, _)| explicit[*i]) {
        if in_db.contains(&s.slug) || !used.insert(s.slug.clone()) {
            let why = format!("'{}' is taken or used twice in this batch", s.slug);
            errors.push((*i, indexed(*i, "slug", why)));
        }
    }
    for (i, s) in servers.iter_mut().filter(|(i, _)| !explicit[*i]) {
        let free = slug_candidates(&s.slug)
            .take(SLUG_ATTEMPTS)
            .find(|c| !in_db.contains(c) && !used.contains(c));
        match free {
            Some(slug) => {
                used.insert(slug.clone());
                s.slug = slug;
            }
            None => {
                let why = format!(
                    "'{}' and its numbered variants are taken; give a slug",
                    s.slug
                );
                errors.push((*i, indexed(*i, "slug", why)));
            }
        }
    }
    Ok(errors)
}

/// `base`, `base-2`, `base-3`, …
fn slug_candidates(base: &str) -> impl Iterator<Item = String> + '_ {
    std::iter::once(base.to_string()).chain((2..).map(move |k| format!("{base}-{k}")))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    tag: Option<String>,
    state: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

#[utoipa::path(get, path = "/servers", tag = "servers", params(ListQuery), responses((status = 200, description = "a page of servers", body = ServerPage), BadInput, Guarded), security(("bearer" = [])))]
pub async fn list(
    State(app): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<Json<ServerPage>, ApiError> {
    let (filter, pg) = q.parse()?;
    let rows = app.store.servers_with_state(&filter, &pg).await?;
    let items = rows
        .iter()
        .map(|r| ServerView::new(&r.server, r.state.as_ref(), &r.regions))
        .collect();
    let next_cursor = next_cursor(&rows, pg.limit, |r| {
        (r.server.created_at, r.server.id.clone())
    });
    Ok(Json(ServerPage { items, next_cursor }))
}

impl ListQuery {
    /// The filter and the page asked for, or which parameter is wrong.
    pub fn parse(&self) -> Result<(ServerFilter, Page), ApiError> {
        let pg = page(self.limit, self.cursor.as_deref())?;
        let status = match &self.state {
            None => None,
            Some(s) => Some(s.parse::<ServerStatus>().map_err(|_| {
                ApiError::field(
                    "state",
                    "must be one of unknown, up, degraded, down, auth_failed, paused",
                )
            })?),
        };
        let tag = self.tag.clone().filter(|t| !t.is_empty());
        Ok((
            ServerFilter {
                tag,
                status,
                ids: None,
            },
            pg,
        ))
    }
}

#[utoipa::path(get, path = "/servers/{id}", tag = "servers", params(("id" = String, Path, description = "server id or slug")), responses((status = 200, description = "the server with per-region state", body = ServerDetail), NoSuch, Guarded), security(("bearer" = [])))]
pub async fn get(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ServerDetail>, ApiError> {
    let s = find(&app, &id).await?;
    let (state, regions) = app.store.load_state(&s.id).await?;
    Ok(Json(ServerDetail {
        server: ServerView::new(&s, state.as_ref(), &regions),
        region_states: regions.iter().map(RegionView::from).collect(),
    }))
}

#[utoipa::path(patch, path = "/servers/{id}", tag = "servers", params(("id" = String, Path, description = "server id or slug")), request_body = ServerInput, responses((status = 200, description = "the changed server", body = ServerView), BadInput, NoSuch, Taken, Guarded), security(("bearer" = [])))]
pub async fn update(
    State(app): State<AppState>,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<ServerInput>,
) -> Result<Json<ServerView>, ApiError> {
    let existing = find(&app, &id).await?;
    super::error::not_managed("server", &existing.slug, &existing.managed_by)?;
    let was_paused = existing.paused;
    let mut s = apply(input, existing, false, &app.settings.policy, &app.sealer).await?;
    s.updated_at = now_ms();
    if s.paused != was_paused {
        // An operator's decision replaces whatever paused it before.
        s.paused_reason = None;
    }
    app.store.update_server(&s).await.map_err(|e| match e {
        crate::store::StoreError::Conflict(_) => {
            ApiError::Conflict(format!("a server with slug '{}' already exists", s.slug))
        }
        other => other.into(),
    })?;
    if was_paused != s.paused {
        app.ingest.set_paused(&s.id, s.paused, s.updated_at).await;
    }
    propagate(&app, &s, false).await?;
    app.ingest.flush().await;
    let (state, regions) = app.store.load_state(&s.id).await?;
    Ok(Json(ServerView::new(&s, state.as_ref(), &regions)))
}

#[utoipa::path(delete, path = "/servers/{id}", tag = "servers", params(("id" = String, Path, description = "server id or slug")), responses((status = 204, description = "deleted"), NoSuch, Taken, Guarded), security(("bearer" = [])))]
pub async fn delete(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let s = find(&app, &id).await?;
    super::error::not_managed("server", &s.slug, &s.managed_by)?;
    app.scheduler.remove(&s.id);
    app.store.delete_server(&s.id).await?;
    forget(&app, &s).await;
    tracing::info!(server_id = %s.id, "server deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Tell the scheduler, metrics, ingest and agents that a server is gone.
pub(crate) async fn forget(app: &AppState, s: &ServerRecord) {
    app.scheduler.remove(&s.id);
    app.metrics.forget_server(&s.slug);
    app.ingest.invalidate(&s.id).await;
    app.agent_config_changed();
}

async fn set_paused(app: &AppState, id: &str, paused: bool) -> Result<Json<ServerView>, ApiError> {
    let mut s = find(app, id).await?;
    if s.paused != paused || s.paused_reason.is_some() {
        s.paused = paused;
        s.paused_reason = None;
        s.updated_at = now_ms();
        app.store.update_server(&s).await?;
        app.ingest.set_paused(&s.id, paused, s.updated_at).await;
        propagate(app, &s, !paused).await?;
        app.ingest.flush().await;
    }
    let (state, regions) = app.store.load_state(&s.id).await?;
    Ok(Json(ServerView::new(&s, state.as_ref(), &regions)))
}

#[utoipa::path(post, path = "/servers/{id}/pause", tag = "servers", params(("id" = String, Path, description = "server id or slug")), responses((status = 200, description = "paused", body = ServerView), NoSuch, Guarded), security(("bearer" = [])))]
pub async fn pause(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ServerView>, ApiError> {
    set_paused(&app, &id, true).await
}

#[utoipa::path(post, path = "/servers/{id}/resume", tag = "servers", params(("id" = String, Path, description = "server id or slug")), responses((status = 200, description = "probing again", body = ServerView), NoSuch, Guarded), security(("bearer" = [])))]
pub async fn resume(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ServerView>, ApiError> {
    set_paused(&app, &id, false).await
}

/// Probe now, record the result like any other, and return the report.
#[utoipa::path(post, path = "/servers/{id}/check", tag = "servers", params(("id" = String, Path, description = "server id or slug")), responses((status = 200, description = "the probe report, recorded like any result", body = CheckResult), NoSuch, Guarded), security(("bearer" = [])))]
pub async fn check_now(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<CheckResult>, ApiError> {
    // Any replica probes; the ingest hands the result to the server's owner if it is another.
    let s = find(&app, &id).await?;
    let job = crate::targets::job_for(&s, &app.sealer)?;
    let started_at = now_ms();
    let report = app.prober.probe(&job.target()).await;
    let result_id = uuid::Uuid::now_v7().to_string();
    // The answer without the tool list (not part of the JSON report); the ingest takes both.
    let mut report = report;
    let tools = std::mem::take(&mut report.tools);
    let answer = report.clone();
    report.tools = tools;
    app.ingest
        .submit(IngestItem {
            result_id: result_id.clone(),
            server_id: s.id.clone(),
            region: app.settings.region.clone(),
            started_at,
            report,
            vantage_unhealthy: false,
        })
        .await
        .map_err(|_| ApiError::NotHere("shutting down: results are no longer taken"))?;
    app.ingest.flush().await;
    Ok(Json(CheckResult {
        report: answer,
        result_id,
        region: app.settings.region.clone(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_from_names() {
        assert_eq!(slugify("My MCP Server!"), "my-mcp-server");
        assert_eq!(slugify("  --  "), "server");
        assert!(valid_slug("weather-api-2"));
        assert!(!valid_slug("Weather"));
        assert!(!valid_slug("-x"));
        assert!(
            !valid_slug("6f1c3f8e-8e7b-4f39-9a4e-1c2d3e4f5a6b"),
            "a UUID-shaped slug would shadow ids"
        );
    }
}
