//! Retention: deleting old history in small batches, and giving the space back to the file
//! system (incremental vacuum).
//!
//! Each batch is one short write transaction, so the receipt writer never waits long behind
//! it. Rows are found through indexes on their timestamps (migration 6), so a batch costs the
//! same whether the tables hold a thousand rows or ten million.

use rusqlite::{params, Connection};

use crate::error::Result;
use crate::store::{PruneCutoffs, Pruned};

pub(super) fn prune(tx: &rusqlite::Transaction, cut: PruneCutoffs, limit: usize) -> Result<Pruned> {
    let limit = limit as i64;
    let mut pruned = Pruned::default();
    if let Some(before) = cut.events_before {
        // An event and the receipt that stored it go together: the receipt's view reads its
        // headers and body from the event. Duplicate receipts of it go too.
        tx.execute(
            "CREATE TEMP TABLE IF NOT EXISTS doomed_events (id TEXT PRIMARY KEY)",
            [],
        )?;
        tx.execute("DELETE FROM temp.doomed_events", [])?;
        tx.execute(
            "INSERT INTO temp.doomed_events (id) SELECT id FROM events \
             WHERE received_at < ?1 ORDER BY received_at LIMIT ?2",
            params![before, limit],
        )?;
        tx.execute(
            "DELETE FROM deliveries WHERE direction = 'inbound' \
             AND event_id IN (SELECT id FROM temp.doomed_events)",
            [],
        )?;
        pruned.events = tx.execute(
            "DELETE FROM events WHERE id IN (SELECT id FROM temp.doomed_events)",
            [],
        )? as u64;
    }
    if let Some(before) = cut.deliveries_before {
        // A pending attempt is queue state, not history: it stays whatever its age.
        pruned.deliveries = tx.execute(
            "DELETE FROM deliveries WHERE seq IN (SELECT seq FROM deliveries \
             WHERE created_at < ?1 AND status != 'pending' ORDER BY created_at LIMIT ?2)",
            params![before, limit],
        )? as u64;
        pruned.messages = tx.execute(
            "DELETE FROM messages WHERE id IN (SELECT m.id FROM messages m \
             WHERE m.created_at < ?1 \
             AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.message_id = m.id) \
             ORDER BY m.created_at LIMIT ?2)",
            params![before, limit],
        )? as u64;
    }
    if let Some(before) = cut.changes_before {
        pruned.changes = tx.execute(
            "DELETE FROM webhook_changes WHERE rev IN (SELECT rev FROM webhook_changes \
             WHERE changed_at < ?1 ORDER BY rev LIMIT ?2)",
            params![before, limit],
        )? as u64;
    }
    if let Some(before) = cut.keys_before {
        pruned.keys = tx.execute(
            "DELETE FROM idempotency_keys WHERE key IN (SELECT key FROM idempotency_keys \
             WHERE created_at < ?1 ORDER BY created_at LIMIT ?2)",
            params![before, limit],
        )? as u64;
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
