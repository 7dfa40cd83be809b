//! The outbound engine through the real binary: fan-out, signatures, the retry schedule, the
//! stop conditions (410, abort-message, long failure), redelivery, relaying, restarts, SSRF.

mod common;

use std::time::Duration;

use common::sink::{hex_ok, standard_ok, Reply, Sink};
use common::{hex_hmac, Era, Server};
use serde_json::{json, Value};

const LOCAL: &str = "--allow-private-targets";

async fn server(extra: &[&str]) -> Server {
    let mut args = vec![LOCAL];
    args.extend_from_slice(extra);
    Server::start_with(Era::Legacy, None, &args).await
}

/// The delivery log of one webhook, oldest first.
async fn attempts(s: &Server, webhook_id: &str) -> Vec<Value> {
    let v = s
        .call(
            "query_deliveries",
            json!({ "webhook_id": webhook_id, "limit": 500 }),
        )
        .await;
    let mut rows = v["deliveries"].as_array().unwrap().clone();
    rows.reverse();
    rows
}

async fn wait_attempts(
    s: &Server,
    webhook_id: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let rows = attempts(s, webhook_id).await;
        if done(&rows) {
            return rows;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "log never reached the expected state: {rows:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn ms(row: &Value, field: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(row[field].as_str().unwrap())
        .unwrap()
        .timestamp_millis()
}

#[tokio::test]
async fn send_event_fans_out_signed_deliveries_to_matching_webhooks() {
    let sink = Sink::start().await;
    let s = server(&[]).await;
    let (a, secret_a) = s
        .outbound(
            &sink.url("a"),
            json!({ "events": ["order.paid"], "headers": { "X-Tenant": "acme" } }),
        )
        .await;
    let (b, secret_b) = s.outbound(&sink.url("b"), json!({})).await;
    let (_c, _) = s
        .outbound(&sink.url("c"), json!({ "events": ["other"] }))
        .await;
    let (d, _) = s.outbound(&sink.url("d"), json!({})).await;
    s.call("update_webhook", json!({ "id": d, "enabled": false }))
        .await;

    let sent = s
        .call(
            "send_event",
            json!({ "event": "order.paid", "data": { "amount": 4200, "note": "naïve / ok" } }),
        )
        .await;
    assert_eq!(sent["queued"], 2, "{sent}");
    sink.wait_for(2, 10).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        sink.received().len(),
        2,
        "only matching, enabled webhooks receive it"
    );

    for (path, secret) in [("a", &secret_a), ("b", &secret_b)] {
        let r = &sink.on(path)[0];
        assert!(hex_ok(secret, r), "hex signature on {path}");
        assert!(
            standard_ok(secret, r),
            "Standard Webhooks signature on {path}"
        );
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(
            std::str::from_utf8(&r.body).unwrap(),
            body.to_string(),
            "compact JSON"
        );
        assert_eq!(body["event"], "order.paid");
        assert_eq!(body["data"]["note"], "naïve / ok");
        assert_eq!(body["id"], r.headers["x-webhook-id"].to_str().unwrap());
        assert_eq!(r.headers["webhook-id"], r.headers["x-webhook-id"]);
        assert_eq!(r.headers["x-webhook-event"], "order.paid");
        assert!(body["timestamp"].as_str().unwrap().ends_with('Z'));
    }
    assert_eq!(sink.on("a")[0].headers["x-tenant"], "acme");

    let rows = wait_attempts(&s, &a, |r| r.len() == 1 && r[0]["status"] == "succeeded").await;
    assert_eq!(
        (rows[0]["attempt"].as_i64(), rows[0]["trigger"].as_str()),
        (Some(1), Some("scheduled"))
    );
    let full = s
        .read(&format!(
            "webhook://deliveries/{}",
            rows[0]["id"].as_str().unwrap()
        ))
        .await
        .unwrap();
    assert_eq!(full["request_headers"]["X-Tenant"], "***");
    assert!(full["request_body"]
        .as_str()
        .unwrap()
        .contains("order.paid"));
    assert_eq!(full["response_body"], "sink answered 200");
    // The body is stored once, with its message: the attempt's row holds none of its own, and
    // the log shows the message's body, byte for byte what the sink received.
    assert_eq!(
        full["request_body"].as_str().unwrap().as_bytes(),
        &sink.on("a")[0].body[..]
    );
    let own_body: Option<String> = rusqlite::Connection::open(s.data_dir.join("webhook-mcp.db"))
        .unwrap()
        .query_row(
            "SELECT request_body FROM deliveries WHERE id = ?1",
            [rows[0]["id"].as_str().unwrap()],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(own_body, None, "an outbound attempt stores no body copy");

    // Only the named webhooks; an inbound one or a disabled one is an error that says so.
    let only = s
        .call(
            "send_event",
            json!({ "event": "x", "data": {}, "webhook_ids": [b] }),
        )
        .await;
    assert_eq!(only["queued"], 1);
    let (inbound, _, _) = s.inbound(json!({})).await;
    let e = s
        .call_err(
            "send_event",
            json!({ "event": "x", "data": {}, "webhook_ids": [inbound] }),
        )
        .await;
    assert!(e.contains("inbound"), "{e}");
    let e = s
        .call_err(
            "send_event",
            json!({ "event": "x", "data": {}, "webhook_ids": [d] }),
        )
        .await;
    assert!(e.contains("disabled"), "{e}");
    let none = s
        .call(
            "send_event",
            json!({ "event": "nobody.listens", "data": {}, "webhook_ids": [a] }),
        )
        .await;
    assert_eq!(none["queued"], 0);
    assert!(none["hint"].as_str().unwrap().contains("filter"));
    s.stop().await;
}

#[tokio::test]
async fn failed_attempts_retry_on_the_configured_schedule() {
    let sink = Sink::start().await;
    sink.script([Reply::status(500), Reply::status(502)]);
    let s = server(&["--retry-schedule", "0.3,0.6"]).await;
    let (id, _) = s.outbound(&sink.url("r"), json!({})).await;
    s.call("send_event", json!({ "event": "e", "data": {} }))
        .await;
    let rows = wait_attempts(&s, &id, |r| r.iter().any(|x| x["status"] == "succeeded")).await;
    assert_eq!(rows.len(), 3, "{rows:#?}");
    assert_eq!(
        rows.iter()
            .map(|r| (
                r["attempt"].as_i64().unwrap(),
                r["status"].as_str().unwrap().to_string()
            ))
            .collect::<Vec<_>>(),
        vec![
            (1, "failed".into()),
            (2, "failed".into()),
            (3, "succeeded".into())
        ]
    );
    assert_eq!(rows[0]["status_code"], 500);
    assert_eq!(rows[0]["error"], "HTTP 500 Internal Server Error");
    // Each failed row names when the next attempt is due; the next attempt honours it.
    for (i, base) in [(0usize, 300i64), (1, 600)] {
        let planned = ms(&rows[i], "next_attempt_at") - ms(&rows[i], "created_at");
        assert!(
            planned >= base * 8 / 10 && planned <= base * 12 / 10 + 5,
            "attempt {} planned {planned} ms",
            i + 1
        );
        assert!(ms(&rows[i + 1], "created_at") >= ms(&rows[i], "next_attempt_at"));
    }
    let got = sink.received();
    assert_eq!(got.len(), 3);
    assert!(
        got.iter()
            .all(|r| r.headers["x-webhook-id"] == got[0].headers["x-webhook-id"]),
        "one message id across retries"
    );
    assert_eq!(got[0].body, got[2].body, "the same bytes every attempt");
    assert_eq!(rows[2]["next_attempt_at"], Value::Null);
    let w = s.call("get_webhook", json!({ "id": id })).await;
    assert_eq!(
        w["webhook"]["failure_count"], 0,
        "a success resets the failure streak"
    );
    s.stop().await;
}

#[tokio::test]
async fn exhausted_schedule_gives_up_and_redeliver_recovers() {
    let sink = Sink::start().await;
    sink.script((0..3).map(|_| Reply::status(503)));
    let s = server(&["--retry-schedule", "0.1,0.1"]).await;
    let (id, _) = s.outbound(&sink.url("g"), json!({})).await;
    let since = chrono::Utc::now().to_rfc3339();
    s.call("send_event", json!({ "event": "first", "data": {} }))
        .await;
    let rows = wait_attempts(&s, &id, |r| r.len() == 3 && r[2]["status"] == "failed").await;
    assert!(
        rows[2]["error"]
            .as_str()
            .unwrap()
            .contains("no retries left after 3 attempts"),
        "{:#}",
        rows[2]
    );
    assert_eq!(rows[2]["next_attempt_at"], Value::Null);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.received().len(), 3, "nothing after giving up");
    let w = s.call("get_webhook", json!({ "id": id })).await;
    assert_eq!(w["webhook"]["failure_count"], 3);
    assert!(w["webhook"]["failing_since"].is_string());

    // One delivery again, by hand: attempt 4, trigger manual. The sink now answers 200.
    let last = rows[2]["id"].as_str().unwrap();
    let r = s.call("redeliver", json!({ "delivery_id": last })).await;
    assert_eq!(r["attempt"], 4);
    let rows = wait_attempts(&s, &id, |r| r.len() == 4 && r[3]["status"] == "succeeded").await;
    assert_eq!(rows[3]["trigger"], "manual");

    // Bulk: another message fails for good, then everything failed since `since` is re-queued.
    sink.script((0..3).map(|_| Reply::status(500)));
    s.call("send_event", json!({ "event": "second", "data": {} }))
        .await;
    wait_attempts(&s, &id, |r| r.len() == 7 && r[6]["status"] == "failed").await;
    let bulk = s
        .call("redeliver", json!({ "webhook_id": id, "since": since }))
        .await;
    assert_eq!(
        bulk["queued"], 1,
        "only the message whose last attempt failed: {bulk}"
    );
    let rows = wait_attempts(&s, &id, |r| r.len() == 8 && r[7]["status"] == "succeeded").await;
    assert_eq!(
        (rows[7]["event"].as_str(), rows[7]["trigger"].as_str()),
        (Some("second"), Some("manual"))
    );
    let again = s
        .call("redeliver", json!({ "webhook_id": id, "since": since }))
        .await;
    assert_eq!(again["queued"], 0, "nothing left to recover");

    // Mistakes a model can fix.
    let e = s.call_err("redeliver", json!({})).await;
    assert!(e.contains("delivery_id") && e.contains("webhook_id"), "{e}");
    let e = s.call_err("redeliver", json!({ "webhook_id": id })).await;
    assert!(e.contains("since"), "{e}");
    s.call_err("redeliver", json!({ "delivery_id": "nope" }))
        .await;
    s.stop().await;
}

#[tokio::test]
async fn gone_disables_abort_stops_and_throttling_waits_a_minute() {
    let sink = Sink::start().await;
    let s = server(&["--retry-schedule", "1,1", "--delivery-timeout", "1"]).await;

    // 410 Gone disables the webhook at once.
    let (gone, _) = s.outbound(&sink.url("gone"), json!({})).await;
    sink.script([Reply::status(410)]);
    s.call(
        "send_event",
        json!({ "event": "e", "data": {}, "webhook_ids": [gone] }),
    )
    .await;
    let rows = wait_attempts(&s, &gone, |r| r.len() == 1 && r[0]["status"] == "failed").await;
    assert!(rows[0]["error"].as_str().unwrap().contains("410"));
    let w = s
        .wait_for("get_webhook", json!({ "id": gone }), 5, |w| {
            w["webhook"]["enabled"] == false
        })
        .await;
    assert!(w["webhook"]["disabled_reason"]
        .as_str()
        .unwrap()
        .contains("410"));
    // Re-enabling by hand clears the reason.
    let w = s
        .call("update_webhook", json!({ "id": gone, "enabled": true }))
        .await;
    assert!(w["webhook"].get("disabled_reason").is_none());

    // webhook-delivery: abort-message stops retries without disabling.
    let (abort, _) = s.outbound(&sink.url("abort"), json!({})).await;
    sink.script([Reply::status(500).header("webhook-delivery", "abort-message")]);
    s.call(
        "send_event",
        json!({ "event": "e", "data": {}, "webhook_ids": [abort] }),
    )
    .await;
    let rows = wait_attempts(&s, &abort, |r| r.len() == 1 && r[0]["status"] == "failed").await;
    assert!(rows[0]["error"].as_str().unwrap().contains("abort-message"));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(attempts(&s, &abort).await.len(), 1);
    assert_eq!(
        s.call("get_webhook", json!({ "id": abort })).await["webhook"]["enabled"],
        true
    );

    // 429 with Retry-After, and a timeout: the next attempt waits at least 60 s.
    let (slow, _) = s.outbound(&sink.url("slow"), json!({})).await;
    sink.script([Reply::status(429).header("retry-after", "2")]);
    s.call(
        "send_event",
        json!({ "event": "e", "data": {}, "webhook_ids": [slow] }),
    )
    .await;
    let rows = wait_attempts(&s, &slow, |r| r.len() == 2).await;
    assert_eq!(rows[0]["status_code"], 429);
    assert!(ms(&rows[0], "next_attempt_at") - ms(&rows[0], "created_at") >= 60_000);
    assert_eq!(rows[1]["status"], "pending");
    let (late, _) = s.outbound(&sink.url("late"), json!({})).await;
    sink.script([Reply::status(200).after(Duration::from_secs(3))]);
    s.call(
        "send_event",
        json!({ "event": "e", "data": {}, "webhook_ids": [late] }),
    )
    .await;
    let rows = wait_attempts(&s, &late, |r| r.len() == 2).await;
    assert_eq!(rows[0]["error"], "timeout");
    assert!(ms(&rows[0], "next_attempt_at") - ms(&rows[0], "created_at") >= 60_000);
    s.stop().await;
}

#[tokio::test]
async fn consistent_failure_disables_the_webhook() {
    let sink = Sink::start().await;
    sink.script((0..20).map(|_| Reply::status(500)));
    let s = server(&[
        "--retry-schedule",
        "0.4,0.4,0.4,0.4,0.4",
        "--disable-after",
        "1",
    ])
    .await;
    let (id, _) = s.outbound(&sink.url("down"), json!({})).await;
    s.call("send_event", json!({ "event": "e", "data": {} }))
        .await;
    let w = s
        .wait_for("get_webhook", json!({ "id": id }), 10, |w| {
            w["webhook"]["enabled"] == false
        })
        .await;
    assert!(
        w["webhook"]["disabled_reason"]
            .as_str()
            .unwrap()
            .contains("failed for"),
        "{w}"
    );
    let rows = attempts(&s, &id).await;
    assert!(
        rows.len() >= 3 && rows.len() <= 5,
        "disabled after about a second of failures: {}",
        rows.len()
    );
    assert!(rows.last().unwrap()["error"]
        .as_str()
        .unwrap()
        .contains("webhook disabled"));
    s.stop().await;
}

#[tokio::test]
async fn a_restart_resumes_pending_and_in_flight_attempts() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;
    let args = [LOCAL, "--retry-schedule", "1.5"];
    let s = Server::start_with(Era::Legacy, Some(dir.path()), &args).await;
    let (waiting, _) = s.outbound(&sink.url("waiting"), json!({})).await;
    let (flying, _) = s.outbound(&sink.url("flying"), json!({})).await;

    // One message fails and waits for its retry; another is in flight (the sink holds it).
    sink.script([Reply::status(500)]);
    s.call(
        "send_event",
        json!({ "event": "w", "data": {}, "webhook_ids": [waiting] }),
    )
    .await;
    wait_attempts(&s, &waiting, |r| r.len() == 2).await;
    sink.script([Reply::status(200).after(Duration::from_secs(30))]);
    s.call(
        "send_event",
        json!({ "event": "f", "data": {}, "webhook_ids": [flying] }),
    )
    .await;
    sink.wait_for(2, 10).await;
    s.kill9();
    drop(s);

    let s = Server::start_with(Era::Legacy, Some(dir.path()), &args).await;
    let rows = wait_attempts(&s, &waiting, |r| {
        r.len() == 2 && r[1]["status"] == "succeeded"
    })
    .await;
    assert_eq!(rows[1]["attempt"], 2);
    let rows = wait_attempts(&s, &flying, |r| {
        r.iter().any(|x| x["status"] == "succeeded")
    })
    .await;
    assert_eq!(
        rows.len(),
        1,
        "the in-flight attempt is resumed, not duplicated in the log"
    );
    let flying_got = sink.on("flying");
    assert_eq!(
        flying_got.len(),
        2,
        "at least once: the killed attempt is sent again"
    );
    assert_eq!(
        flying_got[0].headers["webhook-id"], flying_got[1].headers["webhook-id"],
        "receivers de-duplicate by id"
    );
    s.stop().await;
}

#[tokio::test]
async fn sigterm_lets_in_flight_deliveries_finish() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;
    let s = Server::start_with(Era::Legacy, Some(dir.path()), &[LOCAL]).await;
    let (id, _) = s.outbound(&sink.url("t"), json!({})).await;
    sink.script([Reply::status(200).after(Duration::from_millis(1500))]);
    s.call("send_event", json!({ "event": "e", "data": {} }))
        .await;
    sink.wait_for(1, 10).await;
    common::signal(s.pid, "-TERM");
    drop(s);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let s = Server::start_with(Era::Legacy, Some(dir.path()), &[LOCAL]).await;
    let rows = attempts(&s, &id).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0]["status"], "succeeded",
        "the attempt finished before exit: {:#}",
        rows[0]
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.received().len(), 1, "and was not sent again");
    s.stop().await;
}

#[tokio::test]
async fn inbound_events_are_relayed_to_forward_targets() {
    let sink = Sink::start().await;
    let s = server(&[]).await;
    let (out, out_secret) = s.outbound(&sink.url("relay"), json!({})).await;
    let (id, url, secret) = s.inbound(json!({ "forward_to": [out] })).await;
    let body = r#"{"id":"evt-relay","event":"message_received","data":{"lastMessage":"relay me"}}"#;
    let (st, ack) = s.post_signed(&url, &secret, body).await;
    assert_eq!(st, 200);
    let got = sink.wait_for(1, 10).await;
    assert_eq!(
        std::str::from_utf8(&got[0].body).unwrap(),
        body,
        "the verified payload, unchanged"
    );
    assert!(
        hex_ok(&out_secret, &got[0]),
        "re-signed with the target's secret"
    );
    assert!(!hex_ok(&secret, &got[0]));
    assert_eq!(got[0].headers["x-webhook-event"], "message_received");
    let rows = wait_attempts(&s, &out, |r| r.len() == 1 && r[0]["status"] == "succeeded").await;
    assert_eq!(rows[0]["event_id"], ack["event_id"]);
    // A duplicate inbound delivery is not relayed again.
    let (_, dup) = s.post_signed(&url, &secret, body).await;
    assert_eq!(dup["duplicate"], true);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.received().len(), 1);
    // forward_to must name outbound webhooks.
    let e = s
        .call_err("update_webhook", json!({ "id": id, "forward_to": [id] }))
        .await;
    assert!(e.contains("inbound"), "{e}");
    let e = s
        .call_err(
            "create_webhook",
            json!({ "direction": "outbound", "url": sink.url("x"), "forward_to": [out] }),
        )
        .await;
    assert!(e.contains("inbound webhooks only"), "{e}");
    s.stop().await;
}

#[tokio::test]
async fn during_a_rotation_deliveries_carry_both_signatures() {
    let sink = Sink::start().await;
    let s = server(&[]).await;
    let (id, old) = s.outbound(&sink.url("rot"), json!({})).await;
    let rotated = s
        .call("rotate_secret", json!({ "id": id, "grace_seconds": 3600 }))
        .await;
    let new = rotated["webhook"]["secret"].as_str().unwrap().to_string();
    s.call("send_event", json!({ "event": "e", "data": {} }))
        .await;
    let r = &sink.wait_for(1, 10).await[0];
    let sigs = r.headers["webhook-signature"].to_str().unwrap();
    assert_eq!(sigs.split(' ').count(), 2, "{sigs}");
    assert!(standard_ok(&old, r) && standard_ok(&new, r));
    assert!(hex_ok(&new, r), "X-Webhook-Signature uses the new secret");
    assert_eq!(
        r.headers["x-webhook-signature"].to_str().unwrap(),
        hex_hmac(&new, &r.body)
    );
    s.stop().await;
}

#[tokio::test]
async fn ssrf_guard_refuses_private_targets_unless_allowed() {
    let guarded = Server::start().await;
    for url in [
        "http://127.0.0.1:9/x",
        "http://10.0.0.1/x",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:9/x",
        "http://localhost:9/x",
        "http://192.168.1.10/hook",
    ] {
        let e = guarded
            .call_err(
                "create_webhook",
                json!({ "direction": "outbound", "url": url }),
            )
            .await;
        assert!(
            e.contains("SSRF guard") && e.contains("--allow-private-targets"),
            "{url}: {e}"
        );
    }
    guarded.stop().await;

    // Allowed with the flag; and checked again at connect time: the same target, created while
    // allowed, is refused once the server runs guarded.
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;
    let open = Server::start_with(Era::Legacy, Some(dir.path()), &[LOCAL]).await;
    let (id, _) = open.outbound(&sink.url("p"), json!({})).await;
    open.outbound("http://localhost:9/x", json!({})).await;
    open.stop().await;
    let guarded =
        Server::start_with(Era::Legacy, Some(dir.path()), &["--retry-schedule", "60"]).await;
    guarded
        .call(
            "send_event",
            json!({ "event": "e", "data": {}, "webhook_ids": [id] }),
        )
        .await;
    let rows = wait_attempts(&guarded, &id, |r| {
        !r.is_empty() && r[0]["status"] == "failed"
    })
    .await;
    assert!(
        rows[0]["error"].as_str().unwrap().contains("SSRF guard"),
        "{:#}",
        rows[0]
    );
    assert!(
        sink.received().is_empty(),
        "nothing reached the private target"
    );
    guarded.stop().await;
}

/// A proxy from the environment would resolve targets itself, past the SSRF guard: deliveries
/// ignore `HTTP_PROXY`/`ALL_PROXY` and go straight to the target.
#[tokio::test]
async fn deliveries_ignore_a_proxy_from_the_environment() {
    let (proxy, target) = (Sink::start().await, Sink::start().await);
    let http_proxy = format!("env:HTTP_PROXY={}", proxy.base);
    let all_proxy = format!("env:ALL_PROXY={}", proxy.base);
    let s = server(&[&http_proxy, &all_proxy, "env:NO_PROXY=", "env:no_proxy="]).await;
    let (_id, _) = s.outbound(&target.url("hook"), json!({})).await;
    let sent = s
        .call("send_event", json!({ "event": "order.paid", "data": {} }))
        .await;
    assert_eq!(sent["queued"], 1, "{sent}");
    let got = target.wait_for(1, 10).await;
    assert_eq!(got[0].path, "hook");
    assert!(
        proxy.received().is_empty(),
        "the proxy saw {:?}",
        proxy.received().iter().map(|r| &r.path).collect::<Vec<_>>()
    );
    s.stop().await;
}
