//! The evaluator: every 30 s, on the replica that leads, each objective's figures from its
//! servers' outages (incidents) and daily rollups; the metrics set; and, when a burn-rate rule
//! starts or stops holding, `slo.burning` or `slo.recovered` with its deliveries, written in
//! one transaction that only succeeds if no other leader decided first.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{Figures, Transition, Watched, figures, transition};
use crate::clock::{Clock, rfc3339};
use crate::metrics::Metrics;
use crate::monitor::availability::Outage;
use crate::store::rollup::day_start;
use crate::store::{
    ChannelRecord, DeliveryRecord, EventRecord, Scope, ServerRecord, SloAlert, SloRecord, Store,
    StoreResult,
};

/// How often the objectives are evaluated.
pub const EVERY: Duration = Duration::from_secs(30);

/// The servers an objective covers: its server, or every server with its tag.
pub fn members<'a>(slo: &SloRecord, servers: &'a [ServerRecord]) -> Vec<&'a ServerRecord> {
    servers
        .iter()
        .filter(|s| match (&slo.server_id, &slo.tag) {
            (Some(id), _) => &s.id == id,
            (None, Some(tag)) => s.tags.contains(tag),
            (None, None) => false,
        })
        .collect()
}

/// The figures of `slo` at `now` for its `members`.
pub async fn evaluate(
    store: &dyn Store,
    slo: &SloRecord,
    members: &[&ServerRecord],
    now: i64,
) -> StoreResult<Figures> {
    let objective = slo.objective();
    let from = now - objective.window_ms();
    let mut watched = Vec::with_capacity(members.len());
    for m in members {
        let outages = store
            .incidents_since(Scope::Server(&m.id), from)
            .await?
            .iter()
            .map(|i| Outage {
                opened_at: i.opened_at,
                closed_at: i.closed_at,
            })
            .collect();
        watched.push(Watched {
            since: m.created_at,
            outages,
        });
    }
    let latency = match objective.latency_ms {
        Some(bound) => {
            let ids: Vec<String> = members.iter().map(|m| m.id.clone()).collect();
            let days = store
                .merged_daily(&ids, day_start(from), day_start(now) + 86_400_000)
                .await?;
            Some(days.within(bound))
        }
        None => None,
    };
    Ok(figures(&objective, &watched, latency, now))
}

/// The JSON the API, the page and events show of figures.
pub fn figures_json(f: &Figures) -> Value {
    let burn: serde_json::Map<String, Value> = f
        .burn
        .iter()
        .map(|(name, rate)| (name.to_string(), json!(rate)))
        .collect();
    json!({
        "attainment": f.attainment,
        "budget_seconds": f.budget_seconds,
        "spent_seconds": f.spent_seconds,
        "budget_left": f.budget_left,
        "burn_rates": burn,
        "latency_attainment": f.latency_attainment,
    })
}

/// Evaluates every objective; alerts go through the outbox.
pub struct SloWatch {
    pub store: Arc<dyn Store>,
    pub clock: Clock,
    pub metrics: Option<Arc<Metrics>>,
    /// The dispatcher's doorbell.
    pub wake: Arc<Notify>,
}

impl SloWatch {
    /// Every `EVERY` while `leader` is set, until `stop`.
    pub async fn run(self, leader: Arc<AtomicBool>, stop: CancellationToken) {
        let what = "objectives not evaluated";
        crate::cluster::while_leading((EVERY, what), leader, stop, || self.tick()).await;
    }

    /// Evaluate every objective once; the alert events it wrote.
    pub async fn tick(&self) -> StoreResult<Vec<EventRecord>> {
        let now = (self.clock)();
        let slos = self.store.list_slos().await?;
        if let Some(m) = &self.metrics {
            m.slo.reset();
        }
        if slos.is_empty() {
            return Ok(Vec::new());
        }
        let servers = self.store.all_servers().await?;
        let channels = self.store.list_channels().await?;
        let mut raised = Vec::new();
        for slo in &slos {
            let members = members(slo, &servers);
            let f = evaluate(self.store.as_ref(), slo, &members, now).await?;
            self.export(slo, &f);
            let event = match transition(&f, slo.burning_since.is_some()) {
                Transition::Stay => continue,
                Transition::Burning(rule) => alert_event(slo, &members, &f, Some(&rule), now),
                Transition::Recovered => alert_event(slo, &members, &f, None, now),
            };
            let outbox: Vec<DeliveryRecord> = channels
                .iter()
                .filter(|c| routes_slo(c, &event.kind, slo, &members))
                .map(|c| DeliveryRecord::pending(&event.id, &c.id, now))
                .collect();
            let burning = event.kind == "slo.burning";
            let rule = event.payload["rule"].as_str().map(str::to_string);
            let alert = SloAlert {
                slo_id: &slo.id,
                expected: slo.burning_since,
                burning_since: burning.then_some(now),
                rule: rule.as_deref().filter(|_| burning),
                event: &event,
                outbox: &outbox,
            };
            if self.store.record_slo_alert(&alert).await? {
                tracing::warn!(slo = %slo.name, event = %event.kind, "objective alert");
                self.wake.notify_one();
                raised.push(event);
            }
        }
        Ok(raised)
    }

    fn export(&self, slo: &SloRecord, f: &Figures) {
        let Some(m) = &self.metrics else { return };
        let s = &m.slo;
        let name = slo.name.as_str();
        s.objective.with_label_values(&[name]).set(slo.objective);
        if let Some(a) = f.attainment {
            s.attainment.with_label_values(&[name]).set(a);
        }
        s.budget_remaining
            .with_label_values(&[name])
            .set(f.budget_left);
        for (window, rate) in &f.burn {
            if let Some(r) = rate {
                s.burn_rate.with_label_values(&[name, window]).set(*r);
            }
        }
        s.burning
            .with_label_values(&[name])
            .set(if slo.burning_since.is_some() {
                1.0
            } else {
                0.0
            });
        if let Some(l) = f.latency_attainment {
            s.latency_attainment.with_label_values(&[name]).set(l);
        }
    }
}

/// Whether channel `c` wants `kind` about `slo`: it follows one of its servers, its tag, or
/// every server.
pub fn routes_slo(
    c: &ChannelRecord,
    kind: &str,
    slo: &SloRecord,
    members: &[&ServerRecord],
) -> bool {
    if !c.enabled || !c.events.iter().any(|e| e == kind) {
        return false;
    }
    if c.server_ids.is_empty() && c.tags.is_empty() {
        return true;
    }
    slo.tag.as_ref().is_some_and(|t| c.tags.contains(t))
        || members
            .iter()
            .any(|m| c.server_ids.contains(&m.id) || c.tags.iter().any(|t| m.tags.contains(t)))
}

/// `slo.burning` (with the rule that fired) or `slo.recovered`.
fn alert_event(
    slo: &SloRecord,
    members: &[&ServerRecord],
    f: &Figures,
    rule: Option<&str>,
    now: i64,
) -> EventRecord {
    let server = slo
        .server_id
        .as_ref()
        .and_then(|_| members.first())
        .map(|s| s.event_json());
    let mut payload = json!({
        "slo": {
            "id": slo.id, "name": slo.name, "objective": slo.objective,
            "window_days": slo.window_days, "tag": slo.tag,
        },
        "server": server,
        "figures": figures_json(f),
    });
    match rule {
        Some(rule) => payload["rule"] = json!(rule),
        None => {
            let since = slo.burning_since.unwrap_or(now);
            payload["burning_since"] = json!(rfc3339(since));
            payload["burned_for_seconds"] = json!((now - since) / 1000);
        }
    }
    EventRecord {
        id: uuid::Uuid::now_v7().to_string(),
        server_id: slo.server_id.clone(),
        kind: if rule.is_some() {
            "slo.burning"
        } else {
            "slo.recovered"
        }
        .into(),
        at: now,
        payload,
    }
}
