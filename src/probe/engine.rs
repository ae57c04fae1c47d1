//! The probe engine: era detection, the total deadline, session cleanup and the verdict.
//!
//! [`Prober`] is built once (root store, resolver, address policy) and probes any number of
//! [`ProbeTarget`]s concurrently; each probe gets its own HTTP client and fresh connections.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::pki_types::CertificateDer;
use url::Url;

use super::calls::{CallPlan, Checked, run_calls};
use super::contract::{ListedKind, list_contract};
use super::dns::Dns;
use super::era::Era;
use super::exchange::{Progress, Run, Stop};
use super::net::{Http, NetParts, redact_url, round_ms};
use super::oauth::{ClientCredentials, TokenCache};
use super::policy::AddressPolicy;
use super::recorder::ConnTimings;
use super::report::{
    AuthChallenge, Failure, FailureKind, Phase, ProbeReport, ServerInfo, Timings, TlsCertInfo,
    Verdict,
};
use super::tls::{TlsBase, TlsSetupError};
use super::tools::list_tools;
use super::{http_sse, stateless, streamable};
use crate::schema;

/// Default total deadline of one probe.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default cap on one response body (decoded bytes; a whole SSE stream counts).
pub const DEFAULT_BODY_CAP: usize = 4 * 1024 * 1024;
/// Default cap on `tools/list` pages.
pub const DEFAULT_MAX_PAGES: u32 = 100;
/// Extra time after the deadline to close an open session, so a timeout leaks nothing.
const SESSION_CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Which eras to try.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EraChoice {
    /// 2026-07-28, then Streamable HTTP, then HTTP+SSE, per the spec's fallback rules.
    #[default]
    Detect,
    /// Only this era; a server that does not speak it is down.
    Force(Era),
    /// This era first (a server's last known era), then the others.
    Prefer(Era),
}

/// One MCP endpoint to probe and how.
#[derive(Clone)]
pub struct ProbeTarget {
    pub url: Url,
    /// Extra request headers (probe credentials such as `Authorization`); values are secret.
    pub headers: Vec<(String, String)>,
    pub timeout: Duration,
    pub era: EraChoice,
    /// Above this total duration a correct probe is `degraded`.
    pub degraded_after: Option<Duration>,
    pub body_cap: usize,
    pub max_pages: u32,
    /// Follow 307/308 redirects on POST (each hop still checked by the address policy).
    pub follow_post_redirects: bool,
    /// An OAuth client-credentials identity: the probe gets and sends its own access token.
    pub oauth: Option<Arc<ClientCredentials>>,
    /// Synthetic tool calls to make after `tools/list` (`calls.rs`); one pointer, since the
    /// scheduler holds a target per server and most have none.
    pub calls: Option<Arc<CallPlan>>,
    /// List resources, resource templates and prompts when the server advertises them
    /// (`contract.rs`): the CLI does by default; the daemon does not yet keep them.
    pub list_contract: bool,
}

impl std::fmt::Debug for ProbeTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let header_names: Vec<&str> = self.headers.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("ProbeTarget")
            .field("url", &redact_url(&self.url))
            .field("headers", &header_names)
            .field("timeout", &self.timeout)
            .field("era", &self.era)
            .finish_non_exhaustive()
    }
}

impl ProbeTarget {
    pub fn new(url: Url) -> Self {
        ProbeTarget {
            url,
            headers: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            era: EraChoice::Detect,
            degraded_after: None,
            body_cap: DEFAULT_BODY_CAP,
            max_pages: DEFAULT_MAX_PAGES,
            follow_post_redirects: false,
            oauth: None,
            calls: None,
            list_contract: false,
        }
    }
}

/// Settings shared by every probe of a [`Prober`].
#[derive(Debug, Clone, Default)]
pub struct ProberConfig {
    pub policy: AddressPolicy,
    /// Extra trusted roots (a private CA), on top of Mozilla's.
    pub extra_roots: Vec<CertificateDer<'static>>,
    /// Static host overrides, like curl's `--resolve`.
    pub hosts: HashMap<String, Vec<IpAddr>>,
}

/// Builds and runs probes. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Prober {
    parts: NetParts,
    /// OAuth access tokens of client-credentials identities, until shortly before they expire.
    tokens: Arc<TokenCache>,
}

/// What the engine found when everything worked.
struct Found {
    era: Era,
    protocol_version: String,
    server_info: Option<ServerInfo>,
    tools: Vec<serde_json::Value>,
    pages: u32,
    contract: Vec<ListedKind>,
    checked: Checked,
}

impl Prober {
    pub fn new(config: ProberConfig) -> Result<Self, TlsSetupError> {
        Ok(Prober {
            parts: NetParts {
                dns: Dns::system(config.hosts),
                policy: Arc::new(config.policy),
                tls: TlsBase::new(&config.extra_roots)?,
            },
            tokens: Arc::default(),
        })
    }

    /// Probe one target. Never panics and never returns an error: every problem is a verdict.
    /// With an OAuth identity, its access token (held, or fetched now) goes with every
    /// request; a held token the server refuses is dropped and the probe tried once more with
    /// a fresh one, so a token revoked early is not reported as a refused credential.
    pub async fn probe(&self, target: &ProbeTarget) -> ProbeReport {
        let Some(creds) = target.oauth.clone() else {
            return self.probe_once(target).await;
        };
        let held = self.tokens.held(&creds, &target.url);
        let first = match &held {
            Some(token) => token.clone(),
            None => match self.fresh_token(target, &creds).await {
                Ok(token) => token,
                Err(report) => return *report,
            },
        };
        let report = self.probe_once(&with_bearer(target, &first)).await;
        if held.is_none() || report.verdict != Verdict::AuthRequired {
            return report;
        }
        self.tokens.forget(&creds, &target.url);
        match self.fresh_token(target, &creds).await {
            Ok(token) => self.probe_once(&with_bearer(target, &token)).await,
            Err(report) => *report,
        }
    }

    /// A new token for `target`, or the report of why there is none: `auth` in phase `token`,
    /// `auth_required` with the credential marked refused when the token endpoint refused the
    /// client (the state machine's `auth_failed`), `down` when it could not be reached.
    async fn fresh_token(
        &self,
        target: &ProbeTarget,
        creds: &ClientCredentials,
    ) -> Result<String, Box<ProbeReport>> {
        let started = Instant::now();
        let started_at = now_rfc3339();
        let fetched = match Http::new(&self.parts, &[], target.body_cap, false) {
            Ok(plain) => {
                let fetch = self.tokens.fetch(&plain, creds, &target.url);
                tokio::time::timeout(target.timeout, fetch)
                    .await
                    .unwrap_or_else(|_| {
                        Err(Failure::new(
                            FailureKind::Auth,
                            Phase::Token,
                            format!(
                                "the token endpoint did not answer within {:?}",
                                target.timeout
                            ),
                        ))
                    })
            }
            Err(f) => Err(f),
        };
        fetched.map_err(|f| {
            let refused = f.http_status.is_some_and(|s| (400..500).contains(&s));
            let mut report = down_report(target, f, started, started_at);
            if refused {
                report.verdict = Verdict::AuthRequired;
                report.auth = Some(AuthChallenge {
                    credentials_sent: true,
                    ..AuthChallenge::default()
                });
            }
            Box::new(report)
        })
    }

    async fn probe_once(&self, target: &ProbeTarget) -> ProbeReport {
        let started = Instant::now();
        let started_at = now_rfc3339();
        let progress = Arc::new(Mutex::new(Progress::default()));
        let http = match Http::new(
            &self.parts,
            &target.headers,
            target.body_cap,
            target.follow_post_redirects,
        ) {
            Ok(h) => Arc::new(h),
            Err(f) => return down_report(target, f, started, started_at),
        };
        let mut run = Run::new(http.clone(), progress.clone(), target.max_pages);
        let deadline = tokio::time::Instant::now() + target.timeout;
        run.calls = target.calls.clone();
        run.list_contract = target.list_contract;
        run.deadline = Some(deadline);
        let outcome = tokio::time::timeout_at(
            deadline,
            run_eras(&mut run, &target.url, target.era, target.timeout),
        )
        .await;
        close_open_session(&run, deadline).await;
        let total_ms = round_ms(started.elapsed().as_secs_f64() * 1000.0);
        let mut p = std::mem::take(&mut *progress.lock().unwrap_or_else(|e| e.into_inner()));
        let timings = phase_timings(&p, http.recorder.conn_timings(), total_ms);
        let tls = http.recorder.cert_not_after().map(|unix| TlsCertInfo {
            not_after: rfc3339(unix),
            not_after_unix: unix,
        });
        let mut report = ProbeReport::new(redact_url(&target.url), started_at);
        // The era is reported once the server confirmed it (a completed handshake).
        report.era = p.era.filter(|_| p.protocol_version.is_some());
        report.protocol_version = p.protocol_version.take();
        report.server_info = p.server_info.take();
        report.session = p.session_seen;
        report.pages = p.pages;
        report.timings_ms = timings;
        report.http = std::mem::take(&mut p.steps);
        report.tls = tls;
        report.warnings = std::mem::take(&mut p.warnings);
        report.notes = std::mem::take(&mut p.notes);
        report.trace_id = Some(http.trace().trace_id().to_string());
        match outcome {
            Err(_elapsed) => {
                let phase = http.recorder.in_flight_phase().or(p.phase);
                report.failure = Some(timeout_failure(phase, &p, target.timeout));
            }
            Ok(Err(Stop::Auth(challenge))) => settle_auth(&mut report, *challenge),
            Ok(Err(Stop::Failed(f) | Stop::NotThisEra(f))) => report.failure = Some(f),
            Ok(Ok(found)) => finish_up(&mut report, found, target),
        }
        scrub_credentials(&mut report, &target.headers, &target.url);
        replace_nul(&mut report);
        tracing::debug!(
            url = %report.url,
            verdict = %report.verdict,
            era = report.era.map(Era::as_str),
            failure = report.failure.as_ref().map(|f| f.kind.as_str()),
            phase = report.failure.as_ref().map(|f| f.phase.as_str()),
            duration_ms = report.timings_ms.total,
            "probe finished"
        );
        report
    }
}

/// End a session the handshake opened (DELETE), within what is left of the deadline but at
/// least [`SESSION_CLOSE_GRACE`]: a timed-out probe still says goodbye.
async fn close_open_session(run: &Run, deadline: tokio::time::Instant) {
    let open_session = run.with(|p| p.open_session.take());
    if let Some((session, version, url)) = open_session {
        let grace = deadline
            .saturating_duration_since(tokio::time::Instant::now())
            .max(SESSION_CLOSE_GRACE);
        let _ = tokio::time::timeout(
            grace,
            streamable::close_session(run, &session, &version, &url),
        )
        .await;
    }
}

/// Milliseconds per phase: the connection's own from the recorder, the MCP phases from the
/// progress spans.
fn phase_timings(p: &Progress, conn: ConnTimings, total_ms: f64) -> Timings {
    Timings {
        dns: conn.dns,
        connect: conn.connect,
        tls: conn.tls,
        // Only when HTTP was exchanged: a refused connection has no handshake to time.
        handshake: span_ms(p.handshake)
            .filter(|_| !p.steps.is_empty())
            .map(|h| round_ms((h - conn.total.unwrap_or(0.0)).max(0.0))),
        tools_list: span_ms(p.tools_list),
        total: total_ms,
    }
}

/// The deadline passed in `phase` (a connect when nothing started): say so, and what fell
/// back before.
fn timeout_failure(phase: Option<Phase>, p: &Progress, timeout: Duration) -> Failure {
    let phase = phase.unwrap_or(Phase::Connect);
    let mut message = format!(
        "no answer within {timeout:?} ({} did not finish)",
        phase.describe()
    );
    if !p.fallbacks.is_empty() {
        message = format!("{message}; before that, {}", p.fallbacks.join("; "));
    }
    Failure::new(FailureKind::Timeout, phase, message)
}

/// A server may reflect request headers in an error body, which then reaches a message through
/// the body snippet. Credential values never leave the probe: every server-influenced text in
/// the report is scrubbed of them.
/// The URL's userinfo and query values are credentials too (`?key=…`), and a server that
/// echoes the request line would otherwise put them on a public page.
fn scrub_credentials(report: &mut ProbeReport, headers: &[(String, String)], url: &Url) {
    let in_url = super::net::url_secrets(url);
    let mut secrets: Vec<&str> = in_url.iter().map(String::as_str).collect();
    for (_, value) in headers {
        secrets.push(value.as_str());
        // `Bearer abc` may come back as just `abc`.
        if let Some((_, token)) = value.split_once(' ') {
            secrets.push(token.trim());
        }
    }
    secrets.retain(|s| s.len() >= 4);
    // Longest first, so a secret that contains another is replaced whole.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    if secrets.is_empty() {
        return;
    }
    let scrub = |text: &mut String| {
        for secret in &secrets {
            if text.contains(secret) {
                *text = text.replace(secret, "***");
            }
        }
    };
    for_each_message(report, scrub);
}

/// Every text in the report that a server chose (names, versions, error messages, challenge
/// fields) loses its NUL characters: no store or log line can hold one (Postgres refuses it).
/// The tool list itself is hashed as received and stored as JSON, where NUL is an escape.
fn replace_nul(report: &mut ProbeReport) {
    let clean = |text: &mut String| {
        if text.contains('\0') {
            *text = text.replace('\0', "\u{FFFD}");
        }
    };
    for_each_message(report, clean);
    if let Some(info) = &mut report.server_info {
        clean(&mut info.name);
        clean(&mut info.version);
    }
    report.protocol_version.iter_mut().for_each(clean);
    report.tool_names.iter_mut().for_each(clean);
}

/// Every message of a report a server can put words into: the failure message, warnings,
/// notes and the auth challenge (names and versions are data, and are left as they are).
fn for_each_message(report: &mut ProbeReport, mut f: impl FnMut(&mut String)) {
    if let Some(failure) = &mut report.failure {
        f(&mut failure.message);
    }
    report.warnings.iter_mut().for_each(&mut f);
    report.notes.iter_mut().for_each(&mut f);
    if let Some(a) = &mut report.auth {
        [
            &mut a.scheme,
            &mut a.resource_metadata,
            &mut a.scope,
            &mut a.error,
        ]
        .into_iter()
        .flatten()
        .for_each(f);
    }
}

/// `target` with `Authorization: Bearer token` instead of any configured one.
fn with_bearer(target: &ProbeTarget, token: &str) -> ProbeTarget {
    let mut t = target.clone();
    t.headers
        .retain(|(k, _)| !k.eq_ignore_ascii_case("authorization"));
    t.headers
        .push(("Authorization".into(), format!("Bearer {token}")));
    t
}

/// A server that asks for credentials: alive and protected (`auth_required`), unless it
/// advertises OAuth and its discovery chain is broken: then no client can log in, a failure of
/// its own (`auth_discovery`, saying at which step and why).
fn settle_auth(report: &mut ProbeReport, challenge: AuthChallenge) {
    report.verdict = Verdict::AuthRequired;
    if let Some(d) = &challenge.discovery
        && d.status == super::discovery::DiscoveryStatus::Broken
    {
        report.verdict = Verdict::Down;
        report.failure = Some(Failure::new(
            FailureKind::AuthDiscovery,
            Phase::Handshake,
            d.explain(),
        ));
    }
    report.auth = Some(challenge);
}

/// Hash the tools and settle up / degraded.
fn finish_up(report: &mut ProbeReport, found: Found, target: &ProbeTarget) {
    report.era = Some(found.era);
    report.protocol_version = Some(found.protocol_version);
    report.server_info = found.server_info;
    report.pages = found.pages;
    match schema::identities(&found.tools) {
        Ok((schema_hash, interface_hash)) => {
            report.schema_hash = Some(schema_hash);
            report.interface_hash = Some(interface_hash);
        }
        Err(e) => {
            report.failure = Some(Failure::new(
                FailureKind::Protocol,
                Phase::ToolsList,
                e.to_string(),
            ));
            return;
        }
    }
    let mut names: Vec<String> = found
        .tools
        .iter()
        .filter_map(|t| t.get("name").and_then(|n| n.as_str()).map(String::from))
        .collect();
    names.sort();
    report.tools_count = found.tools.len();
    report.tool_names = names;
    report.tools = found.tools;
    let slow = target
        .degraded_after
        .is_some_and(|limit| report.timings_ms.total > limit.as_secs_f64() * 1000.0);
    if slow {
        report.warnings.push(format!(
            "probe took {:.0} ms, over the latency threshold of {} ms",
            report.timings_ms.total,
            target.degraded_after.map(|d| d.as_millis()).unwrap_or(0)
        ));
    }
    report.verdict = if report.warnings.is_empty() {
        Verdict::Up
    } else {
        Verdict::Degraded
    };
    report.contract = found.contract;
    report.calls = found.checked.calls;
    report.stream = found.checked.stream;
    let stream_failure = report.stream.as_ref().and_then(|s| s.failure.clone());
    if let Some(why) = stream_failure {
        // The server works but its streaming does not: degraded. A failed call (next) is the
        // report's failure instead, since it may make the server down.
        report.failure = Some(Failure::new(FailureKind::Streaming, Phase::ToolCall, why));
        report.verdict = Verdict::Degraded;
    }
    if let Some(failed) = report.calls.iter().find(|c| c.failure.is_some()) {
        report.failure = Some(Failure::new(
            FailureKind::ToolCall,
            Phase::ToolCall,
            format!(
                "{}: {}",
                failed.tool,
                failed.failure.as_deref().unwrap_or_default()
            ),
        ));
        report.verdict = if target.calls.as_ref().is_some_and(|p| p.failure_is_down) {
            Verdict::Down
        } else {
            Verdict::Degraded
        };
    }
}

/// The share of the probe's deadline that `server/discover` may use while detecting the era.
/// Some older servers never finish answering a method they do not know (an early TypeScript
/// SDK in stateless JSON mode sends no status line at all); the rest of the deadline is the
/// fallback's. 40 % of the default 10 s leaves 6 s for `initialize` and `tools/list`.
const DISCOVERY_SHARE: f64 = 0.4;

async fn run_eras(
    run: &mut Run,
    url: &Url,
    choice: EraChoice,
    timeout: Duration,
) -> Result<Found, Stop> {
    let order: Vec<Era> = match choice {
        EraChoice::Detect => Era::DETECTION_ORDER.to_vec(),
        EraChoice::Force(e) => vec![e],
        EraChoice::Prefer(e) => std::iter::once(e)
            .chain(Era::DETECTION_ORDER.into_iter().filter(|x| *x != e))
            .collect(),
    };
    let mut evidence: Vec<Failure> = Vec::new();
    for (i, era) in order.iter().copied().enumerate() {
        let last = i + 1 == order.len();
        run.with(|p| p.era = Some(era));
        // Only detection bounds discovery: a server known to speak 2026 gets the whole deadline.
        let budget = (choice == EraChoice::Detect && era == Era::Stateless && !last)
            .then(|| timeout.mul_f64(DISCOVERY_SHARE));
        match run_era(run, url, era, !last, budget).await {
            Ok(found) => return Ok(found),
            Err(Stop::NotThisEra(f)) if !last => {
                run.note(format!(
                    "{era} did not answer as such ({}); tried {} next",
                    f.message,
                    order[i + 1]
                ));
                run.with(|p| p.fallbacks.push(format!("{era}: {}", f.message)));
                evidence.push(f);
            }
            Err(Stop::NotThisEra(f)) => {
                evidence.push(f);
                run.with(|p| p.era = None);
                return Err(Stop::Failed(no_era_failure(evidence, &order)));
            }
            Err(Stop::Failed(f)) => return Err(Stop::Failed(with_fallbacks(run, f))),
            Err(other) => return Err(other),
        }
    }
    Err(Stop::Failed(no_era_failure(evidence, &order)))
}

/// `server/discover` used its share of the deadline without an answer.
fn discovery_timeout(run: &Run, budget: Duration) -> Failure {
    let phase = run
        .http
        .recorder
        .in_flight_phase()
        .unwrap_or(Phase::Handshake);
    Failure::new(
        FailureKind::Timeout,
        phase,
        format!(
            "server/discover: no answer within its {budget:?} share of the deadline ({} did not finish)",
            phase.describe()
        ),
    )
}

/// A failure of the era we fell back to, followed by what the earlier eras answered, so the
/// report says both what discovery did and what the fallback did.
fn with_fallbacks(run: &Run, mut f: Failure) -> Failure {
    let before = run.with(|p| p.fallbacks.clone());
    if !before.is_empty() {
        f.message = format!("{}; before that, {}", f.message, before.join("; "));
    }
    f
}

/// Every era said "not me": report the first era's evidence, and list them all.
fn no_era_failure(mut evidence: Vec<Failure>, order: &[Era]) -> Failure {
    let summary: Vec<String> = evidence
        .iter()
        .zip(order)
        .map(|(f, era)| format!("{era}: {}", f.message))
        .collect();
    let prefix = if order.len() == 1 {
        "server does not speak the forced era"
    } else {
        "no MCP era answered"
    };
    let mut first = if evidence.is_empty() {
        Failure::new(FailureKind::NotMcp, Phase::Handshake, "")
    } else {
        evidence.remove(0)
    };
    first.message = format!("{prefix}; {}", summary.join("; "));
    first
}

/// One era's handshake and tool list. `discovery_budget` bounds the 2026 handshake alone.
async fn run_era(
    run: &mut Run,
    url: &Url,
    era: Era,
    may_fall_back: bool,
    discovery_budget: Option<Duration>,
) -> Result<Found, Stop> {
    match era {
        Era::Stateless => {
            let (mut t, d) = match discovery_budget {
                Some(budget) => tokio::time::timeout(budget, stateless::handshake(run, url))
                    .await
                    .unwrap_or_else(|_| Err(Stop::NotThisEra(discovery_timeout(run, budget))))?,
                None => stateless::handshake(run, url).await?,
            };
            run.with(|p| {
                p.protocol_version = Some(d.protocol_version.clone());
                p.server_info = d.server_info.clone();
            });
            let list = list_tools(&mut t, run).await?;
            let contract = contract_of(&mut t, run, d.advertised).await;
            let checked = run_calls(&mut t, run, &list.tools).await;
            Ok(Found {
                era,
                contract,
                protocol_version: d.protocol_version,
                server_info: d.server_info,
                tools: list.tools,
                pages: list.pages,
                checked,
            })
        }
        Era::StreamableHttp => {
            let (mut t, init) = streamable::handshake(run, url, may_fall_back).await?;
            let list = list_tools(&mut t, run).await?;
            let contract = contract_of(&mut t, run, init.advertised).await;
            let checked = run_calls(&mut t, run, &list.tools).await;
            Ok(Found {
                era,
                contract,
                protocol_version: init.protocol_version,
                server_info: Some(init.server_info),
                tools: list.tools,
                pages: list.pages,
                checked,
            })
        }
        Era::HttpSse => {
            let (mut t, init) = http_sse::handshake(run, url).await?;
            let list = list_tools(&mut t, run).await?;
            let contract = contract_of(&mut t, run, init.advertised).await;
            let checked = run_calls(&mut t, run, &list.tools).await;
            Ok(Found {
                era,
                contract,
                protocol_version: init.protocol_version,
                server_info: Some(init.server_info),
                tools: list.tools,
                pages: list.pages,
                checked,
            })
        }
    }
}

/// The other lists, when the target asks for them.
async fn contract_of<T: super::tools::Transport>(
    t: &mut T,
    run: &mut Run,
    advertised: super::contract::Advertised,
) -> Vec<ListedKind> {
    if run.list_contract {
        list_contract(t, run, advertised).await
    } else {
        Vec::new()
    }
}

fn span_ms(span: Option<(Instant, Option<Instant>)>) -> Option<f64> {
    let (start, end) = span?;
    let end = end.unwrap_or_else(Instant::now);
    Some(round_ms(
        end.saturating_duration_since(start).as_secs_f64() * 1000.0,
    ))
}

fn down_report(
    target: &ProbeTarget,
    f: Failure,
    started: Instant,
    started_at: String,
) -> ProbeReport {
    let mut report = ProbeReport::new(redact_url(&target.url), started_at);
    report.failure = Some(f);
    report.timings_ms.total = round_ms(started.elapsed().as_secs_f64() * 1000.0);
    report
}

/// The current time, RFC 3339 UTC with milliseconds (log lines).
pub fn now_rfc3339_millis() -> String {
    let now = time::OffsetDateTime::now_utc();
    let now = now
        .replace_nanosecond(now.millisecond() as u32 * 1_000_000)
        .unwrap_or(now);
    now.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The current time, RFC 3339 UTC.
pub fn now_rfc3339() -> String {
    rfc3339(time::OffsetDateTime::now_utc().unix_timestamp())
}

fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}
