//! `mcpwatch snapshot`: write the canonical tool list and its hash (a baseline to commit), with
//! the server's resources, resource templates and prompts when it advertises them, or
//! `--check` a committed one and exit 3 with the structural diff when the live schema differs.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;

use super::render::render_report;
use super::{CliError, ExitCode, ProbeArgs};
use crate::probe::now_rfc3339;
use crate::schema::{FailOn, ListSnapshot, Snapshot, contract_drift, diff};

#[derive(Debug, Clone, Args)]
pub struct SnapshotArgs {
    #[command(flatten)]
    pub probe: ProbeArgs,

    /// Write the snapshot to FILE (default: print it).
    #[arg(long, value_name = "FILE", conflicts_with = "check")]
    pub out: Option<PathBuf>,

    /// Compare the live schema with snapshot FILE; exit 3 and print the diff when it differs.
    #[arg(long, value_name = "FILE")]
    pub check: Option<PathBuf>,

    /// With --check: which drift fails (exit 3): any, breaking, security, or a
    /// comma-separated list; other drift is printed and passes.
    #[arg(long, value_name = "KINDS", default_value = "any", value_parser = super::options::parse_fail_on, requires = "check")]
    pub fail_on: std::vec::Vec<crate::schema::FailOn>,

    /// Leave out resources, resource templates and prompts (kept, and compared by --check,
    /// by default when the server advertises them).
    #[arg(long)]
    pub no_contract: bool,
}

/// The lists' drift, printed; whether any of it fails.
fn compare_lists(out: &mut dyn Write, base: &Snapshot, live: &Snapshot, on: &[FailOn]) -> bool {
    let mut fails = false;
    for (kind, d) in contract_drift(base, live) {
        let failing = d.fails(on);
        fails |= failing;
        let _ = writeln!(
            out,
            "{}{}",
            d.summary(&kind),
            if failing {
                ""
            } else {
                " (not failing: --fail-on)"
            }
        );
    }
    fails
}

pub async fn run_snapshot(
    args: &SnapshotArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> ExitCode {
    match snapshot(args, out, err).await {
        Ok(code) => code,
        Err(e) => {
            let _ = writeln!(err, "mcpwatch: error: {e}");
            ExitCode::Usage
        }
    }
}

/// `--check`: the live tool list against the stored one; the exit code says whether it fails.
fn compare(
    out: &mut dyn Write,
    base: &Snapshot,
    live: &Snapshot,
    path: &Path,
    args: &SnapshotArgs,
) -> ExitCode {
    let lists_fail = compare_lists(out, base, live, &args.fail_on);
    if base.schema_hash == live.schema_hash {
        let _ = writeln!(
            out,
            "schema matches {}: {} ({} tools)",
            path.display(),
            live.schema_hash,
            live.tools.len()
        );
        return if lists_fail {
            ExitCode::Drift
        } else {
            ExitCode::Healthy
        };
    }
    let d = diff(&base.tools, &live.tools);
    let _ = writeln!(
        out,
        "schema drift against {}: {} -> {}",
        path.display(),
        base.schema_hash,
        live.schema_hash
    );
    let interface = if base.interface_hash == live.interface_hash {
        "interface unchanged (names and input schemas are the same)"
    } else {
        "interface changed (names or input schemas differ)"
    };
    let _ = writeln!(out, "{interface}");
    let _ = write!(out, "{}", d.render());
    if !d.fails(&args.fail_on) && !lists_fail {
        let _ = writeln!(
            out,
            "not failing: --fail-on does not include this kind of change"
        );
        return ExitCode::Healthy;
    }
    ExitCode::Drift
}

async fn snapshot(
    args: &SnapshotArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<ExitCode, CliError> {
    let (prober, mut target) = args.probe.build()?;
    target.list_contract = !args.no_contract;
    let baseline = match &args.check {
        Some(path) => Some(Snapshot::read(path).map_err(|e| CliError::File(e.to_string()))?),
        None => None,
    };
    let report = prober.probe(&target).await;
    if report.schema_hash.is_none() {
        let _ = write!(err, "{}", render_report(&report));
        let _ = writeln!(
            err,
            "mcpwatch: no tool list to snapshot ({})",
            report.verdict
        );
        return Ok(ExitCode::Unhealthy);
    }
    let mut live = Snapshot::from_tools(
        &report.tools,
        &report.url,
        &now_rfc3339(),
        report.protocol_version.clone(),
        report.server_info.as_ref().map(|s| s.version.clone()),
    )
    .map_err(|e| CliError::Usage(e.to_string()))?;
    for listed in &report.contract {
        let list = ListSnapshot {
            hash: listed.hash.clone(),
            items: listed.items.clone(),
        };
        live.contract.insert(listed.kind.clone(), list);
    }

    if let (Some(base), Some(path)) = (baseline, &args.check) {
        return Ok(compare(out, &base, &live, path, args));
    }
    match &args.out {
        Some(path) => {
            live.write(path)
                .map_err(|e| CliError::File(e.to_string()))?;
            let _ = writeln!(
                out,
                "wrote {}: {} ({} tools)",
                path.display(),
                live.schema_hash,
                live.tools.len()
            );
        }
        None => {
            let _ = write!(out, "{}", live.to_pretty_json());
        }
    }
    Ok(ExitCode::Healthy)
}
