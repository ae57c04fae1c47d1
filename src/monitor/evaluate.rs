//! The transition function: one probe result in, new region and server state and events out.
//!
//! Per region, `failures_to_down` consecutive failures make it down and `successes_to_up`
//! successes make it up again. Per server, at least `quorum` regions down is down; fewer
//! leaves it up, with a `region.down` warning. `auth_required` without a configured credential is
//! alive (up, flagged protected); with one it is `auth_failed`. Drift and version changes are
//! judged on every successful result.

use std::sync::Arc;

use serde_json::{Value, json};

use super::state::{Event, EventKind, RegionState, RegionStatus, ServerState, ServerStatus};
use crate::probe::Verdict;
use crate::schema;

/// The server's monitoring settings that the state machine needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub failures_to_down: u32,
    pub successes_to_up: u32,
    /// A probe credential is configured: a 401/403 means it failed.
    pub has_credentials: bool,
    /// The server is meant to answer 401 (monitored unauthenticated on purpose).
    pub expect_auth: bool,
    /// Regions down needed for the server to be down; `None`: a majority of its regions.
    pub quorum: Option<u32>,
}

/// One result, reduced to what the state machine judges.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub region: Arc<str>,
    pub at: i64,
    pub verdict: Verdict,
    /// `{kind, phase, message}` of a down result.
    pub failure: Option<Value>,
    pub schema_hash: Option<Arc<str>>,
    pub server_version: Option<Arc<str>>,
    pub protocol_version: Option<Arc<str>>,
    /// The tool list of this result (for the diff when the hash moves).
    pub tools: Vec<Value>,
}

/// Incident bookkeeping the caller applies in the same transaction.
#[derive(Debug, Clone, PartialEq)]
pub enum IncidentChange {
    Open {
        id: String,
        kind: ServerStatus,
        cause: String,
    },
    Close {
        id: String,
    },
}

/// Everything one result changes.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub region: RegionState,
    pub server: ServerState,
    pub events: Vec<Event>,
    pub incident: Option<IncidentChange>,
    /// A hash seen for the first time for this server: store its snapshot.
    pub new_snapshot: bool,
    /// The structural diff when the hash moved.
    pub diff: Option<schema::SchemaDiff>,
}

/// What a result means for the state machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Success,
    Failure,
    AuthFailed,
}

fn outcome(verdict: Verdict, policy: &Policy) -> Outcome {
    match verdict {
        Verdict::Up | Verdict::Degraded => Outcome::Success,
        Verdict::AuthRequired if policy.has_credentials => Outcome::AuthFailed,
        Verdict::AuthRequired => Outcome::Success,
        Verdict::Down => Outcome::Failure,
    }
}

/// Apply one observation.
///
/// - `regions`: every region's current state for this server (the observed one included or not).
/// - `previous_tools`: the tool list of the server's current schema hash, for the diff.
/// - `new_incident_id`: an id to use if an incident opens (the caller makes ids; this stays pure).
pub fn evaluate(
    policy: &Policy,
    server: &ServerState,
    regions: &[RegionState],
    obs: &Observation,
    previous_tools: Option<&[Value]>,
    new_incident_id: &str,
) -> Evaluation {
    let result = outcome(obs.verdict, policy);
    let mut region = regions
        .iter()
        .find(|r| r.region == obs.region)
        .cloned()
        .unwrap_or_else(|| RegionState::new(obs.region.clone()));
    let previous_region_hash = region.last_schema_hash.clone();
    let before_region = region.status;
    step_region(&mut region, result, policy, obs);
    let tally = tally(policy, server, regions, &region, obs);
    let mut next = server.clone();
    next.last_result_at = Some(obs.at);
    let mut events = Vec::new();
    // What every event of this result carries, built only for an event: most results raise
    // none, and building it for each was a dozen allocations a probe.
    let base = || {
        json!({
            "region": obs.region,
            "verdict": obs.verdict.as_str(),
            "failure": obs.failure,
            "protected": obs.verdict == Verdict::AuthRequired && !policy.has_credentials,
            "expect_auth": policy.expect_auth,
            "auth_expected_but_not_required": tally.auth_lost,
        })
    };
    let with = |mut extra: Value| {
        if let (Some(e), Value::Object(b)) = (extra.as_object_mut(), base()) {
            for (k, v) in b {
                e.entry(k).or_insert(v);
            }
        }
        extra
    };
    let incident = transition(
        server,
        tally.status,
        obs,
        new_incident_id,
        &with,
        &mut next,
        &mut events,
    );
    if region.status == RegionStatus::Down
        && before_region != RegionStatus::Down
        && next.status != ServerStatus::Down
    {
        events.push(Event {
            kind: EventKind::RegionDown,
            at: obs.at,
            data: with(json!({"regions_down": tally.down, "quorum": tally.quorum})),
        });
    }
    let (new_snapshot, diff) = match (result, &obs.schema_hash) {
        (Outcome::Success, Some(hash)) => {
            let drift = Drift {
                hash,
                previous_region_hash: previous_region_hash.as_deref(),
                previous_tools,
            };
            drift.judge(server, obs, &with, &mut next, &mut events)
        }
        _ => (false, None),
    };
    // One copy of the hash a server: the region's is the server's when they name one list.
    if region.last_schema_hash.is_some() && region.last_schema_hash == next.schema_hash {
        region.last_schema_hash = next.schema_hash.clone();
    }
    Evaluation {
        region,
        server: next,
        events,
        incident,
        new_snapshot,
        diff,
    }
}

/// The observed region's counters and status after this result.
fn step_region(region: &mut RegionState, result: Outcome, policy: &Policy, obs: &Observation) {
    match result {
        Outcome::Success => {
            region.consecutive_successes += 1;
            region.consecutive_failures = 0;
            if region.status != RegionStatus::Up
                && region.consecutive_successes >= policy.successes_to_up.max(1)
            {
                region.status = RegionStatus::Up;
            }
        }
        Outcome::Failure | Outcome::AuthFailed => {
            region.consecutive_failures += 1;
            region.consecutive_successes = 0;
            if region.consecutive_failures >= policy.failures_to_down.max(1) {
                region.status = if result == Outcome::AuthFailed {
                    RegionStatus::AuthFailed
                } else {
                    RegionStatus::Down
                };
            }
        }
    }
    region.last_result_at = Some(obs.at);
    region.last_verdict = Some(obs.verdict);
    if obs.schema_hash.is_some() {
        region.last_schema_hash = obs.schema_hash.clone();
    }
}

/// The server's status across its regions, and the counts it was decided on.
struct Tally {
    status: ServerStatus,
    down: u32,
    quorum: u32,
    auth_lost: bool,
}

fn tally(
    policy: &Policy,
    server: &ServerState,
    regions: &[RegionState],
    region: &RegionState,
    obs: &Observation,
) -> Tally {
    // Every region's status, with this one updated.
    let mut all: Vec<&RegionState> = regions.iter().filter(|r| r.region != obs.region).collect();
    all.push(region);
    let n = all.len() as u32;
    // The caller may count regions that have not reported yet (they are expected), so the
    // quorum is not capped by the regions in this list.
    let quorum = policy.quorum.unwrap_or(n / 2 + 1).max(1);
    let down = all
        .iter()
        .filter(|r| r.status == RegionStatus::Down)
        .count() as u32;
    let auth = all
        .iter()
        .filter(|r| r.status == RegionStatus::AuthFailed)
        .count() as u32;
    let any_up = all.iter().any(|r| r.status == RegionStatus::Up);
    // A server meant to answer 401 that serves its tools to our unauthenticated probe has
    // lost its protection: that is worth a warning, not a green light.
    let auth_lost = policy.expect_auth
        && !policy.has_credentials
        && matches!(obs.verdict, Verdict::Up | Verdict::Degraded);
    let slow_or_warned =
        region.status == RegionStatus::Up && (obs.verdict == Verdict::Degraded || auth_lost);
    let status = if down >= quorum {
        ServerStatus::Down
    } else if auth >= quorum {
        ServerStatus::AuthFailed
    } else if slow_or_warned {
        // Regions failing below the quorum do not degrade the server: they raise region.down
        // and show as a warning, while the server stays up.
        ServerStatus::Degraded
    } else if any_up {
        ServerStatus::Up
    } else {
        server.status.clone_if_known()
    };

    Tally {
        status,
        down,
        quorum,
        auth_lost,
    }
}

/// A change of the server's status: its event and the incident it opens or closes.
fn transition(
    server: &ServerState,
    status: ServerStatus,
    obs: &Observation,
    new_incident_id: &str,
    with: &dyn Fn(Value) -> Value,
    next: &mut ServerState,
    events: &mut Vec<Event>,
) -> Option<IncidentChange> {
    let mut incident = None;
    if status != server.status {
        next.status = status;
        next.since = obs.at;
        let transition = json!({"from": server.status.as_str(), "to": status.as_str()});
        match status {
            ServerStatus::Down | ServerStatus::AuthFailed => {
                let id = match &server.open_incident_id {
                    Some(open) => open.to_string(),
                    None => {
                        let cause = cause_text(obs, status);
                        incident = Some(IncidentChange::Open {
                            id: new_incident_id.to_string(),
                            kind: status,
                            cause,
                        });
                        new_incident_id.to_string()
                    }
                };
                next.open_incident_id = Some(id.as_str().into());
                let kind = if status == ServerStatus::Down {
                    EventKind::ServerDown
                } else {
                    EventKind::ServerAuthFailed
                };
                let mut data = with(transition);
                data["incident_id"] = json!(id);
                events.push(Event {
                    kind,
                    at: obs.at,
                    data,
                });
            }
            ServerStatus::Up if server.status != ServerStatus::Unknown => {
                let mut data = with(transition);
                if let Some(id) = server.open_incident_id.as_deref() {
                    data["incident_id"] = json!(id);
                    incident = Some(IncidentChange::Close { id: id.into() });
                }
                next.open_incident_id = None;
                events.push(Event {
                    kind: EventKind::ServerUp,
                    at: obs.at,
                    data,
                });
            }
            ServerStatus::Degraded => {
                let mut data = with(transition);
                if let Some(id) = server.open_incident_id.as_deref() {
                    // Recovered from an outage into a partial state: the outage is over.
                    data["incident_id"] = json!(id);
                    incident = Some(IncidentChange::Close { id: id.into() });
                    next.open_incident_id = None;
                }
                events.push(Event {
                    kind: EventKind::ServerDegraded,
                    at: obs.at,
                    data,
                });
            }
            _ => {}
        }
    }
    incident
}

/// A result's tool list against the one the server serves.
struct Drift<'a> {
    hash: &'a Arc<str>,
    /// What the observed region saw last (a region catching up is not a change).
    previous_region_hash: Option<&'a str>,
    previous_tools: Option<&'a [Value]>,
}

impl Drift<'_> {
    /// Records a new list or version in `next` and `events`; returns whether the list is new
    /// and, for a change, its diff.
    fn judge(
        &self,
        server: &ServerState,
        obs: &Observation,
        with: &dyn Fn(Value) -> Value,
        next: &mut ServerState,
        events: &mut Vec<Event>,
    ) -> (bool, Option<crate::schema::SchemaDiff>) {
        let hash = self.hash;
        let mut new_snapshot = false;
        let mut diff = None;
        {
            match &server.schema_hash {
                None => {
                    new_snapshot = true;
                    next.schema_hash = Some(hash.clone());
                }
                Some(current) if current != hash && self.previous_region_hash != Some(&**hash) => {
                    new_snapshot = true;
                    let d = schema::diff(self.previous_tools.unwrap_or(&[]), &obs.tools);
                    events.push(Event {
                    kind: EventKind::SchemaChanged,
                    at: obs.at,
                    data: with(json!({
                        "from": current, "to": hash, "breaking": d.breaking, "security": d.security,
                        "summary": d.summary(), "diff": d,
                    })),
                });
                    next.schema_hash = Some(hash.clone());
                    diff = Some(d);
                }
                _ => {}
            }
            for (field, seen, known) in [
                (
                    "server_version",
                    &obs.server_version,
                    &mut next.server_version,
                ),
                (
                    "protocol_version",
                    &obs.protocol_version,
                    &mut next.protocol_version,
                ),
            ] {
                if let Some(seen) = seen {
                    if known.as_ref() == Some(seen) {
                        continue;
                    }
                    if let Some(old) = known.as_ref() {
                        events.push(Event {
                            kind: EventKind::VersionChanged,
                            at: obs.at,
                            data: with(json!({"field": field, "from": old, "to": seen})),
                        });
                    }
                    *known = Some(seen.clone());
                }
            }
        }
        (new_snapshot, diff)
    }
}

impl ServerStatus {
    /// A status with no region up and none down stays what it was (but never `paused`).
    fn clone_if_known(self) -> ServerStatus {
        if self == ServerStatus::Paused {
            ServerStatus::Unknown
        } else {
            self
        }
    }
}

/// The incident cause in words: "timeout in tools_list from local: …".
fn cause_text(obs: &Observation, status: ServerStatus) -> String {
    if status == ServerStatus::AuthFailed {
        return format!(
            "the probe credential was refused (401/403) from {}",
            obs.region
        );
    }
    match &obs.failure {
        Some(f) => format!(
            "{} in {} from {}: {}",
            f["kind"].as_str().unwrap_or("failure"),
            f["phase"].as_str().unwrap_or("?"),
            obs.region,
            f["message"].as_str().unwrap_or("")
        ),
        None => format!("{} from {}", obs.verdict, obs.region),
    }
}
