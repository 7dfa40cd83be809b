//! The service API: every operation the product offers, used alike by the MCP tools, the
//! receiver and the CLI. It owns the store, the live-event bus and the HTTP client; it knows
//! nothing about MCP or HTTP framing.

mod deliveries;
mod events;
mod outbound;
mod webhooks;

use std::net::SocketAddr;
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
