//! Content filters through the real binary over stdio, with signed events POSTed to the real
//! receiver and a real HTTP sink: a model's two calls for "tell me when Jane Smith replies",
//! `list_events` by content, outbound webhooks that deliver and relay only matching events
//! (nothing in the log for the others, the counter says how many), and the errors a model reads.

mod common;

use std::time::Duration;

use common::sink::{hex_ok, Sink};
use common::{Era, Server};
use serde_json::{json, Value};

/// A Voyager `message_received` from `name`, as Voyager sends it.
fn message_from(id: &str, name: &str, amount: i64) -> String {
    json!({
        "id": id,
        "event": "message_received",
        "tenantId": "32e365dc-e8c4-4caa-8637-0e6b48dfeccd",
        "timestamp": "2026-12-02T10:30:00Z",
        "data": {
            "userId": "charis", "conversationId": format!("conv_{id}"),
            "participantName": name, "lastMessage": format!("hello from {name}"), "amount": amount
        }
    })
    .to_string()
}

fn names(events: &Value) -> Vec<String> {
    events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            e["untrusted_payload"]["payload"]["data"]["participantName"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tell_me_when_jane_replies_in_two_calls() {
    let s = Server::start().await;
    // Call 1: the inbound webhook.
    let created = s
        .call(
            "create_webhook",
            json!({"direction": "inbound", "description": "voyager"}),
        )
        .await;
    let hook = created["webhook"]["id"].as_str().unwrap().to_string();
    let url = created["webhook"]["url"].as_str().unwrap().to_string();
    let secret = created["webhook"]["secret"].as_str().unwrap().to_string();
    // Call 2: wait for Jane, while other people's messages arrive first.
    let wait = s.call(
        "wait_for_events",
        json!({"webhook_id": hook, "timeout_ms": 20000,
               "filter": {"data.participantName": {"$startsWith": "Jane"}}}),
    );
    let senders = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        for (i, name) in ["Bob Jones", "Alice Wu", "Jane Smith", "Carl Ito"]
            .iter()
            .enumerate()
        {
            let (status, _) = s
                .post_signed(&url, &secret, &message_from(&format!("m{i}"), name, 0))
                .await;
            assert_eq!(status, 200);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let (answer, ()) = tokio::join!(wait, senders);
    assert_eq!(names(&answer["events"]), ["Jane Smith"], "{answer:#}");
    assert_eq!(answer["count"], 1);
    // Everything else arrived and was stored: the filter chose what the model reads.
    let all = s
        .call("list_events", json!({"webhook_id": hook, "limit": 50}))
        .await;
    assert_eq!(all["count"], 4, "{all:#}");
    // Continuing from the answer's cursor skips the others for good.
    let next = s
        .call(
            "wait_for_events",
            json!({"webhook_id": hook, "after": answer["next_cursor"], "timeout_ms": 300,
                   "filter": {"data.participantName": {"$startsWith": "Jane"}}}),
        )
        .await;
    assert_eq!(next["count"], 0, "{next:#}");
    assert_eq!(next["timed_out"], true);
    assert!(
        next["next_cursor"].as_i64().unwrap() > answer["next_cursor"].as_i64().unwrap(),
        "the cursor moved past Carl's event: {next:#}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_events_filters_by_content_and_headers() {
    let s = Server::start().await;
    let (hook, url, secret) = s.inbound(json!({})).await;
    for (i, (name, amount)) in [("Jane Smith", 50), ("Bob", 150), ("Jane Doe", 250)]
        .iter()
        .enumerate()
    {
        let body = message_from(&format!("l{i}"), name, *amount);
        let sig = common::hex_hmac(&secret, body.as_bytes());
        let tag = if i == 2 { "vip" } else { "plain" };
        let (status, _) = s
            .post(
                &url,
                &body,
                &[("x-webhook-signature", &sig), ("x-tag", tag)],
            )
            .await;
        assert_eq!(status, 200);
    }
    let list = |filter: Value| {
        let s = &s;
        let hook = hook.clone();
        async move {
            let page = s
                .call("list_events", json!({"webhook_id": hook, "filter": filter}))
                .await;
            page["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["seq"].as_i64().unwrap())
                .collect::<Vec<_>>()
        }
    };
    let all = list(json!({})).await;
    assert_eq!(all.len(), 3);
    assert_eq!(list(json!({"data.amount": {"$gte": 100}})).await, all[1..]);
    assert_eq!(
        list(json!({"$or": [{"data.participantName": "Bob"}, {"headers.x-tag": "vip"}]})).await,
        all[1..]
    );
    assert_eq!(
        list(json!({"data": {"participantName": {"$contains": "Jane"}, "amount": {"$lt": 100}}}))
            .await,
        all[..1]
    );
    assert_eq!(
        list(json!({"$not": {"data.participantName": {"$startsWith": "Jane"}}})).await,
        all[1..2]
    );
    assert!(list(json!({"data.missing": {"$exists": true}}))
        .await
        .is_empty());
    // A page of one: the cursor stops at the match, so the next page finds the one after.
    let first = s
        .call(
            "list_events",
            json!({"webhook_id": hook, "limit": 1, "filter": {"data.participantName": {"$startsWith": "Jane"}}}),
        )
        .await;
    assert_eq!(first["next_cursor"].as_i64().unwrap(), all[0]);
    let second = s
        .call(
            "list_events",
            json!({"webhook_id": hook, "limit": 1, "after": first["next_cursor"],
                   "filter": {"data.participantName": {"$startsWith": "Jane"}}}),
        )
        .await;
    assert_eq!(second["events"][0]["seq"].as_i64().unwrap(), all[2]);

    let e = s
        .call_err(
            "list_events",
            json!({"filter": {"data.amount": {"$gtt": 5}}}),
        )
        .await;
    assert!(
        e.contains("`$gtt` is not an operator; use one of $eq, $ne, $in"),
        "{e}"
    );
    let e = s
        .call_err("list_events", json!({"filter": {"$eq": 5}}))
        .await;
    assert!(e.contains("applies to a path"), "{e}");
    s.stop().await;
}

/// The value of a counter line of `/metrics` (0 when absent).
async fn counter(s: &Server, base: &str, line_start: &str) -> f64 {
    let text = s
        .http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .map_or(0.0, |v| v.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_webhooks_deliver_and_relay_only_matching_events() {
    let sink = Sink::start().await;
    let s = Server::start_with(Era::Legacy, None, &["--allow-private-targets"]).await;
    let (big, big_secret) = s
        .outbound(
            &sink.url("/big"),
            json!({"filter": {"data.amount": {"$gte": 100}}}),
        )
        .await;
    let shown = s.call("get_webhook", json!({"id": big})).await;
    assert_eq!(
        shown["webhook"]["filter"],
        json!({"data.amount": {"$gte": 100}})
    );

    let small = s
        .call(
            "send_event",
            json!({"event": "order.paid", "data": {"amount": 50}}),
        )
        .await;
    assert_eq!(small["queued"], 0, "{small:#}");
    assert_eq!(small["filtered_out"], json!([big]), "{small:#}");
    let large = s
        .call(
            "send_event",
            json!({"event": "order.paid", "data": {"amount": 150}}),
        )
        .await;
    assert_eq!(large["queued"], 1, "{large:#}");
    let got = sink.wait_for(1, 10).await;
    assert!(hex_ok(&big_secret, &got[0]));
    let body: Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(body["data"]["amount"], 150);

    // Relays: only Jane's messages go on to the relay target.
    let (jane_only, _) = s
        .outbound(
            &sink.url("/jane"),
            json!({"filter": {"data.participantName": "Jane Smith"}}),
        )
        .await;
    let (_, url, secret) = s.inbound(json!({"forward_to": [jane_only]})).await;
    for (i, name) in ["Bob Jones", "Jane Smith", "Alice Wu"].iter().enumerate() {
        let (status, _) = s
            .post_signed(&url, &secret, &message_from(&format!("r{i}"), name, 0))
            .await;
        assert_eq!(status, 200);
    }
    let relayed = {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let on = sink.on("/jane");
            if !on.is_empty() || tokio::time::Instant::now() > deadline {
                break on;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.on("/jane").len(), 1, "only Jane's message is relayed");
    let body: Value = serde_json::from_slice(&relayed[0].body).unwrap();
    assert_eq!(body["data"]["participantName"], "Jane Smith");

    // Nothing in the log for what was filtered out; the counter has it.
    let log = s
        .call("query_deliveries", json!({"webhook_id": jane_only}))
        .await;
    assert_eq!(log["deliveries"].as_array().unwrap().len(), 1, "{log:#}");
    let log = s.call("query_deliveries", json!({"webhook_id": big})).await;
    assert_eq!(log["deliveries"].as_array().unwrap().len(), 1, "{log:#}");
    let base = url.split("/hooks/").next().unwrap().to_string();
    assert_eq!(
        counter(
            &s,
            &base,
            "webhook_mcp_events_filtered_total{path=\"relay\"}"
        )
        .await,
        2.0
    );
    assert_eq!(
        counter(
            &s,
            &base,
            "webhook_mcp_events_filtered_total{path=\"send\"}"
        )
        .await,
        1.0
    );

    // `{}` removes the filter; an inbound webhook takes none.
    let cleared = s
        .call("update_webhook", json!({"id": big, "filter": {}}))
        .await;
    assert!(cleared["webhook"]["filter"].is_null(), "{cleared:#}");
    let again = s
        .call(
            "send_event",
            json!({"event": "order.paid", "data": {"amount": 1}}),
        )
        .await;
    assert_eq!(
        again["queued"], 1,
        "the cleared webhook takes it now: {again:#}"
    );
    assert_eq!(again["filtered_out"], json!([jane_only]), "{again:#}");
    let e = s
        .call_err(
            "create_webhook",
            json!({"direction": "inbound", "filter": {"data.a": 1}}),
        )
        .await;
    assert!(e.contains("applies to outbound webhooks"), "{e}");
    s.stop().await;
}
