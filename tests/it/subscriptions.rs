//! Readers subscribing to a status page, on both backends, through a real SMTP server and a
//! real webhook receiver: a reader subscribes on `/`, gets nothing but a confirmation until
//! they confirm (by the mailed link and a button), then gets every update of an incident post
//! with RFC 8058 one-click unsubscribe headers, and one POST to that link deletes them.
//! Addresses are sealed at rest and never shown; webhooks confirm by the link POSTed to them;
//! an operator can erase an address; bad input, abuse and links that were tampered with get
//! clear answers.

use std::time::Duration;

use crate::support;

use mail_parser::MessageParser;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::app::{TestApp, spawn_app_with};
use support::db::Backend;
use support::smtp::SmtpServer;
use test_case::test_case;

const PUBLIC: &str = "http://status.mcpwatch.test";

/// One message as a reader's mail client reads it.
#[derive(Debug)]
struct Read {
    to: Vec<String>,
    subject: String,
    text: String,
    message_id: String,
    unsubscribe: Option<String>,
    unsubscribe_post: Option<String>,
}

fn read(data: &str, to: &[String]) -> Read {
    let m = MessageParser::default()
        .parse(data.as_bytes())
        .unwrap_or_else(|| panic!("not a message:\n{data}"));
    let raw = |name: &str| m.header_raw(name).map(|v| v.trim().to_string());
    Read {
        to: to.to_vec(),
        subject: m.subject().unwrap_or_default().to_string(),
        text: m.body_text(0).unwrap_or_default().to_string(),
        message_id: m.message_id().unwrap_or_default().to_string(),
        unsubscribe: raw("List-Unsubscribe"),
        unsubscribe_post: raw("List-Unsubscribe-Post"),
    }
}

/// The first `n` messages the SMTP server took (waiting up to 10 s for them).
async fn mails(smtp: &SmtpServer, n: usize) -> Vec<Read> {
    for _ in 0..200 {
        let got = smtp.mails();
        if got.len() >= n {
            return got.iter().map(|m| read(&m.data, &m.to)).collect();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got: Vec<String> = smtp.mails().iter().map(|m| m.data.clone()).collect();
    panic!("expected {n} messages, got {}: {got:#?}", got.len());
}

/// The first `n` requests the receiver got (waiting up to 10 s for them).
async fn received(
    rx: &support::webhook_rx::Receiver,
    n: usize,
) -> Vec<support::webhook_rx::Received> {
    for _ in 0..200 {
        let got = rx.received();
        if got.len() >= n {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("expected {n} requests, got {}", rx.received().len());
}

/// The first link in `text` that starts with `prefix`, as a path on the test app.
fn link_path(text: &str, prefix: &str) -> String {
    let start = text
        .find(prefix)
        .unwrap_or_else(|| panic!("no {prefix} link in:\n{text}"));
    let link: String = text[start..]
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != '>')
        .collect();
    link.strip_prefix(PUBLIC).unwrap().to_string()
}

/// A form POST to the public pages: status and HTML.
async fn form(app: &TestApp, path: &str, fields: &[(&str, &str)]) -> (StatusCode, String) {
    app.post_form(path, fields).await
}

async fn page(app: &TestApp, path: &str) -> (StatusCode, String) {
    let (status, _, text) = app.fetch(path).await;
    (StatusCode::from_u16(status).unwrap(), text)
}

async fn mail_app(backend: Backend, smtp: &SmtpServer) -> TestApp {
    let url = smtp.url();
    spawn_app_with(backend, move |s| {
        s.smtp_url = Some(url);
        s.smtp_from = Some("Status <status@mcpwatch.test>".into());
        s.public_url = Some(PUBLIC.into());
    })
    .await
}

async fn register(app: &TestApp, name: &str, public: bool) {
    app.add_paused_server(name, public, &[]).await;
}

/// Post an incident about `server` with two more updates; its id.
async fn incident_with_two_updates(app: &TestApp, server: &str, title: &str) -> String {
    let (status, post) = app
        .post(
            "/api/v1/posts",
            json!({"title": title, "impact": "major", "servers": [server],
                   "message": "We are looking into slow answers."}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{post}");
    let id = post["id"].as_str().unwrap().to_string();
    for (s, m) in [
        ("identified", "A cache node failed."),
        ("resolved", "Replaced; answers are fast again."),
    ] {
        let path = format!("/api/v1/posts/{id}/updates");
        let (status, body) = app.post(&path, json!({"status": s, "message": m})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    id
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn a_confirmed_reader_gets_every_update_by_email_and_leaves_in_one_click(backend: Backend) {
    let smtp = SmtpServer::start();
    let app = mail_app(backend, &smtp).await;
    register(&app, "Search", true).await;
    register(&app, "Backoffice", false).await;

    let (_, index) = page(&app, "/").await;
    assert!(
        index.contains("action=\"/subscribe\"") && index.contains("name=\"email\""),
        "the form on /"
    );
    let (status, done) = form(&app, "/subscribe", &[("email", "Reader@Example.test")]).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert!(done.contains("Almost done"), "{done}");
    assert!(
        !done.contains("http-equiv=\"refresh\""),
        "an answer to a POST never reloads"
    );

    // Only a confirmation until the reader confirms: a post now reaches nobody.
    incident_with_two_updates(&app, "search", "Before confirming").await;
    let confirm = &mails(&smtp, 1).await[0];
    assert_eq!(confirm.to, vec!["Reader@Example.test"]);
    assert_eq!(
        confirm.subject,
        "[MCP server status] Confirm your subscription"
    );
    assert!(confirm.unsubscribe.is_none(), "nothing to leave yet");
    let confirm_path = link_path(&confirm.text, &format!("{PUBLIC}/subscribe/confirm?"));

    // A tampered link confirms nothing; opening the right one shows a button and changes
    // nothing (a mail scanner follows links); the button confirms.
    let tampered = format!("{}x", confirm_path);
    assert_eq!(page(&app, &tampered).await.0, StatusCode::NOT_FOUND);
    assert_eq!(form(&app, &tampered, &[]).await.0, StatusCode::NOT_FOUND);
    let (status, button) = page(&app, &confirm_path).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        button.contains("<button type=\"submit\">Confirm</button>"),
        "{button}"
    );
    let (_, listed) = app.get("/api/v1/subscribers").await;
    assert_eq!(
        (listed["confirmed"].as_u64(), listed["pending"].as_u64()),
        (Some(0), Some(1))
    );
    let (status, confirmed) = form(&app, &confirm_path, &[]).await;
    assert_eq!(status, StatusCode::OK, "{confirmed}");
    assert!(confirmed.contains("Subscribed"), "{confirmed}");

    // An incident with two updates: three notices, each with one-click unsubscribe. A post
    // about a private server reaches nobody.
    let (status, _) = app
        .post(
            "/api/v1/posts",
            json!({"title": "Backoffice only", "servers": ["backoffice"], "message": "m"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let id = incident_with_two_updates(&app, "search", "Search answers slowly").await;
    let all = mails(&smtp, 4).await;
    let notices: Vec<&Read> = all.iter().skip(1).collect();
    let subjects: Vec<&str> = notices.iter().map(|m| m.subject.as_str()).collect();
    assert_eq!(
        subjects.len(),
        3,
        "only the confirmed post's three updates: {subjects:?}"
    );
    for (n, status) in ["Investigating", "Identified", "Resolved"]
        .iter()
        .enumerate()
    {
        let m = notices
            .iter()
            .find(|m| {
                m.subject
                    == format!("[MCP server status] Incident: Search answers slowly ({status})")
            })
            .unwrap_or_else(|| panic!("no {status} notice in {subjects:?}"));
        let message = [
            "We are looking into slow answers.",
            "A cache node failed.",
            "Replaced; answers are fast again.",
        ][n];
        assert!(m.text.contains(message), "{}", m.text);
        assert!(m.text.contains("Affects: Search"), "{}", m.text);
        assert!(
            m.text.contains(&format!("{PUBLIC}/incidents/{id}")),
            "{}",
            m.text
        );
        assert_eq!(
            m.unsubscribe_post.as_deref(),
            Some("List-Unsubscribe=One-Click")
        );
        let header = m.unsubscribe.as_deref().unwrap();
        assert!(
            header.starts_with(&format!("<{PUBLIC}/unsubscribe?s=")),
            "{header}"
        );
    }
    let mut ids: Vec<&str> = notices.iter().map(|m| m.message_id.as_str()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 3, "one Message-ID per notice");

    // The address is personal data: sealed at rest, never in an answer.
    let rows = app.store.list_subscribers().await.unwrap();
    assert_eq!(rows.len(), 1);
    assert!(!rows[0].address_enc.to_lowercase().contains("example"));
    let (_, listed) = app.get("/api/v1/subscribers").await;
    assert!(
        !listed.to_string().to_lowercase().contains("example.test"),
        "{listed}"
    );
    assert_eq!(listed["items"][0]["kind"], "email");

    // RFC 8058: the mail client POSTs `List-Unsubscribe=One-Click` to the header's URL.
    let header = notices[0].unsubscribe.clone().unwrap();
    let one_click = link_path(&header, &format!("{PUBLIC}/unsubscribe?"));
    let (status, gone) = form(&app, &one_click, &[("List-Unsubscribe", "One-Click")]).await;
    assert_eq!(status, StatusCode::OK, "{gone}");
    assert!(gone.contains("Unsubscribed"));
    assert!(
        app.store.list_subscribers().await.unwrap().is_empty(),
        "the address is deleted"
    );
    let (status, again) = form(&app, &one_click, &[("List-Unsubscribe", "One-Click")]).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a repeated one-click POST still succeeds: {again}"
    );
    app.stop().await;
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn a_webhook_subscriber_confirms_by_the_posted_link_and_can_be_erased(backend: Backend) {
    let rx = support::webhook_rx::Receiver::start().await;
    let app = spawn_app_with(backend, |s| s.public_url = Some(PUBLIC.into())).await;
    register(&app, "Search", true).await;
    let (_, index) = page(&app, "/").await;
    assert!(
        index.contains("name=\"webhook\"") && !index.contains("name=\"email\""),
        "no SMTP: webhooks only"
    );
    let (status, refused) = form(&app, "/subscribe", &[("email", "a@b.test")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(refused.contains("sends no email"), "{refused}");

    let (status, done) = form(&app, "/subscribe", &[("webhook", &rx.url)]).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    let first = received(&rx, 1).await;
    let confirm = first[0].json();
    assert_eq!(confirm["type"], "subscription.confirm", "{confirm}");
    assert!(!first[0].header("webhook-id").is_empty());
    let path = confirm["confirm_url"]
        .as_str()
        .unwrap()
        .strip_prefix(PUBLIC)
        .unwrap()
        .to_string();
    assert_eq!(form(&app, &path, &[]).await.0, StatusCode::OK);

    let (status, post) = app
        .post(
            "/api/v1/posts",
            json!({"title": "Search is slow", "servers": ["search"], "message": "Looking."}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let got = received(&rx, 2).await;
    let notice = got[1].json();
    assert_eq!(notice["type"], "post.created", "{notice}");
    assert_eq!(notice["post"]["id"], post["id"]);
    assert_eq!(notice["post"]["servers"], json!(["Search"]));
    assert_eq!(notice["update"]["message"], "Looking.");
    assert!(
        notice["unsubscribe_url"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{PUBLIC}/unsubscribe?s=")),
        "{notice}"
    );

    // An erasure request by address, on every page at once.
    let (status, erased) = app
        .post("/api/v1/subscribers/forget", json!({"address": rx.url}))
        .await;
    assert_eq!(status, StatusCode::OK, "{erased}");
    assert_eq!(erased["deleted"], 1);
    let (_, listed): (StatusCode, Value) = app.get("/api/v1/subscribers").await;
    assert_eq!(listed["items"], json!([]));
    app.stop().await;
}

#[tokio::test]
async fn bad_input_abuse_and_missing_settings_get_clear_answers() {
    // Without a public URL no link could be trusted: no form, and a POST says why.
    let smtp = SmtpServer::start();
    let url = smtp.url();
    let bare = spawn_app_with(Backend::Sqlite, move |s| {
        s.smtp_url = Some(url);
        s.smtp_from = Some("status@mcpwatch.test".into());
    })
    .await;
    let (_, index) = page(&bare, "/").await;
    assert!(!index.contains("action=\"/subscribe\""));
    let (status, why) = form(&bare, "/subscribe", &[("email", "a@b.test")]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(why.contains("MCPWATCH_PUBLIC_URL"), "{why}");
    bare.stop().await;

    let app = mail_app(Backend::Sqlite, &smtp).await;
    for (fields, says) in [
        (vec![("email", "not an address")], "not an email address"),
        (
            vec![("email", "a@b.test"), ("webhook", "https://h.test/")],
            "not both",
        ),
        (vec![], "Give an email address"),
        (vec![("webhook", "ftp://h.test/x")], "not a webhook URL"),
        (
            vec![("webhook", "http://10.1.2.3/hook")],
            "not a public one",
        ),
    ] {
        let (status, body) = form(&app, "/subscribe", &fields).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{fields:?}");
        assert!(body.contains(says), "{fields:?}: {body}");
    }
    // Those five spent the client's burst: the next sign-up waits.
    let (status, wait) = form(&app, "/subscribe", &[("email", "late@b.test")]).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{wait}");
    assert!(wait.contains("try again"), "{wait}");
    // Links that name no subscription, or carry no digest, are refused.
    for path in [
        "/unsubscribe",
        "/unsubscribe?s=x&t=y",
        "/subscribe/confirm?s=x",
    ] {
        assert_eq!(page(&app, path).await.0, StatusCode::NOT_FOUND, "{path}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_pending_address_is_asked_once_and_a_second_sign_up_tells_nothing() {
    let smtp = SmtpServer::start();
    let app = mail_app(Backend::Sqlite, &smtp).await;
    for _ in 0..2 {
        let (status, body) = form(&app, "/subscribe", &[("email", "twice@example.test")]).await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("Almost done"), "the same answer each time");
    }
    let (status, body) = form(&app, "/subscribe", &[("email", "TWICE@example.test")]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        app.store.list_subscribers().await.unwrap().len(),
        1,
        "one subscription"
    );
    // The first request's confirmation is the only one: no resend was queued.
    let row = &app.store.list_subscribers().await.unwrap()[0];
    assert_eq!(
        row.confirm_sent_at, row.created_at,
        "no second confirmation"
    );
    assert_eq!(mails(&smtp, 1).await.len(), 1);
    app.stop().await;
}
