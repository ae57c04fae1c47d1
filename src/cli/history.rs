//! `mcpwatch channels ls|add|test`, `mcpwatch incidents ls` and `mcpwatch events tail`: alert
//! channels and what happened, from a terminal (same client, exit codes and `--json` as
//! `servers`).

use std::io::Write;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use super::client::{Client, ClientArgs, ClientError};
use super::servers::{cell, finish, print_json, print_table, urlencoding};

/// `mcpwatch channels …`.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum ChannelsCommand {
    /// List alert channels.
    Ls,
    /// Add a channel: a webhook (--webhook URL) or email (--email ADDRESS, repeatable). A
    /// signed webhook's secret is printed once.
    Add {
        #[arg(long)]
        name: String,
        #[arg(long, value_name = "URL", conflicts_with = "email")]
        webhook: Option<String>,
        /// Webhook body: standard (signed), slack or discord.
        #[arg(long, requires = "webhook")]
        format: Option<String>,
        #[arg(long = "email", value_name = "ADDRESS")]
        email: Vec<String>,
        /// Only servers with this tag (repeatable; none: every server).
        #[arg(long = "tag")]
        tags: Vec<String>,
        /// Only these events (repeatable; none: down, up, auth_failed, schema.changed).
        #[arg(long = "event")]
        events: Vec<String>,
    },
    /// Send a test event now and show what the receiver answered.
    Test { channel: String },
}

#[derive(clap::Args, Debug, Clone)]
pub struct ChannelsArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(subcommand)]
    pub command: ChannelsCommand,
}

/// `mcpwatch incidents ls`.
#[derive(clap::Args, Debug, Clone)]
pub struct IncidentsArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Only this server's (slug or id).
    #[arg(long)]
    pub server: Option<String>,
    /// At most this many, newest first.
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
}

/// `mcpwatch events tail`.
#[derive(clap::Args, Debug, Clone)]
pub struct EventsArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Only this server's (id).
    #[arg(long)]
    pub server: Option<String>,
    /// Only this type (e.g. server.down).
    #[arg(long = "type")]
    pub kind: Option<String>,
    /// Show this many past events first.
    #[arg(long, default_value_t = 10)]
    pub last: u32,
}

pub async fn run_channels(args: &ChannelsArgs, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let done = async {
        let client = Client::new(&args.client)?;
        let json = args.client.json;
        match &args.command {
            ChannelsCommand::Ls => {
                let list = client.call(Method::GET, "/channels", None).await?;
                let items = list["items"].as_array().cloned().unwrap_or_default();
                if json {
                    print_json(out, &Value::Array(items));
                } else {
                    channel_table(out, &items);
                }
            }
            ChannelsCommand::Add { .. } => {
                let made = client
                    .call(
                        Method::POST,
                        "/channels",
                        Some(&channel_body(&args.command)),
                    )
                    .await?;
                print_json(out, &made);
            }
            ChannelsCommand::Test { channel } => {
                let path = format!("/channels/{}/test", urlencoding(channel));
                print_json(out, &client.call(Method::POST, &path, None).await?);
            }
        }
        Ok(0)
    };
    finish(done.await, err)
}

fn channel_body(add: &ChannelsCommand) -> Value {
    let ChannelsCommand::Add {
        name,
        webhook,
        format,
        email,
        tags,
        events,
    } = add
    else {
        return Value::Null;
    };
    let mut body = match webhook {
        Some(url) => json!({"name": name, "kind": "webhook", "url": url}),
        None => json!({"name": name, "kind": "email", "recipients": email}),
    };
    if let Some(f) = format {
        body["format"] = json!(f);
    }
    if !tags.is_empty() {
        body["tags"] = json!(tags);
    }
    if !events.is_empty() {
        body["events"] = json!(events);
    }
    body
}

fn channel_table(out: &mut dyn Write, items: &[Value]) {
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|c| {
            let to = match c["url"].as_str() {
                Some(url) => url.to_string(),
                None => cell(&c["recipients"]),
            };
            vec![
                cell(&c["id"]),
                cell(&c["name"]),
                cell(&c["kind"]),
                to,
                cell(&c["events"]),
                cell(&c["enabled"]),
            ]
        })
        .collect();
    print_table(
        out,
        &["ID", "NAME", "KIND", "TO", "EVENTS", "ENABLED"],
        &rows,
    );
}

pub async fn run_incidents(args: &IncidentsArgs, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let done = async {
        let client = Client::new(&args.client)?;
        let path = match &args.server {
            Some(s) => format!("/servers/{}/incidents?limit={}", urlencoding(s), args.limit),
            None => format!("/incidents?limit={}", args.limit),
        };
        let page = client.call(Method::GET, &path, None).await?;
        let items = page["items"].as_array().cloned().unwrap_or_default();
        if args.client.json {
            print_json(out, &Value::Array(items));
            return Ok(0);
        }
        let rows: Vec<Vec<String>> = items
            .iter()
            .map(|i| {
                let open = i["closed_at"].is_null();
                vec![
                    cell(&i["server_id"]),
                    cell(&i["kind"]),
                    cell(&i["opened_at"]),
                    if open {
                        "open".into()
                    } else {
                        cell(&i["closed_at"])
                    },
                    cell(&i["cause"]),
                ]
            })
            .collect();
        print_table(out, &["SERVER", "KIND", "OPENED", "CLOSED", "CAUSE"], &rows);
        Ok(0)
    };
    finish(done.await, err)
}

/// Print the last events, then every new one as it comes (polled every 2 s), until stopped.
pub async fn run_events_tail(args: &EventsArgs, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let done = async {
        let client = Client::new(&args.client)?;
        let mut seen = std::collections::HashSet::new();
        let mut limit = args.last.max(1);
        loop {
            let events = events_page(&client, args, limit).await?;
            // Newest first from the API: shown oldest first.
            for e in events.iter().rev() {
                let id = e["id"].as_str().unwrap_or_default().to_string();
                if seen.insert(id) {
                    event_line(out, e, args.client.json);
                }
            }
            let _ = out.flush();
            // Then each look asks for the newest 100 (more than 100 events in 2 s would show
            // only the newest 100).
            limit = 100;
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    };
    finish(done.await, err)
}

async fn events_page(
    client: &Client,
    args: &EventsArgs,
    limit: u32,
) -> Result<Vec<Value>, ClientError> {
    let mut path = format!("/events?limit={limit}");
    if let Some(s) = &args.server {
        path.push_str(&format!("&server={}", urlencoding(s)));
    }
    if let Some(t) = &args.kind {
        path.push_str(&format!("&type={}", urlencoding(t)));
    }
    let page = client.call(Method::GET, &path, None).await?;
    Ok(page["items"].as_array().cloned().unwrap_or_default())
}

fn event_line(out: &mut dyn Write, e: &Value, json: bool) {
    if json {
        let _ = writeln!(out, "{e}");
        return;
    }
    let server = e["data"]["server"]["slug"]
        .as_str()
        .or(e["server_id"].as_str())
        .unwrap_or("—");
    let why = e["data"]["failure"]["message"]
        .as_str()
        .or(e["data"]["summary"].as_str())
        .unwrap_or("");
    let _ = writeln!(
        out,
        "{}  {}  {server}  {why}",
        cell(&e["at"]),
        cell(&e["type"])
    );
}
