//! What readers by cursor need: the bound below which no event can be committed any more
//! (`settled`, schema 11), and the listening connection that turns other instances' commits
//! into wake-ups.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::GenericClient;
use tokio::sync::{mpsc, Notify};
use tokio_postgres::AsyncMessage;
use tokio_postgres::NoTls;

use super::client::{col, Cached, Tls};
use crate::error::{Error, Result};
use crate::store::sql::numbered;

/// The shortest time between two wake-ups of the change feed by other instances' commits.
const COALESCE: Duration = Duration::from_millis(2);

/// Keeps one connection LISTENing on the store's channel, reconnecting when it drops; every
/// notification (and every reconnect, after which something may have been missed) wakes the
/// change feed, which then reads by cursor.
pub(super) async fn listen(
    config: tokio_postgres::Config,
    tls: Tls,
    channel: Arc<str>,
    own_events: Arc<str>,
    changed: Arc<Notify>,
) {
    loop {
        let ended = match &tls {
            Tls::Plain => listen_once(&config, NoTls, &channel, &own_events, &changed).await,
            Tls::Rustls(t) => {
                listen_once(&config, t.clone(), &channel, &own_events, &changed).await
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
) -> Result<()>
where
    T: tokio_postgres::tls::MakeTlsConnect<tokio_postgres::Socket>,
    T::Stream: Send + 'static,
{
    let (client, mut connection) = config.connect(tls).await?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let own_events = own_events.to_string();
    let driver = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) if n.payload() == &*own_events => {}
                Some(Ok(AsyncMessage::Notification(_))) => {
                    let _ = tx.send(());
                }
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
        // several other instances' commits in one go instead of one read per commit.
        tokio::time::sleep(COALESCE).await;
    }
    drop(client);
    driver.await.map_err(|e| Error::Internal(e.to_string()))?
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
