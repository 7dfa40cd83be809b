//! Where log lines go and which are kept: stderr only (stdout carries JSON-RPC on stdio),
//! `WEBHOOK_MCP_LOG` over the command's default level, rmcp held at warn (its debug lines hold
//! request params and results, secrets among them), and one rmcp error that is no error for a
//! server dropped.

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. A server logs its progress (info); a one-shot command only
/// what went wrong (warn).
pub fn init(long_running: bool) {
    let default_level = if long_running { "info" } else { "warn" };
    let filter = EnvFilter::try_from_env("WEBHOOK_MCP_LOG")
        .unwrap_or_else(|_| EnvFilter::new(default_level))
        .add_directive("rmcp=warn".parse().expect("a valid directive"));
    tracing_subscriber::registry()
        .with(filter)
        .with(ClientHungUp)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(false),
        )
        .init();
}

/// Drops rmcp's error-level report that a session's remaining responses could not be written
/// while it shut down (`… during drain`): the client closed its connection first (a closed
/// tab, a killed process). Nothing is lost that anyone could still receive, and a server
/// should not page an operator for it; every other rmcp line passes.
struct ClientHungUp;

impl<S: Subscriber> Layer<S> for ClientHungUp {
    fn event_enabled(&self, event: &Event<'_>, _cx: Context<'_, S>) -> bool {
        let meta = event.metadata();
        if *meta.level() != Level::ERROR || !meta.target().starts_with("rmcp::service") {
            return true;
        }
        let mut message = Message(String::new());
        event.record(&mut message);
        !message.0.ends_with("during drain")
    }
}

struct Message(String);

impl Visit for Message {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0 = value.to_string();
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Collects the messages of the events that reach it.
    struct Seen(Arc<Mutex<Vec<String>>>);

    impl<S: Subscriber> Layer<S> for Seen {
        fn on_event(&self, event: &Event<'_>, _cx: Context<'_, S>) {
            let mut m = Message(String::new());
            event.record(&mut m);
            self.0.lock().unwrap().push(m.0);
        }
    }

    #[test]
    fn only_rmcps_drain_error_is_dropped() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let subscriber = tracing_subscriber::registry()
            .with(ClientHungUp)
            .with(Seen(seen.clone()));
        tracing::subscriber::with_default(subscriber, || {
            tracing::error!(target: "rmcp::service", error = "channel closed", "failed to send pending response during drain");
            tracing::error!(target: "rmcp::service", "response send task failed during drain");
            tracing::error!(target: "rmcp::service", "some other rmcp failure");
            tracing::warn!(target: "rmcp::service", "a warning during drain");
            tracing::error!(target: "webhook_mcp", "our own error during drain");
        });
        assert_eq!(
            *seen.lock().unwrap(),
            [
                "some other rmcp failure",
                "a warning during drain",
                "our own error during drain"
            ]
        );
    }
}
