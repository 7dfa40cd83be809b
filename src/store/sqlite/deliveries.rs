//! The delivery log: receipts (direction `inbound`) and attempts (`outbound`) in one table.

use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension};

use super::{col, json_col};
use crate::error::Result;
use crate::model::{enum_text, log_excerpt, Attempt, Delivery, DeliveryId, Direction, Receipt};
use crate::store::{json_text, DeliveryQuery};

pub(super) const COLUMNS: &str =
    "seq, id, webhook_id, event_id, event, direction, trigger, attempt, url, \
    status, status_code, duration_ms, error, request_headers, request_body, response_headers, \
    response_body, created_at, next_attempt_at, message_id";

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
    let mut found = c
        .prepare_cached(&format!("SELECT {COLUMNS} FROM deliveries WHERE id = ?1"))?
        .query_row([id], super::delivery_row)
        .optional()?;
    fill_from_events(c, found.as_mut_slice())?;
    Ok(found)
}

pub(super) fn query(c: &Connection, q: &DeliveryQuery) -> Result<Vec<Delivery>> {
    // Only the filters given appear in the SQL, so SQLite can pick the matching index
    // (`x IS NULL OR col = x` would hide every index from the planner).
    let mut clauses: Vec<&str> = vec![];
    let mut args: Vec<Value> = vec![];
    let mut filter = |clause: &'static str, value: Option<Value>| {
        if let Some(v) = value {
            clauses.push(clause);
            args.push(v);
        }
    };
    let text = |s: &str| Value::Text(s.to_string());
    filter(
        "webhook_id = ?",
        q.webhook_id.as_ref().map(|w| text(w.as_str())),
    );
    filter("direction = ?", q.direction.map(|d| text(&enum_text(&d))));
    filter("status = ?", q.status.map(|s| text(&enum_text(&s))));
    filter("event = ?", q.event.as_deref().map(text));
    filter("created_at >= ?", q.since.map(Value::Integer));
    filter("created_at <= ?", q.until.map(Value::Integer));
    filter("seq < ?", q.before.map(Value::Integer));
    let where_clause = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    args.push(Value::Integer(q.limit as i64));
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM deliveries {where_clause} ORDER BY seq DESC LIMIT ?"
    ))?;
    let mut rows = stmt
        .query_map(params_from_iter(args), super::delivery_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    fill_from_events(c, &mut rows)?;
    Ok(rows)
}

/// Gives receipts of stored events the request headers and body their event keeps (such a row
/// is written without a copy of them: linked to an event, no error, no body).
fn fill_from_events(c: &Connection, rows: &mut [Delivery]) -> Result<()> {
    for d in rows.iter_mut() {
        let Delivery::Receipt(r) = d else { continue };
        let Some(event_id) = &r.event_id else {
            continue;
        };
        if r.request_body.is_some() || r.error.is_some() {
            continue;
        }
        let found = c
            .prepare_cached("SELECT headers, payload FROM events WHERE id = ?1")?
            .query_row([event_id], |row| {
                Ok((json_col(row, "headers")?, col::<String>(row, "payload")?))
            })
            .optional()?;
        if let Some((headers, body)) = found {
            r.request_headers = headers;
            r.request_body = Some(log_excerpt(body.as_bytes()));
        }
    }
    Ok(())
}
