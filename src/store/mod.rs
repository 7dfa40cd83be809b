//! The store interface: everything the service and the delivery worker persist or read, as
//! role traits (`Webhooks`, `Events`, `DeliveryLog`, `Queue`, `Subscriptions`, `Cluster`,
//! `Maintenance`) that every backend implements (`sqlite/`, `postgres/`), and `Store`, all of
//! them at once. The conformance suite in `tests/store_conformance.rs` is written once against
//! `Store` and run against each backend.
//!
//! The statements both backends run are written once, one module per role (`webhooks`,
//! `events`, `log`, `queue`, `subscriptions`, `instances`, `retention`, `meta`, rendered per
//! dialect by `sql`); a backend keeps only what truly differs (its transactions, locks and
//! notifications).
//!
//! Why a trait object (`Arc<dyn Store>`) and not an enum over backends: a backend is added by
//! implementing the traits in its own folder, with no match arm to edit elsewhere; tests and the
//! conformance suite take any `dyn Store`. The cost, one boxed future per call, is nothing next to
//! a hop to the blocking pool or a network round trip. A caller holding `dyn Store` calls any
//! role's method without importing the role.

pub mod cache;
mod events;
mod instances;
pub mod log;
mod meta;
pub mod postgres;
mod queue;
mod retention;
mod rows;
pub mod sealing;
mod sql;
pub mod sqlite;
mod subscriptions;
mod webhooks;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use crate::error::Result;
use crate::model::{
    Attempt, Delivery, DeliveryId, DeliveryStatus, Direction, Event, EventId, EventSubscription,
    MessageId, Millis, Receipt, Secret, SubscriptionId, Webhook, WebhookId,
};

pub type SharedStore = Arc<dyn Store>;

/// Each backend's schema migrations, oldest first, for upgrade tests: a prefix of them is the
/// schema an older release wrote (`tests/upgrade.rs` builds such a store and opens it).
#[doc(hidden)]
pub fn migrations() -> (&'static [&'static str], &'static [&'static str]) {
    (sqlite::MIGRATIONS, postgres::MIGRATIONS)
}

/// A whole store: every role. Implemented for every type that implements them all.
pub trait Store:
    Webhooks + Events + DeliveryLog + Queue + Subscriptions + Cluster + Maintenance + 'static
{
}

impl<T> Store for T where
    T: Webhooks + Events + DeliveryLog + Queue + Subscriptions + Cluster + Maintenance + 'static
{
}

/// Webhook rows: the receiver's and the dispatcher's configuration, with a change log the
/// change feed reads (`Cluster::changes_since`).
#[async_trait]
pub trait Webhooks: Send + Sync {
    async fn insert_webhook(&self, webhook: &Webhook) -> Result<()>;

    /// One webhook. Backends may serve it from a cache, but never a row older than a change
    /// committed through this store.
    async fn get_webhook(&self, id: &WebhookId) -> Result<Option<Webhook>>;

    /// Oldest first.
    /// The owner of a webhook's history (`webhook_keys`), whether or not the webhook still
    /// exists; `None` for an id that never held anything.
    async fn owner_of(&self, id: &WebhookId) -> Result<Option<crate::model::Principal>>;

    async fn list_webhooks(&self, filter: WebhookFilter) -> Result<Vec<Webhook>>;

    /// Applies only the fields `change` sets, in one statement (a concurrent change to other
    /// fields, such as an auto-disable, is kept). `None` when there is no such webhook.
    async fn update_webhook(
        &self,
        id: &WebhookId,
        change: WebhookChange,
    ) -> Result<Option<Webhook>>;

    /// Makes `secret` current; the secret it replaces stays valid until `grace_until` (or not at
    /// all when `None`). Atomic: two concurrent rotations cannot resurrect an older secret.
    async fn rotate_secret(
        &self,
        id: &WebhookId,
        secret: Secret,
        grace_until: Option<Millis>,
        now: Millis,
    ) -> Result<Option<Webhook>>;

    /// Webhooks whose previous secret's grace ended at or before `now`, with that instant.
    async fn expired_previous_secrets(&self, now: Millis) -> Result<Vec<(WebhookId, Millis)>>;

    /// Drops the previous secret of `id` if it is still the one that expired at `expired_at`
    /// (a rotation since then is left alone); records the change.
    async fn forget_previous_secret(&self, id: &WebhookId, expired_at: Millis) -> Result<()>;

    /// Deletes the webhook; its events and delivery log stay (they are history).
    async fn delete_webhook(&self, id: &WebhookId) -> Result<bool>;
}

/// Stored inbound events, read by id or by cursor.
#[async_trait]
pub trait Events: Send + Sync {
    /// Stores a verified event (and queues its relays) durably before it returns, unless the
    /// webhook already holds an event with the same provider event id: then only the receipt
    /// is logged, marked duplicate. A stored event is its own receipt (see `log`): no second
    /// row is written. Concurrent calls may share one commit.
    async fn insert_event(&self, ingest: Ingest) -> Result<InsertOutcome>;

    async fn get_event(&self, id: &EventId) -> Result<Option<Event>>;

    /// Events by cursor: every event committed before the call that passes the query (unless
    /// a stalled batch holds it back, see `Changes::settling`), and
    /// never one before an event that can still commit below it: a cursor moved to the last
    /// event listed skips nothing that commits later.
    async fn list_events(&self, query: EventQuery) -> Result<Vec<Event>>;

    /// "Now" as an event cursor (0 when empty): the highest `seq` such that every event at or
    /// below it that will ever be stored is stored, including every event committed before
    /// the call (a reader by cursor can move to it without skipping anything).
    async fn max_event_seq(&self) -> Result<i64>;

    /// The highest event `seq` retention deleted (0: none): a cursor below it has lost events.
    async fn events_pruned_through(&self) -> Result<i64>;
}

/// The delivery log: receipts of requests that stored nothing and attempts made outside the
/// queue; a stored event is its own receipt (`store::log`).
#[async_trait]
pub trait DeliveryLog: Send + Sync {
    /// Logs a request that stored no event (refused, filtered out, a handshake).
    async fn log_receipt(&self, receipt: Receipt) -> Result<()>;

    /// Logs an attempt made outside the queue (test_webhook), already finished.
    async fn log_attempt(&self, attempt: Attempt) -> Result<()>;

    /// One row of the log; the id of a stored event's receipt is the event's id.
    async fn get_delivery(&self, id: &DeliveryId) -> Result<Option<Delivery>>;

    /// Newest first: `deliveries` rows and receipts of stored events, merged (`log::merge`).
    /// A queued attempt's body, its message's, is left out of a page (`get_delivery` has it).
    async fn query_deliveries(&self, query: DeliveryQuery) -> Result<log::LogPage>;
}

/// The durable outbound queue: messages, their attempts and leases.
#[async_trait]
pub trait Queue: Send + Sync {
    /// Queues messages with their first attempts, in one transaction.
    async fn enqueue(&self, items: Vec<Outgoing>) -> Result<()>;

    /// Queues `items` under an idempotency key, in one transaction: when `key` was stored
    /// after `fresh_after`, nothing is queued and the `result` stored with it by the first call
    /// is returned; otherwise the items are queued, `result` is kept under the key, and `None`
    /// is returned. Two concurrent calls with one key queue once.
    async fn enqueue_idempotent(
        &self,
        key: &str,
        result: String,
        items: Vec<Outgoing>,
        now: Millis,
        fresh_after: Millis,
    ) -> Result<Option<String>>;

    /// Queues further attempts of existing messages.
    async fn enqueue_attempts(&self, attempts: Vec<Attempt>) -> Result<()>;

    /// Claims up to `limit` due, unleased (or lease-expired) attempts for `owner`, leasing them
    /// until `lease_until`. An attempt is claimed by one caller at a time, across processes.
    async fn claim_due(
        &self,
        owner: &InstanceId,
        now: Millis,
        limit: usize,
        lease_until: Millis,
    ) -> Result<Vec<Claimed>>;

    /// Writes finished attempts, their follow-ups and webhook health in one transaction.
    async fn complete(&self, batch: Vec<Completion>) -> Result<()>;

    /// When the earliest unleased pending attempt is due.
    async fn next_due_at(&self) -> Result<Option<Millis>>;

    /// Pending attempts in the whole store, and when the oldest of them was created.
    async fn queue_stats(&self) -> Result<(u64, Option<Millis>)>;

    /// The newest attempt of every message of `webhook_id` created in the window whose newest
    /// attempt failed for good (no retry scheduled).
    async fn finally_failed(
        &self,
        webhook_id: &WebhookId,
        since: Millis,
        until: Millis,
    ) -> Result<Vec<Attempt>>;

    /// The highest attempt number of a message so far, and whether one is pending.
    async fn message_state(&self, message_id: &MessageId) -> Result<MessageState>;
}

/// MCP Events webhook subscriptions.
///
/// A subscription is a row of its own (key, cursor, expiry) plus an outbound webhook row with
/// the same id (callback URL, secret, health), through which the outbound engine delivers.
/// `list_webhooks` leaves subscription rows out.
#[async_trait]
pub trait Subscriptions: Send + Sync {
    /// Creates the subscription and its webhook row in one transaction; false (and nothing
    /// written) when a subscription with this id exists.
    async fn insert_subscription(&self, sub: &EventSubscription, webhook: &Webhook)
        -> Result<bool>;

    async fn get_subscription(&self, id: &SubscriptionId) -> Result<Option<EventSubscription>>;

    /// Sets a subscription's expiry at a refresh; false when there is no such subscription.
    async fn refresh_subscription(
        &self,
        id: &SubscriptionId,
        expires_at: Option<Millis>,
        now: Millis,
    ) -> Result<bool>;

    /// Subscriptions not expired at `now`, oldest first.
    async fn list_subscriptions(&self, now: Millis) -> Result<Vec<EventSubscription>>;

    /// Moves the cursor of `id` from `from` to `to` and queues `items`, in one transaction, if
    /// the cursor is still `from`; false (nothing queued) when another process moved it first.
    /// This is what makes delivery exactly-once per subscription across processes.
    async fn advance_subscription(
        &self,
        id: &SubscriptionId,
        from: i64,
        to: i64,
        items: Vec<Outgoing>,
    ) -> Result<bool>;

    /// The lowest event `seq` among the subscription's deliveries still pending: its cursor
    /// watermark is just below it.
    async fn subscription_backlog(&self, id: &SubscriptionId) -> Result<Option<i64>>;

    /// Deletes the subscription and its webhook row (its delivery log stays).
    async fn delete_subscription(&self, id: &SubscriptionId) -> Result<bool>;

    /// Subscriptions whose expiry is at or before `now`.
    async fn expired_subscriptions(&self, now: Millis) -> Result<Vec<SubscriptionId>>;
}

/// Many processes, one store: who is alive, who holds which job, and the change feed that
/// tells each process what the others committed.
#[async_trait]
pub trait Cluster: Send + Sync {
    /// What changed after `since`: events stored and webhooks changed (created, updated,
    /// rotated, disabled, deleted), at most `limit` of each, and the cursor to ask from next.
    /// The change feed across processes reads this; it sees what `list_events` sees.
    async fn changes_since(&self, since: ChangeCursor, limit: usize) -> Result<Changes>;

    /// Frees the leases `owner` holds (it stops cleanly; its unfinished attempts are due again
    /// at once) and forgets the instance.
    async fn retire_instance(&self, owner: &InstanceId) -> Result<usize>;

    /// A random id fixed when the store was created: two processes with the same id share one
    /// store (a receiver port held by a sibling is waited for, not an error).
    fn store_id(&self) -> &str;

    /// Records that `instance` is alive at `now` (inserting it the first time).
    async fn heartbeat(&self, instance: &InstanceId, now: Millis) -> Result<()>;

    /// Forgets instances silent since before `stale_before` and frees the leases they (or
    /// owners never registered) hold, so that their attempts are claimed again. Returns the
    /// number of leases freed.
    async fn reap_dead_instances(&self, stale_before: Millis) -> Result<usize>;

    /// How many instances heartbeated at or after `since`: the processes serving this store.
    async fn live_instances(&self, since: Millis) -> Result<u64>;

    /// The database server's clock, for a store on another machine (PostgreSQL); `None` when
    /// the store shares this process's clock.
    async fn server_time(&self) -> Result<Option<Millis>> {
        Ok(None)
    }

    /// Takes or renews the lock on the periodic job `name` for `owner` until `until`; false when
    /// another owner holds it unexpired. One process at a time runs a singleton job.
    async fn try_job_lock(
        &self,
        name: &str,
        owner: &InstanceId,
        now: Millis,
        until: Millis,
    ) -> Result<bool>;

    /// The change-feed cursor of this instant: nothing before it will be reported.
    async fn change_cursor(&self) -> Result<ChangeCursor>;

    /// Returns when the store may have changed (another process committed), or after
    /// `max_wait`. A hint, not a guarantee: the caller reads `changes_since` either way.
    async fn wait_for_change(&self, max_wait: std::time::Duration);

    /// Drops cached copies of these webhooks (another process changed them).
    fn invalidate_webhooks(&self, ids: &[WebhookId]);

    /// The events this process commits, announced by its writer as each commit lands, in
    /// commit order, and those of other processes where the backend hears of them
    /// (`hears_other_commits`): the change feed announces them without reading them back
    /// while they follow on from its cursor (see `Commits`).
    fn subscribe_commits(&self) -> tokio::sync::broadcast::Receiver<CommittedEvents>;

    /// Whether `subscribe_commits` also tells of other processes' commits (PostgreSQL's
    /// `NOTIFY` spells them out; SQLite's processes share only the file). Where it does, the
    /// change feed waits a moment for a commit that fills a gap before it reads the store.
    fn hears_other_commits(&self) -> bool {
        false
    }
}

/// Retention, space and health of the store itself.
#[async_trait]
pub trait Maintenance: Send + Sync {
    /// Commits a tiny write: Ok when the store can take writes now (disk not full, not
    /// read-only, database reachable).
    async fn check_writable(&self) -> Result<()>;

    /// Deletes at most `limit` rows of each kind of history older than its cutoff, in one short
    /// transaction: events with the receipts that stored them; finished delivery-log rows
    /// (never a pending attempt); messages no attempt refers to any more; old webhook change
    /// log rows. Callers repeat until a batch deletes fewer than `limit` of each.
    async fn prune(&self, cutoffs: PruneCutoffs, limit: usize) -> Result<Pruned>;

    /// Gives the space freed by pruning back to the file system where the backend manages its
    /// own file (SQLite's incremental vacuum; PostgreSQL's autovacuum reuses it in place).
    /// `full` rewrites the whole file when incremental vacuum is not enabled (an older store):
    /// it blocks writers meanwhile, so only an explicit `prune` command asks for it.
    async fn compact(&self, full: bool) -> Result<()>;

    /// The store's size on disk in bytes, when the backend can tell.
    async fn size_bytes(&self) -> Result<Option<u64>>;
}

/// What `Maintenance::prune` deletes: rows older than these instants. `None` keeps that kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneCutoffs {
    /// Events received before this (and the receipts of those events).
    pub events_before: Option<Millis>,
    /// Finished delivery-log rows created before this, and messages left without attempts.
    pub deliveries_before: Option<Millis>,
    /// Webhook change-log rows (read only by live peers) from before this.
    pub changes_before: Option<Millis>,
    /// `send_event` idempotency keys stored before this.
    pub keys_before: Option<Millis>,
}

/// Rows deleted by one or more `prune` batches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Pruned {
    pub events: u64,
    pub deliveries: u64,
    pub messages: u64,
    pub changes: u64,
    pub keys: u64,
}

impl Pruned {
    pub fn total(&self) -> u64 {
        self.events + self.deliveries + self.messages + self.changes + self.keys
    }

    /// Whether any kind filled its batch (there may be more to delete).
    pub fn full(&self, limit: usize) -> bool {
        let l = limit as u64;
        self.events >= l
            || self.deliveries >= l
            || self.messages >= l
            || self.changes >= l
            || self.keys >= l
    }
}

impl std::ops::AddAssign for Pruned {
    fn add_assign(&mut self, o: Pruned) {
        self.events += o.events;
        self.deliveries += o.deliveries;
        self.messages += o.messages;
        self.changes += o.changes;
        self.keys += o.keys;
    }
}

/// One running process on the store: the owner of the leases it takes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct InstanceId(pub String);

impl InstanceId {
    pub fn generate() -> Self {
        InstanceId(format!(
            "{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ))
    }
}

impl std::fmt::Display for InstanceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which webhooks `list_webhooks` returns.
#[derive(Debug, Clone, Default)]
pub struct WebhookFilter {
    pub direction: Option<Direction>,
    pub enabled: Option<bool>,
    /// Only this principal's.
    pub owner: Option<crate::model::Principal>,
}

/// The fields an update sets; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct WebhookChange {
    pub target_url: Option<String>,
    pub events: Option<Vec<String>>,
    pub description: Option<String>,
    pub enabled: Option<bool>,
    /// Clears the failure streak and the server's disable reason (a re-enable by hand).
    pub reset_health: bool,
    pub extra_headers: Option<BTreeMap<String, String>>,
    pub required_headers: Option<BTreeMap<String, Secret>>,
    pub forward_to: Option<Vec<WebhookId>>,
    pub accept_compact_signatures: Option<bool>,
    /// `Some(None)` removes the content filter.
    pub filter: Option<Option<crate::model::Filter>>,
    pub updated_at: Millis,
}

/// A verified event to store, with its receipt and the relayed copies it queues.
#[derive(Debug, Clone)]
pub struct Ingest {
    pub event: Event,
    /// The request body as sent (the event's payload, byte for byte).
    pub body: String,
    /// The delivery-log row of the request that carried it; `None` for an event this server
    /// raised itself (operational events have no request). Written only when the event is a
    /// duplicate: a stored event is its own receipt (its id, headers and body are the event's).
    pub receipt: Option<Receipt>,
    pub relays: Vec<Outgoing>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum InsertOutcome {
    /// Stored; the event now has this `seq`.
    Stored(i64),
    /// The webhook already holds an event with that provider event id: the existing event's id.
    Duplicate(EventId),
}

/// Filters for listing events. `after` is a `seq` cursor.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    pub webhook_id: Option<WebhookId>,
    /// Only the events of this principal's webhooks.
    pub owner: Option<crate::model::Principal>,
    pub event: Option<String>,
    pub after: Option<i64>,
    pub limit: usize,
    /// Newest first (for "latest events" views) instead of cursor order.
    pub newest_first: bool,
}

/// Filters for the delivery log, newest first. `before` is where the previous page stopped.
#[derive(Debug, Clone, Default)]
pub struct DeliveryQuery {
    pub webhook_id: Option<WebhookId>,
    /// Only the log of this principal's webhooks.
    pub owner: Option<crate::model::Principal>,
    pub direction: Option<Direction>,
    pub status: Option<DeliveryStatus>,
    pub event: Option<String>,
    pub since: Option<Millis>,
    pub until: Option<Millis>,
    pub before: Option<log::LogCursor>,
    pub limit: usize,
}

/// Where a reader of the change feed is: the last event `seq` and webhook revision it saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChangeCursor {
    pub event_seq: i64,
    pub webhook_rev: i64,
}

/// A stored event, in brief: what the change feed and the live bus carry.
#[derive(Debug, Clone, PartialEq)]
pub struct EventNotice {
    pub seq: i64,
    pub id: EventId,
    pub webhook_id: WebhookId,
    pub event: String,
}

impl EventNotice {
    /// The notice of `event`, stored with `seq`.
    pub fn of(event: &Event, seq: i64) -> Self {
        EventNotice {
            seq,
            id: event.id.clone(),
            webhook_id: event.webhook_id.clone(),
            event: event.event.clone(),
        }
    }
}

/// The events of one commit, in `seq` order, and where they follow on from.
#[derive(Debug, Clone, PartialEq)]
pub struct CommittedEvents {
    pub events: Arc<[EventNotice]>,
    /// A `seq` below the commit's first such that no event lies between the two, nor can ever
    /// be committed there (within the commit, too, each event follows on from the one before
    /// it): a feed whose cursor stands there announces the commit without a read. `None` when
    /// the writer cannot tell, and only a read of the store can.
    pub follows: Option<i64>,
}

/// Where a backend's writer announces what it committed (and PostgreSQL's listener what other
/// instances committed). A receiver that lags behind loses announcements, never events: the
/// change feed then reads the store by cursor, as it does for every commit it was not told of.
#[derive(Clone)]
pub struct Commits(tokio::sync::broadcast::Sender<CommittedEvents>);

impl Default for Commits {
    fn default() -> Self {
        Commits(tokio::sync::broadcast::channel(1024).0)
    }
}

impl Commits {
    /// Announces the events one commit stored, from each written event and its outcome
    /// (duplicates stored nothing), in `seq` order; nothing when it stored none. `follows`
    /// gets the lowest `seq` and says what it follows on from (`CommittedEvents::follows`).
    pub fn announce<'a>(
        &self,
        written: impl IntoIterator<Item = (&'a Event, &'a InsertOutcome)>,
        follows: impl FnOnce(i64) -> Option<i64>,
    ) {
        let mut events: Vec<EventNotice> = written
            .into_iter()
            .filter_map(|(event, outcome)| match outcome {
                InsertOutcome::Stored(seq) => Some(EventNotice::of(event, *seq)),
                InsertOutcome::Duplicate(_) => None,
            })
            .collect();
        events.sort_by_key(|n| n.seq);
        if let Some(first) = events.first() {
            let follows = follows(first.seq);
            // No receivers is normal (no change feed runs, as in `events ls`).
            let _ = self.0.send(CommittedEvents {
                events: events.into(),
                follows,
            });
        }
    }

    /// Announces another process's commit, as the backend heard of it (PostgreSQL: its
    /// `NOTIFY`).
    pub(crate) fn send(&self, commit: CommittedEvents) {
        let _ = self.0.send(commit);
    }

    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<CommittedEvents> {
        self.0.subscribe()
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Changes {
    /// Events stored after the cursor, in `seq` order.
    pub events: Vec<EventNotice>,
    /// Webhooks changed after the cursor (each once, in order of their latest change).
    pub webhooks: Vec<WebhookId>,
    pub cursor: ChangeCursor,
    /// Events committed before the call may be missing: an ingest transaction of another
    /// instance has been open for long (PostgreSQL, see its module doc). Read again shortly,
    /// as no commit may announce them.
    pub settling: bool,
}

/// One event for one outbound webhook, with the exact body every attempt sends.
#[derive(Debug, Clone)]
pub struct Message {
    pub id: MessageId,
    pub webhook_id: WebhookId,
    pub event: String,
    pub event_id: Option<EventId>,
    pub body: String,
    pub created_at: Millis,
}

/// A message and its first attempt.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub message: Message,
    pub first: Attempt,
}

/// A claimed attempt with what is needed to send it.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub attempt: Attempt,
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
    pub attempt: Attempt,
    pub next: Option<Attempt>,
    pub health: HealthChange,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageState {
    pub last_attempt: i64,
    pub pending: bool,
}

/// How long an idempotency key holds (Svix's window).
pub const IDEMPOTENCY_WINDOW_MS: i64 = 24 * 3600 * 1000;

/// Most receipts waiting for a backend's group-commit writer. Beyond it a receipt is refused at
/// once (`busy`): the receiver answers 503 with Retry-After, and memory stays bounded.
pub const RECEIPT_QUEUE: usize = 4096;

/// The error of a full receipt queue.
pub(crate) fn busy() -> crate::error::Error {
    crate::error::Error::Unavailable("the store is busy; retry shortly".into())
}

/// A JSON text column's value, for backends that keep maps and lists as JSON.
pub(crate) fn json_text<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| Value::Null.to_string())
}

/// A writer's next batch: `first`, then whatever else has queued up (`next` gives a queued job
/// without waiting), up to `max` jobs. Both backends' group-commit writers take their batches so.
pub(crate) fn batch_after<T>(first: T, max: usize, mut next: impl FnMut() -> Option<T>) -> Vec<T> {
    let mut batch = vec![first];
    while batch.len() < max {
        match next() {
            Some(job) => batch.push(job),
            None => break,
        }
    }
    batch
}
