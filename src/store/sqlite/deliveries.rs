//! The delivery log: receipts (direction `inbound`) of requests that stored nothing and
//! attempts (`outbound`) in one table; a stored event's receipt is the event (`store::log`).

use rusqlite::{params, params_from_iter, Connection, OptionalExtension};

use crate::error::Result;
use crate::model::{enum_text, Attempt, Delivery, DeliveryId, Direction, Receipt};
use crate::store::log::{self, LogPage};
use crate::store::sql::Statement;
use crate::store::{json_text, DeliveryQuery};

const INSERT: &str = "INSERT INTO deliveries (id, webhook_id, event_id, event, direction, \
    trigger, attempt, url, status, status_code, duration_ms, error, request_headers, request_body, \
    response_headers, response_body, created_at, next_attempt_at, message_id) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)";

/// What the `trigger` column holds for a receipt: receipts have no trigger of their own.
const RECEIPT_TRIGGER: &str = "received";

pub(super) fn insert_receipt(c: &Connection, r: &Receipt) -> Result<()> {
    c.prepare_cached(INSERT)?.execute(params![
        r.id,
        r.webhook_id,
        r.event_id,
        r.event,
        Direction::Inbound,
        RECEIPT_TRIGGER,
        1,
        r.url,
        r.status,
        r.status_code,
        None::<i64>,
        r.error,
        json_text(&r.request_headers),
        r.request_body,
        "{}",
        None::<String>,
        r.created_at,
        None::<i64>,
        None::<String>,
    ])?;
    Ok(())
}

pub(super) fn insert_attempt(c: &Connection, a: &Attempt) -> Result<()> {
    c.prepare_cached(INSERT)?.execute(params![
        a.id,
        a.webhook_id,
        a.event_id,
        a.event,
        Direction::Outbound,
        enum_text(&a.trigger),
        a.number,
        a.url,
        a.status,
        a.status_code,
        a.duration_ms,
        a.error,
        json_text(&a.request_headers),
        a.request_body,
        json_text(&a.response_headers),
        a.response_body,
        a.created_at,
        a.next_attempt_at,
        a.message_id,
    ])?;
    Ok(())
}

pub(super) fn get(c: &Connection, id: &DeliveryId) -> Result<Option<Delivery>> {
    let row = one(c, &log::row_by_id(id.as_str()), super::delivery_row)?;
    if row.is_some() {
        return Ok(row);
    }
    let stored = one(
        c,
        &log::stored_receipt_by_id(id.as_str()),
        super::stored_receipt_row,
    )?;
    Ok(stored.map(Delivery::Receipt))
}

pub(super) fn query(c: &Connection, q: &DeliveryQuery) -> Result<LogPage> {
    let rows = all(c, &log::rows_query(q), super::delivery_row)?;
    let stored = match log::stored_query(q) {
        Some(s) => all(c, &s, super::stored_receipt_row)?,
        None => vec![],
    };
    Ok(log::merge(rows, stored, q))
}

fn one<T>(
    c: &Connection,
    s: &Statement,
    row: impl FnOnce(&rusqlite::Row) -> rusqlite::Result<T>,
) -> Result<Option<T>> {
    Ok(c.prepare_cached(&s.sql)?
        .query_row(params_from_iter(&s.args), row)
        .optional()?)
}

fn all<T>(
    c: &Connection,
    s: &Statement,
    row: impl FnMut(&rusqlite::Row) -> rusqlite::Result<T>,
) -> Result<Vec<T>> {
    let mut stmt = c.prepare_cached(&s.sql)?;
    let rows = stmt.query_map(params_from_iter(&s.args), row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}
