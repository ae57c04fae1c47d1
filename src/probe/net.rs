//! The HTTP layer of one probe: a reqwest client built per probe from shared parts, with
//! hooks that measure and police every connection.
//!
//! - [`Recorder`]: per-probe timestamps (DNS, connect, TLS), the certificate, and why a
//!   connection failed (blocked address, DNS error, TLS error).
//! - [`PolicyResolver`]: our own DNS step behind `reqwest::dns::Resolve`; it drops addresses the
//!   [`AddressPolicy`] refuses before anything connects.
//! - [`ConnTimingLayer`]: a tower layer around reqwest's connector that times the connection.
//! - [`Http`]: sends requests with manual redirects (each hop re-checked), credential headers
//!   marked sensitive, and bodies read under a byte cap (decoded bytes, so gzip bombs stop).
//!
//! A client per probe means a fresh connection per probe (no pool can hide a dead listener)
//! while the expensive parts (root store, DNS resolver, policy) are built once.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use hickory_resolver::TokioResolver;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, LOCATION};
use reqwest::{Method, Response, StatusCode};
use url::Url;

use super::policy::{AddressPolicy, BlockedAddress};
use super::report::{Failure, FailureKind, Phase};

/// Timestamps of one connection.
#[derive(Debug, Default, Clone, Copy)]
struct ConnProgress {
    start: Option<Instant>,
    dns_start: Option<Instant>,
    dns_end: Option<Instant>,
    tls_start: Option<Instant>,
    end: Option<Instant>,
}

impl ConnProgress {
    fn ms(a: Option<Instant>, b: Option<Instant>) -> Option<f64> {
        Some(round_ms(
            b?.saturating_duration_since(a?).as_secs_f64() * 1000.0,
        ))
    }
}

/// Milliseconds with microsecond precision, for stable JSON.
pub(crate) fn round_ms(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

#[derive(Debug, Default)]
struct RecState {
    current: ConnProgress,
    first: Option<ConnProgress>,
    cert_not_after: Option<i64>,
    tls_error: Option<String>,
    blocked: Option<BlockedAddress>,
    dns_error: Option<String>,
}

/// What the network hooks saw during one probe.
#[derive(Debug, Default)]
pub(crate) struct Recorder {
    state: Mutex<RecState>,
}

/// Connection-level timings of the probe's first connection.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub(crate) struct ConnTimings {
    pub dns: Option<f64>,
    pub connect: Option<f64>,
    pub tls: Option<f64>,
    /// dns + connect + tls, to subtract from the step that opened the connection.
    pub total: Option<f64>,
}

impl Recorder {
    fn with<T>(&self, f: impl FnOnce(&mut RecState) -> T) -> T {
        // A poisoned lock only means another hook panicked; the data is still usable.
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }

    fn conn_started(&self) {
        self.with(|s| {
            s.current = ConnProgress {
                start: Some(Instant::now()),
                ..ConnProgress::default()
            }
        });
    }

    fn conn_finished(&self) {
        self.with(|s| {
            s.current.end = Some(Instant::now());
            if s.first.is_none() {
                s.first = Some(s.current);
            }
        });
    }

    fn dns_started(&self) {
        self.with(|s| s.current.dns_start = Some(Instant::now()));
    }

    fn dns_finished(&self) {
        self.with(|s| s.current.dns_end = Some(Instant::now()));
    }

    pub(crate) fn tls_started(&self) {
        self.with(|s| {
            if s.current.tls_start.is_none() && s.current.end.is_none() {
                s.current.tls_start = Some(Instant::now());
            }
        });
    }

    pub(crate) fn cert_seen(&self, not_after: i64) {
        self.with(|s| {
            s.cert_not_after.get_or_insert(not_after);
        });
    }

    pub(crate) fn tls_error(&self, message: String) {
        self.with(|s| s.tls_error = Some(message));
    }

    pub(crate) fn cert_not_after(&self) -> Option<i64> {
        self.with(|s| s.cert_not_after)
    }

    /// The network phase a connection in progress is in, if one is.
    pub(crate) fn in_flight_phase(&self) -> Option<Phase> {
        self.with(|s| {
            let c = s.current;
            if c.start.is_none() || c.end.is_some() {
                None
            } else if c.tls_start.is_some() {
                Some(Phase::Tls)
            } else if c.dns_start.is_some() && c.dns_end.is_none() {
                Some(Phase::Dns)
            } else {
                Some(Phase::Connect)
            }
        })
    }

    /// Timings of the first completed connection.
    pub(crate) fn conn_timings(&self) -> ConnTimings {
        self.with(|s| {
            let Some(c) = s.first else {
                return ConnTimings::default();
            };
            let dns = ConnProgress::ms(c.dns_start, c.dns_end);
            let connect_from = c.dns_end.or(c.start);
            let connect = ConnProgress::ms(connect_from, c.tls_start.or(c.end));
            let tls = ConnProgress::ms(c.tls_start, c.end);
            ConnTimings {
                dns,
                connect,
                tls,
                total: ConnProgress::ms(c.start, c.end),
            }
        })
    }
}

/// Errors our hooks put into reqwest's error chain, recovered by [`classify_send_error`].
#[derive(Debug, thiserror::Error)]
enum HookError {
    #[error("{0}")]
    Dns(String),
    #[error("{0}")]
    Blocked(BlockedAddress),
}

/// DNS for the probe: static overrides, RFC 6761 special names, then the system's resolvers.
#[derive(Clone)]
pub struct Dns {
    resolver: Option<Arc<TokioResolver>>,
    hosts: Arc<HashMap<String, Vec<IpAddr>>>,
}

impl std::fmt::Debug for Dns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dns").field("hosts", &self.hosts).finish()
    }
}

impl Dns {
    /// The system resolver configuration (`/etc/resolv.conf`, `/etc/hosts`), with `hosts`
    /// taking precedence (like curl's `--resolve`). Without a usable system configuration the
    /// platform resolver (getaddrinfo) is used instead.
    pub fn system(hosts: HashMap<String, Vec<IpAddr>>) -> Self {
        let resolver = TokioResolver::builder_tokio()
            .and_then(|b| b.build())
            .ok()
            .map(Arc::new);
        Dns {
            resolver,
            hosts: Arc::new(hosts),
        }
    }

    async fn lookup(&self, host: &str) -> Result<Vec<IpAddr>, String> {
        let name = host.trim_end_matches('.').to_ascii_lowercase();
        if let Some(ips) = self.hosts.get(&name) {
            return Ok(ips.clone());
        }
        if name == "localhost" || name.ends_with(".localhost") {
            return Ok(vec![
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::LOCALHOST),
            ]);
        }
        if name == "invalid" || name.ends_with(".invalid") {
            return Err(format!(
                "{name} does not exist (NXDOMAIN: .invalid never resolves)"
            ));
        }
        let ips: Vec<IpAddr> = match &self.resolver {
            Some(r) => r
                .lookup_ip(name.as_str())
                .await
                .map_err(|e| format!("cannot resolve {name}: {e}"))?
                .iter()
                .collect(),
            None => tokio::net::lookup_host((name.as_str(), 0))
                .await
                .map_err(|e| format!("cannot resolve {name}: {e}"))?
                .map(|sa| sa.ip())
                .collect(),
        };
        if ips.is_empty() {
            return Err(format!("{name} has no A or AAAA records"));
        }
        Ok(ips)
    }
}

/// reqwest's resolver hook: timed lookup, then the address policy.
#[derive(Clone)]
struct PolicyResolver {
    dns: Dns,
    policy: Arc<AddressPolicy>,
    recorder: Arc<Recorder>,
}

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let this = self.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            this.recorder.dns_started();
            let found = this.dns.lookup(&host).await;
            this.recorder.dns_finished();
            let ips = found.map_err(|e| {
                this.recorder.with(|s| s.dns_error = Some(e.clone()));
                Box::new(HookError::Dns(e)) as Box<dyn std::error::Error + Send + Sync>
            })?;
            let mut refused = None;
            let allowed: Vec<SocketAddr> = ips
                .into_iter()
                .filter(|ip| match this.policy.check(*ip) {
                    Ok(()) => true,
                    Err(b) => {
                        refused.get_or_insert(b);
                        false
                    }
                })
                .map(|ip| SocketAddr::new(ip, 0))
                .collect();
            if allowed.is_empty() {
                let blocked = refused.unwrap_or(BlockedAddress {
                    ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                    range: "unknown",
                });
                this.recorder.with(|s| s.blocked = Some(blocked));
                return Err(Box::new(HookError::Blocked(blocked)) as _);
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Times reqwest's connector (DNS + TCP + TLS) without naming its sealed types.
#[derive(Clone)]
struct ConnTimingLayer(Arc<Recorder>);

impl<S> tower_layer::Layer<S> for ConnTimingLayer {
    type Service = ConnTiming<S>;
    fn layer(&self, inner: S) -> Self::Service {
        ConnTiming {
            inner,
            recorder: self.0.clone(),
        }
    }
}

#[derive(Clone)]
struct ConnTiming<S> {
    inner: S,
    recorder: Arc<Recorder>,
}

impl<S, Req> tower_service::Service<Req> for ConnTiming<S>
where
    S: tower_service::Service<Req>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        self.recorder.conn_started();
        let fut = self.inner.call(req);
        let recorder = self.recorder.clone();
        Box::pin(async move {
            let result = fut.await;
            recorder.conn_finished();
            result
        })
    }
}

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
        })
    }

    pub(crate) fn sends_credentials(&self) -> bool {
        !self.credentials.is_empty()
    }

    /// Send one request. Redirects are followed (GET/DELETE always, POST only with 307/308
    /// when configured), each hop checked against the policy; an unfollowed 3xx is returned.
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
            let follow = method != Method::POST
                || (self.follow_post_redirects
                    && matches!(
                        status,
                        StatusCode::TEMPORARY_REDIRECT | StatusCode::PERMANENT_REDIRECT
                    ));
            let next = resp
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|loc| url.join(loc).ok());
            match next {
                Some(next) if follow => url = next,
                _ => return Ok((resp, url)),
            }
        }
        Err(Failure::new(
            FailureKind::HttpStatus,
            phase,
            format!("more than {MAX_REDIRECTS} redirects"),
        ))
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
        let (tls_error, tls_started, conn_open) = self.recorder.with(|s| {
            (
                s.tls_error.clone(),
                s.current.tls_start.is_some(),
                s.current.end.is_none(),
            )
        });
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

    #[tokio::test]
    async fn special_names_resolve_without_the_network() {
        let dns = Dns::system(HashMap::from([(
            "api.test".to_string(),
            vec![IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))],
        )]));
        assert_eq!(
            dns.lookup("API.test.").await.unwrap(),
            vec![IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))]
        );
        assert!(
            dns.lookup("localhost")
                .await
                .unwrap()
                .contains(&IpAddr::V4(Ipv4Addr::LOCALHOST))
        );
        let err = dns.lookup("nope.invalid").await.unwrap_err();
        assert!(err.contains("NXDOMAIN"), "{err}");
    }
}
