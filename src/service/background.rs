//! What every process runs beside its front ends, so that several processes can share one
//! store as peers:
//!
//! - the **change feed**: the one publisher on this process's event bus. It reads
//!   `Store::changes_since` from its cursor whenever this process stored an event (kicked at
//!   once) or the store may have changed (`Store::wait_for_change`: another process), turns new
//!   events into bus notices (each exactly once per process, in `seq` order) and drops cached
//!   webhooks that any process changed. The store is the source of truth; the cursor makes
//!   a missed wake-up cost latency, never an event.
//! - **liveness**: a heartbeat, and the reaper that frees the leases of instances that stopped
//!   heartbeating (they crashed), run by one process at a time under a job lock; the same
//!   process announces previous secrets whose rotation grace ended (`operational`).
//! - **retention**: pruning old history (see `retention`), also one process at a time.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::Service;
use crate::model::now_millis;

/// The store as `doctor` sees it.
#[derive(Debug, Clone)]
pub struct StoreHealth {
    /// Processes that heartbeated within `DEAD_AFTER`.
    pub live_instances: u64,
    /// Pending delivery attempts.
    pub queue_depth: u64,
    /// When the earliest pending attempt is due (in the past: it is late).
    pub next_due_at: Option<crate::model::Millis>,
    /// The database server's clock (PostgreSQL).
    pub server_time: Option<crate::model::Millis>,
}

/// How many changes one read of the feed takes.
const FEED_BATCH: usize = 1000;
/// The longest the feed sleeps without looking (a backend's wait may return sooner).
const FEED_IDLE: Duration = Duration::from_secs(1);
/// How often this process says it is alive.
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// An instance silent this long is taken for dead and its leases are freed.
pub const DEAD_AFTER: Duration = Duration::from_secs(5);
const REAPER_LOCK: &str = "reap-dead-instances";

impl Service {
    /// Starts the change feed and the liveness tasks; they end when `stop` turns true.
    pub async fn start_background(
        self: &Arc<Self>,
        stop: watch::Receiver<bool>,
    ) -> crate::error::Result<Vec<JoinHandle<()>>> {
        // Registered before the worker claims anything, so the reaper never takes this
        // process's fresh leases for a dead owner's.
        self.store.heartbeat(&self.instance, now_millis()).await?;
        Ok(vec![
            self.follow_changes(stop.clone()).await?,
            tokio::spawn(self.clone().liveness(stop.clone())),
            tokio::spawn(self.clone().retention_loop(stop.clone())),
            tokio::spawn(self.clone().pump_subscriptions(stop)),
        ])
    }

    /// Starts the change feed alone, for a process that only reads (`events tail`): it takes
    /// no leases and must not prune by retention settings of its own.
    pub async fn follow_changes(
        self: &Arc<Self>,
        stop: watch::Receiver<bool>,
    ) -> crate::error::Result<JoinHandle<()>> {
        let cursor = self.store.change_cursor().await?;
        self.announced
            .fetch_max(cursor.event_seq, std::sync::atomic::Ordering::Relaxed);
        Ok(tokio::spawn(self.clone().feed(cursor, stop)))
    }

    /// What `doctor` reports about the store's processes and queue.
    pub async fn store_health(&self) -> crate::error::Result<StoreHealth> {
        let now = now_millis();
        let (queue_depth, _) = self.store.queue_stats().await?;
        Ok(StoreHealth {
            live_instances: self
                .store
                .live_instances(now - DEAD_AFTER.as_millis() as i64)
                .await?,
            queue_depth,
            next_due_at: self.store.next_due_at().await?,
            server_time: self.store.server_time().await?,
        })
    }

    /// The store's size on disk, when the backend can tell.
    pub async fn store_size(&self) -> crate::error::Result<Option<u64>> {
        self.store.size_bytes().await
    }

    async fn feed(
        self: Arc<Self>,
        mut cursor: crate::store::ChangeCursor,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut more = false;
        while !*stop.borrow() {
            if !more {
                tokio::select! {
                    _ = self.feed_kick.notified() => {}
                    _ = self.store.wait_for_change(FEED_IDLE) => {}
                    _ = stop.changed() => break,
                }
            }
            match self.store.changes_since(cursor, FEED_BATCH).await {
                Ok(changes) => {
                    more =
                        changes.events.len() == FEED_BATCH || changes.webhooks.len() == FEED_BATCH;
                    if !changes.webhooks.is_empty() {
                        self.store.invalidate_webhooks(&changes.webhooks);
                        self.webhook_changes.send_modify(|n| *n += 1);
                    }
                    for notice in changes.events {
                        self.announced
                            .fetch_max(notice.seq, std::sync::atomic::Ordering::Relaxed);
                        // No receivers is normal (nobody is listening yet).
                        let _ = self.bus.send(notice);
                    }
                    cursor = changes.cursor;
                }
                Err(e) => {
                    more = false;
                    tracing::warn!(error = %e, "change feed: could not read the store; retrying");
                    tokio::time::sleep(FEED_IDLE).await;
                }
            }
        }
    }

    async fn liveness(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(HEARTBEAT);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            let now = now_millis();
            if let Err(e) = self.store.heartbeat(&self.instance, now).await {
                tracing::warn!(error = %e, "could not record this instance's heartbeat");
                continue;
            }
            let lock_until = now + 3 * HEARTBEAT.as_millis() as i64;
            match self
                .store
                .try_job_lock(REAPER_LOCK, &self.instance, now, lock_until)
                .await
            {
                Ok(true) => {}
                Ok(false) => continue, // another process reaps
                Err(e) => {
                    tracing::warn!(error = %e, "could not take the reaper lock");
                    continue;
                }
            }
            // The holder of the reaper lock also announces rotated-out secrets that expired,
            // and removes MCP Events subscriptions whose TTL ran out.
            if let Err(e) = self.announce_expired_secrets().await {
                tracing::warn!(error = %e, "could not announce expired secrets");
            }
            if let Err(e) = self.expire_subscriptions().await {
                tracing::warn!(error = %e, "could not remove expired subscriptions");
            }
            let stale_before = now - DEAD_AFTER.as_millis() as i64;
            match self.store.reap_dead_instances(stale_before).await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(
                        attempts = n,
                        "resuming attempts left in flight by a process that stopped"
                    );
                    self.wake.notify_one();
                }
                Err(e) => tracing::warn!(error = %e, "could not free the leases of dead instances"),
            }
        }
    }

    /// This process is stopping: its unfinished attempts are due again at once (for a process
    /// still running, or the next to start) instead of after the reaper's delay.
    pub async fn retire(&self) {
        match self.store.retire_instance(&self.instance).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                attempts = n,
                "released unfinished attempts for the next process"
            ),
            Err(e) => tracing::warn!(error = %e, "could not release this instance's leases"),
        }
    }
}
