//! Operational events: what happens to an agent's webhooks that it would otherwise only learn
//! by asking — an outbound webhook disabled by the delivery policy, a delivery that failed for
//! good, a rotated-out secret that stopped verifying — stored as events of the reserved
//! `webhook_mcp.*` types (in the catalogue), so they reach agents the way received events do:
//! resources, subscriptions, `wait_for_events`, `events/poll`. Each is filed under the webhook
//! it concerns, with a provider event id that makes a repeat a duplicate (stored once). No
//! request carried it, so it has no delivery-log row.

use std::sync::Arc;

use serde_json::json;
use tokio::sync::mpsc;

use super::Service;
use crate::dispatcher::worker::Operational;
use crate::model::{now_millis, Event, EventId, WebhookId};
use crate::store::Ingest;

pub const WEBHOOK_DISABLED: &str = "webhook_mcp.webhook.disabled";
pub const DELIVERY_FAILED: &str = "webhook_mcp.delivery.failed";
pub const SECRET_EXPIRED: &str = "webhook_mcp.secret.expired";
/// Reports waiting to be stored; beyond it they are dropped with a warning.
pub const QUEUE: usize = 1024;

impl Service {
    /// Stores each report as an operational event until the worker's sender is dropped.
    pub(super) async fn record_operational(self: Arc<Self>, mut rx: mpsc::Receiver<Operational>) {
        while let Some(op) = rx.recv().await {
            // An MCP Events subscription reports its health in `deliveryStatus` on refresh. An
            // event about its failures would also match a subscription to every event and be
            // sent to the failing endpoint: each failure would make another.
            let about = match &op {
                Operational::Disabled { attempt, .. } | Operational::FinallyFailed(attempt) => {
                    &attempt.webhook_id
                }
            };
            if crate::model::EventSubscription::is_subscription_id(about) {
                continue;
            }
            let (event, provider_id, payload, webhook_id) = match op {
                Operational::Disabled { attempt, reason } => (
                    WEBHOOK_DISABLED,
                    format!("disabled:{}", attempt.id),
                    json!({
                        "webhook_id": attempt.webhook_id,
                        "url": crate::dispatcher::slack::shown_url(&attempt.url),
                        "reason": reason,
                        "delivery_id": attempt.id,
                        "hint": "Fix the target, then update_webhook {enabled: true} and redeliver the failed messages.",
                    }),
                    attempt.webhook_id,
                ),
                Operational::FinallyFailed(attempt) => (
                    DELIVERY_FAILED,
                    format!("failed:{}", attempt.id),
                    json!({
                        "webhook_id": attempt.webhook_id,
                        "url": crate::dispatcher::slack::shown_url(&attempt.url),
                        "event": attempt.event,
                        "message_id": attempt.message_id,
                        "delivery_id": attempt.id,
                        "attempts": attempt.number,
                        "status_code": attempt.status_code,
                        "error": attempt.error,
                        "hint": "No retry follows. query_deliveries shows every attempt; redeliver sends it again.",
                    }),
                    attempt.webhook_id,
                ),
            };
            if let Err(e) = self
                .store_operational(event, provider_id, payload, webhook_id)
                .await
            {
                tracing::warn!(error = %e, event, "could not store an operational event");
            }
        }
    }

    /// Announces each previous secret whose rotation grace has ended, then forgets it (it no
    /// longer verifies anyway). Run by one process at a time (see `background`); a crash between
    /// the two steps repeats the announcement, which the provider event id makes a duplicate.
    pub(super) async fn announce_expired_secrets(&self) -> crate::error::Result<()> {
        for (webhook_id, expired_at) in self.store.expired_previous_secrets(now_millis()).await? {
            let payload = json!({
                "webhook_id": webhook_id,
                "expired_at": crate::model::rfc3339(expired_at),
                "hint": "The secret this webhook had before its last rotation no longer verifies: a sender still signing with it is now refused (401). Check query_deliveries {\"status\": \"failed\", \"direction\": \"inbound\"} for refusals.",
            });
            let provider_id = format!("secret-expired:{webhook_id}:{expired_at}");
            self.store_operational(SECRET_EXPIRED, provider_id, payload, webhook_id.clone())
                .await?;
            self.store
                .forget_previous_secret(&webhook_id, expired_at)
                .await?;
        }
        Ok(())
    }

    async fn store_operational(
        &self,
        event: &str,
        provider_id: String,
        payload: serde_json::Value,
        webhook_id: WebhookId,
    ) -> crate::error::Result<()> {
        let body = payload.to_string();
        let stored = Event {
            seq: 0,
            id: EventId::generate(),
            webhook_id,
            provider_event_id: Some(provider_id),
            event: event.to_string(),
            received_at: now_millis(),
            headers: Default::default(),
            payload,
        };
        let ingest = Ingest {
            event: stored,
            body,
            receipt: None,
            relays: vec![],
        };
        self.store.insert_event(ingest).await?;
        Ok(())
    }
}
