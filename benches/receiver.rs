//! Receiver throughput: signed events stored per second through the real binary, beside a
//! baseline of the same load against `GET /healthz` (HTTP + axum, no verification, no store).
//!
//! Run: `cargo bench --bench receiver -- [events] [concurrency]` (defaults 5000, 16).
//! Prints a Markdown table for BENCHMARKS.md.

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_webhook-mcp");

struct Stats {
    per_sec: f64,
    p50: Duration,
    p99: Duration,
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().filter(|a| !a.starts_with("--")).collect();
    let total: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(5000);
    let concurrency: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(16);

    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--receiver-addr", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("WEBHOOK_MCP_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for msg in [
        json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}),
        json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
        json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"create_webhook","arguments":{"direction":"inbound"}}}),
    ] {
        stdin
            .write_all(format!("{msg}\n").as_bytes())
            .await
            .unwrap();
    }
    let webhook = loop {
        let line = lines.next_line().await.unwrap().unwrap();
        let v: Value = serde_json::from_str(&line).unwrap();
        if v["id"] == 2 {
            break v["result"]["structuredContent"]["webhook"].clone();
        }
    };
    let url = webhook["url"].as_str().unwrap().to_string();
    let secret = webhook["secret"].as_str().unwrap().to_string();
    let health = format!("{}/healthz", url.split("/hooks/").next().unwrap());

    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .unwrap();
    // Warm up connections and the page cache.
    let _ = load(&http, &health, None, 200, concurrency).await;
    let baseline = load(&http, &health, None, total, concurrency).await;
    let receive = load(&http, &url, Some(&secret), total, concurrency).await;

    println!("| load | requests | concurrency | req/s | p50 | p99 |");
    println!("|---|---|---|---|---|---|");
    for (name, s) in [
        ("GET /healthz (baseline)", &baseline),
        ("POST /hooks/{id} signed, stored", &receive),
    ] {
        println!(
            "| {name} | {total} | {concurrency} | {:.0} | {:.2} ms | {:.2} ms |",
            s.per_sec,
            s.p50.as_secs_f64() * 1e3,
            s.p99.as_secs_f64() * 1e3
        );
    }
    println!(
        "\nreceive / baseline throughput ratio: {:.2}",
        receive.per_sec / baseline.per_sec
    );
    drop(stdin);
    let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
}

/// Sends `total` requests from `concurrency` workers; POSTs signed Voyager-shaped events when a
/// secret is given, GETs otherwise.
async fn load(
    http: &reqwest::Client,
    url: &str,
    secret: Option<&str>,
    total: usize,
    concurrency: usize,
) -> Stats {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = vec![];
    for _ in 0..concurrency {
        let (http, url, secret, next) = (
            http.clone(),
            url.to_string(),
            secret.map(str::to_string),
            next.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut latencies = vec![];
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= total {
                    return latencies;
                }
                let t = Instant::now();
                let resp = match &secret {
                    Some(secret) => {
                        let body = json!({
                            "id": uuid::Uuid::new_v4().to_string(),
                            "event": "message_received",
                            "tenantName": "Acme",
                            "timestamp": "2026-03-17T10:30:00Z",
                            "data": { "userId": "charis", "conversationId": format!("conv{i}"), "lastMessage": "Thanks for connecting! Would love to chat about..." }
                        })
                        .to_string();
                        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
                        mac.update(body.as_bytes());
                        let sig = hex::encode(mac.finalize().into_bytes());
                        http.post(&url).header("x-webhook-signature", sig).body(body).send().await
                    }
                    None => http.get(&url).send().await,
                };
                let resp = resp.expect("request failed");
                assert!(resp.status().is_success(), "status {}", resp.status());
                let _ = resp.bytes().await;
                latencies.push(t.elapsed());
            }
        }));
    }
    let mut all = vec![];
    for w in workers {
        all.extend(w.await.unwrap());
    }
    let elapsed = started.elapsed();
    all.sort();
    Stats {
        per_sec: total as f64 / elapsed.as_secs_f64(),
        p50: all[all.len() / 2],
        p99: all[all.len() * 99 / 100],
    }
}
