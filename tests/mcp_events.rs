//! The MCP Events extension (draft `experimental-ext-triggers-events`) driven with raw JSON-RPC
//! written from the draft, against the real binary over real stdio (list, poll, stream with
//! cancellation) and real HTTP (poll), with events POSTed to the real receiver.

mod common;

use std::time::Duration;

use common::BIN;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};

struct Raw {
    _child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    /// Notifications read while waiting for responses.
    notes: Vec<Value>,
    receiver: String,
    _dir: tempfile::TempDir,
}

impl Raw {
    async fn start() -> Raw {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = tokio::process::Command::new(BIN)
            .args(["serve", "--receiver-addr", &format!("127.0.0.1:{port}")])
            .arg("--data-dir")
            .arg(dir.path())
            .env("WEBHOOK_MCP_LOG", "warn")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut raw = Raw {
            stdin: child.stdin.take().unwrap(),
            lines: BufReader::new(child.stdout.take().unwrap()).lines(),
            _child: child,
            notes: vec![],
            receiver: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        };
        let init = raw
            .request(
                0,
                "initialize",
                json!({"protocolVersion": "2025-06-18", "capabilities": {},
                "clientInfo": {"name": "events-test", "version": "1"}}),
            )
            .await;
        assert_eq!(
            init["result"]["capabilities"]["experimental"]["events"]["listChanged"], false,
            "{init}"
        );
        raw.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        raw
    }

    async fn send(&mut self, msg: Value) {
        let mut line = msg.to_string();
        line.push('\n');
        self.stdin.write_all(line.as_bytes()).await.unwrap();
    }

    async fn next(&mut self, within: Duration) -> Option<Value> {
        let line = tokio::time::timeout(within, self.lines.next_line())
            .await
            .ok()?
            .unwrap()
            .expect("stdout closed");
        Some(serde_json::from_str(&line).unwrap())
    }

    /// Sends a request and returns its response (result or error), keeping notifications.
    async fn request(&mut self, id: i64, method: &str, params: Value) -> Value {
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await;
        loop {
            let msg = self
                .next(Duration::from_secs(10))
                .await
                .unwrap_or_else(|| panic!("no answer to {method} within 10 s"));
            if msg["id"] == id && msg.get("method").is_none() {
                return msg;
            }
            self.notes.push(msg);
        }
    }

    /// The next notification named `method` (earlier ones kept first), within 10 s.
    async fn note(&mut self, method: &str) -> Value {
        if let Some(i) = self.notes.iter().position(|n| n["method"] == method) {
            return self.notes.remove(i);
        }
        loop {
            let msg = self
                .next(Duration::from_secs(10))
                .await
                .unwrap_or_else(|| panic!("no {method} within 10 s"));
            if msg["method"] == method {
                return msg;
            }
            self.notes.push(msg);
        }
    }

    async fn tool(&mut self, id: i64, name: &str, args: Value) -> Value {
        let r = self
            .request(id, "tools/call", json!({"name": name, "arguments": args}))
            .await;
        r["result"]["structuredContent"].clone()
    }

    async fn post(&self, url: &str, provider_id: &str, event: &str) {
        let status = reqwest::Client::new()
            .post(url)
            .header("content-type", "application/json")
            .body(
                json!({"id": provider_id, "event": event, "data": {"n": provider_id}}).to_string(),
            )
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_poll_and_stream_over_stdio() {
    let mut s = Raw::start().await;
    // events/list: the catch-all type and the catalogue's, each with schemas and modes.
    let list = s.request(1, "events/list", json!({})).await;
    let types = list["result"]["events"].as_array().unwrap().clone();
    let all = types
        .iter()
        .find(|t| t["name"] == "webhook.received")
        .unwrap();
    assert_eq!(all["delivery"], json!(["poll", "push"]));
    assert!(all["inputSchema"]["properties"]["webhook_id"].is_object());
    let catalogue = s.tool(2, "list_event_types", json!({})).await;
    let first_type = catalogue["event_types"][0]["event"]
        .as_str()
        .unwrap()
        .to_string();
    let typed = types
        .iter()
        .find(|t| t["name"] == first_type.as_str())
        .unwrap_or_else(|| panic!("{first_type} is not listed"));
    assert_eq!(typed["payloadSchema"]["type"], "object", "{typed}");

    let created = s
        .tool(
            3,
            "create_webhook",
            json!({"direction": "inbound", "provider": "none", "allow_unsigned": true}),
        )
        .await;
    let id = created["webhook"]["id"].as_str().unwrap().to_string();
    let url = format!("{}/hooks/{id}", s.receiver);
    let sub = |cursor: Value| json!({"name": "webhook.received", "arguments": {"webhook_id": id}, "cursor": cursor});

    // A null cursor starts from now: nothing, and a cursor.
    let start = s.request(4, "events/poll", sub(Value::Null)).await;
    assert_eq!(start["result"]["events"], json!([]), "{start}");
    let c0 = start["result"]["cursor"].clone();
    assert!(c0.is_string());
    for n in 1..=3 {
        s.post(&url, &format!("evt_{n}"), "lead.created").await;
    }
    let mut params = sub(c0.clone());
    params["maxEvents"] = json!(2);
    let page1 = s.request(5, "events/poll", params).await["result"].clone();
    assert_eq!(page1["events"].as_array().unwrap().len(), 2, "{page1}");
    assert_eq!(page1["hasMore"], true);
    assert_eq!(page1["truncated"], false);
    let e = &page1["events"][0];
    assert_eq!(e["eventId"], "evt_1", "the provider's id is the eventId");
    assert_eq!(e["name"], "lead.created");
    assert_eq!(e["data"]["data"]["n"], "evt_1");
    assert!(e["timestamp"].as_str().unwrap().ends_with('Z'));
    let page2 = s
        .request(6, "events/poll", sub(page1["cursor"].clone()))
        .await["result"]
        .clone();
    assert_eq!(page2["events"].as_array().unwrap().len(), 1);
    assert_eq!(page2["events"][0]["eventId"], "evt_3");
    assert_eq!(page2["hasMore"], false);
    assert!(page2["nextPollMs"].as_u64().unwrap() >= 1000);
    // Another webhook's events and other types are filtered out; maxAgeMs skips and says so.
    let typed_poll = s
        .request(7, "events/poll", json!({"name": first_type, "cursor": c0}))
        .await;
    assert_eq!(typed_poll["result"]["events"], json!([]), "{typed_poll}");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut aged = sub(c0.clone());
    aged["maxAgeMs"] = json!(1);
    let aged = s.request(8, "events/poll", aged).await["result"].clone();
    assert_eq!(aged["events"], json!([]));
    assert_eq!(aged["truncated"], true);

    // Errors from the draft's table.
    let unknown = s
        .request(9, "events/poll", json!({"name": "no.such", "cursor": null}))
        .await;
    assert_eq!(unknown["error"]["code"], -32011, "{unknown}");
    assert_eq!(unknown["error"]["data"]["kind"], "event");
    let bad_args = s
        .request(
            10,
            "events/poll",
            json!({"name": "webhook.received", "arguments": {"colour": 1}, "cursor": null}),
        )
        .await;
    assert_eq!(bad_args["error"]["code"], -32602, "{bad_args}");
    let webhook_mode = s
        .request(11, "events/subscribe", json!({"name": "webhook.received", "arguments": {},
            "delivery": {"mode": "webhook", "url": "https://example.com/cb", "secret": "whsec_AAAA"}}))
        .await;
    assert_eq!(webhook_mode["error"]["code"], -32014, "{webhook_mode}");

    // Push: a stream from the last cursor confirms, then delivers each new event.
    s.send(json!({"jsonrpc": "2.0", "id": 77, "method": "events/stream", "params": sub(page2["cursor"].clone())}))
        .await;
    let active = s.note("notifications/events/active").await;
    assert_eq!(
        active["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        77
    );
    assert_eq!(active["params"]["truncated"], false);
    s.post(&url, "evt_4", "lead.replied").await;
    let pushed = s.note("notifications/events/event").await;
    assert_eq!(pushed["params"]["eventId"], "evt_4", "{pushed}");
    assert_eq!(
        pushed["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        77
    );
    assert!(pushed["params"]["cursor"].is_string());
    // Cancelled (stdio): nothing more arrives on it.
    s.send(
        json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 77}}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.post(&url, "evt_5", "lead.replied").await;
    let mut late = vec![];
    while let Some(m) = s.next(Duration::from_millis(700)).await {
        late.push(m);
    }
    assert!(
        !late
            .iter()
            .any(|m| m["method"] == "notifications/events/event"),
        "a cancelled stream kept pushing: {late:?}"
    );
    // The server still answers.
    let after = s
        .request(12, "events/poll", sub(pushed["params"]["cursor"].clone()))
        .await;
    assert_eq!(after["result"]["events"][0]["eventId"], "evt_5");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poll_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _child = tokio::process::Command::new(BIN)
        .args([
            "serve",
            "--http",
            &format!("127.0.0.1:{port}"),
            "--receiver-addr",
            "same",
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .env("WEBHOOK_MCP_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let rpc = |session: Option<String>, body: Value| {
        let mut req = http
            .post(format!("{base}/mcp"))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body.to_string());
        if let Some(s) = session {
            req = req
                .header("mcp-session-id", s)
                .header("mcp-protocol-version", "2025-06-18");
        }
        req.send()
    };
    let mut init = None;
    for _ in 0..100 {
        if let Ok(r) = rpc(None, json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}))
        .await
        {
            init = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let session = init.unwrap().headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_string();
    rpc(
        Some(session.clone()),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await
    .unwrap();
    let answer = |text: String| -> Value {
        let data = text
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .find(|d| d.contains("\"id\""))
            .map(str::to_string)
            .unwrap_or(text);
        serde_json::from_str(data.trim()).unwrap()
    };
    let created = answer(
        rpc(Some(session.clone()), json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
            "name": "create_webhook", "arguments": {"direction": "inbound", "provider": "none", "allow_unsigned": true}}}))
        .await
        .unwrap()
        .text()
        .await
        .unwrap(),
    );
    let id = created["result"]["structuredContent"]["webhook"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let start = answer(
        rpc(
            Some(session.clone()),
            json!({"jsonrpc": "2.0", "id": 2, "method": "events/poll",
            "params": {"name": "webhook.received", "cursor": null}}),
        )
        .await
        .unwrap()
        .text()
        .await
        .unwrap(),
    );
    let cursor = start["result"]["cursor"].clone();
    let posted = http
        .post(format!("{base}/hooks/{id}"))
        .header("content-type", "application/json")
        .body(r#"{"id":"h1","event":"call.ended"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 200);
    let page = answer(
        rpc(Some(session), json!({"jsonrpc": "2.0", "id": 3, "method": "events/poll",
            "params": {"name": "webhook.received", "arguments": {"event": "call.ended"}, "cursor": cursor}}))
        .await
        .unwrap()
        .text()
        .await
        .unwrap(),
    );
    assert_eq!(page["result"]["events"][0]["eventId"], "h1", "{page}");
    assert_eq!(page["result"]["events"][0]["name"], "call.ended");
}
