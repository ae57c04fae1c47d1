//! A third-party daemon the tests run (PgBouncer, nginx): its config and logs in a temporary
//! directory, on a free loopback port, started and waited for (bounded) until it accepts
//! connections, and stopped by its PID (SIGTERM) when dropped.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Foreign {
    pub port: u16,
    child: Child,
    pub dir: tempfile::TempDir,
    /// Its name in failures, and the log file (in `dir`) to quote besides its stderr.
    name: &'static str,
    log: &'static str,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Foreign {
    /// Spawn `cmd` (configured to listen on `port`, with its files in `dir`), its stderr kept
    /// in `dir/stderr.txt`, and wait until the port accepts connections; `install` says how
    /// to get the program when it cannot be started.
    pub fn start(
        name: &'static str,
        mut cmd: Command,
        port: u16,
        dir: tempfile::TempDir,
        log: &'static str,
        install: &str,
    ) -> Self {
        let stderr = std::fs::File::create(dir.path().join("stderr.txt")).unwrap();
        let child = cmd
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("these tests need {name} ({e}): {install}"));
        let mut started = Foreign {
            port,
            child,
            dir,
            name,
            log,
        };
        started.wait_until_listening();
        started
    }

    fn wait_until_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            let exited = self.child.try_wait().ok().flatten();
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "{} did not listen on {} ({}); it said: {} {}",
                self.name,
                self.port,
                exited.map_or("not within 10 s".to_string(), |s| format!("it exited: {s}")),
                self.read("stderr.txt"),
                self.read(self.log),
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn read(&self, file: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(file)).unwrap_or_default()
    }

    /// `url` (a loopback server's) as reached through this daemon's port.
    pub fn url_for(&self, url: &str) -> String {
        let mut through = url::Url::parse(url).unwrap();
        through.set_host(Some("127.0.0.1")).unwrap();
        through.set_port(Some(self.port)).unwrap();
        through.to_string()
    }
}

impl Drop for Foreign {
    fn drop(&mut self) {
        // SIGTERM (as root PgBouncer's child is `runuser`, which passes it on).
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}
