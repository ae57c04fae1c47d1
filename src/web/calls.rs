//! A server's synthetic tool calls on its page (issue 16 §3): each call the operator set, with
//! the write override shown where one is set, what its last probe's call did, and a chart of
//! its latency over the recent probes; and its streaming check (§4), if it has one. The charts read the newest stored results (at most
//! [`PROBES_CHARTED`]); only servers with calls pay for that read.

use crate::probe::{CallOutcome, CallPlan, StreamOutcome};
use crate::store::ResultRecord;

use super::svg::{self, Chart};
use super::words;

/// Probes a tool's latency chart spans (an hour at the default 60 s interval).
pub const PROBES_CHARTED: u32 = 60;

/// One configured call as the page shows it.
pub struct CallRow {
    pub tool: String,
    /// The streaming check's call rather than a synthetic call.
    pub streaming: bool,
    /// Whether the operator allowed calling it though the server does not mark it read-only.
    pub write_override: bool,
    /// The last probe's outcome in words: "ok", or the expectation that failed.
    pub outcome: String,
    /// `ok`, `failed` or `none` (not called yet), for the outcome's look.
    pub look: &'static str,
    pub latency: String,
    /// Latency over the recent probes, oldest first; `None` until one answered.
    pub chart: Option<Chart>,
}

/// The rows for `plan`, from `recent` results (newest first, any region).
pub fn rows(plan: &CallPlan, recent: &[ResultRecord]) -> Vec<CallRow> {
    let outcomes: Vec<Vec<CallOutcome>> = recent
        .iter()
        .map(|r| {
            r.calls
                .as_deref()
                .and_then(|j| serde_json::from_str(j).ok())
                .unwrap_or_default()
        })
        .collect();
    plan.calls
        .iter()
        .map(|call| {
            let of_tool = |o: &Vec<CallOutcome>| o.iter().find(|c| c.tool == call.tool).cloned();
            let last = outcomes.iter().find_map(of_tool);
            let (outcome, look) = match &last {
                None => ("not called yet".to_string(), "none"),
                Some(c) => match &c.failure {
                    None => ("ok".to_string(), "ok"),
                    Some(f) => (f.clone(), "failed"),
                },
            };
            CallRow {
                tool: call.tool.clone(),
                streaming: false,
                write_override: call.allow_write,
                outcome,
                look,
                latency: last
                    .as_ref()
                    .and_then(|c| c.latency_ms)
                    .map_or("—".into(), words::latency),
                chart: chart(&outcomes, &call.tool, recent),
            }
        })
        .chain(plan.stream.as_ref().map(|call| stream_row(call, recent)))
        .collect()
}

/// The streaming check's row: how its progress arrived at the last probe that made it.
fn stream_row(call: &crate::probe::ToolCall, recent: &[ResultRecord]) -> CallRow {
    let last: Option<StreamOutcome> = recent.iter().find_map(|r| {
        r.stream
            .as_deref()
            .and_then(|j| serde_json::from_str(j).ok())
    });
    let (outcome, look) = match &last {
        None => ("not checked yet".to_string(), "none"),
        Some(s) => match &s.failure {
            None => (
                format!("progress streamed ({} notifications)", s.notifications),
                "ok",
            ),
            Some(f) => (f.clone(), "failed"),
        },
    };
    CallRow {
        tool: call.tool.clone(),
        streaming: true,
        write_override: call.allow_write,
        outcome,
        look,
        latency: last
            .and_then(|s| s.result_ms)
            .map_or("—".into(), words::latency),
        chart: None,
    }
}

/// The tool's latency per probe, oldest first; `None` when it never answered.
fn chart(outcomes: &[Vec<CallOutcome>], tool: &str, recent: &[ResultRecord]) -> Option<Chart> {
    let slots: Vec<(Option<f64>, Option<f64>)> = outcomes
        .iter()
        .rev()
        .map(|o| {
            let ms = o.iter().find(|c| c.tool == tool).and_then(|c| c.latency_ms);
            (ms, None)
        })
        .collect();
    if slots.iter().all(|s| s.0.is_none()) {
        return None;
    }
    let (first, last) = (recent.last()?, recent.first()?);
    Some(svg::chart(
        "Tool call latency",
        &slots,
        words::date_time(first.started_at),
        words::date_time(last.started_at),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::ToolCall;
    use serde_json::json;

    fn result(at: i64, calls: Option<serde_json::Value>) -> ResultRecord {
        let mut r: ResultRecord = serde_json::from_value(json!({
            "id": at.to_string(), "server_id": "s", "region": "local", "started_at": at,
            "duration_ms": 5.0, "verdict": "up", "tool_count": 1}))
        .unwrap();
        r.calls = calls.map(|c| c.to_string());
        r
    }

    #[test]
    fn rows_show_the_last_outcome_the_override_and_a_chart() {
        let mut write = ToolCall::new("reset", json!({}));
        write.allow_write = true;
        let plan = CallPlan {
            calls: vec![ToolCall::new("get-sum", json!({"a": 1})), write],
            failure_is_down: false,
            stream: None,
        };
        // Newest first: the last probe's get-sum failed; reset was never answered.
        let recent = [
            result(
                3_000,
                Some(
                    json!([{"tool": "get-sum", "called": true, "latency_ms": 40.0,
                    "failure": "expected 3 at /structuredContent/result, got 4"},
                    {"tool": "reset", "called": false, "latency_ms": null, "failure": "not called"}]),
                ),
            ),
            result(2_000, None),
            result(
                1_000,
                Some(
                    json!([{"tool": "get-sum", "called": true, "latency_ms": 20.0, "failure": null}]),
                ),
            ),
        ];
        let rows = rows(&plan, &recent);
        assert_eq!(rows[0].look, "failed");
        assert!(
            rows[0].outcome.contains("expected 3"),
            "{}",
            rows[0].outcome
        );
        assert_eq!(rows[0].latency, "40 ms");
        let chart = rows[0].chart.as_ref().unwrap();
        assert_eq!(
            chart.p50.split(' ').count(),
            2,
            "one point per answered probe"
        );
        assert!(rows[1].write_override);
        assert_eq!(rows[1].look, "failed");
        assert!(rows[1].chart.is_none());
    }

    #[test]
    fn the_streaming_check_has_its_own_row() {
        let plan = CallPlan {
            stream: Some(ToolCall::new("long-op", json!({}))),
            ..CallPlan::default()
        };
        assert_eq!(rows(&plan, &[])[0].outcome, "not checked yet");
        let mut r = result(1_000, None);
        r.stream = Some(
            json!({"tool": "long-op", "called": true, "notifications": 4, "first_ms": 1990.0,
                   "result_ms": 2000.0, "max_gap_ms": 1990.0,
                   "failure": "progress did not stream: all 4 …"})
            .to_string(),
        );
        let row = &rows(&plan, &[r])[0];
        assert!(row.streaming);
        assert_eq!((row.look, row.latency.as_str()), ("failed", "2.0 s"));
        assert!(row.outcome.starts_with("progress did not stream"));
    }
}
