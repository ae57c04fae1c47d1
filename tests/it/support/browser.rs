//! A real headless Chromium, driven over the DevTools protocol: navigate, evaluate, emulate a
//! phone or dark mode, take screenshots, and collect console errors. Chromium binds its
//! DevTools port on 127.0.0.1 and is killed by PID on drop.
//!
//! Chromium comes from Debian (`apt-get install chromium`); when it is missing and we are root
//! with apt-get, it is installed once, else the test fails saying how to install it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The Chromium binary, installing Debian's package when possible.
pub fn chromium_binary() -> PathBuf {
    for name in ["chromium", "chromium-browser"] {
        if let Ok(out) = Command::new("which").arg(name).output()
            && out.status.success()
        {
            return PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        }
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout == b"0\n")
        .unwrap_or(false);
    if root {
        let ok = Command::new("sh")
            .args([
                "-c",
                "DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null",
            ])
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return PathBuf::from("/usr/bin/chromium");
        }
    }
    panic!("the browser test needs Chromium: install it with `apt-get install chromium` (Debian)");
}

/// Console errors, exceptions and failed loads seen by the page.
#[derive(Debug, Default)]
pub struct Seen {
    pub errors: Vec<String>,
}

pub struct Browser {
    child: Child,
    ws: Ws,
    session: String,
    next_id: u64,
    pub seen: Seen,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Browser {
    pub async fn launch() -> Browser {
        let bin = chromium_binary();
        let profile = tempfile::tempdir().unwrap();
        let mut child = Command::new(&bin)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--no-first-run",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                "--window-size=1280,900",
                // The branded-page test's host name, on loopback (no DNS is asked).
                "--host-resolver-rules=MAP status.acme.test 127.0.0.1",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line.split("DevTools listening on ").nth(1) {
                    let _ = tx.send(url.trim().to_string());
                }
            }
        });
        // A bound, not a pause: on a fresh CI machine Chromium's first start builds its
        // font cache while the rest of the suite keeps both cores busy (30 s was seen to fail).
        let connected = match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(url) => tokio_tungstenite::connect_async(url.as_str())
                .await
                .map_err(|e| format!("cannot open its DevTools socket: {e}")),
            Err(_) => Err("it printed no DevTools address within 120 s".to_string()),
        };
        // Until `Browser` owns the child, a failure must stop Chromium itself.
        let ws = match connected {
            Ok((ws, _)) => ws,
            Err(why) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("Chromium: {why}");
            }
        };
        let mut b = Browser {
            child,
            ws,
            session: String::new(),
            next_id: 0,
            seen: Seen::default(),
            _profile: profile,
        };
        let target = b
            .call(None, "Target.createTarget", json!({"url": "about:blank"}))
            .await;
        let attached = b
            .call(
                None,
                "Target.attachToTarget",
                json!({"targetId": target["targetId"], "flatten": true}),
            )
            .await;
        b.session = attached["sessionId"].as_str().unwrap().to_string();
        for domain in ["Page.enable", "Runtime.enable", "Log.enable"] {
            b.cmd(domain, json!({})).await;
        }
        b
    }

    fn note_event(&mut self, msg: &Value) {
        let p = &msg["params"];
        match msg["method"].as_str() {
            Some("Runtime.consoleAPICalled") if p["type"] == "error" => {
                self.seen
                    .errors
                    .push(format!("console.error: {}", p["args"]));
            }
            Some("Runtime.exceptionThrown") => {
                self.seen
                    .errors
                    .push(format!("exception: {}", p["exceptionDetails"]));
            }
            Some("Log.entryAdded") if p["entry"]["level"] == "error" => {
                self.seen
                    .errors
                    .push(format!("log: {} {}", p["entry"]["text"], p["entry"]["url"]));
            }
            _ => {}
        }
    }

    /// Send one command and wait for its reply, noting events meanwhile.
    async fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        self.ws.send(Message::text(msg.to_string())).await.unwrap();
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(30), self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("no reply to {method}"))
                .expect("DevTools connection open")
                .unwrap();
            let Message::Text(text) = frame else { continue };
            let v: Value = serde_json::from_str(text.as_str()).unwrap();
            if v["id"] == id {
                assert!(v.get("error").is_none(), "{method} failed: {}", v["error"]);
                return v["result"].clone();
            }
            self.note_event(&v);
        }
    }

    pub async fn cmd(&mut self, method: &str, params: Value) -> Value {
        let session = self.session.clone();
        self.call(Some(&session), method, params).await
    }

    /// Load `url` and wait for its load event.
    pub async fn goto(&mut self, url: &str) {
        self.cmd("Page.navigate", json!({"url": url})).await;
        self.wait_for_load().await;
    }

    /// Run `expr`, which navigates (a form's submit, a button's click), and wait for the new
    /// page's load event.
    pub async fn navigate_by(&mut self, expr: &str) {
        self.eval(expr).await;
        self.wait_for_load().await;
    }

    async fn wait_for_load(&mut self) {
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(30), self.ws.next())
                .await
                .expect("the page loads within 30 s")
                .unwrap()
                .unwrap();
            let Message::Text(text) = frame else { continue };
            let v: Value = serde_json::from_str(text.as_str()).unwrap();
            if v["method"] == "Page.loadEventFired" {
                return;
            }
            self.note_event(&v);
        }
    }

    /// Evaluate a JavaScript expression in the page; returns its JSON value.
    pub async fn eval(&mut self, expr: &str) -> Value {
        let r = self
            .cmd(
                "Runtime.evaluate",
                json!({"expression": expr, "returnByValue": true}),
            )
            .await;
        assert!(
            r.get("exceptionDetails").is_none(),
            "{expr}: {}",
            r["exceptionDetails"]
        );
        r["result"]["value"].clone()
    }

    /// Viewport width in CSS px, as a phone (`mobile`) or a desktop.
    pub async fn viewport(&mut self, width: u32, height: u32, mobile: bool) {
        self.cmd(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile}),
        )
        .await;
    }

    pub async fn color_scheme(&mut self, scheme: &str) {
        self.cmd(
            "Emulation.setEmulatedMedia",
            json!({"features": [{"name": "prefers-color-scheme", "value": scheme}]}),
        )
        .await;
    }

    /// A full-page PNG screenshot written to `path`.
    pub async fn screenshot(&mut self, path: &Path) {
        use base64::Engine;
        let r = self
            .cmd(
                "Page.captureScreenshot",
                json!({"format": "png", "captureBeyondViewport": true}),
            )
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().unwrap())
            .unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
    }
}
