//! Outbound delivery: turns an event into a signed HTTP request to a subscriber, sends it,
//! and records the attempt as a delivery-log row.
//!
//! Today this sends single attempts (test deliveries). The durable queue and retry worker of
//! DESIGN.md §5 build on `build_request` and `send` here.

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::{json, Value};

use crate::model::{
    log_excerpt, now_millis, Delivery, DeliveryStatus, Direction, Trigger, Webhook,
};
use crate::signing;

/// The body and headers of one outbound message, fixed before it is first sent so every retry
/// carries the same bytes and id.
#[derive(Debug, Clone)]
pub struct OutboundRequest {
    pub msg_id: String,
    pub event: String,
    pub body: Vec<u8>,
    pub headers: BTreeMap<String, String>,
}

/// Builds the seeds' body shape `{"id","event","timestamp","data"}` (compact JSON) and signs it
/// with every valid secret: hex HMAC in `X-Webhook-Signature` (current secret) and Standard
/// Webhooks signatures in `webhook-signature` (space-separated during a rotation).
pub fn build_request(
    webhook: &Webhook,
    event: &str,
    data: &Value,
    msg_id: &str,
) -> OutboundRequest {
    let now = now_millis();
    let ts = now / 1000;
    let body = json!({
        "id": msg_id,
        "event": event,
        "timestamp": crate::model::rfc3339(now),
        "data": data,
    })
    .to_string()
    .into_bytes();
    let mut headers = webhook.headers.clone();
    headers.insert("content-type".into(), "application/json".into());
    headers.insert("x-webhook-event".into(), event.into());
    headers.insert("x-webhook-id".into(), msg_id.into());
    headers.insert("x-webhook-timestamp".into(), ts.to_string());
    headers.insert(
        "x-webhook-signature".into(),
        signing::sign_hex(&webhook.secret, &body),
    );
    headers.insert("webhook-id".into(), msg_id.into());
    headers.insert("webhook-timestamp".into(), ts.to_string());
    let standard: Vec<String> = webhook
        .valid_secrets(now)
        .iter()
        .map(|s| signing::sign_standard(s, msg_id, ts, &body))
        .collect();
    headers.insert("webhook-signature".into(), standard.join(" "));
    OutboundRequest {
        msg_id: msg_id.into(),
        event: event.into(),
        body,
        headers,
    }
}

/// Sends `req` to the webhook's target once and returns the attempt as a log row (not yet
/// stored). Failures (timeout, refused, non-2xx) are outcomes, not errors.
pub async fn send(
    http: &reqwest::Client,
    webhook: &Webhook,
    req: &OutboundRequest,
    trigger: Trigger,
    attempt: i64,
) -> Delivery {
    let mut d = Delivery::new(
        &webhook.id,
        Direction::Outbound,
        trigger,
        &webhook.target_url,
    );
    d.event = Some(req.event.clone());
    d.attempt = attempt;
    d.request_headers = redact(&req.headers);
    d.request_body = Some(log_excerpt(&req.body));
    let mut builder = http.post(&webhook.target_url).body(req.body.clone());
    for (k, v) in &req.headers {
        builder = builder.header(k, v);
    }
    let started = Instant::now();
    let result = builder.send().await;
    match result {
        Ok(resp) => {
            let status = resp.status();
            d.status_code = Some(status.as_u16() as i64);
            d.response_headers = resp
                .headers()
                .iter()
                .take(64)
                .map(|(k, v)| {
                    (
                        k.to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect();
            let body = read_capped(resp).await;
            d.duration_ms = Some(started.elapsed().as_millis() as i64);
            d.response_body = Some(log_excerpt(&body));
            if status.is_success() {
                d.status = DeliveryStatus::Succeeded;
            } else {
                d.status = DeliveryStatus::Failed;
                d.error = Some(format!("HTTP {status}"));
            }
        }
        Err(e) => {
            d.duration_ms = Some(started.elapsed().as_millis() as i64);
            d.status = DeliveryStatus::Failed;
            d.error = Some(classify(&e));
        }
    }
    d
}

/// Reads at most a little more than the log keeps, so a huge response cannot exhaust memory.
async fn read_capped(mut resp: reqwest::Response) -> Vec<u8> {
    let cap = crate::model::LOG_BODY_LIMIT + 1;
    let mut out = Vec::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        out.extend_from_slice(&chunk);
        if out.len() >= cap {
            break;
        }
    }
    out
}

fn classify(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timeout".into()
    } else if e.is_connect() {
        format!("connection failed: {}", root_cause(e))
    } else {
        format!("request failed: {}", root_cause(e))
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// Request headers as logged: signatures are derived from the secret and stay out of the log's
/// readers' hands only as far as they are useless without it, but custom headers may carry
/// credentials (`Authorization`, API keys), so their values are hidden.
fn redact(headers: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    headers
        .iter()
        .map(|(k, v)| {
            let lower = k.to_ascii_lowercase();
            let shown = lower.starts_with("x-webhook-")
                || lower.starts_with("webhook-")
                || lower == "content-type";
            (k.clone(), if shown { v.clone() } else { "***".into() })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook() -> Webhook {
        Webhook {
            id: "w1".into(),
            direction: Direction::Outbound,
            target_url: "http://127.0.0.1:9/x".into(),
            provider: crate::model::Provider::Generic,
            events: vec!["*".into()],
            description: String::new(),
            enabled: true,
            secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
            previous_secret: Some("old-secret".into()),
            previous_secret_expires_at: Some(now_millis() + 60_000),
            headers: BTreeMap::from([("Authorization".into(), "Bearer abc".into())]),
            created_at: 0,
            updated_at: 0,
            failure_count: 0,
        }
    }

    #[test]
    fn request_is_signed_over_the_exact_body() {
        let w = hook();
        let req = build_request(&w, "order.paid", &json!({"n": 1}), "msg_1");
        let body: Value = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(body["id"], "msg_1");
        assert_eq!(body["event"], "order.paid");
        assert_eq!(body["data"]["n"], 1);
        assert_eq!(
            req.headers["x-webhook-signature"],
            signing::sign_hex(&w.secret, &req.body)
        );
        let ts: i64 = req.headers["webhook-timestamp"].parse().unwrap();
        let sigs: Vec<&str> = req.headers["webhook-signature"].split(' ').collect();
        assert_eq!(sigs.len(), 2, "both secrets sign during a rotation");
        assert_eq!(
            sigs[0],
            signing::sign_standard(&w.secret, "msg_1", ts, &req.body)
        );
        assert_eq!(
            sigs[1],
            signing::sign_standard("old-secret", "msg_1", ts, &req.body)
        );
    }

    #[test]
    fn custom_header_values_are_redacted_in_the_log() {
        let req = build_request(&hook(), "e", &json!({}), "m");
        let logged = redact(&req.headers);
        assert_eq!(logged["Authorization"], "***");
        assert_eq!(logged["x-webhook-id"], "m");
    }
}
