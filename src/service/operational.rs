//! Operational events: what happens to an agent's webhooks that it would otherwise only learn
//! by asking — an outbound webhook disabled by the delivery policy, a delivery that failed for
//! good — stored as events of the reserved `webhook_mcp.*` types (in the catalogue), so they
//! reach agents the way received events do: resources, subscriptions, `wait_for_events`,
//! `events/poll`. Each is filed under the outbound webhook it concerns. No request carried it,
//! so it has no delivery-log row.

use std::sync::Arc;

use serde_json::json;
use tokio::sync::mpsc;

use super::Service;
use crate::dispatcher::worker::Operational;
use crate::model::{Event, EventId};
use crate::store::Ingest;

pub const WEBHOOK_DISABLED: &str = "webhook_mcp.webhook.disabled";
pub const DELIVERY_FAILED: &str = "webhook_mcp.delivery.failed";
/// Reports waiting to be stored; beyond it they are dropped with a warning.
pub const QUEUE: usize = 1024;

impl Service {
    /// Stores each report as an operational event until the worker's sender is dropped.
    pub(super) async fn record_operational(self: Arc<Self>, mut rx: mpsc::Receiver<Operational>) {
        while let Some(op) = rx.recv().await {
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
            let body = payload.to_string();
            let stored = Event {
                seq: 0,
                id: EventId::generate(),
                webhook_id,
                provider_event_id: Some(provider_id),
                event: event.to_string(),
                received_at: crate::model::now_millis(),
                headers: Default::default(),
                payload,
            };
            let ingest = Ingest {
                event: stored,
                body,
                receipt: None,
                relays: vec![],
            };
            match self.store.insert_event(ingest).await {
                Ok(_) => self.feed_kick.notify_one(),
                Err(e) => tracing::warn!(error = %e, event, "could not store an operational event"),
            }
        }
    }
}
