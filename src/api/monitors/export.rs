//! The daemon's servers, channels and windows as a monitors document that applies back to
//! the same state: every sealed value (probe headers, a URL with credentials, signing secrets,
//! vendor keys) becomes a `${VAR}` reference, and the variables are listed.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

use super::fields::secret_name;
use crate::api::AppState;
use crate::api::error::ApiError;
use crate::clock::rfc3339;
use crate::store::{ChannelKind, ChannelRecord, ServerRecord, WindowRecord};

/// A monitors document and the variables its references need.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Exported {
    /// Set each where the document is applied, to the value it stands for.
    pub variables: Vec<String>,
    pub document: ExportedDocument,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ExportedDocument {
    /// The monitors file every managed object belongs to, when they all belong to one: the
    /// export applies back as that file. Absent: applying it adopts what the API made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    pub servers: Vec<ExportedServer>,
    pub channels: Vec<ExportedChannel>,
    pub maintenance: Vec<ExportedWindow>,
}

/// A server as `POST /servers` takes it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ExportedServer {
    pub slug: String,
    pub name: String,
    pub url: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oauth: Option<ExportedOAuth>,
    pub interval_seconds: u32,
    pub timeout_seconds: u32,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    pub public: bool,
    pub paused: bool,
    pub failures_to_down: u32,
    pub successes_to_up: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub degraded_latency_ms: Option<u64>,
    pub expect_auth: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quorum: Option<u32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub calls: Vec<crate::probe::ToolCall>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_failure: Option<crate::api::server_calls::CallFailure>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_call: Option<crate::probe::ToolCall>,
    /// Written only when off (the default is on).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub list_contract: Option<bool>,
}

/// A server's OAuth identity as `POST /servers` takes it, its secret or key as a reference.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ExportedOAuth {
    pub client_id: String,
    pub auth_method: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

/// A channel as `POST /channels` takes it; the sealed value under its format's name.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ExportedChannel {
    pub name: String,
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// `secret`, `routing_key`, `api_key` or `bot_token` → its reference.
    #[serde(flatten)]
    pub sealed: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chat_id: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub recipients: Vec<String>,
    /// Slugs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    pub events: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub drift: Vec<String>,
    pub enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reminder_interval_seconds: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
}

/// A maintenance window as `POST /maintenance` takes it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ExportedWindow {
    pub name: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub starts_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
}

/// Names of the variables handed out, each once.
#[derive(Default)]
struct Variables {
    taken: HashSet<String>,
    order: Vec<String>,
}

impl Variables {
    /// A `${NAME}` reference for `parts` (upper-case, `_`-joined; `_2`, … when taken).
    fn reference(&mut self, parts: &[&str]) -> String {
        let mut base: String = parts
            .join("_")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect();
        // A leading digit is no variable name; MCPWATCH_* would be taken for a setting.
        if base.starts_with(|c: char| c.is_ascii_digit()) || base.starts_with("MCPWATCH_") {
            base = format!("X_{base}");
        }
        let mut name = base.clone();
        let mut n = 1;
        while !self.taken.insert(name.clone()) {
            n += 1;
            name = format!("{base}_{n}");
        }
        self.order.push(name.clone());
        format!("${{{name}}}")
    }
}

/// Every server, channel and window of the daemon as a document.
pub async fn export(app: &AppState) -> Result<Exported, ApiError> {
    let servers = app.store.all_servers().await?;
    let channels = app.store.list_channels().await?;
    let windows = app.store.list_windows().await?;
    let slugs: HashMap<&str, &str> = servers
        .iter()
        .map(|s| (s.id.as_str(), s.slug.as_str()))
        .collect();
    let slug_of = |ids: &[String]| -> Vec<String> {
        ids.iter()
            .map(|id| slugs.get(id.as_str()).map_or(id.clone(), |s| s.to_string()))
            .collect()
    };
    let mut vars = Variables::default();
    let document = ExportedDocument {
        source: one_source(&servers, &channels, &windows),
        servers: servers.iter().map(|s| server(s, &mut vars)).collect(),
        channels: channels
            .iter()
            .map(|c| channel(c, slug_of(&c.server_ids), &mut vars))
            .collect(),
        maintenance: windows
            .iter()
            .map(|w| window(w, slug_of(&w.server_ids)))
            .collect(),
    };
    Ok(Exported {
        variables: vars.order,
        document,
    })
}

/// The one monitors file that manages objects here, if exactly one does.
fn one_source(
    servers: &[ServerRecord],
    channels: &[ChannelRecord],
    windows: &[WindowRecord],
) -> Option<String> {
    let sources: HashSet<&String> = servers
        .iter()
        .filter_map(|s| s.managed_by.as_ref())
        .chain(channels.iter().filter_map(|c| c.managed_by.as_ref()))
        .chain(windows.iter().filter_map(|w| w.managed_by.as_ref()))
        .collect();
    match sources.into_iter().collect::<Vec<_>>()[..] {
        [one] => Some(one.clone()),
        _ => None,
    }
}

fn server(s: &ServerRecord, vars: &mut Variables) -> ExportedServer {
    let url = match s.url_enc {
        Some(_) => vars.reference(&[&s.slug, "url"]),
        None => s.url.clone(),
    };
    let headers = s
        .header_names
        .iter()
        .map(|h| (h.clone(), vars.reference(&[&s.slug, h])))
        .collect();
    let plan = s.call_plan();
    ExportedServer {
        slug: s.slug.clone(),
        name: s.name.clone(),
        url,
        headers,
        oauth: s.oauth_shown().map(|o| oauth(&s.slug, o, vars)),
        interval_seconds: s.interval_seconds,
        timeout_seconds: s.timeout_seconds,
        tags: s.tags.clone(),
        public: s.public,
        paused: s.paused,
        failures_to_down: s.failures_to_down,
        successes_to_up: s.successes_to_up,
        degraded_latency_ms: s.degraded_latency_ms,
        expect_auth: s.expect_auth,
        regions: s.regions.clone(),
        quorum: s.quorum,
        calls: plan.as_ref().map(|p| p.calls.clone()).unwrap_or_default(),
        call_failure: plan
            .as_ref()
            .map(|p| crate::api::server_calls::CallFailure::of(Some(p))),
        stream_call: plan.as_ref().and_then(|p| p.stream.clone()),
        list_contract: (!s.list_contract).then_some(false),
    }
}

fn oauth(slug: &str, o: crate::store::OAuthShown, vars: &mut Variables) -> ExportedOAuth {
    let key = o.auth_method == crate::probe::oauth::ClientAuth::PrivateKeyJwt;
    let secret = vars.reference(&[slug, "oauth", if key { "key" } else { "secret" }]);
    ExportedOAuth {
        client_id: o.client_id,
        auth_method: o.auth_method.as_str().into(),
        client_secret: (!key).then(|| secret.clone()),
        private_key: key.then_some(secret),
        token_endpoint: o.token_endpoint,
        scope: o.scope,
        resource: o.resource,
        expires_at: o.expires_at.map(rfc3339),
    }
}

fn channel(c: &ChannelRecord, servers: Vec<String>, vars: &mut Variables) -> ExportedChannel {
    let headers = c
        .header_names
        .iter()
        .map(|h| (h.clone(), vars.reference(&[&c.name, h])))
        .collect();
    let mut sealed = BTreeMap::new();
    if c.secret_enc.is_some() {
        let field = secret_name(c.format.as_deref());
        sealed.insert(field.to_string(), vars.reference(&[&c.name, field]));
    }
    let telegram = c.format.as_deref() == Some("telegram");
    ExportedChannel {
        name: c.name.clone(),
        kind: c.kind.as_str().to_string(),
        url: c.url.clone(),
        format: c.format.clone(),
        headers,
        sealed,
        chat_id: telegram.then(|| c.recipients.first().cloned()).flatten(),
        recipients: if c.kind == ChannelKind::Email {
            c.recipients.clone()
        } else {
            Vec::new()
        },
        servers,
        tags: c.tags.clone(),
        events: c.events.clone(),
        drift: c.drift.clone(),
        enabled: c.enabled,
        reminder_interval_seconds: c.reminder_interval_seconds,
        template: c.template.clone(),
    }
}

fn window(w: &WindowRecord, servers: Vec<String>) -> ExportedWindow {
    ExportedWindow {
        name: w.name.clone(),
        servers,
        tags: w.tags.clone(),
        starts_at: w.starts_at.map(rfc3339),
        ends_at: w.ends_at.map(rfc3339),
        cron: w.cron.clone(),
        duration_seconds: w.duration_seconds,
        timezone: w.timezone.clone(),
    }
}
