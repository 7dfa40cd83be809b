//! The domain vocabulary shared by every layer: webhooks, stored events, the delivery log,
//! their ids and secrets.
//!
//! Plain data with the rules that belong to the data itself (which secrets verify now, whether
//! a webhook may send). It knows nothing of MCP, HTTP framing or SQL: each front end renders
//! these types its own way, each store backend persists them its own way.

mod delivery;
mod ids;
mod secret;
mod subscription;
mod webhook;

pub use delivery::{
    excerpt, log_excerpt, Attempt, Delivery, DeliveryStatus, Receipt, Trigger, LOG_BODY_LIMIT,
};
pub use ids::{DeliveryId, EventId, MessageId, SubscriptionId, WebhookId};
pub use secret::Secret;
pub use subscription::EventSubscription;
pub use webhook::{Direction, NotSendable, PreviousSecret, Provider, Webhook};

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

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

#[cfg(test)]
mod tests {
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
