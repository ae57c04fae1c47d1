//! The printable monthly report of a server (`templates/report.html`): publicly at
//! `/s/{slug}/report/{YYYY-MM}` for a public server a page shows, and from the API
//! (`/api/v1/servers/{id}/report?format=html`) for any. The figures are `slo::report`'s.

use askama::Template;
use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Response};

use super::brand::Brand;
use super::{WebError, WebState, words};
use crate::clock::now_ms;
use crate::slo::report::{self, MonthlyReport};

#[derive(Template)]
#[template(path = "report.html")]
struct ReportPage<'a> {
    r: &'a MonthlyReport,
    brand: &'a Brand,
    month_name: String,
    /// "2026-11-01 to 2026-11-30 (UTC)".
    period: String,
    availability: String,
    downtime: String,
    latency: String,
    /// (name, target, budget, spent, left, met).
    objectives: Vec<(String, String, String, String, String, bool)>,
    /// (began, ended, time this month, cause).
    incidents: Vec<(String, String, String, String)>,
}

/// "November 2026" from `2026-11`.
fn month_name(month: &str) -> String {
    let name = month
        .split_once('-')
        .and_then(|(_, m)| m.parse::<u8>().ok())
        .and_then(|m| time::Month::try_from(m).ok())
        .map(|m| m.to_string());
    match (name, month.split_once('-')) {
        (Some(name), Some((year, _))) => format!("{name} {year}"),
        _ => month.to_string(),
    }
}

/// An objective as people write it: 0.999 → "99.9 %", 0.9995 → "99.95 %".
fn target(ratio: f64) -> String {
    format!("{} %", (ratio * 100_000.0).round() / 1000.0)
}

fn seconds(s: f64) -> String {
    words::duration((s * 1000.0) as i64)
}

/// The report as a page under `brand`.
pub fn page(r: &MonthlyReport, brand: &Brand) -> Result<String, askama::Error> {
    let ms = |v: Option<f64>| v.map_or("—".to_string(), words::latency);
    ReportPage {
        r,
        brand,
        month_name: month_name(&r.month),
        period: report::month_bounds(&r.month).map_or_else(
            |_| format!("{} to {}", r.from, r.to),
            |(from, to)| format!("{} to {} (UTC)", words::date(from), words::date(to - 1)),
        ),
        availability: r.availability.map_or("—".into(), words::percent),
        downtime: seconds(r.downtime_seconds),
        latency: format!(
            "{} / {} / {}",
            ms(r.latency_p50_ms),
            ms(r.latency_p95_ms),
            ms(r.latency_p99_ms)
        ),
        objectives: r
            .objectives
            .iter()
            .map(|o| {
                (
                    o.name.clone(),
                    target(o.objective),
                    seconds(o.budget_seconds),
                    seconds(o.spent_seconds),
                    format!("{:.1} %", o.budget_left * 100.0),
                    o.met,
                )
            })
            .collect(),
        incidents: r
            .incidents
            .iter()
            .map(|i| {
                (
                    i.opened_at.clone(),
                    i.closed_at.clone().unwrap_or_else(|| "still open".into()),
                    seconds(i.seconds_in_month),
                    i.cause.clone(),
                )
            })
            .collect(),
    }
    .render()
}

/// An objective on a server's page.
pub struct ObjectiveRow {
    pub name: String,
    /// "99.9 % over 30 days".
    pub target: String,
    pub attainment: String,
    /// "97.3 %" of the budget left, and the bar's width (0-100) and colour class.
    pub budget_left: String,
    pub budget_width: u32,
    pub budget_class: &'static str,
    /// "19.4× over 1 h".
    pub burn: String,
    /// "96.1 % within 800 ms (objective 95 %)".
    pub latency: Option<String>,
    pub burning: bool,
}

/// The objectives covering `server`, with their figures at `now`.
pub async fn objective_rows(
    store: &dyn crate::store::Store,
    server: &crate::store::ServerRecord,
    now: i64,
) -> Result<Vec<ObjectiveRow>, crate::store::StoreError> {
    let covering = report::covering(store.list_slos().await?, server);
    if covering.is_empty() {
        return Ok(Vec::new());
    }
    let fleet = if covering.iter().any(|o| o.tag.is_some()) {
        store.all_servers().await?
    } else {
        vec![server.clone()]
    };
    let mut rows = Vec::new();
    for o in &covering {
        let members = crate::slo::watch::members(o, &fleet);
        let f = crate::slo::watch::evaluate(store, o, &members, now).await?;
        let left = f.budget_left.clamp(0.0, 1.0);
        rows.push(ObjectiveRow {
            name: o.name.clone(),
            target: format!("{} over {} days", target(o.objective), o.window_days),
            attainment: f.attainment.map_or("—".into(), words::percent),
            budget_left: format!("{:.1} %", f.budget_left * 100.0),
            budget_width: (left * 100.0).round() as u32,
            budget_class: match left {
                l if l >= 0.5 => "ok",
                l if l > 0.0 => "partial",
                _ => "major",
            },
            burn: f
                .burn_rate("1h")
                .map_or("—".into(), |r| format!("{r:.1}× over 1 h")),
            latency: o.latency_ms.zip(o.latency_objective).map(|(ms, share)| {
                let got = f.latency_attainment.map_or("—".into(), words::percent);
                format!(
                    "{got} within {} (objective {})",
                    words::latency(ms),
                    target(share)
                )
            }),
            burning: o.burning_since.is_some(),
        });
    }
    Ok(rows)
}

/// The page for the API (the default page's look).
pub fn report_page(r: &MonthlyReport) -> Result<String, askama::Error> {
    page(r, &Brand::default())
}

/// `GET /s/{slug}/report/{month}`.
pub async fn public_report(
    State(app): State<WebState>,
    headers: axum::http::HeaderMap,
    Path((slug, month)): Path<(String, String)>,
) -> Result<Response, WebError> {
    let brand = app.brand(&headers).await;
    let server = match app.store.get_server(&slug).await? {
        Some(s) if s.public && s.slug == slug && brand.shows(&s) => s,
        _ => return Err(WebError::NotFound),
    };
    let objectives = report::covering(app.store.list_slos().await?, &server);
    match report::build(app.store.as_ref(), &server, &objectives, &month, now_ms()).await? {
        Ok(r) => Ok(Html(page(&r, &brand)?).into_response()),
        Err(_) => Err(WebError::NotFound),
    }
}
