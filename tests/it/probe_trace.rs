//! W3C trace context (issue 16 §5): every request of a probe carries one trace, as a
//! `traceparent` header and in `params._meta`, and the trace id is in the report and the API.

use crate::support;

use mcpwatch::probe::Verdict;
use reqwest::StatusCode;
use serde_json::json;
use support::app::spawn_app;
use support::db::Backend;
use support::fake_mcp::{FakeConfig, FakeEra, FakeServer, Traced};
use test_case::test_case;

/// `(trace id, span id)` of a well-formed, sampled version-00 `traceparent`.
fn parse(traceparent: &str) -> (String, String) {
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(parts.len(), 4, "{traceparent}");
    assert_eq!((parts[0], parts[3]), ("00", "01"), "{traceparent}");
    assert_eq!((parts[1].len(), parts[2].len()), (32, 16), "{traceparent}");
    (parts[1].to_string(), parts[2].to_string())
}

/// Every request carries the header; every JSON-RPC request also `_meta`, naming the same
/// span; all of one trace, each request its own span. Returns the trace id.
fn one_trace(traces: &[Traced]) -> String {
    assert!(!traces.is_empty());
    let mut spans = std::collections::HashSet::new();
    let mut trace_ids = std::collections::HashSet::new();
    for t in traces {
        let header = t.header.as_deref().unwrap_or_else(|| panic!("{t:?}"));
        let (trace, span) = parse(header);
        trace_ids.insert(trace);
        assert!(spans.insert(span), "a span reused: {traces:#?}");
        let is_request = t
            .rpc
            .as_deref()
            .is_some_and(|m| !m.starts_with("notifications/"));
        if is_request {
            assert_eq!(t.meta.as_deref(), Some(header), "{t:?}");
        }
    }
    assert_eq!(trace_ids.len(), 1, "{traces:#?}");
    trace_ids.into_iter().next().unwrap()
}

#[test_case(FakeEra::Stateless, false ; "stateless")]
#[test_case(FakeEra::Streamable, true ; "streamable with a session")]
#[tokio::test]
async fn every_request_of_a_probe_carries_one_trace(era: FakeEra, sessions: bool) {
    let fake = FakeServer::start(FakeConfig {
        era,
        sessions,
        ..FakeConfig::default()
    })
    .await;
    let first = support::probe(&fake.url()).await;
    assert_eq!(first.verdict, Verdict::Up, "{first:#?}");
    let traces = fake.seen(|s| s.traces.clone());
    let trace = one_trace(&traces);
    assert_eq!(first.trace_id.as_deref(), Some(trace.as_str()));
    let rpcs: Vec<_> = traces.iter().filter_map(|t| t.rpc.clone()).collect();
    assert!(rpcs.contains(&"tools/list".to_string()), "{rpcs:?}");
    if sessions {
        assert!(
            traces.iter().any(|t| t.http_method == "DELETE"),
            "{traces:#?}"
        );
    }
    let second = support::probe(&fake.url()).await;
    assert_ne!(second.trace_id, first.trace_id, "one trace per probe");
    let json = serde_json::to_value(&second).unwrap();
    assert_eq!(
        json["trace_id"],
        json!(second.trace_id),
        "in `check --json`"
    );
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn the_trace_id_is_stored_with_the_result_and_shown_by_the_api(backend: Backend) {
    let fake = FakeServer::start(FakeConfig::default()).await;
    let app = spawn_app(backend).await;
    let (s, body) = app
        .post(
            "/api/v1/servers",
            json!({"name": "Traced", "slug": "traced", "url": fake.url(), "paused": true}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    let (s, checked) = app.post("/api/v1/servers/traced/check", json!({})).await;
    assert_eq!(s, StatusCode::OK, "{checked}");
    let trace = checked["trace_id"].as_str().expect("trace id").to_string();
    let seen = fake.seen(|s| s.traces.clone());
    assert_eq!(one_trace(&seen), trace, "the id the server saw");
    let (s, page) = app.get("/api/v1/servers/traced/results").await;
    assert_eq!(s, StatusCode::OK, "{page}");
    let stored = &page["items"][0];
    assert_eq!(stored["id"], checked["result_id"], "{page}");
    assert_eq!(stored["trace_id"], json!(trace), "{page}");
}
