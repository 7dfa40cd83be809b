//! The HTTP transport stays bounded, on the real binary over real TCP: a flood of `initialize`
//! requests meets the session cap (503 with Retry-After and a JSON-RPC error, memory bounded),
//! a closed session frees its place, and idle sessions are sent nothing per event.

mod common;

use std::time::{Duration, Instant};

use common::http::HttpServer;
use serde_json::{json, Value};

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

struct Mcp {
    http: reqwest::Client,
    url: String,
}

impl Mcp {
    fn new(port: u16) -> Mcp {
        Mcp {
            http: reqwest::Client::new(),
            url: format!("http://127.0.0.1:{port}/mcp"),
        }
    }

    fn post(&self, session: Option<&str>, body: Value) -> reqwest::RequestBuilder {
        let mut req = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body.to_string());
        if let Some(s) = session {
            req = req
                .header("mcp-session-id", s)
                .header("mcp-protocol-version", "2025-06-18");
        }
        req
    }

    /// `initialize`: the session id, or the refusal's status, headers and body.
    async fn initialize(&self, id: u64) -> Result<String, (u16, Option<String>, Value)> {
        let resp = self
            .post(
                None,
                json!({"jsonrpc": "2.0", "id": id, "method": "initialize", "params": {
                    "protocolVersion": "2025-06-18", "capabilities": {},
                    "clientInfo": {"name": "flood", "version": "1"}}}),
            )
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        if let Some(sid) = resp.headers().get("mcp-session-id") {
            let sid = sid.to_str().unwrap().to_string();
            let _ = resp.bytes().await;
            self.post(
                Some(&sid),
                json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
            )
            .send()
            .await
            .unwrap();
            return Ok(sid);
        }
        let retry = resp
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_string());
        let body = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap_or(Value::Null);
        Err((status, retry, body))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_initialize_flood_meets_the_session_cap_and_memory_stays_bounded() {
    let server = HttpServer::start(&["--max-sessions", "20"]);
    let mcp = Mcp::new(server.port);
    let first = mcp.initialize(1).await.expect("the first session opens");
    let rss_before = rss_kib(server.child.id());
    let mut opened = vec![first];
    let mut refused = 0;
    for n in 0..2000u64 {
        match mcp.initialize(n + 2).await {
            Ok(sid) => opened.push(sid),
            Err((status, retry, body)) => {
                refused += 1;
                assert_eq!(status, 503, "{body}");
                assert!(retry.is_some(), "a 503 carries Retry-After");
                assert_eq!(body["id"], n + 2, "{body}");
                assert!(
                    body["error"]["message"]
                        .as_str()
                        .unwrap()
                        .contains("--max-sessions"),
                    "{body}"
                );
            }
        }
    }
    let rss_after = rss_kib(server.child.id());
    assert_eq!(opened.len(), 20, "exactly the cap is open");
    assert_eq!(refused, 2000 + 1 - 20);
    eprintln!("RSS {rss_before} KiB -> {rss_after} KiB after 2000 refused initializes");
    assert!(
        rss_after < rss_before + 30 * 1024,
        "RSS grew from {rss_before} to {rss_after} KiB"
    );
    // Closing a session frees its place.
    let closed = mcp
        .http
        .delete(&mcp.url)
        .header("mcp-session-id", &opened[0])
        .header("mcp-protocol-version", "2025-06-18")
        .send()
        .await
        .unwrap();
    assert!(closed.status().is_success(), "{}", closed.status());
    let mut reopened = false;
    for n in 0..50 {
        if mcp.initialize(10_000 + n).await.is_ok() {
            reopened = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(reopened, "a closed session's place was not freed");
}

/// An idle session (initialized, subscribed to nothing) is sent nothing when events arrive;
/// a subscribed one is told of each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sessions_are_sent_nothing_per_event() {
    let server = HttpServer::start(&[]);
    let mcp = Mcp::new(server.port);
    let idle = mcp.initialize(1).await.unwrap();
    let busy = mcp.initialize(2).await.unwrap();
    // Each session's standalone stream: what the server pushes to it.
    let open_stream = |sid: String| {
        let req = mcp
            .http
            .get(&mcp.url)
            .header("accept", "text/event-stream")
            .header("mcp-session-id", sid)
            .header("mcp-protocol-version", "2025-06-18");
        async move {
            let mut resp = req.send().await.unwrap();
            assert!(resp.status().is_success());
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<String>();
            tokio::spawn(async move {
                while let Ok(Some(chunk)) = resp.chunk().await {
                    let _ = tx.send(String::from_utf8_lossy(&chunk).into_owned());
                }
            });
            rx
        }
    };
    let mut idle_stream = open_stream(idle.clone()).await;
    let mut busy_stream = open_stream(busy.clone()).await;
    // Creating the webhook changes the resource list: both sessions hear that.
    let created = mcp
        .post(
            Some(&busy),
            json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
                "name": "create_webhook",
                "arguments": {"direction": "inbound", "provider": "none", "allow_unsigned": true}}}),
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let url = created
        .split("\"url\":\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .map(str::to_string)
        .or_else(|| {
            created
                .split("\\\"url\\\":\\\"")
                .nth(1)
                .and_then(|rest| rest.split("\\\"").next())
                .map(str::to_string)
        })
        .unwrap_or_else(|| panic!("no url in {created}"));
    mcp.post(
        Some(&busy),
        json!({"jsonrpc": "2.0", "id": 4, "method": "resources/subscribe",
               "params": {"uri": "webhook://events"}}),
    )
    .send()
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let drain = |rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>| {
        let mut all = String::new();
        while let Ok(s) = rx.try_recv() {
            all.push_str(&s);
        }
        all
    };
    assert!(drain(&mut idle_stream).contains("notifications/resources/list_changed"));
    drain(&mut busy_stream);
    for n in 0..20 {
        let r = mcp
            .http
            .post(&url)
            .header("content-type", "application/json")
            .body(json!({"event": "lead.created", "n": n}).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let to_idle = drain(&mut idle_stream);
    let to_busy = drain(&mut busy_stream);
    assert!(
        to_busy.contains("notifications/resources/updated"),
        "the subscribed session was not told: {to_busy:.500}"
    );
    assert!(
        !to_idle.contains("notifications/"),
        "an idle session was sent notifications per event: {to_idle:.500}"
    );
}

/// A sender dribbling its headers one byte a second is cut off after the header-read timeout
/// (10 s), while a normal request on another connection is served meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_header_sender_is_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = HttpServer::start(&[]);
    let mut slow = tokio::net::TcpStream::connect(("127.0.0.1", server.port))
        .await
        .unwrap();
    slow.write_all(b"POST /hooks/x HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        .await
        .unwrap();
    let started = Instant::now();
    let (mut read, mut write) = slow.into_split();
    let dribble = tokio::spawn(async move {
        while write.write_all(b"a").await.is_ok() {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    let health = reqwest::get(format!("http://127.0.0.1:{}/healthz", server.port))
        .await
        .unwrap();
    assert!(health.status().is_success());
    let mut buf = [0u8; 512];
    let closed = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    let took = started.elapsed();
    dribble.abort();
    assert!(closed.is_ok(), "the connection was still open after 20 s");
    assert!(took >= Duration::from_secs(9), "closed too early: {took:?}");
}

/// Issue 21, step 7: a POST to /mcp whose body stalls gets 408 after the request timeout
/// (`--receiver-timeout`, here 1 s) instead of holding its connection and buffer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_mcp_body_gets_408() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = HttpServer::start(&["--receiver-timeout", "1"]);
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", server.port))
        .await
        .unwrap();
    conn.write_all(
        b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
          Accept: application/json, text/event-stream\r\nContent-Length: 1000\r\n\r\n{\"jsonrpc\":",
    )
    .await
    .unwrap();
    let started = Instant::now();
    let mut answer = vec![];
    let read = tokio::time::timeout(Duration::from_secs(15), conn.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "no answer within 15 s");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("did not arrive within 1 s"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(10));
}
