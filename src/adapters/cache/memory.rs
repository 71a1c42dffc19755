//! In-process cache with a per-entry TTL and a byte bound.
//!
//! Entries are `Arc<KeyView>`: a hit costs a reference count, not a copy.
//! The engine is our own table (`table.rs`: sharded open addressing, CLOCK
//! eviction by weight), chosen over quick_cache and moka for the memory
//! misses a hit costs with a million keys cached (docs/decisions.md).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::table::{Probe, Table};
use crate::domain::view::KeyView;
use crate::domain::NetworkId;
use crate::ports::{CacheError, KeyCache, Ticket};

/// What the table and the allocator keep per entry besides the view: the
/// slot (24 bytes at a load between 3/8 and 3/4), the `Arc`'s counts, and
/// malloc's rounding of the view's two blocks.
const ENTRY_OVERHEAD: u64 = 80;

fn weigh(view: &KeyView) -> u64 {
    ENTRY_OVERHEAD + view.heap_size() as u64
}

#[derive(Clone)]
pub struct MemoryCache {
    table: Arc<Table>,
    /// Bumped by every eviction and clear; see [`Ticket`].
    generation: Arc<AtomicU64>,
}

impl MemoryCache {
    /// `max_bytes` bounds the estimated memory held by entries.
    pub fn new(max_bytes: u64) -> Self {
        MemoryCache {
            table: Arc::new(Table::new(max_bytes, weigh)),
            generation: Arc::new(AtomicU64::new(0)),
        }
    }

    pub fn entry_count(&self) -> u64 {
        self.table.len()
    }

    /// Estimated bytes held (the figure bounded by `max_bytes`).
    pub fn weight(&self) -> u64 {
        self.table.weight()
    }

    /// Nothing is deferred in this engine; kept so callers can settle the
    /// cache before measuring it whatever the engine.
    pub async fn run_pending_tasks(&self) {}

    /// Drops every entry.
    pub async fn clear(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.table.clear();
    }

    pub(crate) async fn evict_local(&self, nid: NetworkId, key_id: &str) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.table.remove(Probe::new(nid, key_id), None);
    }

    /// The current invalidation generation (a [`Ticket`]'s `local`).
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    pub(crate) async fn get_local(&self, nid: NetworkId, key_id: &str) -> Option<Arc<KeyView>> {
        self.table.get(Probe::new(nid, key_id), Instant::now())
    }

    /// Caches `view` unless an invalidation happened since `generation`
    /// was read (then the view may be older than the eviction).
    pub(crate) async fn put_local(&self, view: Arc<KeyView>, ttl: Duration, generation: u64) {
        if ttl.is_zero() || self.generation() != generation {
            return;
        }
        let now = Instant::now();
        let Some(until) = now.checked_add(ttl) else {
            return;
        };
        self.table.insert(view.clone(), until, now);
        // An eviction that ran between the check and the insert may have
        // missed this entry: take it back out.
        if self.generation() != generation {
            self.table.remove(Probe::of_view(&view), Some(&view));
        }
    }
}

#[async_trait]
impl KeyCache for MemoryCache {
    async fn get(&self, nid: NetworkId, key_id: &str) -> Result<Option<Arc<KeyView>>, CacheError> {
        Ok(self.get_local(nid, key_id).await)
    }
    async fn ticket(&self, _nid: NetworkId, _key_id: &str) -> Ticket {
        Ticket {
            local: self.generation(),
            shared: None,
        }
    }
    async fn put(
        &self,
        key: Arc<KeyView>,
        ttl: Duration,
        ticket: Ticket,
    ) -> Result<(), CacheError> {
        self.put_local(key, ttl, ticket.local).await;
        Ok(())
    }
    async fn evict(&self, nid: NetworkId, key_id: &str) -> Result<(), CacheError> {
        self.evict_local(nid, key_id).await;
        Ok(())
    }
    fn prefetch(&self, nid: NetworkId, issued: uuid::Uuid) {
        self.table.prefetch(nid, issued)
    }
    fn name(&self) -> &'static str {
        "memory"
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::adapters::cache::test_view as view;

    const ID: &str = "792b4c1a-1a2d-430b-b733-c789a2b7b1fe";

    #[tokio::test]
    async fn entries_expire_at_their_own_deadline() {
        let c = MemoryCache::new(1 << 20);
        let nid = NetworkId(Uuid::from_u128(1));
        c.put_local(view(1, ID), Duration::from_millis(150), c.generation())
            .await;
        c.put_local(view(1, "other"), Duration::from_secs(60), c.generation())
            .await;
        assert!(c.get_local(nid, ID).await.is_some());
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(c.get_local(nid, ID).await.is_none(), "past its TTL");
        assert_eq!(c.entry_count(), 1, "the expired entry was dropped on read");
        assert!(c.get_local(nid, "other").await.is_some());
        c.put_local(view(1, "zero"), Duration::ZERO, c.generation())
            .await;
        assert!(c.get_local(nid, "zero").await.is_none());
    }

    #[tokio::test]
    async fn keyed_by_tenant_and_id_and_evictable() {
        let c = MemoryCache::new(1 << 20);
        c.put_local(view(1, ID), Duration::from_secs(60), c.generation())
            .await;
        let (a, b) = (NetworkId(Uuid::from_u128(1)), NetworkId(Uuid::from_u128(2)));
        assert!(c.get_local(b, ID).await.is_none(), "other tenant");
        assert!(c.get_local(a, &ID.to_uppercase()).await.is_none());
        let hit = c.get_local(a, ID).await.unwrap();
        assert_eq!(hit.key_id(), ID);
        c.evict_local(a, ID).await;
        assert!(c.get_local(a, ID).await.is_none());
    }

    #[tokio::test]
    async fn a_put_that_predates_an_eviction_is_dropped() {
        let c = MemoryCache::new(1 << 20);
        let nid = NetworkId(Uuid::from_u128(1));
        // A verification takes its ticket, then reads the (still active) key…
        let ticket = c.ticket(nid, ID).await;
        // …meanwhile the key is revoked and evicted…
        c.evict(nid, ID).await.unwrap();
        // …and the verification's put must not bring the old state back.
        c.put(view(1, ID), Duration::from_secs(60), ticket)
            .await
            .unwrap();
        assert!(c.get_local(nid, ID).await.is_none());
        // A fresh ticket caches as usual.
        let ticket = c.ticket(nid, ID).await;
        c.put(view(1, ID), Duration::from_secs(60), ticket)
            .await
            .unwrap();
        assert!(c.get_local(nid, ID).await.is_some());
        // Clearing also invalidates outstanding tickets.
        let ticket = c.ticket(nid, ID).await;
        c.clear().await;
        c.put(view(1, "x"), Duration::from_secs(60), ticket)
            .await
            .unwrap();
        assert!(c.get_local(nid, "x").await.is_none());
    }

    #[tokio::test]
    async fn the_byte_bound_holds() {
        let max = 1 << 20;
        let c = MemoryCache::new(max);
        for i in 0..20_000u128 {
            let id = Uuid::from_u128(i).to_string();
            c.put_local(view(1, &id), Duration::from_secs(60), c.generation())
                .await;
        }
        assert!(c.weight() <= max, "{} > {max}", c.weight());
        assert!(c.entry_count() > 1000, "{}", c.entry_count());
        assert!(c.entry_count() < 20_000);
    }
}
