//! The monitor: a pure state machine. Results in; region state, server state, events and
//! incident changes out. No I/O: the ingest path loads a [`Monitor`] per server, calls
//! [`Monitor::observe`], and routes and writes everything it returns in one transaction.
//!
//! - `state.rs`: statuses, persisted state, events.
//! - `evaluate.rs`: the transition function (thresholds, quorum, auth, drift, versions).
//! - `flapping.rs`: when state changes come too often to be worth an alert each.
//! - `consistency.rs`: when regions disagree on the tool list for longer than an interval.
//! - `server.rs`: [`Monitor`], one server between results: the transition function plus
//!   flapping and consistency, every decision out as typed events.
//! - `availability.rs`: availability as time outside `down`/`auth_failed` (outside incidents).

pub mod availability;
mod consistency;
mod evaluate;
mod flapping;
mod server;
mod state;

pub use consistency::Consistency;
pub use evaluate::{Evaluation, IncidentChange, Observation, Policy, evaluate};
pub use flapping::{Flap, FlapDecision};
pub use server::{Decided, Monitor, Outcome, STALE_INTERVALS, SchemaMove};
pub use state::{Event, EventKind, RegionState, RegionStatus, ServerState, ServerStatus};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::Verdict;
    use serde_json::json;

    fn policy() -> Policy {
        Policy {
            failures_to_down: 2,
            successes_to_up: 1,
            has_credentials: false,
            expect_auth: false,
            quorum: None,
        }
    }

    fn obs(region: &str, at: i64, verdict: Verdict, hash: Option<&str>) -> Observation {
        Observation {
            region: region.into(),
            at,
            verdict,
            failure: (verdict == Verdict::Down)
                .then(|| json!({"kind": "timeout", "phase": "tools_list", "message": "no answer"})),
            schema_hash: hash.map(std::sync::Arc::from),
            server_version: Some("1.0.0".into()),
            protocol_version: Some("2026-07-28".into()),
            tools: vec![json!({"name": "a", "inputSchema": {}})],
        }
    }

    /// Feed observations in order, carrying state, and collect all events.
    fn run(
        policy: &Policy,
        seq: &[Observation],
    ) -> (
        ServerState,
        Vec<RegionState>,
        Vec<Event>,
        Vec<IncidentChange>,
    ) {
        let mut server = ServerState::new(0);
        let mut regions: Vec<RegionState> = Vec::new();
        let mut events = Vec::new();
        let mut incidents = Vec::new();
        for (i, o) in seq.iter().enumerate() {
            let e = evaluate(policy, &server, &regions, o, None, &format!("inc-{i}"));
            server = e.server;
            regions.retain(|r| r.region != o.region);
            regions.push(e.region);
            events.extend(e.events);
            incidents.extend(e.incident);
        }
        (server, regions, events, incidents)
    }

    fn kinds(events: &[Event]) -> Vec<EventKind> {
        events.iter().map(|e| e.kind).collect()
    }

    #[test]
    fn failures_to_down_then_successes_to_up_with_one_incident() {
        let h = Some("sha256:a");
        let seq = [
            obs("local", 1, Verdict::Up, h),
            obs("local", 2, Verdict::Down, None),
            obs("local", 3, Verdict::Down, None),
            obs("local", 4, Verdict::Down, None),
            obs("local", 5, Verdict::Up, h),
        ];
        let (server, _, events, incidents) = run(&policy(), &seq[..2]);
        assert_eq!(
            server.status,
            ServerStatus::Up,
            "one failure is below the threshold"
        );
        assert!(events.is_empty() && incidents.is_empty());
        let (server, _, events, incidents) = run(&policy(), &seq[..3]);
        assert_eq!(server.status, ServerStatus::Down);
        assert_eq!(kinds(&events), vec![EventKind::ServerDown]);
        assert_eq!(events[0].data["incident_id"], "inc-2");
        assert!(
            matches!(&incidents[0], IncidentChange::Open { id, cause, .. } if id == "inc-2" && cause.starts_with("timeout in tools_list from local"))
        );
        let (server, _, events, incidents) = run(&policy(), &seq);
        assert_eq!(server.status, ServerStatus::Up);
        assert_eq!(
            kinds(&events),
            vec![EventKind::ServerDown, EventKind::ServerUp]
        );
        assert_eq!(incidents.len(), 2, "one open, one close: {incidents:?}");
        assert_eq!(incidents[1], IncidentChange::Close { id: "inc-2".into() });
        assert_eq!(server.open_incident_id, None);
    }

    #[test]
    fn first_up_is_silent_and_successes_to_up_is_respected() {
        let p = Policy {
            successes_to_up: 2,
            failures_to_down: 1,
            ..policy()
        };
        let seq = [
            obs("local", 1, Verdict::Down, None),
            obs("local", 2, Verdict::Up, None),
            obs("local", 3, Verdict::Up, None),
        ];
        let (s, _, _, _) = run(&p, &seq[..2]);
        assert_eq!(s.status, ServerStatus::Down, "one success of two needed");
        let (s, _, ev, _) = run(&p, &seq);
        assert_eq!(s.status, ServerStatus::Up);
        assert_eq!(kinds(&ev), vec![EventKind::ServerDown, EventKind::ServerUp]);
        let (s, _, ev, _) = run(&policy(), &[obs("local", 1, Verdict::Up, None)]);
        assert_eq!(s.status, ServerStatus::Up);
        assert!(ev.is_empty(), "unknown → up raises nothing");
    }

    #[test]
    fn quorum_decides_between_down_and_a_regional_warning() {
        let p = Policy {
            failures_to_down: 1,
            ..policy()
        };
        let up = |r: &str, t| obs(r, t, Verdict::Up, None);
        let down = |r: &str, t| obs(r, t, Verdict::Down, None);
        // Three regions, one down: still up, with region.down; two down: down.
        let seq = [up("a", 1), up("b", 1), up("c", 1), down("a", 2)];
        let (s, _, ev, _) = run(&p, &seq);
        assert_eq!(s.status, ServerStatus::Up);
        assert_eq!(kinds(&ev), vec![EventKind::RegionDown]);
        let seq = [
            up("a", 1),
            up("b", 1),
            up("c", 1),
            down("a", 2),
            down("b", 2),
        ];
        let (s, _, ev, _) = run(&p, &seq);
        assert_eq!(s.status, ServerStatus::Down);
        assert_eq!(*kinds(&ev).last().unwrap(), EventKind::ServerDown);
        // A quorum override of 1 makes one region enough.
        let p1 = Policy {
            quorum: Some(1),
            ..p
        };
        let (s, _, _, _) = run(&p1, &[up("a", 1), up("b", 1), down("a", 2)]);
        assert_eq!(s.status, ServerStatus::Down);
    }

    #[test]
    fn auth_required_is_alive_without_credentials_and_auth_failed_with_them() {
        let (s, _, ev, _) = run(&policy(), &[obs("local", 1, Verdict::AuthRequired, None)]);
        assert_eq!(s.status, ServerStatus::Up);
        assert!(ev.is_empty());
        let p = Policy {
            has_credentials: true,
            ..policy()
        };
        let seq = [
            obs("local", 1, Verdict::Up, None),
            obs("local", 2, Verdict::AuthRequired, None),
            obs("local", 3, Verdict::AuthRequired, None),
        ];
        let (s, _, ev, inc) = run(&p, &seq);
        assert_eq!(s.status, ServerStatus::AuthFailed);
        assert_eq!(kinds(&ev), vec![EventKind::ServerAuthFailed]);
        assert!(matches!(
            &inc[0],
            IncidentChange::Open {
                kind: ServerStatus::AuthFailed,
                ..
            }
        ));
    }

    #[test]
    fn expect_auth_server_answering_without_auth_is_degraded() {
        let p = Policy {
            expect_auth: true,
            ..policy()
        };
        let (s, _, _, _) = run(&p, &[obs("local", 1, Verdict::AuthRequired, None)]);
        assert_eq!(s.status, ServerStatus::Up, "401 is what it should answer");
        let (s, _, ev, _) = run(
            &p,
            &[
                obs("local", 1, Verdict::AuthRequired, None),
                obs("local", 2, Verdict::Up, None),
            ],
        );
        assert_eq!(
            s.status,
            ServerStatus::Degraded,
            "tools served without auth"
        );
        assert_eq!(ev[0].data["auth_expected_but_not_required"], true);
    }

    #[test]
    fn slow_probe_makes_the_server_degraded() {
        let seq = [
            obs("local", 1, Verdict::Up, None),
            obs("local", 2, Verdict::Degraded, None),
        ];
        let (s, _, ev, _) = run(&policy(), &seq);
        assert_eq!(s.status, ServerStatus::Degraded);
        assert_eq!(kinds(&ev), vec![EventKind::ServerDegraded]);
    }

    #[test]
    fn schema_change_emits_diff_and_version_change_is_reported() {
        let mut first = obs("local", 1, Verdict::Up, Some("sha256:a"));
        first.tools = vec![
            json!({"name": "a", "inputSchema": {}}),
            json!({"name": "b", "inputSchema": {}}),
        ];
        let server = ServerState::new(0);
        let e1 = evaluate(&policy(), &server, &[], &first, None, "i");
        assert!(
            e1.new_snapshot && e1.events.is_empty(),
            "first hash: snapshot, no event"
        );
        let mut second = obs("local", 2, Verdict::Up, Some("sha256:b"));
        second.server_version = Some("1.1.0".into());
        let e2 = evaluate(
            &policy(),
            &e1.server,
            std::slice::from_ref(&e1.region),
            &second,
            Some(&first.tools),
            "i",
        );
        assert!(e2.new_snapshot);
        assert_eq!(
            kinds(&e2.events),
            vec![EventKind::SchemaChanged, EventKind::VersionChanged]
        );
        let changed = &e2.events[0].data;
        assert_eq!(changed["breaking"], true);
        assert_eq!(changed["diff"]["removed"], json!(["b"]));
        assert_eq!(changed["from"], "sha256:a");
        assert_eq!(e2.events[1].data["to"], "1.1.0");
        assert_eq!(e2.server.schema_hash.as_deref(), Some("sha256:b"));
    }

    #[test]
    fn regions_seeing_different_hashes_leave_the_timing_to_consistency() {
        let a = obs("a", 1, Verdict::Up, Some("sha256:x"));
        let e1 = evaluate(&policy(), &ServerState::new(0), &[], &a, None, "i");
        let b = obs("b", 1, Verdict::Up, Some("sha256:y"));
        let e2 = evaluate(
            &policy(),
            &e1.server,
            std::slice::from_ref(&e1.region),
            &b,
            Some(&a.tools),
            "i",
        );
        assert!(
            !kinds(&e2.events).contains(&EventKind::SchemaInconsistent),
            "not at once: see consistency.rs ({:?})",
            kinds(&e2.events)
        );
        assert_eq!(e2.region.last_schema_hash.as_deref(), Some("sha256:y"));
    }

    #[test]
    fn a_region_seeing_the_served_list_shares_its_hash_with_the_server() {
        // As loaded from the database: two copies of one hash.
        let mut state = ServerState::new(0);
        state.schema_hash = Some("sha256:x".into());
        let mut region = crate::monitor::RegionState::new("a".into());
        region.last_schema_hash = Some("sha256:x".into());
        let e = evaluate(
            &policy(),
            &state,
            &[region],
            &obs("a", 1, Verdict::Up, Some("sha256:x")),
            None,
            "i",
        );
        let (server, region) = (e.server.schema_hash, e.region.last_schema_hash);
        assert!(
            std::sync::Arc::ptr_eq(server.as_ref().unwrap(), region.as_ref().unwrap()),
            "one copy a server"
        );
    }
}
