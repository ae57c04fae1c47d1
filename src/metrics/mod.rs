//! Prometheus metrics on an explicit registry (no globals), served at `/metrics`.
//!
//! Labels are bounded: server slug, region, phase, verdict, failure kind, channel kind and
//! outcome — never a URL or an error message. Base units (seconds), `_total` counters.
//!
//! - `servers.rs`: the per-server series, compact (a table entry per server, not an object
//!   per series) and written at scrape time.

mod servers;

use std::sync::Arc;
use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use crate::monitor::ServerStatus;
use crate::probe::{ProbeReport, Verdict};

/// Every metric mcpwatch exports.
pub struct Metrics {
    registry: Registry,
    /// Probe outcome, state and schema changes per server (and region).
    servers: servers::ServerSeries,
    phase_duration: HistogramVec,
    probes_total: IntCounterVec,
    scheduler_lag: HistogramVec,
    pub probes_in_flight: IntGaugeVec,
    pub scheduled_servers: IntGaugeVec,
    pub cluster: ClusterMetrics,
    pub slo: SloMetrics,
    /// When each probe credential with a known expiry expires (label `credential`: `bearer`
    /// or `oauth_client`), as the leader's credential watchdog last read it.
    pub credential_expiry: IntGaugeVec,
    deliveries: IntCounterVec,
    pub outbox_pending: IntGauge,
    /// Results queued for the ingest, and how long the oldest one not yet stored has waited.
    pub ingest_queue_depth: IntGauge,
    pub ingest_waiting_seconds: prometheus::Gauge,
    /// Results spilled to disk past the queue, their bytes, and those dropped past the bound.
    pub ingest_spilled_results: IntGauge,
    pub ingest_spill_bytes: IntGauge,
    ingest_spill_dropped: prometheus::IntCounter,
    build_info: IntGaugeVec,
}

#[cfg(test)]
const STATES: [ServerStatus; 6] = [
    ServerStatus::Unknown,
    ServerStatus::Up,
    ServerStatus::Degraded,
    ServerStatus::Down,
    ServerStatus::AuthFailed,
    ServerStatus::Paused,
];

/// Creates metrics and registers each in the registry it wraps.
struct Registrar<'a>(&'a Registry);

impl Registrar<'_> {
    fn add<C: prometheus::core::Collector + Clone + 'static>(
        &self,
        c: C,
    ) -> Result<C, prometheus::Error> {
        self.0.register(Box::new(c.clone()))?;
        Ok(c)
    }

    fn gauge(&self, name: &str, help: &str) -> Result<IntGauge, prometheus::Error> {
        self.add(IntGauge::new(name, help)?)
    }

    fn gauges(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> Result<IntGaugeVec, prometheus::Error> {
        self.add(IntGaugeVec::new(Opts::new(name, help), labels)?)
    }

    fn counters(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> Result<IntCounterVec, prometheus::Error> {
        self.add(IntCounterVec::new(Opts::new(name, help), labels)?)
    }

    fn histograms(
        &self,
        name: &str,
        help: &str,
        buckets: &[f64],
        labels: &[&str],
    ) -> Result<HistogramVec, prometheus::Error> {
        let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
        self.add(HistogramVec::new(opts, labels)?)
    }
}

/// This replica among others: its buckets, the replicas it sees, the leader lease.
pub struct ClusterMetrics {
    /// Buckets of servers this replica owns.
    pub buckets_owned: IntGauge,
    /// Replicas seen live.
    pub replicas_live: IntGauge,
    /// The leader lease held (1/0), and its term.
    pub leader: IntGauge,
    pub leader_term: IntGauge,
    /// Buckets gained or lost.
    pub bucket_handovers: IntCounterVec,
}

impl ClusterMetrics {
    fn new(r: &Registrar<'_>) -> Result<Self, prometheus::Error> {
        Ok(ClusterMetrics {
            buckets_owned: r.gauge(
                "mcpwatch_buckets_owned",
                "Buckets of servers this replica probes and decides (all 128 on a single node)",
            )?,
            replicas_live: r.gauge(
                "mcpwatch_replicas_live",
                "Replicas with a live heartbeat, as this one last saw them",
            )?,
            leader: r.gauge(
                "mcpwatch_leader",
                "1 while this replica holds the leader lease (retention, reminders, summaries)",
            )?,
            leader_term: r.gauge(
                "mcpwatch_leader_term",
                "The term of the leader lease this replica holds (0 when it holds none)",
            )?,
            bucket_handovers: r.counters(
                "mcpwatch_bucket_handovers_total",
                "Buckets this replica took (gained) or gave up or lost (lost)",
                &["change"],
            )?,
        })
    }
}

/// Every objective's figures, as the leader last evaluated them (label `slo`: its name).
pub struct SloMetrics {
    pub objective: prometheus::GaugeVec,
    pub attainment: prometheus::GaugeVec,
    pub budget_remaining: prometheus::GaugeVec,
    /// Label `window`: 5m, 30m, 1h, 6h.
    pub burn_rate: prometheus::GaugeVec,
    pub burning: prometheus::GaugeVec,
    pub latency_attainment: prometheus::GaugeVec,
}

impl SloMetrics {
    fn new(r: &Registrar<'_>) -> Result<Self, prometheus::Error> {
        let vec = |name: &str, help: &str, labels: &[&str]| {
            r.add(prometheus::GaugeVec::new(Opts::new(name, help), labels)?)
        };
        Ok(SloMetrics {
            objective: vec(
                "mcpwatch_slo_objective_ratio",
                "The availability an objective promises (e.g. 0.999)",
                &["slo"],
            )?,
            attainment: vec(
                "mcpwatch_slo_attainment_ratio",
                "Availability over the objective's window (time outside outages)",
                &["slo"],
            )?,
            budget_remaining: vec(
                "mcpwatch_slo_error_budget_remaining_ratio",
                "Share of the window's error budget not spent (negative when overspent)",
                &["slo"],
            )?,
            burn_rate: vec(
                "mcpwatch_slo_burn_rate",
                "How fast the error budget burns over a window (1: it lasts exactly the objective's window)",
                &["slo", "window"],
            )?,
            burning: vec(
                "mcpwatch_slo_burning",
                "1 while the objective's burn-rate alert is open",
                &["slo"],
            )?,
            latency_attainment: vec(
                "mcpwatch_slo_latency_attainment_ratio",
                "Share of successful probes within the objective's latency bound over its window",
                &["slo"],
            )?,
        })
    }

    /// Forget every objective's series (before setting those that still exist).
    pub fn reset(&self) {
        for v in [
            &self.objective,
            &self.attainment,
            &self.budget_remaining,
            &self.burn_rate,
            &self.burning,
            &self.latency_attainment,
        ] {
            v.reset();
        }
    }
}

/// Probe phases: from a fast loopback answer to the 10 s timeout.
const PHASE_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Scheduling lag: on time to a whole interval late.
const LAG_BUCKETS: [f64; 10] = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0];

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let r = Registrar(&registry);
        let metrics = Metrics {
            servers: servers::ServerSeries::default(),
            phase_duration: r.histograms(
                "mcpwatch_probe_phase_duration_seconds",
                "Probe phase durations",
                &PHASE_BUCKETS,
                &["region", "phase"],
            )?,
            probes_total: r.counters(
                "mcpwatch_probes_total",
                "Probes by verdict and failure kind",
                &["region", "verdict", "kind"],
            )?,
            scheduler_lag: r.histograms(
                "mcpwatch_scheduler_lag_seconds",
                "Delay between a probe's due time and its start",
                &LAG_BUCKETS,
                &["region"],
            )?,
            probes_in_flight: r.gauges(
                "mcpwatch_probes_in_flight",
                "Probes running now",
                &["region"],
            )?,
            scheduled_servers: r.gauges(
                "mcpwatch_scheduled_servers",
                "Servers this node's scheduler probes (those of its buckets)",
                &["region"],
            )?,
            cluster: ClusterMetrics::new(&r)?,
            slo: SloMetrics::new(&r)?,
            credential_expiry: r.gauges(
                "mcpwatch_credential_expiry_timestamp_seconds",
                "When a probe credential expires (Unix seconds): a static bearer JWT's exp, or an OAuth client secret's expires_at",
                &["server", "credential"],
            )?,
            deliveries: r.counters(
                "mcpwatch_alert_deliveries_total",
                "Alert delivery attempts by channel kind and outcome",
                &["channel_kind", "outcome"],
            )?,
            outbox_pending: r.gauge(
                "mcpwatch_outbox_pending",
                "Alert deliveries not yet delivered or dead",
            )?,
            ingest_queue_depth: r.gauge(
                "mcpwatch_ingest_queue_depth",
                "Results and changes queued for the ingest, not yet taken into a batch",
            )?,
            ingest_waiting_seconds: r.add(prometheus::Gauge::new(
                "mcpwatch_ingest_waiting_seconds",
                "How long the oldest result not yet stored has waited (0 when writes go through)",
            )?)?,
            ingest_spilled_results: r.gauge(
                "mcpwatch_ingest_spilled_results",
                "Results spilled to disk past the ingest queue, not yet stored",
            )?,
            ingest_spill_bytes: r.gauge(
                "mcpwatch_ingest_spill_bytes",
                "Bytes the spilled results take on disk",
            )?,
            ingest_spill_dropped: r.add(prometheus::IntCounter::new(
                "mcpwatch_ingest_spill_dropped_total",
                "Spilled results dropped: past MCPWATCH_INGEST_SPILL_MB (oldest first) or unreadable",
            )?)?,
            build_info: r.gauges("mcpwatch_build_info", "Build information", &["version"])?,
            registry,
        };
        metrics
            .build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        #[cfg(target_os = "linux")]
        metrics.registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        Ok(metrics)
    }

    /// Spilled results dropped since the start (a count kept by the spill).
    pub fn set_spill_dropped(&self, total: u64) {
        let counted = self.ingest_spill_dropped.get();
        self.ingest_spill_dropped
            .inc_by(total.saturating_sub(counted));
    }

    /// One probe's report: its server's series and its region's counts.
    pub fn observe_probe(&self, server: &str, region: &str, report: &ProbeReport, lag: Duration) {
        self.observe_server_probe(server, region, report);
        self.observe_region_probe(region, report, lag);
    }

    /// A probe's report in its server's series (kept by the replica that owns the server).
    pub fn observe_server_probe(&self, server: &str, region: &str, report: &ProbeReport) {
        let ok = matches!(report.verdict, Verdict::Up | Verdict::Degraded);
        self.servers.probed(
            server,
            region,
            ok,
            report.timings_ms.total / 1000.0,
            report
                .schema_hash
                .is_some()
                .then(|| u32::try_from(report.tools_count).unwrap_or(u32::MAX)),
            report.tls.as_ref().map(|t| t.not_after_unix),
        );
        self.servers.called(server, region, &report.calls);
    }

    /// A probe's report in its region's counts and histograms (by whichever replica took it).
    pub fn observe_region_probe(&self, region: &str, report: &ProbeReport, lag: Duration) {
        let kind = report
            .failure
            .as_ref()
            .map(|f| f.kind.as_str())
            .unwrap_or("");
        self.probes_total
            .with_label_values(&[region, report.verdict.as_str(), kind])
            .inc();
        let t = &report.timings_ms;
        for (phase, ms) in [
            ("dns", t.dns),
            ("connect", t.connect),
            ("tls", t.tls),
            ("handshake", t.handshake),
            ("tools_list", t.tools_list),
            ("total", Some(t.total)),
        ] {
            if let Some(ms) = ms {
                self.phase_duration
                    .with_label_values(&[region, phase])
                    .observe(ms / 1000.0);
            }
        }
        self.scheduler_lag
            .with_label_values(&[region])
            .observe(lag.as_secs_f64());
    }

    /// A server's state changed (or was loaded).
    pub fn server_state(&self, server: &str, status: ServerStatus) {
        self.servers.state(server, status);
    }

    pub fn schema_changed(&self, server: &str) {
        self.servers.schema_changed(server);
    }

    pub fn delivery(&self, channel_kind: &str, outcome: &str) {
        self.deliveries
            .with_label_values(&[channel_kind, outcome])
            .inc();
    }

    /// Forget a deleted server's series.
    pub fn forget_server(&self, server: &str) {
        self.servers.forget(server);
    }

    /// The name of every metric family this exports (also the ones with no samples yet), so
    /// the shipped dashboard and alert rules can be checked against it.
    pub fn family_names(&self) -> Vec<String> {
        use prometheus::core::Collector;
        let collectors: [&dyn Collector; 25] = [
            &self.credential_expiry,
            &self.slo.objective,
            &self.slo.attainment,
            &self.slo.budget_remaining,
            &self.slo.burn_rate,
            &self.slo.burning,
            &self.slo.latency_attainment,
            &self.phase_duration,
            &self.probes_total,
            &self.scheduler_lag,
            &self.probes_in_flight,
            &self.scheduled_servers,
            &self.cluster.buckets_owned,
            &self.cluster.replicas_live,
            &self.cluster.leader,
            &self.cluster.leader_term,
            &self.cluster.bucket_handovers,
            &self.deliveries,
            &self.outbox_pending,
            &self.ingest_queue_depth,
            &self.ingest_waiting_seconds,
            &self.ingest_spilled_results,
            &self.ingest_spill_bytes,
            &self.ingest_spill_dropped,
            &self.build_info,
        ];
        collectors
            .iter()
            .flat_map(|c| c.desc().into_iter().map(|d| d.fq_name.clone()))
            .chain(servers::ServerSeries::family_names())
            .collect()
    }

    pub fn render(&self) -> String {
        let mut text = self.registry_text();
        self.servers.render(&mut text);
        text
    }

    /// The exposition in pieces, for a streamed scrape: the registry's families, then the
    /// per-server ones a chunk of servers at a time (see `servers.rs`).
    pub fn chunks(self: Arc<Self>) -> impl Iterator<Item = String> + Send + 'static {
        let head = self.registry_text();
        let mut cursor = servers::Cursor::default();
        std::iter::once(head).chain(std::iter::from_fn(move || {
            // Room for a whole piece at once: a string grown by doubling left a trail of
            // freed blocks of every size at each scrape.
            let mut out = String::with_capacity(servers::PIECE_BYTES);
            self.servers
                .render_next(&mut cursor, &mut out)
                .then_some(out)
        }))
    }

    /// The families the `prometheus` registry holds (aggregates: small at any fleet size).
    fn registry_text(&self) -> String {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `/metrics` costs per monitored server, counted on 1,000 servers over TLS that
    /// went through every state: the README's series budget comes from this.
    #[test]
    fn series_per_server_stay_bounded() {
        let m = Metrics::new().unwrap();
        let servers = 1_000;
        for i in 0..servers {
            let name = format!("server-{i}");
            let mut r = ProbeReport::new("https://x.example/mcp".into(), String::new());
            r.verdict = Verdict::Up;
            r.schema_hash = Some("sha256:a".into());
            r.tls = Some(crate::probe::TlsCertInfo {
                not_after: "2030-03-17T17:46:40Z".into(),
                not_after_unix: 1_900_000_000,
            });
            m.observe_probe(&name, "local", &r, Duration::ZERO);
            for s in STATES {
                m.server_state(&name, s);
            }
            m.server_state(&name, ServerStatus::Up);
            m.schema_changed(&name);
        }
        let text = m.render();
        let per_server = text
            .lines()
            .filter(|l| !l.starts_with('#') && l.contains("server=\""))
            .count()
            / servers;
        assert_eq!(
            per_server, 7,
            "one per server gauge, one state, one counter"
        );
        let states = text
            .lines()
            .filter(|l| {
                l.starts_with("mcpwatch_server_state{") && l.contains("server=\"server-7\"")
            })
            .collect::<Vec<_>>();
        assert_eq!(states.len(), 1, "only the current state: {states:?}");
        assert!(states[0].contains("state=\"up\""), "{states:?}");
    }
}
