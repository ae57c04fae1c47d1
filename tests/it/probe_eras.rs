//! The probe against the fake server in every era and reply shape: detection, fallback,
//! pagination, sessions, and one schema hash across eras.

use crate::support;

use mcpwatch::probe::{Era, EraChoice, FailureKind, Phase, Verdict};
use serde_json::json;
use support::fake_mcp::{FakeConfig, FakeEra, FakeServer};
use support::{probe, probe_with};

fn cfg(era: FakeEra) -> FakeConfig {
    FakeConfig {
        era,
        ..FakeConfig::default()
    }
}

#[tokio::test]
async fn stateless_server_is_up_with_discover_meta_and_headers() {
    let fake = FakeServer::start(cfg(FakeEra::Stateless)).await;
    let r = probe(&fake.url()).await;
    assert_eq!(r.verdict, Verdict::Up, "{r:#?}");
    assert_eq!(r.era, Some(Era::Stateless));
    assert_eq!(r.protocol_version.as_deref(), Some("2026-07-28"));
    assert_eq!(
        r.server_info.as_ref().map(|s| s.name.as_str()),
        Some("fake-mcp")
    );
    assert_eq!(r.tools_count, 3);
    assert_eq!(r.tool_names, vec!["add", "echo", "search"]);
    assert_eq!(r.pages, 1);
    assert!(!r.session);
    assert!(r.schema_hash.as_deref().unwrap().starts_with("sha256:"));
    // Mcp-Method mirrored on every request; capabilities declared as {} (the hash depends on it).
    fake.seen(|s| {
        assert_eq!(s.mcp_method_headers, vec!["server/discover", "tools/list"]);
        assert!(s.client_capabilities.iter().all(|c| c == &json!({})));
    });
    assert!(
        r.timings_ms.connect.is_some()
            && r.timings_ms.handshake.is_some()
            && r.timings_ms.tools_list.is_some()
    );
    assert!(r.timings_ms.dns.is_none(), "IP literal: no DNS");
    assert!(r.timings_ms.tls.is_none(), "http: no TLS");
}

#[tokio::test]
async fn streamable_server_with_session_is_up_and_session_is_deleted() {
    let fake = FakeServer::start(FakeConfig {
        era: FakeEra::Streamable,
        sessions: true,
        ..FakeConfig::default()
    })
    .await;
    let r = probe(&fake.url()).await;
    assert_eq!(r.verdict, Verdict::Up, "{r:#?}");
    assert_eq!(r.era, Some(Era::StreamableHttp));
    assert_eq!(r.protocol_version.as_deref(), Some("2025-11-25"));
    assert!(r.session);
    fake.seen(|s| {
        assert_eq!(s.sessions_opened, vec!["sess-1"]);
        assert_eq!(
            s.sessions_deleted,
            vec!["sess-1"],
            "probes must not leak sessions"
        );
        assert_eq!(
            s.methods,
            vec![
                "server/discover",
                "initialize",
                "notifications/initialized",
                "tools/list"
            ]
        );
    });
    let delete = r
        .http
        .iter()
        .find(|s| s.http_method == "DELETE")
        .expect("DELETE step");
    assert_eq!(delete.status, 200);
}

#[tokio::test]
async fn streamable_without_session_accepts_405_on_delete() {
    let fake = FakeServer::start(cfg(FakeEra::Streamable)).await;
    let r = probe(&fake.url()).await;
    assert_eq!(r.verdict, Verdict::Up, "{r:#?}");
    assert!(!r.session);
    assert!(r.warnings.is_empty());
}

#[tokio::test]
async fn sse_replies_with_priming_events_notifications_and_server_requests() {
    for era in [FakeEra::Stateless, FakeEra::Streamable] {
        let fake = FakeServer::start(FakeConfig {
            era,
            sse_replies: true,
            sessions: true,
            ..FakeConfig::default()
        })
        .await;
        let r = probe(&fake.url()).await;
        assert_eq!(r.verdict, Verdict::Up, "{era:?}: {r:#?}");
        assert_eq!(r.tools_count, 3);
    }
}

#[tokio::test]
async fn http_sse_era_is_detected_after_both_modern_eras_fail() {
    let fake = FakeServer::start(cfg(FakeEra::HttpSse)).await;
    let r = probe(&fake.url()).await;
    assert_eq!(r.verdict, Verdict::Up, "{r:#?}");
    assert_eq!(r.era, Some(Era::HttpSse));
    assert_eq!(r.protocol_version.as_deref(), Some("2024-11-05"));
    assert_eq!(r.server_info.as_ref().unwrap().name, "fake-sse");
    assert_eq!(r.tools_count, 3);
    let statuses: Vec<(String, u16)> = r.http.iter().map(|s| (s.rpc.clone(), s.status)).collect();
    assert_eq!(statuses[0], ("server/discover".into(), 405));
    assert_eq!(statuses[1], ("initialize".into(), 405));
    assert_eq!(statuses[2], ("sse".into(), 200));
}

#[tokio::test]
async fn pagination_follows_cursors_to_the_end() {
    for era in [FakeEra::Stateless, FakeEra::Streamable, FakeEra::HttpSse] {
        let fake = FakeServer::start(FakeConfig {
            era,
            page_size: Some(1),
            ..FakeConfig::default()
        })
        .await;
        let r = probe(&fake.url()).await;
        assert_eq!(r.verdict, Verdict::Up, "{era:?}: {r:#?}");
        assert_eq!(r.pages, 3, "{era:?}");
        assert_eq!(r.tools_count, 3);
    }
}

#[tokio::test]
async fn page_cap_stops_a_long_list() {
    let fake = FakeServer::start(FakeConfig {
        page_size: Some(1),
        ..FakeConfig::default()
    })
    .await;
    let r = probe_with(&fake.url(), |t| t.max_pages = 2).await;
    assert_eq!(r.verdict, Verdict::Down);
    let f = r.failure.unwrap();
    assert_eq!((f.kind, f.phase), (FailureKind::TooLarge, Phase::ToolsList));
    assert!(f.message.contains("page cap of 2"), "{}", f.message);
}

#[tokio::test]
async fn one_hash_across_eras_and_serializers() {
    let modern = FakeServer::start(cfg(FakeEra::Stateless)).await;
    let legacy = FakeServer::start(FakeConfig {
        era: FakeEra::Streamable,
        reverse_keys: true,
        page_size: Some(2),
        ..FakeConfig::default()
    })
    .await;
    let sse = FakeServer::start(FakeConfig {
        era: FakeEra::HttpSse,
        reverse_keys: true,
        ..FakeConfig::default()
    })
    .await;
    let a = probe(&modern.url()).await;
    let b = probe(&legacy.url()).await;
    let c = probe(&sse.url()).await;
    assert_eq!(a.verdict, Verdict::Up);
    assert_eq!(
        a.schema_hash, b.schema_hash,
        "key order and paging must not move the hash"
    );
    assert_eq!(a.schema_hash, c.schema_hash);
    assert_eq!(a.interface_hash, b.interface_hash);
}

#[tokio::test]
async fn dual_era_server_is_probed_statelessly_and_forcing_the_older_era_works() {
    let fake = FakeServer::start(FakeConfig {
        era: FakeEra::Dual,
        sessions: true,
        ..FakeConfig::default()
    })
    .await;
    let detected = probe(&fake.url()).await;
    assert_eq!(detected.era, Some(Era::Stateless));
    let forced = probe_with(&fake.url(), |t| {
        t.era = EraChoice::Force(Era::StreamableHttp)
    })
    .await;
    assert_eq!(forced.verdict, Verdict::Up, "{forced:#?}");
    assert_eq!(forced.era, Some(Era::StreamableHttp));
    assert_eq!(detected.schema_hash, forced.schema_hash);
}

#[tokio::test]
async fn forcing_an_era_the_server_does_not_speak_is_down() {
    let fake = FakeServer::start(cfg(FakeEra::Streamable)).await;
    let r = probe_with(&fake.url(), |t| t.era = EraChoice::Force(Era::Stateless)).await;
    assert_eq!(r.verdict, Verdict::Down);
    let f = r.failure.unwrap();
    // The TypeScript-style answer: 400 with JSON-RPC error -32000 "Server not initialized".
    assert_eq!(
        (f.kind, f.http_status, f.jsonrpc_code),
        (FailureKind::Protocol, Some(400), Some(-32000))
    );
    assert!(
        f.message
            .starts_with("server does not speak the forced era"),
        "{}",
        f.message
    );
}

#[tokio::test]
async fn minimal_discover_result_without_supported_versions_falls_back() {
    let fake = FakeServer::start(FakeConfig {
        era: FakeEra::Dual,
        discover_minimal: true,
        ..FakeConfig::default()
    })
    .await;
    let r = probe(&fake.url()).await;
    assert_eq!(r.verdict, Verdict::Up, "{r:#?}");
    assert_eq!(r.era, Some(Era::StreamableHttp));
}

#[tokio::test]
async fn unsupported_version_error_listing_only_legacy_versions_falls_back_to_initialize() {
    let fake = FakeServer::start(FakeConfig {
        era: FakeEra::Dual,
        modern_versions: vec!["2027-01-01"],
        ..FakeConfig::default()
    })
    .await;
    let r = probe(&fake.url()).await;
    assert_eq!(r.verdict, Verdict::Up, "{r:#?}");
    assert_eq!(r.era, Some(Era::StreamableHttp));
    // A modern-only server listing versions we do not speak is a protocol failure, not a fallback.
    let modern_only = FakeServer::start(FakeConfig {
        modern_versions: vec!["2027-01-01"],
        ..FakeConfig::default()
    })
    .await;
    let r = probe(&modern_only.url()).await;
    let f = r.failure.unwrap();
    assert_eq!(
        (f.kind, f.jsonrpc_code),
        (FailureKind::Protocol, Some(-32022)),
        "{}",
        f.message
    );
}

#[tokio::test]
async fn prefer_tries_the_known_era_first() {
    let fake = FakeServer::start(FakeConfig {
        era: FakeEra::Streamable,
        sessions: true,
        ..FakeConfig::default()
    })
    .await;
    let r = probe_with(&fake.url(), |t| {
        t.era = EraChoice::Prefer(Era::StreamableHttp)
    })
    .await;
    assert_eq!(r.verdict, Verdict::Up);
    fake.seen(|s| assert_eq!(s.methods[0], "initialize", "no server/discover first"));
}

#[tokio::test]
async fn slow_probe_over_threshold_is_degraded() {
    use support::fake_mcp::Fault;
    let fake = FakeServer::start(FakeConfig {
        fault: Fault::Slow(std::time::Duration::from_millis(150)),
        ..FakeConfig::default()
    })
    .await;
    let r = probe_with(&fake.url(), |t| {
        t.degraded_after = Some(std::time::Duration::from_millis(50))
    })
    .await;
    assert_eq!(r.verdict, Verdict::Degraded, "{r:#?}");
    assert!(
        r.warnings[0].contains("latency threshold"),
        "{:?}",
        r.warnings
    );
    assert!(
        r.timings_ms.tools_list.unwrap() >= 150.0,
        "{:?}",
        r.timings_ms
    );
}
