//! The public status page, per-server pages, `/status.json` and badges, rendered by the real
//! daemon over seeded data on both backends: every state, an empty install, escaping, and
//! private servers that never show.

use crate::support;
use test_case::test_case;

use mcpwatch::monitor::{RegionStatus, ServerStatus};
use mcpwatch::store::WindowRecord;
use serde_json::Value;
use support::app::{TestApp, spawn_app};
use support::db::Backend;
use support::seed::{Seed, now_ms, seed};

async fn fetch(app: &TestApp, path: &str) -> (u16, reqwest::header::HeaderMap, String) {
    app.fetch(path).await
}

fn count(hay: &str, needle: &str) -> usize {
    hay.matches(needle).count()
}

/// The card of one server on `/` (from its `<article id=slug>` to the next `</article>`).
fn card<'a>(html: &'a str, slug: &str) -> &'a str {
    let start = html
        .find(&format!("<article class=\"card server\" id=\"{slug}\">"))
        .unwrap_or_else(|| panic!("no card for {slug}"));
    let end = html[start..].find("</article>").unwrap() + start;
    &html[start..end]
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn an_empty_install_says_so_everywhere(backend: Backend) {
    let app = spawn_app(backend).await;
    let (status, headers, html) = fetch(&app, "/").await;
    assert_eq!(status, 200, "{backend:?}");
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("No public servers yet"), "{html}");
    assert!(html.contains(r#"<meta http-equiv="refresh" content="60">"#));
    let (_, _, json) = fetch(&app, "/status.json").await;
    let json: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["overall"], "no_servers");
    assert_eq!(json["servers"], Value::Array(vec![]));
    app.stop().await;
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn every_state_renders_with_words_shape_reason_and_history(backend: Backend) {
    let app = spawn_app(backend).await;
    let store = app.store.as_ref();
    let now = now_ms();
    let up = [("eu-west", RegionStatus::Up, None)];
    let timeout = Some(("timeout", "tools_list"));
    for (slug, status, regions, tags) in [
        ("ok", ServerStatus::Up, &up[..], &["search"][..]),
        ("slow", ServerStatus::Degraded, &up[..], &["search"][..]),
        (
            "dead",
            ServerStatus::Down,
            &[
                ("eu-west", RegionStatus::Down, timeout),
                ("us-east", RegionStatus::Down, timeout),
            ][..],
            &["tools"][..],
        ),
        (
            "locked",
            ServerStatus::AuthFailed,
            &[(
                "eu-west",
                RegionStatus::AuthFailed,
                Some(("http_status", "handshake")),
            )][..],
            &[][..],
        ),
        ("held", ServerStatus::Paused, &up[..], &[][..]),
        ("fresh", ServerStatus::Unknown, &[][..], &[][..]),
        (
            "partial",
            ServerStatus::Up,
            &[
                ("eu-west", RegionStatus::Down, timeout),
                ("us-east", RegionStatus::Up, None),
                ("ap-south", RegionStatus::Up, None),
            ][..],
            &[][..],
        ),
        ("fixing", ServerStatus::Down, &up[..], &[][..]),
    ] {
        let name = format!("Server {slug}");
        seed(
            store,
            &Seed {
                slug,
                name: &name,
                status,
                regions,
                tags,
                fail_every: Some(10),
                ..Seed::default()
            },
            now,
        )
        .await;
    }
    store
        .insert_window(&WindowRecord {
            managed_by: None,
            id: "w1".into(),
            name: "Database upgrade".into(),
            server_ids: vec!["id-fixing".into()],
            tags: vec![],
            starts_at: Some(now - 60_000),
            ends_at: Some(now + 3_600_000),
            cron: None,
            duration_seconds: None,
            timezone: None,
            created_at: now,
        })
        .await
        .unwrap();

    let (status, _, html) = fetch(&app, "/").await;
    assert_eq!(status, 200);
    assert!(html.contains("Partial outage"), "{backend:?}: banner");
    for (slug, label, glyph) in [
        ("ok", "Operational", "✓"),
        ("slow", "Degraded", "▲"),
        ("dead", "Down", "✕"),
        ("locked", "Credential refused", "!"),
        ("held", "Paused", "❚❚"),
        ("fresh", "No data yet", "?"),
        ("partial", "Operational", "✓"),
        ("fixing", "Maintenance", "◆"),
    ] {
        let c = card(&html, slug);
        assert!(
            c.contains(&format!("{glyph}</span>{label}")),
            "{backend:?} {slug}: {c}"
        );
        assert_eq!(count(c, "<rect "), 90, "{slug}: 90 daily bars");
    }
    let dead = card(&html, "dead");
    assert!(
        dead.contains("tools/list timed out from eu-west, us-east"),
        "{dead}"
    );
    assert!(dead.contains("since "), "since when");
    assert!(card(&html, "slow").contains("answering slowly or with warnings"));
    assert!(
        card(&html, "ok").contains("since "),
        "up servers say since when too"
    );
    assert!(
        card(&html, "partial")
            .contains("tools/list timed out from eu-west (fewer regions than the quorum)")
    );
    assert!(card(&html, "fixing").contains("Maintenance “Database upgrade” until"));
    // Bars: today's has data, the oldest has none; failing days are not "ok" and say why.
    let ok = card(&html, "ok");
    assert!(ok.contains(r#"class="nodata""#), "{ok}");
    assert!(
        ["minor", "partial", "major"]
            .iter()
            .any(|c| ok.contains(&format!("class=\"{c}\""))),
        "days with failures are not ok: {ok}"
    );
    assert!(
        ok.contains("no data · no incidents"),
        "tooltips say when there is no data"
    );
    assert!(
        ok.contains("1 incident"),
        "the closed incident two days ago is in a tooltip"
    );
    assert!(
        ok.contains("<svg class=\"spark\"") && ok.contains("points=\""),
        "sparkline"
    );
    // Groups by tag: untagged first, then search, then tools.
    let (a, b, c) = (
        html.find("id=\"locked\"").unwrap(),
        html.find("<h2>search</h2>").unwrap(),
        html.find("<h2>tools</h2>").unwrap(),
    );
    assert!(a < b && b < c);

    // Everything major: all servers with data down.
    let json: Value = serde_json::from_str(&fetch(&app, "/status.json").await.2).unwrap();
    assert_eq!(json["overall"], "partial_outage");
    let dead = json["servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["slug"] == "dead")
        .unwrap();
    assert_eq!(dead["state"], "down");
    assert_eq!(
        dead["failing_regions"],
        serde_json::json!(["eu-west", "us-east"])
    );
    assert_eq!(
        dead["tool_count"],
        Value::Null,
        "a failed probe listed no tools; it did not find zero"
    );
    let (_, _, page) = fetch(&app, "/s/dead").await;
    assert!(
        page.contains("<th>Tools</th><td>—</td>"),
        "{backend:?}: a down server's last probe has no tool count"
    );
    let region_row = page.split("<tr class=\"region\">").nth(1).unwrap_or("");
    assert!(
        !region_row.contains(" ms</td>"),
        "{backend:?}: nor a latency: {region_row}"
    );
    let ok = json["servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["slug"] == "ok")
        .unwrap();
    // Uptime is time outside incidents: the seeded 25-minute outage two days ago, over the
    // seven days watched; every 10th probe failed without an outage, which only the raw
    // probe ratio shows.
    let u7 = ok["uptime"]["7d"].as_f64().unwrap();
    // Watched since the first day of its (3-day) history: that is the window observed.
    let day = 86_400_000;
    let first = now - 3 * day;
    let window_ms = (now - (first - first % day)) as f64;
    let expected = 1.0 - 25.0 * 60_000.0 / window_ms;
    assert!(
        (u7 - expected).abs() < 0.0005,
        "one 25-minute outage over the window: {u7} vs {expected}"
    );
    let raw = ok["probe_success"]["90d"].as_f64().unwrap();
    assert!((raw - 0.9).abs() < 0.02, "every 10th result failed: {raw}");
    assert_eq!(ok["tool_count"], 3);
    assert_eq!(ok["schema_hash"], "sha256:aa");
    assert!(ok["last_check"].as_str().unwrap().ends_with('Z'));
    app.stop().await;
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn names_render_as_text_never_as_markup(backend: Backend) {
    let app = spawn_app(backend).await;
    let evil = "<script>alert(1)</script>";
    seed(
        app.store.as_ref(),
        &Seed {
            slug: "evil",
            name: evil,
            tags: &["<b>tag</b>"],
            ..Seed::default()
        },
        now_ms(),
    )
    .await;
    for path in ["/", "/s/evil"] {
        let (status, _, html) = fetch(&app, path).await;
        assert_eq!(status, 200, "{path}");
        assert!(!html.contains(evil), "{backend:?} {path}: raw script tag");
        assert!(!html.contains("<b>tag</b>"), "{path}: raw tag markup");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;")
                || html.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
            "{path}: escaped name shown: {html}"
        );
    }
    let json: Value = serde_json::from_str(&fetch(&app, "/status.json").await.2).unwrap();
    assert_eq!(
        json["servers"][0]["name"], evil,
        "JSON carries the name as data"
    );
    app.stop().await;
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn private_servers_never_appear(backend: Backend) {
    let app = spawn_app(backend).await;
    let now = now_ms();
    seed(
        app.store.as_ref(),
        &Seed {
            slug: "visible",
            name: "Visible MCP",
            ..Seed::default()
        },
        now,
    )
    .await;
    seed(
        app.store.as_ref(),
        &Seed {
            slug: "secret",
            name: "Secret MCP",
            public: false,
            status: ServerStatus::Down,
            ..Seed::default()
        },
        now,
    )
    .await;
    let (_, _, html) = fetch(&app, "/").await;
    assert!(html.contains("Visible MCP"));
    assert!(
        !html.contains("Secret MCP") && !html.contains("secret"),
        "{backend:?}"
    );
    assert!(
        html.contains("All systems operational"),
        "a private outage does not colour the banner"
    );
    let (_, _, json) = fetch(&app, "/status.json").await;
    assert!(
        !json.contains("secret") && !json.contains("Secret"),
        "{json}"
    );
    for path in [
        "/s/secret",
        "/badge/secret.svg",
        "/badge/secret/uptime.svg?days=30",
        "/s/nope",
        "/badge/nope.svg",
    ] {
        let (status, _, body) = fetch(&app, path).await;
        assert_eq!(status, 404, "{backend:?} {path}");
        assert!(!body.contains("Secret MCP"));
    }
    // The id works in the API, but not on public pages (slugs only).
    let (status, _, _) = fetch(&app, "/s/id-visible").await;
    assert_eq!(status, 404);
    app.stop().await;
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn the_server_page_shows_regions_probe_details_charts_incidents_windows_and_schema(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let now = now_ms();
    let regions = [
        (
            "eu-west",
            RegionStatus::Down,
            Some(("timeout", "tools_list")),
        ),
        ("us-east", RegionStatus::Up, None),
    ];
    seed(
        app.store.as_ref(),
        &Seed {
            slug: "weather",
            name: "Weather",
            tags: &["prod"],
            regions: &regions,
            days: 10,
            fail_every: Some(7),
            ..Seed::default()
        },
        now,
    )
    .await;
    app.store
        .insert_window(&WindowRecord {
            managed_by: None,
            id: "w1".into(),
            name: "Weekly deploy".into(),
            server_ids: vec![],
            tags: vec!["prod".into()],
            starts_at: None,
            ends_at: None,
            cron: Some("0 3 * * 0".into()),
            duration_seconds: Some(1800),
            timezone: Some("Europe/Berlin".into()),
            created_at: now,
        })
        .await
        .unwrap();
    let (status, _, html) = fetch(&app, "/s/weather").await;
    assert_eq!(status, 200, "{backend:?}");
    assert_eq!(count(&html, "<tr class=\"region\">"), 2);
    assert!(html.contains("tools/list timed out"), "region detail");
    for needle in [
        "stateless",
        "2026-07-28",
        "fake 1.0",
        "sha256:aa",
        "tools/list",
        "total ",
    ] {
        assert!(
            html.contains(needle),
            "{backend:?}: last probe shows {needle}"
        );
    }
    assert_eq!(
        count(&html, "<svg class=\"chart\""),
        3,
        "24 h, 7 d and 90 d charts"
    );
    assert!(html.contains("class=\"p95\" points=\"") && html.contains("class=\"p50\" points=\""));
    assert_eq!(count(&html, "<tr class=\"incident\">"), 1);
    assert!(
        html.contains("25 min") && html.contains("connection refused"),
        "incident duration and cause"
    );
    let window = &html[html.find("<tr class=\"window\">").expect("a window row")..];
    let window = &window[..window.find("</tr>").unwrap()];
    assert!(
        window.contains("Weekly deploy")
            && window.contains("0 3 * * 0 (Europe/Berlin) for 30 min")
            && window.contains("next "),
        "{window}"
    );
    assert!(
        html.contains("class=\"breaking\">breaking</span>"),
        "schema change classed"
    );
    assert!(html.contains("Removed: <code>search</code>"), "{html}");
    for label in ["uptime 24 h", "uptime 7 d", "uptime 30 d", "uptime 90 d"] {
        assert!(html.contains(label));
    }
    app.stop().await;
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn badges_and_json_are_cacheable_and_cross_origin_readable(backend: Backend) {
    let app = spawn_app(backend).await;
    let now = now_ms();
    seed(
        app.store.as_ref(),
        &Seed {
            slug: "ok",
            name: "OK",
            days: 40,
            step_ms: 6 * 3_600_000,
            fail_every: Some(4),
            ..Seed::default()
        },
        now,
    )
    .await;
    seed(
        app.store.as_ref(),
        &Seed {
            slug: "dead",
            name: "Dead",
            status: ServerStatus::Down,
            ..Seed::default()
        },
        now,
    )
    .await;

    let (status, h, svg) = fetch(&app, "/badge/ok.svg").await;
    assert_eq!(status, 200, "{backend:?}");
    assert_eq!(h["content-type"], "image/svg+xml;charset=utf-8");
    assert!(h["cache-control"].to_str().unwrap().contains("max-age=60"));
    assert!(svg.contains(">operational</text>"), "{svg}");
    let (_, _, svg) = fetch(&app, "/badge/dead.svg").await;
    assert!(svg.contains(">down</text>") && svg.contains("#c62828"));

    let (status, _, svg) = fetch(&app, "/badge/ok/uptime.svg?days=30").await;
    assert_eq!(status, 200);
    assert!(svg.contains("uptime 30d"), "{svg}");
    let json: Value = serde_json::from_str(&fetch(&app, "/status.json").await.2).unwrap();
    let ok = json["servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["slug"] == "ok")
        .unwrap()
        .clone();
    let u30 = ok["uptime"]["30d"].as_f64().unwrap();
    assert!(
        u30 > 0.99 && u30 < 1.0,
        "only the seeded 25-minute outage counts: {u30}"
    );
    let raw = ok["probe_success"]["90d"].as_f64().unwrap();
    assert!((raw - 0.75).abs() < 0.03, "every 4th probe failed: {raw}");
    let shown = mcpwatch_percent(u30);
    assert!(svg.contains(&shown), "badge says {shown}: {svg}");
    let (status, _, svg) = fetch(&app, "/badge/ok/uptime.svg?days=5").await;
    assert_eq!(status, 400);
    assert!(svg.contains("use 1, 7, 30 or 90"));

    let resp = app
        .raw()
        .get(format!("{}/status.json", app.base))
        .header("origin", "https://example.org")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["access-control-allow-origin"], "*");
    assert_eq!(resp.status(), 200);
    app.stop().await;
}

/// The page's percentage format (one decimal below 99 %).
/// The page's percent form: two decimals from 99 % up (99.94 %), one below, "100 %" at 100.
fn mcpwatch_percent(r: f64) -> String {
    let p = r * 100.0;
    if p >= 100.0 {
        "100 %".into()
    } else if p >= 99.0 {
        format!("{:.2} %", (p * 100.0).floor() / 100.0)
    } else {
        format!("{:.1} %", (p * 10.0).floor() / 10.0)
    }
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn the_in_memory_history_picks_up_new_results_at_once(backend: Backend) {
    use mcpwatch::store::BatchWrites;
    let app = spawn_app(backend).await;
    let now = now_ms();
    seed(
        app.store.as_ref(),
        &Seed {
            slug: "live",
            name: "Live",
            ..Seed::default()
        },
        now,
    )
    .await;
    // The raw probe ratio reads the rollups: new results count at once.
    let uptime = |json: &str| {
        let v: Value = serde_json::from_str(json).unwrap();
        v["servers"][0]["probe_success"]["24h"].as_f64().unwrap()
    };
    let before = uptime(&fetch(&app, "/status.json").await.2);
    assert_eq!(before, 1.0, "{backend:?}");
    // Ten failures in the last minutes, committed after the page loaded its copy.
    let results = (0..10)
        .map(|i| {
            let mut r = support::fixtures::result(
                &format!("late-{i}"),
                "id-live",
                now - 30_000 + i,
                "eu-west",
            );
            r.verdict = mcpwatch::probe::Verdict::Down;
            r.failure_kind = Some(mcpwatch::probe::FailureKind::Connect);
            r
        })
        .collect();
    app.store
        .commit_batch(&BatchWrites {
            results,
            ..BatchWrites::default()
        })
        .await
        .unwrap();
    let after = uptime(&fetch(&app, "/status.json").await.2);
    assert!(
        after < before,
        "{backend:?}: the new failures count at once ({before} → {after})"
    );
    // And a server made public later shows with its history.
    seed(
        app.store.as_ref(),
        &Seed {
            slug: "later",
            name: "Later",
            public: false,
            days: 5,
            ..Seed::default()
        },
        now,
    )
    .await;
    let mut s = app.store.get_server("later").await.unwrap().unwrap();
    s.public = true;
    app.store.update_server(&s).await.unwrap();
    let json: Value = serde_json::from_str(&fetch(&app, "/status.json").await.2).unwrap();
    let later = json["servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["slug"] == "later")
        .unwrap()
        .clone();
    assert!(
        later["uptime"]["7d"].as_f64().is_some(),
        "history of a newly public server: {later}"
    );
    app.stop().await;
}

/// One failed probe that the state machine ignored (`failures_to_down` 2: still up, no
/// incident) leaves uptime, today's bar and the badge at 100 %; only the raw probe ratio shows
/// it. The second failure opens an incident, and from then on uptime counts the outage.
#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn uptime_agrees_with_the_state_machine(backend: Backend) {
    use support::fake_mcp::{FakeConfig, FakeServer, Fault};
    let app = spawn_app(backend).await;
    let fake = FakeServer::start(FakeConfig::default()).await;
    let (s, v) = app
        .post(
            "/api/v1/servers",
            // Hourly: no regular tick lands among the test's own checks.
            serde_json::json!({"name": "Truth", "slug": "truth", "url": fake.url(), "public": true, "interval_seconds": 3600}),
        )
        .await;
    assert_eq!(s.as_u16(), 201, "{v}");
    let check = || app.post("/api/v1/servers/truth/check", serde_json::json!({}));
    // The probe on registration.
    support::eventually(
        "the first probe",
        std::time::Duration::from_secs(10),
        async || {
            let (_, v) = app.get("/api/v1/servers/truth").await;
            v["state"] == "up"
        },
    )
    .await;
    fake.update(|c| {
        c.fault = Fault::Html200;
        c.fault_on = "*";
    });
    check().await;
    let json: Value = serde_json::from_str(&fetch(&app, "/status.json").await.2).unwrap();
    let truth = &json["servers"][0];
    assert_eq!(
        truth["state"], "up",
        "{backend:?}: one failure is below failures_to_down"
    );
    assert_eq!(truth["uptime"]["24h"], 1.0, "{backend:?}: {truth}");
    assert_eq!(truth["probe_success"]["24h"], 0.5, "{backend:?}: {truth}");
    let (_, _, html) = fetch(&app, "/").await;
    let card = card(&html, "truth");
    assert!(
        !card.contains(r#"class="major""#)
            && !card.contains(r#"class="partial""#)
            && !card.contains(r#"class="minor""#),
        "{backend:?}: no red day: {card}"
    );
    assert!(card.contains("100 % uptime"), "{backend:?}: {card}");
    let (_, _, badge) = fetch(&app, "/badge/truth/uptime.svg?days=1").await;
    assert!(badge.contains(">100 %</text>"), "{backend:?}: {badge}");
    assert!(
        card.contains("1 failed probe, no outage"),
        "{backend:?}: a neutral note in today's tooltip: {card}"
    );

    check().await;
    // The outage needs some length to be measured against the time the server was watched
    // (a duration, not a stand-in for an event).
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let json: Value = serde_json::from_str(&fetch(&app, "/status.json").await.2).unwrap();
    let truth = &json["servers"][0];
    assert_eq!(truth["state"], "down", "{backend:?}");
    let u = truth["uptime"]["24h"].as_f64().unwrap();
    assert!(
        u < 0.9,
        "{backend:?}: watched since registration, not since midnight: the open incident is a large share: {u}"
    );
    app.stop().await;
}

/// A large install's front page (over 4 MiB with 500 public servers) is served whole: the
/// last-good copy never makes a big page fail.
/// A large public fleet is paged (100 cards a page, "Page N of M", previous and next), every
/// page names the servers that are not operational, and a page past the end shows the last.
#[tokio::test]
async fn a_large_fleet_is_paged_and_its_problems_are_named_on_every_page() {
    let app = spawn_app(support::db::Backend::Sqlite).await;
    let now = now_ms();
    let slugs: Vec<String> = (0..230).map(|i| format!("srv-{i:03}")).collect();
    for slug in &slugs {
        let status = if slug == "srv-217" {
            ServerStatus::Down
        } else {
            ServerStatus::Up
        };
        seed(
            app.store.as_ref(),
            &Seed {
                slug,
                name: "Server",
                status,
                days: 1,
                ..Seed::default()
            },
            now,
        )
        .await;
    }
    let cards = |html: &str| count(html, "<article class=\"card server\"");
    let mut pages = Vec::new();
    for page in ["/", "/?page=2", "/?page=3"] {
        let (status, _, html) = fetch(&app, page).await;
        assert_eq!(status, 200, "{page}");
        assert!(html.contains("230 public servers"), "{page}");
        let problems = html
            .split("<p class=\"problems\">")
            .nth(1)
            .unwrap_or_else(|| panic!("{page} names no problems"));
        assert!(
            problems.contains("href=\"/s/srv-217\"") && problems.contains("(Down)"),
            "{page}"
        );
        pages.push(html);
    }
    assert_eq!(
        pages.iter().map(|h| cards(h)).collect::<Vec<_>>(),
        [100, 100, 30]
    );
    assert!(pages[0].contains("Page 1 of 3") && pages[0].contains("href=\"/?page=2\""));
    assert!(!pages[0].contains("rel=\"prev\""));
    assert!(pages[2].contains("Page 3 of 3") && pages[2].contains("href=\"/?page=2\""));
    assert!(!pages[2].contains("rel=\"next\""));
    let with_card = pages
        .iter()
        .filter(|h| h.contains("id=\"srv-217\">"))
        .count();
    assert_eq!(with_card, 1, "each server is on one page");
    let (_, _, past_the_end) = fetch(&app, "/?page=99").await;
    assert!(past_the_end.contains("Page 3 of 3"));
    assert_eq!(cards(&past_the_end), 30);
    let (status, _, _) = fetch(&app, "/?page=abc").await;
    assert_eq!(status, 400);
    app.stop().await;
}

/// Time spent degraded paints the day amber (and says so), with uptime still 100 %.
#[tokio::test]
async fn degraded_time_is_amber_on_the_bars() {
    use support::fake_mcp::{FakeConfig, FakeServer, Fault};
    let app = spawn_app(support::db::Backend::Sqlite).await;
    // Slower than its 1 ms threshold on every probe.
    let fake = FakeServer::start(FakeConfig {
        fault: Fault::Slow(std::time::Duration::from_millis(20)),
        ..FakeConfig::default()
    })
    .await;
    let (s, v) = app
        .post(
            "/api/v1/servers",
            serde_json::json!({"name": "Slowish", "slug": "slowish", "url": fake.url(), "public": true, "degraded_latency_ms": 1}),
        )
        .await;
    assert_eq!(s.as_u16(), 201, "{v}");
    support::eventually("degraded", std::time::Duration::from_secs(10), async || {
        let (_, v) = app.get("/api/v1/servers/slowish").await;
        v["state"] == "degraded"
    })
    .await;
    // Some time in the state, so the day has degraded time to show.
    let _ = app
        .post("/api/v1/servers/slowish/check", serde_json::json!({}))
        .await;
    let (_, _, html) = fetch(&app, "/").await;
    let card = card(&html, "slowish");
    assert!(card.contains("100 % uptime"), "{card}");
    let today = card.rsplit("<rect ").next().unwrap_or_default();
    assert!(
        today.starts_with(r#"class="partial""#) && today.contains("degraded"),
        "today is amber and says degraded: {today}"
    );
    app.stop().await;
}
