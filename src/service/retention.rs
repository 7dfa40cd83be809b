//! Retention: how long history is kept, and the job that deletes what is older.
//!
//! Events (with the receipts that stored them) and the delivery log each have their own
//! retention. Pruning runs in the background of every serving process, one process at a time
//! under a job lock, in batches of `BATCH` rows, each its own short transaction, so that the
//! receiver's group commit never waits behind it for long. `webhook-mcp prune` runs the same
//! code on demand. An event's provider id is de-duplicated only while the event is kept: the
//! de-duplication window is the event retention.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;

use super::Service;
use crate::error::Result;
use crate::model::{now_millis, Millis};
use crate::store::{PruneCutoffs, Pruned};

/// Rows of each kind one batch deletes at most.
pub const BATCH: usize = 500;
/// The webhook change log is read by live peers within milliseconds; an hour is ample.
const CHANGE_LOG_KEEP: Duration = Duration::from_secs(3600);
const PRUNE_LOCK: &str = "prune";

/// How long each kind of history is kept; `None` keeps it for ever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub events: Option<Duration>,
    pub deliveries: Option<Duration>,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            events: Some(DEFAULT_RETENTION),
            deliveries: Some(DEFAULT_RETENTION),
        }
    }
}

/// Thirty days: long enough to debug last month's incident, short enough that a busy
/// receiver's store stays in the low gigabytes.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

impl Retention {
    pub fn cutoffs(&self, now: Millis) -> PruneCutoffs {
        let before = |d: Duration| now - d.as_millis() as i64;
        PruneCutoffs {
            events_before: self.events.map(before),
            deliveries_before: self.deliveries.map(before),
            changes_before: Some(before(CHANGE_LOG_KEEP)),
            keys_before: Some(now - crate::store::IDEMPOTENCY_WINDOW_MS),
        }
    }

    /// How often the background job looks: a quarter of the shorter retention, between one
    /// second and five minutes, so that history outlives its retention by at most a quarter.
    pub fn interval(&self) -> Duration {
        let shortest = [self.events, self.deliveries]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(CHANGE_LOG_KEEP);
        (shortest / 4).clamp(Duration::from_secs(1), Duration::from_secs(300))
    }
}

/// Parses a retention flag: a duration such as `30d`, `12h`, `90s`, or `off` (keep for ever).
pub fn parse_retention(s: &str) -> std::result::Result<Option<Duration>, String> {
    let s = s.trim();
    if ["off", "forever", "never"].contains(&s.to_ascii_lowercase().as_str()) {
        return Ok(None);
    }
    let d = humantime::parse_duration(s)
        .map_err(|e| format!("{e}; give a duration such as 30d, 12h or 90s, or `off`"))?;
    if d < Duration::from_secs(1) {
        return Err("a retention shorter than 1s would delete events as they arrive".into());
    }
    Ok(Some(d))
}

/// What one prune run did.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct PruneReport {
    #[serde(flatten)]
    pub pruned: Pruned,
    /// The store's size before and after, in bytes, where the backend can tell.
    pub size_before: Option<u64>,
    pub size_after: Option<u64>,
}

impl Service {
    /// Deletes history older than `retention` in batches (calling `progress` after each with
    /// the running total), then lets the file shrink. `full_compact` also rewrites a store made
    /// before incremental vacuum existed (it blocks writers meanwhile).
    pub async fn prune(
        &self,
        retention: &Retention,
        full_compact: bool,
        mut progress: impl FnMut(Pruned),
    ) -> Result<PruneReport> {
        let size_before = self.store.size_bytes().await?;
        let cutoffs = retention.cutoffs(now_millis());
        let mut total = Pruned::default();
        loop {
            let batch = self.store.prune(cutoffs, BATCH).await?;
            total += batch;
            progress(total);
            if !batch.full(BATCH) {
                break;
            }
            // Let waiting writers (the receipt writer above all) in between batches.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if total.total() > 0 || full_compact {
            self.store.compact(full_compact).await?;
        }
        Ok(PruneReport {
            pruned: total,
            size_before,
            size_after: self.store.size_bytes().await?,
        })
    }

    /// The background job: prunes every `retention.interval()`, one process at a time.
    pub(super) async fn retention_loop(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let retention = self.settings.retention;
        let every = retention.interval();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.changed() => return,
            }
            let now = now_millis();
            // Held for the run's likely length; a crashed holder's lock simply expires.
            let until = now + (every.as_millis() as i64).max(60_000);
            match self
                .store
                .try_job_lock(PRUNE_LOCK, &self.instance, now, until)
                .await
            {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "retention: could not take the prune lock");
                    continue;
                }
            }
            match self.prune(&retention, false, |_| {}).await {
                Ok(r) if r.pruned.total() > 0 => tracing::info!(
                    events = r.pruned.events,
                    deliveries = r.pruned.deliveries,
                    messages = r.pruned.messages,
                    size_after = r.size_after,
                    "retention: pruned history"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "retention: pruning failed; will retry"),
            }
        }
    }
}
