//! `mcpwatch plan -f FILE`, `mcpwatch apply -f FILE` and `mcpwatch export`: a monitors file
//! against a running daemon. The file is read here, its `${VAR}` references expanded from this
//! shell's environment; the daemon checks every entry and answers the plan; problems come back
//! with the file's line.
//!
//! Exit codes: 0 done (a plan with or without changes), 1 the file has problems or the daemon
//! refused, 2 usage (unreadable file, no key), 3 the daemon cannot be reached.

use std::io::Write;
use std::path::PathBuf;

use reqwest::Method;
use serde_json::Value;

use super::client::{Client, ClientArgs, ClientError};
use super::servers::{finish, print_json};
use crate::api::monitors::MonitorsDocument;
use crate::monitors::MonitorsFile;

/// `plan` and `apply`.
#[derive(clap::Args, Debug, Clone)]
pub struct MonitorsArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// The monitors file (TOML).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: PathBuf,
    /// Also delete servers, channels and windows made through the API that the file does not
    /// name (never those of another monitors file).
    #[arg(long)]
    pub prune: bool,
}

/// `export`.
#[derive(clap::Args, Debug, Clone)]
pub struct ExportArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Write here instead of standard output.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// Run `plan` (`write` false) or `apply`; returns the exit code.
pub async fn run_plan(
    args: &MonitorsArgs,
    write: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    let env = |name: &str| std::env::var(name).ok();
    let file = match MonitorsFile::read::<MonitorsDocument>(&args.file, &env) {
        Ok(f) => f,
        Err(e) => {
            let _ = writeln!(err, "{e}");
            let unreadable = e.problems.iter().all(|p| p.line.is_none());
            return if unreadable { 2 } else { 1 };
        }
    };
    let done = async {
        let client = Client::new(&args.client)?;
        let mut doc = file.document.clone();
        if args.prune {
            doc["prune"] = Value::Bool(true);
        }
        let path = if write {
            "/monitors/apply"
        } else {
            "/monitors/plan"
        };
        let (status, json, text) = client.send(Method::POST, path, Some(&doc)).await?;
        if status == 422 {
            let placed = file.errors(field_errors(&json));
            if !placed.problems.is_empty() {
                let _ = writeln!(err, "{placed}");
                let _ = writeln!(err, "mcpwatch: nothing was applied");
                return Ok(1);
            }
        }
        if !(200..300).contains(&status) {
            return Err(Client::refused(status, &json, text));
        }
        if args.client.json {
            print_json(out, &json);
        } else {
            render(out, &file.name, &json);
        }
        Ok(0)
    };
    finish(done.await, err)
}

/// `(field, message)` of a problem+json answer.
fn field_errors(problem: &Value) -> Vec<(String, String)> {
    problem["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .filter_map(|e| {
                    Some((
                        e["field"].as_str()?.to_string(),
                        e["message"].as_str()?.to_string(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A plan as `terraform plan` shows one: each object with its sign, then its fields.
fn render(out: &mut dyn Write, file: &str, view: &Value) {
    let applied = view["applied"].as_bool().unwrap_or(false);
    let changes = view["changes"].as_array().map_or(&[][..], Vec::as_slice);
    let n = |k: &str| view["summary"][k].as_u64().unwrap_or(0);
    if changes.is_empty() {
        let _ = writeln!(
            out,
            "No changes: the daemon matches {file} ({} unchanged).",
            n("unchanged")
        );
        return;
    }
    for c in changes {
        let (sign, note) = match c["action"].as_str().unwrap_or("") {
            "create" => ("+", ""),
            "delete" => ("-", ""),
            "adopt" => ("~", " (made through the API; now managed by the file)"),
            _ => ("~", ""),
        };
        let kind = c["kind"].as_str().unwrap_or("");
        let name = c["name"].as_str().unwrap_or("");
        let _ = writeln!(out, "  {sign} {kind} {name}{note}");
        if sign == "-" {
            continue;
        }
        for f in c["fields"].as_array().map_or(&[][..], Vec::as_slice) {
            let field = f["field"].as_str().unwrap_or("");
            let _ = match (f["from"].as_str(), f["to"].as_str()) {
                (None, Some(to)) => writeln!(out, "      {field}: {to}"),
                (Some(from), Some(to)) => writeln!(out, "      {field}: {from} → {to}"),
                (Some(from), None) => writeln!(out, "      {field}: {from} → (unset)"),
                (None, None) => Ok(()),
            };
        }
    }
    let (create, update, delete, unchanged) =
        (n("create"), n("update"), n("delete"), n("unchanged"));
    let _ = if applied {
        writeln!(
            out,
            "Applied: {create} created, {update} changed, {delete} deleted ({unchanged} unchanged)."
        )
    } else {
        writeln!(
            out,
            "Plan: {create} to create, {update} to change, {delete} to delete ({unchanged} unchanged)."
        )
    };
    for g in view["generated_secrets"]
        .as_array()
        .map_or(&[][..], Vec::as_slice)
    {
        let _ = writeln!(
            out,
            "channel {}: signing secret {} (shown only now; store it with the receiver)",
            g["channel"].as_str().unwrap_or(""),
            g["secret"].as_str().unwrap_or("")
        );
    }
}

/// Run `export`; returns the exit code.
pub async fn run_export(args: &ExportArgs, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let done = async {
        let client = Client::new(&args.client)?;
        let exported = client.call(Method::GET, "/monitors/export", None).await?;
        if args.client.json {
            print_json(out, &exported);
            return Ok(0);
        }
        let text = as_toml(&exported).map_err(|e| ClientError::Refused {
            status: 200,
            detail: format!("the daemon's export does not convert to TOML: {e}"),
        })?;
        match &args.output {
            None => {
                let _ = out.write_all(text.as_bytes());
            }
            Some(path) => std::fs::write(path, text).map_err(|e| ClientError::Refused {
                status: 200,
                detail: format!("cannot write {}: {e}", path.display()),
            })?,
        }
        Ok(0)
    };
    finish(done.await, err)
}

/// The exported document as a monitors file, with the variables it needs named on top.
fn as_toml(exported: &Value) -> Result<String, toml::ser::Error> {
    let mut text = String::from(
        "# mcpwatch monitors file, written by `mcpwatch export`.\n\
         # Apply it with `mcpwatch apply -f FILE` or `mcpwatch serve --monitors FILE`.\n",
    );
    let vars: Vec<&str> = exported["variables"]
        .as_array()
        .map(|v| v.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if !vars.is_empty() {
        text.push_str("# Secrets are references: set these variables where it is applied:\n");
        for v in vars {
            text.push_str(&format!("#   {v}\n"));
        }
    }
    text.push('\n');
    text.push_str(&toml::to_string(&exported["document"])?);
    Ok(text)
}
