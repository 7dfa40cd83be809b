//! Prometheus metrics (`GET /metrics` on the receiver, beside `/healthz`), through the
//! prometheus-client crate: one registry per process, names prefixed `webhook_mcp_`. Counters
//! are bumped where things happen (receive pipeline, delivery worker, MCP sessions); the queue
//! gauges are read from the store at scrape time, so they are true across processes.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reason {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Path {
    pub path: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    pub outcome: &'static str,
}

pub struct Metrics {
    registry: Registry,
    pub events_received: Counter,
    pub events_duplicate: Counter,
    pub events_rejected: Family<Reason, Counter>,
    pub events_filtered: Family<Path, Counter>,
    pub deliveries: Family<Outcome, Counter>,
    pub attempt_seconds: Histogram,
    pub store_write_seconds: Histogram,
    pub queue_depth: Gauge,
    pub oldest_pending_seconds: Gauge<f64, AtomicU64>,
    pub mcp_sessions: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("webhook_mcp");
        let m = Metrics {
            events_received: Counter::default(),
            events_duplicate: Counter::default(),
            events_rejected: Family::default(),
            events_filtered: Family::default(),
            deliveries: Family::default(),
            attempt_seconds: Histogram::new(exponential_buckets(0.005, 2.0, 14)),
            store_write_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 14)),
            queue_depth: Gauge::default(),
            oldest_pending_seconds: Gauge::default(),
            mcp_sessions: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "events_received",
            "Inbound events verified and durably stored",
            m.events_received.clone(),
        );
        registry.register(
            "events_duplicate",
            "Inbound requests acknowledged as repeats of a stored event",
            m.events_duplicate.clone(),
        );
        registry.register(
            "events_rejected",
            "Inbound requests refused, by reason",
            m.events_rejected.clone(),
        );
        registry.register(
            "events_filtered",
            "Events an outbound webhook's content filter kept from it, by path (send, relay)",
            m.events_filtered.clone(),
        );
        registry.register(
            "deliveries",
            "Outbound attempts finished, by outcome (succeeded, retrying, failed, disabled)",
            m.deliveries.clone(),
        );
        registry.register(
            "delivery_attempt_duration_seconds",
            "Time from sending an outbound attempt to its answer",
            m.attempt_seconds.clone(),
        );
        registry.register(
            "store_write_duration_seconds",
            "Time to commit a received event (group commit included)",
            m.store_write_seconds.clone(),
        );
        registry.register(
            "queue_depth",
            "Outbound attempts pending (due or scheduled), in the whole store",
            m.queue_depth.clone(),
        );
        registry.register(
            "oldest_pending_attempt_age_seconds",
            "Age of the oldest pending outbound attempt (0 when none)",
            m.oldest_pending_seconds.clone(),
        );
        registry.register(
            "mcp_sessions",
            "MCP sessions open in this process (initialized, not yet closed)",
            m.mcp_sessions.clone(),
        );
        Metrics { registry, ..m }
    }
}

impl Metrics {
    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!(error = %e, "could not encode metrics");
        }
        out
    }
}
