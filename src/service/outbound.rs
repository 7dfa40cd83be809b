//! Outbound sending: `send_event` fan-out, relaying inbound events (`forward_to`), and
//! redelivery. Everything here only queues; the dispatcher's worker sends.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};

use super::Service;
use crate::dispatcher;
use crate::error::{Error, Result};
use crate::model::{
    now_millis, parse_rfc3339, Delivery, DeliveryStatus, Direction, Trigger, Webhook,
};
use crate::store::Message;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SendEvent {
    /// The event type, e.g. `order.paid`; only outbound webhooks whose `events` filter matches
    /// (exactly, or `*`) receive it.
    pub event: String,
    /// The event's data (any JSON), sent as the body's `data`.
    pub data: Value,
    /// Send only to these outbound webhooks (still subject to their filters).
    #[serde(default)]
    pub webhook_ids: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Redeliver {
    /// One delivery (from query_deliveries) to send again now, as a new manual attempt.
    #[serde(default)]
    pub delivery_id: Option<String>,
    /// Bulk recovery: with `since` (and optionally `until`), re-queue every message of this
    /// outbound webhook whose delivery finally failed in that window.
    #[serde(default)]
    pub webhook_id: Option<String>,
    /// RFC 3339 start of the bulk window.
    #[serde(default)]
    pub since: Option<String>,
    /// RFC 3339 end of the bulk window (default: now).
    #[serde(default)]
    pub until: Option<String>,
}

pub fn new_message_id() -> String {
    format!("msg_{}", uuid::Uuid::now_v7().simple())
}

/// A message for `webhook` and its first attempt, due now.
pub(super) fn queue_item(
    webhook: &Webhook,
    event: &str,
    body: String,
    event_id: Option<String>,
    msg_id: String,
) -> (Message, Delivery) {
    let now = now_millis();
    let mut first = Delivery::new(
        &webhook.id,
        Direction::Outbound,
        Trigger::Scheduled,
        &webhook.target_url,
    );
    first.event = Some(event.to_string());
    first.event_id = event_id.clone();
    first.message_id = Some(msg_id.clone());
    first.next_attempt_at = Some(now);
    let message = Message {
        id: msg_id,
        webhook_id: webhook.id.clone(),
        event: event.to_string(),
        event_id,
        body,
        created_at: now,
    };
    (message, first)
}

impl Service {
    pub async fn send_event(&self, req: SendEvent) -> Result<Value> {
        if req.event.trim().is_empty() || req.event.len() > 200 {
            return Err(Error::invalid(
                "`event` must be a non-empty event type of at most 200 characters",
            ));
        }
        let targets: Vec<Webhook> = match &req.webhook_ids {
            Some(ids) => {
                let mut out = vec![];
                for id in ids {
                    let w = self.webhook(id).await?;
                    if w.direction != Direction::Outbound {
                        return Err(Error::invalid(format!(
                            "webhook {id} is inbound; send_event delivers to outbound webhooks"
                        )));
                    }
                    if !w.enabled {
                        return Err(Error::invalid(format!(
                            "webhook {id} is disabled{}; enable it with update_webhook first",
                            w.disabled_reason
                                .as_deref()
                                .map(|r| format!(" ({r})"))
                                .unwrap_or_default()
                        )));
                    }
                    out.push(w);
                }
                out
            }
            None => {
                self.store
                    .list_webhooks(Some(Direction::Outbound), Some(true))
                    .await?
            }
        };
        let now = now_millis();
        let mut items = vec![];
        for w in targets.iter().filter(|w| w.accepts_event(&req.event)) {
            let msg_id = new_message_id();
            let body = dispatcher::message_body(w, &msg_id, &req.event, &req.data, now);
            items.push(queue_item(w, &req.event, body, None, msg_id));
        }
        let queued: Vec<Value> = items
            .iter()
            .map(|(m, d)| json!({ "webhook_id": m.webhook_id, "message_id": m.id, "delivery_id": d.id }))
            .collect();
        if !items.is_empty() {
            self.store.enqueue(items).await?;
            self.wake.notify_one();
        }
        tracing::info!(event = %req.event, queued = queued.len(), "event queued");
        let mut out = json!({ "event": req.event, "queued": queued.len(), "deliveries": queued });
        if queued.is_empty() {
            out["hint"] = json!("No enabled outbound webhook's events filter matches this event type; check list_webhooks {\"direction\": \"outbound\"}.");
        } else {
            out["hint"] = json!(
                "Delivery runs in the background with retries; follow it with query_deliveries."
            );
        }
        Ok(out)
    }

    /// The relayed copies of an inbound event for its `forward_to` targets: the verified payload
    /// re-serialised, re-signed per target at send time.
    pub(super) async fn forwards(
        &self,
        inbound: &Webhook,
        event: &str,
        payload: &Value,
        event_id: &str,
    ) -> Vec<(Message, Delivery)> {
        let mut out = vec![];
        for id in &inbound.forward_to {
            match self.store.get_webhook(id).await {
                Ok(Some(w))
                    if w.direction == Direction::Outbound
                        && w.enabled
                        && w.accepts_event(event) =>
                {
                    let msg_id = new_message_id();
                    let body = if dispatcher::is_slack(&w.target_url) {
                        let data = payload.get("data").unwrap_or(payload);
                        dispatcher::message_body(&w, &msg_id, event, data, now_millis())
                    } else {
                        // The relay passes on what the provider sent; the target's own secret
                        // signs it at send time.
                        payload.to_string()
                    };
                    out.push(queue_item(
                        &w,
                        event,
                        body,
                        Some(event_id.to_string()),
                        msg_id,
                    ));
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "could not load a forward target"),
            }
        }
        out
    }

    pub async fn redeliver(&self, req: Redeliver) -> Result<Value> {
        match (&req.delivery_id, &req.webhook_id) {
            (Some(id), None) => self.redeliver_one(id).await,
            (None, Some(webhook_id)) => self.redeliver_window(webhook_id, &req).await,
            _ => Err(Error::invalid(
                "give either `delivery_id` (one delivery) or `webhook_id` with `since` (bulk recovery)",
            )),
        }
    }

    async fn redeliver_one(&self, delivery_id: &str) -> Result<Value> {
        let d = self
            .store
            .get_delivery(delivery_id)
            .await?
            .ok_or_else(|| Error::delivery_not_found(delivery_id))?;
        let Some(message_id) = d
            .message_id
            .clone()
            .filter(|_| d.direction == Direction::Outbound)
        else {
            return Err(Error::invalid(
                "only outbound deliveries can be redelivered; inbound requests come from the provider (ask it to resend)",
            ));
        };
        let webhook = self.webhook(&d.webhook_id).await?;
        if !webhook.enabled {
            return Err(Error::invalid(format!(
                "webhook {} is disabled; enable it with update_webhook before redelivering",
                webhook.id
            )));
        }
        let (last, pending) = self.store.message_state(&message_id).await?;
        if pending {
            return Err(Error::invalid("this message already has an attempt pending; wait for it or check query_deliveries"));
        }
        if d.trigger == Trigger::Test {
            return Err(Error::invalid(
                "test deliveries are not queued; run test_webhook again",
            ));
        }
        let attempt = self.manual_attempt(&d, &webhook, last + 1);
        let id = attempt.id.clone();
        self.store.enqueue_attempts(vec![attempt]).await?;
        self.wake.notify_one();
        Ok(json!({ "queued": 1, "delivery_id": id, "message_id": message_id, "attempt": last + 1 }))
    }

    async fn redeliver_window(&self, webhook_id: &str, req: &Redeliver) -> Result<Value> {
        let since = req.since.as_deref().ok_or_else(|| {
            Error::invalid("bulk redelivery needs `since` (RFC 3339), e.g. 2026-11-24T00:00:00Z")
        })?;
        let since = parse_rfc3339(since)
            .ok_or_else(|| Error::invalid("`since` is not an RFC 3339 instant"))?;
        let until = match req.until.as_deref() {
            Some(u) => parse_rfc3339(u)
                .ok_or_else(|| Error::invalid("`until` is not an RFC 3339 instant"))?,
            None => now_millis(),
        };
        let webhook = self.webhook(webhook_id).await?;
        if webhook.direction != Direction::Outbound || !webhook.enabled {
            return Err(Error::invalid(format!(
                "webhook {webhook_id} must be an enabled outbound webhook to redeliver to it"
            )));
        }
        let failed = self.store.finally_failed(webhook_id, since, until).await?;
        let attempts: Vec<Delivery> = failed
            .iter()
            .filter(|d| d.status == DeliveryStatus::Failed)
            .map(|d| self.manual_attempt(d, &webhook, d.attempt + 1))
            .collect();
        let n = attempts.len();
        if n > 0 {
            self.store.enqueue_attempts(attempts).await?;
            self.wake.notify_one();
        }
        Ok(
            json!({ "queued": n, "webhook_id": webhook_id, "note": "Each finally-failed message in the window gets one new manual attempt." }),
        )
    }

    fn manual_attempt(&self, prev: &Delivery, webhook: &Webhook, attempt: i64) -> Delivery {
        let mut d = Delivery::new(
            &webhook.id,
            Direction::Outbound,
            Trigger::Manual,
            &webhook.target_url,
        );
        d.attempt = attempt;
        d.event = prev.event.clone();
        d.event_id = prev.event_id.clone();
        d.message_id = prev.message_id.clone();
        d.next_attempt_at = Some(now_millis());
        d
    }
}
