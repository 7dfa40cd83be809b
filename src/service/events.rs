//! Inbound events: the receive pipeline (verify, de-duplicate, commit, announce), and reading
//! events back (list, get, wait).

use std::collections::BTreeMap;
use std::time::Duration;

use axum::http::HeaderMap;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::sync::broadcast::error::RecvError;

use super::{EventNotice, Service, Stats};
use crate::error::{Error, Result};
use crate::model::{
    log_excerpt, now_millis, receive_url, Delivery, DeliveryStatus, Direction, Event, Provider,
    Trigger,
};
use crate::signing;
use crate::store::{EventQuery, InsertOutcome, Message};

/// Where a verified request goes next.
enum Step {
    /// Store the event and queue its relayed copies; then give the answer.
    Store(Box<Event>, Vec<(Message, Delivery)>, ReceiveOutcome),
    /// Acknowledge without storing (filtered out, or a provider handshake).
    Ack(ReceiveOutcome),
}

/// What the receiver answers: a status and a JSON body.
#[derive(Debug)]
pub struct ReceiveOutcome {
    pub status: u16,
    pub body: Value,
}

impl ReceiveOutcome {
    fn rejected(status: u16, error: &str) -> Self {
        ReceiveOutcome {
            status,
            body: json!({ "received": false, "error": error }),
        }
    }
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListEvents {
    /// Only events received by this inbound webhook.
    #[serde(default)]
    pub webhook_id: Option<String>,
    /// Only events of this type (e.g. `message_received`).
    #[serde(default)]
    pub event: Option<String>,
    /// Cursor: only events after this `seq` (pass the previous answer's `next_cursor`).
    #[serde(default)]
    pub after: Option<i64>,
    /// At most this many events (default 20, at most 200).
    #[serde(default)]
    pub limit: Option<usize>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitForEvents {
    /// Only events received by this inbound webhook.
    #[serde(default)]
    pub webhook_id: Option<String>,
    /// Only events of this type.
    #[serde(default)]
    pub event: Option<String>,
    /// Cursor: return events after this `seq`. Leave out to wait for events that arrive from
    /// now on; pass the previous answer's `next_cursor` to miss nothing between calls.
    #[serde(default)]
    pub after: Option<i64>,
    /// How long to wait, in milliseconds (default 30000, at most 60000).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

const MAX_WAIT_MS: u64 = 60_000;
const MAX_LIST: usize = 200;

/// Headers a sender sends that hold credentials or signatures: not kept with the event.
const HIDDEN_HEADERS: &[&str] = &["authorization", "cookie", "proxy-authorization"];

impl Service {
    /// The receiver's pipeline for `POST /hooks/{webhook_id}`, after the body was read within
    /// the size limit. Every outcome is written to the delivery log.
    pub async fn receive(
        &self,
        webhook_id: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> ReceiveOutcome {
        let mut receipt = self.receipt(webhook_id, headers, Some(body));
        let outcome = self
            .receive_inner(webhook_id, headers, body, &mut receipt)
            .await;
        match outcome {
            Ok(Step::Store(event, forwards, outcome)) => {
                let relayed = !forwards.is_empty();
                match self
                    .store
                    .insert_event((*event).clone(), raw_text(body), receipt, forwards)
                    .await
                {
                    Ok(InsertOutcome::Stored(seq)) => {
                        Stats::add(&self.stats.events_stored, 1);
                        if relayed {
                            // Relayed copies were queued: the delivery worker has work now.
                            self.wake.notify_one();
                        }
                        tracing::info!(webhook_id, event_id = %event.id, event = %event.event, seq, "event received");
                        self.publish(EventNotice {
                            seq,
                            id: event.id.clone(),
                            webhook_id: event.webhook_id.clone(),
                            event: event.event.clone(),
                        });
                        outcome
                    }
                    Ok(InsertOutcome::Duplicate(existing)) => {
                        Stats::add(&self.stats.duplicates, 1);
                        tracing::info!(webhook_id, event_id = %existing, "duplicate delivery acknowledged");
                        ReceiveOutcome {
                            status: 200,
                            body: json!({ "received": true, "duplicate": true, "event_id": existing }),
                        }
                    }
                    Err(e) => {
                        Stats::add(&self.stats.store_failures, 1);
                        // Not acknowledged: 503 tells the sender to retry, so nothing is lost.
                        tracing::error!(webhook_id, error = %e, "could not store event (disk full or store read-only?); answered 503");
                        ReceiveOutcome::rejected(503, "the event could not be stored; retry later")
                    }
                }
            }
            Ok(Step::Ack(answer)) => {
                if let Err(e) = self.store.insert_delivery(receipt).await {
                    tracing::error!(error = %e, "could not log a request");
                }
                answer
            }
            Err(rejection) => {
                Stats::add(&self.stats.rejected, 1);
                receipt.status = DeliveryStatus::Failed;
                receipt.status_code = Some(rejection.status as i64);
                receipt.error = Some(
                    rejection.body["error"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                );
                tracing::warn!(webhook_id, status = rejection.status, reason = ?receipt.error, "inbound request rejected");
                if let Err(e) = self.store.insert_delivery(receipt).await {
                    tracing::error!(error = %e, "could not log a rejected request");
                }
                rejection
            }
        }
    }

    /// Logs a request refused before its body was read (too large).
    pub async fn reject_oversize(&self, webhook_id: &str, headers: &HeaderMap) -> ReceiveOutcome {
        let limit = self.settings.max_body_bytes;
        let mut receipt = self.receipt(webhook_id, headers, None);
        let error = format!("body larger than the {limit}-byte limit");
        receipt.status = DeliveryStatus::Failed;
        receipt.status_code = Some(413);
        receipt.error = Some(error.clone());
        Stats::add(&self.stats.rejected, 1);
        tracing::warn!(webhook_id, limit, "inbound request rejected: too large");
        if let Err(e) = self.store.insert_delivery(receipt).await {
            tracing::error!(error = %e, "could not log a rejected request");
        }
        ReceiveOutcome::rejected(413, &error)
    }

    fn receipt(&self, webhook_id: &str, headers: &HeaderMap, body: Option<&[u8]>) -> Delivery {
        // The id comes from the URL: keep the log readable even when it is garbage.
        let webhook_id: String = webhook_id.chars().take(100).collect();
        let mut d = Delivery::new(
            &webhook_id,
            Direction::Inbound,
            Trigger::Scheduled,
            &receive_url(&self.settings.public_url, &webhook_id),
        );
        d.request_headers = kept_headers(headers);
        d.request_body = body.map(log_excerpt);
        d
    }

    /// Verifies and parses; `Ok(Some)` is an event to store with the answer to give once it is
    /// stored, `Ok(None)` an acknowledged request that is not stored (filtered out),
    /// `Err` a rejection.
    async fn receive_inner(
        &self,
        webhook_id: &str,
        headers: &HeaderMap,
        body: &[u8],
        receipt: &mut Delivery,
    ) -> Result<Step, ReceiveOutcome> {
        let webhook = match self.store.get_webhook(webhook_id).await {
            Ok(Some(w)) if w.direction == Direction::Inbound && w.enabled => w,
            Ok(found) => {
                let why = match found {
                    None => "unknown webhook id",
                    Some(w) if w.direction == Direction::Outbound => {
                        "webhook is outbound, not inbound"
                    }
                    Some(_) => "webhook is disabled",
                };
                // Ids are random UUIDs, so saying why does not help anyone probe; it does help
                // the person reading the sender's dashboard.
                return Err(ReceiveOutcome::rejected(
                    404,
                    &format!("no enabled inbound webhook at this URL ({why})"),
                ));
            }
            Err(e) => {
                tracing::error!(error = %e, "store unavailable");
                return Err(ReceiveOutcome::rejected(
                    500,
                    "store unavailable; retry later",
                ));
            }
        };
        let now = now_millis();
        let parsed: Result<Value, _> = serde_json::from_slice(body);
        // Diagnostics for the log: which scheme, and whether the body parsed, never secrets.
        let context = format!(
            "[scheme: {}; body: {}]",
            webhook.provider.as_str(),
            if parsed.is_ok() {
                "valid JSON"
            } else {
                "not JSON"
            }
        );
        check_required_headers(&webhook, headers)
            .map_err(|r| ReceiveOutcome::rejected(401, &format!("{r} {context}")))?;
        let secrets = webhook.valid_secrets(now);
        let check = signing::Check {
            headers,
            body,
            secrets: &secrets,
            now: now / 1000,
            tolerance: self.settings.timestamp_tolerance,
        };
        let verified = signing::verify_inbound(webhook.provider, &check).map_err(|r| {
            ReceiveOutcome::rejected(401, &format!("signature rejected: {r} {context}"))
        })?;
        let payload: Value = parsed
            .map_err(|e| ReceiveOutcome::rejected(400, &format!("body is not valid JSON: {e}")))?;
        if webhook.provider == Provider::Slack && payload["type"] == "url_verification" {
            // Slack's one-time handshake when the URL is registered: echo the challenge.
            receipt.status = DeliveryStatus::Succeeded;
            receipt.status_code = Some(200);
            receipt.error = Some("slack url_verification handshake answered; not stored".into());
            return Ok(Step::Ack(ReceiveOutcome {
                status: 200,
                body: json!({ "challenge": payload["challenge"] }),
            }));
        }
        let event_type = verified
            .event_type
            .or_else(|| body_event_type(webhook.provider, &payload))
            .unwrap_or_else(|| "unknown".to_string());
        receipt.event = Some(event_type.clone());
        if !webhook.accepts_event(&event_type) {
            receipt.status = DeliveryStatus::Succeeded;
            receipt.status_code = Some(200);
            receipt.error = Some(format!(
                "filtered: event type {event_type:?} is not in this webhook's events filter; acknowledged, not stored"
            ));
            return Ok(Step::Ack(ReceiveOutcome {
                status: 200,
                body: json!({ "received": true, "stored": false, "reason": receipt.error }),
            }));
        }
        let provider_event_id = verified
            .provider_event_id
            .or_else(|| body_event_id(webhook.provider, &payload))
            // Senders without an id: an identical body is a retry of the same event.
            .unwrap_or_else(|| format!("sha256:{}", hex::encode(Sha256::digest(body))));
        let event = Event {
            seq: 0,
            id: uuid::Uuid::now_v7().to_string(),
            webhook_id: webhook.id.clone(),
            provider_event_id: Some(provider_event_id),
            event: event_type,
            received_at: now,
            headers: receipt.request_headers.clone(),
            payload,
        };
        receipt.event_id = Some(event.id.clone());
        receipt.status = DeliveryStatus::Succeeded;
        receipt.status_code = Some(200);
        let answer = ReceiveOutcome {
            status: 200,
            body: json!({ "received": true, "event_id": event.id, "delivery_id": receipt.id }),
        };
        let forwards = self
            .forwards(&webhook, &event.event, &event.payload, &event.id)
            .await;
        Ok(Step::Store(Box::new(event), forwards, answer))
    }

    pub async fn list_events(&self, req: ListEvents) -> Result<Value> {
        let limit = req.limit.unwrap_or(20).clamp(1, MAX_LIST);
        let events = self
            .store
            .list_events(EventQuery {
                webhook_id: req.webhook_id,
                event: req.event,
                after: req.after,
                limit,
                newest_first: false,
            })
            .await?;
        Ok(events_page(&events, req.after.unwrap_or(0)))
    }

    pub async fn get_event(&self, id: &str) -> Result<Value> {
        let event = self
            .store
            .get_event(id)
            .await?
            .ok_or_else(|| Error::event_not_found(id))?;
        Ok(event.to_json())
    }

    /// Returns matching events after the cursor as soon as one is stored, or an empty list at
    /// the timeout. Waits on the event bus, not by polling the store.
    pub async fn wait_for_events(&self, req: WaitForEvents) -> Result<Value> {
        let timeout = Duration::from_millis(req.timeout_ms.unwrap_or(30_000).min(MAX_WAIT_MS));
        // Subscribe before reading the cursor so no event can slip between the two.
        let mut bus = self.subscribe_events();
        let after = match req.after {
            Some(a) => a,
            None => self.store.max_event_seq().await?,
        };
        let query = EventQuery {
            webhook_id: req.webhook_id.clone(),
            event: req.event.clone(),
            after: Some(after),
            limit: 50,
            newest_first: false,
        };
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let events = self.store.list_events(query.clone()).await?;
            if !events.is_empty() {
                return Ok(events_page_full(&events, after));
            }
            // Sleep until a notice that matches the filter (or a lag, after which the store is
            // re-read), or until the deadline.
            loop {
                match tokio::time::timeout_at(deadline, bus.recv()).await {
                    Err(_) => {
                        let mut page = events_page_full(&[], after);
                        page["timed_out"] = json!(true);
                        return Ok(page);
                    }
                    Ok(Ok(n)) if n.seq > after && matches(&n, &req) => break,
                    Ok(Ok(_)) => continue,
                    Ok(Err(RecvError::Lagged(_))) => break,
                    Ok(Err(RecvError::Closed)) => {
                        return Err(Error::Unavailable("the server is shutting down".into()))
                    }
                }
            }
        }
    }
}

/// The event type a provider puts in the body (when no header carried it).
fn body_event_type(provider: Provider, payload: &Value) -> Option<String> {
    let text = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_string);
    match provider {
        // Events API: the envelope's type is event_callback; the event's own type says more.
        Provider::Slack => text(&payload["event"]["type"]).or_else(|| text(&payload["type"])),
        Provider::Stripe | Provider::Standard => {
            text(&payload["type"]).or_else(|| text(&payload["event"]))
        }
        _ => text(&payload["event"]).or_else(|| text(&payload["type"])),
    }
}

/// The sender's id for the event in the body, used to de-duplicate retries.
fn body_event_id(provider: Provider, payload: &Value) -> Option<String> {
    let field = match provider {
        Provider::Slack => &payload["event_id"],
        _ => &payload["id"],
    };
    match field {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// An inbound webhook may demand static header values (e.g. ConnectSafely's optional
/// `Authorization`) besides the signature. Compared in constant time.
fn check_required_headers(
    webhook: &crate::model::Webhook,
    headers: &HeaderMap,
) -> Result<(), String> {
    for (name, expected) in &webhook.headers {
        let got = headers
            .get(name.as_str())
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        if !signing::constant_time_eq(got, expected.as_bytes()) {
            return Err(format!(
                "required header {name} is missing or wrong (this webhook demands a fixed value for it)"
            ));
        }
    }
    Ok(())
}

fn matches(n: &EventNotice, req: &WaitForEvents) -> bool {
    req.webhook_id.as_ref().is_none_or(|w| *w == n.webhook_id)
        && req.event.as_ref().is_none_or(|e| *e == n.event)
}

/// A page of event summaries with its cursor.
fn events_page(events: &[Event], after: i64) -> Value {
    json!({
        "count": events.len(),
        "events": events.iter().map(Event::summary_json).collect::<Vec<_>>(),
        "next_cursor": events.last().map_or(after, |e| e.seq),
        "hint": "Read one with get_event or the resource_uri; pass next_cursor as `after` to continue.",
    })
}

/// A page of full events (payloads in their untrusted-data envelope) with its cursor.
fn events_page_full(events: &[Event], after: i64) -> Value {
    json!({
        "count": events.len(),
        "events": events.iter().map(Event::to_json).collect::<Vec<_>>(),
        "next_cursor": events.last().map_or(after, |e| e.seq),
    })
}

/// A stored body as text: it parsed as JSON, so it is UTF-8 (lossy only as a safety net).
fn raw_text(body: &[u8]) -> String {
    String::from_utf8_lossy(body).into_owned()
}

/// The request headers worth keeping, minus credentials; bounded in count and size.
fn kept_headers(headers: &HeaderMap) -> BTreeMap<String, String> {
    headers
        .iter()
        .filter(|(k, _)| !HIDDEN_HEADERS.contains(&k.as_str()))
        .take(64)
        .map(|(k, v)| {
            let v = String::from_utf8_lossy(v.as_bytes());
            (k.as_str().to_string(), v.chars().take(1024).collect())
        })
        .collect()
}
