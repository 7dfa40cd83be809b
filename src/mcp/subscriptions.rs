//! Pushing "a new event was stored" to sessions, in both protocol eras.
//!
//! Legacy sessions (protocol <= 2025-11-25): `resources/subscribe` adds URIs to the session's
//! set and starts the session's pump, which turns bus notices into `resources/updated` for
//! subscribed URIs. `resources/list_changed` follows the resource list itself, which changes
//! when an inbound webhook is created or deleted (its inbox appears or goes), not per event;
//! every initialized session has a small watcher for that. A session that subscribed to
//! nothing reads nothing per event: idle sessions cost nothing when events arrive.
//! Both tasks end when the session's transport closes.
//!
//! 2026-07-28 sessions: each `subscriptions/listen` request runs `listen`, which forwards bus
//! notices through the request's sink, limited to the filter the client asked for.
//!
//! A session hears only of its principal's webhooks (`Burst::visible_to`): another
//! principal's events never reach it, not even as a `resources/updated` of `webhook://events`.
//!
//! Both turn a burst into one round: after a notice, every notice already waiting is taken
//! too, and each URI is announced once for all of them. An idle session still hears about each
//! event at once; a busy one gets fewer, equally current notifications (`resources/updated`
//! means "re-read", so one per URI covers the burst). Each session reads the bus through its
//! own bounded buffer; a session too slow even for that misses notices, which are counted
//! (`notifications_dropped` at `/healthz`) and folded into one catch-up round.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::model::ResourceUpdatedNotificationParam;
use rmcp::service::{Peer, SubscriptionContext, SubscriptionSendError};
use rmcp::RoleServer;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use super::resources::{inbox_uri, EVENTS};
use crate::model::{Caller, WebhookId};
use crate::service::{EventNotice, Service, Stats};

/// How long a list watcher waits after a webhook change for more before telling the session.
const LIST_DEBOUNCE: Duration = Duration::from_millis(50);
/// How often an idle pump checks whether its session is gone.
const CLOSED_CHECK: Duration = Duration::from_secs(15);

/// One legacy session's subscribed URIs and whether its pump runs.
#[derive(Clone, Default)]
pub struct SessionSubscriptions {
    uris: Arc<Mutex<HashSet<String>>>,
    pumping: Arc<AtomicBool>,
}

// (The pump's caller is the one of the session's first subscribe: a session is one principal's.)

/// How many URIs one legacy session may subscribe to: a session cannot grow the server's
/// memory without bound.
pub const MAX_PER_SESSION: usize = 64;

impl SessionSubscriptions {
    /// Subscribes the session to `uri`; `false` when it already holds [`MAX_PER_SESSION`]
    /// others.
    pub fn add(
        &self,
        svc: &Arc<Service>,
        caller: Caller,
        uri: String,
        peer: Peer<RoleServer>,
    ) -> bool {
        {
            let mut uris = self.lock();
            if uris.len() >= MAX_PER_SESSION && !uris.contains(&uri) {
                return false;
            }
            uris.insert(uri);
        }
        self.start(svc, caller, peer);
        true
    }

    pub fn remove(&self, uri: &str) {
        self.lock().remove(uri);
    }

    /// Starts the session's event pump once (at its first subscription).
    fn start(&self, svc: &Arc<Service>, caller: Caller, peer: Peer<RoleServer>) {
        if self.pumping.swap(true, Ordering::SeqCst) {
            return;
        }
        let bus = svc.subscribe_events();
        let (this, svc) = (self.clone(), svc.clone());
        tokio::spawn(async move { this.pump(svc, caller, bus, peer).await });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.uris.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn pump(
        self,
        svc: Arc<Service>,
        caller: Caller,
        mut bus: tokio::sync::broadcast::Receiver<EventNotice>,
        peer: Peer<RoleServer>,
    ) {
        loop {
            let first = match tokio::time::timeout(CLOSED_CHECK, bus.recv()).await {
                Err(_) if peer.is_transport_closed() => break,
                Err(_) => continue,
                Ok(Err(RecvError::Closed)) => break,
                Ok(first) => first,
            };
            let Some(mut burst) = Burst::take(&svc, first, &mut bus) else {
                break;
            };
            burst.visible_to(&svc, &caller).await;
            let subscribed: Vec<String> = self.lock().iter().cloned().collect();
            let mut sent = Ok(());
            for uri in burst.uris(&subscribed) {
                sent = sent.and(
                    peer.notify_resource_updated(ResourceUpdatedNotificationParam::new(uri))
                        .await,
                );
            }
            if sent.is_err() {
                break;
            }
        }
        self.pumping.store(false, Ordering::SeqCst);
        tracing::debug!("legacy subscription pump ended: session closed");
    }
}

/// Counts a session open while it lives.
struct SessionGauge(Arc<Service>);

impl Drop for SessionGauge {
    fn drop(&mut self) {
        self.0.metrics().mcp_sessions.dec();
    }
}

/// Tells a legacy session `resources/list_changed` whenever webhooks change (an inbox
/// appears or goes), until the session closes.
pub fn watch_list(svc: &Arc<Service>, peer: Peer<RoleServer>) {
    let mut changes = svc.subscribe_webhook_changes();
    // The watcher lives as long as the session: it counts it for the metrics.
    let svc = svc.clone();
    svc.metrics().mcp_sessions.inc();
    tokio::spawn(async move {
        let _open = SessionGauge(svc.clone());
        loop {
            match tokio::time::timeout(CLOSED_CHECK, changes.changed()).await {
                Err(_) if peer.is_transport_closed() => break,
                Err(_) => continue,
                Ok(Err(_)) => break, // the service is shutting down
                Ok(Ok(())) => {}
            }
            // One notice for a burst of changes (a create is often followed by an edit).
            tokio::time::sleep(LIST_DEBOUNCE).await;
            changes.mark_unchanged();
            if peer.notify_resource_list_changed().await.is_err() {
                break;
            }
        }
    });
}

/// Serves one `subscriptions/listen` request until the client cancels it or the session ends.
pub async fn listen(svc: &Service, ctx: SubscriptionContext) {
    let caller = super::caller(ctx.request_context());
    let mut bus = svc.subscribe_events();
    let sink = ctx.sink().clone();
    // Exactly the URIs the client asked for and the server accepted.
    let subscribed = ctx
        .accepted()
        .resource_subscriptions
        .clone()
        .unwrap_or_default();
    let list_changed = ctx.accepted().resources_list_changed == Some(true);
    let mut webhook_changes = svc.subscribe_webhook_changes();
    loop {
        let notice = tokio::select! {
            _ = ctx.cancelled() => break,
            n = bus.recv() => n,
            Ok(()) = webhook_changes.changed(), if list_changed => {
                webhook_changes.mark_unchanged();
                if !keep_going(sink.notify_resource_list_changed().await) {
                    return;
                }
                continue;
            }
        };
        let Some(mut burst) = Burst::take(svc, notice, &mut bus) else {
            break;
        };
        burst.visible_to(svc, &caller).await;
        let targets = burst.uris(&subscribed);
        for uri in targets {
            if !keep_going(sink.notify_resource_updated(uri).await) {
                return;
            }
        }
    }
}

/// Notices taken from the bus in one go: a first one and all that were already waiting.
struct Burst {
    /// Webhooks that received events, each once.
    webhooks: HashSet<WebhookId>,
    /// Notices this session missed (its buffer overflowed): it must re-read everything.
    missed: u64,
}

impl Burst {
    /// `None` when the bus is closed (the server is shutting down).
    fn take(
        svc: &Service,
        first: Result<EventNotice, RecvError>,
        bus: &mut tokio::sync::broadcast::Receiver<EventNotice>,
    ) -> Option<Burst> {
        let mut burst = Burst {
            webhooks: HashSet::new(),
            missed: 0,
        };
        let mut next = first;
        loop {
            match next {
                Ok(n) => {
                    burst.webhooks.insert(n.webhook_id);
                }
                Err(RecvError::Lagged(missed)) => burst.missed += missed,
                Err(RecvError::Closed) => return None,
            }
            next = match bus.try_recv() {
                Ok(n) => Ok(n),
                Err(TryRecvError::Lagged(missed)) => Err(RecvError::Lagged(missed)),
                Err(TryRecvError::Empty | TryRecvError::Closed) => break,
            };
        }
        if burst.missed > 0 {
            Stats::add(&svc.stats().notifications_dropped, burst.missed);
            tracing::warn!(
                missed = burst.missed,
                "slow MCP session: dropped notifications it could not keep up with; sent one catch-up round"
            );
        }
        Some(burst)
    }

    /// Keeps only the webhooks whose events `caller` sees (cached lookups; a webhook whose
    /// owner cannot be read now is left out: a missed "re-read" beats a leaked one).
    async fn visible_to(&mut self, svc: &Service, caller: &Caller) {
        if caller.is_operator() {
            return;
        }
        let mut kept = HashSet::new();
        for id in self.webhooks.drain() {
            if svc.sees_history(caller, &id).await.unwrap_or(false) {
                kept.insert(id);
            }
        }
        self.webhooks = kept;
    }

    /// The URIs to announce, among those the session `subscribed` to. After missed notices
    /// that is all of them: which webhooks the missed events were for is unknown (a re-read
    /// shows only the session's own).
    fn uris(&self, subscribed: &[String]) -> Vec<String> {
        if self.missed > 0 {
            return subscribed.to_vec();
        }
        if self.webhooks.is_empty() {
            return vec![];
        }
        std::iter::once(EVENTS.to_string())
            .chain(self.webhooks.iter().map(inbox_uri))
            .filter(|u| subscribed.contains(u))
            .collect()
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
