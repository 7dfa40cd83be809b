//! JSON-RPC robustness on the real binary: generated messages, valid and malformed (nesting too
//! deep, lone surrogates, wrong param shapes, wrong versions, truncated JSON, binary junk), sent
//! over real stdio and real Streamable HTTP. Every message that carries a readable id must get
//! an answer with that id; the server must stay up and keep serving.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::BIN;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// A small deterministic generator (the same messages on every run).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One message whose top-level `"id"` comes first, so that it stays readable whatever
/// follows it.
fn message(rng: &mut Rng, id: i64) -> String {
    let head = format!(r#"{{"id":{id},"jsonrpc":"2.0","#);
    let call = |args: &str| {
        format!(
            r#"{head}"method":"tools/call","params":{{"name":"get_webhook","arguments":{args}}}}}"#
        )
    };
    match rng.below(12) {
        0 => format!(r#"{head}"method":"ping"}}"#),
        1 => {
            let n = 60 + rng.below(400) as usize;
            call(&format!(r#"{{"id":{}{}}}"#, "[".repeat(n), "]".repeat(n)))
        }
        2 => call(r#"{"id":"\ud800"}"#),
        3 => call(r#"{"id":"a\udfffb"}"#),
        4 => format!(
            r#"{head}"method":"tools/call","params":{}}}"#,
            ["\"x\"", "5", "[1,2]", "null", "{\"name\":5}", "{}"][rng.below(6) as usize]
        ),
        5 => call(r#"{"id":5}"#),
        6 => format!(r#"{{"id":{id},"jsonrpc":"1.0","method":"ping"}}"#),
        7 => format!(r#"{head}"method":"no/such/method"}}"#),
        8 => {
            // Truncated somewhere after the id.
            let full = call(r#"{"id":"wh_x"}"#);
            let cut = head.len() + rng.below((full.len() - head.len()) as u64) as usize;
            full[..cut].to_string()
        }
        9 => format!(r#"{head}"result":{{}},"method":5}}"#),
        10 => {
            let mut junk = String::new();
            for _ in 0..rng.below(40) {
                junk.push(char::from(b'!' + rng.below(90) as u8));
            }
            format!(
                r#"{head}"method":"tools/call","params":{{"name":"get_webhook","arguments":{{"id":{junk}"#
            )
        }
        _ => call(r#"{"id":"wh_missing"}"#),
    }
}

fn messages(seed: u64, n: i64) -> Vec<(i64, String)> {
    let mut rng = Rng(seed);
    (1..=n).map(|id| (id, message(&mut rng, id))).collect()
}

fn ids_in(v: &Value) -> Option<i64> {
    v.get("id").and_then(Value::as_i64)
}

const INIT: &str = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"fuzz","version":"1"}}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_stdio_every_generated_request_is_answered() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(BIN)
        .args(["serve", "--no-receiver", "--data-dir"])
        .arg(dir.path())
        .env("WEBHOOK_MCP_LOG", "warn")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    stdin
        .write_all(
            format!(
                "{INIT}\n{}\n",
                r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let sent = messages(0x9E37_79B9_7F4A_7C15, 600);
    let expected: BTreeSet<i64> = sent.iter().map(|(id, _)| *id).chain([0, 9999]).collect();
    let writer = tokio::spawn(async move {
        for (_, line) in &sent {
            stdin.write_all(line.as_bytes()).await.unwrap();
            stdin.write_all(b"\n").await.unwrap();
        }
        // Pure junk without any id, then a final ping: the server must still serve.
        stdin.write_all(b"\x00\xff garbage\n\n[]\n").await.unwrap();
        stdin
            .write_all(b"{\"jsonrpc\":\"2.0\",\"id\":9999,\"method\":\"ping\"}\n")
            .await
            .unwrap();
        stdin
    });
    let mut answered = BTreeSet::new();
    let mut codes = std::collections::BTreeMap::<i64, usize>::new();
    let read = async {
        while answered.len() < expected.len() {
            let line = lines
                .next_line()
                .await
                .unwrap()
                .expect("the server closed stdout");
            let v: Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("stdout carried a non-JSON line ({e}): {line}"));
            assert!(
                line.len() < 64 * 1024,
                "an answer was unbounded: {} bytes",
                line.len()
            );
            if let Some(code) = v["error"]["code"].as_i64() {
                *codes.entry(code).or_default() += 1;
            }
            if let Some(id) = ids_in(&v) {
                assert!(answered.insert(id), "id {id} answered twice");
            }
        }
    };
    if tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .is_err()
    {
        let missing: Vec<_> = expected.difference(&answered).take(20).collect();
        panic!("no answer within 60 s for ids {missing:?}");
    }
    let _stdin = writer.await.unwrap();
    eprintln!("error codes seen: {codes:?}");
    // Each malformed kind was met and answered with its proper code.
    for code in [-32700, -32600, -32602, -32601] {
        assert!(codes.contains_key(&code), "no {code} among {codes:?}");
    }
    assert_eq!(answered, expected);
    assert!(child.try_wait().unwrap().is_none(), "the server exited");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_http_every_generated_request_is_answered_with_json() {
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let _child = tokio::process::Command::new(BIN)
        .args(["serve", "--no-receiver", "--http"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(dir.path())
        .env("WEBHOOK_MCP_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/mcp");
    let http = reqwest::Client::new();
    let post = |body: String, session: Option<String>| {
        let mut req = http
            .post(&url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body);
        if let Some(s) = session {
            req = req
                .header("mcp-session-id", s)
                .header("mcp-protocol-version", "2025-06-18");
        }
        req.send()
    };
    let mut session = None;
    for _ in 0..100 {
        if let Ok(resp) = post(INIT.to_string(), None).await {
            session = resp
                .headers()
                .get("mcp-session-id")
                .map(|v| v.to_str().unwrap().to_string());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let session = session.expect("initialize gave no session");
    post(
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#.into(),
        Some(session.clone()),
    )
    .await
    .unwrap();
    for (id, body) in messages(0xD1B5_4A32_D192_ED03, 300) {
        let resp = post(body.clone(), Some(session.clone())).await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        // A JSON body, or an SSE stream whose data lines are JSON.
        let answers: Vec<Value> = if text.trim_start().starts_with('{') {
            vec![serde_json::from_str(&text).unwrap()]
        } else {
            text.lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .filter(|d| !d.trim().is_empty())
                .map(|d| serde_json::from_str(d).unwrap())
                .collect()
        };
        assert!(
            answers.iter().any(|a| ids_in(a) == Some(id)),
            "message {id} ({status}) got no answer with its id: {text:.300} for {body:.200}"
        );
        assert!(status < 500, "message {id}: {status}");
    }
}
