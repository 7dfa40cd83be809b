//! Ingest: one writer per process, on a thread and runtime of its own (`PgStore::connect`),
//! commits whatever receipts have queued up in one transaction, with array inserts, holding
//! the store's ingest lock in shared mode (see the module doc of `postgres` for why that lets
//! readers by cursor skip nothing). The batch's statements are pipelined: a batch without
//! relays is one round trip of two statements (`ingest_batch` and `announce_commit`, each
//! answered with one write to the socket). Duplicates are the rows the insert skipped (`ON CONFLICT DO
//! NOTHING`), looked up and logged after the commit.

use std::collections::HashMap;
use std::sync::Arc;

use deadpool_postgres::{GenericClient, Pool};
use futures_util::future::{join, try_join_all};
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use super::client::{col, Cached};
use super::insert_outgoing;
use crate::error::{Error, Result};
use crate::model::{Event, EventId, Receipt, WebhookId};
use crate::store::sql::numbered;
use crate::store::{events, json_text, Ingest, InsertOutcome};

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
    /// Whether other instances are live: only then are commits spelled out (their notices
    /// would be no news to anyone else; a listener that heartbeats nothing, such as `events
    /// tail`, reads the store on the bare tag).
    pub(super) peers: Arc<std::sync::atomic::AtomicBool>,
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
        match write_batch(&pool, &batch, &announce, &mut keys, ingest_lock).await {
            Ok((stored, follows)) => {
                tracing::debug!(
                    receipts = batch.len(),
                    commit_us = started.elapsed().as_micros() as u64,
                    follows = ?follows,
                    "receipt batch committed"
                );
                // Announced before any sender hears back, duplicates' receipts after.
                announce.commits.announce(
                    batch
                        .iter()
                        .zip(&stored)
                        .filter_map(|(j, s)| Some((&j.ingest.event, s.as_ref()?))),
                    |_| follows,
                );
                let outcomes = settle_duplicates(&pool, &mut batch, stored, &keys).await;
                for (job, outcome) in batch.into_iter().zip(outcomes) {
                    let _ = job.reply.send(outcome);
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

const BEGIN: &str = "BEGIN";
const COMMIT: &str = "COMMIT";
/// The batch's lock, mark and events in one statement (schema 16): the store's ingest lock in
/// shared mode before the transaction has an id; where its `seq`s begin, for `ANNOUNCE` (a
/// rollback undoes it); the events from one array per column (`store::events::INSERT_COLUMNS`),
/// `seq` from the transaction's id and the place in the batch (schema 11). Rows go in by
/// (webhook, provider id), so that two instances' batches take the unique index's entries in
/// one order and never deadlock; a provider id stored before, by another instance meanwhile or
/// earlier in the same batch (`place` breaks the tie: the first one sent wins) is skipped, and
/// the rows not returned are the batch's duplicates. Arguments: the lock's two keys, then the
/// columns' arrays.
const INGEST_BATCH: &str =
    "SELECT id, seq FROM ingest_batch($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
/// Sent right after the commit, in a transaction of its own (schema 15): tells the other
/// instances of the batch's events in `NOTIFY`s and returns what they follow on from.
/// Arguments: the channel, this process's tag, the batch's number of events, and its notices
/// in parts with the place each part starts at (`notice_parts`). A `NOTIFY` inside the
/// batch's transaction would hold the server-wide notify lock (`PreCommit_Notify`, taken on
/// "database 0" until the transaction ends) across the commit's WAL flush, and so make every
/// instance's ingest commits wait for each other's. Lost only if the process dies between the
/// two, which costs the other instances' feeds latency (they read the store past a gap), never
/// an event.
const ANNOUNCE: &str = "SELECT announce_commit($1, $2, $3, $4, $5)";
/// The most bytes of notices one `NOTIFY` carries: with its header (tag, follows, low: under
/// 100 bytes) below PostgreSQL's limit of 8,000.
const NOTICE_BYTES: usize = 7_000;

/// Writes one batch's new events (and their relays) in one transaction; returns each job's
/// `seq` when its event was stored, `None` for a duplicate (`settle_duplicates` looks it up),
/// and what the stored events follow on from (`CommittedEvents::follows`).
///
/// The statements go out pipelined: a batch without relays is one round trip of two
/// statements (`INGEST_BATCH`, committed on its own, and the announcement that tells the other
/// instances and says what the batch follows on from); with relays, `BEGIN` comes first, and
/// the relays' inserts, `COMMIT` and the announcement follow the batch's answer.
async fn write_batch(
    pool: &Pool,
    batch: &[IngestJob],
    announce: &Announce,
    keys: &mut HashMap<WebhookId, i64>,
    ingest_lock: i32,
) -> Result<(Vec<Option<InsertOutcome>>, Option<i64>)> {
    let client = pool.get().await?;
    let unknown: Vec<&WebhookId> = batch
        .iter()
        .map(|j| &j.ingest.event.webhook_id)
        .filter(|w| !keys.contains_key(*w))
        .collect();
    if !unknown.is_empty() {
        // A webhook's first event in this process: its key, committed on its own (a key is
        // never deleted, so one made for a batch that then fails stays right).
        keys.extend(webhook_keys(&client, unknown.into_iter()).await?);
    }
    let key_of = |w: &WebhookId| key_in(keys, w);
    let mut cols: [Vec<Option<&str>>; 5] = Default::default();
    let mut headers: Vec<String> = Vec::with_capacity(batch.len());
    let mut webhooks: Vec<i64> = Vec::with_capacity(batch.len());
    let mut received: Vec<i64> = Vec::with_capacity(batch.len());
    let mut request: Vec<bool> = Vec::with_capacity(batch.len());
    let ids: Vec<String> = batch
        .iter()
        .map(|j| j.ingest.event.id.to_string())
        .collect();
    for (j, id) in batch.iter().map(|j| &j.ingest).zip(&ids) {
        let e = &j.event;
        headers.push(json_text(&e.headers));
        webhooks.push(key_of(&e.webhook_id)?);
        received.push(e.received_at);
        request.push(j.receipt.is_some());
        cols[0].push(Some(id));
        cols[1].push(e.provider_event_id.as_deref());
        cols[2].push(Some(&e.event));
        cols[4].push(Some(&j.body));
    }
    cols[3] = headers.iter().map(|h| Some(h.as_str())).collect();
    let ingest_batch = client.prepare_cached(INGEST_BATCH).await?;
    let announce_commit = client.prepare_cached(ANNOUNCE).await?;
    let batch_params: [&(dyn ToSql + Sync); 10] = [
        &INGEST_LOCK_CLASS,
        &ingest_lock,
        &cols[0],
        &webhooks,
        &cols[1],
        &cols[2],
        &cols[3],
        &cols[4],
        &received,
        &request,
    ];
    let spell_out = announce.peers.load(std::sync::atomic::Ordering::Relaxed);
    let (parts, starts) = match spell_out.then(|| notice_parts(batch)).flatten() {
        Some((parts, starts)) => (Some(parts), starts),
        None => (None, vec![]),
    };
    let events = batch.len() as i32;
    let announce_params: [&(dyn ToSql + Sync); 5] = [
        &&*announce.channel,
        &&*announce.own_events,
        &events,
        &parts,
        &starts,
    ];
    let relays = batch.iter().any(|j| !j.ingest.relays.is_empty());
    // Statements are sent in this order on the connection when first polled (`join` polls in
    // order).
    let (stored, follows) = if relays {
        // The relays go in the events' transaction: only those of events stored.
        let written = async {
            let (begun, rows) = join(
                client.batch_execute(BEGIN),
                client.query(&ingest_batch, &batch_params),
            )
            .await;
            begun?;
            let stored = seqs(&rows?, &ids)?;
            for (job, seq) in batch.iter().zip(&stored) {
                if seq.is_some() {
                    for relay in &job.ingest.relays {
                        insert_outgoing(&client, relay).await?;
                    }
                }
            }
            Ok::<_, Error>(stored)
        }
        .await;
        let stored = match written {
            Ok(written) => written,
            Err(e) => {
                // Never back into the pool inside a transaction.
                let _ = client.batch_execute("ROLLBACK").await;
                return Err(e);
            }
        };
        let (committed, announced) = join(
            client.batch_execute(COMMIT),
            client.query_one(&announce_commit, &announce_params),
        )
        .await;
        committed?;
        (stored, follows_on(announced))
    } else {
        // One statement, committed on its own (an implicit transaction; nothing of it is
        // committed if it fails), then the announcement.
        let (rows, announced) = join(
            client.query(&ingest_batch, &batch_params),
            client.query_one(&announce_commit, &announce_params),
        )
        .await;
        (seqs(&rows?, &ids)?, follows_on(announced))
    };
    let stored = stored
        .into_iter()
        .map(|s| s.map(InsertOutcome::Stored))
        .collect();
    Ok((stored, follows))
}

/// What a batch's stored events follow on from, as `ANNOUNCE` found after the commit: the
/// newest event below them when no other batch could still commit below the newest of them,
/// else unknown. A failed announcement is only logged: the events are committed, and every
/// feed (this process's too) finds them by reading the store.
fn follows_on(announced: std::result::Result<Row, tokio_postgres::Error>) -> Option<i64> {
    match announced.and_then(|row| row.try_get::<_, Option<i64>>(0)) {
        Ok(follows) => follows,
        Err(e) => {
            tracing::warn!(error = %e, "could not announce committed events to other instances");
            None
        }
    }
}

/// The batch's notices for the other instances (`announce_commit`): `[[place, id, webhook id,
/// event type], …]` in parts of at most `NOTICE_BYTES`, `place` counted from 1 in batch order
/// as the insert numbers them, and the place each part starts at. `None` when one notice alone
/// is too large (an event type of thousands of bytes): the others then read the store.
fn notice_parts(batch: &[IngestJob]) -> Option<(Vec<String>, Vec<i32>)> {
    let (mut parts, mut starts, mut part) = (vec![], vec![], String::new());
    for (i, job) in batch.iter().enumerate() {
        let e = &job.ingest.event;
        let place = i as i32 + 1;
        let notice =
            serde_json::to_string(&(place, e.id.as_str(), e.webhook_id.as_str(), &e.event)).ok()?;
        if notice.len() + 2 > NOTICE_BYTES {
            return None;
        }
        if !part.is_empty() && part.len() + notice.len() + 2 > NOTICE_BYTES {
            part.push(']');
            parts.push(std::mem::take(&mut part));
        }
        if part.is_empty() {
            part.push('[');
            starts.push(place);
        } else {
            part.push(',');
        }
        part.push_str(&notice);
    }
    if !part.is_empty() {
        part.push(']');
        parts.push(part);
    }
    Some((parts, starts))
}

/// The integer key events name webhook `w` by, among those this writer knows.
fn key_in(keys: &HashMap<WebhookId, i64>, w: &WebhookId) -> Result<i64> {
    keys.get(w)
        .copied()
        .ok_or_else(|| Error::Store(format!("webhook {w} has no key")))
}

/// Each job's `seq` from the insert's returned rows, `None` where its row was skipped.
fn seqs(rows: &[Row], ids: &[String]) -> Result<Vec<Option<i64>>> {
    let mut seqs: HashMap<String, i64> = HashMap::with_capacity(rows.len());
    for row in rows {
        seqs.insert(col(row, "id")?, col(row, "seq")?);
    }
    Ok(ids.iter().map(|id| seqs.get(id).copied()).collect())
}

/// The outcome of every job once its batch committed: the skipped rows are duplicates of the
/// event stored under the same (webhook, provider id), before or earlier in the batch; their
/// receipts are logged as such. A failure here fails only the duplicates (the sender retries).
async fn settle_duplicates(
    pool: &Pool,
    batch: &mut [IngestJob],
    stored: Vec<Option<InsertOutcome>>,
    keys: &HashMap<WebhookId, i64>,
) -> Vec<Result<InsertOutcome>> {
    if stored.iter().all(Option::is_some) {
        return stored
            .into_iter()
            .map(|s| Ok(s.expect("all stored")))
            .collect();
    }
    let key_of = |w: &WebhookId| key_in(keys, w);
    let looked_up = async {
        let client = pool.get().await?;
        let skipped = batch
            .iter()
            .zip(&stored)
            .filter(|(_, s)| s.is_none())
            .map(|(j, _)| &j.ingest.event);
        known_provider_ids(&client, skipped, &key_of).await
    }
    .await;
    let known = match looked_up {
        Ok(known) => known,
        Err(e) => {
            let error = e.for_each_caller("a skipped duplicate could not be looked up");
            return stored.into_iter().map(|s| s.ok_or_else(&error)).collect();
        }
    };
    let mut outcomes = Vec::with_capacity(batch.len());
    for (job, s) in batch.iter_mut().zip(stored) {
        outcomes.push(match s {
            Some(s) => Ok(s),
            None => {
                let Ingest { event, receipt, .. } = &mut job.ingest;
                let id = key_of(&event.webhook_id).and_then(|k| {
                    let pid = event.provider_event_id.clone().unwrap_or_default();
                    known.get(&(k, pid)).cloned().ok_or_else(|| {
                        Error::Store("an event conflicted with one that cannot be found".into())
                    })
                });
                id.map(|id| {
                    mark_duplicate(receipt, &id);
                    InsertOutcome::Duplicate(id)
                })
            }
        });
    }
    let receipts: Vec<&Receipt> = batch
        .iter()
        .zip(&outcomes)
        .filter(|(_, o)| matches!(o, Ok(InsertOutcome::Duplicate(_))))
        .filter_map(|(j, _)| j.ingest.receipt.as_ref())
        .collect();
    let logged = async { insert_receipts(&pool.get().await?, &receipts).await }.await;
    if let Err(e) = logged {
        let error = e.for_each_caller("a duplicate's receipt was not stored");
        for o in outcomes.iter_mut() {
            if matches!(o, Ok(InsertOutcome::Duplicate(_))) {
                *o = Err(error());
            }
        }
    }
    outcomes
}

/// The keys of `ids`, made for those that have none yet (each committed on its own).
async fn webhook_keys<'a>(
    c: &impl GenericClient,
    ids: impl Iterator<Item = &'a WebhookId>,
) -> Result<HashMap<WebhookId, i64>> {
    let mut ids: Vec<&WebhookId> = ids.collect();
    ids.sort_unstable();
    ids.dedup();
    let mut keys = HashMap::with_capacity(ids.len());
    for id in ids {
        c.execute_cached(&numbered(events::MAKE_KEY), &[&id.as_str()])
            .await?;
        let row = c
            .query_one_cached(&numbered(events::KEY), &[&id.as_str()])
            .await?;
        keys.insert(id.clone(), col(&row, "key")?);
    }
    Ok(keys)
}

/// The stored events that have the (webhook, provider id) of one of `skipped`, by that pair
/// (the webhook by its key): one lookup each, pipelined.
async fn known_provider_ids<'a>(
    c: &impl GenericClient,
    skipped: impl Iterator<Item = &'a Event>,
    key_of: &impl Fn(&WebhookId) -> Result<i64>,
) -> Result<HashMap<(i64, String), EventId>> {
    let mut pairs: Vec<(i64, &str)> = vec![];
    for e in skipped {
        if let Some(p) = &e.provider_event_id {
            pairs.push((key_of(&e.webhook_id)?, p));
        }
    }
    let sql = numbered(events::DUPLICATE_OF);
    let found = try_join_all(pairs.iter().map(|(hook, pid)| {
        let sql = &sql;
        async move { c.query_opt_cached(sql, &[hook, pid]).await }
    }))
    .await?;
    let mut known = HashMap::new();
    for ((hook, pid), row) in pairs.into_iter().zip(found) {
        if let Some(row) = row {
            known.insert(
                (hook, pid.to_string()),
                EventId::from(col::<String>(&row, "id")?),
            );
        }
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

/// Writes `receipts`, pipelined on `c`.
pub(super) async fn insert_receipts(c: &impl GenericClient, receipts: &[&Receipt]) -> Result<()> {
    try_join_all(receipts.iter().map(|r| async move {
        let s = crate::store::log::insert_receipt(r);
        super::client::execute(c, &s).await
    }))
    .await?;
    Ok(())
}
