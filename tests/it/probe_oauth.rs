//! The probe's OAuth against a real authorization server (npm's oidc-provider, see
//! support/oauth_as.rs): an MCP server (our fake) that names it in its protected-resource
//! metadata and accepts a bearer token only when the server's introspection says it is active.
//! The discovery chain checks out against the real metadata; a client-credentials identity
//! (basic, post, private_key_jwt) gets tokens, keeps them and renews them as they expire; and a
//! wrong secret, a token endpoint that is down, missing metadata, an issuer that does not match
//! and a server refusing a fresh token each give their own, explained verdict. The CLI's
//! options do the same.

use std::sync::Arc;
use std::time::Duration;

use crate::support;

use base64::Engine;
use mcpwatch::probe::discovery::DiscoveryStatus;
use mcpwatch::probe::oauth::{ClientAuth, ClientCredentials};
use mcpwatch::probe::{FailureKind, Phase, ProbeReport, ProbeTarget, Verdict};
use serde_json::{Value, json};
use support::fake_mcp::{FakeConfig, FakeEra, FakeServer};
use support::oauth_as::AuthServer;

const INTROSPECTOR: (&str, &str) = ("mcp-server", "introspector-secret");

/// An EC P-256 key: (PKCS#8 PEM, its public JWK).
fn key_pair() -> (String, Value) {
    let kp = rcgen::KeyPair::generate().unwrap();
    let raw = kp.public_key_raw();
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let jwk = json!({"kty": "EC", "crv": "P-256", "x": b64(&raw[1..33]), "y": b64(&raw[33..65]), "use": "sig", "alg": "ES256"});
    (kp.serialize_pem(), jwk)
}

/// An authorization server with three probe clients, tokens living `ttl` seconds.
fn authorization_server(ttl: u64, issuer: Option<&str>, jwk: &Value) -> AuthServer {
    AuthServer::start(&json!({
        "clients": [
            {"client_id": "probe", "client_secret": "probe-secret", "token_endpoint_auth_method": "client_secret_basic"},
            {"client_id": "probe-post", "client_secret": "post-secret", "token_endpoint_auth_method": "client_secret_post"},
            {"client_id": "probe-jwt", "token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [jwk]}},
        ],
        "introspector": {"client_id": INTROSPECTOR.0, "client_secret": INTROSPECTOR.1},
        "resource": "http://127.0.0.1/mcp",
        "ttl": ttl,
        "issuer": issuer,
    }))
}

/// An MCP server that names `issuer` and checks tokens with `server`'s introspection.
async fn protected(server: &AuthServer, issuer: &str) -> FakeServer {
    FakeServer::start(FakeConfig {
        era: FakeEra::Streamable,
        issuer: Some(issuer.to_string()),
        introspect: Some((
            server.introspection_endpoint(),
            INTROSPECTOR.0.into(),
            INTROSPECTOR.1.into(),
        )),
        ..FakeConfig::default()
    })
    .await
}

fn client(id: &str, auth: ClientAuth, secret: &str) -> Arc<ClientCredentials> {
    Arc::new(ClientCredentials {
        token_endpoint: None,
        client_id: id.into(),
        auth,
        secret: secret.into(),
        scope: Some("tools:read".into()),
        resource: None,
    })
}

async fn probe_as(
    prober: &mcpwatch::probe::Prober,
    url: &str,
    creds: Option<Arc<ClientCredentials>>,
) -> ProbeReport {
    let mut target = ProbeTarget::new(url.parse().unwrap());
    target.timeout = Duration::from_secs(5);
    target.oauth = creds;
    prober.probe(&target).await
}

#[track_caller]
fn assert_token_failure(r: &ProbeReport, verdict: Verdict, says: &str) {
    assert_eq!(r.verdict, verdict, "{r:#?}");
    let f = r.failure.as_ref().expect("a failure");
    assert_eq!(
        (f.kind, f.phase),
        (FailureKind::Auth, Phase::Token),
        "{}",
        f.message
    );
    assert!(f.message.contains(says), "{}", f.message);
}

#[tokio::test]
async fn tokens_from_a_real_authorization_server_are_used_kept_and_renewed() {
    let (pem, jwk) = key_pair();
    let server = authorization_server(2, None, &jwk);
    let mcp = protected(&server, &server.issuer()).await;
    let url = mcp.url();
    let prober = support::loopback_prober();

    // Without an identity: alive, protected, and the real chain checks out.
    let open = probe_as(&prober, &url, None).await;
    assert_eq!(open.verdict, Verdict::AuthRequired, "{open:#?}");
    let d = open.auth.unwrap().discovery.unwrap();
    assert_eq!(d.status, DiscoveryStatus::Ok, "{d:?}");
    assert_eq!(d.issuer.as_deref(), Some(server.issuer().as_str()));
    assert_eq!(
        d.token_endpoint.as_deref(),
        Some(server.token_endpoint().as_str())
    );

    // Each way to authenticate gets a token the server accepts (endpoint found by discovery).
    for creds in [
        client("probe", ClientAuth::ClientSecretBasic, "probe-secret"),
        client("probe-post", ClientAuth::ClientSecretPost, "post-secret"),
        client("probe-jwt", ClientAuth::PrivateKeyJwt, &pem),
    ] {
        let r = probe_as(&prober, &url, Some(creds.clone())).await;
        assert_eq!(r.verdict, Verdict::Up, "{}: {r:#?}", creds.client_id);
        let json = serde_json::to_string(&r).unwrap();
        assert!(
            !json.contains("secret") && !json.contains("PRIVATE KEY"),
            "{json}"
        );
    }

    // Kept while good, renewed once it expires (2 s here), and never reported down meanwhile.
    let basic = client("probe", ClientAuth::ClientSecretBasic, "probe-secret");
    let last_token = || {
        let mut seen = String::new();
        mcp.seen(|s| seen = s.authorization.last().cloned().unwrap_or_default());
        seen
    };
    assert_eq!(
        probe_as(&prober, &url, Some(basic.clone())).await.verdict,
        Verdict::Up
    );
    let first = last_token();
    assert_eq!(
        probe_as(&prober, &url, Some(basic.clone())).await.verdict,
        Verdict::Up
    );
    assert_eq!(last_token(), first, "the held token is used again");
    support::eventually("a renewed token", Duration::from_secs(15), async || {
        let r = probe_as(&prober, &url, Some(basic.clone())).await;
        assert_eq!(r.verdict, Verdict::Up, "{r:#?}");
        last_token() != first
    })
    .await;
}

#[tokio::test]
async fn each_broken_part_of_a_real_oauth_setup_has_its_own_verdict() {
    let (_, jwk) = key_pair();
    let server = authorization_server(60, None, &jwk);
    let prober = support::loopback_prober();
    let mcp = protected(&server, &server.issuer()).await;
    let url = mcp.url();

    // A wrong secret: the credential is refused (auth_failed), at the token endpoint.
    let wrong = client("probe", ClientAuth::ClientSecretBasic, "not-the-secret");
    let r = probe_as(&prober, &url, Some(wrong)).await;
    assert_token_failure(&r, Verdict::AuthRequired, "invalid_client");
    assert!(r.auth.unwrap().credentials_sent);

    // The token endpoint is down: not the MCP server's fault, and said so.
    let mut down = (*client("probe", ClientAuth::ClientSecretBasic, "probe-secret")).clone();
    down.token_endpoint = Some("http://127.0.0.1:9/token".into());
    let r = probe_as(&prober, &url, Some(Arc::new(down))).await;
    assert_token_failure(&r, Verdict::Down, "token endpoint http://127.0.0.1:9/token");

    // A server that refuses a fresh token: auth_failed, as for any refused credential.
    let refusing = FakeServer::start(FakeConfig {
        era: FakeEra::Streamable,
        bearer: Some("only-this-one".into()),
        issuer: Some(server.issuer()),
        ..FakeConfig::default()
    })
    .await;
    let basic = client("probe", ClientAuth::ClientSecretBasic, "probe-secret");
    let r = probe_as(&prober, &refusing.url(), Some(basic.clone())).await;
    assert_eq!(r.verdict, Verdict::AuthRequired, "{r:#?}");
    assert!(r.auth.unwrap().credentials_sent);

    // Metadata missing: the chain names an issuer with nothing at its well-known URLs.
    let lost = protected(&server, &format!("{}/tenant", server.issuer())).await;
    let r = probe_as(&prober, &lost.url(), None).await;
    assert_eq!(
        r.failure.as_ref().unwrap().kind,
        FailureKind::AuthDiscovery,
        "{r:#?}"
    );
    assert!(r.failure.unwrap().message.contains("no metadata at"));
    let r = probe_as(&prober, &lost.url(), Some(basic.clone())).await;
    assert_token_failure(
        &r,
        Verdict::Down,
        "no token endpoint configured, and OAuth discovery broken",
    );

    // An authorization server whose metadata claims another issuer than it is reached at.
    let other = authorization_server(60, Some("http://127.0.0.1:1/realms/other"), &jwk);
    let mismatched = protected(&other, &other.issuer()).await;
    let r = probe_as(&prober, &mismatched.url(), None).await;
    let f = r.failure.expect("a failure");
    assert_eq!(f.kind, FailureKind::AuthDiscovery);
    assert!(
        f.message
            .contains("says issuer 'http://127.0.0.1:1/realms/other'"),
        "{}",
        f.message
    );
}

#[tokio::test]
async fn the_cli_takes_an_oauth_identity() {
    let (_, jwk) = key_pair();
    let server = authorization_server(60, None, &jwk);
    let mcp = protected(&server, &server.issuer()).await;
    let run = |secret: &'static str| {
        let url = mcp.url();
        let endpoint = server.token_endpoint();
        async move {
            // The binary runs off the test's runtime, which serves the MCP server meanwhile.
            let out = tokio::task::spawn_blocking(move || {
                support::proc::command(
                    &[
                        "check",
                        &url,
                        "--json",
                        "--oauth-client-id",
                        "probe",
                        "--oauth-client-secret-env",
                        "PROBE_SECRET",
                        "--oauth-token-endpoint",
                        &endpoint,
                        "--oauth-scope",
                        "tools:read",
                    ],
                    &[("PROBE_SECRET", secret)],
                )
                .output()
                .unwrap()
            })
            .await
            .unwrap();
            let report: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
            (
                out.status.code(),
                report,
                String::from_utf8_lossy(&out.stderr).to_string(),
            )
        }
    };
    let (code, report, stderr) = run("probe-secret").await;
    assert_eq!(code, Some(0), "{report} {stderr}");
    assert_eq!(report["verdict"], "up");
    let (code, report, _) = run("wrong").await;
    assert_eq!(code, Some(1));
    assert_eq!(report["failure"]["kind"], "auth");
    assert_eq!(report["failure"]["phase"], "token");
    assert!(
        !report.to_string().contains("wrong"),
        "the secret is never printed"
    );
}

/// Check `slug` now through the daemon's API; the stored result as the API answers it.
async fn check_now(app: &support::app::TestApp, slug: &str) -> Value {
    let (s, r) = app
        .post(&format!("/api/v1/servers/{slug}/check"), json!({}))
        .await;
    assert_eq!(s, reqwest::StatusCode::OK, "{r}");
    assert!(
        !r.to_string().contains("probe-secret"),
        "the secret never comes back: {r}"
    );
    r
}

#[tokio::test]
async fn the_daemon_monitors_a_server_behind_a_real_authorization_server() {
    // Up across token lifetimes; then a wrong secret, a token endpoint down, and broken
    // metadata each give their own, explained verdict.
    let (_, jwk) = key_pair();
    // Tokens live 3 s: the probes below span several lifetimes, as hours would span many.
    let server = authorization_server(3, None, &jwk);
    let mcp = protected(&server, &server.issuer()).await;
    let app = support::app::spawn_app(support::db::Backend::Sqlite).await;
    let identity =
        json!({"client_id": "probe", "client_secret": "probe-secret", "scope": "tools:read"});
    let (s, created) = app
        .post(
            "/api/v1/servers",
            json!({"name": "Billing", "slug": "billing", "url": mcp.url(), "oauth": identity,
                   "interval_seconds": 3600, "failures_to_down": 1}),
        )
        .await;
    assert_eq!(s, reqwest::StatusCode::CREATED, "{created}");
    assert_eq!(created["oauth"]["client_secret"], "***");

    // Up on every probe while tokens expire and renew by themselves.
    let tokens = || {
        let mut seen = Vec::new();
        mcp.seen(|s| seen = s.authorization.clone());
        seen.sort();
        seen.dedup();
        seen.len()
    };
    let mut probes = 0;
    let started = std::time::Instant::now();
    support::eventually("four tokens used", Duration::from_secs(40), async || {
        let r = check_now(&app, "billing").await;
        assert_eq!(r["verdict"], "up", "{r}");
        probes += 1;
        tokio::time::sleep(Duration::from_millis(300)).await;
        tokens() >= 4
    })
    .await;
    let used = tokens();
    assert!(
        probes > used,
        "a token is kept while good: {probes} probes, {used} tokens in {:?}",
        started.elapsed()
    );
    let (_, view) = app.get("/api/v1/servers/billing").await;
    assert_eq!(view["state"], "up", "{view}");

    // A wrong secret: refused at the token endpoint; auth_failed, and said where.
    let wrong = json!({"oauth": {"client_id": "probe", "client_secret": "not-the-secret"}});
    assert_eq!(app.patch("/api/v1/servers/billing", wrong).await.0, 200);
    let r = check_now(&app, "billing").await;
    assert_eq!(r["verdict"], "auth_required", "{r}");
    assert_eq!(
        (&r["failure"]["kind"], &r["failure"]["phase"]),
        (&json!("auth"), &json!("token"))
    );
    assert!(
        r["failure"]["message"]
            .as_str()
            .unwrap()
            .contains("invalid_client"),
        "{r}"
    );
    let (_, view) = app.get("/api/v1/servers/billing").await;
    assert_eq!(view["state"], "auth_failed", "{view}");

    // The token endpoint down: the MCP server is not blamed for it… but nothing works either.
    let down = json!({"oauth": {"client_id": "probe", "client_secret": "probe-secret",
                                "token_endpoint": "http://127.0.0.1:9/token"}});
    assert_eq!(app.patch("/api/v1/servers/billing", down).await.0, 200);
    let r = check_now(&app, "billing").await;
    assert_eq!(r["verdict"], "down", "{r}");
    assert_eq!(r["failure"]["phase"], "token", "{r}");
    assert!(
        r["failure"]["message"]
            .as_str()
            .unwrap()
            .contains("token endpoint"),
        "{r}"
    );

    // Mended, with the secret kept from the last write: up again.
    let mended = json!({"oauth": {"client_id": "probe", "scope": "tools:read"}});
    assert_eq!(app.patch("/api/v1/servers/billing", mended).await.0, 200);
    let r = check_now(&app, "billing").await;
    assert_eq!(r["verdict"], "up", "{r}");

    // Its metadata breaks (it names an issuer with nothing at its well-known URLs): at the next
    // renewal the probe walks the chain again, as a new client would, and says where it broke.
    let lost = format!("{}/tenant", server.issuer());
    mcp.update(|c| c.issuer = Some(lost));
    support::eventually(
        "the broken chain seen",
        Duration::from_secs(15),
        async || {
            let r = check_now(&app, "billing").await;
            let message = r["failure"]["message"].as_str().unwrap_or("").to_string();
            if r["verdict"] == "up" {
                tokio::time::sleep(Duration::from_millis(300)).await;
                return false;
            }
            assert_eq!(r["verdict"], "down", "{r}");
            assert!(message.contains("OAuth discovery broken"), "{r}");
            assert!(message.contains("no metadata at"), "{r}");
            true
        },
    )
    .await;
    app.stop().await;
}

/// Every stored result of `slug`, newest first.
async fn all_results(app: &support::app::TestApp, slug: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut path = format!("/api/v1/servers/{slug}/results?limit=500");
    loop {
        let (_, page) = app.get(&path).await;
        out.extend(page["items"].as_array().cloned().unwrap_or_default());
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/api/v1/servers/{slug}/results?limit=500&cursor={c}"),
            None => return out,
        }
    }
}

/// A soak: the daemon's own scheduler probes a server behind the real authorization server
/// every 10 s for `MCPWATCH_SOAK_SECONDS` (default 35) while tokens living
/// `MCPWATCH_SOAK_TOKEN_TTL` seconds (default 5) expire and renew; every result must be up.
/// Run long by hand: `MCPWATCH_SOAK_SECONDS=6000 MCPWATCH_SOAK_TOKEN_TTL=60 cargo test --test
/// it -- probe_oauth::a_soak --nocapture` (the figures it prints are in the README).
#[tokio::test]
async fn a_soak_of_scheduled_probes_stays_up_as_tokens_renew() {
    let number = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (seconds, ttl) = (
        number("MCPWATCH_SOAK_SECONDS", 35),
        number("MCPWATCH_SOAK_TOKEN_TTL", 5),
    );
    let (_, jwk) = key_pair();
    let server = authorization_server(ttl, None, &jwk);
    let mcp = protected(&server, &server.issuer()).await;
    let app = support::app::spawn_app(support::db::Backend::Sqlite).await;
    let (s, created) = app
        .post(
            "/api/v1/servers",
            json!({"name": "Soak", "slug": "soak", "url": mcp.url(), "interval_seconds": 10,
                   "failures_to_down": 1,
                   "oauth": {"client_id": "probe", "client_secret": "probe-secret"}}),
        )
        .await;
    assert_eq!(s, reqwest::StatusCode::CREATED, "{created}");
    let started = std::time::Instant::now();
    // A soak is time passing, not an event stood in for: the scheduler probes meanwhile.
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let results = all_results(&app, "soak").await;
    let not_up: Vec<&Value> = results.iter().filter(|r| r["verdict"] != "up").collect();
    let mut tokens = Vec::new();
    mcp.seen(|s| tokens = s.authorization.clone());
    tokens.sort();
    tokens.dedup();
    println!(
        "soak: {} scheduled probes over {:?}, {} not up, {} tokens of {ttl} s",
        results.len(),
        started.elapsed(),
        not_up.len(),
        tokens.len()
    );
    assert!(not_up.is_empty(), "{not_up:#?}");
    assert!(
        results.len() as u64 >= seconds / 10 - 1,
        "{}",
        results.len()
    );
    let lifetimes = seconds / ttl.max(10);
    assert!(
        tokens.len() as u64 >= lifetimes.saturating_sub(1).max(2),
        "renewed by itself: {} tokens over {seconds} s",
        tokens.len()
    );
    let (_, view) = app.get("/api/v1/servers/soak").await;
    assert_eq!(view["state"], "up", "{view}");
    app.stop().await;
}
