//! MCP Events webhook subscriptions: their own rows, and the outbound webhook row each one
//! delivers through (written and deleted with it).

use rusqlite::{params_from_iter, Connection, OptionalExtension, Row};

use super::webhooks::run;
use super::{queue, webhooks};
use crate::error::Result;
use crate::model::{EventSubscription, Millis, SubscriptionId, Webhook};
use crate::store::subscriptions as statements;
use crate::store::Outgoing;

fn row(r: &Row) -> rusqlite::Result<EventSubscription> {
    super::wrap(crate::store::rows::subscription(r))
}

pub(super) fn insert(
    c: &Connection,
    s: &EventSubscription,
    w: &Webhook,
    keys: &crate::store::sealing::Keyring,
) -> Result<bool> {
    if run(c, &statements::insert(s))? == 0 {
        return Ok(false);
    }
    // A webhook row left by a subscription deleted half-way (an older binary) is replaced.
    webhooks::run(c, &crate::store::webhooks::delete(&w.id))?;
    webhooks::insert(c, w, keys)?;
    Ok(true)
}

pub(super) fn get(c: &Connection, id: &SubscriptionId) -> Result<Option<EventSubscription>> {
    let s = statements::by_id(id);
    Ok(c.prepare_cached(&s.sql)?
        .query_row(params_from_iter(&s.args), row)
        .optional()?)
}

pub(super) fn refresh(
    c: &Connection,
    id: &SubscriptionId,
    expires_at: Option<Millis>,
    now: Millis,
) -> Result<bool> {
    Ok(run(c, &statements::refresh(id, expires_at, now))? == 1)
}

pub(super) fn live(c: &Connection, now: Millis) -> Result<Vec<EventSubscription>> {
    let s = statements::live(now);
    let mut stmt = c.prepare_cached(&s.sql)?;
    let rows = stmt.query_map(params_from_iter(&s.args), row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub(super) fn advance(
    c: &Connection,
    id: &SubscriptionId,
    from: i64,
    to: i64,
    items: &[Outgoing],
) -> Result<bool> {
    if run(c, &statements::advance(id, from, to))? == 0 {
        return Ok(false);
    }
    queue::enqueue(c, items)?;
    Ok(true)
}

pub(super) fn backlog(c: &Connection, id: &SubscriptionId) -> Result<Option<i64>> {
    let s = statements::backlog(id);
    Ok(c.prepare_cached(&s.sql)?
        .query_row(params_from_iter(&s.args), |r| r.get(0))?)
}

pub(super) fn delete(c: &Connection, id: &SubscriptionId) -> Result<bool> {
    let deleted = run(c, &statements::delete(id))? == 1;
    webhooks::delete(c, &id.delivery_row())?;
    Ok(deleted)
}

pub(super) fn expired(c: &Connection, now: Millis) -> Result<Vec<SubscriptionId>> {
    let s = statements::expired(now);
    let mut stmt = c.prepare_cached(&s.sql)?;
    let rows = stmt.query_map(params_from_iter(&s.args), |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}
