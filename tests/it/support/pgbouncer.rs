//! A real PgBouncer in transaction pooling mode in front of the test Postgres: started on a
//! free loopback port with a config in a temporary directory, stopped by its PID when dropped.
//!
//! Its pool to Postgres is small (`default_pool_size`, one or two sessions) so that many
//! clients share few server sessions and a client's transactions land on different ones.
//! PgBouncer refuses to run as root: as root the tests run it as the `postgres` user.
#![allow(dead_code)]

use std::process::Command;

use super::db::admin_url;
use super::foreign::{Foreign, free_port};

pub struct PgBouncer(Foreign);

unsafe extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

/// Host and port of the test Postgres, from its admin URL.
fn upstream() -> (String, u16) {
    let url = url::Url::parse(&admin_url()).expect("TEST_DATABASE_URL is a URL");
    (
        url.host_str().unwrap_or("127.0.0.1").to_string(),
        url.port().unwrap_or(5432),
    )
}

fn config(port: u16, pool_size: u32, dir: &std::path::Path) -> String {
    let (host, pg_port) = upstream();
    format!(
        "[databases]\n\
         * = host={host} port={pg_port}\n\
         [pgbouncer]\n\
         listen_addr = 127.0.0.1\n\
         listen_port = {port}\n\
         unix_socket_dir =\n\
         auth_type = trust\n\
         auth_file = {dir}/users.txt\n\
         pool_mode = transaction\n\
         default_pool_size = {pool_size}\n\
         max_client_conn = 200\n\
         ignore_startup_parameters = extra_float_digits,options\n\
         logfile = {dir}/pgbouncer.log\n",
        dir = dir.display()
    )
}

impl PgBouncer {
    /// Start one sharing `pool_size` server sessions among all its clients, waiting
    /// (bounded) until it accepts connections.
    pub fn start(pool_size: u32) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let ini = dir.path().join("pgbouncer.ini");
        std::fs::write(&ini, config(port, pool_size, dir.path())).unwrap();
        std::fs::write(dir.path().join("users.txt"), "\"postgres\" \"\"\n").unwrap();
        // Debian puts it in /usr/sbin, which a non-root PATH may lack.
        let bin = if std::path::Path::new("/usr/sbin/pgbouncer").exists() {
            "/usr/sbin/pgbouncer"
        } else {
            "pgbouncer"
        };
        let root = unsafe { libc_geteuid() } == 0;
        let mut cmd = if root {
            // The postgres user must read the config and write the log.
            let _ = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status();
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", bin]);
            c
        } else {
            Command::new(bin)
        };
        cmd.arg(&ini);
        PgBouncer(Foreign::start(
            "pgbouncer",
            cmd,
            port,
            dir,
            "pgbouncer.log",
            "apt-get install pgbouncer",
        ))
    }

    pub fn port(&self) -> u16 {
        self.0.port
    }

    /// `url` (a test database on the shared Postgres) as reached through this bouncer.
    pub fn url_for(&self, url: &str) -> String {
        self.0.url_for(url)
    }
}
