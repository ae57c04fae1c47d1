//! A server's `calls`, `call_failure` and `stream_call` fields: the synthetic tool calls each
//! probe makes after `tools/list` (issue 16 §3), and the streaming check's call (§4). Nothing here is a credential: the API, the monitors
//! file's export and the page show the calls whole, the write overrides (`allow_write`)
//! included, so an operator sees exactly what mcpwatch is allowed to call.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::FieldError;
use crate::probe::{CallPlan, MAX_CALLS, ToolCall};
use crate::store::ServerRecord;

/// What a failed call makes the probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CallFailure {
    /// The server answered the protocol but a tool does not work: `degraded` (the default).
    Degraded,
    /// A failed call counts as the server being down.
    Down,
}

impl CallFailure {
    pub fn of(plan: Option<&CallPlan>) -> Self {
        match plan {
            Some(p) if p.failure_is_down => CallFailure::Down,
            _ => CallFailure::Degraded,
        }
    }
}

fn problem(field: String, message: impl Into<String>) -> FieldError {
    FieldError {
        field,
        message: message.into(),
    }
}

/// Apply `calls` (absent: unchanged; `null` or `[]`: none), `call_failure` (absent:
/// unchanged) and `stream_call` (absent: unchanged; `null`: none) to `s`; every problem is
/// pushed, each naming the call and field.
pub(super) fn apply_calls(
    calls: Option<Value>,
    call_failure: Option<CallFailure>,
    stream_call: Option<Value>,
    s: &mut ServerRecord,
    problems: &mut Vec<FieldError>,
) {
    let mut plan = s.call_plan().unwrap_or_default();
    match calls {
        None => {}
        Some(Value::Null) => plan.calls.clear(),
        Some(Value::Array(items)) if items.len() > MAX_CALLS => {
            problems.push(problem(
                "calls".into(),
                format!("at most {MAX_CALLS} calls (each one runs inside the probe's deadline)"),
            ));
            return;
        }
        Some(Value::Array(items)) => match parse_calls(items, problems) {
            Some(calls) => plan.calls = calls,
            None => return,
        },
        Some(_) => {
            problems.push(problem(
                "calls".into(),
                "must be a list of calls such as [{\"tool\": \"get-sum\", \"arguments\": {\"a\": 1, \"b\": 2}}], or null",
            ));
            return;
        }
    }
    if let Some(f) = call_failure {
        plan.failure_is_down = f == CallFailure::Down;
    }
    match stream_call {
        None => {}
        Some(Value::Null) => plan.stream = None,
        Some(v) => match parse_call(v, "stream_call", problems) {
            Some(call) => plan.stream = Some(call),
            None => return,
        },
    }
    s.calls = if plan.calls.is_empty() && plan.stream.is_none() {
        None
    } else {
        serde_json::to_string(&plan).ok()
    };
}

/// Each item as a [`ToolCall`], or `None` after pushing what is wrong with each bad one.
fn parse_calls(items: Vec<Value>, problems: &mut Vec<FieldError>) -> Option<Vec<ToolCall>> {
    let before = problems.len();
    let mut calls = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        if let Some(call) = parse_call(item, &format!("calls[{i}]"), problems) {
            calls.push(call);
        }
    }
    (problems.len() == before).then_some(calls)
}

/// One call at `field`, or `None` after pushing what is wrong with it.
fn parse_call(item: Value, field: &str, problems: &mut Vec<FieldError>) -> Option<ToolCall> {
    match serde_json::from_value::<ToolCall>(item) {
        Ok(call) => {
            let wrong = call.problems();
            for p in &wrong {
                let (name, message) = p.split_once(": ").unwrap_or(("", p));
                problems.push(problem(format!("{field}.{name}"), message));
            }
            wrong.is_empty().then_some(call)
        }
        Err(e) => {
            problems.push(problem(field.to_string(), e.to_string()));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record() -> ServerRecord {
        serde_json::from_value(json!({"id": "1", "slug": "a", "name": "A",
            "url": "https://a.example/mcp", "header_names": [], "interval_seconds": 60,
            "timeout_seconds": 10, "tags": [], "public": false, "paused": false,
            "failures_to_down": 2, "successes_to_up": 1, "expect_auth": false,
            "created_at": 0, "updated_at": 0}))
        .unwrap()
    }

    #[test]
    fn calls_are_set_shown_and_cleared() {
        let mut s = record();
        let mut problems = Vec::new();
        apply_calls(
            Some(json!([{"tool": "get-sum", "arguments": {"a": 1, "b": 2}}])),
            Some(CallFailure::Down),
            None,
            &mut s,
            &mut problems,
        );
        assert!(problems.is_empty(), "{problems:?}");
        let plan = s.call_plan().unwrap();
        assert_eq!(plan.calls[0].tool, "get-sum");
        assert!(plan.failure_is_down);
        // Leaving `calls` out keeps them; changing only the failure verdict keeps the calls.
        apply_calls(
            None,
            Some(CallFailure::Degraded),
            None,
            &mut s,
            &mut problems,
        );
        assert_eq!(s.call_plan().unwrap().calls.len(), 1);
        apply_calls(Some(Value::Null), None, None, &mut s, &mut problems);
        assert_eq!(s.calls, None);
    }

    #[test]
    fn every_bad_call_is_named_by_its_index_and_field() {
        let mut s = record();
        let mut problems = Vec::new();
        apply_calls(
            Some(json!([
                {"tool": "ok"},
                {"tool": "", "arguments": [1]},
                {"tool": "x", "expect_pointer": {"pointer": "result", "equals": 1}},
                {"tool": "x", "max_latency": 5},
            ])),
            None,
            None,
            &mut s,
            &mut problems,
        );
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "calls[1].tool",
                "calls[1].arguments",
                "calls[2].expect_pointer.pointer",
                "calls[3]"
            ],
            "{problems:?}"
        );
        assert!(problems[3].message.contains("max_latency"), "{problems:?}");
        assert_eq!(s.calls, None, "nothing is applied when a call is wrong");
    }
}
