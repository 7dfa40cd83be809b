//! The MCP Events extension (SEP-3415, `io.modelcontextprotocol/events`) driven with raw
//! JSON-RPC written from the SEP, as a 2026-07-28 client speaks it, against the real binary over
//! real stdio (discovery, list, poll, stream with cancellation, webhook mode) and real HTTP
//! (discovery, poll, push on the request's own SSE stream, webhook mode with a bearer principal,
//! on two processes sharing SQLite and on two PostgreSQL instances, revocation at a restart),
//! with events POSTed to the real receiver and a real callback endpoint that verifies every
//! signature. These port the checks of the conformance suite's `src/scenarios/server/events/`
//! (not yet in a released npm version), with the SEP's error codes.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use common::http::HttpServer;
use common::sink::{standard_ok, Received};
use common::BIN;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};

/// The extension's key in `capabilities.extensions`.
const EVENTS: &str = "io.modelcontextprotocol/events";

/// A request as a 2026-07-28 client sends it: the protocol version, capabilities (declaring the
/// extension, as the SEP lets a client) and client info in `params._meta`.
fn modern(id: i64, method: &str, mut params: Value) -> Value {
    if !params.is_object() {
        params = json!({});
    }
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {"extensions": {EVENTS: {}}},
        "io.modelcontextprotocol/clientInfo": {"name": "events-test", "version": "1"},
    });
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

/// The sender's own event type, which an occurrence carries in `_meta` (its `name` is the
/// subscribed type's).
fn sender_type(occurrence: &Value) -> &Value {
    &occurrence["_meta"]["io.github.webhook-mcp/event"]["event"]
}

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
        Raw::start_with(&[], tempfile::tempdir().unwrap()).await
    }

    async fn start_with(extra: &[&str], dir: tempfile::TempDir) -> Raw {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = tokio::process::Command::new(BIN)
            .args(["serve", "--receiver-addr", &format!("127.0.0.1:{port}")])
            .args(extra)
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
        // A 2026-07-28 client: no handshake; `server/discover` finds the extension.
        let found = raw.request(0, "server/discover", json!({})).await;
        assert_eq!(
            found["result"]["capabilities"]["extensions"][EVENTS]["listChanged"], false,
            "{found}"
        );
        assert!(
            found["result"]["capabilities"]["experimental"]["events"].is_null(),
            "not under the sketch's key: {found}"
        );
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

    /// Sends a request (with the 2026-07-28 per-request `_meta`) and returns its response
    /// (result or error), keeping notifications.
    async fn request(&mut self, id: i64, method: &str, params: Value) -> Value {
        self.send(modern(id, method, params)).await;
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

    /// An inbound webhook that takes unsigned events (made with request id `id`): its id and
    /// receive URL.
    async fn unsigned_inbound(&mut self, id: i64) -> (String, String) {
        let created = self
            .tool(
                id,
                "create_webhook",
                json!({"direction": "inbound", "provider": "none", "allow_unsigned": true}),
            )
            .await;
        let hook = created["webhook"]["id"].as_str().unwrap().to_string();
        let url = format!("{}/hooks/{hook}", self.receiver);
        (hook, url)
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
    assert_eq!(list["result"]["resultType"], "complete", "{list}");
    let types = list["result"]["events"].as_array().unwrap().clone();
    let all = types
        .iter()
        .find(|t| t["name"] == "webhook.received")
        .unwrap();
    assert_eq!(all["delivery"], json!(["poll", "push", "webhook"]));
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

    let (id, url) = s.unsigned_inbound(3).await;
    let sub = |cursor: Value| json!({"name": "webhook.received", "arguments": {"webhook_id": id}, "cursor": cursor});

    // A null cursor starts from now: nothing, and a cursor.
    let start = s.request(4, "events/poll", sub(Value::Null)).await;
    assert_eq!(start["result"]["events"], json!([]), "{start}");
    assert_eq!(start["result"]["resultType"], "complete");
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
    assert_eq!(
        e["name"], "webhook.received",
        "the subscribed type's name: {e}"
    );
    assert_eq!(sender_type(e), "lead.created");
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

    // Errors from the SEP's table.
    let unknown = s
        .request(9, "events/poll", json!({"name": "no.such", "cursor": null}))
        .await;
    assert_eq!(unknown["error"]["code"], -32023, "NotFound: {unknown}");
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
    assert_eq!(webhook_mode["error"]["code"], -32602, "{webhook_mode}");
    assert!(
        webhook_mode["error"]["message"]
            .as_str()
            .unwrap()
            .contains("whsec_"),
        "a short secret is refused, saying what a secret must be: {webhook_mode}"
    );

    // Push: a stream from the last cursor confirms, then delivers each new event.
    s.send(modern(77, "events/stream", sub(page2["cursor"].clone())))
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
    assert_eq!(pushed["params"]["name"], "webhook.received");
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
async fn a_legacy_session_neither_sees_nor_reaches_events() {
    // SEP-3415 is defined for 2026-07-28 and later: an `initialize` session (2025-06-18) is not
    // told of it, and its events/* requests are method-not-found.
    let server = HttpServer::start(&[]);
    let http = reqwest::Client::new();
    let post = |session: Option<&str>, body: Value| {
        let mut req = http
            .post(format!("{}/mcp", server.base()))
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
    let sse_answer = |text: String| -> Value {
        let data = text
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .find(|d| d.contains("\"id\""))
            .map(str::to_string)
            .unwrap_or(text);
        serde_json::from_str(data.trim()).unwrap()
    };
    let init = post(None, json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}))
    .await
    .unwrap();
    let session = init.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_string();
    let init = sse_answer(init.text().await.unwrap());
    let caps = &init["result"]["capabilities"];
    assert!(caps["extensions"][EVENTS].is_null(), "{init}");
    assert!(caps["experimental"]["events"].is_null(), "{init}");
    post(
        Some(&session),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await
    .unwrap();
    for (id, method) in [(1, "events/list"), (2, "events/poll")] {
        let answer = sse_answer(
            post(
                Some(&session),
                json!({"jsonrpc": "2.0", "id": id, "method": method,
                    "params": {"name": "webhook.received", "cursor": null}}),
            )
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        );
        assert_eq!(answer["error"]["code"], -32601, "{method}: {answer}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poll_and_push_over_http() {
    let server = HttpServer::start(&[]);
    let rpc = HttpRpc::open(server.base(), None).await;
    let id = rpc.unsigned_inbound(1).await;
    let hook = format!("{}/hooks/{id}", server.base());
    let post = |provider_id: &'static str| {
        let hook = hook.clone();
        async move {
            let status = reqwest::Client::new()
                .post(hook)
                .header("content-type", "application/json")
                .body(json!({"id": provider_id, "event": "call.ended"}).to_string())
                .send()
                .await
                .unwrap()
                .status();
            assert_eq!(status, 200);
        }
    };
    let start = rpc
        .request(
            2,
            "events/poll",
            json!({"name": "webhook.received", "cursor": null}),
        )
        .await;
    assert_eq!(start["result"]["resultType"], "complete", "{start}");
    let cursor = start["result"]["cursor"].clone();
    post("h1").await;
    let page = rpc
        .request(
            3,
            "events/poll",
            json!({"name": "webhook.received",
            "arguments": {"event": "call.ended"}, "cursor": cursor}),
        )
        .await;
    let e = &page["result"]["events"][0];
    assert_eq!(e["eventId"], "h1", "{page}");
    assert_eq!(e["name"], "webhook.received");
    assert_eq!(sender_type(e), "call.ended");

    // Push on Streamable HTTP travels on the events/stream request's own response stream.
    let mut stream = rpc
        .raw(modern(
            9,
            "events/stream",
            json!({"name": "webhook.received",
            "arguments": {"webhook_id": id}, "cursor": page["result"]["cursor"]}),
        ))
        .await;
    assert_eq!(stream.status(), 200);
    assert!(stream.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let mut buffer = String::new();
    let mut frames: Vec<Value> = vec![];
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let mut posted = false;
    while !frames
        .iter()
        .any(|f| f["method"] == "notifications/events/event")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no pushed event: {frames:?}"
        );
        let chunk = tokio::time::timeout(Duration::from_secs(5), stream.chunk())
            .await
            .expect("the stream went quiet")
            .unwrap()
            .expect("the stream ended");
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let frame: String = buffer.drain(..end + 2).collect();
            if let Some(data) = frame.lines().find_map(|l| l.strip_prefix("data:")) {
                if let Ok(v) = serde_json::from_str::<Value>(data.trim()) {
                    frames.push(v);
                }
            }
        }
        if !posted
            && frames
                .iter()
                .any(|f| f["method"] == "notifications/events/active")
        {
            post("h2").await;
            posted = true;
        }
    }
    let active = frames
        .iter()
        .find(|f| f["method"] == "notifications/events/active")
        .unwrap();
    assert_eq!(
        active["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        9
    );
    assert_eq!(active["params"]["truncated"], false);
    let pushed = frames
        .iter()
        .find(|f| f["method"] == "notifications/events/event")
        .unwrap();
    assert_eq!(pushed["params"]["eventId"], "h2", "{pushed}");
    assert_eq!(pushed["params"]["name"], "webhook.received");
    assert_eq!(
        pushed["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        9
    );
    assert!(pushed["params"]["cursor"].is_string());
    drop(stream); // the client ends a push subscription by closing the request
                  // The server goes on answering.
    let after = rpc
        .request(
            4,
            "events/poll",
            json!({"name": "webhook.received", "cursor": null}),
        )
        .await;
    assert_eq!(after["result"]["resultType"], "complete", "{after}");
}

// --- webhook mode (events/subscribe) ------------------------------------------------------

/// A callback endpoint on 127.0.0.1 as the SEP describes one: it echoes a verification's
/// challenge (except under paths containing `noecho`), answers events under `gone` with 410 and
/// under `toolarge` with 413, and records every POST.
#[derive(Clone, Default)]
struct Callback {
    base: String,
    got: Arc<Mutex<Vec<Received>>>,
}

impl Callback {
    async fn start() -> Callback {
        use axum::body::Bytes;
        use axum::extract::{Path, State};
        use axum::http::HeaderMap;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let cb = Callback {
            base: format!("http://{}", listener.local_addr().unwrap()),
            ..Default::default()
        };
        async fn answer(
            State(cb): State<Callback>,
            Path(path): Path<String>,
            headers: HeaderMap,
            body: Bytes,
        ) -> (axum::http::StatusCode, axum::Json<Value>) {
            use axum::http::StatusCode;
            let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            cb.got.lock().unwrap().push(Received {
                path: path.clone(),
                headers,
                body,
                at: std::time::Instant::now(),
            });
            if v["type"] == "verification" && !path.contains("noecho") {
                return (
                    StatusCode::OK,
                    axum::Json(json!({ "challenge": v["challenge"] })),
                );
            }
            // Receivers that refuse an event for good: 410 (stale, processed) and 413 (too big).
            let status = match (v.get("eventId").is_some(), path.as_str()) {
                (true, p) if p.contains("gone") => StatusCode::GONE,
                (true, p) if p.contains("toolarge") => StatusCode::PAYLOAD_TOO_LARGE,
                _ => StatusCode::OK,
            };
            (status, axum::Json(json!({ "ok": true })))
        }
        let app = axum::Router::new()
            .route("/{*path}", axum::routing::post(answer))
            .with_state(cb.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        cb
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.base)
    }

    fn on(&self, path: &str) -> Vec<Received> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    /// The event deliveries (not control bodies) under `path`, waiting for at least `n`.
    async fn events(&self, path: &str, n: usize) -> Vec<(Received, Value)> {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            let got: Vec<(Received, Value)> = self
                .on(path)
                .into_iter()
                .map(|r| {
                    let v: Value = serde_json::from_slice(&r.body).unwrap();
                    (r, v)
                })
                .filter(|(_, v)| v.get("eventId").is_some())
                .collect();
            if got.len() >= n {
                return got;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{path}: {} of {n} deliveries within 15 s",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// What a callback on loopback over plain http needs: the SSRF guard off for loopback, and the
/// development flag for http (SEP-3415 requires https).
const CALLBACK_FLAGS: [&str; 2] = [
    "--allow-private-targets",
    "--dangerously-allow-http-callbacks",
];

fn client_secret(byte: u8) -> String {
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode([byte; 32])
    )
}

fn header<'a>(r: &'a Received, name: &str) -> &'a str {
    r.headers
        .get(name)
        .map(|v| v.to_str().unwrap())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_mode_over_stdio() {
    let cb = Callback::start().await;
    let mut s = Raw::start_with(&CALLBACK_FLAGS, tempfile::tempdir().unwrap()).await;
    let (_, hook_url) = s.unsigned_inbound(1).await;
    let secret = client_secret(7);
    let sub = |url: String, args: Value, cursor: Value| {
        json!({"name": "webhook.received", "arguments": args,
            "delivery": {"mode": "webhook", "url": url, "secret": secret},
            "cursor": cursor, "ttlMs": 120000})
    };

    // Subscribe: the endpoint is verified first, with a signed challenge it echoes.
    let before = chrono::Utc::now();
    let first = s
        .request(
            2,
            "events/subscribe",
            sub(cb.url("a"), json!({}), Value::Null),
        )
        .await["result"]
        .clone();
    let id = first["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("sub_"), "{first}");
    assert_eq!(first["resultType"], "complete");
    let refresh_before: chrono::DateTime<chrono::Utc> =
        first["refreshBefore"].as_str().unwrap().parse().unwrap();
    let granted = (refresh_before - before).num_seconds();
    assert!(
        (100..=121).contains(&granted),
        "ttlMs 120000 granted as {granted} s"
    );
    assert_eq!(first["truncated"], false);
    let start_cursor = first["cursor"].clone();
    assert!(start_cursor.is_string());
    let verification = cb.on("a");
    assert_eq!(verification.len(), 1, "one verification POST");
    let body: Value = serde_json::from_slice(&verification[0].body).unwrap();
    assert_eq!(body["type"], "verification");
    assert!(
        standard_ok(&secret, &verification[0]),
        "signed with the client's secret"
    );
    assert_eq!(header(&verification[0], "x-mcp-subscription-id"), id);
    assert!(header(&verification[0], "webhook-id").starts_with("msg_verification_"));

    // An event the receiver stores is POSTed as an occurrence, signed, eventId as webhook-id.
    s.post(&hook_url, "evt_w1", "lead.replied").await;
    let got = cb.events("a", 1).await;
    let (r, occurrence) = &got[0];
    assert_eq!(occurrence["eventId"], "evt_w1");
    assert_eq!(occurrence["name"], "webhook.received");
    assert_eq!(sender_type(occurrence), "lead.replied");
    assert_eq!(occurrence["data"]["data"]["n"], "evt_w1");
    assert!(occurrence["cursor"].is_string(), "{occurrence}");
    assert_eq!(header(r, "webhook-id"), "evt_w1");
    assert_eq!(header(r, "x-mcp-subscription-id"), id);
    assert!(standard_ok(&secret, r));
    assert!(
        r.headers.get("x-webhook-signature").is_none(),
        "the MCP profile sends Standard Webhooks headers only"
    );

    // A refresh: same id, no second challenge, the delivery status and a watermark cursor.
    // (The callback has the POST; the worker may not have committed its success yet.)
    let mut again = Value::Null;
    for attempt in 0..100 {
        again = s
            .request(
                100 + attempt,
                "events/subscribe",
                sub(cb.url("a"), json!({}), Value::Null),
            )
            .await["result"]
            .clone();
        if again["deliveryStatus"]["lastDeliveryAt"].is_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(again["id"], id.as_str());
    let status = &again["deliveryStatus"];
    assert_eq!(status["active"], true, "{again}");
    assert!(status["lastDeliveryAt"].is_string(), "{again}");
    assert_eq!(status["lastError"], Value::Null);
    assert_eq!(
        again["cursor"], occurrence["cursor"],
        "nothing is in flight: the watermark is the event's position"
    );
    // Other arguments, same URL and principal: another subscription, no new challenge.
    let typed = s
        .request(
            4,
            "events/subscribe",
            sub(cb.url("a"), json!({"event": "lead.replied"}), Value::Null),
        )
        .await["result"]
        .clone();
    assert_ne!(typed["id"], id.as_str());
    let challenges = |cb: &Callback, path: &str| {
        cb.on(path)
            .iter()
            .filter(|r| serde_json::from_slice::<Value>(&r.body).unwrap()["type"] == "verification")
            .count()
    };
    assert_eq!(
        challenges(&cb, "a"),
        1,
        "verification is per (principal, url)"
    );
    s.post(&hook_url, "evt_w2", "lead.replied").await;
    let got = cb.events("a", 3).await;
    let for_w2: Vec<&str> = got
        .iter()
        .filter(|(_, v)| v["eventId"] == "evt_w2")
        .map(|(r, _)| header(r, "x-mcp-subscription-id"))
        .collect();
    assert_eq!(for_w2.len(), 2, "each subscription gets its copy");
    assert_ne!(for_w2[0], for_w2[1]);

    // Unsubscribe stops delivery; a second unsubscribe finds nothing.
    let unsub = |args: Value| json!({"name": "webhook.received", "arguments": args, "delivery": {"url": cb.url("a")}});
    let gone = s.request(5, "events/unsubscribe", unsub(json!({}))).await;
    assert_eq!(gone["result"], json!({"resultType": "complete"}), "{gone}");
    let again = s.request(6, "events/unsubscribe", unsub(json!({}))).await;
    assert_eq!(again["error"]["code"], -32023, "NotFound: {again}");
    assert_eq!(again["error"]["data"]["kind"], "subscription");
    s.request(
        7,
        "events/unsubscribe",
        unsub(json!({"event": "lead.replied"})),
    )
    .await;
    s.post(&hook_url, "evt_w3", "lead.replied").await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        cb.events("a", 3).await.len(),
        3,
        "nothing after unsubscribe"
    );

    // A new subscription from an old cursor replays what came after it, in order.
    let replay = s
        .request(
            8,
            "events/subscribe",
            sub(cb.url("b"), json!({}), start_cursor),
        )
        .await;
    assert_eq!(replay["result"]["truncated"], false, "{replay}");
    let replayed: Vec<Value> = cb
        .events("b", 3)
        .await
        .into_iter()
        .map(|(_, v)| v["eventId"].clone())
        .collect();
    let mut sorted = replayed.clone();
    sorted.sort_by_key(|v| v.as_str().unwrap().to_string());
    assert_eq!(sorted, vec!["evt_w1", "evt_w2", "evt_w3"]);

    // Endpoints that fail verification, and requests the SEP calls invalid.
    let noecho = s
        .request(
            9,
            "events/subscribe",
            sub(cb.url("noecho"), json!({}), Value::Null),
        )
        .await;
    assert_eq!(
        noecho["error"]["code"], -32027,
        "CallbackEndpointError: {noecho}"
    );
    assert_eq!(noecho["error"]["data"]["reason"], "challenge_failed");
    let closed = format!("http://127.0.0.1:{}/x", common::http::free_port());
    let refused = s
        .request(10, "events/subscribe", sub(closed, json!({}), Value::Null))
        .await;
    assert_eq!(refused["error"]["code"], -32027, "{refused}");
    assert_eq!(refused["error"]["data"]["reason"], "connection_refused");
    let mut push = sub(cb.url("c"), json!({}), Value::Null);
    push["delivery"]["mode"] = json!("push");
    let push = s.request(11, "events/subscribe", push).await;
    assert_eq!(push["error"]["code"], -32602, "{push}");
    let mut unknown = sub(cb.url("c"), json!({}), Value::Null);
    unknown["name"] = json!("no.such");
    let unknown = s.request(12, "events/subscribe", unknown).await;
    assert_eq!(unknown["error"]["code"], -32023, "{unknown}");
    assert!(
        cb.on("c").is_empty(),
        "nothing is sent for a refused request"
    );

    // The webhook tools do not see or touch a subscription's delivery row.
    let listed = s.tool(13, "list_webhooks", json!({})).await;
    assert!(
        !listed.to_string().contains("sub_"),
        "subscriptions are not webhooks: {listed}"
    );
}

/// Raw JSON-RPC over Streamable HTTP as a 2026-07-28 client (stateless: every POST carries
/// its own `_meta`), with an optional bearer token.
struct HttpRpc {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl HttpRpc {
    async fn open(base: String, token: Option<&str>) -> HttpRpc {
        let rpc = HttpRpc {
            base,
            token: token.map(str::to_string),
            http: reqwest::Client::new(),
        };
        let found = rpc.request(0, "server/discover", json!({})).await;
        assert_eq!(
            found["result"]["capabilities"]["extensions"][EVENTS]["listChanged"], false,
            "{found}"
        );
        rpc
    }

    /// An inbound webhook that takes unsigned events (made with request id `id`): its id.
    async fn unsigned_inbound(&self, id: i64) -> String {
        let made = self
            .request(
                id,
                "tools/call",
                json!({"name": "create_webhook", "arguments": {"direction": "inbound", "provider": "none", "allow_unsigned": true}}),
            )
            .await;
        made["result"]["structuredContent"]["webhook"]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("no webhook made: {made}"))
            .to_string()
    }

    async fn raw(&self, body: Value) -> reqwest::Response {
        let mut req = self
            .http
            .post(format!("{}/mcp", self.base))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", body["method"].as_str().unwrap_or_default())
            .body(body.to_string());
        if let Some(name) = body["params"]["name"].as_str() {
            if body["method"] == "tools/call" {
                req = req.header("mcp-name", name);
            }
        }
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        req.send().await.unwrap()
    }

    async fn request(&self, id: i64, method: &str, params: Value) -> Value {
        let text = self
            .raw(modern(id, method, params))
            .await
            .text()
            .await
            .unwrap();
        let data = text
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .find(|d| d.contains("\"id\""))
            .map(str::to_string)
            .unwrap_or(text);
        serde_json::from_str(data.trim()).unwrap()
    }
}

fn webhook_params(url: String, secret: &str) -> Value {
    json!({"name": "webhook.received", "arguments": {},
        "delivery": {"mode": "webhook", "url": url, "secret": secret}, "cursor": null})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_mode_over_http_needs_an_authenticated_principal() {
    // Without --auth-token there is no principal to key a subscription on: webhook mode is
    // not offered (poll and push are), and a subscribe is Forbidden.
    let cb = Callback::start().await;
    let open = HttpServer::start(&CALLBACK_FLAGS);
    let anonymous = HttpRpc::open(open.base(), None).await;
    let list = anonymous.request(1, "events/list", json!({})).await;
    for t in list["result"]["events"].as_array().unwrap() {
        assert_eq!(t["delivery"], json!(["poll", "push"]), "{t}");
    }
    let refused = anonymous
        .request(
            1,
            "events/subscribe",
            webhook_params(cb.url("x"), &client_secret(9)),
        )
        .await;
    assert_eq!(refused["error"]["code"], -32024, "Forbidden: {refused}");
    assert!(cb.on("x").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_mode_delivers_each_event_once_across_processes_on_sqlite() {
    let flags = [
        CALLBACK_FLAGS[0],
        CALLBACK_FLAGS[1],
        "--auth-token",
        "tok-1",
    ];
    let one = HttpServer::start(&flags);
    let two = HttpServer::sharing(&one, &flags);
    delivers_each_event_once(&one, &two).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_mode_delivers_each_event_once_across_instances_on_postgres() {
    let Some(schema) = common::pg::TestSchema::create("mcp_events::webhook_mode_on_postgres").await
    else {
        return;
    };
    let flags = [
        CALLBACK_FLAGS[0],
        CALLBACK_FLAGS[1],
        "--auth-token",
        "tok-1",
        "--database-url",
        schema.url.as_str(),
        "--secrets-key",
        common::pg::SECRETS_KEY,
    ];
    let one = HttpServer::start(&flags);
    let two = HttpServer::start(&flags);
    delivers_each_event_once(&one, &two).await;
}

/// One subscription made over HTTP on `one`; events received by both processes, each of which
/// pumps the subscription: the callback gets every event exactly once.
async fn delivers_each_event_once(one: &HttpServer, two: &HttpServer) {
    let cb = Callback::start().await;
    let secret = client_secret(9);
    let rpc = HttpRpc::open(one.base(), Some("tok-1")).await;
    let hook = rpc.unsigned_inbound(2).await;
    let subscribed = rpc
        .request(3, "events/subscribe", webhook_params(cb.url("m"), &secret))
        .await;
    let id = subscribed["result"]["id"].as_str().unwrap().to_string();
    // Another session with the same token, on the other process: the same principal, so the
    // same subscription.
    let other = rpc_with(two, "tok-1").await;
    let same = other
        .request(4, "events/subscribe", webhook_params(cb.url("m"), &secret))
        .await;
    assert_eq!(same["result"]["id"], id.as_str(), "{same}");

    let http = reqwest::Client::new();
    let n = 20;
    for i in 0..n {
        let base = if i % 2 == 0 { one.base() } else { two.base() };
        let status = http
            .post(format!("{base}/hooks/{hook}"))
            .header("content-type", "application/json")
            .body(json!({"id": format!("m{i}"), "event": "call.ended"}).to_string())
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200);
    }
    let got = cb.events("m", n).await;
    // Both processes pump the same subscription; give a duplicate time to show up.
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let got_after = cb.events("m", n).await;
    assert_eq!(got.len(), got_after.len());
    let mut ids: Vec<String> = got_after
        .iter()
        .map(|(_, v)| v["eventId"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "every event once: {ids:?}");
    assert_eq!(got_after.len(), n, "and no event twice");
    for (r, _) in &got_after {
        assert!(standard_ok(&secret, r));
        assert_eq!(header(r, "x-mcp-subscription-id"), id);
    }
}

async fn rpc_with(server: &HttpServer, token: &str) -> HttpRpc {
    HttpRpc::open(server.base(), Some(token)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_mode_is_not_offered_read_only() {
    let cb = Callback::start().await;
    let mut s = Raw::start_with(
        &["--read-only", CALLBACK_FLAGS[0], CALLBACK_FLAGS[1]],
        tempfile::tempdir().unwrap(),
    )
    .await;
    let list = s.request(1, "events/list", json!({})).await;
    for t in list["result"]["events"].as_array().unwrap() {
        assert_eq!(t["delivery"], json!(["poll", "push"]), "{t}");
    }
    let refused = s
        .request(
            2,
            "events/subscribe",
            webhook_params(cb.url("r"), &client_secret(3)),
        )
        .await;
    assert_eq!(refused["error"]["code"], -32026, "Unsupported: {refused}");
    assert_eq!(refused["error"]["data"]["value"], "webhook");
    assert!(cb.on("r").is_empty(), "nothing was POSTed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_delivery_follows_the_sep_profile() {
    // 410 and 413 end that delivery only (no retry, the subscription stays active), and a body
    // stays within 256 KiB: a larger payload goes out as a reference to fetch.
    let cb = Callback::start().await;
    let mut s = Raw::start_with(&CALLBACK_FLAGS, tempfile::tempdir().unwrap()).await;
    let (_, hook_url) = s.unsigned_inbound(1).await;
    let secret = client_secret(5);
    let sub = |path: &str| {
        json!({"name": "webhook.received", "arguments": {},
            "delivery": {"mode": "webhook", "url": cb.url(path), "secret": secret}, "cursor": null})
    };
    for (i, path) in ["gone", "toolarge", "fine"].iter().enumerate() {
        let made = s
            .request(10 + i as i64, "events/subscribe", sub(path))
            .await;
        assert!(made["result"]["id"].is_string(), "{made}");
    }
    s.post(&hook_url, "small_1", "lead.replied").await;
    let blob = "x".repeat(300 * 1024);
    let status = reqwest::Client::new()
        .post(&hook_url)
        .header("content-type", "application/json")
        .body(json!({"id": "big_1", "event": "lead.replied", "data": {"blob": blob}}).to_string())
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);

    let fine = cb.events("fine", 2).await;
    let (r, big) = fine
        .iter()
        .find(|(_, v)| v["eventId"] == "big_1")
        .expect("the large event is delivered");
    assert!(r.body.len() <= 256 * 1024, "a {} byte body", r.body.len());
    assert_eq!(big["data"], json!({}), "the payload is left out");
    let omitted = &big["_meta"]["io.github.webhook-mcp/event"]["payloadOmitted"];
    assert!(
        omitted["payloadBytes"].as_u64().unwrap() > 300 * 1024,
        "{omitted}"
    );
    assert!(standard_ok(&secret, r), "still signed over the body sent");

    cb.events("gone", 2).await;
    cb.events("toolarge", 2).await;
    // The first retry would come 4 to 6 s after a failure: wait past it.
    tokio::time::sleep(Duration::from_secs(7)).await;
    for path in ["gone", "toolarge"] {
        let got = cb.events(path, 2).await;
        assert_eq!(got.len(), 2, "{path}: each event once, never retried");
    }
    let refreshed = s.request(20, "events/subscribe", sub("gone")).await;
    let status = &refreshed["result"]["deliveryStatus"];
    assert_eq!(
        status["active"], true,
        "410 leaves the subscription alone: {refreshed}"
    );
    assert_eq!(status["lastError"], "http_4xx", "{refreshed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_is_not_a_webhook_and_http_callbacks_need_the_development_flag() {
    let cb = Callback::start().await;
    let mut s = Raw::start_with(&CALLBACK_FLAGS, tempfile::tempdir().unwrap()).await;
    let params = webhook_params(cb.url("own"), &client_secret(4));
    let made = s.request(1, "events/subscribe", params.clone()).await;
    let id = made["result"]["id"].as_str().unwrap().to_string();
    // No webhook tool reaches it: not found, and it lives on unchanged.
    for (n, tool) in [
        (2, "delete_webhook"),
        (3, "rotate_secret"),
        (4, "get_webhook"),
        (5, "test_webhook"),
    ] {
        let r = s
            .request(
                n,
                "tools/call",
                json!({"name": tool, "arguments": {"id": id}}),
            )
            .await;
        assert_eq!(
            r["result"]["isError"], true,
            "{tool} acted on a subscription: {r}"
        );
    }
    let refreshed = s.request(6, "events/subscribe", params).await;
    assert_eq!(refreshed["result"]["id"], id.as_str());
    assert!(
        refreshed["result"]["deliveryStatus"].is_object(),
        "still the same live subscription: {refreshed}"
    );
    // rotate_secret changed nothing: deliveries are still signed with the client's secret.
    let (_, hook_url) = s.unsigned_inbound(7).await;
    s.post(&hook_url, "own_1", "lead.replied").await;
    let got = cb.events("own", 1).await;
    assert!(
        standard_ok(&client_secret(4), &got[0].0),
        "signed with the client's secret"
    );

    // Without --dangerously-allow-http-callbacks an http:// callback is refused (https only).
    let mut strict =
        Raw::start_with(&["--allow-private-targets"], tempfile::tempdir().unwrap()).await;
    let refused = strict
        .request(
            1,
            "events/subscribe",
            webhook_params(cb.url("plain"), &client_secret(4)),
        )
        .await;
    assert_eq!(refused["error"]["code"], -32602, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("https"),
        "{refused}"
    );
    assert!(cb.on("plain").is_empty(), "nothing was POSTed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_whose_principal_is_gone_is_terminated_at_restart() {
    // A no-expiry subscription made with alice's named token; the server restarts with a
    // tokens file without her. The principal no longer exists: its subscription gets a signed
    // `terminated` envelope (SEP: Forbidden) and nothing more.
    let cb = Callback::start().await;
    let secret = client_secret(6);
    let files = tempfile::tempdir().unwrap();
    let tokens = files.path().join("tokens");
    std::fs::write(&tokens, "alice tok-A-0123456789abcdef\n").unwrap();
    let tokens = tokens.to_str().unwrap();
    let mut one = HttpServer::start(&[
        CALLBACK_FLAGS[0],
        CALLBACK_FLAGS[1],
        "--auth-tokens-file",
        tokens,
    ]);
    let rpc = HttpRpc::open(one.base(), Some("tok-A-0123456789abcdef")).await;
    let hook = rpc.unsigned_inbound(1).await;
    let mut params = webhook_params(cb.url("rev"), &secret);
    params["ttlMs"] = Value::Null;
    let subscribed = rpc.request(2, "events/subscribe", params).await;
    assert_eq!(
        subscribed["result"]["refreshBefore"],
        Value::Null,
        "no expiry: {subscribed}"
    );
    let id = subscribed["result"]["id"].as_str().unwrap().to_string();
    one.child.kill().unwrap();
    one.child.wait().unwrap();

    std::fs::write(files.path().join("tokens"), "bob tok-B-0123456789abcdef\n").unwrap();
    let two = HttpServer::sharing(
        &one,
        &[
            CALLBACK_FLAGS[0],
            CALLBACK_FLAGS[1],
            "--auth-tokens-file",
            tokens,
        ],
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let terminated = loop {
        let found = cb
            .on("rev")
            .into_iter()
            .find(|r| serde_json::from_slice::<Value>(&r.body).unwrap()["type"] == "terminated");
        if let Some(r) = found {
            break r;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no terminated envelope within 15 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let body: Value = serde_json::from_slice(&terminated.body).unwrap();
    assert_eq!(body["error"]["code"], -32024, "Forbidden: {body}");
    assert!(body["error"]["message"].is_string());
    assert!(
        standard_ok(&secret, &terminated),
        "signed like any delivery"
    );
    assert_eq!(header(&terminated, "x-mcp-subscription-id"), id);
    assert!(header(&terminated, "webhook-id").starts_with("msg_terminated_"));
    // Gone: an event the new process receives is not delivered to it.
    let status = reqwest::Client::new()
        .post(format!("{}/hooks/{hook}", two.base()))
        .header("content-type", "application/json")
        .body(r#"{"id":"after","event":"call.ended"}"#)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(3000)).await;
    assert!(
        cb.on("rev").iter().all(|r| {
            serde_json::from_slice::<Value>(&r.body)
                .unwrap()
                .get("eventId")
                .is_none()
        }),
        "a terminated subscription was delivered to"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_filters_are_a_subscription_argument_of_every_mode() {
    // `filter` is in every type's inputSchema; poll returns only matching events and moves the
    // cursor past the others; a webhook subscription (whose arguments the pump reads back from
    // the store) delivers only matching events; a bad filter is InvalidParams.
    let cb = Callback::start().await;
    let mut s = Raw::start_with(&CALLBACK_FLAGS, tempfile::tempdir().unwrap()).await;
    let listed = s.request(1, "events/list", json!({})).await;
    for t in listed["result"]["events"].as_array().unwrap() {
        let filter = &t["inputSchema"]["properties"]["filter"];
        assert_eq!(filter["type"], "object", "{}: {filter}", t["name"]);
    }
    let (id, url) = s.unsigned_inbound(2).await;
    let filter = json!({"data.n": {"$in": ["evt_2", "evt_4"]}});
    let args = json!({"webhook_id": id, "filter": filter});
    let secret = client_secret(7);
    let made = s
        .request(
            3,
            "events/subscribe",
            json!({"name": "webhook.received", "arguments": args,
                "delivery": {"mode": "webhook", "url": cb.url("jane"), "secret": secret}, "cursor": null}),
        )
        .await;
    assert!(made["result"]["id"].is_string(), "{made}");
    let start = s
        .request(
            4,
            "events/poll",
            json!({"name": "webhook.received", "arguments": args, "cursor": null}),
        )
        .await;
    let c0 = start["result"]["cursor"].clone();
    for n in 1..=5 {
        s.post(&url, &format!("evt_{n}"), "lead.created").await;
    }
    let page = s
        .request(
            5,
            "events/poll",
            json!({"name": "webhook.received", "arguments": args, "cursor": c0}),
        )
        .await["result"]
        .clone();
    let ids: Vec<&str> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["eventId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["evt_2", "evt_4"], "{page}");
    assert_eq!(page["hasMore"], false);
    let again = s
        .request(
            6,
            "events/poll",
            json!({"name": "webhook.received", "arguments": args, "cursor": page["cursor"]}),
        )
        .await;
    assert_eq!(
        again["result"]["events"],
        json!([]),
        "evt_5 was skipped for good: {again}"
    );

    cb.events("jane", 2).await;
    // A wrongly delivered evt_1, evt_3 or evt_5 would have come by now.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let delivered = cb.events("jane", 0).await;
    let ids: Vec<&Value> = delivered.iter().map(|(_, v)| &v["eventId"]).collect();
    assert_eq!(ids, [&json!("evt_2"), &json!("evt_4")]);
    assert!(delivered.iter().all(|(r, _)| standard_ok(&secret, r)));

    let bad = s
        .request(
            7,
            "events/poll",
            json!({"name": "webhook.received", "arguments": {"filter": {"data.n": {"$gtt": 1}}}, "cursor": null}),
        )
        .await;
    assert_eq!(bad["error"]["code"], -32602, "{bad}");
    let message = bad["error"]["message"].as_str().unwrap();
    assert!(message.contains("`$gtt` is not an operator"), "{message}");
}
