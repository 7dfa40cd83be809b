//! The delivery log. Two kinds of row share it: a `Receipt` is a request the receiver got
//! (accepted, duplicate, filtered or rejected), an `Attempt` is one try at sending an outbound
//! message (queued, then sent, then finished). They are different things with different
//! fields; only the log lists them together.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{now_millis, DeliveryId, Direction, EventId, MessageId, Millis, WebhookId};

/// Why an outbound attempt exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    /// Queued by send_event or a relay, or a retry on the schedule.
    Scheduled,
    /// Queued by redeliver.
    Manual,
    /// Sent at once by test_webhook, outside the queue.
    Test,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    Pending,
    Succeeded,
    Failed,
}

/// A request the receiver got, and what became of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Receipt {
    /// Position in the log (0 until stored).
    pub seq: i64,
    pub id: DeliveryId,
    /// From the request's URL: may name no webhook at all.
    pub webhook_id: WebhookId,
    /// The stored event (or, for a duplicate, the event it repeats).
    pub event_id: Option<EventId>,
    pub event: Option<String>,
    /// The receive URL the request came to.
    pub url: String,
    /// `Succeeded` when acknowledged (stored, duplicate, filtered), `Failed` when refused.
    pub status: DeliveryStatus,
    /// What the receiver answered.
    pub status_code: Option<i64>,
    /// Why it was refused, or what happened besides storing (duplicate, filtered).
    pub error: Option<String>,
    pub request_headers: BTreeMap<String, String>,
    /// An excerpt of the body; none for a stored event, whose body the event itself keeps.
    pub request_body: Option<String>,
    pub created_at: Millis,
}

/// One try at sending an outbound message.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    /// Position in the log (0 until stored).
    pub seq: i64,
    pub id: DeliveryId,
    pub webhook_id: WebhookId,
    pub message_id: MessageId,
    /// The inbound event this relays, if it is a relay.
    pub event_id: Option<EventId>,
    pub event: String,
    pub trigger: Trigger,
    /// 1 for the first try of a message, then counting up.
    pub number: i64,
    pub url: String,
    pub status: DeliveryStatus,
    pub status_code: Option<i64>,
    pub duration_ms: Option<i64>,
    /// timeout, connection refused, HTTP 500, ...
    pub error: Option<String>,
    pub request_headers: BTreeMap<String, String>,
    pub request_body: Option<String>,
    pub response_headers: BTreeMap<String, String>,
    pub response_body: Option<String>,
    /// When queued; once sent, when sent.
    pub created_at: Millis,
    /// Pending: when it is due. Finished: when the retry it scheduled is due, if any.
    pub next_attempt_at: Option<Millis>,
}

impl Receipt {
    pub fn new(webhook_id: WebhookId, url: String) -> Receipt {
        Receipt {
            seq: 0,
            id: DeliveryId::generate(),
            webhook_id,
            event_id: None,
            event: None,
            url,
            status: DeliveryStatus::Pending,
            status_code: None,
            error: None,
            request_headers: BTreeMap::new(),
            request_body: None,
            created_at: now_millis(),
        }
    }
}

impl Attempt {
    /// A new pending attempt of `message_id`, due now.
    pub fn new(
        webhook_id: WebhookId,
        message_id: MessageId,
        event: String,
        trigger: Trigger,
        url: String,
    ) -> Attempt {
        let now = now_millis();
        Attempt {
            seq: 0,
            id: DeliveryId::generate(),
            webhook_id,
            message_id,
            event_id: None,
            event,
            trigger,
            number: 1,
            url,
            status: DeliveryStatus::Pending,
            status_code: None,
            duration_ms: None,
            error: None,
            request_headers: BTreeMap::new(),
            request_body: None,
            response_headers: BTreeMap::new(),
            response_body: None,
            created_at: now,
            next_attempt_at: Some(now),
        }
    }

    /// The next try of the same message, due at `due`, with nothing of this one's outcome.
    pub fn follow_up(&self, trigger: Trigger, number: i64, url: String, due: Millis) -> Attempt {
        let mut next = Attempt::new(
            self.webhook_id.clone(),
            self.message_id.clone(),
            self.event.clone(),
            trigger,
            url,
        );
        next.event_id = self.event_id.clone();
        next.number = number;
        next.next_attempt_at = Some(due);
        next
    }
}

/// One row of the delivery log, as read back.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    Receipt(Receipt),
    Attempt(Attempt),
}

impl Delivery {
    pub fn seq(&self) -> i64 {
        match self {
            Delivery::Receipt(r) => r.seq,
            Delivery::Attempt(a) => a.seq,
        }
    }

    pub fn id(&self) -> &DeliveryId {
        match self {
            Delivery::Receipt(r) => &r.id,
            Delivery::Attempt(a) => &a.id,
        }
    }

    pub fn webhook_id(&self) -> &WebhookId {
        match self {
            Delivery::Receipt(r) => &r.webhook_id,
            Delivery::Attempt(a) => &a.webhook_id,
        }
    }

    pub fn direction(&self) -> Direction {
        match self {
            Delivery::Receipt(_) => Direction::Inbound,
            Delivery::Attempt(_) => Direction::Outbound,
        }
    }

    pub fn status(&self) -> DeliveryStatus {
        match self {
            Delivery::Receipt(r) => r.status,
            Delivery::Attempt(a) => a.status,
        }
    }

    pub fn created_at(&self) -> Millis {
        match self {
            Delivery::Receipt(r) => r.created_at,
            Delivery::Attempt(a) => a.created_at,
        }
    }
}

/// Bodies and response excerpts kept in the log are cut to this many bytes.
pub const LOG_BODY_LIMIT: usize = 64 * 1024;

/// Cuts `bytes` to at most `LOG_BODY_LIMIT`: the body excerpts the log keeps.
pub fn log_excerpt(bytes: &[u8]) -> String {
    excerpt(bytes, LOG_BODY_LIMIT)
}

/// At most `max` bytes of `bytes` as text, cut on a character boundary and marked when cut.
/// Only the part kept is decoded: a megabyte body costs no more than its excerpt.
pub fn excerpt(bytes: &[u8], max: usize) -> String {
    if bytes.len() <= max {
        return String::from_utf8_lossy(bytes).into_owned();
    }
    let head = String::from_utf8_lossy(&bytes[..max]);
    // A character cut in two decodes as a replacement character: drop it.
    let head = head.trim_end_matches('\u{fffd}');
    format!("{head}…[truncated, {} bytes in all]", bytes.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpt_cuts_on_char_boundary() {
        let body = "é".repeat(LOG_BODY_LIMIT);
        let cut = log_excerpt(body.as_bytes());
        assert!(cut.contains("[truncated"));
        assert!(cut.len() < body.len());
        assert_eq!(log_excerpt(b"short"), "short");
        // Cut inside a two-byte character: no half character, no replacement character.
        let cut = excerpt("aé".as_bytes(), 2);
        assert_eq!(cut, "a…[truncated, 3 bytes in all]");
    }

    #[test]
    fn a_follow_up_keeps_the_message_and_drops_the_outcome() {
        let mut a = Attempt::new(
            "w".into(),
            MessageId::generate(),
            "e".into(),
            Trigger::Scheduled,
            "http://x".into(),
        );
        a.status = DeliveryStatus::Failed;
        a.error = Some("timeout".into());
        let next = a.follow_up(Trigger::Manual, 2, "http://y".into(), 5);
        assert_eq!(
            (&next.message_id, next.number, next.trigger),
            (&a.message_id, 2, Trigger::Manual)
        );
        assert_eq!(
            (next.status, next.error.as_deref(), next.next_attempt_at),
            (DeliveryStatus::Pending, None, Some(5))
        );
        assert_ne!(next.id, a.id);
    }
}
