//! The HTTP layer of one probe: a reqwest client built per probe from shared parts, with
//! hooks that measure and police every connection.
//!
//! The client reports into a `Recorder` (`recorder.rs`: timings, certificate, connection
//! errors) through three hooks: the resolver (`dns.rs`, which also applies the address policy
//! to resolved addresses), a connector timing layer, and the TLS hooks (`tls.rs`).
//!
//! - [`Http`]: sends requests with manual redirects (each hop re-checked), credential headers
//!   marked sensitive, and bodies read under a byte cap (decoded bytes, so gzip bombs stop).
//!
//! A client per probe means a fresh connection per probe (no pool can hide a dead listener)
//! while the expensive parts (root store, DNS resolver, policy) are built once.

use std::net::IpAddr;
use std::sync::Arc;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, LOCATION};
use reqwest::{Method, Response, StatusCode};
use url::Url;

use super::dns::{Dns, HookError, PolicyResolver};
use super::policy::{AddressPolicy, BlockedAddress};
use super::recorder::ConnTimingLayer;
pub(crate) use super::recorder::{Recorder, round_ms};
use super::report::{Failure, FailureKind, Phase};
use super::trace::{TRACEPARENT, Trace};

/// Shared, built-once parts every probe's client is assembled from.
#[derive(Debug, Clone)]
pub(crate) struct NetParts {
    pub dns: Dns,
    pub policy: Arc<AddressPolicy>,
    pub tls: super::tls::TlsBase,
}

/// One probe's HTTP client.
pub(crate) struct Http {
    client: reqwest::Client,
    pub recorder: Arc<Recorder>,
    policy: Arc<AddressPolicy>,
    /// Credential headers, marked sensitive so no debug output can show them.
    credentials: HeaderMap,
    pub body_cap: usize,
    follow_post_redirects: bool,
    /// The probe's trace: every request carries a `traceparent` of it.
    trace: Trace,
}

/// How many redirects a GET follows before giving up.
const MAX_REDIRECTS: usize = 5;

impl Http {
    pub(crate) fn new(
        parts: &NetParts,
        credentials: &[(String, String)],
        body_cap: usize,
        follow_post_redirects: bool,
    ) -> Result<Self, Failure> {
        let recorder = Arc::new(Recorder::default());
        let client = reqwest::Client::builder()
            .dns_resolver(Arc::new(PolicyResolver {
                dns: parts.dns.clone(),
                policy: parts.policy.clone(),
                recorder: recorder.clone(),
            }))
            .connector_layer(ConnTimingLayer(recorder.clone()))
            .tls_backend_preconfigured(parts.tls.for_probe(recorder.clone()))
            .tls_info(false)
            .redirect(reqwest::redirect::Policy::none())
            .retry(reqwest::retry::never())
            .no_proxy()
            .referer(false)
            .pool_max_idle_per_host(1)
            .user_agent(concat!("mcpwatch/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                Failure::new(
                    FailureKind::Connect,
                    Phase::Connect,
                    format!("HTTP client setup failed: {e}"),
                )
            })?;
        let mut headers = HeaderMap::new();
        for (name, value) in credentials {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                Failure::new(
                    FailureKind::Protocol,
                    Phase::Handshake,
                    format!("invalid header name '{name}'"),
                )
            })?;
            let mut value = HeaderValue::from_str(value).map_err(|_| {
                Failure::new(
                    FailureKind::Protocol,
                    Phase::Handshake,
                    format!("invalid value for header '{name}' (not shown)"),
                )
            })?;
            value.set_sensitive(true);
            headers.append(name, value);
        }
        Ok(Http {
            client,
            recorder,
            policy: parts.policy.clone(),
            credentials: headers,
            body_cap,
            follow_post_redirects,
            trace: Trace::new(),
        })
    }

    /// The trace this client's requests belong to.
    pub(crate) fn trace(&self) -> &Trace {
        &self.trace
    }

    /// See [`AddressPolicy::allows_private`].
    pub(crate) fn allows_private(&self, ip: IpAddr) -> bool {
        self.policy.allows_private(ip)
    }

    pub(crate) fn sends_credentials(&self) -> bool {
        !self.credentials.is_empty()
    }

    /// Send one request. Redirects are followed (GET/DELETE always; POST on 307/308 to the same
    /// origin, or to any origin when configured), each hop checked against the policy; an
    /// unfollowed 3xx is returned.
    /// Returns the response and the URL that answered.
    pub(crate) async fn send(
        &self,
        method: Method,
        url: &Url,
        headers: HeaderMap,
        body: Option<Vec<u8>>,
        phase: Phase,
    ) -> Result<(Response, Url), Failure> {
        let mut url = url.clone();
        let mut headers = headers;
        if !headers.contains_key(TRACEPARENT)
            && let Ok(value) = HeaderValue::from_str(&self.trace.traceparent())
        {
            headers.insert(TRACEPARENT, value);
        }
        for _ in 0..=MAX_REDIRECTS {
            self.check_url(&url, phase)?;
            let mut req = self
                .client
                .request(method.clone(), url.clone())
                .headers(self.credentials.clone())
                .headers(headers.clone());
            if let Some(b) = &body {
                req = req.body(b.clone());
            }
            let resp = req
                .send()
                .await
                .map_err(|e| self.classify_send_error(e, phase))?;
            let status = resp.status();
            if !status.is_redirection() {
                return Ok((resp, url));
            }
            let next = resp
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|loc| url.join(loc).ok());
            match next {
                Some(next) if self.follows(&method, status, &url, &next) => url = next,
                _ => return Ok((resp, url)),
            }
        }
        Err(Failure::new(
            FailureKind::HttpStatus,
            phase,
            format!("more than {MAX_REDIRECTS} redirects"),
        ))
    }

    /// Whether to follow a redirect from `from` to `to`. GET and DELETE always follow. A POST
    /// follows only 307/308 (the method and body are kept), and only to the same origin unless
    /// the operator opted in: real SDK clients follow `/mcp` → `/mcp/`, and a cross-origin hop
    /// would carry the probe's credentials to another host.
    fn follows(&self, method: &Method, status: StatusCode, from: &Url, to: &Url) -> bool {
        if *method != Method::POST {
            return true;
        }
        let keeps_method = matches!(
            status,
            StatusCode::TEMPORARY_REDIRECT | StatusCode::PERMANENT_REDIRECT
        );
        keeps_method && (self.follow_post_redirects || from.origin() == to.origin())
    }

    /// Scheme check, and the policy for IP literals (the resolver hook never sees them).
    fn check_url(&self, url: &Url, phase: Phase) -> Result<(), Failure> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Failure::new(
                FailureKind::Blocked,
                phase,
                format!(
                    "refusing to follow to a {}: URL (only http and https)",
                    url.scheme()
                ),
            ));
        }
        let ip = match url.host() {
            Some(url::Host::Ipv4(v4)) => IpAddr::V4(v4),
            Some(url::Host::Ipv6(v6)) => IpAddr::V6(v6),
            _ => return Ok(()),
        };
        self.policy
            .check(ip)
            .map_err(|b| blocked_failure(b, phase, &redact_url(url)))
    }

    /// Map a reqwest send error onto exactly one failure kind.
    fn classify_send_error(&self, err: reqwest::Error, phase: Phase) -> Failure {
        let err = err.without_url();
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
        let mut io_kind = None;
        let mut rustls_err = None;
        while let Some(e) = source {
            if let Some(hook) = e.downcast_ref::<HookError>() {
                return match hook {
                    HookError::Dns(m) => Failure::new(FailureKind::Dns, Phase::Dns, m.clone()),
                    HookError::Blocked(b) => blocked_failure(*b, Phase::Connect, "the target"),
                };
            }
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                io_kind.get_or_insert(io.kind());
            }
            if let Some(r) = e.downcast_ref::<rustls::Error>() {
                rustls_err.get_or_insert_with(|| super::tls::describe_tls_error(r));
            }
            source = e.source();
        }
        let (tls_error, tls_started, conn_open) = self.recorder.failure_context();
        if let Some(reason) = tls_error.or(rustls_err) {
            return Failure::new(
                FailureKind::Tls,
                Phase::Tls,
                format!("TLS handshake failed: {reason}"),
            );
        }
        if err.is_connect() || conn_open {
            if tls_started {
                return Failure::new(
                    FailureKind::Tls,
                    Phase::Tls,
                    format!("TLS handshake failed: {}", error_chain(&err)),
                );
            }
            let what = match io_kind {
                Some(std::io::ErrorKind::ConnectionRefused) => "connection refused".to_string(),
                Some(std::io::ErrorKind::TimedOut) => "TCP connect timed out".to_string(),
                _ => error_chain(&err),
            };
            return Failure::new(FailureKind::Connect, Phase::Connect, what);
        }
        Failure::new(
            FailureKind::Connect,
            phase,
            format!(
                "connection failed during the request: {}",
                error_chain(&err)
            ),
        )
    }

    /// Read the whole body under the cap; decoded bytes count, so a gzip bomb stops at the cap.
    pub(crate) async fn read_body(
        &self,
        resp: &mut Response,
        phase: Phase,
    ) -> Result<Vec<u8>, Failure> {
        let mut body = Vec::new();
        while let Some(chunk) = self.next_chunk(resp, phase).await? {
            self.check_cap(body.len() + chunk.len(), phase)?;
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    pub(crate) async fn next_chunk(
        &self,
        resp: &mut Response,
        phase: Phase,
    ) -> Result<Option<bytes::Bytes>, Failure> {
        resp.chunk().await.map_err(|e| {
            let decode = e.is_decode();
            let text = error_chain(&e.without_url());
            if decode {
                Failure::new(
                    FailureKind::Protocol,
                    phase,
                    format!("response body could not be decoded: {text}"),
                )
            } else {
                Failure::new(
                    FailureKind::Connect,
                    phase,
                    format!("connection broke while reading the response: {text}"),
                )
            }
        })
    }

    pub(crate) fn check_cap(&self, total: usize, phase: Phase) -> Result<(), Failure> {
        if total > self.body_cap {
            return Err(Failure::new(
                FailureKind::TooLarge,
                phase,
                format!(
                    "response exceeded the body cap of {} bytes (decoded)",
                    self.body_cap
                ),
            ));
        }
        Ok(())
    }
}

fn blocked_failure(b: BlockedAddress, phase: Phase, what: &str) -> Failure {
    Failure::new(
        FailureKind::Blocked,
        phase,
        format!(
            "refused to connect to {what}: {} (allow-list the range to probe it)",
            b
        ),
    )
}

/// An error and its sources in one line (callers strip URLs first with `without_url`).
pub fn redact_error(err: &(dyn std::error::Error + 'static)) -> String {
    error_chain(err)
}

/// An error and its sources, joined, without repeats.
pub(crate) fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut source = Some(err);
    while let Some(e) = source {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = e.source();
    }
    parts.join(": ")
}

/// A URL safe to print: no userinfo, and the query string replaced by `?…`.
pub fn redact_url(url: &Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    let had_query = u.query().is_some_and(|q| !q.is_empty());
    u.set_query(None);
    u.set_fragment(None);
    let mut s = u.to_string();
    if had_query {
        s.push_str("?…");
    }
    s
}

/// The parts of a URL to scrub from messages: the userinfo (user and password), and query
/// values long enough to be keys (8 characters or more: `?format=json` is not a secret, and
/// scrubbing "json" would garble every message). Every query value is still masked wherever
/// the URL is shown; see [`mask_url`].
pub fn url_secrets(url: &Url) -> Vec<String> {
    let mut out: Vec<String> = url.query_pairs().map(|(_, v)| v.into_owned()).collect();
    // Percent-decoded and as written: a server may echo either.
    out.extend(
        url.query()
            .unwrap_or("")
            .split('&')
            .filter_map(|pair| pair.split_once('=').map(|(_, v)| v.to_string())),
    );
    out.retain(|v| v.len() >= 8);
    out.push(url.username().to_string());
    out.extend(url.password().map(str::to_string));
    out.retain(|v| !v.is_empty());
    out.sort();
    out.dedup();
    out
}

/// The URL as it may be shown (API, pages, alerts): userinfo as `***@` and every query value
/// as `***`, keys kept, so an operator still recognises which URL it is. `None` when the URL
/// carries no credential and can be shown as it is.
pub fn mask_url(url: &Url) -> Option<String> {
    let has_userinfo = !url.username().is_empty() || url.password().is_some();
    let has_query = url.query().is_some_and(|q| !q.is_empty());
    if !has_userinfo && !has_query {
        return None;
    }
    let mut u = url.clone();
    if has_userinfo {
        let _ = u.set_password(None);
        let _ = u.set_username("***");
    }
    if has_query {
        let keys: Vec<String> = url.query_pairs().map(|(k, _)| k.into_owned()).collect();
        u.set_query(None);
        let mut masked = u.query_pairs_mut();
        for key in &keys {
            masked.append_pair(key, "***");
        }
        drop(masked);
    }
    Some(u.to_string().replace("%2A%2A%2A", "***"))
}

/// A client for other outbound calls (webhooks) under the same rules as probes: the address
/// policy on every resolved address, no redirects, no proxy, our TLS roots. IP literals must
/// still be checked by the caller with [`AddressPolicy::check`].
pub fn guarded_client(
    policy: AddressPolicy,
    timeout: std::time::Duration,
) -> Result<reqwest::Client, String> {
    let recorder = Arc::new(Recorder::default());
    let tls = super::tls::TlsBase::new(&[]).map_err(|e| e.to_string())?;
    reqwest::Client::builder()
        .dns_resolver(Arc::new(PolicyResolver {
            dns: Dns::system(std::collections::HashMap::new()),
            policy: Arc::new(policy),
            recorder: recorder.clone(),
        }))
        .tls_backend_preconfigured(tls.for_probe(recorder))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(timeout)
        .user_agent(concat!("mcpwatch/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_url_drops_userinfo_and_query() {
        let u = Url::parse("https://user:pw@example.com/mcp?key=secret#frag").unwrap();
        assert_eq!(redact_url(&u), "https://example.com/mcp?…");
        let plain = Url::parse("http://127.0.0.1:8080/mcp").unwrap();
        assert_eq!(redact_url(&plain), "http://127.0.0.1:8080/mcp");
    }

    #[test]
    fn url_credentials_are_masked_when_shown_and_long_ones_scrubbed() {
        let u = Url::parse("https://me:pa55word@h.example/mcp?key=supersecret-123&format=json")
            .unwrap();
        assert_eq!(
            mask_url(&u).unwrap(),
            "https://***@h.example/mcp?key=***&format=***"
        );
        let secrets = url_secrets(&u);
        assert!(secrets.contains(&"supersecret-123".to_string()));
        assert!(secrets.contains(&"pa55word".to_string()) && secrets.contains(&"me".to_string()));
        assert!(
            !secrets.contains(&"json".to_string()),
            "short values garble messages: {secrets:?}"
        );
        assert_eq!(
            mask_url(&Url::parse("https://h.example/mcp").unwrap()),
            None
        );
    }
}
