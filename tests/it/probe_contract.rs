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
