//! The real `mcpwatch` binary as a child process: killed (SIGKILL) when dropped, its stderr
//! kept in a log file, and the address `serve` prints once it listens.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    /// SIGTERM, then wait for the exit (a graceful drain).
    pub fn sigterm(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.0.id().to_string())
            .status();
        let _ = self.0.wait();
    }
}

/// `mcpwatch <args>` with `envs`, stderr piped.
pub fn command(args: &[&str], envs: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mcpwatch"));
    cmd.args(args).stderr(Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd
}

/// `mcpwatch <args>` as a client in `dir`, with no daemon address or key but those in `envs`;
/// (exit code, stdout, stderr).
pub fn run_client(dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = command(args, &[]);
    cmd.current_dir(dir)
        .env_remove("MCPWATCH_URL")
        .env_remove("MCPWATCH_TOKEN")
        .env_remove("MCPWATCH_DATA_DIR");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.stdout(Stdio::piped()).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Start a command; when `until` is given, wait for the stderr line starting with it and
/// return the rest of that line. Everything else the process writes goes to `log`.
pub fn start(mut cmd: Command, until: Option<&str>, log: PathBuf) -> (Proc, String) {
    let mut child = cmd.spawn().expect("start mcpwatch");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut found = String::new();
    if let Some(prefix) = until {
        found = loop {
            let line = lines.next().expect("process output").unwrap();
            if let Some(rest) = line.strip_prefix(prefix) {
                break rest.to_string();
            }
        };
    }
    std::thread::spawn(move || {
        use std::io::Write;
        let mut f = std::fs::File::create(log).unwrap();
        for line in lines.map_while(Result::ok) {
            let _ = writeln!(f, "{line}");
        }
    });
    (Proc(child), found)
}

/// `mcpwatch serve` with `envs`; returns it and its base URL.
pub fn serve(envs: &[(&str, &str)], log_dir: &Path, name: &str) -> (Proc, String) {
    start(
        command(&["serve"], envs),
        Some("mcpwatch: serving on "),
        log_dir.join(format!("{name}.log")),
    )
}

/// `mcpwatch serve` as most daemon tests run it: on `database_url`, data under `data_dir`,
/// the admin token `admin`, loopback targets allowed; `extra` adds settings. Logs go to
/// `log_dir/{name}.log`.
pub fn serve_on(
    database_url: &str,
    admin: &str,
    data_dir: &Path,
    log_dir: &Path,
    name: &str,
    extra: &[(&str, &str)],
) -> (Proc, String) {
    let data = data_dir.display().to_string();
    let mut envs = vec![
        ("MCPWATCH_LISTEN", "127.0.0.1:0"),
        ("DATABASE_URL", database_url),
        ("MCPWATCH_DATA_DIR", &data),
        ("MCPWATCH_ADMIN_TOKEN", admin),
        ("MCPWATCH_ALLOW_PRIVATE_CIDRS", "127.0.0.0/8"),
    ];
    envs.extend_from_slice(extra);
    serve(&envs, log_dir, name)
}
