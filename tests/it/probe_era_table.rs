//! The era decision table (`src/probe/mod.rs`), one test per row: for each answer to the first
//! request (`server/discover`), which era comes next or which verdict results.
//!
//! The fake is an initialize-era server (sessions on, like the Python SDK 1.x) whose answer to
//! `server/discover` is scripted; "falls back" rows assert the probe reached `up` through
//! `initialize`, "stops" rows assert it never sent `initialize`.

use crate::support;

use std::time::{Duration, Instant};

use mcpwatch::probe::{Era, FailureKind, Phase, ProbeReport, Verdict};
use serde_json::{Value, json};
use support::fake_mcp::{FakeConfig, FakeEra, FakeServer, Fault};
use support::{probe, probe_with};

/// An initialize-era server that answers `server/discover` with `fault`.
async fn legacy_answering_discover(fault: Fault) -> FakeServer {
    FakeServer::start(FakeConfig {
        era: FakeEra::Streamable,
        sessions: true,
        fault,
        fault_on: "server/discover",
        ..FakeConfig::default()
    })
    .await
}

fn rpc_error(id: Value, code: i64, message: &str, data: Option<Value>) -> Value {
    let mut error = json!({"code": code, "message": message});
    if let Some(d) = data {
        error["data"] = d;
    }
    json!({"jsonrpc": "2.0", "id": id, "error": error})
}

#[track_caller]
fn assert_fell_back_and_up(fake: &FakeServer, r: &ProbeReport) {
    assert_eq!(r.verdict, Verdict::Up, "{:#?}", r.failure);
    assert_eq!(r.era, Some(Era::StreamableHttp));
    assert_eq!(r.protocol_version.as_deref(), Some("2025-11-25"));
    assert_eq!(r.tools_count, 3);
    fake.seen(|s| {
        assert_eq!(
            s.methods,
            vec![
                "server/discover",
                "initialize",
                "notifications/initialized",
                "tools/list"
            ]
        )
    });
    assert!(
        r.notes.iter().any(|n| n.contains("tried streamable_http")),
        "the fallback is noted: {:?}",
        r.notes
    );
}

#[track_caller]
fn assert_stopped(fake: &FakeServer, r: &ProbeReport, kind: FailureKind) {
    assert_eq!(r.verdict, Verdict::Down, "{r:#?}");
    assert_eq!(r.failure.as_ref().map(|f| f.kind), Some(kind), "{r:#?}");
    fake.seen(|s| assert!(!s.methods.iter().any(|m| m == "initialize"), "{s:?}"));
}

// Row 1: 2xx with a result carrying supportedVersions → the 2026 era.
#[tokio::test]
async fn row_2xx_discover_result_is_the_2026_era() {
    let fake = FakeServer::start(FakeConfig::default()).await;
    let r = probe(&fake.url()).await;
    assert_eq!(r.verdict, Verdict::Up, "{r:#?}");
    assert_eq!(r.era, Some(Era::Stateless));
    fake.seen(|s| assert_eq!(s.methods, vec!["server/discover", "tools/list"]));
}

// Row 2: 2xx with a result but no supportedVersions → older era.
#[tokio::test]
async fn row_2xx_result_without_supported_versions_falls_back() {
    let fake = legacy_answering_discover(Fault::Answer(
        200,
        json!({"jsonrpc": "2.0", "id": 1, "result": {}}),
    ))
    .await;
    assert_fell_back_and_up(&fake, &probe(&fake.url()).await);
}

// Row 3a: -32022 listing a 2026 version we speak → retried in 2026 (see probe_eras).
// Row 3b: -32022 listing only initialize-era versions → older era.
#[tokio::test]
async fn row_unsupported_version_listing_only_older_versions_falls_back() {
    let body = rpc_error(
        json!(1),
        -32022,
        "Unsupported protocol version",
        Some(json!({"supported": ["2025-11-25"], "requested": "2026-07-28"})),
    );
    let fake = legacy_answering_discover(Fault::Answer(400, body)).await;
    assert_fell_back_and_up(&fake, &probe(&fake.url()).await);
}

// Row 3c: -32022 listing only versions we do not speak → down, protocol; no fallback.
#[tokio::test]
async fn row_unsupported_version_listing_unknown_versions_stops() {
    let body = rpc_error(
        json!(1),
        -32022,
        "Unsupported protocol version",
        Some(json!({"supported": ["2099-01-01"], "requested": "2026-07-28"})),
    );
    let fake = legacy_answering_discover(Fault::Answer(400, body)).await;
    let r = probe(&fake.url()).await;
    assert_stopped(&fake, &r, FailureKind::Protocol);
    assert!(r.failure.unwrap().message.contains("2099-01-01"));
}

// Row 4: -32020 (HeaderMismatch) or -32021 (MissingRequiredClientCapability) → a 2026 server
// refused us: down, protocol, with the code; no fallback.
#[tokio::test]
async fn row_recognized_modern_errors_stop() {
    for code in [-32020, -32021] {
        let body = rpc_error(json!(1), code, "modern refusal", None);
        let fake = legacy_answering_discover(Fault::Answer(400, body)).await;
        let r = probe(&fake.url()).await;
        assert_stopped(&fake, &r, FailureKind::Protocol);
        assert_eq!(r.failure.unwrap().jsonrpc_code, Some(code));
    }
}

// Row 5: the Python SDK 1.x: 400 with a JSON-RPC error whose id is "server-error" (stateful:
// "Missing session ID"; stateless: "Unsupported protocol version") → older era.
#[tokio::test]
async fn row_python_sdk_1x_server_error_id_falls_back() {
    for message in [
        "Bad Request: Missing session ID",
        "Bad Request: Unsupported protocol version: 2026-07-28. Supported versions: 2025-06-18",
    ] {
        let body = rpc_error(json!("server-error"), -32600, message, None);
        let fake = legacy_answering_discover(Fault::Answer(400, body)).await;
        assert_fell_back_and_up(&fake, &probe(&fake.url()).await);
    }
}

// Row 6: 4xx with any other JSON-RPC error (the TypeScript SDK: -32000, id null) → older era.
#[tokio::test]
async fn row_4xx_other_jsonrpc_error_falls_back() {
    let body = rpc_error(
        Value::Null,
        -32000,
        "Bad Request: Server not initialized",
        None,
    );
    let fake = legacy_answering_discover(Fault::Answer(400, body)).await;
    assert_fell_back_and_up(&fake, &probe(&fake.url()).await);
}

// Row 7: an id that is not ours, on 2xx or 4xx → older era (we are not sure it speaks 2026).
#[tokio::test]
async fn row_id_not_ours_falls_back_on_2xx_and_4xx() {
    for status in [200, 400] {
        let body = json!({"jsonrpc": "2.0", "id": 99, "result": {"ok": true}});
        let fake = legacy_answering_discover(Fault::Answer(status, body)).await;
        assert_fell_back_and_up(&fake, &probe(&fake.url()).await);
    }
}

// Row 8: 4xx without a JSON-RPC body, and the statuses of servers that do not take the
// request at all (404, 405, 406, 415) → older era.
#[tokio::test]
async fn row_4xx_without_jsonrpc_falls_back() {
    for status in [400, 404, 405, 406, 415] {
        let fake = legacy_answering_discover(Fault::Status(status)).await;
        assert_fell_back_and_up(&fake, &probe(&fake.url()).await);
    }
}

// Row 9: 5xx → older era is tried; when it fails too, the report says both.
#[tokio::test]
async fn row_5xx_falls_back_and_a_failing_fallback_reports_both() {
    let fake = legacy_answering_discover(Fault::Status(500)).await;
    assert_fell_back_and_up(&fake, &probe(&fake.url()).await);

    let both = FakeServer::start(FakeConfig {
        era: FakeEra::Streamable,
        fault: Fault::Status(502),
        fault_on: "*",
        ..FakeConfig::default()
    })
    .await;
    let r = probe(&both.url()).await;
    assert_eq!(r.verdict, Verdict::Down);
    let f = r.failure.unwrap();
    assert_eq!(
        (f.kind, f.http_status),
        (FailureKind::HttpStatus, Some(502))
    );
    assert!(
        f.message.contains("initialize: HTTP 502")
            && f.message
                .contains("before that, stateless: server/discover: HTTP 502"),
        "{}",
        f.message
    );
}

// Row 10: 2xx that is not JSON-RPC (HTML) → older era; HTML everywhere is not_mcp.
#[tokio::test]
async fn row_2xx_html_falls_back_and_html_everywhere_is_not_mcp() {
    let fake = legacy_answering_discover(Fault::Html200).await;
    assert_fell_back_and_up(&fake, &probe(&fake.url()).await);

    let html = FakeServer::start(FakeConfig {
        era: FakeEra::Streamable,
        fault: Fault::Html200,
        fault_on: "*",
        ..FakeConfig::default()
    })
    .await;
    let r = probe(&html.url()).await;
    assert_eq!(
        r.failure.as_ref().map(|f| (f.kind, f.phase)),
        Some((FailureKind::NotMcp, Phase::Handshake))
    );
}

// Row 11: no answer to server/discover (an early TypeScript SDK in stateless JSON mode) →
// after its share of the deadline, older era, within the one deadline.
#[tokio::test]
async fn row_discover_timeout_falls_back_within_the_deadline() {
    let fake = legacy_answering_discover(Fault::Hang).await;
    let started = Instant::now();
    let r = probe_with(&fake.url(), |t| t.timeout = Duration::from_secs(2)).await;
    assert_fell_back_and_up(&fake, &r);
    assert!(started.elapsed() < Duration::from_secs(2), "one deadline");
    assert!(
        r.notes.iter().any(|n| n.contains("share of the deadline")),
        "{:?}",
        r.notes
    );
}

// Row 11b: discovery times out and the fallback hangs too → timeout, both named.
#[tokio::test]
async fn row_discover_timeout_then_fallback_timeout_names_both() {
    let fake = FakeServer::start(FakeConfig {
        era: FakeEra::Streamable,
        fault: Fault::Hang,
        fault_on: "*",
        ..FakeConfig::default()
    })
    .await;
    let r = probe_with(&fake.url(), |t| t.timeout = Duration::from_secs(1)).await;
    let f = r.failure.expect("down");
    assert_eq!((f.kind, f.phase), (FailureKind::Timeout, Phase::Handshake));
    assert!(
        f.message.contains("no answer within 1s")
            && f.message
                .contains("before that, stateless: server/discover: no answer"),
        "{}",
        f.message
    );
    fake.seen(|s| assert_eq!(s.methods, vec!["server/discover", "initialize"]));
}

// Row 12: the connection breaks mid-answer → older era.
#[tokio::test]
async fn row_connection_broken_mid_answer_falls_back() {
    let fake = legacy_answering_discover(Fault::BreakConnection).await;
    assert_fell_back_and_up(&fake, &probe(&fake.url()).await);
}

// Row 13: no connection at all (refused) → down, connect, at once; no era is tried twice.
#[tokio::test]
async fn row_connection_refused_stops() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let r = probe(&format!("http://127.0.0.1:{port}/mcp")).await;
    let f = r.failure.expect("down");
    assert_eq!((f.kind, f.phase), (FailureKind::Connect, Phase::Connect));
    assert!(!f.message.contains("initialize"), "{}", f.message);
}

// Row 14: 401 with a challenge → auth_required at once (covered for every era in probe_faults).
#[tokio::test]
async fn row_401_challenge_is_auth_required() {
    let fake = FakeServer::start(FakeConfig {
        era: FakeEra::Streamable,
        bearer: Some("s3cret-token".into()),
        ..FakeConfig::default()
    })
    .await;
    let r = probe(&fake.url()).await;
    assert_eq!(r.verdict, Verdict::AuthRequired);
    fake.seen(|s| assert_eq!(s.methods, Vec::<String>::new()));
}

// Redirects: POST /mcp → 307 /mcp/ on the same origin is followed by default and noted.
#[tokio::test]
async fn same_origin_post_redirect_is_followed_and_noted() {
    let fake = FakeServer::start(FakeConfig {
        era: FakeEra::Streamable,
        sessions: true,
        redirect_to_slash: true,
        ..FakeConfig::default()
    })
    .await;
    let r = probe(&fake.url()).await;
    assert_eq!(r.verdict, Verdict::Up, "{:#?}", r.failure);
    assert!(
        r.notes
            .iter()
            .any(|n| n.contains("was redirected to") && n.contains("/mcp/")),
        "{:?}",
        r.notes
    );
    // The session was closed at the URL that answered.
    fake.seen(|s| assert_eq!(s.sessions_deleted, s.sessions_opened));
}

// A cross-origin POST redirect (another port is another origin) is not followed by default.
#[tokio::test]
async fn cross_origin_post_redirect_needs_the_opt_in() {
    let target = FakeServer::start(FakeConfig::default()).await;
    let fake = FakeServer::start(FakeConfig {
        fault: Fault::Redirect(target.url()),
        fault_on: "*",
        ..FakeConfig::default()
    })
    .await;
    let r = probe(&fake.url()).await;
    assert_eq!(r.verdict, Verdict::Down);
    assert_eq!(r.failure.unwrap().http_status, Some(307));
    let followed = probe_with(&fake.url(), |t| t.follow_post_redirects = true).await;
    assert_eq!(followed.verdict, Verdict::Up, "{:#?}", followed.failure);
}
