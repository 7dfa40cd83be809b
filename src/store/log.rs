//! The delivery log as readers see it, written once for every backend.
//!
//! An accepted request is one row: the event it stored. The `deliveries` table holds outbound
//! attempts and the receipts of requests that stored nothing (refused, filtered, duplicate, a
//! handshake); the receipt of a stored event is read from the event itself (its id is the
//! event's id, its headers and body the event's). A page of the log merges the two, newest
//! first, and its cursor remembers where it stopped in each.

use std::fmt;
use std::str::FromStr;

use crate::model::{enum_text, log_excerpt, Attempt, Delivery, DeliveryStatus, Direction, Receipt};
use crate::store::rows::{DELIVERY_COLUMNS, STORED_DELIVERY_COLUMNS, STORED_RECEIPT_COLUMNS};
use crate::store::sql::{Arg, Filters, Statement};
use crate::store::{json_text, DeliveryQuery};

/// Where a page of the log stopped: the next page reads `deliveries` rows with `seq` below
/// `rows_before` and stored events with `seq` below `events_before`. Shown to clients as
/// `"<rows_before>.<events_before>"` (the `next_cursor` of `query_deliveries`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogCursor {
    pub rows_before: i64,
    pub events_before: i64,
}

impl LogCursor {
    /// The newest end of the log: nothing is skipped.
    pub const NEWEST: LogCursor = LogCursor {
        rows_before: i64::MAX,
        events_before: i64::MAX,
    };
}

impl fmt::Display for LogCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.rows_before, self.events_before)
    }
}

impl FromStr for LogCursor {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        let (rows, events) = s.split_once('.').ok_or(())?;
        Ok(LogCursor {
            rows_before: rows.parse().map_err(|_| ())?,
            events_before: events.parse().map_err(|_| ())?,
        })
    }
}

/// One page of the log, newest first, and the cursor of the next page (when this one is full).
#[derive(Debug, Clone, Default)]
pub struct LogPage {
    pub rows: Vec<Delivery>,
    pub next: Option<LogCursor>,
}

impl DeliveryQuery {
    /// Whether receipts of stored events can match: they are inbound and succeeded.
    pub fn reads_stored_events(&self) -> bool {
        self.direction != Some(Direction::Outbound)
            && matches!(self.status, None | Some(DeliveryStatus::Succeeded))
    }

    pub(crate) fn cursor(&self) -> LogCursor {
        self.before.unwrap_or(LogCursor::NEWEST)
    }
}

/// The receipt of a stored event, from the event's columns. Its `url` is left empty: it is the
/// webhook's receive URL, which the service knows (the store does not keep a copy per event).
pub(crate) struct StoredReceipt {
    pub seq: i64,
    pub id: String,
    pub webhook_id: String,
    pub event: String,
    pub received_at: i64,
    pub headers: std::collections::BTreeMap<String, String>,
    pub payload: String,
}

impl From<StoredReceipt> for Receipt {
    fn from(s: StoredReceipt) -> Receipt {
        Receipt {
            seq: s.seq,
            id: s.id.as_str().into(),
            webhook_id: s.webhook_id.into(),
            event_id: Some(s.id.into()),
            event: Some(s.event),
            url: String::new(),
            status: DeliveryStatus::Succeeded,
            status_code: Some(ACCEPTED),
            error: None,
            request_headers: s.headers,
            request_body: Some(log_excerpt(s.payload.as_bytes())),
            created_at: s.received_at,
        }
    }
}

/// A new row of the log: every column but `seq` and the lease.
const INSERT: &str = "INSERT INTO deliveries (id, webhook_id, event_id, event, direction, \
    trigger, attempt, url, status, status_code, duration_ms, error, request_headers, request_body, \
    response_headers, response_body, created_at, next_attempt_at, message_id) \
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

/// What the `trigger` column holds for a receipt: receipts have no trigger of their own.
const RECEIPT_TRIGGER: &str = "received";

/// The receipt of a request that stored nothing (a stored event is its own receipt).
pub(crate) fn insert_receipt(r: &Receipt) -> Statement {
    Statement {
        sql: INSERT.into(),
        args: vec![
            Arg::Text(r.id.to_string()),
            Arg::Text(r.webhook_id.to_string()),
            Arg::OptEventId(r.event_id.as_ref().map(|e| e.to_string())),
            Arg::OptText(r.event.clone()),
            Arg::Text(enum_text(&Direction::Inbound)),
            Arg::Text(RECEIPT_TRIGGER.into()),
            Arg::Int(1),
            Arg::Text(r.url.clone()),
            Arg::Text(enum_text(&r.status)),
            Arg::OptInt(r.status_code),
            Arg::OptInt(None),
            Arg::OptText(r.error.clone()),
            Arg::Text(json_text(&r.request_headers)),
            Arg::OptText(r.request_body.clone()),
            Arg::Text("{}".into()),
            Arg::OptText(None),
            Arg::Int(r.created_at),
            Arg::OptInt(None),
            Arg::OptText(None),
        ],
    }
}

/// An outbound attempt, queued or done.
pub(crate) fn insert_attempt(a: &Attempt) -> Statement {
    Statement {
        sql: INSERT.into(),
        args: vec![
            Arg::Text(a.id.to_string()),
            Arg::Text(a.webhook_id.to_string()),
            Arg::OptEventId(a.event_id.as_ref().map(|e| e.to_string())),
            Arg::OptText(Some(a.event.clone())),
            Arg::Text(enum_text(&Direction::Outbound)),
            Arg::Text(enum_text(&a.trigger)),
            Arg::Int(a.number),
            Arg::Text(a.url.clone()),
            Arg::Text(enum_text(&a.status)),
            Arg::OptInt(a.status_code),
            Arg::OptInt(a.duration_ms),
            Arg::OptText(a.error.clone()),
            Arg::Text(json_text(&a.request_headers)),
            Arg::OptText(a.request_body.clone()),
            Arg::Text(json_text(&a.response_headers)),
            Arg::OptText(a.response_body.clone()),
            Arg::Int(a.created_at),
            Arg::OptInt(a.next_attempt_at),
            Arg::OptText(Some(a.message_id.to_string())),
        ],
    }
}

/// The receipt of a stored event by its id (the event's).
pub(crate) fn stored_receipt_by_id(id: &str) -> Statement {
    Statement {
        sql: format!("SELECT {STORED_RECEIPT_COLUMNS} FROM event_rows WHERE id = ? AND request"),
        args: vec![Arg::EventId(id.to_string())],
    }
}

/// A delivery-log row by id.
pub(crate) fn row_by_id(id: &str) -> Statement {
    Statement {
        sql: format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE id = ?"),
        args: vec![Arg::Text(id.to_string())],
    }
}

/// The page's `deliveries` rows: newest first below the cursor, at most `limit`. A page is shown
/// without bodies (`get_delivery` shows one row whole), so a queued attempt's body, which is
/// its message's, is not read here: one lookup in `messages` per row would double the page's
/// time at a million rows (`benches/store.rs`).
pub(crate) fn rows_query(q: &DeliveryQuery) -> Statement {
    let text = |s: &str| Arg::Text(s.to_string());
    // Pending attempts are few: read them from their own index (`deliveries_due`, or by
    // webhook) and sort them, not newest first through all of history. `+seq` keeps SQLite's
    // planner off the read by `seq`; PostgreSQL plans both forms alike.
    let pending = q.status == Some(DeliveryStatus::Pending);
    let (below, order) = match pending {
        true => ("+seq < ?", "ORDER BY +seq DESC LIMIT ?"),
        false => ("seq < ?", "ORDER BY seq DESC LIMIT ?"),
    };
    let mut f = Filters::default();
    f.add(below, Some(Arg::Int(q.cursor().rows_before)))
        .add(
            "webhook_id = ?",
            q.webhook_id.as_ref().map(|w| text(w.as_str())),
        )
        .add("direction = ?", q.direction.map(|d| text(&enum_text(&d))));
    match pending {
        // Written out, so that the planner may take the partial index.
        true => f.fixed("status = 'pending'"),
        false => f.add("status = ?", q.status.map(|s| text(&enum_text(&s)))),
    };
    f.add("event = ?", q.event.as_deref().map(text))
        .add("created_at >= ?", q.since.map(Arg::Int))
        .add("created_at <= ?", q.until.map(Arg::Int))
        .add(owned_rows(q), q.owner.as_ref().map(|o| text(o.as_str())));
    f.statement(
        &format!("SELECT {STORED_DELIVERY_COLUMNS}, NULL AS message_body FROM deliveries"),
        order,
        vec![Arg::Int(q.limit as i64)],
    )
}

/// The clause that keeps an owner's `deliveries` rows. The local principal's are also those
/// of ids no webhook ever had (refusals of junk URLs: the server's owner's to see), so for it
/// the clause is "not another's".
fn owned_rows(q: &DeliveryQuery) -> &'static str {
    match &q.owner {
        Some(o) if o.as_str() == crate::model::Principal::LOCAL => {
            "webhook_id NOT IN (SELECT id FROM webhook_keys WHERE owner <> ?)"
        }
        _ => "webhook_id IN (SELECT id FROM webhook_keys WHERE owner = ?)",
    }
}

/// The page's receipts of stored events, when any can match: newest first below the cursor.
pub(crate) fn stored_query(q: &DeliveryQuery) -> Option<Statement> {
    if !q.reads_stored_events() {
        return None;
    }
    let text = |s: &str| Arg::Text(s.to_string());
    let mut f = Filters::default();
    f.fixed("request")
        .add("seq < ?", Some(Arg::Int(q.cursor().events_before)))
        .add(
            "webhook_id = ?",
            q.webhook_id.as_ref().map(|w| text(w.as_str())),
        )
        .add("event = ?", q.event.as_deref().map(text))
        .add("received_at >= ?", q.since.map(Arg::Int))
        .add("received_at <= ?", q.until.map(Arg::Int))
        .add("owner = ?", q.owner.as_ref().map(|o| text(o.as_str())));
    Some(f.statement(
        &format!("SELECT {STORED_RECEIPT_COLUMNS} FROM event_rows"),
        "ORDER BY seq DESC LIMIT ?",
        vec![Arg::Int(q.limit as i64)],
    ))
}

/// What the receiver answers a request whose event it stored.
pub const ACCEPTED: i64 = 200;

/// Merges the newest `deliveries` rows and the newest receipts of stored events (each list
/// newest first, at most `limit` long) into one page, newest first by time.
pub(crate) fn merge(rows: Vec<Delivery>, stored: Vec<Receipt>, q: &DeliveryQuery) -> LogPage {
    let mut cursor = q.cursor();
    let mut out = Vec::with_capacity(q.limit.min(rows.len() + stored.len()));
    let (mut rows, mut stored) = (rows.into_iter().peekable(), stored.into_iter().peekable());
    while out.len() < q.limit {
        let take_row = match (rows.peek(), stored.peek()) {
            (Some(r), Some(s)) => r.created_at() >= s.created_at,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        if take_row {
            let r = rows.next().expect("peeked");
            cursor.rows_before = r.seq();
            out.push(r);
        } else {
            let s = stored.next().expect("peeked");
            cursor.events_before = s.seq;
            out.push(Delivery::Receipt(s));
        }
    }
    let next = (out.len() == q.limit).then_some(cursor);
    LogPage { rows: out, next }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::WebhookId;

    fn receipt(seq: i64, at: i64) -> Receipt {
        let mut r = Receipt::new(WebhookId::from("w"), String::new());
        r.seq = seq;
        r.created_at = at;
        r
    }

    #[test]
    fn pages_through_both_sources_once_each_newest_first() {
        // Rows at times 9, 6, 3; stored events at 8, 7, 2.
        let rows: Vec<Delivery> = [(30, 9), (20, 6), (10, 3)]
            .map(|(s, t)| Delivery::Receipt(receipt(s, t)))
            .into();
        let stored: Vec<Receipt> = [(300, 8), (200, 7), (100, 2)]
            .map(|(s, t)| receipt(s, t))
            .into();
        let mut q = DeliveryQuery {
            limit: 4,
            ..Default::default()
        };
        let page = merge(rows.clone(), stored.clone(), &q);
        let times: Vec<i64> = page.rows.iter().map(|d| d.created_at()).collect();
        assert_eq!(times, [9, 8, 7, 6]);
        let next = page.next.expect("a full page has a next cursor");
        assert_eq!((next.rows_before, next.events_before), (20, 200));
        assert_eq!(next.to_string().parse::<LogCursor>(), Ok(next));
        // The next page: what a backend returns below the cursor.
        q.before = Some(next);
        let page = merge(rows[2..].to_vec(), stored[2..].to_vec(), &q);
        let times: Vec<i64> = page.rows.iter().map(|d| d.created_at()).collect();
        assert_eq!(times, [3, 2]);
        assert!(page.next.is_none());
        assert!("12".parse::<LogCursor>().is_err());
    }
}
