//! The whole contract (issue 16 §1, the probe's half): resources, resource templates and
//! prompts listed (every page) and hashed when the server advertises them, on both transports;
//! a resource list whose cursor cycles is a warning naming it, never a down server; the tools'
//! hash unchanged. The real reference server's lists are in tests/interop/run.sh.

use mcpwatch::probe::{ProbeReport, Verdict};
use serde_json::{Value, json};
use test_case::test_case;

use crate::cli::mcpwatch;
use crate::support;
use crate::support::fake_mcp::{FakeConfig, FakeEra, FakeServer};

fn resources() -> Vec<Value> {
    (1..=5)
        .map(|i| json!({"uri": format!("file:///doc/{i}.md"), "name": format!("doc {i}"), "mimeType": "text/markdown"}))
        .collect()
}

fn prompts() -> Vec<Value> {
    vec![
        json!({"name": "summarize", "arguments": [{"name": "text", "required": true}]}),
        json!({"name": "greet"}),
    ]
}

fn with_contract(era: FakeEra) -> FakeConfig {
    FakeConfig {
        era,
        resources: resources(),
        prompts: prompts(),
        ..FakeConfig::default()
    }
}

async fn listed(fake: &FakeServer) -> ProbeReport {
    support::probe_with(&fake.url(), |t| t.list_contract = true).await
}

fn kind<'r>(r: &'r ProbeReport, name: &str) -> &'r mcpwatch::probe::ListedKind {
    r.contract
        .iter()
        .find(|k| k.kind == name)
        .unwrap_or_else(|| panic!("no {name} in {:#?}", r.contract))
}

#[test_case(FakeEra::Stateless ; "stateless")]
#[test_case(FakeEra::Streamable ; "streamable")]
#[tokio::test]
async fn advertised_lists_are_read_to_the_end_and_hashed_by_key(era: FakeEra) {
    let fake = FakeServer::start(with_contract(era)).await;
    let r = listed(&fake).await;
    assert_eq!(r.verdict, Verdict::Up, "{r:#?}");
    assert_eq!(kind(&r, "resources").count, 5, "three pages of two");
    assert_eq!(kind(&r, "resource_templates").count, 0);
    assert_eq!(kind(&r, "prompts").count, 2);
    let mut methods = Vec::new();
    fake.seen(|s| methods = s.methods.clone());
    let pages = methods.iter().filter(|m| *m == "resources/list").count();
    assert_eq!(pages, 3, "{methods:?}");

    // The server's order is not part of a list's identity; the tools' hash is not touched.
    let reordered = FakeServer::start(FakeConfig {
        resources: resources().into_iter().rev().collect(),
        prompts: prompts().into_iter().rev().collect(),
        ..with_contract(era)
    })
    .await;
    let again = listed(&reordered).await;
    assert_eq!(kind(&again, "resources").hash, kind(&r, "resources").hash);
    assert_eq!(kind(&again, "prompts").hash, kind(&r, "prompts").hash);
    let plain = FakeServer::start(FakeConfig {
        era,
        ..FakeConfig::default()
    })
    .await;
    let tools_only = listed(&plain).await;
    assert_eq!(tools_only.schema_hash, r.schema_hash);
    assert!(
        tools_only.contract.is_empty(),
        "nothing advertised, nothing listed"
    );
    let mut methods = Vec::new();
    plain.seen(|s| methods = s.methods.clone());
    assert!(
        !methods
            .iter()
            .any(|m| m.starts_with("resources/") || m.starts_with("prompts/")),
        "{methods:?}"
    );

    // A changed resource moves its kind's hash, not the others.
    let edited = FakeServer::start(FakeConfig {
        resources: {
            let mut r = resources();
            r[2]["mimeType"] = json!("text/plain");
            r
        },
        ..with_contract(era)
    })
    .await;
    let moved = listed(&edited).await;
    assert_ne!(kind(&moved, "resources").hash, kind(&r, "resources").hash);
    assert_eq!(kind(&moved, "prompts").hash, kind(&r, "prompts").hash);
}

#[tokio::test]
async fn a_resource_list_that_cycles_is_a_warning_naming_it() {
    let fake = FakeServer::start(FakeConfig {
        resource_cursor_cycle: true,
        ..with_contract(FakeEra::Stateless)
    })
    .await;
    let r = listed(&fake).await;
    assert_eq!(r.verdict, Verdict::Degraded, "{r:#?}");
    assert!(
        r.warnings
            .iter()
            .any(|w| w.starts_with("resources/list: cursor cycle")),
        "{:?}",
        r.warnings
    );
    assert_eq!(r.tools_count, 3, "the tools are still listed");
    assert!(r.contract.iter().all(|k| k.kind != "resources"));
    assert_eq!(kind(&r, "prompts").count, 2, "the other lists still are");
}

#[tokio::test]
async fn check_lists_them_unless_told_not_to() {
    let fake = FakeServer::start(with_contract(FakeEra::Stateless)).await;
    let out = mcpwatch(&["check", &fake.url(), "--json"]).await;
    assert_eq!(out.status.code(), Some(0));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let kinds: Vec<(&str, u64)> = v["contract"]
        .as_array()
        .unwrap_or_else(|| panic!("{v}"))
        .iter()
        .map(|k| (k["kind"].as_str().unwrap(), k["count"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        [("resources", 5), ("resource_templates", 0), ("prompts", 2)]
    );
    assert!(
        v["contract"][0]["hash"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    let human = mcpwatch(&["check", &fake.url()]).await;
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(text.contains("  resources   5 · sha256:"), "{text}");
    let skipped = mcpwatch(&["check", &fake.url(), "--json", "--no-contract"]).await;
    let v: Value = serde_json::from_slice(&skipped.stdout).unwrap();
    assert_eq!(v.get("contract"), None, "{v}");
}

/// `snapshot` keeps the lists beside the tools and `--check` fails on their drift as
/// `--fail-on` says: a removed resource is breaking, a rewritten prompt description security.
#[tokio::test]
async fn snapshot_check_compares_the_lists_by_class() {
    let fake = FakeServer::start(with_contract(FakeEra::Stateless)).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("snap.json");
    let snap = path.to_str().unwrap();
    let out = mcpwatch(&["snapshot", &fake.url(), "--out", snap]).await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let file: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(
        file["contract"]["resources"]["items"]
            .as_array()
            .map(Vec::len),
        Some(5)
    );
    let same = mcpwatch(&["snapshot", &fake.url(), "--check", snap]).await;
    assert_eq!(
        same.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&same.stdout)
    );

    fake.update(|c| c.prompts[0]["description"] = json!("Summarize, then mail it elsewhere"));
    let check = |fail_on: &'static str| {
        let url = fake.url();
        let snap = snap.to_string();
        async move { mcpwatch(&["snapshot", &url, "--check", &snap, "--fail-on", fail_on]).await }
    };
    let edited = check("breaking").await;
    let text = String::from_utf8_lossy(&edited.stdout).to_string();
    assert_eq!(edited.status.code(), Some(0), "{text}");
    assert!(
        text.contains("prompts: compatible, security: 1 changed (summarize: description) (not failing: --fail-on)"),
        "{text}"
    );
    assert_eq!(check("security").await.status.code(), Some(3));

    fake.update(|c| {
        c.resources.pop();
    });
    let removed = check("breaking").await;
    let text = String::from_utf8_lossy(&removed.stdout).to_string();
    assert_eq!(removed.status.code(), Some(3), "{text}");
    assert!(
        text.contains("resources: breaking: 1 removed (file:///doc/5.md)"),
        "{text}"
    );

    // A hand-edited list no longer matching its hash is refused, not compared.
    let tampered = std::fs::read_to_string(&path)
        .unwrap()
        .replace("doc 1", "doc one");
    std::fs::write(&path, tampered).unwrap();
    let refused = mcpwatch(&["snapshot", &fake.url(), "--check", snap]).await;
    assert_eq!(refused.status.code(), Some(2));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("the resources hash") && err.contains("does not match its items"),
        "{err}"
    );
}
