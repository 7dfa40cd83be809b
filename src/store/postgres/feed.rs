//! What readers by cursor need: the bound below which no event can be committed any more
//! (`settled`, schema 11), and the listening connection that tells this process of other
//! instances' commits.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::GenericClient;
use tokio::sync::{mpsc, Notify};
use tokio_postgres::AsyncMessage;
use tokio_postgres::NoTls;

use super::client::{col, Cached, Tls};
use crate::error::{Error, Result};
use crate::model::{EventId, WebhookId};
use crate::store::sql::numbered;
use crate::store::{Commits, CommittedEvents, EventNotice};

/// The shortest time between two wake-ups of the change feed by changes it must read.
const COALESCE: Duration = Duration::from_millis(2);

/// Keeps one connection LISTENing on the store's channel, reconnecting when it drops. Another
/// instance's ingest commit that its `NOTIFY` spells out (`announce_commit`, schema 15) is
/// announced on `commits`, as this process's writer announces its own; any other notification
/// (a webhook change, a commit too large to spell out) and every reconnect (after which
/// something may have been missed) wakes the change feed, which then reads by cursor.
pub(super) async fn listen(
    config: tokio_postgres::Config,
    tls: Tls,
    channel: Arc<str>,
    own_events: Arc<str>,
    changed: Arc<Notify>,
    commits: Commits,
) {
    loop {
        let ended = match &tls {
            Tls::Plain => {
                listen_once(&config, NoTls, &channel, &own_events, &changed, &commits).await
            }
            Tls::Rustls(t) => {
                listen_once(
                    &config,
                    t.clone(),
                    &channel,
                    &own_events,
                    &changed,
                    &commits,
                )
                .await
            }
        };
        if let Err(e) = ended {
            tracing::warn!(error = %e, "change listener lost its database connection; reconnecting");
        }
        changed.notify_one();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn listen_once<T>(
    config: &tokio_postgres::Config,
    tls: T,
    channel: &str,
    own_events: &str,
    changed: &Notify,
    commits: &Commits,
) -> Result<()>
where
    T: tokio_postgres::tls::MakeTlsConnect<tokio_postgres::Socket>,
    T::Stream: Send + 'static,
{
    let (client, mut connection) = config.connect(tls).await?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let own_events = own_events.to_string();
    let commits = commits.clone();
    let driver = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) => match heard(n.payload(), &own_events) {
                    Heard::Own => {}
                    Heard::Commit(c) => commits.send(c),
                    Heard::Change => {
                        let _ = tx.send(());
                    }
                },
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(Error::from(e)),
                None => return Ok(()),
            }
        }
    });
    client
        .batch_execute(&format!("LISTEN \"{channel}\""))
        .await?;
    changed.notify_one(); // anything committed before LISTEN took effect is read now
    while rx.recv().await.is_some() {
        while rx.try_recv().is_ok() {}
        changed.notify_one();
        // At most one wake-up per `COALESCE`, the first at once: under load the feed reads
        // several changes in one go instead of one read per change.
        tokio::time::sleep(COALESCE).await;
    }
    drop(client);
    driver.await.map_err(|e| Error::Internal(e.to_string()))?
}

/// What one notification on the store's channel says.
#[derive(Debug, PartialEq)]
enum Heard {
    /// This process's own commit: its writer announced it.
    Own,
    /// Another instance's commit, spelled out.
    Commit(CommittedEvents),
    /// Something changed that only a read of the store tells.
    Change,
}

/// Reads a notification: `<tag> <follows or -> <low> [[place, id, webhook id, event type], …]`
/// from an ingest commit (`announce_commit`; each event's `seq` is low + place); anything else,
/// or one that does not parse, is a change to read. Payloads come from this store's instances;
/// a malformed one costs a read, nothing more.
fn heard(payload: &str, own_tag: &str) -> Heard {
    let mut words = payload.splitn(4, ' ');
    if words.next() == Some(own_tag) {
        return Heard::Own;
    }
    let follows = match words.next() {
        Some("-") => None,
        Some(n) => match n.parse::<i64>() {
            Ok(n) => Some(n),
            Err(_) => return Heard::Change,
        },
        None => return Heard::Change,
    };
    let (Some(Ok(low)), Some(notices)) = (words.next().map(str::parse::<i64>), words.next()) else {
        return Heard::Change;
    };
    let Ok(list) = serde_json::from_str::<Vec<(i64, EventId, WebhookId, String)>>(notices) else {
        return Heard::Change;
    };
    let places_ok = list.first().is_some_and(|n| n.0 >= 1)
        && list.last().is_some_and(|n| n.0 < 1024)
        && list.windows(2).all(|w| w[0].0 < w[1].0);
    if !places_ok {
        return Heard::Change;
    }
    Heard::Commit(CommittedEvents {
        events: list
            .into_iter()
            .map(|(place, id, webhook_id, event)| EventNotice {
                seq: low + place,
                id,
                webhook_id,
                event,
            })
            .collect(),
        follows,
    })
}

// --- readers by cursor ------------------------------------------------------------------------

/// Where a reader by cursor may read up to (schema 11).
pub(super) struct Settled {
    /// Read events below it only: none can be committed below it any more.
    pub(super) bound: i64,
    /// The newest event committed before the read began, when it lies below `bound`.
    newest: Option<i64>,
    /// Every event committed before the read began lies below `bound`.
    pub(super) complete: bool,
}

impl Settled {
    /// "Now" as an event cursor: the newest event below the bound.
    pub(super) async fn now(&self, c: &impl GenericClient) -> Result<i64> {
        match self.newest {
            Some(n) => Ok(n),
            None => Ok(c
                .query_one_cached(&numbered(crate::store::events::MAX_SEQ), &[&self.bound])
                .await?
                .try_get(0)?),
        }
    }
}

/// The newest committed event and the bound, in one statement (readers read below the bound
/// in a later one).
const SETTLE_PROBE: &str =
    "SELECT (SELECT COALESCE(MAX(seq), 0) FROM events) AS newest, settled_seq() AS bound";
/// How long a read waits for this store's ingest transactions that were open when it began.
const SETTLE_WAIT: Duration = Duration::from_millis(500);

/// The bound for a read that sees every event committed before the call (read-your-writes):
/// waits, a batch's commit at most, until this store's ingest transactions open when it began
/// have ended. One that takes longer than `SETTLE_WAIT` (a stalled database) is left behind
/// (`complete: false`, with a warning): the read sees what is settled, the rest later.
pub(super) async fn settled(c: &impl GenericClient) -> Result<Settled> {
    let row = c.query_one_cached(SETTLE_PROBE, &[]).await?;
    let newest: i64 = col(&row, "newest")?;
    let mut bound: i64 = col(&row, "bound")?;
    let deadline = std::time::Instant::now() + SETTLE_WAIT;
    let mut pause = Duration::from_micros(200);
    while bound <= newest {
        if std::time::Instant::now() >= deadline {
            warn_held_back();
            return Ok(Settled {
                bound,
                newest: None,
                complete: false,
            });
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(10));
        bound = c
            .query_one_cached("SELECT settled_seq()", &[])
            .await?
            .try_get(0)?;
    }
    Ok(Settled {
        bound,
        newest: Some(newest),
        complete: true,
    })
}

/// At most every 10 s per process.
fn warn_held_back() {
    use std::sync::atomic::{AtomicI64, Ordering};
    static LAST: AtomicI64 = AtomicI64::new(0);
    let now = crate::model::now_millis();
    let last = LAST.load(Ordering::Relaxed);
    if now - last >= 10_000
        && LAST
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        tracing::warn!(
            wait_ms = SETTLE_WAIT.as_millis() as u64,
            "an ingest transaction on this store has been open longer than a read waits: new \
             events are read once it ends (nothing is lost)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_are_read_as_commits_own_tags_or_changes() {
        let own = "events:aaa";
        let commit = heard(
            r#"events:bbb 5120 6144 [[1,"e1","w1","t.a"],[2,"e2","w2","t b"]]"#,
            own,
        );
        let Heard::Commit(c) = commit else {
            panic!("{commit:?}")
        };
        assert_eq!(c.follows, Some(5120));
        assert_eq!(c.events.len(), 2);
        assert_eq!(c.events[1].seq, 6146);
        assert_eq!(c.events[1].id.as_str(), "e2");
        assert_eq!(c.events[1].webhook_id.as_str(), "w2");
        assert_eq!(c.events[1].event, "t b");
        let Heard::Commit(c) = heard(r#"events:bbb - 7168 [[1,"e3","w1","t"]]"#, own) else {
            panic!()
        };
        assert_eq!((c.follows, c.events[0].seq), (None, 7169));
        // This process's own, spelled out or not.
        assert_eq!(
            heard(r#"events:aaa 1 2 [[1,"e","w","t"]]"#, own),
            Heard::Own
        );
        assert_eq!(heard("events:aaa", own), Heard::Own);
        // Another's not spelled out, a webhook change, an older instance's tag, and anything
        // malformed: read the store.
        for other in [
            "events:bbb",
            "webhooks",
            "events bbb",
            r#"events:bbb x 2 [[1,"e","w","t"]]"#,
            r#"events:bbb 1 x [[1,"e","w","t"]]"#,
            r#"events:bbb 1 2 [[1,"e","w"]]"#,
            r#"events:bbb 1 2 []"#,
            r#"events:bbb 1 2 [[0,"e","w","t"]]"#,
            r#"events:bbb 1 2 [[1024,"e","w","t"]]"#,
            r#"events:bbb 1 2 [[3,"e","w","t"],[2,"f","w","t"]]"#,
            r#"events:bbb 1 2 [[3,"e","w","t"]"#,
        ] {
            assert_eq!(heard(other, own), Heard::Change, "{other}");
        }
    }
}
