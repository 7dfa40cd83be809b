//! Prometheus `/metrics` on the receiver, scraped from the real binary after real traffic:
//! received, rejected by reason, deliveries by outcome, attempt latency, queue depth and age,
//! MCP sessions, store write latency.

mod common;

use std::time::Duration;

use common::sink::{Reply, Sink};
use common::{hex_hmac, Era, Server};
use serde_json::json;

/// The value of one sample line (`name{labels} value`).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn metrics_count_what_happened() {
    let sink = Sink::start().await;
    let s = Server::start_with(
        Era::Legacy,
        None,
        &["--allow-private-targets", "--retry-schedule", "3600"],
    )
    .await;
    let (id, url, secret) = s.inbound(json!({})).await;
    for n in 0..3 {
        let body = json!({ "id": format!("m{n}"), "event": "lead.created" }).to_string();
        assert_eq!(s.post_signed(&url, &secret, &body).await.0, 200);
    }
    for _ in 0..2 {
        let (st, _) = s
            .post(
                &url,
                "{}",
                &[("x-webhook-signature", &hex_hmac("wrong", b"{}"))],
            )
            .await;
        assert_eq!(st, 401);
    }
    let unknown = url.replace(&id, "no-such-webhook");
    assert_eq!(s.post(&unknown, "{}", &[]).await.0, 404);

    // Outbound: one target answers 200, one 500 (retried in an hour: it stays pending).
    sink.script([Reply::status(200)]);
    s.outbound(&sink.url("ok"), json!({ "events": ["ok.event"] }))
        .await;
    let failing = Sink::start().await;
    failing.script([Reply::status(500)]);
    s.outbound(&failing.url("down"), json!({ "events": ["down.event"] }))
        .await;
    s.call("send_event", json!({ "event": "ok.event", "data": {} }))
        .await;
    s.call("send_event", json!({ "event": "down.event", "data": {} }))
        .await;
    sink.wait_for(1, 10).await;
    failing.wait_for(1, 10).await;

    let base = url.split("/hooks/").next().unwrap().to_string();
    let mut text = String::new();
    for _ in 0..100 {
        let resp = s.http.get(format!("{base}/metrics")).send().await.unwrap();
        assert!(resp.status().is_success());
        assert!(resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain"));
        text = resp.text().await.unwrap();
        if sample(&text, "webhook_mcp_deliveries_total{outcome=\"retrying\"}") == Some(1.0)
            && sample(&text, "webhook_mcp_deliveries_total{outcome=\"succeeded\"}") == Some(1.0)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let get =
        |series: &str| sample(&text, series).unwrap_or_else(|| panic!("no {series} in:\n{text}"));
    assert_eq!(get("webhook_mcp_events_received_total"), 3.0);
    assert_eq!(
        get("webhook_mcp_events_rejected_total{reason=\"unauthorized\"}"),
        2.0
    );
    assert_eq!(
        get("webhook_mcp_events_rejected_total{reason=\"not_found\"}"),
        1.0
    );
    assert_eq!(get("webhook_mcp_store_write_duration_seconds_count"), 3.0);
    assert_eq!(
        get("webhook_mcp_deliveries_total{outcome=\"succeeded\"}"),
        1.0
    );
    assert_eq!(
        get("webhook_mcp_deliveries_total{outcome=\"retrying\"}"),
        1.0
    );
    assert_eq!(
        get("webhook_mcp_delivery_attempt_duration_seconds_count"),
        2.0
    );
    assert_eq!(get("webhook_mcp_queue_depth"), 1.0, "the retry is pending");
    assert!(get("webhook_mcp_oldest_pending_attempt_age_seconds") > 0.0);
    assert_eq!(get("webhook_mcp_mcp_sessions"), 1.0);
    s.stop().await;
}
