//! Event reads written once for both backends (`store::sql`): a page of events by cursor with
//! only the filters given, so that the (webhook, seq) and (event, seq) indexes stay usable.
//! Readers see `event_rows`, the row with its webhook's id and owner. Readers by cursor also
//! give a bound: only events with `seq` below it are read, so that a cursor moved past what
//! they saw never skips a late commit. SQLite's is `i64::MAX` (one writer hands out `seq` in
//! commit order); PostgreSQL's is `settled_seq()`, read in an earlier statement (see its
//! module doc).
//!
//! Ingest's statements live here too: the columns an accepted event is written with (SQLite
//! binds one row, PostgreSQL one array per column), the webhook's key, and the stored event a
//! duplicate repeats.

use std::sync::LazyLock;

use super::sql::{Arg, Filters, Statement};
use super::EventQuery;

/// The columns `rows::event` reads.
pub(crate) const COLUMNS: &str =
    "seq, id, webhook_id, provider_event_id, event, received_at, headers, payload";

/// One event by its id.
pub(crate) fn by_id(id: &crate::model::EventId) -> Statement {
    Statement {
        sql: format!("SELECT {COLUMNS} FROM event_rows WHERE id = ?"),
        args: vec![Arg::EventId(id.as_str().to_string())],
    }
}

/// The change feed's page of notices after a `seq`. Arguments: the seq, the bound, the limit.
pub(crate) const CHANGES: &str = "SELECT seq, id, webhook_id, event FROM event_rows \
    WHERE seq > ? AND seq < ? ORDER BY seq LIMIT ?";

/// "Now" as an event cursor: the newest event below the bound (the argument), 0 when none.
pub(crate) const MAX_SEQ: &str = "SELECT COALESCE(MAX(seq), 0) FROM events WHERE seq < ?";

/// Where the change feed starts: the newest event below the bound (the argument) and the
/// newest webhook change.
pub(crate) const CHANGE_CURSOR: &str =
    "SELECT (SELECT COALESCE(MAX(seq), 0) FROM events WHERE seq < ?) AS event_seq, \
            (SELECT COALESCE(MAX(rev), 0) FROM webhook_changes) AS webhook_rev";

/// The highest `seq` retention deleted (absent: none): a cursor below it has lost events.
pub(crate) const PRUNED_THROUGH: &str =
    "SELECT CAST(value AS BIGINT) FROM meta WHERE key = 'events_pruned_through'";

/// Records that retention deleted the events up to the argument (text).
pub(crate) const MARK_PRUNED: &str = "INSERT INTO meta (key, value) \
    VALUES ('events_pruned_through', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value";

/// Retention's mark, for a store that pruned before the mark existed (SQLite 14, PostgreSQL
/// 10): from the lowest kept `seq` (`seq` was dense then: 1, 2, 3, …).
pub(crate) const PRUNED_MIGRATION: &str = "
    INSERT INTO meta (key, value)
        SELECT 'events_pruned_through', CAST(low - 1 AS TEXT)
        FROM (SELECT MIN(seq) AS low FROM events) AS kept WHERE low > 1;
";

/// The events after `q.after` and below `bound` that pass its filters, in cursor order (or
/// newest first).
pub(crate) fn list(q: &EventQuery, bound: i64) -> Statement {
    let text = |s: &str| Arg::Text(s.to_string());
    let mut f = Filters::default();
    f.add("seq > ?", Some(Arg::Int(q.after.unwrap_or(0))))
        .add("seq < ?", Some(Arg::Int(bound)))
        .add(
            "webhook_id = ?",
            q.webhook_id.as_ref().map(|w| text(w.as_str())),
        )
        .add("event = ?", q.event.as_deref().map(text))
        .add("owner = ?", q.owner.as_ref().map(|o| text(o.as_str())));
    let order = if q.newest_first { "DESC" } else { "ASC" };
    f.statement(
        &format!("SELECT {COLUMNS} FROM event_rows"),
        &format!("ORDER BY seq {order} LIMIT ?"),
        vec![Arg::Int(q.limit as i64)],
    )
}

// --- ingest ----------------------------------------------------------------------------------

/// The columns an accepted event is written with, in the order both backends bind them, each
/// with its PostgreSQL type (`seq` is each backend's own: SQLite's rowid, PostgreSQL's
/// `event_seq()`). PostgreSQL's insert lives in its schema (`ingest_batch`, schema 16): a change
/// here needs a step there that replaces it.
pub(crate) const INSERT_COLUMNS: [(&str, &str); 8] = [
    ("id", "text"),
    ("webhook", "int8"),
    ("provider_event_id", "text"),
    ("event", "text"),
    ("headers", "text"),
    ("payload", "text"),
    ("received_at", "int8"),
    ("request", "bool"),
];

/// `INSERT_COLUMNS` joined, each name after `prefix`.
pub(crate) fn insert_column_list(prefix: &str) -> String {
    INSERT_COLUMNS
        .iter()
        .map(|(name, _)| format!("{prefix}{name}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One event, its arguments in `INSERT_COLUMNS` order (SQLite's writer).
pub(crate) static INSERT_ROW: LazyLock<String> = LazyLock::new(|| {
    let marks = vec!["?"; INSERT_COLUMNS.len()].join(", ");
    format!(
        "INSERT INTO events ({}) VALUES ({marks})",
        insert_column_list("")
    )
});

/// The stored event a duplicate repeats. Arguments: the webhook's key, the provider id.
pub(crate) const DUPLICATE_OF: &str =
    "SELECT id FROM events WHERE webhook = ? AND provider_event_id = ?";

/// A webhook's key for its events, made if it has none yet (a webhook gets its key when it is
/// made; this covers one deleted meanwhile). Argument: the webhook id.
pub(crate) const MAKE_KEY: &str =
    "INSERT INTO webhook_keys (id) VALUES (?) ON CONFLICT (id) DO NOTHING";

/// A webhook's key. Argument: the webhook id.
pub(crate) const KEY: &str = "SELECT key FROM webhook_keys WHERE id = ?";
