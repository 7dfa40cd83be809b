//! Outbound delivery: what a message to a subscriber looks like (body, signature headers,
//! Slack formatting), how one attempt is sent and recorded, the retry policy, the SSRF guard,
//! and the worker pool that drains the durable queue.

pub mod js_json;
pub mod policy;
pub mod slack;
pub mod ssrf;
pub mod worker;

pub use slack::{is_slack, shown_url};

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::{json, Value};

use crate::model::{log_excerpt, rfc3339, Attempt, DeliveryStatus, MessageId, Millis, Webhook};
use crate::signing;

/// The body of a message: the seeds' shape `{"id","event","timestamp","data"}` as compact JSON
/// (JavaScript's),
/// or a Slack message for a Slack incoming-webhook target.
pub fn message_body(
    webhook: &Webhook,
    msg_id: &MessageId,
    event: &str,
    data: &Value,
    now: Millis,
) -> String {
    if slack::is_slack(&webhook.target_url) {
        return slack::message(event, data).to_string();
    }
    // Written as JavaScript writes it: receivers that verify over JSON.stringify(req.body) see
    // these exact bytes again (see js_json).
    js_json::to_string(
        &json!({ "id": msg_id, "event": event, "timestamp": rfc3339(now), "data": data }),
    )
}

/// Headers for one attempt, signed over the exact body: hex HMAC in `X-Webhook-Signature`
/// (current secret) and Standard Webhooks `webhook-signature` (every valid secret,
/// space-separated during a rotation's grace period). Slack targets need no signature.
pub fn signed_headers(
    webhook: &Webhook,
    msg_id: &MessageId,
    event: &str,
    body: &[u8],
    now: Millis,
) -> BTreeMap<String, String> {
    let mut headers = webhook.extra_headers.clone();
    headers.insert("content-type".into(), "application/json".into());
    if slack::is_slack(&webhook.target_url) {
        return headers;
    }
    if crate::model::EventSubscription::is_subscription_id(&webhook.id) {
        // The MCP Events profile of Standard Webhooks: its headers only (the subscription id
        // is among the extra headers), `webhook-id` the event's id.
        let wire_id = subscription_wire_id(msg_id, body);
        headers.insert("webhook-id".into(), wire_id.clone());
        headers.insert("webhook-timestamp".into(), (now / 1000).to_string());
        headers.insert(
            "webhook-signature".into(),
            standard_signatures(webhook, &wire_id, body, now),
        );
        return headers;
    }
    let ts = (now / 1000).to_string();
    headers.insert("x-webhook-event".into(), event.into());
    headers.insert("x-webhook-id".into(), msg_id.to_string());
    headers.insert("x-webhook-timestamp".into(), ts.clone());
    headers.insert(
        "x-webhook-signature".into(),
        signing::sign_hex(webhook.secret.expose(), body),
    );
    headers.insert("webhook-id".into(), msg_id.to_string());
    headers.insert("webhook-timestamp".into(), ts);
    headers.insert(
        "webhook-signature".into(),
        standard_signatures(webhook, msg_id.as_str(), body, now),
    );
    headers
}

/// `v1,<sig>` by every secret valid now, space-separated (both during a rotation's grace).
fn standard_signatures(webhook: &Webhook, wire_id: &str, body: &[u8], now: Millis) -> String {
    let standard: Vec<String> = webhook
        .valid_secrets(now)
        .iter()
        .map(|s| signing::sign_standard(s.expose(), wire_id, now / 1000, body))
        .collect();
    standard.join(" ")
}

/// The `webhook-id` of an MCP Events delivery: the occurrence's `eventId` (the subscription
/// module makes it header-safe), or for a control body `msg_<type>_<our message id>`, the
/// same for every retry.
fn subscription_wire_id(msg_id: &MessageId, body: &[u8]) -> String {
    let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    if let Some(id) = parsed.get("eventId").and_then(Value::as_str) {
        return id.to_string();
    }
    let kind = parsed
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("control");
    let suffix = msg_id.as_str().trim_start_matches("msg_");
    format!("msg_{kind}_{suffix}")
}

/// What the target answered, beyond the log row.
#[derive(Debug, Default, Clone)]
pub struct Answer {
    pub timed_out: bool,
    pub retry_after: Option<std::time::Duration>,
    pub abort: bool,
}

/// The HTTP client for subscriber targets: no redirects, the delivery timeout, and the SSRF
/// guard on every resolved address (unless private targets are allowed).
#[derive(Clone)]
pub struct Http {
    client: reqwest::Client,
    allow_private: bool,
}

impl Http {
    pub fn new(timeout: std::time::Duration, allow_private: bool) -> Self {
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            // A webhook target answers; it does not send us elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            // Never a proxy from the environment: it would resolve targets past the guard.
            .no_proxy()
            .pool_max_idle_per_host(64)
            .user_agent(concat!("webhook-mcp/", env!("CARGO_PKG_VERSION")));
        if !allow_private {
            builder = builder.dns_resolver(std::sync::Arc::new(ssrf::GuardedResolver));
        }
        Http {
            client: builder
                .build()
                .expect("the HTTP client builds with static settings"),
            allow_private,
        }
    }

    pub fn allow_private(&self) -> bool {
        self.allow_private
    }

    /// Sends one attempt and fills `d` with its outcome. Failures (timeout, refused, non-2xx)
    /// are outcomes recorded in `d`, not errors.
    pub async fn send(
        &self,
        url: &str,
        headers: &BTreeMap<String, String>,
        body: &[u8],
        d: &mut Attempt,
    ) -> Answer {
        send(&self.client, self.allow_private, url, headers, body, d).await
    }
}

/// Why a callback endpoint failed its verification: the MCP Events `lastError` categories.
/// Never the endpoint's own words (they would make us an oracle for attacker-chosen URLs).
pub fn failure_category(d: &Attempt) -> &'static str {
    match (d.status_code, d.error.as_deref()) {
        (Some(c), _) if (400..500).contains(&c) => "http_4xx",
        (Some(c), _) if c >= 500 => "http_5xx",
        (Some(_), _) => "challenge_failed",
        (None, Some(e)) if e.starts_with("timeout") => "timeout",
        (None, Some(e)) if e.to_ascii_lowercase().contains("tls") || e.contains("certificate") => {
            "tls_error"
        }
        _ => "connection_refused",
    }
}

impl Http {
    /// Sends a signed verification body and checks that the endpoint echoed `challenge` in a
    /// 2xx JSON body `{"challenge": ...}` (compared in constant time). `d` records the attempt.
    pub async fn challenge(
        &self,
        url: &str,
        headers: &BTreeMap<String, String>,
        body: &[u8],
        challenge: &str,
        d: &mut Attempt,
    ) -> Result<(), &'static str> {
        send(&self.client, self.allow_private, url, headers, body, d).await;
        if d.status != DeliveryStatus::Succeeded {
            return Err(failure_category(d));
        }
        let echoed = d
            .response_body
            .as_deref()
            .and_then(|b| serde_json::from_str::<Value>(b).ok())
            .and_then(|v| {
                v.get("challenge")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .unwrap_or_default();
        if crate::signing::constant_time_eq(echoed.as_bytes(), challenge.as_bytes()) {
            Ok(())
        } else {
            d.status = DeliveryStatus::Failed;
            d.error = Some("the endpoint did not echo the challenge".into());
            Err("challenge_failed")
        }
    }
}

async fn send(
    http: &reqwest::Client,
    allow_private: bool,
    url: &str,
    headers: &BTreeMap<String, String>,
    body: &[u8],
    d: &mut Attempt,
) -> Answer {
    d.request_headers = redact(headers);
    d.request_body = Some(log_excerpt(body));
    let mut answer = Answer::default();
    if let Err(why) = ssrf::check_literal(url, allow_private) {
        d.status = DeliveryStatus::Failed;
        d.error = Some(why);
        d.duration_ms = Some(0);
        return answer;
    }
    let mut builder = http.post(url).body(body.to_vec());
    for (k, v) in headers {
        builder = builder.header(k, v);
    }
    let started = Instant::now();
    match builder.send().await {
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
            answer.retry_after = d
                .response_headers
                .get("retry-after")
                .and_then(|v| policy::parse_retry_after(v));
            answer.abort = d
                .response_headers
                .get("webhook-delivery")
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("abort-message"));
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
            answer.timed_out = e.is_timeout();
            d.error = Some(classify(&e));
        }
    }
    answer
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

/// Request headers as logged. Signature headers are kept (useless without the secret and
/// needed to debug a receiver); custom headers may carry credentials, so their values are not.
fn redact(headers: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    headers
        .iter()
        .map(|(k, v)| {
            let lower = k.to_ascii_lowercase();
            let shown = lower.starts_with("x-webhook-")
                || lower.starts_with("webhook-")
                || lower == "content-type"
                || lower == "x-mcp-subscription-id";
            (k.clone(), if shown { v.clone() } else { "***".into() })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{now_millis, Direction};

    fn hook() -> Webhook {
        let mut w = Webhook::fixture(
            "w1",
            Direction::Outbound,
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        );
        w.target_url = "http://127.0.0.1:9/x".into();
        w.previous_secret = Some(crate::model::PreviousSecret {
            secret: crate::model::Secret::new("old-secret"),
            expires_at: now_millis() + 60_000,
        });
        w.extra_headers = BTreeMap::from([("Authorization".into(), "Bearer abc".into())]);
        w
    }

    #[test]
    fn request_is_signed_over_the_exact_body() {
        let w = hook();
        let now = now_millis();
        let msg = MessageId::from("msg_1");
        let body = message_body(&w, &msg, "order.paid", &json!({"n": 1}), now);
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            (v["id"].as_str(), v["event"].as_str()),
            (Some("msg_1"), Some("order.paid"))
        );
        assert_eq!(v["data"]["n"], 1);
        let h = signed_headers(&w, &msg, "order.paid", body.as_bytes(), now);
        assert_eq!(
            h["x-webhook-signature"],
            signing::sign_hex(w.secret.expose(), body.as_bytes())
        );
        let ts: i64 = h["webhook-timestamp"].parse().unwrap();
        let sigs: Vec<&str> = h["webhook-signature"].split(' ').collect();
        assert_eq!(sigs.len(), 2, "both secrets sign during a rotation");
        assert_eq!(
            sigs[0],
            signing::sign_standard(w.secret.expose(), "msg_1", ts, body.as_bytes())
        );
        assert_eq!(
            sigs[1],
            signing::sign_standard("old-secret", "msg_1", ts, body.as_bytes())
        );
    }

    #[test]
    fn custom_header_values_are_redacted_in_the_log() {
        let w = hook();
        let h = signed_headers(&w, &MessageId::from("m"), "e", b"{}", now_millis());
        let logged = redact(&h);
        assert_eq!(logged["Authorization"], "***");
        assert_eq!(logged["x-webhook-id"], "m");
    }

    #[test]
    fn slack_targets_get_a_slack_message_without_signatures() {
        let mut w = hook();
        w.target_url = "https://hooks.slack.com/services/T0/B0/xyz".into();
        let m = MessageId::from("m");
        let body = message_body(
            &w,
            &m,
            "message_received",
            &json!({"participantName": "Jane"}),
            0,
        );
        let v: Value = serde_json::from_str(&body).unwrap();
        assert!(v["text"].as_str().unwrap().contains("message_received"));
        assert!(v["blocks"].is_array());
        let h = signed_headers(&w, &m, "message_received", body.as_bytes(), 0);
        assert!(!h.contains_key("x-webhook-signature"));
    }
}
