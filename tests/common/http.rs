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
    /// Starts it with `extra` flags on port 0 and returns once it has said which port it bound.
    /// (Picking a free port first and passing it races with the other tests of the binary: two
    /// servers can be handed the same port, and the loser's test talks to the winner.)
    pub fn start(extra: &[&str]) -> HttpServer {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().to_path_buf();
        HttpServer::start_on(dir, &data, extra)
    }

    /// Another process on the store of `other` (its data dir), with `extra` flags.
    pub fn sharing(other: &HttpServer, extra: &[&str]) -> HttpServer {
        HttpServer::start_on(tempfile::tempdir().unwrap(), other.dir.path(), extra)
    }

    fn start_on(dir: tempfile::TempDir, data: &std::path::Path, extra: &[&str]) -> HttpServer {
        let mut child = Command::new(super::BIN)
            .args(["serve", "--http", "127.0.0.1:0"])
            .args(["--receiver-addr", "same"])
            .args(extra)
            .arg("--data-dir")
            .arg(data)
            .env("WEBHOOK_MCP_LOG", "warn,webhook_mcp::cli::serve=info")
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Its log says where it listens; every line is echoed to this test's stderr.
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                eprintln!("{line}");
                if line.contains("MCP over Streamable HTTP") {
                    let port = line
                        .split("127.0.0.1:")
                        .nth(1)
                        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
                        .and_then(|p| p.parse::<u16>().ok());
                    let _ = tx.send(port);
                }
            }
        });
        let port = rx
            .recv_timeout(Duration::from_secs(10))
            .ok()
            .flatten()
            .expect("the HTTP server did not say where it listens within 10 s");
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

/// One 2026-07-28 (stateless) JSON-RPC request to `{base}/mcp` with an optional bearer token
/// (request id 7): the status, `WWW-Authenticate`, and the JSON answer (the SSE event's data
/// when the server streamed it).
pub async fn rpc(
    base: &str,
    token: Option<&str>,
    method: &str,
    mut params: serde_json::Value,
) -> (u16, Option<String>, serde_json::Value) {
    params["_meta"] = serde_json::json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {"extensions": {"io.modelcontextprotocol/events": {}}},
        "io.modelcontextprotocol/clientInfo": {"name": "webhook-mcp-tests", "version": "1"},
    });
    let body = serde_json::json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params});
    let mut req = reqwest::Client::new()
        .post(format!("{base}/mcp"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", method)
        .body(body.to_string());
    if let Some(name) = params["name"].as_str().filter(|_| method == "tools/call") {
        req = req.header("mcp-name", name);
    }
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let challenge = r
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string());
    let text = r.text().await.unwrap();
    let data = text
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .find(|d| d.contains("\"id\""))
        .map(str::to_string)
        .unwrap_or(text);
    let json = serde_json::from_str(data.trim()).unwrap_or(serde_json::Value::String(data));
    (status, challenge, json)
}
