//! The credential-expiry watchdog, on both backends, under a manual clock: a static bearer JWT
//! registered through the API has its `exp` read (the token never shown), and the watchdog
//! sends `credential.expiring` once at each lead time (7 days, 1 day) and `credential.expired`
//! once when it passes, each queued for the channel once; a replaced token warns afresh; the metric
//! shows the expiry. An OAuth identity's `expires_at` is watched the same way, and bad OAuth
//! input is refused field by field.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use crate::support;

use base64::Engine;
use mcpwatch::credentials::watch::CredentialWatch;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::app::spawn_app;
use support::db::Backend;
use test_case::test_case;

const DAY: i64 = 86_400_000;
/// Far from the real clock, so the daemon's own watchdog (on the system clock) stays quiet.
const EXP: i64 = 1_950_000_000_000;

/// An unsigned-looking JWT with this `exp` (ms): the watchdog never checks signatures.
fn jwt(exp_ms: i64) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let claims = json!({"sub": "mcpwatch-probe", "exp": exp_ms / 1000}).to_string();
    format!(
        "{}.{}.c2lnbmF0dXJl",
        b64(r#"{"alg":"RS256","typ":"JWT"}"#),
        b64(&claims)
    )
}

/// Tick at `at`; the kinds (and lead) of what was sent, and their headlines.
async fn tick_at(watch: &CredentialWatch, now: &AtomicI64, at: i64) -> Vec<String> {
    now.store(at, Ordering::SeqCst);
    let sent = watch.tick().await.unwrap();
    for e in &sent {
        HEADLINES.with(|h| h.borrow_mut().push(mcpwatch::alert::webhook::headline(e)));
    }
    sent.iter()
        .map(|e| match e.payload["lead"].as_str() {
            Some(lead) => format!("{} {lead}", e.kind),
            None => e.kind.clone(),
        })
        .collect()
}

thread_local! {
    static HEADLINES: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn a_bearer_jwt_warns_once_at_each_lead_time_and_when_it_expires(backend: Backend) {
    let app = spawn_app(backend).await;
    let (s, channel) = app
        .post(
            "/api/v1/channels",
            json!({"name": "ops", "url": "https://hooks.example.com/x", "format": "slack"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let token = jwt(EXP);
    let (s, created) = app
        .post(
            "/api/v1/servers",
            json!({"name": "Weather", "slug": "weather", "url": "https://mcp.example.com/mcp",
                   "headers": {"Authorization": format!("Bearer {token}")}, "paused": false}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    assert!(!created.to_string().contains(&token), "{created}");
    assert_eq!(
        created["credentials"],
        json!([{"credential": "bearer", "expires_at": mcpwatch::clock::rfc3339(EXP)}])
    );

    // The watchdog reads only servers with a known expiry, not the whole fleet.
    let (s, _) = app
        .post(
            "/api/v1/servers",
            json!({"name": "Plain", "slug": "plain", "url": "https://plain.example.com/mcp"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let watched: Vec<String> = app
        .store
        .servers_with_expiring_credentials()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.slug)
        .collect();
    assert_eq!(watched, ["weather"], "{backend:?}");

    let now = Arc::new(AtomicI64::new(0));
    let reader = now.clone();
    let metrics = Arc::new(mcpwatch::metrics::Metrics::new().unwrap());
    let watch = CredentialWatch {
        store: app.store.clone(),
        clock: Arc::new(move || reader.load(Ordering::SeqCst)),
        metrics: Some(metrics.clone()),
        wake: Arc::new(tokio::sync::Notify::new()),
        leads: mcpwatch::credentials::DEFAULT_LEADS.to_vec(),
    };
    assert!(tick_at(&watch, &now, EXP - 10 * DAY).await.is_empty());
    assert!(metrics.render().contains(&format!(
        "mcpwatch_credential_expiry_timestamp_seconds{{credential=\"bearer\",server=\"weather\"}} {}",
        EXP / 1000
    )));
    let week = tick_at(&watch, &now, EXP - 6 * DAY).await;
    assert_eq!(week, ["credential.expiring 7 days"], "{backend:?}");
    for at in [EXP - 6 * DAY + 60_000, EXP - 3 * DAY] {
        assert!(
            tick_at(&watch, &now, at).await.is_empty(),
            "{backend:?}: once"
        );
    }
    let day = tick_at(&watch, &now, EXP - DAY / 2).await;
    assert_eq!(day, ["credential.expiring 1 day"], "{backend:?}");
    let gone = tick_at(&watch, &now, EXP + 60_000).await;
    assert_eq!(gone, ["credential.expired"], "{backend:?}");
    assert!(tick_at(&watch, &now, EXP + 120_000).await.is_empty());

    // Each went to the channel's outbox once, in words that say what to do; never the token.
    let channel = channel["id"].as_str().unwrap().to_string();
    let queued = app
        .store
        .list_deliveries(
            Some(&channel),
            None,
            &mcpwatch::store::Page {
                limit: 50,
                after: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(queued.len(), 3, "{backend:?}: {queued:?}");
    let texts = HEADLINES.with(|h| h.borrow().clone());
    assert!(
        texts[0].starts_with(
            "CREDENTIAL EXPIRING: the bearer token in its probe headers for Weather expires within 7 days"
        ),
        "{texts:?}"
    );
    assert!(texts[2].starts_with("CREDENTIAL EXPIRED"), "{texts:?}");
    assert!(!texts.concat().contains(&token));

    // A replaced token is a new credential: it warns again at its own times.
    let renewed = EXP + 30 * DAY;
    let (s, body) = app
        .patch(
            "/api/v1/servers/weather",
            json!({"headers": {"Authorization": format!("Bearer {}", jwt(renewed))}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let again = tick_at(&watch, &now, renewed - 2 * DAY).await;
    assert_eq!(again, ["credential.expiring 7 days"], "{backend:?}");
    app.stop().await;
}

#[tokio::test]
async fn an_oauth_identity_is_write_only_and_its_expiry_is_watched() {
    let key = [7u8; 32];
    let app = support::app::spawn_app_with(Backend::Sqlite, |s| s.secret_key = Some(key)).await;
    let expires = "2031-10-17T00:00:00Z";
    let (s, created) = app
        .post(
            "/api/v1/servers",
            json!({"name": "Billing", "slug": "billing", "url": "https://mcp.example.com/billing",
                   "oauth": {"client_id": "probe", "client_secret": "s3cret-value",
                             "scope": "tools:read", "expires_at": expires}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    assert!(!created.to_string().contains("s3cret-value"), "{created}");
    assert_eq!(created["oauth"]["client_secret"], "***");
    assert_eq!(created["oauth"]["auth_method"], "client_secret_basic");
    assert_eq!(created["credentials"][0]["credential"], "oauth_client");
    assert_eq!(created["credentials"][0]["expires_at"], expires);

    // The view sent back changes nothing, and the secret is kept.
    let (s, kept) = app
        .patch(
            "/api/v1/servers/billing",
            json!({"oauth": created["oauth"].clone()}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{kept}");
    let stored = app.store.get_server("billing").await.unwrap().unwrap();
    let sealer = mcpwatch::secrets::Sealer::new(&key);
    let opened = sealer.open(stored.oauth_enc.as_deref().unwrap()).unwrap();
    let opened: Value = serde_json::from_slice(&opened).unwrap();
    assert_eq!(opened["secret"], "s3cret-value");
    assert!(!format!("{stored:?}").contains("s3cret-value"));

    for (input, field, says) in [
        (
            json!({"client_id": "p", "client_secret": "a", "private_key": "b"}),
            "oauth",
            "not both",
        ),
        (
            json!({"client_id": "p", "private_key": "not a key"}),
            "oauth.private_key",
            "RSA or EC",
        ),
        (json!({"client_id": "p"}), "oauth.client_secret", "required"),
        (
            json!({"client_id": "p", "client_secret": "a", "expires_at": "soon"}),
            "oauth.expires_at",
            "RFC 3339",
        ),
        (
            json!({"client_id": "p", "client_secret": "a", "token_endpoint": "ftp://x"}),
            "oauth.token_endpoint",
            "http(s)",
        ),
        (
            json!({"client_id": "p", "client_secret": "a", "grant": "password"}),
            "oauth",
            "unknown field",
        ),
    ] {
        let (s, body) = app
            .post(
                "/api/v1/servers",
                json!({"name": "X", "url": "https://mcp.example.com/x", "oauth": input}),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let errors = body["errors"].as_array().unwrap();
        assert!(
            errors
                .iter()
                .any(|e| e["field"] == field && e["message"].as_str().unwrap().contains(says)),
            "{field}: {body}"
        );
        assert!(!body.to_string().contains("not a key"), "{body}");
    }
    let (s, body) = app
        .post(
            "/api/v1/servers",
            json!({"name": "Y", "url": "https://mcp.example.com/y",
                   "headers": {"Authorization": "Bearer x"},
                   "oauth": {"client_id": "p", "client_secret": "a"}}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body.to_string()
            .contains("remove the Authorization probe header")
    );
    app.stop().await;
}
