//! Identifier newtypes: a webhook id cannot be passed where an event id is expected.
//!
//! Ids are not secret (they appear in URLs and logs), so they print as themselves. An id read
//! from a URL may be garbage; that is fine: it is only ever looked up, never trusted.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                $name(s)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                $name(s.to_string())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

id_type!(
    /// A webhook (UUID v4: unguessable, since an inbound webhook's id is in its receive URL).
    WebhookId
);
id_type!(
    /// A stored event (UUID v7: time-ordered).
    EventId
);
id_type!(
    /// A row of the delivery log: an inbound receipt or an outbound attempt (UUID v7).
    DeliveryId
);
id_type!(
    /// One event for one outbound webhook; every attempt to send it carries it as `webhook-id`
    /// (`msg_` + UUID v7), so receivers can de-duplicate retries.
    MessageId
);

id_type!(
    /// An MCP Events webhook subscription (`sub_` + 16 hex digits, derived from its key): not a
    /// webhook. The outbound engine delivers through a row of the same id
    /// (`delivery_row`), which no webhook tool, command or page can reach.
    SubscriptionId
);

impl SubscriptionId {
    /// The id of the outbound engine's row this subscription delivers through.
    pub fn delivery_row(&self) -> WebhookId {
        WebhookId(self.0.clone())
    }
}

impl WebhookId {
    pub fn generate() -> Self {
        WebhookId(uuid::Uuid::new_v4().to_string())
    }
}

impl EventId {
    pub fn generate() -> Self {
        EventId(uuid::Uuid::now_v7().to_string())
    }
}

impl DeliveryId {
    pub fn generate() -> Self {
        DeliveryId(uuid::Uuid::now_v7().to_string())
    }
}

impl MessageId {
    pub fn generate() -> Self {
        MessageId(format!("msg_{}", uuid::Uuid::now_v7().simple()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_serialise_as_plain_strings_and_print_as_themselves() {
        let id = WebhookId::from("w1");
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"w1\"");
        assert_eq!(id.to_string(), "w1");
        let back: EventId = serde_json::from_str("\"e1\"").unwrap();
        assert_eq!(back.as_str(), "e1");
        assert!(MessageId::generate().as_str().starts_with("msg_"));
        assert_ne!(DeliveryId::generate(), DeliveryId::generate());
    }
}
