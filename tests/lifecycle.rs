//! The process as an operator sees it: durability across kill -9, clean exits on EOF and
//! SIGTERM, a clear error when the receiver port is taken, and stdout carrying only JSON-RPC.

mod common;

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{hex_hmac, voyager_body, Server, BIN};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// The binary driven by hand-written JSON-RPC lines, to control the process directly.
struct Raw {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Lines<BufReader<ChildStdout>>,
    next_id: u64,
}

impl Raw {
    async fn start(data_dir: &std::path::Path, receiver: &str) -> Raw {
        let mut child = Command::new(BIN)
            .args(["serve", "--data-dir"])
            .arg(data_dir)
            .args(["--receiver-addr", receiver])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut raw = Raw {
            child,
            stdin,
            stdout,
            next_id: 1,
        };
        raw.request(
            "initialize",
            json!({
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": { "name": "raw-test", "version": "1" }
            }),
        )
        .await;
        raw.send(json!({ "jsonrpc": "2.0", "method": "notifications/initialized" }))
            .await;
        raw
    }

    async fn send(&mut self, msg: Value) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin
            .write_all(format!("{msg}\n").as_bytes())
            .await
            .unwrap();
        stdin.flush().await.unwrap();
    }

    /// Sends a request and returns its result; every stdout line on the way must be JSON-RPC.
    async fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send(json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }))
            .await;
        loop {
            let line = tokio::time::timeout(Duration::from_secs(10), self.stdout.next_line())
                .await
                .expect("no answer within 10 s")
                .unwrap()
                .expect("stdout closed");
            let msg: Value = serde_json::from_str(&line)
                .unwrap_or_else(|_| panic!("stdout carried a non-JSON line: {line:?}"));
            assert_eq!(
                msg["jsonrpc"], "2.0",
                "stdout carried a non-JSON-RPC message: {line}"
            );
            if msg["id"] == id {
                return msg["result"].clone();
            }
        }
    }

    /// Creates an inbound webhook; returns its receive URL and secret.
    async fn inbound(&mut self) -> (String, String) {
        let created = self
            .tool("create_webhook", json!({ "direction": "inbound" }))
            .await;
        let w = &created["webhook"];
        (
            w["url"].as_str().unwrap().to_string(),
            w["secret"].as_str().unwrap().to_string(),
        )
    }

    async fn tool(&mut self, name: &str, args: Value) -> Value {
        let r = self
            .request("tools/call", json!({ "name": name, "arguments": args }))
            .await;
        r["structuredContent"].clone()
    }
}

#[tokio::test]
async fn acknowledged_events_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut raw = Raw::start(dir.path(), "127.0.0.1:0").await;
    let (url, secret) = raw.inbound().await;

    // Eight senders post as fast as they can; the process is killed while they are mid-flight.
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let http = reqwest::Client::new();
    let mut senders = vec![];
    for t in 0..8 {
        let (http, url, secret, acked) = (http.clone(), url.clone(), secret.clone(), acked.clone());
        senders.push(tokio::spawn(async move {
            for i in 0..10_000 {
                let body = voyager_body(&format!("t{t}-{i}"), "durable?");
                let sig = hex_hmac(&secret, body.as_bytes());
                let Ok(resp) = http
                    .post(&url)
                    .header("x-webhook-signature", sig)
                    .body(body)
                    .send()
                    .await
                else {
                    return; // the server is gone
                };
                if resp.status() != 200 {
                    return;
                }
                let Ok(bytes) = resp.bytes().await else {
                    return;
                };
                let v: Value = serde_json::from_slice(&bytes).unwrap();
                acked
                    .lock()
                    .unwrap()
                    .push(v["event_id"].as_str().unwrap().to_string());
            }
        }));
    }
    while acked.lock().unwrap().len() < 200 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    raw.child.start_kill().unwrap(); // SIGKILL
    raw.child.wait().await.unwrap();
    for s in senders {
        s.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 200);

    // The store is intact and holds every acknowledged event.
    let conn = rusqlite::Connection::open(dir.path().join("webhook-mcp.db")).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let (rows, distinct): (i64, i64) = conn
        .query_row(
            "SELECT COUNT(*), COUNT(DISTINCT provider_event_id) FROM events",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(rows, distinct, "every sender id stored exactly once");
    drop(conn);
    let s = Server::start_with(common::Era::Legacy, Some(dir.path()), &[]).await;
    let mut stored = std::collections::HashSet::new();
    let mut after = 0;
    loop {
        let page = s
            .call("list_events", json!({ "after": after, "limit": 200 }))
            .await;
        for e in page["events"].as_array().unwrap() {
            stored.insert(e["id"].as_str().unwrap().to_string());
        }
        if page["count"] == 0 {
            break;
        }
        after = page["next_cursor"].as_i64().unwrap();
    }
    let lost: Vec<_> = acked.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged events lost: {lost:?}",
        lost.len()
    );
    // The webhook survived too, and still receives.
    assert_eq!(s.call("list_webhooks", json!({})).await["count"], 1);
    s.stop().await;
}

#[tokio::test]
async fn exits_cleanly_on_stdin_eof_and_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut raw = Raw::start(dir.path(), "127.0.0.1:0").await;
    raw.stdin.take(); // EOF
    let status = tokio::time::timeout(Duration::from_secs(10), raw.child.wait())
        .await
        .expect("did not exit on stdin EOF")
        .unwrap();
    assert!(status.success(), "{status:?}");

    let mut raw = Raw::start(dir.path(), "127.0.0.1:0").await;
    let pid = raw.child.id().unwrap();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = tokio::time::timeout(Duration::from_secs(10), raw.child.wait())
        .await
        .expect("did not exit on SIGTERM")
        .unwrap();
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn a_taken_receiver_port_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--data-dir"])
        .arg(dir.path())
        .args(["--receiver-addr", &addr])
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "nothing but JSON-RPC on stdout");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{addr} is already in use")), "{err}");
    assert!(
        err.contains("--receiver-addr") && err.contains("--no-receiver"),
        "{err}"
    );
}

#[tokio::test]
async fn env_configures_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .arg("serve")
        .env("WEBHOOK_MCP_DATA_DIR", dir.path())
        .env("WEBHOOK_MCP_RECEIVER_ADDR", "127.0.0.1:0")
        .env("WEBHOOK_MCP_PUBLIC_URL", "https://hooks.example.com/")
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("webhook-mcp.db").exists());
    // The public URL shapes receive URLs.
    let s = Server::start_with(
        common::Era::Legacy,
        Some(dir.path()),
        &["--public-url", "https://hooks.example.com/"],
    )
    .await;
    let (id, url, _) = s.inbound(json!({})).await;
    assert_eq!(url, format!("https://hooks.example.com/hooks/{id}"));
    s.stop().await;
}

#[tokio::test]
async fn a_stalled_client_does_not_block_ingestion() {
    let dir = tempfile::tempdir().unwrap();
    let mut raw = Raw::start(dir.path(), "127.0.0.1:0").await;
    let (url, secret) = raw.inbound().await;
    raw.request("resources/subscribe", json!({ "uri": "webhook://events" }))
        .await;
    // From here on nobody reads the server's stdout: its pipe fills and its writes block.
    let http = reqwest::Client::new();
    let mut tasks = vec![];
    for t in 0..8 {
        let (http, url, secret) = (http.clone(), url.clone(), secret.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..250 {
                let body = voyager_body(&format!("s{t}-{i}"), &"padding ".repeat(20));
                let sig = hex_hmac(&secret, body.as_bytes());
                let r = http
                    .post(&url)
                    .header("x-webhook-signature", sig)
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
            }
        }));
    }
    let all = async {
        for t in tasks {
            t.await.unwrap();
        }
    };
    tokio::time::timeout(Duration::from_secs(60), all)
        .await
        .expect("ingestion stalled behind a client that does not read");
    // The stored events are all there; the stalled session is the client's problem alone.
    let conn = rusqlite::Connection::open(dir.path().join("webhook-mcp.db")).unwrap();
    let n: i64 = conn
        .query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 2000);
    // The client wakes up and reads again: the notices that overflowed its buffer are counted
    // (not silently lost) and it gets one catch-up round.
    let mut caught_up = false;
    while let Ok(Ok(Some(line))) =
        tokio::time::timeout(Duration::from_millis(1500), raw.stdout.next_line()).await
    {
        caught_up |= line.contains("notifications/resources/updated");
    }
    assert!(caught_up, "no notification after the client read again");
    let health = common::healthz(&http, &url).await;
    assert_eq!(health["stats"]["events_stored"], 2000, "{health}");
    // Whether the unread pipe filled (and notices overflowed the session's buffer, counted
    // as dropped) depends on timing: the change feed hands bursts to the session in batches,
    // and the session sends one round per batch. Never all of them: the session caught up.
    let dropped = health["stats"]["notifications_dropped"].as_u64().unwrap();
    assert!(dropped < 2000, "{health}");
}

/// Started by hand on a terminal, `serve` says what it waits for (on stderr; stdout stays
/// JSON-RPC only).
#[test]
fn serve_on_a_terminal_says_it_expects_an_mcp_client() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_webhook-mcp"));
    cmd.args(["serve", "--no-receiver", "--data-dir"])
        .arg(dir.path())
        .env("WEBHOOK_MCP_LOG", "warn");
    let run = common::pty::run(
        cmd,
        120,
        Some("expects an MCP client"),
        Duration::from_secs(20),
    );
    assert!(run.text.contains("expects an MCP client"), "{}", run.text);
}
