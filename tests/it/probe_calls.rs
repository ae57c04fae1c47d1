//! Synthetic tool calls (issue 16 §3), against our fake for every misbehaviour: a tool that
//! works, one whose output breaks its declared schema, one that reports `isError`, one that
//! hangs, and one not marked read-only (never called without the override). The real
//! servers (the reference server's read-only tools, every SDK's `add`) are in
//! tests/interop/run.sh.

use std::sync::Arc;
use std::time::Duration;

use crate::cli::mcpwatch;
use crate::support;

use mcpwatch::probe::{CallPlan, FailureKind, Phase, ProbeReport, ToolCall, Verdict};
use serde_json::{Value, json};
use support::fake_mcp::{FakeConfig, FakeEra, FakeServer, Fault, default_tools};
use test_case::test_case;

/// The default tools plus `weather`: read-only, with an output schema.
fn tools() -> Vec<Value> {
    let mut tools = default_tools();
    tools.push(json!({"name": "weather", "inputSchema": {"type": "object",
        "properties": {"city": {"type": "string"}}},
        "outputSchema": {"type": "object", "properties": {"celsius": {"type": "number"}},
            "required": ["celsius"]},
        "annotations": {"readOnlyHint": true}}));
    tools
}

fn weather_says(structured: Value) -> FakeConfig {
    FakeConfig {
        tools: tools(),
        call_result: json!({"content": [{"type": "text", "text": "sunny"}],
            "structuredContent": structured}),
        ..FakeConfig::default()
    }
}

async fn probe_calling(fake: &FakeServer, calls: Vec<ToolCall>) -> ProbeReport {
    support::probe_with(&fake.url(), |t| {
        t.calls = Some(Arc::new(CallPlan {
            calls,
            failure_is_down: false,
            stream: None,
        }));
        t.timeout = Duration::from_secs(2);
    })
    .await
}

fn weather() -> ToolCall {
    ToolCall::new("weather", json!({"city": "Paris"}))
}

/// The report's failure is the call's: kind and phase `tool_call`, naming the tool.
fn call_failure(r: &ProbeReport) -> String {
    let f = r.failure.as_ref().unwrap_or_else(|| panic!("{r:#?}"));
    assert_eq!(
        (f.kind, f.phase),
        (FailureKind::ToolCall, Phase::ToolCall),
        "{f:?}"
    );
    f.message.clone()
}

#[test_case(FakeEra::Stateless, false ; "stateless")]
#[test_case(FakeEra::Streamable, true ; "streamable with a session")]
#[tokio::test]
async fn a_read_only_tool_is_called_and_its_output_checked(era: FakeEra, sessions: bool) {
    let fake = FakeServer::start(FakeConfig {
        era,
        sessions,
        ..weather_says(json!({"celsius": 21.5}))
    })
    .await;
    let r = probe_calling(&fake, vec![weather()]).await;
    assert_eq!(r.verdict, Verdict::Up, "{r:#?}");
    assert_eq!(r.calls.len(), 1);
    assert!(
        r.calls[0].called && r.calls[0].failure.is_none(),
        "{:?}",
        r.calls
    );
    assert!(r.calls[0].latency_ms.is_some());
    let seen = fake.seen(|s| s.tool_calls.clone());
    // 2026-07-28 requires Mcp-Name on tools/call; the initialize era defines no such header.
    let header = (era == FakeEra::Stateless).then(|| "weather".to_string());
    assert_eq!(seen, vec![("weather".to_string(), header)]);
}

#[tokio::test]
async fn output_that_breaks_its_schema_fails_the_call_and_degrades() {
    let fake = FakeServer::start(weather_says(json!({"celsius": "warm"}))).await;
    let r = probe_calling(&fake, vec![weather()]).await;
    assert_eq!(r.verdict, Verdict::Degraded, "{r:#?}");
    let m = call_failure(&r);
    assert!(
        m.starts_with("weather: ") && m.contains("outputSchema") && m.contains("/celsius"),
        "{m}"
    );
    // The rest of the report stands: the server answered MCP.
    assert!(r.schema_hash.is_some() && r.tools_count == 4, "{r:#?}");
}

#[tokio::test]
async fn a_tool_that_reports_is_error_fails_with_its_words() {
    let fake = FakeServer::start(FakeConfig {
        call_result: json!({"isError": true, "content": [{"type": "text",
            "text": "upstream weather API\nreturned 503"}]}),
        ..weather_says(json!({}))
    })
    .await;
    let r = probe_calling(&fake, vec![weather()]).await;
    assert_eq!(r.verdict, Verdict::Degraded);
    let m = call_failure(&r);
    assert!(
        m.contains("isError") && m.contains("upstream weather API returned 503"),
        "{m}"
    );
}

#[tokio::test]
async fn a_tool_that_hangs_fails_its_call_within_the_deadline_not_the_probe() {
    let fake = FakeServer::start(FakeConfig {
        fault: Fault::Hang,
        fault_on: "tools/call",
        ..weather_says(json!({"celsius": 1}))
    })
    .await;
    let started = std::time::Instant::now();
    let r = probe_calling(&fake, vec![weather()]).await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(r.verdict, Verdict::Degraded, "{r:#?}");
    assert!(call_failure(&r).contains("no answer within the probe's deadline"));
    assert!(r.schema_hash.is_some());
}

#[tokio::test]
async fn expectations_and_the_down_setting() {
    let fake = FakeServer::start(weather_says(json!({"celsius": 21.5}))).await;
    let mut call = weather();
    call.expect_pointer = Some(mcpwatch::probe::PointerExpectation {
        pointer: "/structuredContent/celsius".into(),
        equals: json!(30),
    });
    let r = support::probe_with(&fake.url(), |t| {
        t.calls = Some(Arc::new(CallPlan {
            calls: vec![call.clone()],
            failure_is_down: true,
            stream: None,
        }));
    })
    .await;
    assert_eq!(
        r.verdict,
        Verdict::Down,
        "configured: a failed call is down"
    );
    assert!(call_failure(&r).contains("expected 30 at /structuredContent/celsius, got 21.5"));
    call.expect_pointer = None;
    call.expect_contains = Some("sunny".into());
    let r = probe_calling(&fake, vec![call]).await;
    assert_eq!(r.verdict, Verdict::Up, "{r:#?}");
}

#[tokio::test]
async fn a_tool_not_marked_read_only_is_never_called_without_the_override() {
    let fake = FakeServer::start(weather_says(json!({"celsius": 1}))).await;
    let add = ToolCall::new("add", json!({"a": 1, "b": 2}));
    let missing = ToolCall::new("nope", json!({}));
    let r = probe_calling(&fake, vec![add.clone(), missing]).await;
    assert_eq!(r.verdict, Verdict::Degraded);
    assert!(call_failure(&r).contains("'add' is not marked readOnlyHint: true"));
    assert!(!r.calls[0].called && !r.calls[1].called, "{:?}", r.calls);
    assert!(
        r.calls[1]
            .failure
            .as_deref()
            .unwrap()
            .contains("lists no tool 'nope'")
    );
    assert!(fake.seen(|s| s.tool_calls.is_empty()), "nothing was called");

    let allowed = ToolCall {
        allow_write: true,
        ..add
    };
    let r = probe_calling(&fake, vec![allowed]).await;
    assert_eq!(r.verdict, Verdict::Up, "{r:#?}");
    assert_eq!(fake.seen(|s| s.tool_calls.len()), 1);
}

#[tokio::test]
async fn check_call_exits_one_when_a_call_fails_and_zero_when_it_works() {
    let fake = FakeServer::start(weather_says(json!({"celsius": 21.5}))).await;
    let url = fake.url();
    let ok = mcpwatch(&["check", &url, "--call", r#"weather {"city":"Paris"}"#]).await;
    let text = String::from_utf8_lossy(&ok.stdout);
    assert_eq!(ok.status.code(), Some(0), "{text}");
    assert!(text.contains("call        weather ok in "), "{text}");

    let refused = mcpwatch(&["check", &url, "--json", "--call", "add {\"a\":1}"]).await;
    assert_eq!(refused.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&refused.stdout).unwrap();
    assert_eq!(v["verdict"], "degraded");
    assert_eq!(v["failure"]["kind"], "tool_call");
    assert_eq!(v["calls"][0]["called"], false);

    let written = mcpwatch(&["check", &url, "--call", "add {\"a\":1}", "--allow-write"]).await;
    assert_eq!(
        written.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&written.stdout)
    );

    let bad = mcpwatch(&["check", &url, "--call", "add {oops"]).await;
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("the arguments of 'add' are not JSON"), "{err}");
}
