//! The durable store: one SQLite file in WAL mode holding webhooks, events and the delivery log.
//!
//! `Store` is the only interface to persistence; the service layer calls its async methods and
//! never sees SQL. Each method runs its statements on the blocking pool, on one connection
//! guarded by a mutex (SQLite serialises writers anyway). A second backend (PostgreSQL, see
//! DESIGN.md §6) would be a second implementation of these same methods.

mod deliveries;
mod events;
mod migrations;
mod queue;
mod webhooks;

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

use crate::error::{Error, Result};

pub use deliveries::DeliveryQuery;
pub use events::{EventQuery, InsertOutcome};
pub use queue::{Claimed, Completion, HealthChange, Message};

#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
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
        Ok(Store { conn, receipts })
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
