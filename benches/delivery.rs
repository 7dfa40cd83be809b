//! Outbound throughput: deliveries/s from the durable queue to a local sink, beside a baseline
//! of the same number of POSTs sent straight to the sink by a plain client at the same
//! concurrency (the loopback HTTP ceiling, no queue, no store, no signing; the median of three
//! runs, and the relay's each beside a run of its own).
//!
//! Run: `cargo bench --bench delivery -- [sends] [webhooks] [concurrency]` (defaults 200, 50, 64):
//! `sends` send_event calls, each fanned out to `webhooks` outbound webhooks; then MCP Events
//! webhook mode and a relay (inbound → `forward_to` → the sink), half as many events each.

use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

/// The binary under test; `BENCH_BIN` runs another build (a baseline) with this harness.
fn bin() -> String {
    std::env::var("BENCH_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_webhook-mcp").to_string())
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().filter(|a| !a.starts_with("--")).collect();
    let sends: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(200);
    let hooks: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(50);
    let concurrency: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(64);
    let total = sends * hooks;

    // The sink: answers 200 at once and counts.
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    let app = Router::new().route(
        "/sink",
        post(move || {
            let c = c.clone();
            async move {
                c.fetch_add(1, Ordering::Relaxed);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sink = format!("http://{}/sink", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    // Baseline: the same number of POSTs straight to the sink, the median of three runs (the
    // first from a cold client; one run lasts a fifth of a second, and this VM's spells move a
    // single one by half).
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .unwrap();
    let mut runs = vec![];
    for _ in 0..3 {
        runs.push(plain_posts(&http, &sink, total, concurrency).await);
    }
    let baseline = median(runs);
    count.store(0, Ordering::Relaxed);

    // The engine.
    let dir = tempfile::tempdir().unwrap();
    if let Ok(keep) = std::env::var("BENCH_KEEP_DIR") {
        eprintln!("store kept at {keep}");
    }
    let dir_path = std::env::var("BENCH_KEEP_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| dir.path().to_path_buf());
    let mut child = Command::new(bin())
        .args([
            "serve",
            "--no-receiver",
            "--allow-private-targets",
            "--delivery-concurrency",
        ])
        .arg(concurrency.to_string())
        .arg("--data-dir")
        .arg(&dir_path)
        .env("WEBHOOK_MCP_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let next_id = AtomicUsize::new(0);
    let request = |method: &str, params: Value| {
        let id = next_id.fetch_add(1, Ordering::Relaxed) + 1;
        format!(
            "{}\n",
            json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
        )
    };
    let mut setup = request(
        "initialize",
        json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}),
    );
    setup.push_str(&format!(
        "{}\n",
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"})
    ));
    for _ in 0..hooks {
        setup.push_str(&request(
            "tools/call",
            json!({"name": "create_webhook", "arguments": {"direction": "outbound", "url": sink}}),
        ));
    }
    stdin.write_all(setup.as_bytes()).await.unwrap();
    // Requests run concurrently: wait for every answer, not just the last one's.
    let mut answered = 0;
    while answered < hooks + 1 {
        let line = lines.next_line().await.unwrap().unwrap();
        let v: Value = serde_json::from_str(&line).unwrap();
        if v.get("id").is_some() {
            answered += 1;
        }
    }
    let mut sends_text = String::new();
    for i in 0..sends {
        sends_text.push_str(&request("tools/call", json!({"name": "send_event", "arguments": {"event": "order.paid", "data": {"amount": 4200, "n": i}}})));
    }
    let pid = child.id().unwrap();
    let (started, cpu) = (Instant::now(), cpu_secs(pid));
    stdin.write_all(sends_text.as_bytes()).await.unwrap();
    wait_for(&count, total, Duration::from_secs(60), "deliveries").await;
    let engine = total as f64 / started.elapsed().as_secs_f64();
    let engine_cpu = (cpu_secs(pid) - cpu) * 1e6 / total as f64;

    println!("| path | deliveries | concurrency | deliveries/s | server CPU per delivery |");
    println!("|---|---|---|---|---|");
    println!("| plain POSTs to the sink (baseline) | {total} | {concurrency} | {baseline:.0} | |");
    println!("| send_event -> queue -> signed delivery -> logged | {total} | {concurrency} | {engine:.0} | {engine_cpu:.0} µs |");
    println!("\nengine / baseline: {:.2}", engine / baseline);
    drop(stdin);
    let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;

    let subs = 4;
    let events = total / subs;
    let w = webhook_mode(events, subs, concurrency).await;
    println!("\n| MCP Events webhook mode: event POSTed → stored → pumped → signed delivery per subscription | deliveries | subscriptions | deliveries/s | POST answered → callback p50 | p99 |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| a burst at concurrency {concurrency} (latency includes the backlog) | {} | {subs} | {:.0} | {:.1} ms | {:.1} ms |",
        events * subs, w.rate, w.burst.0, w.burst.1
    );
    println!(
        "| {SEQUENTIAL} events one at a time (first subscription's delivery) | {} | {subs} | | {:.1} ms | {:.1} ms |",
        SEQUENTIAL * subs, w.single.0, w.single.1
    );
    let rate = w.rate;
    println!("\nwebhook mode / baseline: {:.2}", rate / baseline);

    // The relay, `BENCH_ROUNDS` times (default 3), each run right after a run of plain POSTs
    // (as many as the baseline's); its share of plain POSTs is the median of the runs' own.
    let relayed = (total / 2).max(1);
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3)
        .max(1);
    let mut runs = vec![];
    for _ in 0..rounds {
        let plain = plain_posts(&http, &sink, total, concurrency).await;
        runs.push((relay(relayed, concurrency, &sink, &count).await, plain));
    }
    let share = median(runs.iter().map(|(r, plain)| r.rate / plain).collect());
    runs.sort_by(|a, b| a.0.rate.total_cmp(&b.0.rate));
    let shares = runs
        .iter()
        .map(|(r, plain)| format!("{:.0} of {plain:.0}", r.rate))
        .collect::<Vec<_>>()
        .join(" / ");
    let (r, _) = &runs[runs.len() / 2];
    println!("\n| relay: event POSTed → stored → forwarded → signed delivery to the sink → logged | events | concurrency | relayed/s (median of {rounds}) | runs: relayed/s of plain POSTs/s | of plain POSTs | server CPU per relayed event | store bytes per relayed event |");
    println!("|---|---|---|---|---|---|---|---|");
    println!(
        "| one inbound webhook, `forward_to` one outbound | {relayed} | {concurrency} | {:.0} | {shares} | {share:.3}× | {:.0} µs | {:.0} |",
        r.rate, r.cpu_us, r.bytes_per_event
    );
    println!("\n| where a relayed event's bytes go (SQLite `dbstat`, the median run) | bytes per event |");
    println!("|---|---|");
    for (name, bytes) in &r.trees {
        println!("| {name} | {:.0} |", *bytes as f64 / relayed as f64);
    }
}

/// `total` POSTs of one body straight to `sink` at `concurrency`: requests per second.
async fn plain_posts(http: &reqwest::Client, sink: &str, total: usize, concurrency: usize) -> f64 {
    let body = json!({"id": "msg_x", "event": "order.paid", "timestamp": "2026-11-24T10:00:00Z", "data": {"amount": 4200}}).to_string();
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = vec![];
    for _ in 0..concurrency {
        let (http, sink, body, next) = (http.clone(), sink.to_string(), body.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < total {
                let r = http.post(&sink).body(body.clone()).send().await.unwrap();
                let _ = r.bytes().await;
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    total as f64 / started.elapsed().as_secs_f64()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// A relay: `events` unsigned events POSTed to an inbound webhook (at `concurrency`) whose
/// `forward_to` names one outbound webhook to `sink`: relayed deliveries per second from the
/// first POST to the last arrival, and the store's bytes per relayed event afterwards (file
/// pages in use after a clean shutdown, divided by the events), with the b-trees that hold them.
async fn relay(events: usize, concurrency: usize, sink: &str, count: &AtomicUsize) -> Relay {
    count.store(0, Ordering::Relaxed);
    let dir = tempfile::tempdir().unwrap();
    let dir_path = std::env::var("BENCH_KEEP_DIR")
        .map(|keep| std::path::PathBuf::from(keep).join("relay"))
        .unwrap_or_else(|_| dir.path().to_path_buf());
    let port = free_port();
    let mut child = Command::new(bin())
        .args(["serve", "--allow-private-targets", "--receiver-addr"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--delivery-concurrency")
        .arg(concurrency.to_string())
        .arg("--data-dir")
        .arg(&dir_path)
        .env("WEBHOOK_MCP_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut mcp = Mcp::default();
    mcp.ask(&mut stdin, &mut lines, "initialize", json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}})).await;
    stdin
        .write_all(b"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n")
        .await
        .unwrap();
    let out = mcp
        .ask(
            &mut stdin,
            &mut lines,
            "tools/call",
            json!({"name": "create_webhook", "arguments": {"direction": "outbound", "url": sink}}),
        )
        .await;
    let target = out["result"]["structuredContent"]["webhook"]["id"].clone();
    let inbound = mcp
        .ask(&mut stdin, &mut lines, "tools/call", json!({"name": "create_webhook", "arguments": {"direction": "inbound", "provider": "none", "allow_unsigned": true, "forward_to": [target]}}))
        .await;
    let hook = inbound["result"]["structuredContent"]["webhook"]["id"]
        .as_str()
        .expect("an inbound webhook id")
        .to_string();
    let url = format!("http://127.0.0.1:{port}/hooks/{hook}");
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .unwrap();
    let next = Arc::new(AtomicUsize::new(0));
    let pid = child.id().unwrap();
    let (started, cpu) = (Instant::now(), cpu_secs(pid));
    let mut workers = vec![];
    for _ in 0..concurrency {
        let (http, url, next) = (http.clone(), url.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= events {
                    break;
                }
                let body = json!({"id": format!("e{n}"), "event": "order.paid", "data": {"amount": 4200, "n": n}});
                let r = http.post(&url).body(body.to_string()).send().await.unwrap();
                assert_eq!(r.status(), 200);
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    wait_for(
        count,
        events,
        Duration::from_secs(120),
        "relayed deliveries",
    )
    .await;
    let rate = events as f64 / started.elapsed().as_secs_f64();
    let cpu_us = (cpu_secs(pid) - cpu) * 1e6 / events as f64;
    // Let the last attempts' log rows commit before the shutdown.
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(stdin);
    let _ = tokio::time::timeout(Duration::from_secs(20), child.wait()).await;
    let db = rusqlite::Connection::open(dir_path.join("webhook-mcp.db")).unwrap();
    let page = |name: &str| -> i64 { db.pragma_query_value(None, name, |r| r.get(0)).unwrap() };
    let used = (page("page_count") - page("freelist_count")) * page("page_size");
    let trees = db
        .prepare(
            "SELECT name, sum(pgsize) FROM dbstat GROUP BY name \
             HAVING sum(pgsize) > ?1 ORDER BY 2 DESC",
        )
        .unwrap()
        .query_map([events as i64], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<rusqlite::Result<Vec<(String, i64)>>>()
        .unwrap();
    Relay {
        rate,
        cpu_us,
        bytes_per_event: used as f64 / events as f64,
        trees,
    }
}

struct Relay {
    rate: f64,
    /// The server's CPU time per relayed event, in µs.
    cpu_us: f64,
    bytes_per_event: f64,
    /// (b-tree, bytes) holding more than a byte per event, largest first.
    trees: Vec<(String, i64)>,
}

/// JSON-RPC requests over a child's stdio, one at a time.
#[derive(Default)]
struct Mcp {
    id: u64,
}

impl Mcp {
    /// Sends one request and returns its answer (notifications in between are skipped); an
    /// error answer fails the bench.
    async fn ask(
        &mut self,
        stdin: &mut tokio::process::ChildStdin,
        lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
        method: &str,
        params: Value,
    ) -> Value {
        self.id += 1;
        let text = json!({"jsonrpc": "2.0", "id": self.id, "method": method, "params": params});
        stdin
            .write_all(format!("{text}\n").as_bytes())
            .await
            .unwrap();
        loop {
            let v: Value =
                serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
            if v["id"] == self.id {
                assert!(
                    v.get("error").is_none() && v["result"]["isError"] != true,
                    "{v}"
                );
                return v;
            }
        }
    }
}

/// A process's CPU time so far (user + system), in seconds.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at state, field 3.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

const SEQUENTIAL: usize = 200;

struct WebhookMode {
    rate: f64,
    /// p50 and p99 in ms.
    burst: (f64, f64),
    single: (f64, f64),
}

/// `events` unsigned events POSTed to the receiver (at `concurrency`) while `subs` MCP Events
/// webhook subscriptions (one callback URL each) receive every one: deliveries per second, and
/// the time from a POST's 200 to its first delivery at a callback; then `SEQUENTIAL` events one
/// at a time, each waited for at the first subscription's callback.
async fn webhook_mode(events: usize, subs: usize, concurrency: usize) -> WebhookMode {
    use std::collections::HashMap;
    use std::sync::Mutex;
    let arrived: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(tokio::sync::Notify::new());
    let (a, c, note) = (arrived.clone(), count.clone(), seen.clone());
    let app = Router::new().route(
        "/cb/{n}",
        post(move |body: axum::body::Bytes| {
            let (a, c, note) = (a.clone(), c.clone(), note.clone());
            async move {
                let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                if v["type"] == "verification" {
                    return axum::Json(json!({ "challenge": v["challenge"] }));
                }
                if let Some(id) = v["eventId"].as_str() {
                    a.lock()
                        .unwrap()
                        .entry(id.to_string())
                        .or_insert_with(Instant::now);
                    c.fetch_add(1, Ordering::Relaxed);
                    note.notify_one();
                }
                axum::Json(json!({}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let callback = format!("http://{}/cb", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(bin())
        .args([
            "serve",
            "--allow-private-targets",
            "--dangerously-allow-http-callbacks",
            "--receiver-addr",
        ])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--delivery-concurrency")
        .arg(concurrency.to_string())
        .arg("--data-dir")
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
    let mut id = 0;
    let mut call = |method: &str, params: Value| {
        id += 1;
        (
            id,
            format!(
                "{}\n",
                json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
            ),
        )
    };
    let mut ask = Vec::new();
    ask.push(call(
        "initialize",
        json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}),
    ));
    ask.push(call(
        "tools/call",
        json!({"name": "create_webhook", "arguments": {"direction": "inbound", "provider": "none", "allow_unsigned": true}}),
    ));
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwMfKQ9r8GKYo=";
    for n in 0..subs {
        ask.push(call(
            "events/subscribe",
            json!({"name": "webhook.received", "arguments": {}, "cursor": null,
                "delivery": {"mode": "webhook", "url": format!("{callback}/{n}"), "secret": secret},
                // MCP Events is a 2026-07-28 extension: the request says so itself.
                "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                    "io.modelcontextprotocol/clientCapabilities": {"extensions": {"io.modelcontextprotocol/events": {}}},
                    "io.modelcontextprotocol/clientInfo": {"name": "bench", "version": "1"}}}),
        ));
    }
    let mut hook = String::new();
    for (n, (want, text)) in ask.into_iter().enumerate() {
        stdin.write_all(text.as_bytes()).await.unwrap();
        if n == 0 {
            stdin
                .write_all(b"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n")
                .await
                .unwrap();
        }
        loop {
            let v: Value =
                serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
            if v["id"] == want {
                assert!(v.get("error").is_none(), "{v}");
                if let Some(h) = v["result"]["structuredContent"]["webhook"]["id"].as_str() {
                    hook = h.to_string();
                }
                break;
            }
        }
    }
    let url = format!("http://127.0.0.1:{port}/hooks/{hook}");
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .unwrap();
    let acked: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = vec![];
    for _ in 0..concurrency {
        let (http, url, next, acked) = (http.clone(), url.clone(), next.clone(), acked.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= events {
                    break;
                }
                let event_id = format!("e{n}");
                let body = json!({"id": event_id, "event": "order.paid", "data": {"amount": 4200}});
                let r = http.post(&url).body(body.to_string()).send().await.unwrap();
                assert_eq!(r.status(), 200);
                acked.lock().unwrap().insert(event_id, Instant::now());
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    let total = events * subs;
    wait_for(
        &count,
        total,
        Duration::from_secs(120),
        "subscription deliveries",
    )
    .await;
    let rate = total as f64 / started.elapsed().as_secs_f64();
    let mut lat: Vec<f64> = {
        let (acked, arrived) = (acked.lock().unwrap(), arrived.lock().unwrap());
        acked
            .iter()
            .filter_map(|(id, at)| {
                arrived
                    .get(id)
                    .map(|got| got.saturating_duration_since(*at).as_secs_f64() * 1000.0)
            })
            .collect()
    };
    let burst = percentiles(&mut lat);

    let mut single = vec![];
    for n in 0..SEQUENTIAL {
        let event_id = format!("s{n}");
        let body = json!({"id": event_id, "event": "order.paid", "data": {"amount": 4200}});
        let r = http.post(&url).body(body.to_string()).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let answered = Instant::now();
        loop {
            if let Some(at) = arrived.lock().unwrap().get(&event_id) {
                single.push(at.saturating_duration_since(answered).as_secs_f64() * 1000.0);
                break;
            }
            tokio::time::timeout(Duration::from_secs(10), seen.notified())
                .await
                .expect("a delivery within 10 s");
        }
    }
    drop(stdin);
    let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
    WebhookMode {
        rate,
        burst,
        single: percentiles(&mut single),
    }
}

/// Waits until the sink counted `total` arrivals, failing after `within`.
async fn wait_for(count: &AtomicUsize, total: usize, within: Duration, what: &str) {
    let deadline = Instant::now() + within;
    while count.load(Ordering::Relaxed) < total {
        assert!(
            Instant::now() < deadline,
            "only {} of {total} {what} arrived",
            count.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn percentiles(v: &mut [f64]) -> (f64, f64) {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let pct = |p: f64| v[((v.len() as f64 * p) as usize).min(v.len() - 1)];
    (pct(0.5), pct(0.99))
}
