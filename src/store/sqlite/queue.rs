//! The durable outbound queue: messages and their pending attempts.
//!
//! An attempt is a delivery row written `pending` with its due time before anything is sent.
//! A worker claims due rows by setting a lease; the result is written back to the same row,
//! with the next attempt (if any) inserted in the same transaction. Leases left by a crash are
//! released at start-up, so every pending or in-flight attempt resumes (at least once).

use std::collections::HashMap;

use rusqlite::{params, params_from_iter, Connection, OptionalExtension};

use super::attempt_row;
use super::col;
use super::deliveries::insert_attempt;
use super::webhooks::record_change;
use crate::error::Result;
use crate::model::{Attempt, MessageId, Millis, Webhook, WebhookId};
use crate::store::instances;
use crate::store::queue as statements;
use crate::store::rows::STORED_DELIVERY_COLUMNS;
use crate::store::sql::Statement;
use crate::store::{
    json_text, Claimed, Completion, HealthChange, InstanceId, MessageState, Outgoing,
};

pub(super) fn enqueue(c: &Connection, items: &[Outgoing]) -> Result<()> {
    for Outgoing { message: m, first } in items {
        c.prepare_cached(statements::INSERT_MESSAGE)?
            .execute(params![
                m.id,
                m.webhook_id,
                m.event,
                m.event_id,
                m.body,
                m.created_at
            ])?;
        insert_attempt(c, first)?;
    }
    Ok(())
}

pub(super) fn claim_due(
    c: &Connection,
    owner: &InstanceId,
    now: Millis,
    limit: usize,
    lease_until: Millis,
    keys: &crate::store::sealing::Keyring,
) -> Result<Vec<Claimed>> {
    // In a write transaction: SQLite's write lock makes it atomic across processes, so no two
    // claimers get the same attempt.
    let mut attempts: Vec<Attempt> = Vec::with_capacity(limit);
    let mut left = limit;
    while left > 0 {
        // SQLite plans with a bound LIMIT's value: binding another one re-prepares the
        // statement, and the worker's limit (its free slots) changes from claim to claim. So
        // each chunk is a power of two written into its own cached statement.
        let chunk = 1 << left.ilog2();
        let mut stmt = c.prepare_cached(&format!(
            "UPDATE deliveries SET lease_until = ?1, lease_owner = ?3 WHERE seq IN ( \
               SELECT seq FROM deliveries WHERE status = 'pending' AND next_attempt_at <= ?2 \
               AND (lease_until IS NULL OR lease_until < ?2) ORDER BY next_attempt_at \
               LIMIT {chunk}) \
             RETURNING {STORED_DELIVERY_COLUMNS}, NULL AS message_body"
        ))?;
        let before = attempts.len();
        for row in stmt.query_map(params![lease_until, now, owner.0], attempt_row)? {
            attempts.push(row?);
        }
        if attempts.len() - before < chunk {
            break;
        }
        left -= chunk;
    }
    // Each webhook once per claim, however many of its attempts are in it.
    let mut webhooks: HashMap<WebhookId, Option<Webhook>> = HashMap::new();
    let mut out = Vec::with_capacity(attempts.len());
    for attempt in attempts {
        let body: String = c
            .prepare_cached(statements::MESSAGE_BODY)?
            .query_row([&attempt.message_id], |r| col(r, "body"))
            .optional()?
            .unwrap_or_default();
        let webhook = match webhooks.get(&attempt.webhook_id) {
            Some(w) => w.clone(),
            None => {
                let w = super::webhooks::get(c, &attempt.webhook_id, keys)?;
                webhooks.insert(attempt.webhook_id.clone(), w.clone());
                w
            }
        };
        out.push(Claimed {
            attempt,
            body,
            webhook,
        });
    }
    Ok(out)
}

pub(super) fn complete(c: &Connection, done: &Completion) -> Result<()> {
    let a = &done.attempt;
    c.prepare_cached(statements::COMPLETE)?.execute(params![
        a.status,
        a.status_code,
        a.duration_ms,
        a.error,
        json_text(&a.request_headers),
        json_text(&a.response_headers),
        a.response_body,
        a.next_attempt_at,
        a.url,
        a.created_at,
        a.id,
    ])?;
    if let Some(next) = &done.next {
        insert_attempt(c, next)?;
    }
    let changed = match &done.health {
        HealthChange::None => 0,
        // Only a webhook that was failing changes: a success on a healthy one writes nothing.
        HealthChange::Success => c
            .prepare_cached(statements::HEALTHY)?
            .execute([&a.webhook_id])?,
        HealthChange::Failure { disable } => {
            let s = statements::failing(&a.webhook_id, a.created_at, disable.as_deref());
            c.prepare_cached(&s.sql)?
                .execute(params_from_iter(&s.args))?
        }
    };
    if changed > 0 {
        record_change(c, &a.webhook_id, a.created_at)?;
    }
    Ok(())
}

pub(super) fn next_due_at(c: &Connection) -> Result<Option<Millis>> {
    Ok(c.query_row(statements::NEXT_DUE, [], |r| r.get(0))?)
}

/// Runs the statements in order (in the caller's transaction); the counts of rows changed.
fn run_all<const N: usize>(c: &Connection, all: [Statement; N]) -> Result<[usize; N]> {
    let mut counts = [0; N];
    for (n, s) in counts.iter_mut().zip(&all) {
        *n = c
            .prepare_cached(&s.sql)?
            .execute(params_from_iter(&s.args))?;
    }
    Ok(counts)
}

pub(super) fn retire(c: &Connection, owner: &InstanceId) -> Result<usize> {
    Ok(run_all(c, instances::retire(owner))?[0])
}

pub(super) fn heartbeat(c: &Connection, id: &InstanceId, now: Millis) -> Result<()> {
    run_all(c, [instances::heartbeat(id, now)]).map(drop)
}

pub(super) fn reap_dead(c: &Connection, stale_before: Millis) -> Result<usize> {
    Ok(run_all(c, instances::reap(stale_before))?[1])
}

pub(super) fn try_job_lock(
    c: &Connection,
    name: &str,
    owner: &InstanceId,
    now: Millis,
    until: Millis,
) -> Result<bool> {
    Ok(run_all(c, [instances::try_job_lock(name, owner, now, until)])?[0] == 1)
}

pub(super) fn finally_failed(
    c: &Connection,
    webhook_id: &WebhookId,
    since: Millis,
    until: Millis,
) -> Result<Vec<Attempt>> {
    let s = crate::store::queue::finally_failed(webhook_id, since, until);
    let mut stmt = c.prepare_cached(&s.sql)?;
    let rows = stmt.query_map(params_from_iter(&s.args), attempt_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

pub(super) fn message_state(c: &Connection, id: &MessageId) -> Result<MessageState> {
    Ok(c.query_row(statements::MESSAGE_STATE, [id], |r| {
        Ok(MessageState {
            last_attempt: col(r, "last_attempt")?,
            pending: col(r, "pending")?,
        })
    })?)
}
