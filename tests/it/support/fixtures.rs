//! Rows for store-level tests: a public server and an `up` result, to adjust per test.
#![allow(dead_code)]

use mcpwatch::store::{ResultRecord, ServerRecord};

pub fn server(id: &str, slug: &str, created_at: i64) -> ServerRecord {
    ServerRecord {
        registry: None,
        paused_reason: None,
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
    }
}
