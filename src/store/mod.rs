//! The durable store: one SQLite file in WAL mode holding webhooks, events and the delivery log.
//!
//! `Store` is the only interface to persistence; the service layer calls its async methods and
//! never sees SQL. Each method runs its statements on the blocking pool. Writes share one
//! connection guarded by a mutex (SQLite serialises writers anyway); reads take a connection of
//! their own from a small pool, so that in WAL mode they never wait behind a commit's fsync
//! (the receiver looks its webhook up while the group-commit writer is syncing). A second
//! backend (PostgreSQL, see DESIGN.md §6) would be a second implementation of these methods.

mod deliveries;
mod events;
mod migrations;
mod queue;
mod webhooks;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags};

use crate::error::{Error, Result};

pub use deliveries::DeliveryQuery;
pub use events::{EventQuery, InsertOutcome};
pub use queue::{Claimed, Completion, HealthChange, Message};

#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
    readers: Arc<Readers>,
    webhooks: Arc<webhooks::WebhookCache>,
    /// Receipts for the group-commit writer thread (see `insert_event`).
    receipts: std::sync::mpsc::Sender<events::ReceiptJob>,
}

impl Store {
    /// Opens (creating if needed) `webhook-mcp.db` at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Self> {
        let mut conn = Connection::open(path)?;
        configure(&conn)?;
        migrations::apply(&mut conn)?;
        let conn = Arc::new(Mutex::new(conn));
        let (receipts, jobs) = std::sync::mpsc::channel();
        let writer_conn = conn.clone();
        std::thread::Builder::new()
            .name("receipt-writer".into())
            .spawn(move || events::receipt_writer(writer_conn, jobs))
            .map_err(|e| Error::Internal(format!("cannot start the store writer: {e}")))?;
        let readers = Arc::new(Readers {
            path: path.to_path_buf(),
            idle: Mutex::new(Vec::new()),
        });
        Ok(Store {
            conn,
            readers,
            webhooks: Arc::default(),
            receipts,
        })
    }

    /// Runs `f` with the connection on the blocking pool.
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

fn configure(conn: &Connection) -> Result<()> {
    // WAL lets readers run beside the writer. synchronous=FULL makes each commit durable before
    // the receiver acknowledges: an event answered with 200 survives a crash or power loss.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(())
}
