//! The outbound queue's statements, written once for both backends: `?` placeholders in the
//! order of their arguments (PostgreSQL numbers them, `sql::numbered`). Each backend binds its
//! own typed values; what differs between them (SQLite's claim under the write lock,
//! PostgreSQL's `FOR UPDATE SKIP LOCKED`, batching) stays in the backend.

use super::rows::DELIVERY_COLUMNS;
use super::sql::{Arg, Statement};
use crate::model::{Millis, WebhookId};

/// A message: the exact body every attempt sends. Arguments: id, webhook_id, event, event_id,
/// body, created_at.
pub(crate) const INSERT_MESSAGE: &str = "INSERT INTO messages \
    (id, webhook_id, event, event_id, body, created_at) VALUES (?, ?, ?, ?, ?, ?)";

/// An idempotent send (`Queue::enqueue_idempotent`) takes the same steps on both backends, in
/// the transaction that queues its messages: claim the key (`CLAIM_KEY`); when it was claimed
/// before, read what that call answered (`KEY_CLAIMED`, the row locked on PostgreSQL) and, when
/// that is no longer fresh, claim it anew (`RENEW_KEY`). Arguments: key, result, created_at.
pub(crate) const CLAIM_KEY: &str = "INSERT INTO idempotency_keys (key, result, created_at) \
    VALUES (?, ?, ?) ON CONFLICT (key) DO NOTHING";
/// What the call that claimed a key answered, and when. Argument: the key.
pub(crate) const KEY_CLAIMED: &str =
    "SELECT result, created_at FROM idempotency_keys WHERE key = ?";
/// Arguments: result, created_at, key.
pub(crate) const RENEW_KEY: &str =
    "UPDATE idempotency_keys SET result = ?, created_at = ? WHERE key = ?";

/// The newest attempt of every message of `webhook_id` created in `since..=until` whose newest
/// attempt failed for good (`Queue::finally_failed`), oldest first.
pub(crate) fn finally_failed(webhook_id: &WebhookId, since: Millis, until: Millis) -> Statement {
    Statement {
        sql: format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries d WHERE webhook_id = ? \
             AND direction = 'outbound' AND message_id IS NOT NULL \
             AND created_at BETWEEN ? AND ? \
             AND seq = (SELECT MAX(seq) FROM deliveries WHERE message_id = d.message_id) \
             AND status = 'failed' ORDER BY seq"
        ),
        args: vec![
            Arg::Text(webhook_id.as_str().to_string()),
            Arg::Int(since),
            Arg::Int(until),
        ],
    }
}

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

/// A failure adds to a webhook's failure streak (its start kept), and disables it when
/// `disable` gives the reason.
pub(crate) fn failing(webhook_id: &WebhookId, at: Millis, disable: Option<&str>) -> Statement {
    let reason = || Arg::OptText(disable.map(str::to_string));
    Statement {
        sql: "UPDATE webhooks SET failure_count = failure_count + 1, \
              first_failure_at = COALESCE(first_failure_at, ?), \
              enabled = CASE WHEN CAST(? AS TEXT) IS NULL THEN enabled ELSE FALSE END, \
              disabled_reason = COALESCE(?, disabled_reason) WHERE id = ?"
            .into(),
        args: vec![
            Arg::Int(at),
            reason(),
            reason(),
            Arg::Text(webhook_id.as_str().to_string()),
        ],
    }
}

/// When the worker has something to claim next (unleased pending attempts).
pub(crate) const NEXT_DUE: &str = "SELECT MIN(next_attempt_at) FROM deliveries \
    WHERE status = 'pending' AND lease_until IS NULL";

/// A message's newest attempt number and whether an attempt of it is still pending (what a
/// redelivery checks). Argument: the message id.
pub(crate) const MESSAGE_STATE: &str =
    "SELECT CAST(COALESCE(MAX(attempt), 0) AS BIGINT) AS last_attempt, \
    COUNT(CASE WHEN status = 'pending' THEN 1 END) > 0 AS pending \
    FROM deliveries WHERE message_id = ?";

/// The queue's depth and its oldest pending attempt (the metrics' gauges).
pub(crate) const PENDING: &str =
    "SELECT count(*), MIN(created_at) FROM deliveries WHERE status = 'pending'";
