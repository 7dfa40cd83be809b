//! The delivery log: receipts (direction `inbound`) of requests that stored nothing and
//! attempts (`outbound`) in one table; a stored event's receipt is the event (`store::log`).

use rusqlite::{params_from_iter, Connection, OptionalExtension};

use crate::error::Result;
use crate::model::{Attempt, Delivery, DeliveryId, Receipt};
use crate::store::log::{self, LogPage};
use crate::store::sql::Statement;
use crate::store::DeliveryQuery;

pub(super) fn insert_receipt(c: &Connection, r: &Receipt) -> Result<()> {
    run(c, &log::insert_receipt(r))
}

pub(super) fn insert_attempt(c: &Connection, a: &Attempt) -> Result<()> {
    run(c, &log::insert_attempt(a))
}

fn run(c: &Connection, s: &Statement) -> Result<()> {
    c.prepare_cached(&s.sql)?
        .execute(params_from_iter(&s.args))?;
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
