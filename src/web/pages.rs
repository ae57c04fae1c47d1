//! `GET /` and `GET /s/{slug}`: compiled askama templates (escaped by default) over the
//! summaries in `model.rs`.

use std::collections::HashMap;

use askama::Template;

use crate::alert::maintenance::schedule_of;
use crate::probe::Verdict;
use crate::schema::{self, ToolChange};
use crate::store::rollup::{DAY_MS, HOUR_MS, day_start, hour_start};
use crate::store::{
    IncidentRecord, RegionView, ResultRecord, SchemaChangeRecord, SnapshotRecord, WindowRecord,
};

use super::brand::Brand;
use super::model::{self, DAYS, Overall, Summary};
use super::posts::PublicPost;
use super::svg::{self, Bar, Chart};
use super::words;

pub struct CardView<'a> {
    pub s: &'a Summary,
    pub bars: Vec<Bar>,
    pub spark: String,
    pub spark_label: String,
}

impl CardView<'_> {
    pub fn until(&self, end: &i64) -> String {
        words::date_time(*end)
    }
}

pub struct GroupView<'a> {
    pub name: String,
    pub cards: Vec<CardView<'a>>,
}

/// Server cards on one page of `/`: at 1,000 public servers one page of all of them was
/// 10 MiB of HTML (`benches/status_page`).
pub const PAGE_SIZE: usize = 100;

/// Servers named above the cards when the list spans pages, so a problem on page 7 is seen
/// on page 1.
const PROBLEMS_SHOWN: usize = 20;

#[derive(Template)]
#[template(path = "index.html")]
pub struct IndexPage<'a> {
    pub overall: Overall,
    pub groups: Vec<GroupView<'a>>,
    /// Public servers in all (every page).
    pub count: usize,
    /// This page (from 1) and how many there are.
    pub page: usize,
    pub pages: usize,
    /// Servers not operational, from every page (only when there are several): slug, name,
    /// state label; and how many more there are.
    pub problems: Vec<(&'a str, &'a str, &'static str)>,
    pub more_problems: usize,
    pub now: i64,
    pub generated: String,
    pub bars_width: u32,
    /// Regions that stopped reporting: (name, last seen).
    pub silent: Vec<(String, String)>,
    /// Operators' active posts, newest first.
    pub posts: &'a [PublicPost],
    pub brand: &'a Brand,
    /// The subscription form, when readers can subscribe.
    pub offer: Option<super::subscribe::Offer>,
}

/// Page `page` (from 1; clamped into range) of the public servers, grouped by first tag.
pub fn index<'a>(
    summaries: &'a [Summary],
    page: usize,
    silent: Vec<(String, String)>,
    (posts, brand, offer): (&'a [PublicPost], &'a Brand, Option<super::subscribe::Offer>),
    now: i64,
) -> Result<String, askama::Error> {
    let ordered: Vec<(String, &Summary)> = model::grouped(summaries)
        .into_iter()
        .flat_map(|(name, list)| list.into_iter().map(move |s| (name.clone(), s)))
        .collect();
    let pages = ordered.len().div_ceil(PAGE_SIZE).max(1);
    let page = page.clamp(1, pages);
    let mut groups: Vec<GroupView> = Vec::new();
    for (name, s) in ordered.iter().skip((page - 1) * PAGE_SIZE).take(PAGE_SIZE) {
        let card = CardView {
            bars: s.bars(),
            spark: s.spark_points(),
            spark_label: s.spark_label(),
            s,
        };
        match groups.last_mut().filter(|g| g.name == *name) {
            Some(g) => g.cards.push(card),
            None => groups.push(GroupView {
                name: name.clone(),
                cards: vec![card],
            }),
        }
    }
    let troubled: Vec<&Summary> = if pages > 1 {
        ordered
            .iter()
            .map(|(_, s)| *s)
            .filter(|s| matches!(s.look.key, "down" | "degraded" | "auth_failed"))
            .collect()
    } else {
        Vec::new()
    };
    IndexPage {
        overall: Overall::of(summaries),
        groups,
        count: summaries.len(),
        page,
        pages,
        problems: troubled
            .iter()
            .take(PROBLEMS_SHOWN)
            .map(|s| (s.server.slug.as_str(), s.server.name.as_str(), s.look.label))
            .collect(),
        more_problems: troubled.len().saturating_sub(PROBLEMS_SHOWN),
        now,
        generated: words::date_time(now),
        bars_width: svg::bars_width(DAYS as usize),
        silent,
        posts,
        brand,
        offer,
    }
    .render()
}

pub struct RegionRow {
    pub name: String,
    pub look: words::StateLook,
    pub last_check: String,
    pub latency: String,
    pub detail: String,
}

pub struct LastProbe {
    pub at: String,
    pub region: String,
    pub era: String,
    pub protocol: String,
    pub server: String,
    /// The tool count, or "—" when the probe listed none because it failed.
    pub tools: String,
    pub schema: String,
    pub timings: String,
    /// What went wrong, or what a protected server's OAuth discovery showed.
    pub outcome: Option<String>,
}

pub struct IncidentRow {
    pub opened: String,
    pub duration: String,
    pub kind: String,
    pub cause: String,
    /// The operator's post that explains it: (post id, title).
    pub post: Option<(String, String)>,
}

pub struct WindowRow {
    pub name: String,
    pub schedule: String,
    pub when: String,
}

pub struct SchemaRow {
    pub date: String,
    pub hash: String,
    pub tools: usize,
    /// For a return to an earlier list: the list it went back from.
    pub reverts: Option<String>,
    /// `breaking` / `compatible`; `None` for the first list seen.
    pub class: Option<&'static str>,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<ToolChange>,
}

#[derive(Template)]
#[template(path = "server.html")]
pub struct ServerPage<'a> {
    pub s: &'a Summary,
    pub now: i64,
    pub generated: String,
    pub bars: Vec<Bar>,
    pub bars_width: u32,
    pub uptimes: Vec<(&'static str, String)>,
    pub regions: Vec<RegionRow>,
    pub last: Option<LastProbe>,
    pub charts: Vec<Chart>,
    pub incidents: Vec<IncidentRow>,
    pub windows: Vec<WindowRow>,
    pub schema: Vec<SchemaRow>,
    /// The tools of the list served now.
    pub tools: Vec<ToolRow>,
    /// Operators' posts about this server, newest first.
    pub posts: &'a [PublicPost],
    pub brand: &'a Brand,
    pub objectives: Vec<super::report::ObjectiveRow>,
    /// The last complete month (`YYYY-MM`), for the report link.
    pub report_month: String,
    pub calls: Vec<super::calls::CallRow>,
}

/// One tool as the page lists it: its name, description and parameters.
pub struct ToolRow {
    pub name: String,
    pub description: String,
    /// (name, type, required)
    pub params: Vec<(String, String, bool)>,
}

/// The tools of a canonical tool list, for reading (names, descriptions, parameters).
fn tool_rows(tools: &[serde_json::Value]) -> Vec<ToolRow> {
    tools
        .iter()
        .map(|t| {
            let text = |v: Option<&serde_json::Value>| {
                v.and_then(|v| v.as_str()).unwrap_or("").to_string()
            };
            let schema = t.get("inputSchema");
            let required: Vec<&str> = schema
                .and_then(|s| s.get("required"))
                .and_then(|r| r.as_array())
                .map(|r| r.iter().filter_map(|v| v.as_str()).collect())
                .unwrap_or_default();
            let params = schema
                .and_then(|s| s.get("properties"))
                .and_then(|p| p.as_object())
                .map(|p| {
                    p.iter()
                        .map(|(name, prop)| {
                            let kind = prop.get("type").map_or("any".into(), |k| {
                                k.as_str().map_or_else(|| k.to_string(), String::from)
                            });
                            (name.clone(), kind, required.contains(&name.as_str()))
                        })
                        .collect()
                })
                .unwrap_or_default();
            ToolRow {
                name: text(t.get("name")),
                description: text(t.get("description")),
                params,
            }
        })
        .collect()
}

impl ServerPage<'_> {
    pub fn until(&self, end: &i64) -> String {
        words::date_time(*end)
    }
}

fn opt(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| "—".into())
}

fn timings(r: &crate::store::ResultRecord) -> String {
    let mut parts = Vec::new();
    for (name, v) in [
        ("DNS", r.dns_ms),
        ("connect", r.connect_ms),
        ("TLS", r.tls_ms),
        ("handshake", r.handshake_ms),
        ("tools/list", r.tools_list_ms),
    ] {
        if let Some(v) = v {
            parts.push(format!("{name} {}", words::latency(v)));
        }
    }
    parts.push(format!("total {}", words::latency(r.duration_ms)));
    parts.join(" · ")
}

/// Latency charts from the rollups: 24 h and 7 d hourly, 90 d daily.
fn charts(
    hourly: &[crate::store::rollup::HourlyRollup],
    daily: &[crate::store::rollup::DailyRollup],
    now: i64,
) -> Vec<Chart> {
    let slots =
        |n: i64,
         first: i64,
         step: i64,
         rows: &mut dyn Iterator<Item = (i64, Option<f64>, Option<f64>, i64)>| {
            let mut acc = vec![(0.0, 0.0, 0i64); n as usize];
            for (at, p50, p95, weight) in rows {
                let i = (at - first) / step;
                if let (Some(p50), Some(cell)) = (p50, acc.get_mut(i as usize)) {
                    cell.0 += p50 * weight as f64;
                    cell.1 += p95.unwrap_or(p50) * weight as f64;
                    cell.2 += weight;
                }
            }
            acc.into_iter()
                .map(|(a, b, w)| {
                    if w > 0 {
                        (Some(a / w as f64), Some(b / w as f64))
                    } else {
                        (None, None)
                    }
                })
                .collect::<Vec<_>>()
        };
    let hour0 = hour_start(now);
    let h = |n: i64| {
        let first = hour0 - (n - 1) * HOUR_MS;
        let mut rows = hourly
            .iter()
            .filter(|r| r.hour_start >= first)
            .map(|r| (r.hour_start, r.p50_ms, r.p95_ms, r.successes));
        (slots(n, first, HOUR_MS, &mut rows), words::date_time(first))
    };
    let (day_slots, day_from) = h(24);
    let (week_slots, week_from) = h(24 * 7);
    let first_day = day_start(now) - (DAYS - 1) * DAY_MS;
    let mut rows = daily
        .iter()
        .map(|r| (r.day_start, r.p50_ms, r.p95_ms, r.successes));
    let quarter = slots(DAYS, first_day, DAY_MS, &mut rows);
    vec![
        svg::chart("Last 24 hours (hourly)", &day_slots, day_from, "now".into()),
        svg::chart("Last 7 days (hourly)", &week_slots, week_from, "now".into()),
        svg::chart(
            "Last 90 days (daily)",
            &quarter,
            words::date(first_day),
            "today".into(),
        ),
    ]
}

fn schema_rows(snaps: &[SnapshotRecord], changes: &[SchemaChangeRecord]) -> Vec<SchemaRow> {
    let by_hash: HashMap<&str, &SnapshotRecord> =
        snaps.iter().map(|s| (s.hash.as_str(), s)).collect();
    let tools_of = |hash: &str| {
        by_hash
            .get(hash)
            .and_then(|s| s.tools.as_array())
            .map(Vec::as_slice)
    };
    let changes: Vec<schema::history::Change> = changes.iter().map(Into::into).collect();
    schema::history::history(&changes, tools_of)
        .into_iter()
        .map(|e| {
            let d = e.diff;
            SchemaRow {
                date: words::date_time(e.change.at),
                tools: tools_of(&e.change.hash).map_or(0, <[_]>::len),
                hash: e.change.hash,
                reverts: e.reverts,
                class: d.as_ref().map(|d| d.class()),
                added: d.as_ref().map(|d| d.added.clone()).unwrap_or_default(),
                removed: d.as_ref().map(|d| d.removed.clone()).unwrap_or_default(),
                changed: d.map(|d| d.changed).unwrap_or_default(),
            }
        })
        .collect()
}

/// Everything the server page shows, already read.
pub struct ServerInputs<'a> {
    pub s: &'a Summary,
    pub incidents: &'a [IncidentRecord],
    pub windows: &'a [WindowRecord],
    pub snapshots: &'a [SnapshotRecord],
    /// Every change of the served list, newest first.
    pub schema_changes: &'a [SchemaChangeRecord],
    pub hourly: &'a [crate::store::rollup::HourlyRollup],
    pub daily: &'a [crate::store::rollup::DailyRollup],
    /// The newest stored result, for the probe details.
    pub last: Option<&'a crate::store::ResultRecord>,
    pub posts: &'a [PublicPost],
    pub brand: &'a Brand,
    /// The objectives covering it, with their figures.
    pub objectives: Vec<super::report::ObjectiveRow>,
    /// Its synthetic tool calls (empty when it has none).
    pub calls: Vec<super::calls::CallRow>,
}

pub fn server(i: ServerInputs<'_>, now: i64) -> Result<String, askama::Error> {
    let s = i.s;
    let regions = s.regions.iter().map(|r| region_row(r, now)).collect();
    let last = i.last.map(last_probe);
    let incidents = i
        .incidents
        .iter()
        .map(|x| incident_row(x, i.posts, now))
        .collect();
    let windows = i.windows.iter().map(|w| window_row(w, now)).collect();
    let pct = |v: Option<f64>| v.map_or("—".into(), words::percent);
    ServerPage {
        calls: i.calls,
        report_month: crate::slo::report::last_month(now),
        objectives: i.objectives,
        posts: i.posts,
        brand: i.brand,
        s,
        now,
        generated: words::date_time(now),
        bars: s.bars(),
        bars_width: svg::bars_width(DAYS as usize),
        uptimes: vec![
            ("24 h", pct(s.uptime_24h)),
            ("7 d", pct(s.uptime_7d)),
            ("30 d", pct(s.uptime_30d)),
            ("90 d", pct(s.uptime_90d)),
        ],
        regions,
        last,
        charts: charts(i.hourly, i.daily, now),
        incidents,
        windows,
        schema: schema_rows(i.snapshots, i.schema_changes),
        tools: s
            .schema_hash
            .as_deref()
            .and_then(|h| i.snapshots.iter().find(|snap| snap.hash == h))
            .and_then(|snap| snap.tools.as_array())
            .map(|t| tool_rows(t))
            .unwrap_or_default(),
    }
    .render()
}

/// One region's line: its state, last check, latency and what went wrong.
fn region_row(r: &RegionView, now: i64) -> RegionRow {
    RegionRow {
        name: r.state.region.to_string(),
        look: words::state_look(r.state.status.as_str()),
        last_check: r
            .state
            .last_result_at
            .map(|t| format!("{} ago", words::duration(now - t)))
            .unwrap_or_else(|| "—".into()),
        // A failed probe has no latency to show (its duration is how long it took to fail).
        latency: r
            .last
            .as_ref()
            .filter(|l| served(l.verdict))
            .map(|l| words::latency(l.duration_ms))
            .unwrap_or_else(|| "—".into()),
        detail: r
            .last
            .as_ref()
            .filter(|l| l.verdict != Verdict::Up)
            .map(words::failure_words)
            .unwrap_or_default(),
    }
}

/// The newest result's details.
fn last_probe(r: &ResultRecord) -> LastProbe {
    LastProbe {
        outcome: r.failure_message.clone(),
        at: words::date_time(r.started_at),
        region: r.region.clone(),
        era: opt(&r.era),
        protocol: opt(&r.protocol_version),
        server: match (&r.server_name, &r.server_version) {
            (Some(n), Some(v)) => format!("{n} {v}"),
            (n, v) => opt(&n.clone().or(v.clone())),
        },
        tools: if served(r.verdict) {
            r.tool_count.to_string()
        } else {
            "—".into()
        },
        schema: opt(&r.schema_hash),
        timings: timings(r),
    }
}

fn incident_row(inc: &IncidentRecord, posts: &[PublicPost], now: i64) -> IncidentRow {
    IncidentRow {
        post: posts
            .iter()
            .find(|p| p.incident_id.as_deref() == Some(inc.id.as_str()))
            .map(|p| (p.id.clone(), p.title.clone())),
        opened: words::date_time(inc.opened_at),
        duration: match inc.closed_at {
            Some(c) => words::duration(c - inc.opened_at),
            None => format!("ongoing ({})", words::duration(now - inc.opened_at)),
        },
        kind: inc.kind.clone(),
        cause: inc.cause.clone(),
    }
}

/// A maintenance window: its schedule in words, and whether it is on now or next.
fn window_row(w: &WindowRecord, now: i64) -> WindowRow {
    let sched = schedule_of(w).ok();
    let when = match sched.as_ref().and_then(|x| x.active_at(now)) {
        Some((_, end)) => format!("active now, until {}", words::date_time(end)),
        None => match sched.as_ref().and_then(|x| x.next_after(now)) {
            Some((start, end)) => format!(
                "next {} for {}",
                words::date_time(start),
                words::duration(end - start)
            ),
            None => "over".into(),
        },
    };
    let schedule = match (&w.cron, w.starts_at, w.ends_at) {
        (Some(cron), _, _) => format!(
            "{cron} ({}) for {}",
            w.timezone.as_deref().unwrap_or("UTC"),
            words::duration(w.duration_seconds.unwrap_or(0) * 1000)
        ),
        (None, Some(a), Some(b)) => {
            format!("{} – {}", words::date_time(a), words::date_time(b))
        }
        _ => "—".into(),
    };
    WindowRow {
        name: w.name.clone(),
        schedule,
        when,
    }
}

/// Whether a probe got as far as listing tools (its counts and latency mean something).
pub(super) fn served(verdict: Verdict) -> bool {
    matches!(verdict, Verdict::Up | Verdict::Degraded)
}
