//! The delivery log, and test deliveries.

use std::time::Instant;

use http::{HeaderMap, HeaderName, HeaderValue};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};

use super::events::{InboundRequest, ReceiveOutcome};
use super::Service;
use crate::catalog;
use crate::dispatcher;
use crate::error::{Error, Result};
use crate::model::{
    now_millis, parse_rfc3339, rfc3339, Attempt, Caller, Delivery, DeliveryId, DeliveryStatus,
    Direction, MessageId, Provider, Trigger, Webhook, WebhookId,
};
use crate::signing;
use crate::store::log::LogCursor;
use crate::store::DeliveryQuery;

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryDeliveries {
    #[serde(default)]
    pub webhook_id: Option<WebhookId>,
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
    pub id: WebhookId,
    /// The event type of the sample (see list_event_types). Default: the first type in the
    /// webhook's filter that the catalogue knows, else a typical event for its provider.
    #[serde(default)]
    pub event: Option<String>,
    /// Replaces the sample's `data` object.
    #[serde(default)]
    pub data: Option<Value>,
}

/// One page of the delivery log, newest first.
#[derive(Debug, Clone)]
pub struct DeliveryPage {
    pub rows: Vec<Delivery>,
    /// Pass as `cursor` for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// What a test delivery did.
#[derive(Debug, Clone)]
pub enum TestReport {
    /// A signed sample went through the receive pipeline in this process.
    Inbound {
        event: String,
        outcome: ReceiveOutcome,
        duration_ms: i64,
        /// Whether this process runs a receiver at all (the pipeline runs either way).
        receiver_running: bool,
    },
    /// One signed POST to the target, logged with trigger `test`.
    Outbound { attempt: Box<Attempt> },
}

const MAX_PAGE: usize = 500;

impl Service {
    pub async fn query_deliveries(
        &self,
        caller: &Caller,
        req: QueryDeliveries,
    ) -> Result<DeliveryPage> {
        let limit = req.limit.unwrap_or(50);
        if limit == 0 || limit > MAX_PAGE {
            return Err(Error::invalid(format!("`limit` must be 1 to {MAX_PAGE}")));
        }
        let instant = |name: &str, v: &Option<String>| -> Result<Option<i64>> {
            v.as_deref()
                .map(|s| {
                    parse_rfc3339(s).ok_or_else(|| {
                        Error::invalid(format!(
                            "`{name}` {} is not an RFC 3339 instant; use e.g. 2026-11-24T10:00:00Z",
                            crate::error::quote(s)
                        ))
                    })
                })
                .transpose()
        };
        let before = req
            .cursor
            .as_deref()
            .map(|c| {
                c.parse::<LogCursor>().map_err(|_| {
                    Error::invalid("`cursor` must be a `next_cursor` value from an earlier answer")
                })
            })
            .transpose()?;
        let page = self
            .store
            .query_deliveries(DeliveryQuery {
                webhook_id: req.webhook_id,
                owner: caller.only().cloned(),
                direction: req.direction,
                status: req.status,
                event: req.event,
                since: instant("since", &req.since)?,
                until: instant("until", &req.until)?,
                before,
                limit,
            })
            .await?;
        let mut rows = page.rows;
        rows.iter_mut().for_each(|d| self.complete_receipt(d));
        let next_cursor = page.next.map(|c| c.to_string());
        Ok(DeliveryPage { rows, next_cursor })
    }

    pub async fn get_delivery(&self, caller: &Caller, id: &DeliveryId) -> Result<Delivery> {
        let mut found = self.delivery(caller, id).await?;
        self.complete_receipt(&mut found);
        Ok(found)
    }

    /// A row of the log the caller sees (its webhook's owner's); another's is not found.
    pub(super) async fn delivery(&self, caller: &Caller, id: &DeliveryId) -> Result<Delivery> {
        match self.store.get_delivery(id).await? {
            Some(d) if self.sees_history(caller, d.webhook_id()).await? => Ok(d),
            _ => Err(Error::delivery_not_found(id)),
        }
    }

    /// A stored event's receipt comes from the event, which keeps no copy of the URL it came
    /// to: that is its webhook's receive URL.
    fn complete_receipt(&self, d: &mut Delivery) {
        if let Delivery::Receipt(r) = d {
            if r.url.is_empty() {
                r.url = self.receive_url(&r.webhook_id);
            }
        }
    }

    pub async fn test_webhook(&self, caller: &Caller, req: TestWebhook) -> Result<TestReport> {
        let webhook = self.webhook(caller, &req.id).await?;
        if let Some(d) = &req.data {
            if !d.is_object() {
                return Err(Error::invalid("`data` must be a JSON object"));
            }
        }
        match webhook.direction {
            Direction::Inbound => Ok(self.test_inbound(&webhook, req).await),
            Direction::Outbound => self.test_outbound(&webhook, req).await,
        }
    }

    /// Signs a catalogue sample with the webhook's own scheme and secret and runs it through
    /// the receive pipeline, the same code a provider's POST goes through (signature check,
    /// store, notifications), in process.
    async fn test_inbound(&self, webhook: &Webhook, req: TestWebhook) -> TestReport {
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
            webhook.secret.expose(),
            body.as_bytes(),
            now_millis() / 1000,
        );
        let required = webhook
            .required_headers
            .iter()
            .map(|(k, v)| (k.clone(), v.expose().to_string()));
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
        let started = Instant::now();
        let outcome = self
            .receive(
                webhook.id.as_str(),
                InboundRequest {
                    headers: &headers,
                    body: body.as_bytes(),
                    source: None,
                },
            )
            .await;
        TestReport::Inbound {
            event: event_type,
            outcome,
            duration_ms: started.elapsed().as_millis() as i64,
            receiver_running: self.settings.receiver_addr.is_some(),
        }
    }

    /// One signed POST to the target, logged with trigger `test`.
    async fn test_outbound(&self, webhook: &Webhook, req: TestWebhook) -> Result<TestReport> {
        let event_type = pick_event(webhook, req.event.as_deref());
        let data = req.data.unwrap_or_else(|| {
            catalog::find(&event_type, webhook.provider)
                .map(|t| t.example["data"].clone())
                .unwrap_or_else(|| json!({ "test": true }))
        });
        let msg_id = MessageId::generate();
        let now = now_millis();
        let body = dispatcher::message_body(webhook, &msg_id, &event_type, &data, now);
        let headers =
            dispatcher::signed_headers(webhook, &msg_id, &event_type, body.as_bytes(), now);
        let mut attempt = Attempt::new(
            webhook.id.clone(),
            msg_id,
            event_type,
            Trigger::Test,
            webhook.target_url.clone(),
        );
        attempt.next_attempt_at = None;
        self.http
            .send(&webhook.target_url, &headers, body.as_bytes(), &mut attempt)
            .await;
        self.store.log_attempt(attempt.clone()).await?;
        tracing::info!(webhook_id = %webhook.id, status = ?attempt.status_code, error = ?attempt.error, "test delivery");
        Ok(TestReport::Outbound {
            attempt: Box::new(attempt),
        })
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
    catalog::list(Some(&webhook.provider.to_string()))
        .first()
        .map_or_else(|| "test".to_string(), |t| t.event.to_string())
}
