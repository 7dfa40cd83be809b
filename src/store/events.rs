//! Stored events, written together with their inbound delivery-log row.
//!
//! An event keeps the request's body exactly as sent (it parsed as JSON, so it is UTF-8 text)
//! and its headers. The log row of a request that stored an event does not hold a second copy:
//! it points at the event (see `deliveries::fill_from_events`), which halves what each receipt
//! writes.

use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row};

use super::deliveries::insert_delivery;
use super::queue::{enqueue_tx, Message};
use super::webhooks::bad_column;
use super::Store;
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::model::{Delivery, Event};

const COLUMNS: &str =
    "seq, id, webhook_id, provider_event_id, event, received_at, headers, payload";

pub enum InsertOutcome {
    /// Stored; the event now has this `seq`.
    Stored(i64),
    /// The webhook already holds an event with that provider event id: the existing event's id.
    Duplicate(String),
}

/// Filters for listing events. `after` is a `seq` cursor.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    pub webhook_id: Option<String>,
    pub event: Option<String>,
    pub after: Option<i64>,
    pub limit: usize,
    /// Newest first (for "latest events" views) instead of cursor order.
    pub newest_first: bool,
}

impl Store {
    /// Stores `event` (with `body`, the request body as sent, as its payload) and its receipt
    /// row durably, unless the webhook already has an event with the same provider event id;
    /// then only the receipt is logged, marked duplicate, with its own headers and body.
    /// `forwards` (relayed copies for outbound webhooks) are queued with a new event only.
    ///
    /// Receipts go through one writer thread that commits whatever has queued up meanwhile in a
    /// single transaction (group commit): one fsync serves many concurrent senders, and no
    /// sender is answered before its event is on disk.
    pub async fn insert_event(
        &self,
        event: Event,
        body: String,
        receipt: Delivery,
        forwards: Vec<(Message, Delivery)>,
    ) -> Result<InsertOutcome> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        // Serialised here, on the caller's task, so the single writer thread does less.
        let headers = serde_json::to_string(&event.headers).unwrap_or_default();
        self.receipts
            .send(ReceiptJob {
                event,
                headers,
                body,
                receipt,
                forwards,
                reply,
            })
            .map_err(|_| Error::Unavailable("the store's writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| Error::Unavailable("the store's writer has stopped".into()))?
    }

    pub async fn get_event(&self, id: &str) -> Result<Option<Event>> {
        let id = id.to_string();
        self.read(move |c| {
            Ok(c.query_row(
                &format!("SELECT {COLUMNS} FROM events WHERE id = ?1"),
                [id],
                from_row,
            )
            .optional()?)
        })
        .await
    }

    pub async fn list_events(&self, q: EventQuery) -> Result<Vec<Event>> {
        self.read(move |c| list(c, &q)).await
    }

    /// The highest `seq` stored so far (0 when empty): "now" as an event cursor.
    pub async fn max_event_seq(&self) -> Result<i64> {
        self.read(
            |c| Ok(c.query_row("SELECT COALESCE(MAX(seq), 0) FROM events", [], |r| r.get(0))?),
        )
        .await
    }
}

/// One receipt waiting for the writer thread.
pub(super) struct ReceiptJob {
    event: Event,
    /// The event's headers as JSON, and its payload as sent.
    headers: String,
    body: String,
    receipt: Delivery,
    forwards: Vec<(Message, Delivery)>,
    reply: tokio::sync::oneshot::Sender<Result<InsertOutcome>>,
}

/// Most receipts committed together.
const MAX_BATCH: usize = 256;

/// The writer thread: takes one job, then every job that is already waiting, and commits them
/// in one transaction. Ends when the store is dropped.
pub(super) fn receipt_writer(
    conn: Arc<Mutex<Connection>>,
    jobs: std::sync::mpsc::Receiver<ReceiptJob>,
) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let started = std::time::Instant::now();
        let result = {
            let mut guard = conn.lock().unwrap_or_else(|p| p.into_inner());
            let locked = started.elapsed();
            let result = write_batch(&mut guard, &mut batch);
            tracing::debug!(
                receipts = batch.len(),
                lock_wait_us = locked.as_micros() as u64,
                commit_us = (started.elapsed() - locked).as_micros() as u64,
                "receipt batch committed"
            );
            result
        };
        match result {
            Ok(outcomes) => {
                for (job, outcome) in batch.into_iter().zip(outcomes) {
                    let _ = job.reply.send(Ok(outcome));
                }
            }
            Err(e) => {
                // Nothing of the batch was committed: every sender gets an error (and a 503).
                for job in batch {
                    let _ = job.reply.send(Err(Error::Unavailable(e.to_string())));
                }
            }
        }
    }
}

fn write_batch(c: &mut Connection, batch: &mut [ReceiptJob]) -> Result<Vec<InsertOutcome>> {
    let tx = c.transaction()?;
    let mut outcomes = Vec::with_capacity(batch.len());
    for job in batch.iter_mut() {
        let (event, receipt) = (&job.event, &mut job.receipt);
        // Sees earlier jobs of the same batch too: duplicates within a batch are caught.
        let existing: Option<String> = match &event.provider_event_id {
            Some(pid) => tx
                .prepare_cached(
                    "SELECT id FROM events WHERE webhook_id = ?1 AND provider_event_id = ?2",
                )?
                .query_row(params![event.webhook_id, pid], |r| r.get(0))
                .optional()?,
            None => None,
        };
        let outcome = match existing {
            Some(id) => {
                receipt.event_id = Some(id.clone());
                receipt.error = Some(format!(
                    "duplicate: provider event id already received as event {id}; acknowledged, not stored again"
                ));
                InsertOutcome::Duplicate(id)
            }
            None => {
                tx.prepare_cached(
                    "INSERT INTO events (id, webhook_id, provider_event_id, event, received_at, headers, payload) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?
                .execute(params![
                    event.id,
                    event.webhook_id,
                    event.provider_event_id,
                    event.event,
                    event.received_at,
                    job.headers,
                    job.body,
                ])?;
                let seq = tx.last_insert_rowid();
                // The event holds them; the log row points at it (`receipt.event_id`).
                receipt.request_headers.clear();
                receipt.request_body = None;
                enqueue_tx(&tx, &job.forwards)?;
                InsertOutcome::Stored(seq)
            }
        };
        insert_delivery(&tx, receipt)?;
        outcomes.push(outcome);
    }
    tx.commit()?;
    Ok(outcomes)
}

fn list(c: &Connection, q: &EventQuery) -> Result<Vec<Event>> {
    // Only the filters given appear in the SQL, so the (webhook_id, seq) and (event, seq)
    // indexes stay usable.
    let mut clauses = vec!["seq > ?"];
    let mut args = vec![Value::Integer(q.after.unwrap_or(0))];
    if let Some(w) = &q.webhook_id {
        clauses.push("webhook_id = ?");
        args.push(Value::Text(w.clone()));
    }
    if let Some(e) = &q.event {
        clauses.push("event = ?");
        args.push(Value::Text(e.clone()));
    }
    args.push(Value::Integer(q.limit as i64));
    let order = if q.newest_first { "DESC" } else { "ASC" };
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM events WHERE {} ORDER BY seq {order} LIMIT ?",
        clauses.join(" AND ")
    ))?;
    let rows = stmt.query_map(params_from_iter(args), from_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

fn from_row(r: &Row) -> rusqlite::Result<Event> {
    let headers: String = r.get(6)?;
    let payload: String = r.get(7)?;
    Ok(Event {
        seq: r.get(0)?,
        id: r.get(1)?,
        webhook_id: r.get(2)?,
        provider_event_id: r.get(3)?,
        event: r.get(4)?,
        received_at: r.get(5)?,
        headers: serde_json::from_str(&headers).map_err(|_| bad_column(6, &headers))?,
        payload: serde_json::from_str(&payload).map_err(|_| bad_column(7, &payload))?,
    })
}
