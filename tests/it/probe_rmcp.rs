//! A real peer: a server built with the official Rust SDK (`rmcp`), in process on 127.0.0.1:0.
//! It speaks 2026-07-28 and the initialize era on one endpoint; the probe must find the
//! stateless era by itself, also succeed when forced to the older era, and hash both the same.

use crate::support;

use mcpwatch::probe::{Era, EraChoice, Verdict};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ServerHandler, tool, tool_handler, tool_router};
use support::probe_with;
use tokio_util::sync::CancellationToken;

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
struct SumRequest {
    /// First addend.
    a: i64,
    /// Second addend.
    b: i64,
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
struct EchoRequest {
    message: String,
}

#[derive(Debug, Clone)]
struct Calculator {
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl Calculator {
    #[tool(description = "Add two integers")]
    fn sum(&self, Parameters(SumRequest { a, b }): Parameters<SumRequest>) -> String {
        (a + b).to_string()
    }

    #[tool(description = "Echo the message back")]
    fn echo(&self, Parameters(EchoRequest { message }): Parameters<EchoRequest>) -> String {
        message
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Calculator {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

/// Serve the SDK on a loopback port; the returned token stops it.
async fn start(json_response: bool, legacy_session_mode: bool) -> (String, CancellationToken) {
    let ct = CancellationToken::new();
    let mut config = StreamableHttpServerConfig::default()
        .with_sse_keep_alive(None)
        .with_cancellation_token(ct.child_token());
    config.json_response = json_response;
    config.legacy_session_mode = legacy_session_mode;
    let service: StreamableHttpService<Calculator, LocalSessionManager> =
        StreamableHttpService::new(
            || {
                Ok(Calculator {
                    tool_router: Calculator::tool_router(),
                })
            },
            Default::default(),
            config,
        );
    let router = axum::Router::new().nest_service("/mcp", service);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = ct.clone();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(async move { stop.cancelled_owned().await })
            .await;
    });
    (format!("http://{addr}/mcp"), ct)
}

#[tokio::test]
async fn rmcp_server_is_up_in_both_eras_with_one_hash() {
    for (json_response, sessions) in [(false, true), (true, false)] {
        let (url, stop) = start(json_response, sessions).await;
        let modern = probe_with(&url, |_| {}).await;
        assert_eq!(
            modern.verdict,
            Verdict::Up,
            "json={json_response}: {modern:#?}"
        );
        assert_eq!(modern.era, Some(Era::Stateless));
        assert_eq!(modern.protocol_version.as_deref(), Some("2026-07-28"));
        assert_eq!(modern.tool_names, vec!["echo", "sum"]);

        let legacy = probe_with(&url, |t| t.era = EraChoice::Force(Era::StreamableHttp)).await;
        assert_eq!(
            legacy.verdict,
            Verdict::Up,
            "json={json_response}: {legacy:#?}"
        );
        assert_eq!(legacy.era, Some(Era::StreamableHttp));
        assert_eq!(legacy.protocol_version.as_deref(), Some("2025-11-25"));
        assert_eq!(
            legacy.session, sessions,
            "the SDK assigns a session only in legacy session mode"
        );
        assert!(legacy.warnings.is_empty(), "{:?}", legacy.warnings);
        assert_eq!(
            modern.schema_hash, legacy.schema_hash,
            "one server, one hash, whatever the era"
        );
        assert!(legacy.server_info.is_some());
        stop.cancel();
    }
}
