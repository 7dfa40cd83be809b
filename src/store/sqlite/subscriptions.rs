//! MCP Events webhook subscriptions: their own rows, and the outbound webhook row each one
//! delivers through (written and deleted with it).

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{queue, webhooks};
use crate::error::Result;
use crate::model::{EventSubscription, Millis, SubscriptionId, Webhook};
use crate::store::Outgoing;

use crate::store::rows::SUBSCRIPTION_COLUMNS as COLUMNS;

fn row(r: &Row) -> rusqlite::Result<EventSubscription> {
    super::wrap(crate::store::rows::subscription(r))
}

pub(super) fn insert(
    c: &Connection,
    s: &EventSubscription,
    w: &Webhook,
    keys: &crate::store::sealing::Keyring,
) -> Result<bool> {
    let inserted = c.execute(
        &format!(
            "INSERT INTO event_subscriptions ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
             ON CONFLICT (id) DO NOTHING"
        ),
        params![
            s.id,
            s.principal,
            s.name,
            s.arguments,
            s.cursor,
            s.not_before,
            s.expires_at,
            s.created_at,
            s.refreshed_at
        ],
    )?;
    if inserted == 0 {
        return Ok(false);
    }
    // A webhook row left by a subscription deleted half-way (an older binary) is replaced.
    super::webhooks::run(c, &crate::store::webhooks::delete(&w.id))?;
    webhooks::insert(c, w, keys)?;
    Ok(true)
}

pub(super) fn get(c: &Connection, id: &SubscriptionId) -> Result<Option<EventSubscription>> {
    Ok(c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM event_subscriptions WHERE id = ?1"
    ))?
    .query_row([id], row)
    .optional()?)
}

pub(super) fn refresh(
    c: &Connection,
    id: &SubscriptionId,
    expires_at: Option<Millis>,
    now: Millis,
) -> Result<bool> {
    Ok(c.execute(
        "UPDATE event_subscriptions SET expires_at = ?2, refreshed_at = ?3 WHERE id = ?1",
        params![id, expires_at, now],
    )? == 1)
}

pub(super) fn live(c: &Connection, now: Millis) -> Result<Vec<EventSubscription>> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM event_subscriptions WHERE expires_at IS NULL OR expires_at > ?1 \
         ORDER BY created_at, id"
    ))?;
    let rows = stmt.query_map([now], row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub(super) fn advance(
    c: &Connection,
    id: &SubscriptionId,
    from: i64,
    to: i64,
    items: &[Outgoing],
) -> Result<bool> {
    let moved = c.execute(
        "UPDATE event_subscriptions SET cursor = ?3 WHERE id = ?1 AND cursor = ?2",
        params![id, from, to],
    )?;
    if moved == 0 {
        return Ok(false);
    }
    queue::enqueue(c, items)?;
    Ok(true)
}

pub(super) fn backlog(c: &Connection, id: &SubscriptionId) -> Result<Option<i64>> {
    Ok(c.prepare_cached(
        "SELECT MIN(e.seq) FROM deliveries d JOIN events e ON e.id = d.event_id \
             WHERE d.webhook_id = ?1 AND d.status = 'pending'",
    )?
    .query_row([id], |r| r.get(0))?)
}

pub(super) fn delete(c: &Connection, id: &SubscriptionId) -> Result<bool> {
    let deleted = c.execute("DELETE FROM event_subscriptions WHERE id = ?1", [id])? == 1;
    webhooks::delete(c, &id.delivery_row())?;
    Ok(deleted)
}

pub(super) fn expired(c: &Connection, now: Millis) -> Result<Vec<SubscriptionId>> {
    let mut stmt = c.prepare_cached(
        "SELECT id FROM event_subscriptions WHERE expires_at IS NOT NULL AND expires_at <= ?1",
    )?;
    let rows = stmt.query_map([now], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}
