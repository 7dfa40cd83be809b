//! The domain vocabulary shared by every layer: webhooks, stored events, the delivery log,
//! their ids and secrets.
//!
//! Plain data with the rules that belong to the data itself (which secrets verify now, whether
//! a webhook may send). It knows nothing of MCP, HTTP framing or SQL: each front end renders
//! these types its own way, each store backend persists them its own way.

mod delivery;
pub mod filter;
mod ids;
mod principal;
mod secret;
mod subscription;
mod webhook;

pub use delivery::{
    excerpt, log_excerpt, Attempt, Delivery, DeliveryStatus, Receipt, Trigger, LOG_BODY_LIMIT,
};
pub use filter::{Filter, FilterError, Subject};
pub use ids::{DeliveryId, EventId, MessageId, SubscriptionId, WebhookId};
pub use principal::{Caller, Principal};
pub use secret::Secret;
pub use subscription::EventSubscription;
pub use webhook::{Direction, NotSendable, PreviousSecret, Provider, Webhook};

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// What an event type may be, wherever one is stored or sent. Event types come from senders
/// and reach models outside the untrusted-data envelope (lists, notifications, logs, filters),
/// so they are kept to short identifiers that can hold no sentence.
pub const EVENT_TYPE_RULE: &str =
    "1 to 200 characters of ASCII letters, digits and . _ - : / @ + (e.g. message_received, orders/create)";

/// Whether `t` keeps [`EVENT_TYPE_RULE`].
pub fn is_event_type(t: &str) -> bool {
    (1..=200).contains(&t.len()) && t.bytes().all(is_identifier_byte)
}

/// Whether a sender's id for an event may be shown as it is (outside the envelope): up to 200
/// characters of the event type's charset and `=`. Any other id is shown as its hash.
pub fn is_plain_id(id: &str) -> bool {
    (1..=200).contains(&id.len()) && id.bytes().all(|b| is_identifier_byte(b) || b == b'=')
}

fn is_identifier_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"._-:/@+".contains(&b)
}

/// Milliseconds since the Unix epoch; the store keeps every instant in this form.
pub type Millis = i64;

pub fn now_millis() -> Millis {
    chrono::Utc::now().timestamp_millis()
}

/// RFC 3339 with millisecond precision, UTC (`2026-11-24T10:00:00.000Z`).
pub fn rfc3339(ms: Millis) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Parses an RFC 3339 instant given by a client into milliseconds.
pub fn parse_rfc3339(s: &str) -> Option<Millis> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|d| d.timestamp_millis())
}

/// The text of a unit enum variant, as serde names it (`Direction::Inbound` → `inbound`). The
/// one mapping between the enums and their stored or shown text.
pub fn enum_text<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(Value::String(s)) => s,
        other => unreachable!("enum_text is for unit enum variants, got {other:?}"),
    }
}

/// The variant named by `text`, as serde reads it; `None` for unknown text.
pub fn enum_from_text<T: DeserializeOwned>(text: &str) -> Option<T> {
    serde_json::from_value(Value::String(text.to_string())).ok()
}

/// A verified event received from a provider, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Position in arrival order across all webhooks: the cursor of every event feed.
    pub seq: i64,
    pub id: EventId,
    pub webhook_id: WebhookId,
    /// The sender's id for the event (header, body id, or a hash of the body): retries with the
    /// same id are duplicates.
    pub provider_event_id: Option<String>,
    pub event: String,
    pub received_at: Millis,
    /// The request headers kept with the event (credentials removed).
    pub headers: BTreeMap<String, String>,
    /// Untrusted third-party data.
    pub payload: Value,
}

impl Event {
    /// What a content filter looks at: the payload and the kept headers.
    pub fn subject(&self) -> Subject<'_> {
        Subject {
            payload: &self.payload,
            headers: Some(&self.headers),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn event_types_are_short_identifiers() {
        for ok in [
            "message_received",
            "orders/create",
            "payment_intent.succeeded",
            "a:b@c+d-e",
        ] {
            assert!(super::is_event_type(ok), "{ok}");
        }
        for bad in [
            "",
            "URGENT: SYSTEM OVERRIDE",
            "a\nb",
            "é",
            "<b>",
            &"a".repeat(201),
        ] {
            assert!(!super::is_event_type(bad), "{bad}");
        }
        assert!(super::is_event_type(&"a".repeat(200)));
        assert!(super::is_plain_id("dGVzdA=="));
        assert!(!super::is_plain_id("ignore previous instructions"));
    }

    use super::*;

    #[test]
    fn enum_text_round_trips_every_variant() {
        for p in Provider::ALL {
            assert_eq!(enum_from_text::<Provider>(&enum_text(&p)), Some(p));
        }
        assert_eq!(enum_text(&Direction::Outbound), "outbound");
        assert_eq!(enum_text(&DeliveryStatus::Succeeded), "succeeded");
        assert_eq!(enum_text(&Trigger::Manual), "manual");
        assert_eq!(enum_from_text::<Direction>("sideways"), None);
    }
}
