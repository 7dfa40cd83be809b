//! `test_webhook` for both directions, against the real receiver and a real local HTTP sink.

mod common;

use std::time::Duration;

use common::sink::{hex_ok, standard_ok, Reply, Sink};
use common::Server;
use serde_json::{json, Value};

#[tokio::test]
async fn outbound_test_is_signed_logged_and_reports_failures() {
    let s = Server::start_with(
        common::Era::Legacy,
        None,
        &["--delivery-timeout", "1", "--allow-private-targets"],
    )
    .await;
    let sink = Sink::start().await;
    let url = sink.url("hook");
    let created = s
        .call(
            "create_webhook",
            json!({ "direction": "outbound", "url": url, "events": ["action_send_completed"],
                    "headers": { "X-Team": "growth" } }),
        )
        .await;
    let id = created["webhook"]["id"].as_str().unwrap().to_string();
    let secret = created["webhook"]["secret"].as_str().unwrap().to_string();

    let r = s.call("test_webhook", json!({ "id": id })).await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["status_code"], 200);
    assert_eq!(r["event"], "action_send_completed");
    assert!(r["response_excerpt"]
        .as_str()
        .unwrap()
        .contains("sink answered 200"));
    {
        let got = sink.received();
        let last = got.last().unwrap();
        let (headers, body) = (&last.headers, &last.body);
        // The seeds' method: hex HMAC over the exact bytes, and the Standard Webhooks method.
        assert!(hex_ok(&secret, last));
        assert!(standard_ok(&secret, last));
        assert_eq!(headers["x-webhook-event"], "action_send_completed");
        assert_eq!(headers["x-team"], "growth");
        assert_eq!(headers["content-type"], "application/json");
        let v: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(v["event"], "action_send_completed");
        assert_eq!(v["id"], headers["x-webhook-id"].to_str().unwrap());
        assert_eq!(v["data"]["actionId"], "act_5521");
        assert!(v["timestamp"].is_string());
        // Compact JSON, as JSON.stringify would produce it.
        assert_eq!(std::str::from_utf8(body).unwrap(), v.to_string());
    }

    // The attempt is in the log with trigger test, and readable as a resource.
    let did = r["delivery_id"].as_str().unwrap();
    let row = s
        .read(&format!("webhook://deliveries/{did}"))
        .await
        .unwrap();
    assert_eq!(row["trigger"], "test");
    assert_eq!(row["direction"], "outbound");
    assert_eq!(row["status"], "succeeded");
    assert_eq!(
        row["request_headers"]["X-Team"], "***",
        "custom header values are redacted"
    );
    assert!(row["response_body"]
        .as_str()
        .unwrap()
        .contains("sink answered"));

    // A custom event and data.
    let r = s
        .call(
            "test_webhook",
            json!({ "id": id, "event": "order.paid", "data": { "amount": 42 } }),
        )
        .await;
    assert_eq!(r["ok"], true);
    let body: Value = serde_json::from_slice(&sink.received().last().unwrap().body).unwrap();
    assert_eq!(body["data"], json!({ "amount": 42 }));

    // 5xx, timeout and refused are failed tests, not tool errors.
    sink.script([Reply::status(503)]);
    let r = s.call("test_webhook", json!({ "id": id })).await;
    assert_eq!(
        (r["ok"].as_bool(), r["status_code"].as_i64()),
        (Some(false), Some(503))
    );
    assert!(r["error"].as_str().unwrap().contains("503"));
    sink.script([Reply::status(200).after(Duration::from_secs(30))]);
    let r = s.call("test_webhook", json!({ "id": id })).await;
    assert_eq!(r["ok"], false);
    assert_eq!(r["error"], "timeout");
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_url = format!("http://{}/x", dead.local_addr().unwrap());
    drop(dead);
    s.call("update_webhook", json!({ "id": id, "url": dead_url }))
        .await;
    let r = s.call("test_webhook", json!({ "id": id })).await;
    assert_eq!(r["ok"], false);
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .starts_with("connection failed"),
        "{r}"
    );

    let log = s
        .call(
            "query_deliveries",
            json!({ "webhook_id": id, "direction": "outbound" }),
        )
        .await;
    assert_eq!(log["count"], 5);
    assert_eq!(
        s.call(
            "query_deliveries",
            json!({ "webhook_id": id, "status": "failed" })
        )
        .await["count"],
        3
    );
    let e = s
        .call_err("test_webhook", json!({ "id": id, "data": [1, 2] }))
        .await;
    assert!(e.contains("JSON object"), "{e}");
    s.stop().await;
}

#[tokio::test]
async fn inbound_test_goes_through_the_receiver_and_arrives() {
    let mut s = Server::start().await;
    let (id, _, _) = s
        .inbound(json!({ "provider": "kakiyo", "events": ["prospect.unqualified"] }))
        .await;
    #[allow(deprecated)]
    s.client
        .subscribe(rmcp::model::SubscribeRequestParams::new(format!(
            "webhook://webhooks/{id}/events"
        )))
        .await
        .unwrap();
    let r = s.call("test_webhook", json!({ "id": id })).await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["arrived"], true);
    assert_eq!(r["event"], "prospect.unqualified");
    let event_id = r["event_id"].as_str().unwrap();
    let ev = s.call("get_event", json!({ "id": event_id })).await;
    assert_eq!(ev["event"], "prospect.unqualified");
    assert_eq!(
        ev["untrusted_payload"]["payload"]["teamId"],
        "team_12345abcde"
    );
    assert_eq!(
        ev["untrusted_payload"]["headers"]["x-webhook-mcp-test"],
        "1"
    );
    let note = s.next_note().await;
    assert!(note == format!("webhook://webhooks/{id}/events") || note == "list_changed");

    // Tests do not collide with each other as duplicates.
    let again = s.call("test_webhook", json!({ "id": id })).await;
    assert_eq!(again["arrived"], true);
    assert_ne!(again["event_id"], r["event_id"]);

    // A disabled webhook fails its test with the receiver's reason.
    s.call("update_webhook", json!({ "id": id, "enabled": false }))
        .await;
    let r = s.call("test_webhook", json!({ "id": id })).await;
    assert_eq!(
        (r["ok"].as_bool(), r["status_code"].as_i64()),
        (Some(false), Some(404))
    );
    assert!(r["receiver_answer"]["error"]
        .as_str()
        .unwrap()
        .contains("disabled"));
    s.stop().await;
}

#[tokio::test]
async fn inbound_test_runs_the_pipeline_in_process_even_without_a_receiver() {
    // The sample goes through the same receive pipeline in process, not over HTTP to itself: it
    // is verified and stored by a process that has no receiver (another process may hold it),
    // and the answer says that providers need a process with one.
    let s = Server::start_with(common::Era::Legacy, None, &["--no-receiver"]).await;
    let (id, _, _) = s.inbound(json!({})).await;
    let r = s.call("test_webhook", json!({ "id": id })).await;
    assert_eq!(
        (r["ok"].as_bool(), r["arrived"].as_bool()),
        (Some(true), Some(true)),
        "{r}"
    );
    assert!(r["note"].as_str().unwrap().contains("--no-receiver"), "{r}");
    let event_id = r["event_id"].as_str().unwrap();
    let ev = s.call("get_event", json!({ "id": event_id })).await;
    assert_eq!(ev["webhook_id"], id.as_str());
    let log = s
        .call(
            "query_deliveries",
            json!({ "webhook_id": id, "direction": "inbound" }),
        )
        .await;
    assert_eq!(log["deliveries"][0]["event_id"], event_id);
    assert_eq!(log["deliveries"][0]["status_code"], 200);
    s.stop().await;
}
