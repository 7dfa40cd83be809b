//! Provider presets through the real binary: a request signed the way each platform signs
//! (computed here, independently of the server) arrives as an event resource; replays,
//! stale timestamps and tampering are refused with reasons that name the scheme.

mod common;

use base64::Engine;
use common::{hex_hmac, Server};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn mac(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).unwrap();
    m.update(msg);
    m.finalize().into_bytes().to_vec()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Headers a real sender of `provider` would send for `body` signed with `secret` at `ts`.
fn signed(provider: &str, secret: &str, body: &str, ts: i64, id: &str) -> Vec<(String, String)> {
    let h = |k: &str, v: String| (k.to_string(), v);
    match provider {
        "generic" => vec![h("x-webhook-signature", hex_hmac(secret, body.as_bytes()))],
        "kakiyo" => vec![h("x-kakiyo-signature", hex_hmac(secret, body.as_bytes()))],
        "standard" => {
            let key = base64::engine::general_purpose::STANDARD
                .decode(secret.strip_prefix("whsec_").unwrap())
                .unwrap();
            let sig = b64(&mac(&key, format!("{id}.{ts}.{body}").as_bytes()));
            vec![
                h("webhook-id", id.into()),
                h("webhook-timestamp", ts.to_string()),
                h("webhook-signature", format!("v1,{sig}")),
            ]
        }
        "github" => vec![
            h(
                "x-hub-signature-256",
                format!("sha256={}", hex_hmac(secret, body.as_bytes())),
            ),
            h("x-github-event", "issues".into()),
            h("x-github-delivery", id.into()),
        ],
        "stripe" => vec![h(
            "stripe-signature",
            format!(
                "t={ts},v1={}",
                hex_hmac(secret, format!("{ts}.{body}").as_bytes())
            ),
        )],
        "slack" => vec![
            h("x-slack-request-timestamp", ts.to_string()),
            h(
                "x-slack-signature",
                format!(
                    "v0={}",
                    hex_hmac(secret, format!("v0:{ts}:{body}").as_bytes())
                ),
            ),
        ],
        "shopify" => vec![
            h(
                "x-shopify-hmac-sha256",
                b64(&mac(secret.as_bytes(), body.as_bytes())),
            ),
            h("x-shopify-topic", "orders/create".into()),
            h("x-shopify-webhook-id", id.into()),
        ],
        other => panic!("{other}"),
    }
}

fn body_for(provider: &str, id: &str) -> String {
    match provider {
        "stripe" => json!({ "id": id, "object": "event", "type": "payment_intent.succeeded", "data": { "object": { "amount": 4200 } } }),
        "slack" => json!({ "type": "event_callback", "event_id": id, "event": { "type": "app_mention", "text": "hi <@U1>" } }),
        "standard" => json!({ "type": "user.created", "timestamp": "2026-11-24T10:00:00Z", "data": { "id": id } }),
        "kakiyo" => json!({ "event": "linkedin.message.received", "teamId": "team_1", "data": { "chatId": id } }),
        _ => json!({ "id": id, "event": "message_received", "data": { "text": "Grüße / ok" } }),
    }
    .to_string()
}

async fn post(s: &Server, url: &str, body: &str, headers: &[(String, String)]) -> (u16, Value) {
    let refs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    s.post(url, body, &refs).await
}

const PRESETS: [(&str, &str); 7] = [
    ("generic", "message_received"),
    ("kakiyo", "linkedin.message.received"),
    ("standard", "user.created"),
    ("github", "issues"),
    ("stripe", "payment_intent.succeeded"),
    ("slack", "app_mention"),
    ("shopify", "orders/create"),
];

#[tokio::test]
async fn every_preset_accepts_its_senders_signature_and_refuses_tampering() {
    let s = Server::start().await;
    let mut any_url = String::new();
    for (provider, expected_type) in PRESETS {
        let (id, url, secret) = s.inbound(json!({ "provider": provider })).await;
        any_url.clone_from(&url);
        let body = body_for(provider, &format!("{provider}-1"));
        let headers = signed(provider, &secret, &body, now(), &format!("{provider}-1"));
        let (st, ack) = post(&s, &url, &body, &headers).await;
        assert_eq!(st, 200, "{provider}: {ack}");
        let event = s
            .read(&format!(
                "webhook://events/{}",
                ack["event_id"].as_str().unwrap()
            ))
            .await
            .unwrap();
        assert_eq!(event["event"], expected_type, "{provider}");
        assert_eq!(event["webhook_id"], id);

        // The same delivery again is a duplicate, by the provider's own id.
        let (st, dup) = post(&s, &url, &body, &headers).await;
        assert_eq!(
            (st, dup["duplicate"].as_bool()),
            (200, Some(true)),
            "{provider}: {dup}"
        );

        // A fresh delivery id is a new event only where the signature covers it (Standard
        // Webhooks); an unsigned X-GitHub-Delivery or X-Shopify-Webhook-Id cannot make a
        // replayed body new (issue 21, step 2).
        let fresh = signed(
            provider,
            &secret,
            &body,
            now(),
            &format!("{provider}-fresh"),
        );
        let (st, again) = post(&s, &url, &body, &fresh).await;
        assert_eq!(st, 200, "{provider}: {again}");
        assert_eq!(
            again["duplicate"].as_bool(),
            (provider != "standard").then_some(true),
            "{provider}: {again}"
        );

        // One changed byte, a wrong secret, no signature: refused, naming the scheme.
        let tampered = body.replacen("1", "2", 1);
        let (st, ans) = post(&s, &url, &tampered, &headers).await;
        assert_eq!(st, 401, "{provider} tampered: {ans}");
        assert!(
            ans["error"]
                .as_str()
                .unwrap()
                .contains(&format!("scheme: {provider}")),
            "{ans}"
        );
        let wrong = signed(
            provider,
            "whsec_d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldC14eHg=",
            &body,
            now(),
            "x",
        );
        let (st, _) = post(&s, &url, &body, &wrong).await;
        assert_eq!(st, 401, "{provider} wrong secret");
        let (st, ans) = post(&s, &url, &body, &[]).await;
        assert_eq!(st, 401);
        assert!(
            ans["error"].as_str().unwrap().contains("missing"),
            "{provider}: {ans}"
        );
        assert!(!ans.to_string().contains(&secret));
    }
    // Every rejection is counted; the first ten from this one source are in the log with
    // their reason and never the secret (the per-source budget, see tests/bad_input.rs).
    let log = s
        .call(
            "query_deliveries",
            json!({ "status": "failed", "limit": 500 }),
        )
        .await;
    assert_eq!(log["count"], 10);
    assert!(!log.to_string().contains("whsec_d3Jvbmct"));
    let health = common::healthz(&s.http, &any_url).await;
    assert_eq!(health["stats"]["rejected"], 21, "{health}");
    s.stop().await;
}

#[tokio::test]
async fn timestamped_schemes_refuse_stale_and_future_requests() {
    let s = Server::start_with(common::Era::Legacy, None, &["--timestamp-tolerance", "120"]).await;
    for provider in ["standard", "stripe", "slack"] {
        let (_, url, secret) = s.inbound(json!({ "provider": provider })).await;
        for (skew, word) in [(-200, "old"), (200, "in the future")] {
            let body = body_for(provider, &format!("{provider}{skew}"));
            let headers = signed(
                provider,
                &secret,
                &body,
                now() + skew,
                &format!("{provider}{skew}"),
            );
            let (st, ans) = post(&s, &url, &body, &headers).await;
            assert_eq!(st, 401, "{provider} {skew}");
            let e = ans["error"].as_str().unwrap();
            assert!(
                e.contains("stale timestamp") && e.contains(word) && e.contains("120 s"),
                "{e}"
            );
        }
        let body = body_for(provider, "fresh");
        let (st, _) = post(
            &s,
            &url,
            &body,
            &signed(provider, &secret, &body, now() - 100, "fresh"),
        )
        .await;
        assert_eq!(st, 200, "{provider} within tolerance");
    }
    let log = s
        .call("query_deliveries", json!({ "status": "failed" }))
        .await;
    assert!(log["deliveries"][0]["error"]
        .as_str()
        .unwrap()
        .contains("body: valid JSON"));
    s.stop().await;
}

#[tokio::test]
async fn test_webhook_signs_with_each_webhooks_own_scheme() {
    let s = Server::start().await;
    for (provider, _) in PRESETS {
        let (id, _, _) = s.inbound(json!({ "provider": provider })).await;
        let r = s.call("test_webhook", json!({ "id": id })).await;
        assert_eq!(r["arrived"], true, "{provider}: {r}");
    }
    s.stop().await;
}

#[tokio::test]
async fn slack_url_verification_is_answered_and_not_stored() {
    let s = Server::start().await;
    let (_, url, secret) = s.inbound(json!({ "provider": "slack" })).await;
    let body = r#"{"token":"Jhj5dZrVaK7ZwHHjRyZWjbDl","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
    let (st, ans) = post(&s, &url, body, &signed("slack", &secret, body, now(), "")).await;
    assert_eq!(st, 200);
    assert_eq!(
        ans,
        json!({ "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P" })
    );
    assert_eq!(s.event_count().await, 0);
    // Unsigned, the handshake is refused like anything else.
    let (st, _) = s.post(&url, body, &[]).await;
    assert_eq!(st, 401);
    s.stop().await;
}

#[tokio::test]
async fn required_headers_and_unsigned_webhooks() {
    let s = Server::start().await;
    // ConnectSafely's optional Authorization header, on top of the signature.
    let (id, url, secret) = s
        .inbound(json!({ "require_headers": { "Authorization": "Bearer cs-token-123" } }))
        .await;
    let got = s.call("get_webhook", json!({ "id": id })).await;
    assert_eq!(got["webhook"]["require_headers"]["Authorization"], "***");
    assert!(!got.to_string().contains("cs-token-123"));
    let body = body_for("generic", "cs-1");
    let sig = hex_hmac(&secret, body.as_bytes());
    let (st, ans) = s.post(&url, &body, &[("x-webhook-signature", &sig)]).await;
    assert_eq!(st, 401);
    assert!(
        ans["error"]
            .as_str()
            .unwrap()
            .contains("required header Authorization"),
        "{ans}"
    );
    let (st, _) = s
        .post(
            &url,
            &body,
            &[
                ("x-webhook-signature", &sig),
                ("authorization", "Bearer wrong"),
            ],
        )
        .await;
    assert_eq!(st, 401);
    let (st, _) = s
        .post(
            &url,
            &body,
            &[
                ("x-webhook-signature", &sig),
                ("authorization", "Bearer cs-token-123"),
            ],
        )
        .await;
    assert_eq!(st, 200);
    let ev = s.call("list_events", json!({ "webhook_id": id })).await;
    let full = s
        .call("get_event", json!({ "id": ev["events"][0]["id"] }))
        .await;
    assert!(
        full["untrusted_payload"]["headers"]
            .get("authorization")
            .is_none(),
        "credentials are not stored"
    );

    // `none` needs an explicit opt-in, then takes anything.
    let e = s
        .call_err(
            "create_webhook",
            json!({ "direction": "inbound", "provider": "none" }),
        )
        .await;
    assert!(e.contains("allow_unsigned"), "{e}");
    let (_, url, _) = s
        .inbound(json!({ "provider": "none", "allow_unsigned": true }))
        .await;
    let (st, _) = s.post(&url, r#"{"event":"ping"}"#, &[]).await;
    assert_eq!(st, 200);
    let e = s
        .call_err(
            "create_webhook",
            json!({ "direction": "inbound", "provider": "github", "headers": { "a": "b" } }),
        )
        .await;
    assert!(e.contains("require_headers"), "{e}");
    s.stop().await;
}

#[tokio::test]
async fn catalogue_and_setup_hints_cover_each_preset() {
    let s = Server::start().await;
    for (provider, event) in PRESETS {
        let types = s
            .call("list_event_types", json!({ "provider": provider }))
            .await;
        assert!(types["count"].as_u64().unwrap() >= 2, "{provider}");
        let names: Vec<&str> = types["event_types"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["event"].as_str().unwrap())
            .collect();
        assert!(names.contains(&event), "{provider}: {names:?}");
        let created = s
            .call(
                "create_webhook",
                json!({ "direction": "inbound", "provider": provider }),
            )
            .await;
        let hint = created["setup"].as_str().unwrap();
        assert!(
            hint.contains(created["webhook"]["url"].as_str().unwrap()),
            "{provider}: {hint}"
        );
    }
    s.stop().await;
}
