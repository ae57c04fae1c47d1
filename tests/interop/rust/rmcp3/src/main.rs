//! usage: interop-rmcp3 PORT json|sse — serves /mcp on 127.0.0.1:PORT (2026-07-28 and the
//! initialize era on one endpoint) with the corpus' three tools.

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ServerHandler, tool, tool_handler, tool_router};

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct AddArgs {
    a: i64,
    b: i64,
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct EchoArgs {
    message: String,
    #[serde(default)]
    loud: bool,
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct TextArgs {
    text: String,
}

#[derive(Clone)]
struct Corpus {
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl Corpus {
    #[tool(description = "Add two integers.")]
    fn add(&self, Parameters(AddArgs { a, b }): Parameters<AddArgs>) -> String {
        (a + b).to_string()
    }

    #[tool(description = "Echo a message back.")]
    fn echo(&self, Parameters(EchoArgs { message, loud }): Parameters<EchoArgs>) -> String {
        if loud { message.to_uppercase() } else { message }
    }

    #[tool(description = "Count the words of a text.")]
    fn word_count(&self, Parameters(TextArgs { text }): Parameters<TextArgs>) -> String {
        text.split_whitespace().count().to_string()
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Corpus {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let port: u16 = args[1].parse().expect("PORT");
    let mut config = StreamableHttpServerConfig::default().with_sse_keep_alive(None);
    config.json_response = args[2] == "json";
    let service: StreamableHttpService<Corpus, LocalSessionManager> = StreamableHttpService::new(
        || {
            Ok(Corpus {
                tool_router: Corpus::tool_router(),
            })
        },
        Default::default(),
        config,
    );
    let router = axum::Router::new().nest_service("/mcp", service);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind");
    axum::serve(listener, router).await.expect("serve");
}
