//! Rows for store-level tests: a public server, an `up` result and a webhook channel, to
//! adjust per test; and an ingest task over a store.
#![allow(dead_code)]

use std::sync::Arc;

use mcpwatch::ingest;
use mcpwatch::store::{ChannelKind, ChannelRecord, ResultRecord, ServerRecord, Store};
use tokio_util::sync::CancellationToken;

/// An ingest task over `store` owning every server (queue of 100, with `spill` if given),
/// stopped by the token.
pub fn ingest(
    store: &Arc<dyn Store>,
    spill: Option<ingest::Spill>,
) -> (
    ingest::IngestHandle,
    tokio::task::JoinHandle<()>,
    CancellationToken,
) {
    let stop = CancellationToken::new();
    let (handle, task) = ingest::spawn(
        store.clone(),
        mcpwatch::shard::Ownership::everything("test"),
        100,
        spill.map(Arc::new),
        stop.clone(),
        Arc::new(tokio::sync::Notify::new()),
        Arc::new(mcpwatch::metrics::Metrics::new().unwrap()),
        std::time::Duration::from_secs(180),
    );
    (handle, task, stop)
}

/// An enabled standard webhook channel for `events`, following servers with `tags`.
pub fn webhook_channel(id: &str, events: &[&str], tags: &[&str]) -> ChannelRecord {
    ChannelRecord {
        template: None,
        managed_by: None,
        id: id.into(),
        name: id.into(),
        kind: ChannelKind::Webhook,
        url: Some("https://hooks.example.com/mcpwatch".into()),
        format: Some("standard".into()),
        headers_enc: None,
        header_names: vec![],
        secret_enc: None,
        recipients: vec![],
        server_ids: vec![],
        tags: tags.iter().map(|t| t.to_string()).collect(),
        events: events.iter().map(|e| e.to_string()).collect(),
        drift: vec![],
        enabled: true,
        disabled_reason: None,
        failing_since: None,
        reminder_interval_seconds: None,
        created_at: 0,
        updated_at: 0,
    }
}

pub fn server(id: &str, slug: &str, created_at: i64) -> ServerRecord {
    ServerRecord {
        registry: None,
        paused_reason: None,
        oauth: None,
        oauth_enc: None,
        bearer_expires_at: None,
        calls: Some(
            r#"{"calls":[{"tool":"get-sum","arguments":{"a":1}}],"failure_is_down":false}"#.into(),
        ),
        list_contract: true,
        managed_by: None,
        id: id.into(),
        slug: slug.into(),
        name: format!("Server {slug}"),
        url: "https://mcp.example.com/mcp".into(),
        url_enc: None,
        header_names: vec!["Authorization".into()],
        headers_enc: Some("sealed".into()),
        interval_seconds: 60,
        timeout_seconds: 10,
        tags: vec!["prod".into()],
        public: true,
        paused: false,
        failures_to_down: 2,
        successes_to_up: 1,
        degraded_latency_ms: Some(2000),
        expect_auth: false,
        era_hint: None,
        created_at,
        updated_at: created_at,
        regions: vec![],
        quorum: None,
    }
}

pub fn result(id: &str, server_id: &str, at: i64, region: &str) -> ResultRecord {
    ResultRecord {
        id: id.into(),
        server_id: server_id.into(),
        region: region.into(),
        started_at: at,
        duration_ms: 12.5,
        dns_ms: None,
        connect_ms: Some(1.0),
        tls_ms: None,
        handshake_ms: Some(3.0),
        tools_list_ms: Some(2.0),
        verdict: mcpwatch::probe::Verdict::Up,
        failure_kind: None,
        failure_phase: None,
        failure_message: None,
        http_status: None,
        jsonrpc_code: None,
        era: Some("stateless".into()),
        protocol_version: Some("2026-07-28".into()),
        server_name: Some("fake".into()),
        server_version: Some("1.0".into()),
        tool_count: 3,
        schema_hash: Some("sha256:aa".into()),
        tls_not_after: Some(1_900_000_000),
        vantage_unhealthy: false,
        trace_id: None,
        calls: Some(r#"[{"tool":"get-sum","called":true,"latency_ms":1.5,"failure":null}]"#.into()),
        stream: Some(r#"{"tool":"long-op","called":true,"notifications":4,"first_ms":250.0,"result_ms":1000.0,"max_gap_ms":250.0,"failure":null}"#.into()),
        contract: Some(r#"[{"kind":"resources","count":2,"hash":"sha256:bb"}]"#.into()),
    }
}
