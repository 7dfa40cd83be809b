//! Webhook rows, their change log (`webhook_changes`, read by the change feed), and the cache
//! that answers the receiver's per-request lookup.

use rusqlite::{params_from_iter, Connection, OptionalExtension};

use super::col;
use crate::error::Result;
use crate::model::{Millis, Secret, Webhook, WebhookId};
use crate::store::rows::{self, StoredSecrets};
use crate::store::sealing::Keyring;
use crate::store::sql::Statement;
use crate::store::webhooks as statements;
use crate::store::{WebhookChange, WebhookFilter};

pub(super) fn insert(c: &Connection, w: &Webhook, keys: &Keyring) -> Result<()> {
    run(c, &statements::insert(w, keys))?;
    run(c, &statements::key(w))?;
    record_change(c, &w.id, w.updated_at)
}

pub(super) fn get(c: &Connection, id: &WebhookId, keys: &Keyring) -> Result<Option<Webhook>> {
    let s = statements::by_id(id);
    let row = c
        .prepare_cached(&s.sql)?
        .query_row(params_from_iter(&s.args), |r| Ok(rows::webhook(r, keys)))
        .optional()?;
    row.transpose()
}

pub(super) fn list(c: &Connection, f: &WebhookFilter, keys: &Keyring) -> Result<Vec<Webhook>> {
    let s = statements::list(f);
    let mut stmt = c.prepare_cached(&s.sql)?;
    let found = stmt.query_map(params_from_iter(&s.args), |r| Ok(rows::webhook(r, keys)))?;
    found
        .collect::<rusqlite::Result<Vec<_>>>()?
        .into_iter()
        .collect()
}

/// Sets only the fields `ch` carries (`store::webhooks::update`).
pub(super) fn update(
    c: &Connection,
    id: &WebhookId,
    ch: &WebhookChange,
    keys: &Keyring,
) -> Result<Option<Webhook>> {
    let Some(current) = get(c, id, keys)? else {
        return Ok(None);
    };
    run(c, &statements::update(id, current.direction, ch, keys))?;
    record_change(c, id, ch.updated_at)?;
    get(c, id, keys)
}

/// In one statement (`store::webhooks::rotate`).
pub(super) fn rotate(
    c: &Connection,
    id: &WebhookId,
    secret: &Secret,
    grace_until: Option<Millis>,
    now: Millis,
    keys: &Keyring,
) -> Result<Option<Webhook>> {
    if run(c, &statements::rotate(id, secret, grace_until, now, keys))? == 0 {
        return Ok(None);
    }
    record_change(c, id, now)?;
    get(c, id, keys)
}

pub(super) fn run(c: &Connection, s: &Statement) -> Result<usize> {
    Ok(c.prepare_cached(&s.sql)?
        .execute(params_from_iter(&s.args))?)
}

pub(super) fn expired_previous_secrets(
    c: &Connection,
    now: Millis,
) -> Result<Vec<(WebhookId, Millis)>> {
    let s = statements::expired_previous_secrets(now);
    let mut stmt = c.prepare_cached(&s.sql)?;
    let rows = stmt.query_map(params_from_iter(&s.args), |r| {
        Ok((
            col::<WebhookId>(r, "id")?,
            col::<Millis>(r, "previous_secret_expires_at")?,
        ))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(super) fn forget_previous_secret(
    c: &Connection,
    id: &WebhookId,
    expired_at: Millis,
) -> Result<()> {
    if run(c, &statements::forget_previous_secret(id, expired_at))? > 0 {
        record_change(c, id, crate::model::now_millis())?;
    }
    Ok(())
}

pub(super) fn delete(c: &Connection, id: &WebhookId) -> Result<bool> {
    let deleted = run(c, &statements::delete(id))? == 1;
    if deleted {
        record_change(c, id, crate::model::now_millis())?;
    }
    Ok(deleted)
}

/// Appends to the change log read by `changes_since`, in the same transaction as the change.
pub(super) fn record_change(c: &Connection, id: &WebhookId, at: Millis) -> Result<()> {
    run(c, &statements::record_change(id, at)).map(drop)
}

/// Webhooks changed after revision `after`: each id once, by its latest change; and the
/// highest revision read.
pub(super) fn changed_since(
    c: &Connection,
    after: i64,
    limit: usize,
) -> Result<(Vec<WebhookId>, i64)> {
    let s = statements::changes_after(after, limit);
    let mut stmt = c.prepare_cached(&s.sql)?;
    let rows = stmt.query_map(params_from_iter(&s.args), |r| {
        Ok((col::<i64>(r, "rev")?, col::<WebhookId>(r, "webhook_id")?))
    })?;
    let mut ids: Vec<WebhookId> = vec![];
    let mut last = after;
    for row in rows {
        let (rev, id) = row?;
        last = rev;
        ids.retain(|i| *i != id);
        ids.push(id);
    }
    Ok((ids, last))
}

/// Seals every secret column not yet sealed under the keyring's sealing key: rows written
/// before sealing existed (on upgrade), or under an older key (`secrets rotate-key`). Returns
/// how many webhooks it re-sealed.
pub(super) fn reseal(c: &Connection, keys: &Keyring) -> Result<usize> {
    let stale = unsealed(c, keys)?;
    for old in &stale {
        let new = old.resealed(keys)?;
        run(c, &statements::reseal(&new))?;
    }
    Ok(stale.len())
}

/// The secret columns of every webhook not sealed under the keyring's sealing key.
pub(super) fn unsealed(c: &Connection, keys: &Keyring) -> Result<Vec<StoredSecrets>> {
    let mut stmt = c.prepare(statements::ALL_SECRETS)?;
    let all = stmt
        .query_map([], |r| Ok(StoredSecrets::read(r)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut stale = vec![];
    for s in all {
        let s = s?;
        if s.is_stale(keys) {
            stale.push(s);
        }
    }
    Ok(stale)
}
