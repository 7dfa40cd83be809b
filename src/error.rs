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
    /// The store failed; nothing was changed. Backends convert their own errors into this.
    #[error("storage error: {0}")]
    Store(String),
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn webhook_not_found(id: impl Display) -> Self {
        Error::NotFound {
            kind: "webhook",
            id: id.to_string(),
            hint: "Call list_webhooks to see the ids that exist.",
        }
    }
    pub fn event_not_found(id: impl Display) -> Self {
        Error::NotFound {
            kind: "event",
            id: id.to_string(),
            hint: "Call list_events to see stored events.",
        }
    }
    pub fn delivery_not_found(id: impl Display) -> Self {
        Error::NotFound {
            kind: "delivery",
            id: id.to_string(),
            hint: "Call query_deliveries to see the delivery log.",
        }
    }
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidArgument(msg.into())
    }
}

impl From<tokio::task::JoinError> for Error {
    fn from(e: tokio::task::JoinError) -> Self {
        Error::Internal(format!("background task failed: {e}"))
    }
}
