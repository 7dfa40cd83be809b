//! The one error type of the service layer.
//!
//! Every message says what went wrong and what to do about it: a model reads these as tool
//! errors (and a person as CLI errors) and must be able to act on them without seeing the code.
//! Each front end maps the kinds to its own answers (MCP tool errors, HTTP statuses) in one
//! place of its own.

use std::fmt::Display;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The caller named something that does not exist.
    #[error("{kind} '{id}' was not found. {hint}")]
    NotFound {
        kind: &'static str,
        id: String,
        hint: &'static str,
    },
    /// The caller's arguments cannot be used as given.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The operation is valid but cannot run in this server's configuration or state.
    #[error("{0}")]
    Unavailable(String),
    /// The store holds something this release cannot read (a NULL or unexpected column, a
    /// secret sealed under a key this process does not hold), with no underlying error to keep;
    /// nothing was changed. A failure with a cause is `Backend`.
    #[error("storage error: {0}")]
    Store(String),
    /// The store's database failed (a SQLite or PostgreSQL error, a pool without connections);
    /// nothing was changed. The backend's own error is kept as the source, for logs and for
    /// callers that look into it.
    #[error("storage error: {message}")]
    Backend {
        message: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A backend's failure, told as `message`, with `source` kept.
    pub fn backend(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Error {
        Error::Backend {
            message: message.into(),
            source: Box::new(source),
        }
    }
}

/// How many characters of a caller's input an error message quotes.
pub const QUOTE_CHARS: usize = 200;

/// `input` for an error message or a log line: Debug-quoted, at most `QUOTE_CHARS` characters
/// of it, and its length when cut. A 10 MB argument must not come back as a 10 MB error.
pub fn quote(input: &str) -> String {
    let n = input.chars().count();
    if n <= QUOTE_CHARS {
        return format!("{input:?}");
    }
    let head: String = input.chars().take(QUOTE_CHARS).collect();
    format!("{head:?}…({n} characters)")
}

/// A message cut to at most `max` characters (for texts built from several inputs).
pub fn bounded(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let head: String = text.chars().take(max).collect();
    format!("{head}…[cut]")
}

impl Error {
    pub fn webhook_not_found(id: impl Display) -> Self {
        Error::NotFound {
            kind: "webhook",
            id: bounded(&id.to_string(), QUOTE_CHARS),
            hint: "Call list_webhooks to see the ids that exist.",
        }
    }
    pub fn event_not_found(id: impl Display) -> Self {
        Error::NotFound {
            kind: "event",
            id: bounded(&id.to_string(), QUOTE_CHARS),
            hint: "Call list_events to see stored events.",
        }
    }
    pub fn delivery_not_found(id: impl Display) -> Self {
        Error::NotFound {
            kind: "delivery",
            id: bounded(&id.to_string(), QUOTE_CHARS),
            hint: "Call query_deliveries to see the delivery log.",
        }
    }
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidArgument(msg.into())
    }

    /// One store failure told to everyone it failed (the senders of a batch the writer could
    /// not commit): each call makes a `Backend` error, told as `message`, with `self` as the
    /// shared source.
    pub fn for_each_caller(self, message: &str) -> impl Fn() -> Error {
        // The cause's own words, without a second "storage error:" before them.
        let cause = match &self {
            Error::Backend { message, .. } | Error::Store(message) => message.clone(),
            other => other.to_string(),
        };
        let message = format!("{message}: {cause}");
        let source = std::sync::Arc::new(self);
        move || Error::Backend {
            message: message.clone(),
            source: Box::new(std::sync::Arc::clone(&source)),
        }
    }
}

impl From<tokio::task::JoinError> for Error {
    fn from(e: tokio::task::JoinError) -> Self {
        Error::Internal(format!("background task failed: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_are_bounded() {
        assert_eq!(quote("abc"), "\"abc\"");
        let long = "x".repeat(10_000);
        let q = quote(&long);
        assert!(q.len() < 300 && q.ends_with("(10000 characters)"), "{q}");
        let e = Error::webhook_not_found(&long).to_string();
        assert!(e.len() < 400, "{}", e.len());
    }

    #[test]
    fn a_failure_told_to_every_caller_keeps_its_source() {
        let io = std::io::Error::other("disk I/O error");
        let each = Error::backend("cannot commit", io).for_each_caller("the batch was not stored");
        let (a, b) = (each(), each());
        assert_eq!(
            a.to_string(),
            "storage error: the batch was not stored: cannot commit"
        );
        for e in [a, b] {
            // The chain reaches the backend's own error: batch -> store error -> io::Error.
            let store = std::error::Error::source(&e).expect("the store error is kept");
            let io = store.source().expect("and its own source");
            assert_eq!(io.to_string(), "disk I/O error");
        }
    }
}
