//! In-process cache (moka) with a per-entry TTL and a byte bound.
//!
//! Entries are `Arc<KeyView>`: a hit costs a reference count, not a copy.
//! The moka key is the key id in binary form (a UUID as `u128`, an imported
//! id as 32 bytes), so a lookup allocates nothing and an entry carries no
//! separate heap block for its key.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use moka::future::Cache;
use moka::Expiry;

use crate::domain::keys::is_imported_key_id;
use crate::domain::view::KeyView;
use crate::domain::NetworkId;
use crate::ports::{CacheError, KeyCache};

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
        if key_id.len() == 36 {
            if let Ok(u) = uuid::Uuid::try_parse(key_id) {
                let mut buf = [0u8; 36];
                if u.as_hyphenated().encode_lower(&mut buf).as_bytes() == key_id.as_bytes() {
                    return Id::Uuid(u.as_u128());
                }
            }
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
    ttl: Duration,
}

struct PerEntryTtl;

impl Expiry<Key, Entry> for PerEntryTtl {
    fn expire_after_create(&self, _k: &Key, v: &Entry, _now: Instant) -> Option<Duration> {
        Some(v.ttl)
    }
    fn expire_after_update(
        &self,
        _k: &Key,
        v: &Entry,
        _now: Instant,
        _d: Option<Duration>,
    ) -> Option<Duration> {
        Some(v.ttl)
    }
}

/// What moka itself keeps per entry (hash-table slot, entry and key
/// `Arc`s, access/write-order and timer nodes), measured with 1M entries on
/// moka 0.12: ~360 bytes.
const ENTRY_OVERHEAD: usize = 360;

/// Estimated bytes an entry costs, for the byte bound.
fn weight(k: &Key, v: &Entry) -> u32 {
    let key_heap = match &k.1 {
        Id::Other(s) => s.len(),
        _ => 0,
    };
    let size = ENTRY_OVERHEAD + key_heap + v.view.heap_size() + 16;
    size.min(u32::MAX as usize) as u32
}

#[derive(Clone)]
pub struct MemoryCache {
    inner: Cache<Key, Entry>,
}

impl MemoryCache {
    /// `max_bytes` bounds the estimated memory held by entries.
    pub fn new(max_bytes: u64) -> Self {
        let inner = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(weight)
            .expire_after(PerEntryTtl)
            .build();
        MemoryCache { inner }
    }

    pub fn entry_count(&self) -> u64 {
        self.inner.entry_count()
    }

    pub async fn run_pending_tasks(&self) {
        self.inner.run_pending_tasks().await;
    }

    /// Drops every entry.
    pub async fn clear(&self) {
        self.inner.invalidate_all();
        self.inner.run_pending_tasks().await;
    }

    pub(crate) async fn evict_local(&self, nid: NetworkId, key_id: &str) {
        self.inner.invalidate(&(nid, Id::of(key_id))).await;
    }

    pub(crate) async fn get_local(&self, nid: NetworkId, key_id: &str) -> Option<Arc<KeyView>> {
        self.inner
            .get(&(nid, Id::of(key_id)))
            .await
            .map(|e| e.view)
            // A stored view always carries the id it was stored under.
            .filter(|v| v.nid == nid && v.key_id() == key_id)
    }

    pub(crate) async fn put_local(&self, view: Arc<KeyView>, ttl: Duration) {
        if ttl.is_zero() {
            return;
        }
        self.inner
            .insert((view.nid, Id::of(view.key_id())), Entry { view, ttl })
            .await;
    }
}

#[async_trait]
impl KeyCache for MemoryCache {
    async fn get(&self, nid: NetworkId, key_id: &str) -> Result<Option<Arc<KeyView>>, CacheError> {
        Ok(self.get_local(nid, key_id).await)
    }
    async fn put(&self, key: Arc<KeyView>, ttl: Duration) -> Result<(), CacheError> {
        self.put_local(key, ttl).await;
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
    use super::*;

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
