//! Outbound sending: `send_event` fan-out, relaying inbound events (`forward_to`), and
//! redelivery. Everything here only queues; the dispatcher's worker sends.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use super::Service;
use crate::dispatcher;
use crate::error::{Error, Result};
use crate::model::{
    now_millis, parse_rfc3339, Attempt, Caller, DeliveryId, DeliveryStatus, EventId, MessageId,
    Trigger, Webhook, WebhookId,
};
use crate::store::{Message, Outgoing, WebhookFilter};

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
    pub webhook_ids: Option<Vec<WebhookId>>,
    /// Makes retries safe: a second call with the same key within 24 hours sends nothing and
    /// returns the first call's result (at most 200 characters; e.g. a UUID per logical send).
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Redeliver {
    /// One delivery (from query_deliveries) to send again now, as a new manual attempt.
    #[serde(default)]
    pub delivery_id: Option<DeliveryId>,
    /// Bulk recovery: with `since` (and optionally `until`), re-queue every message of this
    /// outbound webhook whose delivery finally failed in that window.
    #[serde(default)]
    pub webhook_id: Option<WebhookId>,
    /// RFC 3339 start of the bulk window.
    #[serde(default)]
    pub since: Option<String>,
    /// RFC 3339 end of the bulk window (default: now).
    #[serde(default)]
    pub until: Option<String>,
}

/// One message queued for one webhook.
#[derive(Debug, Clone, serde::Serialize, Deserialize)]
pub struct Queued {
    pub webhook_id: WebhookId,
    pub message_id: MessageId,
    pub delivery_id: DeliveryId,
}

/// What `send_event` queued.
#[derive(Debug, Clone, serde::Serialize, Deserialize)]
pub struct Sent {
    pub event: String,
    pub queued: Vec<Queued>,
    /// Webhooks whose content filter this event did not match: nothing was queued for them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filtered: Vec<WebhookId>,
    /// This is the first call's result, returned again for its idempotency key: nothing new
    /// was sent.
    #[serde(skip)]
    pub replayed: bool,
}

/// What `redeliver` queued.
#[derive(Debug, Clone)]
pub enum Redelivered {
    One {
        delivery_id: DeliveryId,
        message_id: MessageId,
        attempt: i64,
    },
    Window {
        webhook_id: WebhookId,
        queued: usize,
    },
}

/// Message `message_id` (whose body names it) for `webhook`, and its first attempt, due now.
pub(super) fn outgoing(
    webhook: &Webhook,
    message_id: MessageId,
    event: &str,
    body: String,
    event_id: Option<EventId>,
) -> Outgoing {
    let mut first = Attempt::new(
        webhook.id.clone(),
        message_id.clone(),
        event.to_string(),
        Trigger::Scheduled,
        webhook.target_url.clone(),
    );
    first.event_id = event_id.clone();
    let message = Message {
        id: message_id,
        webhook_id: webhook.id.clone(),
        event: event.to_string(),
        event_id,
        body,
        created_at: first.created_at,
    };
    Outgoing { message, first }
}

impl Service {
    pub async fn send_event(&self, caller: &Caller, req: SendEvent) -> Result<Sent> {
        if req
            .idempotency_key
            .as_ref()
            .is_some_and(|k| k.is_empty() || k.len() > 200)
        {
            return Err(Error::invalid(
                "`idempotency_key` must be 1 to 200 characters (a UUID per logical send works)",
            ));
        }
        if !crate::model::is_event_type(&req.event) {
            return Err(Error::invalid(format!(
                "`event` must be an event type: {}",
                crate::model::EVENT_TYPE_RULE
            )));
        }
        let targets: Vec<Webhook> = match &req.webhook_ids {
            Some(ids) if ids.len() > 100 => {
                return Err(Error::invalid("`webhook_ids` names at most 100 webhooks"))
            }
            Some(ids) => {
                let mut out = vec![];
                for id in ids {
                    let w = self.webhook(caller, id).await?;
                    w.may_send().map_err(|why| {
                        Error::invalid(format!(
                            "{why}; send_event delivers to enabled outbound webhooks (enable one with update_webhook)"
                        ))
                    })?;
                    out.push(w);
                }
                out
            }
            None => {
                self.store
                    .list_webhooks(WebhookFilter {
                        direction: Some(crate::model::Direction::Outbound),
                        enabled: Some(true),
                        owner: caller.only().cloned(),
                    })
                    .await?
            }
        };
        let now = now_millis();
        // What an outbound webhook's content filter sees: the event as its body carries it.
        let content = targets
            .iter()
            .any(|w| w.filter.is_some())
            .then(|| serde_json::json!({ "event": req.event, "data": req.data }));
        let subject = content.as_ref().map(|payload| crate::model::Subject {
            payload,
            headers: None,
        });
        let mut filtered = vec![];
        let items: Vec<Outgoing> = targets
            .iter()
            .filter(|w| w.may_send().is_ok() && w.accepts_event(&req.event))
            .filter(|w| match subject {
                Some(s) if !w.passes(s) => {
                    filtered.push(w.id.clone());
                    false
                }
                _ => true,
            })
            .map(|w| {
                let msg_id = MessageId::generate();
                let body = dispatcher::message_body(w, &msg_id, &req.event, &req.data, now);
                outgoing(w, msg_id, &req.event, body, None)
            })
            .collect();
        let queued: Vec<Queued> = items
            .iter()
            .map(|o| Queued {
                webhook_id: o.message.webhook_id.clone(),
                message_id: o.message.id.clone(),
                delivery_id: o.first.id.clone(),
            })
            .collect();
        self.count_filtered("send", filtered.len());
        let sent = Sent {
            event: req.event,
            queued,
            filtered,
            replayed: false,
        };
        if let Some(key) = &req.idempotency_key {
            let record = serde_json::to_string(&sent)
                .map_err(|e| Error::Internal(format!("cannot record the result: {e}")))?;
            let fresh_after = now - crate::store::IDEMPOTENCY_WINDOW_MS;
            if let Some(first) = self
                .store
                .enqueue_idempotent(key, record, items, now, fresh_after)
                .await?
            {
                let mut first: Sent = serde_json::from_str(&first)
                    .map_err(|e| Error::Internal(format!("a stored result is unreadable: {e}")))?;
                first.replayed = true;
                tracing::info!(event = %first.event, "send_event repeated with its idempotency key: nothing sent");
                return Ok(first);
            }
        } else if !items.is_empty() {
            self.store.enqueue(items).await?;
        }
        if !sent.queued.is_empty() {
            self.wake.notify_one();
        }
        tracing::info!(event = %sent.event, queued = sent.queued.len(), "event queued");
        Ok(sent)
    }

    /// The relayed copies of a verified event for its webhook's `forward_to` targets that are
    /// enabled and whose filters (event types, content) it passes: the verified payload
    /// re-serialised, re-signed per target at send time.
    pub(super) async fn relays(&self, inbound: &Webhook, e: &crate::model::Event) -> Vec<Outgoing> {
        let (event, payload, event_id) = (&e.event, &e.payload, &e.id);
        let mut out = vec![];
        let mut filtered = 0;
        for id in &inbound.forward_to {
            match self.store.get_webhook(id).await {
                Ok(Some(w)) if w.may_send().is_ok() && w.accepts_event(event) => {
                    if !w.passes(e.subject()) {
                        filtered += 1;
                        continue;
                    }
                    let msg_id = MessageId::generate();
                    let body = if dispatcher::is_slack(&w.target_url) {
                        let data = payload.get("data").unwrap_or(payload);
                        dispatcher::message_body(&w, &msg_id, event, data, now_millis())
                    } else {
                        // The relay passes on what the provider sent (written as JavaScript
                        // writes it); the target's own secret signs it at send time.
                        dispatcher::js_json::to_string(payload)
                    };
                    out.push(outgoing(&w, msg_id, event, body, Some(event_id.clone())));
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "could not load a forward target"),
            }
        }
        self.count_filtered("relay", filtered);
        out
    }

    /// Counts events an outbound webhook's content filter kept from it (`send` or `relay`):
    /// they leave no delivery-log row, so this is where they show.
    fn count_filtered(&self, path: &'static str, n: usize) {
        if n > 0 {
            self.metrics
                .events_filtered
                .get_or_create(&super::metrics::Path { path })
                .inc_by(n as u64);
        }
    }

    pub async fn redeliver(&self, caller: &Caller, req: Redeliver) -> Result<Redelivered> {
        match (&req.delivery_id, &req.webhook_id) {
            (Some(id), None) => self.redeliver_one(caller, id).await,
            (None, Some(webhook_id)) => self.redeliver_window(caller, webhook_id, &req).await,
            _ => Err(Error::invalid(
                "give either `delivery_id` (one delivery) or `webhook_id` with `since` (bulk recovery)",
            )),
        }
    }

    async fn redeliver_one(
        &self,
        caller: &Caller,
        delivery_id: &DeliveryId,
    ) -> Result<Redelivered> {
        let d = self.delivery(caller, delivery_id).await?;
        let crate::model::Delivery::Attempt(prev) = d else {
            return Err(Error::invalid(
                "only outbound deliveries can be redelivered; inbound requests come from the provider (ask it to resend)",
            ));
        };
        let webhook = self.webhook(caller, &prev.webhook_id).await?;
        webhook.may_send().map_err(|why| {
            Error::invalid(format!(
                "{why}; enable it with update_webhook before redelivering"
            ))
        })?;
        let state = self.store.message_state(&prev.message_id).await?;
        if state.pending {
            return Err(Error::invalid("this message already has an attempt pending; wait for it or check query_deliveries"));
        }
        if prev.trigger == Trigger::Test {
            return Err(Error::invalid(
                "test deliveries are not queued; run test_webhook again",
            ));
        }
        let number = state.last_attempt + 1;
        let attempt = manual_attempt(&prev, &webhook, number);
        let (delivery_id, message_id) = (attempt.id.clone(), attempt.message_id.clone());
        self.store.enqueue_attempts(vec![attempt]).await?;
        self.wake.notify_one();
        Ok(Redelivered::One {
            delivery_id,
            message_id,
            attempt: number,
        })
    }

    async fn redeliver_window(
        &self,
        caller: &Caller,
        webhook_id: &WebhookId,
        req: &Redeliver,
    ) -> Result<Redelivered> {
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
        let webhook = self.webhook(caller, webhook_id).await?;
        webhook.may_send().map_err(|why| {
            Error::invalid(format!(
                "{why}; it must be an enabled outbound webhook to redeliver to it"
            ))
        })?;
        let failed = self.store.finally_failed(webhook_id, since, until).await?;
        let attempts: Vec<Attempt> = failed
            .iter()
            .filter(|a| a.status == DeliveryStatus::Failed)
            .map(|a| manual_attempt(a, &webhook, a.number + 1))
            .collect();
        let queued = attempts.len();
        if queued > 0 {
            self.store.enqueue_attempts(attempts).await?;
            self.wake.notify_one();
        }
        Ok(Redelivered::Window {
            webhook_id: webhook_id.clone(),
            queued,
        })
    }
}

fn manual_attempt(prev: &Attempt, webhook: &Webhook, number: i64) -> Attempt {
    prev.follow_up(
        Trigger::Manual,
        number,
        webhook.target_url.clone(),
        now_millis(),
    )
}
