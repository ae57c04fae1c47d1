//! A real OAuth 2 authorization server (`oauth_as.mjs` on npm's oidc-provider, pinned),
//! installed into `target/tools/oauth` on first use, started on a free loopback port, and
//! stopped by its PID when dropped.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;

use serde_json::Value;

/// The pinned release.
const OIDC_PROVIDER: &str = "oidc-provider@9.13.3";

pub struct AuthServer {
    pub port: u16,
    child: Child,
}

impl Drop for AuthServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

static INSTALL: Mutex<()> = Mutex::new(());

/// `target/tools/oauth` with the provider installed and the script beside it.
fn installed() -> PathBuf {
    let _one = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tools/oauth");
    let marker = dir.join(format!(".installed-{OIDC_PROVIDER}"));
    if !marker.exists() {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("package.json"),
            "{\"private\": true, \"type\": \"module\"}\n",
        )
        .unwrap();
        let ok = Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--silent", "--prefix"])
            .arg(&dir)
            .arg(OIDC_PROVIDER)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(
            ok,
            "could not install {OIDC_PROVIDER} with npm (needs Node.js 20 and the npm registry)"
        );
        std::fs::write(&marker, "").unwrap();
    }
    // ESM resolves packages from the script's own folder, so the script lives beside them.
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/support/oauth_as.mjs");
    std::fs::copy(script, dir.join("oauth_as.mjs")).unwrap();
    dir
}

impl AuthServer {
    /// Start with `spec` (see oauth_as.mjs); returns once it listens.
    pub fn start(spec: &Value) -> AuthServer {
        let dir = installed();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new("node")
            .current_dir(&dir)
            .arg("oauth_as.mjs")
            .arg(port.to_string())
            .arg(spec.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node runs");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains("listening") {
                    let _ = tx.send(());
                }
            }
        });
        let server = AuthServer { port, child };
        rx.recv_timeout(std::time::Duration::from_secs(30))
            .expect("the authorization server listens within 30 s");
        server
    }

    pub fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn token_endpoint(&self) -> String {
        format!("{}/token", self.issuer())
    }

    pub fn introspection_endpoint(&self) -> String {
        format!("{}/token/introspection", self.issuer())
    }
}
