//! One test per misbehaviour of the fake server (and per network failure), asserting the
//! verdict, the failure kind and, where it matters, the phase.

use crate::support;

use std::time::{Duration, Instant};

use mcpwatch::probe::discovery::DiscoveryStatus;
use mcpwatch::probe::{
    AddressPolicy, FailureKind, Phase, ProbeReport, ProbeTarget, Prober, ProberConfig, Verdict,
};
use support::fake_mcp::{FakeConfig, FakeEra, FakeServer, Fault, OAuthChain};
use support::{probe, probe_with};

async fn faulty(era: FakeEra, fault: Fault) -> FakeServer {
    FakeServer::start(FakeConfig {
        era,
        fault,
        ..FakeConfig::default()
    })
    .await
}

#[track_caller]
fn assert_down(r: &ProbeReport, kind: FailureKind, phase: Phase) {
    assert_eq!(r.verdict, Verdict::Down, "{r:#?}");
    let f = r.failure.as_ref().expect("a failure");
    assert_eq!((f.kind, f.phase), (kind, phase), "{}", f.message);
    assert!(!f.message.is_empty());
}

#[tokio::test]
async fn hang_in_tools_list_is_a_timeout_in_tools_list() {
    let fake = faulty(FakeEra::Stateless, Fault::Hang).await;
    let started = Instant::now();
    let r = probe_with(&fake.url(), |t| t.timeout = Duration::from_millis(600)).await;
    assert_down(&r, FailureKind::Timeout, Phase::ToolsList);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "a hanging server costs at most its timeout"
    );
}

#[tokio::test]
async fn hang_in_initialize_is_a_timeout_in_the_handshake() {
    let fake = FakeServer::start(FakeConfig {
        era: FakeEra::Streamable,
        fault: Fault::Hang,
        fault_on: "initialize",
        ..FakeConfig::default()
    })
    .await;
    let r = probe_with(&fake.url(), |t| t.timeout = Duration::from_millis(500)).await;
    assert_down(&r, FailureKind::Timeout, Phase::Handshake);
}

#[tokio::test]
async fn dripping_bytes_time_out() {
    let fake = faulty(FakeEra::Stateless, Fault::DripBytes).await;
    let r = probe_with(&fake.url(), |t| t.timeout = Duration::from_millis(700)).await;
    assert_down(&r, FailureKind::Timeout, Phase::ToolsList);
}

#[tokio::test]
async fn html_200_is_not_mcp() {
    let fake = FakeServer::start(FakeConfig {
        fault: Fault::Html200,
        fault_on: "*",
        ..FakeConfig::default()
    })
    .await;
    let r = probe(&fake.url()).await;
    assert_down(&r, FailureKind::NotMcp, Phase::Handshake);
    let f = r.failure.unwrap();
    assert_eq!(f.http_status, Some(200));
    assert!(
        f.message.contains("text/html") && f.message.contains("Welcome to nginx"),
        "{}",
        f.message
    );
}

#[tokio::test]
async fn json_that_is_not_jsonrpc_is_not_mcp() {
    let fake = FakeServer::start(FakeConfig {
        fault: Fault::PlainJson,
        fault_on: "*",
        ..FakeConfig::default()
    })
    .await;
    let r = probe(&fake.url()).await;
    assert_down(&r, FailureKind::NotMcp, Phase::Handshake);
}

#[tokio::test]
async fn status_404_and_500_are_http_status() {
    let fake = FakeServer::start(FakeConfig {
        fault: Fault::Status(404),
        fault_on: "*",
        ..FakeConfig::default()
    })
    .await;
    let r = probe(&fake.url()).await;
    assert_down(&r, FailureKind::HttpStatus, Phase::Handshake);
    assert_eq!(r.failure.as_ref().unwrap().http_status, Some(404));
    assert!(r.failure.unwrap().message.contains("no MCP era answered"));

    let fake = faulty(FakeEra::Stateless, Fault::Status(500)).await;
    let r = probe(&fake.url()).await;
    assert_down(&r, FailureKind::HttpStatus, Phase::ToolsList);
    assert_eq!(r.failure.unwrap().http_status, Some(500));
}

#[tokio::test]
async fn invalid_json_is_a_protocol_failure() {
    let fake = faulty(FakeEra::Stateless, Fault::InvalidJson).await;
    let r = probe(&fake.url()).await;
    assert_down(&r, FailureKind::Protocol, Phase::ToolsList);
    assert!(r.failure.unwrap().message.contains("not valid JSON"));
}

#[tokio::test]
async fn wrong_id_is_a_protocol_failure_in_every_shape() {
    for (era, sse) in [(FakeEra::Stateless, false), (FakeEra::Streamable, true)] {
        let fake = FakeServer::start(FakeConfig {
            era,
            sse_replies: sse,
            fault: Fault::WrongId,
            ..FakeConfig::default()
        })
        .await;
        let r = probe(&fake.url()).await;
        assert_down(&r, FailureKind::Protocol, Phase::ToolsList);
        assert!(
            r.failure
                .unwrap()
                .message
                .contains("does not match request id")
        );
    }
    // HTTP+SSE: a reply with a foreign id is never taken; the probe waits for ours and times out.
    let fake = faulty(FakeEra::HttpSse, Fault::WrongId).await;
    let r = probe_with(&fake.url(), |t| t.timeout = Duration::from_millis(500)).await;
    assert_down(&r, FailureKind::Timeout, Phase::ToolsList);
}

#[tokio::test]
async fn duplicate_tools_are_a_protocol_failure() {
    let fake = faulty(FakeEra::Streamable, Fault::DuplicateTools).await;
    let r = probe(&fake.url()).await;
    assert_down(&r, FailureKind::Protocol, Phase::ToolsList);
    assert!(r.failure.unwrap().message.contains("more than once"));
}

#[tokio::test]
async fn empty_tools_is_its_own_kind() {
    for era in [FakeEra::Stateless, FakeEra::Streamable, FakeEra::HttpSse] {
        let fake = faulty(era, Fault::EmptyTools).await;
        let r = probe(&fake.url()).await;
        assert_down(&r, FailureKind::EmptyTools, Phase::ToolsList);
    }
}

#[tokio::test]
async fn endless_sse_hits_the_body_cap() {
    let fake = faulty(FakeEra::Stateless, Fault::EndlessSse).await;
    let r = probe_with(&fake.url(), |t| t.body_cap = 256 * 1024).await;
    assert_down(&r, FailureKind::TooLarge, Phase::ToolsList);
}

#[tokio::test]
async fn huge_body_hits_the_default_cap() {
    let fake = faulty(FakeEra::Stateless, Fault::HugeBody).await;
    let r = probe(&fake.url()).await;
    assert_down(&r, FailureKind::TooLarge, Phase::ToolsList);
    assert!(r.failure.unwrap().message.contains("4194304 bytes"));
}

#[tokio::test]
async fn gzip_bomb_stops_at_the_decoded_cap() {
    let fake = faulty(FakeEra::Stateless, Fault::GzipBomb).await;
    let r = probe(&fake.url()).await;
    assert_down(&r, FailureKind::TooLarge, Phase::ToolsList);
    assert!(r.failure.unwrap().message.contains("decoded"));
}

#[tokio::test]
async fn cursor_cycle_is_detected() {
    let fake = faulty(FakeEra::Stateless, Fault::CursorCycle).await;
    let r = probe(&fake.url()).await;
    assert_down(&r, FailureKind::Protocol, Phase::ToolsList);
    assert!(r.failure.unwrap().message.contains("cursor cycle"));
}

#[tokio::test]
async fn unknown_counter_offer_is_refused() {
    let fake = faulty(
        FakeEra::Streamable,
        Fault::CounterOffer("2099-01-01".into()),
    )
    .await;
    let r = probe(&fake.url()).await;
    assert_down(&r, FailureKind::Protocol, Phase::Handshake);
    assert!(r.failure.unwrap().message.contains("2099-01-01"));
}

#[tokio::test]
async fn older_counter_offer_we_speak_is_accepted() {
    let fake = faulty(
        FakeEra::Streamable,
        Fault::CounterOffer("2025-03-26".into()),
    )
    .await;
    let r = probe(&fake.url()).await;
    assert_eq!(r.verdict, Verdict::Up, "{r:#?}");
    assert_eq!(r.protocol_version.as_deref(), Some("2025-03-26"));
}

#[tokio::test]
async fn failed_session_delete_is_degraded() {
    let fake = FakeServer::start(FakeConfig {
        era: FakeEra::Streamable,
        sessions: true,
        fault: Fault::DeleteFails,
        ..FakeConfig::default()
    })
    .await;
    let r = probe(&fake.url()).await;
    assert_eq!(r.verdict, Verdict::Degraded, "{r:#?}");
    assert!(r.warnings[0].contains("session DELETE answered HTTP 500"));
}

#[tokio::test]
async fn a_timeout_still_closes_the_session() {
    let fake = FakeServer::start(FakeConfig {
        era: FakeEra::Streamable,
        sessions: true,
        fault: Fault::Hang,
        ..FakeConfig::default()
    })
    .await;
    let r = probe_with(&fake.url(), |t| t.timeout = Duration::from_millis(500)).await;
    assert_down(&r, FailureKind::Timeout, Phase::ToolsList);
    fake.seen(|s| assert_eq!(s.sessions_deleted, vec!["sess-1"]));
}

#[tokio::test]
async fn redirect_to_metadata_address_is_blocked_or_not_followed() {
    let fake = FakeServer::start(FakeConfig {
        fault: Fault::Redirect("http://169.254.169.254/latest/meta-data/".into()),
        fault_on: "*",
        ..FakeConfig::default()
    })
    .await;
    let followed = probe_with(&fake.url(), |t| t.follow_post_redirects = true).await;
    assert_down(&followed, FailureKind::Blocked, Phase::Handshake);
    assert!(
        followed
            .failure
            .unwrap()
            .message
            .contains("169.254.169.254")
    );
    let unfollowed = probe(&fake.url()).await;
    assert_eq!(
        unfollowed.failure.as_ref().unwrap().kind,
        FailureKind::HttpStatus
    );
    assert_eq!(unfollowed.failure.unwrap().http_status, Some(307));
}

#[tokio::test]
async fn loopback_is_blocked_by_the_default_policy() {
    let fake = FakeServer::start(FakeConfig::default()).await;
    let prober = Prober::new(ProberConfig {
        policy: AddressPolicy::public_only(),
        ..ProberConfig::default()
    })
    .unwrap();
    let r = prober
        .probe(&ProbeTarget::new(fake.url().parse().unwrap()))
        .await;
    assert_eq!(
        r.failure.as_ref().map(|f| f.kind),
        Some(FailureKind::Blocked),
        "{r:#?}"
    );
    assert!(
        r.http.is_empty(),
        "no request may leave for a blocked address"
    );
    // A name resolving to loopback is blocked at connect time, too.
    let by_name = prober
        .probe(&ProbeTarget::new(
            format!("http://localhost:{}/mcp", fake.addr.port())
                .parse()
                .unwrap(),
        ))
        .await;
    assert_down(&by_name, FailureKind::Blocked, Phase::Connect);
    fake.seen(|s| assert!(s.methods.is_empty()));
}

#[tokio::test]
async fn refused_connection_is_connect() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let r = probe(&format!("http://127.0.0.1:{port}/mcp")).await;
    assert_down(&r, FailureKind::Connect, Phase::Connect);
    assert!(r.failure.unwrap().message.contains("refused"));
    assert_eq!(r.era, None, "no handshake, no era");
    assert_eq!(r.timings_ms.handshake, None);
    assert!(
        r.timings_ms.connect.is_some(),
        "the failed connect is still timed"
    );
}

#[tokio::test]
async fn unresolvable_name_is_dns() {
    let r = probe("http://mcp.example.invalid/mcp").await;
    assert_down(&r, FailureKind::Dns, Phase::Dns);
    assert!(
        r.timings_ms.dns.is_some(),
        "the failed lookup is still timed"
    );
}

#[tokio::test]
async fn accepting_but_silent_tcp_times_out() {
    // A listener that accepts and never answers: "TCP alive, HTTP dead".
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
        }
    });
    let r = probe_with(&format!("http://{addr}/mcp"), |t| {
        t.timeout = Duration::from_millis(400)
    })
    .await;
    assert_down(&r, FailureKind::Timeout, Phase::Handshake);
    task.abort();
}

#[tokio::test]
async fn bearer_challenge_is_auth_required_and_credentials_are_sent_and_never_reported() {
    let fake = FakeServer::start(FakeConfig {
        era: FakeEra::Streamable,
        bearer: Some("s3cret-token".into()),
        ..FakeConfig::default()
    })
    .await;
    let r = probe(&fake.url()).await;
    assert_eq!(r.verdict, Verdict::AuthRequired, "{r:#?}");
    let auth = r.auth.as_ref().unwrap();
    assert_eq!(auth.http_status, 401);
    assert_eq!(auth.scheme.as_deref(), Some("Bearer"));
    assert_eq!(auth.error.as_deref(), Some("invalid_token"));
    assert!(
        auth.resource_metadata
            .as_deref()
            .unwrap()
            .ends_with("/.well-known/oauth-protected-resource/mcp")
    );
    assert!(!auth.credentials_sent);
    // Alive and correctly protected: the chain a client would walk checks out.
    let d = auth
        .discovery
        .as_ref()
        .expect("the discovery chain was walked");
    assert_eq!(d.status, DiscoveryStatus::Ok, "{d:?}");
    let base = fake.url().trim_end_matches("/mcp").to_string();
    assert_eq!(d.issuer.as_deref(), Some(format!("{base}/auth").as_str()));
    assert_eq!(
        d.metadata_url.as_deref(),
        Some(format!("{base}/.well-known/oauth-authorization-server/auth").as_str())
    );
    assert_eq!(
        d.token_endpoint.as_deref(),
        Some(format!("{base}/auth/token").as_str())
    );

    let good = probe_with(&fake.url(), |t| {
        t.headers = vec![("Authorization".into(), "Bearer s3cret-token".into())]
    })
    .await;
    assert_eq!(good.verdict, Verdict::Up, "{good:#?}");
    fake.seen(|s| assert!(s.authorization.iter().all(|a| a == "Bearer s3cret-token")));
    let json = serde_json::to_string(&good).unwrap();
    assert!(
        !json.contains("s3cret"),
        "credentials must never appear in a report"
    );

    let wrong = probe_with(&fake.url(), |t| {
        t.headers = vec![("Authorization".into(), "Bearer expired".into())]
    })
    .await;
    assert_eq!(wrong.verdict, Verdict::AuthRequired);
    let wrong = wrong.auth.unwrap();
    assert!(
        wrong.credentials_sent,
        "a 401 despite credentials means they failed"
    );
    assert!(
        wrong.discovery.is_none(),
        "nothing is fetched from other hosts while the probe holds credentials"
    );
}

/// Each broken step of the OAuth chain is its own failure, naming the step and why; a server
/// that advertises no OAuth at all stays `auth_required`.
#[tokio::test]
async fn a_broken_oauth_discovery_chain_names_its_step() {
    use mcpwatch::probe::discovery::DiscoveryStep::*;
    for (chain, step, says) in [
        (
            OAuthChain::NoS256,
            AuthorizationServerMetadata,
            "does not advertise PKCE S256",
        ),
        (
            OAuthChain::WrongIssuer,
            AuthorizationServerMetadata,
            "says issuer 'https://login.other.example'",
        ),
        (
            OAuthChain::NoMetadata,
            AuthorizationServerMetadata,
            "no metadata at",
        ),
        (
            OAuthChain::WrongResource,
            ProtectedResourceMetadata,
            "is not this server",
        ),
        (
            OAuthChain::NoResourceMetadata,
            ProtectedResourceMetadata,
            "answered HTTP 404",
        ),
    ] {
        let fake = FakeServer::start(FakeConfig {
            era: FakeEra::Streamable,
            bearer: Some("t".into()),
            oauth: chain,
            ..FakeConfig::default()
        })
        .await;
        let r = probe(&fake.url()).await;
        assert_down(&r, FailureKind::AuthDiscovery, Phase::Handshake);
        let message = &r.failure.as_ref().unwrap().message;
        assert!(message.contains(says), "{chain:?}: {message}");
        let d = r.auth.as_ref().unwrap().discovery.as_ref().unwrap();
        assert_eq!(
            (d.status, d.step),
            (DiscoveryStatus::Broken, Some(step)),
            "{chain:?}"
        );
        assert!(message.starts_with(&format!(
            "OAuth discovery broken at the {}",
            step.describe()
        )));
    }
    // A plain bearer challenge, no metadata anywhere: protected by a key, not by OAuth.
    let fake = FakeServer::start(FakeConfig {
        era: FakeEra::Streamable,
        bearer: Some("t".into()),
        oauth: OAuthChain::NotAdvertised,
        ..FakeConfig::default()
    })
    .await;
    let keyed = probe(&fake.url()).await;
    assert_eq!(keyed.verdict, Verdict::AuthRequired, "{keyed:#?}");
    let d = keyed.auth.unwrap().discovery.unwrap();
    assert_eq!(d.status, DiscoveryStatus::NotAdvertised);
}

#[tokio::test]
async fn protected_resource_metadata_without_challenge_is_auth_required() {
    let fake = FakeServer::start(FakeConfig {
        bearer: Some("t".into()),
        challenge_header: false,
        prm: true,
        ..FakeConfig::default()
    })
    .await;
    let r = probe(&fake.url()).await;
    assert_eq!(r.verdict, Verdict::AuthRequired, "{r:#?}");
    let auth = r.auth.unwrap();
    assert!(
        auth.resource_metadata
            .unwrap()
            .ends_with("/.well-known/oauth-protected-resource/mcp")
    );
    assert_eq!(auth.scope.as_deref(), Some("tools:read"));
}

#[tokio::test]
async fn bare_401_without_challenge_or_metadata_is_http_status() {
    let fake = FakeServer::start(FakeConfig {
        bearer: Some("t".into()),
        challenge_header: false,
        prm: false,
        ..FakeConfig::default()
    })
    .await;
    let r = probe(&fake.url()).await;
    assert_eq!(r.verdict, Verdict::Down, "{r:#?}");
    let f = r.failure.unwrap();
    assert_eq!(
        (f.kind, f.http_status),
        (FailureKind::HttpStatus, Some(401))
    );
}

#[tokio::test]
async fn http_sse_auth_is_detected_on_the_get() {
    let fake = FakeServer::start(FakeConfig {
        era: FakeEra::HttpSse,
        bearer: Some("t".into()),
        ..FakeConfig::default()
    })
    .await;
    let r = probe_with(&fake.url(), |t| {
        t.era = mcpwatch::probe::EraChoice::Force(mcpwatch::probe::Era::HttpSse)
    })
    .await;
    assert_eq!(r.verdict, Verdict::AuthRequired, "{r:#?}");
}

#[tokio::test]
async fn a_server_reflecting_the_credential_never_gets_it_into_the_report() {
    let fake = faulty(FakeEra::Stateless, Fault::EchoAuthorization).await;
    let r = probe_with(&fake.url(), |t| {
        t.headers = vec![("Authorization".into(), "Bearer reflected-secret-42".into())]
    })
    .await;
    assert_eq!(r.verdict, Verdict::Down);
    let message = &r.failure.as_ref().unwrap().message;
    assert!(message.contains("you sent Authorization: ***"), "{message}");
    let json = serde_json::to_string(&r).unwrap();
    assert!(!json.contains("reflected-secret-42"), "{json}");
}

/// NUL characters a server puts in its names or errors never reach the report's texts (no
/// store can hold them); the server stays up.
#[tokio::test]
async fn nul_characters_from_the_server_are_replaced() {
    let fake = FakeServer::start(FakeConfig {
        era: FakeEra::Streamable,
        fault: Fault::Answer(
            200,
            serde_json::json!({"jsonrpc": "2.0", "id": 2, "result": {"protocolVersion": "2025-11-25",
                "capabilities": {"tools": {}}, "serverInfo": {"name": "evil\u{0}name", "version": "1\u{0}"}}}),
        ),
        fault_on: "initialize",
        ..FakeConfig::default()
    })
    .await;
    let r = probe(&fake.url()).await;
    assert_eq!(r.verdict, Verdict::Up, "{:#?}", r.failure);
    assert_eq!(r.server_info.as_ref().unwrap().name, "evil\u{FFFD}name");
    let failing = FakeServer::start(FakeConfig {
        fault: Fault::Answer(
            200,
            serde_json::json!({"jsonrpc": "2.0", "id": 2, "error": {"code": -32603, "message": "boom\u{0}"}}),
        ),
        ..FakeConfig::default()
    })
    .await;
    let r = probe(&failing.url()).await;
    let text = serde_json::to_string(&r).unwrap();
    assert!(r.failure.is_some() && !text.contains("\\u0000"), "{text}");
}
