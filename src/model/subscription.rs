//! An MCP Events webhook subscription (`events/subscribe`): who asked, for which event type and
//! filter, and how far its delivery has read. Its callback URL, secret and delivery health live
//! in an outbound webhook row with the same id, so the outbound engine delivers to it unchanged.

use super::{Millis, SubscriptionId, WebhookId};

#[derive(Debug, Clone, PartialEq)]
pub struct EventSubscription {
    /// `sub_` + 16 hex digits, derived from (principal, url, name, arguments): the same key
    /// always names the same subscription, across refreshes and restarts.
    pub id: SubscriptionId,
    /// Who subscribed (`bearer:<hash>` over HTTP, `local:<user>` on stdio).
    pub principal: String,
    /// The event type (`events/list` names them).
    pub name: String,
    /// The subscription's arguments as canonical JSON (keys sorted).
    pub arguments: String,
    /// The event `seq` read up to: every matching event at or below it has been queued.
    pub cursor: i64,
    /// Events received before this instant are skipped (`maxAgeMs` at subscribe time).
    pub not_before: Option<Millis>,
    /// When it lapses unless refreshed; `None`: never (the client asked for no expiry).
    pub expires_at: Option<Millis>,
    pub created_at: Millis,
    pub refreshed_at: Millis,
}

impl EventSubscription {
    /// The id for a key: a truncated SHA-256 over its parts, each length-prefixed so that no
    /// two keys share a serialisation.
    pub fn derive_id(principal: &str, url: &str, name: &str, arguments: &str) -> SubscriptionId {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for part in [principal, url, name, arguments] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part.as_bytes());
        }
        SubscriptionId::from(format!("sub_{}", &hex::encode(h.finalize())[..16]))
    }

    /// Whether `id` names a subscription rather than a webhook made with the webhook tools.
    pub fn is_subscription_id(id: &WebhookId) -> bool {
        id.as_str().starts_with("sub_")
    }

    pub fn live_at(&self, now: Millis) -> bool {
        self.expires_at.is_none_or(|at| at > now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_is_stable_and_separates_every_part() {
        let a = EventSubscription::derive_id("p", "https://x/h", "n", "{}");
        assert_eq!(
            a,
            EventSubscription::derive_id("p", "https://x/h", "n", "{}")
        );
        assert!(a.as_str().starts_with("sub_") && a.as_str().len() == 20);
        assert_ne!(
            a,
            EventSubscription::derive_id("q", "https://x/h", "n", "{}")
        );
        assert_ne!(
            EventSubscription::derive_id("ab", "c", "n", "{}"),
            EventSubscription::derive_id("a", "bc", "n", "{}")
        );
        assert!(EventSubscription::is_subscription_id(&a.delivery_row()));
    }
}
