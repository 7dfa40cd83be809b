//! The service API: every operation the product offers, used alike by the MCP tools, the
//! receiver and the CLI. It owns the store, the live-event bus and the HTTP client; it knows
//! nothing about MCP or HTTP framing.

mod deliveries;
mod events;
mod outbound;
mod webhooks;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, Notify};

use crate::dispatcher::Http;
use crate::store::Store;

pub use deliveries::{QueryDeliveries, TestWebhook};
pub use events::{ListEvents, ReceiveOutcome, WaitForEvents};
pub use outbound::{Redeliver, SendEvent};
pub use webhooks::{CreateWebhook, ListWebhooks, RotateSecret, UpdateWebhook};

/// Announced on the bus after an event is durably stored.
#[derive(Debug, Clone)]
pub struct EventNotice {
    pub seq: i64,
    pub id: String,
    pub webhook_id: String,
    pub event: String,
}

/// Counters since start-up, shown at the receiver's `/healthz`.
#[derive(Debug, Default)]
pub struct Stats {
    /// Events durably stored by the receiver.
    pub events_stored: AtomicU64,
    /// Requests acknowledged as repeats of a stored event.
    pub duplicates: AtomicU64,
    /// Requests refused (bad signature, unknown webhook, too large, not JSON, ...).
    pub rejected: AtomicU64,
    /// Requests answered 503 because the store could not write (disk full, read-only).
    pub store_failures: AtomicU64,
    /// Event notices a slow MCP session missed: its buffer overflowed, so they were folded
    /// into one catch-up notification (the session re-reads the resource; nothing is lost
    /// from the store, but these individual notifications were dropped).
    pub notifications_dropped: AtomicU64,
}

impl Stats {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn to_json(&self) -> serde_json::Value {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        serde_json::json!({
            "events_stored": get(&self.events_stored),
            "duplicates": get(&self.duplicates),
            "rejected": get(&self.rejected),
            "store_failures": get(&self.store_failures),
            "notifications_dropped": get(&self.notifications_dropped),
        })
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
    /// SSRF guard off: outbound targets may be loopback or private addresses.
    pub allow_private_targets: bool,
    /// How far a signed timestamp may be from now, in seconds (replay protection).
    pub timestamp_tolerance: i64,
}

pub struct Service {
    pub store: Store,
    pub settings: Settings,
    bus: broadcast::Sender<EventNotice>,
    /// For subscriber targets: SSRF-guarded, no redirects.
    pub http: Http,
    /// For the server's own receiver (inbound self-tests) only.
    internal_http: reqwest::Client,
    /// Wakes the delivery worker when attempts are queued.
    pub wake: Arc<Notify>,
    pub stats: Stats,
}

impl Service {
    pub fn new(store: Store, settings: Settings) -> Self {
        // Lagging subscribers re-read the store, so a modest buffer loses nothing.
        let (bus, _) = broadcast::channel(1024);
        let http = Http::new(settings.delivery_timeout, settings.allow_private_targets);
        let internal_http = reqwest::Client::builder()
            .timeout(settings.delivery_timeout)
            .build()
            .expect("the HTTP client builds with static settings");
        Service {
            store,
            settings,
            bus,
            http,
            internal_http,
            wake: Arc::new(Notify::new()),
            stats: Stats::default(),
        }
    }

    /// A stream of notices for events stored from now on.
    pub fn subscribe_events(&self) -> broadcast::Receiver<EventNotice> {
        self.bus.subscribe()
    }

    fn publish(&self, notice: EventNotice) {
        // No receivers is normal (nobody is listening yet).
        let _ = self.bus.send(notice);
    }
}
