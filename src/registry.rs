//! The official MCP Registry as a source of monitors: its list API read page by page
//! (`GET /v0.1/servers`, `limit` 100, `version=latest`, `include_deleted`, an optional `search`
//! and `updated_since`; the cursor in `metadata.nextCursor`, or `next_cursor` as some registries
//! write it), and each server's remotes (`streamable-http`, `sse`) turned into what a monitor
//! needs: a URL with its template variables filled, fixed headers, and what an operator must
//! still give (secret headers, variables without a default).
//!
//! The shapes follow the registry's published OpenAPI (`ServerList`, `ServerResponse`,
//! `RemoteTransport`, `KeyValueInput`); unknown fields are ignored, as a client of a growing
//! API must. Depends on `probe` for the guarded HTTP client only.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use serde::Deserialize;

use crate::probe::AddressPolicy;

/// The official registry.
pub const OFFICIAL: &str = "https://registry.modelcontextprotocol.io";

/// Largest page the registry serves.
const PAGE_SIZE: u32 = 100;

/// A registry that pages on forever (or a cursor that cycles) is cut off here.
const MAX_PAGES: usize = 10_000;

/// One page of `GET /v0.1/servers`.
#[derive(Debug, Deserialize)]
pub struct ServerList {
    pub servers: Vec<ServerResponse>,
    #[serde(default)]
    pub metadata: Option<ListMetadata>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ListMetadata {
    #[serde(default, rename = "nextCursor", alias = "next_cursor")]
    pub next_cursor: Option<String>,
}

/// One server version with the registry's own metadata.
#[derive(Debug, Clone, Deserialize)]
pub struct ServerResponse {
    pub server: ServerDetail,
    #[serde(default, rename = "_meta")]
    pub meta: Option<ResponseMeta>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ResponseMeta {
    #[serde(default, rename = "io.modelcontextprotocol.registry/official")]
    pub official: Option<Official>,
}

/// The registry's lifecycle data of a server version.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Official {
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default, rename = "statusMessage")]
    pub status_message: Option<String>,
}

/// A server as published (`server.json`).
#[derive(Debug, Clone, Deserialize)]
pub struct ServerDetail {
    /// Reverse-DNS, e.g. `io.github.user/weather`.
    pub name: String,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default, rename = "websiteUrl")]
    pub website_url: Option<String>,
    #[serde(default)]
    pub remotes: Vec<Remote>,
}

/// A remote endpoint of a server.
#[derive(Debug, Clone, Deserialize)]
pub struct Remote {
    /// `streamable-http` or `sse` (others are not monitored).
    #[serde(rename = "type")]
    pub kind: String,
    /// A URL template: `{name}` stands for a variable.
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub headers: Vec<Header>,
    #[serde(default)]
    pub variables: BTreeMap<String, Input>,
}

/// A header a client sends (`KeyValueInput`).
#[derive(Debug, Clone, Deserialize)]
pub struct Header {
    pub name: String,
    #[serde(flatten)]
    pub input: Input,
    #[serde(default)]
    pub variables: BTreeMap<String, Input>,
}

/// A value a client supplies (`Input`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Input {
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default, rename = "isRequired")]
    pub is_required: bool,
    #[serde(default, rename = "isSecret")]
    pub is_secret: bool,
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub default: Option<String>,
}

/// The registry's lifecycle status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Active,
    /// With the registry's message, if any.
    Deprecated(Option<String>),
    Deleted,
}

/// A remote as a monitor sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The URL with every variable filled (when `needs` is empty).
    pub url: String,
    /// Headers with fixed, non-secret values: sent by the probe.
    pub headers: Vec<(String, String)>,
    /// What an operator must give before it can be probed, in words.
    pub needs: Vec<String>,
}

/// Why a registry could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The registry could not be reached or answered an error.
    #[error("registry {url}: {reason}")]
    Fetch { url: String, reason: String },
    /// It answered something that is not a server list.
    #[error("registry {url}: the answer is not a server list: {reason}")]
    Shape { url: String, reason: String },
    /// Its cursors never end.
    #[error("registry {url}: more than {MAX_PAGES} pages (a cursor cycles?)")]
    Endless { url: String },
}

impl ServerResponse {
    pub fn status(&self) -> Status {
        let official = self.meta.as_ref().and_then(|m| m.official.as_ref());
        match official.and_then(|o| o.status.as_deref()) {
            Some("deprecated") => {
                Status::Deprecated(official.and_then(|o| o.status_message.clone()))
            }
            Some("deleted") => Status::Deleted,
            _ => Status::Active,
        }
    }
}

impl Remote {
    /// Whether mcpwatch monitors this kind of remote.
    pub fn monitored(&self) -> bool {
        matches!(self.kind.as_str(), "streamable-http" | "sse") && self.url.is_some()
    }

    /// The endpoint: variables filled from their value or default, fixed headers, needs.
    pub fn endpoint(&self) -> Endpoint {
        let mut needs = Vec::new();
        let url = fill(
            self.url.as_deref().unwrap_or(""),
            &self.variables,
            &mut needs,
        );
        let mut headers = Vec::new();
        for h in &self.headers {
            let given = h.input.value.as_deref().or(h.input.default.as_deref());
            match given {
                Some(v) if !h.input.is_secret => {
                    let mut header_needs = Vec::new();
                    let value = fill(v, &h.variables, &mut header_needs);
                    if header_needs.is_empty() {
                        headers.push((h.name.clone(), value));
                    } else if h.input.is_required {
                        needs.push(format!("header {} ({})", h.name, header_needs.join(", ")));
                    }
                }
                _ if h.input.is_secret || h.input.is_required => {
                    let what = if h.input.is_secret {
                        "a secret"
                    } else {
                        "a value"
                    };
                    let about = h.input.description.as_deref().unwrap_or("");
                    needs.push(
                        format!("header {}: {what} {about}", h.name)
                            .trim_end()
                            .to_string(),
                    );
                }
                _ => {}
            }
        }
        Endpoint {
            url,
            headers,
            needs,
        }
    }
}

/// `template` with each `{name}` replaced by its variable's value or default; a variable
/// without either is named in `needs` and left as it is.
fn fill(template: &str, vars: &BTreeMap<String, Input>, needs: &mut Vec<String>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}').map(|c| open + c) else {
            break;
        };
        out.push_str(&rest[..open]);
        let name = &rest[open + 1..close];
        let value = vars
            .get(name)
            .and_then(|v| v.value.as_deref().or(v.default.as_deref()));
        match value {
            Some(v) => out.push_str(v),
            None => {
                needs.push(format!("URL variable {{{name}}} (no default)"));
                out.push_str(&rest[open..=close]);
            }
        }
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

/// What to ask the registry for.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub search: Option<String>,
    /// RFC 3339: only servers changed since (deleted ones included).
    pub updated_since: Option<String>,
}

/// Every server (latest version, deleted ones included) the registry at `base` lists for
/// `query`, following its cursors.
pub async fn list(
    base: &str,
    query: &Query,
    policy: &AddressPolicy,
) -> Result<(Vec<ServerResponse>, usize), RegistryError> {
    let url = format!("{}/v0.1/servers", base.trim_end_matches('/'));
    let fetch_err = |reason: String| RegistryError::Fetch {
        url: url.clone(),
        reason,
    };
    let client =
        crate::probe::guarded_client(policy.clone(), Duration::from_secs(30)).map_err(fetch_err)?;
    let mut servers = Vec::new();
    let mut cursor: Option<String> = None;
    let mut seen = HashSet::new();
    for page in 1..=MAX_PAGES {
        let list = fetch_page(&client, &url, query, cursor.as_deref()).await?;
        servers.extend(list.servers);
        cursor = list
            .metadata
            .and_then(|m| m.next_cursor)
            .filter(|c| !c.is_empty());
        match &cursor {
            None => return Ok((servers, page)),
            Some(c) if !seen.insert(c.clone()) => {
                return Err(RegistryError::Endless { url: url.clone() });
            }
            Some(_) => {}
        }
    }
    Err(RegistryError::Endless { url })
}

async fn fetch_page(
    client: &reqwest::Client,
    url: &str,
    query: &Query,
    cursor: Option<&str>,
) -> Result<ServerList, RegistryError> {
    let mut params: Vec<(&str, String)> = vec![
        ("limit", PAGE_SIZE.to_string()),
        ("version", "latest".into()),
        ("include_deleted", "true".into()),
    ];
    if let Some(s) = &query.search {
        params.push(("search", s.clone()));
    }
    if let Some(t) = &query.updated_since {
        params.push(("updated_since", t.clone()));
    }
    if let Some(c) = cursor {
        params.push(("cursor", c.to_string()));
    }
    let fetch_err = |reason: String| RegistryError::Fetch {
        url: url.to_string(),
        reason,
    };
    let mut target = url::Url::parse(url).map_err(|e| fetch_err(e.to_string()))?;
    target.query_pairs_mut().extend_pairs(&params);
    let resp = client
        .get(target)
        .send()
        .await
        .map_err(|e| fetch_err(crate::probe::redact_error(&e)))?;
    let status = resp.status();
    let body = resp
        .bytes()
        .await
        .map_err(|e| fetch_err(crate::probe::redact_error(&e)))?;
    if !status.is_success() {
        return Err(fetch_err(format!("HTTP {status}")));
    }
    serde_json::from_slice(&body).map_err(|e| RegistryError::Shape {
        url: url.to_string(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(json: serde_json::Value) -> Remote {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn variables_fill_from_defaults_and_secrets_are_needs() {
        let r = remote(serde_json::json!({
            "type": "streamable-http",
            "url": "https://{region}.example.com/{tenant}/mcp",
            "variables": {"region": {"default": "eu"}, "tenant": {"isRequired": true}},
            "headers": [
                {"name": "Authorization", "isSecret": true, "isRequired": true,
                 "description": "Bearer token"},
                {"name": "X-Version", "value": "2"},
                {"name": "X-Optional"}
            ]
        }));
        let e = r.endpoint();
        assert_eq!(e.url, "https://eu.example.com/{tenant}/mcp");
        assert_eq!(e.headers, vec![("X-Version".to_string(), "2".to_string())]);
        assert_eq!(
            e.needs,
            vec![
                "URL variable {tenant} (no default)".to_string(),
                "header Authorization: a secret Bearer token".to_string()
            ]
        );
    }

    #[test]
    fn status_and_cursor_spellings_are_read() {
        let list: ServerList = serde_json::from_value(serde_json::json!({
            "servers": [{"server": {"name": "a/b", "version": "1"},
                          "_meta": {"io.modelcontextprotocol.registry/official":
                                    {"status": "deprecated", "statusMessage": "use c/d"}}}],
            "metadata": {"next_cursor": "x"}
        }))
        .unwrap();
        assert_eq!(
            list.servers[0].status(),
            Status::Deprecated(Some("use c/d".into()))
        );
        assert_eq!(list.metadata.unwrap().next_cursor.as_deref(), Some("x"));
    }
}
