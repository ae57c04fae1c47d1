//! Alerts: channels over the API, signed webhooks for real state changes, retries with the same
//! id under a manual clock, and two dispatchers on one Postgres delivering each row once.

use crate::support;
use test_case::test_case;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use mcpwatch::alert::dispatcher::{Clock, Dispatcher};
use mcpwatch::probe::AddressPolicy;
use mcpwatch::secrets::Sealer;
use mcpwatch::store::{
    BatchWrites, ChannelRecord, DeliveryRecord, EventRecord, ServerRecord, Store,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::app::{ADMIN_TOKEN, spawn_app};
use support::db::{Backend, TestDb};
use support::fake_mcp::{FakeConfig, FakeServer, Fault};
use support::webhook_rx::{Receiver, verify};

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn channels_validate_input_and_never_show_secrets_again(backend: Backend) {
    let app = spawn_app(backend).await;
    let rx = Receiver::start().await;
    let (s, created) = app
        .post(
            "/api/v1/channels",
            json!({"name": "ops", "url": rx.url, "headers": {"X-Token": "hdr-secret"}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let secret = created["secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_"), "generated and shown once");
    assert_eq!(
        created["events"],
        json!([
            "server.down",
            "server.up",
            "server.auth_failed",
            "schema.changed",
            "region.silent",
            "slo.burning",
            "slo.recovered",
            "credential.expiring",
            "credential.expired"
        ])
    );
    let id = created["id"].as_str().unwrap();
    let (_, again) = app.get(&format!("/api/v1/channels/{id}")).await;
    assert_eq!(again["secret"], "***");
    assert_eq!(again["headers"], json!({"X-Token": "***"}));
    let (_, list) = app.get("/api/v1/channels").await;
    assert!(!list.to_string().contains(secret) && !list.to_string().contains("hdr-secret"));

    for (body, field) in [
        (json!({"name": "x", "url": "http://10.0.0.1/hook"}), "url"),
        (
            json!({"name": "x", "url": "https://hooks.example/x", "events": ["server.exploded"]}),
            "events",
        ),
        (
            json!({"name": "x", "url": "https://hooks.example/x", "kind": "email"}),
            "kind",
        ),
        (
            json!({"name": "x", "url": "https://hooks.example/x", "format": "telegraph"}),
            "format",
        ),
        (
            json!({"name": "x", "url": "https://hooks.example/x", "secret": "whsec_***"}),
            "secret",
        ),
        (
            json!({"name": "x", "url": "https://hooks.example/x", "servers": ["nope"]}),
            "servers",
        ),
    ] {
        let (s, v) = app.post("/api/v1/channels", body.clone()).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {v}");
        assert!(
            v["errors"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["field"] == field),
            "{body}: {v}"
        );
    }
    let (s, test) = app
        .post(&format!("/api/v1/channels/{id}/test"), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(test["delivered"], true, "{test}");
    let got = rx.received();
    assert_eq!(got[0].json()["type"], "test");
    assert!(verify(secret, &got[0]), "the test event is signed");
    assert_eq!(got[0].header("x-token"), "hdr-secret");
    app.stop().await;
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn a_real_outage_reaches_the_webhook_signed_then_recovery(backend: Backend) {
    let app = spawn_app(backend).await;
    let rx = Receiver::start().await;
    let (_, ch) = app
        .post(
            "/api/v1/channels",
            json!({"name": "ops", "url": rx.url, "tags": ["prod"]}),
        )
        .await;
    let secret = ch["secret"].as_str().unwrap().to_string();
    let (_, slack) = app
        .post(
            "/api/v1/channels",
            json!({"name": "chat", "url": rx.url, "format": "slack", "events": ["server.down"]}),
        )
        .await;
    assert!(slack["secret"].is_null(), "chat formats are not signed");
    let fake = FakeServer::start(FakeConfig::default()).await;
    let (s, _) = app
        .post(
            "/api/v1/servers",
            json!({"name": "Weather", "url": fake.url(), "tags": ["prod"]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    first_probe_done(&app, "weather").await;
    fake.update(|c| {
        c.fault = Fault::Hang;
        c.fault_on = "tools/list";
    });
    let patch = json!({"timeout_seconds": 1});
    app.call(
        Method::PATCH,
        "/api/v1/servers/weather",
        Some(ADMIN_TOKEN),
        Some(patch),
    )
    .await;
    app.post("/api/v1/servers/weather/check", json!({})).await;
    app.post("/api/v1/servers/weather/check", json!({})).await;
    fake.update(|c| c.fault = Fault::None);
    app.post("/api/v1/servers/weather/check", json!({})).await;

    let mut got = Vec::new();
    for _ in 0..100 {
        got = rx.received();
        if got.len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let standard: Vec<_> = got
        .iter()
        .filter(|r| !r.header("webhook-id").is_empty())
        .collect();
    let chat: Vec<_> = got
        .iter()
        .filter(|r| r.header("webhook-id").is_empty())
        .collect();
    assert_eq!(
        standard.len(),
        2,
        "{backend:?}: down and up: {:?}",
        got.iter().map(|r| r.json()).collect::<Vec<_>>()
    );
    let down = standard
        .iter()
        .find(|r| r.json()["type"] == "server.down")
        .expect("server.down");
    let up = standard
        .iter()
        .find(|r| r.json()["type"] == "server.up")
        .expect("server.up");
    for r in [down, up] {
        assert!(
            verify(&secret, r),
            "an independent verifier accepts the signature"
        );
    }
    let d = down.json();
    assert_eq!(d["version"], 1);
    assert_eq!(d["data"]["server"]["slug"], "weather");
    assert_eq!(
        (d["data"]["from"].as_str(), d["data"]["to"].as_str()),
        (Some("up"), Some("down"))
    );
    assert_eq!(d["data"]["failure"]["kind"], "timeout");
    assert_eq!(d["data"]["failure"]["phase"], "tools_list");
    assert!(d["data"]["incident_id"].is_string());
    assert_eq!(up.json()["data"]["incident_id"], d["data"]["incident_id"]);
    assert_eq!(chat.len(), 1, "the slack channel wants server.down only");
    assert_eq!(
        chat[0].json()["text"]
            .as_str()
            .unwrap()
            .lines()
            .next()
            .unwrap(),
        "DOWN: Weather — timeout in tools_list from local"
    );

    // Three deliveries (down and up to the standard channel, down to chat), recorded a
    // moment after the receiver answered.
    let mut deliveries = serde_json::Value::Null;
    for _ in 0..100 {
        deliveries = app.get("/api/v1/deliveries?status=delivered").await.1;
        if deliveries["items"].as_array().is_some_and(|a| a.len() == 3) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ids: Vec<&str> = deliveries["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&down.header("webhook-id").as_str()),
        "webhook-id is the delivery id"
    );
    assert_eq!(deliveries["items"][0]["attempt_log"][0]["http_status"], 200);
    app.stop().await;
}

fn manual_clock(start: i64) -> (Arc<AtomicI64>, Clock) {
    let now = Arc::new(AtomicI64::new(start));
    let reader = now.clone();
    (now, Arc::new(move || reader.load(Ordering::SeqCst)))
}

fn channel(id: &str, url: &str, sealer: &Sealer, secret: &str) -> ChannelRecord {
    ChannelRecord {
        template: None,
        managed_by: None,
        id: id.into(),
        name: id.into(),
        kind: mcpwatch::store::ChannelKind::Webhook,
        url: Some(url.into()),
        format: Some("standard".into()),
        headers_enc: None,
        header_names: vec![],
        secret_enc: Some(sealer.seal(secret.as_bytes()).unwrap()),
        recipients: vec![],
        server_ids: vec![],
        tags: vec![],
        events: vec!["server.down".into()],
        drift: vec![],
        enabled: true,
        disabled_reason: None,
        failing_since: None,
        reminder_interval_seconds: None,
        created_at: 0,
        updated_at: 0,
    }
}

fn server() -> ServerRecord {
    ServerRecord {
        registry: None,
        paused_reason: None,
        oauth: None,
        oauth_enc: None,
        bearer_expires_at: None,
        calls: None,
        list_contract: true,
        managed_by: None,
        id: "srv".into(),
        slug: "srv".into(),
        name: "Srv".into(),
        url: "https://x.example/mcp".into(),
        url_enc: None,
        header_names: vec![],
        headers_enc: None,
        interval_seconds: 60,
        timeout_seconds: 10,
        tags: vec![],
        public: false,
        paused: false,
        failures_to_down: 2,
        successes_to_up: 1,
        degraded_latency_ms: None,
        expect_auth: false,
        era_hint: None,
        created_at: 0,
        updated_at: 0,
        regions: vec![],
        quorum: None,
    }
}

/// `n` server.down events, each with an outbox row for `channel_id`, at time `at`.
fn events_with_deliveries(n: usize, channel_id: &str, at: i64) -> BatchWrites {
    let mut w = BatchWrites::default();
    for i in 0..n {
        let event_id = format!("evt-{i}");
        w.events.push(EventRecord {
            id: event_id.clone(),
            server_id: Some("srv".into()),
            kind: "server.down".into(),
            at,
            payload: json!({"server": {"slug": "srv", "name": "Srv"}, "i": i}),
        });
        w.outbox.push(DeliveryRecord {
            id: format!("dlv-{i:03}"),
            event_id,
            channel_id: channel_id.into(),
            status: mcpwatch::store::DeliveryStatus::Pending,
            attempts: 0,
            next_attempt_at: at,
            lease_until: None,
            last_status: None,
            last_error: None,
            created_at: at,
            delivered_at: None,
        });
    }
    w
}

async fn setup(backend: Backend) -> (TestDb, Arc<dyn Store>, Sealer) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    store.insert_server(&server()).await.unwrap();
    (db, store, Sealer::new(&[9; 32]))
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn a_failing_receiver_is_retried_on_schedule_with_the_same_id(backend: Backend) {
    let (db, store, sealer) = setup(backend).await;
    let rx = Receiver::start().await;
    rx.reply_with(&[503, 500]);
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    store
        .insert_channel(&channel("ch", &rx.url, &sealer, secret))
        .await
        .unwrap();
    let t0 = 1_800_000_000_000;
    store
        .commit_batch(&events_with_deliveries(1, "ch", t0))
        .await
        .unwrap();
    let (now, clock) = manual_clock(t0);
    let policy = AddressPolicy::parse_allow_list("127.0.0.0/8").unwrap();
    let d = Dispatcher::new(
        store.clone(),
        sealer.clone(),
        policy,
        None,
        clock,
        Duration::from_secs(30),
    )
    .unwrap();

    assert_eq!(d.tick().await.unwrap(), 1, "{backend:?}");
    let row = store.get_delivery("dlv-000").await.unwrap().unwrap();
    assert_eq!(
        (row.status.as_str(), row.attempts, row.last_status),
        ("pending", 1, Some(503))
    );
    let wait = row.next_attempt_at - t0;
    assert!(
        (8_000..=12_000).contains(&wait),
        "first retry after 10 s ±20 %: {wait}"
    );
    assert_eq!(d.tick().await.unwrap(), 0, "not due yet");
    now.store(row.next_attempt_at, Ordering::SeqCst);
    assert_eq!(d.tick().await.unwrap(), 1);
    let row = store.get_delivery("dlv-000").await.unwrap().unwrap();
    assert!(
        (24_000..=36_000).contains(&(row.next_attempt_at - now.load(Ordering::SeqCst))),
        "then 30 s"
    );
    now.store(row.next_attempt_at, Ordering::SeqCst);
    assert_eq!(d.tick().await.unwrap(), 1);
    let row = store.get_delivery("dlv-000").await.unwrap().unwrap();
    assert_eq!((row.status.as_str(), row.attempts), ("delivered", 3));

    let got = rx.received();
    assert_eq!(got.len(), 3);
    assert!(
        got.iter().all(|r| r.header("webhook-id") == "dlv-000"),
        "same id on every retry"
    );
    assert!(
        got.iter().all(|r| verify(secret, r)),
        "each retry freshly signed"
    );
    let attempts = store.list_attempts("dlv-000").await.unwrap();
    assert_eq!(
        attempts.iter().map(|a| a.http_status).collect::<Vec<_>>(),
        vec![Some(503), Some(500), Some(200)]
    );

    // Past 24 h a delivery is dead; a 410 disables the channel.
    rx.reply_with(&[410]);
    let mut w = events_with_deliveries(1, "ch", t0);
    w.events = vec![EventRecord {
        id: "evt-late".into(),
        server_id: Some("srv".into()),
        kind: "server.down".into(),
        at: t0,
        payload: json!({}),
    }];
    w.outbox = vec![DeliveryRecord {
        id: "dlv-late".into(),
        event_id: "evt-late".into(),
        ..w.outbox[0].clone()
    }];
    store.commit_batch(&w).await.unwrap();
    now.store(t0 + 25 * 3600 * 1000, Ordering::SeqCst);
    d.tick().await.unwrap();
    let late = store.get_delivery("dlv-late").await.unwrap().unwrap();
    assert_eq!(late.status, mcpwatch::store::DeliveryStatus::Dead);
    let ch = store.get_channel("ch").await.unwrap().unwrap();
    assert!(!ch.enabled && ch.disabled_reason.as_deref().unwrap().contains("410"));
    assert!(
        store.requeue_delivery("dlv-late", t0).await.unwrap(),
        "dead rows can be re-queued"
    );
    assert!(
        !store.requeue_delivery("dlv-000", t0).await.unwrap(),
        "delivered rows cannot"
    );
    store.close().await;
    db.cleanup().await;
}

#[tokio::test]
async fn two_dispatchers_on_one_postgres_deliver_each_row_exactly_once() {
    let (db, store, sealer) = setup(Backend::Postgres).await;
    let rx = Receiver::start().await;
    store
        .insert_channel(&channel(
            "ch",
            &rx.url,
            &sealer,
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        ))
        .await
        .unwrap();
    let t0 = 1_800_000_000_000;
    store
        .commit_batch(&events_with_deliveries(60, "ch", t0))
        .await
        .unwrap();
    let policy = AddressPolicy::parse_allow_list("127.0.0.0/8").unwrap();
    let mut workers = Vec::new();
    for _ in 0..2 {
        // Each dispatcher has its own pool, like a separate replica.
        let own = mcpwatch::store::open(&db.url, 4).await.unwrap();
        let (_, clock) = manual_clock(t0);
        let d = Dispatcher::new(
            own,
            sealer.clone(),
            policy.clone(),
            None,
            clock,
            Duration::from_secs(30),
        )
        .unwrap();
        workers.push(tokio::spawn(async move {
            let mut handled = 0;
            loop {
                match d.tick().await.unwrap() {
                    0 => break handled,
                    n => handled += n,
                }
            }
        }));
    }
    let mut per_worker = Vec::new();
    for w in workers {
        per_worker.push(w.await.unwrap());
    }
    assert_eq!(per_worker.iter().sum::<usize>(), 60, "{per_worker:?}");
    let mut counts: HashMap<String, usize> = HashMap::new();
    for r in rx.received() {
        *counts.entry(r.header("webhook-id")).or_default() += 1;
    }
    assert_eq!(counts.len(), 60);
    assert!(
        counts.values().all(|&c| c == 1),
        "no row sent twice: {counts:?}"
    );
    assert_eq!(store.pending_deliveries().await.unwrap(), 0);
    store.close().await;
    db.cleanup().await;
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn email_channels_send_one_readable_message_per_event(backend: Backend) {
    let smtp = support::smtp::SmtpServer::start();
    let url = smtp.url();
    let app = support::app::spawn_app_with(backend, move |s| {
        s.smtp_url = Some(url);
        s.smtp_from = Some("mcpwatch <alerts@mcpwatch.test>".into());
        s.public_url = Some("https://status.mcpwatch.test".into());
    })
    .await;
    let (s, ch) = app.post("/api/v1/channels", json!({"name": "oncall", "kind": "email", "recipients": ["ops@example.test", "lead@example.test"]})).await;
    assert_eq!(s, StatusCode::CREATED, "{ch}");
    assert!(ch["secret"].is_null());
    let (s, bad) = app
        .post(
            "/api/v1/channels",
            json!({"name": "x", "kind": "email", "recipients": ["not an address"]}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");

    let fake = FakeServer::start(FakeConfig::default()).await;
    app.post(
        "/api/v1/servers",
        json!({"name": "Mailer Test", "url": fake.url()}),
    )
    .await;
    first_probe_done(&app, "mailer-test").await;
    fake.update(|c| {
        c.fault = Fault::Html200;
        c.fault_on = "*";
    });
    app.post("/api/v1/servers/mailer-test/check", json!({}))
        .await;
    app.post("/api/v1/servers/mailer-test/check", json!({}))
        .await;
    let mut mails = Vec::new();
    for _ in 0..100 {
        mails = smtp.mails();
        if !mails.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(mails.len(), 1, "{backend:?}: one message per event");
    let m = &mails[0];
    assert_eq!(m.from, "alerts@mcpwatch.test");
    let mut to = m.to.clone();
    to.sort();
    assert_eq!(to, vec!["lead@example.test", "ops@example.test"]);
    assert!(
        m.data.contains("Subject: [mcpwatch] DOWN: Mailer Test =?")
            || m.data.contains("Subject: [mcpwatch] DOWN: Mailer Test"),
        "{}",
        m.data
    );
    assert!(m.data.contains("multipart/alternative"));
    assert!(m.data.contains("text/plain") && m.data.contains("text/html"));
    assert!(m.data.contains("not_mcp in handshake"), "{}", m.data);
    assert!(
        m.data
            .contains("https://status.mcpwatch.test/s/mailer-test")
    );
    // The SMTP server has the message a moment before the dispatcher records the result.
    let mut deliveries = serde_json::Value::Null;
    for _ in 0..100 {
        deliveries = app.get("/api/v1/deliveries").await.1;
        if deliveries["items"][0]["status"] == "delivered" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let id = deliveries["items"][0]["id"].as_str().unwrap();
    assert!(
        m.data.contains(&format!("Message-ID: <{id}@mcpwatch>")),
        "the delivery id is the Message-ID"
    );
    assert_eq!(deliveries["items"][0]["status"], "delivered");
    app.stop().await;
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn a_channel_that_keeps_failing_is_reported_once_to_the_others_then_recovers(
    backend: Backend,
) {
    let (db, store, sealer) = setup(backend).await;
    let (bad_rx, good_rx) = (Receiver::start().await, Receiver::start().await);
    bad_rx.reply_with(&[500; 7]);
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    store
        .insert_channel(&channel("bad", &bad_rx.url, &sealer, secret))
        .await
        .unwrap();
    let mut good = channel("good", &good_rx.url, &sealer, secret);
    good.events = vec!["server.up".into()]; // channel health reaches it whatever it follows
    store.insert_channel(&good).await.unwrap();
    let t0 = 1_800_000_000_000;
    store
        .commit_batch(&events_with_deliveries(6, "bad", t0))
        .await
        .unwrap();
    let (now, clock) = manual_clock(t0);
    let policy = AddressPolicy::parse_allow_list("127.0.0.0/8").unwrap();
    let d = Dispatcher::new(
        store.clone(),
        sealer,
        policy,
        None,
        clock,
        Duration::from_secs(30),
    )
    .unwrap();

    d.tick().await.unwrap(); // 6 failures; the 5th marks the channel failing
    let bad = store.get_channel("bad").await.unwrap().unwrap();
    assert_eq!(bad.failing_since, Some(t0), "{backend:?}");
    d.tick().await.unwrap(); // delivers channel.failing to the good channel
    let told: Vec<Value> = good_rx.received().iter().map(|r| r.json()).collect();
    assert_eq!(told.len(), 1, "{backend:?}: once: {told:?}");
    assert_eq!(told[0]["type"], "channel.failing");
    assert_eq!(told[0]["data"]["channel"]["name"], "bad");
    assert!(
        told[0]["data"]["last_error"]
            .as_str()
            .unwrap()
            .contains("HTTP 500")
    );

    // The receiver is back (its queued 500s are used up after one more): recovered, once.
    now.store(t0 + 60_000, Ordering::SeqCst);
    for _ in 0..3 {
        d.tick().await.unwrap();
    }
    let kinds: Vec<String> = good_rx
        .received()
        .iter()
        .map(|r| r.json()["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        kinds,
        vec!["channel.failing", "channel.recovered"],
        "{backend:?}"
    );
    assert_eq!(
        store
            .get_channel("bad")
            .await
            .unwrap()
            .unwrap()
            .failing_since,
        None
    );
    store.close().await;
    db.cleanup().await;
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn maintenance_holds_alerts_then_sends_one_summary_when_it_ends(backend: Backend) {
    let app = spawn_app(backend).await;
    let rx = Receiver::start().await;
    app.post("/api/v1/channels", json!({"name": "ops", "url": rx.url}))
        .await;
    let fake = FakeServer::start(FakeConfig::default()).await;
    app.post(
        "/api/v1/servers",
        json!({"name": "Deploying", "url": fake.url()}),
    )
    .await;
    first_probe_done(&app, "deploying").await;

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let (start, end) = (
        mcpwatch::api::rfc3339(now - 1000),
        mcpwatch::api::rfc3339(now + 2500),
    );
    let (s, window) = app
        .post(
            "/api/v1/maintenance",
            json!({"name": "deploy", "servers": ["deploying"], "starts_at": start, "ends_at": end}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{window}");
    assert_eq!(window["active_now"], true);
    for (body, field) in [
        (
            json!({"name": "x", "cron": "0 2 * * *", "duration_seconds": 600, "timezone": "Mars/Base"}),
            "timezone",
        ),
        (
            json!({"name": "x", "cron": "0 0 2 * * *", "duration_seconds": 600}),
            "cron",
        ),
        (
            json!({"name": "x", "cron": "0 2 * * *"}),
            "duration_seconds",
        ),
        (
            json!({"name": "x", "starts_at": end, "ends_at": start}),
            "ends_at",
        ),
    ] {
        let (s, v) = app.post("/api/v1/maintenance", body.clone()).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {v}");
        assert_eq!(v["errors"][0]["field"], field, "{body}: {v}");
    }

    fake.update(|c| {
        c.fault = Fault::Status(503);
        c.fault_on = "*";
    });
    app.post("/api/v1/servers/deploying/check", json!({})).await;
    app.post("/api/v1/servers/deploying/check", json!({})).await;
    let (_, v) = app.get("/api/v1/servers/deploying").await;
    assert_eq!(v["state"], "down", "states still change during maintenance");
    let (_, events) = app.get("/api/v1/events?type=server.down").await;
    assert_eq!(
        events["items"][0]["data"]["held_by_maintenance"], "deploy",
        "the event is recorded, marked held"
    );
    // The outbox is written with the event: no row now means no alert ever.
    let (_, deliveries) = app.get("/api/v1/deliveries").await;
    assert_eq!(
        deliveries["items"].as_array().map(Vec::len),
        Some(0),
        "no alert during the window: {deliveries}"
    );
    assert!(rx.received().is_empty(), "no alert during the window");

    // The window ends with the server still down: one summary.
    let mut got = Vec::new();
    for _ in 0..100 {
        got = rx.received();
        if !got.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(got.len(), 1, "{backend:?}");
    let summary = got[0].json();
    assert_eq!(summary["type"], "maintenance.ended");
    assert_eq!(
        (
            summary["data"]["from"].as_str(),
            summary["data"]["to"].as_str()
        ),
        (Some("up"), Some("down"))
    );
    assert_eq!(summary["data"]["window"], "deploy");
    // One summary row, delivered; nothing else queued to come.
    support::eventually(
        "the summary's delivery is done",
        Duration::from_secs(10),
        async || {
            let (_, d) = app.get("/api/v1/deliveries").await;
            let items = d["items"].as_array().cloned().unwrap_or_default();
            (items.len() != 1 || items[0]["status"] != "delivered").then(|| d.to_string())
        },
    )
    .await;
    assert_eq!(rx.received().len(), 1, "exactly one summary");
    let (_, list) = app.get("/api/v1/maintenance").await;
    assert_eq!(list["items"][0]["active_now"], false);
    app.stop().await;
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn a_flapping_server_alerts_once_then_holds(backend: Backend) {
    let app = spawn_app(backend).await;
    let rx = Receiver::start().await;
    app.post("/api/v1/channels", json!({"name": "ops", "url": rx.url}))
        .await;
    let fake = FakeServer::start(FakeConfig::default()).await;
    app.post(
        "/api/v1/servers",
        json!({"name": "Flappy", "url": fake.url(), "failures_to_down": 1}),
    )
    .await;
    first_probe_done(&app, "flappy").await;
    for i in 0..8 {
        let broken = i % 2 == 0;
        fake.update(|c| {
            c.fault = if broken {
                Fault::Status(502)
            } else {
                Fault::None
            };
            c.fault_on = "*";
        });
        app.post("/api/v1/servers/flappy/check", json!({})).await;
    }
    let (_, events) = app.get("/api/v1/events?limit=50").await;
    let recorded: Vec<&str> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        recorded
            .iter()
            .filter(|k| **k == "server.down" || **k == "server.up")
            .count(),
        8,
        "every change recorded: {recorded:?}"
    );
    assert_eq!(
        recorded.iter().filter(|k| **k == "server.flapping").count(),
        1
    );
    // What goes out is what the outbox holds (written with the events): wait until every
    // row is delivered, then nothing more can arrive.
    support::eventually("every delivery done", Duration::from_secs(10), async || {
        let (_, d) = app.get("/api/v1/deliveries?limit=100").await;
        let items = d["items"].as_array().cloned().unwrap_or_default();
        let done = items.iter().all(|i| i["status"] == "delivered");
        (!done || rx.received().len() < items.len()).then(|| d.to_string())
    })
    .await;
    let mut sent: Vec<String> = rx
        .received()
        .iter()
        .map(|r| r.json()["type"].as_str().unwrap().to_string())
        .collect();
    sent.sort();
    let mut expected = vec![
        "server.down",
        "server.up",
        "server.down",
        "server.up",
        "server.down",
        "server.flapping",
    ];
    expected.sort();
    assert_eq!(
        sent, expected,
        "{backend:?}: five alerts, then one flapping, then quiet"
    );
    app.stop().await;
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn reminders_repeat_on_their_interval_while_down_and_stop_when_up(backend: Backend) {
    use mcpwatch::monitor::{ServerState, ServerStatus};
    let (db, store, sealer) = setup(backend).await;
    let rx = Receiver::start().await;
    let mut ch = channel(
        "ch",
        &rx.url,
        &sealer,
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    );
    ch.reminder_interval_seconds = Some(600);
    store.insert_channel(&ch).await.unwrap();
    let quiet = channel(
        "quiet",
        &rx.url,
        &sealer,
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    );
    store.insert_channel(&quiet).await.unwrap(); // no interval: never reminded
    let t0 = 1_800_000_000_000;
    let mut down = ServerState::new(t0);
    down.status = ServerStatus::Down;
    down.open_incident_id = Some("inc-1".into());
    store.set_server_state("srv", &down).await.unwrap();
    let (now, clock) = manual_clock(t0 + 599_000);
    let policy = AddressPolicy::parse_allow_list("127.0.0.0/8").unwrap();
    let d = Dispatcher::new(
        store.clone(),
        sealer,
        policy,
        None,
        clock,
        Duration::from_secs(30),
    )
    .unwrap();

    d.tick().await.unwrap();
    d.tick().await.unwrap();
    assert!(rx.received().is_empty(), "{backend:?}: not yet 10 minutes");
    now.store(t0 + 600_000, Ordering::SeqCst);
    d.tick().await.unwrap(); // writes the reminder
    d.tick().await.unwrap(); // delivers it
    let got = rx.received();
    assert_eq!(got.len(), 1, "{backend:?}");
    assert_eq!(got[0].json()["type"], "server.still_down");
    assert_eq!(got[0].json()["data"]["down_for_seconds"], 600);
    now.store(t0 + 900_000, Ordering::SeqCst);
    d.tick().await.unwrap();
    assert_eq!(
        rx.received().len(),
        1,
        "the next one is due 10 minutes after the last"
    );
    now.store(t0 + 1_200_000, Ordering::SeqCst);
    d.tick().await.unwrap();
    d.tick().await.unwrap();
    assert_eq!(rx.received().len(), 2);

    let mut up = down.clone();
    up.status = ServerStatus::Up;
    up.open_incident_id = None;
    store.set_server_state("srv", &up).await.unwrap();
    now.store(t0 + 3_600_000, Ordering::SeqCst);
    d.tick().await.unwrap();
    d.tick().await.unwrap();
    assert_eq!(rx.received().len(), 2, "no reminders once up");
    store.close().await;
    db.cleanup().await;
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn every_event_type_reaches_a_webhook_and_an_smtp_server(backend: Backend) {
    let kinds = [
        "server.down",
        "server.up",
        "server.degraded",
        "server.auth_failed",
        "schema.changed",
        "schema.inconsistent",
        "server.version_changed",
        "region.down",
        "server.still_down",
        "server.flapping",
        "server.settled",
        "maintenance.ended",
        "channel.failing",
        "channel.recovered",
    ];
    let (db, store, sealer) = setup(backend).await;
    let rx = Receiver::start().await;
    let smtp = support::smtp::SmtpServer::start();
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    store
        .insert_channel(&channel("hook", &rx.url, &sealer, secret))
        .await
        .unwrap();
    let mut mail = channel("mail", &rx.url, &sealer, secret);
    (mail.kind, mail.url, mail.format, mail.secret_enc) =
        (mcpwatch::store::ChannelKind::Email, None, None, None);
    mail.recipients = vec!["ops@example.test".into()];
    store.insert_channel(&mail).await.unwrap();
    let t0 = 1_800_000_000_000;
    let mut w = BatchWrites::default();
    for (i, kind) in kinds.iter().enumerate() {
        let id = format!("evt-{i:02}");
        w.events.push(EventRecord {
            id: id.clone(), server_id: Some("srv".into()), kind: kind.to_string(), at: t0,
            payload: json!({"server": {"id": "srv", "slug": "srv", "name": "Srv", "url": "https://x.example/mcp"},
                "region": "eu-west", "from": "up", "to": "down", "failure": {"kind": "timeout", "phase": "tools_list", "message": "no answer"},
                "summary": "breaking: 1 removed (search)", "breaking": true, "field": "server_version", "state": "down",
                "changes": 6, "window_minutes": 30, "window": "deploy", "down_for_seconds": 600, "since": "2027-01-01T00:00:00Z",
                "channel": {"id": "x", "name": "pager"}, "last_error": "HTTP 500"}),
        });
        for ch in ["hook", "mail"] {
            let mut d = DeliveryRecord::pending(&id, ch, t0);
            d.id = format!("{ch}-{i:02}");
            w.outbox.push(d);
        }
    }
    store.commit_batch(&w).await.unwrap();
    let (_, clock) = manual_clock(t0);
    let policy = AddressPolicy::parse_allow_list("127.0.0.0/8").unwrap();
    let mailer = mcpwatch::alert::email::Mailer::new(&smtp.url(), "alerts@mcpwatch.test").unwrap();
    let d = Dispatcher::new(
        store.clone(),
        sealer,
        policy,
        None,
        clock,
        Duration::from_secs(30),
    )
    .unwrap()
    .with_mailer(mailer);
    tokio::time::timeout(Duration::from_secs(60), async {
        while d.tick().await.unwrap() > 0 {}
    })
    .await
    .expect("deliveries finish");

    let hooks = rx.received();
    let mut hook_kinds: Vec<String> = hooks
        .iter()
        .map(|r| r.json()["type"].as_str().unwrap().to_string())
        .collect();
    hook_kinds.sort();
    let mut expected: Vec<String> = kinds.iter().map(|k| k.to_string()).collect();
    expected.sort();
    assert_eq!(hook_kinds, expected, "{backend:?}");
    assert!(
        hooks.iter().all(|r| verify(secret, r)),
        "every webhook verifies"
    );
    let mails = smtp.mails();
    assert_eq!(mails.len(), kinds.len(), "{backend:?}: one email per event");
    for kind in kinds {
        let prefix = match kind {
            "server.down" => "DOWN: Srv",
            "server.up" => "UP: Srv",
            "server.degraded" => "DEGRADED: Srv",
            "server.auth_failed" => "AUTH FAILED: Srv",
            "schema.changed" => "SCHEMA CHANGED (breaking): Srv",
            "schema.inconsistent" => "SCHEMA INCONSISTENT: Srv",
            "server.version_changed" => "VERSION: Srv",
            "region.down" => "REGION DOWN: Srv",
            "server.still_down" => "STILL DOWN: Srv",
            "server.flapping" => "FLAPPING: Srv",
            "server.settled" => "SETTLED: Srv",
            "maintenance.ended" => "AFTER MAINTENANCE: Srv",
            "channel.failing" => "CHANNEL FAILING",
            _ => "CHANNEL RECOVERED",
        };
        let subject = format!("Subject: [mcpwatch] {prefix}");
        assert!(
            mails.iter().any(|m| m.data.contains(&subject)),
            "{backend:?}: no email for {kind} ({subject})"
        );
    }
    assert_eq!(store.pending_deliveries().await.unwrap(), 0);
    store.close().await;
    db.cleanup().await;
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn two_api_calls_then_one_webhook_and_one_email_each_way(backend: Backend) {
    let smtp = support::smtp::SmtpServer::start();
    let smtp_url = smtp.url();
    let app = support::app::spawn_app_with(backend, move |s| {
        s.smtp_url = Some(smtp_url);
        s.smtp_from = Some("alerts@mcpwatch.test".into());
    })
    .await;
    let rx = Receiver::start().await;
    let (_, hook) = app
        .post("/api/v1/channels", json!({"name": "hook", "url": rx.url}))
        .await;
    let (_, _mail) = app
        .post(
            "/api/v1/channels",
            json!({"name": "mail", "kind": "email", "recipients": ["ops@example.test"]}),
        )
        .await;
    let secret = hook["secret"].as_str().unwrap().to_string();
    let fake = FakeServer::start(FakeConfig::default()).await;
    app.post(
        "/api/v1/servers",
        json!({"name": "Story", "url": fake.url(), "failures_to_down": 1}),
    )
    .await;
    first_probe_done(&app, "story").await;
    fake.update(|c| {
        c.fault = Fault::Hang;
        c.fault_on = "tools/list";
    });
    app.call(
        Method::PATCH,
        "/api/v1/servers/story",
        Some(ADMIN_TOKEN),
        Some(json!({"timeout_seconds": 1})),
    )
    .await;
    app.post("/api/v1/servers/story/check", json!({})).await;
    fake.update(|c| c.fault = Fault::None);
    app.post("/api/v1/servers/story/check", json!({})).await;

    let (mut hooks, mut mails) = (Vec::new(), Vec::new());
    for _ in 0..100 {
        (hooks, mails) = (rx.received(), smtp.mails());
        if hooks.len() >= 2 && mails.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let kinds: Vec<String> = hooks
        .iter()
        .map(|r| r.json()["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, vec!["server.down", "server.up"], "{backend:?}");
    assert!(hooks.iter().all(|r| verify(&secret, r)));
    assert_eq!(hooks[0].json()["data"]["failure"]["kind"], "timeout");
    assert_eq!(mails.len(), 2, "{backend:?}");
    assert!(
        mails[0].data.contains("Subject: [mcpwatch] DOWN: Story =?")
            || mails[0].data.contains("DOWN: Story"),
        "{}",
        mails[0].data
    );
    assert!(
        mails[0].data.contains("timeout in tools_list"),
        "what failed where: {}",
        mails[0].data
    );
    assert!(mails[1].data.contains("UP: Story"), "{}", mails[1].data);

    // A delivered row cannot be retried; the API says so.
    let (_, deliveries) = app.get("/api/v1/deliveries?status=delivered").await;
    let id = deliveries["items"][0]["id"].as_str().unwrap();
    let (s, v) = app
        .post(&format!("/api/v1/deliveries/{id}/retry"), json!({}))
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    let (s, _) = app.post("/api/v1/deliveries/nope/retry", json!({})).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    app.stop().await;
}

#[tokio::test]
async fn start_up_refuses_email_channels_without_smtp() {
    let (db, store, sealer) = setup(Backend::Sqlite).await;
    let mut mail = channel(
        "mail",
        "https://unused.example",
        &sealer,
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    );
    (mail.kind, mail.url) = (mcpwatch::store::ChannelKind::Email, None);
    mail.recipients = vec!["ops@example.test".into()];
    store.insert_channel(&mail).await.unwrap();
    store.close().await;
    let data = tempfile::tempdir().unwrap();
    let mut settings = mcpwatch::config::Settings::for_tests(data.path());
    settings.database = db.url.clone();
    let err = match mcpwatch::app::App::build(settings).await {
        Ok(_) => panic!("must not start"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("MCPWATCH_SMTP_URL") && err.contains("1 email channel"),
        "{err}"
    );
    db.cleanup().await;
}

/// Run one statement on the test database directly (to break a row on purpose).
async fn raw_sql(db: &TestDb, sql: &str) {
    use sqlx::Connection;
    match &db.url {
        mcpwatch::config::DatabaseUrl::Postgres(u) => {
            let mut c = sqlx::PgConnection::connect(u).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
                .execute(&mut c)
                .await
                .unwrap();
        }
        mcpwatch::config::DatabaseUrl::Sqlite(p) => {
            let mut c = sqlx::SqliteConnection::connect(&format!("sqlite:{}", p.display()))
                .await
                .unwrap();
            sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
                .execute(&mut c)
                .await
                .unwrap();
        }
    }
}

/// A delivery whose event cannot be read right now is postponed, not given up as if the
/// event were gone: once the read works, it is delivered, with its one id.
#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn a_failed_read_postpones_a_delivery_and_never_kills_it(backend: Backend) {
    let (db, store, sealer) = setup(backend).await;
    let rx = Receiver::start().await;
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let mut ch = channel("ch", &rx.url, &sealer, secret);
    // A channel's own headers go along, but never replace the signature.
    ch.header_names = vec!["webhook-signature".into(), "X-Extra".into()];
    ch.headers_enc = Some(
        sealer
            .seal(br#"[["webhook-signature", "v1,forged"], ["X-Extra", "yes"]]"#)
            .unwrap(),
    );
    store.insert_channel(&ch).await.unwrap();
    let t0 = 1_800_000_000_000;
    store
        .commit_batch(&events_with_deliveries(1, "ch", t0))
        .await
        .unwrap();
    raw_sql(
        &db,
        "UPDATE events SET payload = 'not json' WHERE id = 'evt-0'",
    )
    .await;
    let (now, clock) = manual_clock(t0);
    let policy = AddressPolicy::parse_allow_list("127.0.0.0/8").unwrap();
    let d = Dispatcher::new(
        store.clone(),
        sealer,
        policy,
        None,
        clock,
        Duration::from_secs(30),
    )
    .unwrap();
    d.tick().await.unwrap();
    let row = store.get_delivery("dlv-000").await.unwrap().unwrap();
    // Still held under its lease, not dead, no attempt counted.
    assert_eq!(
        (row.status.as_str(), row.attempts),
        ("sending", 0),
        "{backend:?}"
    );
    assert!(rx.received().is_empty());

    raw_sql(&db, r#"UPDATE events SET payload = '{"server": {"slug": "srv", "name": "Srv"}}' WHERE id = 'evt-0'"#).await;
    now.store(t0 + 31_000, Ordering::SeqCst); // past the 30 s lease
    d.tick().await.unwrap();
    let row = store.get_delivery("dlv-000").await.unwrap().unwrap();
    assert_eq!(
        (row.status.as_str(), row.attempts),
        ("delivered", 1),
        "{backend:?}"
    );
    let got = rx.received();
    assert_eq!(got.len(), 1);
    assert!(verify(secret, &got[0]), "signed over the bytes sent");
    assert_eq!(got[0].header("x-extra"), "yes");
    db.cleanup().await;
}

/// Wait (bounded) until a just-registered server's first probe is recorded.
async fn first_probe_done(app: &support::app::TestApp, slug: &str) {
    support::eventually("the first probe", Duration::from_secs(10), async || {
        let (_, v) = app.get(&format!("/api/v1/servers/{slug}")).await;
        v["state"] != "unknown" && !v["state"].is_null()
    })
    .await;
}

/// "Weather" (a fake MCP server, down after one failure) registered, probed, and checked once
/// while it answers 500: down, with an incident. Its fake is returned to bring it back.
async fn weather_goes_down(app: &support::app::TestApp) -> FakeServer {
    let fake = FakeServer::start(FakeConfig::default()).await;
    let (s, _) = app
        .post(
            "/api/v1/servers",
            json!({"name": "Weather", "url": fake.url(), "failures_to_down": 1}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    first_probe_done(app, "weather").await;
    fake.update(|c| {
        c.fault = Fault::Status(500);
        c.fault_on = "*";
    });
    app.post("/api/v1/servers/weather/check", json!({})).await;
    fake
}

/// PagerDuty (Events API v2) through the outbox: the channel takes a routing key (write-only,
/// checked), an outage triggers an alert keyed by its incident, the recovery resolves the
/// same key, a tool change is a change event, and `POST /channels/{id}/test` shows what
/// PagerDuty answered; every request is the JSON PagerDuty documents.
#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn pagerduty_triggers_by_incident_resolves_and_records_changes(backend: Backend) {
    let app = spawn_app(backend).await;
    let pd = support::pagerduty::PagerDuty::start().await;
    let key = "R0UTINGKEY0123456789abcdefABCDEF";
    let (s, bad) = app
        .post(
            "/api/v1/channels",
            json!({"name": "pd", "format": "pagerduty", "url": pd.url, "routing_key": "nope"}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    assert!(bad.to_string().contains("routing_key"), "{bad}");
    let (s, ch) = app
        .post(
            "/api/v1/channels",
            json!({"name": "pd", "format": "pagerduty", "url": pd.url, "routing_key": key,
                   "events": ["server.down", "server.up", "schema.changed"]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{ch}");
    assert!(
        !ch.to_string().contains(key),
        "the routing key is never shown: {ch}"
    );
    let (s, default_url) = app
        .post(
            "/api/v1/channels",
            json!({"name": "pd-default", "format": "pagerduty", "routing_key": key}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{default_url}");
    assert_eq!(
        default_url["url"],
        "https://events.pagerduty.com/v2/enqueue"
    );
    let id = ch["id"].as_str().unwrap();
    let (s, tested) = app
        .post(&format!("/api/v1/channels/{id}/test"), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{tested}");
    assert_eq!(tested["http_status"], 202, "PagerDuty's answer: {tested}");
    assert_eq!(tested["delivered"], true, "{tested}");

    let fake = weather_goes_down(&app).await;
    fake.update(|c| {
        c.fault = Fault::None;
        c.tools
            .push(json!({"name": "radar", "inputSchema": {"type": "object"}}));
    });
    app.post("/api/v1/servers/weather/check", json!({})).await;
    support::eventually(
        "trigger, resolve and change delivered",
        Duration::from_secs(20),
        async || {
            let got = pd.requests();
            (got.len() < 4).then(|| format!("{got:?}"))
        },
    )
    .await;
    let got = pd.requests();
    let (path, trigger) = got
        .iter()
        .find(|(_, b)| b["event_action"] == "trigger" && b["payload"]["class"] == "server.down")
        .unwrap();
    assert_eq!(path, "/v2/enqueue");
    assert_eq!(trigger["routing_key"], key);
    assert_eq!(trigger["payload"]["severity"], "critical");
    assert_eq!(trigger["payload"]["source"], fake.url());
    assert!(
        trigger["payload"]["summary"]
            .as_str()
            .unwrap()
            .starts_with("DOWN: Weather"),
        "{trigger}"
    );
    let incident = trigger["dedup_key"].as_str().unwrap();
    let (_, incidents) = app.get("/api/v1/servers/weather/incidents").await;
    assert_eq!(
        incidents["items"][0]["id"], incident,
        "dedup_key is the incident id"
    );
    let (path, resolve) = got
        .iter()
        .find(|(_, b)| b["event_action"] == "resolve")
        .unwrap();
    assert_eq!(path, "/v2/enqueue");
    assert_eq!(
        resolve["dedup_key"], incident,
        "the recovery resolves the same alert"
    );
    let (path, change) = got.iter().find(|(p, _)| p == "/v2/change/enqueue").unwrap();
    assert_eq!(path, "/v2/change/enqueue");
    assert!(change["payload"]["summary"].is_string(), "{change}");
    assert!(pd.content_types().iter().all(|c| c == "application/json"));
}

/// The chat formats each send the body their vendor documents for an incoming webhook:
/// Microsoft Teams (Workflows) an Adaptive Card message, Google Chat and Mattermost /
/// Rocket.Chat a `text` message; each channel's test event arrives as such.
#[tokio::test]
async fn chat_formats_send_the_bodies_their_vendors_document() {
    let app = spawn_app(Backend::Sqlite).await;
    let rx = Receiver::start().await;
    for format in ["teams", "googlechat", "mattermost"] {
        let (s, ch) = app
            .post(
                "/api/v1/channels",
                json!({"name": format, "url": rx.url, "format": format}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{ch}");
        assert!(ch["secret"].is_null(), "{format} is not signed");
        let id = ch["id"].as_str().unwrap();
        let (s, t) = app
            .post(&format!("/api/v1/channels/{id}/test"), json!({}))
            .await;
        assert_eq!((s, &t["delivered"]), (StatusCode::OK, &json!(true)), "{t}");
    }
    let got: Vec<Value> = rx.received().iter().map(|r| r.json()).collect();
    assert_eq!(got.len(), 3, "{got:?}");
    let teams = &got[0];
    assert_eq!(teams["type"], "message");
    let card = &teams["attachments"][0];
    assert_eq!(
        card["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    assert_eq!(card["content"]["type"], "AdaptiveCard");
    assert!(
        card["content"]["body"][0]["text"]
            .as_str()
            .unwrap()
            .starts_with("TEST:")
    );
    for chat in &got[1..] {
        assert!(
            chat["text"].as_str().unwrap().starts_with("TEST:"),
            "{chat}"
        );
        assert_eq!(chat.as_object().unwrap().len(), 1, "just the text: {chat}");
    }
    let (s, bad) = app
        .post(
            "/api/v1/channels",
            json!({"name": "x", "url": rx.url, "format": "carrier-pigeon"}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        bad.to_string().contains("teams, googlechat, mattermost"),
        "{bad}"
    );
}

/// Opsgenie (Alert API) through the outbox: the API key is write-only and sent as
/// `GenieKey`, an outage creates an alert whose alias is its incident, and the recovery closes
/// the alert of that alias; the test endpoint shows Opsgenie's answer.
#[tokio::test]
async fn opsgenie_creates_by_incident_alias_and_closes_on_recovery() {
    let app = spawn_app(Backend::Postgres).await;
    let og = support::opsgenie::Opsgenie::start().await;
    let key = "3f0e2a1c-5b7d-4e2f-9a10-b2c3d4e5f607";
    let (s, bad) = app
        .post(
            "/api/v1/channels",
            json!({"name": "og", "format": "opsgenie", "url": og.url, "api_key": "nope"}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    let (s, ch) = app
        .post(
            "/api/v1/channels",
            json!({"name": "og", "format": "opsgenie", "url": og.url, "api_key": key, "events": ["server.down", "server.up"]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{ch}");
    assert!(!ch.to_string().contains(key), "{ch}");
    let id = ch["id"].as_str().unwrap();
    let (_, tested) = app
        .post(&format!("/api/v1/channels/{id}/test"), json!({}))
        .await;
    assert_eq!(tested["http_status"], 202, "{tested}");

    let fake = weather_goes_down(&app).await;
    fake.update(|c| c.fault = Fault::None);
    app.post("/api/v1/servers/weather/check", json!({})).await;
    support::eventually(
        "create and close delivered",
        Duration::from_secs(20),
        async || {
            let got = og.requests();
            (got.len() < 3).then(|| format!("{got:?}"))
        },
    )
    .await;
    let got = og.requests();
    assert!(
        got.iter()
            .all(|(_, auth, _)| auth == &format!("GenieKey {key}"))
    );
    let (path, _, create) = got.iter().find(|(_, _, b)| b["priority"] == "P1").unwrap();
    assert_eq!(path, "/v2/alerts");
    assert!(
        create["message"]
            .as_str()
            .unwrap()
            .starts_with("DOWN: Weather"),
        "{create}"
    );
    let alias = create["alias"].as_str().unwrap();
    let (_, incidents) = app.get("/api/v1/servers/weather/incidents").await;
    assert_eq!(
        incidents["items"][0]["id"], alias,
        "the alias is the incident id"
    );
    let close = format!("/v2/alerts/{alias}/close?identifierType=alias");
    assert!(
        got.iter()
            .any(|(p, _, b)| p == &close && b["source"] == "mcpwatch"),
        "{got:?}"
    );
}

/// ntfy: a message published by POST to the topic URL, the failure as the plain-text body and
/// the headline, priority, tags and link as the headers ntfy reads; an access token rides in
/// the channel's own (sealed) `Authorization` header.
#[tokio::test]
async fn ntfy_publishes_to_the_topic_with_title_priority_and_tags() {
    let app = spawn_app(Backend::Sqlite).await;
    let rx = Receiver::start().await;
    let (s, ch) = app
        .post(
            "/api/v1/channels",
            json!({"name": "phone", "format": "ntfy", "url": rx.url,
                   "headers": {"Authorization": "Bearer tk_0123456789abcdef"}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{ch}");
    let _fake = weather_goes_down(&app).await;
    support::eventually("the down message", Duration::from_secs(20), async || {
        !rx.received().is_empty()
    })
    .await;
    let got = &rx.received()[0];
    assert!(
        got.header("title").starts_with("DOWN: Weather - "),
        "{:?}",
        got.headers
    );
    assert_eq!(got.header("priority"), "5");
    assert_eq!(got.header("tags"), "rotating_light,mcpwatch");
    assert!(got.header("content-type").starts_with("text/plain"));
    assert_eq!(got.header("authorization"), "Bearer tk_0123456789abcdef");
    let body = String::from_utf8_lossy(&got.body);
    assert!(body.contains("500"), "the failure in words: {body}");
}

/// Telegram: `sendMessage` on the Bot API with the chat id and the readable text; the bot
/// token appears only in the request path Telegram needs, never in the channel as shown, the
/// delivery log, or the test's answer.
#[tokio::test]
async fn telegram_sends_the_message_to_the_chat_and_keeps_the_token_out_of_sight() {
    use std::sync::{Arc, Mutex};
    let seen: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
    let record = seen.clone();
    let bot_api = axum::Router::new().route(
        "/{bot}/sendMessage",
        axum::routing::post(move |uri: axum::http::Uri, body: axum::body::Bytes| {
            let record = record.clone();
            async move {
                let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                record.lock().unwrap().push((uri.path().to_string(), json));
                axum::Json(json!({"ok": true, "result": {"message_id": 7}}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, bot_api).await });

    let app = spawn_app(Backend::Sqlite).await;
    let token = "123456789:AAFh3kQ-abcdefghijklmnopqrstuvwxyz_0";
    let (s, bad) = app
        .post(
            "/api/v1/channels",
            json!({"name": "tg", "format": "telegram", "url": base, "bot_token": token}),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a chat id is required: {bad}"
    );
    let (s, ch) = app
        .post(
            "/api/v1/channels",
            json!({"name": "tg", "format": "telegram", "url": base, "bot_token": token, "chat_id": "-1001234567890"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{ch}");
    let id = ch["id"].as_str().unwrap();
    let (s, tested) = app
        .post(&format!("/api/v1/channels/{id}/test"), json!({}))
        .await;
    assert_eq!(
        (s, &tested["delivered"]),
        (StatusCode::OK, &json!(true)),
        "{tested}"
    );
    let got = seen.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].0, format!("/bot{token}/sendMessage"));
    assert_eq!(got[0].1["chat_id"], "-1001234567890");
    assert!(got[0].1["text"].as_str().unwrap().starts_with("TEST:"));
    let (_, shown) = app.get(&format!("/api/v1/channels/{id}")).await;
    for answer in [&ch, &tested, &shown] {
        assert!(
            !answer.to_string().contains("AAFh3kQ"),
            "the token shows: {answer}"
        );
    }
    server.abort();
}

/// The `template` format: an error in the template is refused when the channel is saved, with
/// its line; a good one renders each event from the standard payload's data (JSON when it is
/// JSON), through the same outbox as every delivery.
#[tokio::test]
async fn a_templated_webhook_is_checked_when_saved_and_renders_each_event() {
    let app = spawn_app(Backend::Sqlite).await;
    let rx = Receiver::start().await;
    let (s, bad) = app
        .post(
            "/api/v1/channels",
            json!({"name": "custom", "format": "template", "url": rx.url,
                   "template": "{\"text\": 1}\n{% for x in %}\n"}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    assert_eq!(bad["errors"][0]["field"], "template");
    assert!(
        bad["errors"][0]["message"]
            .as_str()
            .unwrap()
            .starts_with("line 2: "),
        "{bad}"
    );
    let template = "{\"text\": {{ (type ~ ': ' ~ data.server.name ~ ' (' ~ data.failure.kind ~ ')') | tojson }}, \"at\": {{ timestamp | tojson }}}";
    let (s, ch) = app
        .post(
            "/api/v1/channels",
            json!({"name": "custom", "format": "template", "url": rx.url, "template": template}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{ch}");
    assert_eq!(ch["template"], template);
    let _fake = weather_goes_down(&app).await;
    support::eventually("the down message", Duration::from_secs(20), async || {
        !rx.received().is_empty()
    })
    .await;
    let got = &rx.received()[0];
    assert_eq!(got.header("content-type"), "application/json");
    let body = got.json();
    assert!(
        body["text"]
            .as_str()
            .unwrap()
            .starts_with("server.down: Weather ("),
        "{body}"
    );
    assert!(
        body["at"].as_str().is_some_and(|t| t.contains('T')),
        "{body}"
    );
}
