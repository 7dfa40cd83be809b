//! Pushing "a new event was stored" to sessions, in both protocol eras.
//!
//! Legacy sessions (protocol <= 2025-11-25): `resources/subscribe` adds URIs to the session's
//! set, and one pump task per session turns bus notices into `resources/updated` for subscribed
//! URIs plus `resources/list_changed`. The pump ends when the session's transport closes.
//!
//! 2026-07-28 sessions: each `subscriptions/listen` request runs `listen`, which forwards bus
//! notices through the request's sink, limited to the filter the client asked for.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::model::ResourceUpdatedNotificationParam;
use rmcp::service::{Peer, SubscriptionContext, SubscriptionSendError};
use rmcp::RoleServer;
use tokio::sync::broadcast::error::RecvError;

use super::resources::{inbox_uri, EVENTS};
use crate::service::{EventNotice, Service};

/// How often an idle pump checks whether its session is gone.
const CLOSED_CHECK: Duration = Duration::from_secs(15);

/// One legacy session's subscribed URIs and whether its pump runs.
#[derive(Clone, Default)]
pub struct SessionSubscriptions {
    uris: Arc<Mutex<HashSet<String>>>,
    pumping: Arc<AtomicBool>,
}

impl SessionSubscriptions {
    pub fn add(&self, svc: &Arc<Service>, uri: String, peer: Peer<RoleServer>) {
        self.lock().insert(uri);
        self.start(svc, peer);
    }

    pub fn remove(&self, uri: &str) {
        self.lock().remove(uri);
    }

    /// Starts the session's pump once.
    pub fn start(&self, svc: &Arc<Service>, peer: Peer<RoleServer>) {
        if self.pumping.swap(true, Ordering::SeqCst) {
            return;
        }
        let bus = svc.subscribe_events();
        let this = self.clone();
        tokio::spawn(async move { this.pump(bus, peer).await });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.uris.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn pump(
        self,
        mut bus: tokio::sync::broadcast::Receiver<EventNotice>,
        peer: Peer<RoleServer>,
    ) {
        loop {
            let targets: Vec<String> = match tokio::time::timeout(CLOSED_CHECK, bus.recv()).await {
                Err(_) if peer.is_transport_closed() => break,
                Err(_) => continue,
                Ok(Ok(n)) => {
                    let subscribed = self.lock();
                    [EVENTS.to_string(), inbox_uri(&n.webhook_id)]
                        .into_iter()
                        .filter(|u| subscribed.contains(u))
                        .collect()
                }
                // Missed notices (this session reads slower than events arrive): one update per
                // subscribed URI covers them all, since clients re-read the resource.
                Ok(Err(RecvError::Lagged(missed))) => {
                    tracing::warn!(
                        missed,
                        "slow MCP session: coalesced notifications it could not keep up with"
                    );
                    self.lock().iter().cloned().collect()
                }
                Ok(Err(RecvError::Closed)) => break,
            };
            let mut sent = Ok(());
            for uri in targets {
                sent = sent.and(
                    peer.notify_resource_updated(ResourceUpdatedNotificationParam::new(uri))
                        .await,
                );
            }
            if sent.and(peer.notify_resource_list_changed().await).is_err() {
                break;
            }
        }
        self.pumping.store(false, Ordering::SeqCst);
        tracing::debug!("legacy subscription pump ended: session closed");
    }
}

/// Serves one `subscriptions/listen` request until the client cancels it or the session ends.
pub async fn listen(svc: &Service, ctx: SubscriptionContext) {
    let mut bus = svc.subscribe_events();
    let sink = ctx.sink().clone();
    let wants = |uri: &str| {
        ctx.accepted()
            .resource_subscriptions
            .as_ref()
            .is_some_and(|u| u.iter().any(|x| x == uri))
    };
    let list_changed = ctx.accepted().resources_list_changed == Some(true);
    loop {
        let notice = tokio::select! {
            _ = ctx.cancelled() => break,
            n = bus.recv() => n,
        };
        let targets: Vec<String> = match notice {
            Ok(n) => [EVENTS.to_string(), inbox_uri(&n.webhook_id)]
                .into_iter()
                .filter(|u| wants(u))
                .collect(),
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(
                    missed,
                    "slow MCP subscriber: coalesced notifications it could not keep up with"
                );
                ctx.accepted()
                    .resource_subscriptions
                    .clone()
                    .unwrap_or_default()
            }
            Err(RecvError::Closed) => break,
        };
        for uri in targets {
            if !keep_going(sink.notify_resource_updated(uri).await) {
                return;
            }
        }
        if list_changed && !keep_going(sink.notify_resource_list_changed().await) {
            return;
        }
    }
}

/// A refused notification is the filter at work; a closed subscription or transport ends it.
fn keep_going(sent: Result<(), SubscriptionSendError>) -> bool {
    match sent {
        Ok(()) | Err(SubscriptionSendError::NotificationNotAccepted(_)) => true,
        Err(e) => {
            tracing::debug!(error = %e, "subscription ended");
            false
        }
    }
}
