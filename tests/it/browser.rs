//! The status page in a real browser (headless Chromium over the DevTools protocol) and in the
//! W3C's Nu HTML checker. Screenshots go to `target/screenshots/` (kept as CI artifacts).

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;

use mcpwatch::monitor::{RegionStatus, ServerStatus};
use support::app::{TestApp, spawn_app_with};
use support::browser::Browser;
use support::db::Backend;
use support::seed::{Seed, now_ms, seed};
use support::smtp::SmtpServer;

fn screenshots() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots")
}

/// The seeded app, with a real SMTP server and a public URL, so readers can subscribe.
async fn seeded_app() -> (TestApp, SmtpServer) {
    let smtp = SmtpServer::start();
    let url = smtp.url();
    let app = spawn_app_with(Backend::Sqlite, move |s| {
        s.smtp_url = Some(url);
        s.smtp_from = Some("status@mcpwatch.test".into());
        s.public_url = Some(PUBLIC.into());
    })
    .await;
    let now = now_ms();
    let store = app.store.as_ref();
    let timeout = Some(("timeout", "tools_list"));
    seed(
        store,
        &Seed {
            slug: "weather",
            name: "Weather MCP",
            tags: &["public APIs"],
            days: 30,
            fail_every: Some(9),
            ..Seed::default()
        },
        now,
    )
    .await;
    seed(
        store,
        &Seed {
            slug: "search",
            name: "Search MCP",
            tags: &["public APIs"],
            status: ServerStatus::Down,
            regions: &[
                ("eu-west", RegionStatus::Down, timeout),
                ("us-east", RegionStatus::Down, timeout),
            ],
            days: 60,
            ..Seed::default()
        },
        now,
    )
    .await;
    seed(
        store,
        &Seed {
            slug: "files",
            name: "Files MCP",
            status: ServerStatus::Degraded,
            days: 89,
            fail_every: Some(40),
            ..Seed::default()
        },
        now,
    )
    .await;
    seed(
        store,
        &Seed {
            slug: "new",
            name: "Brand-new MCP",
            status: ServerStatus::Unknown,
            regions: &[],
            days: 0,
            ..Seed::default()
        },
        now,
    )
    .await;
    (app, smtp)
}

const PUBLIC: &str = "http://status.mcpwatch.test";

/// The path of the confirm link in the `n`th message (waiting up to 10 s for it).
async fn confirm_path(smtp: &SmtpServer, n: usize) -> String {
    for _ in 0..200 {
        if let Some(m) = smtp.mails().get(n) {
            let parsed = mail_parser::MessageParser::default().parse(m.data.as_bytes());
            let text = parsed.and_then(|p| p.body_text(0).map(|t| t.to_string()));
            let text = text.expect("a text body");
            let start = text.find("/subscribe/confirm?").expect("a confirm link");
            return text[start..]
                .chars()
                .take_while(|c| !c.is_whitespace() && *c != '"' && *c != '<')
                .collect();
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("no confirmation message");
}

#[tokio::test]
async fn the_page_loads_in_chromium_with_servers_bars_and_no_console_errors() {
    let (app, smtp) = seeded_app().await;
    let post = post_incident(&app).await;
    let mut b = Browser::launch().await;
    let dir = screenshots();

    b.goto(&format!("{}/", app.base)).await;
    let names = b
        .eval("[...document.querySelectorAll('article.server h3')].map(e => e.textContent.trim())")
        .await;
    assert_eq!(
        names,
        serde_json::json!(["Brand-new MCP", "Files MCP", "Search MCP", "Weather MCP"])
    );
    assert_eq!(
        b.eval("document.querySelectorAll('svg.bars rect').length")
            .await,
        4 * 90
    );
    let bar_height = b
        .eval("document.querySelector('svg.bars').getBoundingClientRect().height")
        .await;
    assert!(
        bar_height.as_f64().unwrap() >= 20.0,
        "the bars are visible: {bar_height}"
    );
    assert_eq!(
        b.eval("document.querySelector('.banner').textContent.trim()")
            .await,
        "▲Partial outage"
    );
    assert_eq!(
        b.eval("document.scripts.length").await,
        0,
        "no JavaScript needed"
    );
    assert_eq!(
        b.eval("document.querySelector('.post h3').textContent.trim()")
            .await,
        "Search answers slowly from eu-west and us-east while a cache node is replaced",
        "the active incident post on top"
    );
    b.screenshot(&dir.join("index.png")).await;

    // Phone width: nothing overflows sideways.
    b.viewport(375, 800, true).await;
    b.goto(&format!("{}/", app.base)).await;
    assert_fits(&mut b, "/ at 375 px").await;
    b.screenshot(&dir.join("index-phone.png")).await;

    // Dark mode by prefers-color-scheme.
    b.viewport(1280, 900, false).await;
    b.color_scheme("dark").await;
    b.goto(&format!("{}/", app.base)).await;
    let bg = b
        .eval("getComputedStyle(document.body).backgroundColor")
        .await;
    assert_eq!(bg, "rgb(15, 18, 22)", "dark background");
    b.screenshot(&dir.join("index-dark.png")).await;
    b.color_scheme("light").await;

    b.goto(&format!("{}/s/search", app.base)).await;
    assert_eq!(
        b.eval("document.querySelectorAll('tr.region').length")
            .await,
        2
    );
    assert_eq!(
        b.eval("document.querySelectorAll('svg.chart:not(.tool-chart)').length")
            .await,
        3
    );
    // The seeded server has one synthetic call (`get-sum`) with a stored latency: its row and
    // its chart.
    assert_eq!(
        b.eval("document.querySelectorAll('tr.tool-call').length")
            .await,
        1
    );
    assert_eq!(
        b.eval("document.querySelectorAll('svg.tool-chart polyline').length")
            .await,
        1
    );
    let reason = b
        .eval("document.querySelector('.reason').textContent")
        .await;
    assert!(
        reason
            .as_str()
            .unwrap()
            .contains("tools/list timed out from eu-west, us-east"),
        "{reason}"
    );
    assert_eq!(
        b.eval("document.querySelector('tr.incident a').getAttribute('href')")
            .await,
        post.as_str(),
        "the open incident links to the post that explains it"
    );
    b.screenshot(&dir.join("server.png")).await;

    // Phones (360 and 390 px): nothing overflows the page, and nothing is cut off: an element
    // wider than its box must scroll (overflow-x auto), never hide what it holds.
    let (status, _) = app
        .post(
            "/api/v1/slos",
            serde_json::json!({"name": "search", "server": "search", "objective": 0.999}),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::CREATED);
    let report = format!(
        "/s/search/report/{}",
        mcpwatch::slo::report::last_month(now_ms())
    );
    for width in [360, 390] {
        b.viewport(width, 800, true).await;
        for path in ["/", "/s/search", post.as_str(), report.as_str()] {
            b.goto(&format!("{}{path}", app.base)).await;
            let overflow = b
                .eval("document.documentElement.scrollWidth - window.innerWidth")
                .await;
            assert!(
                overflow.as_i64().unwrap() <= 0,
                "{path}: horizontal overflow of {overflow} px at {width} px"
            );
            let clipped = b
                .eval(
                    "[...document.querySelectorAll('body *')].filter(e => e.scrollWidth > e.clientWidth + 1 \
                     && e.clientWidth > 0 && !['auto','scroll'].includes(getComputedStyle(e).overflowX) \
                     && getComputedStyle(e).overflowX !== 'visible').map(e => e.tagName + '.' + e.className).join(' ')",
                )
                .await;
            assert_eq!(clipped, "", "{path} at {width} px: cut off");
            let past_card = b
                .eval(
                    "[...document.querySelectorAll('.card *')].filter(e => { const c = e.closest('.card'); \
                     return e.getBoundingClientRect().right > c.getBoundingClientRect().right + 1; }).map(e => e.tagName + ':' + e.textContent.slice(0, 20)).join(' | ')",
                )
                .await;
            assert_eq!(past_card, "", "{path} at {width} px: past the card's edge");
            b.screenshot(&dir.join(format!("phone-{width}{}.png", path.replace('/', "-"))))
                .await;
        }
    }
    b.viewport(1280, 900, false).await;

    // A branded page on its own host: its title, and only its server; fits a phone.
    let port = app.base.rsplit(':').next().unwrap().to_string();
    // The logo: an image this daemon serves (its badge), so the page loads nothing from away.
    brand_a_page(
        &app,
        &format!("http://status.acme.test:{port}/badge/weather.svg"),
    )
    .await;
    b.goto(&format!("http://status.acme.test:{port}/")).await;
    assert_eq!(b.eval("document.title").await, "Acme MCP status");
    assert_eq!(
        b.eval(
            "[...document.querySelectorAll('article.server h3')].map(e => e.textContent.trim())"
        )
        .await,
        serde_json::json!(["Weather MCP"])
    );
    b.viewport(360, 800, true).await;
    b.goto(&format!("http://status.acme.test:{port}/")).await;
    assert_fits(&mut b, "the branded page at 360 px").await;
    b.screenshot(&dir.join("branded-360.png")).await;

    // The subscription form on a phone: subscribe, then confirm with the mailed link's button.
    b.goto(&format!("{}/", app.base)).await;
    b.navigate_by(
        "document.querySelector('#sub-email').value = 'reader@example.test'; \
         document.querySelector('form.subscribe').submit(); true",
    )
    .await;
    shows(
        &mut b,
        "Almost done — MCP server status",
        "subscribe-360.png",
    )
    .await;
    let confirm = confirm_path(&smtp, 0).await;
    b.goto(&format!("{}{confirm}", app.base)).await;
    shows(
        &mut b,
        "Confirm your subscription — MCP server status",
        "confirm-360.png",
    )
    .await;
    b.navigate_by("document.querySelector('form.subscribe button').click(); true")
        .await;
    shows(
        &mut b,
        "Subscribed — MCP server status",
        "subscribed-360.png",
    )
    .await;
    let confirmed = app.store.list_subscribers().await.unwrap();
    assert!(confirmed[0].confirmed_at.is_some(), "the button confirmed");
    b.viewport(1280, 900, false).await;

    assert!(
        b.seen.errors.is_empty(),
        "console errors: {:#?}",
        b.seen.errors
    );
    drop(b);
    app.stop().await;
}

/// The Nu HTML checker's jar, fetched from npm (`vnu-jar`) into `target/tools` when missing.
fn vnu_jar() -> PathBuf {
    let prefix = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tools/vnu");
    let jar = prefix.join("node_modules/vnu-jar/build/dist/vnu.jar");
    if !jar.exists() {
        let ok = Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--silent", "--prefix"])
            .arg(&prefix)
            .arg("vnu-jar@26.9.27")
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok && jar.exists(),
            "could not install vnu-jar with npm (needs Node.js and the npm registry)"
        );
    }
    jar
}

/// The page is titled `title`, fits the viewport, and is kept as screenshot `file`.
async fn shows(b: &mut Browser, title: &str, file: &str) {
    assert_eq!(b.eval("document.title").await, title);
    assert_fits(b, title).await;
    b.screenshot(&screenshots().join(file)).await;
}

/// Nothing on the page overflows the viewport sideways.
async fn assert_fits(b: &mut Browser, what: &str) {
    let overflow = b
        .eval("document.documentElement.scrollWidth - window.innerWidth")
        .await;
    assert!(
        overflow.as_i64().unwrap() <= 0,
        "{what}: horizontal overflow of {overflow} px"
    );
}

/// A branded page for `status.acme.test` showing only the seeded `weather` server, with the
/// logo at `logo`.
async fn brand_a_page(app: &TestApp, logo: &str) {
    let (status, page) = app
        .post(
            "/api/v1/pages",
            serde_json::json!({"host": "status.acme.test", "title": "Acme MCP status",
                               "description": "The MCP servers behind Acme's assistants.",
                               "logo_url": logo, "accent": "#0a7cff",
                               "footer": "Acme Inc., 1 Loop Road", "servers": ["weather"],
                               "links": [{"label": "Docs", "url": "https://docs.acme.test/"},
                                         {"label": "Support", "url": "https://acme.test/support"}]}),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{page}");
}

/// An incident post with two updates about the seeded `search` server, explaining its open
/// automatic incident; its page's path.
async fn post_incident(app: &TestApp) -> String {
    let (_, search) = app.get("/api/v1/servers/search").await;
    // The seed opens an incident `{id}-open` for a server it seeds down.
    let open = format!("{}-open", search["id"].as_str().unwrap());
    let (status, post) = app
        .post(
            "/api/v1/posts",
            serde_json::json!({"title": "Search answers slowly from eu-west and us-east while a cache node is replaced",
                               "impact": "major", "servers": ["search"], "incident": open,
                               "message": "We are looking into slow tools/list answers."}),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{post}");
    let id = post["id"].as_str().unwrap();
    let (status, _) = app
        .post(
            &format!("/api/v1/posts/{id}/updates"),
            serde_json::json!({"status": "identified", "message": "A cache node failed; replacing it."}),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::OK);
    format!("/incidents/{id}")
}

#[tokio::test]
async fn the_pages_are_valid_html() {
    let (app, smtp) = seeded_app().await;
    let post = post_incident(&app).await;
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    let (status, slo) = app
        .post(
            "/api/v1/slos",
            serde_json::json!({"name": "weather", "server": "weather", "objective": 0.995,
                               "latency": {"threshold_ms": 800, "objective": 0.95}}),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{slo}");
    let report = format!(
        "/s/weather/report/{}",
        mcpwatch::slo::report::last_month(now_ms())
    );
    for (name, path) in [
        ("index.html", "/"),
        ("report.html", report.as_str()),
        ("server.html", "/s/weather"),
        ("down.html", "/s/search"),
        ("new.html", "/s/new"),
        ("incident.html", post.as_str()),
    ] {
        let html = app
            .raw()
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let file = dir.path().join(name);
        std::fs::write(&file, html).unwrap();
        files.push(file);
    }
    // Past 100 servers `/` is paged and names the troubled servers first.
    let now = now_ms();
    for i in 0..100 {
        let slug = format!("more-{i:03}");
        let more = Seed {
            slug: &slug,
            name: "More",
            days: 1,
            ..Seed::default()
        };
        seed(app.store.as_ref(), &more, now).await;
    }
    for (name, path) in [("paged-1.html", "/"), ("paged-2.html", "/?page=2")] {
        let html = app
            .raw()
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        let html = html.text().await.unwrap();
        assert!(
            html.contains("rel=\"") && html.contains("class=\"problems\""),
            "{path}"
        );
        let file = dir.path().join(name);
        std::fs::write(&file, html).unwrap();
        files.push(file);
    }
    // The subscription pages: the answer to the form, the confirm button, a link not valid.
    let (_, done) = app
        .post_form("/subscribe", &[("email", "reader@example.test")])
        .await;
    assert!(done.contains("Almost done"), "{done}");
    let confirm = confirm_path(&smtp, 0).await;
    for (name, path, html) in [
        ("subscribe.html", "/subscribe", Some(done)),
        ("confirm.html", confirm.as_str(), None),
        ("not-valid.html", "/unsubscribe?s=x&t=y", None),
    ] {
        let html = match html {
            Some(html) => html,
            None => app.fetch(path).await.2,
        };
        let file = dir.path().join(name);
        std::fs::write(&file, html).unwrap();
        files.push(file);
    }
    brand_a_page(&app, "https://acme.test/logo.png").await;
    let branded = app
        .raw()
        .get(format!("{}/", app.base))
        .header("host", "status.acme.test")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(branded.contains("Acme MCP status"));
    let file = dir.path().join("branded.html");
    std::fs::write(&file, branded).unwrap();
    files.push(file);
    app.stop().await;
    let out = Command::new("java")
        .arg("-jar")
        .arg(vnu_jar())
        .args(["--errors-only", "--format", "text"])
        .args(&files)
        .output()
        .expect("java runs (the Nu checker needs a JRE)");
    let report =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the Nu HTML checker found errors:\n{report}"
    );
}
