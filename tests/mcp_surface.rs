//! The MCP surface a model and a client see, through the real binary over real stdio:
//! annotations and titles on every tool, `--read-only`, and `send_event`'s idempotency key.

mod common;

use std::time::Duration;

use common::sink::{Reply, Sink};
use common::{Era, Server};
use serde_json::{json, Value};

const WRITE_TOOLS: &[&str] = &[
    "create_webhook",
    "update_webhook",
    "delete_webhook",
    "rotate_secret",
    "test_webhook",
    "send_event",
    "redeliver",
];

async fn tools(s: &Server) -> Vec<Value> {
    s.client
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|t| serde_json::to_value(t).unwrap())
        .collect()
}

fn tool<'a>(all: &'a [Value], name: &str) -> &'a Value {
    all.iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("no tool {name}"))
}

#[tokio::test]
async fn every_tool_is_annotated_by_what_it_does() {
    let s = Server::start().await;
    let all = tools(&s).await;
    assert_eq!(all.len(), 14);
    for t in &all {
        let a = &t["annotations"];
        assert!(t["title"].is_string(), "{} has no title", t["name"]);
        assert!(
            a["title"].is_string(),
            "{} has no annotation title",
            t["name"]
        );
        let write = WRITE_TOOLS.contains(&t["name"].as_str().unwrap());
        assert_eq!(a["readOnlyHint"], !write, "{}", t["name"]);
        if !write {
            assert_eq!(a["idempotentHint"], true, "{}", t["name"]);
            assert_eq!(a["openWorldHint"], false, "{}", t["name"]);
        }
    }
    for destructive in ["delete_webhook", "rotate_secret", "update_webhook"] {
        assert_eq!(
            tool(&all, destructive)["annotations"]["destructiveHint"],
            true
        );
    }
    assert_eq!(
        tool(&all, "create_webhook")["annotations"]["destructiveHint"],
        false
    );
    for open in ["send_event", "test_webhook", "redeliver"] {
        assert_eq!(
            tool(&all, open)["annotations"]["openWorldHint"],
            true,
            "{open}"
        );
    }
    assert_eq!(
        tool(&all, "delete_webhook")["annotations"]["idempotentHint"],
        true
    );
    assert_eq!(
        tool(&all, "rotate_secret")["annotations"]["idempotentHint"],
        false
    );
    s.stop().await;
}

#[tokio::test]
async fn read_only_leaves_the_write_tools_out_and_refuses_them() {
    let s = Server::start_with(Era::Legacy, None, &["--read-only"]).await;
    let all = tools(&s).await;
    let names: Vec<&str> = all.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 14 - WRITE_TOOLS.len(), "{names:?}");
    for w in WRITE_TOOLS {
        assert!(!names.contains(w), "{w} is listed in read-only mode");
    }
    let refused = s
        .call_err(
            "create_webhook",
            json!({ "direction": "inbound", "provider": "none", "allow_unsigned": true }),
        )
        .await;
    assert!(refused.contains("--read-only"), "{refused}");
    assert_eq!(s.call("list_webhooks", json!({})).await["count"], 0);
    s.stop().await;
}

#[tokio::test]
async fn send_event_with_an_idempotency_key_sends_once() {
    let sink = Sink::start().await;
    let s = Server::start_with(Era::Legacy, None, &["--allow-private-targets"]).await;
    s.outbound(&sink.url("a"), json!({})).await;
    let args =
        json!({ "event": "order.paid", "data": { "n": 1 }, "idempotency_key": "order-42-paid" });
    let first = s.call("send_event", args.clone()).await;
    assert_eq!(first["queued"], 1, "{first}");
    assert_eq!(first["replayed"], false);
    // Retries, some at once: the first call's result each time, nothing sent again.
    let again = futures_join(&s, &args, 5).await;
    for r in &again {
        assert_eq!(r["deliveries"], first["deliveries"], "{r}");
        assert_eq!(r["replayed"], true, "{r}");
    }
    // Another key sends again.
    let other = s
        .call(
            "send_event",
            json!({ "event": "order.paid", "data": { "n": 1 }, "idempotency_key": "order-43-paid" }),
        )
        .await;
    assert_eq!(other["replayed"], false);
    assert_ne!(other["deliveries"], first["deliveries"]);
    sink.wait_for(2, 10).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.received().len(), 2, "one delivery per key");
    let bad = s
        .call_err(
            "send_event",
            json!({ "event": "x", "data": {}, "idempotency_key": "k".repeat(201) }),
        )
        .await;
    assert!(bad.contains("idempotency_key"), "{bad}");
    s.stop().await;
}

async fn futures_join(s: &Server, args: &Value, n: usize) -> Vec<Value> {
    let calls = (0..n).map(|_| s.call("send_event", args.clone()));
    futures::future::join_all(calls).await
}

/// The way a model uses it: create, trigger a test, then wait without a cursor. The event is
/// returned; the next call without a cursor waits for newer ones only.
#[tokio::test]
async fn wait_for_events_without_a_cursor_returns_what_arrived_since_connecting() {
    let s = Server::start().await;
    let (id, _, _) = s.inbound(json!({})).await;
    let test = s.call("test_webhook", json!({ "id": id })).await;
    let event_id = test["event_id"]
        .as_str()
        .expect("the test stored an event")
        .to_string();
    let got = s
        .call("wait_for_events", json!({ "timeout_ms": 5000 }))
        .await;
    assert_eq!(got["count"], 1, "{got}");
    assert_eq!(got["events"][0]["id"], event_id.as_str());
    let next = s
        .call("wait_for_events", json!({ "timeout_ms": 300 }))
        .await;
    assert_eq!(next["count"], 0, "already seen: {next}");
    assert_eq!(next["timed_out"], true);
    // after=0 reads from the oldest kept event.
    let all = s
        .call("wait_for_events", json!({ "after": 0, "timeout_ms": 300 }))
        .await;
    assert_eq!(all["count"], 1);
    s.stop().await;
}

/// An outbound webhook the target answers 410: the agent learns it was disabled, and that the
/// delivery failed for good, as events in the stream it already reads. A sender cannot forge
/// such an event.
#[tokio::test]
async fn disable_and_final_failure_reach_the_agent_as_operational_events() {
    let sink = Sink::start().await;
    sink.script([Reply::status(410)]);
    let s = Server::start_with(Era::Legacy, None, &["--allow-private-targets"]).await;
    let (out_id, _) = s.outbound(&sink.url("gone"), json!({})).await;
    s.call("send_event", json!({ "event": "order.paid", "data": {} }))
        .await;
    let disabled = s
        .call(
            "wait_for_events",
            json!({ "after": 0, "event": "webhook_mcp.webhook.disabled", "timeout_ms": 10000 }),
        )
        .await;
    assert_eq!(disabled["count"], 1, "{disabled}");
    let e = &disabled["events"][0];
    assert_eq!(e["webhook_id"], out_id.as_str());
    let payload = &e["untrusted_payload"]["payload"];
    assert!(
        payload["reason"].as_str().unwrap().contains("410"),
        "{payload}"
    );
    let failed = s
        .call(
            "wait_for_events",
            json!({ "after": 0, "event": "webhook_mcp.delivery.failed", "timeout_ms": 10000 }),
        )
        .await;
    assert_eq!(failed["count"], 1, "{failed}");
    assert_eq!(
        failed["events"][0]["untrusted_payload"]["payload"]["event"],
        "order.paid"
    );
    assert!(
        !s.call("get_webhook", json!({ "id": out_id })).await["webhook"]["enabled"]
            .as_bool()
            .unwrap()
    );

    // Forged: refused, not stored.
    let (_, url, _) = s
        .inbound(json!({ "provider": "none", "allow_unsigned": true }))
        .await;
    let (status, ans) = s
        .post(
            &url,
            r#"{"event":"webhook_mcp.webhook.disabled","data":{}}"#,
            &[],
        )
        .await;
    assert_eq!(status, 400, "{ans}");
    assert!(ans["error"].as_str().unwrap().contains("reserved"));
    s.stop().await;
}

/// The end of a rotation's grace reaches the agent once, as `webhook_mcp.secret.expired`, and
/// the old secret is refused from then on.
#[tokio::test]
async fn an_expired_previous_secret_is_announced_once() {
    let s = Server::start().await;
    let (id, url, old) = s.inbound(json!({})).await;
    s.call("rotate_secret", json!({ "id": id, "grace_seconds": 1 }))
        .await;
    let (status, _) = s
        .post_signed(
            &url,
            &old,
            &common::voyager_body("e-grace", "within the grace"),
        )
        .await;
    assert_eq!(status, 200, "the old secret verifies during the grace");

    let got = s
        .call(
            "wait_for_events",
            json!({ "after": 0, "event": "webhook_mcp.secret.expired", "timeout_ms": 15000 }),
        )
        .await;
    assert_eq!(got["count"], 1, "{got}");
    let e = &got["events"][0];
    assert_eq!(e["webhook_id"], id.as_str());
    assert_eq!(e["untrusted_payload"]["payload"]["webhook_id"], id.as_str());
    let (status, _) = s
        .post_signed(
            &url,
            &old,
            &common::voyager_body("e-late", "after the grace"),
        )
        .await;
    assert_eq!(status, 401, "the old secret is refused after the grace");
    // Announced once, however many liveness ticks pass.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let all = s
        .call(
            "list_events",
            json!({ "event": "webhook_mcp.secret.expired", "after": 0 }),
        )
        .await;
    assert_eq!(all["count"], 1, "{all}");
    let w = s.call("get_webhook", json!({ "id": id })).await;
    assert!(
        w["webhook"].get("previous_secret_valid_until").is_none(),
        "{w}"
    );
    s.stop().await;
}

/// Prompts a person picks in a client, and completions for their arguments and for the
/// resource templates' ids.
#[tokio::test]
async fn prompts_and_completions() {
    let s = Server::start().await;
    let prompts = s.client.list_all_prompts().await.unwrap();
    let names: Vec<&str> = prompts.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["connect_provider", "triage_failed_deliveries"]);
    let mut args = serde_json::Map::new();
    args.insert("provider".into(), json!("stripe"));
    let got = s
        .client
        .get_prompt(
            rmcp::model::GetPromptRequestParams::new("connect_provider").with_arguments(args),
        )
        .await
        .unwrap();
    let text = serde_json::to_value(&got.messages[0].content).unwrap()["text"]
        .as_str()
        .unwrap()
        .to_string();
    for step in [
        "create_webhook",
        "\"provider\": \"stripe\"",
        "test_webhook",
        "wait_for_events",
    ] {
        assert!(text.contains(step), "{step} missing from {text}");
    }
    let unknown = s
        .client
        .get_prompt(rmcp::model::GetPromptRequestParams::new("connect_provider"))
        .await;
    assert!(unknown.is_err(), "a missing provider is an error");

    let providers = s
        .client
        .complete_prompt_argument("connect_provider", "provider", "s", None)
        .await
        .unwrap();
    assert_eq!(providers.values, ["standard", "stripe", "slack", "shopify"]);
    let (inbound, _, _) = s.inbound(json!({})).await;
    let (outbound, _) = s.outbound("https://93.184.216.34/hook", json!({})).await;
    let ids = s
        .client
        .complete_resource_argument(
            "webhook://webhooks/{webhook_id}/events",
            "webhook_id",
            "",
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        ids.values,
        [inbound],
        "the inbox template takes inbound ids"
    );
    let out_ids = s
        .client
        .complete_prompt_argument(
            "triage_failed_deliveries",
            "webhook_id",
            &outbound[..4],
            None,
        )
        .await
        .unwrap();
    assert_eq!(out_ids.values, [outbound]);

    // create_webhook's description names every preset, from the Provider type itself.
    let all = tools(&s).await;
    let desc = tool(&all, "create_webhook")["description"]
        .as_str()
        .unwrap()
        .to_string();
    for p in [
        "generic", "kakiyo", "standard", "github", "stripe", "slack", "shopify", "none",
    ] {
        assert!(
            desc.contains(p),
            "{p} missing from create_webhook's description"
        );
    }
    s.stop().await;
}

/// The README's lists are checked against what the server says, so they cannot drift: the tool
/// table names exactly the listed tools, the preset table every `provider` the schema accepts,
/// and the catalogue counts are the catalogue's.
#[tokio::test]
async fn the_readme_tables_match_the_server() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = |title: &str| -> String {
        let start = readme
            .find(title)
            .unwrap_or_else(|| panic!("no {title} in README"));
        let rest = &readme[start + title.len()..];
        rest[..rest.find("\n## ").unwrap_or(rest.len())].to_string()
    };
    // First-column names of a table's rows: `| `a` / `b` | ...` gives a and b.
    let first_column = |text: &str| -> std::collections::BTreeSet<String> {
        text.lines()
            .filter(|l| l.starts_with("| `"))
            .flat_map(|l| {
                l.split('|').nth(1).unwrap().split('/').map(|c| {
                    c.trim()
                        .trim_matches('`')
                        .split('`')
                        .next()
                        .unwrap()
                        .to_string()
                })
            })
            .collect()
    };

    let s = Server::start().await;
    let all = tools(&s).await;
    let listed: std::collections::BTreeSet<String> = all
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        first_column(&section("\n## Tools\n")),
        listed,
        "README tool table"
    );

    let create = tool(&all, "create_webhook");
    let provider = &create["inputSchema"]["properties"]["provider"];
    let provider = match provider["$ref"].as_str() {
        Some(r) => &create["inputSchema"]["$defs"][r.rsplit('/').next().unwrap()],
        None => provider,
    };
    // The names a schema allows, as `enum` members or `const`s of its branches.
    fn names(v: &Value, out: &mut std::collections::BTreeSet<String>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    match (k.as_str(), x) {
                        ("const", Value::String(s)) => {
                            out.insert(s.clone());
                        }
                        ("enum", Value::Array(items)) => {
                            out.extend(items.iter().filter_map(|i| i.as_str().map(String::from)))
                        }
                        _ => names(x, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|i| names(i, out)),
            _ => {}
        }
    }
    let mut presets = std::collections::BTreeSet::new();
    names(provider, &mut presets);
    assert!(presets.len() >= 8, "{presets:?}");
    assert_eq!(
        first_column(&section("\n## Provider presets\n")),
        presets,
        "README preset table"
    );

    let catalogue = s.call("list_event_types", json!({})).await;
    let types = catalogue["event_types"].as_array().unwrap();
    let operational = types
        .iter()
        .filter(|t| t["event"].as_str().unwrap().starts_with("webhook_mcp."))
        .count();
    let claim = format!(
        "{} event types of the seed platforms and {} operational ones",
        types.len() - operational,
        operational
    );
    assert!(readme.contains(&claim), "README should say \"{claim}\"");
    s.stop().await;
}
