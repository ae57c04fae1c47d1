//! Incident posts and announced maintenance, on both backends: an operator posts an incident
//! with two updates and readers see it on `/` (while active), on its page with the timeline,
//! on the server's page, in `/status.json` and in both Atom feeds (read back by an Atom
//! parser); a post about a private server stays private; the badge names an open post; bad
//! input names its field.

use crate::support;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::app::{ADMIN_TOKEN, TestApp, spawn_app};
use support::db::Backend;
use test_case::test_case;

async fn page(app: &TestApp, path: &str) -> (StatusCode, String) {
    let (status, _, text) = app.fetch(path).await;
    (StatusCode::from_u16(status).unwrap(), text)
}

/// The feed at `path`, parsed as Atom.
async fn feed(app: &TestApp, path: &str) -> atom_syndication::Feed {
    let (status, text) = page(app, path).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    text.parse::<atom_syndication::Feed>()
        .unwrap_or_else(|e| panic!("{path} is not Atom: {e}\n{text}"))
}

async fn register(app: &TestApp, name: &str, public: bool) {
    app.add_paused_server(name, public, &[]).await;
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn an_incident_post_with_two_updates_reaches_every_reader(backend: Backend) {
    let app = spawn_app(backend).await;
    register(&app, "Search", true).await;
    register(&app, "Backoffice", false).await;

    let (status, post) = app
        .post(
            "/api/v1/posts",
            json!({"title": "Search answers slowly <EU>", "impact": "major",
                   "servers": ["search"], "message": "We are looking into slow tools/list answers."}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{post}");
    assert_eq!(post["status"], "investigating");
    let id = post["id"].as_str().unwrap().to_string();
    for (s, m) in [
        ("identified", "A cache node in eu-west failed."),
        ("monitoring", "Replaced; answers are fast again."),
    ] {
        let (status, body) = app
            .post(
                &format!("/api/v1/posts/{id}/updates"),
                json!({"status": s, "message": m}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (_, one) = app.get(&format!("/api/v1/posts/{id}")).await;
    let statuses: Vec<&str> = one["updates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, vec!["investigating", "identified", "monitoring"]);

    let (_, index) = page(&app, "/").await;
    assert!(
        index.contains("Search answers slowly &lt;EU&gt;")
            || index.contains("Search answers slowly &#60;EU&#62;"),
        "escaped, on top of /"
    );
    assert!(
        index.contains("Replaced; answers are fast again."),
        "its latest update"
    );
    let (_, timeline) = page(&app, &format!("/incidents/{id}")).await;
    let order: Vec<usize> = ["Replaced;", "A cache node", "We are looking"]
        .iter()
        .map(|t| timeline.find(t).unwrap_or_else(|| panic!("{t} missing")))
        .collect();
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "newest first: {order:?}"
    );
    assert!(timeline.contains("href=\"/s/search\""));
    let (_, server) = page(&app, "/s/search").await;
    assert!(server.contains(&format!("href=\"/incidents/{id}\"")));
    let (_, badge) = page(&app, "/badge/search.svg").await;
    assert!(
        badge.contains("paused · incident"),
        "the badge names the open post: {badge}"
    );
    let (_, status_json) = app.get("/status.json").await;
    assert_eq!(status_json["incidents"][0]["id"], id.as_str());
    assert_eq!(status_json["incidents"][0]["servers"], json!(["search"]));

    for path in ["/feed.atom", "/s/search/feed.atom"] {
        let f = feed(&app, path).await;
        assert_eq!(f.entries().len(), 1, "{path}");
        let e = &f.entries()[0];
        assert_eq!(
            e.title().as_str(),
            "Incident (Monitoring): Search answers slowly <EU>"
        );
        assert!(e.links()[0].href().ends_with(&format!("/incidents/{id}")));
        let content = e.content().and_then(|c| c.value()).unwrap_or("");
        assert!(
            content.contains("Identified. A cache node in eu-west failed."),
            "{content}"
        );
    }

    // Resolved: off the top of /, still on its page and in the feed.
    let (status, _) = app
        .post(
            &format!("/api/v1/posts/{id}/updates"),
            json!({"status": "resolved", "message": "All clear."}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, index) = page(&app, "/").await;
    assert!(!index.contains("Search answers slowly"));
    let (_, status_json) = app.get("/status.json").await;
    assert_eq!(status_json["incidents"], json!([]));
    assert!(!page(&app, "/badge/search.svg").await.1.contains("incident"));
    assert_eq!(feed(&app, "/feed.atom").await.entries().len(), 1);

    // About a private server only: not public anywhere.
    let (_, private) = app
        .post(
            "/api/v1/posts",
            json!({"title": "Backoffice down", "servers": ["backoffice"], "message": "x"}),
        )
        .await;
    let pid = private["id"].as_str().unwrap();
    assert_eq!(
        page(&app, &format!("/incidents/{pid}")).await.0,
        StatusCode::NOT_FOUND
    );
    assert!(!page(&app, "/").await.1.contains("Backoffice"));
    assert_eq!(feed(&app, "/feed.atom").await.entries().len(), 1);
    assert_eq!(
        feed(&app, "/s/search/feed.atom").await.entries().len(),
        1,
        "a server's feed holds only the posts naming it"
    );
    assert_eq!(
        page(&app, "/s/backoffice/feed.atom").await.0,
        StatusCode::NOT_FOUND
    );

    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/posts/{id}"),
            Some(ADMIN_TOKEN),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        page(&app, &format!("/incidents/{id}")).await.0,
        StatusCode::NOT_FOUND
    );
    app.stop().await;
}

#[tokio::test]
async fn bad_posts_name_their_field() {
    let app = spawn_app(Backend::Sqlite).await;
    for (body, field) in [
        (
            json!({"title": "t", "message": "m", "status": "fixed"}),
            "status",
        ),
        (
            json!({"title": "t", "message": "m", "kind": "maintenance", "status": "resolved"}),
            "status",
        ),
        (
            json!({"title": "t", "message": "m", "servers": ["nowhere"]}),
            "servers",
        ),
        (
            json!({"title": "t", "message": "m", "incident": "no-such"}),
            "incident",
        ),
        (json!({"title": " ", "message": "m"}), "title"),
        (
            json!({"title": "t", "message": "m", "impact": "apocalyptic"}),
            "impact",
        ),
    ] {
        let (status, problem): (StatusCode, Value) = app.post("/api/v1/posts", body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
    }
    let (status, _) = app
        .post(
            "/api/v1/posts/nope/updates",
            json!({"status": "resolved", "message": "m"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    app.stop().await;
}
