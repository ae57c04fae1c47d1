//! What a regional agent and the central say to each other (JSON over HTTPS, the agent's
//! bearer key deciding its region):
//!
//! - `GET /api/v1/agent/config?wait=25&instance=ID` with `If-None-Match`: the servers this
//!   agent probes, with their probe credentials, and an `ETag`; `304` when unchanged (after
//!   waiting up to `wait` seconds for a change, so a change reaches every region within a
//!   second or two). `instance` names this run of the agent: the region's servers are shared
//!   among its live instances by rendezvous hashing over the same buckets as the central's
//!   replicas, so several agents can serve one region; an instance that stops polling drops
//!   out `wait` + 20 s later and its servers go to the others.
//! - `POST /api/v1/agent/results`: a batch of results, each with a unique id; the central
//!   ingests each id once and answers only after the batch is committed.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::probe::oauth::ClientCredentials;
use crate::probe::{Era, EraChoice, ProbeReport, ProbeTarget};
use crate::scheduler::Job;

/// Longest `wait` the central honours for a long poll.
pub const MAX_WAIT_SECONDS: u64 = 55;
/// Most results in one push.
pub const MAX_BATCH: usize = 500;

/// One server as an agent probes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AgentServer {
    pub id: String,
    pub slug: String,
    pub url: String,
    /// Probe credentials, `[name, value]` pairs: only ever sent to an authenticated agent.
    #[schema(value_type = Vec<Vec<String>>)]
    pub headers: Vec<(String, String)>,
    pub interval_seconds: u32,
    pub timeout_seconds: u32,
    pub degraded_latency_ms: Option<u64>,
    pub era_hint: Option<String>,
    /// The probe's OAuth client-credentials identity (with its secret): only ever sent to an
    /// authenticated agent, like the headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub oauth: Option<ClientCredentials>,
    /// The synthetic tool calls each probe makes (`{"calls": [...], "failure_is_down": …}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub calls: Option<crate::probe::CallPlan>,
    /// List resources, resource templates and prompts when the server advertises them.
    #[serde(default = "listing")]
    pub list_contract: bool,
}

fn listing() -> bool {
    true
}

impl AgentServer {
    /// The scheduler's job for this server, probed the same way `serve` probes it.
    pub fn job(&self) -> Result<Job, String> {
        Ok(self.job_probing(self.target()?))
    }

    /// The job for this server with `target` (this server's, perhaps with a header added).
    pub fn job_probing(&self, target: ProbeTarget) -> Job {
        Job::new(
            self.id.as_str().into(),
            &self.slug,
            target,
            Duration::from_secs(u64::from(self.interval_seconds)),
        )
    }

    /// How a probe of this server reaches it.
    pub fn target(&self) -> Result<ProbeTarget, String> {
        let url = url::Url::parse(&self.url).map_err(|e| format!("{}: {e}", self.slug))?;
        let mut target = ProbeTarget::new(url);
        target.headers = self.headers.clone();
        target.oauth = self.oauth.clone().map(Arc::new);
        target.calls = self.calls.clone().map(Arc::new);
        target.list_contract = self.list_contract;
        target.timeout = Duration::from_secs(u64::from(self.timeout_seconds));
        target.degraded_after = self.degraded_latency_ms.map(Duration::from_millis);
        target.era = match self.era_hint.as_deref().and_then(|e| e.parse::<Era>().ok()) {
            Some(e) => EraChoice::Prefer(e),
            None => EraChoice::Detect,
        };
        Ok(target)
    }
}

/// `GET /api/v1/agent/config`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AgentConfig {
    pub region: String,
    pub servers: Vec<AgentServer>,
}

/// One result as an agent pushes it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AgentResult {
    /// Made by the agent (UUID); the central stores each id once.
    pub id: String,
    pub server_id: String,
    /// Unix ms.
    pub started_at: i64,
    /// How late the probe started after its due time.
    pub lag_ms: u64,
    /// The agent's canaries were failing: the result says nothing about the server.
    pub vantage_unhealthy: bool,
    pub report: ProbeReport,
    /// The tool list as received (the report's JSON leaves it out): the central stores its
    /// snapshot and diffs it.
    #[schema(value_type = Vec<Object>)]
    pub tools: Vec<serde_json::Value>,
}

/// `POST /api/v1/agent/results`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AgentBatch {
    pub results: Vec<AgentResult>,
}

/// The central's answer to a push.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PushReply {
    /// New results, ingested and committed.
    pub accepted: usize,
    /// Ids already stored (a re-sent batch): skipped.
    pub duplicates: usize,
    /// Results for servers that no longer exist: dropped.
    pub unknown_servers: usize,
}
