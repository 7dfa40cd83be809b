//! MCP over Streamable HTTP through the real binary on real TCP: several sessions of both
//! protocol eras share one server and each gets every event once; bearer auth, Host and Origin
//! validation; refusing an unauthenticated non-loopback bind.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_webhook-mcp");
const TOKEN: &str = "test-token-0123456789";

struct HttpServer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(extra: &[&str]) -> HttpServer {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let child = Command::new(BIN)
        .args([
            "serve",
            "--http",
            &format!("127.0.0.1:{port}"),
            "--receiver-addr",
            "same",
            "--auth-token",
            TOKEN,
        ])
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
    HttpServer {
        child,
        port,
        _dir: dir,
    }
}

fn initialize() -> String {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})
    .to_string()
}

async fn post_mcp(port: u16, headers: &[(&str, &str)]) -> (u16, String) {
    let mut req = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/mcp"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(initialize());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    // An SSE answer stays open: read only its first chunk.
    let mut resp = resp;
    let first = tokio::time::timeout(Duration::from_secs(5), resp.chunk())
        .await
        .ok()
        .and_then(|c| c.ok().flatten());
    (
        status,
        first
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default(),
    )
}

#[tokio::test]
async fn bearer_token_host_and_origin_are_enforced() {
    let s = start(&[]);
    let auth = format!("Bearer {TOKEN}");
    let (st, body) = post_mcp(s.port, &[]).await;
    assert_eq!(st, 401, "{body}");
    assert!(body.contains("bearer token"));
    let (st, _) = post_mcp(s.port, &[("authorization", "Bearer wrong-token")]).await;
    assert_eq!(st, 401);
    let (st, body) = post_mcp(s.port, &[("authorization", &auth)]).await;
    assert_eq!(st, 200, "{body}");
    // DNS rebinding: a foreign Host is refused even with the token; so is a foreign Origin.
    let (st, _) = post_mcp(
        s.port,
        &[("authorization", &auth), ("host", "evil.example")],
    )
    .await;
    assert_eq!(st, 403);
    let (st, _) = post_mcp(
        s.port,
        &[("authorization", &auth), ("origin", "http://evil.example")],
    )
    .await;
    assert_eq!(st, 403);
    // The receiver on the same listener needs no token: providers sign instead.
    let r = reqwest::get(format!("http://127.0.0.1:{}/healthz", s.port))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn allowed_origins_and_hosts_are_configurable() {
    let s = start(&[
        "--allowed-origins",
        "https://app.example.com:443",
        "--allowed-hosts",
        "mcp.internal",
    ]);
    let auth = format!("Bearer {TOKEN}");
    let (st, _) = post_mcp(
        s.port,
        &[
            ("authorization", &auth),
            ("origin", "https://app.example.com"),
        ],
    )
    .await;
    assert_eq!(st, 200);
    let (st, _) = post_mcp(
        s.port,
        &[
            ("authorization", &auth),
            ("origin", "https://other.example.com"),
        ],
    )
    .await;
    assert_eq!(st, 403);
    let (st, _) = post_mcp(
        s.port,
        &[("authorization", &auth), ("host", "mcp.internal")],
    )
    .await;
    assert_eq!(st, 200);
}

#[test]
fn a_public_bind_without_a_token_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args([
            "serve",
            "--http",
            "0.0.0.0:0",
            "--no-receiver",
            "--data-dir",
        ])
        .arg(dir.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--auth-token") && err.contains("0.0.0.0"),
        "{err}"
    );
    let out = Command::new(BIN)
        .args(["serve", "--receiver-addr", "same", "--data-dir"])
        .arg(dir.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs --http"));
}

#[test]
fn sessions_of_both_eras_each_get_every_event_once_and_survive_a_dropped_peer() {
    let s = start(&[]);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/http_clients.py");
    let out = Command::new(common::python())
        .arg(script)
        .arg(format!("http://127.0.0.1:{}/mcp", s.port))
        .arg(TOKEN)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python HTTP clients failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8_lossy(&out.stdout);
    let r: Value = serde_json::from_str(line.lines().last().unwrap()).unwrap();
    assert_eq!(
        r["after_first"],
        json!({ "a": 1, "b": 1, "c": 1 }),
        "exactly once each: {r}"
    );
    assert_eq!(r["b_total"], 2);
    assert_eq!(
        r["c_sequence"],
        json!([0, 1]),
        "the modern client heard each webhook once, in order"
    );
}
