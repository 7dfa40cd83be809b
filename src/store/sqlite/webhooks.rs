//! Webhook rows, their change log (`webhook_changes`, read by the change feed), and the cache
//! that answers the receiver's per-request lookup.

use std::collections::BTreeMap;

use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension};

use super::col;
use crate::error::Result;
use crate::model::{Direction, Millis, Secret, Webhook, WebhookId};
use crate::store::rows::{self, headers_json, Sealed, StoredSecrets, STORED_SECRETS};
use crate::store::sealing::Keyring;
use crate::store::{json_text, WebhookChange, WebhookFilter};

const COLUMNS: &str = "id, direction, target_url, provider, events, description, enabled, secret, \
    previous_secret, previous_secret_expires_at, headers, created_at, updated_at, failure_count, \
    first_failure_at, disabled_reason, forward_to, accept_compact_signatures, filter";

pub(super) fn insert(c: &Connection, w: &Webhook, keys: &Keyring) -> Result<()> {
    let sealed = Sealed::of(w, keys);
    c.execute(
        &format!(
            "INSERT INTO webhooks ({COLUMNS}) VALUES \
             (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)"
        ),
        params![
            w.id,
            w.direction,
            w.target_url,
            w.provider,
            json_text(&w.events),
            w.description,
            w.enabled,
            sealed.secret,
            sealed.previous_secret,
            w.previous_secret.as_ref().map(|p| p.expires_at),
            sealed.headers,
            w.created_at,
            w.updated_at,
            w.failure_count,
            w.first_failure_at,
            w.disabled_reason,
            json_text(&w.forward_to),
            w.accept_compact_signatures,
            w.filter.as_ref().map(|f| f.to_text()),
        ],
    )?;
    record_change(c, &w.id, w.updated_at)
}

pub(super) fn get(c: &Connection, id: &WebhookId, keys: &Keyring) -> Result<Option<Webhook>> {
    let row = c
        .prepare_cached(&format!("SELECT {COLUMNS} FROM webhooks WHERE id = ?1"))?
        .query_row([id], |r| Ok(rows::webhook(r, keys)))
        .optional()?;
    row.transpose()
}

pub(super) fn list(c: &Connection, f: &WebhookFilter, keys: &Keyring) -> Result<Vec<Webhook>> {
    // A subscription's row is the outbound engine's, not a webhook anyone made.
    let mut clauses = vec!["id NOT IN (SELECT id FROM event_subscriptions)"];
    let mut args = vec![];
    if let Some(d) = f.direction {
        clauses.push("direction = ?");
        args.push(SqlValue::Text(crate::model::enum_text(&d)));
    }
    if let Some(e) = f.enabled {
        clauses.push("enabled = ?");
        args.push(SqlValue::Integer(e as i64));
    }
    let filter = format!("WHERE {}", clauses.join(" AND "));
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM webhooks {filter} ORDER BY created_at, id"
    ))?;
    let found = stmt.query_map(params_from_iter(args), |r| Ok(rows::webhook(r, keys)))?;
    found
        .collect::<rusqlite::Result<Vec<_>>>()?
        .into_iter()
        .collect()
}

/// Sets only the fields `ch` carries, so that a concurrent change to the others (an auto-disable
/// by the delivery worker, a rotation) is not written over with stale values.
pub(super) fn update(
    c: &Connection,
    id: &WebhookId,
    ch: &WebhookChange,
    keys: &Keyring,
) -> Result<Option<Webhook>> {
    let Some(current) = get(c, id, keys)? else {
        return Ok(None);
    };
    let mut sets: Vec<&str> = vec!["updated_at = ?"];
    let mut args: Vec<SqlValue> = vec![SqlValue::Integer(ch.updated_at)];
    let mut set = |clause: &'static str, v: SqlValue| {
        sets.push(clause);
        args.push(v);
    };
    if let Some(u) = &ch.target_url {
        set("target_url = ?", SqlValue::Text(u.clone()));
    }
    if let Some(e) = &ch.events {
        set("events = ?", SqlValue::Text(json_text(e)));
    }
    if let Some(d) = &ch.description {
        set("description = ?", SqlValue::Text(d.clone()));
    }
    if let Some(e) = ch.enabled {
        set("enabled = ?", SqlValue::Integer(e as i64));
    }
    if ch.reset_health {
        set("failure_count = ?", SqlValue::Integer(0));
        set("first_failure_at = ?", SqlValue::Null);
        set("disabled_reason = ?", SqlValue::Null);
    }
    // One column holds either kind of header map, by direction.
    let headers = match (current.direction, &ch.extra_headers, &ch.required_headers) {
        (Direction::Outbound, Some(h), _) => {
            Some(headers_json(Direction::Outbound, h, &BTreeMap::new()))
        }
        (Direction::Inbound, _, Some(h)) => {
            Some(headers_json(Direction::Inbound, &BTreeMap::new(), h))
        }
        _ => None,
    };
    if let Some(h) = headers {
        set("headers = ?", SqlValue::Text(keys.seal(id.as_str(), &h)));
    }
    if let Some(f) = &ch.forward_to {
        set("forward_to = ?", SqlValue::Text(json_text(f)));
    }
    if let Some(a) = ch.accept_compact_signatures {
        set("accept_compact_signatures = ?", SqlValue::Integer(a as i64));
    }
    if let Some(f) = &ch.filter {
        let text = f.as_ref().map(|f| f.to_text());
        set("filter = ?", text.map_or(SqlValue::Null, SqlValue::Text));
    }
    args.push(SqlValue::Text(id.as_str().to_string()));
    c.execute(
        &format!("UPDATE webhooks SET {} WHERE id = ?", sets.join(", ")),
        params_from_iter(args),
    )?;
    record_change(c, id, ch.updated_at)?;
    get(c, id, keys)
}

/// In one statement, so the secret moved to `previous_secret` is the one current at that
/// instant, whatever another writer did just before.
pub(super) fn rotate(
    c: &Connection,
    id: &WebhookId,
    secret: &Secret,
    grace_until: Option<Millis>,
    now: Millis,
    keys: &Keyring,
) -> Result<Option<Webhook>> {
    // The sealed current secret moves to `previous_secret` as it is: both are bound to the row.
    let sealed = keys.seal(id.as_str(), secret.expose());
    let n = c.execute(
        "UPDATE webhooks SET \
           previous_secret = CASE WHEN ?3 IS NULL THEN NULL ELSE secret END, \
           previous_secret_expires_at = ?3, secret = ?2, updated_at = ?4 \
         WHERE id = ?1",
        params![id, sealed, grace_until, now],
    )?;
    if n == 0 {
        return Ok(None);
    }
    record_change(c, id, now)?;
    get(c, id, keys)
}

pub(super) fn expired_previous_secrets(
    c: &Connection,
    now: Millis,
) -> Result<Vec<(WebhookId, Millis)>> {
    let mut stmt = c.prepare_cached(
        "SELECT id, previous_secret_expires_at FROM webhooks \
         WHERE previous_secret_expires_at IS NOT NULL AND previous_secret_expires_at <= ?1",
    )?;
    let rows = stmt.query_map([now], |r| {
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
    let n = c.execute(
        "UPDATE webhooks SET previous_secret = NULL, previous_secret_expires_at = NULL \
         WHERE id = ?1 AND previous_secret_expires_at = ?2",
        params![id, expired_at],
    )?;
    if n > 0 {
        record_change(c, id, crate::model::now_millis())?;
    }
    Ok(())
}

pub(super) fn delete(c: &Connection, id: &WebhookId) -> Result<bool> {
    let deleted = c.execute("DELETE FROM webhooks WHERE id = ?1", [id])? == 1;
    if deleted {
        record_change(c, id, crate::model::now_millis())?;
    }
    Ok(deleted)
}

/// Appends to the change log read by `changes_since`, in the same transaction as the change.
pub(super) fn record_change(c: &Connection, id: &WebhookId, at: Millis) -> Result<()> {
    c.prepare_cached("INSERT INTO webhook_changes (webhook_id, changed_at) VALUES (?1, ?2)")?
        .execute(params![id, at])?;
    Ok(())
}

/// Webhooks changed after revision `after`: each id once, by its latest change; and the
/// highest revision read.
pub(super) fn changed_since(
    c: &Connection,
    after: i64,
    limit: usize,
) -> Result<(Vec<WebhookId>, i64)> {
    let mut stmt = c.prepare_cached(
        "SELECT rev, webhook_id FROM webhook_changes WHERE rev > ?1 ORDER BY rev LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![after, limit as i64], |r| {
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
        c.execute(
            "UPDATE webhooks SET secret = ?2, previous_secret = ?3, headers = ?4 WHERE id = ?1",
            params![new.id, new.secret, new.previous_secret, new.headers],
        )?;
    }
    Ok(stale.len())
}

/// The secret columns of every webhook not sealed under the keyring's sealing key.
pub(super) fn unsealed(c: &Connection, keys: &Keyring) -> Result<Vec<StoredSecrets>> {
    let mut stmt = c.prepare(&format!("SELECT {STORED_SECRETS} FROM webhooks"))?;
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
