//! The SQLite backend: one file in WAL mode holding webhooks, events, the delivery log and the
//! outbound queue. Every SQL statement of the project lives in this folder.
//!
//! Each call runs its statements on the blocking pool. Writes share one connection guarded by a
//! mutex (SQLite serialises writers anyway); reads take a connection of their own from a small
//! pool, so that in WAL mode they never wait behind a commit's fsync (the receiver looks its
//! webhook up while the group-commit writer is syncing). The files below hold plain functions
//! over a connection; this one adapts them to the async `Store` trait.

mod deliveries;
mod events;
mod migrations;
pub(crate) use migrations::MIGRATIONS;
mod queue;
mod retention;
mod subscriptions;
mod webhooks;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row};

use super::log::LogPage;
use super::sealing::Keyring;
use super::{
    ChangeCursor, Changes, Claimed, Completion, DeliveryQuery, EventQuery, Ingest, InsertOutcome,
    InstanceId, MessageState, Outgoing, PruneCutoffs, Pruned, WebhookChange, WebhookFilter,
};
use super::{Cluster, DeliveryLog, Events, Maintenance, Queue, Subscriptions, Webhooks};
use crate::error::{Error, Result};
use crate::model::{
    enum_from_text, enum_text, Attempt, Delivery, DeliveryId, DeliveryStatus, Direction, Event,
    EventId, EventSubscription, MessageId, Millis, Principal, Provider, Receipt, Secret,
    SubscriptionId, Trigger, Webhook, WebhookId,
};

#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    readers: Arc<Readers>,
    webhooks: Arc<crate::store::cache::WebhookCache>,
    /// Receipts for the group-commit writer thread (see `events::receipt_writer`).
    receipts: std::sync::mpsc::SyncSender<events::ReceiptJob>,
    /// Where the writer thread announces the events it committed.
    commits: crate::store::Commits,
    store_id: Arc<str>,
    /// Opens and seals the webhooks' secret columns.
    keys: Arc<Keyring>,
}

/// How often `wait_for_change` looks for another process's commits: with the query that
/// follows, the bound on how late a process learns of another's change.
pub const CHANGE_POLL: std::time::Duration = std::time::Duration::from_millis(25);

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date. The
    /// file and its `-wal`/`-shm` companions are readable by their owner only (0600), whatever
    /// the umask: they hold webhook secrets and every payload.
    pub fn open(path: &Path) -> Result<Self> {
        let dir = path.parent().unwrap_or(Path::new("."));
        Self::open_with(path, Keyring::for_data_dir(dir)?)
    }

    /// Opens the database at `path` with the secrets keyring `keys` (see `store::sealing`);
    /// any secret not yet sealed under its sealing key is sealed now.
    pub fn open_with(path: &Path, keys: Keyring) -> Result<Self> {
        private_file(path)?;
        let mut conn = Connection::open(path)?;
        configure(&conn)?;
        // SQLite gives a new -wal/-shm the database's mode; older ones are made private here.
        for companion in ["-wal", "-shm"] {
            let mut name = path.as_os_str().to_owned();
            name.push(companion);
            let companion = std::path::PathBuf::from(name);
            if companion.exists() {
                private_file(&companion)?;
            }
        }
        migrations::apply(&mut conn)?;
        // Read first: a store with nothing to seal is not written to at open.
        if !webhooks::unsealed(&conn, &keys)?.is_empty() {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let resealed = webhooks::reseal(&tx, &keys)?;
            tx.commit()?;
            tracing::info!(
                webhooks = resealed,
                "sealed stored secrets under the current key"
            );
        }
        let store_id: String = conn.query_row(crate::store::meta::STORE_ID, [], |r| r.get(0))?;
        let conn = Arc::new(Mutex::new(conn));
        let (receipts, jobs) = std::sync::mpsc::sync_channel(super::RECEIPT_QUEUE);
        let (writer_conn, commits) = (conn.clone(), crate::store::Commits::default());
        let announce = commits.clone();
        std::thread::Builder::new()
            .name("receipt-writer".into())
            .spawn(move || events::receipt_writer(writer_conn, jobs, announce))
            .map_err(|e| Error::Internal(format!("cannot start the store writer: {e}")))?;
        let readers = Arc::new(Readers {
            path: path.to_path_buf(),
            idle: Mutex::new(Vec::new()),
        });
        Ok(SqliteStore {
            conn,
            readers,
            webhooks: Arc::default(),
            receipts,
            commits,
            store_id: store_id.into(),
            keys: Arc::new(keys),
        })
    }

    /// Re-seals every stored secret under the keyring's sealing key (`secrets rotate-key`);
    /// returns how many webhooks changed.
    pub async fn reseal(&self) -> Result<usize> {
        let keys = self.keys.clone();
        self.write(move |tx| webhooks::reseal(tx, &keys)).await
    }

    pub fn keyring(&self) -> &Keyring {
        &self.keys
    }

    /// Runs `f` with the write connection on the blocking pool.
    async fn call<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            // A panic while holding the lock poisons it; the connection itself is still
            // consistent (SQLite rolls back an unfinished transaction), so keep serving.
            let mut guard = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(Error::from)?
    }

    /// Runs `f` in one write transaction on the blocking pool.
    async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Transaction) -> Result<T> + Send + 'static,
    {
        self.call(move |c| {
            // IMMEDIATE: the write lock is taken at BEGIN, waiting out another process's
            // writer; a deferred one that reads first could not upgrade and would fail at once.
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let out = f(&tx)?;
            tx.commit()?;
            Ok(out)
        })
        .await
    }

    /// Runs the read-only `f` on a pooled reader connection on the blocking pool. It sees every
    /// transaction committed before it starts.
    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            let conn = readers.take()?;
            let result = f(&conn);
            readers.give_back(conn);
            result
        })
        .await
        .map_err(Error::from)?
    }

    /// Drops cached rows after a write to them committed (or may have).
    fn forget(&self, ids: &[WebhookId]) {
        self.webhooks.forget(ids.iter());
    }
}

#[async_trait]
impl Webhooks for SqliteStore {
    async fn insert_webhook(&self, webhook: &Webhook) -> Result<()> {
        let (w, keys) = (webhook.clone(), self.keys.clone());
        self.write(move |tx| webhooks::insert(tx, &w, &keys)).await
    }

    async fn get_webhook(&self, id: &WebhookId) -> Result<Option<Webhook>> {
        if let Some(w) = self.webhooks.get(id) {
            return Ok(Some(w));
        }
        let generation = self.webhooks.generation();
        let (owned, keys) = (id.clone(), self.keys.clone());
        let found = self.read(move |c| webhooks::get(c, &owned, &keys)).await?;
        if let Some(w) = &found {
            self.webhooks.put(generation, w);
        }
        Ok(found)
    }

    async fn owner_of(&self, id: &WebhookId) -> Result<Option<Principal>> {
        let s = crate::store::webhooks::owner_of(id);
        self.read(move |c| {
            Ok(c.prepare_cached(&s.sql)?
                .query_row(rusqlite::params_from_iter(&s.args), |r| {
                    r.get::<_, String>(0)
                })
                .optional()?
                .map(Principal::new))
        })
        .await
    }

    async fn list_webhooks(&self, filter: WebhookFilter) -> Result<Vec<Webhook>> {
        let keys = self.keys.clone();
        self.read(move |c| webhooks::list(c, &filter, &keys)).await
    }

    async fn update_webhook(
        &self,
        id: &WebhookId,
        change: WebhookChange,
    ) -> Result<Option<Webhook>> {
        let (owned, keys) = (id.clone(), self.keys.clone());
        let updated = self
            .write(move |tx| webhooks::update(tx, &owned, &change, &keys))
            .await;
        // Even after an error: whether it committed is unknown, so re-read next time.
        self.forget(std::slice::from_ref(id));
        updated
    }

    async fn expired_previous_secrets(&self, now: Millis) -> Result<Vec<(WebhookId, Millis)>> {
        self.read(move |c| webhooks::expired_previous_secrets(c, now))
            .await
    }

    async fn forget_previous_secret(&self, id: &WebhookId, expired_at: Millis) -> Result<()> {
        let owned = id.clone();
        let result = self
            .write(move |tx| webhooks::forget_previous_secret(tx, &owned, expired_at))
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
        let (owned, keys) = (id.clone(), self.keys.clone());
        let rotated = self
            .write(move |tx| webhooks::rotate(tx, &owned, &secret, grace_until, now, &keys))
            .await;
        self.forget(std::slice::from_ref(id));
        rotated
    }

    async fn delete_webhook(&self, id: &WebhookId) -> Result<bool> {
        let owned = id.clone();
        let deleted = self.write(move |tx| webhooks::delete(tx, &owned)).await;
        self.forget(std::slice::from_ref(id));
        deleted
    }
}

#[async_trait]
impl Events for SqliteStore {
    async fn insert_event(&self, ingest: Ingest) -> Result<InsertOutcome> {
        events::submit(&self.receipts, ingest).await
    }

    async fn get_event(&self, id: &EventId) -> Result<Option<Event>> {
        let id = id.clone();
        self.read(move |c| events::get(c, &id)).await
    }

    async fn list_events(&self, query: EventQuery) -> Result<Vec<Event>> {
        self.read(move |c| events::list(c, &query)).await
    }

    async fn events_pruned_through(&self) -> Result<i64> {
        self.read(|c| {
            Ok(
                c.query_row(crate::store::events::PRUNED_THROUGH, [], |r| r.get(0))
                    .optional()?
                    .unwrap_or(0),
            )
        })
        .await
    }

    async fn max_event_seq(&self) -> Result<i64> {
        self.read(events::max_seq).await
    }
}

#[async_trait]
impl DeliveryLog for SqliteStore {
    async fn log_receipt(&self, receipt: Receipt) -> Result<()> {
        events::submit_receipt(&self.receipts, receipt).await
    }

    async fn log_attempt(&self, attempt: Attempt) -> Result<()> {
        self.call(move |c| deliveries::insert_attempt(c, &attempt))
            .await
    }

    async fn get_delivery(&self, id: &DeliveryId) -> Result<Option<Delivery>> {
        let id = id.clone();
        self.read(move |c| deliveries::get(c, &id)).await
    }

    async fn query_deliveries(&self, query: DeliveryQuery) -> Result<LogPage> {
        self.read(move |c| deliveries::query(c, &query)).await
    }
}

#[async_trait]
impl Queue for SqliteStore {
    async fn enqueue(&self, items: Vec<Outgoing>) -> Result<()> {
        self.write(move |tx| queue::enqueue(tx, &items)).await
    }

    async fn enqueue_idempotent(
        &self,
        key: &str,
        result: String,
        items: Vec<Outgoing>,
        now: Millis,
        fresh_after: Millis,
    ) -> Result<Option<String>> {
        let key = key.to_string();
        self.write(move |tx| {
            // The write lock is held: no other call can claim the key meanwhile.
            let claimed = tx
                .prepare_cached(crate::store::queue::CLAIM_KEY)?
                .execute(rusqlite::params![key, result, now])?;
            if claimed == 0 {
                let (first, at): (String, i64) = tx
                    .prepare_cached(crate::store::queue::KEY_CLAIMED)?
                    .query_row([&key], |r| Ok((r.get(0)?, r.get(1)?)))?;
                if at > fresh_after {
                    return Ok(Some(first));
                }
                tx.prepare_cached(crate::store::queue::RENEW_KEY)?
                    .execute(rusqlite::params![result, now, key])?;
            }
            queue::enqueue(tx, &items)?;
            Ok(None)
        })
        .await
    }

    async fn enqueue_attempts(&self, attempts: Vec<Attempt>) -> Result<()> {
        self.write(move |tx| {
            for a in &attempts {
                deliveries::insert_attempt(tx, a)?;
            }
            Ok(())
        })
        .await
    }

    async fn claim_due(
        &self,
        owner: &InstanceId,
        now: Millis,
        limit: usize,
        lease_until: Millis,
    ) -> Result<Vec<Claimed>> {
        let (owner, keys) = (owner.clone(), self.keys.clone());
        self.write(move |tx| queue::claim_due(tx, &owner, now, limit, lease_until, &keys))
            .await
    }

    async fn complete(&self, batch: Vec<Completion>) -> Result<()> {
        // Failure counts and auto-disable change the rows of these webhooks.
        let touched: Vec<WebhookId> = batch
            .iter()
            .filter(|d| !matches!(d.health, super::HealthChange::None))
            .map(|d| d.attempt.webhook_id.clone())
            .collect();
        let result = self
            .write(move |tx| {
                for done in &batch {
                    queue::complete(tx, done)?;
                }
                Ok(())
            })
            .await;
        if !touched.is_empty() {
            self.forget(&touched);
        }
        result
    }

    async fn queue_stats(&self) -> Result<(u64, Option<Millis>)> {
        self.read(|c| {
            Ok(c.query_row(crate::store::queue::PENDING, [], |r| {
                Ok((r.get::<_, i64>(0)? as u64, r.get(1)?))
            })?)
        })
        .await
    }

    async fn next_due_at(&self) -> Result<Option<Millis>> {
        self.read(queue::next_due_at).await
    }

    async fn finally_failed(
        &self,
        webhook_id: &WebhookId,
        since: Millis,
        until: Millis,
    ) -> Result<Vec<Attempt>> {
        let id = webhook_id.clone();
        self.read(move |c| queue::finally_failed(c, &id, since, until))
            .await
    }

    async fn message_state(&self, message_id: &MessageId) -> Result<MessageState> {
        let id = message_id.clone();
        self.read(move |c| queue::message_state(c, &id)).await
    }
}

#[async_trait]
impl Subscriptions for SqliteStore {
    async fn insert_subscription(
        &self,
        sub: &EventSubscription,
        webhook: &Webhook,
    ) -> Result<bool> {
        let (s, w, keys) = (sub.clone(), webhook.clone(), self.keys.clone());
        let inserted = self
            .write(move |tx| subscriptions::insert(tx, &s, &w, &keys))
            .await;
        self.forget(std::slice::from_ref(&webhook.id));
        inserted
    }

    async fn get_subscription(&self, id: &SubscriptionId) -> Result<Option<EventSubscription>> {
        let owned = id.clone();
        self.read(move |c| subscriptions::get(c, &owned)).await
    }

    async fn refresh_subscription(
        &self,
        id: &SubscriptionId,
        expires_at: Option<Millis>,
        now: Millis,
    ) -> Result<bool> {
        let owned = id.clone();
        self.write(move |tx| subscriptions::refresh(tx, &owned, expires_at, now))
            .await
    }

    async fn list_subscriptions(&self, now: Millis) -> Result<Vec<EventSubscription>> {
        self.read(move |c| subscriptions::live(c, now)).await
    }

    async fn advance_subscription(
        &self,
        id: &SubscriptionId,
        from: i64,
        to: i64,
        items: Vec<Outgoing>,
    ) -> Result<bool> {
        let owned = id.clone();
        self.write(move |tx| subscriptions::advance(tx, &owned, from, to, &items))
            .await
    }

    async fn subscription_backlog(&self, id: &SubscriptionId) -> Result<Option<i64>> {
        let owned = id.clone();
        self.read(move |c| subscriptions::backlog(c, &owned)).await
    }

    async fn delete_subscription(&self, id: &SubscriptionId) -> Result<bool> {
        let owned = id.clone();
        let deleted = self
            .write(move |tx| subscriptions::delete(tx, &owned))
            .await;
        self.forget(&[id.delivery_row()]);
        deleted
    }

    async fn expired_subscriptions(&self, now: Millis) -> Result<Vec<SubscriptionId>> {
        self.read(move |c| subscriptions::expired(c, now)).await
    }
}

#[async_trait]
impl Cluster for SqliteStore {
    async fn changes_since(&self, since: ChangeCursor, limit: usize) -> Result<Changes> {
        self.read(move |c| events::changes_since(c, since, limit))
            .await
    }

    async fn live_instances(&self, since: Millis) -> Result<u64> {
        self.read(move |c| {
            let s = crate::store::instances::live_count(since);
            Ok(
                c.query_row(&s.sql, rusqlite::params_from_iter(&s.args), |r| {
                    r.get::<_, i64>(0)
                })? as u64,
            )
        })
        .await
    }

    async fn retire_instance(&self, owner: &InstanceId) -> Result<usize> {
        let owner = owner.clone();
        self.write(move |tx| queue::retire(tx, &owner)).await
    }

    fn store_id(&self) -> &str {
        &self.store_id
    }

    async fn heartbeat(&self, instance: &InstanceId, now: Millis) -> Result<()> {
        let id = instance.clone();
        self.call(move |c| queue::heartbeat(c, &id, now)).await
    }

    async fn reap_dead_instances(&self, stale_before: Millis) -> Result<usize> {
        self.write(move |tx| queue::reap_dead(tx, stale_before))
            .await
    }

    async fn try_job_lock(
        &self,
        name: &str,
        owner: &InstanceId,
        now: Millis,
        until: Millis,
    ) -> Result<bool> {
        let (name, owner) = (name.to_string(), owner.clone());
        self.call(move |c| queue::try_job_lock(c, &name, &owner, now, until))
            .await
    }

    async fn change_cursor(&self) -> Result<ChangeCursor> {
        self.read(events::change_cursor).await
    }

    async fn wait_for_change(&self, max_wait: std::time::Duration) {
        // Another process's commit leaves no signal here: look again after a short while.
        tokio::time::sleep(max_wait.min(CHANGE_POLL)).await;
    }

    fn invalidate_webhooks(&self, ids: &[WebhookId]) {
        self.forget(ids);
    }

    fn subscribe_commits(&self) -> tokio::sync::broadcast::Receiver<crate::store::CommittedEvents> {
        self.commits.subscribe()
    }
}

#[async_trait]
impl Maintenance for SqliteStore {
    async fn check_writable(&self) -> Result<()> {
        // A real change: an update to the same value may write nothing at all.
        let now = crate::model::now_millis().to_string();
        self.write(move |tx| {
            tx.execute(crate::store::meta::WRITE_CHECK, [now])?;
            Ok(())
        })
        .await
    }

    async fn prune(&self, cutoffs: PruneCutoffs, limit: usize) -> Result<Pruned> {
        self.write(move |tx| retention::prune(tx, cutoffs, limit))
            .await
    }

    async fn compact(&self, full: bool) -> Result<()> {
        if self.call(|c| retention::incremental(c)).await? {
            // Step by step, letting the receipt writer in between.
            while self.call(|c| retention::vacuum_step(c)).await? {}
        } else if full {
            tracing::info!("rewriting the store file once so that it can shrink from now on");
            self.call(|c| retention::convert_to_incremental(c)).await?;
        }
        // In WAL mode the file shrinks at a checkpoint; TRUNCATE also empties the WAL. Busy (a
        // reader holds an older snapshot) is fine: a later checkpoint does it.
        let _ = self
            .call(|c| {
                c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
                Ok(())
            })
            .await;
        Ok(())
    }

    async fn size_bytes(&self) -> Result<Option<u64>> {
        let db = self.read(retention::size).await?;
        let mut wal_path = self.readers.path.clone().into_os_string();
        wal_path.push("-wal");
        let wal = std::fs::metadata(wal_path).map(|m| m.len()).unwrap_or(0);
        Ok(Some(db + wal))
    }
}

/// Idle read-only connections, opened on demand and kept up to `MAX_IDLE_READERS`.
struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

const MAX_IDLE_READERS: usize = 8;

impl Readers {
    fn take(&self) -> Result<Connection> {
        if let Some(c) = self.lock().pop() {
            return Ok(c);
        }
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        Ok(conn)
    }

    fn give_back(&self, conn: Connection) {
        let mut idle = self.lock();
        if idle.len() < MAX_IDLE_READERS {
            idle.push(conn);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Connection>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Creates `path` if missing, with mode 0600, and sets 0600 on it if it exists (an older
/// release left the umask's 0644).
fn private_file(path: &Path) -> Result<()> {
    let cannot = |e: std::io::Error| {
        Error::backend(
            format!("cannot make {} private to its owner: {e}", path.display()),
            e,
        )
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(cannot)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(cannot)?;
    }
    #[cfg(not(unix))]
    let _ = (path, cannot);
    Ok(())
}

fn configure(conn: &Connection) -> Result<()> {
    // First: other processes may hold the write lock (switching to WAL needs it too).
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    // A new file shrinks page by page after pruning. The mode can only be chosen before the
    // first table exists, and before the switch to WAL (an older store is converted once by
    // `webhook-mcp prune`).
    if migrations::is_empty(conn)? {
        conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
    }
    // WAL lets readers run beside the writer. synchronous=FULL makes each commit durable before
    // the receiver acknowledges: an event answered with 200 survives a crash or power loss.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // After a burst the WAL is cut back to this size at the next checkpoint instead of
    // staying as large as the burst made it.
    conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)?;
    Ok(())
}

// --- Reading rows by column name --------------------------------------------------------------

/// The value of column `name`; a failure names the column and the stored value's problem.
fn col<T: FromSql>(r: &Row, name: &str) -> rusqlite::Result<T> {
    r.get(name).map_err(|e| match e {
        rusqlite::Error::FromSqlConversionFailure(i, ty, err) => {
            rusqlite::Error::FromSqlConversionFailure(
                i,
                ty,
                format!("column `{name}`: {err}").into(),
            )
        }
        other => other,
    })
}

// --- Ids, secrets and enums as SQL text -------------------------------------------------------

macro_rules! text_newtype_sql {
    ($($t:ty),*) => {$(
        impl ToSql for $t {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::Borrowed(ValueRef::Text(self.as_str().as_bytes())))
            }
        }
        impl FromSql for $t {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                String::column_result(value).map(<$t>::from)
            }
        }
    )*};
}
text_newtype_sql!(WebhookId, DeliveryId, MessageId, SubscriptionId);

// An event id is stored as its 16 bytes when it is a UUID in canonical form (every id the
// server makes is), else as text: in `events.id`, `deliveries.event_id` and
// `messages.event_id` (migration 11). At the edges it is always the UUID text.

impl ToSql for EventId {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match canonical_uuid(self.as_str()) {
            Some(u) => ToSqlOutput::from(u.as_bytes().to_vec()),
            None => ToSqlOutput::Borrowed(ValueRef::Text(self.as_str().as_bytes())),
        })
    }
}

impl FromSql for EventId {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        id_text(value).map(EventId::from)
    }
}

/// `text` as a UUID when it is one written as the server writes them (lowercase, hyphenated),
/// so that its bytes read back as the same text.
fn canonical_uuid(text: &str) -> Option<uuid::Uuid> {
    let u = uuid::Uuid::try_parse(text).ok()?;
    (text.len() == 36 && u.hyphenated().to_string() == text).then_some(u)
}

/// A text column, or an id stored as 16 bytes (read as its UUID text).
fn id_text(value: ValueRef<'_>) -> FromSqlResult<String> {
    match value {
        ValueRef::Blob(b) => uuid::Uuid::from_slice(b)
            .map(|u| u.hyphenated().to_string())
            .map_err(|e| FromSqlError::Other(Box::new(e))),
        other => String::column_result(other),
    }
}

/// An optional text column, ids stored as bytes read as text.
struct IdText(Option<String>);

impl FromSql for IdText {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        match value {
            ValueRef::Null => Ok(IdText(None)),
            v => id_text(v).map(|t| IdText(Some(t))),
        }
    }
}

impl ToSql for Secret {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        // Persisting is what the secret is for: the store is where it lives.
        Ok(ToSqlOutput::Borrowed(ValueRef::Text(
            self.expose().as_bytes(),
        )))
    }
}

impl FromSql for Secret {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        String::column_result(value).map(Secret::new)
    }
}

macro_rules! text_enum_sql {
    ($($t:ty),*) => {$(
        impl ToSql for $t {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(enum_text(self)))
            }
        }
        impl FromSql for $t {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                let text = value.as_str()?;
                enum_from_text(text).ok_or_else(|| {
                    FromSqlError::Other(format!("unexpected stored value {text:?}").into())
                })
            }
        }
    )*};
}
text_enum_sql!(Direction, Provider, Trigger, DeliveryStatus);

impl ToSql for crate::store::sql::Arg {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        use crate::store::sql::Arg;
        Ok(match self {
            Arg::Int(i) => ToSqlOutput::from(*i),
            Arg::Text(t) => ToSqlOutput::from(t.as_str()),
            Arg::Bool(b) => ToSqlOutput::from(*b as i64),
            Arg::OptInt(i) => i.to_sql()?,
            Arg::OptText(t) => t.to_sql()?,
            Arg::EventId(id) | Arg::OptEventId(Some(id)) => match canonical_uuid(id) {
                Some(u) => ToSqlOutput::from(u.as_bytes().to_vec()),
                None => ToSqlOutput::from(id.as_str()),
            },
            Arg::OptEventId(None) => ToSqlOutput::from(rusqlite::types::Null),
        })
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        match e {
            // A decoder's own error, carried through rusqlite's row callback (see `wrap`).
            rusqlite::Error::FromSqlConversionFailure(_, _, inner) if inner.is::<Error>() => {
                *inner.downcast::<Error>().expect("checked by is")
            }
            other => Error::backend(other.to_string(), other),
        }
    }
}

// --- Rows into domain values (the decoders are shared with every backend: store::rows) -------

impl crate::store::rows::Columns for Row<'_> {
    fn text(&self, name: &str) -> Result<Option<String>> {
        Ok(col::<IdText>(self, name)?.0)
    }
    fn int(&self, name: &str) -> Result<Option<i64>> {
        Ok(col(self, name)?)
    }
    fn flag(&self, name: &str) -> Result<bool> {
        Ok(col(self, name)?)
    }
}

/// A decoder's result as rusqlite's row callbacks want it.
fn wrap<T>(decoded: Result<T>) -> rusqlite::Result<T> {
    decoded.map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Null, Box::new(e))
    })
}

fn event_row(r: &Row) -> rusqlite::Result<Event> {
    wrap(crate::store::rows::event(r))
}

fn delivery_row(r: &Row) -> rusqlite::Result<Delivery> {
    wrap(crate::store::rows::delivery(r))
}

fn stored_receipt_row(r: &Row) -> rusqlite::Result<Receipt> {
    wrap(crate::store::rows::stored_receipt(r))
}

fn attempt_row(r: &Row) -> rusqlite::Result<Attempt> {
    wrap(crate::store::rows::attempt(r))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A SQLite failure keeps its message and its source: the rusqlite error itself.
    #[test]
    fn a_database_error_keeps_its_source() {
        let c = Connection::open_in_memory().unwrap();
        let e: Error = c
            .execute("INSERT INTO nowhere VALUES (1)", [])
            .unwrap_err()
            .into();
        assert!(
            e.to_string()
                .starts_with("storage error: no such table: nowhere"),
            "{e}"
        );
        let source = std::error::Error::source(&e).expect("the source is kept");
        assert!(source.downcast_ref::<rusqlite::Error>().is_some());
    }

    /// An id the server makes is stored as 16 bytes and reads back as the same text; any other
    /// id is stored as text, so it reads back unchanged too.
    #[test]
    fn event_ids_are_stored_as_bytes_only_when_they_read_back_the_same() {
        let c = Connection::open_in_memory().unwrap();
        let made = EventId::generate();
        let upper = EventId::from(made.as_str().to_uppercase());
        for (id, kind) in [
            (made.clone(), "blob"),
            (upper, "text"),
            (EventId::from("e1"), "text"),
            (EventId::from(made.as_str().replace('-', "")), "text"),
        ] {
            let (back, ty): (EventId, String) = c
                .query_row("SELECT ?1, typeof(?1)", [&id], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .unwrap();
            assert_eq!((back, ty.as_str()), (id, kind));
        }
    }
}
