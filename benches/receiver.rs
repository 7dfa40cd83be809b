//! Ingest and event-to-agent benchmarks, each beside its baselines, on loopback.
//!
//! Run: `bench/run.sh` (or `cargo bench --bench receiver -- [requests]`, default 5000).
//!
//! - ingest: signed POSTs/s stored by the receiver at concurrency 1, 16 and 64 with p50/p99,
//!   beside (a) a verify-only axum server (HMAC check, 200, no storage: the ceiling) and (b)
//!   the seeds' Express receiver (LeadShark's example; skipped when node/npm are missing).
//!   The load generator is wrk (Debian's `wrk`) when installed: every request needs a unique
//!   body with its own HMAC (identical bodies are de-duplicated, not stored), so this harness
//!   pre-signs bodies into files that a Lua script hands out in turn, and checks afterwards
//!   (the server's /healthz counters) that every acknowledged request was a new stored event.
//!   Without wrk it falls back to its own reqwest-based generator and says so.
//! - event -> agent: POST to `notifications/resources/updated` on a subscribed stdio client.
//! - stdio cold start to the `initialize` answer, and a `list_webhooks` round trip.

use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::mpsc;

/// The server under test: this build, or `BENCH_BIN` (an older build, to compare a change
/// against the same Express and verify-only baselines in the same run).
fn bin() -> String {
    std::env::var("BENCH_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_webhook-mcp").to_string())
}
const SECRET: &str = "bench-secret-0123456789";

struct Stats {
    /// Requests answered 2xx.
    requests: usize,
    per_sec: f64,
    p50: Duration,
    p99: Duration,
}

fn hex_hmac(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// The run with the median rate.
fn median<T>(mut runs: Vec<(Stats, T)>) -> (Stats, T) {
    runs.sort_by(|a, b| a.0.per_sec.total_cmp(&b.0.per_sec));
    let mid = runs.len() / 2;
    runs.swap_remove(mid)
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let total: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(5000);

    let mut server = Server::start().await;
    let idle_rss = rss_mib(server.pid);
    let ceiling = verify_only_server().await;
    let express = express_server().await;

    let wrk = WrkLoad::prepare();
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    match &wrk {
        Some(w) => println!(
            "## Ingest (wrk, {} s per run, median of {rounds} interleaved runs per cell, {WRK_BODIES} pre-signed unique bodies)\n",
            w.secs
        ),
        None => println!(
            "## Ingest (wrk not installed: the harness's own generator, {total} signed POSTs per run, median of {rounds} runs per cell)\n"
        ),
    }
    println!(
        "| receiver | concurrency | req/s | p50 | p99 | server CPU per request | vs verify-only | vs Express |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    // The median run's CPU per request at the highest concurrency (the filter rows' base).
    let mut ingest_cpu_us = 0.0;
    for c in [1usize, 16, 64] {
        let n = if c == 1 { total / 5 } else { total };
        let run = |url: String, unique: bool| {
            let (http, wrk) = (http.clone(), wrk.clone());
            async move {
                match wrk {
                    Some(w) => w.run(&url, c, unique).await,
                    None => load(&http, &url, SECRET, n, c).await,
                }
            }
        };
        // CPU time the receiving process spent per request (user + system), from /proc.
        let cpu_per_req =
            |pid: u32, before: f64, s: &Stats| (cpu_secs(pid) - before) / s.requests as f64 * 1e6;
        // Each receiver is measured ROUNDS times, interleaved so that a noisy moment on the
        // shared machine does not hit one receiver only; the table shows each one's median run.
        let (mut tops, mut ourses, mut nodes) = (vec![], vec![], vec![]);
        for _ in 0..rounds {
            tops.push((run(ceiling.clone(), false).await, String::new()));
            let before = (cpu_secs(server.pid), server.stats(&http).await);
            let ours = run(server.url.clone(), true).await;
            let ours_cpu = cpu_per_req(server.pid, before.0, &ours);
            let after = server.stats(&http).await;
            let delta =
                |k: &str| after[k].as_u64().unwrap_or(0) - before.1[k].as_u64().unwrap_or(0);
            // Every acknowledged request must be a new stored event, or the rate means nothing.
            // (wrk stops counting at its deadline: up to one request per connection was still
            // in flight then, stored but not counted.)
            let (stored, repeats) = (delta("events_stored"), delta("duplicates"));
            assert!(
                repeats == 0 && (ours.requests..=ours.requests + c).contains(&(stored as usize)),
                "{stored} stored events, {repeats} repeats for {} acknowledged requests",
                ours.requests
            );
            ourses.push((ours, ours_cpu));
            if let Some((url, child)) = &express {
                let pid = child.id().unwrap_or(0);
                let before = cpu_secs(pid);
                let stats = run(url.clone(), false).await;
                let cpu = cpu_per_req(pid, before, &stats);
                nodes.push((stats, cpu));
            }
        }
        let (top, _) = median(tops);
        let (ours, ours_cpu) = median(ourses);
        ingest_cpu_us = ours_cpu;
        let us = |cpu: f64| format!("{cpu:.0} µs");
        let node = (!nodes.is_empty()).then(|| median(nodes));
        let row = |name: &str, s: &Stats, cpu: &str, vs_top: String, vs_node: String| {
            println!(
                "| {name} | {c} | {:.0} | {:.2} ms | {:.2} ms | {cpu} | {vs_top} | {vs_node} |",
                s.per_sec,
                s.p50.as_secs_f64() * 1e3,
                s.p99.as_secs_f64() * 1e3
            )
        };
        // The ceiling runs inside this harness, so its CPU cannot be told apart from the load's.
        row(
            "verify-only axum (ceiling)",
            &top,
            "n/a (in harness)",
            "1.00".into(),
            "".into(),
        );
        if let Some((node, node_cpu)) = &node {
            row(
                "seeds' Express (LeadShark example)",
                node,
                &us(*node_cpu),
                format!("{:.2}", node.per_sec / top.per_sec),
                "1.00".into(),
            );
        }
        row(
            "webhook-mcp (verify + durable store)",
            &ours,
            &us(ours_cpu),
            format!("{:.2}", ours.per_sec / top.per_sec),
            node.as_ref()
                .map(|(n, _)| format!("{:.2}", ours.per_sec / n.per_sec))
                .unwrap_or_else(|| "n/a (no node)".into()),
        );
    }

    filter_cost(ingest_cpu_us);

    let loaded_rss = rss_mib(server.pid);
    let lat = server.event_to_agent(&http, 1000).await;
    println!("\n## Event to agent (1000 sequential POSTs, subscribed stdio client)\n");
    println!("| measure | p50 | p99 |");
    println!("|---|---|---|");
    println!(
        "| POST sent -> notifications/resources/updated read by the client | {:.2} ms | {:.2} ms |",
        percentile(&lat, 50).as_secs_f64() * 1e3,
        percentile(&lat, 99).as_secs_f64() * 1e3
    );

    println!("\n## Memory (server process RSS)\n");
    println!("| state | RSS |");
    println!("|---|---|");
    println!("| idle, after start | {idle_rss:.1} MiB |");
    println!("| after the ingest runs above | {loaded_rss:.1} MiB |");

    let (events, kept, used, trees) = server.stop_and_measure_store().await;
    println!("\n## Stored bytes per accepted event (the SQLite file after the runs above)\n");
    println!("| events | payload + kept headers, mean | file bytes in use per event | overhead per event |");
    println!("|---|---|---|---|");
    let per = used as f64 / events.max(1) as f64;
    println!(
        "| {events} | {kept:.0} B | {per:.0} B | {:.0} B |",
        per - kept
    );
    println!("\n| where they go (SQLite `dbstat`) | bytes per event | of which unused |");
    println!("|---|---|---|");
    for (name, bytes, unused) in trees {
        println!(
            "| {name} | {:.0} B | {:.0} B |",
            bytes as f64 / events.max(1) as f64,
            unused as f64 / events.max(1) as f64
        );
    }

    let (cold, call) = cold_start(20).await;
    println!("\n## Stdio start-up (20 runs)\n");
    println!("| measure | p50 | p99 (max) |");
    println!("|---|---|---|");
    println!(
        "| spawn -> initialize answer | {:.2} ms | {:.2} ms |",
        percentile(&cold, 50).as_secs_f64() * 1e3,
        cold.last().unwrap().as_secs_f64() * 1e3
    );
    println!(
        "| tools/call list_webhooks round trip | {:.2} ms | {:.2} ms |",
        percentile(&call, 50).as_secs_f64() * 1e3,
        call.last().unwrap().as_secs_f64() * 1e3
    );
    if let Some((_, mut child)) = express {
        let _ = child.kill().await;
    }
}

/// What a content filter costs per event (issue 22: under 5 % of the ingest cost): typical
/// filters evaluated in process on the bench's own payload, as `wait_for_events`, the MCP
/// Events read and an outbound webhook's relay evaluate them (on a parsed event), against the
/// server CPU per request measured above at c=64.
fn filter_cost(ingest_cpu_us: f64) {
    use webhook_mcp::model::{Filter, Subject};
    let payload = json!({
        "id": "bench-1", "event": "message_received", "tenantName": "Acme",
        "timestamp": "2026-03-17T10:30:00Z",
        "data": {"userId": "charis", "conversationId": "conv1", "participantName": "Bob Jones",
                 "lastMessage": "Thanks for connecting! Would love to chat about..."}
    });
    let headers = std::collections::BTreeMap::from([
        ("content-type".to_string(), "application/json".to_string()),
        ("user-agent".to_string(), "bench".to_string()),
    ]);
    let subject = Subject {
        payload: &payload,
        headers: Some(&headers),
    };
    println!("\n## Content filter cost per event (in process, on the bench's payload)\n");
    println!("| filter | matches | per event | of the c=64 server CPU per request |");
    println!("|---|---|---|---|");
    let cases = [
        json!({"data.participantName": {"$startsWith": "Jane"}}),
        json!({"event": "message_received", "data.lastMessage": {"$contains": "chat"}, "headers.user-agent": {"$ne": "bot"}}),
        json!({"$or": [{"data.participantName": {"$in": ["Jane Smith", "Ann Lee", "Bob Jones"]}}, {"data.amount": {"$gte": 100}}]}),
    ];
    for case in cases {
        let filter = Filter::parse(&case).unwrap();
        let n = 1_000_000u32;
        let start = std::time::Instant::now();
        let mut hits = 0u32;
        for _ in 0..n {
            hits += std::hint::black_box(&filter).matches(std::hint::black_box(subject)) as u32;
        }
        let ns = start.elapsed().as_secs_f64() * 1e9 / n as f64;
        let share = if ingest_cpu_us > 0.0 {
            format!("{:.3} %", ns / (ingest_cpu_us * 1e3) * 100.0)
        } else {
            "n/a".into()
        };
        println!("| `{case}` | {} | {ns:.0} ns | {share} |", hits == n);
    }
}

/// User + system CPU seconds a process has used so far (/proc/PID/stat, 100 ticks a second).
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

/// Spawns `cmd` with stdin and stdout piped (killed when dropped): the child, its stdin, and
/// its stdout line by line.
fn spawn_piped(cmd: &mut Command) -> (Child, ChildStdin, Lines<BufReader<ChildStdout>>) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    (child, stdin, lines)
}

fn initialize() -> Value {
    json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}})
}

/// Resident set size of a process, from /proc. Its code pages depend on the page cache (the
/// kernel maps cached pages around each fault): compare builds in one cache state
/// (BENCHMARKS.md, session 18).
fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .map(str::to_string)
        })
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// The real binary, talked to over raw stdio JSON-RPC.
struct Server {
    pid: u32,
    _child: Child,
    stdin: ChildStdin,
    notes: mpsc::UnboundedReceiver<Instant>,
    url: String,
    secret: String,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Stops the server (end of stdin: a clean shutdown checkpoints the WAL into the file) and
    /// reads its store: events stored, their mean payload + kept headers, and the bytes of the
    /// file in use (pages minus free pages), and the b-trees holding more than a byte per event
    /// (name, bytes, of which unused), largest first.
    async fn stop_and_measure_store(self) -> (i64, f64, i64, Vec<(String, i64, i64)>) {
        let Server {
            _child: mut child,
            stdin,
            _dir: dir,
            ..
        } = self;
        drop(stdin);
        let _ = tokio::time::timeout(Duration::from_secs(20), child.wait()).await;
        let db =
            rusqlite::Connection::open(dir.path().join("data").join("webhook-mcp.db")).unwrap();
        let (events, kept): (i64, f64) = db
            .query_row(
                "SELECT count(*), avg(length(CAST(payload AS BLOB)) + length(CAST(headers AS BLOB))) FROM events",
                [],
                |r| Ok((r.get(0)?, r.get::<_, Option<f64>>(1)?.unwrap_or(0.0))),
            )
            .unwrap();
        let pages: i64 = db
            .pragma_query_value(None, "page_count", |r| r.get(0))
            .unwrap();
        let free: i64 = db
            .pragma_query_value(None, "freelist_count", |r| r.get(0))
            .unwrap();
        let size: i64 = db
            .pragma_query_value(None, "page_size", |r| r.get(0))
            .unwrap();
        let trees = db
            .prepare(
                "SELECT name, sum(pgsize), sum(unused) FROM dbstat GROUP BY name \
                 HAVING sum(pgsize) > ?1 ORDER BY 2 DESC",
            )
            .unwrap()
            .query_map([events], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<rusqlite::Result<Vec<_>>>()
            .unwrap();
        (events, kept, (pages - free) * size, trees)
    }

    /// The receiver's counters (/healthz).
    async fn stats(&self, http: &reqwest::Client) -> Value {
        let base = self.url.split("/hooks/").next().unwrap();
        let body = http
            .get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        serde_json::from_slice::<Value>(&body).unwrap()["stats"].clone()
    }

    async fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let (child, mut stdin, mut lines) = spawn_piped(
            Command::new(bin())
                .args(["serve", "--receiver-addr", "127.0.0.1:0", "--data-dir"])
                .arg(dir.path().join("data"))
                // At its default log level, logging to a file as a deployment would (one line per
                // event). BENCH_SERVER_LOG=webhook_mcp=debug shows the server's own view on the
                // terminal instead (group-commit batch sizes and commit times).
                .envs(std::env::var("BENCH_SERVER_LOG").map(|l| ("WEBHOOK_MCP_LOG", l)))
                .stderr(match std::env::var("BENCH_SERVER_LOG") {
                    Ok(_) => Stdio::inherit(),
                    Err(_) => std::fs::File::create(dir.path().join("server.log"))
                        .unwrap()
                        .into(),
                }),
        );
        for msg in [
            initialize(),
            json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
            json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"create_webhook","arguments":{"direction":"inbound","secret":SECRET}}}),
            json!({"jsonrpc":"2.0","id":3,"method":"resources/subscribe","params":{"uri":"webhook://events"}}),
        ] {
            stdin
                .write_all(format!("{msg}\n").as_bytes())
                .await
                .unwrap();
        }
        // Answers may come in any order: requests run concurrently.
        let mut webhook = Value::Null;
        let mut subscribed = false;
        while webhook.is_null() || !subscribed {
            let line = lines.next_line().await.unwrap().unwrap();
            let v: Value = serde_json::from_str(&line).unwrap();
            if v["id"] == 2 {
                webhook = v["result"]["structuredContent"]["webhook"].clone();
            } else if v["id"] == 3 {
                subscribed = true;
            }
        }
        // Every resources/updated for the feed, timestamped on arrival.
        let (tx, notes) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.contains("notifications/resources/updated")
                    && line.contains("\"webhook://events\"")
                {
                    let _ = tx.send(Instant::now());
                }
            }
        });
        Server {
            pid: child.id().unwrap_or(0),
            _child: child,
            stdin,
            notes,
            url: webhook["url"].as_str().unwrap().to_string(),
            secret: SECRET.to_string(),
            _dir: dir,
        }
    }

    async fn event_to_agent(&mut self, http: &reqwest::Client, n: usize) -> Vec<Duration> {
        while self.notes.try_recv().is_ok() {} // notifications from the ingest runs
        tokio::time::sleep(Duration::from_millis(500)).await;
        while self.notes.try_recv().is_ok() {}
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let body =
                json!({"id": format!("lat-{i}"), "event": "message_received", "data": {"n": i}})
                    .to_string();
            let sig = hex_hmac(&self.secret, body.as_bytes());
            let sent = Instant::now();
            let resp = http
                .post(&self.url)
                .header("x-webhook-signature", sig)
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            let got = tokio::time::timeout(Duration::from_secs(5), self.notes.recv())
                .await
                .unwrap()
                .unwrap();
            out.push(got.saturating_duration_since(sent));
        }
        out.sort();
        let _ = &self.stdin;
        out
    }
}

async fn until_id(lines: &mut Lines<BufReader<ChildStdout>>, id: u64) -> Value {
    loop {
        let line = lines.next_line().await.unwrap().unwrap();
        let v: Value = serde_json::from_str(&line).unwrap();
        if v["id"] == id {
            return v;
        }
    }
}

/// The ceiling: the same HMAC check, answer 200, store nothing.
async fn verify_only_server() -> String {
    async fn handle(headers: HeaderMap, body: Bytes) -> (StatusCode, &'static str) {
        let sig = headers
            .get("x-webhook-signature")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let Ok(sig) = hex::decode(sig) else {
            return (StatusCode::UNAUTHORIZED, "bad");
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(&body);
        if mac.verify_slice(&sig).is_err() {
            return (StatusCode::UNAUTHORIZED, "bad");
        }
        (StatusCode::OK, "{\"received\":true}")
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(listener, Router::new().route("/hook", post(handle)))
            .await
            .unwrap()
    });
    url
}

/// The seeds' Express receiver (LeadShark's Node.js example), installed into a temporary folder.
async fn express_server() -> Option<(String, Child)> {
    let dir = std::env::temp_dir().join("webhook-mcp-bench-express");
    std::fs::create_dir_all(&dir).ok()?;
    if !dir.join("node_modules/express").exists() {
        let ok = Command::new("npm")
            .args([
                "install",
                "--silent",
                "--no-audit",
                "--no-fund",
                "express@4",
            ])
            .current_dir(&dir)
            .status()
            .await
            .ok()?;
        if !ok.success() {
            eprintln!("npm install express failed: Express baseline skipped");
            return None;
        }
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let script = format!(
        r#"const express = require('express');
const crypto = require('crypto');
const app = express();
app.use(express.json());
app.post('/webhook', (req, res) => {{
  const sig = req.headers['x-webhook-signature'];
  const expected = crypto.createHmac('sha256', '{SECRET}').update(JSON.stringify(req.body)).digest('hex');
  if (sig !== expected) return res.status(401).json({{ error: 'Invalid' }});
  res.json({{ received: true }});
}});
app.listen({port}, '127.0.0.1');
"#
    );
    std::fs::write(dir.join("server.js"), script).ok()?;
    let child = Command::new("node")
        .arg("server.js")
        .current_dir(&dir)
        .kill_on_drop(true)
        .spawn()
        .ok()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Some((format!("http://127.0.0.1:{port}/webhook"), child))
}

/// `n` requests from `concurrency` workers, each a unique Voyager-shaped body signed for itself.
async fn load(
    http: &reqwest::Client,
    url: &str,
    secret: &str,
    n: usize,
    concurrency: usize,
) -> Stats {
    let next = Arc::new(AtomicUsize::new(0));
    let run = uuid::Uuid::new_v4().simple().to_string();
    let started = Instant::now();
    let mut workers = vec![];
    for _ in 0..concurrency {
        let (http, url, secret, next, run) = (
            http.clone(),
            url.to_string(),
            secret.to_string(),
            next.clone(),
            run.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut lat = vec![];
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return lat;
                }
                let body = json!({
                    "id": format!("{run}-{i}"), "event": "message_received", "tenantName": "Acme",
                    "timestamp": "2026-03-17T10:30:00Z",
                    "data": {"userId": "charis", "conversationId": format!("conv{i}"), "lastMessage": "Thanks for connecting! Would love to chat about..."}
                })
                .to_string();
                let sig = hex_hmac(&secret, body.as_bytes());
                let t = Instant::now();
                let resp = http.post(&url).header("content-type", "application/json").header("x-webhook-signature", sig).body(body).send().await.unwrap();
                assert!(resp.status().is_success(), "{url}: {}", resp.status());
                let _ = resp.bytes().await;
                lat.push(t.elapsed());
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
        requests: n,
        per_sec: n as f64 / elapsed.as_secs_f64(),
        p50: percentile(&all, 50),
        p99: percentile(&all, 99),
    }
}

/// Spawn -> initialize answer, then one list_webhooks round trip, `runs` times.
async fn cold_start(runs: usize) -> (Vec<Duration>, Vec<Duration>) {
    let mut cold = vec![];
    let mut call = vec![];
    for _ in 0..runs {
        let dir = tempfile::tempdir().unwrap();
        let t = Instant::now();
        let (mut child, mut stdin, mut lines) = spawn_piped(
            Command::new(bin())
                .args(["serve", "--no-receiver", "--data-dir"])
                .arg(dir.path())
                // Default log level; its start-up lines go nowhere.
                .stderr(Stdio::null()),
        );
        stdin
            .write_all(format!("{}\n", initialize()).as_bytes())
            .await
            .unwrap();
        until_id(&mut lines, 1).await;
        cold.push(t.elapsed());
        stdin
            .write_all(
                format!(
                    "{}\n",
                    json!({"jsonrpc":"2.0","method":"notifications/initialized"})
                )
                .as_bytes(),
            )
            .await
            .unwrap();
        let t = Instant::now();
        stdin.write_all(format!("{}\n", json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"list_webhooks","arguments":{}}})).as_bytes()).await.unwrap();
        until_id(&mut lines, 2).await;
        call.push(t.elapsed());
        drop(stdin);
        let _ = child.wait().await;
    }
    cold.sort();
    call.sort();
    (cold, call)
}

/// Unique pre-signed bodies per wrk run; more than any receiver here stores in a cell.
const WRK_BODIES: usize = 800_000;

/// wrk with a Lua script that hands out pre-signed bodies, one file per wrk thread.
#[derive(Clone)]
struct WrkLoad {
    dir: Arc<tempfile::TempDir>,
    secs: u64,
    /// Bodies already handed out: each run starts past them, so no body is sent twice.
    used: Arc<AtomicUsize>,
}

const WRK_THREADS: usize = 2;

impl WrkLoad {
    fn prepare() -> Option<WrkLoad> {
        let found = std::process::Command::new("wrk")
            .arg("--version")
            .output()
            .is_ok();
        if !found {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let run = uuid::Uuid::new_v4().simple().to_string();
        // Thread t's file holds bodies t, t + THREADS, ...: "signature TAB body" per line.
        for t in 0..WRK_THREADS {
            let mut out = String::new();
            for i in (t..WRK_BODIES).step_by(WRK_THREADS) {
                let body = json!({
                    "id": format!("{run}-{i}"), "event": "message_received", "tenantName": "Acme",
                    "timestamp": "2026-03-17T10:30:00Z",
                    "data": {"userId": "charis", "conversationId": format!("conv{i}"), "lastMessage": "Thanks for connecting! Would love to chat about..."}
                })
                .to_string();
                out.push_str(&hex_hmac(SECRET, body.as_bytes()));
                out.push('\t');
                out.push_str(&body);
                out.push('\n');
            }
            std::fs::write(dir.path().join(format!("bodies-{t}.txt")), out).unwrap();
        }
        let script = r#"
local threads = {}
function setup(thread)
  thread:set("file", dir .. "/bodies-" .. #threads .. ".txt")
  thread:set("skip", skip)
  table.insert(threads, thread)
end
local sigs, bodies, n = {}, {}, 0
-- Global, so that done() can read each thread's position with thread:get.
i = 0
function init(args)
  for line in io.lines(file) do
    local tab = line:find("\t", 1, true)
    n = n + 1
    sigs[n] = line:sub(1, tab - 1)
    bodies[n] = line:sub(tab + 1)
  end
  i = tonumber(skip)
end
function request()
  -- Past the end the last body repeats: the server counts it a duplicate and the harness fails.
  if i < n then i = i + 1 end
  return wrk.format("POST", nil, {["Content-Type"] = "application/json",
    ["X-Webhook-Signature"] = sigs[i]}, bodies[i])
end
function done(summary, latency, requests)
  local e = summary.errors
  local last = 0
  for _, t in ipairs(threads) do last = math.max(last, tonumber(t:get("i"))) end
  io.write(string.format("WRK_RESULT %d %d %d %d %d %d %d\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), e.status, e.connect + e.read + e.write + e.timeout,
    last))
end
"#;
        std::fs::write(dir.path().join("load.lua"), script).unwrap();
        let secs = std::env::var("WRK_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(3);
        Some(WrkLoad {
            dir: Arc::new(dir),
            secs,
            used: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// One run against `url`. `unique`: start past every body sent in earlier unique runs (for
    /// the de-duplicating receiver); the baselines do not care and start from the top.
    async fn run(&self, url: &str, concurrency: usize, unique: bool) -> Stats {
        let threads = concurrency.min(WRK_THREADS);
        let skip = if unique {
            self.used.load(Ordering::Relaxed)
        } else {
            0
        };
        let mut script = format!(
            "dir = {:?}\nskip = {skip}\n",
            self.dir.path().display().to_string()
        );
        script.push_str(&std::fs::read_to_string(self.dir.path().join("load.lua")).unwrap());
        let path = self.dir.path().join(format!("run-{skip}.lua"));
        std::fs::write(&path, script).unwrap();
        let out = Command::new("wrk")
            .arg(format!("-t{threads}"))
            .arg(format!("-c{concurrency}"))
            .arg(format!("-d{}s", self.secs))
            .arg("-s")
            .arg(&path)
            .arg(url)
            .output()
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix("WRK_RESULT "))
            .unwrap_or_else(|| {
                panic!(
                    "wrk printed no result: {text}{}",
                    String::from_utf8_lossy(&out.stderr)
                )
            });
        let f: Vec<u64> = line.split(' ').map(|x| x.parse().unwrap()).collect();
        let (requests, micros, p50, p99, bad_status, io_errors, last) =
            (f[0], f[1], f[2], f[3], f[4], f[5], f[6] as usize);
        assert_eq!(
            (bad_status, io_errors),
            (0, 0),
            "{url}: non-2xx or I/O errors: {text}"
        );
        if unique {
            assert!(
                last < WRK_BODIES / WRK_THREADS,
                "wrk ran out of unique bodies; raise WRK_BODIES"
            );
            self.used.store(last, Ordering::Relaxed);
        }
        Stats {
            requests: requests as usize,
            per_sec: requests as f64 / (micros as f64 / 1e6),
            p50: Duration::from_micros(p50),
            p99: Duration::from_micros(p99),
        }
    }
}
