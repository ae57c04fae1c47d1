//! The `mcpwatch` binary: parse arguments, call the library, exit with its code.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mcpwatch::app::App;
use mcpwatch::cli::{self, CheckArgs, SnapshotArgs};
use mcpwatch::config::{LogFormat, Overrides, Settings};

/// See Cargo.toml: glibc's malloc cost a third of the daemon's CPU at scale.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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

#[derive(clap::Args, Debug, Clone)]
struct DaemonArgs {
    /// TOML settings file (also MCPWATCH_CONFIG); environment variables override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address of the HTTP server (MCPWATCH_LISTEN, default 127.0.0.1:8080).
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// postgres://… or sqlite:… (DATABASE_URL; unset: SQLite in the data dir).
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
    /// Folder for the SQLite database, the secret key and the admin token (MCPWATCH_DATA_DIR).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<String>,
    /// Local mode, to try mcpwatch on one machine: targets on loopback (127.0.0.0/8, ::1)
    /// are allowed, besides MCPWATCH_ALLOW_PRIVATE_CIDRS.
    #[arg(long)]
    local: bool,
    /// A monitors file (servers, channels, maintenance windows) applied at start, on SIGHUP
    /// and when it changes (MCPWATCH_MONITORS_FILE).
    #[arg(long, value_name = "FILE")]
    monitors: Option<PathBuf>,
}

impl DaemonArgs {
    fn settings(&self) -> Result<Settings, ExitCode> {
        let overrides = Overrides {
            config_file: self.config.clone(),
            listen: self.listen.clone(),
            database_url: self.database_url.clone(),
            data_dir: self.data_dir.clone(),
            local: self.local,
            monitors_file: self.monitors.clone(),
        };
        Settings::load(&overrides).map_err(|e| {
            eprintln!("mcpwatch: configuration error: {e}");
            ExitCode::from(2)
        })
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the monitoring daemon: API, scheduler, state, history.
    Serve(DaemonArgs),
    /// Apply database migrations and exit.
    Migrate(DaemonArgs),
    /// Probe an MCP endpoint once and report; exit 0 healthy, 1 unhealthy, 2 usage, 3 drift.
    Check(Box<CheckArgs>),
    /// Write the canonical tool list and its hash, or --check it against a committed file.
    Snapshot(Box<SnapshotArgs>),
    /// Probe from another region for a central `serve`, with an agent key; no database.
    Agent(mcpwatch::agent::AgentArgs),
    /// Servers on a running daemon: ls, add, show, rm, pause, resume, check
    /// (MCPWATCH_URL, MCPWATCH_TOKEN). Exit 0 done, 1 refused or unhealthy, 2 usage, 3 no daemon.
    Servers(cli::ServersArgs),
    /// The fleet's state on a running daemon: counts by state and every server.
    Status(cli::ClientArgs),
    /// Alert channels on a running daemon: ls, add, test.
    Channels(cli::ChannelsArgs),
    /// Incidents on a running daemon.
    Incidents {
        #[command(subcommand)]
        command: IncidentsCommand,
    },
    /// Events on a running daemon.
    Events {
        #[command(subcommand)]
        command: EventsCommand,
    },
    /// What a monitors file would change on a running daemon, field by field.
    /// Exit 0 done, 1 the file has problems, 2 usage, 3 no daemon.
    Plan(cli::MonitorsArgs),
    /// Make a running daemon match a monitors file, all or nothing.
    Apply(cli::MonitorsArgs),
    /// Write a running daemon's servers, channels and windows as a monitors file.
    Export(cli::ExportArgs),
    /// An MCP registry's remote servers as monitors on a running daemon.
    Registry {
        #[command(subcommand)]
        command: cli::RegistryCommand,
    },
    /// Run a small MCP server (three tools) to try mcpwatch on, until a signal.
    DemoServer {
        /// Where it listens; its endpoint is /mcp there.
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:39141")]
        listen: std::net::SocketAddr,
    },
    /// Exit 0 if the local daemon answers /healthz (for container health checks).
    Healthcheck {
        /// The URL to check; default: /healthz on MCPWATCH_LISTEN's port on 127.0.0.1.
        #[arg(long, value_name = "URL")]
        url: Option<String>,
    },
}

#[derive(Subcommand)]
enum IncidentsCommand {
    /// Incidents, newest first.
    Ls(cli::IncidentsArgs),
}

#[derive(Subcommand)]
enum EventsCommand {
    /// The last events, then each new one as it happens, until interrupted.
    Tail(cli::EventsArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Cli::parse();
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    match &args.command {
        Command::Check(a) => {
            mcpwatch::telemetry::init("warn", LogFormat::Auto);
            cli::run_check(a, &mut out, &mut err).await.into()
        }
        Command::Snapshot(a) => {
            mcpwatch::telemetry::init("warn", LogFormat::Auto);
            cli::run_snapshot(a, &mut out, &mut err).await.into()
        }
        Command::Migrate(a) => migrate(a).await,
        Command::Healthcheck { url } => healthcheck(url.clone()).await,
        Command::Agent(a) => agent(a).await,
        Command::Serve(a) => serve(a).await,
        Command::DemoServer { listen } => demo_server(*listen).await,
        Command::Servers(a) => {
            mcpwatch::telemetry::init("warn", LogFormat::Auto);
            ExitCode::from(cli::run_servers(a, &mut out, &mut err).await)
        }
        Command::Plan(a) => ExitCode::from(cli::run_plan(a, false, &mut out, &mut err).await),
        Command::Apply(a) => ExitCode::from(cli::run_plan(a, true, &mut out, &mut err).await),
        Command::Export(a) => ExitCode::from(cli::run_export(a, &mut out, &mut err).await),
        Command::Registry { command } => {
            ExitCode::from(cli::run_registry(command, &mut out, &mut err).await)
        }
        Command::Status(a) => ExitCode::from(cli::run_status(a, &mut out, &mut err).await),
        Command::Channels(a) => ExitCode::from(cli::run_channels(a, &mut out, &mut err).await),
        Command::Incidents {
            command: IncidentsCommand::Ls(a),
        } => ExitCode::from(cli::run_incidents(a, &mut out, &mut err).await),
        Command::Events {
            command: EventsCommand::Tail(a),
        } => ExitCode::from(cli::run_events_tail(a, &mut out, &mut err).await),
    }
}

/// `mcpwatch demo-server`: the demo MCP server, until a signal.
async fn demo_server(listen: std::net::SocketAddr) -> ExitCode {
    let ready = |at| eprintln!("mcpwatch: demo MCP server on http://{at}/mcp");
    match mcpwatch::demo::run(listen, ready, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&format!("cannot listen on {listen}: {e}")),
    }
}

/// `mcpwatch migrate`: apply the migrations and exit.
async fn migrate(a: &DaemonArgs) -> ExitCode {
    let settings = match a.settings() {
        Ok(s) => s,
        Err(code) => return code,
    };
    mcpwatch::telemetry::init("info", settings.log_format);
    match mcpwatch::store::open(&settings.database, 1).await {
        Ok(store) => match store.migrate().await {
            Ok(()) => {
                println!("migrations applied ({})", store.backend());
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e),
        },
        Err(e) => fail(&e),
    }
}

/// `mcpwatch healthcheck`: 0 when the daemon's `/healthz` answers 2xx (a container's
/// HEALTHCHECK, which has no curl).
async fn healthcheck(url: Option<String>) -> ExitCode {
    let url = url.unwrap_or_else(|| {
        let listen = std::env::var("MCPWATCH_LISTEN").unwrap_or_else(|_| "127.0.0.1:8080".into());
        let port = listen.rsplit(':').next().unwrap_or("8080").to_string();
        format!("http://127.0.0.1:{port}/healthz")
    });
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(std::time::Duration::from_secs(3))
        .build();
    let ok = match client {
        Ok(c) => c
            .get(&url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success()),
        Err(_) => false,
    };
    if ok {
        ExitCode::SUCCESS
    } else {
        eprintln!("mcpwatch: {url} did not answer 2xx");
        ExitCode::from(1)
    }
}

/// `mcpwatch agent`: probe for one region and push to the central until a signal.
async fn agent(a: &mcpwatch::agent::AgentArgs) -> ExitCode {
    let settings = match a.validate() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("mcpwatch: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    mcpwatch::telemetry::init("info", LogFormat::Auto);
    match mcpwatch::agent::run(settings, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

/// `mcpwatch serve`: the daemon, until a signal.
async fn serve(a: &DaemonArgs) -> ExitCode {
    let settings = match a.settings() {
        Ok(s) => s,
        Err(code) => return code,
    };
    mcpwatch::telemetry::init("info", settings.log_format);
    let token_file = settings
        .admin_token
        .is_none()
        .then(|| settings.data_dir.join("admin-token"));
    let app = match App::build(settings).await {
        Ok(app) => app,
        Err(e) => return fail(&e),
    };
    eprintln!("mcpwatch: serving on http://{}", app.local_addr());
    banner(app.local_addr(), token_file.as_deref(), a.local);
    match app.run(shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

/// What to do next, after the line that says where it serves.
fn banner(at: std::net::SocketAddr, token_file: Option<&std::path::Path>, local: bool) {
    eprintln!("mcpwatch: status page http://{at}/, API http://{at}/api/v1 (/openapi.json)");
    if local {
        eprintln!(
            "mcpwatch: local mode: targets on loopback ({}) are allowed",
            mcpwatch::config::LOOPBACK_CIDRS
        );
    }
    let token = match token_file {
        Some(path) => format!("$(cat {})", path.display()),
        None => "$MCPWATCH_ADMIN_TOKEN".into(),
    };
    eprintln!(
        "mcpwatch: register a server: curl -X POST http://{at}/api/v1/servers \
         -H \"Authorization: Bearer {token}\" -H 'Content-Type: application/json' \
         -d '{{\"name\": \"Demo\", \"url\": \"http://127.0.0.1:39141/mcp\", \"public\": true}}'"
    );
}

fn fail(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("mcpwatch: error: {e}");
    ExitCode::from(1)
}

/// SIGTERM or SIGINT.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
