//! The OAuth discovery chain a spec-following MCP client walks after a 401 (authorization
//! chapters of 2025-11-25 and 2026-07-28): the protected-resource metadata (RFC 9728) named
//! by the challenge's `resource_metadata`, else at the well-known URLs in the spec's order;
//! then the authorization server's metadata (RFC 8414, or OpenID discovery) at the
//! path-inserted and path-appended URLs in the spec's order; and what a client must verify
//! before it can log in: the `resource` is this server, the `issuer` is the URL the metadata was
//! found for, a token endpoint exists, PKCE `S256` is advertised, and every endpoint is HTTPS
//! (plain HTTP only on an address the policy allows as private).
//!
//! Every fetch goes through the probe's client: its address policy, caps and deadline. It runs
//! only when the probe sent no credentials, so nothing of the probe's travels to another host.

use reqwest::Method;
use reqwest::header::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;

use super::net::{Http, redact_url};
use super::report::Phase;

/// Where the chain stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DiscoveryStatus {
    /// Every step answered and checked out: a client can log in.
    Ok,
    /// The server advertises no OAuth metadata (no `resource_metadata`, nothing at the
    /// well-known URLs): protected by something else (an API key).
    NotAdvertised,
    /// Advertised, but a step is missing, unreachable or inconsistent: no client can log in.
    Broken,
}

/// The step of the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DiscoveryStep {
    /// RFC 9728 protected-resource metadata.
    ProtectedResourceMetadata,
    /// RFC 8414 / OpenID discovery authorization-server metadata.
    AuthorizationServerMetadata,
}

impl DiscoveryStep {
    pub fn describe(self) -> &'static str {
        match self {
            DiscoveryStep::ProtectedResourceMetadata => "protected-resource metadata",
            DiscoveryStep::AuthorizationServerMetadata => "authorization-server metadata",
        }
    }
}

/// What the chain showed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Discovery {
    pub status: DiscoveryStatus,
    /// Where it broke, and why.
    pub step: Option<DiscoveryStep>,
    pub reason: Option<String>,
    /// The protected-resource metadata read.
    pub resource_metadata: Option<String>,
    /// The authorization server (issuer) it names, its metadata URL and token endpoint.
    pub issuer: Option<String>,
    pub metadata_url: Option<String>,
    pub token_endpoint: Option<String>,
}

impl Discovery {
    fn broken(step: DiscoveryStep, reason: String, prm: Option<&Url>) -> Self {
        Discovery {
            status: DiscoveryStatus::Broken,
            step: Some(step),
            reason: Some(reason),
            resource_metadata: prm.map(redact_url),
            issuer: None,
            metadata_url: None,
            token_endpoint: None,
        }
    }

    /// "the authorization-server metadata: no `S256` in code_challenge_methods_supported".
    pub fn explain(&self) -> String {
        match (self.step, &self.reason) {
            (Some(step), Some(reason)) => format!(
                "OAuth discovery broken at the {}: {reason}",
                step.describe()
            ),
            _ => "OAuth discovery complete".into(),
        }
    }
}

/// The well-known protected-resource metadata URLs for `url`, in the spec's order.
pub(crate) fn prm_candidates(url: &Url) -> Vec<Url> {
    let mut out = Vec::new();
    let path = url.path().trim_end_matches('/');
    if !path.is_empty()
        && let Ok(u) = url.join(&format!("/.well-known/oauth-protected-resource{path}"))
    {
        out.push(u);
    }
    if let Ok(u) = url.join("/.well-known/oauth-protected-resource") {
        out.push(u);
    }
    out
}

/// The authorization-server metadata URLs for `issuer`, in the spec's order.
pub(crate) fn as_candidates(issuer: &Url) -> Vec<Url> {
    let path = issuer.path().trim_end_matches('/');
    let at = |p: String| issuer.join(&p).ok();
    let list = if path.is_empty() {
        vec![
            at("/.well-known/oauth-authorization-server".into()),
            at("/.well-known/openid-configuration".into()),
        ]
    } else {
        vec![
            at(format!("/.well-known/oauth-authorization-server{path}")),
            at(format!("/.well-known/openid-configuration{path}")),
            at(format!("{path}/.well-known/openid-configuration")),
        ]
    };
    list.into_iter().flatten().collect()
}

/// `url` for comparing resource identifiers: lower-case scheme and host (the url crate does
/// that), no fragment, no trailing slash.
fn canonical(url: &Url) -> String {
    let mut u = url.clone();
    u.set_fragment(None);
    u.to_string().trim_end_matches('/').to_string()
}

/// Whether the metadata's `resource` identifies the server at `url`: the same URL, or a
/// prefix of it at a path boundary (a resource identifier covering the endpoint's path).
fn resource_matches(resource: &str, url: &Url) -> bool {
    let Ok(r) = Url::parse(resource) else {
        return false;
    };
    let (r, u) = (canonical(&r), canonical(url));
    u == r || u.starts_with(&format!("{r}/"))
}

/// An endpoint must be HTTPS, or plain HTTP on a private address the policy allows (a test or
/// an internal deployment); `None` when it may be used, else why not.
fn transport_problem(http: &Http, what: &str, url: &Url) -> Option<String> {
    if url.scheme() == "https" {
        return None;
    }
    let private_allowed = match url.host() {
        Some(url::Host::Ipv4(ip)) => http.allows_private(ip.into()),
        Some(url::Host::Ipv6(ip)) => http.allows_private(ip.into()),
        _ => false,
    };
    (!(url.scheme() == "http" && private_allowed))
        .then(|| format!("{what} {} is not HTTPS", redact_url(url)))
}

/// GET `url` as JSON: the document, or why not (status, not JSON, unreachable).
async fn fetch_json(http: &Http, url: &Url) -> Result<Value, String> {
    let mut headers = HeaderMap::new();
    headers.insert(
        reqwest::header::ACCEPT,
        "application/json"
            .parse()
            .unwrap_or_else(|_| reqwest::header::HeaderValue::from_static("*/*")),
    );
    let (mut resp, _) = http
        .send(Method::GET, url, headers, None, Phase::Handshake)
        .await
        .map_err(|f| f.message)?;
    let status = resp.status();
    if !status.is_success() {
        return Err(format!(
            "{} answered HTTP {}",
            redact_url(url),
            status.as_u16()
        ));
    }
    let body = http
        .read_body(&mut resp, Phase::Handshake)
        .await
        .map_err(|f| f.message)?;
    match serde_json::from_slice::<Value>(&body) {
        Ok(v) if v.is_object() => Ok(v),
        _ => Err(format!("{} is not a JSON object", redact_url(url))),
    }
}

/// Walk the chain for the server at `url`, starting from the challenge's `resource_metadata`.
pub(crate) async fn discover(http: &Http, url: &Url, advertised: Option<&str>) -> Discovery {
    use DiscoveryStep::*;
    let (prm_url, prm) = match protected_resource(http, url, advertised).await {
        Ok(Some(found)) => found,
        Ok(None) => {
            return Discovery {
                status: DiscoveryStatus::NotAdvertised,
                step: None,
                reason: None,
                resource_metadata: None,
                issuer: None,
                metadata_url: None,
                token_endpoint: None,
            };
        }
        Err((at, why)) => return Discovery::broken(ProtectedResourceMetadata, why, at.as_ref()),
    };
    let broken_prm =
        |why: String| Discovery::broken(ProtectedResourceMetadata, why, Some(&prm_url));
    match prm.get("resource").and_then(Value::as_str) {
        Some(r) if resource_matches(r, url) => {}
        Some(r) => {
            return broken_prm(format!(
                "its resource '{r}' is not this server ({})",
                redact_url(url)
            ));
        }
        None => return broken_prm("it has no resource".into()),
    }
    let Some(issuer) = prm
        .get("authorization_servers")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .and_then(Value::as_str)
    else {
        return broken_prm("it names no authorization_servers".into());
    };
    let Ok(issuer_url) = Url::parse(issuer) else {
        return broken_prm(format!("authorization server '{issuer}' is not a URL"));
    };
    let mut d = authorization_server(http, &issuer_url).await;
    d.resource_metadata = Some(redact_url(&prm_url));
    d
}

/// The protected-resource metadata: `Ok(None)` when none is advertised; an error with the URL
/// that failed when the advertised one does.
async fn protected_resource(
    http: &Http,
    url: &Url,
    advertised: Option<&str>,
) -> Result<Option<(Url, Value)>, (Option<Url>, String)> {
    if let Some(named) = advertised {
        let Ok(at) = url.join(named) else {
            return Err((None, format!("resource_metadata '{named}' is not a URL")));
        };
        if let Some(why) = transport_problem(http, "resource_metadata", &at) {
            return Err((Some(at), why));
        }
        return match fetch_json(http, &at).await {
            Ok(doc) => Ok(Some((at, doc))),
            Err(why) => Err((Some(at), why)),
        };
    }
    for at in prm_candidates(url) {
        if let Ok(doc) = fetch_json(http, &at).await
            && doc.get("resource").is_some()
        {
            return Ok(Some((at, doc)));
        }
    }
    Ok(None)
}

/// The authorization server's metadata, checked.
async fn authorization_server(http: &Http, issuer: &Url) -> Discovery {
    let step = DiscoveryStep::AuthorizationServerMetadata;
    let broken = |why: String| Discovery::broken(step, why, None);
    if let Some(why) = transport_problem(http, "the authorization server", issuer) {
        return broken(why);
    }
    let candidates = as_candidates(issuer);
    let mut found = None;
    for at in &candidates {
        if let Ok(doc) = fetch_json(http, at).await {
            found = Some((at.clone(), doc));
            break;
        }
    }
    let Some((at, doc)) = found else {
        let tried: Vec<String> = candidates.iter().map(redact_url).collect();
        return broken(format!("no metadata at {}", tried.join(", ")));
    };
    if let Some(why) = check_metadata(http, issuer, &doc) {
        return broken(format!("{} {why}", redact_url(&at)));
    }
    Discovery {
        status: DiscoveryStatus::Ok,
        step: None,
        reason: None,
        resource_metadata: None,
        // As the metadata says it (checked equal to the one named, but for a trailing slash).
        issuer: doc
            .get("issuer")
            .and_then(Value::as_str)
            .map(str::to_string),
        metadata_url: Some(redact_url(&at)),
        token_endpoint: doc
            .get("token_endpoint")
            .and_then(Value::as_str)
            .map(str::to_string),
    }
}

/// What a client must find in the metadata before it can log in; `None` when all is there.
fn check_metadata(http: &Http, issuer: &Url, doc: &Value) -> Option<String> {
    let same = |a: &str, b: &str| a.trim_end_matches('/') == b.trim_end_matches('/');
    match doc.get("issuer").and_then(Value::as_str) {
        Some(i) if same(i, issuer.as_str()) => {}
        Some(i) => return Some(format!("says issuer '{i}', not '{issuer}'")),
        None => return Some("has no issuer".into()),
    }
    let Some(token) = doc.get("token_endpoint").and_then(Value::as_str) else {
        return Some("has no token_endpoint".into());
    };
    match Url::parse(token) {
        Ok(t) => {
            if let Some(why) = transport_problem(http, "its token_endpoint", &t) {
                return Some(why);
            }
        }
        Err(_) => return Some(format!("has a token_endpoint that is not a URL: '{token}'")),
    }
    let s256 = doc
        .get("code_challenge_methods_supported")
        .and_then(Value::as_array)
        .is_some_and(|m| m.iter().any(|v| v == "S256"));
    (!s256).then(|| "does not advertise PKCE S256 (code_challenge_methods_supported)".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_follow_the_specs_order() {
        let u = |s: &str| Url::parse(s).unwrap();
        let s = |v: Vec<Url>| v.iter().map(Url::to_string).collect::<Vec<_>>();
        assert_eq!(
            s(as_candidates(&u("https://auth.example.com/tenant1"))),
            vec![
                "https://auth.example.com/.well-known/oauth-authorization-server/tenant1",
                "https://auth.example.com/.well-known/openid-configuration/tenant1",
                "https://auth.example.com/tenant1/.well-known/openid-configuration",
            ]
        );
        assert_eq!(
            s(as_candidates(&u("https://auth.example.com/"))),
            vec![
                "https://auth.example.com/.well-known/oauth-authorization-server",
                "https://auth.example.com/.well-known/openid-configuration",
            ]
        );
        assert_eq!(
            s(prm_candidates(&u("https://mcp.example.com/public/mcp"))),
            vec![
                "https://mcp.example.com/.well-known/oauth-protected-resource/public/mcp",
                "https://mcp.example.com/.well-known/oauth-protected-resource",
            ]
        );
    }

    #[test]
    fn a_resource_matches_its_url_or_a_path_above_it() {
        let url = Url::parse("https://MCP.example.com/public/mcp").unwrap();
        for ok in [
            "https://mcp.example.com/public/mcp",
            "https://mcp.example.com/public/mcp/",
            "https://mcp.example.com",
            "https://mcp.example.com/public",
        ] {
            assert!(resource_matches(ok, &url), "{ok}");
        }
        for bad in [
            "https://mcp.example.com/pub",
            "https://other.example.com/public/mcp",
            "http://mcp.example.com/public/mcp",
            "not a url",
        ] {
            assert!(!resource_matches(bad, &url), "{bad}");
        }
    }
}
