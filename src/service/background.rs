//! What every process runs beside its front ends, so that several processes can share one
//! store as peers:
//!
//! - the **change feed**: the one publisher on this process's event bus. This process's own
//!   commits are announced by the store's writer (`Cluster::subscribe_commits`), and on
//!   PostgreSQL the other instances' too (their `NOTIFY` spells them out); they go on the bus as
//!   written while they follow on from the feed's cursor, with no read. It reads
//!   `Cluster::changes_since` from its cursor when they do not (a commit nobody announced lies
//!   in between: another SQLite process's, or one too large to spell out; where the store
//!   hears other processes' commits, a gap first waits `GAP_GRACE` for the announcement that
//!   fills it), when a commit cannot tell what it follows on from (on PostgreSQL another
//!   instance's open batch may still commit below it), and when the store may have changed
//!   (`Cluster::wait_for_change`). It reads again soon while the store says events are
//!   settling (`Changes::settling`). Each event is announced exactly once per process, in
//!   `seq` order, and cached webhooks that any process changed are dropped. The store is the
//!   source of truth; the cursor makes a missed wake-up or a lost announcement cost latency,
//!   never an event.
//! - **liveness**: a heartbeat, and the reaper that frees the leases of instances that stopped
//!   heartbeating (they crashed), run by one process at a time under a job lock; the same
//!   process announces previous secrets whose rotation grace ended (`operational`).
//! - **retention**: pruning old history (see `retention`), also one process at a time.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::Service;
use crate::model::now_millis;
use crate::store::{ChangeCursor, CommittedEvents, EventNotice};

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

/// How long a gap before an announced commit may stay open before the feed reads the store,
/// where the store also tells of other processes' commits (`Cluster::hears_other_commits`):
/// the commit that fills it is usually on its way.
const GAP_GRACE: Duration = Duration::from_millis(5);
/// How many changes one read of the feed takes.
const FEED_BATCH: usize = 1000;
/// The longest the feed sleeps without looking (a backend's wait may return sooner).
const FEED_IDLE: Duration = Duration::from_secs(1);
/// The shortest time between two reads of the feed. The first read after a quiet spell goes
/// at once; under load, reads come at most this often, each taking whatever committed
/// meanwhile, instead of one read per other instance's commit (each read has a fixed cost: at
/// two PostgreSQL instances the reads' database side was 23 µs of the 61 µs rise in CPU per
/// event over one instance; spaced, 15 µs). It also paces the looks while events settle:
/// the first comes `FEED_GAP` after the read that found them settling, not `SETTLE_FIRST`.
const FEED_GAP: Duration = Duration::from_millis(5);
/// Events settling (`Changes::settling`): the first look again, the slowest, and how long a
/// wait lasts before the log says so (once).
const SETTLE_FIRST: Duration = Duration::from_millis(1);
const SETTLE_MAX: Duration = Duration::from_millis(50);
const SETTLE_WARN: Duration = Duration::from_secs(5);
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
        // Subscribed before the cursor is read: no commit falls between the two.
        let commits = self.store.subscribe_commits();
        let cursor = self.store.change_cursor().await?;
        self.announced
            .fetch_max(cursor.event_seq, std::sync::atomic::Ordering::Relaxed);
        Ok(tokio::spawn(self.clone().feed(cursor, commits, stop)))
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
        cursor: ChangeCursor,
        mut commits: broadcast::Receiver<CommittedEvents>,
        mut stop: watch::Receiver<bool>,
    ) {
        let grace = if self.store.hears_other_commits() {
            GAP_GRACE
        } else {
            Duration::ZERO
        };
        let mut feed = Feed::new(cursor, grace);
        let mut wait = self.store.wait_for_change(FEED_IDLE);
        // `gap`: the read is only for a gap, and is called off if an announcement fills it.
        let (mut read, mut gap, mut own_open) = (false, false, true);
        let mut held_back: Option<HeldBack> = None;
        let mut last_read: Option<tokio::time::Instant> = None;
        while !*stop.borrow() {
            if !read {
                let mut waited = false;
                let due = feed.read_due();
                tokio::select! {
                    _ = &mut wait => waited = true,
                    heard = commits.recv(), if own_open => match heard {
                        Ok(events) => feed.heard(&events),
                        Err(RecvError::Lagged(_)) => (read, gap) = (true, false),
                        Err(RecvError::Closed) => own_open = false,
                    },
                    _ = tokio::time::sleep_until(due.unwrap_or_else(tokio::time::Instant::now)),
                        if due.is_some() => (read, gap) = (true, true),
                    _ = stop.changed() => break,
                }
                if waited {
                    // Kept across wake-ups by this process's commits, so that another
                    // process's changes are looked for at the backend's pace under any load.
                    (read, gap) = (true, false);
                    wait = self.store.wait_for_change(FEED_IDLE);
                }
            }
            loop {
                match commits.try_recv() {
                    Ok(events) => feed.heard(&events),
                    Err(TryRecvError::Lagged(_)) => (read, gap) = (true, false),
                    Err(_) => break,
                }
            }
            for notice in feed.next_in_order() {
                self.announce(notice);
            }
            if gap && !feed.behind() {
                (read, gap) = (false, false);
            }
            if !read {
                continue;
            }
            if let Some(last) = last_read {
                if last.elapsed() < FEED_GAP {
                    // What this process commits meanwhile is taken in at the top, then read.
                    tokio::select! {
                        _ = tokio::time::sleep_until(last + FEED_GAP) => {}
                        _ = stop.changed() => break,
                    }
                    read = true;
                    continue;
                }
            }
            last_read = Some(tokio::time::Instant::now());
            gap = false;
            match self.store.changes_since(feed.cursor, FEED_BATCH).await {
                Ok(changes) => {
                    read =
                        changes.events.len() == FEED_BATCH || changes.webhooks.len() == FEED_BATCH;
                    let settling = changes.settling && !read;
                    if !changes.webhooks.is_empty() {
                        self.store.invalidate_webhooks(&changes.webhooks);
                        self.webhook_changes.send_modify(|n| *n += 1);
                    }
                    feed.read(changes.cursor);
                    for notice in changes.events {
                        self.announce(notice);
                    }
                    // Announced events past the read that now follow on from it.
                    for notice in feed.next_in_order() {
                        self.announce(notice);
                    }
                    if settling {
                        // No commit may announce them: look again soon, backing off.
                        let pause = held_back.get_or_insert_with(HeldBack::default).next_pause();
                        tokio::select! {
                            _ = tokio::time::sleep(pause) => {}
                            _ = stop.changed() => break,
                        }
                        read = true;
                    } else {
                        held_back = None;
                    }
                }
                Err(e) => {
                    read = false;
                    tracing::warn!(error = %e, "change feed: could not read the store; retrying");
                    tokio::time::sleep(FEED_IDLE).await;
                }
            }
        }
    }

    /// Puts one stored event on this process's bus (each exactly once, in `seq` order).
    fn announce(&self, notice: EventNotice) {
        self.announced
            .fetch_max(notice.seq, std::sync::atomic::Ordering::Relaxed);
        // No receivers is normal (nobody is listening yet).
        let _ = self.bus.send(notice);
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

/// Since when the feed has been told that events are settling, and how long it pauses next.
struct HeldBack {
    since: std::time::Instant,
    pause: Duration,
    warned: bool,
}

impl Default for HeldBack {
    fn default() -> Self {
        HeldBack {
            since: std::time::Instant::now(),
            pause: SETTLE_FIRST,
            warned: false,
        }
    }
}

impl HeldBack {
    /// The pause before the next look: doubling up to `SETTLE_MAX`.
    fn next_pause(&mut self) -> Duration {
        if !self.warned && self.since.elapsed() >= SETTLE_WARN {
            self.warned = true;
            tracing::warn!(
                waited_secs = self.since.elapsed().as_secs(),
                "the change feed waits for events held back by an ingest transaction that \
                 has been open for long; they are announced when it ends"
            );
        }
        let pause = self.pause;
        self.pause = (self.pause * 2).min(SETTLE_MAX);
        pause
    }
}

/// The change feed's position, and the commits it heard of but has not yet announced (they
/// lie past a gap that another announcement or a read of the store must fill first).
struct Feed {
    cursor: ChangeCursor,
    /// By `seq`: what each event heard of follows on from (`None`: unknown), and its notice.
    waiting: BTreeMap<i64, (Option<i64>, EventNotice)>,
    /// Since when the first of `waiting` has waited behind a gap.
    gap_since: Option<tokio::time::Instant>,
    /// How long a gap may wait for an announcement that fills it.
    grace: Duration,
}

impl Feed {
    fn new(cursor: ChangeCursor, grace: Duration) -> Self {
        Feed {
            cursor,
            waiting: BTreeMap::new(),
            gap_since: None,
            grace,
        }
    }

    /// Takes one announced commit (this process's, or another's the store heard of).
    fn heard(&mut self, commit: &CommittedEvents) {
        let mut follows = commit.follows;
        for n in commit.events.iter() {
            if n.seq > self.cursor.event_seq {
                self.waiting.insert(n.seq, (follows, n.clone()));
            }
            follows = Some(n.seq);
        }
    }

    /// The events heard of that follow on from the cursor with no gap, in order: announced as
    /// written. A gap is an event another process committed, or may still commit (or a
    /// `seq` a rolled-back transaction used up), which only a read can tell.
    fn next_in_order(&mut self) -> Vec<EventNotice> {
        let mut next = vec![];
        while let Some(entry) = self.waiting.first_entry() {
            // Nothing lies between what it follows on from and it, so nothing lies between a
            // cursor at or past the former and it either.
            if !matches!(entry.get().0, Some(f) if f <= self.cursor.event_seq) {
                break;
            }
            let (_, notice) = entry.remove();
            self.cursor.event_seq = notice.seq;
            next.push(notice);
        }
        if !next.is_empty() || self.waiting.is_empty() {
            self.gap_since = None;
        }
        if !self.waiting.is_empty() && self.gap_since.is_none() {
            self.gap_since = Some(tokio::time::Instant::now());
        }
        next
    }

    /// Whether announced events wait behind a gap.
    fn behind(&self) -> bool {
        !self.waiting.is_empty()
    }

    /// When the store must be read to get past a gap: once it has waited `grace` for an
    /// announcement to fill it, or at once when the first event waiting cannot tell what it
    /// follows on from (no announcement ever can).
    fn read_due(&self) -> Option<tokio::time::Instant> {
        let (follows, _) = self.waiting.values().next()?;
        let since = self.gap_since?;
        Some(if follows.is_some() {
            since + self.grace
        } else {
            since
        })
    }

    /// Moves to where a read of the store ended; announced events it covered were announced
    /// by it.
    fn read(&mut self, cursor: ChangeCursor) {
        self.cursor = cursor;
        self.waiting = self.waiting.split_off(&(cursor.event_seq + 1));
        self.gap_since = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice(seq: i64) -> EventNotice {
        EventNotice {
            seq,
            id: format!("e{seq}").as_str().into(),
            webhook_id: "w".into(),
            event: "t".into(),
        }
    }

    /// A commit of contiguous seqs (SQLite's kind).
    fn commit(seqs: &[i64]) -> CommittedEvents {
        CommittedEvents {
            events: seqs.iter().map(|&s| notice(s)).collect(),
            follows: Some(seqs[0] - 1),
        }
    }

    /// A commit of sparse seqs (PostgreSQL's kind).
    fn commit_after(follows: Option<i64>, seqs: &[i64]) -> CommittedEvents {
        CommittedEvents {
            events: seqs.iter().map(|&s| notice(s)).collect(),
            follows,
        }
    }

    fn seqs(notices: &[EventNotice]) -> Vec<i64> {
        notices.iter().map(|n| n.seq).collect()
    }

    fn at(event_seq: i64) -> ChangeCursor {
        ChangeCursor {
            event_seq,
            webhook_rev: 0,
        }
    }

    #[test]
    fn own_commits_that_follow_on_are_announced_without_a_read() {
        let mut feed = Feed::new(at(10), Duration::ZERO);
        // Commits heard out of order are put back in order.
        feed.heard(&commit(&[13, 14]));
        assert!(feed.next_in_order().is_empty());
        feed.heard(&commit(&[11, 12]));
        assert_eq!(seqs(&feed.next_in_order()), [11, 12, 13, 14]);
        assert!(!feed.behind());
        assert_eq!(feed.cursor.event_seq, 14);
        // A commit from before the cursor (heard late) is not announced twice.
        feed.heard(&commit_after(Some(8), &[9, 14]));
        assert!(feed.next_in_order().is_empty() && !feed.behind());
    }

    #[test]
    fn a_gap_waits_for_a_read_that_announces_what_it_covers_once() {
        let mut feed = Feed::new(at(10), Duration::ZERO);
        // Seq 11 and 12 are another process's: ours (13, 14) wait behind them.
        feed.heard(&commit(&[13, 14]));
        assert!(feed.next_in_order().is_empty());
        assert!(feed.behind());
        // The read returned 11..=13 (14 committed after it looked).
        feed.read(at(13));
        assert_eq!(seqs(&feed.next_in_order()), [14]);
        assert!(!feed.behind());
        // A read that saw everything leaves nothing to announce again.
        feed.heard(&commit(&[16]));
        feed.read(at(16));
        assert!(feed.next_in_order().is_empty() && !feed.behind());
        assert_eq!(feed.cursor.event_seq, 16);
    }

    #[test]
    fn a_gap_waits_its_grace_for_an_announcement_before_a_read() {
        let grace = Duration::from_secs(60);
        let mut feed = Feed::new(at(1_000), grace);
        // Another instance's commit (2049) is not heard yet: ours waits behind it.
        feed.heard(&commit_after(Some(2_049), &[3_073]));
        let before = tokio::time::Instant::now();
        assert!(feed.next_in_order().is_empty());
        let due = feed.read_due().expect("a read is due after the grace");
        assert!(due >= before + grace && due <= tokio::time::Instant::now() + grace);
        // Its announcement fills the gap: both go out, and no read is due.
        feed.heard(&commit_after(Some(1_000), &[2_049]));
        assert_eq!(seqs(&feed.next_in_order()), [2_049, 3_073]);
        assert_eq!(feed.read_due(), None);
        // A commit that cannot tell what it follows on from needs a read at once.
        feed.heard(&commit_after(None, &[4_097]));
        assert!(feed.next_in_order().is_empty());
        assert!(feed.read_due().unwrap() <= tokio::time::Instant::now());
        feed.read(at(4_097));
        assert_eq!(feed.read_due(), None);
    }

    #[test]
    fn sparse_commits_follow_on_from_what_their_writer_saw_before_them() {
        let mut feed = Feed::new(at(1_000), Duration::ZERO);
        // Nothing lies between 1000 and 5121: announced without a read; so is the next commit
        // that follows on from 5122.
        feed.heard(&commit_after(Some(1_000), &[5_121, 5_122]));
        feed.heard(&commit_after(Some(5_122), &[9_217]));
        assert_eq!(seqs(&feed.next_in_order()), [5_121, 5_122, 9_217]);
        assert!(!feed.behind());
        // Another instance's event (9300) lies before this one: it waits for a read.
        feed.heard(&commit_after(Some(9_300), &[10_241]));
        assert!(feed.next_in_order().is_empty() && feed.behind());
        // Unknown (another batch could still commit below): waits for a read too.
        feed.heard(&commit_after(None, &[11_265]));
        assert!(feed.next_in_order().is_empty());
        // The read announced 9300 and 10241 and stopped there: 11265 is still unknown.
        feed.read(at(10_241));
        assert!(feed.next_in_order().is_empty() && feed.behind());
        feed.read(at(11_265));
        assert!(!feed.behind());
        assert_eq!(feed.cursor.event_seq, 11_265);
    }
}
