//! A private Postgres cluster for outage tests: `initdb` into a temporary directory, started
//! with `pg_ctl` on a free loopback port, stopped and started at will, and stopped by its
//! data directory when dropped. The shared cluster on 5432 is never touched.
//!
//! Runs the server as the `postgres` user when the tests run as root (Postgres refuses root).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct PrivatePostgres {
    pub port: u16,
    dir: tempfile::TempDir,
    bin: PathBuf,
}

/// Where Debian puts the server binaries (`/usr/lib/postgresql/<major>/bin`).
fn pg_bin() -> PathBuf {
    let found = std::fs::read_dir("/usr/lib/postgresql")
        .ok()
        .and_then(|dirs| {
            dirs.filter_map(Result::ok)
                .map(|d| d.path().join("bin"))
                .find(|p| p.join("initdb").exists())
        });
    found.unwrap_or_else(|| {
        panic!(
            "no initdb under /usr/lib/postgresql/*/bin: outage tests need the PostgreSQL server \
             binaries (apt-get install postgresql)"
        )
    })
}

fn as_postgres(bin: &Path, tool: &str, args: &[&str]) -> Command {
    let root = unsafe { libc_geteuid() } == 0;
    let mut cmd = if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin.join(tool));
        c
    } else {
        Command::new(bin.join(tool))
    };
    cmd.args(args);
    cmd
}

unsafe extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

fn run(mut cmd: Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl PrivatePostgres {
    /// A new cluster, started, with trust auth for `postgres` on 127.0.0.1.
    pub fn start() -> Self {
        let bin = pg_bin();
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let _ = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir.path())
            .status();
        let data = dir.path().join("data");
        run(
            as_postgres(
                &bin,
                "initdb",
                &[
                    "-D",
                    data.to_str().unwrap(),
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                ],
            ),
            "initdb",
        );
        let pg = PrivatePostgres { port, dir, bin };
        pg.up();
        pg
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Start (again), waiting until it accepts connections.
    pub fn up(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={}",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("postgres.log");
        run(
            as_postgres(
                &self.bin,
                "pg_ctl",
                &[
                    "-D",
                    &self.data(),
                    "-o",
                    &options,
                    "-l",
                    log.to_str().unwrap(),
                    "-w",
                    "start",
                ],
            ),
            "pg_ctl start",
        );
    }

    /// Stop: `mode` is `fast` (connections ended, clean shutdown) or `immediate` (a crash).
    pub fn down(&self, mode: &str) {
        run(
            as_postgres(
                &self.bin,
                "pg_ctl",
                &["-D", &self.data(), "-m", mode, "-w", "stop"],
            ),
            "pg_ctl stop",
        );
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = as_postgres(
            &self.bin,
            "pg_ctl",
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        )
        .output();
    }
}
