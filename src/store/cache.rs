//! The webhook cache that answers the receiver's per-request lookup, shared by the backends.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::model::{Webhook, WebhookId};

/// Webhook rows by id, as last read from the store. A change made through this process drops
/// the rows it touched at once; a change made by another process drops them when this
/// process's change feed reads it (`Cluster::invalidate_webhooks`). Unknown ids are not cached:
/// junk URLs cannot grow it.
#[derive(Default)]
pub struct WebhookCache {
    inner: Mutex<CacheInner>,
}

#[derive(Default)]
struct CacheInner {
    /// Bumped by every change, so a read that raced a change is not cached (see `put`).
    generation: u64,
    rows: HashMap<WebhookId, Webhook>,
}

impl WebhookCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, CacheInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, id: &WebhookId) -> Option<Webhook> {
        self.lock().rows.get(id).cloned()
    }

    pub fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// Caches a row read when the cache was at `generation`, unless it changed since: the row
    /// may predate that change.
    pub fn put(&self, generation: u64, w: &Webhook) {
        let mut inner = self.lock();
        if inner.generation == generation {
            inner.rows.insert(w.id.clone(), w.clone());
        }
    }

    /// Called after a write to the rows of `ids` has committed (or may have).
    pub fn forget<'a>(&self, ids: impl IntoIterator<Item = &'a WebhookId>) {
        let mut inner = self.lock();
        inner.generation += 1;
        for id in ids {
            inner.rows.remove(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Direction;

    #[test]
    fn a_read_that_raced_a_change_is_not_cached() {
        let cache = WebhookCache::default();
        let w1 = WebhookId::from("w1");
        let before = cache.generation();
        cache.forget([&w1]); // a change commits while the read is in flight
        cache.put(before, &Webhook::fixture("w1", Direction::Inbound, "stale"));
        assert!(cache.get(&w1).is_none());
        cache.put(
            cache.generation(),
            &Webhook::fixture("w1", Direction::Inbound, "fresh"),
        );
        assert_eq!(cache.get(&w1).unwrap().secret.expose(), "fresh");
        // A change to another webhook leaves this one cached.
        cache.forget([&WebhookId::from("w2")]);
        assert_eq!(cache.get(&w1).unwrap().secret.expose(), "fresh");
    }
}
