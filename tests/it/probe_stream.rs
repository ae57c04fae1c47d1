//! The streaming check (issue 16 §4): a tool that reports progress as it runs, called with a
//! `progressToken`, straight and through a real nginx (Debian's) with `proxy_buffering off`
//! (progress streams: passes) and `on` (nginx's default: every notification arrives with the
//! result, so the check says the stream is buffered and names the fix). The probe, the CLI
//! and the daemon's per-server setting.

use std::sync::Arc;
use std::time::Duration;

use mcpwatch::probe::{CallPlan, FailureKind, ProbeReport, ToolCall, Verdict};
use reqwest::StatusCode;
use serde_json::{Value, json};
use test_case::test_case;

use crate::cli::mcpwatch;
use crate::support;
use crate::support::fake_mcp::{FakeConfig, FakeEra, FakeServer};
use crate::support::nginx::Nginx;

/// Four progress steps, 250 ms apart: a one-second operation.
async fn long_running(era: FakeEra) -> FakeServer {
    FakeServer::start(FakeConfig {
        era,
        progress: Some((4, Duration::from_millis(250))),
        ..FakeConfig::default()
    })
    .await
}

fn port_of(url: &str) -> u16 {
    url::Url::parse(url).unwrap().port().unwrap()
}

async fn stream_check(url: &str) -> ProbeReport {
    support::probe_with(url, |t| {
        t.calls = Some(Arc::new(CallPlan {
            stream: Some(ToolCall::new("echo", json!({"message": "slowly"}))),
            ..CallPlan::default()
        }));
        t.timeout = Duration::from_secs(8);
    })
    .await
}

#[test_case(FakeEra::Stateless ; "stateless")]
#[test_case(FakeEra::Streamable ; "streamable")]
#[tokio::test]
async fn progress_that_streams_passes_straight_and_through_nginx_without_buffering(era: FakeEra) {
    let fake = long_running(era).await;
    let nginx = Nginx::start(port_of(&fake.url()), false);
    for url in [fake.url(), nginx.url_for(&fake.url())] {
        let r = stream_check(&url).await;
        assert_eq!(r.verdict, Verdict::Up, "{url}: {r:#?}");
        let s = r.stream.as_ref().unwrap();
        assert_eq!((s.notifications, &s.failure), (4, &None), "{url}: {s:?}");
        let (first, result) = (s.first_ms.unwrap(), s.result_ms.unwrap());
        assert!(
            first < 600.0 && result >= 1000.0,
            "{url}: the first step arrives as it happens: {s:?}"
        );
    }
}

#[test_case(FakeEra::Stateless ; "stateless")]
#[test_case(FakeEra::Streamable ; "streamable")]
#[tokio::test]
async fn nginx_buffering_the_stream_is_degraded_naming_the_fix(era: FakeEra) {
    let fake = long_running(era).await;
    let nginx = Nginx::start(port_of(&fake.url()), true);
    let r = stream_check(&nginx.url_for(&fake.url())).await;
    assert_eq!(r.verdict, Verdict::Degraded, "{r:#?}");
    let f = r.failure.as_ref().unwrap();
    assert_eq!(f.kind, FailureKind::Streaming, "{f:?}");
    assert!(
        f.message.contains("all 4 progress notifications")
            && f.message.contains("proxy_buffering off"),
        "{}",
        f.message
    );
    let s = r.stream.as_ref().unwrap();
    assert!(s.first_ms.unwrap() >= 900.0, "held back to the end: {s:?}");
    assert!(
        !r.is_healthy(false),
        "a deploy gate that asked for the check fails"
    );
}

#[tokio::test]
async fn a_tool_that_sends_no_progress_and_one_not_read_only_are_reported() {
    let fake = FakeServer::start(FakeConfig::default()).await;
    let r = stream_check(&fake.url()).await;
    assert_eq!(r.verdict, Verdict::Degraded, "{r:#?}");
    assert!(
        r.failure
            .as_ref()
            .unwrap()
            .message
            .contains("no progress notification"),
        "{r:#?}"
    );
    let r = support::probe_with(&fake.url(), |t| {
        t.calls = Some(Arc::new(CallPlan {
            stream: Some(ToolCall::new("add", json!({"a": 1}))),
            ..CallPlan::default()
        }));
    })
    .await;
    let s = r.stream.as_ref().unwrap();
    assert!(!s.called, "{s:?}");
    assert!(
        s.failure.as_ref().unwrap().contains("readOnlyHint"),
        "{s:?}"
    );
    let mut called = Vec::new();
    fake.seen(|seen| called = seen.tool_calls.clone());
    assert!(
        called.iter().all(|(tool, _)| tool != "add"),
        "the write tool was called: {called:?}"
    );
}

#[tokio::test]
async fn check_stream_call_exits_1_behind_a_buffering_proxy() {
    let fake = long_running(FakeEra::Stateless).await;
    let buffering = Nginx::start(port_of(&fake.url()), true);
    let spec = r#"echo {"message":"slowly"}"#;
    let ok = mcpwatch(&["check", &fake.url(), "--stream-call", spec]).await;
    let text = String::from_utf8_lossy(&ok.stdout);
    assert_eq!(ok.status.code(), Some(0), "{text}");
    assert!(
        text.contains("stream      echo streamed: 4 progress notifications"),
        "{text}"
    );
    let url = buffering.url_for(&fake.url());
    let bad = mcpwatch(&["check", &url, "--json", "--stream-call", spec]).await;
    assert_eq!(bad.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&bad.stdout).unwrap();
    assert_eq!(v["verdict"], "degraded", "{v}");
    assert_eq!(v["failure"]["kind"], "streaming", "{v}");
    assert_eq!(v["stream"]["notifications"], 4, "{v}");
}

/// The daemon: a server's `stream_call` runs on every probe; behind the buffering proxy the
/// server is `degraded` with the reason stored on its result.
#[tokio::test]
async fn the_daemon_runs_a_servers_streaming_check() {
    let app = support::app::spawn_app(support::db::Backend::Sqlite).await;
    let fake = long_running(FakeEra::Stateless).await;
    let nginx = Nginx::start(port_of(&fake.url()), true);
    let (s, v) = app
        .post(
            "/api/v1/servers",
            json!({"name": "Proxied", "slug": "proxied", "url": nginx.url_for(&fake.url()),
                   "timeout_seconds": 8, "interval_seconds": 60, "public": true,
                   "stream_call": {"tool": "echo", "arguments": {"message": "slowly"}}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["stream_call"]["tool"], "echo", "{v}");
    let (s, r) = app.post("/api/v1/servers/proxied/check", json!({})).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["failure"]["kind"], "streaming", "{r}");
    let (_, page) = app.get("/api/v1/servers/proxied/results?limit=1").await;
    let stored = &page["items"][0];
    assert_eq!(stored["failure"]["kind"], "streaming", "{page}");
    assert!(
        stored["failure"]["message"]
            .as_str()
            .unwrap()
            .contains("proxy_buffering off"),
        "{page}"
    );
    assert_eq!(stored["stream"]["notifications"], 4, "{page}");
    let (status, _, html) = app.fetch("/s/proxied").await;
    assert_eq!(status, 200);
    assert!(html.contains("(streaming check)"), "{html}");
    assert!(html.contains("progress did not stream"), "{html}");
    let (_, v) = app
        .patch("/api/v1/servers/proxied", json!({"stream_call": null}))
        .await;
    assert_eq!(v["stream_call"], Value::Null, "{v}");
}
