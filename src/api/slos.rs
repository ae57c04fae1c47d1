//! `/api/v1/slos`: service level objectives with their live figures (attainment, error budget,
//! burn rates), and `/api/v1/servers/{id}/report`: a server's monthly report as JSON, CSV or a
//! printable page. The arithmetic is `crate::slo`'s; alerts come from its evaluator.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::error::{ApiError, ApiJson, BadInput, Guarded, NoSuch, Taken};
use super::{AppState, now_ms};
use crate::clock::rfc3339;
use crate::slo::watch::{evaluate, members};
use crate::slo::{Figures, report};
use crate::store::{ServerRecord, SloRecord};

/// A latency objective: this share of successful probes within this bound.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LatencyObjective {
    pub threshold_ms: f64,
    /// e.g. 0.95.
    pub objective: f64,
}

/// A new objective: for one `server` or every server with a `tag`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SloInput {
    /// Unique; the metrics' `slo` label.
    name: String,
    /// A server id or slug…
    server: Option<String>,
    /// …or a tag: every server with it.
    tag: Option<String>,
    /// Availability as a ratio, e.g. 0.999 (between 0.5 and 0.99999).
    objective: f64,
    /// 1-90 days; default 30.
    window_days: Option<i64>,
    latency: Option<LatencyObjective>,
}

/// Burn rates over the alert windows (`null`: nothing watched then).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BurnRates {
    #[serde(rename = "5m")]
    pub m5: Option<f64>,
    #[serde(rename = "30m")]
    pub m30: Option<f64>,
    #[serde(rename = "1h")]
    pub h1: Option<f64>,
    #[serde(rename = "6h")]
    pub h6: Option<f64>,
}

/// An objective's figures now.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SloFigures {
    /// Availability over the window (time outside outages over time watched).
    pub attainment: Option<f64>,
    /// The window's allowance outside the objective, in seconds (summed over its servers).
    pub budget_seconds: f64,
    pub spent_seconds: f64,
    /// Share of the allowance left (negative when overspent).
    pub budget_left: f64,
    pub burn_rates: BurnRates,
    /// Share of successful probes within the latency bound over the window.
    pub latency_attainment: Option<f64>,
}

/// An objective as shown.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SloView {
    pub id: String,
    pub name: String,
    /// The server's slug (server objectives).
    pub server: Option<String>,
    pub tag: Option<String>,
    pub objective: f64,
    pub window_days: i64,
    pub latency: Option<LatencyObjective>,
    /// Servers it covers now.
    pub servers: usize,
    /// Its burn-rate alert is open.
    pub burning: bool,
    pub burning_since: Option<String>,
    pub burning_rule: Option<String>,
    pub figures: SloFigures,
    pub created_at: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SloList {
    pub items: Vec<SloView>,
}

fn figures_view(f: &Figures) -> SloFigures {
    SloFigures {
        attainment: f.attainment,
        budget_seconds: f.budget_seconds,
        spent_seconds: f.spent_seconds,
        budget_left: f.budget_left,
        burn_rates: BurnRates {
            m5: f.burn_rate("5m"),
            m30: f.burn_rate("30m"),
            h1: f.burn_rate("1h"),
            h6: f.burn_rate("6h"),
        },
        latency_attainment: f.latency_attainment,
    }
}

/// `slo` with its figures now.
async fn view(
    app: &AppState,
    slo: &SloRecord,
    servers: &[ServerRecord],
) -> Result<SloView, ApiError> {
    let covered = members(slo, servers);
    let f = evaluate(app.store.as_ref(), slo, &covered, now_ms()).await?;
    let latency = slo
        .latency_ms
        .zip(slo.latency_objective)
        .map(|(threshold_ms, objective)| LatencyObjective {
            threshold_ms,
            objective,
        });
    Ok(SloView {
        id: slo.id.clone(),
        name: slo.name.clone(),
        server: slo
            .server_id
            .as_ref()
            .and_then(|_| covered.first())
            .map(|s| s.slug.clone()),
        tag: slo.tag.clone(),
        objective: slo.objective,
        window_days: slo.window_days,
        latency,
        servers: covered.len(),
        burning: slo.burning_since.is_some(),
        burning_since: slo.burning_since.map(rfc3339),
        burning_rule: slo.burning_rule.clone(),
        figures: figures_view(&f),
        created_at: rfc3339(slo.created_at),
    })
}

fn ratio(field: &str, v: f64, low: f64, high: f64) -> Result<f64, ApiError> {
    if v.is_finite() && (low..=high).contains(&v) {
        Ok(v)
    } else {
        Err(ApiError::field(
            field,
            format!("must be a ratio from {low} to {high} (0.999 is 99.9 %)"),
        ))
    }
}

/// The record `input` describes, with its server looked up.
async fn new_slo(app: &AppState, input: &SloInput) -> Result<SloRecord, ApiError> {
    let name = input.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::field("name", "must be 1-100 characters"));
    }
    let server_id = match (&input.server, &input.tag) {
        (Some(s), None) => Some(
            app.store
                .get_server(s)
                .await?
                .ok_or_else(|| {
                    ApiError::field("server", format!("no server with id or slug '{s}'"))
                })?
                .id,
        ),
        (None, Some(t)) if !t.trim().is_empty() => None,
        _ => {
            return Err(ApiError::field(
                "server",
                "give a server (id or slug) or a tag, not both",
            ));
        }
    };
    let window_days = input.window_days.unwrap_or(30);
    if !(1..=90).contains(&window_days) {
        return Err(ApiError::field("window_days", "must be 1-90 days"));
    }
    let latency = match &input.latency {
        Some(l) if l.threshold_ms.is_finite() && l.threshold_ms > 0.0 => Some((
            l.threshold_ms,
            ratio("latency.objective", l.objective, 0.5, 0.99999)?,
        )),
        Some(_) => return Err(ApiError::field("latency.threshold_ms", "must be above 0")),
        None => None,
    };
    Ok(SloRecord {
        id: uuid::Uuid::now_v7().to_string(),
        name: name.to_string(),
        server_id,
        tag: input.tag.as_ref().map(|t| t.trim().to_string()),
        objective: ratio("objective", input.objective, 0.5, 0.99999)?,
        window_days,
        latency_ms: latency.map(|l| l.0),
        latency_objective: latency.map(|l| l.1),
        burning_since: None,
        burning_rule: None,
        created_at: now_ms(),
    })
}

#[utoipa::path(post, path = "/slos", tag = "alerts", request_body = SloInput, responses((status = 201, description = "the objective with its figures now", body = SloView), BadInput, Taken, Guarded), security(("bearer" = [])))]
pub async fn create(
    State(app): State<AppState>,
    ApiJson(input): ApiJson<SloInput>,
) -> Result<(StatusCode, Json<SloView>), ApiError> {
    let slo = new_slo(&app, &input).await?;
    app.store.insert_slo(&slo).await?;
    let servers = app.store.all_servers().await?;
    Ok((StatusCode::CREATED, Json(view(&app, &slo, &servers).await?)))
}

#[utoipa::path(get, path = "/slos", tag = "alerts", responses((status = 200, description = "every objective with its figures now", body = SloList), Guarded), security(("bearer" = [])))]
pub async fn list(State(app): State<AppState>) -> Result<Json<SloList>, ApiError> {
    let servers = app.store.all_servers().await?;
    let mut items = Vec::new();
    for slo in app.store.list_slos().await? {
        items.push(view(&app, &slo, &servers).await?);
    }
    Ok(Json(SloList { items }))
}

async fn find(app: &AppState, id: &str) -> Result<SloRecord, ApiError> {
    let by_id = app.store.get_slo(id).await?;
    let found = match by_id {
        Some(s) => Some(s),
        None => app
            .store
            .list_slos()
            .await?
            .into_iter()
            .find(|s| s.name == id),
    };
    found.ok_or_else(|| ApiError::NotFound(format!("no objective with id or name '{id}'")))
}

#[utoipa::path(get, path = "/slos/{id}", tag = "alerts", params(("id" = String, Path, description = "objective id or name")), responses((status = 200, description = "one objective with its figures now", body = SloView), NoSuch, Guarded), security(("bearer" = [])))]
pub async fn get(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<SloView>, ApiError> {
    let slo = find(&app, &id).await?;
    let servers = app.store.all_servers().await?;
    Ok(Json(view(&app, &slo, &servers).await?))
}

#[utoipa::path(delete, path = "/slos/{id}", tag = "alerts", params(("id" = String, Path, description = "objective id or name")), responses((status = 204, description = "deleted (an open alert is not closed: no recovery follows)"), NoSuch, Guarded), security(("bearer" = [])))]
pub async fn delete(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let slo = find(&app, &id).await?;
    app.store.delete_slo(&slo.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `?month=YYYY-MM&format=json|csv|html`.
#[derive(Debug, Deserialize)]
pub struct ReportQuery {
    month: Option<String>,
    format: Option<String>,
}

/// The monthly report of a server, or why not.
pub async fn monthly(
    app: &AppState,
    server: &ServerRecord,
    month: Option<&str>,
) -> Result<report::MonthlyReport, ApiError> {
    let now = now_ms();
    let month = month.map_or_else(|| report::last_month(now), str::to_string);
    let objectives = report::covering(app.store.list_slos().await?, server);
    report::build(app.store.as_ref(), server, &objectives, &month, now)
        .await?
        .map_err(|e| ApiError::field("month", e))
}

#[utoipa::path(get, path = "/servers/{id}/report", tag = "servers", params(("id" = String, Path, description = "server id or slug"), ("month" = Option<String>, Query, description = "YYYY-MM (default: the last complete month)"), ("format" = Option<String>, Query, description = "json (default), csv or html")), responses((status = 200, description = "the server's monthly report: availability, incidents, objectives against the month's budget, latency percentiles", body = report::MonthlyReport), BadInput, NoSuch, Guarded), security(("bearer" = [])))]
pub async fn server_report(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<ReportQuery>,
) -> Result<Response, ApiError> {
    let server = app
        .store
        .get_server(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no server with id or slug '{id}'")))?;
    let r = monthly(&app, &server, q.month.as_deref()).await?;
    match q.format.as_deref().unwrap_or("json") {
        "json" => Ok(Json(r).into_response()),
        "csv" => {
            let body = report::csv(&r).map_err(ApiError::Internal)?;
            let file = format!("attachment; filename=\"{}-{}.csv\"", r.server, r.month);
            let mut resp =
                ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], body).into_response();
            if let Ok(v) = HeaderValue::from_str(&file) {
                resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
            }
            Ok(resp)
        }
        "html" => Ok(Html(
            crate::web::report_page(&r).map_err(|e| ApiError::Internal(e.to_string()))?,
        )
        .into_response()),
        other => Err(ApiError::field(
            "format",
            format!("'{other}' is not one of json, csv, html"),
        )),
    }
}
