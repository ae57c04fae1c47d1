//! A real SMTP server in process (mailin-embedded, plain SMTP on 127.0.0.1:0) that keeps every
//! message it accepts, for email alert tests.
#![allow(dead_code)]

use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use mailin_embedded::{Handler, Response, Server, response};

#[derive(Debug, Clone, Default)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
}

#[derive(Clone, Default)]
struct Collect {
    done: Arc<Mutex<Vec<Mail>>>,
    current: Mail,
}

impl Handler for Collect {
    fn data_start(&mut self, _domain: &str, from: &str, _is8bit: bool, to: &[String]) -> Response {
        self.current = Mail {
            from: from.to_string(),
            to: to.to_vec(),
            data: String::new(),
        };
        response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.current.data.push_str(&String::from_utf8_lossy(buf));
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        self.done
            .lock()
            .unwrap()
            .push(std::mem::take(&mut self.current));
        response::OK
    }
}

pub struct SmtpServer {
    pub port: u16,
    done: Arc<Mutex<Vec<Mail>>>,
}

impl SmtpServer {
    /// Start on a loopback port; the server thread ends with the test process.
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let done = Arc::new(Mutex::new(Vec::new()));
        let handler = Collect {
            done: done.clone(),
            current: Mail::default(),
        };
        std::thread::spawn(move || {
            let mut server = Server::new(handler);
            // One thread per connection; the client pools and keeps connections open.
            server
                .with_name("smtp.test")
                .with_num_threads(32)
                .with_tcp_listener(listener);
            let _ = server.serve();
        });
        SmtpServer { port, done }
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    pub fn mails(&self) -> Vec<Mail> {
        self.done.lock().unwrap().clone()
    }
}
