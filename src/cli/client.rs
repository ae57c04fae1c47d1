//! The API client behind `mcpwatch servers …` and `mcpwatch status`: where the daemon is and
//! which key to use (flags, then `MCPWATCH_URL` / `MCPWATCH_TOKEN`, then a local daemon's
//! admin token file), and one request with its failure classed for the exit code.

use std::path::PathBuf;
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

/// Where the daemon is and how to authenticate.
#[derive(clap::Args, Debug, Clone)]
pub struct ClientArgs {
    /// The daemon's base URL (MCPWATCH_URL; default http://127.0.0.1:8080).
    #[arg(long, global = true, env = "MCPWATCH_URL", value_name = "URL")]
    pub url: Option<String>,
    /// An API key (MCPWATCH_TOKEN; default: the admin token file of a local daemon,
    /// `$MCPWATCH_DATA_DIR/admin-token` or `./data/admin-token`).
    #[arg(
        long,
        global = true,
        env = "MCPWATCH_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// Print the API's JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

/// Why a request did not give an answer to show.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No key was given and no local token file was found.
    #[error(
        "no API key: pass --token, set MCPWATCH_TOKEN, or run next to a local daemon's data/admin-token"
    )]
    NoToken,
    /// The daemon could not be reached.
    #[error(
        "cannot reach the daemon at {url}: {reason} (is `mcpwatch serve` running? --url or MCPWATCH_URL)"
    )]
    Unreachable { url: String, reason: String },
    /// The daemon answered with an error (`status`, and the problem's words).
    #[error("{status}: {detail}")]
    Refused { status: u16, detail: String },
}

impl ClientError {
    /// The documented exit code: 2 usage, 3 unreachable, 1 refused.
    pub fn exit_code(&self) -> u8 {
        match self {
            ClientError::NoToken => 2,
            ClientError::Unreachable { .. } => 3,
            ClientError::Refused { .. } => 1,
        }
    }
}

/// A connection to one daemon with one key.
pub struct Client {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Client {
    pub fn new(args: &ClientArgs) -> Result<Self, ClientError> {
        let base = args
            .url
            .clone()
            .unwrap_or_else(|| "http://127.0.0.1:8080".into())
            .trim_end_matches('/')
            .to_string();
        let token = match &args.token {
            Some(t) => t.clone(),
            None => local_token().ok_or(ClientError::NoToken)?,
        };
        let http = reqwest::Client::builder()
            .user_agent(concat!("mcpwatch-cli/", env!("CARGO_PKG_VERSION")))
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| ClientError::Unreachable {
                url: base.clone(),
                reason: e.to_string(),
            })?;
        Ok(Client { base, token, http })
    }

    /// `method path` with an optional JSON body; the answer's JSON (`null` for 204).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        let (status, json, text) = self.send(method, path, body).await?;
        if (200..300).contains(&status) {
            return Ok(json);
        }
        Err(ClientError::Refused {
            status,
            detail: problem_words(&json).unwrap_or(text),
        })
    }

    /// `method path`: the status, the answer's JSON (`null` when it is not JSON) and text.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value, String), ClientError> {
        let url = format!("{}/api/v1{path}", self.base);
        let mut req = self.http.request(method, &url).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(b.to_string());
        }
        let resp = req.send().await.map_err(|e| ClientError::Unreachable {
            url: self.base.clone(),
            reason: crate::probe::redact_error(&e),
        })?;
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok((status, json, text))
    }

    /// The error for an answer `call` would refuse.
    pub fn refused(status: u16, json: &Value, text: String) -> ClientError {
        ClientError::Refused {
            status,
            detail: problem_words(json).unwrap_or(text),
        }
    }
}

/// A problem+json answer in one line: its detail (or title) and each field error.
fn problem_words(problem: &Value) -> Option<String> {
    let head = problem
        .get("detail")
        .or_else(|| problem.get("title"))?
        .as_str()?
        .to_string();
    let fields: Vec<String> = problem
        .get("errors")
        .and_then(Value::as_array)
        .map(|errors| {
            errors
                .iter()
                .filter_map(|e| {
                    Some(format!(
                        "{}: {}",
                        e["field"].as_str()?,
                        e["message"].as_str()?
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    Some(if fields.is_empty() {
        head
    } else {
        format!("{head} ({})", fields.join("; "))
    })
}

/// The admin token a local daemon wrote on its first start.
fn local_token() -> Option<String> {
    let dir = std::env::var("MCPWATCH_DATA_DIR").unwrap_or_else(|_| "./data".into());
    let path = PathBuf::from(dir).join("admin-token");
    let token = std::fs::read_to_string(path).ok()?;
    Some(token.trim().to_string()).filter(|t| !t.is_empty())
}
