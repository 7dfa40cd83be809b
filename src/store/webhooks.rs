//! Webhook rows, and the cache that answers the receiver's per-request lookup.

use std::collections::HashMap;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::Store;
use crate::error::Result;
use crate::model::{Direction, Provider, Webhook};

const COLUMNS: &str = "id, direction, target_url, provider, events, description, enabled, secret, \
    previous_secret, previous_secret_expires_at, headers, created_at, updated_at, failure_count, \
    first_failure_at, disabled_reason, forward_to";

impl Store {
    pub async fn insert_webhook(&self, w: Webhook) -> Result<()> {
        self.call(move |c| {
            c.execute(
                &format!("INSERT INTO webhooks ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)"),
                params![
                    w.id,
                    w.direction.as_str(),
                    w.target_url,
                    w.provider.as_str(),
                    serde_json::to_string(&w.events).unwrap_or_default(),
                    w.description,
                    w.enabled,
                    w.secret,
                    w.previous_secret,
                    w.previous_secret_expires_at,
                    serde_json::to_string(&w.headers).unwrap_or_default(),
                    w.created_at,
                    w.updated_at,
                    w.failure_count,
                    w.first_failure_at,
                    w.disabled_reason,
                    serde_json::to_string(&w.forward_to).unwrap_or_default(),
                ],
            )?;
            Ok(())
        })
        .await
    }

    /// Writes every mutable field of `w` back; returns false when the row is gone.
    pub async fn update_webhook(&self, w: Webhook) -> Result<bool> {
        let id = w.id.clone();
        let updated = self.call(move |c| {
            let n = c.execute(
                "UPDATE webhooks SET target_url = ?2, events = ?3, description = ?4, enabled = ?5, \
                 secret = ?6, previous_secret = ?7, previous_secret_expires_at = ?8, headers = ?9, \
                 updated_at = ?10, failure_count = ?11, first_failure_at = ?12, disabled_reason = ?13, \
                 forward_to = ?14 WHERE id = ?1",
                params![
                    w.id,
                    w.target_url,
                    serde_json::to_string(&w.events).unwrap_or_default(),
                    w.description,
                    w.enabled,
                    w.secret,
                    w.previous_secret,
                    w.previous_secret_expires_at,
                    serde_json::to_string(&w.headers).unwrap_or_default(),
                    w.updated_at,
                    w.failure_count,
                    w.first_failure_at,
                    w.disabled_reason,
                    serde_json::to_string(&w.forward_to).unwrap_or_default(),
                ],
            )?;
            Ok(n == 1)
        })
        .await;
        // Even after an error: whether it committed is unknown, so re-read next time.
        self.webhooks.forget([id.as_str()]);
        updated
    }

    /// One webhook, from the cache when it holds it (every request to the receiver asks).
    pub async fn get_webhook(&self, id: &str) -> Result<Option<Webhook>> {
        if let Some(w) = self.webhooks.get(id) {
            return Ok(Some(w));
        }
        let generation = self.webhooks.generation();
        let id = id.to_string();
        let found = self.read(move |c| get(c, &id)).await?;
        if let Some(w) = &found {
            self.webhooks.put(generation, w);
        }
        Ok(found)
    }

    pub async fn list_webhooks(
        &self,
        direction: Option<Direction>,
        enabled: Option<bool>,
    ) -> Result<Vec<Webhook>> {
        self.read(move |c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {COLUMNS} FROM webhooks \
                 WHERE (?1 IS NULL OR direction = ?1) AND (?2 IS NULL OR enabled = ?2) \
                 ORDER BY created_at, id"
            ))?;
            let rows =
                stmt.query_map(params![direction.map(Direction::as_str), enabled], from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    /// Deletes the webhook; its events and delivery log stay (they are history).
    pub async fn delete_webhook(&self, id: &str) -> Result<bool> {
        let owned = id.to_string();
        let deleted = self
            .call(move |c| Ok(c.execute("DELETE FROM webhooks WHERE id = ?1", [owned])? == 1))
            .await;
        self.webhooks.forget([id]);
        deleted
    }
}

/// Webhook rows by id, as last read from the store. Webhooks change only through this
/// process's `Store` (the process owns its data dir), and every change drops the rows it touched.
/// Unknown ids are not cached: junk URLs cannot grow it.
#[derive(Default)]
pub(super) struct WebhookCache {
    inner: Mutex<CacheInner>,
}

#[derive(Default)]
struct CacheInner {
    /// Bumped by every change, so a read that raced a change is not cached (see `put`).
    generation: u64,
    rows: HashMap<String, Webhook>,
}

impl WebhookCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, CacheInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self, id: &str) -> Option<Webhook> {
        self.lock().rows.get(id).cloned()
    }

    fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// Caches a row read when the cache was at `generation`, unless it changed since: the row
    /// may predate that change.
    fn put(&self, generation: u64, w: &Webhook) {
        let mut inner = self.lock();
        if inner.generation == generation {
            inner.rows.insert(w.id.clone(), w.clone());
        }
    }

    /// Called after a write to the rows of `ids` has committed (or may have).
    pub(super) fn forget<'a>(&self, ids: impl IntoIterator<Item = &'a str>) {
        let mut inner = self.lock();
        inner.generation += 1;
        for id in ids {
            inner.rows.remove(id);
        }
    }
}

pub(super) fn get(c: &Connection, id: &str) -> Result<Option<Webhook>> {
    Ok(
        c.prepare_cached(&format!("SELECT {COLUMNS} FROM webhooks WHERE id = ?1"))?
            .query_row([id], from_row)
            .optional()?,
    )
}

fn from_row(r: &Row) -> rusqlite::Result<Webhook> {
    let direction: String = r.get(1)?;
    let provider: String = r.get(3)?;
    let events: String = r.get(4)?;
    let headers: String = r.get(10)?;
    Ok(Webhook {
        id: r.get(0)?,
        direction: Direction::parse(&direction).ok_or_else(|| bad_column(1, &direction))?,
        target_url: r.get(2)?,
        provider: Provider::parse(&provider).ok_or_else(|| bad_column(3, &provider))?,
        events: serde_json::from_str(&events).map_err(|_| bad_column(4, &events))?,
        description: r.get(5)?,
        enabled: r.get(6)?,
        secret: r.get(7)?,
        previous_secret: r.get(8)?,
        previous_secret_expires_at: r.get(9)?,
        headers: serde_json::from_str(&headers).map_err(|_| bad_column(10, &headers))?,
        created_at: r.get(11)?,
        updated_at: r.get(12)?,
        failure_count: r.get(13)?,
        first_failure_at: r.get(14)?,
        disabled_reason: r.get(15)?,
        forward_to: {
            let f: String = r.get(16)?;
            serde_json::from_str(&f).map_err(|_| bad_column(16, &f))?
        },
    })
}

pub(super) fn bad_column(index: usize, value: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        index,
        rusqlite::types::Type::Text,
        format!("unexpected stored value {value:?}").into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_cache_never_serves_a_row_older_than_a_committed_change() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        let w = Webhook::fixture("w1", Direction::Inbound, "old-secret");
        store.insert_webhook(w.clone()).await.unwrap();
        // First read fills the cache; a change must be visible on the next read.
        assert_eq!(
            store.get_webhook("w1").await.unwrap().unwrap().secret,
            "old-secret"
        );
        let mut changed = w.clone();
        changed.secret = "new-secret".into();
        store.update_webhook(changed).await.unwrap();
        assert_eq!(
            store.get_webhook("w1").await.unwrap().unwrap().secret,
            "new-secret"
        );
        store.delete_webhook("w1").await.unwrap();
        assert!(store.get_webhook("w1").await.unwrap().is_none());
        assert!(
            store.webhooks.get("w1").is_none(),
            "unknown ids are not cached"
        );
    }

    #[test]
    fn a_read_that_raced_a_change_is_not_cached() {
        let cache = WebhookCache::default();
        let before = cache.generation();
        cache.forget(["w1"]); // a change commits while the read is in flight
        cache.put(before, &Webhook::fixture("w1", Direction::Inbound, "stale"));
        assert!(cache.get("w1").is_none());
        cache.put(
            cache.generation(),
            &Webhook::fixture("w1", Direction::Inbound, "fresh"),
        );
        assert_eq!(cache.get("w1").unwrap().secret, "fresh");
        // A change to another webhook leaves this one cached.
        cache.forget(["w2"]);
        assert_eq!(cache.get("w1").unwrap().secret, "fresh");
    }
}
