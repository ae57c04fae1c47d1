//! What a monitors document changes, field by field, and applying it: every entry is checked
//! with the API's own rules (all problems at once, each named `servers[i].field`), compared
//! with what the daemon holds, and written in one transaction.

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::MonitorsDocument;
use super::fields::{
    Fields, channel_fields, differences, secret_name, server_fields, window_fields,
};
use crate::api::AppState;
use crate::api::channels::{self, ChannelInput};
use crate::api::error::{ApiError, FieldError};
use crate::api::maintenance::{self, WindowInput};
use crate::api::servers::{self, ServerInput};
use crate::monitors::file::MAX_SOURCE;
use crate::store::{ChannelRecord, MonitorWrites, ServerRecord, StoreError, WindowRecord};

/// What a plan does to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Not on the daemon: created.
    Create,
    /// Managed by this file: changed.
    Update,
    /// Made through the API: taken under the file's management, with any changes.
    Adopt,
    /// Managed by this file (or, with `prune`, made through the API) and not in it: deleted.
    Delete,
}

/// One field that changes.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FieldChange {
    pub field: String,
    /// The value now (JSON text; `(sensitive)` for secrets); absent: unset.
    pub from: Option<String>,
    /// The value after the apply.
    pub to: Option<String>,
}

/// One object that changes.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Change {
    /// `server`, `channel` or `maintenance`.
    pub kind: String,
    /// The slug of a server, the name of a channel or window.
    pub name: String,
    pub action: Action,
    pub fields: Vec<FieldChange>,
}

/// How many objects each action touches.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct Summary {
    pub create: usize,
    /// Changed or adopted.
    pub update: usize,
    pub delete: usize,
    pub unchanged: usize,
}

/// A signing secret generated for a new channel that the file gave none: shown once.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct GeneratedSecret {
    pub channel: String,
    pub secret: String,
}

/// A plan as the API answers it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PlanView {
    pub source: String,
    pub changes: Vec<Change>,
    pub summary: Summary,
    /// Whether these changes were made (`apply`) or only computed (`plan`).
    pub applied: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(required = false)]
    pub generated_secrets: Vec<GeneratedSecret>,
}

/// A computed plan with the writes that carry it out.
pub struct Plan {
    pub source: String,
    pub changes: Vec<Change>,
    pub summary: Summary,
    writes: MonitorWrites,
    deleted_servers: Vec<ServerRecord>,
    paused_changed: Vec<String>,
    generated: Vec<GeneratedSecret>,
}

impl Plan {
    pub fn view(self, applied: bool) -> PlanView {
        PlanView {
            source: self.source,
            changes: self.changes,
            summary: self.summary,
            applied,
            generated_secrets: if applied { self.generated } else { Vec::new() },
        }
    }
}

/// What the daemon holds now.
struct Current {
    servers: Vec<ServerRecord>,
    channels: Vec<ChannelRecord>,
    windows: Vec<WindowRecord>,
}

/// The plan being built, with the problems found so far.
struct Builder<'a> {
    app: &'a AppState,
    source: String,
    now: i64,
    problems: Vec<FieldError>,
    plan: Plan,
    /// Slug → id of the file's servers.
    file_servers: HashMap<String, String>,
    deleted: HashSet<String>,
    /// (kind, identity) of every entry of the file.
    named: HashSet<(&'static str, String)>,
}

/// Compute what `doc` changes on the daemon.
pub async fn plan(app: &AppState, doc: MonitorsDocument) -> Result<Plan, ApiError> {
    let source = doc.source.as_deref().unwrap_or("").trim().to_string();
    if source.is_empty() || source.len() > MAX_SOURCE {
        return Err(ApiError::field(
            "source",
            format!("must be 1-{MAX_SOURCE} characters"),
        ));
    }
    let current = Current {
        servers: app.store.all_servers().await?,
        channels: app.store.list_channels().await?,
        windows: app.store.list_windows().await?,
    };
    let mut b = Builder::new(app, source);
    for (i, checked) in check_servers(app, doc.servers)
        .await
        .into_iter()
        .enumerate()
    {
        b.server(i, checked, &current)?;
    }
    b.server_deletions(&current, doc.prune);
    for (i, input) in doc.channels.into_iter().enumerate() {
        b.channel(i, input, &current).await?;
    }
    for (i, input) in doc.maintenance.into_iter().enumerate() {
        b.window(i, input, &current)?;
    }
    b.other_deletions(&current, doc.prune);
    b.finish()
}

/// Carry out `plan` in one transaction and tell the scheduler and the ingest.
pub async fn apply(app: &AppState, plan: Plan) -> Result<PlanView, ApiError> {
    if plan.changes.is_empty() {
        return Ok(plan.view(true));
    }
    app.store
        .apply_monitors(&plan.writes)
        .await
        .map_err(|e| match e {
            StoreError::Conflict(what) => ApiError::Conflict(format!(
                "{what} was taken while the plan was made (another apply, or the API); \
                 plan and apply again"
            )),
            other => other.into(),
        })?;
    let w = &plan.writes;
    for s in &plan.deleted_servers {
        servers::forget(app, s).await;
    }
    for s in w
        .servers_changed
        .iter()
        .filter(|s| plan.paused_changed.contains(&s.id))
    {
        app.ingest.set_paused(&s.id, s.paused, s.updated_at).await;
    }
    for s in &w.servers_created {
        servers::propagate(app, s, true).await?;
    }
    for s in &w.servers_changed {
        servers::propagate(app, s, false).await?;
    }
    app.ingest.routing_changed().await;
    app.ingest.flush().await;
    tracing::info!(
        source = %plan.source,
        created = plan.summary.create,
        changed = plan.summary.update,
        deleted = plan.summary.delete,
        "monitors applied"
    );
    Ok(plan.view(true))
}

/// A server entry checked with the API's rules: its identity, whether it says `paused`, and
/// the record (or why not).
struct Checked {
    key: Option<String>,
    gave_paused: bool,
    record: Result<ServerRecord, ApiError>,
}

/// Server entries checked at once as the bulk registration does (a URL check may resolve a
/// name, up to 3 s each: a file of hundreds must not take minutes), in their order.
async fn check_servers(app: &AppState, inputs: Vec<ServerInput>) -> Vec<Checked> {
    use futures_util::StreamExt;
    futures_util::stream::iter(inputs)
        .map(|input| async move {
            let key = input
                .slug
                .clone()
                .or_else(|| input.name.as_deref().map(servers::slugify));
            let gave_paused = input.paused.is_some();
            let defaults = servers::defaults(app);
            let policy = &app.settings.policy;
            let record = servers::apply(input, defaults, true, policy, &app.sealer).await;
            Checked {
                key,
                gave_paused,
                record,
            }
        })
        .buffered(servers::VALIDATE_CONCURRENCY)
        .collect()
        .await
}

/// The field errors of a validation, each under `at`; other errors as they are.
fn under(e: ApiError, at: &str) -> Result<Vec<FieldError>, ApiError> {
    match e {
        ApiError::Invalid(errs) => Ok(errs
            .into_iter()
            .map(|f| FieldError {
                field: format!("{at}.{}", f.field),
                message: f.message,
            })
            .collect()),
        other => Err(other),
    }
}

/// A stable id for an object a file creates, so that two replicas applying the same file at
/// once collide on it (one transaction fails and plans again) instead of making two.
fn managed_id(source: &str, kind: &str, name: &str) -> String {
    let digest = Sha256::digest(format!("{source}\0{kind}\0{name}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    // RFC 9562 version 8 (custom) and variant bits.
    bytes[6] = (bytes[6] & 0x0f) | 0x80;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    uuid::Uuid::from_bytes(bytes).to_string()
}

impl<'a> Builder<'a> {
    fn new(app: &'a AppState, source: String) -> Self {
        Builder {
            app,
            now: crate::api::now_ms(),
            problems: Vec::new(),
            plan: Plan {
                source: source.clone(),
                changes: Vec::new(),
                summary: Summary::default(),
                writes: MonitorWrites::default(),
                deleted_servers: Vec::new(),
                paused_changed: Vec::new(),
                generated: Vec::new(),
            },
            source,
            file_servers: HashMap::new(),
            deleted: HashSet::new(),
            named: HashSet::new(),
        }
    }

    fn problem(&mut self, field: String, message: impl Into<String>) {
        self.problems.push(FieldError {
            field,
            message: message.into(),
        });
    }

    /// A second entry with the same identity, or an object another file manages, is a
    /// problem; true when the entry may go on.
    fn claim(
        &mut self,
        (kind, at): (&'static str, &str),
        key_field: &str,
        key: &str,
        managed_by: Option<&str>,
    ) -> bool {
        if !self.named.insert((kind, key.to_string())) {
            self.problem(
                format!("{at}.{key_field}"),
                format!("'{key}' is given twice in this file"),
            );
            return false;
        }
        match managed_by {
            Some(other) if other != self.source => {
                self.problem(
                    format!("{at}.{key_field}"),
                    format!("'{key}' is managed by another monitors file, '{other}'"),
                );
                false
            }
            _ => true,
        }
    }

    /// Record a change of `kind` `name` from `old` to `new` fields (either may be empty).
    fn record(&mut self, kind: &str, name: &str, action: Action, old: &Fields, new: &Fields) {
        let fields = differences(old, new)
            .into_iter()
            .map(|(field, from, to)| FieldChange { field, from, to })
            .collect();
        match action {
            Action::Create => self.plan.summary.create += 1,
            Action::Update | Action::Adopt => self.plan.summary.update += 1,
            Action::Delete => self.plan.summary.delete += 1,
        }
        self.plan.changes.push(Change {
            kind: kind.to_string(),
            name: name.to_string(),
            action,
            fields,
        });
    }

    /// Create, update or adopt (or leave) an existing object: the action, or `None` when
    /// nothing changes.
    fn action_for(
        &mut self,
        managed_by: Option<&str>,
        old: &Fields,
        new: &Fields,
    ) -> Option<Action> {
        let adopt = managed_by != Some(self.source.as_str());
        if !adopt && differences(old, new).is_empty() {
            self.plan.summary.unchanged += 1;
            return None;
        }
        Some(if adopt { Action::Adopt } else { Action::Update })
    }

    fn server(&mut self, i: usize, checked: Checked, current: &Current) -> Result<(), ApiError> {
        let at = format!("servers[{i}]");
        let Checked {
            key,
            gave_paused,
            record,
        } = checked;
        let mut new = match record {
            Ok(s) => s,
            Err(e) => {
                self.problems.extend(under(e, &at)?);
                return Ok(());
            }
        };
        let key = key.unwrap_or_default();
        if !servers::valid_slug(&key) {
            self.problem(
                format!("{at}.slug"),
                "give a slug: 1-64 lower-case letters, digits or -",
            );
            return Ok(());
        }
        let old = current.servers.iter().find(|s| s.slug == key);
        if !self.claim(
            ("server", &at),
            "slug",
            &key,
            old.and_then(|s| s.managed_by.as_deref()),
        ) {
            return Ok(());
        }
        new.slug = key.clone();
        new.managed_by = Some(self.source.clone());
        match old {
            None => self.create_server(new),
            Some(old) => self.update_server(old, new, gave_paused),
        }
        Ok(())
    }

    fn create_server(&mut self, s: ServerRecord) {
        let fields = server_fields(&s, &self.app.sealer);
        self.record("server", &s.slug, Action::Create, &Fields::new(), &fields);
        self.file_servers.insert(s.slug.clone(), s.id.clone());
        self.plan.writes.first_states.push(servers::first_state(&s));
        self.plan.writes.servers_created.push(s);
    }

    fn update_server(&mut self, old: &ServerRecord, mut new: ServerRecord, gave_paused: bool) {
        new.id = old.id.clone();
        new.created_at = old.created_at;
        new.updated_at = old.updated_at;
        new.era_hint = old.era_hint.clone();
        new.registry = old.registry.clone();
        if !gave_paused {
            new.paused = old.paused;
            new.paused_reason = old.paused_reason.clone();
        }
        self.file_servers.insert(new.slug.clone(), new.id.clone());
        let sealer = &self.app.sealer;
        let (was, will) = (server_fields(old, sealer), server_fields(&new, sealer));
        let Some(action) = self.action_for(old.managed_by.as_deref(), &was, &will) else {
            return;
        };
        self.record("server", &new.slug, action, &was, &will);
        if new.paused != old.paused {
            self.plan.paused_changed.push(new.id.clone());
        }
        new.updated_at = self.now;
        self.plan.writes.servers_changed.push(new);
    }

    /// Servers of this file no longer in it (and, with `prune`, those made through the API).
    fn server_deletions(&mut self, current: &Current, prune: bool) {
        for s in &current.servers {
            if self.file_servers.contains_key(&s.slug) || !self.deletable(&s.managed_by, prune) {
                continue;
            }
            let was = server_fields(s, &self.app.sealer);
            self.record("server", &s.slug, Action::Delete, &was, &Fields::new());
            self.deleted.insert(s.id.clone());
            self.plan.writes.servers_deleted.push(s.id.clone());
            self.plan.deleted_servers.push(s.clone());
        }
    }

    fn deletable(&self, managed_by: &Option<String>, prune: bool) -> bool {
        match managed_by {
            Some(m) => *m == self.source,
            None => prune,
        }
    }

    /// Server ids for `names` (slugs of this file's servers, or ids or slugs of the daemon's
    /// that stay).
    fn resolve(&mut self, names: Vec<String>, at: String, current: &Current) -> Vec<String> {
        let mut ids = Vec::new();
        for name in names {
            let on_daemon = current
                .servers
                .iter()
                .find(|s| (s.id == name || s.slug == name) && !self.deleted.contains(&s.id));
            match (self.file_servers.get(&name), on_daemon) {
                (Some(id), _) => ids.push(id.clone()),
                (None, Some(s)) => ids.push(s.id.clone()),
                (None, None) => self.problem(
                    at.clone(),
                    format!("no server '{name}' in this file or on the daemon"),
                ),
            }
        }
        ids
    }

    /// Slug of a server id, for showing what a channel or window follows.
    fn slug_of(&self, current: &Current) -> impl Fn(&str) -> String + use<> {
        let mut slugs: HashMap<String, String> = current
            .servers
            .iter()
            .map(|s| (s.id.clone(), s.slug.clone()))
            .collect();
        for (slug, id) in &self.file_servers {
            slugs.insert(id.clone(), slug.clone());
        }
        move |id: &str| slugs.get(id).cloned().unwrap_or_else(|| id.to_string())
    }

    fn finish(self) -> Result<Plan, ApiError> {
        if self.problems.is_empty() {
            Ok(self.plan)
        } else {
            Err(ApiError::Invalid(self.problems))
        }
    }
}

impl Builder<'_> {
    async fn channel(
        &mut self,
        i: usize,
        mut input: ChannelInput,
        current: &Current,
    ) -> Result<(), ApiError> {
        let at = format!("channels[{i}]");
        let name = input.name.as_deref().unwrap_or("").trim().to_string();
        let old = current.channels.iter().find(|c| c.name == name);
        if name.is_empty() {
            self.problem(format!("{at}.name"), "is required");
            return Ok(());
        }
        if !self.claim(
            ("channel", &at),
            "name",
            &name,
            old.and_then(|c| c.managed_by.as_deref()),
        ) {
            return Ok(());
        }
        let refs = input.servers.take();
        let (gave_secret, gave_enabled) = (input.secret.is_some(), input.enabled.is_some());
        let mut new = channels::new_channel(self.now);
        let generated = match channels::apply(self.app, input, &mut new, true).await {
            Ok(g) => g,
            Err(e) => {
                self.problems.extend(under(e, &at)?);
                return Ok(());
            }
        };
        if let Some(refs) = refs {
            new.server_ids = self.resolve(refs, format!("{at}.servers"), current);
        }
        new.managed_by = Some(self.source.clone());
        match old {
            None => {
                new.id = managed_id(&self.source, "channel", &name);
                if let Some(secret) = generated {
                    self.plan.generated.push(GeneratedSecret {
                        channel: name.clone(),
                        secret,
                    });
                }
                let slug_of = self.slug_of(current);
                let will = channel_fields(&new, &self.app.sealer, &slug_of);
                self.record("channel", &name, Action::Create, &Fields::new(), &will);
                self.plan.writes.channels_created.push(new);
            }
            Some(old) if old.kind != new.kind => self.problem(
                format!("{at}.kind"),
                "a channel's kind cannot change: give the new one another name",
            ),
            Some(old) => {
                if !gave_enabled {
                    new.enabled = old.enabled;
                    new.disabled_reason = old.disabled_reason.clone();
                }
                let keep_secret = !gave_secret
                    && old.format == new.format
                    && secret_name(new.format.as_deref()) == "secret"
                    && old.secret_enc.is_some();
                if keep_secret {
                    new.secret_enc = old.secret_enc.clone();
                } else if let Some(secret) = generated {
                    self.plan.generated.push(GeneratedSecret {
                        channel: name.clone(),
                        secret,
                    });
                }
                self.update_channel(old, new, current);
            }
        }
        Ok(())
    }

    fn update_channel(&mut self, old: &ChannelRecord, mut new: ChannelRecord, current: &Current) {
        new.id = old.id.clone();
        new.created_at = old.created_at;
        new.failing_since = old.failing_since;
        let slug_of = self.slug_of(current);
        let sealer = &self.app.sealer;
        let was = channel_fields(old, sealer, &slug_of);
        let will = channel_fields(&new, sealer, &slug_of);
        let Some(action) = self.action_for(old.managed_by.as_deref(), &was, &will) else {
            self.plan.generated.retain(|g| g.channel != new.name);
            return;
        };
        self.record("channel", &new.name, action, &was, &will);
        new.updated_at = self.now;
        self.plan.writes.channels_changed.push(new);
    }

    fn window(
        &mut self,
        i: usize,
        mut input: WindowInput,
        current: &Current,
    ) -> Result<(), ApiError> {
        let at = format!("maintenance[{i}]");
        let name = input.name.trim().to_string();
        let old = current.windows.iter().find(|w| w.name == name);
        if !name.is_empty()
            && !self.claim(
                ("maintenance", &at),
                "name",
                &name,
                old.and_then(|w| w.managed_by.as_deref()),
            )
        {
            return Ok(());
        }
        let refs = input.servers.take().unwrap_or_default();
        let ids = self.resolve(refs, format!("{at}.servers"), current);
        let mut new = match maintenance::window_from(input, ids, self.now) {
            Ok(w) => w,
            Err(e) => {
                self.problems.extend(under(e, &at)?);
                return Ok(());
            }
        };
        new.managed_by = Some(self.source.clone());
        let slug_of = self.slug_of(current);
        let will = window_fields(&new, &slug_of);
        match old {
            None => {
                new.id = managed_id(&self.source, "maintenance", &name);
                self.record("maintenance", &name, Action::Create, &Fields::new(), &will);
                self.plan.writes.windows_created.push(new);
            }
            Some(old) => {
                (new.id, new.created_at) = (old.id.clone(), old.created_at);
                let was = window_fields(old, &slug_of);
                if let Some(action) = self.action_for(old.managed_by.as_deref(), &was, &will) {
                    self.record("maintenance", &name, action, &was, &will);
                    self.plan.writes.windows_changed.push(new);
                }
            }
        }
        Ok(())
    }

    /// Channels and windows of this file no longer in it (with `prune`, the API's too).
    fn other_deletions(&mut self, current: &Current, prune: bool) {
        let slug_of = self.slug_of(current);
        for c in &current.channels {
            let named = self.named.contains(&("channel", c.name.clone()));
            if named || !self.deletable(&c.managed_by, prune) {
                continue;
            }
            let was = channel_fields(c, &self.app.sealer, &slug_of);
            self.record("channel", &c.name, Action::Delete, &was, &Fields::new());
            self.plan.writes.channels_deleted.push(c.id.clone());
        }
        for w in &current.windows {
            let named = self.named.contains(&("maintenance", w.name.clone()));
            if named || !self.deletable(&w.managed_by, prune) {
                continue;
            }
            let was = window_fields(w, &slug_of);
            self.record("maintenance", &w.name, Action::Delete, &was, &Fields::new());
            self.plan.writes.windows_deleted.push(w.id.clone());
        }
    }
}
