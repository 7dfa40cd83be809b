//! Retention: deleting old history in small batches, and giving the space back to the file
//! system (incremental vacuum).
//!
//! Each batch is one short write transaction, so the receipt writer never waits long behind
//! it. What a batch deletes is written once for both backends (`store::retention`); a batch
//! costs the same whether the tables hold a thousand rows or ten million.

use rusqlite::{params_from_iter, Connection, OptionalExtension};

use crate::error::Result;
use crate::store::retention;
use crate::store::sql::Statement;
use crate::store::{PruneCutoffs, Pruned};

/// One prune batch: the statements of `store::retention`, in one transaction.
pub(super) fn prune(tx: &rusqlite::Transaction, cut: PruneCutoffs, limit: usize) -> Result<Pruned> {
    let run = |s: &Statement| -> Result<u64> {
        Ok(tx
            .prepare_cached(&s.sql)?
            .execute(params_from_iter(&s.args))? as u64)
    };
    let mut pruned = Pruned::default();
    if let Some(before) = cut.events_before {
        let head = retention::events_through(before, limit);
        let through: Option<i64> = tx
            .prepare_cached(&head.sql)?
            .query_row(params_from_iter(&head.args), |r| r.get(0))
            .optional()?
            .flatten();
        if let Some(through) = through {
            let [receipts, events, mark] = retention::events(through);
            run(&receipts)?;
            pruned.events = run(&events)?;
            run(&mark)?;
        }
    }
    for (part, s) in retention::history(cut, limit) {
        let n = run(&s)?;
        pruned.count(part, n);
    }
    Ok(pruned)
}

/// Pages freed per incremental-vacuum step: about 8 MiB, a few milliseconds of writing.
const VACUUM_STEP_PAGES: i64 = 2048;

/// Whether the file can shrink page by page (`auto_vacuum = INCREMENTAL`, set when the store
/// is created; a store made before that needs one full `VACUUM`).
pub(super) fn incremental(c: &Connection) -> Result<bool> {
    let mode: i64 = c.pragma_query_value(None, "auto_vacuum", |r| r.get(0))?;
    Ok(mode == 2)
}

/// Frees one step of pages; true when free pages remain.
pub(super) fn vacuum_step(c: &Connection) -> Result<bool> {
    let mut stmt = c.prepare(&format!("PRAGMA incremental_vacuum({VACUUM_STEP_PAGES})"))?;
    let mut rows = stmt.query([])?;
    while rows.next()?.is_some() {}
    drop(rows);
    let free: i64 = c.pragma_query_value(None, "freelist_count", |r| r.get(0))?;
    Ok(free > 0)
}

/// Turns incremental vacuum on for an older store: a full rewrite of the file.
pub(super) fn convert_to_incremental(c: &Connection) -> Result<()> {
    c.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
    c.execute_batch("VACUUM")?;
    Ok(())
}

/// The database's size in bytes (pages in use and free; the WAL is counted by the caller).
pub(super) fn size(c: &Connection) -> Result<u64> {
    let pages: i64 = c.pragma_query_value(None, "page_count", |r| r.get(0))?;
    let page_size: i64 = c.pragma_query_value(None, "page_size", |r| r.get(0))?;
    Ok((pages * page_size) as u64)
}
