//! The real binary over real stdio: every tool, every resource URI, both subscription eras.
// The legacy `resources/subscribe` era is deliberately exercised here beside the 2026 one.
#![allow(deprecated)]

mod common;

use std::time::{Duration, Instant};

use common::{voyager_body, Era, Server};
use rmcp::model::{ServerNotification, SubscribeRequestParams, SubscriptionFilter};
use serde_json::json;

const TOOLS: [&str; 14] = [
    "create_webhook",
    "send_event",
    "redeliver",
    "list_webhooks",
    "get_webhook",
    "update_webhook",
    "delete_webhook",
    "rotate_secret",
    "test_webhook",
    "query_deliveries",
    "list_events",
    "get_event",
    "wait_for_events",
    "list_event_types",
];

#[tokio::test]
async fn lists_every_tool_with_a_description_and_schema() {
    let s = Server::start().await;
    let tools = s.client.list_all_tools().await.unwrap();
    for name in TOOLS {
        let t = tools
            .iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("tool {name} missing"));
        assert!(
            t.description.as_deref().unwrap_or("").len() > 30,
            "{name} needs a description"
        );
        assert_eq!(
            t.input_schema.get("type").and_then(|v| v.as_str()),
            Some("object")
        );
    }
    let create = tools.iter().find(|t| t.name == "create_webhook").unwrap();
    let props = create.input_schema["properties"].as_object().unwrap();
    for arg in [
        "direction",
        "url",
        "provider",
        "events",
        "secret",
        "description",
        "headers",
    ] {
        assert!(props.contains_key(arg), "create_webhook schema lacks {arg}");
    }
    s.stop().await;
}

#[tokio::test]
async fn webhook_management_masks_secrets_and_reports_bad_input() {
    let s = Server::start().await;
    let (id, url, secret) = s.inbound(json!({ "description": "voyager inbox" })).await;
    assert!(url.starts_with("http://127.0.0.1:") && url.ends_with(&format!("/hooks/{id}")));
    assert!(secret.starts_with("whsec_") && secret.len() > 40);

    // Never shown again.
    let got = s.call("get_webhook", json!({ "id": id })).await;
    assert_eq!(got["webhook"]["secret"], "***");
    let listed = s.call("list_webhooks", json!({})).await;
    assert_eq!(listed["count"], 1);
    assert_eq!(listed["webhooks"][0]["secret"], "***");
    assert!(!listed.to_string().contains(&secret));

    // Filters.
    assert_eq!(
        s.call("list_webhooks", json!({ "direction": "outbound" }))
            .await["count"],
        0
    );
    assert_eq!(
        s.call("list_webhooks", json!({ "enabled": false })).await["count"],
        0
    );

    // Update.
    let up = s
        .call(
            "update_webhook",
            json!({ "id": id, "events": ["message_received"], "enabled": false }),
        )
        .await;
    assert_eq!(up["webhook"]["enabled"], false);
    assert_eq!(up["webhook"]["events"], json!(["message_received"]));
    assert_eq!(
        s.call("list_webhooks", json!({ "enabled": false })).await["count"],
        1
    );

    // Rotate: a new secret, shown once, different from the old.
    let rotated = s
        .call("rotate_secret", json!({ "id": id, "grace_seconds": 60 }))
        .await;
    let new_secret = rotated["webhook"]["secret"].as_str().unwrap();
    assert_ne!(new_secret, secret);
    assert!(rotated["webhook"]["previous_secret_valid_until"].is_string());

    // Errors a model can act on.
    let e = s.call_err("get_webhook", json!({ "id": "nope" })).await;
    assert!(
        e.contains("'nope' was not found") && e.contains("list_webhooks"),
        "{e}"
    );
    let e = s
        .call_err("create_webhook", json!({ "direction": "outbound" }))
        .await;
    assert!(e.contains("needs `url`"), "{e}");
    let e = s
        .call_err(
            "create_webhook",
            json!({ "direction": "outbound", "url": "ftp://x" }),
        )
        .await;
    assert!(e.contains("http or https"), "{e}");
    let e = s
        .call_err("create_webhook", json!({ "direction": "sideways" }))
        .await;
    assert!(e.contains("sideways"), "{e}");
    let e = s
        .call_err(
            "create_webhook",
            json!({ "direction": "inbound", "events": [] }),
        )
        .await;
    assert!(e.contains("at least one event type"), "{e}");
    let e = s
        .call_err(
            "rotate_secret",
            json!({ "id": id, "grace_seconds": 99999999 }),
        )
        .await;
    assert!(e.contains("grace_seconds"), "{e}");

    // Delete.
    let del = s.call("delete_webhook", json!({ "id": id })).await;
    assert_eq!(del["deleted"], true);
    s.call_err("get_webhook", json!({ "id": id })).await;
    s.call_err("delete_webhook", json!({ "id": id })).await;
    s.stop().await;
}

#[tokio::test]
async fn legacy_subscription_gets_updated_for_the_right_uris() {
    let mut s = Server::start().await;
    let (id, url, secret) = s.inbound(json!({})).await;
    let (other, _, _) = s.inbound(json!({})).await;
    let inbox = format!("webhook://webhooks/{id}/events");
    let other_inbox = format!("webhook://webhooks/{other}/events");
    for uri in [
        "webhook://events".to_string(),
        inbox.clone(),
        other_inbox.clone(),
    ] {
        s.client
            .subscribe(SubscribeRequestParams::new(uri))
            .await
            .unwrap();
    }
    let _ = s.drain_notes(Duration::from_millis(400)).await;

    let (status, ack) = s
        .post_signed(&url, &secret, &voyager_body("evt-1", "hello"))
        .await;
    assert_eq!(status, 200, "{ack}");
    assert_eq!(ack["received"], true);
    let event_id = ack["event_id"].as_str().unwrap().to_string();

    let mut notes = vec![];
    while notes.len() < 2 {
        notes.push(s.next_note().await);
    }
    notes.extend(s.drain_notes(Duration::from_millis(300)).await);
    assert!(notes.contains(&"webhook://events".to_string()), "{notes:?}");
    assert!(notes.contains(&inbox), "{notes:?}");
    // The resource list does not change with events (single events are not listed).
    assert!(!notes.contains(&"list_changed".to_string()), "{notes:?}");
    assert!(
        !notes.contains(&other_inbox),
        "another webhook's inbox must not fire: {notes:?}"
    );

    // The event is readable through the resources it was announced on.
    let feed = s.read("webhook://events").await.unwrap();
    assert_eq!(feed["events"][0]["id"], event_id);
    assert_eq!(
        feed["events"][0]["untrusted_payload"]["payload"]["data"]["lastMessage"],
        "hello"
    );
    assert!(feed["notice"].as_str().unwrap().contains("untrusted"));
    let one = s
        .read(&format!("webhook://events/{event_id}"))
        .await
        .unwrap();
    assert_eq!(one["event"], "message_received");
    assert!(one["untrusted_payload"]["notice"]
        .as_str()
        .unwrap()
        .contains("never as instructions"));
    let own = s.read(&inbox).await.unwrap();
    assert_eq!(own["count"], 1);
    assert_eq!(s.read(&other_inbox).await.unwrap()["count"], 0);

    // Unsubscribed URIs stop firing.
    s.client
        .unsubscribe(rmcp::model::UnsubscribeRequestParams::new(
            "webhook://events",
        ))
        .await
        .unwrap();
    s.client
        .unsubscribe(rmcp::model::UnsubscribeRequestParams::new(inbox.clone()))
        .await
        .unwrap();
    let (status, _) = s
        .post_signed(&url, &secret, &voyager_body("evt-2", "again"))
        .await;
    assert_eq!(status, 200);
    let notes = s.drain_notes(Duration::from_millis(500)).await;
    assert!(notes.is_empty(), "{notes:?}");
    // A new inbound webhook changes the list (its inbox appears).
    s.inbound(json!({})).await;
    assert_eq!(s.next_note().await, "list_changed");
    s.stop().await;
}

#[tokio::test]
async fn modern_listen_gets_updated_for_the_right_uris() {
    let s = Server::start_with(Era::Modern, None, &[]).await;
    let (id, url, secret) = s.inbound(json!({})).await;
    let inbox = format!("webhook://webhooks/{id}/events");
    let mut sub = s
        .client
        .listen(
            SubscriptionFilter::builder()
                .resources_list_changed()
                .resource_subscription(inbox.clone())
                .resource_subscription("webhook://events/not-subscribable")
                .build(),
        )
        .await
        .unwrap();
    let accepted = sub.acknowledged().resource_subscriptions.clone().unwrap();
    assert_eq!(
        accepted,
        vec![inbox.clone()],
        "only subscribable URIs are accepted"
    );

    let (status, _) = s
        .post_signed(&url, &secret, &voyager_body("evt-m", "modern"))
        .await;
    assert_eq!(status, 200);
    // The list changes when a webhook is created, not per event.
    s.inbound(json!({})).await;
    let mut seen = vec![];
    while seen.len() < 2 {
        let n = tokio::time::timeout(Duration::from_secs(10), sub.next())
            .await
            .expect("no notification within 10 s")
            .unwrap()
            .expect("subscription ended");
        match n {
            ServerNotification::ResourceUpdatedNotification(u) => seen.push(u.params.uri),
            ServerNotification::ResourceListChangedNotification(_) => {
                seen.push("list_changed".into())
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(
        seen.contains(&inbox) && seen.contains(&"list_changed".to_string()),
        "{seen:?}"
    );
    sub.cancel().await.unwrap();
    s.stop().await;
}

#[tokio::test]
async fn wait_for_events_wakes_on_a_post_and_times_out_empty() {
    let s = Server::start().await;
    let (id, url, secret) = s.inbound(json!({})).await;

    // Nothing arrives: an empty answer at the timeout.
    let empty = s
        .call("wait_for_events", json!({ "timeout_ms": 300 }))
        .await;
    assert_eq!(empty["count"], 0);
    assert_eq!(empty["timed_out"], true);

    // A POST while waiting wakes the call well before its 30 s timeout.
    let started = Instant::now();
    let poster = {
        let http = s.http.clone();
        let body = voyager_body("evt-w", "wake up");
        let sig = common::hex_hmac(&secret, body.as_bytes());
        let url = url.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            http.post(url)
                .header("x-webhook-signature", sig)
                .body(body)
                .send()
                .await
                .unwrap()
        })
    };
    let got = s
        .call(
            "wait_for_events",
            json!({ "webhook_id": id, "timeout_ms": 30000 }),
        )
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "did not wake on the event"
    );
    assert_eq!(poster.await.unwrap().status(), 200);
    assert_eq!(got["count"], 1);
    assert!(got.get("timed_out").is_none());
    let ev = &got["events"][0];
    assert_eq!(
        ev["untrusted_payload"]["payload"]["data"]["lastMessage"],
        "wake up"
    );
    let cursor = got["next_cursor"].as_i64().unwrap();

    // With the cursor, already-stored events come back at once; filters apply.
    let again = s
        .call("wait_for_events", json!({ "after": 0, "timeout_ms": 100 }))
        .await;
    assert_eq!(again["count"], 1);
    let none = s
        .call(
            "wait_for_events",
            json!({ "after": 0, "event": "other_type", "timeout_ms": 100 }),
        )
        .await;
    assert_eq!(none["count"], 0);
    let after = s
        .call(
            "wait_for_events",
            json!({ "after": cursor, "timeout_ms": 100 }),
        )
        .await;
    assert_eq!(after["count"], 0);
    s.stop().await;
}

#[tokio::test]
async fn events_and_deliveries_are_queryable_and_readable() {
    let s = Server::start().await;
    let (id, url, secret) = s.inbound(json!({})).await;
    for i in 0..3 {
        let (st, _) = s
            .post_signed(&url, &secret, &voyager_body(&format!("e{i}"), "x"))
            .await;
        assert_eq!(st, 200);
    }
    let (st, _) = s
        .post(
            &url,
            &voyager_body("bad", "x"),
            &[("x-webhook-signature", "00")],
        )
        .await;
    assert_eq!(st, 401);

    // list_events pages by cursor.
    let page = s.call("list_events", json!({ "limit": 2 })).await;
    assert_eq!(page["count"], 2);
    let next = s
        .call(
            "list_events",
            json!({ "after": page["next_cursor"], "limit": 2 }),
        )
        .await;
    assert_eq!(next["count"], 1);
    assert_eq!(
        s.call("list_events", json!({ "webhook_id": id })).await["count"],
        3
    );
    assert_eq!(
        s.call("list_events", json!({ "event": "nope" })).await["count"],
        0
    );
    let eid = page["events"][0]["id"].as_str().unwrap();
    let ev = s.call("get_event", json!({ "id": eid })).await;
    assert_eq!(ev["verified"], true);
    assert_eq!(ev["untrusted_payload"]["payload"]["id"], "e0");
    s.call_err("get_event", json!({ "id": "missing" })).await;

    // The delivery log holds every inbound request, newest first, with reasons.
    let log = s
        .call(
            "query_deliveries",
            json!({ "webhook_id": id, "direction": "inbound" }),
        )
        .await;
    assert_eq!(log["count"], 4);
    assert_eq!(log["deliveries"][0]["status"], "failed");
    assert_eq!(log["deliveries"][0]["status_code"], 401);
    assert!(log["deliveries"][0]["error"]
        .as_str()
        .unwrap()
        .contains("signature"));
    let ok = s
        .call("query_deliveries", json!({ "status": "succeeded" }))
        .await;
    assert_eq!(ok["count"], 3);
    let paged = s.call("query_deliveries", json!({ "limit": 3 })).await;
    assert_eq!(paged["count"], 3);
    let rest = s
        .call(
            "query_deliveries",
            json!({ "limit": 3, "cursor": paged["next_cursor"] }),
        )
        .await;
    assert_eq!(rest["count"], 1);
    assert_eq!(
        s.call(
            "query_deliveries",
            json!({ "since": "2999-01-01T00:00:00Z" })
        )
        .await["count"],
        0
    );
    let e = s
        .call_err("query_deliveries", json!({ "since": "yesterday" }))
        .await;
    assert!(e.contains("RFC 3339"), "{e}");
    s.call_err("query_deliveries", json!({ "limit": 501 }))
        .await;

    // One row through its resource, with the request body marked untrusted.
    let did = log["deliveries"][1]["id"].as_str().unwrap();
    let row = s
        .read(&format!("webhook://deliveries/{did}"))
        .await
        .unwrap();
    assert_eq!(row["status_code"], 200);
    assert!(row["request_body"]
        .as_str()
        .unwrap()
        .contains("message_received"));
    assert!(row["notice"].as_str().unwrap().contains("untrusted"));

    // Unknown resources are protocol errors with the resource-not-found code.
    for uri in [
        "webhook://deliveries/none",
        "webhook://events/none",
        "webhook://webhooks/none/events",
        "webhook://nope",
    ] {
        let err = s.read(uri).await.unwrap_err();
        assert!(
            err.to_string().contains("-32002") || err.to_string().contains("not found"),
            "{uri}: {err}"
        );
    }
    s.stop().await;
}

#[tokio::test]
async fn resources_and_templates_are_listed() {
    let s = Server::start().await;
    let (id, url, secret) = s.inbound(json!({ "description": "calls" })).await;
    let (st, ack) = s.post_signed(&url, &secret, &voyager_body("r1", "x")).await;
    assert_eq!(st, 200);
    let resources = s.client.list_all_resources().await.unwrap();
    let uris: Vec<&str> = resources.iter().map(|r| r.uri.as_str()).collect();
    assert!(uris.contains(&"webhook://events"));
    let inbox = format!("webhook://webhooks/{id}/events");
    assert!(uris.contains(&inbox.as_str()));
    // Single events are not listed (the list would grow with the store): the template reads
    // them.
    let ev = format!("webhook://events/{}", ack["event_id"].as_str().unwrap());
    assert!(!uris.contains(&ev.as_str()), "{uris:?}");
    assert_eq!(s.read(&ev).await.unwrap()["event"], "message_received");
    // Paginated: 150 more inboxes come in pages of at most 100, all of them in the end.
    for _ in 0..150 {
        s.inbound(json!({})).await;
    }
    let first = s.client.list_resources(None).await.unwrap();
    assert_eq!(first.resources.len(), 100);
    assert!(first.next_cursor.is_some());
    assert_eq!(s.client.list_all_resources().await.unwrap().len(), 1 + 151);
    let templates = s.client.list_all_resource_templates().await.unwrap();
    let t: Vec<&str> = templates.iter().map(|t| t.uri_template.as_str()).collect();
    for expected in [
        "webhook://events/{event_id}",
        "webhook://webhooks/{webhook_id}/events",
        "webhook://deliveries/{delivery_id}",
    ] {
        assert!(t.contains(&expected), "{t:?}");
    }
    s.stop().await;
}

#[tokio::test]
async fn event_catalogue_covers_the_seed_platforms() {
    let s = Server::start().await;
    let all = s.call("list_event_types", json!({})).await;
    // 41 from the seed platforms, 3 operational (webhook_mcp.*).
    assert_eq!(all["count"], 44);
    let ops = s
        .call("list_event_types", json!({ "provider": "webhook-mcp" }))
        .await;
    assert_eq!(ops["count"], 3);
    let kakiyo = s
        .call("list_event_types", json!({ "provider": "kakiyo" }))
        .await;
    assert_eq!(kakiyo["count"], 6);
    let names: Vec<&str> = kakiyo["event_types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["event"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"prospect.qualification.manual"));
    let voyager = s
        .call("list_event_types", json!({ "provider": "voyager" }))
        .await;
    assert_eq!(voyager["count"], 16);
    let session = voyager["event_types"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["event"] == "session_expired")
        .unwrap();
    assert_eq!(session["example"]["tenantName"], "Acme");
    assert_eq!(
        s.call("list_event_types", json!({ "provider": "voxagent" }))
            .await["count"],
        2
    );
    assert_eq!(
        s.call("list_event_types", json!({ "provider": "leadshark" }))
            .await["count"],
        4
    );
    assert_eq!(
        s.call("list_event_types", json!({ "provider": "connectsafely" }))
            .await["count"],
        1
    );
    let e = s
        .call_err("list_event_types", json!({ "provider": "myspace" }))
        .await;
    assert!(e.contains("voyager"), "{e}");
    s.stop().await;
}

/// A large payload is linked, not inlined, where a model did not ask for it: wait_for_events
/// and the feed leave it out with its size and a `resource_link` to webhook://events/{id};
/// get_event and the event resource return it whole. Small payloads stay inline.
#[tokio::test]
async fn large_payloads_are_linked_in_lists_and_whole_on_request() {
    let s = Server::start().await;
    let (_, url, secret) = s.inbound(json!({})).await;
    let big = "x".repeat(40 * 1024);
    let (status, big_answer) = s
        .post_signed(&url, &secret, &common::voyager_body("e-big", &big))
        .await;
    assert_eq!(status, 200, "{big_answer}");
    let (status, small_answer) = s
        .post_signed(&url, &secret, &common::voyager_body("e-small", "hello"))
        .await;
    assert_eq!(status, 200);
    let big_id = big_answer["event_id"].as_str().unwrap().to_string();

    let raw = s
        .call_raw("wait_for_events", json!({ "after": 0, "timeout_ms": 5000 }))
        .await;
    let v = serde_json::to_value(&raw).unwrap();
    let out = &v["structuredContent"];
    assert_eq!(out["count"], 2, "{out}");
    let by_id = |id: &str| {
        out["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["id"] == id)
            .cloned()
            .unwrap()
    };
    let linked = by_id(&big_id);
    let envelope = &linked["untrusted_payload"];
    assert!(envelope.get("payload").is_none(), "{envelope}");
    assert!(envelope["payload_bytes"].as_u64().unwrap() > 40 * 1024);
    let uri = format!("webhook://events/{big_id}");
    let links: Vec<&serde_json::Value> = v["content"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["type"] == "resource_link")
        .collect();
    assert_eq!(links.len(), 1, "{}", v["content"]);
    assert_eq!(links[0]["uri"], uri.as_str());
    let inline = by_id(small_answer["event_id"].as_str().unwrap());
    assert_eq!(
        inline["untrusted_payload"]["payload"]["data"]["lastMessage"],
        "hello"
    );

    // Asked for by id: whole.
    let one = s.call("get_event", json!({ "id": big_id })).await;
    let text = one["untrusted_payload"]["payload"]["data"]["lastMessage"]
        .as_str()
        .unwrap();
    assert_eq!(text.len(), big.len());
    let read = s.read(&uri).await.unwrap();
    assert_eq!(
        read["untrusted_payload"]["payload"]["data"]["lastMessage"]
            .as_str()
            .unwrap()
            .len(),
        big.len()
    );
    // The feed links too.
    let feed = s.read("webhook://events").await.unwrap();
    let in_feed = feed["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == big_id.as_str())
        .unwrap()
        .clone();
    assert!(in_feed["untrusted_payload"].get("payload").is_none());
    s.stop().await;
}

/// Issue 21, step 7: one session's subscriptions and open waits are bounded: the 65th URI and
/// the 9th concurrent `wait_for_events` are refused with an error that says what to do, and
/// the session keeps working.
#[tokio::test]
async fn a_session_holds_a_bounded_number_of_subscriptions_and_waits() {
    let s = Server::start().await;
    for n in 0..64 {
        s.client
            .subscribe(SubscribeRequestParams::new(format!(
                "webhook://webhooks/wh-{n}/events"
            )))
            .await
            .unwrap();
    }
    // Again the same one: still fine.
    s.client
        .subscribe(SubscribeRequestParams::new(
            "webhook://webhooks/wh-0/events",
        ))
        .await
        .unwrap();
    let refused = s
        .client
        .subscribe(SubscribeRequestParams::new(
            "webhook://webhooks/wh-64/events",
        ))
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("unsubscribe from one first"), "{refused}");

    let waits = (0..8).map(|_| s.call("wait_for_events", json!({ "timeout_ms": 3000 })));
    let ninth = async {
        // Started after the others are waiting.
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        s.call_err("wait_for_events", json!({ "timeout_ms": 3000 }))
            .await
    };
    let (answers, ninth) = tokio::join!(futures::future::join_all(waits), ninth);
    assert!(ninth.contains("let one finish"), "{ninth}");
    for a in answers {
        assert_eq!(a["timed_out"], true, "{a}");
    }
    // The slots are given back.
    let again = s.call("wait_for_events", json!({ "timeout_ms": 10 })).await;
    assert_eq!(again["timed_out"], true, "{again}");
    s.stop().await;
}
