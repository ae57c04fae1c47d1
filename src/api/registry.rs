//! `POST /api/v1/registry/import` and the daemon's periodic sync (`MCPWATCH_REGISTRY_SYNC`):
//! every remote (`streamable-http`, `sse`) of every server an MCP registry lists becomes a
//! monitor tagged `registry`, named after the server, carrying where it came from.
//!
//! - A remote with every URL variable filled and no secret or required header missing is
//!   monitored at once (public when asked).
//! - One that needs configuration is created paused, its reason listing what it needs; an
//!   operator gives it (PATCH headers or URL) and resumes it.
//! - `deprecated` or `deleted` in the registry pauses the monitor and says so; listed as
//!   active again, it resumes. A server an operator paused stays paused.
//! - A slug taken by a server not imported from a registry is left alone and reported.

use std::collections::HashMap;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::error::{ApiError, ApiJson, BadInput, Guarded, Taken, Upstream};
use super::servers::{self, ServerInput};
use super::{AppState, now_ms};
use crate::registry::{self, Endpoint, Query, Remote, ServerResponse, Status};
use crate::store::{RegistryOrigin, ServerRecord};

/// What to import.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportInput {
    /// The registry's base URL (default: `MCPWATCH_REGISTRY_URL`, or the official registry).
    pub registry: Option<String>,
    /// Only servers whose name contains this.
    pub search: Option<String>,
    /// Say what would change, change nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Show the monitors it creates on the public status page.
    #[serde(default)]
    pub public: bool,
}

/// What an import did (or, in a dry run, would do) to one monitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ImportKind {
    /// Created and probed.
    Create,
    /// Created paused: it needs configuration (`reason`).
    CreatePaused,
    /// Its name, URL or registry data changed.
    Update,
    /// Paused: deprecated or deleted in the registry, or newly needing configuration.
    Pause,
    /// Listed as active again (or configured): probed again.
    Resume,
    /// Not imported (`reason`).
    Skip,
}

/// One monitor's line of the report.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ImportAction {
    pub slug: String,
    /// The server's name in the registry.
    pub registry_name: String,
    pub action: ImportKind,
    pub reason: Option<String>,
}

/// Counts by action.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct ImportSummary {
    pub created: usize,
    pub created_paused: usize,
    pub updated: usize,
    pub paused: usize,
    pub resumed: usize,
    pub unchanged: usize,
    pub skipped: usize,
}

/// What an import found and did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ImportReport {
    pub registry: String,
    pub dry_run: bool,
    /// Pages read, and servers listed on them.
    pub pages: usize,
    pub listed: usize,
    pub summary: ImportSummary,
    /// Every monitor that changes or is skipped (unchanged ones are only counted).
    pub actions: Vec<ImportAction>,
}

/// The tag every imported monitor carries.
const TAG: &str = "registry";

/// Reasons mcpwatch pauses for start with this; an operator's pause has none.
const REASON_PREFIX: &str = "registry: ";

#[utoipa::path(post, path = "/registry/import", tag = "servers", request_body = ImportInput, responses((status = 200, description = "what was imported (or, with dry_run, would be)", body = ImportReport), BadInput, Taken, Upstream, Guarded), security(("bearer" = [])))]
pub async fn import_route(
    State(app): State<AppState>,
    ApiJson(input): ApiJson<ImportInput>,
) -> Result<Json<ImportReport>, ApiError> {
    let query = Query {
        search: input.search.clone(),
        updated_since: None,
    };
    Ok(Json(import(&app, &input, &query).await?))
}

/// Read the registry and create, update, pause or resume its monitors.
pub async fn import(
    app: &AppState,
    input: &ImportInput,
    query: &Query,
) -> Result<ImportReport, ApiError> {
    let base = registry_url(app, input.registry.as_deref())?;
    let (listed, pages) = registry::list(&base, query, &app.settings.policy)
        .await
        .map_err(|e| ApiError::Upstream(e.to_string()))?;
    let existing: HashMap<String, ServerRecord> = app
        .store
        .all_servers()
        .await?
        .into_iter()
        .map(|s| (s.slug.clone(), s))
        .collect();
    let mut run = Run {
        app,
        base: base.clone(),
        public: input.public,
        report: ImportReport {
            registry: base,
            dry_run: input.dry_run,
            pages,
            listed: listed.len(),
            summary: ImportSummary::default(),
            actions: Vec::new(),
        },
        created: Vec::new(),
        changed: Vec::new(),
    };
    let mut pending = Vec::new();
    for entry in &listed {
        pending.extend(run.entry(entry, &existing));
    }
    run.create_all(pending).await?;
    if !input.dry_run {
        run.write().await?;
    }
    Ok(run.report)
}

/// The registry to read: given (checked), configured, or the official one.
fn registry_url(app: &AppState, given: Option<&str>) -> Result<String, ApiError> {
    let url = given
        .map(str::to_string)
        .or_else(|| app.settings.registry_url.clone())
        .unwrap_or_else(|| registry::OFFICIAL.to_string());
    match url::Url::parse(&url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {
            Ok(url.trim_end_matches('/').to_string())
        }
        _ => Err(ApiError::field("registry", "must be an http(s) URL")),
    }
}

/// A monitor's slug for remote `index` of `count` of the registry server `name`: its name
/// made a slug (a long one cut, with a digest of the whole name so that two stay apart),
/// numbered when the server has several remotes.
fn slug_for(name: &str, index: usize, count: usize) -> String {
    let mut slug = servers::slugify(name);
    // `slugify` cuts at 56 characters.
    if slug.len() >= 56 {
        let digest = Sha256::digest(name.as_bytes());
        let tail: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
        slug = format!("{}-{tail}", slug[..50].trim_end_matches('-'));
    }
    if count > 1 {
        slug = format!("{slug}-{}", index + 1);
    }
    slug
}

/// A monitor to create once checked.
struct Pending {
    slug: String,
    /// The server's name in the registry.
    name: String,
    /// As for `POST /servers`.
    input: serde_json::Value,
    origin: String,
    paused_reason: Option<String>,
}

/// One import in progress.
struct Run<'a> {
    app: &'a AppState,
    base: String,
    public: bool,
    report: ImportReport,
    created: Vec<ServerRecord>,
    /// Changed servers, and whether their pause flag changed.
    changed: Vec<(ServerRecord, bool)>,
}

impl Run<'_> {
    fn note(&mut self, slug: &str, name: &str, action: ImportKind, reason: Option<String>) {
        let s = &mut self.report.summary;
        match action {
            ImportKind::Create => s.created += 1,
            ImportKind::CreatePaused => s.created_paused += 1,
            ImportKind::Update => s.updated += 1,
            ImportKind::Pause => s.paused += 1,
            ImportKind::Resume => s.resumed += 1,
            ImportKind::Skip => s.skipped += 1,
        }
        self.report.actions.push(ImportAction {
            slug: slug.to_string(),
            registry_name: name.to_string(),
            action,
            reason,
        });
    }

    /// Update what exists; the creations this entry asks for, to check all at once.
    fn entry(
        &mut self,
        entry: &ServerResponse,
        existing: &HashMap<String, ServerRecord>,
    ) -> Vec<Pending> {
        let remotes: Vec<&Remote> = entry
            .server
            .remotes
            .iter()
            .filter(|r| r.monitored())
            .collect();
        let mut pending = Vec::new();
        for (i, remote) in remotes.iter().enumerate() {
            let slug = slug_for(&entry.server.name, i, remotes.len());
            let origin = self.origin(entry, remote);
            let name = entry.server.name.as_str();
            match existing.get(&slug) {
                None => pending.extend(self.pending(slug, entry, remote, origin)),
                Some(s) if s.registry.is_none() => {
                    let why =
                        format!("slug '{slug}' is taken by a server not imported from a registry");
                    self.note(&slug, name, ImportKind::Skip, Some(why))
                }
                Some(s) => self.update(s, entry, remote, origin),
            }
        }
        pending
    }

    fn origin(&self, entry: &ServerResponse, remote: &Remote) -> String {
        let status = match entry.status() {
            Status::Active => "active",
            Status::Deprecated(_) => "deprecated",
            Status::Deleted => "deleted",
        };
        let origin = RegistryOrigin {
            registry: self.base.clone(),
            name: entry.server.name.clone(),
            title: entry.server.title.clone(),
            version: entry.server.version.clone(),
            website_url: entry.server.website_url.clone(),
            transport: remote.kind.clone(),
            status: status.to_string(),
        };
        serde_json::to_string(&origin).unwrap_or_default()
    }

    /// A new monitor for `remote`, as the API would take it (a deprecated or deleted server
    /// is not created).
    fn pending(
        &mut self,
        slug: String,
        entry: &ServerResponse,
        remote: &Remote,
        origin: String,
    ) -> Option<Pending> {
        let name = entry.server.name.clone();
        if entry.status() != Status::Active {
            let reason = pause_reason(&entry.status(), &[]);
            self.note(
                &slug,
                &name,
                ImportKind::Skip,
                reason.map(|r| format!("not monitored: {r}")),
            );
            return None;
        }
        let endpoint = remote.endpoint();
        let input = json!({
            "name": display_name(entry, remote),
            "slug": slug,
            "url": endpoint.url,
            "headers": endpoint.headers.iter().cloned().collect::<HashMap<_, _>>(),
            "tags": [TAG],
            "public": self.public,
            "paused": !endpoint.needs.is_empty(),
        });
        Some(Pending {
            slug,
            name,
            input,
            origin,
            paused_reason: needs_reason(&endpoint),
        })
    }

    /// Check every new monitor with the API's rules, at once as the bulk registration does (a
    /// URL check may resolve a name), and keep those that pass.
    async fn create_all(&mut self, pending: Vec<Pending>) -> Result<(), ApiError> {
        use futures_util::StreamExt;
        let app = self.app;
        let checked: Vec<(Pending, Result<ServerRecord, ApiError>)> =
            futures_util::stream::iter(pending)
                .map(|p| async move {
                    let made = match serde_json::from_value::<ServerInput>(p.input.clone()) {
                        Ok(input) => {
                            let defaults = servers::defaults(app);
                            let policy = &app.settings.policy;
                            servers::apply(input, defaults, true, policy, &app.sealer).await
                        }
                        Err(e) => Err(ApiError::Internal(format!("registry import input: {e}"))),
                    };
                    (p, made)
                })
                .buffered(servers::VALIDATE_CONCURRENCY)
                .collect()
                .await;
        for (p, made) in checked {
            let mut s = match made {
                Ok(s) => s,
                Err(ApiError::Invalid(problems)) => {
                    let why: Vec<String> = problems
                        .iter()
                        .map(|e| format!("{}: {}", e.field, e.message))
                        .collect();
                    self.note(&p.slug, &p.name, ImportKind::Skip, Some(why.join("; ")));
                    continue;
                }
                Err(e) => return Err(e),
            };
            s.registry = Some(p.origin);
            s.paused_reason = p.paused_reason;
            let kind = match s.paused {
                true => ImportKind::CreatePaused,
                false => ImportKind::Create,
            };
            self.note(&p.slug, &p.name, kind, s.paused_reason.clone());
            self.created.push(s);
        }
        Ok(())
    }

    /// Bring an imported monitor in line with its registry entry.
    fn update(
        &mut self,
        old: &ServerRecord,
        entry: &ServerResponse,
        remote: &Remote,
        origin: String,
    ) {
        let endpoint = remote.endpoint();
        let mut s = old.clone();
        s.registry = Some(origin);
        s.name = display_name(entry, remote);
        // The URL follows the registry unless an operator gave one with credentials.
        if endpoint.needs.is_empty() && s.url_enc.is_none() {
            s.url = endpoint.url.clone();
        }
        let ours = old
            .paused_reason
            .as_deref()
            .is_some_and(|r| r.starts_with(REASON_PREFIX));
        let operator_paused = old.paused && !ours;
        let status = entry.status();
        // What holds it back now: the registry's status, or configuration it still needs
        // (headers an operator has given count as given).
        let missing: Vec<String> = endpoint
            .needs
            .iter()
            .filter(|n| !given_by_operator(n, old))
            .cloned()
            .collect();
        let reason = pause_reason(&status, &missing);
        if !operator_paused {
            s.paused = reason.is_some();
            s.paused_reason = reason;
        }
        let action = match (old.paused, s.paused) {
            (false, true) => ImportKind::Pause,
            (true, false) => ImportKind::Resume,
            _ if s == *old => {
                self.report.summary.unchanged += 1;
                return;
            }
            _ => ImportKind::Update,
        };
        s.updated_at = now_ms();
        self.note(
            &s.slug.clone(),
            &entry.server.name,
            action,
            s.paused_reason.clone(),
        );
        let pause_changed = old.paused != s.paused;
        self.changed.push((s, pause_changed));
    }

    /// Store what the run decided and tell the scheduler.
    async fn write(&mut self) -> Result<(), ApiError> {
        let app = self.app;
        if !self.created.is_empty() {
            let states: Vec<_> = self.created.iter().map(servers::first_state).collect();
            app.store.insert_servers(&self.created, &states).await?;
            servers::schedule_new(app, &self.created)?;
        }
        for (s, pause_changed) in &self.changed {
            app.store.update_server(s).await?;
            if *pause_changed {
                app.ingest.set_paused(&s.id, s.paused, s.updated_at).await;
            }
            servers::propagate(app, s, false).await?;
        }
        if !self.created.is_empty() || !self.changed.is_empty() {
            app.ingest.routing_changed().await;
            app.ingest.flush().await;
        }
        Ok(())
    }
}

/// "Weather API" (the title, else the name), with the transport when a server has several.
fn display_name(entry: &ServerResponse, remote: &Remote) -> String {
    let base = entry
        .server
        .title
        .clone()
        .unwrap_or_else(|| entry.server.name.clone());
    let monitored = entry
        .server
        .remotes
        .iter()
        .filter(|r| r.monitored())
        .count();
    if monitored > 1 {
        format!("{base} ({})", remote.kind)
    } else {
        base
    }
}

/// Why mcpwatch keeps a monitor paused: the registry's status first, then what it needs.
fn pause_reason(status: &Status, needs: &[String]) -> Option<String> {
    match status {
        Status::Deprecated(message) => Some(match message {
            Some(m) => format!("{REASON_PREFIX}deprecated in the registry: {m}"),
            None => format!("{REASON_PREFIX}deprecated in the registry"),
        }),
        Status::Deleted => Some(format!("{REASON_PREFIX}deleted from the registry")),
        Status::Active if needs.is_empty() => None,
        Status::Active => Some(format!(
            "{REASON_PREFIX}needs configuration: {}",
            needs.join("; ")
        )),
    }
}

fn needs_reason(endpoint: &Endpoint) -> Option<String> {
    pause_reason(&Status::Active, &endpoint.needs)
}

/// Whether a need ("header Authorization: …") is met by a header the server has.
fn given_by_operator(need: &str, s: &ServerRecord) -> bool {
    need.strip_prefix("header ")
        .and_then(|rest| rest.split([':', ' ']).next())
        .is_some_and(|name| s.header_names.iter().any(|h| h.eq_ignore_ascii_case(name)))
}

/// The daemon's periodic sync: a full import first, then what changed since the last one
/// (deleted servers included), every `every`, on the leading replica only.
pub fn spawn_sync(app: AppState, every: Duration, stop: CancellationToken) {
    tokio::spawn(async move {
        let mut since: Option<String> = None;
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            if !app.leader.load(std::sync::atomic::Ordering::Relaxed) {
                continue;
            }
            // A minute of overlap: a server changed while the last sync ran is read again.
            let started = crate::clock::rfc3339(now_ms() - 60_000);
            let query = Query {
                search: None,
                updated_since: since.clone(),
            };
            match import(&app, &ImportInput::default(), &query).await {
                Ok(r) => {
                    since = Some(started);
                    tracing::info!(registry = %r.registry, listed = r.listed, created = r.summary.created + r.summary.created_paused, updated = r.summary.updated, paused = r.summary.paused, resumed = r.summary.resumed, skipped = r.summary.skipped, "registry synced");
                }
                Err(e) => {
                    tracing::warn!(error = ?e, "registry sync failed; trying again at the next interval")
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_stable_numbered_and_short() {
        assert_eq!(
            slug_for("io.github.user/weather", 0, 1),
            "io-github-user-weather"
        );
        assert_eq!(
            slug_for("io.github.user/weather", 1, 2),
            "io-github-user-weather-2"
        );
        let long = format!("io.github.{}/x", "a".repeat(80));
        let slug = slug_for(&long, 0, 1);
        assert!(slug.len() <= 64, "{slug}");
        assert_ne!(
            slug,
            slug_for(&format!("io.github.{}/y", "a".repeat(80)), 0, 1)
        );
    }
}
