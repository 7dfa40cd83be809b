//! Event reads written once for both backends (`store::sql`): a page of events by cursor with
//! only the filters given, so that the (webhook, seq) and (event, seq) indexes stay usable.
//! Readers see `event_rows`: the row with its webhook's id and owner.

use super::sql::{Arg, Filters, Statement};
use super::EventQuery;

/// The columns `rows::event` reads.
pub(crate) const COLUMNS: &str =
    "seq, id, webhook_id, provider_event_id, event, received_at, headers, payload";

/// The change feed's page of notices after a `seq`. Arguments: the seq, the limit.
pub(crate) const CHANGES: &str =
    "SELECT seq, id, webhook_id, event FROM event_rows WHERE seq > ? ORDER BY seq LIMIT ?";

/// The oldest kept event (retention's floor).
pub(crate) const OLDEST_SEQ: &str = "SELECT MIN(seq) FROM events";

/// The events after `q.after` that pass its filters, in cursor order (or newest first).
pub(crate) fn list(q: &EventQuery) -> Statement {
    let text = |s: &str| Arg::Text(s.to_string());
    let mut f = Filters::default();
    f.add("seq > ?", Some(Arg::Int(q.after.unwrap_or(0))))
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
