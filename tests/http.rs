//! MCP over Streamable HTTP through the real binary on real TCP: several sessions of both
//! protocol eras share one server and each gets every event once; bearer auth, Host and Origin
//! validation; refusing an unauthenticated non-loopback bind.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use common::http::HttpServer;
use common::BIN;
const TOKEN: &str = "test-token-0123456789";

/// A server that requires the bearer token `TOKEN`.
fn start(extra: &[&str]) -> HttpServer {
    let mut args = vec!["--auth-token", TOKEN];
    args.extend_from_slice(extra);
    HttpServer::start(&args)
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
    // The scheme name is case-insensitive (RFC 7235).
    let lower = format!("bearer {TOKEN}");
    let (st, body) = post_mcp(s.port, &[("authorization", &lower)]).await;
    assert_eq!(st, 200, "{body}");
    let (st, _) = post_mcp(s.port, &[("authorization", &format!("Basic {TOKEN}"))]).await;
    assert_eq!(
        st, 401,
        "another scheme with the right value is still refused"
    );
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

/// One legacy session over raw HTTP: initialized, subscribed to the event feed, with its
/// standalone SSE stream (where the notifications go) opened on a socket whose receive buffer
/// is as small as the kernel allows. Returns the session id and that stream, unread.
async fn subscribed_session(port: u16) -> (String, tokio::net::TcpStream) {
    let http = reqwest::Client::new();
    let rpc = |session: Option<&str>, body: Value| {
        let mut req = http
            .post(format!("http://127.0.0.1:{port}/mcp"))
            .header("authorization", format!("Bearer {TOKEN}"))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-06-18")
            .body(body.to_string());
        if let Some(id) = session {
            req = req.header("mcp-session-id", id);
        }
        req.send()
    };
    let init = rpc(None, serde_json::from_str(&initialize()).unwrap())
        .await
        .unwrap();
    let session = init.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_string();
    drop(init);
    rpc(
        Some(&session),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await
    .unwrap();
    let sub = rpc(
        Some(&session),
        json!({"jsonrpc": "2.0", "id": 2, "method": "resources/subscribe", "params": {"uri": "webhook://events"}}),
    )
    .await
    .unwrap();
    assert!(sub.text().await.unwrap().contains("\"id\":2"));
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(1024).unwrap();
    let mut stream = socket.connect(([127, 0, 0, 1], port).into()).await.unwrap();
    let get = format!(
        "GET /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {TOKEN}\r\n\
         Accept: text/event-stream\r\nMcp-Session-Id: {session}\r\n\
         Mcp-Protocol-Version: 2025-06-18\r\n\r\n"
    );
    tokio::io::AsyncWriteExt::write_all(&mut stream, get.as_bytes())
        .await
        .unwrap();
    (session, stream)
}

#[tokio::test]
async fn a_stalled_session_blocks_neither_ingestion_nor_other_sessions() {
    use tokio::io::{AsyncBufReadExt, BufReader};

    let s = start(&[]);
    let port = s.port;
    // The stalled session never reads its stream again.
    let (_stalled_id, stalled) = subscribed_session(port).await;
    // The live session counts the notifications it reads.
    let (live_id, live) = subscribed_session(port).await;
    let (tx, mut heard) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut lines = BufReader::new(live).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("notifications/resources/updated") {
                let _ = tx.send(());
            }
        }
    });
    // A webhook to post to, created over the live session.
    let created = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/mcp"))
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-06-18")
        .header("mcp-session-id", &live_id)
        .body(
            json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
                "name": "create_webhook", "arguments": {"direction": "inbound"}}})
            .to_string(),
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // The answer comes as one SSE event: its `data:` line holds the JSON-RPC response.
    let answer: Value = created
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .find_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .filter(|v| v["id"] == 3)
        .unwrap_or_else(|| panic!("no answer in {created:?}"));
    let w = &answer["result"]["structuredContent"]["webhook"];
    assert!(w.is_object(), "{created}");
    let (url, secret) = (
        w["url"].as_str().unwrap().to_string(),
        w["secret"].as_str().unwrap().to_string(),
    );

    // Thousands of events from 8 senders at once while the stalled session reads nothing.
    const PER_SENDER: usize = 1500;
    let http = reqwest::Client::new();
    let post = move |i: String| {
        let (http, url, secret) = (http.clone(), url.clone(), secret.clone());
        async move {
            let body = common::voyager_body(&i, &"padding ".repeat(40));
            let sig = common::hex_hmac(&secret, body.as_bytes());
            http.post(&url)
                .header("x-webhook-signature", sig)
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let mut tasks = vec![];
    for t in 0..8 {
        let post = post.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..PER_SENDER {
                assert_eq!(post(format!("s{t}-{i}")).await, 200);
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
        .expect("ingestion stalled behind a session that does not read");

    // The live session is still served: after draining what it has, one more event reaches it.
    while tokio::time::timeout(Duration::from_millis(500), heard.recv())
        .await
        .is_ok()
    {}
    assert_eq!(post("last".into()).await, 200);
    tokio::time::timeout(Duration::from_secs(5), heard.recv())
        .await
        .expect("the live session heard nothing after the stalled one filled up")
        .unwrap();

    // The stalled session really was behind all along: its stream held a pile of unread
    // notifications. (Here the kernel's loopback buffers, up to 4 MiB, absorb them before the
    // server would have to drop any; the stdio test fills a 64 KiB pipe and checks that
    // dropped notifications are counted.) Once it reads again it is served as before.
    let mut stalled = BufReader::new(stalled).lines();
    let (mut pending, mut updates) = (0, 0);
    while let Ok(Ok(Some(line))) =
        tokio::time::timeout(Duration::from_millis(1500), stalled.next_line()).await
    {
        pending += line.len() + 1;
        updates += usize::from(line.contains("notifications/resources/updated"));
    }
    assert!(pending > 256 * 1024, "only {pending} bytes were waiting");
    assert!(updates > 500, "{updates}");
    let health =
        common::healthz(&reqwest::Client::new(), &format!("http://127.0.0.1:{port}")).await;
    assert_eq!(
        health["stats"]["events_stored"],
        8 * PER_SENDER + 1,
        "{health}"
    );
}

/// The stdio bridge keeps the client's order where rmcp needs it: `notifications/initialized`
/// written together with the first request (as clients do, back to back) reaches the service
/// first, every time. Each round is a fresh `connect` process.
#[tokio::test(flavor = "multi_thread")]
async fn the_bridge_keeps_initialized_ahead_of_the_first_request() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let s = start(&[]);
    for round in 0..15 {
        let mut bridge = tokio::process::Command::new(BIN)
            .args([
                "connect",
                &format!("{}/mcp", s.base()),
                "--auth-token",
                TOKEN,
            ])
            .env("WEBHOOK_MCP_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut stdin = bridge.stdin.take().unwrap();
        let mut out = BufReader::new(bridge.stdout.take().unwrap()).lines();
        stdin
            .write_all(format!("{}\n", initialize()).as_bytes())
            .await
            .unwrap();
        let line = tokio::time::timeout(Duration::from_secs(10), out.next_line())
            .await
            .expect("initialize answered")
            .unwrap()
            .unwrap();
        assert!(line.contains("\"id\":1"), "{line}");
        let both = concat!(
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            "\n",
            r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
            "\n"
        );
        stdin.write_all(both.as_bytes()).await.unwrap();
        let line = tokio::time::timeout(Duration::from_secs(10), out.next_line())
            .await
            .unwrap_or_else(|_| panic!("round {round}: tools/list never answered"))
            .unwrap()
            .unwrap_or_else(|| panic!("round {round}: the bridge quit"));
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["id"], 2, "round {round}: {line}");
        assert!(v["result"]["tools"]
            .as_array()
            .is_some_and(|t| !t.is_empty()));
        drop(stdin);
        let _ = tokio::time::timeout(Duration::from_secs(5), bridge.wait()).await;
    }
}

/// With a bearer token, the MCP listener's `/metrics` takes it too (it tells traffic, webhook
/// counts and failures); `/healthz` stays open for liveness probes.
#[tokio::test]
async fn metrics_on_the_mcp_listener_take_the_token() {
    let s = start(&[]);
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{}/metrics", s.port);
    let refused = http.get(&url).send().await.unwrap();
    assert_eq!(refused.status().as_u16(), 401);
    assert!(refused.text().await.unwrap().contains("bearer token"));
    let wrong = http.get(&url).bearer_auth("nope").send().await.unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    let scraped = http.get(&url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(scraped.status().as_u16(), 200);
    assert!(scraped.text().await.unwrap().contains("webhook_mcp_"));
    let health = http
        .get(format!("http://127.0.0.1:{}/healthz", s.port))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
}
