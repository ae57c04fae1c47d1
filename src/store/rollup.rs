//! Rollups: per (server, region, hour) and per (server, day) counts of probes, successes and
//! failures by kind, with a latency histogram that merges exactly.
//!
//! The histogram has log buckets 2^(1/8) wide (each about 9 % of its value, so a percentile read
//! off it is within ±4.4 %). It is sparse: a server whose latency is steady fills a handful of
//! buckets. Merging two rollups adds their buckets, so hourly and daily rows can be updated
//! batch by batch without keeping every sample, and p50/p95 stay right across merges.

use std::collections::BTreeMap;

use super::model::ResultRecord;
use crate::probe::{FailureKind, Verdict};

pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 86_400_000;

/// Buckets per doubling of latency.
const BUCKETS_PER_OCTAVE: f64 = 8.0;

/// The start of the UTC hour holding `ms`.
pub fn hour_start(ms: i64) -> i64 {
    ms.div_euclid(HOUR_MS) * HOUR_MS
}

/// Midnight UTC of the day holding `ms`.
pub fn day_start(ms: i64) -> i64 {
    ms.div_euclid(DAY_MS) * DAY_MS
}

/// Whether a probe verdict counts toward uptime: the server answered MCP. `auth_required` is a
/// live server that wants credentials (DESIGN: alive).
pub fn counts_as_success(verdict: Verdict) -> bool {
    matches!(
        verdict,
        Verdict::Up | Verdict::Degraded | Verdict::AuthRequired
    )
}

fn bucket_of(ms: f64) -> i32 {
    // Sub-10 µs latencies share one bucket; nothing real is faster.
    (ms.max(0.01).log2() * BUCKETS_PER_OCTAVE).floor() as i32
}

/// The geometric middle of a bucket.
fn bucket_value(b: i32) -> f64 {
    ((f64::from(b) + 0.5) / BUCKETS_PER_OCTAVE).exp2()
}

/// Counts and latency of a set of probes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rollup {
    pub probes: i64,
    pub successes: i64,
    /// Failure kind → count.
    pub failures: BTreeMap<String, i64>,
    /// Latency bucket → count, successful probes only (a timeout is not a latency).
    pub hist: BTreeMap<i32, i64>,
    pub max_ms: Option<f64>,
}

impl Rollup {
    pub fn add(&mut self, r: &ResultRecord) {
        self.probes += 1;
        if counts_as_success(r.verdict) {
            self.successes += 1;
            *self.hist.entry(bucket_of(r.duration_ms)).or_default() += 1;
            self.max_ms = Some(self.max_ms.map_or(r.duration_ms, |m| m.max(r.duration_ms)));
        } else {
            let kind = r.failure_kind.map_or("unknown", FailureKind::as_str);
            *self.failures.entry(kind.to_string()).or_default() += 1;
        }
    }

    pub fn merge(&mut self, o: &Rollup) {
        self.probes += o.probes;
        self.successes += o.successes;
        for (k, n) in &o.failures {
            *self.failures.entry(k.clone()).or_default() += n;
        }
        for (b, n) in &o.hist {
            *self.hist.entry(*b).or_default() += n;
        }
        self.max_ms = match (self.max_ms, o.max_ms) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }

    /// The latency at quantile `q` (0–1) of successful probes, never above the maximum seen.
    pub fn percentile(&self, q: f64) -> Option<f64> {
        let n: i64 = self.hist.values().sum();
        if n == 0 {
            return None;
        }
        let rank = ((q * n as f64).ceil() as i64).clamp(1, n);
        let mut seen = 0;
        for (b, c) in &self.hist {
            seen += c;
            if seen >= rank {
                let v = bucket_value(*b);
                return Some(self.max_ms.map_or(v, |m| v.min(m)));
            }
        }
        self.max_ms
    }

    /// (successful probes within `ms`, successful probes): a bucket counts as within when its
    /// middle is, so the bound is met to within half a bucket (±4.4 %).
    pub fn within(&self, ms: f64) -> (i64, i64) {
        let total = self.hist.values().sum();
        let within = self
            .hist
            .iter()
            .filter(|(b, _)| bucket_value(**b) <= ms)
            .map(|(_, n)| n)
            .sum();
        (within, total)
    }

    pub fn failures_json(&self) -> String {
        serde_json::to_string(&self.failures).unwrap_or_else(|_| "{}".into())
    }

    pub fn hist_json(&self) -> String {
        let pairs: Vec<[i64; 2]> = self.hist.iter().map(|(b, n)| [i64::from(*b), *n]).collect();
        serde_json::to_string(&pairs).unwrap_or_else(|_| "[]".into())
    }

    /// Read back the stored columns.
    pub fn from_columns(
        probes: i64,
        successes: i64,
        failures: &str,
        hist: &str,
        max_ms: Option<f64>,
    ) -> Result<Self, String> {
        let failures: BTreeMap<String, i64> =
            serde_json::from_str(failures).map_err(|e| format!("rollup failures: {e}"))?;
        let pairs: Vec<[i64; 2]> =
            serde_json::from_str(hist).map_err(|e| format!("rollup histogram: {e}"))?;
        let hist = pairs
            .into_iter()
            .map(|[b, n]| (b as i32, n))
            .collect::<BTreeMap<_, _>>();
        Ok(Rollup {
            probes,
            successes,
            failures,
            hist,
            max_ms,
        })
    }
}

/// What one batch of new results adds to the hourly and daily rollups.
#[derive(Debug, Default)]
pub struct RollupDeltas {
    /// (server id, region, hour start) → counts.
    pub hourly: BTreeMap<(String, String, i64), Rollup>,
    /// (server id, day start) → counts over all regions.
    pub daily: BTreeMap<(String, i64), Rollup>,
}

impl RollupDeltas {
    pub fn add(&mut self, r: &ResultRecord) {
        let hour = (
            r.server_id.clone(),
            r.region.clone(),
            hour_start(r.started_at),
        );
        self.hourly.entry(hour).or_default().add(r);
        let day = (r.server_id.clone(), day_start(r.started_at));
        self.daily.entry(day).or_default().add(r);
    }
}

/// One hourly rollup row as the status page reads it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct HourlyRollup {
    pub server_id: String,
    pub region: String,
    pub hour_start: i64,
    pub probes: i64,
    pub successes: i64,
    #[sqlx(rename = "latency_p50_ms")]
    pub p50_ms: Option<f64>,
    #[sqlx(rename = "latency_p95_ms")]
    pub p95_ms: Option<f64>,
    #[sqlx(rename = "latency_max_ms")]
    pub max_ms: Option<f64>,
}

/// One daily rollup row (all regions) as the status page reads it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct DailyRollup {
    pub server_id: String,
    pub day_start: i64,
    pub probes: i64,
    pub successes: i64,
    #[sqlx(rename = "latency_p50_ms")]
    pub p50_ms: Option<f64>,
    #[sqlx(rename = "latency_p95_ms")]
    pub p95_ms: Option<f64>,
    #[sqlx(rename = "latency_max_ms")]
    pub max_ms: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(verdict: &str, ms: f64, kind: Option<&str>) -> ResultRecord {
        ResultRecord {
            id: String::new(),
            server_id: "s".into(),
            region: "local".into(),
            started_at: 0,
            duration_ms: ms,
            dns_ms: None,
            connect_ms: None,
            tls_ms: None,
            handshake_ms: None,
            tools_list_ms: None,
            verdict: verdict.parse().unwrap(),
            failure_kind: kind.map(|k| k.parse().unwrap()),
            failure_phase: None,
            failure_message: None,
            http_status: None,
            jsonrpc_code: None,
            era: None,
            protocol_version: None,
            server_name: None,
            server_version: None,
            tool_count: 0,
            schema_hash: None,
            tls_not_after: None,
            vantage_unhealthy: false,
            trace_id: None,
            calls: None,
            stream: None,
            contract: None,
        }
    }

    #[test]
    fn percentiles_are_within_the_bucket_error() {
        let mut r = Rollup::default();
        for ms in 1..=1000 {
            r.add(&result("up", f64::from(ms), None));
        }
        let p50 = r.percentile(0.5).unwrap();
        let p95 = r.percentile(0.95).unwrap();
        assert!((p50 / 500.0 - 1.0).abs() < 0.05, "p50 {p50}");
        assert!((p95 / 950.0 - 1.0).abs() < 0.05, "p95 {p95}");
        let p100 = r.percentile(1.0).unwrap();
        assert!(p100 <= 1000.0 && p100 > 950.0, "p100 {p100}");
        assert_eq!(r.max_ms, Some(1000.0));
    }

    #[test]
    fn merging_two_halves_equals_adding_all() {
        let samples: Vec<f64> = (0..200).map(|i| 5.0 + f64::from(i) * 3.7).collect();
        let (mut a, mut b, mut all) = (Rollup::default(), Rollup::default(), Rollup::default());
        for (i, ms) in samples.iter().enumerate() {
            let r = if i % 7 == 0 {
                result("down", *ms, Some("timeout"))
            } else {
                result("up", *ms, None)
            };
            all.add(&r);
            if i % 2 == 0 { a.add(&r) } else { b.add(&r) }
        }
        a.merge(&b);
        assert_eq!(a, all);
        assert_eq!(all.failures.get("timeout"), Some(&29));
        assert_eq!(all.probes, 200);
        assert_eq!(all.successes, 171);
    }

    #[test]
    fn columns_round_trip() {
        let mut r = Rollup::default();
        r.add(&result("up", 42.0, None));
        r.add(&result("down", 9.0, Some("connect")));
        let back = Rollup::from_columns(
            r.probes,
            r.successes,
            &r.failures_json(),
            &r.hist_json(),
            r.max_ms,
        )
        .unwrap();
        assert_eq!(back, r);
        assert!(Rollup::from_columns(1, 1, "{", "[]", None).is_err());
    }

    #[test]
    fn failures_carry_no_latency_and_auth_required_counts_as_alive() {
        let mut r = Rollup::default();
        r.add(&result("down", 30_000.0, Some("timeout")));
        r.add(&result("auth_required", 12.0, None));
        assert_eq!((r.probes, r.successes), (2, 1));
        assert_eq!(r.max_ms, Some(12.0));
    }

    #[test]
    fn boundaries_are_utc() {
        assert_eq!(day_start(DAY_MS * 3 + 5), DAY_MS * 3);
        assert_eq!(hour_start(HOUR_MS * 7 - 1), HOUR_MS * 6);
        assert_eq!(day_start(-1), -DAY_MS);
    }
}
