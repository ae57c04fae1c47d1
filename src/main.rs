//! The `mcpwatch` binary: parse arguments, call the library, exit with its code.

use clap::{Parser, Subcommand};
use mcpwatch::cli::{self, CheckArgs, SnapshotArgs};

#[derive(Parser)]
#[command(
    name = "mcpwatch",
    version,
    about = "Protocol-aware uptime monitor for MCP servers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Probe an MCP endpoint once and report; exit 0 healthy, 1 unhealthy, 2 usage, 3 drift.
    Check(CheckArgs),
    /// Write the canonical tool list and its hash, or --check it against a committed file.
    Snapshot(SnapshotArgs),
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Cli::parse();
    mcpwatch::telemetry::init("warn");
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    let code = match &args.command {
        Command::Check(a) => cli::run_check(a, &mut out, &mut err).await,
        Command::Snapshot(a) => cli::run_snapshot(a, &mut out, &mut err).await,
    };
    code.into()
}
