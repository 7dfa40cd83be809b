//! The delivery worker pool: claims due attempts from the store, sends them with bounded
//! concurrency, and writes results back in batches.
//!
//! One loop claims (as many attempts as there are free slots), each attempt runs in its own
//! task, and one writer task commits finished attempts together: at high load many results
//! share one transaction instead of one fsync each. On shutdown the loop stops claiming,
//! in-flight attempts get a bounded time to finish, and whatever is unfinished stays pending
//! (the process releases its leases as it exits; after a crash the reaper frees them).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch, Notify, Semaphore};

use super::policy::{Policy, Verdict};
use super::{signed_headers, Http};
use crate::model::{now_millis, Attempt, DeliveryStatus, Millis, Trigger};
use crate::store::{Claimed, Completion, HealthChange, InstanceId, SharedStore};

/// What the worker tells the service after a commit, for the operational events agents see
/// (`webhook_mcp.*` in the catalogue).
#[derive(Debug, Clone)]
pub enum Operational {
    /// An outbound webhook was disabled by the delivery policy (410, or failing too long).
    Disabled { attempt: Attempt, reason: String },
    /// A message's last attempt failed and no retry follows.
    FinallyFailed(Attempt),
}

pub struct Worker {
    pub store: SharedStore,
    /// Where committed disables and final failures are reported (bounded; dropped when full).
    pub ops: Option<mpsc::Sender<Operational>>,
    /// Outcome counters and the attempt latency histogram.
    pub metrics: Option<Arc<crate::service::metrics::Metrics>>,
    /// The lease owner: this process.
    pub instance: InstanceId,
    pub http: Http,
    pub policy: Policy,
    /// The policy of MCP Events subscription deliveries (`Policy::for_subscriptions`).
    pub subscription_policy: Policy,
    /// Signalled whenever attempts are queued, so the loop need not poll.
    pub wake: Arc<Notify>,
    pub concurrency: usize,
    /// A claim is released if its result is not written within this time (covers a stuck
    /// writer; a crash is covered by the reaper).
    pub lease: Duration,
    /// How long shutdown waits for in-flight attempts.
    pub drain: Duration,
}

/// The longest the loop sleeps without a wake-up. Work this process queues wakes it at once;
/// work queued by another process on the same store (`webhook-mcp send`, `redeliver`, a peer
/// without a worker) leaves no signal here, so it is found by this look: one indexed
/// `next_due_at` read a second while idle.
const IDLE_RECHECK: Duration = Duration::from_secs(1);

/// The longest a claim waits for a quarter of the slots to be free while the rest are busy
/// (measured in BENCHMARKS.md, session 14: claims of one attempt each were most of the
/// delivery engine's commits).
const CLAIM_GATHER: Duration = Duration::from_millis(2);

impl Worker {
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        // Nothing is released here: leases held by live processes stay theirs, and those of
        // processes that died are freed by the reaper (`service::background`).
        let slots = Arc::new(Semaphore::new(self.concurrency));
        let (done_tx, done_rx) = mpsc::channel::<Completion>(self.concurrency * 4);
        let writer = tokio::spawn(write_results(
            self.store.clone(),
            done_rx,
            self.wake.clone(),
            self.ops.clone(),
            self.metrics.clone(),
        ));

        while !*stop.borrow() {
            let free = slots.available_permits();
            if free == 0 {
                tokio::select! {
                    p = slots.clone().acquire_owned() => drop(p),
                    _ = stop.changed() => {}
                }
                continue;
            }
            // A claim is a write transaction (on SQLite, a commit and an fsync). When most slots
            // are busy, let a few more attempts finish first rather than claim one attempt per
            // transaction: at most `CLAIM_GATHER`, and only under load.
            let gather = self.concurrency.div_ceil(4);
            let free = if free < gather {
                let more = slots.acquire_many(gather as u32);
                drop(tokio::time::timeout(CLAIM_GATHER, more).await);
                slots.available_permits()
            } else {
                free
            };
            let now = now_millis();
            let lease_until = now + self.lease.as_millis() as i64;
            let claimed = match self
                .store
                .claim_due(&self.instance, now, free, lease_until)
                .await
            {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "could not claim deliveries; retrying shortly");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let got = claimed.len();
            for c in claimed {
                let permit = slots.clone().acquire_owned().await.expect("never closed");
                let (this, done) = (self.clone(), done_tx.clone());
                tokio::spawn(async move {
                    let completion = this.attempt(c).await;
                    let _ = done.send(completion).await;
                    drop(permit);
                });
            }
            if got == free {
                continue; // there may be more due right now
            }
            let sleep = match self.store.next_due_at().await {
                Ok(Some(at)) => {
                    Duration::from_millis((at - now_millis()).max(0) as u64).min(IDLE_RECHECK)
                }
                _ => IDLE_RECHECK,
            };
            tokio::select! {
                _ = tokio::time::sleep(sleep) => {}
                _ = self.wake.notified() => {}
                _ = stop.changed() => {}
            }
        }

        // Stop claiming; give in-flight attempts a bounded time, then leave the rest pending.
        let all = self.concurrency as u32;
        match tokio::time::timeout(self.drain, slots.acquire_many(all)).await {
            Ok(_) => tracing::info!("delivery worker stopped; nothing in flight"),
            Err(_) => tracing::warn!(
                "delivery worker stopped with attempts in flight; they resume at the next start"
            ),
        }
        drop(done_tx);
        let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
    }

    /// Sends one claimed attempt and decides what follows.
    async fn attempt(&self, c: Claimed) -> Completion {
        let mut d = c.attempt;
        let now = now_millis();
        d.created_at = now;
        d.next_attempt_at = None;
        let Some(webhook) = c.webhook.filter(|w| w.may_send().is_ok()) else {
            d.status = DeliveryStatus::Failed;
            d.error = Some("not sent: the webhook was deleted or disabled after this was queued; re-enable it and use redeliver".into());
            return Completion {
                attempt: d,
                next: None,
                health: HealthChange::None,
            };
        };
        d.url = webhook.target_url.clone();
        let headers = signed_headers(&webhook, &d.message_id, &d.event, c.body.as_bytes(), now);
        let answer = self
            .http
            .send(&webhook.target_url, &headers, c.body.as_bytes(), &mut d)
            .await;
        let failing_since: Millis = webhook.first_failure_at.unwrap_or(now);
        let failing_for = Duration::from_millis((now - failing_since).max(0) as u64);
        let policy = if crate::model::EventSubscription::is_subscription_id(&webhook.id) {
            &self.subscription_policy
        } else {
            &self.policy
        };
        let verdict = policy.verdict(&d, &answer, failing_for);
        tracing::debug!(delivery_id = %d.id, webhook_id = %webhook.id, attempt = d.number, status = ?d.status_code, ?verdict, "attempt finished");
        match verdict {
            Verdict::Done => Completion {
                attempt: d,
                next: None,
                health: HealthChange::Success,
            },
            Verdict::RetryIn(delay) => {
                let next = d.follow_up(
                    Trigger::Scheduled,
                    d.number + 1,
                    d.url.clone(),
                    now + delay.as_millis() as i64,
                );
                d.next_attempt_at = next.next_attempt_at;
                Completion {
                    attempt: d,
                    next: Some(next),
                    health: HealthChange::Failure { disable: None },
                }
            }
            Verdict::GiveUp(why) => {
                append_error(&mut d, &why);
                Completion {
                    attempt: d,
                    next: None,
                    health: HealthChange::Failure { disable: None },
                }
            }
            Verdict::Disable(why) => {
                tracing::warn!(webhook_id = %webhook.id, reason = %why, "disabling outbound webhook");
                append_error(&mut d, &format!("webhook disabled: {why}"));
                Completion {
                    attempt: d,
                    next: None,
                    health: HealthChange::Failure { disable: Some(why) },
                }
            }
        }
    }
}

/// The metrics label of a finished attempt, and its duration in seconds when it was sent.
fn outcome(c: &Completion) -> (&'static str, Option<f64>) {
    let label = match (&c.health, c.attempt.status, c.next.is_some()) {
        (HealthChange::Failure { disable: Some(_) }, _, _) => "disabled",
        (_, DeliveryStatus::Succeeded, _) => "succeeded",
        (_, _, true) => "retrying",
        _ => "failed",
    };
    (label, c.attempt.duration_ms.map(|ms| ms as f64 / 1000.0))
}

/// The operational reports one committed result makes.
fn operational(c: &Completion) -> Vec<Operational> {
    let mut out = vec![];
    if let HealthChange::Failure {
        disable: Some(reason),
    } = &c.health
    {
        out.push(Operational::Disabled {
            attempt: c.attempt.clone(),
            reason: reason.clone(),
        });
    }
    if c.next.is_none() && c.attempt.status == DeliveryStatus::Failed {
        out.push(Operational::FinallyFailed(c.attempt.clone()));
    }
    out
}

fn append_error(d: &mut Attempt, why: &str) {
    d.error = Some(match d.error.take() {
        Some(e) => format!("{e}; {why}"),
        None => why.to_string(),
    });
}

/// Commits finished attempts, batching whatever is ready together.
async fn write_results(
    store: SharedStore,
    mut rx: mpsc::Receiver<Completion>,
    wake: Arc<Notify>,
    ops: Option<mpsc::Sender<Operational>>,
    metrics: Option<Arc<crate::service::metrics::Metrics>>,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < 512 {
            match rx.try_recv() {
                Ok(c) => batch.push(c),
                Err(_) => break,
            }
        }
        let retries = batch.iter().any(|c| c.next.is_some());
        let reports: Vec<Operational> = batch.iter().flat_map(operational).collect();
        let outcomes: Vec<(&'static str, Option<f64>)> = batch.iter().map(outcome).collect();
        // A failed write leaves the claims leased; they are retried after the lease or restart.
        match store.complete(batch).await {
            Ok(()) => {
                if let Some(m) = &metrics {
                    for (outcome, seconds) in &outcomes {
                        let label = crate::service::metrics::Outcome { outcome };
                        m.deliveries.get_or_create(&label).inc();
                        if let Some(s) = seconds {
                            m.attempt_seconds.observe(*s);
                        }
                    }
                }
                if let Some(ops) = &ops {
                    for r in reports {
                        if ops.try_send(r).is_err() {
                            tracing::warn!("operational event dropped: its queue is full");
                        }
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "could not record delivery results"),
        }
        if retries {
            wake.notify_one();
        }
    }
}
