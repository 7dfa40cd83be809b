//! Ingest: one writer task per process commits whatever receipts have queued up in one
//! transaction, with array inserts, holding the store's ingest lock in shared mode (see the
//! module doc of `postgres` for why that lets readers by cursor skip nothing).

use std::collections::HashMap;
use std::sync::Arc;

use deadpool_postgres::{GenericClient, Pool};
use tokio::sync::{mpsc, oneshot};

use super::client::{col, Cached};
use super::insert_outgoing;
use crate::error::{Error, Result};
use crate::model::{enum_text, Event, EventId, Receipt, WebhookId};
use crate::store::{json_text, Ingest, InsertOutcome};

/// Every ingest transaction holds `(INGEST_LOCK_CLASS, the store's ingest_lock)` in shared
/// mode; `settled_seq()` (schema 11) looks for its holders under the same two keys.
const INGEST_LOCK_CLASS: i32 = 0x7765_6268;
pub(super) const INGEST_LOCK: &str = "SELECT value::int4 FROM meta WHERE key = 'ingest_lock'";
/// Most receipts committed together: below the 1024 places of one transaction's `seq`s
/// (schema 11).
const MAX_BATCH: usize = 512;
const _: () = assert!(MAX_BATCH < 1024);

pub(super) struct IngestJob {
    pub(super) ingest: Ingest,
    pub(super) reply: oneshot::Sender<Result<InsertOutcome>>,
}

/// How the ingest writer tells of its commits: `NOTIFY` to the other processes (tagged, so this
/// process's listener skips it) and `Commits` to this one.
pub(super) struct Announce {
    pub(super) channel: Arc<str>,
    pub(super) own_events: Arc<str>,
    pub(super) commits: crate::store::Commits,
}

pub(super) async fn ingest_writer(
    pool: Pool,
    mut jobs: mpsc::Receiver<IngestJob>,
    announce: Announce,
    ingest_lock: i32,
) {
    // The integer keys events name their webhook by, as committed: a key is never reused nor
    // deleted, so what is known here stays true.
    let mut keys: HashMap<WebhookId, i64> = HashMap::new();
    while let Some(first) = jobs.recv().await {
        let mut batch = crate::store::batch_after(first, MAX_BATCH, || jobs.try_recv().ok());
        let started = std::time::Instant::now();
        match write_batch(&pool, &mut batch, &announce, &keys, ingest_lock).await {
            Ok((outcomes, made)) => {
                keys.extend(made);
                tracing::debug!(
                    receipts = batch.len(),
                    commit_us = started.elapsed().as_micros() as u64,
                    "receipt batch committed"
                );
                announce
                    .commits
                    .announce(batch.iter().map(|j| &j.ingest.event).zip(&outcomes));
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

/// Writes one batch; returns each job's outcome and the webhook keys the batch made (known only
/// once it commits).
async fn write_batch(
    pool: &Pool,
    batch: &mut [IngestJob],
    announce: &Announce,
    known_keys: &HashMap<WebhookId, i64>,
    ingest_lock: i32,
) -> Result<(Vec<InsertOutcome>, HashMap<WebhookId, i64>)> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    // Before the transaction has an id: readers find it among the holders (schema 11).
    tx.execute_cached(
        "SELECT pg_advisory_xact_lock_shared($1, $2)",
        &[&INGEST_LOCK_CLASS, &ingest_lock],
    )
    .await?;
    let made = webhook_keys(
        &tx,
        batch
            .iter()
            .map(|j| &j.ingest.event.webhook_id)
            .filter(|w| !known_keys.contains_key(*w)),
    )
    .await?;
    let key_of = |w: &WebhookId| -> Result<i64> {
        known_keys
            .get(w)
            .or_else(|| made.get(w))
            .copied()
            .ok_or_else(|| Error::Store(format!("webhook {w} has no key")))
    };
    // Which provider ids are stored already: one query for the batch.
    let mut known = known_provider_ids(&tx, batch.iter().map(|j| &j.ingest.event), &key_of).await?;
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut new_events: Vec<usize> = vec![];
    for (i, job) in batch.iter_mut().enumerate() {
        let Ingest { event, receipt, .. } = &mut job.ingest;
        let key = match &event.provider_event_id {
            Some(p) => Some((key_of(&event.webhook_id)?, p.clone())),
            None => None,
        };
        match key.as_ref().and_then(|k| known.get(k)) {
            Some(id) => {
                mark_duplicate(receipt, id);
                outcomes.push(InsertOutcome::Duplicate(id.clone()));
            }
            None => {
                if let Some(k) = key {
                    // A repeat later in the same batch is a duplicate of this one.
                    known.insert(k, event.id.clone());
                }
                // The event is its request's receipt: no row of its own.
                new_events.push(i);
                outcomes.push(InsertOutcome::Stored(0));
            }
        }
    }
    if !new_events.is_empty() {
        let mut cols: [Vec<Option<String>>; 5] = Default::default();
        let mut webhooks: Vec<i64> = vec![];
        let mut received: Vec<i64> = vec![];
        let mut request: Vec<bool> = vec![];
        for &i in &new_events {
            let j = &batch[i].ingest;
            let e = &j.event;
            cols[0].push(Some(e.id.to_string()));
            webhooks.push(key_of(&e.webhook_id)?);
            cols[1].push(e.provider_event_id.clone());
            cols[2].push(Some(e.event.clone()));
            cols[3].push(Some(json_text(&e.headers)));
            cols[4].push(Some(j.body.clone()));
            received.push(e.received_at);
            request.push(j.receipt.is_some());
        }
        let rows = tx
            .query_cached(
                // `seq` from the transaction's id and the place in the batch (schema 11); rows
                // go in by (webhook, provider id), so that two instances' batches take the
                // unique index's entries in one order and never deadlock. A provider id
                // another insert stored meanwhile is skipped, reported below.
                "INSERT INTO events (seq, id, webhook, provider_event_id, event, headers, payload, received_at, request) \
                 SELECT event_seq(u.place), u.id, u.webhook, u.pid, u.event, u.headers, u.payload, u.received_at, u.request \
                 FROM unnest($1::text[], $2::int8[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int8[], $8::bool[]) \
                     WITH ORDINALITY AS u(id, webhook, pid, event, headers, payload, received_at, request, place) \
                 ORDER BY u.webhook, u.pid \
                 ON CONFLICT (webhook, provider_event_id) DO NOTHING \
                 RETURNING id, seq",
                &[&cols[0], &webhooks, &cols[1], &cols[2], &cols[3], &cols[4], &received, &request],
            )
            .await?;
        let mut seqs: HashMap<String, i64> = HashMap::new();
        for row in rows {
            seqs.insert(col(&row, "id")?, col(&row, "seq")?);
        }
        let mut raced = vec![];
        for &i in &new_events {
            let id = batch[i].ingest.event.id.to_string();
            match seqs.get(&id) {
                Some(&seq) => {
                    outcomes[i] = InsertOutcome::Stored(seq);
                    for relay in &batch[i].ingest.relays {
                        insert_outgoing(&tx, relay).await?;
                    }
                }
                None => raced.push(i),
            }
        }
        if !raced.is_empty() {
            // Another instance committed the same provider ids first: duplicates of its events.
            let theirs =
                known_provider_ids(&tx, raced.iter().map(|&i| &batch[i].ingest.event), &key_of)
                    .await?;
            for i in raced {
                let Ingest { event, receipt, .. } = &mut batch[i].ingest;
                let key = (
                    key_of(&event.webhook_id)?,
                    event.provider_event_id.clone().unwrap_or_default(),
                );
                let id = theirs.get(&key).cloned().ok_or_else(|| {
                    Error::Store("an event conflicted with one that cannot be found".into())
                })?;
                mark_duplicate(receipt, &id);
                outcomes[i] = InsertOutcome::Duplicate(id);
            }
        }
    }
    // Receipts of duplicates only: a stored event is its own.
    let receipts: Vec<&Receipt> = batch
        .iter()
        .zip(&outcomes)
        .filter(|(_, o)| matches!(o, InsertOutcome::Duplicate(_)))
        .filter_map(|(j, _)| j.ingest.receipt.as_ref())
        .collect();
    insert_receipts(&tx, &receipts).await?;
    if !new_events.is_empty() {
        tx.execute_cached(
            "SELECT pg_notify($1, $2)",
            &[&&*announce.channel, &&*announce.own_events],
        )
        .await?;
    }
    tx.commit().await?;
    Ok((outcomes, made))
}

/// The keys of `ids` (made for those that have none yet), in the caller's transaction.
async fn webhook_keys<'a>(
    c: &impl GenericClient,
    ids: impl Iterator<Item = &'a WebhookId>,
) -> Result<HashMap<WebhookId, i64>> {
    let mut ids: Vec<&str> = ids.map(|w| w.as_str()).collect();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    ids.sort_unstable();
    ids.dedup();
    c.execute_cached(
        "INSERT INTO webhook_keys (id) SELECT unnest($1::text[]) ON CONFLICT (id) DO NOTHING",
        &[&ids],
    )
    .await?;
    c.query_cached(
        "SELECT key, id FROM webhook_keys WHERE id = ANY($1)",
        &[&ids],
    )
    .await?
    .iter()
    .map(|r| Ok((WebhookId::from(col::<String>(r, "id")?), col(r, "key")?)))
    .collect()
}

/// The stored events that have the (webhook, provider id) of one of `events`, by that pair
/// (the webhook by its key): one query for any number of events.
async fn known_provider_ids<'a>(
    c: &impl GenericClient,
    events: impl Iterator<Item = &'a Event>,
    key_of: &impl Fn(&WebhookId) -> Result<i64>,
) -> Result<HashMap<(i64, String), EventId>> {
    let mut hooks: Vec<i64> = vec![];
    let mut pids: Vec<&str> = vec![];
    for e in events {
        if let Some(p) = &e.provider_event_id {
            hooks.push(key_of(&e.webhook_id)?);
            pids.push(p);
        }
    }
    let mut known = HashMap::new();
    if hooks.is_empty() {
        return Ok(known);
    }
    let rows = c
        .query_cached(
            "SELECT e.id, e.webhook, e.provider_event_id FROM events e \
             JOIN unnest($1::int8[], $2::text[]) AS k(w, p) \
             ON e.webhook = k.w AND e.provider_event_id = k.p",
            &[&hooks, &pids],
        )
        .await?;
    for row in rows {
        known.insert(
            (col(&row, "webhook")?, col(&row, "provider_event_id")?),
            EventId::from(col::<String>(&row, "id")?),
        );
    }
    Ok(known)
}

/// Logs a duplicate's receipt as one (the event it repeats, and why nothing was stored).
fn mark_duplicate(receipt: &mut Option<Receipt>, id: &EventId) {
    if let Some(receipt) = receipt.as_mut() {
        receipt.event_id = Some(id.clone());
        receipt.error = Some(format!(
            "duplicate: provider event id already received as event {id}; acknowledged, not stored again"
        ));
    }
}

pub(super) async fn insert_receipts(c: &impl GenericClient, receipts: &[&Receipt]) -> Result<()> {
    if receipts.is_empty() {
        return Ok(());
    }
    let mut text: [Vec<Option<String>>; 8] = Default::default();
    let mut ints: [Vec<Option<i64>>; 2] = Default::default();
    for r in receipts {
        text[0].push(Some(r.id.to_string()));
        text[1].push(Some(r.webhook_id.to_string()));
        text[2].push(r.event_id.as_ref().map(|e| e.to_string()));
        text[3].push(r.event.clone());
        text[4].push(Some(r.url.clone()));
        text[5].push(Some(enum_text(&r.status)));
        text[6].push(r.error.clone());
        text[7].push(r.request_body.clone());
        ints[0].push(r.status_code);
        ints[1].push(Some(r.created_at));
    }
    let headers: Vec<String> = receipts
        .iter()
        .map(|r| json_text(&r.request_headers))
        .collect();
    c.execute_cached(
        "INSERT INTO deliveries (id, webhook_id, event_id, event, url, status, error, request_body, \
           status_code, created_at, request_headers, direction, trigger, attempt) \
         SELECT *, 'inbound', 'received', 1 FROM unnest($1::text[], $2::text[], $3::text[], \
           $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::int8[], $10::int8[], $11::text[])",
        &[
            &text[0], &text[1], &text[2], &text[3], &text[4], &text[5], &text[6], &text[7],
            &ints[0], &ints[1], &headers,
        ],
    )
    .await?;
    Ok(())
}
