//! Where log lines go and which are kept: stderr only (stdout carries JSON-RPC on stdio),
//! `WEBHOOK_MCP_LOG` over the command's default level, rmcp held at warn (its debug lines hold
//! request params and results, secrets among them), and rmcp's errors for a client that hung
//! up dropped: they are no error of a server.

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

/// Drops rmcp's error-level reports that a response could not be written because the client
/// is gone: the session's remaining responses while it shut down (`… during drain`), and a
/// response whose write found the pipe or connection closed (`fail to response message` with
/// a broken pipe or a reset). The client closed first (a closed tab, a killed process);
/// nothing is lost that anyone could still receive, and a server should not page an operator
/// for it. Every other rmcp line passes, a failed write for any other reason too.
struct ClientHungUp;

impl<S: Subscriber> Layer<S> for ClientHungUp {
    fn event_enabled(&self, event: &Event<'_>, _cx: Context<'_, S>) -> bool {
        let meta = event.metadata();
        if *meta.level() != Level::ERROR || !meta.target().starts_with("rmcp::service") {
            return true;
        }
        let mut fields = Message::default();
        event.record(&mut fields);
        let peer_gone = ["Broken pipe", "Connection reset"]
            .iter()
            .any(|gone| fields.error.contains(gone));
        !(fields.message.ends_with("during drain")
            || (fields.message == "fail to response message" && peer_gone))
    }
}

/// An event's message and its `error` field, if any.
#[derive(Default)]
struct Message {
    message: String,
    error: String,
}

impl Message {
    fn field(&mut self, field: &Field) -> Option<&mut String> {
        match field.name() {
            "message" => Some(&mut self.message),
            "error" => Some(&mut self.error),
            _ => None,
        }
    }
}

impl Visit for Message {
    fn record_str(&mut self, field: &Field, value: &str) {
        if let Some(slot) = self.field(field) {
            *slot = value.to_string();
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if let Some(slot) = self.field(field) {
            *slot = format!("{value:?}");
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
            let mut m = Message::default();
            event.record(&mut m);
            self.0.lock().unwrap().push(m.message);
        }
    }

    #[test]
    fn only_rmcps_client_gone_errors_are_dropped() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let subscriber = tracing_subscriber::registry()
            .with(ClientHungUp)
            .with(Seen(seen.clone()));
        tracing::subscriber::with_default(subscriber, || {
            tracing::error!(target: "rmcp::service", error = "channel closed", "failed to send pending response during drain");
            tracing::error!(target: "rmcp::service", "response send task failed during drain");
            tracing::error!(target: "rmcp::service", "some other rmcp failure");
            // What a write to a closed stdout or socket reports on Linux.
            let pipe = std::io::Error::from_raw_os_error(32);
            tracing::error!(target: "rmcp::service", error = %pipe, "fail to response message");
            let reset = std::io::Error::from_raw_os_error(104);
            tracing::error!(target: "rmcp::service", error = %reset, "fail to response message");
            let other = std::io::Error::other("serialisation failed");
            tracing::error!(target: "rmcp::service", error = %other, "fail to response message");
            tracing::warn!(target: "rmcp::service", "a warning during drain");
            tracing::error!(target: "webhook_mcp", "our own error during drain");
        });
        assert_eq!(
            *seen.lock().unwrap(),
            [
                "some other rmcp failure",
                "fail to response message",
                "a warning during drain",
                "our own error during drain"
            ]
        );
    }
}
