//! The outbound queue's statements, written once for both backends: `?` placeholders in the
//! order of their arguments (PostgreSQL numbers them, `sql::numbered`). Each backend binds its
//! own typed values; what differs between them (SQLite's claim under the write lock,
//! PostgreSQL's `FOR UPDATE SKIP LOCKED`, batching) stays in the backend.

/// A message: the exact body every attempt sends. Arguments: id, webhook_id, event, event_id,
/// body, created_at.
pub(crate) const INSERT_MESSAGE: &str = "INSERT INTO messages \
    (id, webhook_id, event, event_id, body, created_at) VALUES (?, ?, ?, ?, ?, ?)";

/// A claimed attempt's body. Argument: the message id.
pub(crate) const MESSAGE_BODY: &str = "SELECT body FROM messages WHERE id = ?";

/// A finished attempt, its lease released. Arguments: status, status_code, duration_ms,
/// error, request_headers, response_headers, response_body, next_attempt_at, url, created_at,
/// then the attempt's id. The body it sent is its message's, stored once in `messages` (the
/// log reads it from there, `rows::DELIVERY_COLUMNS`), not once per attempt.
pub(crate) const COMPLETE: &str = "UPDATE deliveries SET status = ?, status_code = ?, \
    duration_ms = ?, error = ?, request_headers = ?, response_headers = ?, \
    response_body = ?, next_attempt_at = ?, lease_until = NULL, lease_owner = NULL, url = ?, \
    created_at = ? WHERE id = ?";

/// A success ends a webhook's failure streak; a healthy webhook is not written at all.
/// Argument: the webhook id.
pub(crate) const HEALTHY: &str = "UPDATE webhooks SET failure_count = 0, \
    first_failure_at = NULL WHERE id = ? AND (failure_count != 0 OR first_failure_at IS NOT NULL)";

/// When the worker has something to claim next (unleased pending attempts).
pub(crate) const NEXT_DUE: &str = "SELECT MIN(next_attempt_at) FROM deliveries \
    WHERE status = 'pending' AND lease_until IS NULL";

/// The queue's depth and its oldest pending attempt (the metrics' gauges).
pub(crate) const PENDING: &str =
    "SELECT count(*), MIN(created_at) FROM deliveries WHERE status = 'pending'";
