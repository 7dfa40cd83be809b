//! Stored events, written by one group-commit writer thread together with the receipts of
//! requests that stored nothing.
//!
//! An event keeps the request's body exactly as sent (it parsed as JSON, so it is UTF-8 text)
//! and its headers, and it is that request's receipt (`request = 1`; see `store::log`): an
//! accepted request writes one row.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rusqlite::{params, params_from_iter, Connection, OptionalExtension};

use super::deliveries::insert_receipt;
use super::{col, queue};
use crate::error::{Error, Result};
use crate::model::{Event, EventId, Receipt, WebhookId};
use crate::store::{
    json_text, ChangeCursor, Changes, Commits, EventNotice, EventQuery, Ingest, InsertOutcome,
};

use crate::store::events as statements;

/// One job for the writer thread: an event with its receipt, or a receipt alone (a refused,
/// filtered or handshake request: unauthenticated traffic shares the group commit too, rather
/// than costing a transaction and an fsync each). Kept small, its parts boxed: the queue's
/// `RECEIPT_QUEUE` slots are made and touched when the store opens, so their size is idle
/// memory (4,096 inline receipts were 1 MiB of it).
pub(super) struct ReceiptJob {
    work: Work,
    reply: tokio::sync::oneshot::Sender<Result<Option<InsertOutcome>>>,
}

enum Work {
    /// The event's headers as JSON, serialised on the caller's task so the writer does less.
    Event(Box<Ingest>, String),
    Receipt(Box<Receipt>),
}

/// Hands `ingest` to the writer thread and waits for its commit.
pub(super) async fn submit(
    writer: &std::sync::mpsc::SyncSender<ReceiptJob>,
    ingest: Ingest,
) -> Result<InsertOutcome> {
    let headers = json_text(&ingest.event.headers);
    let outcome = run(writer, Work::Event(Box::new(ingest), headers)).await?;
    outcome.ok_or_else(|| Error::Internal("the writer lost an event's outcome".into()))
}

/// Hands a receipt alone to the writer thread and waits for its commit.
pub(super) async fn submit_receipt(
    writer: &std::sync::mpsc::SyncSender<ReceiptJob>,
    receipt: Receipt,
) -> Result<()> {
    run(writer, Work::Receipt(Box::new(receipt)))
        .await
        .map(|_| ())
}

async fn run(
    writer: &std::sync::mpsc::SyncSender<ReceiptJob>,
    work: Work,
) -> Result<Option<InsertOutcome>> {
    let (reply, answer) = tokio::sync::oneshot::channel();
    let stopped = || Error::Unavailable("the store's writer has stopped".into());
    // Never waits: a full queue is back-pressure (the sender is told to retry), not a pile-up.
    writer
        .try_send(ReceiptJob { work, reply })
        .map_err(|e| match e {
            std::sync::mpsc::TrySendError::Full(_) => crate::store::busy(),
            std::sync::mpsc::TrySendError::Disconnected(_) => stopped(),
        })?;
    answer.await.map_err(|_| stopped())?
}

/// Most receipts committed together.
const MAX_BATCH: usize = 256;

/// The writer thread: takes one job, then every job that is already waiting, and commits them
/// in one transaction (group commit: one fsync serves many concurrent senders, and no sender is
/// answered before its event is on disk). Ends when the store is dropped.
pub(super) fn receipt_writer(
    conn: Arc<Mutex<Connection>>,
    jobs: std::sync::mpsc::Receiver<ReceiptJob>,
    commits: Commits,
) {
    let mut keys = WebhookKeys::default();
    while let Ok(first) = jobs.recv() {
        let mut batch = crate::store::batch_after(first, MAX_BATCH, || jobs.try_recv().ok());
        let started = std::time::Instant::now();
        let result = {
            let mut guard = conn.lock().unwrap_or_else(|p| p.into_inner());
            let locked = started.elapsed();
            let result = write_batch(&mut guard, &mut batch, &mut keys);
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
                // Announced before any sender hears back: a sender that then reads the feed
                // finds its event announced (or about to be).
                // The write lock keeps every other writer out of the transaction, and `seq`
                // counts up from the newest committed one: a commit follows on from the seq
                // before its first.
                commits.announce(
                    batch.iter().zip(&outcomes).filter_map(|(job, outcome)| {
                        match (&job.work, outcome) {
                            (Work::Event(ingest, _), Some(outcome)) => {
                                Some((&ingest.event, outcome))
                            }
                            _ => None,
                        }
                    }),
                    |first| Some(first - 1),
                );
                for (job, outcome) in batch.into_iter().zip(outcomes) {
                    let _ = job.reply.send(Ok(outcome));
                }
            }
            Err(e) => {
                // Nothing of the batch was committed: every sender gets an error (and a 503).
                let error = e.for_each_caller("the batch was not committed");
                for job in batch {
                    let _ = job.reply.send(Err(error()));
                }
            }
        }
    }
}

/// The integer keys events name their webhook by (`webhook_keys`), as the writer has seen them
/// committed. A key is never reused nor deleted, so what is known stays true; a key made in a
/// batch that rolls back is forgotten with it.
#[derive(Default)]
struct WebhookKeys {
    committed: HashMap<WebhookId, i64>,
    made: Vec<(WebhookId, i64)>,
}

impl WebhookKeys {
    /// `id`'s key, made in this transaction if it has none yet.
    fn key(&mut self, tx: &Connection, id: &WebhookId) -> Result<i64> {
        if let Some(&k) = self.committed.get(id) {
            return Ok(k);
        }
        if let Some((_, k)) = self.made.iter().find(|(w, _)| w == id) {
            return Ok(*k);
        }
        tx.prepare_cached(statements::MAKE_KEY)?.execute([id])?;
        let k: i64 = tx
            .prepare_cached(statements::KEY)?
            .query_row([id], |r| r.get(0))?;
        self.made.push((id.clone(), k));
        Ok(k)
    }

    fn commit(&mut self) {
        self.committed.extend(self.made.drain(..));
    }

    fn roll_back(&mut self) {
        self.made.clear();
    }
}

fn write_batch(
    c: &mut Connection,
    batch: &mut [ReceiptJob],
    keys: &mut WebhookKeys,
) -> Result<Vec<Option<InsertOutcome>>> {
    let written = write_batch_once(c, batch, keys);
    match written {
        Ok(_) => keys.commit(),
        Err(_) => keys.roll_back(),
    }
    written
}

fn write_batch_once(
    c: &mut Connection,
    batch: &mut [ReceiptJob],
    keys: &mut WebhookKeys,
) -> Result<Vec<Option<InsertOutcome>>> {
    // IMMEDIATE: the write lock is taken (waiting out another process's writer) at BEGIN. A
    // deferred transaction that reads first (the duplicate check) and then writes fails at
    // once with "database is locked" when another process wrote in between.
    let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut outcomes = Vec::with_capacity(batch.len());
    for job in batch.iter_mut() {
        let (ingest, headers) = match &mut job.work {
            Work::Receipt(receipt) => {
                insert_receipt(&tx, receipt)?;
                outcomes.push(None);
                continue;
            }
            Work::Event(ingest, headers) => (ingest, headers),
        };
        let Ingest {
            event,
            body,
            receipt,
            relays,
        } = &mut **ingest;
        let webhook = keys.key(&tx, &event.webhook_id)?;
        // Sees earlier jobs of the same batch too: duplicates within a batch are caught.
        let existing: Option<EventId> = match &event.provider_event_id {
            Some(pid) => tx
                .prepare_cached(statements::DUPLICATE_OF)?
                .query_row(params![webhook, pid], |r| col(r, "id"))
                .optional()?,
            None => None,
        };
        let outcome = match existing {
            Some(id) => {
                if let Some(receipt) = receipt.as_mut() {
                    receipt.event_id = Some(id.clone());
                    receipt.error = Some(format!(
                        "duplicate: provider event id already received as event {id}; acknowledged, not stored again"
                    ));
                }
                InsertOutcome::Duplicate(id)
            }
            None => {
                tx.prepare_cached(&statements::INSERT_ROW)?
                    .execute(params![
                        event.id,
                        webhook,
                        event.provider_event_id,
                        event.event,
                        *headers,
                        *body,
                        event.received_at,
                        receipt.is_some(),
                    ])?;
                let seq = tx.last_insert_rowid();
                // The event is its request's receipt: no row of its own.
                *receipt = None;
                queue::enqueue(&tx, relays)?;
                InsertOutcome::Stored(seq)
            }
        };
        if let Some(receipt) = receipt {
            insert_receipt(&tx, receipt)?;
        }
        outcomes.push(Some(outcome));
    }
    tx.commit()?;
    Ok(outcomes)
}

pub(super) fn get(c: &Connection, id: &EventId) -> Result<Option<Event>> {
    Ok({
        let s = statements::by_id(id);
        c.prepare_cached(&s.sql)?
            .query_row(params_from_iter(&s.args), super::event_row)
            .optional()?
    })
}

pub(super) fn list(c: &Connection, q: &EventQuery) -> Result<Vec<Event>> {
    let s = crate::store::events::list(q, i64::MAX);
    let mut stmt = c.prepare_cached(&s.sql)?;
    let rows = stmt.query_map(params_from_iter(&s.args), super::event_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

pub(super) fn max_seq(c: &Connection) -> Result<i64> {
    Ok(c.query_row(crate::store::events::MAX_SEQ, [i64::MAX], |r| r.get(0))?)
}

pub(super) fn changes_since(c: &Connection, since: ChangeCursor, limit: usize) -> Result<Changes> {
    let mut stmt = c.prepare_cached(crate::store::events::CHANGES)?;
    let events = stmt
        .query_map(params![since.event_seq, i64::MAX, limit as i64], |r| {
            Ok(EventNotice {
                seq: col(r, "seq")?,
                id: col(r, "id")?,
                webhook_id: col(r, "webhook_id")?,
                event: col(r, "event")?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let (webhooks, webhook_rev) = super::webhooks::changed_since(c, since.webhook_rev, limit)?;
    let cursor = ChangeCursor {
        event_seq: events.last().map_or(since.event_seq, |e| e.seq),
        webhook_rev,
    };
    Ok(Changes {
        events,
        webhooks,
        cursor,
        // One writer hands out `seq` in commit order: nothing committed waits on anything.
        settling: false,
    })
}

pub(super) fn change_cursor(c: &Connection) -> Result<ChangeCursor> {
    Ok(
        c.query_row(crate::store::events::CHANGE_CURSOR, [i64::MAX], |r| {
            Ok(ChangeCursor {
                event_seq: col(r, "event_seq")?,
                webhook_rev: col(r, "webhook_rev")?,
            })
        })?,
    )
}

#[cfg(test)]
mod tests {
    /// The writer's queue is `RECEIPT_QUEUE` slots of a job each, all touched when the store
    /// opens: a job that grows (a receipt or an event inline) grows every idle process.
    #[test]
    fn a_queued_job_stays_small() {
        let size = std::mem::size_of::<super::ReceiptJob>();
        assert!(size <= 48, "ReceiptJob is {size} bytes");
    }
}
