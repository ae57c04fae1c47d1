//! `mcpwatch check`: probe once (or until healthy with `--wait`), print the report, and
//! optionally compare the schema with a committed baseline.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use serde_json::json;

use super::options::{ProbeArgs, parse_duration, parse_fail_on};
use super::render::render_report;
use super::{CliError, ExitCode};

use crate::probe::{CallPlan, ProbeReport, ProbeTarget, Prober, ToolCall};
use crate::schema::{SchemaDiff, Snapshot, diff};

#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub probe: ProbeArgs,

    /// Print one JSON object instead of the readable report.
    #[arg(long)]
    pub json: bool,

    /// Retry until healthy or until this much time has passed (the post-deploy gate), e.g. 2m.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub wait: Option<Duration>,

    /// Compare the live schema with a snapshot file; exit 3 on drift.
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,

    /// Which drift from the baseline fails (exit 3): any, breaking, security, or a
    /// comma-separated list; other drift is printed and passes.
    #[arg(long, value_name = "KINDS", default_value = "any", value_parser = parse_fail_on)]
    pub fail_on: std::vec::Vec<crate::schema::FailOn>,

    /// Count auth_required (401/403 with a challenge) as healthy.
    #[arg(long)]
    pub allow_auth_required: bool,

    /// After tools/list, call this tool and check the answer (repeatable): 'NAME' or
    /// 'NAME {"json":"arguments"}'. No JSON-RPC error, isError false, structuredContent valid
    /// against the tool's outputSchema; a failed call exits 1. Only tools marked
    /// readOnlyHint: true are called unless --allow-write.
    #[arg(long = "call", value_name = "'NAME {ARGS}'", value_parser = parse_call)]
    pub calls: Vec<ToolCall>,

    /// The streaming check: call this tool (one that reports progress as it runs, e.g.
    /// 'trigger-long-running-operation {"duration":2,"steps":4}') asking for progress, and
    /// fail (exit 1, degraded) when its progress notifications do not stream: all arriving
    /// together at the end means a proxy buffers the stream.
    #[arg(long, value_name = "'NAME {ARGS}'", value_parser = parse_call)]
    pub stream_call: Option<ToolCall>,

    /// Do not list resources, resource templates and prompts (listed and hashed by default
    /// when the server advertises them).
    #[arg(long)]
    pub no_contract: bool,

    /// Let every --call (and --stream-call) call its tool even when the server does not mark
    /// it read-only (a call may then change data on the server).
    #[arg(long)]
    pub allow_write: bool,
}

fn parse_call(spec: &str) -> Result<ToolCall, String> {
    ToolCall::parse(spec)
}

/// Longest pause between `--wait` attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Run `check`; returns the exit code. Output goes to `out`, progress and errors to `err`.
pub async fn run_check(args: &CheckArgs, out: &mut dyn Write, err: &mut dyn Write) -> ExitCode {
    match check(args, out, err).await {
        Ok(code) => code,
        Err(e) => {
            let _ = writeln!(err, "mcpwatch: error: {e}");
            ExitCode::Usage
        }
    }
}

/// The report as JSON, with how it compares to the baseline when one was given.
fn write_json(
    out: &mut dyn Write,
    report: &ProbeReport,
    baseline: Option<&Snapshot>,
    args: &CheckArgs,
    healthy: bool,
    drift: Option<&SchemaDiff>,
) {
    let mut value = serde_json::to_value(report).unwrap_or_default();
    if let (Some(snap), Some(obj)) = (baseline, value.as_object_mut()) {
        obj.insert(
            "baseline".into(),
            json!({
                "file": args.baseline.as_ref().map(|p| p.display().to_string()),
                "schema_hash": snap.schema_hash,
                "matches": healthy.then_some(drift.is_none()),
                "diff": drift,
            }),
        );
    }
    let _ = writeln!(
        out,
        "{}",
        serde_json::to_string_pretty(&value).unwrap_or_default()
    );
}

/// The baseline line under the text report: a match, or the drift and whether it fails.
fn write_baseline(
    out: &mut dyn Write,
    snap: &Snapshot,
    args: &CheckArgs,
    healthy: bool,
    drift: Option<&SchemaDiff>,
) {
    match drift {
        None if healthy => {
            let file = args.baseline.as_ref().map(|p| p.display().to_string());
            let _ = writeln!(out, "  baseline    matches {}", file.unwrap_or_default());
        }
        None => {}
        Some(d) => {
            let _ = writeln!(
                out,
                "  baseline    DRIFT from {} ({}{}){}",
                snap.schema_hash,
                d.class(),
                if d.security { ", security" } else { "" },
                if d.fails(&args.fail_on) {
                    ""
                } else {
                    "; not failing (--fail-on)"
                }
            );
            for line in d.render().lines() {
                let _ = writeln!(out, "    {line}");
            }
        }
    }
}

async fn check(
    args: &CheckArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<ExitCode, CliError> {
    let (prober, mut target) = args.probe.build()?;
    target.list_contract = !args.no_contract;
    if !args.calls.is_empty() || args.stream_call.is_some() {
        let allowed = |c: &ToolCall| ToolCall {
            allow_write: args.allow_write,
            ..c.clone()
        };
        target.calls = Some(Arc::new(CallPlan {
            calls: args.calls.iter().map(allowed).collect(),
            failure_is_down: false,
            stream: args.stream_call.as_ref().map(allowed),
        }));
    }
    let baseline = match &args.baseline {
        Some(path) => Some(Snapshot::read(path).map_err(|e| CliError::File(e.to_string()))?),
        None => None,
    };
    let report =
        probe_until_healthy(&prober, &target, args.wait, args.allow_auth_required, err).await;
    let healthy = report.is_healthy(args.allow_auth_required);

    let mut drift = None;
    if let Some(snap) = &baseline
        && healthy
        && report
            .schema_hash
            .as_deref()
            .is_some_and(|h| h != snap.schema_hash)
    {
        drift = Some(diff(&snap.tools, &report.tools));
    }

    if args.json {
        write_json(
            out,
            &report,
            baseline.as_ref(),
            args,
            healthy,
            drift.as_ref(),
        );
    } else {
        let _ = write!(out, "{}", render_report(&report));
        if let Some(snap) = &baseline {
            write_baseline(out, snap, args, healthy, drift.as_ref());
        }
    }
    Ok(match (healthy, drift) {
        (false, _) => ExitCode::Unhealthy,
        (true, Some(d)) if d.fails(&args.fail_on) => ExitCode::Drift,
        (true, _) => ExitCode::Healthy,
    })
}

/// Probe; with `wait`, retry with backoff (1 s, 2 s, 4 s, 5 s …) until healthy or out of time.
pub(crate) async fn probe_until_healthy(
    prober: &Prober,
    target: &ProbeTarget,
    wait: Option<Duration>,
    allow_auth_required: bool,
    err: &mut dyn Write,
) -> ProbeReport {
    // tokio's clock, so a test can pause it.
    let started = tokio::time::Instant::now();
    let mut backoff = Duration::from_secs(1);
    let mut attempt = 1;
    loop {
        let report = prober.probe(target).await;
        let Some(wait) = wait else { return report };
        if report.is_healthy(allow_auth_required) {
            return report;
        }
        let elapsed = started.elapsed();
        if elapsed >= wait {
            let _ = writeln!(
                err,
                "mcpwatch: still {} after {attempt} attempts in {:.0?}; giving up",
                report.verdict, elapsed
            );
            return report;
        }
        let reason = report
            .failure
            .as_ref()
            .map(|f| format!("{} in {}", f.kind, f.phase))
            .unwrap_or_else(|| report.verdict.to_string());
        // The last pause is cut short so the last attempt starts at the bound, not before it.
        let pause = backoff.min(wait - elapsed);
        let _ = writeln!(
            err,
            "mcpwatch: attempt {attempt}: {reason}; retrying in {pause:?}"
        );
        tokio::time::sleep(pause).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
        attempt += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::{AddressPolicy, ProberConfig};

    /// `--wait 5s` against a dead port: attempts at 0, 1, 3 and 5 s (the last one at the
    /// bound, not given up at 3 s because the next pause would have passed it).
    #[tokio::test(start_paused = true)]
    async fn wait_makes_its_last_attempt_at_the_bound() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let prober = Prober::new(ProberConfig {
            policy: AddressPolicy::parse_allow_list("127.0.0.0/8").unwrap(),
            ..ProberConfig::default()
        })
        .unwrap();
        let target = ProbeTarget::new(format!("http://127.0.0.1:{port}/mcp").parse().unwrap());
        let started = tokio::time::Instant::now();
        let mut err = Vec::new();
        let report = probe_until_healthy(
            &prober,
            &target,
            Some(Duration::from_secs(5)),
            false,
            &mut err,
        )
        .await;
        let log = String::from_utf8(err).unwrap();
        assert!(!report.is_healthy(false));
        assert!(log.contains("after 4 attempts"), "{log}");
        assert!(
            log.contains("retrying in 2s"),
            "the last pause is cut to the bound: {log}"
        );
        assert!(started.elapsed() >= Duration::from_secs(5), "{log}");
    }
}
