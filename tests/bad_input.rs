//! A sweep of malformed requests against the real receiver: every one gets a 4xx (JSON where
//! the server answers), nothing is stored, and valid requests keep working between them.

mod common;

use std::time::Duration;

use common::{hex_hmac, voyager_body, Server};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A tiny deterministic generator, so a failure can be replayed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Sends raw bytes and returns the status code of the answer (0 when the server closed the
/// connection without answering, which hyper does for some unparseable requests).
async fn raw(addr: &str, request: &[u8]) -> u16 {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let _ = s.write_all(request).await;
    let _ = s.shutdown().await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out);
    text.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_thousand_malformed_requests_get_4xx_and_valid_ones_still_pass() {
    let s = Server::start_with(common::Era::Legacy, None, &["--max-body-bytes", "65536"]).await;
    let (id, url, secret) = s.inbound(json!({})).await;
    let addr = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let path = format!("/hooks/{id}");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut sent = 0;
    let mut valid = 0;
    let http = &s.http;

    for round in 0..170 {
        // Bad JSON, validly signed.
        let mut body = voyager_body(&format!("r{round}"), "x");
        let cut = 1 + (rng.next() as usize % (body.len() - 1));
        body.truncate(cut);
        let (st, ans) = s.post_signed(&url, &secret, &body).await;
        assert_eq!(st, 400, "bad JSON {body:?}: {ans}");
        // Invalid UTF-8, validly signed.
        let junk = [
            b"{\"event\":\"".to_vec(),
            rng.bytes(16),
            b"\xff\xfe\"}".to_vec(),
        ]
        .concat();
        let r = http
            .post(&url)
            .header("x-webhook-signature", hex_hmac(&secret, &junk))
            .body(junk)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        // Signature garbage.
        let garbage = String::from_utf8_lossy(&rng.bytes(24)).replace(['\r', '\n', '\0'], "x");
        let r = http
            .post(&url)
            .header(
                "x-webhook-signature",
                garbage
                    .chars()
                    .filter(|c| c.is_ascii_graphic())
                    .collect::<String>(),
            )
            .body(voyager_body(&format!("g{round}"), "x"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        // Wrong methods.
        for method in [
            reqwest::Method::GET,
            reqwest::Method::PUT,
            reqwest::Method::DELETE,
        ] {
            let r = http.request(method.clone(), &url).send().await.unwrap();
            assert_eq!(r.status(), 405, "{method}");
            let v: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
            assert!(v["error"].is_string());
        }
        // Truncated body: Content-Length promises more than arrives.
        let st = raw(
            &addr,
            format!("POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{{\"event\":").as_bytes(),
        )
        .await;
        assert!(st == 0 || (400..500).contains(&st), "truncated: {st}");
        sent += 7;
        // A valid request between the bad ones still goes through.
        if round % 10 == 0 {
            let (st, _) = s
                .post_signed(&url, &secret, &voyager_body(&format!("ok{round}"), "fine"))
                .await;
            assert_eq!(st, 200);
            valid += 1;
        }
    }
    // Huge headers, an oversize body, a garbage path and a non-HTTP line.
    let huge = "a".repeat(200_000);
    let st = raw(&addr, format!("POST {path} HTTP/1.1\r\nHost: {addr}\r\nX-Big: {huge}\r\nContent-Length: 2\r\n\r\n{{}}").as_bytes()).await;
    assert!(st == 0 || (400..500).contains(&st), "huge header: {st}");
    let big = format!("{{\"pad\":\"{}\"}}", "b".repeat(70_000));
    // The 413 comes before the body is read, so the server closes that connection: send it
    // on a connection of its own rather than one a pooled client would reuse.
    let lone = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let r = lone
        .post(&url)
        .header("x-webhook-signature", hex_hmac(&secret, big.as_bytes()))
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let (st, _) = s
        .post_signed(&format!("{url}%00/../../etc"), &secret, "{}")
        .await;
    assert!((400..500).contains(&st));
    let st = raw(&addr, &[rng.bytes(300), b"\r\n\r\n".to_vec()].concat()).await;
    assert!(st == 0 || (400..500).contains(&st), "binary junk: {st}");
    sent += 4;
    assert!(sent >= 1000, "{sent} malformed requests");

    // Still serving; only the valid events were stored.
    let (st, _) = s
        .post_signed(&url, &secret, &voyager_body("last", "still here"))
        .await;
    assert_eq!(st, 200);
    assert_eq!(s.event_count().await, valid + 1);
    s.stop().await;
}

/// Oversized arguments get short errors a model can act on, and short log lines: a 10 MB id
/// must not come back as a 10 MB error, and a 1 MB description is refused, not stored.
#[tokio::test]
async fn oversized_arguments_get_bounded_errors_and_are_not_stored() {
    let s = Server::start().await;
    let huge = "x".repeat(1 << 20);
    let cases = [
        ("get_webhook", json!({ "id": "y".repeat(10 << 20) })),
        (
            "create_webhook",
            json!({ "direction": "inbound", "description": huge }),
        ),
        (
            "create_webhook",
            json!({ "direction": "outbound", "url": huge }),
        ),
        (
            "create_webhook",
            json!({ "direction": "inbound", "events": vec!["e"; 101] }),
        ),
        ("list_webhooks", json!({ "enabled": huge })),
        ("query_deliveries", json!({ "since": huge })),
        ("read_nothing_like_this_tool", json!({})),
    ];
    for (tool, args) in cases {
        let r = s
            .client
            .call_tool(
                rmcp::model::CallToolRequestParams::new(tool.to_string())
                    .with_arguments(args.as_object().cloned().unwrap()),
            )
            .await;
        let text = match r {
            Ok(r) => {
                assert_eq!(r.is_error, Some(true), "{tool} accepted it");
                r.content
                    .iter()
                    .filter_map(|c| c.as_text().map(|t| t.text.clone()))
                    .collect::<String>()
            }
            Err(e) => e.to_string(),
        };
        assert!(text.len() < 2048, "{tool}: a {}-byte error", text.len());
    }
    let headers: serde_json::Map<String, serde_json::Value> =
        (0..33).map(|i| (format!("x-h{i}"), json!("v"))).collect();
    let e = s
        .call_err(
            "create_webhook",
            json!({ "direction": "outbound", "url": "https://example.com/h", "headers": headers }),
        )
        .await;
    assert!(e.contains("at most 32 headers"), "{e}");
    let listed = s.call("list_webhooks", json!({})).await;
    assert_eq!(listed["count"], 0, "nothing was stored: {listed}");
    let longest = s
        .logs
        .lock()
        .unwrap()
        .iter()
        .map(String::len)
        .max()
        .unwrap_or(0);
    assert!(longest < 4096, "a {longest}-byte log line");
    s.stop().await;
}

/// Unauthenticated traffic costs a stranger's requests nothing on disk (issue 21, step 1):
/// 1,000 POSTs of 1 MB with 50 headers of 1 KB each, every one to a new random webhook id,
/// and a few with a bad signature to a real one, grow the store by under 1 MiB. The budget of
/// recorded refusals is per source whatever the URL; a refusal for an unknown id keeps no
/// headers, and any refusal's row keeps about 2 KiB at most.
#[tokio::test]
async fn junk_posts_grow_the_store_by_little() {
    let s = Server::start().await;
    let (_, url, _) = s.inbound(json!({})).await;
    let base = url.rsplit_once('/').unwrap().0.to_string();
    let db = s.data_dir.join("webhook-mcp.db");
    let size = || {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
        std::fs::metadata(&db).unwrap().len()
    };
    let before = size();
    let junk = std::sync::Arc::new("j".repeat(1_000_000));
    let mut headers = reqwest::header::HeaderMap::new();
    for n in 0..50 {
        headers.insert(
            reqwest::header::HeaderName::from_bytes(format!("x-junk-{n}").as_bytes()).unwrap(),
            "h".repeat(1000).parse().unwrap(),
        );
    }
    headers.insert("x-webhook-signature", "00".parse().unwrap());
    let http = s.http.clone();
    let post = move |target: String| {
        let (http, junk, headers) = (http.clone(), junk.clone(), headers.clone());
        async move {
            let r = http
                .post(&target)
                .headers(headers)
                .body(junk.to_string())
                .send()
                .await
                .unwrap();
            r.status().as_u16()
        }
    };
    // First, refusals a real webhook records: a bad signature.
    for _ in 0..5 {
        assert_eq!(post(url.clone()).await, 401);
    }
    let mut tasks = vec![];
    for _ in 0..4 {
        let post = post.clone();
        let base = base.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..250 {
                let id = uuid::Uuid::new_v4();
                assert_eq!(post(format!("{base}/{id}")).await, 404);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let grown = size().saturating_sub(before);
    assert!(grown < 1 << 20, "the store grew by {grown} bytes");
    let log = s
        .call(
            "query_deliveries",
            json!({ "direction": "inbound", "limit": 500 }),
        )
        .await;
    // One source (this test's address): ten refusals are kept, whatever URL they went to.
    assert_eq!(log["count"], 10, "the first refusals per source are logged");
    let health = common::healthz(&s.http, &url).await;
    assert_eq!(health["stats"]["rejected"], 1005, "{health}");
    assert_eq!(health["stats"]["rejections_suppressed"], 995, "{health}");
    assert!(s.logged(&["further ones this minute are counted, not logged"]));
    let mut unknown = 0;
    for d in log["deliveries"].as_array().unwrap() {
        let row = s.read(d["resource_uri"].as_str().unwrap()).await.unwrap();
        let headers = row["request_headers"].as_object().unwrap();
        let body = row["request_body"].as_str().unwrap_or("");
        let kept: usize = headers
            .iter()
            .map(|(k, v)| k.len() + v.as_str().unwrap().len())
            .sum::<usize>()
            + body.len()
            + row["error"].as_str().unwrap().len();
        assert!(kept <= 2048, "a refusal kept {kept} bytes: {row}");
        if row["status_code"] == 404 {
            unknown += 1;
            assert!(headers.is_empty(), "{row}");
            assert!(body.is_empty(), "an unknown id's body is never read: {row}");
        } else {
            assert_eq!(row["status_code"], 401, "{row}");
            assert!(headers.contains_key("x-junk-0"), "{row}");
            assert!(body.contains("bytes in all"), "{row}");
        }
    }
    assert_eq!(unknown, 5);
    s.stop().await;
}

/// The receiver is bounded: beyond its concurrency limit a request gets 503 with Retry-After at
/// once (not a queue), and a sender that stalls in the middle of its body gets 408 after the
/// request timeout and gives its slot back.
#[tokio::test]
async fn the_receiver_sheds_load_and_times_out_slow_senders() {
    let s = Server::start_with(
        common::Era::Legacy,
        None,
        &["--receiver-concurrency", "1", "--receiver-timeout", "2"],
    )
    .await;
    let (_, url, secret) = s.inbound(json!({})).await;
    let addr = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let path = url.splitn(4, '/').nth(3).unwrap().to_string();
    // A slow sender: headers and 10 of 100 body bytes, then nothing.
    let mut slow = TcpStream::connect(&addr).await.unwrap();
    slow.write_all(
        format!("POST /{path} HTTP/1.1\r\nhost: {addr}\r\ncontent-length: 100\r\n\r\n0123456789")
            .as_bytes(),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    let body = common::voyager_body("while-busy", "x");
    let resp = s
        .http
        .post(&url)
        .header(
            "x-webhook-signature",
            common::hex_hmac(&secret, body.as_bytes()),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503, "the only slot is taken");
    assert_eq!(resp.headers()["retry-after"], "1");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "refused at once, not queued"
    );
    // The slow sender is cut off after the timeout...
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), slow.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    // ...and the slot is free again.
    let body = common::voyager_body("after", "x");
    let (status, ans) = s.post_signed(&url, &secret, &body).await;
    assert_eq!(status, 200, "{ans}");
    s.stop().await;
}
