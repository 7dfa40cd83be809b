//! A `webhook-mcp serve --http` process on a free loopback port, the receiver on the same
//! listener (`--receiver-addr same`), a fresh data dir, killed when dropped.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct HttpServer {
    pub child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl HttpServer {
    /// Starts it with `extra` flags and returns once the port accepts connections.
    pub fn start(extra: &[&str]) -> HttpServer {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = Command::new(super::BIN)
            .args(["serve", "--http", &format!("127.0.0.1:{port}")])
            .args(["--receiver-addr", "same"])
            .args(extra)
            .arg("--data-dir")
            .arg(dir.path())
            .env("WEBHOOK_MCP_LOG", "warn")
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the HTTP server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        HttpServer { child, port, dir }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}
