//! The PostgreSQL backend: any number of instances on any number of hosts share one database.
//!
//! - **Ingest** goes through one writer per process (on a thread and runtime of its own, with
//!   its own connections) that commits whatever receipts have queued up in one transaction,
//!   with array inserts and its statements pipelined (one round trip per batch), and no lock
//!   that makes instances wait for each other: their batches commit in parallel. An event's `seq` is its transaction's id × 1024 + its place in the batch
//!   (`event_seq()`, schema 11), so `seq` order is transaction order, not commit order. Each
//!   ingest transaction holds the store's `ingest_lock` in shared mode from before it has an
//!   id; `settled_seq()` is the lowest seq any holder can still commit (the lowest holder's
//!   id, or the next id to be handed out): from the reader's snapshot when no older
//!   transaction is open (schema 14), else from the holders found in `pg_locks`. A reader by cursor reads it
//!   first and then, in a later statement, only events below it, so a reader at cursor N can
//!   never miss a transaction that commits later with a seq below N. `settled` also waits
//!   (a batch's commit at most) for the batches open when the read began: read-your-writes.
//!   Only this store's batches hold readers back, never other transactions on the server.
//!   Rows go in by (webhook, provider id), so two instances' batches cannot deadlock on the
//!   unique index; a provider id stored by a concurrent insert is skipped (`ON CONFLICT DO
//!   NOTHING`) and reported as a duplicate rather than failing the batch. Webhook changes,
//!   which are rare, take an advisory lock to commit in `rev` order.
//! - **Change feed**: every commit that adds events or changes a webhook sends `NOTIFY` on the
//!   store's channel (ingest right after its commit, outside the transaction: a notifying
//!   transaction holds the server-wide notify lock through its commit, which would make every
//!   instance's ingest commit wait for the others' WAL flushes). An ingest commit's `NOTIFY`
//!   spells out its events and what they follow on from (`announce_commit`, schema 15): one
//!   listening connection per process announces them as its own writer announces its own, so
//!   the feed reads nothing while the commits it hears follow on from each other. Anything
//!   else (a webhook change, an event too large to spell out, a reconnect) wakes the feed,
//!   which catches up by cursor; so does a gap no announcement fills, and a dropped
//!   connection costs latency, never an event.
//! - **Queue**: claims use `FOR UPDATE SKIP LOCKED`, so concurrent claimers on any instance take
//!   disjoint attempts without waiting on each other.
//! - **Migrations** run under a session advisory lock.
//!
//! TLS: with `sslmode=require` in the URL the connection uses rustls with the webpki roots;
//! otherwise plain TCP (the usual for a database on loopback or a private network).

mod client;
mod feed;
mod ingest;
mod schema;
pub(crate) use schema::MIGRATIONS;

use client::{bind, col, execute, manager_config, query, query_opt, Cached, Tls};
use feed::{listen, settled};
use ingest::{ingest_writer, insert_receipts, Announce, IngestJob, INGEST_LOCK};

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use deadpool_postgres::{Manager, Pool};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio_postgres::{NoTls, Row};

use super::cache::WebhookCache;
use super::instances;
use super::log::{self, LogPage};
use super::queue;
use super::rows;
use super::sealing::Keyring;
use super::sql::numbered;
use super::subscriptions;
use super::webhooks as statements;
use super::{
    json_text, ChangeCursor, Changes, Claimed, Completion, DeliveryQuery, EventNotice, EventQuery,
    HealthChange, Ingest, InsertOutcome, InstanceId, MessageState, Outgoing, PruneCutoffs, Pruned,
    WebhookChange, WebhookFilter,
};
use super::{Cluster, DeliveryLog, Events, Maintenance, Queue, Subscriptions, Webhooks};
use crate::error::{Error, Result};
use crate::model::{
    enum_text, Attempt, Delivery, DeliveryId, Event, EventId, EventSubscription, MessageId, Millis,
    Principal, Receipt, Secret, SubscriptionId, Webhook, WebhookId,
};

/// Advisory lock keys (arbitrary constants, one per purpose).
const MIGRATION_LOCK: i64 = 0x7765_6268_6f6f_6b01;
/// The session lock migrations and the re-sealing pass run under (argument: `MIGRATION_LOCK`).
const TAKE_MIGRATION_LOCK: &str = "SELECT pg_advisory_lock($1)";
const FREE_MIGRATION_LOCK: &str = "SELECT pg_advisory_unlock($1)";
const WEBHOOK_REV_LOCK: i64 = 0x7765_6268_6f6f_6b03;
/// How recent another instance's heartbeat must be for this one's writer to spell out its
/// commits (instances heartbeat every second; one silent for 5 s is taken for dead).
const PEER_WINDOW: Millis = 5_000;

#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    cache: Arc<WebhookCache>,
    writer: mpsc::Sender<IngestJob>,
    /// Signalled by the listening connection when another commit may have changed the store.
    changed: Arc<Notify>,
    channel: Arc<str>,
    /// Where the ingest writer announces the events it committed.
    commits: super::Commits,
    /// Whether another instance heartbeated within `PEER_WINDOW` at this one's last heartbeat
    /// (true until then): only then does the writer spell out its commits for others.
    peers: Arc<AtomicBool>,
    store_id: Arc<str>,
    /// Opens and seals the webhooks' secret columns (`--secrets-key`).
    keys: Arc<Keyring>,
}

impl PgStore {
    /// Connects to `url` (`postgres://user@host:port/db?...`), brings the schema up to date and
    /// starts the ingest writer and the change listener.
    /// Connects, brings the schema up to date and seals any secret not yet sealed under
    /// `keys`' sealing key (every instance must be given the same keys).
    pub async fn connect(url: &str, keys: Keyring) -> Result<Self> {
        let config = tokio_postgres::Config::from_str(url)
            .map_err(|e| Error::invalid(format!("--database-url is not a PostgreSQL URL: {e}")))?;
        let tls = Tls::for_mode(config.get_ssl_mode())?;
        let pool = new_pool(&config, &tls, 16)?;
        migrate(&pool).await?;
        let mut client = pool.get().await?;
        client
            .execute_cached(TAKE_MIGRATION_LOCK, &[&MIGRATION_LOCK])
            .await?;
        let resealed = reseal(&mut client, &keys).await;
        client
            .execute_cached(FREE_MIGRATION_LOCK, &[&MIGRATION_LOCK])
            .await?;
        if resealed? > 0 {
            tracing::info!("sealed stored secrets under the current key");
        }
        let store_id: String = client
            .query_one_cached(crate::store::meta::STORE_ID, &[])
            .await?
            .try_get(0)?;
        let ingest_lock: i32 = client
            .query_one_cached(INGEST_LOCK, &[])
            .await?
            .try_get(0)?;
        drop(client);
        let channel: Arc<str> = format!("webhook_mcp_{store_id}").into();
        let changed = Arc::new(Notify::new());
        // This process's own ingest commits are announced by its writer (`Commits`): their
        // NOTIFY, which begins with this tag, is no news to its own listener. The others' are
        // announced by the listener, from their NOTIFYs.
        let own_events: Arc<str> = format!("events:{}", uuid::Uuid::new_v4().simple()).into();
        let commits = super::Commits::default();
        tokio::spawn(listen(
            config.clone(),
            tls.clone(),
            channel.clone(),
            own_events.clone(),
            changed.clone(),
            commits.clone(),
        ));
        let (writer, jobs) = mpsc::channel(super::RECEIPT_QUEUE);
        let peers = Arc::new(AtomicBool::new(true));
        // The writer runs on a thread and runtime of its own, with connections of its own
        // (made, and so driven, there): its wake-ups never queue behind the request tasks.
        let writer_pool = new_pool(&config, &tls, 2)?;
        let announce = Announce {
            channel: channel.clone(),
            own_events,
            commits: commits.clone(),
            peers: peers.clone(),
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Internal(format!("cannot start the ingest writer: {e}")))?;
        std::thread::Builder::new()
            .name("pg-ingest-writer".into())
            .spawn(move || {
                runtime.block_on(ingest_writer(writer_pool, jobs, announce, ingest_lock))
            })
            .map_err(|e| Error::Internal(format!("cannot start the ingest writer: {e}")))?;
        Ok(PgStore {
            pool,
            cache: Arc::default(),
            writer,
            changed,
            channel,
            commits,
            peers,
            store_id: store_id.into(),
            keys: Arc::new(keys),
        })
    }

    /// Re-seals every stored secret under the keyring's sealing key (`secrets rotate-key`);
    /// returns how many webhooks changed.
    pub async fn reseal(&self) -> Result<usize> {
        let mut client = self.client().await?;
        reseal(&mut client, &self.keys).await
    }

    pub fn keyring(&self) -> &Keyring {
        &self.keys
    }

    async fn client(&self) -> Result<deadpool_postgres::Object> {
        Ok(self.pool.get().await?)
    }

    fn forget(&self, ids: &[WebhookId]) {
        self.cache.forget(ids.iter());
    }
}

/// A pool of at most `size` connections, each made (and its connection task spawned) on the
/// runtime that first needs it.
fn new_pool(config: &tokio_postgres::Config, tls: &Tls, size: usize) -> Result<Pool> {
    let manager = match tls {
        Tls::Plain => Manager::from_config(config.clone(), NoTls, manager_config()),
        Tls::Rustls(t) => Manager::from_config(config.clone(), t.clone(), manager_config()),
    };
    Pool::builder(manager)
        .max_size(size)
        .build()
        .map_err(|e| Error::Internal(format!("cannot build the connection pool: {e}")))
}

async fn migrate(pool: &Pool) -> Result<()> {
    let mut client = pool.get().await?;
    client
        .execute(TAKE_MIGRATION_LOCK, &[&MIGRATION_LOCK])
        .await?;
    let result = async {
        client
            .batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
            .await?;
        loop {
            let tx = client.transaction().await?;
            let current: Option<i64> = tx
                .query_opt("SELECT version FROM schema_version", &[])
                .await?
                .map(|r| r.get(0));
            let current = current.unwrap_or(0);
            if current > schema::MIGRATIONS.len() as i64 {
                return Err(Error::Internal(format!(
                    "the database's schema version {current} is newer than this binary knows ({}); upgrade webhook-mcp",
                    schema::MIGRATIONS.len()
                )));
            }
            let Some(sql) = schema::MIGRATIONS.get(current as usize) else {
                return Ok(());
            };
            tx.batch_execute(sql).await?;
            tx.execute("DELETE FROM schema_version", &[]).await?;
            tx.execute(
                "INSERT INTO schema_version (version) VALUES ($1)",
                &[&(current + 1)],
            )
            .await?;
            tx.commit().await?;
            tracing::info!(version = current + 1, "applied database migration");
        }
    }
    .await;
    client
        .execute(FREE_MIGRATION_LOCK, &[&MIGRATION_LOCK])
        .await?;
    result
}

async fn insert_attempt(c: &impl GenericClient, a: &Attempt) -> Result<()> {
    execute(c, &log::insert_attempt(a)).await?;
    Ok(())
}

async fn insert_outgoing(c: &impl GenericClient, o: &Outgoing) -> Result<()> {
    let m = &o.message;
    c.execute_cached(
        &numbered(queue::INSERT_MESSAGE),
        &[
            &m.id.to_string(),
            &m.webhook_id.to_string(),
            &m.event,
            &m.event_id.as_ref().map(|e| e.to_string()),
            &m.body,
            &m.created_at,
        ],
    )
    .await?;
    insert_attempt(c, &o.first).await
}

/// Takes the change-log lock for the rest of the transaction. Called first thing in every
/// transaction that records a webhook change, before any row lock: taken later, two instances
/// could each hold a row the other needs while waiting for the lock (a deadlock).
async fn lock_changes(c: &impl GenericClient) -> Result<()> {
    c.execute_cached("SELECT pg_advisory_xact_lock($1)", &[&WEBHOOK_REV_LOCK])
        .await?;
    Ok(())
}

/// Appends to the webhook change log, in `rev` order across instances (the caller holds
/// `lock_changes`), and wakes every feed.
async fn record_change(
    c: &impl GenericClient,
    channel: &str,
    id: &WebhookId,
    at: Millis,
) -> Result<()> {
    execute(c, &statements::record_change(id, at)).await?;
    c.execute_cached("SELECT pg_notify($1, 'webhooks')", &[&channel])
        .await?;
    Ok(())
}

use super::rows::STORED_DELIVERY_COLUMNS;

fn subscription_row(r: &Row) -> Result<EventSubscription> {
    rows::subscription(r)
}

async fn get_webhook(
    c: &impl GenericClient,
    id: &WebhookId,
    keys: &Keyring,
) -> Result<Option<Webhook>> {
    query_opt(c, &statements::by_id(id))
        .await?
        .map(|r| rows::webhook(&r, keys))
        .transpose()
}

/// Seals every secret column not yet sealed under the keyring's sealing key (rows from before
/// sealing, or under an older key), in one transaction; returns how many webhooks changed.
async fn reseal(c: &mut deadpool_postgres::Client, keys: &Keyring) -> Result<usize> {
    let stale = |rows: &[Row]| -> Result<Vec<rows::StoredSecrets>> {
        let mut out = vec![];
        for r in rows {
            let s = rows::StoredSecrets::read(r)?;
            if s.is_stale(keys) {
                out.push(s);
            }
        }
        Ok(out)
    };
    let select = statements::ALL_SECRETS;
    // A look without locks first: at most starts nothing needs sealing, and then no row is
    // locked.
    if stale(&c.query_cached(select, &[]).await?)?.is_empty() {
        return Ok(0);
    }
    let tx = c.transaction().await?;
    let locked = stale(
        &tx.query_cached(&format!("{select} FOR UPDATE"), &[])
            .await?,
    )?;
    for old in &locked {
        let new = old.resealed(keys)?;
        execute(&tx, &statements::reseal(&new)).await?;
    }
    tx.commit().await?;
    Ok(locked.len())
}

/// Inserts a webhook row (the caller records the change).
async fn insert_webhook_row(c: &impl GenericClient, w: &Webhook, keys: &Keyring) -> Result<()> {
    execute(c, &statements::insert(w, keys)).await?;
    execute(c, &statements::key(w)).await.map(drop)
}

#[async_trait]
impl Webhooks for PgStore {
    async fn insert_webhook(&self, w: &Webhook) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        lock_changes(&tx).await?;
        insert_webhook_row(&tx, w, &self.keys).await?;
        record_change(&tx, &self.channel, &w.id, w.updated_at).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_webhook(&self, id: &WebhookId) -> Result<Option<Webhook>> {
        if let Some(w) = self.cache.get(id) {
            return Ok(Some(w));
        }
        let generation = self.cache.generation();
        let found = get_webhook(&self.client().await?, id, &self.keys).await?;
        if let Some(w) = &found {
            self.cache.put(generation, w);
        }
        Ok(found)
    }

    async fn owner_of(&self, id: &WebhookId) -> Result<Option<Principal>> {
        let row = query_opt(&self.client().await?, &statements::owner_of(id)).await?;
        row.map(|r| col::<String>(&r, "owner").map(Principal::new))
            .transpose()
    }

    async fn list_webhooks(&self, f: WebhookFilter) -> Result<Vec<Webhook>> {
        let rows = query(&self.client().await?, &statements::list(&f)).await?;
        rows.iter().map(|r| rows::webhook(r, &self.keys)).collect()
    }

    async fn update_webhook(&self, id: &WebhookId, ch: WebhookChange) -> Result<Option<Webhook>> {
        let result = async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            lock_changes(&tx).await?;
            let Some(current) = get_webhook(&tx, id, &self.keys).await? else {
                return Ok(None);
            };
            execute(
                &tx,
                &statements::update(id, current.direction, &ch, &self.keys),
            )
            .await?;
            record_change(&tx, &self.channel, id, ch.updated_at).await?;
            let updated = get_webhook(&tx, id, &self.keys).await?;
            tx.commit().await?;
            Ok(updated)
        }
        .await;
        self.forget(std::slice::from_ref(id));
        result
    }

    async fn rotate_secret(
        &self,
        id: &WebhookId,
        secret: Secret,
        grace_until: Option<Millis>,
        now: Millis,
    ) -> Result<Option<Webhook>> {
        let result = async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            lock_changes(&tx).await?;
            // In one statement: the secret moved to previous_secret is the one current now.
            let rotate = statements::rotate(id, &secret, grace_until, now, &self.keys);
            let n = execute(&tx, &rotate).await?;
            if n == 0 {
                return Ok(None);
            }
            record_change(&tx, &self.channel, id, now).await?;
            let rotated = get_webhook(&tx, id, &self.keys).await?;
            tx.commit().await?;
            Ok(rotated)
        }
        .await;
        self.forget(std::slice::from_ref(id));
        result
    }

    async fn expired_previous_secrets(&self, now: Millis) -> Result<Vec<(WebhookId, Millis)>> {
        let rows = query(
            &self.client().await?,
            &statements::expired_previous_secrets(now),
        )
        .await?;
        Ok(rows
            .iter()
            .map(|r| (WebhookId::from(r.get::<_, String>(0)), r.get::<_, i64>(1)))
            .collect())
    }

    async fn forget_previous_secret(&self, id: &WebhookId, expired_at: Millis) -> Result<()> {
        let result = async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            lock_changes(&tx).await?;
            let n = execute(&tx, &statements::forget_previous_secret(id, expired_at)).await?;
            if n > 0 {
                record_change(&tx, &self.channel, id, crate::model::now_millis()).await?;
            }
            tx.commit().await?;
            Ok(())
        }
        .await;
        self.forget(std::slice::from_ref(id));
        result
    }

    async fn delete_webhook(&self, id: &WebhookId) -> Result<bool> {
        let result = async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            lock_changes(&tx).await?;
            let deleted = execute(&tx, &statements::delete(id)).await? == 1;
            if deleted {
                record_change(&tx, &self.channel, id, crate::model::now_millis()).await?;
            }
            tx.commit().await?;
            Ok(deleted)
        }
        .await;
        self.forget(std::slice::from_ref(id));
        result
    }
}

#[async_trait]
impl Events for PgStore {
    async fn insert_event(&self, ingest: Ingest) -> Result<InsertOutcome> {
        let (reply, answer) = oneshot::channel();
        let stopped = || Error::Unavailable("the store's writer has stopped".into());
        self.writer
            .try_send(IngestJob { ingest, reply })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => super::busy(),
                mpsc::error::TrySendError::Closed(_) => stopped(),
            })?;
        answer.await.map_err(|_| stopped())?
    }

    async fn get_event(&self, id: &EventId) -> Result<Option<Event>> {
        query_opt(&self.client().await?, &crate::store::events::by_id(id))
            .await?
            .map(|r| rows::event(&r))
            .transpose()
    }

    async fn list_events(&self, q: EventQuery) -> Result<Vec<Event>> {
        let client = self.client().await?;
        let bound = settled(&client).await?.bound;
        let rows = query(&client, &crate::store::events::list(&q, bound)).await?;
        rows.iter().map(rows::event).collect()
    }

    async fn events_pruned_through(&self) -> Result<i64> {
        let row = self
            .client()
            .await?
            .query_opt_cached(crate::store::events::PRUNED_THROUGH, &[])
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?.unwrap_or(0))
    }

    async fn max_event_seq(&self) -> Result<i64> {
        let client = self.client().await?;
        settled(&client).await?.now(&client).await
    }
}

#[async_trait]
impl DeliveryLog for PgStore {
    async fn log_receipt(&self, receipt: Receipt) -> Result<()> {
        insert_receipts(&self.client().await?, &[&receipt]).await
    }

    async fn log_attempt(&self, attempt: Attempt) -> Result<()> {
        insert_attempt(&self.client().await?, &attempt).await
    }

    async fn get_delivery(&self, id: &DeliveryId) -> Result<Option<Delivery>> {
        let client = self.client().await?;
        if let Some(row) = query_opt(&client, &log::row_by_id(id.as_str())).await? {
            return Ok(Some(rows::delivery(&row)?));
        }
        let stored = query_opt(&client, &log::stored_receipt_by_id(id.as_str())).await?;
        Ok(stored
            .map(|r| rows::stored_receipt(&r))
            .transpose()?
            .map(Delivery::Receipt))
    }

    async fn query_deliveries(&self, q: DeliveryQuery) -> Result<LogPage> {
        let client = self.client().await?;
        let found = query(&client, &log::rows_query(&q))
            .await?
            .iter()
            .map(rows::delivery)
            .collect::<Result<Vec<_>>>()?;
        let stored = match log::stored_query(&q) {
            Some(s) => query(&client, &s)
                .await?
                .iter()
                .map(rows::stored_receipt)
                .collect::<Result<Vec<_>>>()?,
            None => vec![],
        };
        Ok(log::merge(found, stored, &q))
    }
}

#[async_trait]
impl Queue for PgStore {
    async fn enqueue_idempotent(
        &self,
        key: &str,
        result: String,
        items: Vec<Outgoing>,
        now: Millis,
        fresh_after: Millis,
    ) -> Result<Option<String>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // A concurrent first call with the same key waits here on the key's index entry until
        // it commits, and then finds its result.
        let claimed = tx
            .execute_cached(&numbered(queue::CLAIM_KEY), &[&key, &result, &now])
            .await?;
        if claimed == 0 {
            let locked = format!("{} FOR UPDATE", numbered(queue::KEY_CLAIMED));
            let row = tx.query_one_cached(&locked, &[&key]).await?;
            let (first, at): (String, i64) = (col(&row, "result")?, col(&row, "created_at")?);
            if at > fresh_after {
                return Ok(Some(first));
            }
            tx.execute_cached(&numbered(queue::RENEW_KEY), &[&result, &now, &key])
                .await?;
        }
        for o in &items {
            insert_outgoing(&tx, o).await?;
        }
        tx.commit().await?;
        Ok(None)
    }

    async fn enqueue(&self, items: Vec<Outgoing>) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        for o in &items {
            insert_outgoing(&tx, o).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn enqueue_attempts(&self, attempts: Vec<Attempt>) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        for a in &attempts {
            insert_attempt(&tx, a).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn claim_due(
        &self,
        owner: &InstanceId,
        now: Millis,
        limit: usize,
        lease_until: Millis,
    ) -> Result<Vec<Claimed>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let rows = tx
            .query_cached(
                &format!(
                    "WITH due AS ( \
                       SELECT seq FROM deliveries WHERE status = 'pending' AND next_attempt_at <= $2 \
                       AND (lease_until IS NULL OR lease_until < $2) \
                       ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED) \
                     UPDATE deliveries d SET lease_until = $1, lease_owner = $4 FROM due \
                     WHERE d.seq = due.seq RETURNING {}, NULL AS message_body",
                    STORED_DELIVERY_COLUMNS
                        .split(", ")
                        .map(|c| format!("d.{}", c.trim()))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                &[&lease_until, &now, &(limit as i64), &owner.0],
            )
            .await?;
        // Each webhook once per claim, however many of its attempts are in it.
        let mut webhooks: std::collections::HashMap<WebhookId, Option<Webhook>> =
            std::collections::HashMap::new();
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let attempt = rows::attempt(row)?;
            let body: String = tx
                .query_opt_cached(
                    &numbered(queue::MESSAGE_BODY),
                    &[&attempt.message_id.as_str()],
                )
                .await?
                .map(|r| col(&r, "body"))
                .transpose()?
                .unwrap_or_default();
            let webhook = match webhooks.get(&attempt.webhook_id) {
                Some(w) => w.clone(),
                None => {
                    let w = get_webhook(&tx, &attempt.webhook_id, &self.keys).await?;
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
        out.sort_by_key(|c| c.attempt.next_attempt_at);
        tx.commit().await?;
        Ok(out)
    }

    async fn complete(&self, batch: Vec<Completion>) -> Result<()> {
        let touched: Vec<WebhookId> = batch
            .iter()
            .filter(|d| !matches!(d.health, HealthChange::None))
            .map(|d| d.attempt.webhook_id.clone())
            .collect();
        let result = async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            if !touched.is_empty() {
                lock_changes(&tx).await?;
            }
            for done in &batch {
                let a = &done.attempt;
                tx.execute_cached(
                    &numbered(queue::COMPLETE),
                    &[
                        &enum_text(&a.status),
                        &a.status_code,
                        &a.duration_ms,
                        &a.error,
                        &json_text(&a.request_headers),
                        &json_text(&a.response_headers),
                        &a.response_body,
                        &a.next_attempt_at,
                        &a.url,
                        &a.created_at,
                        &a.id.as_str(),
                    ],
                )
                .await?;
                if let Some(next) = &done.next {
                    insert_attempt(&tx, next).await?;
                }
                let changed = match &done.health {
                    HealthChange::None => 0,
                    HealthChange::Success => {
                        tx.execute_cached(&numbered(queue::HEALTHY), &[&a.webhook_id.as_str()])
                            .await?
                    }
                    HealthChange::Failure { disable } => {
                        let s = queue::failing(&a.webhook_id, a.created_at, disable.as_deref());
                        execute(&tx, &s).await?
                    }
                };
                if changed > 0 {
                    record_change(&tx, &self.channel, &a.webhook_id, a.created_at).await?;
                }
            }
            tx.commit().await?;
            Ok(())
        }
        .await;
        if !touched.is_empty() {
            self.forget(&touched);
        }
        result
    }

    async fn queue_stats(&self) -> Result<(u64, Option<Millis>)> {
        let row = self
            .client()
            .await?
            .query_one_cached(queue::PENDING, &[])
            .await?;
        Ok((row.get::<_, i64>(0) as u64, row.get::<_, Option<i64>>(1)))
    }

    async fn next_due_at(&self) -> Result<Option<Millis>> {
        Ok(self
            .client()
            .await?
            .query_one_cached(queue::NEXT_DUE, &[])
            .await?
            .try_get(0)?)
    }

    async fn finally_failed(
        &self,
        webhook_id: &WebhookId,
        since: Millis,
        until: Millis,
    ) -> Result<Vec<Attempt>> {
        let s = queue::finally_failed(webhook_id, since, until);
        let rows = query(&self.client().await?, &s).await?;
        rows.iter().map(rows::attempt).collect()
    }

    async fn message_state(&self, message_id: &MessageId) -> Result<MessageState> {
        let row = self
            .client()
            .await?
            .query_one_cached(&numbered(queue::MESSAGE_STATE), &[&message_id.as_str()])
            .await?;
        Ok(MessageState {
            last_attempt: col(&row, "last_attempt")?,
            pending: col(&row, "pending")?,
        })
    }
}

#[async_trait]
impl Subscriptions for PgStore {
    async fn insert_subscription(&self, sub: &EventSubscription, w: &Webhook) -> Result<bool> {
        let result = async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            lock_changes(&tx).await?;
            let inserted = execute(&tx, &subscriptions::insert(sub)).await?;
            if inserted == 0 {
                return Ok(false);
            }
            execute(&tx, &statements::delete(&w.id)).await?;
            insert_webhook_row(&tx, w, &self.keys).await?;
            record_change(&tx, &self.channel, &w.id, w.updated_at).await?;
            tx.commit().await?;
            Ok(true)
        }
        .await;
        self.forget(std::slice::from_ref(&w.id));
        result
    }

    async fn get_subscription(&self, id: &SubscriptionId) -> Result<Option<EventSubscription>> {
        query_opt(&self.client().await?, &subscriptions::by_id(id))
            .await?
            .map(|r| subscription_row(&r))
            .transpose()
    }

    async fn refresh_subscription(
        &self,
        id: &SubscriptionId,
        expires_at: Option<Millis>,
        now: Millis,
    ) -> Result<bool> {
        let refresh = subscriptions::refresh(id, expires_at, now);
        Ok(execute(&self.client().await?, &refresh).await? == 1)
    }

    async fn list_subscriptions(&self, now: Millis) -> Result<Vec<EventSubscription>> {
        let rows = query(&self.client().await?, &subscriptions::live(now)).await?;
        rows.iter().map(subscription_row).collect()
    }

    async fn advance_subscription(
        &self,
        id: &SubscriptionId,
        from: i64,
        to: i64,
        items: Vec<Outgoing>,
    ) -> Result<bool> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // A concurrent advance waits on the row lock and then finds the cursor moved.
        let moved = execute(&tx, &subscriptions::advance(id, from, to)).await?;
        if moved == 0 {
            return Ok(false);
        }
        for o in &items {
            insert_outgoing(&tx, o).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn subscription_backlog(&self, id: &SubscriptionId) -> Result<Option<i64>> {
        let s = subscriptions::backlog(id);
        let row = self
            .client()
            .await?
            .query_one_cached(&s.numbered(), &bind(&s))
            .await?;
        Ok(row.get(0))
    }

    async fn delete_subscription(&self, id: &SubscriptionId) -> Result<bool> {
        let result = async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            lock_changes(&tx).await?;
            let deleted = execute(&tx, &subscriptions::delete(id)).await? == 1;
            if execute(&tx, &statements::delete(&id.delivery_row())).await? == 1 {
                record_change(
                    &tx,
                    &self.channel,
                    &id.delivery_row(),
                    crate::model::now_millis(),
                )
                .await?;
            }
            tx.commit().await?;
            Ok(deleted)
        }
        .await;
        self.forget(&[id.delivery_row()]);
        result
    }

    async fn expired_subscriptions(&self, now: Millis) -> Result<Vec<SubscriptionId>> {
        let rows = query(&self.client().await?, &subscriptions::expired(now)).await?;
        Ok(rows
            .iter()
            .map(|r| SubscriptionId::from(r.get::<_, String>(0)))
            .collect())
    }
}

#[async_trait]
impl Cluster for PgStore {
    async fn changes_since(&self, since: ChangeCursor, limit: usize) -> Result<Changes> {
        let client = self.client().await?;
        let settled = settled(&client).await?;
        // A stalled batch held events back: the feed reads again soon. What commits later
        // announces itself (NOTIFY, or this process's writer).
        let settling = !settled.complete;
        let limit = limit as i64;
        let events = client
            .query_cached(
                &numbered(crate::store::events::CHANGES),
                &[&since.event_seq, &settled.bound, &limit],
            )
            .await?
            .iter()
            .map(|r| {
                Ok(EventNotice {
                    seq: col(r, "seq")?,
                    id: col::<String>(r, "id")?.into(),
                    webhook_id: col::<String>(r, "webhook_id")?.into(),
                    event: col(r, "event")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let mut webhooks: Vec<WebhookId> = vec![];
        let mut webhook_rev = since.webhook_rev;
        for r in query(
            &client,
            &statements::changes_after(since.webhook_rev, limit as usize),
        )
        .await?
        {
            webhook_rev = col(&r, "rev")?;
            let id = WebhookId::from(col::<String>(&r, "webhook_id")?);
            webhooks.retain(|w| *w != id);
            webhooks.push(id);
        }
        let cursor = ChangeCursor {
            event_seq: events.last().map_or(since.event_seq, |e| e.seq),
            webhook_rev,
        };
        Ok(Changes {
            events,
            webhooks,
            cursor,
            settling,
        })
    }

    async fn live_instances(&self, since: Millis) -> Result<u64> {
        let s = instances::live_count(since);
        let row = self
            .client()
            .await?
            .query_one_cached(&s.numbered(), &bind(&s))
            .await?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    async fn server_time(&self) -> Result<Option<Millis>> {
        let row = self
            .client()
            .await?
            .query_one_cached(
                "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint",
                &[],
            )
            .await?;
        Ok(Some(row.get::<_, i64>(0)))
    }

    async fn retire_instance(&self, owner: &InstanceId) -> Result<usize> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let [leases, instance, locks] = instances::retire(owner);
        let freed = execute(&tx, &leases).await?;
        execute(&tx, &instance).await?;
        execute(&tx, &locks).await?;
        tx.commit().await?;
        Ok(freed as usize)
    }

    fn store_id(&self) -> &str {
        &self.store_id
    }

    async fn heartbeat(&self, instance: &InstanceId, now: Millis) -> Result<()> {
        execute(&self.client().await?, &instances::heartbeat(instance, now)).await?;
        let live = self.live_instances(now - PEER_WINDOW).await?;
        self.peers.store(live > 1, Ordering::Relaxed);
        Ok(())
    }

    async fn reap_dead_instances(&self, stale_before: Millis) -> Result<usize> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let [dead, leases] = instances::reap(stale_before);
        execute(&tx, &dead).await?;
        let freed = execute(&tx, &leases).await?;
        tx.commit().await?;
        Ok(freed as usize)
    }

    async fn try_job_lock(
        &self,
        name: &str,
        owner: &InstanceId,
        now: Millis,
        until: Millis,
    ) -> Result<bool> {
        let lock = instances::try_job_lock(name, owner, now, until);
        Ok(execute(&self.client().await?, &lock).await? == 1)
    }

    async fn change_cursor(&self) -> Result<ChangeCursor> {
        let client = self.client().await?;
        let bound = settled(&client).await?.bound;
        let row = client
            .query_one_cached(&numbered(crate::store::events::CHANGE_CURSOR), &[&bound])
            .await?;
        Ok(ChangeCursor {
            event_seq: col(&row, "event_seq")?,
            webhook_rev: col(&row, "webhook_rev")?,
        })
    }

    async fn wait_for_change(&self, max_wait: Duration) {
        let _ = tokio::time::timeout(max_wait, self.changed.notified()).await;
    }

    fn invalidate_webhooks(&self, ids: &[WebhookId]) {
        self.forget(ids);
    }

    fn subscribe_commits(&self) -> tokio::sync::broadcast::Receiver<super::CommittedEvents> {
        self.commits.subscribe()
    }

    fn hears_other_commits(&self) -> bool {
        true
    }
}

#[async_trait]
impl Maintenance for PgStore {
    async fn check_writable(&self) -> Result<()> {
        self.client()
            .await?
            .execute_cached(
                &numbered(crate::store::meta::WRITE_CHECK),
                &[&crate::model::now_millis().to_string()],
            )
            .await?;
        Ok(())
    }

    async fn prune(&self, cut: PruneCutoffs, limit: usize) -> Result<Pruned> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let mut pruned = Pruned::default();
        if let Some(before) = cut.events_before {
            let head = super::retention::events_through(before, limit);
            let through: Option<i64> = tx
                .query_one_cached(&head.numbered(), &bind(&head))
                .await?
                .try_get(0)?;
            if let Some(through) = through {
                let [receipts, events, mark] = super::retention::events(through);
                execute(&tx, &receipts).await?;
                pruned.events = execute(&tx, &events).await?;
                execute(&tx, &mark).await?;
            }
        }
        for (part, s) in super::retention::history(cut, limit) {
            let n = execute(&tx, &s).await?;
            pruned.count(part, n);
        }
        tx.commit().await?;
        Ok(pruned)
    }

    async fn compact(&self, _full: bool) -> Result<()> {
        // Autovacuum marks deleted rows' space for reuse: the tables level off without a
        // rewrite (VACUUM FULL would lock them).
        Ok(())
    }

    async fn size_bytes(&self) -> Result<Option<u64>> {
        let row = self
            .client()
            .await?
            .query_one_cached(
                "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0)::BIGINT FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = current_schema() AND c.relkind = 'r'",
                &[],
            )
            .await?;
        Ok(Some(row.get::<_, i64>(0) as u64))
    }
}
