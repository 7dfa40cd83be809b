//! The service API: every operation the product offers, as typed functions over domain types,
//! used alike by the MCP tools, the receiver and (later) the CLI and the dashboard.
//!
//! It owns the store (no front end touches it), the live-event bus, the outbound HTTP client
//! and the counters. It returns domain values (`WebhookView`, `EventPage`, `Delivery`,
//! `ReceiveOutcome`, ...); each front end renders them its own way (`mcp/render.rs`,
//! `receiver/`). The webhook protocol's status codes are part of the domain (a provider
//! retries on 5xx, not on 4xx), so `ReceiveOutcome` knows its status; HTTP framing does not live
//! here.

mod background;
mod deliveries;
mod events;
pub mod metrics;
mod operational;
mod outbound;
mod rejections;
mod retention;
mod setup;
mod subscriptions;
mod webhooks;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{broadcast, Notify};

use crate::dispatcher::policy::Policy;
use crate::dispatcher::worker::Worker;
use crate::dispatcher::Http;
use crate::model::WebhookId;
use crate::store::{InstanceId, SharedStore};

pub use crate::store::EventNotice;
pub use background::StoreHealth;
pub use deliveries::{DeliveryPage, QueryDeliveries, TestReport, TestWebhook};
pub use events::{EventPage, InboundRequest, ListEvents, ReceiveOutcome, Refusal, WaitForEvents};
pub use outbound::{Queued, Redeliver, Redelivered, SendEvent, Sent};
pub use retention::{parse_retention, PruneReport, Retention, DEFAULT_RETENTION};
pub use subscriptions::{
    occurrence, DeliveryHealth, EventBatch, EventFilter, Subscribe, SubscribeError, Subscribed,
    SubscriptionArgs, Ttl, ALL_EVENTS,
};
pub use webhooks::{
    CreateWebhook, Created, ListWebhooks, RotateSecret, Rotated, UpdateWebhook, WebhookView,
};

/// Counters since start-up, shown at the receiver's `/healthz`.
#[derive(Debug, Default)]
pub struct Stats {
    /// Events durably stored by the receiver.
    pub events_stored: AtomicU64,
    /// Requests acknowledged as repeats of a stored event.
    pub duplicates: AtomicU64,
    /// Requests refused (bad signature, unknown webhook, too large, not JSON, ...).
    pub rejected: AtomicU64,
    /// Refused requests beyond a source's budget: counted, neither logged nor kept in the
    /// delivery log (see `rejections`).
    pub rejections_suppressed: AtomicU64,
    /// Requests answered 503 because the store could not write (disk full, read-only).
    pub store_failures: AtomicU64,
    /// Event notices a slow MCP session missed: its buffer overflowed, so they were folded
    /// into one catch-up notification (the session re-reads the resource; nothing is lost
    /// from the store, but these individual notifications were dropped).
    pub notifications_dropped: AtomicU64,
}

/// The counters at one instant.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct StatsSnapshot {
    pub events_stored: u64,
    pub duplicates: u64,
    pub rejected: u64,
    pub rejections_suppressed: u64,
    pub store_failures: u64,
    pub notifications_dropped: u64,
}

impl Stats {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            events_stored: get(&self.events_stored),
            duplicates: get(&self.duplicates),
            rejected: get(&self.rejected),
            rejections_suppressed: get(&self.rejections_suppressed),
            store_failures: get(&self.store_failures),
            notifications_dropped: get(&self.notifications_dropped),
        }
    }
}

/// Run-time settings the service needs (a subset of the CLI configuration).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Base URL providers use to reach the receiver, without a trailing slash.
    pub public_url: String,
    /// Where the receiver actually listens; `None` with `--no-receiver`.
    pub receiver_addr: Option<SocketAddr>,
    pub delivery_timeout: Duration,
    pub max_body_bytes: usize,
    /// Requests the receiver serves at once; more are refused with 503 (load shedding).
    pub receiver_concurrency: usize,
    /// The longest a request to the receiver may take, body upload included (slow senders).
    pub receiver_timeout: Duration,
    /// SSRF guard off: outbound targets may be loopback or private addresses.
    pub allow_private_targets: bool,
    /// How far a signed timestamp may be from now, in seconds (replay protection).
    pub timestamp_tolerance: i64,
    /// How long history is kept (see `retention`).
    pub retention: Retention,
    /// Front ends offer only operations that read (`--read-only`).
    pub read_only: bool,
    /// MCP Events callbacks may be `http://` (`--dangerously-allow-http-callbacks`, for local
    /// development only: SEP-3415 requires https).
    pub http_callbacks: bool,
    /// The named-token principals (`token:`) this process accepts, to end the
    /// subscriptions of others: `None` when it serves no HTTP listener (it cannot judge them),
    /// empty when its listener takes no static token.
    pub token_principals: Option<Vec<String>>,
}

impl Default for Settings {
    /// For commands that use the store without serving (`prune`): the defaults of `serve`.
    fn default() -> Self {
        Settings {
            public_url: "http://127.0.0.1:8787".into(),
            receiver_addr: None,
            delivery_timeout: Duration::from_secs(15),
            max_body_bytes: 1024 * 1024,
            receiver_concurrency: 512,
            receiver_timeout: Duration::from_secs(30),
            allow_private_targets: false,
            timestamp_tolerance: 300,
            retention: Retention::default(),
            read_only: false,
            http_callbacks: false,
            token_principals: None,
        }
    }
}

/// How the delivery worker runs (see `dispatcher::worker`).
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    pub policy: Policy,
    pub concurrency: usize,
    pub lease: Duration,
    pub drain: Duration,
}

pub struct Service {
    store: SharedStore,
    settings: Settings,
    bus: broadcast::Sender<EventNotice>,
    /// Bumped when any process changed a webhook (the change feed): resource lists follow it.
    webhook_changes: tokio::sync::watch::Sender<u64>,
    /// For subscriber targets: SSRF-guarded, no redirects.
    http: Http,
    /// Wakes the delivery worker when attempts are queued.
    wake: Arc<Notify>,
    /// Wakes the MCP Events subscription pump: a subscription was made or reactivated.
    subscriptions_changed: Notify,
    /// The highest event `seq` the change feed has announced: "now" as a cursor, without a
    /// store read (a new MCP session starts its `wait_for_events` cursor here).
    announced: std::sync::atomic::AtomicI64,
    /// This process, as the owner of the leases it takes.
    instance: InstanceId,
    stats: Stats,
    metrics: Arc<metrics::Metrics>,
    rejections: rejections::RejectionLimiter,
}

impl Service {
    pub fn new(store: SharedStore, settings: Settings) -> Self {
        // Lagging subscribers re-read the store, so a modest buffer loses nothing.
        let (bus, _) = broadcast::channel(1024);
        let http = Http::new(settings.delivery_timeout, settings.allow_private_targets);
        Service {
            store,
            settings,
            bus,
            webhook_changes: tokio::sync::watch::Sender::new(0),
            http,
            wake: Arc::new(Notify::new()),
            subscriptions_changed: Notify::new(),
            announced: Default::default(),
            instance: InstanceId::generate(),
            stats: Stats::default(),
            metrics: Default::default(),
            rejections: Default::default(),
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn metrics(&self) -> &metrics::Metrics {
        &self.metrics
    }

    /// The Prometheus text: the queue gauges are read from the store now (true across
    /// processes), the rest are this process's counters.
    pub async fn metrics_text(&self) -> String {
        match self.store.queue_stats().await {
            Ok((depth, oldest)) => {
                self.metrics.queue_depth.set(depth as i64);
                let age = oldest.map_or(0.0, |t| {
                    ((crate::model::now_millis() - t).max(0) as f64) / 1000.0
                });
                self.metrics.oldest_pending_seconds.set(age);
            }
            Err(e) => tracing::warn!(error = %e, "metrics: could not read the queue"),
        }
        self.metrics.encode()
    }

    /// The delivery worker over this service's store and HTTP client; run it with
    /// `Worker::run`.
    pub fn worker(self: &Arc<Self>, ws: WorkerSettings) -> Worker {
        let (ops, reports) = tokio::sync::mpsc::channel(operational::QUEUE);
        tokio::spawn(self.clone().record_operational(reports));
        Worker {
            store: self.store.clone(),
            ops: Some(ops),
            metrics: Some(self.metrics.clone()),
            instance: self.instance.clone(),
            http: self.http.clone(),
            policy: ws.policy,
            subscription_policy: crate::dispatcher::policy::Policy::for_subscriptions(),
            wake: self.wake.clone(),
            concurrency: ws.concurrency.max(1),
            lease: ws.lease,
            drain: ws.drain,
        }
    }

    /// The cursor of the newest event announced so far (see `announced`).
    pub fn announced_seq(&self) -> i64 {
        self.announced.load(Ordering::Relaxed)
    }

    /// A stream of notices for events stored from now on.
    pub fn subscribe_events(&self) -> broadcast::Receiver<EventNotice> {
        self.bus.subscribe()
    }

    /// Changes whenever a webhook was created, changed or deleted (by any process).
    pub fn subscribe_webhook_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.webhook_changes.subscribe()
    }

    /// Whether the store takes writes right now (one tiny committed write).
    pub async fn check_store(&self) -> crate::error::Result<()> {
        self.store.check_writable().await
    }

    /// The store's identity: processes sharing a store share it.
    pub fn store_id(&self) -> &str {
        self.store.store_id()
    }

    /// Where providers POST to reach an inbound webhook.
    pub fn receive_url(&self, id: &WebhookId) -> String {
        format!(
            "{}/hooks/{}",
            self.settings.public_url.trim_end_matches('/'),
            id
        )
    }
}

impl Service {
    /// The catalogue of event types, for a platform (`voyager`) or a signature preset
    /// (`generic`), or all of it.
    pub fn event_types(
        &self,
        provider: Option<&str>,
    ) -> crate::error::Result<Vec<&'static crate::catalog::EventType>> {
        let entries = crate::catalog::list(provider);
        if entries.is_empty() {
            return Err(crate::error::Error::invalid(format!(
                "unknown provider {:?}; use one of {:?} or a preset (generic, kakiyo)",
                provider.unwrap_or_default(),
                crate::catalog::platforms()
            )));
        }
        Ok(entries)
    }
}
