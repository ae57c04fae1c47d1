//! A registered server as a prober needs it: its sealed URL, probe headers and OAuth identity
//! opened, in memory only. The local scheduler's jobs (`cluster`, "check now") and the agents'
//! config entries are built from this one shape.

use crate::agent::protocol::AgentServer;
use crate::scheduler::Job;
use crate::secrets::Sealer;
use crate::store::ServerRecord;

/// Why a server's credentials could not be opened (a changed secret key, a corrupt row).
#[derive(Debug, thiserror::Error)]
#[error("server {slug}: cannot open its sealed {what}: {reason}")]
pub struct TargetError {
    pub slug: String,
    /// `URL`, `headers` or `OAuth credentials`.
    pub what: &'static str,
    pub reason: String,
}

/// The server with its credentials opened.
pub fn agent_server(s: &ServerRecord, sealer: &Sealer) -> Result<AgentServer, TargetError> {
    let fail = |what: &'static str| {
        move |e: String| TargetError {
            slug: s.slug.clone(),
            what,
            reason: e,
        }
    };
    let headers = match &s.headers_enc {
        Some(sealed) => {
            let plain = sealer
                .open(sealed)
                .map_err(|e| fail("headers")(e.to_string()))?;
            serde_json::from_slice(&plain).map_err(|e| fail("headers")(e.to_string()))?
        }
        None => Vec::new(),
    };
    let oauth = match &s.oauth_enc {
        Some(sealed) => {
            let plain = sealer
                .open(sealed)
                .map_err(|e| fail("OAuth credentials")(e.to_string()))?;
            Some(
                serde_json::from_slice(&plain)
                    .map_err(|e| fail("OAuth credentials")(e.to_string()))?,
            )
        }
        None => None,
    };
    Ok(AgentServer {
        id: s.id.clone(),
        slug: s.slug.clone(),
        url: probe_url(s, sealer).map_err(fail("URL"))?,
        headers,
        interval_seconds: s.interval_seconds,
        timeout_seconds: s.timeout_seconds,
        degraded_latency_ms: s.degraded_latency_ms,
        era_hint: s.era_hint.clone(),
        oauth,
        calls: s.call_plan(),
        list_contract: s.list_contract,
    })
}

/// The scheduler's job for a server.
pub fn job_for(s: &ServerRecord, sealer: &Sealer) -> Result<Job, TargetError> {
    agent_server(s, sealer)?
        .job()
        .map_err(|reason| TargetError {
            slug: s.slug.clone(),
            what: "URL",
            reason,
        })
}

/// The URL a probe must use: the sealed whole URL when there is one.
fn probe_url(s: &ServerRecord, sealer: &Sealer) -> Result<String, String> {
    match &s.url_enc {
        None => Ok(s.url.clone()),
        Some(sealed) => {
            let plain = sealer.open(sealed).map_err(|e| e.to_string())?;
            String::from_utf8(plain).map_err(|e| e.to_string())
        }
    }
}
