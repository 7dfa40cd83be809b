//! Many instances, one store: ingest, event → agent across instances, and outbound deliveries,
//! single-process SQLite beside PostgreSQL with 1, 2 and 3 instances. Real processes, loopback only.
//!
//! Run: `cargo bench --bench cluster -- [requests]` (default 15000 per ingest run);
//! `WEBHOOK_MCP_BENCH_INSTANCES=1,2` runs only those PostgreSQL ingest rows; `BENCH_ROUNDS` (default
//! 3) how many interleaved runs each ingest row takes its median of. PostgreSQL from
//! `WEBHOOK_MCP_BENCH_DATABASE_URL` (default postgres://postgres@127.0.0.1:5432/test); each run
//! gets a schema of its own, dropped after it. Load: the harness's own reqwest generator at
//! concurrency 64 (the same for every row, so compare rows, not with the wrk tables).

use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::routing::post;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

/// The server under test: this build, or `BENCH_BIN` (an older build, to compare a change
/// side by side).
fn bin() -> String {
    std::env::var("BENCH_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_webhook-mcp").to_string())
}
const SECRET: &str = "bench-secret-0123456789";
const CONCURRENCY: usize = 64;

fn hex_hmac(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

fn pct(sorted: &[Duration], p: usize) -> f64 {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)].as_secs_f64() * 1e3
}

/// One `webhook-mcp serve` process spoken to over its stdio.
struct Instance {
    _child: Child,
    stdin: ChildStdin,
    answers: mpsc::UnboundedReceiver<Value>,
    /// Arrival times of `resources/updated` for webhook://events.
    notes: mpsc::UnboundedReceiver<Instant>,
    next_id: u64,
    base: String,
}

impl Instance {
    async fn start(store: &[String], dir: &std::path::Path) -> Instance {
        let mut child = Command::new(bin())
            .args([
                "serve",
                "--receiver-addr",
                "127.0.0.1:0",
                "--allow-private-targets",
            ])
            .arg("--data-dir")
            .arg(dir)
            .args(store)
            .env("WEBHOOK_MCP_LOG", "warn")
            // PostgreSQL instances need the key that seals secrets (the same on each).
            .env(
                "WEBHOOK_MCP_SECRETS_KEY",
                "d2ViaG9vay1tY3AgdGVzdCBzZWNyZXRzIGtleSAzMmI=",
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let (atx, answers) = mpsc::unbounded_channel();
        let (ntx, notes) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.contains("notifications/resources/updated")
                    && line.contains("\"webhook://events\"")
                {
                    let _ = ntx.send(Instant::now());
                } else if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    if v.get("id").is_some() {
                        let _ = atx.send(v);
                    }
                }
            }
        });
        let mut i = Instance {
            _child: child,
            stdin,
            answers,
            notes,
            next_id: 1,
            base: String::new(),
        };
        i.request("initialize", json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}})).await;
        i.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        i.request("resources/subscribe", json!({"uri": "webhook://events"}))
            .await;
        i
    }

    async fn send(&mut self, msg: Value) {
        self.stdin
            .write_all(format!("{msg}\n").as_bytes())
            .await
            .unwrap();
    }

    async fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await;
        loop {
            let v = self.answers.recv().await.unwrap();
            if v["id"] == id {
                return v["result"].clone();
            }
        }
    }

    async fn tool(&mut self, name: &str, args: Value) -> Value {
        let r = self
            .request("tools/call", json!({"name": name, "arguments": args}))
            .await;
        assert_ne!(r["isError"], true, "{name}: {r}");
        r["structuredContent"].clone()
    }

    /// This instance's receive URL for webhook `id` (each instance has its own receiver port).
    async fn receive_url(&mut self, id: &str) -> String {
        let w = self.tool("get_webhook", json!({"id": id})).await;
        let url = w["webhook"]["url"].as_str().unwrap().to_string();
        self.base = url.split("/hooks/").next().unwrap().to_string();
        url
    }
}

/// The machine's busy and total CPU time so far (`/proc/stat`, all cores, in ticks).
fn cpu_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let total: u64 = fields.iter().sum();
    // idle and iowait
    let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

/// One ingest run: requests/s, p50 and p99 in ms, and the share of the machine's CPU that was
/// busy meanwhile (all processes: the harness, the instances and PostgreSQL).
#[derive(Clone, Copy)]
struct Ingested {
    rate: f64,
    p50: f64,
    p99: f64,
    busy: f64,
}

/// `n` signed POSTs at concurrency 64, spread over `urls`.
async fn ingest(urls: &[String], n: usize) -> Ingested {
    let http = reqwest::Client::new();
    let next = Arc::new(AtomicUsize::new(0));
    let run = uuid::Uuid::new_v4().simple().to_string();
    let (busy_before, total_before) = cpu_ticks();
    let started = Instant::now();
    let mut workers = vec![];
    for w in 0..CONCURRENCY {
        let (http, url, next, run) = (
            http.clone(),
            urls[w % urls.len()].clone(),
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
                let body = json!({"id": format!("{run}-{i}"), "event": "message_received",
                    "data": {"conversationId": format!("conv{i}"), "lastMessage": "Thanks for connecting!"}})
                .to_string();
                let sig = hex_hmac(body.as_bytes());
                let t = Instant::now();
                let resp = http
                    .post(&url)
                    .header("x-webhook-signature", sig)
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                assert!(resp.status().is_success(), "{}", resp.status());
                let _ = resp.bytes().await;
                lat.push(t.elapsed());
            }
        }));
    }
    let mut all = vec![];
    for w in workers {
        all.extend(w.await.unwrap());
    }
    let per_sec = n as f64 / started.elapsed().as_secs_f64();
    let (busy_after, total_after) = cpu_ticks();
    let busy = (busy_after - busy_before) as f64 / (total_after - total_before).max(1) as f64;
    all.sort();
    Ingested {
        rate: per_sec,
        p50: pct(&all, 50),
        p99: pct(&all, 99),
        busy,
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// POST to `from`'s receiver, time until `to`'s session is told: `n` sequential events.
async fn event_to_agent(url: &str, to: &mut Instance, n: usize) -> (f64, f64) {
    let http = reqwest::Client::new();
    tokio::time::sleep(Duration::from_millis(300)).await;
    while to.notes.try_recv().is_ok() {}
    let mut lat = vec![];
    for i in 0..n {
        // Events arrive at random times: a pause of 0-30 ms keeps the POSTs from locking in
        // phase with a polling feed (which would measure its full period every time).
        let pause = uuid::Uuid::new_v4().as_u128() % 30_000;
        tokio::time::sleep(Duration::from_micros(pause as u64)).await;
        let body = json!({"id": format!("lat-{}-{i}", uuid::Uuid::new_v4().simple()), "event": "e", "data": {}}).to_string();
        let sig = hex_hmac(body.as_bytes());
        let sent = Instant::now();
        let resp = http
            .post(url)
            .header("x-webhook-signature", sig)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let got = tokio::time::timeout(Duration::from_secs(5), to.notes.recv())
            .await
            .expect("the other instance was not told within 5 s")
            .unwrap();
        lat.push(got.saturating_duration_since(sent));
    }
    lat.sort();
    (pct(&lat, 50), pct(&lat, 99))
}

/// `n` messages queued through `instances` in turn; deliveries/s until the sink has them all.
async fn outbound(instances: &mut [Instance], n: usize) -> f64 {
    let got = Arc::new(Mutex::new(std::collections::HashSet::<String>::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = format!("http://{}/sink", listener.local_addr().unwrap());
    let seen = got.clone();
    let app = axum::Router::new().route(
        "/sink",
        post(move |headers: axum::http::HeaderMap| {
            let seen = seen.clone();
            async move {
                let id = headers["webhook-id"].to_str().unwrap().to_string();
                seen.lock().unwrap().insert(id);
                "ok"
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let hook = instances[0]
        .tool(
            "create_webhook",
            json!({"direction": "outbound", "url": target}),
        )
        .await["webhook"]["id"]
        .clone();
    // The send_event calls are pipelined (written without waiting for answers), so this measures
    // queueing and delivery, not tool-call round trips.
    let started = Instant::now();
    let mut pending = vec![0u64; instances.len()];
    for i in 0..n {
        let k = i % instances.len();
        let inst = &mut instances[k];
        let id = inst.next_id;
        inst.next_id += 1;
        pending[k] += 1;
        inst.send(
            json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {
            "name": "send_event",
            "arguments": {"event": "order.paid", "data": {"n": i}, "webhook_ids": [hook]}}}),
        )
        .await;
    }
    for (k, inst) in instances.iter_mut().enumerate() {
        for _ in 0..pending[k] {
            let answer = inst.answers.recv().await.unwrap();
            assert_ne!(answer["result"]["isError"], true, "{answer}");
        }
    }
    while got.lock().unwrap().len() < n {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "deliveries stalled"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    n as f64 / started.elapsed().as_secs_f64()
}

/// Runs `sql` on the bench database over a connection of its own.
async fn admin(base: &str, sql: &str) {
    let (client, conn) = tokio_postgres::connect(base, tokio_postgres::NoTls)
        .await
        .expect("the bench database is reachable");
    tokio::spawn(conn);
    client.batch_execute(sql).await.unwrap();
}

/// A schema of its own in the bench database; dropped by `drop_schema`.
async fn schema(base: &str) -> (String, String) {
    let name = format!("bench_{}", uuid::Uuid::new_v4().simple());
    admin(base, &format!("CREATE SCHEMA {name}")).await;
    let sep = if base.contains('?') { '&' } else { '?' };
    (format!("{base}{sep}options=-csearch_path%3D{name}"), name)
}

/// Writes out every dirty page now (a `CHECKPOINT`), so that the run after it starts clean.
async fn checkpoint(base: &str) {
    admin(base, "CHECKPOINT").await;
}

async fn drop_schema(base: &str, name: &str) {
    admin(base, &format!("DROP SCHEMA {name} CASCADE")).await;
}

/// Starts `count` instances on one store, creates one inbound webhook through the first, and
/// returns them with each one's receive URL for it.
async fn cluster(
    store: &[String],
    count: usize,
    dir: &std::path::Path,
) -> (Vec<Instance>, Vec<String>) {
    let mut instances = vec![];
    for k in 0..count {
        // A data dir each: instances sharing one would share the remembered receiver port
        // (the later ones standing by), as desktop clients do.
        instances.push(Instance::start(store, &dir.join(format!("instance-{k}"))).await);
    }
    let id = instances[0]
        .tool(
            "create_webhook",
            json!({"direction": "inbound", "secret": SECRET}),
        )
        .await["webhook"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut urls = vec![];
    for i in instances.iter_mut() {
        urls.push(i.receive_url(&id).await);
    }
    (instances, urls)
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(15_000);
    let db = std::env::var("WEBHOOK_MCP_BENCH_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let dir = tempfile::tempdir().unwrap();

    // `BENCH_ROUNDS`: every ingest row is run this many times, round by round (a noisy spell on
    // this shared machine then hits every row, not one); each row shows its median run.
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3)
        .max(1);
    // `WEBHOOK_MCP_BENCH_INSTANCES=1,2`: only those PostgreSQL ingest rows, and none of the
    // sections below (to compare builds on one row, run after run).
    let only: Option<Vec<usize>> = std::env::var("WEBHOOK_MCP_BENCH_INSTANCES")
        .ok()
        .map(|v| v.split(',').filter_map(|c| c.trim().parse().ok()).collect());
    let counts = only.clone().unwrap_or_else(|| vec![1, 2, 3]);
    println!("## Many instances, one store (harness generator, concurrency {CONCURRENCY}, {n} events per ingest run, median of {rounds} interleaved runs per row)");
    println!();
    println!(
        "| store | instances | ingest req/s | runs | p50 | p99 | CPU busy | vs SQLite, 1 process |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    // Row 0 is SQLite, row k PostgreSQL with `counts[k - 1]` instances; each a run per round.
    let mut runs: Vec<Vec<Ingested>> = vec![vec![]; counts.len() + 1];
    for round in 0..rounds {
        let dir = dir.path().join(format!("round-{round}"));
        let (sqlite, urls) = cluster(&[], 1, &dir.join("single")).await;
        runs[0].push(ingest(&urls, n).await);
        drop(sqlite);
        for (k, &count) in counts.iter().enumerate() {
            // A fresh schema per run, and the previous run's dirty pages written out first, so
            // that one row's writes are not paid for by the next.
            checkpoint(&db).await;
            let (url, name) = schema(&db).await;
            let (instances, urls) = cluster(
                &["--database-url".into(), url],
                count,
                &dir.join(format!("pg-{count}")),
            )
            .await;
            runs[k + 1].push(ingest(&urls, n).await);
            drop(instances);
            tokio::time::sleep(Duration::from_millis(200)).await;
            drop_schema(&db, &name).await;
        }
    }
    // A ratio between two rows is the median of the rounds' ratios (each round's runs ran
    // back to back), not the ratio of the medians.
    let paired = |row: usize, base: usize| {
        median(
            (0..rounds)
                .map(|r| runs[row][r].rate / runs[base][r].rate)
                .collect(),
        )
    };
    let one_pg = counts.iter().position(|&c| c == 1).map(|k| k + 1);
    for (row, row_runs) in runs.iter().enumerate() {
        let (store, count) = match row {
            0 => ("SQLite", 1),
            k => ("PostgreSQL", counts[k - 1]),
        };
        let mut by_rate: Vec<&Ingested> = row_runs.iter().collect();
        by_rate.sort_by(|a, b| a.rate.total_cmp(&b.rate));
        let mid = by_rate[by_rate.len() / 2];
        let all = row_runs
            .iter()
            .map(|r| format!("{:.0}", r.rate))
            .collect::<Vec<_>>()
            .join(" / ");
        let vs_one = match one_pg {
            Some(one) if row > 0 && count > 1 => {
                format!(" ({:.2}× one instance)", paired(row, one))
            }
            _ => String::new(),
        };
        println!(
            "| {store} | {count} | {:.0} | {all} | {:.2} ms | {:.2} ms | {:.0} % | {:.2}{vs_one} |",
            mid.rate,
            mid.p50,
            mid.p99,
            mid.busy * 100.0,
            paired(row, 0)
        );
    }

    if only.is_some() {
        return;
    }
    let mut schemas = vec![];

    println!();
    println!("## Event to agent across instances (300 sequential POSTs to instance A; B's session is told)");
    println!();
    println!("| store | p50 | p99 |");
    println!("|---|---|---|");
    // No SQLite pair here: each instance gets a data dir of its own (a shared one would share
    // the remembered receiver port), so two SQLite instances would be two stores, and the row
    // that assumed one failed (get_webhook on the second: not found).
    let (url, name) = schema(&db).await;
    schemas.push(name);
    let (mut pg, urls) = cluster(&["--database-url".into(), url], 2, &dir.path().join("pg2")).await;
    let (p50, p99) = event_to_agent(&urls[0], &mut pg[1], 300).await;
    println!("| PostgreSQL, 2 instances | {p50:.2} ms | {p99:.2} ms |");
    drop(pg);

    println!();
    println!(
        "## Outbound deliveries across instances (messages queued through the instances in turn)"
    );
    println!();
    println!("| store | instances | messages | queued and delivered per second |");
    println!("|---|---|---|---|");
    let messages = 3000;
    let (mut one, _) = cluster(&[], 1, &dir.path().join("out")).await;
    let rate = outbound(&mut one, messages).await;
    println!("| SQLite | 1 | {messages} | {rate:.0} |");
    drop(one);
    let (url, name) = schema(&db).await;
    schemas.push(name);
    let (mut three, _) = cluster(&["--database-url".into(), url], 3, &dir.path().join("pg3")).await;
    let rate = outbound(&mut three, messages).await;
    println!("| PostgreSQL | 3 | {messages} | {rate:.0} |");
    drop(three);
    tokio::time::sleep(Duration::from_millis(500)).await;
    for name in schemas {
        drop_schema(&db, &name).await;
    }
}
