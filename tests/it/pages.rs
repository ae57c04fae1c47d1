//! Several status pages, on both backends: a branded page on its own host shows its title,
//! description, logo, links, accent and footer, and only its servers (page, server pages,
//! `/status.json`, feed); the default host stays as it was; bad branding names its field.

use crate::support;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::app::{TestApp, spawn_app};
use support::db::Backend;
use test_case::test_case;

/// `path` as a reader of `host` sees it.
async fn on_host(app: &TestApp, host: &str, path: &str) -> (StatusCode, String) {
    let resp = app
        .raw()
        .get(format!("{}{path}", app.base))
        .header("host", host)
        .send()
        .await
        .unwrap();
    (resp.status(), resp.text().await.unwrap())
}

async fn register(app: &TestApp, name: &str, tags: &[&str]) {
    app.add_paused_server(name, true, tags).await;
}

const ACME: &str = "status.acme.test:8080";

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn a_branded_page_on_its_own_host_shows_only_its_servers(backend: Backend) {
    let app = spawn_app(backend).await;
    register(&app, "Acme API", &["acme"]).await;
    register(&app, "Other", &["other"]).await;
    let (status, page) = app
        .post(
            "/api/v1/pages",
            json!({"host": "Status.Acme.test", "title": "Acme MCP status",
                   "description": "The MCP servers behind Acme's assistants.",
                   "logo_url": "https://acme.test/logo.png", "accent": "#0A7CFF",
                   "footer": "Acme Inc., 1 Loop Road", "tags": ["acme"],
                   "links": [{"label": "Docs", "url": "https://docs.acme.test/"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{page}");
    assert_eq!(page["host"], "status.acme.test");
    for (body, field) in [
        (json!({"title": "x", "accent": "blue"}), "accent"),
        (json!({"title": "x", "host": "a b"}), "host"),
        (
            json!({"title": "x", "logo_url": "javascript:alert(1)"}),
            "logo_url",
        ),
        (json!({"title": ""}), "title"),
    ] {
        let (status, problem): (StatusCode, Value) = app.post("/api/v1/pages", body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
    }
    let (status, _) = app
        .post(
            "/api/v1/pages",
            json!({"host": "status.acme.test", "title": "again"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);

    let (_, acme) = on_host(&app, ACME, "/").await;
    for expected in [
        "<title>Acme MCP status</title>",
        "src=\"https://acme.test/logo.png\"",
        "The MCP servers behind Acme",
        "href=\"https://docs.acme.test/\"",
        "--accent:#0a7cff",
        "Acme Inc., 1 Loop Road",
        "Acme API",
    ] {
        assert!(acme.contains(expected), "{expected} missing");
    }
    assert!(!acme.contains("Other"), "only its servers");
    assert_eq!(
        on_host(&app, ACME, "/s/other").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(on_host(&app, ACME, "/s/acme-api").await.0, StatusCode::OK);
    let (_, json) = on_host(&app, ACME, "/status.json").await;
    let json: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["page"]["title"], "Acme MCP status");
    let slugs: Vec<&str> = json["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["slug"].as_str().unwrap())
        .collect();
    assert_eq!(slugs, vec!["acme-api"]);

    // Posts follow the page's servers; the default host is unchanged.
    for server in ["acme-api", "other"] {
        let (status, _) = app
            .post(
                "/api/v1/posts",
                json!({"title": format!("{server} is slow"), "servers": [server], "message": "m"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let (_, feed) = on_host(&app, ACME, "/feed.atom").await;
    assert!(
        feed.contains("acme-api is slow") && !feed.contains("other is slow"),
        "{feed}"
    );
    assert!(
        feed.contains("http://status.acme.test:8080/incidents/"),
        "links on its host: {feed}"
    );
    let (_, plain) = on_host(&app, "localhost", "/").await;
    assert!(plain.contains("<title>MCP server status</title>"));
    assert!(plain.contains("Acme API") && plain.contains("Other"));
    assert!(!plain.contains("--accent"));

    let id = page["id"].as_str().unwrap();
    let (status, _) = app
        .call(
            reqwest::Method::DELETE,
            &format!("/api/v1/pages/{id}"),
            Some(support::app::ADMIN_TOKEN),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, after) = on_host(&app, ACME, "/").await;
    assert!(
        after.contains("Other"),
        "its host shows the default page again"
    );
    app.stop().await;
}
