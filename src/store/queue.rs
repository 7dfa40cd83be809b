//! The durable outbound queue: messages and their pending attempts.
//!
//! An attempt is a delivery row written `pending` with its due time before anything is sent.
//! A worker claims due rows by setting a lease; the result is written back to the same row,
//! with the next attempt (if any) inserted in the same transaction. Leases left by a crash are
//! released at start-up, so every pending or in-flight attempt resumes (at least once).

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use super::deliveries::{from_row, insert_delivery, COLUMNS};
use super::Store;
use crate::error::Result;
use crate::model::{Delivery, Millis, Webhook};

/// One event for one outbound webhook, with the exact body every attempt sends.
#[derive(Debug, Clone)]
pub struct Message {
    pub id: String,
    pub webhook_id: String,
    pub event: String,
    pub event_id: Option<String>,
    pub body: String,
    pub created_at: Millis,
}

/// A claimed attempt with what is needed to send it.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub attempt: Delivery,
    pub body: String,
    /// `None` when the webhook was deleted since the message was queued.
    pub webhook: Option<Webhook>,
}

/// How an attempt's outcome changes its webhook.
#[derive(Debug, Clone, PartialEq)]
pub enum HealthChange {
    None,
    Success,
    Failure { disable: Option<String> },
}

/// A finished attempt: the row's final state, the next attempt to queue, the webhook change.
#[derive(Debug, Clone)]
pub struct Completion {
    pub attempt: Delivery,
    pub next: Option<Delivery>,
    pub health: HealthChange,
}

impl Store {
    /// Queues messages with their first attempts, in one transaction.
    pub async fn enqueue(&self, items: Vec<(Message, Delivery)>) -> Result<()> {
        self.call(move |c| {
            let tx = c.transaction()?;
            enqueue_tx(&tx, &items)?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    /// Queues a further attempt of an existing message.
    pub async fn enqueue_attempts(&self, attempts: Vec<Delivery>) -> Result<()> {
        self.call(move |c| {
            let tx = c.transaction()?;
            for a in &attempts {
                insert_delivery(&tx, a)?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    /// Claims up to `limit` due attempts, leasing them until `lease_until`.
    pub async fn claim_due(
        &self,
        now: Millis,
        limit: usize,
        lease_until: Millis,
    ) -> Result<Vec<Claimed>> {
        self.call(move |c| {
            let tx = c.transaction()?;
            let attempts: Vec<Delivery> = {
                let mut stmt = tx.prepare_cached(&format!(
                    "UPDATE deliveries SET lease_until = ?1 WHERE seq IN ( \
                       SELECT seq FROM deliveries WHERE status = 'pending' AND next_attempt_at <= ?2 \
                       AND (lease_until IS NULL OR lease_until < ?2) ORDER BY next_attempt_at LIMIT ?3) \
                     RETURNING {COLUMNS}"
                ))?;
                let rows = stmt.query_map(params![lease_until, now, limit as i64], from_row)?;
                rows.collect::<rusqlite::Result<_>>()?
            };
            let mut out = Vec::with_capacity(attempts.len());
            for attempt in attempts {
                let body: String = tx
                    .query_row(
                        "SELECT body FROM messages WHERE id = ?1",
                        [&attempt.message_id],
                        |r| r.get(0),
                    )
                    .optional()?
                    .unwrap_or_default();
                let webhook = super::webhooks::get(&tx, &attempt.webhook_id)?;
                out.push(Claimed { attempt, body, webhook });
            }
            tx.commit()?;
            Ok(out)
        })
        .await
    }

    /// Writes finished attempts, their follow-ups and webhook health in one transaction.
    pub async fn complete(&self, batch: Vec<Completion>) -> Result<()> {
        // Failure counts and auto-disable change the rows of these webhooks.
        let touched: Vec<String> = batch
            .iter()
            .filter(|d| !matches!(d.health, HealthChange::None))
            .map(|d| d.attempt.webhook_id.clone())
            .collect();
        let result = self
            .call(move |c| {
                let tx = c.transaction()?;
                for done in &batch {
                    complete_tx(&tx, done)?;
                }
                tx.commit()?;
                Ok(())
            })
            .await;
        if !touched.is_empty() {
            self.webhooks.forget(touched.iter().map(String::as_str));
        }
        result
    }

    /// When the earliest unleased pending attempt is due.
    pub async fn next_due_at(&self) -> Result<Option<Millis>> {
        self.call(|c| {
            Ok(c.query_row(
                "SELECT MIN(next_attempt_at) FROM deliveries WHERE status = 'pending' AND lease_until IS NULL",
                [],
                |r| r.get(0),
            )?)
        })
        .await
    }

    /// Frees every lease: called at start-up, when no attempt can be in flight.
    pub async fn release_leases(&self) -> Result<usize> {
        self.call(|c| {
            Ok(c.execute(
                "UPDATE deliveries SET lease_until = NULL WHERE status = 'pending' AND lease_until IS NOT NULL",
                [],
            )?)
        })
        .await
    }

    /// The newest attempt of every message of `webhook_id` created in the window whose newest
    /// attempt failed for good (no retry scheduled).
    pub async fn finally_failed(
        &self,
        webhook_id: &str,
        since: Millis,
        until: Millis,
    ) -> Result<Vec<Delivery>> {
        let webhook_id = webhook_id.to_string();
        self.read(move |c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {COLUMNS} FROM deliveries d WHERE webhook_id = ?1 AND direction = 'outbound' \
                 AND message_id IS NOT NULL AND created_at BETWEEN ?2 AND ?3 \
                 AND seq = (SELECT MAX(seq) FROM deliveries WHERE message_id = d.message_id) \
                 AND status = 'failed' ORDER BY seq"
            ))?;
            let rows = stmt.query_map(params![webhook_id, since, until], from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    /// The highest attempt number of a message so far, and whether one is pending.
    pub async fn message_state(&self, message_id: &str) -> Result<(i64, bool)> {
        let id = message_id.to_string();
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT COALESCE(MAX(attempt), 0), COALESCE(SUM(status = 'pending'), 0) > 0 \
                 FROM deliveries WHERE message_id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?)
        })
        .await
    }
}

pub(super) fn enqueue_tx(tx: &Transaction, items: &[(Message, Delivery)]) -> Result<()> {
    for (m, first) in items {
        tx.prepare_cached(
            "INSERT INTO messages (id, webhook_id, event, event_id, body, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![m.id, m.webhook_id, m.event, m.event_id, m.body, m.created_at])?;
        insert_delivery(tx, first)?;
    }
    Ok(())
}

fn complete_tx(c: &Connection, done: &Completion) -> Result<()> {
    let a = &done.attempt;
    c.prepare_cached(
        "UPDATE deliveries SET status = ?2, status_code = ?3, duration_ms = ?4, error = ?5, \
         request_headers = ?6, request_body = ?7, response_headers = ?8, response_body = ?9, \
         next_attempt_at = ?10, lease_until = NULL, url = ?11, created_at = ?12 WHERE id = ?1",
    )?
    .execute(params![
        a.id,
        a.status.as_str(),
        a.status_code,
        a.duration_ms,
        a.error,
        serde_json::to_string(&a.request_headers).unwrap_or_default(),
        a.request_body,
        serde_json::to_string(&a.response_headers).unwrap_or_default(),
        a.response_body,
        a.next_attempt_at,
        a.url,
        a.created_at,
    ])?;
    if let Some(next) = &done.next {
        insert_delivery(c, next)?;
    }
    match &done.health {
        HealthChange::None => {}
        HealthChange::Success => {
            c.prepare_cached(
                "UPDATE webhooks SET failure_count = 0, first_failure_at = NULL WHERE id = ?1",
            )?
            .execute([&a.webhook_id])?;
        }
        HealthChange::Failure { disable } => {
            c.prepare_cached(
                "UPDATE webhooks SET failure_count = failure_count + 1, \
                 first_failure_at = COALESCE(first_failure_at, ?2), \
                 enabled = CASE WHEN ?3 IS NULL THEN enabled ELSE 0 END, \
                 disabled_reason = COALESCE(?3, disabled_reason) WHERE id = ?1",
            )?
            .execute(params![a.webhook_id, a.created_at, disable])?;
        }
    }
    Ok(())
}
