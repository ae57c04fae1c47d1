//! `mcpwatch servers ls|add|show|rm|pause|resume|check` and `mcpwatch status`: the API from a
//! terminal, as tables (or the API's JSON with `--json`).
//!
//! Exit codes: 0 done (for `servers check`: the server is healthy), 1 the daemon refused (or
//! `servers check` found it unhealthy), 2 usage (no key), 3 the daemon cannot be reached.

use std::io::Write;

use reqwest::Method;
use serde_json::{Value, json};

use super::client::{Client, ClientArgs, ClientError};

/// `mcpwatch servers …`.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum ServersCommand {
    /// List servers with their state.
    Ls {
        /// Only servers with this tag.
        #[arg(long)]
        tag: Option<String>,
        /// Only servers in this state (up, degraded, down, auth_failed, paused, unknown).
        #[arg(long)]
        state: Option<String>,
    },
    /// Register a server; without --name, it is named after the server's own serverInfo.
    Add {
        /// The MCP endpoint's URL.
        #[arg(value_name = "URL")]
        endpoint: String,
        #[arg(long)]
        name: Option<String>,
        /// A tag (repeat for several).
        #[arg(long = "tag")]
        tags: Vec<String>,
        /// Probe every this many seconds (default 60).
        #[arg(long)]
        interval: Option<u32>,
        /// Show it on the public status page.
        #[arg(long)]
        public: bool,
    },
    /// One server, with its regions and last result.
    Show { server: String },
    /// Delete a server and its history.
    Rm { server: String },
    /// Stop probing a server.
    Pause { server: String },
    /// Probe a paused server again.
    Resume { server: String },
    /// Probe now and record the result; exit 1 unless it is healthy.
    Check { server: String },
}

/// `mcpwatch servers` with where the daemon is.
#[derive(clap::Args, Debug, Clone)]
pub struct ServersArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(subcommand)]
    pub command: ServersCommand,
}

/// Run `servers …`; returns the exit code.
pub async fn run_servers(args: &ServersArgs, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let done = async {
        let client = Client::new(&args.client)?;
        servers(&client, &args.command, args.client.json, out).await
    };
    finish(done.await, err)
}

/// Run `status`; returns the exit code.
pub async fn run_status(args: &ClientArgs, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let done = async {
        let client = Client::new(args)?;
        let status = client.call(Method::GET, "/status?limit=500", None).await?;
        if args.json {
            print_json(out, &status);
        } else {
            let counts = &status["counts"];
            let line: Vec<String> = ["up", "degraded", "down", "auth_failed", "paused", "unknown"]
                .iter()
                .map(|s| format!("{s} {}", counts[*s].as_i64().unwrap_or(0)))
                .collect();
            let _ = writeln!(out, "{}", line.join(" · "));
            table(
                out,
                status["servers"].as_array().map_or(&[][..], Vec::as_slice),
            );
        }
        Ok(0)
    };
    finish(done.await, err)
}

pub(super) fn finish(done: Result<u8, ClientError>, err: &mut dyn Write) -> u8 {
    match done {
        Ok(code) => code,
        Err(e) => {
            let _ = writeln!(err, "mcpwatch: {e}");
            e.exit_code()
        }
    }
}

async fn servers(
    client: &Client,
    command: &ServersCommand,
    json: bool,
    out: &mut dyn Write,
) -> Result<u8, ClientError> {
    let path = |id: &str, tail: &str| format!("/servers/{}{tail}", urlencoding(id));
    let answer = match command {
        ServersCommand::Ls { tag, state } => {
            let mut query = vec!["limit=500".to_string()];
            query.extend(tag.as_ref().map(|t| format!("tag={}", urlencoding(t))));
            query.extend(state.as_ref().map(|s| format!("state={}", urlencoding(s))));
            // `/status` pages the same servers with each one's last result.
            let list = client
                .call(Method::GET, &format!("/status?{}", query.join("&")), None)
                .await?;
            if !json {
                table(
                    out,
                    list["servers"].as_array().map_or(&[][..], Vec::as_slice),
                );
                return Ok(0);
            }
            list["servers"].clone()
        }
        ServersCommand::Add { .. } => add(client, command).await?,
        ServersCommand::Show { server } => {
            client.call(Method::GET, &path(server, ""), None).await?
        }
        ServersCommand::Rm { server } => {
            client.call(Method::DELETE, &path(server, ""), None).await?;
            if !json {
                let _ = writeln!(out, "deleted {server}");
                return Ok(0);
            }
            json!({"deleted": server})
        }
        ServersCommand::Pause { server } => {
            client
                .call(Method::POST, &path(server, "/pause"), None)
                .await?
        }
        ServersCommand::Resume { server } => {
            client
                .call(Method::POST, &path(server, "/resume"), None)
                .await?
        }
        ServersCommand::Check { server } => {
            let result = client
                .call(Method::POST, &path(server, "/check"), None)
                .await?;
            let healthy = matches!(result["verdict"].as_str(), Some("up" | "degraded"));
            match serde_json::from_value::<crate::probe::ProbeReport>(result.clone()) {
                Ok(report) if !json => {
                    let _ = write!(out, "{}", super::render_report(&report));
                }
                _ => print_json(out, &result),
            }
            return Ok(if healthy { 0 } else { 1 });
        }
    };
    show(out, &answer, json);
    Ok(0)
}

/// `servers add`: named as given, or after the server's serverInfo (probed here first).
async fn add(client: &Client, command: &ServersCommand) -> Result<Value, ClientError> {
    let ServersCommand::Add {
        endpoint: url,
        name,
        tags,
        interval,
        public,
    } = command
    else {
        unreachable!("add is called for Add only");
    };
    let name = match name {
        Some(n) => n.clone(),
        None => name_from_server_info(url).await,
    };
    let mut body = json!({"name": name, "url": url, "tags": tags, "public": public});
    if let Some(i) = interval {
        body["interval_seconds"] = json!(i);
    }
    client.call(Method::POST, "/servers", Some(&body)).await
}

/// The server's own name (its serverInfo), or its host when it does not say.
async fn name_from_server_info(url: &str) -> String {
    let host = url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_else(|| url.to_string());
    let Ok(target) = url.parse().map(crate::probe::ProbeTarget::new) else {
        return host;
    };
    let config = crate::probe::ProberConfig {
        policy: crate::probe::AddressPolicy::allow_all(),
        ..Default::default()
    };
    let Ok(prober) = crate::probe::Prober::new(config) else {
        return host;
    };
    let report = prober.probe(&target).await;
    report
        .server_info
        .map(|i| i.name)
        .filter(|n| !n.trim().is_empty())
        .unwrap_or(host)
}

fn show(out: &mut dyn Write, v: &Value, json: bool) {
    if json {
        return print_json(out, v);
    }
    match v.get("slug") {
        Some(_) => table(out, std::slice::from_ref(v)),
        None => print_json(out, v),
    }
}

pub(super) fn print_json(out: &mut dyn Write, v: &Value) {
    let _ = writeln!(
        out,
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_default()
    );
}

/// Servers as an aligned table: slug, state, era, tools, last probe, URL.
fn table(out: &mut dyn Write, servers: &[Value]) {
    let rows: Vec<Vec<String>> = servers
        .iter()
        .map(|s| {
            let tools = s["last_result"]["tools_count"]
                .as_u64()
                .filter(|_| s["last_result"]["verdict"] != "down")
                .map_or("—".to_string(), |n| n.to_string());
            vec![
                cell(&s["slug"]),
                cell(&s["state"]),
                cell(&s["era"]),
                tools,
                cell(&s["last_result_at"]),
                cell(&s["url"]),
            ]
        })
        .collect();
    let head = ["SLUG", "STATE", "ERA", "TOOLS", "LAST PROBE", "URL"];
    print_table(out, &head, &rows);
}

/// A JSON value as a table cell: strings as they are, `null` as "—".
pub(super) fn cell(v: &Value) -> String {
    match v {
        Value::Null => "—".into(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(cell).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// Rows under a heading, each column as wide as its widest cell.
pub(super) fn print_table(out: &mut dyn Write, head: &[&str], rows: &[Vec<String>]) {
    let head: Vec<String> = head.iter().map(|h| h.to_string()).collect();
    let mut widths = vec![0usize; head.len()];
    for row in std::iter::once(&head).chain(rows) {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    for row in std::iter::once(&head).chain(rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", cells.join("  ").trim_end());
    }
}

/// A path segment or query value, percent-encoded.
pub(super) fn urlencoding(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
