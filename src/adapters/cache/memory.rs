//! In-process cache with a per-entry TTL and a byte bound.
//!
//! Entries are `Arc<KeyView>`: a hit costs a reference count, not a copy.
//! The cache key is the key id in binary form (a UUID as `u128`, an imported
//! id as 32 bytes), so a lookup allocates nothing and an entry carries no
//! separate heap block for its key.
//!
//! The engine is `quick_cache` (sharded, CLOCK-Pro style eviction by
//! weight), not moka: moka's per-entry bookkeeping alone measured ~360 bytes
//! per entry with 1M entries, quick_cache's next to nothing (see
//! `bench/cache-engines` and docs/decisions.md). quick_cache has no expiry,
//! so each entry carries its deadline, checked on every read; an expired
//! entry is dropped when read and otherwise ages out under the byte bound.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use quick_cache::sync::Cache;
use quick_cache::Weighter;

use crate::domain::keys::{is_imported_key_id, issued_key_uuid};
use crate::domain::view::KeyView;
use crate::domain::NetworkId;
use crate::ports::{CacheError, KeyCache, Ticket};

/// A key id in binary form. Only the canonical spellings (lowercase UUID,
/// lowercase hex) map to the compact variants, so distinct key id strings
/// never share a cache key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Id {
    Uuid(u128),
    Hex([u8; 32]),
    Other(Box<str>),
}

impl Id {
    fn of(key_id: &str) -> Id {
        if let Some(u) = issued_key_uuid(key_id) {
            return Id::Uuid(u.as_u128());
        }
        if is_imported_key_id(key_id) {
            let mut b = [0u8; 32];
            if hex::decode_to_slice(key_id, &mut b).is_ok() {
                return Id::Hex(b);
            }
        }
        Id::Other(key_id.into())
    }
}

type Key = (NetworkId, Id);

#[derive(Clone)]
struct Entry {
    view: Arc<KeyView>,
    until: Instant,
}

/// What the engine and the allocator keep per entry besides the view: the
/// table slot with key and deadline, the slab link, malloc headers.
const ENTRY_OVERHEAD: u64 = 96;

#[derive(Clone, Copy)]
struct ByBytes;

impl Weighter<Key, Entry> for ByBytes {
    fn weight(&self, k: &Key, v: &Entry) -> u64 {
        let key_heap = match &k.1 {
            Id::Other(s) => s.len() as u64,
            _ => 0,
        };
        ENTRY_OVERHEAD + key_heap + v.view.heap_size() as u64
    }
}

/// A typical entry's weight, to size the engine's bookkeeping.
const TYPICAL_ENTRY: u64 = 320;

#[derive(Clone)]
pub struct MemoryCache {
    inner: Arc<Cache<Key, Entry, ByBytes>>,
    /// Bumped by every eviction and clear; see [`Ticket`].
    generation: Arc<AtomicU64>,
}

impl MemoryCache {
    /// `max_bytes` bounds the estimated memory held by entries.
    pub fn new(max_bytes: u64) -> Self {
        let items = (max_bytes / TYPICAL_ENTRY).clamp(1024, 1 << 24) as usize;
        MemoryCache {
            inner: Arc::new(Cache::with_weighter(items, max_bytes, ByBytes)),
            generation: Arc::new(AtomicU64::new(0)),
        }
    }

    pub fn entry_count(&self) -> u64 {
        self.inner.len() as u64
    }

    /// Estimated bytes held (the figure bounded by `max_bytes`).
    pub fn weight(&self) -> u64 {
        self.inner.weight()
    }

    /// Nothing is deferred in this engine; kept so callers can settle the
    /// cache before measuring it whatever the engine.
    pub async fn run_pending_tasks(&self) {}

    /// Drops every entry.
    pub async fn clear(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.inner.clear();
    }

    pub(crate) async fn evict_local(&self, nid: NetworkId, key_id: &str) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.inner.remove(&(nid, Id::of(key_id)));
    }

    /// The current invalidation generation (a [`Ticket`]'s `local`).
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    pub(crate) async fn get_local(&self, nid: NetworkId, key_id: &str) -> Option<Arc<KeyView>> {
        let key = (nid, Id::of(key_id));
        let e = self.inner.get(&key)?;
        if e.until <= Instant::now() {
            self.inner.remove_if(&key, |v| v.until <= Instant::now());
            return None;
        }
        // Entries are stored under their own view's (nid, id) and `Id` maps
        // distinct id strings to distinct keys, so the view is this key's;
        // not re-checked here, as that would read two more heap blocks.
        debug_assert!(e.view.nid == nid && e.view.key_id() == key_id);
        Some(e.view)
    }

    /// Caches `view` unless an invalidation happened since `generation`
    /// was read (then the view may be older than the eviction).
    pub(crate) async fn put_local(&self, view: Arc<KeyView>, ttl: Duration, generation: u64) {
        if ttl.is_zero() || self.generation() != generation {
            return;
        }
        let Some(until) = Instant::now().checked_add(ttl) else {
            return;
        };
        let key = (view.nid, Id::of(view.key_id()));
        self.inner.insert(
            key.clone(),
            Entry {
                view: view.clone(),
                until,
            },
        );
        // An eviction that ran between the check and the insert may have
        // missed this entry: take it back out.
        if self.generation() != generation {
            self.inner.remove_if(&key, |e| Arc::ptr_eq(&e.view, &view));
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
    fn name(&self) -> &'static str {
        "memory"
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::domain::view::KeyViewParts;
    use crate::domain::{KeyKind, KeyStatus, KeyVisibility};

    fn view(nid: u128, key_id: &str) -> Arc<KeyView> {
        Arc::new(KeyView::new(KeyViewParts {
            nid: NetworkId(Uuid::from_u128(nid)),
            kind: KeyKind::Issued,
            status: KeyStatus::Active,
            visibility: KeyVisibility::Secret,
            expires_at: None,
            rate_limit: None,
            key_id,
            actor_id: "a",
            metadata_json: "{}",
            scopes: &["s"],
            allowed_cidrs: &[] as &[&str],
        }))
    }

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

    #[test]
    fn only_canonical_ids_take_the_compact_forms() {
        let u = "792b4c1a-1a2d-430b-b733-c789a2b7b1fe";
        assert!(matches!(Id::of(u), Id::Uuid(_)));
        assert!(matches!(Id::of(&u.to_uppercase()), Id::Other(_)));
        assert_ne!(Id::of(u), Id::of(&u.to_uppercase()));
        let h = "ab".repeat(32);
        assert!(matches!(Id::of(&h), Id::Hex(_)));
        assert!(matches!(Id::of(&h.to_uppercase()), Id::Other(_)));
        assert_ne!(Id::of(&h), Id::of(&h.to_uppercase()));
        assert_eq!(Id::of("x"), Id::Other("x".into()));
    }
}
