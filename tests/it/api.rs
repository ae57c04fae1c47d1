//! The REST API through `spawn_app()` on both backends: auth and scopes, validation errors,
//! secrets never echoed, the monitoring loop (up → down → up, incidents, drift), pause,
//! rate limits and health.

use crate::support;
use test_case::test_case;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::app::{ADMIN_TOKEN, TestApp, spawn_app, spawn_app_with};
use support::db::Backend;
use support::fake_mcp::{FakeConfig, FakeServer, Fault};

async fn register(app: &TestApp, body: Value) -> Value {
    let (status, v) = app.post("/api/v1/servers", body).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    v
}

/// Poll a server until `pred` holds (the first probe runs at once on registration).
async fn wait_for(app: &TestApp, slug: &str, pred: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..200 {
        let (_, v) = app.get(&format!("/api/v1/servers/{slug}")).await;
        if pred(&v) {
            return v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("condition never held for {slug}");
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn auth_is_required_and_scopes_are_enforced(backend: Backend) {
    let app = spawn_app(backend).await;
    let (s, v) = app.call(Method::GET, "/api/v1/servers", None, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{backend:?}");
    assert_eq!(v["title"], "Unauthorized");
    let (s, _) = app
        .call(
            Method::GET,
            "/api/v1/servers",
            Some("mcpw_not-a-real-token"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    let (s, key) = app
        .post(
            "/api/v1/keys",
            json!({"name": "dashboard", "scopes": ["read"]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{key}");
    let read = key["token"].as_str().unwrap().to_string();
    assert!(read.starts_with("mcpw_"));
    let (s, _) = app
        .call(Method::GET, "/api/v1/servers", Some(&read), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = app
        .call(
            Method::POST,
            "/api/v1/servers",
            Some(&read),
            Some(json!({"name": "x", "url": "https://example.com/mcp"})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(v["detail"].as_str().unwrap().contains("'write'"));
    let (_, write_key) = app
        .post("/api/v1/keys", json!({"name": "ci", "scopes": ["write"]}))
        .await;
    let (s, _) = app
        .call(
            Method::GET,
            "/api/v1/keys",
            Some(write_key["token"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "keys need admin");

    let (_, list) = app.get("/api/v1/keys").await;
    let listed = list.to_string();
    assert!(
        !listed.contains(&read) && !listed.contains("\"token\""),
        "tokens are shown once only"
    );
    let id = key["id"].as_str().unwrap();
    let (s, _) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/keys/{id}"),
            Some(ADMIN_TOKEN),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = app
        .call(Method::GET, "/api/v1/servers", Some(&read), None)
        .await;
    assert_eq!(
        s,
        StatusCode::UNAUTHORIZED,
        "a deleted key stops working at once"
    );
    let (s, v) = app
        .post("/api/v1/keys", json!({"name": "x", "scopes": ["root"]}))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["errors"][0]["field"], "scopes");
    app.stop().await;
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn invalid_input_gets_field_level_problems(backend: Backend) {
    let app = spawn_app(backend).await;
    let cases = [
        (
            json!({"name": "a", "url": "https://example.com/mcp", "colour": "red"}),
            "colour",
        ),
        (json!({"name": "a", "url": "ftp://example.com/mcp"}), "url"),
        (
            json!({"name": "a", "url": "http://169.254.169.254/latest"}),
            "url",
        ),
        (
            json!({"name": "a", "url": "https://example.com/mcp", "interval_seconds": 5}),
            "interval_seconds",
        ),
        (
            json!({"name": "a", "url": "https://example.com/mcp", "timeout_seconds": 0}),
            "timeout_seconds",
        ),
        (json!({"url": "https://example.com/mcp"}), "name"),
        (
            json!({"name": "a", "url": "https://example.com/mcp", "slug": "Bad Slug"}),
            "slug",
        ),
        (
            json!({"name": "a", "url": "https://example.com/mcp", "failures_to_down": 0}),
            "failures_to_down",
        ),
    ];
    for (body, field) in cases {
        let (s, v) = app.post("/api/v1/servers", body.clone()).await;
        assert_eq!(
            s,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{backend:?} {body}: {v}"
        );
        let fields: Vec<&str> = v["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert!(fields.contains(&field), "{body}: {v}");
    }
    let (_, v) = app
        .post(
            "/api/v1/servers",
            json!({"name": "a", "url": "http://10.1.2.3/mcp"}),
        )
        .await;
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains("MCPWATCH_ALLOW_PRIVATE_CIDRS"),
        "{v}"
    );

    let resp = app
        .raw()
        .post(format!("{}/api/v1/servers", app.base))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");

    register(
        &app,
        json!({"name": "One", "url": "https://example.com/mcp", "slug": "one"}),
    )
    .await;
    let (s, v) = app
        .post(
            "/api/v1/servers",
            json!({"name": "Two", "url": "https://example.com/mcp", "slug": "one"}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    let auto = register(
        &app,
        json!({"name": "One", "url": "https://example.com/mcp"}),
    )
    .await;
    assert_eq!(auto["slug"], "one-2", "an automatic slug steps aside");
    let (s, _) = app.get("/api/v1/servers/does-not-exist").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, v) = app.get("/api/v1/nope").await;
    assert_eq!(
        (s, v["title"].as_str()),
        (StatusCode::NOT_FOUND, Some("Not found"))
    );
    app.stop().await;
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn probe_credentials_are_write_only_and_used(backend: Backend) {
    let app = spawn_app(backend).await;
    let fake = FakeServer::start(FakeConfig {
        bearer: Some("probe-secret-987".into()),
        ..FakeConfig::default()
    })
    .await;
    let created = register(&app, json!({"name": "Guarded", "url": fake.url(), "headers": {"Authorization": "Bearer probe-secret-987"}})).await;
    assert_eq!(created["headers"], json!({"Authorization": "***"}));
    let up = wait_for(&app, "guarded", |v| v["state"] == "up").await;
    assert!(!up.to_string().contains("probe-secret"));
    let (_, list) = app.get("/api/v1/servers").await;
    let (_, status) = app.get("/api/v1/status").await;
    let (_, results) = app.get("/api/v1/servers/guarded/results").await;
    for body in [&list, &status, &results] {
        assert!(!body.to_string().contains("probe-secret"), "{body}");
    }
    fake.seen(|s| {
        assert!(
            s.authorization
                .iter()
                .all(|a| a == "Bearer probe-secret-987")
        )
    });
    // Clearing the credential: the server now answers 401 → alive but protected, not down.
    let (s, v) = app
        .call(
            Method::PATCH,
            "/api/v1/servers/guarded",
            Some(ADMIN_TOKEN),
            Some(json!({"headers": null})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["headers"], json!({}));
    let (_, check) = app.post("/api/v1/servers/guarded/check", json!({})).await;
    assert_eq!(check["verdict"], "auth_required");
    let (_, v) = app.get("/api/v1/servers/guarded").await;
    assert_eq!(
        (v["state"].as_str(), v["protected"].as_bool()),
        (Some("up"), Some(true)),
        "alive, flagged protected: {v}"
    );
    app.stop().await;
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn the_monitoring_loop_up_down_up_with_incident_and_drift(backend: Backend) {
    let app = spawn_app(backend).await;
    let fake = FakeServer::start(FakeConfig::default()).await;
    register(
        &app,
        json!({"name": "Weather", "url": fake.url(), "tags": ["prod"], "failures_to_down": 2}),
    )
    .await;
    let up = wait_for(&app, "weather", |v| v["state"] == "up").await;
    let first_hash = up["schema_hash"].as_str().unwrap().to_string();
    let (_, schema) = app.get("/api/v1/servers/weather/schema").await;
    assert_eq!(schema["hash"], first_hash.as_str());
    assert_eq!(schema["tools"][0]["name"], "add");

    fake.update(|c| {
        c.fault = Fault::Html200;
        c.fault_on = "*";
    });
    let (_, one) = app.post("/api/v1/servers/weather/check", json!({})).await;
    assert_eq!(one["failure"]["kind"], "not_mcp");
    let (_, v) = app.get("/api/v1/servers/weather").await;
    assert_eq!(v["state"], "up", "one failure is below failures_to_down");
    app.post("/api/v1/servers/weather/check", json!({})).await;
    let (_, v) = app.get("/api/v1/servers/weather").await;
    assert_eq!(v["state"], "down", "{backend:?}: {v}");
    let incident_id = v["open_incident_id"].as_str().unwrap().to_string();
    let (_, incidents) = app.get("/api/v1/servers/weather/incidents").await;
    assert_eq!(incidents["items"][0]["id"], incident_id.as_str());
    assert!(
        incidents["items"][0]["cause"]
            .as_str()
            .unwrap()
            .starts_with("not_mcp in handshake from local")
    );

    // Back, with a breaking tool change.
    fake.update(|c| {
        c.fault = Fault::None;
        c.tools.retain(|t| t["name"] != "search");
    });
    app.post("/api/v1/servers/weather/check", json!({})).await;
    let (_, v) = app.get("/api/v1/servers/weather").await;
    assert_eq!(v["state"], "up");
    assert_eq!(v["open_incident_id"], Value::Null);
    let (_, incidents) = app.get("/api/v1/incidents").await;
    assert!(incidents["items"][0]["closed_at"].is_string());

    let (_, events) = app.get("/api/v1/events").await;
    let kinds: Vec<&str> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        vec!["schema.changed", "server.up", "server.down"],
        "newest first"
    );
    let changed = &events["items"][0]["data"];
    assert_eq!(changed["breaking"], true);
    assert_eq!(changed["diff"]["removed"], json!(["search"]));
    assert_eq!(changed["server"]["slug"], "weather");
    let (_, only_down) = app.get("/api/v1/events?type=server.down").await;
    assert_eq!(only_down["items"].as_array().unwrap().len(), 1);

    let (_, history) = app.get("/api/v1/servers/weather/schema/history").await;
    let items = history["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["change"]["class"], "breaking");
    let new_hash = items[0]["hash"].as_str().unwrap();
    let (s, diff) = app
        .get(&format!(
            "/api/v1/servers/weather/schema/diff?from={first_hash}&to={new_hash}"
        ))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(diff["removed"], json!(["search"]));
    let (s, bad) = app
        .get(&format!(
            "/api/v1/servers/weather/schema/diff?from=sha256:nope&to={new_hash}"
        ))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad["errors"][0]["field"], "from");

    // Results: paginated, newest first, filtered by region and time.
    let (_, page1) = app.get("/api/v1/servers/weather/results?limit=2").await;
    assert_eq!(page1["items"].as_array().unwrap().len(), 2);
    let cursor = page1["next_cursor"].as_str().unwrap();
    let (_, page2) = app
        .get(&format!(
            "/api/v1/servers/weather/results?limit=2&cursor={cursor}"
        ))
        .await;
    assert_eq!(page2["items"].as_array().unwrap().len(), 2);
    let (_, none) = app
        .get("/api/v1/servers/weather/results?region=eu-west")
        .await;
    assert!(none["items"].as_array().unwrap().is_empty());
    let (s, _) = app
        .get("/api/v1/servers/weather/results?since=yesterday")
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);

    let (_, status) = app.get("/api/v1/status").await;
    assert_eq!(status["counts"]["up"], 1);
    assert_eq!(status["servers"][0]["last_result"]["verdict"], "up");
    app.stop().await;
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn pause_resume_filters_and_delete(backend: Backend) {
    let app = spawn_app(backend).await;
    let fake = FakeServer::start(FakeConfig::default()).await;
    register(
        &app,
        json!({"name": "A", "url": fake.url(), "tags": ["prod"]}),
    )
    .await;
    register(
        &app,
        json!({"name": "B", "url": fake.url(), "tags": ["dev"], "paused": true}),
    )
    .await;
    wait_for(&app, "a", |v| v["state"] == "up").await;
    let (_, v) = app.get("/api/v1/servers/b").await;
    assert_eq!(v["state"], "paused");
    let (_, prod) = app.get("/api/v1/servers?tag=prod").await;
    assert_eq!(prod["items"].as_array().unwrap().len(), 1);
    let (_, paused) = app.get("/api/v1/servers?state=paused").await;
    assert_eq!(paused["items"][0]["slug"], "b");
    let (s, _) = app.get("/api/v1/servers?state=sleepy").await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);

    let (_, v) = app.post("/api/v1/servers/a/pause", json!({})).await;
    assert_eq!(v["state"], "paused");
    let (_, v) = app.post("/api/v1/servers/b/resume", json!({})).await;
    assert_eq!(v["paused"], false);
    wait_for(&app, "b", |v| v["state"] == "up").await;

    let (_, page) = app.get("/api/v1/servers?limit=1").await;
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, rest) = app
        .get(&format!("/api/v1/servers?limit=1&cursor={cursor}"))
        .await;
    assert_eq!(rest["items"][0]["slug"], "b");

    let (s, _) = app
        .call(Method::DELETE, "/api/v1/servers/a", Some(ADMIN_TOKEN), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = app.get("/api/v1/servers/a").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    app.stop().await;
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn rate_limit_answers_429_with_retry_after_and_health_endpoints_work(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.rate_limit_per_minute = 5).await;
    let mut statuses = Vec::new();
    for _ in 0..7 {
        let resp = app
            .raw()
            .get(format!("{}/api/v1/servers", app.base))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        if resp.status() == StatusCode::TOO_MANY_REQUESTS {
            let retry: u64 = resp.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!(retry >= 1);
        }
        statuses.push(resp.status());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::OK).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(*statuses.last().unwrap(), StatusCode::TOO_MANY_REQUESTS);
    let (s, _) = app.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = app.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    app.stop().await;
}

#[tokio::test]
async fn openapi_document_covers_every_route() {
    let app = spawn_app(support::db::Backend::Sqlite).await;
    let (s, doc) = app.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let routes = [
        ("get", "/api/v1/servers"),
        ("post", "/api/v1/servers"),
        ("post", "/api/v1/servers:batch"),
        ("get", "/api/v1/servers/{id}"),
        ("patch", "/api/v1/servers/{id}"),
        ("delete", "/api/v1/servers/{id}"),
        ("post", "/api/v1/servers/{id}/pause"),
        ("post", "/api/v1/servers/{id}/resume"),
        ("post", "/api/v1/servers/{id}/check"),
        ("get", "/api/v1/servers/{id}/results"),
        ("get", "/api/v1/servers/{id}/schema"),
        ("get", "/api/v1/servers/{id}/schema/history"),
        ("get", "/api/v1/servers/{id}/schema/diff"),
        ("get", "/api/v1/servers/{id}/incidents"),
        ("get", "/api/v1/incidents"),
        ("get", "/api/v1/events"),
        ("get", "/api/v1/status"),
        ("get", "/api/v1/keys"),
        ("post", "/api/v1/keys"),
        ("delete", "/api/v1/keys/{id}"),
        ("get", "/api/v1/channels"),
        ("post", "/api/v1/channels"),
        ("get", "/api/v1/channels/{id}"),
        ("patch", "/api/v1/channels/{id}"),
        ("delete", "/api/v1/channels/{id}"),
        ("post", "/api/v1/channels/{id}/test"),
        ("get", "/api/v1/channels/{id}/deliveries"),
        ("get", "/api/v1/deliveries"),
        ("post", "/api/v1/deliveries/{id}/retry"),
        ("get", "/api/v1/maintenance"),
        ("post", "/api/v1/maintenance"),
        ("delete", "/api/v1/maintenance/{id}"),
        ("post", "/api/v1/monitors/plan"),
        ("post", "/api/v1/monitors/apply"),
        ("get", "/api/v1/monitors/export"),
        ("post", "/api/v1/registry/import"),
        ("get", "/api/v1/posts"),
        ("post", "/api/v1/posts"),
        ("get", "/api/v1/posts/{id}"),
        ("delete", "/api/v1/posts/{id}"),
        ("post", "/api/v1/posts/{id}/updates"),
        ("get", "/api/v1/pages"),
        ("post", "/api/v1/pages"),
        ("delete", "/api/v1/pages/{id}"),
        ("get", "/api/v1/subscribers"),
        ("delete", "/api/v1/subscribers/{id}"),
        ("post", "/api/v1/subscribers/forget"),
        ("get", "/api/v1/slos"),
        ("post", "/api/v1/slos"),
        ("get", "/api/v1/slos/{id}"),
        ("delete", "/api/v1/slos/{id}"),
        ("get", "/api/v1/servers/{id}/report"),
        ("get", "/api/v1/agent/config"),
        ("post", "/api/v1/agent/results"),
        ("get", "/healthz"),
        ("get", "/readyz"),
    ];
    let paths = doc["paths"].as_object().unwrap();
    let documented: usize = paths
        .values()
        .map(|item| item.as_object().unwrap().len())
        .sum();
    assert_eq!(
        documented,
        routes.len(),
        "no undocumented extras: {:?}",
        paths.keys().collect::<Vec<_>>()
    );
    for (method, path) in routes {
        let op = &doc["paths"][path][method];
        assert!(op.is_object(), "{method} {path} missing");
        if path.starts_with("/api/v1") {
            assert_eq!(
                op["security"][0]["bearer"],
                json!([]),
                "{method} {path} must declare bearer auth"
            );
        }
    }
    assert!(
        doc["components"]["schemas"]["ServerInput"]["properties"]["interval_seconds"].is_object()
    );
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    for (method, path) in routes {
        let op = &doc["paths"][path][method];
        let answers = op["responses"].as_object().unwrap();
        for (status, answer) in answers {
            if status.starts_with('2') && status != "204" {
                assert!(
                    answer["content"]["application/json"]["schema"].is_object(),
                    "{method} {path} {status}: no body schema"
                );
            }
        }
        if path.starts_with("/api/v1") {
            for status in ["401", "403", "429", "503"] {
                assert!(
                    answers.contains_key(status),
                    "{method} {path}: the shared {status} answer is missing"
                );
            }
        }
    }
    // A generated client reads every answer without an untyped value.
    let contract = app.contract().await;
    assert_eq!(contract.untyped_schemas(), Vec::<String>::new());
    let any = support::contract::Contract::new(json!({"paths": {"/x": {"get": {"responses": {
        "200": {"content": {"application/json": {"schema": {"properties": {"v": {"description": "anything"}}}}}}
    }}}}}));
    assert_eq!(
        any.untyped_schemas().len(),
        1,
        "the walk finds an untyped member"
    );
    // The checker every API test runs on each answer can fail: an undeclared member, a wrong
    // type and an undocumented status are each refused.
    let (_, real) = app.get("/api/v1/keys").await;
    let check = |status: StatusCode, body: &Value| {
        contract.check(
            &Method::GET,
            "/api/v1/keys",
            status,
            "application/json",
            body,
        )
    };
    assert_eq!(check(StatusCode::OK, &real), Ok(()));
    let mut extra = real.clone();
    extra["items"][0]["secret_hash"] = json!("x");
    assert!(
        check(StatusCode::OK, &extra)
            .unwrap_err()
            .contains("/items/0/secret_hash")
    );
    let mut wrong = real.clone();
    wrong["items"][0]["scopes"] = json!("admin");
    assert!(
        check(StatusCode::OK, &wrong)
            .unwrap_err()
            .contains("does not match")
    );
    assert!(
        check(StatusCode::IM_A_TEAPOT, &real)
            .unwrap_err()
            .contains("does not list")
    );
    app.stop().await;
}

/// `name{labels} value` lines of the exposition, parsed back.
fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (n, rest) = series.split_once('{').unwrap_or((series, "}"));
            if n != name {
                return None;
            }
            let all = labels
                .iter()
                .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
            if all { value.parse().ok() } else { None }
        })
}

#[tokio::test]
async fn metrics_expose_probes_states_and_schema_changes() {
    let app = support::app::spawn_app_with(support::db::Backend::Sqlite, |s| {
        s.metrics_token = Some("scrape-token-123".into())
    })
    .await;
    let fake = FakeServer::start(FakeConfig::default()).await;
    register(&app, json!({"name": "Metered", "url": fake.url()})).await;
    wait_for(&app, "metered", |v| v["state"] == "up").await;
    fake.update(|c| c.tools.retain(|t| t["name"] != "add"));
    app.post("/api/v1/servers/metered/check", json!({})).await;

    let (s, _) = app.call(Method::GET, "/metrics", None, None).await;
    assert_eq!(
        s,
        StatusCode::UNAUTHORIZED,
        "the metrics token is required when set"
    );
    let text = app.metrics(Some("scrape-token-123")).await;
    let m = |name: &str, labels: &[(&str, &str)]| metric(&text, name, labels);
    assert_eq!(
        m("mcpwatch_server_up", &[("server", "metered")]),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        m(
            "mcpwatch_server_state",
            &[("server", "metered"), ("state", "up")]
        ),
        Some(1.0)
    );
    assert_eq!(
        m(
            "mcpwatch_server_state",
            &[("server", "metered"), ("state", "down")]
        ),
        None,
        "only the current state has a series"
    );
    assert_eq!(
        m(
            "mcpwatch_probe_success",
            &[("server", "metered"), ("region", "local")]
        ),
        Some(1.0)
    );
    assert!(m("mcpwatch_probe_duration_seconds", &[("server", "metered")]).unwrap() > 0.0);
    assert_eq!(
        m("mcpwatch_schema_changes_total", &[("server", "metered")]),
        Some(1.0)
    );
    assert!(
        m(
            "mcpwatch_probes_total",
            &[("region", "local"), ("verdict", "up")]
        )
        .unwrap()
            >= 1.0
    );
    assert!(
        m(
            "mcpwatch_probe_phase_duration_seconds_count",
            &[("region", "local"), ("phase", "tools_list")]
        )
        .unwrap()
            >= 1.0
    );
    assert!(
        m(
            "mcpwatch_scheduler_lag_seconds_count",
            &[("region", "local")]
        )
        .unwrap()
            >= 1.0
    );
    assert_eq!(
        m("mcpwatch_probes_in_flight", &[("region", "local")]),
        Some(0.0)
    );
    assert_eq!(m("mcpwatch_outbox_pending", &[]), Some(0.0));
    assert_eq!(
        m(
            "mcpwatch_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0)
    );
    assert!(
        text.contains("process_resident_memory_bytes"),
        "process metrics"
    );
    assert!(!text.contains(&fake.url()), "labels never carry URLs");
    app.stop().await;
}

/// Every metric the shipped Grafana dashboard and Prometheus rules query is one we export.
#[test]
fn shipped_dashboard_and_rules_use_exported_metrics() {
    let metrics = mcpwatch::metrics::Metrics::new().unwrap();
    let exported = metrics.family_names();
    assert!(exported.contains(&"mcpwatch_alert_deliveries_total".to_string()));
    let root = env!("CARGO_MANIFEST_DIR");
    let dashboard =
        std::fs::read_to_string(format!("{root}/deploy/grafana/mcpwatch-dashboard.json")).unwrap();
    let parsed: Value = serde_json::from_str(&dashboard).expect("the dashboard is JSON");
    let panels = parsed["panels"].as_array().expect("panels");
    assert!(panels.len() >= 10);
    let rules =
        std::fs::read_to_string(format!("{root}/deploy/prometheus/mcpwatch-rules.yml")).unwrap();
    let mut seen = 0;
    for text in [&dashboard, &rules] {
        for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if !word.starts_with("mcpwatch_") || word == "mcpwatch_" {
                continue;
            }
            let base = ["_bucket", "_count", "_sum"]
                .iter()
                .find_map(|s| word.strip_suffix(s))
                .unwrap_or(word);
            assert!(
                exported.iter().any(|e| e == base),
                "{word} is not an exported metric"
            );
            seen += 1;
        }
    }
    assert!(
        seen > 20,
        "the dashboard and rules query our metrics ({seen} references)"
    );
}

/// Agent keys and multi-region server fields: bad input names the field; agent keys reach
/// only the agent routes, and other keys never reach those.
#[tokio::test]
async fn agent_keys_and_region_fields_validate_and_stay_in_their_lane() {
    let app = spawn_app(support::db::Backend::Sqlite).await;
    for (body, field, says) in [
        (
            json!({"name": "a", "scopes": ["agent"]}),
            "region",
            "needs the region",
        ),
        (
            json!({"name": "a", "scopes": ["agent", "read"]}),
            "scopes",
            "stands alone",
        ),
        (
            json!({"name": "a", "scopes": ["read"], "region": "eu-west"}),
            "region",
            "only agent keys",
        ),
        (
            json!({"name": "a", "scopes": ["agent"], "region": "eu west"}),
            "region",
            "letters, digits",
        ),
        (json!({"name": "a", "scopes": ["root"]}), "scopes", "'root'"),
    ] {
        let (s, v) = app.post("/api/v1/keys", body.clone()).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {v}");
        assert_eq!(v["errors"][0]["field"], field, "{v}");
        assert!(
            v["errors"][0]["message"].as_str().unwrap().contains(says),
            "{v}"
        );
    }
    let (s, key) = app
        .post(
            "/api/v1/keys",
            json!({"name": "eu", "scopes": ["agent"], "region": "eu-west"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{key}");
    assert_eq!(key["region"], "eu-west");
    let agent = key["token"].as_str().unwrap().to_string();
    let (s, _) = app
        .call(Method::GET, "/api/v1/servers", Some(&agent), None)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "an agent key reads nothing else");
    let (s, cfg) = app
        .call(Method::GET, "/api/v1/agent/config", Some(&agent), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(cfg["region"], "eu-west");
    let (s, _) = app
        .call(Method::GET, "/api/v1/agent/config", Some(ADMIN_TOKEN), None)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "an admin key is not an agent");
    let (s, v) = app
        .post(
            "/api/v1/agent/results",
            json!({"results": [{"id": "not-a-uuid"}]}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    let (s, v) = app
        .call(
            Method::POST,
            "/api/v1/agent/results",
            Some(&agent),
            Some(json!({"results": [{"id": "not-a-uuid"}]})),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a malformed batch is refused, naming why: {v}"
    );
    let (s, v) = app
        .call(
            Method::POST,
            "/api/v1/agent/results",
            Some(&agent),
            Some(json!({"results": []})),
        )
        .await;
    assert_eq!(
        (s, v["accepted"].as_u64()),
        (StatusCode::OK, Some(0)),
        "a heartbeat: {v}"
    );

    let (s, v) = app
        .post("/api/v1/servers", json!({"name": "q", "url": "http://127.0.0.1:9/mcp", "regions": ["eu-west", "us-east"], "quorum": 3}))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["errors"][0]["field"], "quorum", "{v}");
    let (s, v) = app
        .post(
            "/api/v1/servers",
            json!({"name": "q", "url": "http://127.0.0.1:9/mcp", "regions": ["eu west"]}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["errors"][0]["field"], "regions", "{v}");
    app.stop().await;
}

#[tokio::test]
async fn the_documented_minimum_interval_works_with_the_default_timeout() {
    let app = spawn_app(support::db::Backend::Sqlite).await;
    let (s, v) = app
        .post(
            "/api/v1/servers",
            json!({"name": "fast", "url": "https://example.com/mcp", "interval_seconds": 10, "paused": true}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(
        (
            v["interval_seconds"].as_u64(),
            v["timeout_seconds"].as_u64()
        ),
        (Some(10), Some(5))
    );
    // A default timeout follows the interval both ways; a chosen one is kept, and a clash names both.
    let path = format!("/api/v1/servers/{}", v["slug"].as_str().unwrap());
    let patch = |body: Value| app.call(Method::PATCH, &path, Some(ADMIN_TOKEN), Some(body));
    let (_, v) = patch(json!({"interval_seconds": 60})).await;
    assert_eq!(v["timeout_seconds"], 10);
    let (_, v) = patch(json!({"timeout_seconds": 30})).await;
    assert_eq!(v["timeout_seconds"], 30);
    let (s, v) = patch(json!({"interval_seconds": 20})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let message = v["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("30 s") && message.contains("interval_seconds (20 s)"),
        "{message}"
    );
    app.stop().await;
}

/// Bad tokens spend their address's budget, never a valid key's; `X-Forwarded-For` names the
/// client only behind a trusted proxy.
#[tokio::test]
async fn failed_auth_cannot_throttle_valid_keys_and_forwarded_for_needs_a_trusted_proxy() {
    async fn status(app: &TestApp, token: &str, forwarded_for: Option<&str>) -> StatusCode {
        let mut req = app
            .raw()
            .get(format!("{}/api/v1/servers", app.base))
            .bearer_auth(token);
        if let Some(ip) = forwarded_for {
            req = req.header("x-forwarded-for", ip);
        }
        req.send().await.unwrap().status()
    }
    let app = spawn_app_with(support::db::Backend::Sqlite, |s| {
        s.rate_limit_per_minute = 5
    })
    .await;
    let mut bad = Vec::new();
    for i in 0..8 {
        // A client-chosen X-Forwarded-For changes nothing without a trusted proxy.
        bad.push(status(&app, "mcpw_wrong", Some(&format!("203.0.113.{i}"))).await);
    }
    assert_eq!(
        bad.iter()
            .filter(|s| **s == StatusCode::UNAUTHORIZED)
            .count(),
        5,
        "{bad:?}"
    );
    assert_eq!(bad.last(), Some(&StatusCode::TOO_MANY_REQUESTS));
    assert_eq!(
        status(&app, ADMIN_TOKEN, None).await,
        StatusCode::OK,
        "the valid key is untouched"
    );
    app.stop().await;

    let app = spawn_app_with(support::db::Backend::Sqlite, |s| {
        s.rate_limit_per_minute = 5;
        s.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    })
    .await;
    for _ in 0..6 {
        status(&app, "mcpw_wrong", Some("203.0.113.1")).await;
    }
    assert_eq!(
        status(&app, "mcpw_wrong", Some("203.0.113.1")).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        status(&app, "mcpw_wrong", Some("203.0.113.1, 203.0.113.2")).await,
        StatusCode::UNAUTHORIZED,
        "another client behind the proxy has its own budget"
    );
    app.stop().await;
}

/// A NUL character is bad input everywhere, on both backends (Postgres used to answer 503
/// "database is not available"): 404 in a path, 400 in a query, 422 naming the JSON field.
#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn nul_characters_are_bad_input_not_a_database_outage(backend: Backend) {
    let app = spawn_app(backend).await;
    for path in [
        "/s/a%00b",
        "/badge/a%00b.svg",
        "/badge/a%00b/uptime.svg",
        "/api/v1/servers/a%00b",
    ] {
        let (s, _) = app.call(Method::GET, path, None, None).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{backend:?} {path}");
    }
    let (s, v) = app.get("/api/v1/servers?tag=a%00b").await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{backend:?}: {v}");
    for (body, field) in [
        (
            json!({"name": "a\u{0}b", "url": "https://example.com/mcp"}),
            "name",
        ),
        (
            json!({"name": "a", "url": "https://example.com/mcp", "tags": ["ok", "x\u{0}"]}),
            "tags[1]",
        ),
        (
            json!({"name": "a", "url": "https://example.com/mcp", "headers": {"X-Key": "v\u{0}"}}),
            "headers.X-Key",
        ),
    ] {
        let (s, v) = app.post("/api/v1/servers", body).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{backend:?}: {v}");
        assert_eq!(v["errors"][0]["field"], field, "{backend:?}: {v}");
    }
    let (s, v) = app.get("/api/v1/servers").await;
    assert_eq!(
        (s, v["items"].as_array().map(Vec::len)),
        (StatusCode::OK, Some(0)),
        "{v}"
    );
    app.stop().await;
}

/// URL credentials (`?key=…`, userinfo) are sealed at rest and shown as `***` everywhere, even
/// when the server echoes them in its error; probes still use the whole URL.
#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn url_query_values_and_userinfo_are_credentials(backend: Backend) {
    let fake = FakeServer::start(FakeConfig {
        fault: Fault::EchoUri,
        ..FakeConfig::default()
    })
    .await;
    let app = spawn_app(backend).await;
    let url = format!(
        "http://probe:pa55word-9@{}/mcp?key=supersecret-123&plan=pro",
        fake.addr
    );
    let v = register(
        &app,
        json!({"name": "q", "slug": "q", "url": url, "public": true, "failures_to_down": 1}),
    )
    .await;
    let shown = format!("http://***@{}/mcp?key=***&plan=***", fake.addr);
    assert_eq!(v["url"], shown.as_str(), "{backend:?}");
    wait_for(&app, "q", |v| v["state"] == "down").await;
    assert!(
        fake.seen(|s| s.uris.iter().any(|u| u.contains("key=supersecret-123"))),
        "{backend:?}: probes use the whole URL"
    );
    let mut everything = String::new();
    for path in [
        "/api/v1/servers/q",
        "/api/v1/servers",
        "/api/v1/servers/q/results",
        "/api/v1/events",
        "/api/v1/incidents",
        "/api/v1/status",
        "/status.json",
        "/s/q",
    ] {
        let (s, v) = app.get(path).await;
        assert!(s.is_success(), "{backend:?} {path}: {s}");
        everything.push_str(&v.to_string());
    }
    assert!(
        everything.contains("debug: you asked for"),
        "the echo reached the report"
    );
    for secret in ["supersecret-123", "pa55word-9"] {
        assert!(
            !everything.contains(secret),
            "{backend:?}: {secret} leaked: {everything}"
        );
    }
    let row = app.store.get_server("q").await.unwrap().unwrap();
    assert!(
        !row.url.contains("supersecret") && row.url_enc.is_some(),
        "{backend:?}: {row:?}"
    );
    // The shown URL sent back unchanged keeps the sealed one.
    let (s, v) = app
        .call(
            Method::PATCH,
            "/api/v1/servers/q",
            Some(ADMIN_TOKEN),
            Some(json!({"url": shown, "name": "q2"})),
        )
        .await;
    assert_eq!(
        (s, v["url"].as_str()),
        (StatusCode::OK, Some(shown.as_str())),
        "{v}"
    );
    let again = app.store.get_server("q").await.unwrap().unwrap();
    assert_eq!(again.url_enc, row.url_enc, "{backend:?}");
    app.stop().await;
}

/// A → B → A → B through the daemon: four history entries (the returns marked as reverts),
/// each with the diff its `schema.changed` event carried.
#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn schema_history_matches_the_events_including_returns(backend: Backend) {
    let app = spawn_app(backend).await;
    let fake = FakeServer::start(FakeConfig::default()).await;
    register(
        &app,
        json!({"name": "Drift", "url": fake.url(), "public": true}),
    )
    .await;
    wait_for(&app, "drift", |v| v["state"] == "up").await;
    let a = support::fake_mcp::default_tools();
    let mut b = a.clone();
    b.retain(|t| t["name"] != "search");
    for tools in [&b, &a, &b] {
        let tools = tools.clone();
        fake.update(|c| c.tools = tools);
        let (s, _) = app.post("/api/v1/servers/drift/check", json!({})).await;
        assert_eq!(s, StatusCode::OK);
    }
    let (_, history) = app.get("/api/v1/servers/drift/schema/history").await;
    let items = history["items"].as_array().unwrap();
    assert_eq!(items.len(), 4, "{backend:?}: {history}");
    let hashes: Vec<&str> = items.iter().map(|i| i["hash"].as_str().unwrap()).collect();
    assert_eq!(
        (hashes[0], hashes[1]),
        (hashes[2], hashes[3]),
        "B, A, B, A newest first"
    );
    assert_ne!(hashes[0], hashes[1]);
    assert_eq!(items[0]["reverts"], hashes[1], "the last B reverts A");
    assert_eq!(items[1]["reverts"], hashes[0], "the return to A reverts B");
    assert_eq!(items[2]["reverts"], Value::Null);
    assert_eq!(items[3]["change"], Value::Null, "the first list");
    let (_, events) = app.get("/api/v1/events?type=schema.changed").await;
    let events = events["items"].as_array().unwrap();
    assert_eq!(events.len(), 3, "{backend:?}");
    for (item, event) in items.iter().zip(events) {
        let data = &event["data"];
        assert_eq!(
            (&data["from"], &data["to"]),
            (&item["previous_hash"], &item["hash"])
        );
        assert_eq!(
            data["diff"], item["change"]["diff"],
            "{backend:?}: the event's diff"
        );
    }
    let page = app
        .raw()
        .get(format!("{}/s/drift", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        page.matches("reverts <code>").count(),
        2,
        "{backend:?}: the page says so too"
    );
    // The current tools, and the recent breaking change, where readers look.
    assert!(page.contains("<summary><code>echo</code>"), "{backend:?}");
    assert!(
        !page.contains("<summary><code>search</code>"),
        "{backend:?}: removed"
    );
    let (_, status) = app.call(Method::GET, "/status.json", None, None).await;
    let change = &status["servers"][0]["schema_change"];
    assert_eq!(change["class"], "breaking", "{backend:?}: {status}");
    assert_eq!(change["summary"], "breaking: 1 removed (search)");
    let (_, front) = app.call(Method::GET, "/", None, None).await;
    let front = front.as_str().unwrap_or_default().to_string();
    assert!(
        front.contains(r#"<span class="breaking">breaking</span> tool change"#)
            && front.contains("1 removed (search)"),
        "{backend:?}: the front page shows the breaking change"
    );
    app.stop().await;
}

/// `GET /servers` and `GET /status` page and filter in the database: the counts cover the
/// whole fleet, a page holds `limit` servers, `next_cursor` walks the rest, and a tag matches
/// whole (not as a prefix, and LIKE's wildcards in a tag are plain characters).
#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn servers_and_status_page_and_filter_in_the_database(backend: Backend) {
    let app = spawn_app(backend).await;
    let tagged = [
        ("a", json!(["prod"]), false),
        ("b", json!(["production"]), false),
        ("c", json!(["pro%", "x_y"]), true),
        ("d", json!(["prod", "eu"]), true),
        ("e", json!([]), false),
    ];
    for (slug, tags, paused) in &tagged {
        register(
            &app,
            json!({"name": slug, "slug": slug, "url": "http://127.0.0.1:9/mcp", "tags": tags, "paused": paused}),
        )
        .await;
    }
    let slugs = |v: &Value, key: &str| -> Vec<String> {
        v[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["slug"].as_str().unwrap().to_string())
            .collect()
    };
    let (_, prod) = app.get("/api/v1/servers?tag=prod").await;
    assert_eq!(slugs(&prod, "items"), ["a", "d"], "{backend:?}");
    let (_, pct) = app.get("/api/v1/servers?tag=pro%25").await;
    assert_eq!(slugs(&pct, "items"), ["c"], "{backend:?}: % is a character");
    let (_, wild) = app.get("/api/v1/servers?tag=x%5Fy").await;
    assert_eq!(slugs(&wild, "items"), ["c"], "{backend:?}");
    let (_, none) = app.get("/api/v1/servers?tag=xzy").await;
    assert_eq!(slugs(&none, "items"), Vec::<String>::new());
    let (_, paused) = app.get("/api/v1/servers?state=paused").await;
    assert_eq!(slugs(&paused, "items"), ["c", "d"], "{backend:?}");
    let (_, both) = app.get("/api/v1/servers?state=paused&tag=prod").await;
    assert_eq!(slugs(&both, "items"), ["d"]);

    // /status: counts over everything, servers a page at a time.
    let (code, first) = app.get("/api/v1/status?limit=2").await;
    assert_eq!(code, StatusCode::OK, "{first}");
    assert_eq!(first["counts"]["paused"], 2, "{backend:?}: {first}");
    let total: i64 = first["counts"]
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_i64().unwrap())
        .sum();
    assert_eq!(total, 5, "{first}");
    let mut seen = slugs(&first, "servers");
    assert_eq!(seen.len(), 2);
    let mut cursor = first["next_cursor"].as_str().map(String::from);
    while let Some(c) = cursor {
        let (_, next) = app.get(&format!("/api/v1/status?limit=2&cursor={c}")).await;
        seen.extend(slugs(&next, "servers"));
        cursor = next["next_cursor"].as_str().map(String::from);
    }
    assert_eq!(seen, ["a", "b", "c", "d", "e"], "{backend:?}");
    let (code, bad) = app.get("/api/v1/status?state=sideways").await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    app.stop().await;
}

/// `POST /servers:batch` validates everything first and stores all or nothing; names get
/// free slugs as one registration would (`same`, `same-2`, … around a taken one).
#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn bulk_registration_is_all_or_nothing_and_names_each_bad_field(backend: Backend) {
    let app = spawn_app(backend).await;
    let url = "http://127.0.0.1:9/mcp";
    let (code, bad) = app
        .post(
            "/api/v1/servers:batch",
            json!({"servers": [
                {"name": "ok", "url": url, "slug": "dup"},
                {"name": "no scheme", "url": "example.com/mcp"},
                {"name": "twice", "url": url, "slug": "dup"},
            ]}),
        )
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{backend:?}: {bad}");
    let fields: Vec<&str> = bad["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["servers[1].url", "servers[2].slug"], "{bad}");
    let (_, status) = app.get("/api/v1/status").await;
    assert_eq!(status["servers"], json!([]), "nothing stored: {status}");

    register(&app, json!({"name": "Same", "url": url, "paused": true})).await;
    let (code, made) = app
        .post(
            "/api/v1/servers:batch",
            json!({"servers": [
                {"name": "Same", "url": url, "paused": true},
                {"name": "Same", "url": url, "paused": true, "tags": ["bulk"]},
                {"name": "Other", "url": url, "slug": "chosen", "interval_seconds": 10},
            ]}),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED, "{backend:?}: {made}");
    assert_eq!(made["created"], 3);
    let slugs: Vec<&str> = made["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["slug"].as_str().unwrap())
        .collect();
    assert_eq!(slugs, ["same-2", "same-3", "chosen"], "{backend:?}");
    // Scheduled: probed within its first interval (port 9 refuses: a failed probe).
    support::eventually(
        "the bulk server's first probe",
        std::time::Duration::from_secs(15),
        async || {
            let (_, v) = app.get("/api/v1/servers/chosen/results").await;
            v["items"].as_array().is_some_and(|a| !a.is_empty())
        },
    )
    .await;
    let (_, bulk) = app.get("/api/v1/servers?tag=bulk").await;
    assert_eq!(bulk["items"][0]["slug"], "same-3");
    assert_eq!(bulk["items"][0]["state"], "paused");
    let (code, empty) = app
        .post("/api/v1/servers:batch", json!({"servers": []}))
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{empty}");
    app.stop().await;
}

/// The bulk path's number, measured: 10,000 servers in one request, in seconds, at a cost
/// that does not grow with the fleet (the second 10,000 take about as long as the first).
#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn bulk_registers_ten_thousand_servers_in_seconds(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut took = Vec::new();
    for round in 0..2 {
        let servers: Vec<Value> = (0..10_000)
            .map(|i| json!({"name": format!("fleet {round} {i}"), "url": format!("http://127.0.0.1:9/mcp/{i}"), "paused": true}))
            .collect();
        let start = std::time::Instant::now();
        let (code, made) = app
            .post("/api/v1/servers:batch", json!({"servers": servers}))
            .await;
        took.push(start.elapsed());
        assert_eq!(code, StatusCode::CREATED, "{backend:?}");
        assert_eq!(made["created"], 10_000);
    }
    eprintln!(
        "{backend:?}: 10,000 servers registered in {:?}, the next 10,000 in {:?}",
        took[0], took[1]
    );
    for t in &took {
        assert!(
            *t < std::time::Duration::from_secs(30),
            "{backend:?}: {took:?}"
        );
    }
    let (_, status) = app.get("/api/v1/status?limit=1").await;
    assert_eq!(status["counts"]["paused"], 20_000, "{backend:?}");
    app.stop().await;
}
