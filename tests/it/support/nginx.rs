//! A real nginx (Debian's `nginx-light`) as a reverse proxy in front of a test server:
//! started on a free loopback port with a config in a temporary directory, in the foreground
//! as one process (`daemon off; master_process off;`, so no worker runs as another user),
//! stopped by its PID when dropped. The proxy location is nginx's defaults but for
//! `proxy_buffering`: a proxy as most are first written.
//!
//! When nginx is missing and we are root with apt-get, Debian's `nginx-light` is installed
//! once (tests running at once wait for it), else the test fails saying how to install it.
#![allow(dead_code)]

use std::process::{Command, Stdio};

use super::foreign::{Foreign, free_port};

pub struct Nginx(Foreign);

/// The nginx binary, installing Debian's `nginx-light` once when possible.
fn nginx_binary() -> &'static str {
    static FOUND: std::sync::OnceLock<Option<&'static str>> = std::sync::OnceLock::new();
    let found = FOUND.get_or_init(|| {
        // Debian puts it in /usr/sbin, which a non-root PATH may lack.
        let present = || {
            ["/usr/sbin/nginx", "nginx"].into_iter().find(|bin| {
                Command::new(bin)
                    .arg("-v")
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            })
        };
        if let Some(bin) = present() {
            return Some(bin);
        }
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout == b"0\n");
        if root {
            let _ = Command::new("sh")
                .args([
                    "-c",
                    "DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx-light >/dev/null 2>&1 \
                     || (apt-get update -q >/dev/null 2>&1 && \
                         DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx-light >/dev/null 2>&1)",
                ])
                .status();
        }
        present()
    });
    found.unwrap_or_else(|| {
        panic!(
            "the streaming tests need nginx: install it with `apt-get install nginx-light` (Debian)"
        )
    })
}

fn config(port: u16, upstream: u16, buffering: bool, dir: &std::path::Path) -> String {
    let d = dir.display();
    let buffering = if buffering { "on" } else { "off" };
    format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
         error_log {d}/error.log warn;\nevents {{ worker_connections 64; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n\
           proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n\
           uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
           server {{\n    listen 127.0.0.1:{port};\n    location / {{\n\
               proxy_pass http://127.0.0.1:{upstream};\n      proxy_buffering {buffering};\n\
             }}\n  }}\n}}\n"
    )
}

impl Nginx {
    /// Proxy loopback port `upstream`, buffering responses or not, waiting (bounded) until it
    /// accepts connections.
    pub fn start(upstream: u16, buffering: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let conf = dir.path().join("nginx.conf");
        std::fs::write(&conf, config(port, upstream, buffering, dir.path())).unwrap();
        let mut cmd = Command::new(nginx_binary());
        cmd.arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(dir.path().join("error.log"));
        Nginx(Foreign::start(
            "nginx",
            cmd,
            port,
            dir,
            "error.log",
            "apt-get install nginx-light",
        ))
    }

    /// `url` (a loopback test server's) as reached through this proxy.
    pub fn url_for(&self, url: &str) -> String {
        self.0.url_for(url)
    }
}
