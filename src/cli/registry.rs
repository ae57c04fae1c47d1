//! `mcpwatch registry import`: a running daemon imports an MCP registry's remote servers as
//! monitors (or, with `--dry-run`, says what it would do).
//!
//! Exit codes: 0 done, 1 the daemon refused (or could not read the registry), 2 usage (no
//! key), 3 the daemon cannot be reached.

use std::io::Write;

use reqwest::Method;
use serde_json::{Value, json};

use super::client::{Client, ClientArgs};
use super::servers::{finish, print_json};

/// `mcpwatch registry …`.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum RegistryCommand {
    /// Create or update a monitor for every remote the registry lists.
    Import {
        #[command(flatten)]
        client: ClientArgs,
        /// The registry's base URL (default: the daemon's MCPWATCH_REGISTRY_URL, or the
        /// official registry).
        #[arg(long, value_name = "URL")]
        registry: Option<String>,
        /// Only servers whose name contains this.
        #[arg(long, value_name = "S")]
        search: Option<String>,
        /// Say what would change; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Show the monitors it creates on the public status page.
        #[arg(long)]
        public: bool,
    },
}

/// Run `registry …`; returns the exit code.
pub async fn run_registry(cmd: &RegistryCommand, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let RegistryCommand::Import {
        client,
        registry,
        search,
        dry_run,
        public,
    } = cmd;
    let done = async {
        let c = Client::new(client)?;
        let body = json!({
            "registry": registry,
            "search": search,
            "dry_run": dry_run,
            "public": public,
        });
        let report = c
            .call(Method::POST, "/registry/import", Some(&body))
            .await?;
        if client.json {
            print_json(out, &report);
        } else {
            render(out, &report);
        }
        Ok(0)
    };
    finish(done.await, err)
}

/// Each monitor that changes or is skipped, then the counts.
fn render(out: &mut dyn Write, r: &Value) {
    for a in r["actions"].as_array().map_or(&[][..], Vec::as_slice) {
        let _ = write!(
            out,
            "{:<14} {:<40} {}",
            a["action"].as_str().unwrap_or(""),
            a["slug"].as_str().unwrap_or(""),
            a["registry_name"].as_str().unwrap_or("")
        );
        let _ = match a["reason"].as_str() {
            Some(reason) => writeln!(out, "  ({reason})"),
            None => writeln!(out),
        };
    }
    let s = &r["summary"];
    let n = |k: &str| s[k].as_u64().unwrap_or(0);
    let lead = if r["dry_run"] == true {
        "Dry run, nothing changed"
    } else {
        "Imported"
    };
    let _ = writeln!(
        out,
        "{lead}: {} servers listed on {} pages of {}: {} created, {} created paused, {} updated, \
         {} paused, {} resumed, {} unchanged, {} skipped.",
        r["listed"].as_u64().unwrap_or(0),
        r["pages"].as_u64().unwrap_or(0),
        r["registry"].as_str().unwrap_or(""),
        n("created"),
        n("created_paused"),
        n("updated"),
        n("paused"),
        n("resumed"),
        n("unchanged"),
        n("skipped")
    );
}
