//! MCP Events subscription rows' statements, written once for both backends (`store::sql`).
//! A subscription also owns an outbound webhook row (`store::webhooks`), written and deleted
//! with it in the backend's transaction.

use super::rows::SUBSCRIPTION_COLUMNS as COLUMNS;
use super::sql::{Arg, Statement};
use crate::model::{EventSubscription, Millis, SubscriptionId};

fn id(id: &SubscriptionId) -> Arg {
    Arg::Text(id.as_str().into())
}

/// A new row; none is written (0 rows) when the id exists.
pub(crate) fn insert(s: &EventSubscription) -> Statement {
    Statement {
        sql: format!(
            "INSERT INTO event_subscriptions ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (id) DO NOTHING"
        ),
        args: vec![
            id(&s.id),
            Arg::Text(s.principal.clone()),
            Arg::Text(s.name.clone()),
            Arg::Text(s.arguments.clone()),
            Arg::Int(s.cursor),
            Arg::OptInt(s.not_before),
            Arg::OptInt(s.expires_at),
            Arg::Int(s.created_at),
            Arg::Int(s.refreshed_at),
        ],
    }
}

pub(crate) fn by_id(sub: &SubscriptionId) -> Statement {
    Statement {
        sql: format!("SELECT {COLUMNS} FROM event_subscriptions WHERE id = ?"),
        args: vec![id(sub)],
    }
}

/// The unexpired subscriptions at `now`, oldest first.
pub(crate) fn live(now: Millis) -> Statement {
    Statement {
        sql: format!(
            "SELECT {COLUMNS} FROM event_subscriptions WHERE expires_at IS NULL OR expires_at > ? \
             ORDER BY created_at, id"
        ),
        args: vec![Arg::Int(now)],
    }
}

pub(crate) fn refresh(sub: &SubscriptionId, expires_at: Option<Millis>, now: Millis) -> Statement {
    Statement {
        sql: "UPDATE event_subscriptions SET expires_at = ?, refreshed_at = ? WHERE id = ?".into(),
        args: vec![Arg::OptInt(expires_at), Arg::Int(now), id(sub)],
    }
}

/// Moves the cursor `from` → `to` only if it is still at `from` (of two pumps, one moves it).
pub(crate) fn advance(sub: &SubscriptionId, from: i64, to: i64) -> Statement {
    Statement {
        sql: "UPDATE event_subscriptions SET cursor = ? WHERE id = ? AND cursor = ?".into(),
        args: vec![Arg::Int(to), id(sub), Arg::Int(from)],
    }
}

/// The earliest event still pending delivery to the subscription (one nullable column).
pub(crate) fn backlog(sub: &SubscriptionId) -> Statement {
    Statement {
        sql: "SELECT MIN(e.seq) FROM deliveries d JOIN events e ON e.id = d.event_id \
              WHERE d.webhook_id = ? AND d.status = 'pending'"
            .into(),
        args: vec![id(sub)],
    }
}

pub(crate) fn delete(sub: &SubscriptionId) -> Statement {
    Statement {
        sql: "DELETE FROM event_subscriptions WHERE id = ?".into(),
        args: vec![id(sub)],
    }
}

/// The ids of subscriptions expired by `now`.
pub(crate) fn expired(now: Millis) -> Statement {
    Statement {
        sql: "SELECT id FROM event_subscriptions WHERE expires_at IS NOT NULL AND expires_at <= ?"
            .into(),
        args: vec![Arg::Int(now)],
    }
}
