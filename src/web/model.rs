//! The status page's data: read from state, rollups and incidents (never raw results), shaped
//! once for the HTML, the badges and `/status.json`. Uptime is availability from incidents
//! (`monitor::availability`); raw probe success ratios are their own figure.

use std::collections::HashMap;

use crate::alert::maintenance::{covers, schedule_of};
use crate::monitor::RegionStatus;
use crate::monitor::availability::{Outage, availability};
use crate::probe::Verdict;
use crate::store::rollup::{DAY_MS, DailyRollup, HOUR_MS, HourlyRollup, day_start, hour_start};
use crate::store::{
    IncidentRecord, LastSeen, RegionView, SchemaChangeRecord, Scope, ServerRecord, ServerWithState,
    Store, StoreError, WindowRecord,
};

use super::history::HistoryCache;
use super::svg::{self, Bar};
use super::words::{self, StateLook};

pub const DAYS: i64 = 90;

/// One public server, with everything any view of it shows.
#[derive(Debug, Clone)]
pub struct Summary {
    pub server: ServerRecord,
    /// The state name (`up`, `down`, …, `maintenance` while a window is active).
    pub look: StateLook,
    /// The stored state, even during maintenance.
    pub state: String,
    pub since: Option<i64>,
    /// Plain words: "tools/list timed out from eu-west".
    pub reason: Option<String>,
    /// Regions failing while the server is still up by quorum.
    pub warning: Option<String>,
    pub failing_regions: Vec<String>,
    /// The active maintenance window's name and end.
    pub maintenance: Option<(String, i64)>,
    pub regions: Vec<RegionView>,
    /// The newest result of any region.
    pub last: Option<LastSeen>,
    /// The server's current tool-list hash.
    pub schema_hash: Option<String>,
    /// `DAYS` days ending today, oldest first.
    pub days: Vec<svg::Day>,
    /// Availability (time outside incidents; see `monitor::availability`).
    pub uptime_24h: Option<f64>,
    pub uptime_7d: Option<f64>,
    pub uptime_30d: Option<f64>,
    pub uptime_90d: Option<f64>,
    /// Raw probe success ratios (every region's probes), a different figure from uptime: a
    /// failed probe counts here even when it changed no state.
    pub probe_success_24h: Option<f64>,
    pub probe_success_90d: Option<f64>,
    /// The newest change of the tool list within the drift window (`MCPWATCH_DRIFT_SHOWN_DAYS`).
    pub schema_change: Option<SchemaChangeRecord>,
    /// p50 latency per hour over the last 24 h, oldest first.
    pub spark: Vec<Option<f64>>,
}

impl Summary {
    pub fn bars(&self) -> Vec<Bar> {
        svg::bars(&self.days)
    }

    pub fn spark_points(&self) -> String {
        let max = self.spark.iter().flatten().fold(0.0_f64, |a, b| a.max(*b));
        svg::points(
            &self.spark,
            120.0,
            28.0,
            if max > 0.0 { max * 1.1 } else { 1.0 },
        )
    }

    /// "p50 now 42 ms", for the sparkline's label.
    pub fn spark_label(&self) -> String {
        match self.spark.iter().rev().flatten().next() {
            Some(v) => format!("p50 latency, last 24 h; latest hour {}", words::latency(*v)),
            None => "no latency data in the last 24 h".into(),
        }
    }

    /// A recent change of the tool list in words: (class, "2 h ago", what changed).
    pub fn drift_text(&self, now: &i64) -> Option<(String, String, String)> {
        let c = self.schema_change.as_ref()?;
        Some((
            c.class.clone().unwrap_or_else(|| "changed".into()),
            format!("{} ago", words::duration(now - c.at)),
            c.summary.clone().unwrap_or_default(),
        ))
    }

    pub fn uptime_90d_text(&self) -> String {
        self.uptime_90d.map_or("—".into(), words::percent)
    }

    pub fn since_text(&self, now: &i64) -> String {
        match self.since {
            Some(at) => format!(
                "since {} ({})",
                words::date_time(at),
                words::duration(now - at)
            ),
            None => String::new(),
        }
    }
}

/// The overall banner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overall {
    Operational,
    Partial,
    Major,
    Maintenance,
    /// No public server yet.
    Empty,
}

impl Overall {
    pub fn key(self) -> &'static str {
        match self {
            Overall::Operational => "operational",
            Overall::Partial => "partial_outage",
            Overall::Major => "major_outage",
            Overall::Maintenance => "maintenance",
            Overall::Empty => "no_servers",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Overall::Operational => "All systems operational",
            Overall::Partial => "Partial outage",
            Overall::Major => "Major outage",
            Overall::Maintenance => "Scheduled maintenance in progress",
            Overall::Empty => "No public servers yet",
        }
    }

    pub fn glyph(self) -> &'static str {
        match self {
            Overall::Operational => "✓",
            Overall::Partial => "▲",
            Overall::Major => "✕",
            Overall::Maintenance => "◆",
            Overall::Empty => "?",
        }
    }

    /// From the servers' states: major when more than half of those with data are down.
    pub fn of(summaries: &[Summary]) -> Overall {
        let known: Vec<&str> = summaries
            .iter()
            .map(|s| s.look.key)
            .filter(|k| !matches!(*k, "unknown" | "paused"))
            .collect();
        if summaries.is_empty() {
            return Overall::Empty;
        }
        let down = known.iter().filter(|k| **k == "down").count();
        let bad = known
            .iter()
            .filter(|k| matches!(**k, "down" | "degraded" | "auth_failed"))
            .count();
        if down * 2 > known.len() {
            Overall::Major
        } else if bad > 0 {
            Overall::Partial
        } else if known.contains(&"maintenance") {
            Overall::Maintenance
        } else {
            Overall::Operational
        }
    }
}

/// Everything the pages need from the store, for one server or all public ones.
struct Inputs {
    regions: HashMap<String, Vec<RegionView>>,
    daily: HashMap<String, Vec<DailyRollup>>,
    hourly: HashMap<String, Vec<HourlyRollup>>,
    incidents: HashMap<String, Vec<IncidentRecord>>,
    windows: Vec<WindowRecord>,
    /// The newest schema change per server within the drift window.
    changes: HashMap<String, SchemaChangeRecord>,
    /// State changes per server since the first day, oldest first: (event type, at).
    state_changes: HashMap<String, Vec<(String, i64)>>,
}

fn group<T>(rows: Vec<T>, key: impl Fn(&T) -> &str) -> HashMap<String, Vec<T>> {
    let mut out: HashMap<String, Vec<T>> = HashMap::new();
    for r in rows {
        out.entry(key(&r).to_string()).or_default().push(r);
    }
    out
}

/// Region views, incidents and windows for a scope; rollups only when `with_rollups` (the
/// public page takes them from its in-memory copy instead).
async fn inputs(
    store: &dyn Store,
    scope: Scope<'_>,
    now: i64,
    with_rollups: bool,
    drift_since: i64,
) -> Result<Inputs, StoreError> {
    let first_day = day_start(now) - (DAYS - 1) * DAY_MS;
    let first_hour = hour_start(now) - 23 * HOUR_MS;
    // Independent reads, run at once (SQLite in WAL mode and Postgres both serve them in
    // parallel from the pool).
    let rollups = async {
        if with_rollups {
            tokio::try_join!(
                store.daily_rollups(scope, first_day),
                store.hourly_rollups(scope, first_hour)
            )
        } else {
            Ok(Default::default())
        }
    };
    let (regions, incidents, windows, (daily, hourly), changes, state_changes) = tokio::try_join!(
        store.region_views(scope),
        store.incidents_since(scope, first_day),
        store.list_windows(),
        rollups,
        store.schema_changes_since(drift_since),
        store.state_changes_since(scope, first_day)
    )?;
    let mut by_server: HashMap<String, Vec<(String, i64)>> = HashMap::new();
    for (server, kind, at) in state_changes {
        by_server.entry(server).or_default().push((kind, at));
    }
    let mut newest: HashMap<String, SchemaChangeRecord> = HashMap::new();
    for c in changes {
        // Newest first: the first one seen per server is its latest change.
        newest.entry(c.server_id.clone()).or_insert(c);
    }
    Ok(Inputs {
        regions: group(regions, |r| &r.server_id),
        daily: group(daily, |r| &r.server_id),
        hourly: group(hourly, |r| &r.server_id),
        incidents: group(incidents, |r| &r.server_id),
        windows,
        changes: newest,
        state_changes: by_server,
    })
}

fn ratio(probes: i64, successes: i64) -> Option<f64> {
    (probes > 0).then(|| successes as f64 / probes as f64)
}

/// The active window covering `server` at `now`: (name, end).
pub fn active_window(
    windows: &[WindowRecord],
    server: &ServerRecord,
    now: i64,
) -> Option<(String, i64)> {
    windows.iter().find_map(|w| {
        if !covers(&w.server_ids, &w.tags, server) {
            return None;
        }
        let (_, end) = schedule_of(w).ok()?.active_at(now)?;
        Some((w.name.clone(), end))
    })
}

fn summarize(
    row: ServerWithState,
    input: &mut Inputs,
    daily: &[DailyRollup],
    hourly: &[HourlyRollup],
    now: i64,
) -> Summary {
    let id = row.server.id.clone();
    let regions = input.regions.remove(&id).unwrap_or_default();
    let incidents = input.incidents.get(&id).map(Vec::as_slice).unwrap_or(&[]);
    let schema_change = input.changes.remove(&id);
    let state = state_name(&row);
    let maintenance = active_window(&input.windows, &row.server, now);
    let look = words::state_look(if maintenance.is_some() && state != "paused" {
        "maintenance"
    } else {
        &state
    });

    let (reason, warning, failing_regions) = explain(&state, &regions);
    let last = regions
        .iter()
        .filter_map(|r| r.last.clone())
        .max_by_key(|r| r.at);

    // 90 daily bars: availability from incidents (the state machine's outages), over the time
    // the server was watched; incidents counted on each day they were open.
    let today = day_start(now);
    let outages: Vec<Outage> = incidents
        .iter()
        .map(|i| Outage {
            opened_at: i.opened_at,
            closed_at: i.closed_at,
        })
        .collect();
    let watched_since = watched_since(daily, row.server.created_at);
    let available = |from: i64, to: i64| availability(&outages, watched_since, from, to, now);
    let degraded = degraded_spans(
        input.state_changes.remove(&id).unwrap_or_default(),
        row.state.as_ref(),
        now,
    );
    let days = daily_bars(incidents, &degraded, daily, today, available);
    let window = |n: i64| available(today - (n - 1) * DAY_MS, now);
    let (p90, s90) = daily
        .iter()
        .fold((0, 0), |(p, s), d| (p + d.probes, s + d.successes));
    let (p24, s24) = hourly
        .iter()
        .fold((0, 0), |(p, s), h| (p + h.probes, s + h.successes));
    Summary {
        look,
        since: row.state.as_ref().map(|s| s.since),
        schema_hash: row
            .state
            .as_ref()
            .and_then(|s| s.schema_hash.as_deref().map(String::from)),
        reason,
        warning,
        failing_regions,
        maintenance,
        regions,
        last,
        uptime_24h: available(now - DAY_MS, now),
        uptime_7d: window(7),
        uptime_30d: window(30),
        uptime_90d: window(DAYS),
        probe_success_24h: ratio(p24, s24),
        probe_success_90d: ratio(p90, s90),
        days,
        spark: sparkline(hourly, now),
        schema_change,
        state,
        server: row.server,
    }
}

/// The state the page shows: `paused` by the flag, `unknown` before any result.
fn state_name(row: &ServerWithState) -> String {
    match (&row.state, row.server.paused) {
        (_, true) => "paused".to_string(),
        (Some(s), false) => s.status.as_str().to_string(),
        (None, false) => "unknown".to_string(),
    }
}

/// Watched since its registration, and not before its first probed day in the window (a
/// server older than the window, or seeded with history).
fn watched_since(daily: &[DailyRollup], created_at: i64) -> i64 {
    daily
        .iter()
        .filter(|d| d.probes > 0)
        .map(|d| d.day_start)
        .min()
        .map_or(created_at, |first| first.max(created_at))
}

/// Why a server is down or degraded, in plain words naming the regions that saw it, or a
/// warning when regions fail below the quorum; and the failing regions.
fn explain(state: &str, regions: &[RegionView]) -> (Option<String>, Option<String>, Vec<String>) {
    let failing: Vec<&RegionView> = regions
        .iter()
        .filter(|r| {
            matches!(
                r.state.status,
                RegionStatus::Down | RegionStatus::AuthFailed
            )
        })
        .collect();
    let failing_regions: Vec<String> = failing.iter().map(|r| r.state.region.to_string()).collect();
    let words_of = |r: &RegionView| r.last.as_ref().map(words::failure_words);
    let first_words = failing.iter().find_map(|r| words_of(r));
    let same: Vec<String> = failing
        .iter()
        .filter(|r| words_of(r) == first_words)
        .map(|r| r.state.region.to_string())
        .collect();
    let explained = first_words.map(|w| words::reason(&w, &same));
    let (reason, warning) = match state {
        "down" | "auth_failed" => (explained, None),
        "degraded" => (explained.or_else(|| Some(slowness(regions))), None),
        _ => (
            None,
            explained.map(|w| format!("{w} (fewer regions than the quorum)")),
        ),
    };
    (reason, warning, failing_regions)
}

/// What a degraded server's slow region saw.
fn slowness(regions: &[RegionView]) -> String {
    let slow = regions
        .iter()
        .filter_map(|r| r.last.as_ref())
        .find(|r| r.verdict == Verdict::Degraded);
    slow.map_or("answering slowly or with warnings".into(), |r| {
        format!("slow: {} for a full check", words::latency(r.duration_ms))
    })
}

/// The 90 daily bars ending `today`: availability (from `available`), incidents open that day,
/// time degraded, and failed probes that changed nothing.
fn daily_bars(
    incidents: &[IncidentRecord],
    degraded: &[(i64, i64)],
    daily: &[DailyRollup],
    today: i64,
    available: impl Fn(i64, i64) -> Option<f64>,
) -> Vec<svg::Day> {
    let by_day: HashMap<i64, &DailyRollup> = daily.iter().map(|d| (d.day_start, d)).collect();
    (0..DAYS)
        .map(|i| {
            let day = today - (DAYS - 1 - i) * DAY_MS;
            let incidents = incidents
                .iter()
                .filter(|inc| {
                    inc.opened_at < day + DAY_MS && inc.closed_at.is_none_or(|c| c >= day)
                })
                .count();
            let degraded_ms = degraded
                .iter()
                .map(|(from, to)| ((*to).min(day + DAY_MS) - (*from).max(day)).max(0))
                .sum();
            svg::Day {
                start: day,
                uptime: available(day, day + DAY_MS),
                incidents,
                degraded_ms,
                failed_probes: by_day.get(&day).map_or(0, |d| d.probes - d.successes),
            }
        })
        .collect()
}

/// The last 24 hours' latency: per hour, the probe-weighted mean of the regions' p50.
fn sparkline(hourly: &[HourlyRollup], now: i64) -> Vec<Option<f64>> {
    let first_hour = hour_start(now) - 23 * HOUR_MS;
    let mut spark = vec![(0.0, 0i64); 24];
    for h in hourly {
        let slot = ((h.hour_start - first_hour) / HOUR_MS) as usize;
        if let (Some(p50), Some(cell)) = (h.p50_ms, spark.get_mut(slot)) {
            cell.0 += p50 * h.successes as f64;
            cell.1 += h.successes;
        }
    }
    spark
        .into_iter()
        .map(|(sum, n)| (n > 0).then(|| sum / n as f64))
        .collect()
}

/// The spans a server spent degraded, from its state changes (oldest first) and its current
/// state (degraded until now, when it still is).
fn degraded_spans(
    changes: Vec<(String, i64)>,
    state: Option<&crate::monitor::ServerState>,
    now: i64,
) -> Vec<(i64, i64)> {
    let mut spans = Vec::new();
    let mut since = None;
    for (kind, at) in changes {
        match (kind.as_str(), since) {
            ("server.degraded", None) => since = Some(at),
            ("server.degraded", Some(_)) => {}
            (_, Some(from)) => {
                spans.push((from, at));
                since = None;
            }
            (_, None) => {}
        }
    }
    let still = state.filter(|s| s.status == crate::monitor::ServerStatus::Degraded);
    match (since, still) {
        (Some(from), Some(_)) => spans.push((from, now)),
        // Degraded since before the window's first change.
        (None, Some(s)) if spans.last().is_none_or(|(_, to)| *to <= s.since) => {
            spans.push((s.since, now))
        }
        _ => {}
    }
    spans
}

/// Every public server, by name. Rollups come from `history`, the in-memory copy that reads
/// only what changed since the last request.
pub async fn public_summaries(
    store: &dyn Store,
    history: &HistoryCache,
    now: i64,
    drift_shown: std::time::Duration,
) -> Result<Vec<Summary>, StoreError> {
    let drift_since = now - drift_shown.as_millis() as i64;
    let (rows, mut input, hist) = tokio::try_join!(
        store.public_states(),
        inputs(store, Scope::Public, now, false, drift_since),
        history.synced(store, now)
    )?;
    // A server that turned public since the copy was loaded: load again, with its history.
    let hist = match rows.iter().any(|r| !hist.knows(&r.server.id)) {
        false => hist,
        true => {
            let ids: Vec<&str> = rows.iter().map(|r| r.server.id.as_str()).collect();
            drop(hist);
            history.reload(store, &ids, now).await?
        }
    };
    Ok(rows
        .into_iter()
        .map(|r| {
            let (daily, hourly) = hist.of(&r.server.id);
            summarize(r, &mut input, daily, hourly, now)
        })
        .collect())
}

/// One public server by slug (`None` for private or unknown ones), with its incidents and the
/// windows that cover it.
pub async fn public_summary(
    store: &dyn Store,
    slug: &str,
    now: i64,
    drift_shown: std::time::Duration,
) -> Result<Option<(Summary, Vec<IncidentRecord>, Vec<WindowRecord>)>, StoreError> {
    let Some(server) = store
        .get_server(slug)
        .await?
        .filter(|s| s.public && s.slug == slug)
    else {
        return Ok(None);
    };
    let (state, _) = store.load_state(&server.id).await?;
    let drift_since = now - drift_shown.as_millis() as i64;
    let mut input = inputs(store, Scope::Server(&server.id), now, true, drift_since).await?;
    let incidents = input.incidents.get(&server.id).cloned().unwrap_or_default();
    let windows: Vec<WindowRecord> = input
        .windows
        .iter()
        .filter(|w| covers(&w.server_ids, &w.tags, &server))
        .cloned()
        .collect();
    let row = ServerWithState {
        server,
        state,
        regions: Vec::new(),
    };
    let daily = input.daily.remove(&row.server.id).unwrap_or_default();
    let hourly = input.hourly.remove(&row.server.id).unwrap_or_default();
    let summary = summarize(row, &mut input, &daily, &hourly, now);
    Ok(Some((summary, incidents, windows)))
}

/// Servers grouped by their first tag, groups by name; untagged servers first, unheaded.
pub fn grouped(summaries: &[Summary]) -> Vec<(String, Vec<&Summary>)> {
    let mut groups: Vec<(String, Vec<&Summary>)> = Vec::new();
    for s in summaries {
        let tag = s.server.tags.first().cloned().unwrap_or_default();
        match groups.iter_mut().find(|(t, _)| *t == tag) {
            Some((_, list)) => list.push(s),
            None => groups.push((tag, vec![s])),
        }
    }
    groups.sort_by(|a, b| a.0.cmp(&b.0));
    groups
}
