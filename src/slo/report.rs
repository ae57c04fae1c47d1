//! A server's monthly report, for operators who owe their users an SLA: availability (the
//! status page's, from outages), the incidents of the month with the time each took out of
//! it, every objective covering the server against the month's budget, probe counts and
//! latency percentiles. As JSON (the struct), CSV (a summary row, then one row per incident)
//! and a printable page (`templates/report.html`).

use serde::Serialize;

use super::Watched;
use crate::clock::rfc3339;
use crate::monitor::availability::Outage;
use crate::store::rollup::DAY_MS;
use crate::store::{Scope, ServerRecord, SloRecord, Store, StoreResult};

/// `YYYY-MM` → the month's first millisecond and the next month's, UTC.
pub fn month_bounds(month: &str) -> Result<(i64, i64), String> {
    let bad = || format!("'{month}' is not a month (YYYY-MM, e.g. 2026-11)");
    let (y, m) = month.split_once('-').ok_or_else(bad)?;
    let year: i32 = y.parse().map_err(|_| bad())?;
    let month_no: u8 = m.parse().map_err(|_| bad())?;
    if y.len() != 4 || m.len() != 2 {
        return Err(bad());
    }
    let start = |year: i32, m: u8| -> Result<i64, String> {
        let month = time::Month::try_from(m).map_err(|_| bad())?;
        let date = time::Date::from_calendar_date(year, month, 1).map_err(|_| bad())?;
        Ok(date.midnight().assume_utc().unix_timestamp() * 1000)
    };
    let (next_year, next_month) = if month_no == 12 {
        (year + 1, 1)
    } else {
        (year, month_no + 1)
    };
    Ok((start(year, month_no)?, start(next_year, next_month)?))
}

/// The month before the one holding `now`, as `YYYY-MM`: the last complete one.
pub fn last_month(now: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(now.div_euclid(1000))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let (y, m) = match u8::from(t.month()) {
        1 => (t.year() - 1, 12),
        m => (t.year(), m - 1),
    };
    format!("{y:04}-{m:02}")
}

/// One incident within the month.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct ReportIncident {
    pub id: String,
    pub kind: String,
    pub cause: String,
    pub opened_at: String,
    pub closed_at: Option<String>,
    /// The time it took out of this month (it may have begun before or gone on after).
    pub seconds_in_month: f64,
}

/// An objective covering the server, against the month.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct ReportObjective {
    pub name: String,
    pub objective: f64,
    /// The month's allowance: (1 − objective) × the month's length.
    pub budget_seconds: f64,
    pub spent_seconds: f64,
    pub budget_left: f64,
    /// Availability met the objective this month.
    pub met: bool,
}

/// The report.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct MonthlyReport {
    pub server: String,
    pub name: String,
    pub month: String,
    pub from: String,
    pub to: String,
    /// Time outside outages over the time watched in the month (`None`: not watched).
    pub availability: Option<f64>,
    pub downtime_seconds: f64,
    pub incidents: Vec<ReportIncident>,
    pub objectives: Vec<ReportObjective>,
    pub probes: i64,
    pub successes: i64,
    pub latency_p50_ms: Option<f64>,
    pub latency_p95_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
    pub latency_max_ms: Option<f64>,
    /// Whether the month is over (otherwise: to date).
    pub complete: bool,
    pub generated_at: String,
}

/// The objectives covering `server`: its own, and its tags'.
pub fn covering(slos: Vec<SloRecord>, server: &ServerRecord) -> Vec<SloRecord> {
    slos.into_iter()
        .filter(|o| {
            o.server_id.as_deref() == Some(server.id.as_str())
                || o.tag.as_ref().is_some_and(|t| server.tags.contains(t))
        })
        .collect()
}

/// The report of `server` for `month` (`YYYY-MM`) at `now`; `objectives`: those covering it.
pub async fn build(
    store: &dyn Store,
    server: &ServerRecord,
    objectives: &[SloRecord],
    month: &str,
    now: i64,
) -> StoreResult<Result<MonthlyReport, String>> {
    let (from, to) = match month_bounds(month) {
        Ok(bounds) => bounds,
        Err(e) => return Ok(Err(e)),
    };
    let incidents: Vec<_> = store
        .incidents_since(Scope::Server(&server.id), from)
        .await?
        .into_iter()
        .filter(|i| i.opened_at < to)
        .collect();
    let watched = Watched {
        since: server.created_at,
        outages: incidents
            .iter()
            .map(|i| Outage {
                opened_at: i.opened_at,
                closed_at: i.closed_at,
            })
            .collect(),
    };
    let one = std::slice::from_ref(&watched);
    let downtime_ms = super::outage_ms(one, from, to, now);
    let month_ms = (to - from) as f64;
    let rollup = store
        .merged_daily(std::slice::from_ref(&server.id), from, to)
        .await?;
    let availability = super::availability_of(one, from, to, now);
    let objectives = against(objectives, availability, downtime_ms, month_ms);
    let in_month = |opened: i64, closed: Option<i64>| {
        let end = closed.unwrap_or(now).min(to).min(now);
        (end - opened.max(from)).max(0) as f64 / 1000.0
    };
    Ok(Ok(MonthlyReport {
        server: server.slug.clone(),
        name: server.name.clone(),
        month: month.to_string(),
        from: rfc3339(from),
        to: rfc3339(to),
        availability,
        downtime_seconds: downtime_ms / 1000.0,
        incidents: incidents
            .iter()
            .rev()
            .map(|i| ReportIncident {
                id: i.id.clone(),
                kind: i.kind.clone(),
                cause: i.cause.clone(),
                opened_at: rfc3339(i.opened_at),
                closed_at: i.closed_at.map(rfc3339),
                seconds_in_month: in_month(i.opened_at, i.closed_at),
            })
            .collect(),
        objectives,
        probes: rollup.probes,
        successes: rollup.successes,
        latency_p50_ms: rollup.percentile(0.50),
        latency_p95_ms: rollup.percentile(0.95),
        latency_p99_ms: rollup.percentile(0.99),
        latency_max_ms: rollup.max_ms,
        complete: now >= to,
        generated_at: rfc3339(now),
    }))
}

/// Each objective against a month with this availability and downtime.
fn against(
    objectives: &[SloRecord],
    availability: Option<f64>,
    downtime_ms: f64,
    month_ms: f64,
) -> Vec<ReportObjective> {
    objectives
        .iter()
        .map(|o| {
            let budget = (1.0 - o.objective) * month_ms;
            ReportObjective {
                name: o.name.clone(),
                objective: o.objective,
                budget_seconds: budget.round() / 1000.0,
                spent_seconds: downtime_ms / 1000.0,
                budget_left: if budget > 0.0 {
                    1.0 - downtime_ms / budget
                } else {
                    0.0
                },
                met: availability.is_none_or(|a| a >= o.objective),
            }
        })
        .collect()
}

/// The report as CSV: a summary header and row, an empty line, then the incidents.
pub fn csv(r: &MonthlyReport) -> Result<String, String> {
    let opt = |v: Option<f64>| v.map(|x| format!("{x}")).unwrap_or_default();
    let mut w = csv::WriterBuilder::new()
        .flexible(true)
        .from_writer(Vec::new());
    let mut row = |fields: Vec<String>| w.write_record(&fields).map_err(|e| e.to_string());
    row([
        "server",
        "month",
        "availability",
        "downtime_seconds",
        "incidents",
        "probes",
        "successes",
        "latency_p50_ms",
        "latency_p95_ms",
        "latency_p99_ms",
        "complete",
    ]
    .map(String::from)
    .to_vec())?;
    row(vec![
        r.server.clone(),
        r.month.clone(),
        opt(r.availability),
        format!("{}", r.downtime_seconds),
        r.incidents.len().to_string(),
        r.probes.to_string(),
        r.successes.to_string(),
        opt(r.latency_p50_ms),
        opt(r.latency_p95_ms),
        opt(r.latency_p99_ms),
        r.complete.to_string(),
    ])?;
    row(vec![String::new()])?;
    row([
        "incident",
        "kind",
        "cause",
        "opened_at",
        "closed_at",
        "seconds_in_month",
    ]
    .map(String::from)
    .to_vec())?;
    for i in &r.incidents {
        row(vec![
            i.id.clone(),
            i.kind.clone(),
            i.cause.clone(),
            i.opened_at.clone(),
            i.closed_at.clone().unwrap_or_default(),
            format!("{}", i.seconds_in_month),
        ])?;
    }
    let bytes = w.into_inner().map_err(|e| e.to_string())?;
    String::from_utf8(bytes).map_err(|e| e.to_string())
}

/// Days in a month-long span (28–31), for words.
pub fn days(from: i64, to: i64) -> i64 {
    (to - from) / DAY_MS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_parse_to_their_utc_bounds() {
        let (from, to) = month_bounds("2026-02").unwrap();
        assert_eq!(rfc3339(from), "2026-02-01T00:00:00Z");
        assert_eq!(days(from, to), 28);
        let (from, to) = month_bounds("2026-12").unwrap();
        assert_eq!(rfc3339(to), "2027-01-01T00:00:00Z");
        assert_eq!(days(from, to), 31);
        for bad in ["2026-13", "2026-1", "26-01", "november", "2026-00"] {
            assert!(month_bounds(bad).unwrap_err().contains("YYYY-MM"), "{bad}");
        }
        assert_eq!(
            last_month(month_bounds("2026-01").unwrap().0 + 5),
            "2025-12"
        );
        assert_eq!(last_month(month_bounds("2026-12").unwrap().0), "2026-11");
    }
}
