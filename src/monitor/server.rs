//! [`Monitor`]: one server as the monitor follows it from result to result. It owns the
//! persisted state (server and regions) and what only memory keeps (flapping, regions
//! disagreeing on the tool list), and turns one observation into every decision it causes,
//! as typed events. The ingest only loads a `Monitor`, routes its events and writes them.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::consistency::Consistency;
use super::evaluate::{IncidentChange, Observation, Policy, evaluate};
use super::flapping::{Flap, FlapDecision, WINDOW};
use super::state::{Event, EventKind, RegionState, ServerState, ServerStatus};

/// A region whose last result is older than this many intervals is not reporting: it neither
/// counts in the quorum nor in the tool-list comparison (an agent down, a region cut off).
pub const STALE_INTERVALS: i64 = 3;

/// One event the monitor decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Decided {
    pub event: Event,
    /// A state change held by flapping: recorded, no alert.
    pub held_by_flapping: bool,
}

/// A move of the served tool list, for the schema history.
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaMove {
    pub from: Option<String>,
    pub to: String,
    /// `breaking` / `compatible` / …, when there was a list before to compare with.
    pub class: Option<String>,
    /// One line of what changed.
    pub summary: Option<String>,
}

/// Everything one observation decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// In order: the state machine's events, `schema.inconsistent`, `server.settled`,
    /// `server.flapping`.
    pub events: Vec<Decided>,
    pub incident: Option<IncidentChange>,
    pub schema_move: Option<SchemaMove>,
    /// The observed region's new state and the server's, to store.
    pub region: RegionState,
    pub server: ServerState,
    /// The server's status before this observation.
    pub status_before: ServerStatus,
}

/// One server between results.
#[derive(Debug, Clone)]
pub struct Monitor {
    state: ServerState,
    /// A boxed slice: no spare room, and 8 bytes less than a vector in every cached server.
    regions: Box<[RegionState]>,
    /// Recent unrest, held only while there is some: most servers are calm, and an empty
    /// one for each of 100,000 servers cost about 100 bytes apiece.
    unrest: Option<Box<Unrest>>,
}

/// What only memory keeps of a server between results.
#[derive(Debug, Clone, Default, PartialEq)]
struct Unrest {
    /// Recent state changes (a restart forgets flapping, and alerts resume).
    flap: Flap,
    /// Regions disagreeing on the tool list.
    consistency: Consistency,
}

impl Unrest {
    /// Nothing left that a later result could need.
    fn is_calm(&self, now: i64) -> bool {
        self.flap.is_calm(now) && self.consistency == Consistency::default()
    }
}

impl Monitor {
    pub fn new(state: ServerState, regions: Vec<RegionState>) -> Self {
        Monitor {
            state,
            regions: regions.into_boxed_slice(),
            unrest: None,
        }
    }

    pub fn state(&self) -> &ServerState {
        &self.state
    }

    /// An operator paused or resumed the server at `at`.
    pub fn set_paused(&mut self, paused: bool, at: i64) {
        self.state.status = if paused {
            ServerStatus::Paused
        } else {
            ServerStatus::Unknown
        };
        self.state.since = at;
    }

    /// Whether `region` has already reported a result that started after `at`: a result that
    /// arrives out of order (a slow probe overtaken by a "check now", a late agent push, a
    /// spilled batch taken back after newer results) is a fact to store, not news. Deciding on
    /// it would move the state back and record the older tool list as a rollback that never
    /// happened, with a `schema.changed` alert for it.
    pub fn superseded(&self, region: &str, at: i64) -> bool {
        self.regions
            .iter()
            .any(|r| &*r.region == region && r.last_result_at.is_some_and(|t| t > at))
    }

    /// The regions whose word counts for a result of `region` at `at`: the region itself and
    /// every region heard from within [`STALE_INTERVALS`] intervals.
    pub fn reporting(&self, region: &str, at: i64, interval_ms: i64) -> Vec<RegionState> {
        let fresh_after = at - STALE_INTERVALS * interval_ms;
        self.regions
            .iter()
            .filter(|r| &*r.region == region || r.last_result_at.is_some_and(|t| t >= fresh_after))
            .cloned()
            .collect()
    }

    /// Apply one observation. `policy.quorum` must already be resolved against `reporting`
    /// (from [`Monitor::reporting`]); `previous_tools` is the list of the current schema hash.
    pub fn observe(
        &mut self,
        policy: &Policy,
        interval_ms: i64,
        reporting: &[RegionState],
        obs: &Observation,
        previous_tools: Option<&[Value]>,
        new_incident_id: &str,
    ) -> Outcome {
        let eval = evaluate(
            policy,
            &self.state,
            reporting,
            obs,
            previous_tools,
            new_incident_id,
        );
        let schema_move = (eval.new_snapshot)
            .then_some(())
            .and(eval.server.schema_hash.as_ref())
            .filter(|to| self.state.schema_hash.as_ref() != Some(*to))
            .map(|to| SchemaMove {
                from: self.state.schema_hash.as_deref().map(String::from),
                to: to.to_string(),
                class: eval.diff.as_ref().map(|d| d.class().to_string()),
                summary: eval.diff.as_ref().map(|d| d.summary()),
            });
        let mut events: Vec<Decided> = eval
            .events
            .into_iter()
            .map(|event| Decided {
                event,
                held_by_flapping: false,
            })
            .collect();
        if let Some(e) = self.inconsistency(&eval.region, obs, interval_ms) {
            events.push(e);
        }
        self.apply_flapping(&mut events, obs, eval.server.status);
        let status_before = self.state.status;
        // In place: at 100,000 servers a retain-and-push grew every vector to four regions'
        // room (400 bytes a server) for the one region most servers have.
        match self
            .regions
            .iter_mut()
            .find(|r| r.region == eval.region.region)
        {
            Some(r) => r.clone_from(&eval.region),
            None => {
                let mut regions = std::mem::take(&mut self.regions).into_vec();
                regions.reserve_exact(1);
                regions.push(eval.region.clone());
                self.regions = regions.into_boxed_slice();
            }
        }
        self.state = eval.server.clone();
        if self.unrest.as_ref().is_some_and(|u| u.is_calm(obs.at)) {
            self.unrest = None;
        }
        Outcome {
            events,
            incident: eval.incident,
            schema_move,
            region: eval.region,
            server: eval.server,
            status_before,
        }
    }

    /// `schema.inconsistent`: the reporting regions' latest hashes (the observed region's new
    /// one included) have disagreed for over an interval.
    fn inconsistency(
        &mut self,
        observed: &RegionState,
        obs: &Observation,
        interval_ms: i64,
    ) -> Option<Decided> {
        let fresh_after = obs.at - STALE_INTERVALS * interval_ms;
        let hashes: BTreeMap<std::sync::Arc<str>, std::sync::Arc<str>> = self
            .regions
            .iter()
            .filter(|r| r.region != observed.region)
            .chain(std::iter::once(observed))
            .filter(|r| r.last_result_at.is_some_and(|t| t >= fresh_after))
            .filter_map(|r| Some((r.region.clone(), r.last_schema_hash.clone()?)))
            .collect();
        let agree = hashes.values().all(|h| hashes.values().next() == Some(h));
        if agree && self.unrest.is_none() {
            return None; // the common case: nothing to follow, nothing to allocate
        }
        let unrest = self.unrest.get_or_insert_with(Default::default);
        let mut data = unrest.consistency.observe(&hashes, obs.at, interval_ms)?;
        data["region"] = json!(obs.region);
        Some(Decided {
            event: Event {
                kind: EventKind::SchemaInconsistent,
                at: obs.at,
                data,
            },
            held_by_flapping: false,
        })
    }

    /// Too many state changes in a row are held, with one `server.flapping` when it starts
    /// and one `server.settled` when it has been quiet long enough.
    fn apply_flapping(&mut self, events: &mut Vec<Decided>, obs: &Observation, now: ServerStatus) {
        let mut extra = Vec::new();
        let event = |kind, data| Decided {
            event: Event {
                kind,
                at: obs.at,
                data,
            },
            held_by_flapping: false,
        };
        if self.unrest.as_mut().is_some_and(|u| u.flap.settles(obs.at)) {
            extra.push(event(
                EventKind::ServerSettled,
                json!({"state": now.as_str(), "region": obs.region}),
            ));
        }
        for d in events.iter_mut().filter(|d| d.event.kind.is_state_change()) {
            let flap = &mut self.unrest.get_or_insert_with(Default::default).flap;
            match flap.on_change(d.event.at) {
                FlapDecision::Alert => {}
                FlapDecision::StartFlapping => {
                    d.held_by_flapping = true;
                    extra.push(event(
                        EventKind::ServerFlapping,
                        json!({"changes": flap.recent_changes(), "window_minutes": WINDOW / 60_000, "state": now.as_str(), "region": obs.region}),
                    ));
                }
                FlapDecision::Hold => d.held_by_flapping = true,
            }
        }
        events.extend(extra);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::Verdict;

    const MIN: i64 = 60_000;

    fn policy() -> Policy {
        Policy {
            failures_to_down: 1,
            successes_to_up: 1,
            has_credentials: false,
            expect_auth: false,
            quorum: Some(1),
        }
    }

    fn obs(region: &str, at: i64, verdict: Verdict, hash: &str) -> Observation {
        Observation {
            region: region.into(),
            at,
            verdict,
            failure: (verdict == Verdict::Down)
                .then(|| json!({"kind": "timeout", "phase": "tools_list", "message": "no answer"})),
            schema_hash: (verdict != Verdict::Down).then(|| std::sync::Arc::from(hash)),
            server_version: Some("1.0.0".into()),
            protocol_version: Some("2026-07-28".into()),
            tools: vec![json!({"name": hash, "inputSchema": {}})],
        }
    }

    fn step(m: &mut Monitor, o: &Observation) -> Outcome {
        let reporting = m.reporting(&o.region, o.at, MIN);
        m.observe(&policy(), MIN, &reporting, o, None, "inc")
    }

    fn kinds(o: &Outcome) -> Vec<(EventKind, bool)> {
        o.events
            .iter()
            .map(|d| (d.event.kind, d.held_by_flapping))
            .collect()
    }

    #[test]
    fn the_sixth_change_in_a_window_starts_flapping_and_quiet_settles_it() {
        let mut m = Monitor::new(ServerState::new(0), vec![]);
        step(&mut m, &obs("local", 0, Verdict::Up, "a"));
        let mut last = None;
        for i in 1..=6 {
            let verdict = if i % 2 == 1 {
                Verdict::Down
            } else {
                Verdict::Up
            };
            last = Some(step(&mut m, &obs("local", i * MIN, verdict, "a")));
        }
        let sixth = last.unwrap();
        assert_eq!(
            kinds(&sixth),
            vec![
                (EventKind::ServerUp, true),
                (EventKind::ServerFlapping, false)
            ]
        );
        let held = step(&mut m, &obs("local", 7 * MIN, Verdict::Down, "a"));
        assert_eq!(kinds(&held), vec![(EventKind::ServerDown, true)]);
        let settled = step(
            &mut m,
            &obs("local", 7 * MIN + 15 * MIN, Verdict::Down, "a"),
        );
        assert_eq!(kinds(&settled), vec![(EventKind::ServerSettled, false)]);
        assert_eq!(
            settled.event_data(EventKind::ServerSettled)["state"],
            "down"
        );
    }

    #[test]
    fn regions_disagreeing_for_over_an_interval_raise_one_inconsistency() {
        let mut m = Monitor::new(ServerState::new(0), vec![]);
        step(&mut m, &obs("eu", 0, Verdict::Up, "a"));
        step(&mut m, &obs("us", 0, Verdict::Up, "a"));
        let split = step(&mut m, &obs("us", MIN / 2, Verdict::Up, "b"));
        assert!(!kinds(&split).contains(&(EventKind::SchemaInconsistent, false)));
        let later = step(&mut m, &obs("us", 2 * MIN, Verdict::Up, "b"));
        assert!(kinds(&later).contains(&(EventKind::SchemaInconsistent, false)));
        assert_eq!(
            later.event_data(EventKind::SchemaInconsistent)["region"],
            "us"
        );
        let again = step(&mut m, &obs("us", 3 * MIN, Verdict::Up, "b"));
        assert!(!kinds(&again).contains(&(EventKind::SchemaInconsistent, false)));
    }

    #[test]
    fn unrest_is_held_only_while_a_later_result_could_need_it() {
        let mut m = Monitor::new(ServerState::new(0), vec![]);
        step(&mut m, &obs("local", 0, Verdict::Up, "a"));
        step(&mut m, &obs("local", MIN, Verdict::Down, "a"));
        assert!(m.unrest.is_some(), "a change the window counts");
        step(&mut m, &obs("local", 2 * MIN, Verdict::Up, "a"));
        step(&mut m, &obs("local", 20 * MIN, Verdict::Up, "a"));
        assert!(m.unrest.is_some(), "still within the 30-minute window");
        step(&mut m, &obs("local", 33 * MIN, Verdict::Up, "a"));
        assert!(m.unrest.is_none(), "calm: nothing kept");
        step(&mut m, &obs("eu", 34 * MIN, Verdict::Up, "b"));
        assert!(m.unrest.is_some(), "regions disagree: followed");
        step(&mut m, &obs("eu", 35 * MIN, Verdict::Up, "a"));
        assert!(m.unrest.is_none(), "they agree again");
        // Changes after a calm spell count from the first of them.
        let mut last = None;
        for i in 0..6 {
            let verdict = [Verdict::Down, Verdict::Up][i % 2];
            last = Some(step(
                &mut m,
                &obs("local", (40 + i as i64) * MIN, verdict, "a"),
            ));
        }
        assert!(kinds(&last.unwrap()).contains(&(EventKind::ServerFlapping, false)));
    }

    #[test]
    fn a_region_silent_for_three_intervals_stops_reporting() {
        let mut m = Monitor::new(ServerState::new(0), vec![]);
        step(&mut m, &obs("eu", 0, Verdict::Up, "a"));
        step(&mut m, &obs("us", 0, Verdict::Up, "a"));
        let names = |r: Vec<RegionState>| {
            r.into_iter()
                .map(|r| r.region.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(m.reporting("us", 3 * MIN, MIN)), vec!["eu", "us"]);
        assert_eq!(names(m.reporting("us", 3 * MIN + 1, MIN)), vec!["us"]);
    }

    #[test]
    fn a_move_of_the_served_list_is_recorded_with_where_it_came_from() {
        let mut m = Monitor::new(ServerState::new(0), vec![]);
        let first = step(&mut m, &obs("local", 0, Verdict::Up, "a"));
        let to_a = first.schema_move.unwrap();
        assert_eq!((to_a.from, to_a.to.as_str()), (None, "a"));
        assert!(
            step(&mut m, &obs("local", MIN, Verdict::Up, "a"))
                .schema_move
                .is_none()
        );
        let to_b = step(&mut m, &obs("local", 2 * MIN, Verdict::Up, "b"))
            .schema_move
            .unwrap();
        assert_eq!((to_b.from.as_deref(), to_b.to.as_str()), (Some("a"), "b"));
    }

    #[test]
    fn a_result_older_than_its_regions_last_is_superseded() {
        let mut m = Monitor::new(ServerState::new(0), vec![]);
        step(&mut m, &obs("eu", 2 * MIN, Verdict::Up, "b"));
        assert!(m.superseded("eu", MIN), "older than eu's last");
        assert!(!m.superseded("eu", 2 * MIN), "the same start is not older");
        assert!(!m.superseded("eu", 3 * MIN));
        assert!(
            !m.superseded("us", MIN),
            "another region's clock is its own"
        );
    }

    impl Outcome {
        fn event_data(&self, kind: EventKind) -> &Value {
            &self
                .events
                .iter()
                .find(|d| d.event.kind == kind)
                .unwrap()
                .event
                .data
        }
    }
}
