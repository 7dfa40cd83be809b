//! Many processes, one store: real `webhook-mcp` processes over real stdio, sharing one SQLite
//! file (several desktop clients) or one PostgreSQL database (a cluster).
//!
//! Time bounds here are deadlines for "eventually" (generous, so a loaded CI machine passes);
//! the bounds themselves are measured by the benchmarks and printed here for the reader.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use common::sink::{Reply, Sink};
use common::{pg, voyager_body, Era, Server};
use serde_json::{json, Value};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `check` every 10 ms until it holds; fails after `secs`. Returns how long it took.
async fn eventually<F, Fut>(what: &str, secs: u64, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(
            started.elapsed() < Duration::from_secs(secs),
            "{what}: not within {secs} s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    started.elapsed()
}

/// Waits until `s` has been told that `uri` changed; returns the notes seen on the way.
async fn notified(s: &mut Server, uri: &str) -> Vec<String> {
    let mut seen = vec![];
    loop {
        let n = s.next_note().await;
        seen.push(n.clone());
        if n == uri {
            return seen;
        }
    }
}

async fn subscribe(s: &Server, uri: &str) {
    #[allow(deprecated)]
    s.client
        .subscribe(rmcp::model::SubscribeRequestParams::new(uri))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stdio_instances_on_one_data_dir_are_peers() {
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let args = ["--receiver-addr", addr.as_str()];
    let mut a = Server::start_with(Era::Legacy, Some(dir.path()), &args).await;
    // Default-style start of a second client: same data dir, same receiver port.
    let mut b = Server::start_with(Era::Legacy, Some(dir.path()), &args).await;
    eventually(
        "the second instance says it runs without the port",
        5,
        || async { b.logged(&["receiver port is held by another webhook-mcp"]) },
    )
    .await;
    subscribe(&a, "webhook://events").await;
    subscribe(&b, "webhook://events").await;

    // Created through B (which has no receiver); the URL is the configured one.
    let (id, url, secret) = b.inbound(json!({})).await;
    assert_eq!(url, format!("http://{addr}/hooks/{id}"));
    let (status, ans) = a
        .post_signed(&url, &secret, &voyager_body("e1", "hi"))
        .await;
    assert_eq!(status, 200, "{ans}");
    // Both sessions hear of it, and B's wait finds it.
    notified(&mut a, "webhook://events").await;
    notified(&mut b, "webhook://events").await;
    let got = b
        .call("wait_for_events", json!({ "after": 0, "timeout_ms": 5000 }))
        .await;
    assert_eq!(got["events"][0]["id"], ans["event_id"], "{got}");

    // A rotation, a disable and a delete in B take effect in A's receiver. First let A's feed
    // pass the webhook's creation and cache the row (the steady state: a cached lookup).
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, _) = a
        .post_signed(&url, &secret, &voyager_body("warm", "x"))
        .await;
    assert_eq!(status, 200);
    let rotated = b
        .call("rotate_secret", json!({ "id": id, "grace_seconds": 0 }))
        .await;
    let new_secret = rotated["webhook"]["secret"].as_str().unwrap().to_string();
    let mut n = 0;
    let took = eventually("A refuses the old secret", 5, || {
        n += 1;
        let body = voyager_body(&format!("old-{n}"), "x");
        let (a, url, secret) = (&a, &url, &secret);
        async move { a.post_signed(url, secret, &body).await.0 == 401 }
    })
    .await;
    eprintln!("rotation in B -> A refuses the old secret: {took:?}");
    let (status, _) = a
        .post_signed(&url, &new_secret, &voyager_body("new-1", "x"))
        .await;
    assert_eq!(status, 200, "the new secret is accepted");
    b.call("update_webhook", json!({ "id": id, "enabled": false }))
        .await;
    let took = eventually("A refuses a disabled webhook", 5, || {
        n += 1;
        let body = voyager_body(&format!("off-{n}"), "x");
        let (a, url, secret) = (&a, &url, &new_secret);
        async move { a.post_signed(url, secret, &body).await.0 == 404 }
    })
    .await;
    eprintln!("disable in B -> A answers 404: {took:?}");
    b.call("update_webhook", json!({ "id": id, "enabled": true }))
        .await;
    eventually("A accepts the re-enabled webhook", 5, || {
        n += 1;
        let body = voyager_body(&format!("on-{n}"), "x");
        let (a, url, secret) = (&a, &url, &new_secret);
        async move { a.post_signed(url, secret, &body).await.0 == 200 }
    })
    .await;
    b.call("delete_webhook", json!({ "id": id })).await;
    eventually("A refuses a deleted webhook", 5, || {
        n += 1;
        let body = voyager_body(&format!("del-{n}"), "x");
        let (a, url, secret) = (&a, &url, &new_secret);
        async move { a.post_signed(url, secret, &body).await.0 == 404 }
    })
    .await;

    // The port owner dies: B takes the port over and receives.
    let (id2, url2, secret2) = b.inbound(json!({})).await;
    a.kill9();
    drop(a);
    let health = url2.replace(&format!("/hooks/{id2}"), "/healthz");
    let took = eventually("B takes the receiver port over", 10, || {
        let (http, health) = (b.http.clone(), health.clone());
        async move { http.get(health).send().await.is_ok() }
    })
    .await;
    eprintln!("port owner killed -> B serves the port: {took:?}");
    let (status, _) = b
        .post_signed(&url2, &secret2, &voyager_body("after", "x"))
        .await;
    assert_eq!(status, 200);
    notified(&mut b, "webhook://events").await;
    b.stop().await;
}

#[tokio::test]
async fn a_starting_instance_never_resends_what_a_live_one_holds() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;
    let args = ["--allow-private-targets"];
    let a = Server::start_with(Era::Legacy, Some(dir.path()), &args).await;
    let (hook, _) = a.outbound(&sink.url("slow"), json!({})).await;
    // The target holds the first attempt for 4 s: it is in flight, leased by A.
    sink.script([Reply::status(200).after(Duration::from_secs(4))]);
    a.call(
        "send_event",
        json!({ "event": "e", "data": {}, "webhook_ids": [hook] }),
    )
    .await;
    sink.wait_for(1, 10).await;
    let b = Server::start_with(Era::Legacy, Some(dir.path()), &args).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        sink.on("slow").len(),
        1,
        "the second process re-sent an attempt the first still held"
    );
    let log = b
        .call("query_deliveries", json!({ "webhook_id": hook }))
        .await;
    assert_eq!(log["count"], 1, "{log}");
    assert_eq!(log["deliveries"][0]["status"], "succeeded", "{log}");
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_starting_together_on_a_fresh_store_all_start() {
    let dir = tempfile::tempdir().unwrap();
    let starts = (0..6).map(|_| Server::start_with(Era::Legacy, Some(dir.path()), &[]));
    let servers = futures::future::join_all(starts).await;
    for s in &servers {
        let v = s.call("list_webhooks", json!({})).await;
        assert_eq!(v["count"], 0);
    }
    let (id, _, _) = servers[0].inbound(json!({})).await;
    let seen = servers[5].call("get_webhook", json!({ "id": id })).await;
    assert_eq!(seen["webhook"]["id"], id.as_str());
    for s in servers {
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_on_postgres_share_events_and_deliver_each_message_once() {
    let Some(schema) = pg::TestSchema::create("multi_instance::three_instances_on_postgres").await
    else {
        return;
    };
    let args = [
        "--database-url",
        schema.url.as_str(),
        "--secrets-key",
        pg::SECRETS_KEY,
        "--allow-private-targets",
    ];
    let dir = tempfile::tempdir().unwrap(); // unused by PostgreSQL instances, but given
    let mut s: Vec<Server> = futures::future::join_all(
        (0..3).map(|_| Server::start_with(Era::Legacy, Some(dir.path()), &args)),
    )
    .await;
    for server in &s {
        subscribe(server, "webhook://events").await;
    }
    // A POST to instance 1 reaches the sessions of all three, once each.
    let (_, url, secret) = s[0].inbound(json!({})).await;
    let (status, ans) = s[0]
        .post_signed(&url, &secret, &voyager_body("pg-1", "x"))
        .await;
    assert_eq!(status, 200, "{ans}");
    for server in s.iter_mut() {
        notified(server, "webhook://events").await;
        let extra = server.drain_notes(Duration::from_millis(500)).await;
        assert!(
            !extra.iter().any(|n| n == "webhook://events"),
            "told twice of one event: {extra:?}"
        );
    }
    let seen = s[2]
        .call("wait_for_events", json!({ "after": 0, "timeout_ms": 5000 }))
        .await;
    assert_eq!(seen["events"][0]["id"], ans["event_id"]);

    // 1,000 messages queued through the three instances reach the target exactly once each.
    let sink = Sink::start().await;
    let (hook, _) = s[1].outbound(&sink.url("cluster"), json!({})).await;
    for i in 0..1000 {
        s[i % 3]
            .call(
                "send_event",
                json!({ "event": "order.paid", "data": { "n": i }, "webhook_ids": [hook] }),
            )
            .await;
    }
    sink.wait_for(1000, 120).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got = sink.on("cluster");
    let mut per_message: HashMap<String, usize> = HashMap::new();
    for r in &got {
        *per_message
            .entry(r.headers["webhook-id"].to_str().unwrap().to_string())
            .or_default() += 1;
    }
    assert_eq!(per_message.len(), 1000);
    assert!(
        per_message.values().all(|&n| n == 1),
        "a message was delivered twice"
    );
    let ns: HashSet<i64> = got
        .iter()
        .map(|r| {
            serde_json::from_slice::<Value>(&r.body).unwrap()["data"]["n"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(ns.len(), 1000);
    for server in s {
        server.stop().await;
    }
}

/// A long-running `serve --http` service (receiver on the same port), no stdio client.
struct Service {
    child: tokio::process::Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Service {
    async fn start(token: &str) -> Service {
        let dir = tempfile::tempdir().unwrap();
        let base = format!("http://127.0.0.1:{}", free_port());
        let child = tokio::process::Command::new(common::BIN)
            .args([
                "serve",
                "--http",
                &base["http://".len()..],
                "--receiver-addr",
                "same",
            ])
            .arg("--data-dir")
            .arg(dir.path())
            .env("WEBHOOK_MCP_AUTH_TOKEN", token)
            .env("WEBHOOK_MCP_LOG", "warn")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let http = reqwest::Client::new();
        let health = format!("{base}/healthz");
        eventually("the service listens", 10, || {
            let (http, health) = (http.clone(), health.clone());
            async move { http.get(health).send().await.is_ok() }
        })
        .await;
        Service {
            child,
            base,
            _dir: dir,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stdio_bridge_reaches_a_long_running_service_in_both_eras() {
    let token = "bridge-test-token-0123456789";
    let mut service = Service::start(token).await;
    let mcp = format!("{}/mcp", service.base);

    // A stdio client (legacy era) creates a webhook through the bridge, then goes away.
    let first = Server::connect(Era::Legacy, &mcp, token).await;
    let (id, url, secret) = first.inbound(json!({})).await;
    assert!(url.starts_with(&service.base), "{url}");
    first.stop().await;

    // While no agent is connected, the service keeps receiving.
    let http = reqwest::Client::new();
    let body = voyager_body("while-away", "x");
    let resp = http
        .post(&url)
        .header(
            "x-webhook-signature",
            common::hex_hmac(&secret, body.as_bytes()),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    // The next agent (2026-07-28 era) finds it by cursor.
    let second = Server::connect(Era::Modern, &mcp, token).await;
    let got = second
        .call("list_events", json!({ "webhook_id": id, "after": 0 }))
        .await;
    assert_eq!(got["count"], 1, "{got}");

    // A subscribed legacy session is told of the next one, through the bridge.
    let mut third = Server::connect(Era::Legacy, &mcp, token).await;
    subscribe(&third, "webhook://events").await;
    let (status, _) = third
        .post_signed(&url, &secret, &voyager_body("live", "x"))
        .await;
    assert_eq!(status, 200);
    notified(&mut third, "webhook://events").await;
    let waited = second
        .call(
            "wait_for_events",
            json!({ "webhook_id": id, "after": got["next_cursor"], "timeout_ms": 5000 }),
        )
        .await;
    assert_eq!(waited["count"], 1, "{waited}");
    second.stop().await;
    third.stop().await;
    service.child.kill().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_the_others_finish_a_killed_instance_s_deliveries() {
    let Some(schema) = pg::TestSchema::create("multi_instance::killed_instance").await else {
        return;
    };
    let args = [
        "--database-url",
        schema.url.as_str(),
        "--secrets-key",
        pg::SECRETS_KEY,
        "--allow-private-targets",
    ];
    let dir = tempfile::tempdir().unwrap();
    let s: Vec<Server> = futures::future::join_all(
        (0..3).map(|_| Server::start_with(Era::Legacy, Some(dir.path()), &args)),
    )
    .await;
    let sink = Sink::start().await;
    let (hook, _) = s[0].outbound(&sink.url("crash"), json!({})).await;
    // The target holds the first 10 requests for 30 s: they are in flight when instance 0 dies.
    sink.script((0..10).map(|_| Reply::status(200).after(Duration::from_secs(30))));
    for i in 0..20 {
        s[0].call(
            "send_event",
            json!({ "event": "e", "data": { "n": i }, "webhook_ids": [hook] }),
        )
        .await;
    }
    sink.wait_for(10, 20).await;
    let t0 = Instant::now();
    s[0].kill9();
    // Every message is delivered (the dead instance's leases are freed after its heartbeat
    // stops, and another instance sends them); only those in flight at the kill twice.
    let log = s[1]
        .wait_for(
            "query_deliveries",
            json!({ "webhook_id": hook, "status": "succeeded", "limit": 500 }),
            60,
            |v| {
                let ids: HashSet<&str> = v["deliveries"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|d| d["message_id"].as_str().unwrap())
                    .collect();
                ids.len() == 20
            },
        )
        .await;
    assert_eq!(
        log["count"], 20,
        "each message succeeded once in the log: {log}"
    );
    // Sent again only after the crash, and only once the dead instance had missed its heartbeat
    // (5 s): nothing was taken from a live owner. Again means: an attempt whose outcome the dead
    // process had not recorded (in flight, or answered but not yet committed).
    let mut copies: HashMap<String, Vec<Instant>> = HashMap::new();
    for r in sink.on("crash") {
        copies
            .entry(r.headers["webhook-id"].to_str().unwrap().to_string())
            .or_default()
            .push(r.at);
    }
    assert_eq!(copies.len(), 20);
    for (id, at) in &copies {
        assert!(at.len() <= 2, "{id} sent {} times", at.len());
        if let Some(second) = at.get(1) {
            let after = second.saturating_duration_since(t0);
            assert!(
                after >= Duration::from_secs(4),
                "{id} re-sent {after:?} after the kill, before the dead owner went stale"
            );
        }
    }
    for server in s.into_iter().skip(1) {
        server.stop().await;
    }
    eprintln!("stopped: {:?}", t0.elapsed());
}

/// A Python SDK session (`tests/python/cluster_listener.py`) on an instance of its own, ready
/// (subscribed) when this returns.
async fn python_listener(
    database_url: &str,
    mode: &str,
    data_dir: &std::path::Path,
) -> (
    tokio::process::Child,
    tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
) {
    use tokio::io::AsyncBufReadExt;
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/cluster_listener.py");
    let mut child = tokio::process::Command::new(common::python())
        .arg(script)
        .args([common::BIN, database_url, mode])
        .arg(data_dir)
        .env("WEBHOOK_MCP_SECRETS_KEY", pg::SECRETS_KEY)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("the Python session never got ready")
        .unwrap();
    assert_eq!(ready.as_deref(), Some("ready"), "python {mode}");
    (child, lines)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_python_sdk_sessions_on_two_other_instances_are_told_once_each() {
    let Some(schema) = pg::TestSchema::create("multi_instance::python_sessions").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let first = Server::start_with(
        Era::Legacy,
        Some(dir.path()),
        &[
            "--database-url",
            schema.url.as_str(),
            "--secrets-key",
            pg::SECRETS_KEY,
        ],
    )
    .await;
    let (_, url, secret) = first.inbound(json!({})).await;
    let (mut legacy, mut legacy_out) =
        python_listener(&schema.url, "legacy", &dir.path().join("legacy")).await;
    let (mut modern, mut modern_out) =
        python_listener(&schema.url, "auto", &dir.path().join("modern")).await;
    let (status, ans) = first
        .post_signed(&url, &secret, &voyager_body("py-cluster", "x"))
        .await;
    assert_eq!(status, 200, "{ans}");
    for (out, era) in [
        (&mut legacy_out, "2025-11-25"),
        (&mut modern_out, "2026-07-28"),
    ] {
        let line = tokio::time::timeout(Duration::from_secs(30), out.next_line())
            .await
            .expect("the Python session printed nothing")
            .unwrap()
            .expect("the Python session failed (see its stderr above)");
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["protocol_version"], era, "{v}");
        assert_eq!(
            v["updates"].as_array().unwrap().len(),
            1,
            "told exactly once: {v}"
        );
        assert_eq!(v["newest_event"], ans["event_id"], "{v}");
    }
    assert!(legacy.wait().await.unwrap().success());
    assert!(modern.wait().await.unwrap().success());
    first.stop().await;
}

#[tokio::test]
async fn receive_urls_survive_a_restart_with_port_zero() {
    let dir = tempfile::tempdir().unwrap();
    let first = Server::start_with(Era::Legacy, Some(dir.path()), &[]).await; // 127.0.0.1:0
    let (id, url, secret) = first.inbound(json!({})).await;
    first.stop().await;
    let again = Server::start_with(Era::Legacy, Some(dir.path()), &[]).await;
    let now = again.call("get_webhook", json!({ "id": id })).await;
    assert_eq!(
        now["webhook"]["url"],
        url.as_str(),
        "the receive URL changed"
    );
    let (status, _) = again
        .post_signed(&url, &secret, &voyager_body("same-url", "x"))
        .await;
    assert_eq!(status, 200, "the old URL reaches the restarted receiver");
    again.stop().await;
}
