//! The delivery log and test deliveries.

use std::time::Instant;

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};

use super::outbound::new_message_id;
use super::Service;
use crate::catalog;
use crate::dispatcher;
use crate::error::{Error, Result};
use crate::model::{
    now_millis, parse_rfc3339, rfc3339, Delivery, DeliveryStatus, Direction, Provider, Trigger,
    Webhook,
};
use crate::signing;
use crate::store::DeliveryQuery;

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryDeliveries {
    #[serde(default)]
    pub webhook_id: Option<String>,
    /// `inbound` (requests the receiver got, accepted or rejected) or `outbound` (attempts sent).
    #[serde(default)]
    pub direction: Option<Direction>,
    /// `pending`, `succeeded` or `failed`.
    #[serde(default)]
    pub status: Option<DeliveryStatus>,
    /// Only rows for this event type.
    #[serde(default)]
    pub event: Option<String>,
    /// RFC 3339 instant, e.g. 2026-11-24T10:00:00Z: only rows created at or after it.
    #[serde(default)]
    pub since: Option<String>,
    /// RFC 3339 instant: only rows created at or before it.
    #[serde(default)]
    pub until: Option<String>,
    /// Rows per page, newest first (default 50, at most 500).
    #[serde(default)]
    pub limit: Option<usize>,
    /// The previous page's `next_cursor`.
    #[serde(default)]
    pub cursor: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TestWebhook {
    /// The webhook id.
    pub id: String,
    /// The event type of the sample (see list_event_types). Default: the first type in the
    /// webhook's filter that the catalogue knows, else a typical event for its provider.
    #[serde(default)]
    pub event: Option<String>,
    /// Replaces the sample's `data` object.
    #[serde(default)]
    pub data: Option<Value>,
}

const MAX_PAGE: usize = 500;

impl Service {
    pub async fn query_deliveries(&self, req: QueryDeliveries) -> Result<Value> {
        let limit = req.limit.unwrap_or(50);
        if limit == 0 || limit > MAX_PAGE {
            return Err(Error::invalid(format!("`limit` must be 1 to {MAX_PAGE}")));
        }
        let instant = |name: &str, v: &Option<String>| -> Result<Option<i64>> {
            v.as_deref()
                .map(|s| {
                    parse_rfc3339(s).ok_or_else(|| {
                        Error::invalid(format!(
                            "`{name}` {s:?} is not an RFC 3339 instant; use e.g. 2026-11-24T10:00:00Z"
                        ))
                    })
                })
                .transpose()
        };
        let before = req
            .cursor
            .as_deref()
            .map(|c| {
                c.parse::<i64>().map_err(|_| {
                    Error::invalid("`cursor` must be a `next_cursor` value from an earlier answer")
                })
            })
            .transpose()?;
        let rows = self
            .store
            .query_deliveries(DeliveryQuery {
                webhook_id: req.webhook_id,
                direction: req.direction,
                status: req.status,
                event: req.event,
                since: instant("since", &req.since)?,
                until: instant("until", &req.until)?,
                before,
                limit,
            })
            .await?;
        let next_cursor = (rows.len() == limit)
            .then(|| rows.last().map(|d| d.seq.to_string()))
            .flatten();
        Ok(json!({
            "count": rows.len(),
            "deliveries": rows.iter().map(|d| d.to_json(false)).collect::<Vec<_>>(),
            "next_cursor": next_cursor,
            "hint": "Full request/response of one row: read its resource_uri (webhook://deliveries/{id}).",
        }))
    }

    pub async fn get_delivery(&self, id: &str) -> Result<Value> {
        let d = self
            .store
            .get_delivery(id)
            .await?
            .ok_or_else(|| Error::delivery_not_found(id))?;
        Ok(d.to_json(true))
    }

    pub async fn test_webhook(&self, req: TestWebhook) -> Result<Value> {
        let webhook = self.webhook(&req.id).await?;
        if let Some(d) = &req.data {
            if !d.is_object() {
                return Err(Error::invalid("`data` must be a JSON object"));
            }
        }
        match webhook.direction {
            Direction::Inbound => self.test_inbound(&webhook, req).await,
            Direction::Outbound => self.test_outbound(&webhook, req).await,
        }
    }

    /// Signs a catalogue sample with the webhook's own scheme and secret and posts it to its
    /// own receive URL, through the real receiver.
    async fn test_inbound(&self, webhook: &Webhook, req: TestWebhook) -> Result<Value> {
        let Some(addr) = self.settings.receiver_addr else {
            return Err(Error::Unavailable(
                "the receiver is off (--no-receiver), so inbound webhooks cannot be tested".into(),
            ));
        };
        let event_type = pick_event(webhook, req.event.as_deref());
        let mut payload = match catalog::find(&event_type, webhook.provider) {
            Some(t) => t.example.clone(),
            None => json!({ "event": event_type, "data": {} }),
        };
        // Fresh ids and timestamp: a test must not be taken for a retry of an earlier one.
        for id_field in ["id", "event_id"] {
            if payload.get(id_field).is_some() {
                payload[id_field] = json!(uuid::Uuid::new_v4().to_string());
            }
        }
        if payload.get("timestamp").is_some() {
            payload["timestamp"] = json!(rfc3339(now_millis()));
        }
        if let Some(data) = req.data {
            payload["data"] = data;
        }
        let body = payload.to_string();
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        headers.insert("x-webhook-mcp-test", HeaderValue::from_static("1"));
        let signed = signing::sign_inbound(
            webhook.provider,
            &webhook.secret,
            body.as_bytes(),
            now_millis() / 1000,
        );
        let required = webhook.headers.iter().map(|(k, v)| (k.clone(), v.clone()));
        for (k, v) in signed.into_iter().chain(required) {
            if let (Ok(k), Ok(v)) = (
                HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_str(&v),
            ) {
                headers.insert(k, v);
            }
        }
        // Schemes that name the event in a header name this one.
        let event_header = match webhook.provider {
            Provider::Generic => Some("x-webhook-event"),
            Provider::Github => Some("x-github-event"),
            Provider::Shopify => Some("x-shopify-topic"),
            _ => None,
        };
        if let (Some(name), Ok(v)) = (event_header, HeaderValue::from_str(&event_type)) {
            headers.insert(name, v);
        }
        let url = format!("http://{addr}/hooks/{}", webhook.id);
        let started = Instant::now();
        let resp = self
            .internal_http
            .post(&url)
            .headers(headers)
            .body(body)
            .send()
            .await;
        let duration_ms = started.elapsed().as_millis() as i64;
        let (status, answer): (u16, Value) = match resp {
            Ok(r) => {
                let status = r.status().as_u16();
                let bytes = r.bytes().await.unwrap_or_default();
                (
                    status,
                    serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                )
            }
            Err(e) => {
                return Ok(json!({
                    "ok": false,
                    "error": format!("could not reach the receiver at {url}: {e}"),
                    "duration_ms": duration_ms,
                }))
            }
        };
        let event_id = answer["event_id"].as_str().map(str::to_string);
        let stored = match &event_id {
            Some(id) => self.store.get_event(id).await?.is_some(),
            None => false,
        };
        Ok(json!({
            "ok": status == 200 && stored,
            "event": event_type,
            "status_code": status,
            "duration_ms": duration_ms,
            "receiver_answer": answer,
            "event_id": event_id,
            "delivery_id": answer["delivery_id"],
            "arrived": stored,
            "event_resource_uri": event_id.map(|id| format!("webhook://events/{id}")),
            "note": "The sample went through the real receiver (signature check, store, notifications) \
                     and carries the header x-webhook-mcp-test: 1.",
        }))
    }

    /// One signed POST to the target, logged with trigger `test`.
    async fn test_outbound(&self, webhook: &Webhook, req: TestWebhook) -> Result<Value> {
        let event_type = pick_event(webhook, req.event.as_deref());
        let data = req.data.unwrap_or_else(|| {
            catalog::find(&event_type, webhook.provider)
                .map(|t| t.example["data"].clone())
                .unwrap_or_else(|| json!({ "test": true }))
        });
        let msg_id = new_message_id();
        let now = now_millis();
        let body = dispatcher::message_body(webhook, &msg_id, &event_type, &data, now);
        let headers =
            dispatcher::signed_headers(webhook, &msg_id, &event_type, body.as_bytes(), now);
        let mut attempt = Delivery::new(
            &webhook.id,
            Direction::Outbound,
            Trigger::Test,
            &webhook.target_url,
        );
        attempt.event = Some(event_type.clone());
        attempt.message_id = Some(msg_id.clone());
        self.http
            .send(&webhook.target_url, &headers, body.as_bytes(), &mut attempt)
            .await;
        self.store.insert_delivery(attempt.clone()).await?;
        tracing::info!(webhook_id = %webhook.id, status = ?attempt.status_code, error = ?attempt.error, "test delivery");
        Ok(json!({
            "ok": attempt.status == DeliveryStatus::Succeeded,
            "event": event_type,
            "status_code": attempt.status_code,
            "duration_ms": attempt.duration_ms,
            "error": attempt.error,
            "response_excerpt": attempt.response_body.as_deref().map(|b| b.chars().take(500).collect::<String>()),
            "delivery_id": attempt.id,
            "message_id": msg_id,
        }))
    }
}

fn pick_event(webhook: &Webhook, requested: Option<&str>) -> String {
    if let Some(e) = requested {
        return e.to_string();
    }
    if let Some(e) = webhook
        .events
        .iter()
        .find(|e| *e != "*" && catalog::find(e, webhook.provider).is_some())
    {
        return e.clone();
    }
    if let Some(e) = webhook.events.iter().find(|e| *e != "*") {
        return e.clone();
    }
    catalog::list(Some(webhook.provider.as_str()))
        .first()
        .map_or_else(|| "test".to_string(), |t| t.event.to_string())
}
